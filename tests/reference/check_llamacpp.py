#!/usr/bin/python3
"""kvserve's greedy tokens against llama.cpp's (the oracle, node-llama-cpp).

On the shared tiny model and synthetic llama and qwen2 models with GQA in F32, F16 and Q8_0,
and qwen3 (per-head q/k norms, head size 32 != dim / heads) in F16 and Q8_0,
for 5 prompts (1 to 40 ids, BOS first), `kvserve generate --max-tokens 32 --weight-dtype f32`
must print the ids llama.cpp generates. Where they differ, the float64 reference logits at the
first differing position must show that kvserve picked the reference's top token and that
llama.cpp's token is within a near-tie of it (llama.cpp rounds K/V to f16, and quantizes matmul
inputs to 8 bits for Q8_0 weights; see refcommon.TIE_TOLERANCE); the evidence is printed.
A missing oracle is a failure, never a skip.

  check_llamacpp.py --kvserve PATH --workdir DIR [--cache DIR]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402
import refcommon as rc  # noqa: E402

N_TOKENS = 32
SPECS = [rc.spec(arch, t) for arch in ("llama", "qwen2") for t in ("F32", "F16", "Q8_0")] + [
    # qwen3: per-head q/k RMSNorm, and a head size (32) other than dim / heads (16)
    rc.spec("qwen3", t, head_dim=32) for t in ("F16", "Q8_0")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvserve", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cache", default=None, help="synthetic model and oracle cache (default WORKDIR/models)")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    cache = a.cache or os.path.join(a.workdir, "models")
    t0 = time.time()
    failures = []
    try:
        rc.oracle_script()
        models = [("tiny", rc.tiny_model())] + [(rc.spec_name(s), rc.ensure_model(cache, s)) for s in SPECS]
    except rc.CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    for name, path in models:
        ref_model = None  # loaded only when a divergence must be judged
        vocab = len(rc.gguf_py.read_gguf(path).get("tokenizer.ggml.tokens"))
        prompts = rc.prompts(vocab)
        try:
            answers = rc.oracle_greedy_many(path, prompts, N_TOKENS, cache)
        except rc.CheckFailed as e:
            failures.append(f"{name}: {e}")
            print(f"FAIL {e}", flush=True)
            continue
        for p, oracle in zip(prompts, answers):
            label = f"{name} prompt[{len(p)}]"
            try:
                ours = rc.kvserve_generate(a.kvserve, path, p, N_TOKENS, "f32")
                if ours != oracle and ref_model is None:
                    ref_model = llama_ref.Model(path)
                print(rc.compare_greedy(path, ref_model, p, ours, oracle, label), flush=True)
            except rc.CheckFailed as e:
                failures.append(f"{label}: {e}")
                print(f"FAIL {e}", flush=True)
    print(f"({time.time() - t0:.1f} s)")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("kvserve greedy == llama.cpp: OK")


if __name__ == "__main__":
    main()
