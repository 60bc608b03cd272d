#!/usr/bin/python3
"""Writes a synthetic Llama-family GGUF model (arch `llama` or `qwen2`) with random weights.

  make_model.py --arch llama --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 \
      --type F32|F16|BF16|Q8_0 --seed 0 [--tied] \
      --tokenizer-from /work/shared/models/llama-2-tiny-random.gguf --out model.gguf

Tensor names and metadata keys are llama.cpp's, so llama.cpp loads these files. 2-D weights use
the requested type; 1-D tensors (norms, biases) are always F32, as llama.cpp writes them. The
vocabulary (every `tokenizer.*` key) is copied from --tokenizer-from.

Weight scales keep activations O(1) at any depth and make greedy decoding robust: projections are
normal(0, 1/sqrt(fan_in)), norms 1 +- noise, embeddings std 1, and the LM head has per-token row
scales (log-normal) so the logits have a heavy upper tail and the top two are rarely near-tied.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_py as g  # noqa: E402

# llama.cpp's general.file_type values (enum llama_ftype) for the weight types we write.
FILE_TYPE = {"F32": 0, "F16": 1, "Q8_0": 7, "BF16": 32}


def make_model(out, arch="llama", dim=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=None,
               ctx=2048, type="F32", seed=0, rope_base=10000.0, eps=1e-5, tied=False,
               tokenizer_from=None, bias_std=0.2, head_row_scale_sigma=0.6, chat_template=None):
    if arch not in ("llama", "qwen2"):
        raise ValueError(f"--arch must be llama or qwen2, got {arch!r}")
    if type not in FILE_TYPE:
        raise ValueError(f"--type must be one of {sorted(FILE_TYPE)}, got {type!r}")
    if dim % heads or heads % kv_heads:
        raise ValueError(f"dim {dim} must divide by heads {heads}, and heads by kv-heads {kv_heads}")
    head_dim = dim // heads
    if head_dim % 2:
        raise ValueError(f"head_dim {head_dim} must be even for RoPE")
    if type == "Q8_0":
        for what, n in (("dim", dim), ("ffn", ffn)):
            if n % g.QK8_0:
                raise ValueError(f"Q8_0 needs row lengths that are multiples of {g.QK8_0}: {what}={n}")

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

    rng = np.random.default_rng(seed)
    wtype = g.GGML_TYPE_BY_NAME[type]
    w = g.GGUFWriter()
    w.add("general.architecture", g.STRING, arch)
    w.add("general.name", g.STRING, f"kvserve-synthetic-{arch}-d{dim}-l{layers}-{type}-s{seed}")
    w.add(f"{arch}.context_length", g.UINT32, ctx)
    w.add(f"{arch}.embedding_length", g.UINT32, dim)
    w.add(f"{arch}.block_count", g.UINT32, layers)
    w.add(f"{arch}.feed_forward_length", g.UINT32, ffn)
    w.add(f"{arch}.attention.head_count", g.UINT32, heads)
    w.add(f"{arch}.attention.head_count_kv", g.UINT32, kv_heads)
    w.add(f"{arch}.attention.layer_norm_rms_epsilon", g.FLOAT32, eps)
    w.add(f"{arch}.rope.freq_base", g.FLOAT32, rope_base)
    w.add(f"{arch}.rope.dimension_count", g.UINT32, head_dim)
    w.add("general.file_type", g.UINT32, FILE_TYPE[type])
    for k, v in tok_meta.items():
        w.add_value(k, v)
    if chat_template is not None:
        w.add("tokenizer.chat_template", g.STRING, chat_template)

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
    ap.add_argument("--arch", default="llama", choices=["llama", "qwen2"])
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=None)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--type", default="F32", choices=sorted(FILE_TYPE))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rope-base", type=float, default=10000.0)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--tied", action="store_true", help="no output.weight; the LM head is token_embd")
    ap.add_argument("--tokenizer-from", default=None, help="GGUF whose tokenizer.* keys are copied")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    try:
        make_model(a.out, a.arch, a.dim, a.layers, a.heads, a.kv_heads, a.ffn, a.vocab, a.ctx, a.type,
                   a.seed, a.rope_base, a.eps, a.tied, a.tokenizer_from)
    except (ValueError, g.GGUFError) as e:
        print(f"make_model: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
