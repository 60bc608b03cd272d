#!/usr/bin/python3
"""kvserve's logits on quantized GGUF files against the NumPy reference with ggml's numerics.

For every quantized type kvserve reads (and the Q4_K_M / Q5_K_M mixes), on a synthetic llama with
GQA (and a qwen2 with biases and a tied-embeddings llama for some types), `kvserve logits
--weight-dtype auto` at every position of a 40-id prompt must equal llama_ref's forward pass with
llama.cpp's matmul roundings emulated (activations quantized to q8_0 / q8_1 / q8_K blocks exactly
as ggml-cpu does, integer dot products, see ggml_quants.py) and an f32 K/V cache (kvserve's), to
within TOLERANCE of each row's logit range. This is the check that kvserve multiplies the same
integers as llama.cpp: with unquantized activations the distance is ~1e-2 of the range; float
rounding alone is ~1e-7. (llama.cpp's f16 K/V cache moves its logits by ~1e-2 of the range more;
check_llamacpp_quant.py compares greedy tokens with llama.cpp itself.)

Float32 arithmetic that differs in the last bits (kvserve's RMSNorm, RoPE or attention against
the float64 reference) makes an activation that sits within ~1e-5 of a rounding boundary round
the other way, which moves that position's logits (and, through its keys and values, every
later position's) by ~5e-3 of the range. So the reference reports how close each position's
activations came to a boundary (llama_ref.QUANT_MARGINS): positions before the first one with a
margin under MARGIN must match within TOLERANCE (at least MIN_CHECKED of them, or the model is
re-drawn with another prompt, from another first token), and every position within
FLIP_BOUND.

Also: `--weight-dtype q8_0` on an F32 file (kvserve's load-time quantizer) gives bitwise the
logits of the same weights written as Q8_0 by scripts/gguf_py.py's port of ggml's
quantize_row_q8_0_ref (the embeddings kept F32 in both).

  check_quant_logits.py --kvserve PATH --workdir DIR [--cache DIR] [--types T1,T2,...]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402
import refcommon as rc  # noqa: E402

TOLERANCE = 2e-6
MARGIN = 3e-5      # quant units: closer than this to .5, a last-bit difference may flip it
MIN_CHECKED = 4    # positions that must be compared strictly per model
FLIP_BOUND = 3e-2  # of the range: what a few flipped roundings can do, far below a wrong kernel's
TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL",
         "IQ4_XS", "Q4_K_M", "Q5_K_M"]
SHAPES = [dict(arch="llama", dim=256, layers=2, heads=4, kv_heads=2, ffn=512),
          dict(arch="qwen2", dim=256, layers=2, heads=2, kv_heads=1, ffn=512),
          dict(arch="llama", dim=256, layers=2, heads=4, kv_heads=2, ffn=512, tied=True)]


def rewrite_as_q8_0(src, dst):
    """src with every 2-D weight but token_embd written as Q8_0 by gguf_py (ggml's reference
    quantizer); the rest as is."""
    g = rc.gguf_py
    f = g.read_gguf(src)
    w = g.GGUFWriter()
    for k, v in f.metadata.items():
        if k != "general.alignment":
            w.add_value(k, v)
    for name, t in f.tensors.items():
        arr = f.tensor(name)
        w.add_tensor(name, arr, g.GGML_Q8_0 if arr.ndim == 2 and name != "token_embd.weight"
                     else g.GGML_F32)
    w.write(dst)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvserve", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--types", default=",".join(TYPES))
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    cache = a.cache or os.path.join(a.workdir, "models")
    t0 = time.time()
    failures = []
    for i, t in enumerate(a.types.split(",")):
        for shape in (SHAPES[0], SHAPES[1 + i % 2]):
            s = rc.spec(shape["arch"], t, **{k: v for k, v in shape.items() if k != "arch"})
            label = f"{t} {rc.spec_name(s)}"
            try:
                path = rc.ensure_model(cache, s)
                vocab = len(rc.gguf_py.read_gguf(path).get("tokenizer.ggml.tokens"))
                for attempt in range(6):
                    # BOS first, then (should position 0 sit at a boundary) other first tokens.
                    prompt = rc.prompts(vocab, lengths=(41,), seed=11 + i + 100 * attempt)[0]
                    prompt = prompt[:40] if attempt == 0 else prompt[1:]
                    llama_ref.QUANT_MARGINS = []
                    ref = llama_ref.forward(llama_ref.Model(path), prompt, emulate_llamacpp=True,
                                            f16_kv=False)
                    margins = np.min(np.stack(llama_ref.QUANT_MARGINS), axis=0)
                    llama_ref.QUANT_MARGINS = None
                    fragile = np.nonzero(margins < MARGIN)[0]
                    checked = int(fragile[0]) if len(fragile) else len(prompt)
                    if checked >= MIN_CHECKED:
                        break
                ours = rc.kvserve_logits(a.kvserve, path, prompt, "auto",
                                         os.path.join(a.workdir, "logits.f32"), vocab)
            except rc.CheckFailed as e:
                failures.append(f"{label}: {e}")
                print(f"FAIL {label}: {e}", flush=True)
                continue
            span = ref.max(axis=1) - ref.min(axis=1)
            err = np.abs(ours - ref).max(axis=1) / span
            strict = float(err[:checked].max()) if checked else float("inf")
            loose = float(err.max())
            ok = checked >= MIN_CHECKED and strict <= TOLERANCE and loose <= FLIP_BOUND
            print(f"{'ok  ' if ok else 'FAIL'} {label}: positions 0-{checked - 1} (before the first "
                  f"boundary-close activation) within {strict:.2e} of the range; all {len(prompt)} "
                  f"within {loose:.2e}", flush=True)
            if not ok:
                failures.append(f"{label}: strict {strict:.2e} (limit {TOLERANCE}, {checked} "
                                f"positions), all {loose:.2e} (limit {FLIP_BOUND})")
    try:
        shape = dict(SHAPES[0])
        shape.pop("arch")
        f32 = rc.ensure_model(cache, rc.spec("llama", "F32", **shape))
        q8 = os.path.join(a.workdir, "f32-as-q8_0.gguf")
        rewrite_as_q8_0(f32, q8)
        vocab = len(rc.gguf_py.read_gguf(f32).get("tokenizer.ggml.tokens"))
        prompt = rc.prompts(vocab, lengths=(20,), seed=5)[0]
        at_load = rc.kvserve_logits(a.kvserve, f32, prompt, "q8_0",
                                    os.path.join(a.workdir, "at_load.f32"), vocab)
        in_file = rc.kvserve_logits(a.kvserve, q8, prompt, "auto",
                                    os.path.join(a.workdir, "in_file.f32"), vocab)
        same = np.array_equal(at_load, in_file)
        print(f"{'ok  ' if same else 'FAIL'} F32 file quantized at load to Q8_0 == the Q8_0 file: "
              f"max difference {np.abs(at_load - in_file).max():.3e}", flush=True)
        if not same:
            failures.append("--weight-dtype q8_0 differs from the Q8_0 file of the same weights")
    except rc.CheckFailed as e:
        failures.append(f"q8_0 at load: {e}")
    print(f"({time.time() - t0:.0f} s)")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("kvserve logits == reference with ggml's quantized numerics: OK")


if __name__ == "__main__":
    main()
