"""Integration tests for /metrics and /health on the real `kvserve serve`.

CountsTest checks counters and histograms against the requests the test sent; PromtoolTest lints
the exposition with `promtool check metrics`; PrometheusTest starts a real Prometheus server that
scrapes kvserve every second and queries its HTTP API. Each TestCase class is one ctest test.
"""
import concurrent.futures
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import grpc

from kvserve.v1 import generation_pb2 as pb
from server_harness import Server, collect, greedy_request

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

# Copied by hand from server/frontend/metrics.cc (LatencyBucketsSeconds), to place TTFTs in buckets.
LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 1.5,
                   2, 2.5, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300, 600, math.inf]


def parse_metrics(text):
    """{(name, frozenset(labels.items())): float} from the text exposition format."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"unparsable sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


class MetricsServerMixin:
    def metrics(self):
        status, body = self.server.http_get("/metrics")
        self.assertEqual(status, 200)
        return parse_metrics(body)


class CountsTest(MetricsServerMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A few ms per step so every timing has a floor the test can check.
        cls.server = Server("--debug-step-delay-ms", "5")

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def test_counters_and_histograms_match_the_requests_sent(self):
        before = self.metrics()
        self.assertEqual(value(before, "kvserve_generation_tokens_total"), 0)
        # Three greedy requests, EOS ignored: lengths are exactly known. Prompts shorter than a
        # KV page (16 tokens), so no prefix-cache hit shortens any prefill.
        prompts = [list(range(40, 45)), list(range(50, 57)), list(range(60, 71))]
        max_tokens = [4, 6, 8]
        ttfts = []
        for ids, n in zip(prompts, max_tokens):
            got, _, last = collect(self.server.stub.Generate(greedy_request(n, ids=ids),
                                                             timeout=60))
            self.assertEqual(len(got), n)
            ttfts.append(last.timings.time_to_first_token_seconds)
        # One refused request (max_tokens 0) and one unary call.
        with self.assertRaises(grpc.RpcError) as caught:
            collect(self.server.stub.Generate(greedy_request(0, ids=[1, 2]), timeout=10))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        self.assertEqual(self.server.http_get("/nowhere")[0], 404)

        num_prompt = sum(len(p) for p in prompts)  # 23
        num_generated = sum(max_tokens)            # 18
        # The engine counts a step after its tokens reach the streams (the step's statistics
        # are gathered while they are published), so a client can hold its last token a moment
        # before the counters include it: wait for the step to be counted, then check all.
        deadline = time.monotonic() + 5
        m = self.metrics()
        while (value(m, "kvserve_generation_tokens_total") < num_generated
               or value(m, "kvserve_requests_finished_total", finish_reason="length") < 3) \
                and time.monotonic() < deadline:
            time.sleep(0.02)
            m = self.metrics()
        self.assertEqual(value(m, "kvserve_generation_tokens_total"), num_generated)
        self.assertEqual(value(m, "kvserve_prompt_tokens_total"), num_prompt)
        self.assertEqual(value(m, "kvserve_requests_finished_total", finish_reason="length"), 3)
        self.assertEqual(value(m, "kvserve_requests_finished_total", finish_reason="stop"), 0)
        for name in ["kvserve_time_to_first_token_seconds", "kvserve_e2e_request_latency_seconds",
                     "kvserve_request_queue_time_seconds", "kvserve_request_prompt_tokens",
                     "kvserve_request_generation_tokens"]:
            self.assertEqual(value(m, name + "_count"), 3, name)
            self.assertEqual(value(m, name + "_bucket", le="+Inf"), 3, name)
        self.assertEqual(value(m, "kvserve_request_prompt_tokens_sum"), num_prompt)
        self.assertEqual(value(m, "kvserve_request_generation_tokens_sum"), num_generated)
        # Every token but a request's first has an inter-token latency, at least one step delay.
        self.assertEqual(value(m, "kvserve_inter_token_latency_seconds_count"), num_generated - 3)
        self.assertGreaterEqual(value(m, "kvserve_inter_token_latency_seconds_sum"),
                                (num_generated - 3) * 0.004)
        # The server's TTFT histogram sums what the clients were told, one request at a time.
        self.assertAlmostEqual(value(m, "kvserve_time_to_first_token_seconds_sum"), sum(ttfts),
                               delta=1e-3)
        # Computed tokens: each prompt once, each generated token but the last fed back once.
        self.assertEqual(value(m, "kvserve_step_tokens_sum"), num_prompt + num_generated - 3)
        # Sequential requests: one step per generated token, one request per step.
        self.assertEqual(value(m, "kvserve_step_tokens_count"), num_generated)
        self.assertEqual(value(m, "kvserve_step_requests_sum"), num_generated)
        self.assertEqual(value(m, "kvserve_step_duration_seconds_count"), num_generated)
        self.assertGreaterEqual(value(m, "kvserve_step_duration_seconds_sum"),
                                num_generated * 0.004)
        self.assertEqual(value(m, "kvserve_preemptions_total"), 0)
        self.assertEqual(value(m, "kvserve_grpc_requests_total", method="Generate", code="OK"), 3)
        self.assertEqual(value(m, "kvserve_grpc_requests_total", method="Generate",
                               code="INVALID_ARGUMENT"), 1)
        self.assertEqual(value(m, "kvserve_grpc_requests_total", method="GetModelInfo",
                               code="OK"), 1)
        self.assertEqual(value(m, "kvserve_http_requests_total", path="other", code="404"), 1)
        self.assertEqual(value(m, "kvserve_http_requests_total", path="/metrics", code="200"), 1)
        # Idle now: gauges agree with GetServerInfo.
        info = self.server.wait_idle()
        self.assertEqual(value(m, "kvserve_requests_running"), 0)
        self.assertEqual(value(m, "kvserve_requests_waiting"), 0)
        self.assertEqual(value(m, "kvserve_kv_cache_pages"), info.total_kv_pages)
        self.assertEqual(value(m, "kvserve_kv_cache_free_pages"), info.free_kv_pages)
        self.assertEqual(value(m, "kvserve_kv_cache_usage_ratio"), 0)
        model = self.server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        self.assertEqual(value(m, "kvserve_model_info", model=model.name,
                               architecture=model.architecture, weight_dtype="f32",
                               kv_cache_dtype="f16"), 1)

    def test_running_request_shows_in_gauges_and_cancel_is_counted(self):
        responses = self.server.stub.Generate(greedy_request(400, ids=list(range(1, 40))),
                                              timeout=60)
        next(responses)  # the first token: it runs and holds ceil(40/16) = 3+ pages
        m = self.metrics()
        self.assertEqual(value(m, "kvserve_requests_running"), 1)
        total = value(m, "kvserve_kv_cache_pages")
        self.assertGreaterEqual(total - value(m, "kvserve_kv_cache_free_pages"), 3)
        self.assertGreater(value(m, "kvserve_kv_cache_usage_ratio"), 0)
        responses.cancel()
        self.server.wait_idle(timeout=5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            m = self.metrics()
            if value(m, "kvserve_requests_finished_total", finish_reason="cancelled") == 1:
                break
            time.sleep(0.05)
        self.assertEqual(value(m, "kvserve_requests_finished_total", finish_reason="cancelled"), 1)
        self.assertEqual(value(m, "kvserve_requests_running"), 0)

    def test_health_is_200_while_serving(self):
        status, body = self.server.http_get("/health")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["status"], "serving")


class DrainHealthTest(unittest.TestCase):
    def test_health_is_503_while_draining_and_metrics_stay_up(self):
        server = Server("--debug-step-delay-ms", "20")
        try:
            responses = server.stub.Generate(greedy_request(60, ids=[5, 6, 7]), timeout=60)
            first = next(responses)
            server.proc.send_signal(signal.SIGTERM)
            server.wait_for_line("draining", 5)
            status, body = server.http_get("/health")
            self.assertEqual(status, 503)
            self.assertEqual(json.loads(body)["status"], "draining")
            status, body = server.http_get("/metrics")
            self.assertEqual(status, 200)
            self.assertEqual(value(parse_metrics(body), "kvserve_requests_running"), 1)
            ids, _, last = collect(responses)
            self.assertEqual(len(first.token_ids) + len(ids), 60)  # the drain lets it finish
        finally:
            self.assertEqual(server.stop(), 0)


class PromtoolTest(unittest.TestCase):
    def test_metrics_pass_promtool_check(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool missing: scripts/install-deps.sh installs "
                                       "Debian's prometheus package")
        with Server() as server:
            collect(server.stub.Generate(greedy_request(5, ids=[1, 2, 3]), timeout=60))
            status, body = server.http_get("/metrics")
            self.assertEqual(status, 200)
            check = subprocess.run([promtool, "check", "metrics"], input=body, text=True,
                                   capture_output=True, timeout=30)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
            self.assertEqual(check.stdout.strip(), "", "promtool lint findings")


# Loopback only: never through an http_proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusTest(unittest.TestCase):
    """A real Prometheus scrapes kvserve; the test asks Prometheus, not kvserve."""

    def setUp(self):
        prometheus = shutil.which("prometheus")
        self.assertIsNotNone(prometheus, "prometheus missing: see scripts/install-deps.sh")
        self.server = Server("--debug-step-delay-ms", "15")
        self.tmp = tempfile.TemporaryDirectory()
        config = os.path.join(self.tmp.name, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: kvserve\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{self.server.http_port}']\n")
        self.prom_port = free_port()
        self.prom_log = open(os.path.join(self.tmp.name, "prometheus.log"), "w+")
        self.prometheus = subprocess.Popen(
            [prometheus, f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(self.tmp.name, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.prom_port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=self.prom_log)
        deadline = time.monotonic() + 30
        while True:
            try:
                with OPENER.open(f"http://127.0.0.1:{self.prom_port}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.prometheus.poll() is not None:
                self.prom_log.seek(0)
                self.fail("prometheus exited: " + self.prom_log.read())
            self.assertLess(time.monotonic(), deadline, "prometheus not ready in 30 s")
            time.sleep(0.2)

    def tearDown(self):
        self.prometheus.terminate()
        try:
            self.prometheus.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.prometheus.kill()
            self.prometheus.wait()
        self.prom_log.close()
        self.server.stop()
        self.tmp.cleanup()

    def query(self, promql):
        """The instant vector of `promql` as a list of floats ([] when empty)."""
        url = (f"http://127.0.0.1:{self.prom_port}/api/v1/query?" +
               urllib.parse.urlencode({"query": promql}))
        with OPENER.open(url, timeout=5) as r:
            reply = json.loads(r.read())
        self.assertEqual(reply["status"], "success", reply)
        return [float(s["value"][1]) for s in reply["data"]["result"]]

    def wait_for(self, promql, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            got = self.query(promql)
            if got and predicate(got[0]):
                return got[0]
            if time.monotonic() > deadline:
                self.fail(f"{promql} = {got} after {timeout} s")
            time.sleep(0.25)

    def test_prometheus_scrapes_tokens_ttft_and_kv_usage(self):
        # The target is up before the batch, so Prometheus also sees the idle zeros.
        self.wait_for('up{job="kvserve"}', lambda v: v == 1)
        # Eight concurrent requests of 100 tokens: about 100 steps of >= 15 ms, so the batch spans
        # at least one scrape while it holds KV pages.
        n, max_tokens = 8, 100
        prompts = [[10 + i] * (12 + i) for i in range(n)]
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            finals = list(pool.map(
                lambda ids: collect(self.server.stub.Generate(
                    greedy_request(max_tokens, ids=ids), timeout=60)),
                prompts))
        for ids, _, _ in finals:
            self.assertEqual(len(ids), max_tokens)
        ttfts = sorted(last.timings.time_to_first_token_seconds for _, _, last in finals)

        total = self.wait_for("kvserve_generation_tokens_total", lambda v: v == n * max_tokens)
        self.assertEqual(total, n * max_tokens)
        self.assertEqual(self.query('kvserve_requests_finished_total{finish_reason="length"}'),
                         [n])
        # The median TTFT Prometheus estimates from the buckets lies between the lower bound of
        # the bucket of the fastest client-measured TTFT and the upper bound of the slowest's.
        median = self.query(
            "histogram_quantile(0.5, kvserve_time_to_first_token_seconds_bucket)")[0]
        low = max([0] + [b for b in LATENCY_BUCKETS if b < ttfts[0]])
        high = min(b for b in LATENCY_BUCKETS if b >= ttfts[-1])
        self.assertTrue(low <= median <= high, (median, low, high, ttfts))
        rate_median = self.query(
            "histogram_quantile(0.5, rate(kvserve_time_to_first_token_seconds_bucket[1m]))")
        self.assertEqual(len(rate_median), 1)
        self.assertTrue(low <= rate_median[0] <= high, (rate_median, low, high, ttfts))
        # KV usage: seen above zero during the batch, never above what the batch could hold:
        # each request needs at most ceil((prompt + max_tokens) / 16) pages.
        pages = self.query("kvserve_kv_cache_pages")[0]
        bound = sum(math.ceil((len(p) + max_tokens) / 16) for p in prompts) / pages
        peak = self.query("max_over_time(kvserve_kv_cache_usage_ratio[1m])")[0]
        self.assertGreater(peak, 0)
        self.assertLessEqual(peak, bound + 1e-9)
        self.assertEqual(self.query("kvserve_kv_cache_usage_ratio"), [0])
        self.assertEqual(self.query("kvserve_requests_running"), [0])


if __name__ == "__main__":
    unittest.main()
