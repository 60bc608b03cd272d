"""The HTTP front under load and under attack, against the real `kvserve serve` (demo model):

- ConcurrencyTest: 1000 SSE streams at once all complete with the right token counts, /health
  answers every probe meanwhile, and GetServerInfo accounts for every request in flight; the
  server's threads and RSS are recorded (KVSERVE_ARTIFACTS/http_front_figures.json).
- AbuseTest: 500 idle connections, 20 slowloris connections, bodies over the limit, duplicate
  Content-Length, a 46-level nested body, a 15 MB prompt (400
  context_length_exceeded before it is tokenized), the
  connection cap (503 + Retry-After, /health and /metrics still answered): the right status each,
  /health 200 within a second throughout, the server alive at the end.
- DisconnectTest: a client that closes its connection, streamed or not, running or queued: running
  back to 0 and every KV page free within a second.
- GrpcPortTest: a second server on a busy gRPC port exits non-zero naming the port.

Each TestCase class is one ctest test (label http). The clients are raw asyncio/socket code, so
the framing the server sends is what is checked.
"""
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import unittest

from server_harness import KVSERVE_BIN, Server

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from http_load_bench import process_figures  # noqa: E402  (one reader of /proc for both)


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def completion_body(max_tokens, stream=True, prompt="Hello"):
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
            "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def http_request(path, body=None, extra_headers=""):
    method = "GET" if body is None else "POST"
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra_headers}"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


class HealthProber:
    """GET /health every `interval` seconds on a fresh connection; records each probe's status
    and latency. Use as a context manager."""

    def __init__(self, server, interval=0.1):
        self.server, self.interval = server, interval
        self.probes = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                status = self.server.http_get("/health", timeout=1)[0]
            except Exception as e:  # noqa: BLE001 - a failed probe is a result
                status = repr(e)
            self.probes.append((status, time.monotonic() - start))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def assert_all_ok(self, test):
        test.assertGreater(len(self.probes), 0)
        bad = [p for p in self.probes if p[0] != 200 or p[1] > 1.0]
        test.assertEqual(bad, [], f"{len(bad)} of {len(self.probes)} /health probes failed")


async def read_chunked_sse(reader):
    """The events of a chunked SSE body, until its last chunk."""
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            break
        body += (await reader.readexactly(size + 2))[:-2]
    return [line[6:] for line in body.decode("utf-8", "replace").split("\n")
            if line.startswith("data: ")]


class ConcurrencyTest(unittest.TestCase):
    STREAMS = 1000
    MAX_TOKENS = 20

    def test_a_thousand_sse_streams(self):
        raise_file_limit()
        with Server("--max-num-seqs", "256", "--debug-step-delay-ms", "100",
                    "--kv-cache-memory", "256MiB") as server:
            state = {"started": 0, "done": 0}
            samples, figures = [], {}
            all_started = threading.Event()
            finished = threading.Event()

            def watch():
                # GetServerInfo while the streams run: once all are in flight and none has
                # finished, running + waiting must count every one of them.
                all_started.wait(60)
                while not finished.is_set():
                    before = state["done"]
                    info = server.server_info()
                    after = state["done"]
                    samples.append((before, after, info.running_requests, info.waiting_requests))
                    if not figures:
                        figures.update(process_figures(server.proc.pid))
                    time.sleep(0.2)

            async def one_stream(body):
                reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port,
                                                               limit=1 << 20)
                try:
                    writer.write(http_request("/v1/completions", body))
                    await writer.drain()
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head.split()[1])
                    state["started"] += 1
                    if state["started"] == self.STREAMS:
                        all_started.set()
                    if status != 200:
                        return status, None
                    events = await read_chunked_sse(reader)
                    state["done"] += 1
                    return status, events
                finally:
                    writer.close()

            async def run_all():
                body = completion_body(self.MAX_TOKENS)
                return await asyncio.gather(*(one_stream(body) for _ in range(self.STREAMS)))

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            start = time.monotonic()
            with HealthProber(server) as prober:
                results = asyncio.run(run_all())
            elapsed = time.monotonic() - start
            finished.set()
            watcher.join()

            statuses = [status for status, _ in results]
            self.assertEqual(statuses.count(200), self.STREAMS, statuses[:20])
            for _, events in results:
                self.assertEqual(events[-1], "[DONE]")
                usage = json.loads(events[-2])["usage"]
                self.assertEqual(usage["completion_tokens"], self.MAX_TOKENS)
                finish = [json.loads(e)["choices"][0]["finish_reason"] for e in events[:-2]]
                self.assertEqual(finish[-1], "length")
            prober.assert_all_ok(self)

            exact = [s for s in samples if s[0] == s[1] == 0]
            self.assertTrue(exact, f"no sample while all {self.STREAMS} were in flight: {samples}")
            for _, _, running, waiting in exact:
                self.assertEqual(running + waiting, self.STREAMS, samples)
                self.assertLessEqual(running, 256)
            # A stream the client has seen end may still count as running until the engine's
            # step that finished it ends (the output is published before the scheduler drops the
            # request): compare each sample with the streams done one sample (0.2 s, more than
            # a 100 ms step) earlier.
            for (earlier, _, _, _), (_, _, running, waiting) in zip(samples, samples[1:]):
                self.assertLessEqual(running + waiting, self.STREAMS - earlier, samples)
            idle = server.wait_idle(timeout=5)
            self.assertEqual(idle.free_kv_pages, idle.total_kv_pages)

            figures.update(streams=self.STREAMS, seconds=round(elapsed, 2),
                           health_probes=len(prober.probes),
                           slowest_probe_ms=round(1000 * max(p[1] for p in prober.probes), 1))
            print("figures:", json.dumps(figures))
            out = os.path.join(os.environ.get("KVSERVE_ARTIFACTS", "/tmp"),
                               "http_front_figures.json")
            with open(out, "w") as f:
                json.dump(figures, f)


def post(server, path, body, headers=None, timeout=30):
    """(status, response headers, parsed JSON body) of a POST over a fresh connection."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers or {"content-type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        return r.status, dict(r.getheaders()), json.loads(data) if data else None
    finally:
        conn.close()


def raw_exchange(port, data, timeout=5):
    """Sends raw bytes, returns everything the server sends until it closes or the timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        return out


def status_of(response):
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else None


class AbuseTest(unittest.TestCase):
    def test_hostile_clients(self):
        raise_file_limit()
        with Server("--http-max-body-bytes", "1MiB", "--http-header-timeout", "2",
                    "--http-idle-timeout", "3") as server:
            port = server.http_port
            with HealthProber(server) as prober:
                # 500 idle connections: nothing else waits for them.
                idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(500)]
                # 20 slowloris connections: a header line every half second, never the end.
                slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
                for s in slow:
                    s.sendall(b"POST /v1/completions HTTP/1.1\r\n")
                status, _, body = post(server, "/v1/completions", completion_body(4, stream=False))
                self.assertEqual(status, 200, body)
                self.assertEqual(body["usage"]["completion_tokens"], 4)

                # Bodies over the limit: announced, and chunked without a length.
                big = b'{"prompt": "' + b"a" * (2 << 20) + b'"}'
                response = raw_exchange(port, http_request("/v1/completions", big))
                self.assertEqual(status_of(response), 413, response[:200])
                chunked = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n"
                           + b"".join(b"10000\r\n" + b"a" * 0x10000 + b"\r\n" for _ in range(20)))
                self.assertEqual(status_of(raw_exchange(port, chunked)), 413)
                # One Content-Length only.
                body = completion_body(2, stream=False)
                dup = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                       b"Content-Length: %d\r\n\r\n" % (len(body), len(body))) + body
                self.assertEqual(status_of(raw_exchange(port, dup)), 400)
                # Headers over the limit.
                huge = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 20000 + b"\r\n\r\n"
                self.assertEqual(status_of(raw_exchange(port, huge)), 431)
                # The 46-level nested body of the hardening issue.
                status, _, reply = post(server, "/v1/chat/completions",
                                        b"[" * 46 + b"]" * 46)
                self.assertEqual(status, 400, reply)

                for _ in range(10):  # several slowloris periods
                    for s in slow:
                        try:
                            s.sendall(b"X-A: b\r\n")
                        except OSError:
                            pass
                    time.sleep(0.5)
                # The slowloris connections were cut at the header timeout (2 s).
                closed = 0
                for s in slow:
                    s.settimeout(1)
                    try:
                        closed += s.recv(1) == b""
                    except (ConnectionResetError, BrokenPipeError):
                        closed += 1
                    except socket.timeout:
                        pass
                self.assertEqual(closed, len(slow))
                status, _, body = post(server, "/v1/completions", completion_body(3, stream=False))
                self.assertEqual(status, 200, body)
                for s in idle + slow:
                    s.close()
            prober.assert_all_ok(self)
            self.assertIsNone(server.proc.poll(), "the server died")

    def test_a_15_mb_prompt_is_400_before_tokenizing(self):
        with Server() as server:
            prompt = "a" * (15 << 20)
            start = time.monotonic()
            status, _, body = post(server, "/v1/completions",
                                   json.dumps({"prompt": prompt, "max_tokens": 1}).encode())
            self.assertEqual(status, 400, body)
            self.assertEqual(body["error"]["code"], "context_length_exceeded")
            self.assertIn("cannot fit", body["error"]["message"])
            self.assertLess(time.monotonic() - start, 3)

    def test_connection_cap_answers_503_and_still_serves_probes(self):
        with Server("--http-max-connections", "8", "--debug-step-delay-ms", "50") as server:
            holders = []
            for _ in range(8):
                s = socket.create_connection(("127.0.0.1", server.http_port))
                s.sendall(http_request("/v1/completions", completion_body(200)))
                holders.append(s)
            for s in holders:  # every one is streaming
                s.settimeout(10)
                self.assertTrue(s.recv(12).startswith(b"HTTP/1.1 200"))
            response = raw_exchange(server.http_port, http_request("/v1/models"))
            self.assertEqual(status_of(response), 503, response)
            self.assertIn(b"Retry-After: 1", response)
            self.assertEqual(server.http_get("/health")[0], 200)
            status, text = server.http_get("/metrics")
            self.assertEqual(status, 200)
            self.assertIn('kvserve_http_requests_total{code="503",path="/v1/models"}', text)
            for s in holders:
                s.close()
            info = server.wait_idle(timeout=2)
            self.assertEqual((info.running_requests, info.waiting_requests), (0, 0))


class DisconnectTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--max-num-seqs", "1", "--debug-step-delay-ms", "20")

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def wait_running(self, running, waiting=0, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.server.server_info()
            if (info.running_requests, info.waiting_requests) == (running, waiting):
                return
            time.sleep(0.01)
        self.fail(f"never {running} running, {waiting} waiting")

    def assert_idle_within_a_second(self, closed_at):
        info = self.server.wait_idle(timeout=1.0)
        took = time.monotonic() - closed_at
        self.assertEqual((info.running_requests, info.waiting_requests), (0, 0))
        self.assertEqual(info.free_kv_pages, info.total_kv_pages)
        self.assertLess(took, 1.0)

    def test_streamed(self):
        s = socket.create_connection(("127.0.0.1", self.server.http_port))
        s.sendall(http_request("/v1/completions", completion_body(2000)))
        s.settimeout(10)
        got = b""
        while got.count(b"data: ") < 3:
            got += s.recv(4096)
        s.close()
        self.assert_idle_within_a_second(time.monotonic())

    def test_not_streamed(self):
        s = socket.create_connection(("127.0.0.1", self.server.http_port))
        s.sendall(http_request("/v1/chat/completions", json.dumps(
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2000,
             "ignore_eos": True}).encode()))
        self.wait_running(1)
        s.close()
        self.assert_idle_within_a_second(time.monotonic())

    def test_queued_behind_another(self):
        first = socket.create_connection(("127.0.0.1", self.server.http_port))
        first.sendall(http_request("/v1/completions", completion_body(2000, stream=False)))
        self.wait_running(1)
        second = socket.create_connection(("127.0.0.1", self.server.http_port))
        second.sendall(http_request("/v1/completions", completion_body(2000)))
        self.wait_running(1, 1)
        second.close()
        self.wait_running(1, 0, timeout=1)
        first.close()
        self.assert_idle_within_a_second(time.monotonic())


class GrpcPortTest(unittest.TestCase):
    def test_a_second_server_on_a_busy_grpc_port_fails_naming_it(self):
        with Server() as first:
            proc = subprocess.run(
                [KVSERVE_BIN, "serve", "--grpc-port", str(first.port), "--http-port", "0",
                 "--host", "127.0.0.1", "--kv-cache-memory", "64MiB"],
                capture_output=True, text=True, timeout=60)
            self.assertNotEqual(proc.returncode, 0, proc.stderr)
            self.assertIn(f"127.0.0.1:{first.port}", proc.stderr)
            self.assertNotIn("ready: serving", proc.stderr)


if __name__ == "__main__":
    unittest.main()
