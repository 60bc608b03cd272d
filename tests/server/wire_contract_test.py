"""The request contract of both transports against the real `kvserve serve` (demo model): the
defects the hardening issue found beyond the crash, each checked where a client sees it.

- HttpSamplingTest: every sampling parameter of the gRPC API works over HTTP (top_k, min_p,
  repetition_penalty, presence/frequency penalties, seed) and gives what the same request gives
  over gRPC; `top_k: 1` at temperature 1 is deterministic; invalid values are 400 naming the field.
- HttpContextLengthTest: a request that cannot fit the context is 400 with OpenAI's error shape
  (invalid_request_error, context_length_exceeded), naming the field and the value as sent
  (2147483648, 2^63 - 1: never clamped or wrapped).
- GrpcInvalidUtf8Test: hand-serialized requests (raw bytes, no generated code) whose string
  fields hold invalid UTF-8 are INVALID_ARGUMENT naming the field; a malformed message is
  INVALID_ARGUMENT too.
- GrpcEarlyCancelTest: calls cancelled before their request message arrives are counted as
  CANCELLED in kvserve_grpc_requests_total, not UNIMPLEMENTED.

Each TestCase class is one ctest test.
"""
import json
import threading
import time
import unittest
import urllib.error
import urllib.request

import grpc

from kvserve.v1 import generation_pb2 as pb
from server_harness import Server, collect

PROMPT = "The quick brown fox"


def post(server, path, body, timeout=60):
    """(status, parsed JSON body) of POST `body` (a dict) to the server's HTTP port."""
    req = urllib.request.Request(f"http://{server.http_address}{path}",
                                 data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def completion(server, **fields):
    """The text of a 24-token completion of PROMPT (EOS ignored) with these extra fields."""
    body = {"prompt": PROMPT, "max_tokens": 24, "ignore_eos": True, **fields}
    status, reply = post(server, "/v1/completions", body)
    assert status == 200, (body, reply)
    assert reply["usage"]["completion_tokens"] == 24, reply
    return reply["choices"][0]["text"]


def grpc_text(server, **sampling):
    """The text of the same request over gRPC."""
    r = pb.GenerateRequest(prompt=PROMPT, max_tokens=24, ignore_eos=True,
                           sampling=pb.SamplingParams(**sampling))
    ids, text, _ = collect(server.stub.Generate(r, timeout=60))
    assert len(ids) == 24
    return text


class HttpSamplingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def test_top_k_1_at_temperature_1_is_deterministic_and_greedy(self):
        # The control: without top_k, temperature 1 samples (five calls are not all equal).
        unrestricted = {completion(self.server, temperature=1) for _ in range(5)}
        self.assertGreater(len(unrestricted), 1, "temperature 1 did not sample at all")
        greedy = completion(self.server, temperature=0)
        self.assertEqual({completion(self.server, temperature=1, top_k=1) for _ in range(5)},
                         {greedy})

    def test_top_k_1_in_chat_is_greedy(self):
        def chat(**fields):
            body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 12,
                    "ignore_eos": True, **fields}
            status, reply = post(self.server, "/v1/chat/completions", body)
            self.assertEqual(status, 200, reply)
            return reply["choices"][0]["message"]["content"]
        greedy = chat(temperature=0)
        self.assertEqual({chat(temperature=1, top_k=1) for _ in range(4)}, {greedy})

    def test_min_p_1_is_greedy(self):
        # min_p = 1 keeps only the most likely token.
        greedy = completion(self.server, temperature=0)
        self.assertEqual({completion(self.server, temperature=1, min_p=1) for _ in range(4)},
                         {greedy})

    def test_every_sampling_field_gives_what_grpc_gives(self):
        cases = [
            dict(temperature=0, repetition_penalty=1.8),
            dict(temperature=0, presence_penalty=2),
            dict(temperature=0, frequency_penalty=2),
            dict(temperature=1, top_k=3, seed=7),
            dict(temperature=1, min_p=0.2, seed=11),
            dict(temperature=0.8, top_p=0.9, seed=5),
        ]
        greedy = completion(self.server, temperature=0)
        for fields in cases:
            http = completion(self.server, **fields)
            self.assertEqual(http, grpc_text(self.server, **fields), fields)
            if fields["temperature"] == 0:
                # The penalty changed the greedy text: it was applied, not ignored on both.
                self.assertNotEqual(http, greedy, fields)

    def test_invalid_values_are_400_naming_the_field(self):
        cases = [
            ("top_k", -1), ("top_k", 1.5), ("top_k", "1"),
            ("min_p", -0.1), ("min_p", 1.5), ("min_p", "x"),
            ("repetition_penalty", 0), ("repetition_penalty", -1), ("repetition_penalty", [1]),
            ("presence_penalty", 2.5), ("frequency_penalty", -3), ("seed", 1.5),
            ("seed", "7"), ("top_p", 0), ("temperature", 3),
        ]
        for field, bad in cases:
            for path, base in (("/v1/completions", {"prompt": PROMPT}),
                               ("/v1/chat/completions",
                                {"messages": [{"role": "user", "content": PROMPT}]})):
                status, reply = post(self.server, path, {**base, "max_tokens": 2, field: bad})
                self.assertEqual(status, 400, (path, field, bad, reply))
                error = reply["error"]
                self.assertEqual(error["param"], field, (path, field, bad, reply))
                self.assertIn(field, error["message"])
                self.assertEqual(error["type"], "invalid_request_error")

    def test_a_top_k_beyond_the_vocabulary_is_off(self):
        greedy = completion(self.server, temperature=0)
        self.assertEqual(completion(self.server, temperature=0, top_k=2**40), greedy)
        self.assertEqual(completion(self.server, temperature=1, top_k=2**40, seed=3),
                         completion(self.server, temperature=1, seed=3))


class HttpContextLengthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def assert_context_length_error(self, path, body, param, *in_message):
        status, reply = post(self.server, path, body)
        self.assertEqual(status, 400, (body, reply))
        error = reply["error"]
        self.assertEqual(error["type"], "invalid_request_error", reply)
        self.assertEqual(error["code"], "context_length_exceeded", reply)
        self.assertEqual(error["param"], param, reply)
        for text in in_message:
            self.assertIn(text, error["message"])
        return error["message"]

    def test_max_tokens_beyond_the_context_is_400_with_the_value_as_sent(self):
        chat = {"messages": [{"role": "user", "content": "hi"}]}
        for value in (2049, 2147483647, 2147483648, 2**63 - 1):
            self.assert_context_length_error("/v1/completions", {"prompt": "hi", "max_tokens": value},
                                             "max_tokens", f"max_tokens ({value})")
            self.assert_context_length_error("/v1/chat/completions", {**chat, "max_tokens": value},
                                             "max_tokens", f"max_tokens ({value})")
            self.assert_context_length_error("/v1/chat/completions",
                                             {**chat, "max_completion_tokens": value},
                                             "max_completion_tokens",
                                             f"max_completion_tokens ({value})")

    def test_a_prompt_too_long_is_400(self):
        # The demo vocabulary is one token per byte: 3000 bytes cannot fit 2048 tokens.
        self.assert_context_length_error("/v1/completions", {"prompt": "a" * 3000}, "prompt")
        # Completions default max_tokens to 16 (OpenAI's default): that is what does not fit.
        self.assert_context_length_error("/v1/completions", {"prompt": "a" * 2040}, "max_tokens",
                                         "prompt (2041 tokens) + max_tokens (16)")
        self.assert_context_length_error(
            "/v1/chat/completions", {"messages": [{"role": "user", "content": "a" * 3000}]},
            "messages")


# Hand-serialized protobuf: field `number` as a length-delimited record.
def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def ld(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def vint(number, value):
    return varint(number << 3) + varint(value)


BAD = b"ok\xff\xfe"  # 0xFF never occurs in UTF-8
SAMPLING_GREEDY = ld(5, b"\x0d" + b"\x00\x00\x00\x00")  # sampling { temperature: 0 }


class GrpcInvalidUtf8Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def call(self, method, payload, streaming=True):
        """The RpcError of calling `method` with raw request bytes, or the raw responses."""
        path = f"/kvserve.v1.Generation/{method}"
        try:
            if streaming:
                return list(self.server.channel.unary_stream(path)(payload, timeout=30))
            return self.server.channel.unary_unary(path)(payload, timeout=30)
        except grpc.RpcError as e:
            return e

    def assert_invalid(self, method, payload, field, streaming=True):
        error = self.call(method, payload, streaming)
        self.assertIsInstance(error, grpc.RpcError, (method, payload))
        self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT, (method, payload))
        self.assertIn(field, error.details())
        return error.details()

    def test_each_string_field_is_named(self):
        generate_cases = [
            (ld(2, BAD) + vint(4, 2), "prompt"),
            (ld(1, BAD) + ld(2, b"hi") + vint(4, 2), "request_id"),
            (ld(2, b"hi") + ld(6, b"fine") + ld(6, BAD) + vint(4, 2), "stop[1]"),
        ]
        for payload, field in generate_cases:
            details = self.assert_invalid("Generate", payload, field)
            self.assertIn("UTF-8", details)
        message = ld(1, b"user") + ld(2, BAD)
        self.assert_invalid("Chat", ld(1, ld(1, b"user") + ld(2, b"x")) + ld(1, message),
                            "messages[1].content")
        self.assert_invalid("Chat", ld(1, ld(1, BAD)), "messages[0].role")
        self.assert_invalid("Chat", ld(1, ld(1, b"user") + ld(2, b"x")) +
                            ld(3, vint(4, 2) + ld(6, BAD)), "generation.stop[0]")
        self.assert_invalid("Tokenize", ld(1, BAD), "text", streaming=False)

    def test_valid_raw_requests_still_work(self):
        # The same bytes with valid UTF-8 (two-, three- and four-byte characters) are served.
        payload = ld(2, "h\u00e9 \u20ac \U0001F600".encode()) + vint(4, 3) + vint(8, 1) \
            + SAMPLING_GREEDY
        responses = self.call("Generate", payload)
        self.assertIsInstance(responses, list, responses)
        got = pb.GenerateResponse()
        ids = []
        for raw in responses:
            got.ParseFromString(raw)
            ids.extend(got.token_ids)
        self.assertEqual(len(ids), 3)
        self.assertEqual(got.finish_reason, pb.FINISH_REASON_LENGTH)
        tokenized = pb.TokenizeResponse.FromString(
            self.call("Tokenize", ld(1, "\u00e9".encode()), streaming=False))
        self.assertEqual(len(tokenized.token_ids), 3)  # BOS and the two bytes of é

    def test_a_malformed_message_is_invalid_argument(self):
        for payload in (b"\x12\x05ab",  # a length beyond the end
                        b"\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # endless varint
                        b"\x0b"):  # a group start (wire type 3)
            error = self.call("Generate", payload)
            self.assertIsInstance(error, grpc.RpcError, payload)
            self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT, payload)
            self.assertIn("kvserve.v1.GenerateRequest", error.details())

    def test_the_generated_python_client_is_unaffected(self):
        r = pb.GenerateRequest(prompt="h\u00e9llo", max_tokens=2, ignore_eos=True,
                               stop=["\u20ac"], sampling=pb.SamplingParams(temperature=0))
        ids, _, last = collect(self.server.stub.Generate(r, timeout=30))
        self.assertEqual(len(ids), 2)
        chat = pb.ChatRequest(generation=pb.GenerateRequest(max_tokens=2, ignore_eos=True))
        chat.messages.add(role="user", content="h\u00e9llo")
        ids, _, _ = collect(self.server.stub.Chat(chat, timeout=30))
        self.assertEqual(len(ids), 2)
        self.assertEqual(self.server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5).demo,
                         True)


class GrpcEarlyCancelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def grpc_counts(self):
        status, body = self.server.http_get("/metrics")
        self.assertEqual(status, 200)
        counts = {}
        for line in body.splitlines():
            if line.startswith("kvserve_grpc_requests_total{"):
                labels, value = line.split("} ")
                counts[labels.split("{", 1)[1]] = float(value)
        return counts

    def cancel_before_the_request(self, method):
        """Opens a call of `method`, sends no request message, then cancels it."""
        release = threading.Event()

        def no_message_yet():
            release.wait()
            return
            yield  # a generator that never yields a message

        call = self.server.channel.stream_stream(f"/kvserve.v1.Generation/{method}")(
            no_message_yet())
        # Let the client put the call's headers on the wire first (a cancel before that never
        # reaches the server). This orders the two events; nothing is timed.
        time.sleep(0.3)
        call.cancel()
        release.set()

    def test_early_cancels_count_as_cancelled(self):
        methods = ["Generate", "Chat", "Tokenize", "GetModelInfo", "GetServerInfo"]
        for method in methods:
            self.cancel_before_the_request(method)
        deadline = time.monotonic() + 10
        while True:
            counts = self.grpc_counts()
            cancelled = {m: counts.get(f'code="CANCELLED",method="{m}"', 0) for m in methods}
            if all(cancelled.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(cancelled, {m: 1 for m in methods}, counts)
        self.assertFalse([k for k in counts if "UNIMPLEMENTED" in k], counts)
        # The server still serves.
        self.assertTrue(self.server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5).demo)


if __name__ == "__main__":
    unittest.main()
