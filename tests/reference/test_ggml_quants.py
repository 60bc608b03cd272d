#!/usr/bin/python3
"""Tests of the NumPy ggml oracle (ggml_quants.py), so that the oracle itself is checked:

1. Known bits: for every type a block written byte by byte here, whose decoded values are derived
   by hand in the comments from the layout in ggml-common.h / dequantize_row_* (the expected
   values are literals, not computed by ggml_quants).
2. Known activation quantizations (q8_0/q8_1/q8_K): round half to even, 127/amax instead of 1/d,
   the fp16 s of q8_1, the sign convention and tie rule of q8_K, bsums.
3. The reference matmul on hand cases (Q4_1's min term uses the fp16 s; K-quant mins use bsums).
4. Properties: pack/unpack round trip, float32 dequantization == exact value rounded once,
   ref_matmul == the fast float64 emulation, random blocks valid and zero-mean.
5. Against llama.cpp's own ggml (the libraries node-llama-cpp ships, through ctypes): to_float
   bit-exact, from_float byte-exact on random and adversarial rows, vec_dot within
   (groups + 4) * 2^-24 * sum|x_q * w| of ref_matmul, and ggml's vec_dot_type per weight type.
   A missing oracle is a failure (pass --no-libggml to run 1-4 only).

  test_ggml_quants.py [--no-libggml]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ggml_quants as gq  # noqa: E402

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"FAIL {what}", flush=True)


def h(*parts):
    """Bytes from hex strings and ints, e.g. h("003c", [0x21] + [0x88] * 15)."""
    out = bytearray()
    for p in parts:
        out += bytes.fromhex(p) if isinstance(p, str) else bytes(p)
    return bytes(out)


def expect_values(t, raw, expected, label):
    got = gq.dequantize(t, np.frombuffer(raw, np.uint8))
    exact = gq.dequantize_exact(t, np.frombuffer(raw, np.uint8))
    ok = got.shape == expected.shape and np.all(got == expected) and np.all(exact == expected)
    if not ok:
        bad = np.nonzero(got != expected)[0][:8] if got.shape == expected.shape else []
        print(f"  {label}: differing elements {list(bad)}: got {got[bad]}, want {expected[bad]}")
    check(ok, f"known bits {label}")


# ---------------------------------------------------------------------------------------------
# 1. Known bits, per type

def known_bits():
    # Q4_0 (18 bytes: fp16 d, 16 bytes of nibbles; element j = low nibble of qs[j] - 8, element
    # j+16 = high nibble - 8; value = d * that).
    # d = 0x3c00 = 1.0; qs[0] = 0x21 -> e0 = 1-8 = -7, e16 = 2-8 = -6; qs[15] = 0xf0 -> e15 = 0-8
    # = -8, e31 = 15-8 = 7; other bytes 0x88 -> 0.
    raw = h("003c", [0x21] + [0x88] * 14 + [0xF0])
    e = np.zeros(32, np.float32)
    e[0], e[16], e[15], e[31] = -7, -6, -8, 7
    expect_values("Q4_0", raw, e, "Q4_0 d=1")
    # second block: d = 0xc000 = -2.0, every byte 0x9f: low 15-8 = 7 -> -14, high 9-8 = 1 -> -2.
    raw = h("00c0", [0x9F] * 16)
    expect_values("Q4_0", raw, np.array([-14] * 16 + [-2] * 16, np.float32), "Q4_0 d=-2")

    # Q4_1 (20 bytes: d, m, nibbles; value = d*q + m). d = 0x3800 = 0.5, m = 0xbc00 = -1.0;
    # qs[3] = 0x5a -> e3 = 10*0.5-1 = 4, e19 = 5*0.5-1 = 1.5; other nibbles 0 -> -1.
    raw = h("0038", "00bc", [0] * 3 + [0x5A] + [0] * 12)
    e = np.full(32, -1.0, np.float32)
    e[3], e[19] = 4.0, 1.5
    expect_values("Q4_1", raw, e, "Q4_1")

    # Q5_0 (22 bytes: d, qh uint32 LE, nibbles; element j's 5th bit is bit j of qh, element j+16's
    # is bit j+16; value = d * (code - 16)). d = 1.0, qh = 0x80000001 -> bits 0 and 31.
    # qs[0] = 0x3f: e0 = (15|16)-16 = 15, e16 = 3-16 = -13; qs[15] = 0xa0: e15 = 0-16 = -16,
    # e31 = (10|16)-16 = 10; all other codes 0 -> -16.
    raw = h("003c", "01000080", [0x3F] + [0] * 14 + [0xA0])
    e = np.full(32, -16.0, np.float32)
    e[0], e[16], e[15], e[31] = 15, -13, -16, 10
    expect_values("Q5_0", raw, e, "Q5_0")

    # Q5_1 (24 bytes: d, m, qh, nibbles; value = d*code + m). d = 0x3400 = 0.25, m = 0x4000 = 2;
    # qh = 0x00010000 (bit 16 -> element 16). qs[0] = 0x2f: e0 = 15*0.25+2 = 5.75,
    # e16 = (2|16)*0.25+2 = 6.5; the rest code 0 -> 2.
    raw = h("0034", "0040", "00000100", [0x2F] + [0] * 15)
    e = np.full(32, 2.0, np.float32)
    e[0], e[16] = 5.75, 6.5
    expect_values("Q5_1", raw, e, "Q5_1")

    # Q8_0 (34 bytes: d, 32 int8). d = 0.5: -128 -> -64, 127 -> 63.5, 1 -> 0.5, -1 -> -0.5.
    raw = h("0038", [0x80, 0x7F, 0x01, 0xFF] + [0] * 28)
    e = np.zeros(32, np.float32)
    e[:4] = -64, 63.5, 0.5, -0.5
    expect_values("Q8_0", raw, e, "Q8_0")

    # IQ4_NL (18 bytes, Q4_0's layout, value = d * kvalues[code]). d = 0x4000 = 2: qs[0] = 0xf0
    # -> e0 = 2*kvalues[0] = 2*-127 = -254, e16 = 2*kvalues[15] = 2*113 = 226; 0x88 -> 2*1 = 2.
    raw = h("0040", [0xF0] + [0x88] * 15)
    e = np.full(32, 2.0, np.float32)
    e[0], e[16] = -254, 226
    expect_values("IQ4_NL", raw, e, "IQ4_NL")

    # Q2_K (84 bytes: scales[16] (low nibble scale, high nibble min, group g = elements 16g..),
    # qs[64], d, dmin; element e = 128h + 32j + l is bits 2j..2j+1 of qs[32h + l];
    # value = d*sc*q - dmin*m). d = 1.0, dmin = 0.5.
    # scales[0] = 0x21: sc 1, m 2 -> group 0: q - 1.  scales[1] = 0x03: group 1: 3q.
    # scales[2] = 0xf5: group 2: 5q - 7.5.  scales[4] = 0x01: group 4: q.
    # scales[6] = 0x12: group 6: 2q - 0.5.  Others 0 -> 0.
    # qs[0] = 0xe4 = 0b11100100: e0 (j=0) q=0 -> -1; e32 (j=1, group 2) q=1 -> -2.5;
    # e64 (j=2, group 4) q=2 -> 2; e96 (j=3, group 6) q=3 -> 5.5.  qs[16] = 0x03: e16 (group 1)
    # q=3 -> 9.  Defaults (q=0): group 0 -> -1, group 2 -> -7.5, group 6 -> -0.5, else 0.
    scales = [0x21, 0x03, 0xF5, 0, 0x01, 0, 0x12] + [0] * 9
    qs = [0xE4] + [0] * 15 + [0x03] + [0] * 47
    raw = h(scales, qs, "003c", "0038")
    e = np.zeros(256, np.float32)
    e[0:16], e[32:48], e[96:112] = -1.0, -7.5, -0.5
    e[0], e[32], e[64], e[96], e[16] = -1.0, -2.5, 2.0, 5.5, 9.0
    expect_values("Q2_K", raw, e, "Q2_K")

    # Q3_K (110 bytes: hmask[32], qs[64], scales[12], d; code = low 2 bits (Q2_K's layout) + 4 *
    # (bit e//32 of hmask[e%32]); value = d * (scale - 32) * (code - 4), scale of group e//16).
    # Scales, 6 bits each: byte i (0..7) = low nibble of scale i | low nibble of scale i+8 << 4;
    # byte 8+k holds bits 4-5 of scale 4t+k at bits 2t..2t+1.
    # Wanted: scale 0 = 33 (value 1: low 1, high 2), scale 9 = 0 (value -32), all others 32
    # (value 0: low 0, high 2). Bytes 0..7: 0x01, 0, ...; bytes 8..11: 0xaa except byte 9 whose
    # bits 4-5 (scale 9) are 0: 0x8a.
    # Elements: qs[0] = 0x03, hmask[0] = 0x01 -> e0 code 3+4 = 7 -> 1*(7-4) = 3; e1 code 0 -> -4.
    # e144 (h=1, j=0, l=16; group 9): qs[48] = 0x02, hmask[16] = 0x10 (bit 4) -> code 6 -> -32*2
    # = -64. Defaults: group 0 code 0 -> -4, group 9 -> -32*-4 = 128, others scale 0 -> 0.
    hmask = [0x01] + [0] * 15 + [0x10] + [0] * 15
    qs = [0x03] + [0] * 47 + [0x02] + [0] * 15
    sc = [0x01, 0, 0, 0, 0, 0, 0, 0, 0xAA, 0x8A, 0xAA, 0xAA]
    raw = h(hmask, qs, sc, "003c")
    e = np.zeros(256, np.float32)
    e[0:16] = -4.0
    e[144:160] = 128.0
    e[0], e[144] = 3.0, -64.0
    expect_values("Q3_K", raw, e, "Q3_K")

    # Q4_K (144 bytes: d, dmin, scales[12], qs[128]; group g = elements 32g..32g+31; element
    # e = 64c + 32t + l is nibble t of qs[32c + l]; value = d*sc*q - dmin*m).
    # 6-bit scales/mins: j<4: sc = b[j] & 63, m = b[j+4] & 63; j>=4: sc = b[j+4] & 15 |
    # (b[j-4] >> 6) << 4, m = b[j+4] >> 4 | (b[j] >> 6) << 4.
    # d = 0.5 (0x3800), dmin = 0.25 (0x3400). Group 0: sc 3, m 4 -> b0 = 3, b4 = 4.
    # Group 5: sc 47 = 0b10_1111, m 18 = 0b01_0010 -> b9 = 15 | 2 << 4 = 0x2f, b1 = 2 << 6 = 0x80,
    # b5 = 1 << 6 = 0x40.
    # qs[0] = 0x0f: e0 = 0.5*3*15 - 0.25*4 = 21.5; e32 (group 1, sc 0 m 0) = 0.
    # e161 = 64*2 + 32 + 1: high nibble of qs[65] = 0x70 -> 7: 0.5*47*7 - 0.25*18 = 164.5 - 4.5
    # = 160; e129 (low nibble of qs[65], group 4: 0) = 0.
    # Defaults: group 0 -> -1, group 5 -> -4.5, others 0.
    sc = [3, 0x80, 0, 0, 4, 0x40, 0, 0, 0, 0x2F, 0, 0]
    qs = [0x0F] + [0] * 64 + [0x70] + [0] * 62
    raw = h("0038", "0034", sc, qs)
    e = np.zeros(256, np.float32)
    e[0:32], e[160:192] = -1.0, -4.5
    e[0], e[161] = 21.5, 160.0
    expect_values("Q4_K", raw, e, "Q4_K")

    # Q5_K (176 bytes: d, dmin, scales[12], qh[32], qs[128]; 5th bit of element e is bit e//32 of
    # qh[e%32]). Same scales as Q4_K. e0: qs[0] = 0x0f, qh[0] bit 0 -> 31: 0.5*3*31 - 1 = 45.5.
    # e161: qs[65] high nibble 7, qh[1] bit 5 (0x20) -> 23: 0.5*47*23 - 4.5 = 536.
    qh = [0x01, 0x20] + [0] * 30
    raw = h("0038", "0034", sc, qh, qs)
    e = np.zeros(256, np.float32)
    e[0:32], e[160:192] = -1.0, -4.5
    e[0], e[161] = 45.5, 536.0
    expect_values("Q5_K", raw, e, "Q5_K")

    # Q6_K (210 bytes: ql[128], qh[64], scales[16] int8, d; element e = 128h + 32k + l: low 4
    # bits = nibble k//2 of ql[64h + 32(k%2) + l], high 2 bits = bits 2k..2k+1 of qh[32h + l];
    # value = d * scale[e//16] * (code - 32)). d = 0.5.
    # scales[0] = -3 (0xfd), scales[5] = 100 (0x64), scales[10] = -128 (0x80), others 0.
    # e0: ql[0] = 0x0f (low 15), qh[0] = 0x03 -> code 63: 0.5*-3*31 = -46.5.
    # e81 (k=2, l=17, group 5): ql[17] = 0xa0 (high nibble 10), qh[17] = 0x20 (bits 4-5 = 2)
    # -> code 42: 0.5*100*10 = 500.
    # e160 (h=1, k=1, l=0, group 10): ql[96] = 0x01, qh[32] = 0x04 (bits 2-3 = 1) -> code 17:
    # 0.5*-128*-15 = 960.
    # Defaults (code 0 -> -32): group 0: 0.5*-3*-32 = 48; group 5: -1600; group 10: 2048.
    ql = [0x0F] + [0] * 16 + [0xA0] + [0] * 78 + [0x01] + [0] * 31
    qh = [0x03] + [0] * 16 + [0x20] + [0] * 14 + [0x04] + [0] * 31
    scales = [0xFD, 0, 0, 0, 0, 0x64, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0]
    raw = h(ql, qh, scales, "0038")
    e = np.zeros(256, np.float32)
    e[0:16], e[80:96], e[160:176] = 48.0, -1600.0, 2048.0
    e[0], e[81], e[160] = -46.5, 500.0, 960.0
    expect_values("Q6_K", raw, e, "Q6_K")

    # IQ4_XS (136 bytes: d, scales_h uint16, scales_l[4], qs[128]; group ib (32 elements): 6-bit
    # ls = nibble ib%2 of scales_l[ib/2] | bits 2ib..2ib+1 of scales_h << 4; value = d * (ls-32)
    # * kvalues[code]; qs[16ib + j] low -> element 32ib + j, high -> 32ib + 16 + j).
    # d = 0.5. ls: group 0 = 33 (low 1, high 2), group 3 = 0, others 32 (low 0, high 2).
    # scales_l = [0x01, 0, 0, 0]; scales_h = 2 at every group but 3 = 0b10101010_00101010 = 0xaa2a.
    # e0: qs[0] = 0x0f -> kvalues[15] = 113: 0.5*1*113 = 56.5; e16: kvalues[0] = -127 -> -63.5.
    # e113 = 96 + 16 + 1 (group 3): qs[49] = 0x50 high nibble 5 -> -35: 0.5*-32*-35 = 560.
    # Defaults (code 0 -> -127): group 0: -63.5; group 3: 0.5*-32*-127 = 2032; others 0.
    qs = [0x0F] + [0] * 48 + [0x50] + [0] * 78
    raw = h("0038", "2aaa", [0x01, 0, 0, 0], qs)
    e = np.zeros(256, np.float32)
    e[0:32], e[96:128] = -63.5, 2032.0
    e[0], e[113] = 56.5, 560.0
    expect_values("IQ4_XS", raw, e, "IQ4_XS")

    # Sizes and ids as ggml numbers them.
    want = {"Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24),
            "Q8_0": (8, 32, 34), "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110), "Q4_K": (12, 256, 144),
            "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210), "IQ4_NL": (20, 32, 18), "IQ4_XS": (23, 256, 136)}
    for name, (tid, blk, nb) in want.items():
        ti = gq.type_info(name)
        check((ti.id, ti.block, ti.nbytes) == (tid, blk, nb), f"type table {name}")


# ---------------------------------------------------------------------------------------------
# 2. Known activation quantizations

def known_activations():
    # q8_0: amax 127 -> d = 1.0 (fp16 0x3c00), id = 1: rounding half to even: 0.5 -> 0, 1.5 -> 2,
    # 2.5 -> 2, -0.5 -> 0, -1.5 -> -2, -2.5 -> -2, 63.5 -> 64 (roundf would give 1, 2, 3, -1,
    # -2, -3, 64).
    x = np.zeros(32, np.float32)
    x[:8] = 127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 63.5
    a = gq.quantize_q8_0(x)
    check(a.raw[0, :2].tobytes() == b"\x00\x3c", "q8_0 d of amax 127 is fp16 1.0")
    check(a.q[0, :8].tolist() == [127, 0, 2, 2, 0, -2, -2, 64], f"q8_0 half-even: {a.q[0, :8].tolist()}")
    # 127/amax, not 1/d: amax = 11, x = 5.5. 127.f/11.f = 11.545455 (f32) and 5.5 * that =
    # 63.500004 -> 64; the scalar _ref's 1/(11.f/127.f) = 11.545453, 5.5 * that = 63.499996 -> 63.
    x = np.zeros(32, np.float32)
    x[:2] = 11.0, 5.5
    check(gq.quantize_q8_0(x).q[0, :2].tolist() == [127, 64], "q8_0 uses 127/amax (x86 SIMD), not 1/d")
    # All zero: d = 0, q = 0.
    a = gq.quantize_q8_0(np.zeros(64, np.float32))
    check(not a.raw.any(), "q8_0 of zeros is all-zero bytes")
    # Tiny amax (1e-44, a subnormal): 127/amax overflows to inf, x*inf = inf (-> INT_MIN -> -128)
    # and 0*inf = NaN (-> INT_MIN -> -128); d = 1e-44/127 = 0 in float32 -> fp16 0.
    x = np.zeros(32, np.float32)
    x[3] = 1e-44
    a = gq.quantize_q8_0(x)
    check(a.raw[0, :2].tobytes() == b"\x00\x00" and (a.q == -128).all(), "q8_0 x86 overflow of 127/amax")

    # q8_1: s = fp16(d * sum(q)) with the float32 d. amax 127 -> d = 1; quants 16 x 127 and one
    # 17: sum 2049, which fp16 cannot hold: ties to even -> 2048 (0x6800).
    x = np.zeros(32, np.float32)
    x[:16] = 127
    x[16] = 17
    a = gq.quantize_q8_1(x)
    check(a.raw[0, :4].tobytes() == b"\x00\x3c\x00\x68", f"q8_1 d/s bytes {a.raw[0, :4].tobytes().hex()}")
    # With amax = 1: d = 1/127 = 0.007874016 (f32 0x3c010204); one quant 127, s = fp16(d * 127)
    # = fp16(1.0000000) = 0x3c00, while fp16(d) * 127 = 0x2008 (0.0078735) * 127 = 0.99993: the s
    # is taken from the float32 d.
    x = np.zeros(32, np.float32)
    x[0] = 1.0
    a = gq.quantize_q8_1(x)
    check(a.raw[0, :4].tobytes() == b"\x08\x20\x00\x3c", f"q8_1 s from float32 d: {a.raw[0, :4].tobytes().hex()}")

    # q8_K: max = the first element of largest |x| (signed); iscale = -127/max; d = 1/iscale.
    # x0 = -127 -> iscale = 1: q = [-127, 64 (63.5 half-even), 2 (2.5), 4 (3.5)], d = 1.0,
    # bsums[0] = -127+64+2+4 = -57.
    x = np.zeros(256, np.float32)
    x[:4] = -127, 63.5, 2.5, 3.5
    a = gq.quantize_q8_K(x)
    check(a.q[0, :4].tolist() == [-127, 64, 2, 4] and a.d[0] == 1.0 and a.bsums[0, 0] == -57,
          f"q8_K negative max: {a.q[0, :4].tolist()} d={a.d[0]} bsum={a.bsums[0, 0]}")
    check(a.raw[0, :4].tobytes() == b"\x00\x00\x80\x3f", "q8_K d is a float32")
    # -x: x0 = +127 -> iscale = -1, d = -1: the quants of -x are -(-x) = x's again:
    # q = [-127, 64, 2, 4], bsums[0] = -57 -- the stored quants have the opposite sign of the input.
    a = gq.quantize_q8_K(-x)
    check(a.q[0, :4].tolist() == [-127, 64, 2, 4] and a.d[0] == -1.0 and a.bsums[0, 0] == -57,
          "q8_K positive max gives d < 0")
    # Tie +2 / -2: the first wins. x = [2, -2]: max 2, iscale = -63.5: q = [-127, 127].
    # x = [-2, 2]: max -2, iscale = 63.5: q = [-127, 127] again, d = 1/63.5 > 0.
    y = np.zeros(256, np.float32)
    y[:2] = 2, -2
    a, b = gq.quantize_q8_K(y), gq.quantize_q8_K(-y)
    check(a.q[0, :2].tolist() == [-127, 127] and a.d[0] < 0 and b.q[0, :2].tolist() == [-127, 127] and b.d[0] > 0,
          "q8_K tie of |max|: first element decides the sign")
    # bsums are per 16: quants 1 in [16, 32) -> bsums[1] = 16. x = -127 at 0 gives iscale 1.
    z = np.zeros(256, np.float32)
    z[0] = -127
    z[16:32] = 1
    check(gq.quantize_q8_K(z).bsums[0, :3].tolist() == [-127, 16, 0], "q8_K bsums")
    check(not gq.quantize_q8_K(np.zeros(512, np.float32)).raw.any(), "q8_K of zeros is all-zero bytes (bsums too)")


# ---------------------------------------------------------------------------------------------
# 3. Reference matmul on hand cases

def known_matmul():
    # Q4_1 weight with d = 0, m = 1 (every weight 1.0) against x = 16 x 127, 17, zeros: the exact
    # dot is 16*127 + 17 = 2049, but ggml adds m * s with s = fp16(2049) = 2048.
    w = np.frombuffer(h("0000", "003c", [0] * 16), np.uint8)
    x = np.zeros((1, 32), np.float32)
    x[0, :16] = 127
    x[0, 16] = 17
    y, _, _ = gq.ref_matmul("Q4_1", w, 1, 32, x)
    check(y[0, 0] == 2048.0, f"Q4_1 min term uses fp16 s: {y[0, 0]}")
    # Q4_0 (d = 1, codes 9 -> +1 everywhere) against the same x: d_w*d_a*sum = 2049 exactly.
    w = np.frombuffer(h("003c", [0x99] * 16), np.uint8)
    y, _, _ = gq.ref_matmul("Q4_0", w, 1, 32, x)
    check(y[0, 0] == 2049.0, f"Q4_0 integer dot: {y[0, 0]}")
    # Q4_K: d = 1, dmin = 1, group 0: sc 1, m 1, every code 1 -> weights 0 in group 0; other groups
    # sc 0, m 0. Against x = -127 at 0 (q8_K d = 1, quants = x): sc*isum - m*bsum = -127 - (-127)
    # = 0.
    sc = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    w = np.frombuffer(h("003c", "003c", sc, [0x11] * 128), np.uint8)
    xk = np.zeros((1, 256), np.float32)
    xk[0, 0] = -127
    xk[0, 1] = 5
    y, _, _ = gq.ref_matmul("Q4_K", w, 1, 256, xk)
    check(y[0, 0] == 0.0, f"Q4_K min term through the group sums: {y[0, 0]}")


# ---------------------------------------------------------------------------------------------
# 4. Properties

def properties(rng):
    for t, ti in gq.WEIGHT_TYPES.items():
        f = gq.random_fields(t, 64, rng, rng.uniform(0.01, 3, 64), 0.3, gq.TEST_EDGES)
        raw = gq.pack(t, f)
        check(raw.shape == (64, ti.nbytes), f"{t}: pack gives {ti.nbytes}-byte blocks")
        f2 = gq.unpack(t, raw)
        same = all(np.array_equal(np.asarray(f[k]).view(np.uint16) if np.asarray(f[k]).dtype == np.float16
                                  else np.asarray(f[k]).astype(np.int64),
                                  np.asarray(f2[k]).view(np.uint16) if np.asarray(f2[k]).dtype == np.float16
                                  else np.asarray(f2[k]).astype(np.int64)) for k in f)
        check(same and np.array_equal(gq.pack(t, f2), raw), f"{t}: unpack(pack(f)) == f")
        y = gq.dequantize(t, raw)
        with np.errstate(over="ignore"):
            check(np.array_equal(y, gq.dequantize_exact(t, raw).astype(np.float32)),
                  f"{t}: ggml's float32 dequantization is the exact value rounded once")
        # zero mean, requested spread (no edge blocks), over many blocks
        sig = 0.05
        v = gq.dequantize_exact(t, gq.random_blocks(t, 4096 * 32 // ti.block, rng, sig))
        check(abs(v.mean()) < 0.02 * sig and abs(v.std() / sig - 1) < 0.05,
              f"{t}: random blocks mean {v.mean():.2e} std {v.std():.3e} (want 0, {sig})")
        # ref_matmul (integer groups) == QuantMatrix's fast float64 emulation
        k, n = 2 * ti.block, 5
        w = gq.random_matrix(t, n, k, rng, 0.1, 0.2, gq.TEST_EDGES[:-1])
        x = rng.normal(size=(3, k)).astype(np.float32)
        y1, ab, _ = gq.ref_matmul(t, w, n, k, x)
        y2 = gq.QuantMatrix(t, np.frombuffer(w, np.uint8), n, k).matmul_emulated(x)
        check(np.all(np.abs(y1 - y2) <= 1e-12 * ab + 1e-300), f"{t}: ref_matmul == QuantMatrix.matmul_emulated")


# ---------------------------------------------------------------------------------------------
# 5. Against llama.cpp's ggml

def adversarial_rows(k, rng):
    rows = [np.zeros(k)]
    one = np.zeros(k)
    one[7] = 3.0
    rows.append(one)
    neg = np.zeros(k)
    neg[k - 1] = -1e-3
    rows.append(neg)
    ties = np.tile([127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5, 3.5, 4.5, -4.5, 5.5, 6.5,
                    0.49999997, -0.50000006], k // 16)
    rows += [ties, -ties]
    for scale in (1e30, 1e-30, 1e7, 8e37, 1e-38, 1e-44):
        rows.append(rng.normal(size=k) * scale)
    pm = np.full(k, 2.0)
    pm[::2] = -2.0
    rows += [pm, -pm]
    rows.append(rng.integers(-127, 128, size=k) / 127 * 3.7)
    amax11 = np.zeros(k)
    amax11[::32], amax11[1::32] = 11.0, 5.5
    rows.append(amax11)
    return np.array(rows, np.float32)


def against_libggml(rng):
    import libggml_oracle
    try:
        lib = libggml_oracle.Libggml()
    except libggml_oracle.LibggmlUnavailable as e:
        check(False, f"llama.cpp's libggml: {e}")
        return
    print(f"libggml: node-llama-cpp's CPU variant '{lib.cpu_variant}'")
    for t, ti in gq.WEIGHT_TYPES.items():
        check(lib.vec_dot_type(ti.id) == gq.ACT_TYPES[ti.act].id,
              f"{t}: ggml's vec_dot_type is {lib.vec_dot_type(ti.id)}, we use {ti.act}")
        raw = gq.random_blocks(t, 256, rng, rng.uniform(0.001, 10, 256), 0.3, gq.TEST_EDGES)
        theirs = lib.to_float(ti.id, raw.tobytes(), 256 * ti.block)
        ours = gq.dequantize(t, raw)
        check(np.array_equal(theirs.view(np.uint32), ours.view(np.uint32)), f"{t}: to_float bit-exact")
    for kind, blk in (("q8_0", 32), ("q8_1", 32), ("q8_K", 256)):
        x = np.concatenate([adversarial_rows(256, rng),
                            (rng.normal(size=(64, 256)) * np.exp(3 * rng.normal(size=(64, 1)))).astype(np.float32)])
        for i, row in enumerate(x):
            a = lib.from_float(kind, row)
            b = gq.quantize_activations(kind, row).raw.reshape(-1)
            if kind == "q8_K":  # ggml leaves bsums of an all-zero block unset; compare the rest
                zero = np.abs(row.reshape(-1, 256)).max(axis=1) == 0
                a = a.reshape(-1, 292).copy()
                a[zero, 260:] = 0
                a = a.reshape(-1)
            check(np.array_equal(a, b), f"{kind}: from_float row {i} byte-exact")
    worst = {}
    for t, ti in gq.WEIGHT_TYPES.items():
        for nblk in (1, 2, 5, 8):
            k, n, m = nblk * ti.block, 3, 3
            w = gq.random_matrix(t, n, k, rng, 0.2, 0.25, gq.TEST_EDGES)
            x = (rng.normal(size=(m, k)) * rng.uniform(0.01, 100)).astype(np.float32)
            y, ab, nterms = gq.ref_matmul(t, w, n, k, x)
            rb = gq.row_bytes(t, k)
            for i in range(m):
                act = lib.from_float(ti.act, x[i])
                for j in range(n):
                    s = lib.vec_dot(ti.id, w[j * rb:(j + 1) * rb], act, k)
                    err = abs(s - y[i, j])
                    ratio = err / (ab[i, j] * 2.0 ** -24) if ab[i, j] > 0 else (0.0 if err == 0 else np.inf)
                    worst[t] = max(worst.get(t, 0.0), ratio)
                    check(ratio <= nterms + 4, f"{t} K={k}: vec_dot {s!r} vs reference {y[i, j]!r} "
                                               f"({ratio:.1f} x 2^-24 x sum|x_q w|, allowed {nterms + 4})")
    print("vec_dot vs ref_matmul, worst |diff| / (2^-24 sum|x_q w|): " +
          ", ".join(f"{t} {r:.2f}" for t, r in worst.items()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-libggml", action="store_true", help="skip the comparison with llama.cpp's libggml")
    a = ap.parse_args()
    t0 = time.time()
    rng = np.random.default_rng(20240611)
    known_bits()
    known_activations()
    known_matmul()
    properties(rng)
    if a.no_libggml:
        print("llama.cpp's libggml: not compared (--no-libggml)")
    else:
        against_libggml(rng)
    print(f"({time.time() - t0:.1f} s)")
    if FAILURES:
        print(f"FAILED: {len(FAILURES)} check(s)", file=sys.stderr)
        sys.exit(1)
    print("ggml_quants oracle: OK")


if __name__ == "__main__":
    main()
