#!/usr/bin/python3
"""Independent float64 NumPy forward pass for GGUF `llama` and `qwen2` models.

  llama_ref.py --model F.gguf --prompt-ids 1,2,3 [--greedy N] [--out logits.npy]

Written from the model definitions, not from kvserve: weights are dequantized to float64 and every
step is a plain NumPy expression. `forward(model, ids)` returns logits [len(ids), vocab] for every
position; `greedy(model, ids, n)` recomputes the whole sequence at every step (no KV cache, so it
shares nothing with a cached implementation). With --greedy the CLI prints {"ids": [...]} (the
generated ids only); --out saves the prompt logits as float64 .npy.
"""

import argparse
import json
import os
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", "..", "scripts"))
import gguf_py as g  # noqa: E402


class Model:
    """Hyperparameters and float64 weights of one GGUF file."""

    def __init__(self, path):
        f = g.read_gguf(path)
        self.path = path
        self.arch = f.get("general.architecture")
        if self.arch not in ("llama", "qwen2"):
            raise ValueError(f"{path}: architecture {self.arch!r} is not llama or qwen2")
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
        self.head_dim = self.dim // self.heads
        self.eps = float(need("attention.layer_norm_rms_epsilon"))
        self.rope_base = float(f.get(f"{a}.rope.freq_base", 10000.0))
        self.rope_dims = f.get(f"{a}.rope.dimension_count", self.head_dim)
        # GGUF llama rotates adjacent pairs; qwen2 (NeoX style) rotates the two halves.
        self.rope_neox = a == "qwen2"
        self.bos = f.get("tokenizer.ggml.bos_token_id")
        self.w = {name: f.tensor(name, np.float64) for name in f.tensors}
        self.types = {name: t.type for name, t in f.tensors.items()}
        if "output.weight" not in self.w:
            self.w["output.weight"] = self.w["token_embd.weight"]
        self.vocab = self.w["token_embd.weight"].shape[0]


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


def silu(x):
    return x / (1.0 + np.exp(-x))


def _round_like_llamacpp(x, weight_type):
    """What llama.cpp's CPU matmul does to its f32 input before multiplying by a weight of
    `weight_type`: Q8_0 weights quantize the input to Q8_0 blocks, F16/BF16 round it."""
    if weight_type == g.GGML_Q8_0:
        return g.dequantize_q8_0(g.quantize_q8_0(x), x.size).astype(np.float64).reshape(x.shape)
    if weight_type == g.GGML_F16:
        return x.astype(np.float16).astype(np.float64)
    if weight_type == g.GGML_BF16:
        return g.bf16_bits_to_f32(g.f32_to_bf16_bits(x)).astype(np.float64).reshape(x.shape)
    return x


def hidden_states(m, token_ids, emulate_llamacpp=False):
    """Final-normed hidden states [T, dim] for a whole sequence starting at position 0.

    emulate_llamacpp=True adds llama.cpp's roundings (matmul inputs per weight type, f16 K/V cache
    and attention operands); used only to explain a divergence from llama.cpp, never as the
    reference itself."""
    ids = np.asarray(token_ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) == 0:
        raise ValueError("need a non-empty 1-D list of token ids")
    if ids.min() < 0 or ids.max() >= m.vocab:
        raise ValueError(f"token id out of range [0, {m.vocab})")
    T, hd, H, KV = len(ids), m.head_dim, m.heads, m.kv_heads
    group = H // KV
    pos = np.arange(T)
    causal = np.triu(np.full((T, T), -np.inf), k=1)
    x = m.w["token_embd.weight"][ids]

    def mm(h, name):
        if emulate_llamacpp:
            h = _round_like_llamacpp(h, m.types[name])
        return h @ m.w[name].T

    f16 = (lambda a: a.astype(np.float16).astype(np.float64)) if emulate_llamacpp else (lambda a: a)
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
        q = rope(q.reshape(T, H, hd), pos, m.rope_base, m.rope_dims, m.rope_neox)
        k = rope(k.reshape(T, KV, hd), pos, m.rope_base, m.rope_dims, m.rope_neox)
        v = f16(v.reshape(T, KV, hd))
        q, k = f16(q), f16(k)
        attn = np.empty((T, H, hd))
        for head in range(H):
            kv = head // group
            scores = q[:, head, :] @ k[:, kv, :].T / np.sqrt(hd) + causal
            scores -= scores.max(axis=1, keepdims=True)
            prob = np.exp(scores)
            prob /= prob.sum(axis=1, keepdims=True)
            attn[:, head, :] = f16(prob) @ v[:, kv, :]
        x = x + mm(attn.reshape(T, H * hd), p + "attn_output.weight")
        h = rms_norm(x, m.w[p + "ffn_norm.weight"], m.eps)
        ff = silu(mm(h, p + "ffn_gate.weight")) * mm(h, p + "ffn_up.weight")
        x = x + mm(ff, p + "ffn_down.weight")
    return rms_norm(x, m.w["output_norm.weight"], m.eps)


def _lm_head(m, h, emulate_llamacpp):
    name = "output.weight" if "output.weight" in m.types else "token_embd.weight"
    if emulate_llamacpp:
        h = _round_like_llamacpp(h, m.types[name])
    return h @ m.w["output.weight"].T


def forward(model, token_ids, emulate_llamacpp=False):
    """Logits [len(token_ids), vocab] (float64) at every position."""
    m = model if isinstance(model, Model) else Model(model)
    return _lm_head(m, hidden_states(m, token_ids, emulate_llamacpp), emulate_llamacpp)


def last_logits(model, token_ids, emulate_llamacpp=False):
    m = model if isinstance(model, Model) else Model(model)
    return _lm_head(m, hidden_states(m, token_ids, emulate_llamacpp)[-1:], emulate_llamacpp)[0]


def greedy(model, token_ids, n, emulate_llamacpp=False):
    """n greedy ids after token_ids, recomputing the full sequence at each step."""
    m = model if isinstance(model, Model) else Model(model)
    seq = list(token_ids)
    out = []
    for _ in range(n):
        t = int(np.argmax(last_logits(m, seq, emulate_llamacpp)))
        out.append(t)
        seq.append(t)
    return out


def greedy_check(model, token_ids, continuation):
    """The reference's greedy pick at each step of `continuation` after `token_ids`, from ONE
    causal pass over token_ids + continuation: pick[i] = argmax(logits after token_ids +
    continuation[:i]). Equal to `greedy` wherever continuation agrees with it (attention is causal,
    so later tokens cannot change earlier rows); much cheaper than recomputing every step."""
    m = model if isinstance(model, Model) else Model(model)
    seq = list(token_ids) + list(continuation)
    h = hidden_states(m, seq[:-1] if continuation else seq)
    rows = h[len(token_ids) - 1:]
    return [int(t) for t in np.argmax(_lm_head(m, rows, False), axis=1)]


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
    a = ap.parse_args()
    try:
        m = Model(a.model)
        ids = parse_ids(a.prompt_ids)
        if a.out:
            np.save(a.out, forward(m, ids))
        if a.greedy:
            print(json.dumps({"ids": greedy(m, ids, a.greedy)}))
    except (ValueError, g.GGUFError, OSError) as e:
        print(f"llama_ref: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
