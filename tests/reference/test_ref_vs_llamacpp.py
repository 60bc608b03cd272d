#!/usr/bin/python3
"""Validates the NumPy reference (llama_ref.py) against llama.cpp, independently of kvserve:
the reference's greedy ids must equal llama.cpp's on the
shared tiny model and on synthetic llama and qwen2 F32 models with GQA (step by step with a full
recompute each step for the tiny model and one prompt per model; from one causal pass along
llama.cpp's ids, which gives the same picks, for the others). A first difference is
accepted only at a near-tie of the reference logits (llama.cpp keeps K/V in f16), with evidence.
It also checks that the test can fail: the reference with the other RoPE pairing (adjacent pairs
vs halves) must disagree with llama.cpp on both synthetic models.

  test_ref_vs_llamacpp.py --workdir DIR [--cache DIR]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402
import refcommon as rc  # noqa: E402

N_TOKENS = 24


def teacher_forced(m, prompt, oracle):
    """(ours, oracle) as compare_greedy wants them, from one causal pass along llama.cpp's ids:
    equal if every pick agrees, else both cut after the first disagreement."""
    picks = llama_ref.greedy_check(m, prompt, oracle)
    i = next((k for k in range(len(oracle)) if picks[k] != oracle[k]), None)
    if i is None:
        return list(oracle), oracle
    return oracle[:i] + [picks[i]], oracle[:i + 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cache", default=None, help="synthetic model cache (default WORKDIR/models)")
    a = ap.parse_args()
    cache = a.cache or os.path.join(a.workdir, "models")
    t0 = time.time()
    failures = []
    try:
        rc.oracle_script()
        models = [("tiny", rc.tiny_model())]
        for arch in ("llama", "qwen2"):
            s = rc.spec(arch, "F32")
            models.append((rc.spec_name(s), rc.ensure_model(cache, s)))
        for name, path in models:
            m = llama_ref.Model(path)
            for k, p in enumerate(rc.prompts(m.vocab, lengths=(1, 5, 17, 33))):
                oracle = rc.oracle_greedy(path, p, N_TOKENS, cache)
                if name == "tiny" or k == 1:
                    ours = llama_ref.greedy(m, p, N_TOKENS)  # full recompute at every step
                else:  # the same picks from one causal pass (see llama_ref.greedy_check)
                    ours, oracle = teacher_forced(m, p, oracle)
                label = f"{name} prompt[{len(p)}]"
                try:
                    print(rc.compare_greedy(path, m, p, ours, oracle, label), flush=True)
                except rc.CheckFailed as e:
                    print(f"FAIL {e}", flush=True)
                    failures.append(str(e))
            if name != "tiny":  # the wrong RoPE convention must be caught
                m.rope_neox = not m.rope_neox
                p = rc.prompts(m.vocab, lengths=(17,))[0]
                oracle = rc.oracle_greedy(path, p, N_TOKENS, cache)
                if llama_ref.greedy_check(m, p, oracle) == oracle:
                    failures.append(f"{name}: the reference with swapped RoPE pairing still matches llama.cpp; "
                                    "this test cannot tell RoPE conventions apart")
                else:
                    print(f"{name}: swapped RoPE pairing disagrees with llama.cpp, as it must")
    except rc.CheckFailed as e:
        failures.append(str(e))
    print(f"({time.time() - t0:.1f} s)")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("reference == llama.cpp: OK")


if __name__ == "__main__":
    main()
