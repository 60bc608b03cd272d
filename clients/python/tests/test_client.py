"""The kvserve Python client against the real `kvserve serve` (tests/server/server_harness.py).

Expected values come from the server through the raw generated stub (the harness's own channel),
not from the client under test. Runs under unittest (ctest) and pytest alike.

Environment (set by ctest): KVSERVE_BIN, KVSERVE_CACHE, PYTHONPATH with tests/server, the
generated test stubs and clients/python.
"""
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import unittest

import kvserve
from kvserve.v1 import generation_pb2 as pb
from server_harness import Server, collect, greedy_request

CLIENT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EXAMPLE = os.path.join(CLIENT_DIR, "..", "..", "examples", "python", "generate.py")
PROMPT = "Prince Andrew"


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.client = kvserve.Client(cls.server.address, timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def expected(self, max_tokens, prompt=PROMPT):
        return collect(self.server.stub.Generate(greedy_request(max_tokens, prompt=prompt),
                                                 timeout=60))

    def test_generate_streams_the_server_s_deltas(self):
        ids, text, last = self.expected(12)
        deltas = list(self.client.generate(PROMPT, max_tokens=12, temperature=0,
                                           ignore_eos=True))
        self.assertEqual([i for d in deltas for i in d.token_ids], ids)
        self.assertEqual("".join(d.text for d in deltas), text)
        self.assertEqual([d.finish_reason for d in deltas[:-1]], [None] * (len(deltas) - 1))
        final = deltas[-1]
        self.assertEqual(final.finish_reason, "length")
        self.assertEqual(final.usage["completion_tokens"], 12)
        self.assertEqual(final.usage["prompt_tokens"], last.usage.prompt_tokens)
        self.assertGreaterEqual(final.timings["total_seconds"], 0)

    def test_generate_from_token_ids_and_generate_text(self):
        ids = self.client.tokenize(PROMPT)
        expected = collect(self.server.stub.Generate(greedy_request(6, ids=ids), timeout=60))
        deltas = list(self.client.generate(prompt_token_ids=ids, max_tokens=6, temperature=0,
                                           ignore_eos=True))
        self.assertEqual([i for d in deltas for i in d.token_ids], expected[0])
        self.assertEqual(self.client.generate_text(PROMPT, max_tokens=6, temperature=0,
                                                   ignore_eos=True), self.expected(6)[1])

    def test_structured_output(self):
        text = self.client.generate_text("Colour:", max_tokens=40, temperature=1.0, seed=3,
                                         json_schema={"enum": ["red", "green", "blue"]})
        self.assertIn(text, ['"red"', '"green"', '"blue"'])
        text = self.client.generate_text("Code:", max_tokens=40, temperature=1.0, seed=4,
                                         regex="[A-Z]{2}-[0-9]{3}")
        self.assertRegex(text, r"^[A-Z]{2}-[0-9]{3}$")
        self.assertIn(self.client.generate_text("Pick:", max_tokens=40, choices=["yes", "no"]),
                      ["yes", "no"])
        with self.assertRaises(ValueError):
            kvserve.client.build_generate_request("x", regex="a", grammar='root ::= "a"')

    def test_tokenize_and_detokenize(self):
        raw = self.server.stub.Tokenize(pb.TokenizeRequest(text="Natasha Rostova"), timeout=10)
        ids = self.client.tokenize("Natasha Rostova")
        self.assertEqual(ids, list(raw.token_ids))
        self.assertTrue(ids)
        self.assertEqual(self.client.detokenize(ids), "Natasha Rostova")
        with_bos = self.server.stub.Tokenize(
            pb.TokenizeRequest(text="x", add_special_tokens=True), timeout=10)
        self.assertEqual(self.client.tokenize("x", add_special_tokens=True),
                         list(with_bos.token_ids))

    def test_model_and_server_info(self):
        raw = self.server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        info = self.client.model_info()
        self.assertEqual(info["name"], raw.name)
        self.assertEqual(info["vocab_size"], raw.vocab_size)
        self.assertEqual(info["eos_token_ids"], list(raw.eos_token_ids))
        self.assertTrue(info["demo"])
        server = self.client.server_info()
        self.assertEqual(server["total_kv_pages"], self.server.server_info().total_kv_pages)
        self.assertFalse(server["draining"])

    def test_chat_streams_what_the_chat_rpc_streams(self):
        messages = [{"role": "user", "content": "Who is Pierre?"}]
        request = pb.ChatRequest(generation=pb.GenerateRequest(
            max_tokens=8, ignore_eos=True, sampling=pb.SamplingParams(temperature=0)))
        request.messages.add(role="user", content="Who is Pierre?")
        ids, text, _ = collect(self.server.stub.Chat(request, timeout=60))
        deltas = list(self.client.chat(messages, max_tokens=8, temperature=0, ignore_eos=True))
        self.assertEqual([i for d in deltas for i in d.token_ids], ids)
        self.assertEqual("".join(d.text for d in deltas), text)
        self.assertEqual(deltas[-1].finish_reason, "length")

    def test_server_errors_raise_kvserve_error(self):
        with self.assertRaises(kvserve.KvserveError) as e:
            list(self.client.generate(prompt_token_ids=[10 ** 8], max_tokens=2))
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertTrue(e.exception.details)
        with self.assertRaises(ValueError):
            self.client.generate()

    def test_stopping_early_cancels_the_request(self):
        stream = self.client.generate(PROMPT, max_tokens=2000, ignore_eos=True)
        next(stream)
        stream.close()
        info = self.server.wait_idle(timeout=30)
        self.assertEqual(info.running_requests, 0)
        self.assertEqual(info.free_kv_pages, info.total_kv_pages)

    def test_async_client_gives_the_same_results(self):
        async def run():
            async with kvserve.AsyncClient(self.server.address) as client:
                deltas = [d async for d in client.generate(PROMPT, max_tokens=10, temperature=0,
                                                           ignore_eos=True)]
                ids = await client.tokenize("Natasha")
                info = await client.model_info()
                text = await client.generate_text(PROMPT, max_tokens=10, temperature=0,
                                                  ignore_eos=True)
                with self.assertRaises(kvserve.KvserveError) as e:
                    await client.generate_text(prompt_token_ids=[10 ** 8], max_tokens=2)
                return deltas, ids, info, text, e.exception.code
        deltas, ids, info, text, code = asyncio.run(run())
        expected_ids, expected_text, _ = self.expected(10)
        self.assertEqual([i for d in deltas for i in d.token_ids], expected_ids)
        self.assertEqual(text, expected_text)
        self.assertEqual(deltas[-1].finish_reason, "length")
        self.assertEqual(ids, self.client.tokenize("Natasha"))
        self.assertEqual(info["name"], self.client.model_info()["name"])
        self.assertEqual(code, "INVALID_ARGUMENT")

    def test_command_line(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = CLIENT_DIR + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONIOENCODING"] = "utf-8"

        def run(*a):
            # Bytes decoded here: text=True would turn a generated "\r" into "\n".
            r = subprocess.run([sys.executable, "-m", "kvserve", "--target", self.server.address,
                                *a], capture_output=True, timeout=60, env=env)
            return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode("utf-8"),
                                               r.stderr.decode("utf-8"))
        r = run("info")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["model"]["name"], self.client.model_info()["name"])
        r = run("tokenize", "Natasha")
        self.assertEqual(json.loads(r.stdout), {"ids": self.client.tokenize("Natasha")})
        r = run("generate", PROMPT, "--max-tokens", "5", "--temperature", "0", "--ignore-eos")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.expected(5)[1] + "\n")
        self.assertIn("[length: ", r.stderr)

    def test_example_uses_the_client(self):
        r = subprocess.run([sys.executable, EXAMPLE, "--target", self.server.address, "--prompt",
                            PROMPT, "--max-tokens", "7", "--ignore-eos"],
                           capture_output=True, timeout=60,
                           env=dict(os.environ, PYTHONIOENCODING="utf-8"))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode("utf-8")
        self.assertTrue(out.startswith(self.expected(7)[1] + "\n[finish_reason=LENGTH "), out)


class InstallTest(unittest.TestCase):
    """`pip install ./clients/python` with no package index, in a venv that sees Debian's
    grpcio and protobuf, then the installed package and script against a real server."""

    def test_pip_install_offline_and_use(self):
        with tempfile.TemporaryDirectory(prefix="kvserve_client_venv_") as tmp:
            venv = os.path.join(tmp, "venv")
            subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv],
                           check=True, timeout=120)
            python = os.path.join(venv, "bin", "python")
            env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")
                   and k != "PYTHONPATH"}
            env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS="", PIP_DISABLE_PIP_VERSION_CHECK="1")
            r = subprocess.run([python, "-m", "pip", "install", CLIENT_DIR],
                               capture_output=True, text=True, timeout=300, env=env, cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = subprocess.run([python, "-c", "import kvserve; print(kvserve.__file__)"],
                               capture_output=True, text=True, timeout=60, env=env, cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.strip().startswith(venv), r.stdout)
            with Server() as server:
                r = subprocess.run([os.path.join(venv, "bin", "kvserve-client"), "--target",
                                    server.address, "tokenize", "War and Peace"],
                                   capture_output=True, text=True, timeout=60, env=env, cwd=tmp)
                self.assertEqual(r.returncode, 0, r.stderr)
                raw = server.stub.Tokenize(pb.TokenizeRequest(text="War and Peace"), timeout=10)
                self.assertEqual(json.loads(r.stdout)["ids"], list(raw.token_ids))


class MissingGrpcTest(unittest.TestCase):
    """An interpreter without grpcio (a bare venv, as a pyenv Python first on PATH would be):
    the example and the package say which interpreter lacks it and what to do."""

    def test_the_message_names_the_fix(self):
        with tempfile.TemporaryDirectory(prefix="kvserve_bare_venv_") as tmp:
            subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", tmp], check=True,
                           timeout=120)
            python = os.path.join(tmp, "bin", "python")
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            for args in ([python, EXAMPLE, "--prompt", "x"],
                         [python, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                          "import kvserve", CLIENT_DIR]):
                with self.subTest(args=args[1]):
                    r = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
                    self.assertNotEqual(r.returncode, 0)
                    self.assertIn("No module named 'grpc'", r.stderr)
                    self.assertIn("/usr/bin/python3", r.stderr)
                    self.assertIn("python3-grpcio", r.stderr)
                    self.assertIn(f"{python} -m pip install grpcio protobuf", r.stderr)


if __name__ == "__main__":
    unittest.main()
