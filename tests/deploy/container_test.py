"""The container image, built and run with podman (ctest label `container`).

Builds the top-level Dockerfile with podman from a local debian:bookworm-slim made by
debootstrap (base_image.sh; see ../shared/notes/containers.md), runs it with published ports,
streams a Generate from the host, checks /metrics, /health and the HEALTHCHECK, then sends
SIGTERM during a stream: the stream completes and the container exits 0. Prints the image size.
Installs nothing (scripts/install-deps.sh installs podman, buildah, debootstrap, runc).
"""
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.request
import uuid

import grpc

import health_pb2
import health_pb2_grpc
from deploy_common import SOURCE, free_port, parse_metrics
from kvserve.v1 import generation_pb2 as pb
from kvserve.v1 import generation_pb2_grpc as pb_grpc
from server_harness import collect, greedy_request

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = os.environ.get("KVSERVE_TEST_IMAGE", "localhost/kvserve:test")
ENV = dict(os.environ, CONTAINERS_CONF=os.path.join(HERE, "containers.conf"))


def podman(*args, check=True, timeout=120, **kwargs):
    out = subprocess.run(["podman", *args], env=ENV, capture_output=True, text=True,
                         timeout=timeout, **kwargs)
    if check and out.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({out.returncode}):\n"
                             f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def log(message):
    print(f"[container_test] {message}", file=sys.stderr, flush=True)


class ContainerTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        start = time.monotonic()
        subprocess.run(["bash", os.path.join(HERE, "base_image.sh")], env=ENV, check=True,
                       timeout=600)
        log(f"base image ready in {time.monotonic() - start:.0f} s")
        start = time.monotonic()
        if os.environ.get("KVSERVE_TEST_IMAGE_PREBUILT"):  # iterating on the test itself
            cls.inspect()
            return
        # --format docker keeps HEALTHCHECK (OCI images have no such field). Layers are cached
        # by podman: an unchanged source tree rebuilds in seconds.
        build = subprocess.run(
            ["podman", "build", "--format", "docker", "--layers", "-t", IMAGE,
             "-f", os.path.join(SOURCE, "Dockerfile"), SOURCE],
            env=ENV, capture_output=True, text=True, timeout=1500)
        if build.returncode != 0:
            raise AssertionError("podman build failed:\n" + build.stdout[-6000:] +
                                 build.stderr[-3000:])
        log(f"image built in {time.monotonic() - start:.0f} s")
        # Keep this build's stages as the layer cache of the next run (tagging the build stage
        # is a cache hit), and drop the untagged images earlier runs left (~1 GB each).
        podman("build", "--format", "docker", "--layers", "--target", "build",
               "-t", IMAGE + "-build", "-f", os.path.join(SOURCE, "Dockerfile"), SOURCE,
               timeout=600)
        podman("image", "prune", "-f", check=False)
        cls.inspect()

    @classmethod
    def inspect(cls):
        inspect = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
        cls.image_size = inspect["Size"]
        cls.image_config = inspect["Config"]
        cls.healthcheck = inspect.get("Healthcheck") or {}
        log(f"image {IMAGE}: {cls.image_size / 1e6:.1f} MB")

    def setUp(self):
        self.name = f"kvserve-test-{uuid.uuid4().hex[:8]}"
        self.grpc_port, self.http_port = free_port(), free_port()

    def tearDown(self):
        podman("rm", "-f", "-v", self.name, check=False)

    def run_container(self, *flags):
        podman("run", "-d", "--name", self.name,
               "-p", f"127.0.0.1:{self.grpc_port}:50051", "-p", f"127.0.0.1:{self.http_port}:8080",
               IMAGE, "--kv-cache-memory", "64MiB", "--weight-dtype", "f32", *flags)
        channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        self.addCleanup(channel.close)
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 120
        while True:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            state = podman("inspect", "--format", "{{.State.Status}}", self.name).stdout.strip()
            if state != "running" or time.monotonic() > deadline:
                self.fail(f"container {state}, not serving:\n" +
                          podman("logs", self.name, check=False).stderr[-3000:])
            time.sleep(0.5)
        return pb_grpc.GenerationStub(channel)

    def http_get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}",
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_image_metadata(self):
        config = self.image_config
        self.assertEqual(config["Entrypoint"], ["/usr/local/bin/kvserve", "serve"])
        self.assertEqual(config["User"], "kvserve")
        self.assertEqual(set(config["ExposedPorts"]), {"50051/tcp", "8080/tcp"})
        self.assertIn("KVSERVE_CACHE=/cache", config["Env"])
        self.assertEqual(self.healthcheck["Test"][:4],
                         ["CMD", "kvserve", "health", "--target"])

    def test_serve_stream_metrics_health_and_sigterm_drain(self):
        stub = self.run_container("--debug-step-delay-ms", "20")
        # Runs as the non-root user.
        uid = podman("exec", self.name, "id", "-u").stdout.strip()
        self.assertEqual(uid, "10001")

        # With no --model, the image serves the default model it ships (trained on War and Peace).
        info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        self.assertEqual((info.name, info.demo, info.vocab_size), ("kvserve-demo", True, 4096))

        # A Generate streamed from the host through the published port.
        ids, text, last = collect(stub.Generate(greedy_request(16, prompt="container"),
                                                timeout=60))
        self.assertEqual(len(ids), 16)
        self.assertEqual(last.finish_reason, pb.FINISH_REASON_LENGTH)

        status, body = self.http_get("/metrics")
        self.assertEqual(status, 200)
        metrics = parse_metrics(body)
        self.assertGreaterEqual(metrics.value("kvserve_generation_tokens_total"), 16)
        self.assertEqual(metrics.value("kvserve_grpc_requests_total", method="Generate",
                                       code="OK"), 1)
        self.assertEqual(self.http_get("/health")[0], 200)

        # The image's HEALTHCHECK (kvserve health) passes, and so does calling it by hand.
        check = podman("healthcheck", "run", self.name, check=False)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        exec_health = podman("exec", self.name, "kvserve", "health", "--target",
                             "127.0.0.1:50051", check=False)
        self.assertEqual(exec_health.returncode, 0, exec_health.stderr)
        self.assertIn("SERVING", exec_health.stderr)

        # SIGTERM during a stream: kvserve (PID 1, exec-form entrypoint) drains, the stream
        # completes, the container exits 0.
        tokens = 150
        stream = stub.Generate(greedy_request(tokens, prompt="drain me"), timeout=120)
        first = next(stream)
        podman("kill", "--signal", "TERM", self.name)
        ids, _, last = collect(stream)
        self.assertEqual(len(first.token_ids) + len(ids), tokens)
        self.assertEqual(last.finish_reason, pb.FINISH_REASON_LENGTH)
        exit_code = podman("wait", self.name, timeout=90).stdout.strip()
        logs = podman("logs", self.name, check=False).stderr
        self.assertEqual(exit_code, "0", logs[-3000:])
        self.assertIn("SIGTERM: draining", logs)
        self.assertIn("stopped", logs)


if __name__ == "__main__":
    unittest.main()
