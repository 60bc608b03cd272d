#!/usr/bin/python3
"""Writes Hugging Face model folders (config.json + safetensors) from NumPy arrays.

Used by tests/reference/check_hf_vs_gguf.py; importable (write_hf_folder, write_safetensors) and
runnable for a quick random model:

  make_hf_model.py --arch llama|qwen2 --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 \
      --vocab 300 --dtype F32|F16|BF16 [--shards 2] [--tied] --seed 0 --out DIR

The safetensors layout: 8-byte little-endian header length, a JSON header of
{name: {dtype, shape, data_offsets}}, then the tensor bytes (row-major).
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

ARCHITECTURES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                 "qwen2": "Qwen2ForCausalLM"}


def encode(array, dtype):
    a = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    if dtype == "BF16":
        bits = a.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
        return rounded.astype("<u2").tobytes()
    raise ValueError(f"unsupported dtype {dtype}")


def decode_as_stored(array, dtype):
    """The float32 values the file holds after rounding to `dtype`."""
    raw = encode(array, dtype)
    if dtype == "F32":
        v = np.frombuffer(raw, "<f4")
    elif dtype == "F16":
        v = np.frombuffer(raw, "<f2").astype(np.float32)
    else:
        v = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    return v.reshape(np.shape(array))


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: {name: ndarray}; 1-D tensors (norms, biases) are written as F32."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        dt = "F32" if np.ndim(array) == 1 else dtype
        data = encode(array, dt)
        header[name] = {"dtype": dt, "shape": list(np.shape(array)),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def write_hf_folder(out_dir, config, tensors, dtype="F32", shards=1, generation_config=None):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if generation_config is not None:
        with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
            json.dump(generation_config, f, indent=2)
    names = list(tensors)
    if shards == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors, dtype)
        return
    weight_map = {}
    per = -(-len(names) // shards)
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s * per:(s + 1) * per]}
        write_safetensors(os.path.join(out_dir, file), part, dtype)
        weight_map.update({n: file for n in part})
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)


def random_model(arch="llama", dim=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=300, ctx=512,
                 seed=0, tied=False, rope_theta=10000.0, eps=1e-5):
    """A random model in HF naming and layout ([out, in]); returns (config, tensors)."""
    rng = np.random.default_rng(seed)
    hd = dim // heads

    def proj(n_out, n_in):
        return rng.normal(0.0, 1.0 / np.sqrt(n_in), size=(n_out, n_in)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.normal(size=n)).astype(np.float32)

    t = {"model.embed_tokens.weight": rng.normal(0, 1, size=(vocab, dim)).astype(np.float32)}
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm(dim)
        t[p + "self_attn.q_proj.weight"] = proj(heads * hd, dim)
        t[p + "self_attn.k_proj.weight"] = proj(kv_heads * hd, dim)
        t[p + "self_attn.v_proj.weight"] = proj(kv_heads * hd, dim)
        if arch == "qwen2":
            for n, rows in (("q", heads * hd), ("k", kv_heads * hd), ("v", kv_heads * hd)):
                t[p + f"self_attn.{n}_proj.bias"] = (0.2 * rng.normal(size=rows)).astype(np.float32)
        t[p + "self_attn.o_proj.weight"] = proj(dim, heads * hd)
        t[p + "post_attention_layernorm.weight"] = norm(dim)
        t[p + "mlp.gate_proj.weight"] = proj(ffn, dim)
        t[p + "mlp.up_proj.weight"] = proj(ffn, dim)
        t[p + "mlp.down_proj.weight"] = proj(dim, ffn)
    t["model.norm.weight"] = norm(dim)
    if not tied:
        t["lm_head.weight"] = proj(vocab, dim) * 2.0
    config = {
        "architectures": [ARCHITECTURES[arch]], "model_type": arch, "hidden_size": dim,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "intermediate_size": ffn, "rms_norm_eps": eps, "rope_theta": rope_theta,
        "max_position_embeddings": ctx, "vocab_size": vocab, "tie_word_embeddings": tied,
        "hidden_act": "silu", "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2,
    }
    return config, t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="llama", choices=sorted(ARCHITECTURES))
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=300)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"])
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.dim % a.heads or a.heads % a.kv_heads or (a.dim // a.heads) % 2:
        print("make_hf_model: dim/heads/kv-heads do not fit", file=sys.stderr)
        sys.exit(1)
    config, tensors = random_model(a.arch, a.dim, a.layers, a.heads, a.kv_heads, a.ffn, a.vocab,
                                   a.ctx, a.seed, a.tied)
    write_hf_folder(a.out, config, tensors, a.dtype, a.shards)


if __name__ == "__main__":
    main()
