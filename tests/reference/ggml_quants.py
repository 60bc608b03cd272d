"""ggml's quantized block formats in NumPy: an oracle that shares no code with kvserve's C++.

Written from the block layouts of ggml-common.h and the arithmetic of ggml-quants.c
(dequantize_row_*, quantize_row_q8_K_ref) and ggml-cpu/arch/x86/quants.c (quantize_row_q8_0,
quantize_row_q8_1), as llama.cpp runs them on x86 (the copy inside node-llama-cpp 3.22.1, which is
the oracle of tests/reference). Everything here is vectorized NumPy; nothing is translated code.

Weight types (GGML type id, elements per block, bytes per block, activation type of ggml-cpu's
vec_dot, elements per scale):

    Q4_0 2 32 18 q8_0 32     Q2_K 10 256  84 q8_K 16     IQ4_NL 20  32  18 q8_0 32
    Q4_1 3 32 20 q8_1 32     Q3_K 11 256 110 q8_K 16     IQ4_XS 23 256 136 q8_K 32
    Q5_0 6 32 22 q8_0 32     Q4_K 12 256 144 q8_K 32
    Q5_1 7 32 24 q8_1 32     Q5_K 13 256 176 q8_K 32
    Q8_0 8 32 34 q8_0 32     Q6_K 14 256 210 q8_K 16

A block is held as "fields": a dict of NumPy arrays with one row per block (the scale fields as
np.float16, the packed integers unpacked to one small integer per element or per scale):

    Q4_0   d, q[32] 0..15 (value q-8)          Q2_K   d, dmin, sc[16] 0..15, m[16] 0..15, q[256] 0..3
    Q4_1   d, m, q[32] 0..15 (value d*q+m)     Q3_K   d, sc[16] 0..63 (scale sc-32), q[256] 0..7 (value q-4)
    Q5_0   d, q[32] 0..31 (value q-16)         Q4_K   d, dmin, sc[8] 0..63, m[8] 0..63, q[256] 0..15
    Q5_1   d, m, q[32] 0..31                   Q5_K   d, dmin, sc[8] 0..63, m[8] 0..63, q[256] 0..31
    Q8_0   d, q[32] int8                       Q6_K   d, sc[16] int8, q[256] 0..63 (value q-32)
    IQ4_NL d, q[32] 0..15 (value kvalues[q])   IQ4_XS d, sc[8] 0..63 (scale sc-32), q[256] 0..15

`pack`/`unpack` convert fields to/from the exact ggml bytes. `integer_parts` gives what an
integer kernel multiplies: per element the integer that meets the activation's int8, per scale
group its exact scale (float64) and its additive constant (the min; 0 for symmetric types).

Dequantization: `dequantize` returns float32 computed in ggml's order of float32 operations (for
example Q6_K is (d*sc)*q, Q4_K is (d*sc)*q - dmin*m). In every type the products are exact in
float32 (an fp16 significand has 11 bits, sub-scales at most 8, quants at most 7, and no product
exceeds 24 bits), so only the final "+ m" / "- dmin*m" of Q4_1, Q5_1, Q2_K, Q4_K, Q5_K rounds,
once; the result is therefore the same with or without FMA contraction, and equals the exact value
rounded to float32 (the self-test checks this). `dequantize_exact` gives that exact value in
float64.

Activations (what ggml-cpu does to the float32 input of a quantized matmul on x86):
  q8_0 / q8_1 (AVX2 code of arch/x86/quants.c, not the scalar _ref):
      amax = max|x| over 32;  d = amax / 127.f (float32 division);  id = 127.f / amax (0 if amax
      is 0) -- not 1/d as the _ref does, which differs in the last bit now and then;
      q = round-half-to-even(x * id) (vroundps nearest), converted by vcvtps2dq (NaN or out of
      range -> INT_MIN) and narrowed with signed saturation (packssdw, packsswb);
      d stored as fp16 (vcvtps2ph, round to nearest even).
      q8_1 also stores s = fp16(d * sum(q)) with the float32 d (before its fp16 rounding) and the
      int32 sum of the quants (before saturation).
  q8_K (quantize_row_q8_K_ref, which x86 uses too: arch/x86/quants.c just calls it):
      per 256: max = the first element of largest |x| (signed);  all zero -> d = 0, q = 0 (ggml
      leaves bsums unset there; we write 0);  iscale = -127.f / max;
      q = min(127, nearest_int(iscale * x)), nearest_int being the float32 "+ 12582912.f" trick
      (round half to even for |v| < 2^22);  bsums = int16 sums of 16 quants;  d = 1 / iscale as
      float32 -- so d < 0 when the largest element is positive, and the quants are negated.

Reference matmul (`ref_matmul`): y[m, n] = sum over scale groups of d_act * scale_w * (integer
dot) + the min terms (Q4_1/Q5_1: m_w * s_act with the fp16 s; K-quants: -dmin*m * d_act *
(sum of the activation quants of the group, i.e. the bsums)), evaluated in float64 from the
integer parts: what an exact-integer kernel computes, up to float rounding.
"""

import numpy as np

# ---------------------------------------------------------------------------------------------
# Type table

QK_K = 256


class TypeInfo:
    def __init__(self, name, type_id, block, nbytes, act, group):
        self.name, self.id, self.block, self.nbytes, self.act, self.group = name, type_id, block, nbytes, act, group

    def __repr__(self):
        return f"TypeInfo({self.name})"


WEIGHT_TYPES = {t.name: t for t in [
    TypeInfo("Q4_0", 2, 32, 18, "q8_0", 32),
    TypeInfo("Q4_1", 3, 32, 20, "q8_1", 32),
    TypeInfo("Q5_0", 6, 32, 22, "q8_0", 32),
    TypeInfo("Q5_1", 7, 32, 24, "q8_1", 32),
    TypeInfo("Q8_0", 8, 32, 34, "q8_0", 32),
    TypeInfo("Q2_K", 10, 256, 84, "q8_K", 16),
    TypeInfo("Q3_K", 11, 256, 110, "q8_K", 16),
    TypeInfo("Q4_K", 12, 256, 144, "q8_K", 32),
    TypeInfo("Q5_K", 13, 256, 176, "q8_K", 32),
    TypeInfo("Q6_K", 14, 256, 210, "q8_K", 16),
    TypeInfo("IQ4_NL", 20, 32, 18, "q8_0", 32),
    TypeInfo("IQ4_XS", 23, 256, 136, "q8_K", 32),
]}
ACT_TYPES = {"q8_0": TypeInfo("Q8_0", 8, 32, 34, None, 32),
             "q8_1": TypeInfo("Q8_1", 9, 32, 36, None, 32),
             "q8_K": TypeInfo("Q8_K", 15, 256, 292, None, 16)}
BY_ID = {t.id: t for t in WEIGHT_TYPES.values()}

# IQ4_NL / IQ4_XS non-linear code book (ggml-common.h kvalues_iq4nl).
KVALUES_IQ4NL = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113],
                         dtype=np.int8)


def type_info(t):
    if isinstance(t, TypeInfo):
        return t
    if isinstance(t, (int, np.integer)):
        if int(t) not in BY_ID:
            raise ValueError(f"GGML type id {t} is not one of the quantized weight types")
        return BY_ID[int(t)]
    if t not in WEIGHT_TYPES:
        raise ValueError(f"unknown quantized type {t!r} (known: {', '.join(WEIGHT_TYPES)})")
    return WEIGHT_TYPES[t]


def row_bytes(t, k):
    ti = type_info(t)
    if k % ti.block:
        raise ValueError(f"{ti.name} needs rows that are a multiple of {ti.block}, got {k}")
    return k // ti.block * ti.nbytes


# ---------------------------------------------------------------------------------------------
# Byte helpers

def _f16(a):
    return np.ascontiguousarray(a, dtype=np.float16)


def _f16_bytes(a):
    return _f16(a).astype("<f2").view(np.uint8).reshape(-1, 2)


def _f16_from(raw2):
    return np.ascontiguousarray(raw2).view("<f2").reshape(-1).astype(np.float16)


def _blocks(t, raw):
    ti = type_info(t)
    b = np.frombuffer(bytes(raw), dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.reshape(-1).view(np.uint8)
    if b.size % ti.nbytes:
        raise ValueError(f"{ti.name}: {b.size} bytes is not a whole number of {ti.nbytes}-byte blocks")
    return b.reshape(-1, ti.nbytes)


def _nibbles_pack(q):
    """[nb, 2*h] codes 0..15 -> [nb, h] bytes: element j in the low nibble of byte j, element
    j+h in the high nibble (the Q4_0 / IQ4_NL / IQ4_XS-group layout)."""
    h = q.shape[1] // 2
    return (q[:, :h] & 15 | (q[:, h:] & 15) << 4).astype(np.uint8)


def _nibbles_unpack(b):
    return np.concatenate([b & 15, b >> 4], axis=1).astype(np.uint8)


def _bits_pack(bits, nbytes):
    """[nb, 8*nbytes] 0/1 -> [nb, nbytes] little-endian bit fields (bit i = element i)."""
    return np.packbits(bits.astype(np.uint8).reshape(bits.shape[0], nbytes, 8), axis=2, bitorder="little").reshape(-1, nbytes)


def _bits_unpack(b):
    return np.unpackbits(b[:, :, None], axis=2, bitorder="little").reshape(b.shape[0], -1)


def _k4_scales_pack(sc, m):
    """Q4_K / Q5_K: eight 6-bit scales and eight 6-bit mins in 12 bytes (get_scale_min_k4):
    bytes 0-3: sc[0..3] | (sc[4..7] >> 4) << 6;  bytes 4-7: m[0..3] | (m[4..7] >> 4) << 6;
    bytes 8-11: (sc[4..7] & 15) | (m[4..7] & 15) << 4."""
    sc = sc.astype(np.uint8)
    m = m.astype(np.uint8)
    out = np.empty((sc.shape[0], 12), np.uint8)
    out[:, 0:4] = sc[:, 0:4] | (sc[:, 4:8] >> 4) << 6
    out[:, 4:8] = m[:, 0:4] | (m[:, 4:8] >> 4) << 6
    out[:, 8:12] = sc[:, 4:8] & 15 | (m[:, 4:8] & 15) << 4
    return out


def _k4_scales_unpack(s):
    sc = np.empty((s.shape[0], 8), np.uint8)
    m = np.empty((s.shape[0], 8), np.uint8)
    sc[:, 0:4] = s[:, 0:4] & 63
    m[:, 0:4] = s[:, 4:8] & 63
    sc[:, 4:8] = s[:, 8:12] & 15 | (s[:, 0:4] >> 6) << 4
    m[:, 4:8] = s[:, 8:12] >> 4 | (s[:, 4:8] >> 6) << 4
    return sc, m


def _q3k_scales_pack(sc):
    """Q3_K: sixteen 6-bit scales in 12 bytes: byte i (0-7) holds the low 4 bits of sc[i] (low
    nibble) and of sc[i+8] (high nibble); byte 8+k holds bits 4-5 of sc[4t+k] at bits 2t..2t+1."""
    sc = sc.astype(np.uint8)
    out = np.empty((sc.shape[0], 12), np.uint8)
    out[:, 0:8] = sc[:, 0:8] & 15 | (sc[:, 8:16] & 15) << 4
    hi = (sc >> 4) & 3  # [nb, 16], scale 4t+k
    out[:, 8:12] = hi[:, 0:4] | hi[:, 4:8] << 2 | hi[:, 8:12] << 4 | hi[:, 12:16] << 6
    return out


def _q3k_scales_unpack(s):
    i = np.arange(16)
    low = np.where(i < 8, s[:, i % 8] & 15, s[:, i % 8] >> 4)
    hi = (s[:, 8 + i % 4] >> (2 * (i // 4))) & 3
    return (low | hi << 4).astype(np.uint8)


def _crumbs_pack(q):
    """Q2_K / Q3_K low 2 bits: element e = 128h + 32j + l is bits 2j..2j+1 of byte 32h + l."""
    q = q.reshape(-1, 2, 4, 32).astype(np.uint8) & 3
    return (q[:, :, 0] | q[:, :, 1] << 2 | q[:, :, 2] << 4 | q[:, :, 3] << 6).reshape(-1, 64)


def _crumbs_unpack(b):
    b = b.reshape(-1, 2, 1, 32)
    shifts = (2 * np.arange(4)).reshape(1, 1, 4, 1)
    return ((b >> shifts) & 3).reshape(-1, 256).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# pack / unpack

def pack(t, f):
    """Fields of blocks -> the exact ggml bytes (np.uint8 [nblocks, block bytes])."""
    ti = type_info(t)
    n = ti.name
    d = _f16_bytes(f["d"])
    nb = d.shape[0]
    if n in ("Q4_0", "IQ4_NL"):
        return np.concatenate([d, _nibbles_pack(f["q"])], axis=1)
    if n == "Q4_1":
        return np.concatenate([d, _f16_bytes(f["m"]), _nibbles_pack(f["q"])], axis=1)
    if n in ("Q5_0", "Q5_1"):
        q = f["q"].astype(np.uint8)
        qh = _bits_pack(q >> 4 & 1, 4)
        head = [d] if n == "Q5_0" else [d, _f16_bytes(f["m"])]
        return np.concatenate(head + [qh, _nibbles_pack(q & 15)], axis=1)
    if n == "Q8_0":
        return np.concatenate([d, np.asarray(f["q"], np.int8).view(np.uint8).reshape(nb, 32)], axis=1)
    if n == "Q2_K":
        scales = (f["sc"].astype(np.uint8) & 15 | (f["m"].astype(np.uint8) & 15) << 4)
        return np.concatenate([scales, _crumbs_pack(f["q"]), d, _f16_bytes(f["dmin"])], axis=1)
    if n == "Q3_K":
        q = f["q"].astype(np.uint8)
        hmask = _bits_pack((q >> 2 & 1).reshape(nb, 8, 32).transpose(0, 2, 1).reshape(nb, 256), 32)
        return np.concatenate([hmask, _crumbs_pack(q & 3), _q3k_scales_pack(f["sc"]), d], axis=1)
    if n in ("Q4_K", "Q5_K"):
        q = f["q"].astype(np.uint8)
        parts = [d, _f16_bytes(f["dmin"]), _k4_scales_pack(f["sc"], f["m"])]
        if n == "Q5_K":  # element e's 5th bit: bit e//32 of qh[e%32]
            parts.append(_bits_pack((q >> 4 & 1).reshape(nb, 8, 32).transpose(0, 2, 1).reshape(nb, 256), 32))
        # element e = 64c + 32t + l: nibble t of byte 32c + l
        q4 = (q & 15).reshape(nb, 4, 2, 32)
        parts.append((q4[:, :, 0] | q4[:, :, 1] << 4).reshape(nb, 128).astype(np.uint8))
        return np.concatenate(parts, axis=1)
    if n == "Q6_K":
        # element e = 128h + 32k + l: low 4 bits in ql[64h + 32(k%2) + l] (nibble k//2),
        # high 2 bits at bits 2k..2k+1 of qh[32h + l].
        q = f["q"].astype(np.uint8).reshape(nb, 2, 4, 32)
        lo, hi = q & 15, q >> 4 & 3
        ql = np.stack([lo[:, :, 0] | lo[:, :, 2] << 4, lo[:, :, 1] | lo[:, :, 3] << 4], axis=2).reshape(nb, 128)
        qh = (hi[:, :, 0] | hi[:, :, 1] << 2 | hi[:, :, 2] << 4 | hi[:, :, 3] << 6).reshape(nb, 64)
        return np.concatenate([ql, qh, np.asarray(f["sc"], np.int8).view(np.uint8).reshape(nb, 16), d], axis=1)
    if n == "IQ4_XS":
        ls = f["sc"].astype(np.uint16)
        sh = np.zeros(nb, np.uint16)
        for ib in range(8):
            sh |= (ls[:, ib] >> 4 & 3) << (2 * ib)
        sl = (ls[:, 0::2] & 15 | (ls[:, 1::2] & 15) << 4).astype(np.uint8)
        qs = _nibbles_pack(f["q"].astype(np.uint8).reshape(nb * 8, 32)).reshape(nb, 128)
        return np.concatenate([d, sh.astype("<u2").view(np.uint8).reshape(nb, 2), sl, qs], axis=1)
    raise ValueError(n)


def unpack(t, raw):
    """ggml bytes -> fields (see the module docstring)."""
    ti = type_info(t)
    b = _blocks(ti, raw)
    n = ti.name
    nb = b.shape[0]
    if n in ("Q4_0", "IQ4_NL"):
        return {"d": _f16_from(b[:, 0:2]), "q": _nibbles_unpack(b[:, 2:18])}
    if n == "Q4_1":
        return {"d": _f16_from(b[:, 0:2]), "m": _f16_from(b[:, 2:4]), "q": _nibbles_unpack(b[:, 4:20])}
    if n in ("Q5_0", "Q5_1"):
        o = 2 if n == "Q5_0" else 4
        qh = _bits_unpack(b[:, o:o + 4])
        f = {"d": _f16_from(b[:, 0:2]), "q": (_nibbles_unpack(b[:, o + 4:o + 20]) | qh << 4).astype(np.uint8)}
        if n == "Q5_1":
            f["m"] = _f16_from(b[:, 2:4])
        return f
    if n == "Q8_0":
        return {"d": _f16_from(b[:, 0:2]), "q": b[:, 2:34].copy().view(np.int8)}
    if n == "Q2_K":
        return {"sc": b[:, 0:16] & 15, "m": b[:, 0:16] >> 4, "q": _crumbs_unpack(b[:, 16:80]),
                "d": _f16_from(b[:, 80:82]), "dmin": _f16_from(b[:, 82:84])}
    if n == "Q3_K":
        hbit = _bits_unpack(b[:, 0:32]).reshape(nb, 32, 8).transpose(0, 2, 1).reshape(nb, 256)
        return {"q": (_crumbs_unpack(b[:, 32:96]) | hbit << 2).astype(np.uint8),
                "sc": _q3k_scales_unpack(b[:, 96:108]), "d": _f16_from(b[:, 108:110])}
    if n in ("Q4_K", "Q5_K"):
        sc, m = _k4_scales_unpack(b[:, 4:16])
        o = 16 if n == "Q4_K" else 48
        qs = b[:, o:o + 128].reshape(nb, 4, 1, 32)
        q = np.concatenate([qs & 15, qs >> 4], axis=2).reshape(nb, 256)
        if n == "Q5_K":
            hbit = _bits_unpack(b[:, 16:48]).reshape(nb, 32, 8).transpose(0, 2, 1).reshape(nb, 256)
            q = q | hbit << 4
        return {"d": _f16_from(b[:, 0:2]), "dmin": _f16_from(b[:, 2:4]), "sc": sc, "m": m, "q": q.astype(np.uint8)}
    if n == "Q6_K":
        ql = b[:, 0:128].reshape(nb, 2, 2, 32)
        qh = b[:, 128:192].reshape(nb, 2, 32)
        lo = np.stack([ql[:, :, 0] & 15, ql[:, :, 1] & 15, ql[:, :, 0] >> 4, ql[:, :, 1] >> 4], axis=2)
        hi = np.stack([(qh >> (2 * k)) & 3 for k in range(4)], axis=2)
        return {"q": (lo | hi << 4).reshape(nb, 256).astype(np.uint8),
                "sc": b[:, 192:208].copy().view(np.int8), "d": _f16_from(b[:, 208:210])}
    if n == "IQ4_XS":
        sh = b[:, 2:4].copy().view("<u2").reshape(nb).astype(np.uint16)
        sl = b[:, 4:8]
        ib = np.arange(8)
        ls = ((sl[:, ib // 2] >> (4 * (ib % 2))) & 15) | (((sh[:, None] >> (2 * ib)) & 3) << 4).astype(np.uint8)
        q = _nibbles_unpack(b[:, 8:136].reshape(nb * 8, 16)).reshape(nb, 256)
        return {"d": _f16_from(b[:, 0:2]), "sc": ls.astype(np.uint8), "q": q}
    raise ValueError(n)


# ---------------------------------------------------------------------------------------------
# Integer parts and dequantization

def integer_parts(t, f):
    """(qv, scale, minv): qv int32 [nb, block] -- the integer each element contributes to the
    integer dot; scale float64 [nb, block/group] -- the exact scale of each group; minv float64
    [nb, block/group] -- the exact constant added to each element of the group. An element's
    exact value is scale * qv + minv."""
    ti = type_info(t)
    n = ti.name
    if not isinstance(f, dict):
        f = unpack(ti, f)
    d = f["d"].astype(np.float64)[:, None]
    q = f["q"].astype(np.int32)
    zero = np.zeros_like(d)
    if n == "Q4_0":
        return q - 8, d, zero
    if n == "Q5_0":
        return q - 16, d, zero
    if n in ("Q4_1", "Q5_1"):
        return q, d, f["m"].astype(np.float64)[:, None]
    if n == "Q8_0":
        return q, d, zero
    if n == "IQ4_NL":
        return KVALUES_IQ4NL[q].astype(np.int32), d, zero
    if n in ("Q2_K", "Q4_K", "Q5_K"):
        return q, d * f["sc"], -(f["dmin"].astype(np.float64)[:, None] * f["m"])
    if n == "Q3_K":
        return q - 4, d * (f["sc"].astype(np.int32) - 32), np.zeros((q.shape[0], 16))
    if n == "Q6_K":
        return q - 32, d * f["sc"].astype(np.int32), np.zeros((q.shape[0], 16))
    if n == "IQ4_XS":
        return KVALUES_IQ4NL[q].astype(np.int32), d * (f["sc"].astype(np.int32) - 32), np.zeros((q.shape[0], 8))
    raise ValueError(n)


def _expand(a, group):
    return np.repeat(a, group, axis=1)


def dequantize(t, raw):
    """Raw blocks -> float32, flat, computed as ggml's dequantize_row_* computes it (float32
    operations in its order)."""
    ti = type_info(t)
    f = unpack(ti, raw)
    n = ti.name
    f32 = np.float32
    d = f["d"].astype(f32)[:, None]
    q = f["q"]
    g = ti.group
    if n == "Q4_0":
        y = (q.astype(np.int32) - 8).astype(f32) * d
    elif n == "Q5_0":
        y = (q.astype(np.int32) - 16).astype(f32) * d
    elif n in ("Q4_1", "Q5_1"):
        y = q.astype(f32) * d + f["m"].astype(f32)[:, None]
    elif n == "Q8_0":
        y = q.astype(f32) * d
    elif n == "IQ4_NL":
        y = d * KVALUES_IQ4NL[q].astype(f32)
    elif n in ("Q2_K", "Q4_K", "Q5_K"):
        # dl = d * sc; ml = dmin * m; y = dl * q - ml
        dl = d * f["sc"].astype(f32)
        ml = f["dmin"].astype(f32)[:, None] * f["m"].astype(f32)
        y = _expand(dl, g) * q.astype(f32) - _expand(ml, g)
    elif n == "Q3_K":
        dl = d * (f["sc"].astype(np.int32) - 32).astype(f32)
        y = _expand(dl, g) * (q.astype(np.int32) - 4).astype(f32)
    elif n == "Q6_K":
        y = _expand(d * f["sc"].astype(f32), g) * (q.astype(np.int32) - 32).astype(f32)
    elif n == "IQ4_XS":
        dl = d * (f["sc"].astype(np.int32) - 32).astype(f32)
        y = _expand(dl, g) * KVALUES_IQ4NL[q].astype(f32)
    else:
        raise ValueError(n)
    return np.ascontiguousarray(y, dtype=f32).reshape(-1)


def dequantize_exact(t, raw):
    """Raw blocks -> the exact values in float64 (scale * qv + minv, no rounding), flat."""
    ti = type_info(t)
    qv, scale, minv = integer_parts(ti, unpack(ti, raw))
    return (_expand(scale, ti.group) * qv + _expand(minv, ti.group)).reshape(-1)


# ---------------------------------------------------------------------------------------------
# Activation quantization (x86)

_INT_MIN = np.int32(-2 ** 31)


def _cvtps_epi32(r):
    """vcvtps2dq on already-rounded float32 values: NaN and anything outside int32 -> INT_MIN."""
    r = np.asarray(r, np.float32)
    ok = np.isfinite(r) & (r >= np.float32(-2.0 ** 31)) & (r < np.float32(2.0 ** 31))
    out = np.full(r.shape, _INT_MIN, np.int32)
    out[ok] = r[ok].astype(np.int32)
    return out


class Q8Act:
    """Quantized activations: raw (np.uint8 [nblocks, bytes]), q (int8 [nblocks, block]),
    d (float32 values of the stored scale: fp16 for q8_0/q8_1, float32 for q8_K), and s (q8_1:
    the stored fp16 d*sum as float32) or bsums (q8_K: int16 [nblocks, 16])."""

    def __init__(self, kind, raw, q, d, s=None, bsums=None):
        self.kind, self.raw, self.q, self.d, self.s, self.bsums = kind, raw, q, d, s, bsums


def _q8_0_core(x):
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 32)
    with np.errstate(all="ignore"):
        amax = np.max(np.abs(x), axis=1)
        d = (amax / np.float32(127)).astype(np.float32)
        # id = 127/amax (0 for an all-zero block). It overflows to inf for amax < ~3.7e-37; then
        # x*inf is +-inf or NaN and the conversion gives INT_MIN -> -128, as the SIMD code does.
        safe = np.where(amax != 0, amax, np.float32(1)).astype(np.float32)
        iden = np.where(amax != 0, (np.float32(127) / safe).astype(np.float32), np.float32(0)).astype(np.float32)
        v = (x * iden[:, None]).astype(np.float32)
        i32 = _cvtps_epi32(np.rint(v))
    q = np.clip(i32, -128, 127).astype(np.int8)  # packssdw then packsswb: saturate to int8
    return x, d, i32, q


def quantize_q8_0(x):
    """float32 [..., k] (k a multiple of 32) -> Q8Act of x86 quantize_row_q8_0."""
    _, d, _, q = _q8_0_core(x)
    with np.errstate(over="ignore"):
        d16 = d.astype(np.float16)
    raw = np.concatenate([_f16_bytes(d16), q.view(np.uint8)], axis=1)
    return Q8Act("q8_0", raw, q, d16.astype(np.float32))


def quantize_q8_1(x):
    """float32 [..., k] -> Q8Act of x86 quantize_row_q8_1 (s = fp16(d * sum q), float32 d)."""
    _, d, i32, q = _q8_0_core(x)
    with np.errstate(over="ignore", invalid="ignore"):
        d16 = d.astype(np.float16)
        isum = np.sum(i32, axis=1, dtype=np.int32)  # vpaddd wraps, like the SIMD sum
        s16 = (d * isum.astype(np.float32)).astype(np.float32).astype(np.float16)
    raw = np.concatenate([_f16_bytes(d16), _f16_bytes(s16), q.view(np.uint8)], axis=1)
    return Q8Act("q8_1", raw, q, d16.astype(np.float32), s=s16.astype(np.float32))


def _nearest_int(v):
    """ggml's nearest_int: (bits(v + 12582912.f) & 0x7fffff) - 0x400000, in int32."""
    with np.errstate(all="ignore"):
        val = (np.asarray(v, np.float32) + np.float32(12582912.0)).astype(np.float32)
    return (val.view(np.int32) & 0x007FFFFF) - 0x00400000


def quantize_q8_K(x):
    """float32 [..., k] (k a multiple of 256) -> Q8Act of quantize_row_q8_K_ref."""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, QK_K)
    nb = x.shape[0]
    ax = np.abs(x)
    idx = np.argmax(ax, axis=1)  # first element of largest |x|, like the strict '>' loop
    mx = x[np.arange(nb), idx]
    amax = ax[np.arange(nb), idx]
    zero = amax == 0
    with np.errstate(all="ignore"):
        iscale = (np.float32(-127) / np.where(zero, np.float32(1), mx)).astype(np.float32)
        v = _nearest_int((iscale[:, None] * x).astype(np.float32))
        q = (np.minimum(v, 127) & 0xFF).astype(np.uint8).view(np.int8)  # int -> int8_t store
        d = (np.float32(1) / iscale).astype(np.float32)
    q[zero] = 0
    d[zero] = 0
    bsums = q.reshape(nb, 16, 16).astype(np.int32).sum(axis=2).astype(np.int16)
    raw = np.concatenate([d.astype("<f4").view(np.uint8).reshape(nb, 4), q.view(np.uint8),
                          bsums.astype("<i2").view(np.uint8).reshape(nb, 32)], axis=1)
    return Q8Act("q8_K", raw, q, d, bsums=bsums)


QUANTIZERS = {"q8_0": quantize_q8_0, "q8_1": quantize_q8_1, "q8_K": quantize_q8_K}


def quantize_activations(kind, x):
    return QUANTIZERS[kind](x)


def unpack_q8(kind, raw):
    """Bytes of q8_0 / q8_1 / q8_K blocks -> Q8Act (for reading a tool's output)."""
    ti = ACT_TYPES[kind]
    b = np.frombuffer(bytes(raw), dtype=np.uint8)
    if b.size % ti.nbytes:
        raise ValueError(f"{kind}: {b.size} bytes is not a whole number of {ti.nbytes}-byte blocks")
    b = b.reshape(-1, ti.nbytes)
    if kind == "q8_0":
        return Q8Act(kind, b, b[:, 2:].copy().view(np.int8), _f16_from(b[:, 0:2]).astype(np.float32))
    if kind == "q8_1":
        return Q8Act(kind, b, b[:, 4:].copy().view(np.int8), _f16_from(b[:, 0:2]).astype(np.float32),
                     s=_f16_from(b[:, 2:4]).astype(np.float32))
    return Q8Act(kind, b, b[:, 4:260].copy().view(np.int8), b[:, 0:4].copy().view("<f4").reshape(-1),
                 bsums=b[:, 260:292].copy().view("<i2").reshape(-1, 16))


# ---------------------------------------------------------------------------------------------
# Reference quantized matmul

def ref_matmul(t, wraw, n_rows, k, x):
    """y [M, N] float64 of an exact-integer kernel: x float32 [M, K] is quantized to the weight
    type's activation type, then per scale group d_act * scale * integer dot, plus the min terms,
    summed in float64. Also returns abs_sum [M, N] (the sum over elements of |x_q * w| plus the
    |min terms|, for error bounds) and the number of scale groups (+ min terms) per output."""
    ti = type_info(t)
    qv, scale, minv = integer_parts(ti, unpack(ti, wraw))
    g = ti.group
    groups = k // g
    qv = qv.reshape(n_rows, groups, g)
    scale = scale.reshape(n_rows, groups)
    minv = minv.reshape(n_rows, groups)
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, k)
    m = x.shape[0]
    a = quantize_activations(ti.act, x)
    ab = ACT_TYPES[ti.act].block
    qa = a.q.astype(np.int64).reshape(m, groups, g)
    da = np.repeat(a.d.astype(np.float64).reshape(m, k // ab), ab // g, axis=1)  # [M, groups]
    isum = np.einsum("msk,nsk->mns", qa, qv.astype(np.int64))
    terms = da[:, None, :] * scale[None, :, :] * isum
    y = terms.sum(axis=2)
    # The bound uses element magnitudes, not |group term|: a SIMD kernel may turn partial
    # integer sums of a group into floats before adding them (llama.cpp's AVX2 code does).
    iabs = np.einsum("msk,nsk->mns", np.abs(qa), np.abs(qv).astype(np.int64))
    absum = (np.abs(da)[:, None, :] * np.abs(scale)[None, :, :] * iabs).sum(axis=2)
    nterms = groups
    if ti.act == "q8_1":  # min * s, s the stored fp16 d*sum(q)
        mt = a.s.astype(np.float64).reshape(m, groups)[:, None, :] * minv[None, :, :]
        y, absum, nterms = y + mt.sum(axis=2), absum + np.abs(mt).sum(axis=2), nterms + groups
    elif ti.name in ("Q2_K", "Q4_K", "Q5_K"):  # -dmin*m * d_act * (sum of the group's quants)
        gsum = qa.sum(axis=2)  # [M, groups] == sums of the bsums
        mt = (da * gsum)[:, None, :] * minv[None, :, :]
        y, absum, nterms = y + mt.sum(axis=2), absum + np.abs(mt).sum(axis=2), nterms + groups
    return y, absum, nterms


class QuantMatrix:
    """A quantized weight matrix [N, K] prepared for emulating llama.cpp's matmul in float64:
    w64 = exact float64 weights (min folded in, except for the q8_1 types, whose min term
    uses the activation's fp16 s and is kept apart in bmin [N, K/32]); w32 = ggml's float32
    dequantization (what get_rows gives for an embedding)."""

    def __init__(self, t, raw, n_rows, k):
        ti = type_info(t)
        self.type, self.n, self.k = ti, n_rows, k
        qv, scale, minv = integer_parts(ti, unpack(ti, raw))
        sq = _expand(scale, ti.group) * qv
        if ti.act == "q8_1":
            self.w64 = sq.reshape(n_rows, k)
            self.bmin = minv.reshape(n_rows, k // 32)
        else:
            self.w64 = (sq + _expand(minv, ti.group)).reshape(n_rows, k)
            self.bmin = None
        self.raw = raw

    def exact(self):
        if self.bmin is None:
            return self.w64
        return self.w64 + np.repeat(self.bmin, 32, axis=1)

    def matmul_emulated(self, x):
        """x [M, K] -> y [M, N] float64 with x quantized as llama.cpp does (then exact math)."""
        x = np.asarray(x)
        shp = x.shape
        x2 = x.reshape(-1, self.k).astype(np.float32)
        a = quantize_activations(self.type.act, x2)
        ab = ACT_TYPES[self.type.act].block
        xq = (a.q.astype(np.float64).reshape(-1, ab) * a.d.astype(np.float64)[:, None]).reshape(x2.shape)
        y = xq @ self.w64.T
        if self.bmin is not None:
            y = y + a.s.astype(np.float64).reshape(x2.shape[0], self.k // 32) @ self.bmin.T
        return y.reshape(shp[:-1] + (self.n,))


# ---------------------------------------------------------------------------------------------
# Random valid blocks

def _std_uniform(n):
    """Standard deviation of integers uniform on 0..n-1."""
    return np.sqrt((n * n - 1) / 12.0)


_KV_STD = float(np.std(KVALUES_IQ4NL.astype(np.float64)))
_Q8_STD = _std_uniform(256)

# Edge patterns mixed into random blocks. In 32-element types they apply to the whole block,
# in K-quants to one scale group (plus "zero_d", the whole super-block's d = 0):
#   zero_scale  the group's scale 0 (32-types: d = 0)
#   max_scale   the largest sub-scale the field holds (both signs where it is signed)
#   all_min_q / all_max_q  every quant of the group at its lowest / highest code
#   extreme_d   (tests only) d = +-65504 or the smallest fp16 subnormals
MODEL_EDGES = ("zero_scale", "max_scale", "all_min_q", "all_max_q")
TEST_EDGES = MODEL_EDGES + ("zero_d", "extreme_d")


def _rand_sign(rng, n):
    return np.where(rng.random(n) < 0.5, -1.0, 1.0)





def _sym_jitter(rng, base, lo, hi, width):
    """base + j with j uniform on -width..width, j = 0 where base +- width would leave [lo, hi]
    (symmetric, so the jitter adds no bias)."""
    j = rng.integers(-width, width + 1, size=base.shape)
    ok = (base - width >= lo) & (base + width <= hi)
    return np.where(ok, base + j, base)


def random_fields(t, nblocks, rng, sigma=1.0, edge_rate=0.0, edges=MODEL_EDGES, zero_mean=True):
    """Fields of `nblocks` random valid blocks whose dequantized values have mean ~0 and standard
    deviation ~sigma (scalar or one per block). Quants are uniform over their whole range, scales
    random within their fields; a per-block bias of the quant range (e.g. Q4_0's -0.5 d) is
    cancelled by a random sign of d (the formats are signed; ggml's own quantizers store negative
    d for Q4_0/Q5_0/IQ4_NL/Q3_K/Q6_K), and types with a min get one that centres their block,
    jittered symmetrically. A fraction `edge_rate` of blocks (32-types) or scale groups (K-quants)
    gets an edge pattern from `edges`. zero_mean=False keeps every d positive (a biased model,
    only as a negative control: llama.cpp then repeats one token)."""
    ti = type_info(t)
    n = ti.name
    sig = np.broadcast_to(np.asarray(sigma, np.float64), (nblocks,)).copy()
    sign = (lambda k: _rand_sign(rng, k)) if zero_mean else (lambda k: np.ones(k))
    f16 = np.float16
    B = ti.block
    G = B // ti.group

    def edge_mask(shape):
        return rng.random(shape) < edge_rate if edge_rate > 0 else np.zeros(shape, bool)

    def pick(mask):
        return np.where(mask, rng.integers(0, len(edges), size=mask.shape), -1)

    kind_names = list(edges)

    def is_kind(sel, name):
        return sel == kind_names.index(name) if name in kind_names else np.zeros(sel.shape, bool)

    if n in ("Q4_0", "Q5_0", "Q8_0", "IQ4_NL", "Q4_1", "Q5_1"):
        if n in ("Q4_0", "Q4_1", "IQ4_NL"):
            codes = 16
        elif n in ("Q5_0", "Q5_1"):
            codes = 32
        else:
            codes = 256
        q = rng.integers(0, codes, size=(nblocks, B))
        spread = {"IQ4_NL": _KV_STD}.get(n, _std_uniform(codes))
        sel = pick(edge_mask(nblocks))
        q[is_kind(sel, "all_min_q")] = 0
        q[is_kind(sel, "all_max_q")] = codes - 1
        if n == "Q8_0":
            q = q - 128
        if n in ("Q4_1", "Q5_1"):
            dd = sig / spread
            centre = (codes - 1) / 2.0
            m = -(centre + rng.uniform(-1.0, 1.0, nblocks)) * dd
            # an all-min / all-max block keeps its min, so it sits at +-centre*d: symmetric
            dd = np.where(is_kind(sel, "zero_scale"), 0.0, dd)
            dd = np.where(is_kind(sel, "max_scale"), dd * 4, dd)
            f = {"d": dd.astype(f16), "m": m.astype(f16), "q": q.astype(np.uint8)}
        else:
            dd = sig / spread * sign(nblocks)
            dd = np.where(is_kind(sel, "zero_scale") | is_kind(sel, "zero_d"), 0.0, dd)
            dd = np.where(is_kind(sel, "max_scale"), dd * 4, dd)
            f = {"d": dd.astype(f16), "q": q.astype(np.int8 if n == "Q8_0" else np.uint8)}
        _apply_extreme_d(f, is_kind(sel, "extreme_d"), rng)
        return f

    # K-quants and IQ4_XS: per super-block d (and dmin), per group scales.
    gsel = pick(edge_mask((nblocks, G)))
    whole = pick(edge_mask(nblocks)) if ("zero_d" in edges or "extreme_d" in edges) else np.full(nblocks, -1)
    if n in ("Q2_K", "Q4_K", "Q5_K"):
        bits = {"Q2_K": 2, "Q4_K": 4, "Q5_K": 5}[n]
        smax = 15 if n == "Q2_K" else 63
        codes = 1 << bits
        q = rng.integers(0, codes, size=(nblocks, B))
        sc = rng.integers(1, smax + 1, size=(nblocks, G))
        sc = np.where(is_kind(gsel, "zero_scale"), 0, sc)
        sc = np.where(is_kind(gsel, "max_scale"), smax, sc)
        qg = q.reshape(nblocks, G, ti.group)
        qg[is_kind(gsel, "all_min_q")] = 0
        qg[is_kind(gsel, "all_max_q")] = codes - 1
        rms = np.sqrt(np.mean(sc.astype(np.float64) ** 2, axis=1))
        dd = sig / (_std_uniform(codes) * np.where(rms > 0, rms, 1.0))
        centre = (codes - 1) / 2.0
        d16 = dd.astype(f16)
        dmin16 = (d16.astype(np.float64) * centre).astype(f16)  # dmin*m ~ d*sc*centre with m ~ sc
        m = _sym_jitter(rng, sc, 0, smax, 1 if n == "Q2_K" else 2)
        f = {"d": d16, "dmin": dmin16, "sc": sc.astype(np.uint8), "m": m.astype(np.uint8), "q": q.astype(np.uint8)}
    elif n in ("Q3_K", "IQ4_XS"):
        q = rng.integers(0, 8 if n == "Q3_K" else 16, size=(nblocks, B))
        sc = rng.integers(0, 64, size=(nblocks, G))  # value sc - 32 in -32..31
        sc = np.where(is_kind(gsel, "zero_scale"), 32, sc)
        sc = np.where(is_kind(gsel, "max_scale"), np.where(rng.random((nblocks, G)) < 0.5, 0, 63), sc)
        qg = q.reshape(nblocks, G, ti.group)
        qg[is_kind(gsel, "all_min_q")] = 0
        qg[is_kind(gsel, "all_max_q")] = 7 if n == "Q3_K" else 15
        s = sc.astype(np.float64) - 32
        rms = np.sqrt(np.mean(s ** 2, axis=1))
        spread = _std_uniform(8) if n == "Q3_K" else _KV_STD
        dd = sig / (spread * np.where(rms > 0, rms, 1.0)) * sign(nblocks)
        f = {"d": dd.astype(f16), "sc": sc.astype(np.uint8), "q": q.astype(np.uint8)}
    elif n == "Q6_K":
        q = rng.integers(0, 64, size=(nblocks, B))
        sc = rng.integers(-128, 128, size=(nblocks, G))
        sc = np.where(is_kind(gsel, "zero_scale"), 0, sc)
        sc = np.where(is_kind(gsel, "max_scale"), np.where(rng.random((nblocks, G)) < 0.5, -128, 127), sc)
        qg = q.reshape(nblocks, G, ti.group)
        qg[is_kind(gsel, "all_min_q")] = 0
        qg[is_kind(gsel, "all_max_q")] = 63
        rms = np.sqrt(np.mean(sc.astype(np.float64) ** 2, axis=1))
        dd = sig / (_std_uniform(64) * np.where(rms > 0, rms, 1.0)) * sign(nblocks)
        f = {"d": dd.astype(f16), "sc": sc.astype(np.int8), "q": q.astype(np.uint8)}
    else:
        raise ValueError(n)
    zd = is_kind(whole, "zero_d")
    f["d"] = np.where(zd, f16(0), f["d"]).astype(f16)
    _apply_extreme_d(f, is_kind(whole, "extreme_d"), rng)
    return f


def _apply_extreme_d(f, mask, rng):
    if not mask.any():
        return
    k = int(mask.sum())
    choices = np.array([65504.0, -65504.0, 2.0 ** -24, -(2.0 ** -24), 3 * 2.0 ** -24, 6.1e-5], np.float64)
    f["d"] = f["d"].copy()
    f["d"][mask] = choices[rng.integers(0, len(choices), k)].astype(np.float16)
    if "dmin" in f:
        f["dmin"] = f["dmin"].copy()
        f["dmin"][mask] = np.abs(choices[rng.integers(0, len(choices), k)]).astype(np.float16)
    if "m" in f and f["m"].ndim == 1:
        f["m"] = f["m"].copy()
        f["m"][mask] = choices[rng.integers(0, len(choices), k)].astype(np.float16)


def random_blocks(t, nblocks, rng, sigma=1.0, edge_rate=0.0, edges=MODEL_EDGES, zero_mean=True):
    """Bytes (np.uint8 [nblocks, block bytes]) of random valid blocks (see random_fields)."""
    return pack(t, random_fields(t, nblocks, rng, sigma, edge_rate, edges, zero_mean))


def random_matrix(t, n_rows, k, rng, row_sigma=1.0, edge_rate=0.0, edges=MODEL_EDGES, zero_mean=True):
    """Raw bytes of an [n_rows, k] weight matrix (row-major, as GGUF stores it) of random valid
    blocks, with per-row standard deviation row_sigma (scalar or [n_rows])."""
    ti = type_info(t)
    if k % ti.block:
        raise ValueError(f"{ti.name} needs rows that are a multiple of {ti.block}, got {k}")
    per_row = k // ti.block
    sig = np.repeat(np.broadcast_to(np.asarray(row_sigma, np.float64), (n_rows,)), per_row)
    return random_blocks(ti, n_rows * per_row, rng, sig, edge_rate, edges, zero_mean).tobytes()
