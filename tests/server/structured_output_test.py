"""Structured output through the real server, judged by validators we did not write.

On a random-weight model with Llama 2's 32000-token vocabulary (../shared/models/
llama-2-tiny-random.gguf), at temperature 1.0 (so the model itself would write noise):

* 200 outputs for each of 10 JSON schemas (every supported keyword family: types, properties,
  required, enum, const, arrays with min/max items, nested objects, string length and pattern,
  numbers, integers, anyOf, $ref to $defs, type lists) all end with finish_reason "stop", parse
  with Python's json and validate with the `jsonschema` package (Debian python3-jsonschema);
  unconstrained outputs of the same requests almost never do (so the check can fail);
* regex outputs fully match Python's `re`; choices are one of the choices; a GBNF grammar's
  outputs match an equivalent Python regex;
* the same over gRPC (the Constraint oneof) and through chat (response_format json_schema);
* invalid schemas, regexes and grammars are 400 / INVALID_ARGUMENT naming the field and what is
  wrong, and fields that would change the output's meaning (tools) are refused, not ignored.
"""
import concurrent.futures
import json
import os
import re
import sys
import unittest
import urllib.error
import urllib.request

import grpc
import jsonschema

import kvserve.v1.generation_pb2 as pb
from server_harness import Server

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("KVSERVE_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))
MODEL = os.path.join(SHARED, "models", "llama-2-tiny-random.gguf")
ARTIFACTS = os.environ.get("KVSERVE_ARTIFACTS", "/tmp")
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import gguf_py  # noqa: E402

PER_SCHEMA = 200
SCHEMAS = {
    "object": {"type": "object",
               "properties": {"name": {"type": "string", "maxLength": 12},
                              "age": {"type": "integer"}, "active": {"type": "boolean"}},
               "required": ["name", "age", "active"], "additionalProperties": False},
    "enum": {"type": "string", "enum": ["red", "green", "blue"]},
    "array": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 5},
    "nested": {"type": "object",
               "properties": {"point": {"type": "object",
                                        "properties": {"x": {"type": "number"},
                                                       "y": {"type": "number"}},
                                        "required": ["x", "y"]},
                              "label": {"type": "string", "maxLength": 8}},
               "required": ["point"]},
    "any_of": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 5},
                         {"type": "null"}]},
    "refs": {"$defs": {"item": {"type": "object",
                                "properties": {"id": {"type": "integer"},
                                               "tags": {"type": "array", "maxItems": 3,
                                                        "items": {"type": "string",
                                                                  "maxLength": 4}}},
                                "required": ["id", "tags"]}},
             "type": "array", "items": {"$ref": "#/$defs/item"}, "maxItems": 3},
    "pattern": {"type": "object",
                "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2,4}$"}},
                "required": ["code"]},
    "const_optional": {"type": "object",
                       "properties": {"version": {"const": 2},
                                      "note": {"type": "string", "maxLength": 10},
                                      "score": {"type": "number"}},
                       "required": ["version"]},
    "lengths": {"type": "string", "minLength": 2, "maxLength": 6},
    "type_list": {"type": ["integer", "boolean"]},
}
REGEXES = [r"[0-9]{3}-[0-9]{4}", r"(cat|dog)s?( and (cat|dog)s?)*",
           r"[a-z]{1,8}@[a-z]{1,8}\.(com|org)", r"-?(0|[1-9][0-9]{0,5})(\.[0-9]{1,3})?"]
GRAMMAR = r'''
root ::= expr
expr ::= term (("+" | "-") term)*
term ::= num | "(" expr ")"
num  ::= [1-9] [0-9]?
'''
GRAMMAR_DEPTH_FREE = re.compile(r"[0-9+\-()]+")


def balanced(text):
    depth = 0
    for c in text:
        depth += c == "("
        depth -= c == ")"
        if depth < 0:
            return False
    return depth == 0


class StructuredOutputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The test model with a chat template, for response_format through chat.
        cls.chat_model = os.path.join(ARTIFACTS, "structured_output_chat.gguf")
        template = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                    "{% if add_generation_prompt %}<|assistant|>{% endif %}")
        gguf_py.copy_with_metadata(MODEL, cls.chat_model, {
            "tokenizer.chat_template": gguf_py.Value(gguf_py.STRING, template)})
        cls.server = Server("--model", cls.chat_model, "--kv-cache-memory", "256MiB")
        cls.base = f"http://{cls.server.http_address}"

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def post(self, path, body, timeout=120):
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def complete_many(self, extra, n, path="/v1/completions", max_tokens=300):
        def one(i):
            body = {"prompt": f"Output number {i}:", "max_tokens": max_tokens,
                    "temperature": 1.0, "seed": 1000 + i, **extra}
            if path == "/v1/chat/completions":
                body.pop("prompt")
                body["messages"] = [{"role": "user", "content": f"Give me JSON {i}"}]
            status, reply = self.post(path, body)
            self.assertEqual(status, 200, reply)
            choice = reply["choices"][0]
            text = choice["message"]["content"] if "message" in choice else choice["text"]
            return text, choice["finish_reason"]
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            return list(pool.map(one, range(n)))

    def check_json_outputs(self, name, schema, outputs):
        for i, (text, finish) in enumerate(outputs):
            self.assertEqual(finish, "stop", f"{name} output {i} did not end: {text!r}")
            try:
                value = json.loads(text)
            except ValueError as e:
                self.fail(f"{name} output {i} is not JSON ({e}): {text!r}")
            try:
                jsonschema.validate(value, schema)
            except jsonschema.ValidationError as e:
                self.fail(f"{name} output {i} fails its schema ({e.message}): {text!r}")

    def test_json_schemas_always_validate(self):
        for k, (name, schema) in enumerate(SCHEMAS.items()):
            # Both spellings: OpenAI's response_format and vLLM's guided_json.
            extra = ({"guided_json": schema} if k % 2 else
                     {"response_format": {"type": "json_schema",
                                          "json_schema": {"name": name, "schema": schema,
                                                          "strict": True}}})
            outputs = self.complete_many(extra, PER_SCHEMA)
            self.check_json_outputs(name, schema, outputs)
            print(f"{name}: {PER_SCHEMA} outputs valid, e.g. {outputs[0][0]!r}", flush=True)

    def test_unconstrained_outputs_would_not_validate(self):
        outputs = self.complete_many({}, 20, max_tokens=40)
        valid = 0
        for text, _ in outputs:
            try:
                jsonschema.validate(json.loads(text), SCHEMAS["object"])
                valid += 1
            except (ValueError, jsonschema.ValidationError):
                pass
        self.assertLessEqual(valid, 1, "the random model writes valid JSON unconstrained?")

    def test_json_object_mode(self):
        # Any object: its strings are unbounded, and a random model closes one only when it
        # happens to draw a token with a quote, so many outputs run to max_tokens. Every one that
        # ends is an object.
        outputs = self.complete_many({"response_format": {"type": "json_object"}}, 100,
                                     max_tokens=800)
        ended = 0
        for text, finish in outputs:
            self.assertIn(finish, ("stop", "length"), text)
            self.assertTrue(text.startswith("{"), text)
            if finish == "stop":
                ended += 1
                self.assertIsInstance(json.loads(text), dict, text)
        self.assertGreaterEqual(ended, 25, "json_object outputs should often end (39 of 100 did)")

    def test_chat_response_format(self):
        schema = SCHEMAS["object"]
        outputs = self.complete_many(
            {"response_format": {"type": "json_schema",
                                 "json_schema": {"name": "person", "schema": schema}}},
            50, path="/v1/chat/completions")
        self.check_json_outputs("chat", schema, outputs)

    def test_regex_outputs_fully_match(self):
        for pattern in REGEXES:
            outputs = self.complete_many({"guided_regex": pattern}, 100, max_tokens=200)
            for text, finish in outputs:
                self.assertEqual(finish, "stop", text)
                self.assertIsNotNone(re.fullmatch(pattern, text), f"{pattern!r}: {text!r}")

    def test_choice_and_grammar(self):
        choices = ["yes", "no", "maybe later", "\u00e9t\u00e9"]
        for text, finish in self.complete_many({"guided_choice": choices}, 60):
            self.assertEqual(finish, "stop")
            self.assertIn(text, choices)
        for text, finish in self.complete_many({"guided_grammar": GRAMMAR}, 60, max_tokens=300):
            if finish == "length":
                continue  # nesting may run past max_tokens; a prefix is all it can be then
            self.assertEqual(finish, "stop", text)
            self.assertIsNotNone(GRAMMAR_DEPTH_FREE.fullmatch(text), text)
            self.assertTrue(balanced(text), text)
            self.assertIsNone(re.search(r"[+\-]{2}|\(\)|\([+\-]|[+\-]\)|^[+\-]|[+\-]$", text),
                              text)

    def test_grpc_constraints(self):
        schema = SCHEMAS["nested"]
        kinds = [pb.Constraint(json_schema=json.dumps(schema)),
                 pb.Constraint(regex=REGEXES[0]),
                 pb.Constraint(choice=pb.Choices(choices=["alpha", "beta"])),
                 pb.Constraint(grammar='root ::= "x" [0-9]{2}')]
        for k, constraint in enumerate(kinds):
            for i in range(20):
                request = pb.GenerateRequest(
                    prompt=f"go {i}", max_tokens=300, constraint=constraint,
                    sampling=pb.SamplingParams(temperature=1.0, seed=i))
                text, finish = "", None
                for r in self.server.stub.Generate(request, timeout=60):
                    text += r.text
                    if r.finish_reason:
                        finish = r.finish_reason
                self.assertEqual(finish, pb.FINISH_REASON_STOP, (k, text))
                if k == 0:
                    jsonschema.validate(json.loads(text), schema)
                elif k == 1:
                    self.assertIsNotNone(re.fullmatch(REGEXES[0], text), text)
                elif k == 2:
                    self.assertIn(text, ["alpha", "beta"])
                else:
                    self.assertIsNotNone(re.fullmatch(r"x[0-9]{2}", text), text)

    def test_grpc_errors_name_the_field(self):
        cases = [(pb.Constraint(regex="a(b"), "constraint.regex"),
                 (pb.Constraint(grammar='root ::= "a" undefined_rule'), "undefined rule"),
                 (pb.Constraint(json_schema='{"type": "object", "not": {}}'), "not"),
                 (pb.Constraint(json_schema="{bad json"), "constraint.json_schema"),
                 (pb.Constraint(json_object=False), "json_object")]
        for constraint, fragment in cases:
            request = pb.GenerateRequest(prompt="x", max_tokens=4, constraint=constraint)
            with self.assertRaises(grpc.RpcError) as cm:
                list(self.server.stub.Generate(request, timeout=30))
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn(fragment, cm.exception.details())

    def prefix_hits(self):
        status, text = self.server.http_get("/metrics")
        self.assertEqual(status, 200)
        m = re.search(r"^kvserve_prefix_cache_hits_tokens_total (\S+)$", text, re.M)
        self.assertIsNotNone(m, "no prefix-cache hit counter in /metrics")
        return float(m.group(1))

    def test_n_choices_share_the_prompt(self):
        # A 120-token prompt (7 full pages of 16): samples 1..3 take its pages from the prefix
        # cache, so the hit counter grows by at least 3 x 112 tokens; every choice is valid.
        prompt = " ".join(f"w{i}" for i in range(60))
        for stream in (False, True):
            before = self.prefix_hits()
            body = {"prompt": f"{prompt} {stream}", "max_tokens": 40, "temperature": 1.0,
                    "seed": 5, "n": 4, "guided_choice": ["alpha", "beta", "gamma delta"],
                    "stream": stream, "stream_options": {"include_usage": True}}
            if not stream:
                status, reply = self.post("/v1/completions", body)
                self.assertEqual(status, 200, reply)
                choices = reply["choices"]
                usage = reply["usage"]
                texts = {c["index"]: c["text"] for c in choices}
                finishes = {c["index"]: c["finish_reason"] for c in choices}
            else:
                request = urllib.request.Request(self.base + "/v1/completions",
                                                 data=json.dumps(body).encode(),
                                                 headers={"Content-Type": "application/json"})
                texts, finishes, usage = {}, {}, None
                with urllib.request.urlopen(request, timeout=60) as response:
                    for line in response.read().decode().splitlines():
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        chunk = json.loads(line[6:])
                        if chunk.get("usage"):
                            usage = chunk["usage"]
                        for c in chunk["choices"]:
                            texts[c["index"]] = texts.get(c["index"], "") + c["text"]
                            if c["finish_reason"]:
                                finishes[c["index"]] = c["finish_reason"]
            self.assertEqual(sorted(texts), [0, 1, 2, 3], texts)
            for i in range(4):
                self.assertIn(texts[i], ["alpha", "beta", "gamma delta"], (stream, texts))
                self.assertEqual(finishes[i], "stop", (stream, finishes))
            self.assertIsNotNone(usage)
            self.assertLess(usage["prompt_tokens"], 200)  # the prompt counted once
            self.assertGreaterEqual(usage["completion_tokens"], 4)
            self.assertGreaterEqual(self.prefix_hits() - before, 3 * 112, stream)
        # Seeded: the same request gives the same four choices again.
        body = {"prompt": "Seeded", "max_tokens": 30, "temperature": 1.0, "seed": 9, "n": 4}
        first = [c["text"] for c in self.post("/v1/completions", body)[1]["choices"]]
        again = [c["text"] for c in self.post("/v1/completions", body)[1]["choices"]]
        self.assertEqual(first, again)
        self.assertGreater(len(set(first)), 1, "the samples must differ: seeds seed + i")

    def test_echo_repeats_the_prompt(self):
        for stream in (False, True):
            body = {"prompt": "Echo this", "max_tokens": 8, "n": 2, "seed": 1, "echo": True,
                    "guided_regex": "[0-9]{3}", "stream": stream}
            if not stream:
                status, reply = self.post("/v1/completions", body)
                self.assertEqual(status, 200, reply)
                texts = [c["text"] for c in reply["choices"]]
            else:
                request = urllib.request.Request(self.base + "/v1/completions",
                                                 data=json.dumps(body).encode(),
                                                 headers={"Content-Type": "application/json"})
                parts = {}
                with urllib.request.urlopen(request, timeout=60) as response:
                    for line in response.read().decode().splitlines():
                        if line.startswith("data: {"):
                            for c in json.loads(line[6:])["choices"]:
                                parts[c["index"]] = parts.get(c["index"], "") + c["text"]
                texts = [parts[0], parts[1]]
            for text in texts:
                self.assertRegex(text, r"^Echo this[0-9]{3}$", stream)
        # Token-id prompts echo their tokens' text, pieces joined as the output's are (SPM's
        # leading space of "▁Hello" included; BOS has no text).
        status, reply = self.post("/v1/completions", {"prompt": [1, 15043, 3186], "echo": True,
                                                      "max_tokens": 4, "guided_regex": "!"})
        self.assertEqual(status, 200, reply)
        self.assertEqual(reply["choices"][0]["text"], " Hello world!")

    def test_http_errors_name_the_field(self):
        cases = [
            ({"guided_regex": "(?=x)y"}, "guided_regex", "guided_regex"),
            ({"guided_grammar": "root ::= \"a\"\nroot ::= \"b\""}, "guided_grammar", "twice"),
            ({"guided_grammar": "root ::= \"a\" root"}, "guided_grammar", "no finite string"),
            ({"guided_json": {"type": "array", "uniqueItems": True}}, "guided_json",
             "uniqueItems"),
            ({"guided_choice": []}, "guided_choice", "choices"),
            ({"response_format": {"type": "xml"}}, "response_format", "xml"),
            ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
             "response_format", "schema"),
            ({"guided_json": {"type": "string"}, "guided_regex": "a"}, "guided_regex", "one of"),
            ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "tools"),
            ({"tool_choice": "required"}, "tool_choice", "tool_choice"),
            ({"guided_json": {"type": "string"}, "ignore_eos": True}, "guided_json", "ignore_eos"),
        ]
        for extra, param, fragment in cases:
            status, reply = self.post("/v1/completions", {"prompt": "x", "max_tokens": 4, **extra})
            self.assertEqual(status, 400, (extra, reply))
            self.assertEqual(reply["error"]["param"], param, (extra, reply))
            self.assertIn(fragment, reply["error"]["message"], (extra, reply))
        # Unconstrained requests are unharmed by the refused ones.
        status, reply = self.post("/v1/completions", {"prompt": "x", "max_tokens": 4})
        self.assertEqual(status, 200, reply)


if __name__ == "__main__":
    unittest.main()
