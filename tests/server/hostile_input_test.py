"""Hostile input against the real server: the remote crashes of the hardening issue (a 92-byte
body of 46 nested JSON arrays, a 12-level nested {% if %} chat template) and far deeper input
answer with a 400-class error naming the problem, and the server keeps serving.

Before the fix, the first POST below killed the server with SIGSEGV (a civetweb worker's stack
overflowed in the recursive JSON parser).
"""
import json
import os
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

import grpc

from kvserve.v1 import generation_pb2 as pb
from server_harness import Server, collect

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import make_model as mm  # noqa: E402

SHARED = os.environ.get("KVSERVE_SHARED", "")
TINY = os.path.join(SHARED, "models", "llama-2-tiny-random.gguf")


def post(server, path, body, timeout=30):
    """(status, parsed JSON body) of a POST of raw bytes."""
    req = urllib.request.Request(f"http://{server.http_address}{path}", data=body,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def nested_ifs(levels):
    return "{% if true %}" * levels + "{{ messages[0]['content'] }}" + "{% endif %}" * levels


def chat_body(max_tokens=3):
    return json.dumps({"messages": [{"role": "user", "content": "hello"}],
                       "max_tokens": max_tokens, "temperature": 0}).encode()


class NestedJsonTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def assert_serving(self):
        self.assertEqual(self.server.proc.poll(), None, "the server died")
        self.assertEqual(self.server.http_get("/health")[0], 200)
        status, body = post(self.server, "/v1/completions",
                            json.dumps({"prompt": "ab", "max_tokens": 2}).encode())
        self.assertEqual(status, 200, body)
        self.assertEqual(body["usage"]["completion_tokens"], 2)

    def test_the_92_byte_body_and_deeper_ones_are_400(self):
        for levels in (46, 64, 65, 1000, 200000):
            for path in ("/v1/completions", "/v1/chat/completions"):
                for open_, close in (("[", "]"), ('{"a":', "}")):
                    body = (open_ * levels + ("0" if open_ != "[" else "") + close * levels)
                    status, reply = post(self.server, path, body.encode())
                    self.assertEqual(status, 400, (levels, path, reply))
                    message = reply["error"]["message"]
                    if levels > 64:
                        self.assertIn("nesting deeper than 64 levels", message)
            self.assert_serving()


class NestedTemplateTest(unittest.TestCase):
    """Chat templates nested 12 levels (renders, over HTTP and gRPC) and 1000 levels (refused at
    load, Chat answers with the reason on both)."""

    def serve_with_template(self, template):
        if not os.path.exists(TINY):
            self.skipTest(f"{TINY} is missing")
        tmp = tempfile.mkdtemp(prefix="kvserve-hostile-")
        model = mm.make_model(os.path.join(tmp, "m.gguf"), dim=64, layers=1, heads=4, kv_heads=2,
                              ffn=128, tokenizer_from=TINY, chat_template=template)
        return Server("--model", model)

    def test_twelve_levels_render_over_http_and_grpc(self):
        with self.serve_with_template(nested_ifs(12)) as server:
            status, reply = post(server, "/v1/chat/completions", chat_body())
            self.assertEqual(status, 200, reply)
            self.assertEqual(reply["usage"]["completion_tokens"], 3)
            r = pb.ChatRequest(generation=pb.GenerateRequest(
                max_tokens=3, ignore_eos=True, sampling=pb.SamplingParams(temperature=0)))
            r.messages.add(role="user", content="hello")
            ids, _, _ = collect(server.stub.Chat(r, timeout=30))
            self.assertEqual(len(ids), 3)

    def test_a_thousand_levels_are_refused_with_the_reason(self):
        with self.serve_with_template(nested_ifs(1000)) as server:
            status, reply = post(server, "/v1/chat/completions", chat_body())
            self.assertEqual(status // 100, 4, reply)
            self.assertIn("nest deeper than 128 levels", reply["error"]["message"])
            r = pb.ChatRequest(generation=pb.GenerateRequest(max_tokens=3))
            r.messages.add(role="user", content="hello")
            with self.assertRaises(grpc.RpcError) as e:
                collect(server.stub.Chat(r, timeout=30))
            self.assertEqual(e.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
            self.assertIn("nest deeper than 128 levels", e.exception.details())
            self.assertEqual(server.http_get("/health")[0], 200)


if __name__ == "__main__":
    unittest.main()
