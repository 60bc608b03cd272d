"""Greedy generation through the real gRPC server with the default weights (--weight-dtype auto):

* batch invariance: 32 prompts of 1 to 300 ids, each first run alone, then all 32 at once,
  give exactly the same tokens (on an F16 file, which takes the float path, and on a Q4_K_M
  file, which takes the quantized kernels);
* llama.cpp agreement: the solo continuations equal node-llama-cpp's on the same file (first
  differences only at near-ties of the reference with llama.cpp's roundings, as
  tests/reference/check_llamacpp*.py judge them).
"""
import concurrent.futures
import os
import sys
import unittest

from server_harness import Server, collect, greedy_request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import llama_ref  # noqa: E402
import refcommon as rc  # noqa: E402

N_TOKENS = 32
N_PROMPTS = 32
CACHE = os.path.join(os.environ.get("KVSERVE_ARTIFACTS", "/tmp"), "server_greedy_models")
SHAPE = dict(dim=256, layers=2, heads=4, kv_heads=2, ffn=512)


def prompts(vocab):
    import numpy as np
    rng = np.random.default_rng(21)
    return [[1] + rng.integers(3, vocab, (i * 97) % 300).tolist() for i in range(N_PROMPTS)]


class ServerGreedyTest(unittest.TestCase):
    def check(self, weight_type):
        path = rc.ensure_model(CACHE, rc.spec("llama", weight_type, **SHAPE))
        vocab = len(rc.gguf_py.read_gguf(path).get("tokenizer.ggml.tokens"))
        ps = prompts(vocab)
        with Server("--model", path, "--weight-dtype", "auto", "--kv-cache-memory", "256MiB") as s:
            solo = [collect(s.stub.Generate(greedy_request(N_TOKENS, ids=p), timeout=120))[0]
                    for p in ps]
            with concurrent.futures.ThreadPoolExecutor(N_PROMPTS) as pool:
                together = list(pool.map(
                    lambda p: collect(s.stub.Generate(greedy_request(N_TOKENS, ids=p),
                                                      timeout=300))[0], ps))
            log = "\n".join(s.lines)
        self.assertIn("weights: ", log)
        for i, (a, b) in enumerate(zip(solo, together)):
            self.assertEqual(a, b, f"{weight_type} prompt {i} ({len(ps[i])} ids): alone vs batched")
        oracle = rc.oracle_greedy_many(path, ps, N_TOKENS, CACHE)
        ref = llama_ref.Model(path)
        quantized = weight_type not in ("F32", "F16", "BF16")
        for i, (p, ours, want) in enumerate(zip(ps, solo, oracle)):
            label = f"{weight_type} prompt {i} [{len(p)}]"
            try:
                if quantized:
                    print(rc.compare_greedy_emulated(ref, p, ours, want, label), flush=True)
                else:
                    print(rc.compare_greedy(path, ref, p, ours, want, label), flush=True)
            except rc.CheckFailed as e:
                self.fail(str(e))

    def test_float_file(self):
        self.check("F16")

    def test_q4_k_m_file(self):
        self.check("Q4_K_M")


if __name__ == "__main__":
    unittest.main()
