"""The default model (issue 16): `kvserve serve` with no --model (and no model, weight or KV
flag: only loopback ports) serves models/kvserve-demo.gguf, trained on War and Peace, and

* its greedy text from three prompts about the novel is at least 80% words that occur in the
  novel (../shared/data/war-and-peace.txt, the training text, read here independently);
* llama.cpp (node-llama-cpp) tokenizes the prompts to the same ids and generates the same
  greedy tokens on the same file (a first difference only at a near-tie of the float64
  reference with the roundings emulated, as tests/reference judges every quantized model);
* its chat template makes a passage of the novel out of a conversation, and the answer is
  words too.
"""
import json
import os
import subprocess
import sys
import unittest

from server_harness import Server, collect, greedy_request, pb
from war_and_peace import word_share

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import llama_ref  # noqa: E402
import refcommon as rc  # noqa: E402

PROMPTS = ["Prince Andrew", "Natasha looked at", "The French army"]
N_TOKENS = 48
CACHE = os.path.join(os.environ.get("KVSERVE_ARTIFACTS", "/tmp"), "default_model_oracle")
def oracle_tokenize(model, text):
    r = subprocess.run(["node", rc.oracle_script(), "tokenize", model, text], capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        raise rc.CheckFailed(f"oracle tokenize failed: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["ids"]


class DefaultModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(default_model=True)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_model_info(self):
        info = self.server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
        self.assertEqual(info.name, "kvserve-demo")
        self.assertTrue(info.demo)
        self.assertEqual(info.vocab_size, 4096)
        self.assertEqual(os.path.basename(self.server.model_path), "kvserve-demo.gguf")
        log = "\n".join(self.server.lines)
        self.assertIn("Q8_0", log)  # the file's weights, kept quantized by default

    def test_greedy_text_is_the_novels_words_and_llamacpp_agrees(self):
        path = self.server.model_path
        ref = None
        for prompt in PROMPTS:
            ids = list(self.server.stub.Tokenize(pb.TokenizeRequest(text=prompt), timeout=10).token_ids)
            self.assertEqual(ids, oracle_tokenize(path, prompt), f"tokens of {prompt!r}")
            ours, text, last = collect(self.server.stub.Generate(greedy_request(N_TOKENS, prompt=prompt),
                                                                 timeout=120))
            self.assertEqual(len(ours), N_TOKENS)
            n, share = word_share(text)
            print(f"{prompt!r} -> {text!r}: {n} words, {share:.0%} in War and Peace", flush=True)
            self.assertGreaterEqual(n, 15, f"{prompt!r}: too few words in {text!r}")
            self.assertGreaterEqual(share, 0.8, f"{prompt!r}: {text!r}")
            want = rc.oracle_greedy(path, ids, N_TOKENS, CACHE)
            if ours != want and ref is None:
                ref = llama_ref.Model(path)
            print(rc.compare_greedy_emulated(ref, ids, ours, want, f"{prompt!r}", eos=4095),
                  flush=True)

    def test_chat_answers_in_words(self):
        request = pb.ChatRequest(generation=pb.GenerateRequest(
            max_tokens=40, ignore_eos=True, sampling=pb.SamplingParams(temperature=0)))
        request.messages.add(role="user", content="Where is the army now?")
        _, text, _ = collect(self.server.stub.Chat(request, timeout=120))
        n, share = word_share(text)
        print(f"chat -> {text!r}: {n} words, {share:.0%} in War and Peace", flush=True)
        self.assertGreaterEqual(n, 15)
        self.assertGreaterEqual(share, 0.8, text)


if __name__ == "__main__":
    unittest.main()
