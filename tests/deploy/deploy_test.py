"""Deployment tests that run without containers: `kvserve health`, the Kubernetes manifests
(rendered with kubectl kustomize), the Prometheus rules against a live scrape, and nginx
balancing gRPC over three kvserve replicas. Each TestCase class is one ctest test.
"""
import concurrent.futures
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

import grpc
import yaml

from deploy_common import (DEPLOY, SOURCE, HttpServer, exported_metric_names, free_port,
                           kvserve_flags, parse_metrics, promql_metric_names)
from kvserve.v1 import generation_pb2 as pb
from kvserve.v1 import generation_pb2_grpc as pb_grpc
from server_harness import KVSERVE_BIN, Server, collect, greedy_request


def run_health(*args, timeout=30):
    return subprocess.run([KVSERVE_BIN, "health", *args], capture_output=True, text=True,
                          timeout=timeout)


class HealthCommandTest(unittest.TestCase):
    """`kvserve health` against a serving server, a draining one and a dead port."""

    def test_serving_draining_and_dead_port(self):
        with Server("--debug-step-delay-ms", "20") as server:
            ok = run_health("--target", server.address)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            self.assertEqual(ok.stderr.strip().splitlines(),
                             [f"kvserve health: {server.address}: SERVING"])
            ok = run_health("--target", server.address, "--service", "kvserve.v1.Generation")
            self.assertEqual(ok.returncode, 0, ok.stderr)
            unknown = run_health("--target", server.address, "--service", "no.such.Service")
            self.assertEqual(unknown.returncode, 1)
            self.assertIn("RPC failed (code 5", unknown.stderr)  # NOT_FOUND

            # Draining: a stream holds the server up after SIGTERM; health says NOT_SERVING.
            stream = server.stub.Generate(greedy_request(100, prompt="drain"), timeout=60)
            first = next(stream)
            server.proc.send_signal(signal.SIGTERM)
            self.assertIsNotNone(server.wait_for_line(r"draining", 10))
            draining = run_health("--target", server.address)
            self.assertEqual(draining.returncode, 1, draining.stderr)
            self.assertIn("NOT_SERVING", draining.stderr)
            ids, _, last = collect(stream)
            self.assertEqual(len(first.token_ids) + len(ids), 100)
            self.assertEqual(server.proc.wait(timeout=30), 0)

        dead = f"127.0.0.1:{free_port()}"
        start = time.monotonic()
        down = run_health("--target", dead, "--timeout", "3")
        self.assertEqual(down.returncode, 1)
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(len(down.stderr.strip().splitlines()), 1, down.stderr)
        self.assertIn(f"kvserve health: {dead}: RPC failed (code 14", down.stderr)  # UNAVAILABLE


def kubectl():
    return os.environ.get("KVSERVE_KUBECTL") or shutil.which("kubectl") or "kubectl"


def render_kustomize(folder="kubernetes"):
    out = subprocess.run([kubectl(), "kustomize", os.path.join(DEPLOY, folder)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def read_flagfile(text):
    flags = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"--([a-z0-9_]+)=(.*)", line)
        assert m, f"flagfile line {line!r} is not --name=value"
        flags[m[1]] = m[2]
    return flags


def parse_bytes(text):
    m = re.fullmatch(r"([0-9.]+)\s*([KMG]i?)?B?", text)
    assert m, text
    scale = {None: 1, "K": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return float(m[1]) * scale[m[2]]


def dashboard_exprs():
    with open(os.path.join(DEPLOY, "grafana", "kvserve-dashboard.json")) as f:
        dashboard = json.load(f)
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def rules():
    with open(os.path.join(DEPLOY, "prometheus", "rules.yml")) as f:
        return [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]


class ManifestTest(unittest.TestCase):
    """deploy/kubernetes renders with kubectl kustomize and says what kvserve really does."""

    @classmethod
    def setUpClass(cls):
        cls.objects = render_kustomize()
        cls.by_kind = {}
        for o in cls.objects:
            cls.by_kind.setdefault(o["kind"], []).append(o)
        cls.deployment = cls.by_kind["Deployment"][0]
        cls.pod = cls.deployment["spec"]["template"]
        cls.container = cls.pod["spec"]["containers"][0]
        cls.ports = {p["name"]: p["containerPort"] for p in cls.container["ports"]}
        configmap = next(o for o in cls.by_kind["ConfigMap"]
                         if o["metadata"]["name"].startswith("kvserve-flags"))
        cls.configmap = configmap
        cls.flags = read_flagfile(configmap["data"]["flags"])

    def test_yamllint_passes(self):
        out = subprocess.run(["yamllint", "-c", os.path.join(DEPLOY, ".yamllint.yaml"), DEPLOY],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_objects_present(self):
        for kind in ("Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler",
                     "PodDisruptionBudget", "PodMonitor", "PersistentVolumeClaim"):
            self.assertIn(kind, self.by_kind)

    def test_ports_and_grpc_probes(self):
        self.assertEqual(self.ports, {"grpc": 50051, "http": 8080})
        self.assertEqual(self.flags["grpc_port"], "50051")
        self.assertEqual(self.flags["http_port"], "8080")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertEqual(self.container[probe]["grpc"]["port"], 50051, probe)
        # Liveness must not kill a draining pod (health is NOT_SERVING while it drains).
        live = self.container["livenessProbe"]
        drain = float(self.flags["drain_timeout"])
        self.assertGreater(live["periodSeconds"] * live["failureThreshold"], drain)

    def test_tls_overlay_mounts_the_secret_and_probes_over_tls(self):
        objects = render_kustomize("kubernetes-tls")
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        secret = next(v for v in pod["volumes"] if v.get("secret"))
        self.assertEqual(secret["secret"]["secretName"], "kvserve-tls")
        mount = next(m for m in container["volumeMounts"] if m["name"] == secret["name"])
        self.assertTrue(mount["readOnly"])
        args = dict(a[2:].split("=", 1) for a in container["args"])
        self.assertEqual(args["tls_cert"], mount["mountPath"] + "/tls.crt")
        self.assertEqual(args["tls_key"], mount["mountPath"] + "/tls.key")
        self.assertIn("flagfile", args)
        real = kvserve_flags()
        self.assertLessEqual(set(args), real)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = container[probe]["exec"]["command"]
            self.assertEqual(command[:2], ["kvserve", "health"], probe)
            self.assertIn(mount["mountPath"] + "/ca.crt", command)
            self.assertLessEqual({c[2:] for c in command if c.startswith("--")}, real)
        # Everything else is the base's.
        self.assertEqual(len(objects), len(self.objects))

    def test_termination_grace_covers_the_drain(self):
        grace = self.pod["spec"]["terminationGracePeriodSeconds"]
        pre_stop = self.container["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre_stop[0], "sleep")
        self.assertGreater(grace, float(self.flags["drain_timeout"]) + float(pre_stop[1]))

    def test_flags_configmap_is_mounted_and_names_real_flags(self):
        self.assertIn("--flagfile=/etc/kvserve/flags", self.container["args"])
        volume = next(v for v in self.pod["spec"]["volumes"] if v.get("configMap"))
        # kustomize rewrote the reference to the hashed ConfigMap name.
        self.assertEqual(volume["configMap"]["name"], self.configmap["metadata"]["name"])
        mount = next(m for m in self.container["volumeMounts"] if m["name"] == volume["name"])
        self.assertEqual(mount["mountPath"], "/etc/kvserve")
        self.assertLessEqual(set(self.flags), kvserve_flags())

    def test_resources_sized_from_the_model_and_kv_cache(self):
        res = self.container["resources"]
        self.assertEqual(res["requests"]["cpu"], res["limits"]["cpu"])
        requested = parse_bytes(res["requests"]["memory"])
        # The documented example: 1.24e9 parameters of bf16 weights + the KV cache.
        self.assertEqual(self.flags["weight_dtype"], "bf16")
        weights = 1.24e9 * 2
        self.assertGreaterEqual(requested, weights + parse_bytes(self.flags["kv_cache_memory"]))
        self.assertGreaterEqual(parse_bytes(res["limits"]["memory"]), requested)
        omp = next(e for e in self.container["env"] if e["name"] == "OMP_NUM_THREADS")
        self.assertEqual(omp["valueFrom"]["resourceFieldRef"]["resource"], "limits.cpu")

    def test_model_and_cache_volumes(self):
        mounts = {m["mountPath"]: m for m in self.container["volumeMounts"]}
        self.assertTrue(mounts["/models"]["readOnly"])
        self.assertIn("/cache", mounts)
        env = {e["name"]: e.get("value") for e in self.container["env"]}
        self.assertEqual(env["KVSERVE_CACHE"], "/cache")
        self.assertTrue(self.flags["model"].startswith("/models/"))

    def test_services_select_the_pods(self):
        labels = self.pod["metadata"]["labels"]
        services = {s["metadata"]["name"]: s for s in self.by_kind["Service"]}
        self.assertEqual(services["kvserve-headless"]["spec"]["clusterIP"], "None")
        self.assertEqual(services["kvserve"]["spec"].get("type", "ClusterIP"), "ClusterIP")
        for s in services.values():
            self.assertLessEqual(s["spec"]["selector"].items(), labels.items())
            for p in s["spec"]["ports"]:
                self.assertEqual(self.ports[p["targetPort"]], p["port"])
        self.assertEqual({p["name"] for p in services["kvserve"]["spec"]["ports"]},
                         {"grpc", "http"})
        for kind in ("PodDisruptionBudget", "PodMonitor"):
            selector = self.by_kind[kind][0]["spec"]["selector"]["matchLabels"]
            self.assertLessEqual(selector.items(), labels.items(), kind)
        self.assertLessEqual(self.deployment["spec"]["selector"]["matchLabels"].items(),
                             labels.items())

    def test_scrape_settings(self):
        annotations = self.pod["metadata"]["annotations"]
        self.assertEqual(annotations["prometheus.io/scrape"], "true")
        self.assertEqual(int(annotations["prometheus.io/port"]), self.ports["http"])
        self.assertEqual(annotations["prometheus.io/path"], "/metrics")
        endpoint = self.by_kind["PodMonitor"][0]["spec"]["podMetricsEndpoints"][0]
        self.assertIn(endpoint["port"], self.ports)
        self.assertEqual(endpoint["path"], "/metrics")

    def test_hpa_and_adapter_rule_and_every_metric_name_are_exported(self):
        hpa = self.by_kind["HorizontalPodAutoscaler"][0]
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"],
                         self.deployment["metadata"]["name"])
        metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
        self.assertEqual(metric, "kvserve_requests_waiting")
        adapter = next(o for o in self.by_kind["ConfigMap"]
                       if o["metadata"]["name"] == "prometheus-adapter")
        rule = yaml.safe_load(adapter["data"]["config.yaml"])["rules"][0]
        self.assertEqual(rule["name"]["as"], metric)
        self.assertTrue(rule["seriesQuery"].startswith(metric + "{"))

        # Every metric the manifests, rules and dashboard name, against a live /metrics.
        names = {metric} | promql_metric_names(rule["seriesQuery"])
        for r in rules():
            names |= promql_metric_names(r["expr"])
        for expr in dashboard_exprs():
            names |= promql_metric_names(expr)
        self.assertGreaterEqual(len(names), 12)
        with HttpServer() as server:
            collect(server.stub.Generate(greedy_request(4, prompt="hi"), timeout=30))
            server.get("/metrics")
            exported = exported_metric_names(server.metrics())
        self.assertEqual(sorted(names - exported), [])


class MonitoringTest(unittest.TestCase):
    """deploy/prometheus: promtool, then Debian's Prometheus scraping a live kvserve through
    the checked-in scrape job and evaluating every rule."""

    def test_rules_and_scrape_config_against_a_live_kvserve(self):
        rules_path = os.path.join(DEPLOY, "prometheus", "rules.yml")
        out = subprocess.run(["promtool", "check", "rules", rules_path], capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

        with HttpServer() as server, tempfile.TemporaryDirectory() as tmp:
            for n in (3, 5):
                collect(server.stub.Generate(greedy_request(n, prompt="scrape"), timeout=30))
            with open(os.path.join(DEPLOY, "prometheus", "prometheus.yml")) as f:
                config = yaml.safe_load(f)
            config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
            config["rule_files"] = [rules_path]
            job = next(j for j in config["scrape_configs"] if j["job_name"] == "kvserve")
            # Debian's Prometheus has no Kubernetes discovery: a static target carrying the
            # labels discovery would attach, so the job's relabeling runs as on a cluster
            # (the address port is replaced by the prometheus.io/port annotation).
            del job["kubernetes_sd_configs"]
            job["static_configs"] = [{"targets": ["127.0.0.1:9"], "labels": {
                "__meta_kubernetes_pod_label_app_kubernetes_io_name": "kvserve",
                "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
                "__meta_kubernetes_pod_annotation_prometheus_io_port": str(server.http_port),
                "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
                "__meta_kubernetes_namespace": "test",
                "__meta_kubernetes_pod_name": "kvserve-0"}}]
            config_path = os.path.join(tmp, "prometheus.yml")
            with open(config_path, "w") as f:
                yaml.safe_dump(config, f)
            out = subprocess.run(["promtool", "check", "config", config_path],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

            port = free_port()
            log_file = open(os.path.join(tmp, "log"), "w")
            self.addCleanup(log_file.close)
            prometheus = subprocess.Popen(
                ["prometheus", f"--config.file={config_path}",
                 f"--storage.tsdb.path={tmp}/data", f"--web.listen-address=127.0.0.1:{port}",
                 "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=log_file)
            try:
                api = f"http://127.0.0.1:{port}/api/v1"

                def get(path, **params):
                    url = api + path + ("?" + urllib.parse.urlencode(params) if params else "")
                    with urllib.request.urlopen(url, timeout=10) as r:
                        return json.load(r)

                def query(expr):
                    return get("/query", query=expr)

                deadline = time.monotonic() + 60
                while True:
                    try:
                        up = query('up{job="kvserve"}')["data"]["result"]
                        if up and up[0]["value"][1] == "1":
                            break
                    except OSError:
                        pass
                    with open(f"{tmp}/log") as f:
                        self.assertLess(time.monotonic(), deadline, f.read())
                    time.sleep(0.5)
                # The relabeling put the pod's labels and the annotated port on the target.
                self.assertEqual(up[0]["metric"]["pod"], "kvserve-0")
                self.assertEqual(up[0]["metric"]["namespace"], "test")
                self.assertEqual(up[0]["metric"]["instance"], f"127.0.0.1:{server.http_port}")

                # A few more scrapes so rate() and deriv() have points, with traffic between.
                collect(server.stub.Generate(greedy_request(8, prompt="more"), timeout=30))
                time.sleep(4)
                for rule in rules():
                    name = rule.get("alert") or rule["record"]
                    result = query(rule["expr"])
                    self.assertEqual(result["status"], "success", (name, result))
                    # The series the expression selects exist in the scrape.
                    for metric in promql_metric_names(rule["expr"]):
                        series = query(f"count({metric})")["data"]["result"]
                        self.assertTrue(series, f"{name}: no series {metric} scraped")
                # Prometheus itself evaluated every rule without error.
                deadline = time.monotonic() + 20
                while True:
                    groups = get("/rules")["data"]["groups"]
                    loaded = [r for g in groups for r in g["rules"]]
                    if len(loaded) == len(rules()) and all(
                            r.get("lastEvaluation", "").startswith("20") for r in loaded):
                        break
                    self.assertLess(time.monotonic(), deadline, groups)
                    time.sleep(0.5)
                for r in loaded:
                    self.assertEqual(r["health"], "ok", r)
                # A recording rule produced data from the live scrape.
                tokens = query("job:kvserve_generation_tokens:rate1m")["data"]["result"]
                self.assertTrue(tokens)
            finally:
                prometheus.terminate()
                prometheus.wait(timeout=30)


def render_nginx(conf_text, listen_port, replica_ports):
    """The checked-in config with its upstream and listen blocks replaced."""
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;"
                        for p in replica_ports)
    conf_text, n = re.subn(r"# BEGIN replicas\n.*?# END replicas", servers, conf_text, flags=re.S)
    assert n == 1
    conf_text, n = re.subn(r"# BEGIN listen\n.*?# END listen",
                           f"listen 127.0.0.1:{listen_port} http2;", conf_text, flags=re.S)
    assert n == 1
    return conf_text


def streams_with_a_kill(test, stub, replicas, count, tokens, victim):
    """Runs `count` streams of `tokens` tokens through `stub`; once every stream has its first
    token, reads each replica's kvserve_requests_running and SIGKILLs `victim`. Returns
    (running per replica at the kill, [(status code, details, tokens received)])."""
    first_tokens = threading.Semaphore(0)

    def stream(i):
        received = 0
        try:
            for m in stub.Generate(greedy_request(tokens, prompt=f"stream {i}"), timeout=120):
                if received == 0:
                    first_tokens.release()
                received += len(m.token_ids)
            return grpc.StatusCode.OK, "", received
        except grpc.RpcError as e:
            return e.code(), e.details(), received

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(stream, i) for i in range(count)]
        for _ in range(count):
            test.assertTrue(first_tokens.acquire(timeout=60), "a stream never started")
        running = [int(r.metrics().value("kvserve_requests_running")) for r in replicas]
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        return running, [f.result(timeout=120) for f in futures]


def generate_ok(replicas):
    return [r.metrics().value("kvserve_grpc_requests_total", method="Generate", code="OK")
            for r in replicas]


class ReplicaTest(unittest.TestCase):
    """Three replicas behind nginx (deploy/nginx): streams spread over all of them, and killing
    one mid-run fails only the streams it was serving; new requests go to the survivors. Then
    the same kill under client-side balancing (what the headless Service is for)."""

    STREAMS = 60
    TOKENS = 100

    def check_kill(self, running, results, victim_index, failure_codes):
        self.assertEqual(sum(running), len(results), running)
        # Each replica was serving some streams (per its own /metrics).
        self.assertTrue(all(n > 0 for n in running), running)
        failed = [r for r in results if r[0] != grpc.StatusCode.OK]
        # Exactly the victim's streams fail, mid-stream; every other one completes.
        self.assertEqual(len(failed), running[victim_index], results)
        self.assertEqual({(code, details) for code, details, _ in failed}, failure_codes)
        self.assertTrue(all(0 < n < self.TOKENS for _, _, n in failed), failed)
        done = [n for code, _, n in results if code == grpc.StatusCode.OK]
        self.assertEqual(done, [self.TOKENS] * (len(results) - running[victim_index]))

    def test_nginx_spreads_streams_and_survives_a_replica_kill(self):
        replicas = [HttpServer("--debug-step-delay-ms", "40") for _ in range(3)]
        tmp = tempfile.mkdtemp()
        nginx = None
        try:
            listen = free_port()
            with open(os.path.join(DEPLOY, "nginx", "nginx.conf")) as f:
                conf = render_nginx(f.read(), listen, [r.port for r in replicas])
            with open(os.path.join(tmp, "nginx.conf"), "w") as f:
                f.write(conf)
            nginx = subprocess.Popen(["nginx", "-p", tmp, "-c", "nginx.conf", "-e", "stderr",
                                      "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            channel = grpc.insecure_channel(f"127.0.0.1:{listen}")
            grpc.channel_ready_future(channel).result(timeout=20)
            stub = pb_grpc.GenerationStub(channel)

            running, results = streams_with_a_kill(self, stub, replicas, self.STREAMS,
                                                   self.TOKENS, replicas[0])
            # nginx cannot send gRPC trailers once the response has started: it resets the
            # client's stream (RST_STREAM INTERNAL_ERROR), which gRPC reports as INTERNAL.
            self.check_kill(running, results, 0, {
                (grpc.StatusCode.INTERNAL, "Received RST_STREAM with error code 2")})

            # New requests after the kill all succeed, on the survivors.
            survivors = replicas[1:]
            ok_before = generate_ok(survivors)
            new = 12
            with concurrent.futures.ThreadPoolExecutor(new) as p:
                after = list(p.map(
                    lambda i: collect(stub.Generate(greedy_request(5, prompt=f"after {i}"),
                                                    timeout=60))[0], range(new)))
            self.assertEqual([len(ids) for ids in after], [5] * new)
            gained = [b - a for a, b in zip(ok_before, generate_ok(survivors))]
            self.assertEqual(sum(gained), new)
            self.assertTrue(all(g > 0 for g in gained), gained)
            channel.close()

            # Client-side balancing over the replicas' own addresses (a replacement joins):
            # the lost replica's streams end UNAVAILABLE, the others complete.
            replicas.append(HttpServer("--debug-step-delay-ms", "40"))
            live = replicas[1:]
            channel = grpc.insecure_channel(
                "ipv4:" + ",".join(f"127.0.0.1:{r.port}" for r in live),
                options=[("grpc.lb_policy_name", "round_robin")])
            stub = pb_grpc.GenerationStub(channel)
            # round_robin only picks connected replicas: wait until calls reach all three.
            deadline = time.monotonic() + 20
            while not all(r.metrics().value("kvserve_grpc_requests_total",
                                            method="GetServerInfo") > 0 for r in live):
                self.assertLess(time.monotonic(), deadline, "round_robin never reached all")
                for _ in range(3):
                    stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10)
            running, results = streams_with_a_kill(self, stub, live, 30, self.TOKENS, live[0])
            self.check_kill(running, results, 0, {(code, d) for code, d, _ in results
                                                   if code != grpc.StatusCode.OK})
            self.assertEqual({code for code, _, _ in results if code != grpc.StatusCode.OK},
                             {grpc.StatusCode.UNAVAILABLE})
            channel.close()
        finally:
            if nginx is not None:
                nginx.terminate()
                nginx.wait(timeout=10)
            for r in replicas:
                r.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
