#!/usr/bin/python3
"""Writes a synthetic Llama-family GGUF model (arch `llama`, `qwen2` or `qwen3`) with random weights.

  make_model.py --arch llama --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 \
      --type F32|F16|BF16|Q8_0|Q4_0|Q4_1|Q5_0|Q5_1|Q2_K|Q3_K|Q4_K|Q5_K|Q6_K|IQ4_NL|IQ4_XS|Q4_K_M|Q5_K_M \
      [--embd-type T] [--output-type T] --seed 0 [--tied] \
      --tokenizer-from /work/shared/models/llama-2-tiny-random.gguf --out model.gguf

Tensor names and metadata keys are llama.cpp's, so llama.cpp loads these files. 2-D weights use
the requested type; 1-D tensors (norms, biases) are always F32, as llama.cpp writes them. The
vocabulary (every `tokenizer.*` key) is copied from --tokenizer-from.

Weight scales keep activations O(1) at any depth and make greedy decoding robust: projections are
normal(0, 1/sqrt(fan_in)), norms 1 +- noise, embeddings std 1, and the LM head has per-token row
scales (log-normal) so the logits have a heavy upper tail and the top two are rarely near-tied.

Types. F32/F16/BF16 weights are drawn as floats and converted; Q8_0 (--type Q8_0) is drawn as
floats and quantized (gguf_py.quantize_q8_0), as before. Every other quantized tensor is written
as random valid blocks drawn in the quantized domain (tests/reference/ggml_quants.random_matrix:
uniform quants, random scales and mins within their fields, zero-mean blocks, a few edge-case
blocks), with the same per-row standard deviations as the float models.
`--type` names a pure type (every 2-D weight in it) or a llama-quantize mix, chosen the way the
oracle's llama.cpp (llama-quant.cpp) chooses:
  Q4_K_M: attn_v and ffn_down Q6_K in the layers use_more_bits selects (i < n/8, i >= 7n/8, or
          (i - n/8) % 3 == 2), else Q4_K; output.weight Q6_K (Q8_0 if its rows are not a multiple
          of 256); token_embd Q4_K (with --tied it is the LM head and gets output's Q6_K).
  Q5_K_M: the same with Q5_K in place of Q4_K.
A row length that is not a multiple of the type's block falls back as llama.cpp does:
Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0, IQ4_XS -> IQ4_NL (this llama.cpp;
older ones sent Q2_K/Q3_K to IQ4_NL), and to F16 when even that does not fit.
--embd-type / --output-type set token_embd.weight / output.weight explicitly (any type, F32/F16/BF16
too), as llama-quantize's --token-embedding-type / --output-tensor-type do (no fallback).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_py as g  # noqa: E402

# llama.cpp's general.file_type values (enum llama_ftype) for the weight types we write (pure
# K-quant files get the _S value, the mostly-that-type ftype).
FILE_TYPE = {"F32": 0, "F16": 1, "Q8_0": 7, "BF16": 32,
             "Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K": 11, "Q4_K": 14,
             "Q5_K": 16, "Q6_K": 18, "IQ4_NL": 25, "IQ4_XS": 30, "Q4_K_M": 15, "Q5_K_M": 17}
FLOAT_TYPES = ("F32", "F16", "BF16")
MIXES = {"Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K"}
# llama-quant.cpp tensor_type_fallback: a row length the type's block does not divide.
FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0", "Q2_K": "Q4_0", "Q3_K": "Q4_0", "IQ4_XS": "IQ4_NL"}
# Fraction of blocks (or K-quant scale groups) written as edge cases in generated weights.
EDGE_RATE = 0.004


def _block(t):
    return 1 if t in FLOAT_TYPES else g.BLOCK_LAYOUT[g.GGML_TYPE_BY_NAME[t]][0]


def use_more_bits(i_layer, n_layers):
    """llama-quant.cpp's rule for the layers that get more bits in the _M mixes."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def fallback(t, row):
    """The type llama.cpp writes for a tensor of type t whose rows have `row` elements."""
    if row % _block(t) == 0:
        return t
    f = FALLBACK.get(t, t)
    return f if row % _block(f) == 0 else "F16"


def tensor_types(ftype, names_rows, layers, tied=False, embd_type=None, output_type=None):
    """{tensor name: type name} for the 2-D weights, as llama-quantize picks them for `ftype`
    (pure types and the Q4_K_M / Q5_K_M mixes). names_rows: {name: row length}."""
    base = MIXES.get(ftype, ftype)
    out = {}
    for name, row in names_rows.items():
        is_embd = name == "token_embd.weight"
        is_out = name == "output.weight"
        if is_embd and embd_type:
            out[name] = embd_type
            continue
        if is_out and output_type:
            out[name] = output_type
            continue
        t = base
        if base in FLOAT_TYPES:
            out[name] = t
            continue
        if ftype in MIXES:
            layer = int(name.split(".")[1]) if name.startswith("blk.") else None
            if is_out or (tied and is_embd):
                t = "Q8_0" if row % _block(base) else "Q6_K"
            elif name.endswith("attn_v.weight") or name.endswith("ffn_down.weight"):
                if use_more_bits(layer, layers):
                    t = "Q6_K"
        out[name] = fallback(t, row)
    return out


def make_model(out, arch="llama", dim=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=None,
               ctx=2048, type="F32", seed=0, rope_base=10000.0, eps=1e-5, tied=False,
               tokenizer_from=None, bias_std=0.2, head_row_scale_sigma=0.6, chat_template=None,
               embd_type=None, output_type=None, biased=False, head_dim=None):
    if arch not in ("llama", "qwen2", "qwen3"):
        raise ValueError(f"--arch must be llama, qwen2 or qwen3, got {arch!r}")
    if type not in FILE_TYPE:
        raise ValueError(f"--type must be one of {sorted(FILE_TYPE)}, got {type!r}")
    for what, t in (("--embd-type", embd_type), ("--output-type", output_type)):
        if t is not None and (t not in FILE_TYPE or t in MIXES):
            raise ValueError(f"{what} must be a tensor type, got {t!r}")
    if type in ("F32", "F16", "BF16", "Q8_0") and embd_type is None and output_type is None and not biased:
        return _make_model_float(out, arch, dim, layers, heads, kv_heads, ffn, vocab, ctx, type, seed,
                                 rope_base, eps, tied, tokenizer_from, bias_std, head_row_scale_sigma,
                                 chat_template, head_dim)
    return _make_model_blocks(out, arch, dim, layers, heads, kv_heads, ffn, vocab, ctx, type, seed,
                              rope_base, eps, tied, tokenizer_from, bias_std, head_row_scale_sigma,
                              chat_template, embd_type, output_type, biased, head_dim)


def _head_dim(dim, heads, kv_heads, head_dim):
    """The head size: dim / heads unless given (qwen3 and others declare attention.key_length)."""
    if heads % kv_heads or (head_dim is None and dim % heads):
        raise ValueError(f"dim {dim} must divide by heads {heads}, and heads by kv-heads {kv_heads}")
    head_dim = dim // heads if head_dim is None else head_dim
    if head_dim % 2:
        raise ValueError(f"head_dim {head_dim} must be even for RoPE")
    return head_dim


def _tokenizer_meta(tokenizer_from, vocab):
    tok_meta = {}
    if tokenizer_from:
        src = g.read_gguf(tokenizer_from)
        tok_meta = {k: v for k, v in src.metadata.items() if k.startswith("tokenizer.")}
        n_tok = len(src.get("tokenizer.ggml.tokens", []))
        if vocab is not None and vocab != n_tok:
            raise ValueError(f"--vocab {vocab} does not match the {n_tok} tokens of {tokenizer_from}")
        vocab = n_tok
    if not vocab:
        raise ValueError("give --vocab or --tokenizer-from")
    return tok_meta, vocab


def _write_header(w, arch, name, ctx, dim, layers, ffn, heads, kv_heads, eps, rope_base, head_dim,
                  file_type, tok_meta, chat_template):
    w.add("general.architecture", g.STRING, arch)
    w.add("general.name", g.STRING, name)
    w.add(f"{arch}.context_length", g.UINT32, ctx)
    w.add(f"{arch}.embedding_length", g.UINT32, dim)
    w.add(f"{arch}.block_count", g.UINT32, layers)
    w.add(f"{arch}.feed_forward_length", g.UINT32, ffn)
    w.add(f"{arch}.attention.head_count", g.UINT32, heads)
    w.add(f"{arch}.attention.head_count_kv", g.UINT32, kv_heads)
    w.add(f"{arch}.attention.layer_norm_rms_epsilon", g.FLOAT32, eps)
    w.add(f"{arch}.rope.freq_base", g.FLOAT32, rope_base)
    w.add(f"{arch}.rope.dimension_count", g.UINT32, head_dim)
    if arch == "qwen3" or head_dim * heads != dim:
        w.add(f"{arch}.attention.key_length", g.UINT32, head_dim)
        w.add(f"{arch}.attention.value_length", g.UINT32, head_dim)
    w.add("general.file_type", g.UINT32, file_type)
    for k, v in tok_meta.items():
        w.add_value(k, v)
    if chat_template is not None:
        w.add("tokenizer.chat_template", g.STRING, chat_template)


def _make_model_blocks(out, arch, dim, layers, heads, kv_heads, ffn, vocab, ctx, type, seed, rope_base,
                       eps, tied, tokenizer_from, bias_std, head_row_scale_sigma, chat_template,
                       embd_type, output_type, biased=False, head_dim=None):
    """Quantized types (and explicit embedding/output types): weights drawn per tensor type.
    biased=True (tests only, a negative control) keeps every block scale positive, so blocks
    carry the mean of their quant range (e.g. Q4_0's -0.5 d) and llama.cpp repeats one token."""
    head_dim = _head_dim(dim, heads, kv_heads, head_dim)
    gq = g._ggml_quants()  # tests/reference/ggml_quants.py

    tok_meta, vocab = _tokenizer_meta(tokenizer_from, vocab)
    rows = {"token_embd.weight": dim}
    for i in range(layers):
        p = f"blk.{i}."
        for n in ("attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up"):
            rows[p + n + ".weight"] = dim
        rows[p + "attn_output.weight"] = heads * head_dim
        rows[p + "ffn_down.weight"] = ffn
    if not tied:
        rows["output.weight"] = dim
    types = tensor_types(type, rows, layers, tied, embd_type, output_type)
    for name, t in types.items():
        if rows[name] % _block(t):
            raise ValueError(f"tensor '{name}': {t} needs rows that are a multiple of {_block(t)}, "
                             f"got {rows[name]}")

    rng = np.random.default_rng(seed)
    w = g.GGUFWriter()
    _write_header(w, arch, f"kvserve-synthetic-{arch}-d{dim}-l{layers}-{type}-s{seed}", ctx, dim, layers,
                  ffn, heads, kv_heads, eps, rope_base, head_dim, FILE_TYPE[type], tok_meta, chat_template)
    w.add("general.quantization_version", g.UINT32, 2)

    def weight(name, n_out, n_in, row_sigma):
        """[n_out, n_in] weight with per-row standard deviation row_sigma, in its type."""
        t = types[name]
        if t in FLOAT_TYPES:
            sig = np.broadcast_to(np.asarray(row_sigma, np.float64).reshape(-1, 1), (n_out, 1))
            w.add_tensor(name, rng.normal(size=(n_out, n_in)) * sig, g.GGML_TYPE_BY_NAME[t])
        else:
            raw = gq.random_matrix(t, n_out, n_in, rng, row_sigma, EDGE_RATE, zero_mean=not biased)
            w.add_tensor_raw(name, [n_in, n_out], g.GGML_TYPE_BY_NAME[t], raw)

    def norm(n):
        return 1.0 + 0.1 * rng.normal(size=n)

    weight("token_embd.weight", vocab, dim, 1.0)
    for i in range(layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm(dim), g.GGML_F32)
        weight(p + "attn_q.weight", heads * head_dim, dim, 1.0 / np.sqrt(dim))
        weight(p + "attn_k.weight", kv_heads * head_dim, dim, 1.0 / np.sqrt(dim))
        weight(p + "attn_v.weight", kv_heads * head_dim, dim, 1.0 / np.sqrt(dim))
        if arch == "qwen2":
            w.add_tensor(p + "attn_q.bias", rng.normal(0, bias_std, heads * head_dim), g.GGML_F32)
            w.add_tensor(p + "attn_k.bias", rng.normal(0, bias_std, kv_heads * head_dim), g.GGML_F32)
            w.add_tensor(p + "attn_v.bias", rng.normal(0, bias_std, kv_heads * head_dim), g.GGML_F32)
        if arch == "qwen3":
            w.add_tensor(p + "attn_q_norm.weight", norm(head_dim), g.GGML_F32)
            w.add_tensor(p + "attn_k_norm.weight", norm(head_dim), g.GGML_F32)
        weight(p + "attn_output.weight", dim, heads * head_dim, 1.0 / np.sqrt(heads * head_dim))
        w.add_tensor(p + "ffn_norm.weight", norm(dim), g.GGML_F32)
        weight(p + "ffn_gate.weight", ffn, dim, 1.0 / np.sqrt(dim))
        weight(p + "ffn_up.weight", ffn, dim, 1.0 / np.sqrt(dim))
        weight(p + "ffn_down.weight", dim, ffn, 1.0 / np.sqrt(ffn))
    w.add_tensor("output_norm.weight", norm(dim), g.GGML_F32)
    if not tied:
        row_scale = np.exp(head_row_scale_sigma * rng.normal(size=vocab))
        weight("output.weight", vocab, dim, 2.0 / np.sqrt(dim) * row_scale)
    tmp = out + ".tmp"
    w.write(tmp)
    os.replace(tmp, out)
    return out


def _make_model_float(out, arch, dim, layers, heads, kv_heads, ffn, vocab, ctx, type, seed, rope_base,
                      eps, tied, tokenizer_from, bias_std, head_row_scale_sigma, chat_template,
                      head_dim=None):
    """F32 / F16 / BF16 / Q8_0 from float weights (byte-identical to the generator before the
    quantized types were added)."""
    head_dim = _head_dim(dim, heads, kv_heads, head_dim)
    if type == "Q8_0":
        for what, n in (("dim", dim), ("ffn", ffn)):
            if n % g.QK8_0:
                raise ValueError(f"Q8_0 needs row lengths that are multiples of {g.QK8_0}: {what}={n}")

    tok_meta, vocab = _tokenizer_meta(tokenizer_from, vocab)
    rng = np.random.default_rng(seed)
    wtype = g.GGML_TYPE_BY_NAME[type]
    w = g.GGUFWriter()
    _write_header(w, arch, f"kvserve-synthetic-{arch}-d{dim}-l{layers}-{type}-s{seed}", ctx, dim,
                  layers, ffn, heads, kv_heads, eps, rope_base, head_dim, FILE_TYPE[type], tok_meta,
                  chat_template)

    def proj(n_out, n_in):
        return rng.normal(0.0, 1.0 / np.sqrt(n_in), size=(n_out, n_in))

    def norm(n):
        return 1.0 + 0.1 * rng.normal(size=n)

    embd = rng.normal(0.0, 1.0, size=(vocab, dim))
    w.add_tensor("token_embd.weight", embd, wtype)
    for i in range(layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm(dim), g.GGML_F32)
        w.add_tensor(p + "attn_q.weight", proj(heads * head_dim, dim), wtype)
        w.add_tensor(p + "attn_k.weight", proj(kv_heads * head_dim, dim), wtype)
        w.add_tensor(p + "attn_v.weight", proj(kv_heads * head_dim, dim), wtype)
        if arch == "qwen2":
            w.add_tensor(p + "attn_q.bias", rng.normal(0, bias_std, heads * head_dim), g.GGML_F32)
            w.add_tensor(p + "attn_k.bias", rng.normal(0, bias_std, kv_heads * head_dim), g.GGML_F32)
            w.add_tensor(p + "attn_v.bias", rng.normal(0, bias_std, kv_heads * head_dim), g.GGML_F32)
        if arch == "qwen3":
            w.add_tensor(p + "attn_q_norm.weight", norm(head_dim), g.GGML_F32)
            w.add_tensor(p + "attn_k_norm.weight", norm(head_dim), g.GGML_F32)
        w.add_tensor(p + "attn_output.weight", proj(dim, heads * head_dim), wtype)
        w.add_tensor(p + "ffn_norm.weight", norm(dim), g.GGML_F32)
        w.add_tensor(p + "ffn_gate.weight", proj(ffn, dim), wtype)
        w.add_tensor(p + "ffn_up.weight", proj(ffn, dim), wtype)
        w.add_tensor(p + "ffn_down.weight", proj(dim, ffn), wtype)
    w.add_tensor("output_norm.weight", norm(dim), g.GGML_F32)
    if not tied:
        # Per-token row scales: a heavy upper tail of logits, so greedy picks are clear.
        row_scale = np.exp(head_row_scale_sigma * rng.normal(size=(vocab, 1)))
        w.add_tensor("output.weight", proj(vocab, dim) * 2.0 * row_scale, wtype)
    tmp = out + ".tmp"
    w.write(tmp)
    os.replace(tmp, out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="llama", choices=["llama", "qwen2", "qwen3"])
    ap.add_argument("--head-dim", type=int, default=None,
                    help="head size (default dim / heads; written as attention.key_length)")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=None)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--type", default="F32", choices=sorted(FILE_TYPE))
    ap.add_argument("--embd-type", default=None, choices=sorted(set(FILE_TYPE) - set(MIXES)),
                    help="type of token_embd.weight (default: as --type chooses)")
    ap.add_argument("--output-type", default=None, choices=sorted(set(FILE_TYPE) - set(MIXES)),
                    help="type of output.weight (default: as --type chooses)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rope-base", type=float, default=10000.0)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--tied", action="store_true", help="no output.weight; the LM head is token_embd")
    ap.add_argument("--tokenizer-from", default=None, help="GGUF whose tokenizer.* keys are copied")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    try:
        make_model(a.out, a.arch, a.dim, a.layers, a.heads, a.kv_heads, a.ffn, a.vocab, a.ctx, a.type,
                   a.seed, a.rope_base, a.eps, a.tied, a.tokenizer_from,
                   embd_type=a.embd_type, output_type=a.output_type, head_dim=a.head_dim)
    except (ValueError, g.GGUFError) as e:
        print(f"make_model: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
