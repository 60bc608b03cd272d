"""Integration tests of the OpenAI-compatible HTTP API and the chat page: the real `kvserve serve`
driven by the official `openai` npm client and by headless Chromium (npm playwright-core).

Each TestCase class is one ctest test (label http) with its own server. The npm packages are
installed by scripts/install-http-clients.sh (into ~/.cache/kvserve/http-clients by default).
"""
import json
import os
import subprocess
import unittest
import urllib.error
import urllib.request

import grpc

from kvserve.v1 import generation_pb2 as pb
from server_harness import Server
from war_and_peace import word_share

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
API_KEY = "test-key-123"


def clients_dir():
    out = subprocess.run([os.path.join(SOURCE, "scripts", "install-http-clients.sh")],
                         check=True, capture_output=True, text=True, timeout=600)
    return out.stdout.strip().splitlines()[-1]


def node(script, *args, timeout=120):
    """Runs a test script under tests/server with node; fails the test with its output."""
    proc = subprocess.run(["node", os.path.join(HERE, script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def wait_no_running(server, metadata=(), timeout=3.0):
    """GetServerInfo until nothing runs or waits and every KV page is free (or the timeout)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        info = server.stub.GetServerInfo(pb.GetServerInfoRequest(), metadata=metadata, timeout=5)
        idle = (info.running_requests == 0 and info.waiting_requests == 0
                and info.free_kv_pages == info.total_kv_pages)
        if idle or time.monotonic() > deadline:
            return info
        time.sleep(0.02)


class OpenAiClientTest(unittest.TestCase):
    """The openai client against a server with --api-key."""

    @classmethod
    def setUpClass(cls):
        cls.clients = clients_dir()
        cls.server = Server("--api-key", API_KEY, "--debug-step-delay-ms", "3")
        cls.base = f"http://{cls.server.http_address}"
        cls.auth = (("authorization", f"Bearer {API_KEY}"),)

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def test_openai_client_then_aborted_stream_leaves_server_idle(self):
        out = node("openai_client_test.mjs", self.clients, self.base + "/v1", API_KEY, "main")
        self.assertIn("aborted a stream after 3 chunks", out)
        # The last request was abandoned after 3 of its 1500 tokens: the server aborts it.
        info = wait_no_running(self.server, self.auth)
        self.assertEqual(info.running_requests, 0)
        self.assertEqual(info.waiting_requests, 0)
        self.assertEqual(info.free_kv_pages, info.total_kv_pages)

    def test_grpc_needs_the_key_but_health_does_not(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        with self.assertRaises(grpc.RpcError) as cm:
            self.server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5,
                                          metadata=(("authorization", "Bearer nope"),))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        info = self.server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5,
                                             metadata=self.auth)
        self.assertEqual(info.name, "kvserve-demo-random")
        self.server.health_status("")  # no error: health stays open

    def test_raw_http_error_shape_and_public_chat_page(self):
        request = urllib.request.Request(self.base + "/v1/completions",
                                         data=b'{"prompt": "x"}', method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(request, timeout=10)
        self.assertEqual(cm.exception.code, 401)
        body = json.loads(cm.exception.read())
        self.assertEqual(set(body["error"]), {"message", "type", "param", "code"})
        self.assertEqual(body["error"]["code"], "invalid_api_key")
        with urllib.request.urlopen(self.base + "/", timeout=10) as page:
            self.assertEqual(page.status, 200)
            html = page.read().decode()
        self.assertIn('id="send"', html)
        self.assertNotIn("<script src", html)  # self-contained


class OpenAiQueueTest(unittest.TestCase):
    """A full queue answers 429 (RateLimitError)."""

    def test_full_queue_is_429(self):
        clients = clients_dir()
        with Server("--max-num-seqs", "1", "--max-queued-requests", "1",
                    "--debug-step-delay-ms", "10") as server:
            base = f"http://{server.http_address}"
            out = node("openai_client_test.mjs", clients, base + "/v1", "unused", "queue")
            self.assertIn("429 when the queue is full", out)
            info = wait_no_running(server)
            self.assertEqual((info.running_requests, info.waiting_requests), (0, 0))


class ChatPageTest(unittest.TestCase):
    """The chat page in headless Chromium: streaming answer, Stop aborts the request."""

    def test_chat_page_streams_and_stops(self):
        clients = clients_dir()
        screenshot = os.path.join(os.environ.get("KVSERVE_ARTIFACTS", "/tmp"), "chat_page.png")
        # The default model (trained on War and Peace): the screenshot shows its words.
        with Server("--debug-step-delay-ms", "30", default_model=True) as server:
            base = f"http://{server.http_address}"
            result = json.loads(node("chat_page_test.mjs", clients, base, screenshot)
                                .strip().splitlines()[-1])
            self.assertGreaterEqual(len(result["lengths"]), 3)
            n_words, share = word_share(result["answer"])
            self.assertGreaterEqual(n_words, 5, result["answer"])
            self.assertGreaterEqual(share, 0.8, result["answer"])
            info = wait_no_running(server)
            self.assertEqual(info.running_requests, 0)
            self.assertEqual(info.free_kv_pages, info.total_kv_pages)
        self.assertTrue(os.path.getsize(screenshot) > 1000)


if __name__ == "__main__":
    unittest.main()
