#!/usr/bin/python3
"""kvserve's quantized kernels (through the `quant_tool` test binary) against the NumPy oracle
ggml_quants.py, which shares no code with them:

  quant_tool dequantize TYPE IN.bin OUT.f32                 raw ggml blocks -> float32
  quant_tool quantize-activations q8_0|q8_1|q8_K IN.f32 OUT.bin --k K
  quant_tool matmul TYPE W.bin N K X.f32 M OUT.f32 [--isa ISA]
  quant_tool isas                                           available ISA names, one per line

Checks, for every weight type:
  * dequantize: bit-exact float32 (+0 and -0 count as equal) on random valid blocks with edge
    cases (zero / extreme scales, all-min / all-max quants, fp16 subnormal and +-65504 scales).
  * quantize-activations q8_0 / q8_1 / q8_K: byte-exact (ggml's x86 rounding: 127/amax and
    half-to-even for q8_0/q8_1, s from the float32 d; q8_K as quantize_row_q8_K_ref, bsums 0 in
    an all-zero block) on random rows and adversarial ones: zeros, a single nonzero, ties at .5,
    +-M ties, huge (1e30, 8e37) and tiny (1e-30, 1e-38) magnitudes, one or several rows at once.
    Rows whose 127/amax overflows (amax < ~3.7e-37, where ggml's SIMD code produces -128s) are
    compared too but reported as warnings unless --strict-overflow.
  * matmul: for N in {1, 7, 17, 33} (not multiples of 16), K of 1..8 blocks, M in {1..70}, on every
    ISA `quant_tool isas` lists: |y - y_ref| <= (G + 4) * 2^-24 * sum_k |x_q[k] * w[k]| (+ the
    |min terms|), where y_ref is ggml_quants.ref_matmul (exact integer dots of the same q8
    activations, scales applied in float64) and G the number of scale groups (+ min terms) in the
    row. Justification: with exact integer dots, a float32 kernel only rounds the products of the
    scales with those integers (at most ~3 roundings each) and the sum of at most G such terms
    (or partial sums of them); each rounding errs by at most 2^-24 relative, and no partial sum
    exceeds sum |x_q w|, so (G + 3) * 2^-24 * sum |x_q w| bounds any summation order (the
    classic gamma_n bound). llama.cpp's own AVX2/AVX-512 vec_dot stays below 1.1 x 2^-24 x
    sum |x_q w| (test_ggml_quants.py checks it). An error in the integer part (one quant off by
    one) or a float shortcut (e.g. d*sum(q) instead of q8_1's fp16 s) exceeds the bound.
Prints which ISAs ran and the worst error ratio per type and ISA.

  check_quant_kernels.py --tool PATH --workdir DIR [--quick] [--strict-overflow]
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ggml_quants as gq  # noqa: E402

FAILURES = []
WARNINGS = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL " + msg, flush=True)


def run(tool, args):
    r = subprocess.run([tool] + args, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"{os.path.basename(tool)} {' '.join(args)} exited {r.returncode}: {r.stderr.strip()[-1000:]}")
    return r.stdout


def adversarial_rows(k, rng):
    rows = {"zeros": np.zeros(k)}
    one = np.zeros(k)
    one[k // 3] = 3.0
    rows["single nonzero"] = one
    one = np.zeros(k)
    one[-1] = -1e-3
    rows["single negative"] = one
    ties = np.tile([127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5, 3.5, 4.5, -4.5, 5.5, 6.5,
                    0.49999997, -0.50000006], k // 16)
    rows["ties at .5"] = ties
    rows["ties at .5 negated"] = -ties
    amax11 = np.zeros(k)
    amax11[::32], amax11[1::32] = 11.0, 5.5  # 127/amax rounds x*id up to 64, 1/d would give 63
    rows["127/amax vs 1/d"] = amax11
    pm = np.full(k, 2.0)
    pm[::2] = -2.0
    rows["+-M ties, - first"] = pm
    rows["+-M ties, + first"] = -pm
    for scale in (1e30, 8e37, 1e7, 1e-30, 1e-38):
        rows[f"normal x {scale:g}"] = rng.normal(size=k) * scale
    rows["integers/127"] = rng.integers(-127, 128, size=k) / 127.0 * 3.7
    mixed = rng.normal(size=k)
    mixed[: k // 2] *= 1e-6
    rows["mixed magnitudes"] = mixed
    return {n: r.astype(np.float32) for n, r in rows.items()}


def overflow_blocks(x, block):
    """Blocks whose 127/amax overflows float32 (ggml's SIMD code then writes -128s)."""
    amax = np.abs(x.reshape(-1, block)).max(axis=1)
    with np.errstate(divide="ignore", over="ignore"):
        return (amax > 0) & ~np.isfinite(np.float32(127) / amax)


def check_dequantize(tool, wd, rng, quick):
    for t, ti in gq.WEIGHT_TYPES.items():
        nb = 64 if quick else 512
        raw = gq.random_blocks(t, nb, rng, rng.uniform(1e-3, 10, nb), 0.3, gq.TEST_EDGES)
        src, dst = os.path.join(wd, f"deq-{t}.bin"), os.path.join(wd, f"deq-{t}.f32")
        raw.tofile(src)
        if os.path.exists(dst):
            os.remove(dst)
        try:
            run(tool, ["dequantize", t, src, dst])
        except RuntimeError as e:
            fail(f"dequantize {t}: {e}")
            continue
        got = np.fromfile(dst, dtype="<f4")
        want = gq.dequantize(t, raw)
        if got.size != want.size:
            fail(f"dequantize {t}: {got.size} floats written, expected {want.size}")
            continue
        same = (got.view(np.uint32) == want.view(np.uint32)) | ((got == 0) & (want == 0))
        if not same.all():
            i = int(np.nonzero(~same)[0][0])
            fail(f"dequantize {t}: {int((~same).sum())} of {want.size} values differ; first at element {i} "
                 f"(block {i // ti.block}): got {got[i]!r}, want {want[i]!r}")
        else:
            print(f"dequantize {t}: {want.size} values bit-exact")


def check_quantize(tool, wd, rng, quick, strict_overflow):
    for kind, block in (("q8_0", 32), ("q8_1", 32), ("q8_K", 256)):
        k = 512
        cases = adversarial_rows(k, rng)
        for i in range(4 if quick else 16):
            cases[f"random row {i}"] = (rng.normal(size=k) * np.exp(3 * rng.normal())).astype(np.float32)
        tiny = np.zeros(k, np.float32)
        tiny[5] = 1e-44
        tiny[300] = -2e-38
        cases["overflowing 127/amax (x86 SIMD artefact)"] = tiny
        multi = np.stack([cases["ties at .5"], cases["random row 0"], cases["zeros"]])
        cases["3 rows at once"] = multi
        n_ok = 0
        for name, x in cases.items():
            src, dst = os.path.join(wd, f"act-{kind}.f32"), os.path.join(wd, f"act-{kind}.bin")
            np.ascontiguousarray(x, "<f4").tofile(src)
            if os.path.exists(dst):
                os.remove(dst)
            try:
                run(tool, ["quantize-activations", kind, src, dst, "--k", str(k)])
            except RuntimeError as e:
                fail(f"quantize-activations {kind} [{name}]: {e}")
                continue
            got = np.fromfile(dst, dtype=np.uint8)
            want = gq.quantize_activations(kind, x).raw.reshape(-1)
            if got.size == want.size and np.array_equal(got, want):
                n_ok += 1
                continue
            nbytes = gq.ACT_TYPES[kind].nbytes
            if got.size != want.size:
                msg = f"quantize-activations {kind} [{name}]: {got.size} bytes written, expected {want.size}"
            else:
                bad = np.nonzero(got != want)[0]
                b = int(bad[0] // nbytes)
                msg = (f"quantize-activations {kind} [{name}]: {bad.size} bytes differ, first in block {b} at "
                       f"byte {int(bad[0] % nbytes)}: got {got[b * nbytes:(b + 1) * nbytes][:12].tolist()}..., "
                       f"want {want[b * nbytes:(b + 1) * nbytes][:12].tolist()}...")
            if overflow_blocks(np.asarray(x), block).any() and not strict_overflow:
                WARNINGS.append(msg)
                print("WARN " + msg + " (only where 127/amax overflows; --strict-overflow makes it a failure)")
            else:
                fail(msg)
        print(f"quantize-activations {kind}: {n_ok} of {len(cases)} inputs byte-exact")


def check_matmul(tool, wd, rng, quick, isas):
    shapes_n = (1, 7, 17, 33)
    ms = (1, 2, 5, 16, 33, 70) if not quick else (1, 5, 70)
    for isa in isas:
        worst = {}
        for t, ti in gq.WEIGHT_TYPES.items():
            for nblk in ((1, 3, 8) if quick else (1, 2, 3, 5, 8)):
                k = nblk * ti.block
                n = shapes_n[(nblk + len(t)) % len(shapes_n)]
                m = ms[(nblk * 7 + len(t)) % len(ms)]
                w = gq.random_matrix(t, n, k, rng, rng.uniform(0.01, 1), 0.2, gq.TEST_EDGES)
                x = (rng.normal(size=(m, k)) * np.exp(rng.normal(size=(m, 1)))).astype(np.float32)
                x[0, : min(k, 32)] = 0  # an all-zero activation block
                if m > 1:
                    x[1] = adversarial_rows(k, rng)["ties at .5"][:k] if k % 16 == 0 else x[1]
                wf, xf, of = (os.path.join(wd, f"mm-{t}.{e}") for e in ("bin", "x.f32", "out.f32"))
                with open(wf, "wb") as f:
                    f.write(w)
                x.astype("<f4").tofile(xf)
                if os.path.exists(of):
                    os.remove(of)
                label = f"matmul {t} N={n} K={k} M={m} --isa {isa}"
                try:
                    run(tool, ["matmul", t, wf, str(n), str(k), xf, str(m), of, "--isa", isa])
                except RuntimeError as e:
                    fail(f"{label}: {e}")
                    continue
                got = np.fromfile(of, dtype="<f4").astype(np.float64)
                if got.size != m * n:
                    fail(f"{label}: {got.size} floats written, expected {m * n}")
                    continue
                got = got.reshape(m, n)
                y, absum, nterms = gq.ref_matmul(t, w, n, k, x)
                err = np.abs(got - y)
                bound = (nterms + 4) * 2.0 ** -24 * absum
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(absum > 0, err / (2.0 ** -24 * absum), np.where(err > 0, np.inf, 0))
                worst[t] = max(worst.get(t, 0.0), float(ratio.max()))
                bad = ~(err <= bound)
                if bad.any():
                    i, j = (int(v[0]) for v in np.nonzero(bad))
                    fail(f"{label}: {int(bad.sum())} of {m * n} outputs out of bound; y[{i},{j}] = {got[i, j]!r}, "
                         f"reference {y[i, j]!r}, |diff| = {err[i, j]:.3g} > bound {bound[i, j]:.3g} "
                         f"({ratio[i, j]:.1f} x 2^-24 x sum|x_q w|, allowed {nterms + 4})")
        print(f"matmul --isa {isa}: worst |y - y_ref| / (2^-24 sum|x_q w|): " +
              ", ".join(f"{t} {r:.2f}" for t, r in worst.items()), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", required=True, help="path of kvserve's quant_tool")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--quick", action="store_true", help="fewer shapes and blocks")
    ap.add_argument("--strict-overflow", action="store_true",
                    help="blocks whose 127/amax overflows must match ggml's SIMD output too")
    ap.add_argument("--seed", type=int, default=12345)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    t0 = time.time()
    if not os.path.isfile(a.tool):
        print(f"FAILED: quant_tool not found at {a.tool}", file=sys.stderr)
        sys.exit(1)
    try:
        isas = [l.strip() for l in run(a.tool, ["isas"]).splitlines() if l.strip()]
    except RuntimeError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    if not isas:
        print("FAILED: quant_tool isas listed no ISA", file=sys.stderr)
        sys.exit(1)
    print(f"ISAs to check (from quant_tool isas): {', '.join(isas)}")
    rng = np.random.default_rng(a.seed)
    check_dequantize(a.tool, a.workdir, rng, a.quick)
    check_quantize(a.tool, a.workdir, rng, a.quick, a.strict_overflow)
    check_matmul(a.tool, a.workdir, rng, a.quick, isas)
    print(f"ISAs that ran: {', '.join(isas)}")
    print(f"({time.time() - t0:.1f} s)")
    if WARNINGS:
        print(f"{len(WARNINGS)} warning(s) (overflowing 127/amax only)")
    if FAILURES:
        print(f"FAILED: {len(FAILURES)} check(s)", file=sys.stderr)
        sys.exit(1)
    print("quant kernels == NumPy oracle: OK")


if __name__ == "__main__":
    main()
