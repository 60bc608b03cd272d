"""Starts the real `kvserve serve` binary on free loopback ports for integration tests.

Server(...) listens for gRPC on `port` and for HTTP (/metrics, /health, the HTTP API) on
`http_port`, both picked by the kernel; `http_get(path)` fetches from the HTTP port.

With `tls=TlsClient(...)` the harness speaks TLS to both ports (the server's --tls-* flags are
the caller's).

Environment (set by ctest): KVSERVE_BIN (the kvserve binary), PYTHONPATH containing the
generated stubs, KVSERVE_CACHE (where the demo model file is written).
"""
import http.client
import os
import ssl
import re
import signal
import subprocess
import threading
import time

import grpc

import health_pb2
import health_pb2_grpc
from kvserve.v1 import generation_pb2 as pb
from kvserve.v1 import generation_pb2_grpc as pb_grpc

KVSERVE_BIN = os.environ.get("KVSERVE_BIN", "kvserve")
# What AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer print when they find
# something (scripts/sanitize.sh builds kvserve with them).
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|: runtime error: ")


class TlsClient:
    """How the harness's own clients speak TLS: the CA that signed the server's certificate and,
    for mutual TLS, a client certificate and key (PEM file names)."""

    def __init__(self, ca, cert=None, key=None):
        self.ca, self.cert, self.key = ca, cert, key

    def grpc_credentials(self):
        def read(path):
            with open(path, "rb") as f:
                return f.read()
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca),
            private_key=read(self.key) if self.key else None,
            certificate_chain=read(self.cert) if self.cert else None)

    def ssl_context(self):
        context = ssl.create_default_context(cafile=self.ca)
        if self.cert:
            context.load_cert_chain(self.cert, self.key)
        return context


class Server:
    """One `kvserve serve` process. Use as a context manager or call stop()."""

    def __init__(self, *flags, ready_timeout=60, tls=None, default_model=False):
        """Without --model in `flags`, serves the random-weight test model (--model demo:random:
        byte vocabulary, context 2048, f32 weights, 64 MiB of KV cache), or with `default_model`
        the trained default model with the default settings (no --model, no weight or KV flag)."""
        self.tls = tls
        self._reported = False
        if "--model" not in flags and not default_model:
            flags = ("--model", "demo:random", *flags)
        self.lines = []
        self._cond = threading.Condition()
        args = [KVSERVE_BIN, "serve", "--grpc-port", "0", "--http-port", "0", "--host", "127.0.0.1"]
        if not default_model:  # the default model runs with every other default, too
            args += ["--kv-cache-memory", "64MiB", "--weight-dtype", "f32"]
        args += list(flags)
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     text=True)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.port = int(self.wait_for_line(r"gRPC listening on 127\.0\.0\.1:(\d+)",
                                           ready_timeout)[1])
        self.http_port = int(self.wait_for_line(r"HTTP listening on 127\.0\.0\.1:(\d+)",
                                                ready_timeout)[1])
        self.http_address = f"127.0.0.1:{self.http_port}"
        self.wait_for_line(r"ready: serving", ready_timeout)
        self.model_path = None
        if "demo:random" in flags:
            self.model_path = self.wait_for_line(r"built-in demo model .* from (\S+);", 5)[1]
        elif "--model" not in flags:
            self.model_path = self.wait_for_line(r"serving the default model .* from (\S+);", 5)[1]
        self.address = f"127.0.0.1:{self.port}"
        if tls is None:
            self.channel = grpc.insecure_channel(self.address)
        else:
            self.channel = grpc.secure_channel(self.address, tls.grpc_credentials())
        self.stub = pb_grpc.GenerationStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def _read_stderr(self):
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for_line(self, pattern, timeout):
        """Returns the first match of `pattern` in the log, waiting up to `timeout` seconds."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = regex.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    if self.proc.poll() is not None:
                        raise RuntimeError("kvserve exited: " + "\n".join(self.lines))
                    return None
                self._cond.wait(left)

    def http_get(self, path, timeout=10):
        """(status, body text) of GET http://127.0.0.1:http_port/path."""
        if self.tls is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        else:
            conn = http.client.HTTPSConnection("127.0.0.1", self.http_port, timeout=timeout,
                                               context=self.tls.ssl_context())
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8")
        finally:
            conn.close()

    def server_info(self):
        return self.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=5)

    def health_status(self, service=""):
        return self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status

    def wait_idle(self, timeout=1.0):
        """Polls GetServerInfo until nothing runs or waits and every page is free."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.server_info()
            if (info.running_requests == 0 and info.waiting_requests == 0
                    and info.free_kv_pages == info.total_kv_pages):
                return info
            if time.monotonic() > deadline:
                return info
            time.sleep(0.02)

    def stop(self):
        # Close our connection first: gRPC's shutdown otherwise waits out its grace period (5 s)
        # for the idle client connection.
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        # A sanitized build (scripts/sanitize.sh) reports on stderr and, for leaks, at exit:
        # any such report fails the test that started this server.
        reports = [i for i, line in enumerate(self.lines) if SANITIZER_REPORT.search(line)]
        if reports and not self._reported:
            self._reported = True
            first = reports[0]
            raise AssertionError("kvserve's sanitizer report:\n" +
                                 "\n".join(self.lines[first:first + 60]))
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def greedy_request(max_tokens, prompt=None, ids=None, **kwargs):
    """A greedy GenerateRequest that ignores EOS, so its length is known."""
    r = pb.GenerateRequest(max_tokens=max_tokens, ignore_eos=True,
                           sampling=pb.SamplingParams(temperature=0), **kwargs)
    if ids is not None:
        r.prompt_token_ids.ids.extend(ids)
    else:
        r.prompt = prompt
    return r


def collect(responses):
    """(token ids, concatenated text, last message) of a finished stream."""
    ids, text, last = [], [], None
    for m in responses:
        ids.extend(m.token_ids)
        text.append(m.text)
        last = m
    return ids, "".join(text), last
