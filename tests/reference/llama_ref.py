#!/usr/bin/python3
"""Independent float64 NumPy forward pass for GGUF `llama`, `qwen2` and `qwen3` models.

  llama_ref.py --model F.gguf --prompt-ids 1,2,3 [--greedy N] [--out logits.npy]

Written from the model definitions, not from kvserve: weights are dequantized to float64 and every
step is a plain NumPy expression. Quantized weights (Q4_0 ... IQ4_XS, see ggml_quants.py) are read
as their exact values (float64, no rounding). `forward(model, ids)` returns logits [len(ids), vocab] for every
position; `greedy(model, ids, n)` recomputes the whole sequence at every step (no KV cache, so it
shares nothing with a cached implementation). With --greedy the CLI prints {"ids": [...]} (the
generated ids only); --out saves the prompt logits as float64 .npy. --emulate-llamacpp adds
llama.cpp's roundings (see hidden_states), in particular ggml's quantization of every matmul input
for quantized weights (Q8_0 / Q8_1 / Q8_K blocks, as x86 ggml-cpu does them).
"""

import argparse
import json
import os
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", "..", "scripts"))
sys.path.insert(0, _HERE)
import ggml_quants as gq  # noqa: E402
import gguf_py as g  # noqa: E402


class Model:
    """Hyperparameters and float64 weights of one GGUF file."""

    def __init__(self, path):
        f = g.read_gguf(path)
        self.path = path
        self.arch = f.get("general.architecture")
        if self.arch not in ("llama", "qwen2", "qwen3"):
            raise ValueError(f"{path}: architecture {self.arch!r} is not llama, qwen2 or qwen3")
        a = self.arch

        def need(key):
            v = f.get(f"{a}.{key}")
            if v is None:
                raise ValueError(f"{path}: missing metadata key '{a}.{key}'")
            return v

        self.dim = need("embedding_length")
        self.layers = need("block_count")
        self.heads = need("attention.head_count")
        self.kv_heads = f.get(f"{a}.attention.head_count_kv", self.heads)
        # qwen3 (and any file that declares it) gives the head size; it need not be dim / heads.
        self.head_dim = f.get(f"{a}.attention.key_length", self.dim // self.heads)
        self.eps = float(need("attention.layer_norm_rms_epsilon"))
        self.rope_base = float(f.get(f"{a}.rope.freq_base", 10000.0))
        self.rope_dims = f.get(f"{a}.rope.dimension_count", self.head_dim)
        # GGUF llama rotates adjacent pairs; qwen2/qwen3 (NeoX style) rotate the two halves.
        self.rope_neox = a in ("qwen2", "qwen3")
        self.bos = f.get("tokenizer.ggml.bos_token_id")
        self.types = {name: t.type for name, t in f.tensors.items()}
        self.w = {}
        self._raw = {}  # quantized tensors: (raw bytes, rows, row length)
        self._qm = {}  # name -> ggml_quants.QuantMatrix, made on first emulated matmul
        for name, t in f.tensors.items():
            if t.type in g.QUANTIZED_TYPES:
                raw = np.frombuffer(bytes(t.data), np.uint8)
                n_rows = t.num_elements // t.dims[0]
                self._raw[name] = (raw, n_rows, t.dims[0])
                self.w[name] = gq.dequantize_exact(t.type, raw).reshape(t.shape)
            else:
                self.w[name] = f.tensor(name, np.float64)
        if "output.weight" not in self.w:
            self.w["output.weight"] = self.w["token_embd.weight"]
        self.vocab = self.w["token_embd.weight"].shape[0]
        # A sliding attention window to apply (position i attends to j with i - window < j <= i),
        # or None. Never read from the file (llama.cpp ignores llama.attention.sliding_window):
        # check_sliding_window.py sets it to show what applying one would change.
        self.window = None


def rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope(x, positions, base, n_rot, neox):
    """x: [T, heads, head_dim]; rotates the first n_rot dims of each head by position."""
    i = np.arange(n_rot // 2, dtype=np.float64)
    theta = base ** (-2.0 * i / n_rot)
    angle = positions[:, None].astype(np.float64) * theta[None, :]  # [T, n_rot/2]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    out = x.copy()
    if neox:
        a, b = x[..., : n_rot // 2], x[..., n_rot // 2: n_rot]
        out[..., : n_rot // 2] = a * cos - b * sin
        out[..., n_rot // 2: n_rot] = a * sin + b * cos
    else:
        a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = a * cos - b * sin
        out[..., 1:n_rot:2] = a * sin + b * cos
    return out


def rope_ggml_f32(x, positions, base, n_rot, neox):
    """rope() the way ggml-cpu computes it, in float32: theta_scale = powf(base, -2/n_rot),
    theta_i = p * theta_scale^i by repeated multiplication (ggml_rope_cache_init), cosf/sinf, the
    rotation in float32. Used when emulating llama.cpp: Q and K are rounded to f16 right after, so
    float64 angles would flip some of those roundings."""
    f32 = np.float32
    theta_scale = np.power(f32(base), f32(-2.0) / f32(n_rot), dtype=f32)
    T = len(positions)
    theta = np.empty((T, n_rot // 2), f32)
    t = np.asarray(positions, f32)
    for i in range(n_rot // 2):
        theta[:, i] = t
        t = (t * theta_scale).astype(f32)
    cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    x = x.astype(f32)
    out = x.copy()
    if neox:
        a, b = x[..., : n_rot // 2], x[..., n_rot // 2: n_rot]
        out[..., : n_rot // 2] = a * cos - b * sin
        out[..., n_rot // 2: n_rot] = a * sin + b * cos
    else:
        a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = a * cos - b * sin
        out[..., 1:n_rot:2] = a * sin + b * cos
    return out.astype(np.float64)


def silu(x):
    return x / (1.0 + np.exp(-x))


def _round_like_llamacpp(x, weight_type):
    """What llama.cpp's CPU matmul does to its f32 input before multiplying by a float weight of
    `weight_type`: F16/BF16 round it (quantized weights: see _matmul)."""
    if weight_type == g.GGML_F16:
        return x.astype(np.float16).astype(np.float64)
    if weight_type == g.GGML_BF16:
        return g.bf16_bits_to_f32(g.f32_to_bf16_bits(x)).astype(np.float64).reshape(x.shape)
    return x


# When a list, every emulated quantized matmul appends, per input row, how close any of that
# row's activations came to a rounding boundary of its 8-bit quantization (in quant units: 0.5
# is as far as possible). A row whose margin is tiny may round the other way in an engine whose
# float32 arithmetic differs in the last bits; check_quant_logits.py uses this.
QUANT_MARGINS = None


def _quant_margins(kind, x):
    """Per row of x [R, K] (float32): min over its values of | |frac(v)| - 0.5 | where v is
    the value ggml rounds (x * 127 / amax per 32-block, or iscale * x per 256-block)."""
    block = 256 if kind == "q8_K" else 32
    xb = x.reshape(x.shape[0], -1, block).astype(np.float32)
    with np.errstate(all="ignore"):
        if kind == "q8_K":
            idx = np.argmax(np.abs(xb), axis=2)
            mx = np.take_along_axis(xb, idx[..., None], axis=2)
            v = (np.float32(-127) / np.where(mx == 0, np.float32(1), mx)).astype(np.float32) * xb
        else:
            amax = np.abs(xb).max(axis=2, keepdims=True)
            v = xb * (np.float32(127) / np.where(amax == 0, np.float32(1), amax)).astype(np.float32)
        frac = np.abs(v.astype(np.float64) - np.trunc(v.astype(np.float64)))
        margin = np.abs(frac - 0.5)
    return margin.reshape(x.shape[0], -1).min(axis=1)


def _matmul(m, h, name, emulate_llamacpp):
    """h @ W(name)^T. Emulating llama.cpp: a quantized weight's input is first quantized the way
    ggml-cpu quantizes it (q8_0 / q8_1 / q8_K blocks, x86 rounding), then multiplied exactly
    (ggml_quants.QuantMatrix: what an exact-integer kernel computes, up to float rounding)."""
    if emulate_llamacpp and name in m._raw:
        qm = m._qm.get(name)
        if qm is None:
            raw, n_rows, k = m._raw[name]
            qm = m._qm[name] = gq.QuantMatrix(m.types[name], raw, n_rows, k)
        if QUANT_MARGINS is not None:
            x2 = h.reshape(-1, h.shape[-1]).astype(np.float32)
            QUANT_MARGINS.append(_quant_margins(qm.type.act, x2))
        return qm.matmul_emulated(h.astype(np.float32))
    if emulate_llamacpp:
        h = _round_like_llamacpp(h, m.types[name])
    return h @ m.w[name].T


def _embed(m, ids, emulate_llamacpp):
    """Embedding rows; emulating llama.cpp, a quantized table is read through ggml's float32
    dequantization (get_rows)."""
    name = "token_embd.weight"
    if emulate_llamacpp and name in m._raw:
        raw, n_rows, k = m._raw[name]
        rb = gq.row_bytes(m.types[name], k)
        rows = raw.reshape(n_rows, rb)[np.asarray(ids)]
        return gq.dequantize(m.types[name], rows).reshape(len(ids), k).astype(np.float64)
    return m.w[name][ids]


# llama.cpp's CPU flash attention (on by default: flash_attn "auto") takes a batch of at least
# this many query rows through its tiled float32 path (Q in f32, f32 softmax and accumulation),
# a single row through the one-query path (Q in f16, V accumulated in f16). The source says 64
# (GGML_FA_TILE_Q), but the oracle's binary matches the tiled path already for a 2-row prompt
# (logit gaps agree to ~1e-7 of the range with 2, to ~5e-5 with 3), so 2 is what we emulate.
FA_TILE_Q = 2


def _fa_one_query(q, k16, v16, rows, group, hd):
    """Attention outputs [len(rows), H, hd] of ggml-cpu's flash_attn_ext_f16_one_chunk for the
    query rows `rows` (a row attends to positions 0..row): Q rounded to f16, scores as float32,
    online softmax with the V accumulator kept in f16 (rounded after every scale and every
    multiply-add, as ggml_vec_scale_f16 / ggml_vec_mad_f16 do), finally scaled by 1/S."""
    f16, f32 = np.float16, np.float32
    rows = np.asarray(rows)
    qr = q[rows].astype(f16).astype(np.float64)
    kh = np.repeat(k16, group, axis=1)
    vh = np.repeat(v16, group, axis=1)
    scale = f32(1.0) / np.sqrt(f32(hd), dtype=f32)
    s_all = (np.einsum("rhd,thd->rht", qr, kh).astype(f32) * scale).astype(f32)
    R, H = qr.shape[0], qr.shape[1]
    M = np.full((R, H), -np.inf, f32)
    S = np.zeros((R, H), f32)
    V = np.zeros((R, H, hd), f16)
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(int(rows.max()) + 1):
            act = (rows >= j)[:, None]
            sj = s_all[:, :, j]
            new = (sj > M) & act
            old = act & ~new
            ms = np.where(new, np.exp((M - sj).astype(f32)), f32(1)).astype(f32)
            vs = np.where(old, np.exp((sj - M).astype(f32)), f32(1)).astype(f32)
            M = np.where(new, sj, M)
            Vf = V.astype(f32)
            Vf = np.where(new[..., None], (Vf * ms[..., None]).astype(f32).astype(f16).astype(f32), Vf)
            upd = (Vf.astype(np.float64) + vh[j][None].astype(np.float64) * vs[..., None]).astype(f32).astype(f16)
            V = np.where(act[..., None], upd, V)
            S = np.where(act, (S * ms + vs).astype(f32), S)
    s_inv = np.where(S == 0, f32(0), f32(1) / np.where(S == 0, f32(1), S)).astype(f32)
    return (V.astype(f32) * s_inv[..., None]).astype(np.float64)


def hidden_states(m, token_ids, emulate_llamacpp=False, batch_rows=None, f16_kv=None, round_kv=None):
    """Final-normed hidden states [T, dim] for a whole sequence starting at position 0.

    emulate_llamacpp=True adds llama.cpp's roundings (matmul inputs per weight type: quantized to
    ggml's q8_0/q8_1/q8_K blocks for quantized weights, rounded for F16/BF16; K/V in f16 and its
    CPU flash attention); used to explain or judge a divergence from llama.cpp. batch_rows: how
    many leading rows llama.cpp computes as one batch (the prompt; default all): a batch of at
    least FA_TILE_Q rows goes through the tiled float32 attention, every other row (and each
    generated token) through the one-query path with its f16 accumulator (_fa_one_query)."""
    ids = np.asarray(token_ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) == 0:
        raise ValueError("need a non-empty 1-D list of token ids")
    if ids.min() < 0 or ids.max() >= m.vocab:
        raise ValueError(f"token id out of range [0, {m.vocab})")
    T, hd, H, KV = len(ids), m.head_dim, m.heads, m.kv_heads
    group = H // KV
    pos = np.arange(T)
    causal = np.triu(np.full((T, T), -np.inf), k=1)
    if getattr(m, "window", None):
        causal[np.subtract.outer(pos, pos) >= m.window] = -np.inf
    x = _embed(m, ids, emulate_llamacpp)

    def mm(h, name):
        return _matmul(m, h, name, emulate_llamacpp)

    # f16_kv=False keeps llama.cpp's matmul roundings but an f32 K/V cache and plain attention
    # (what an engine with an f32 KV cache computes). round_kv="f16" (with f16_kv=False) rounds
    # K/V to f16 but keeps plain f64 attention: kvserve's f16 cache, widened exactly to f32.
    f16_kv = emulate_llamacpp if f16_kv is None else f16_kv
    round_f16 = f16_kv or round_kv == "f16"
    f16 = (lambda a: a.astype(np.float16).astype(np.float64)) if round_f16 else (lambda a: a)
    for layer in range(m.layers):
        p = f"blk.{layer}."
        h = rms_norm(x, m.w[p + "attn_norm.weight"], m.eps)
        q = mm(h, p + "attn_q.weight")
        k = mm(h, p + "attn_k.weight")
        v = mm(h, p + "attn_v.weight")
        if p + "attn_q.bias" in m.w:
            q = q + m.w[p + "attn_q.bias"]
            k = k + m.w[p + "attn_k.bias"]
            v = v + m.w[p + "attn_v.bias"]
        q, k = q.reshape(T, H, hd), k.reshape(T, KV, hd)
        if p + "attn_q_norm.weight" in m.w:  # qwen3: RMSNorm of each head's q and k, before RoPE
            q = rms_norm(q, m.w[p + "attn_q_norm.weight"], m.eps)
            k = rms_norm(k, m.w[p + "attn_k_norm.weight"], m.eps)
        rot = rope_ggml_f32 if emulate_llamacpp else rope
        q = rot(q, pos, m.rope_base, m.rope_dims, m.rope_neox)
        k = rot(k, pos, m.rope_base, m.rope_dims, m.rope_neox)
        v = f16(v.reshape(T, KV, hd))
        k = f16(k)  # the K/V cache is f16; the tiled path multiplies an f32 Q with it
        attn = np.empty((T, H, hd))
        for head in range(H):
            kv = head // group
            scores = q[:, head, :] @ k[:, kv, :].T / np.sqrt(hd) + causal
            scores -= scores.max(axis=1, keepdims=True)
            prob = np.exp(scores)
            prob /= prob.sum(axis=1, keepdims=True)
            attn[:, head, :] = prob @ v[:, kv, :]
        if f16_kv:
            nb = T if batch_rows is None else min(int(batch_rows), T)
            one = np.arange(nb if nb < FA_TILE_Q else 0, T)
            if len(one):
                attn[one] = _fa_one_query(q, k, v, one, group, hd)
        x = x + mm(attn.reshape(T, H * hd), p + "attn_output.weight")
        h = rms_norm(x, m.w[p + "ffn_norm.weight"], m.eps)
        ff = silu(mm(h, p + "ffn_gate.weight")) * mm(h, p + "ffn_up.weight")
        x = x + mm(ff, p + "ffn_down.weight")
    return rms_norm(x, m.w["output_norm.weight"], m.eps)


def _lm_head(m, h, emulate_llamacpp):
    name = "output.weight" if "output.weight" in m.types else "token_embd.weight"
    return _matmul(m, h, name, emulate_llamacpp)


def forward(model, token_ids, emulate_llamacpp=False, f16_kv=None, round_kv=None):
    """Logits [len(token_ids), vocab] (float64) at every position."""
    m = model if isinstance(model, Model) else Model(model)
    return _lm_head(m, hidden_states(m, token_ids, emulate_llamacpp, f16_kv=f16_kv,
                                     round_kv=round_kv),
                    emulate_llamacpp)


def last_logits(model, token_ids, emulate_llamacpp=False):
    m = model if isinstance(model, Model) else Model(model)
    return _lm_head(m, hidden_states(m, token_ids, emulate_llamacpp)[-1:], emulate_llamacpp)[0]


def greedy(model, token_ids, n, emulate_llamacpp=False):
    """n greedy ids after token_ids, recomputing the full sequence at each step."""
    m = model if isinstance(model, Model) else Model(model)
    seq = list(token_ids)
    out = []
    for _ in range(n):
        h = hidden_states(m, seq, emulate_llamacpp, batch_rows=len(token_ids))[-1:]
        t = int(np.argmax(_lm_head(m, h, emulate_llamacpp)[0]))
        out.append(t)
        seq.append(t)
    return out


def continuation_logits(model, token_ids, continuation, emulate_llamacpp=False, f16_kv=None,
                        round_kv=None):
    """Logits [len(continuation) (or 1), vocab] after token_ids + continuation[:i] for each i,
    from ONE causal pass (attention is causal and every rounding llama.cpp does, incl. the
    per-row activation quantization, is per token, so later tokens cannot change earlier rows).
    Emulating llama.cpp, token_ids are its prompt batch and the continuation its decode steps.
    f16_kv, round_kv as in hidden_states (None: llama.cpp's f16 K/V exactly when emulating it)."""
    m = model if isinstance(model, Model) else Model(model)
    seq = list(token_ids) + list(continuation)
    h = hidden_states(m, seq[:-1] if continuation else seq, emulate_llamacpp,
                      batch_rows=len(token_ids), f16_kv=f16_kv, round_kv=round_kv)
    rows = h[len(token_ids) - 1:]
    return _lm_head(m, rows, emulate_llamacpp)


def greedy_check(model, token_ids, continuation, emulate_llamacpp=False):
    """The reference's greedy pick at each step of `continuation` after `token_ids`, from ONE
    causal pass over token_ids + continuation: pick[i] = argmax(logits after token_ids +
    continuation[:i]). Equal to `greedy` wherever continuation agrees with it (attention is causal,
    so later tokens cannot change earlier rows); much cheaper than recomputing every step."""
    return [int(t) for t in np.argmax(continuation_logits(model, token_ids, continuation, emulate_llamacpp), axis=1)]


def top2_gap(logits):
    """(gap between the two largest logits, max - min) of a 1-D logits vector."""
    s = np.sort(np.asarray(logits, dtype=np.float64))
    return float(s[-1] - s[-2]), float(s[-1] - s[0])


def parse_ids(text):
    return [int(t) for t in text.split(",") if t.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-ids", required=True, help="comma-separated token ids")
    ap.add_argument("--greedy", type=int, default=0, help="print this many greedy ids as JSON")
    ap.add_argument("--out", default=None, help="save prompt logits [len, vocab] as .npy")
    ap.add_argument("--emulate-llamacpp", action="store_true",
                    help="quantize matmul inputs as ggml does and keep K/V in f16, like llama.cpp")
    a = ap.parse_args()
    try:
        m = Model(a.model)
        ids = parse_ids(a.prompt_ids)
        if a.out:
            np.save(a.out, forward(m, ids, a.emulate_llamacpp))
        if a.greedy:
            print(json.dumps({"ids": greedy(m, ids, a.greedy, a.emulate_llamacpp)}))
    except (ValueError, g.GGUFError, OSError) as e:
        print(f"llama_ref: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
