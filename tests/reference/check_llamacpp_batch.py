#!/usr/bin/python3
"""Continuous batching against llama.cpp: 32 prompts of 1 to 300 ids run as ONE batch through
kvserve's engine loop (`kvserve generate --prompt-ids-file`) must each give llama.cpp's greedy
tokens — with prefix caching on and off, and with a KV pool so small that requests are
preempted and recomputed many times (the run must report preemptions).

Divergences are judged like check_llamacpp.py: only at a reference near-tie, with kvserve's
token the float64 reference's top token.

  check_llamacpp_batch.py --kvserve PATH --workdir DIR [--cache DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402
import refcommon as rc  # noqa: E402

N_TOKENS = 16
N_PROMPTS = 32


def batch_prompts(vocab):
    rng = np.random.default_rng(5)
    shared = rng.integers(3, vocab, 120).tolist()
    prompts = []
    for i in range(N_PROMPTS):
        length = 1 + (i * 97) % 300
        body = shared[: length - 1] if i % 3 == 0 else rng.integers(3, vocab, length - 1).tolist()
        prompts.append([1] + body)
        while len(prompts[-1]) < length:
            prompts[-1].append(int(rng.integers(3, vocab)))
    return prompts


def kvserve_batch(kvserve, model, prompts, n, workdir, extra):
    pfile = os.path.join(workdir, "prompts.txt")
    with open(pfile, "w") as f:
        for p in prompts:
            f.write(rc.ids_arg(p) + "\n")
    cmd = [kvserve, "generate", "--model", model, "--prompt-ids-file", pfile, "--max-tokens", str(n),
           "--weight-dtype", "f32", "--ignore-eos"] + extra
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise rc.CheckFailed(f"kvserve failed ({' '.join(cmd)}): {r.stderr[-2000:]}")
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    stats = [json.loads(l) for l in r.stderr.splitlines() if l.startswith("{")]
    return [l["ids"] for l in lines], (stats[-1] if stats else {})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvserve", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cache", default=None)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    cache = a.cache or os.path.join(a.workdir, "models")
    t0 = time.time()
    failures = []
    try:
        path = rc.ensure_model(cache, rc.spec("llama", "F32"))
        vocab = len(rc.gguf_py.read_gguf(path).get("tokenizer.ggml.tokens"))
        prompts = batch_prompts(vocab)
        oracle = rc.oracle_greedy_many(path, prompts, N_TOKENS, cache)
    except rc.CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    ref_model = None
    runs = [("prefix caching off", ["--enable-prefix-caching=false"], None),
            ("prefix caching on", ["--enable-prefix-caching=true"], "prefix_hit_tokens"),
            ("tiny KV pool", ["--kv-pages", "30", "--enable-prefix-caching=true"], "preemptions")]
    for label, extra, must_be_positive in runs:
        try:
            ours, stats = kvserve_batch(a.kvserve, path, prompts, N_TOKENS, a.workdir, extra)
        except rc.CheckFailed as e:
            failures.append(f"{label}: {e}")
            continue
        print(f"{label}: {stats}", flush=True)
        if must_be_positive and not stats.get(must_be_positive, 0) > 0:
            failures.append(f"{label}: expected {must_be_positive} > 0, stats {stats}")
        if len(ours) != len(prompts):
            failures.append(f"{label}: {len(ours)} outputs for {len(prompts)} prompts")
            continue
        for i, (p, o, want) in enumerate(zip(prompts, ours, oracle)):
            if o != want and ref_model is None:
                ref_model = llama_ref.Model(path)
            try:
                rc.compare_greedy(path, ref_model, p, o, want, f"{label} prompt {i} [{len(p)}]")
            except rc.CheckFailed as e:
                failures.append(str(e))
                print(f"FAIL {e}", flush=True)
    print(f"({time.time() - t0:.1f} s)")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"{N_PROMPTS} prompts in one batch == llama.cpp, 3 configurations: OK")


if __name__ == "__main__":
    main()
