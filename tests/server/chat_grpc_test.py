"""The gRPC Chat RPC against the real `kvserve serve` (the demo model, whose GGUF carries a chat
template): Chat streams exactly what Generate streams for the prompt Python jinja2 renders from
the same template and messages (tokenized without another BOS); its errors name the problem.

Environment as grpc_server_test.py, plus KVSERVE_SHARED (the shared models, for a model without
a chat template).
"""
import datetime
import json
import os
import sys
import unittest

import grpc
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from kvserve.v1 import generation_pb2 as pb
from server_harness import Server, collect, greedy_request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import gguf_py as g  # noqa: E402

MESSAGES = [("system", "  Be brief.  "), ("user", "Hi! What's \"2+2\"?"),
            ("assistant", "4."), ("user", "Ünïcode ✓ thanks\n")]


def render(template, messages, add_generation_prompt, bos, eos):
    """As transformers renders chat templates."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, \
        sort_keys=False: json.dumps(x, ensure_ascii=ensure_ascii, indent=indent,
                                    separators=separators, sort_keys=sort_keys)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda f: datetime.datetime.now().strftime(f)
    return env.from_string(template).render(
        messages=[{"role": r, "content": c} for r, c in messages], tools=None, documents=None,
        add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos)


def chat_request(messages, max_tokens, add_generation_prompt=None, **generation):
    r = pb.ChatRequest(generation=pb.GenerateRequest(
        max_tokens=max_tokens, ignore_eos=True, sampling=pb.SamplingParams(temperature=0),
        **generation))
    for role, content in messages:
        r.messages.add(role=role, content=content)
    if add_generation_prompt is not None:
        r.add_generation_prompt = add_generation_prompt
    return r


class ChatTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.stub = cls.server.stub
        gguf = g.read_gguf(cls.server.model_path)
        cls.template = gguf.get("tokenizer.chat_template")
        tokens = gguf.get("tokenizer.ggml.tokens")
        cls.bos = tokens[gguf.get("tokenizer.ggml.bos_token_id")]
        cls.eos = tokens[gguf.get("tokenizer.ggml.eos_token_id")]

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def test_chat_equals_generate_on_the_jinja2_prompt(self):
        self.assertTrue(self.template, "the demo model has no chat template")
        for gen in (None, True, False):
            prompt = render(self.template, MESSAGES, gen is not False, self.bos, self.eos)
            chat_ids, chat_text, chat_last = collect(
                self.stub.Chat(chat_request(MESSAGES, 12, gen), timeout=60))
            gen_ids, gen_text, gen_last = collect(self.stub.Generate(
                greedy_request(12, prompt=prompt, add_special_tokens=False), timeout=60))
            self.assertEqual(chat_ids, gen_ids)
            self.assertEqual(chat_text, gen_text)
            self.assertEqual(len(chat_ids), 12)
            # Byte-level vocabulary: one token per prompt byte, and no BOS added.
            self.assertEqual(chat_last.usage.prompt_tokens, len(prompt.encode("utf-8")))
            self.assertEqual(chat_last.usage.prompt_tokens, gen_last.usage.prompt_tokens)
            self.assertEqual(chat_last.finish_reason, pb.FINISH_REASON_LENGTH)

    def test_generation_prompt_is_part_of_the_prompt(self):
        with_prompt = collect(self.stub.Chat(chat_request(MESSAGES, 1, True), timeout=60))[2]
        without = collect(self.stub.Chat(chat_request(MESSAGES, 1, False), timeout=60))[2]
        extra = len(render(self.template, MESSAGES, True, self.bos, self.eos).encode()) - \
            len(render(self.template, MESSAGES, False, self.bos, self.eos).encode())
        self.assertGreater(extra, 0)
        self.assertEqual(with_prompt.usage.prompt_tokens - without.usage.prompt_tokens, extra)

    def test_errors_name_the_problem(self):
        cases = [
            (chat_request(MESSAGES, 4, prompt="x"), grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
            (chat_request(MESSAGES, 4, add_special_tokens=True),
             grpc.StatusCode.INVALID_ARGUMENT, "add_special_tokens"),
            (chat_request([], 4), grpc.StatusCode.INVALID_ARGUMENT, "messages"),
            (chat_request(MESSAGES, 0), grpc.StatusCode.INVALID_ARGUMENT, "max_tokens"),
        ]
        for request, code, word in cases:
            with self.assertRaises(grpc.RpcError) as e:
                collect(self.stub.Chat(request, timeout=30))
            self.assertEqual(e.exception.code(), code, e.exception.details())
            self.assertIn(word, e.exception.details())


class NoTemplateTest(unittest.TestCase):
    def test_model_without_chat_template_is_failed_precondition(self):
        model = os.path.join(os.environ.get("KVSERVE_SHARED", ""), "models",
                             "llama-2-tiny-random.gguf")
        if not os.path.exists(model):
            self.skipTest(f"{model} is missing")
        self.assertIsNone(g.read_gguf(model).get("tokenizer.chat_template"))
        with Server("--model", model) as server:
            with self.assertRaises(grpc.RpcError) as e:
                collect(server.stub.Chat(chat_request(MESSAGES, 2), timeout=30))
            self.assertEqual(e.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
            self.assertIn("chat template", e.exception.details())


if __name__ == "__main__":
    unittest.main()
