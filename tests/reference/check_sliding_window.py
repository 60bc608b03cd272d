#!/usr/bin/python3
"""A GGUF that declares a sliding attention window (as Mistral 7B v0.1's conversions to `llama` do:
llama.attention.sliding_window; here also `qwen2` and `qwen3`) gets the same tokens from kvserve as from llama.cpp, and both
attend to the whole context: llama.cpp does not apply the key for these architectures, so
kvserve records it, says so in its log, and does not apply it either (issue 17 item 4).

The check is able to fail: a window of 8 tokens under a 41-token prompt changes the float64
reference's greedy tokens (shown first), so a kvserve or llama.cpp that applied it would not
match the whole-context reference. Synthetic F32 models (GQA, 4 layers), 16 greedy tokens each.

  check_sliding_window.py --kvserve PATH --workdir DIR [--cache DIR]
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402
import refcommon as rc  # noqa: E402

WINDOW = 8
N_TOKENS = 16
PROMPT_LEN = 41
# The architectures kvserve loads; qwen3 with a head size (32) other than dim / heads (16).
SPECS = [rc.spec("llama", "F32"), rc.spec("qwen2", "F32"), rc.spec("qwen3", "F32", head_dim=32)]


def with_window(src, dst, arch, window):
    """`src` plus ARCH.attention.sliding_window = window, tensors unchanged."""
    g = rc.gguf_py
    g.copy_with_metadata(src, dst, {f"{arch}.attention.sliding_window": g.Value(g.UINT32, window)})


def check(a, cache, spec):
    arch = spec["arch"]
    base = rc.ensure_model(cache, spec)
    path = os.path.join(a.workdir, f"{rc.spec_name(spec)}-sliding-window-{WINDOW}.gguf")
    with_window(base, path, arch, WINDOW)
    print(f"-- {rc.spec_name(spec)}")
    vocab = len(rc.gguf_py.read_gguf(path).get("tokenizer.ggml.tokens"))
    prompt = rc.prompts(vocab, lengths=(PROMPT_LEN,), seed=11)[0]

    ref = llama_ref.Model(path)
    whole = llama_ref.greedy(ref, prompt, N_TOKENS)
    ref.window = WINDOW
    windowed = llama_ref.greedy(ref, prompt, N_TOKENS)
    ref.window = None
    print(f"reference, whole context: {whole}\nreference, window {WINDOW}:     {windowed}")
    if whole == windowed:
        raise rc.CheckFailed(f"a window of {WINDOW} does not change the reference's tokens: "
                             "this prompt cannot tell the two behaviours apart")

    oracle = rc.oracle_greedy(path, prompt, N_TOKENS, cache)
    print(f"llama.cpp:                 {oracle}")
    # llama.cpp against the whole-context reference (equal, or a first difference at a
    # near-tie of it; its window-8 tokens differ from the first one on).
    print(rc.compare_greedy(path, ref, prompt, whole, oracle, "reference (whole) vs llama.cpp"))

    cmd = [a.kvserve, "generate", "--model", path, "--prompt-ids", rc.ids_arg(prompt),
           "--max-tokens", str(N_TOKENS), "--weight-dtype", "f32"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise rc.CheckFailed(f"kvserve exited {r.returncode}: {r.stderr[-2000:]}")
    ours = [int(t) for t in json.loads(r.stdout.strip().splitlines()[-1])["ids"]]
    print(f"kvserve:                   {ours}")
    print(rc.compare_greedy(path, ref, prompt, ours, oracle, "kvserve vs llama.cpp"))
    note = f"declares a sliding attention window of {WINDOW} tokens; not applied"
    if note not in r.stderr:
        raise rc.CheckFailed(f"kvserve's log does not say '{note}':\n{r.stderr[-2000:]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvserve", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cache", default=None)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    cache = a.cache or os.path.join(a.workdir, "models")
    try:
        for spec in SPECS:
            check(a, cache, spec)
    except rc.CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print("sliding window declared by llama, qwen2, qwen3 files: applied by neither llama.cpp nor kvserve: OK")


if __name__ == "__main__":
    main()
