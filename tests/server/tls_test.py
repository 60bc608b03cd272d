"""TLS on both ports of the real `kvserve serve`, with throwaway certificates made by `openssl` in
a temporary folder (no key is ever committed):

- TlsTest: Python grpcio with ssl_channel_credentials, curl --cacert, the npm `openai` client with
  a custom CA, `kvserve health --tls-ca`; plain HTTP and insecure gRPC are refused; then the
  certificates are rotated on SIGHUP while a gRPC stream and an SSE stream are in flight: both
  complete, and new connections get the new certificate on both ports.
- MutualTlsTest: --tls-client-ca: a client with a certificate the CA signed is served (grpcio, curl,
  `kvserve health`), one without is refused.

Each TestCase class is one ctest test (labels http grpc).
"""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import grpc

from kvserve.v1 import generation_pb2 as pb
from kvserve.v1 import generation_pb2_grpc as pb_grpc
from server_harness import KVSERVE_BIN, Server, TlsClient, collect, greedy_request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Certificates:
    """A CA and certificates it signs, in `folder` (EC P-256, valid one day)."""

    def __init__(self, folder, name):
        self.folder, self.name = folder, name
        self.ca = self.path("ca.pem")
        self.ca_key = self.path("ca.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-days", "1",
                "-subj", f"/CN=kvserve test CA {name}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)

    def path(self, leaf):
        return os.path.join(self.folder, f"{self.name}-{leaf}")

    def issue(self, leaf, extensions):
        """(certificate, key) file names of a new certificate with `extensions` (x509v3 lines)."""
        cert, key, csr, ext = (self.path(f"{leaf}.pem"), self.path(f"{leaf}.key"),
                               self.path(f"{leaf}.csr"), self.path(f"{leaf}.ext"))
        with open(ext, "w") as f:
            f.write("\n".join(extensions) + "\n")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN=kvserve {leaf}", cwd=self.folder)
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                "-CAcreateserial", "-days", "1", "-out", cert, "-extfile", ext, cwd=self.folder)
        return cert, key

    def server(self):
        return self.issue("server", ["subjectAltName=DNS:localhost,IP:127.0.0.1",
                                     "extendedKeyUsage=serverAuth"])

    def client(self):
        return self.issue("client", ["extendedKeyUsage=clientAuth"])


def curl(*args):
    return subprocess.run(["curl", "--silent", "--show-error", "--max-time", "20", *args],
                          capture_output=True, text=True, timeout=30)


def run_health(*args):
    return subprocess.run([KVSERVE_BIN, "health", *args], capture_output=True, text=True,
                          timeout=30)


def clients_dir():
    out = subprocess.run([os.path.join(SOURCE, "scripts", "install-http-clients.sh")],
                         check=True, capture_output=True, text=True, timeout=600)
    return out.stdout.strip().splitlines()[-1]


class TlsTest(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="kvserve-tls-")
        self.addCleanup(shutil.rmtree, self.folder, True)
        self.first = Certificates(self.folder, "first")
        cert, key = self.first.server()
        # The server reads these two names; rotation replaces their contents.
        self.cert, self.key = os.path.join(self.folder, "tls.crt"), os.path.join(self.folder, "tls.key")
        shutil.copy(cert, self.cert)
        shutil.copy(key, self.key)

    def test_clients_and_rotation(self):
        with Server("--tls-cert", self.cert, "--tls-key", self.key, "--debug-step-delay-ms", "20",
                    tls=TlsClient(self.first.ca)) as server:
            self.assertIsNotNone(server.wait_for_line(r"gRPC listening on .* with TLS", 1))
            base = f"https://127.0.0.1:{server.http_port}"
            # grpcio with ssl_channel_credentials (the harness's channel).
            ids, _, _ = collect(server.stub.Generate(greedy_request(5, prompt="tls"), timeout=30))
            self.assertEqual(len(ids), 5)
            # Insecure gRPC is refused.
            with grpc.insecure_channel(server.address) as plain:
                with self.assertRaises(grpc.RpcError):
                    pb_grpc.GenerationStub(plain).GetModelInfo(pb.GetModelInfoRequest(), timeout=3)
            # curl --cacert; plain HTTP gets no answer.
            out = curl("--cacert", self.first.ca, f"{base}/health")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(json.loads(out.stdout), {"status": "serving"})
            out = curl("--cacert", self.first.ca, f"{base}/v1/completions", "-d",
                       json.dumps({"prompt": "hi", "max_tokens": 3, "ignore_eos": True}))
            self.assertEqual(json.loads(out.stdout)["usage"]["completion_tokens"], 3, out.stdout)
            self.assertNotEqual(curl(f"http://127.0.0.1:{server.http_port}/health").returncode, 0)
            self.assertNotEqual(curl(f"{base}/health").returncode, 0)  # an unknown CA
            # The npm openai client, trusting the test CA.
            proc = subprocess.run(["node", os.path.join(HERE, "tls_client_test.mjs"), clients_dir(),
                                   f"{base}/v1"], capture_output=True, text=True, timeout=120,
                                  env={**os.environ, "NODE_EXTRA_CA_CERTS": self.first.ca})
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            self.assertIn("ok - streamed over TLS", proc.stdout)
            # kvserve health (the container's and Kubernetes' probe) over TLS.
            ok = run_health("--target", server.address, "--tls-ca", self.first.ca)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            self.assertNotEqual(run_health("--target", server.address).returncode, 0)

            self.rotate_with_streams_in_flight(server, base)

    def rotate_with_streams_in_flight(self, server, base):
        grpc_stream = server.stub.Generate(greedy_request(150, prompt="rotate"), timeout=60)
        grpc_first = next(grpc_stream)
        sse = self.open_sse(server.http_port, self.first.ca, max_tokens=150)

        second = Certificates(self.folder, "second")
        cert, key = second.server()
        shutil.copy(key, self.key)
        shutil.copy(cert, self.cert)
        server.proc.send_signal(signal.SIGHUP)
        self.assertIsNotNone(server.wait_for_line(r"SIGHUP: TLS certificates reloaded", 10))

        # New HTTPS connections get the new certificate at once.
        out = curl("--cacert", second.ca, f"{base}/health")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotEqual(curl("--cacert", self.first.ca, f"{base}/health").returncode, 0)
        # gRPC's watcher picks the new files up within a few seconds.
        deadline = time.monotonic() + 10
        while True:
            try:
                run = run_health("--target", server.address, "--tls-ca", second.ca)
                if run.returncode == 0:
                    break
            except subprocess.TimeoutExpired:
                pass
            self.assertLess(time.monotonic(), deadline, run.stderr)
            time.sleep(0.2)

        # Both streams began under the old certificate and complete.
        ids, _, last = collect(grpc_stream)
        self.assertEqual(len(grpc_first.token_ids) + len(ids), 150)
        events = self.finish_sse(sse)
        self.assertEqual(json.loads(events[-2])["usage"]["completion_tokens"], 150)

    @staticmethod
    def open_sse(port, ca, max_tokens):
        context = ssl.create_default_context(cafile=ca)
        sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                                   server_hostname="127.0.0.1")
        body = json.dumps({"prompt": "x", "max_tokens": max_tokens, "ignore_eos": True,
                           "stream": True, "stream_options": {"include_usage": True}}).encode()
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        got = b""
        while b"data: " not in got:
            got += sock.recv(4096)
        return sock, got

    @staticmethod
    def finish_sse(sse):
        sock, got = sse
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        sock.close()
        body = got.split(b"\r\n\r\n", 1)[1].decode()
        return [line[6:] for line in body.split("\n") if line.startswith("data: ")]


class MutualTlsTest(unittest.TestCase):
    def test_client_certificates(self):
        folder = tempfile.mkdtemp(prefix="kvserve-mtls-")
        self.addCleanup(shutil.rmtree, folder, True)
        certs = Certificates(folder, "m")
        cert, key = certs.server()
        client_cert, client_key = certs.client()
        with Server("--tls-cert", cert, "--tls-key", key, "--tls-client-ca", certs.ca,
                    tls=TlsClient(certs.ca, client_cert, client_key)) as server:
            self.assertIsNotNone(server.wait_for_line(r"with mutual TLS", 1))
            base = f"https://127.0.0.1:{server.http_port}"
            # With a good client certificate: served on both ports.
            ids, _, _ = collect(server.stub.Generate(greedy_request(4, prompt="m"), timeout=30))
            self.assertEqual(len(ids), 4)
            out = curl("--cacert", certs.ca, "--cert", client_cert, "--key", client_key,
                       f"{base}/health")
            self.assertEqual(out.returncode, 0, out.stderr)
            ok = run_health("--target", server.address, "--tls-ca", certs.ca,
                            "--tls-client-cert", client_cert, "--tls-client-key", client_key)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            # Without one: refused on both.
            self.assertNotEqual(curl("--cacert", certs.ca, f"{base}/health").returncode, 0)
            channel = grpc.secure_channel(server.address, TlsClient(certs.ca).grpc_credentials())
            with self.assertRaises(grpc.RpcError) as e:
                pb_grpc.GenerationStub(channel).GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
            channel.close()
            self.assertNotEqual(
                run_health("--target", server.address, "--tls-ca", certs.ca).returncode, 0)
            # A certificate from another CA is refused too.
            other = Certificates(folder, "other")
            other_cert, other_key = other.client()
            self.assertNotEqual(curl("--cacert", certs.ca, "--cert", other_cert, "--key",
                                     other_key, f"{base}/health").returncode, 0)


if __name__ == "__main__":
    unittest.main()
