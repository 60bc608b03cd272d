#!/usr/bin/python3
"""kvserve's logits against the float64 NumPy reference (llama_ref.py).

For synthetic models (llama and qwen2 with GQA, qwen2 with q/k/v biases; F32, F16, BF16, Q8_0
files; one with a tied LM head) and the shared tiny model, runs
  kvserve logits --model F --prompt-ids ... --weight-dtype f32|bf16 --out FILE
on a 20-id prompt and requires max|kvserve - ref| / max|ref| over all prompt positions below
1e-4 with f32 weights and 2e-2 with bf16 weights. The reference uses the file's weights exactly
(dequantized to float64), so the only differences allowed are kvserve's own arithmetic.

  check_logits.py --kvserve PATH --workdir DIR [--cache DIR] [--weight-dtype f32|bf16]

bf16 weights need oneDNN's bf16 matmul (AVX-512 BF16 hosts). Where kvserve reports that this
CPU has none, the bf16 check exits 77, which ctest reports as Skipped (never as passed).
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402
import refcommon as rc  # noqa: E402

TOLERANCE = {"f32": 1e-4, "bf16": 2e-2}
SPECS = [rc.spec("llama", "F32"), rc.spec("llama", "F16"), rc.spec("llama", "Q8_0"), rc.spec("llama", "BF16"),
         rc.spec("llama", "F32", tied=True), rc.spec("qwen2", "F32"), rc.spec("qwen2", "F16"),
         rc.spec("qwen2", "Q8_0"), rc.spec("qwen2", "BF16"),
         rc.spec("qwen3", "F32", head_dim=32), rc.spec("qwen3", "F16", head_dim=32)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvserve", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cache", default=None, help="synthetic model cache (default WORKDIR/models)")
    ap.add_argument("--weight-dtype", choices=sorted(TOLERANCE), action="append",
                    help="weight dtypes to check (default: all)")
    a = ap.parse_args()
    dtypes = a.weight_dtype or sorted(TOLERANCE)
    os.makedirs(a.workdir, exist_ok=True)
    cache = a.cache or os.path.join(a.workdir, "models")
    t0 = time.time()
    failures = []
    try:
        models = [("tiny", rc.tiny_model())] + [(rc.spec_name(s), rc.ensure_model(cache, s)) for s in SPECS]
    except rc.CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    for name, path in models:
        m = llama_ref.Model(path)
        prompt = rc.prompts(m.vocab, lengths=(20,), seed=11)[0]
        ref = llama_ref.forward(m, prompt)
        for dtype in dtypes:
            tol = TOLERANCE[dtype]
            out = os.path.join(a.workdir, f"{name}.{dtype}.logits.f32")
            try:
                got = rc.kvserve_logits(a.kvserve, path, prompt, dtype, out, m.vocab)
            except (rc.CheckFailed, OSError) as e:
                if dtype == "bf16" and "no bf16 matmul on this CPU" in str(e):
                    print(f"SKIPPED: bf16 weights are not available on this CPU: {e}")
                    sys.exit(77)
                failures.append(f"{name} {dtype}: {e}")
                print(f"FAIL {name} {dtype}: {e}", flush=True)
                continue
            err = np.abs(got - ref)
            rel = float(err.max() / np.abs(ref).max())
            worst = np.unravel_index(np.argmax(err), err.shape)
            line = (f"{name} weights={dtype}: max|diff|/max|ref| = {rel:.2e} (limit {tol:g}); worst at "
                    f"position {worst[0]} token {worst[1]}: kvserve {got[worst]:.6g} ref {ref[worst]:.6g}")
            if not np.all(np.isfinite(got)) or not rel < tol:
                failures.append(line)
                print("FAIL " + line, flush=True)
            else:
                print("ok   " + line, flush=True)
    print(f"({time.time() - t0:.1f} s)")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("kvserve logits == reference: OK")


if __name__ == "__main__":
    main()
