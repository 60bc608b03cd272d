#!/usr/bin/python3
"""Validates the quantized-model generator (make_model.py) and the NumPy dequantizers
(ggml_quants.py through llama_ref.py) against llama.cpp, independently of kvserve.

For each of the 12 weight types (pure) and the Q4_K_M / Q5_K_M mixes, a small synthetic llama
model (dim 256, 2 layers, 4 query heads sharing 2 kv heads, head dim 64, ffn 512) is written as
random valid blocks. For 3 prompts (1 to 40 ids), llama.cpp's 32 greedy ids (node-llama-cpp) must
be the float64 reference's picks with llama.cpp's roundings emulated (llama_ref's
emulate_llamacpp: matmul inputs quantized to q8_0 / q8_1 / q8_K blocks exactly as x86 ggml-cpu does,
K/V in f16 through its CPU flash attention, RoPE in float32), computed in one causal pass along
llama.cpp's ids; at a first difference the emulated reference must show a near-tie: the gap to
llama.cpp's token below QUANT_TIE of the logit range.

Why a tolerance at all: measured through node-llama-cpp's token probabilities, the emulation
reproduces llama.cpp's logit gaps to ~1e-7 of the range at most steps, but llama.cpp accumulates
in float32 and we in float64, and now and then that difference moves a value across a rounding
boundary of an activation quantization (or of the f16 K/V); such a step then differs by 1e-3..5e-3
of the range. QUANT_TIE = 1e-2 covers one such flip; a wrong dequantization, a wrong activation
type or a wrong block layout moves logits by far more (the reference without emulation, which only
drops the activation quantization, is already off by ~5e-3 at every step).

The generated weights must be zero-mean: for every 2-D weight, the norm of its mean row, scaled
to what independent zero-mean rows give (sqrt(rows) * ||mean row|| / (rms * sqrt(cols)), about 1),
must stay below MAX_BIAS (a biased block type, e.g. Q4_0 with all-positive d whose blocks carry
-0.5 d, gives ~20 and makes llama.cpp repeat one token). llama.cpp must also not degenerate: one id
may not fill most of every continuation (these random 2-layer models do fall into a repeated token
for a prompt now and then, F32 ones too, so one such prompt is fine). A negative control checks
that the bias check can fail: the biased Q4_0 model must be flagged.
The evidence is printed per type; a missing oracle is a failure.

  test_quant_ref_vs_llamacpp.py --workdir DIR [--cache DIR]
"""

import argparse
import os
import sys
import time
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402
import refcommon as rc  # noqa: E402

N_TOKENS = 32
TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL",
         "IQ4_XS", "Q4_K_M", "Q5_K_M"]
SHAPE = dict(dim=256, layers=2, heads=4, kv_heads=2, ffn=512)
PROMPT_LENGTHS = (1, 9, 40)
# A divergence must be a tie this close (see the docstring for why and what was measured).
QUANT_TIE = 1e-2
# Degenerate output: one id fills at least this share of every continuation.
MAX_REPEAT_SHARE = 0.75
# Largest allowed mean-row statistic of a weight (about 1 for zero-mean random rows).
MAX_BIAS = 3.0


def judge(m, prompt, oracle, label):
    """Returns (line of evidence, True) when llama.cpp's ids are the emulated reference's picks
    or differ first at a near-tie; (evidence, False) otherwise."""
    logits = llama_ref.continuation_logits(m, prompt, oracle, emulate_llamacpp=True)[:len(oracle)]
    picks = np.argmax(logits, axis=1)
    rng = logits.max(axis=1) - logits.min(axis=1)
    top2 = np.sort(logits, axis=1)[:, -2:]
    min_gap = float(np.min((top2[:, 1] - top2[:, 0]) / rng))
    diff = [i for i in range(len(oracle)) if picks[i] != oracle[i]]
    if not diff:
        return f"{label}: equal ({len(oracle)} ids; smallest top-2 gap {min_gap:.1e} of the range)", True
    i = diff[0]
    gap = float(logits[i, picks[i]] - logits[i, oracle[i]]) / float(rng[i])
    plain = llama_ref.continuation_logits(m, prompt, oracle[:i], emulate_llamacpp=False)[-1]
    ev = (f"{label}: first difference at generated index {i}: llama.cpp {oracle[i]}, emulated reference "
          f"{int(picks[i])} (gap {gap:.2e} of the logit range, allowed {QUANT_TIE:g}); the reference without "
          f"emulation picks {int(np.argmax(plain))}")
    return ev, gap < QUANT_TIE


def degenerate(answers):
    """'' unless one id fills at least MAX_REPEAT_SHARE of every continuation."""
    tops = [Counter(a).most_common(1)[0] for a in answers]
    if len({t for t, _ in tops}) == 1 and all(c >= MAX_REPEAT_SHARE * len(a) for (_, c), a in zip(tops, answers)):
        return f"id {tops[0][0]} fills {', '.join(str(c) for _, c in tops)} of {len(answers[0])} ids"
    return ""


def weight_bias(m):
    """(worst mean-row statistic, tensor name) over the 2-D weights of a llama_ref.Model."""
    worst, where = 0.0, ""
    for name, w in m.w.items():
        if w.ndim != 2 or name == "output.weight" and "output.weight" not in m.types:
            continue
        rows, cols = w.shape
        stat = float(np.linalg.norm(w.mean(axis=0)) * np.sqrt(rows) / (np.sqrt(np.mean(w * w)) * np.sqrt(cols)))
        if stat > worst:
            worst, where = stat, name
    return worst, where


def negative_control(cache):
    """A biased Q4_0 model (every block scale positive) must be flagged by the bias check."""
    path = rc.ensure_model(cache, rc.spec("llama", "Q4_0", biased=True, **SHAPE))
    stat, where = weight_bias(llama_ref.Model(path))
    if stat <= MAX_BIAS:
        return False, (f"negative control: a biased Q4_0 model has a mean-row statistic of only {stat:.2f} "
                       f"({where}); the bias check is blind")
    return True, f"negative control: biased Q4_0 model flagged (mean-row statistic {stat:.1f} in {where}), as it must be"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cache", default=None, help="synthetic model and oracle cache (default WORKDIR/models)")
    ap.add_argument("--types", default=",".join(TYPES), help="comma-separated subset of " + ",".join(TYPES))
    a = ap.parse_args()
    cache = a.cache or os.path.join(a.workdir, "models")
    os.makedirs(a.workdir, exist_ok=True)
    t0 = time.time()
    failures = []
    summary = []
    try:
        rc.oracle_script()
    except rc.CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    for t in [x for x in a.types.split(",") if x]:
        s = rc.spec("llama", t, **SHAPE)
        try:
            path = rc.ensure_model(cache, s)
            m = llama_ref.Model(path)
            prompts = rc.prompts(m.vocab, lengths=PROMPT_LENGTHS)
            answers = rc.oracle_greedy_many(path, prompts, N_TOKENS, cache)
        except (rc.CheckFailed, ValueError) as e:
            failures.append(f"{t}: {e}")
            print(f"FAIL {t}: {e}", flush=True)
            continue
        verdicts = []
        stat, where = weight_bias(m)
        line = f"{t}: weights zero-mean: worst mean-row statistic {stat:.2f} ({where}), allowed {MAX_BIAS:g}"
        print(("" if stat <= MAX_BIAS else "FAIL ") + line, flush=True)
        if stat > MAX_BIAS:
            failures.append(line)
        deg = degenerate(answers)
        if deg:
            msg = f"{t}: llama.cpp's output is degenerate ({deg}) -- a biased block generator?"
            failures.append(msg)
            print("FAIL " + msg, flush=True)
        for p, oracle in zip(prompts, answers):
            label = f"{t} prompt[{len(p)}]"
            top, count = Counter(oracle).most_common(1)[0]
            if len(oracle) < N_TOKENS:
                msg = f"{label}: llama.cpp gave {len(oracle)} ids, expected {N_TOKENS}"
                failures.append(msg)
                print("FAIL " + msg, flush=True)
                continue
            ev, ok = judge(m, p, oracle, label)
            ev += f"; llama.cpp: {len(set(oracle))} distinct ids, most frequent {count}x"
            print(("" if ok else "FAIL ") + ev, flush=True)
            verdicts.append("equal" if ": equal" in ev else ("near-tie" if ok else "MISMATCH"))
            if not ok:
                failures.append(ev)
        summary.append(f"{t}: {', '.join(verdicts)}")
    try:
        ok, msg = negative_control(cache)
        print(("" if ok else "FAIL ") + msg, flush=True)
        if not ok:
            failures.append(msg)
    except rc.CheckFailed as e:
        failures.append(f"negative control: {e}")
    print("summary:\n  " + "\n  ".join(summary))
    print(f"({time.time() - t0:.1f} s)")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("quantized reference == llama.cpp: OK")


if __name__ == "__main__":
    main()
