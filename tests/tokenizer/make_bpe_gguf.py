#!/usr/bin/python3
"""Writes a tiny random-weight llama GGUF carrying a byte-level BPE vocabulary taken from a
Hugging Face tokenizer.json, so llama.cpp can load it and tokenize with that vocabulary.

  make_bpe_gguf.py TOKENIZER.json TOKENIZER_CONFIG.json --pre llama-bpe OUT.gguf

Token types follow llama.cpp's converter: added tokens marked "special" are CONTROL (3), other
added tokens USER_DEFINED (4), the rest NORMAL (1). The GGUF writer is written here from the
format description (v3, little-endian, 32-byte alignment).
"""
import argparse
import json
import struct

import numpy as np

GGUF_UINT32, GGUF_INT32, GGUF_FLOAT32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY = 4, 5, 6, 7, 8, 9


def enc_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def enc_kv(key, vtype, value, elem_type=None):
    out = enc_str(key) + struct.pack("<I", vtype)
    if vtype == GGUF_ARRAY:
        out += struct.pack("<IQ", elem_type, len(value))
        if elem_type == GGUF_STRING:
            out += b"".join(enc_str(v) for v in value)
        elif elem_type == GGUF_INT32:
            out += np.asarray(value, dtype="<i4").tobytes()
        elif elem_type == GGUF_FLOAT32:
            out += np.asarray(value, dtype="<f4").tobytes()
        return out
    if vtype == GGUF_STRING:
        return out + enc_str(value)
    if vtype == GGUF_UINT32:
        return out + struct.pack("<I", value)
    if vtype == GGUF_FLOAT32:
        return out + struct.pack("<f", value)
    if vtype == GGUF_BOOL:
        return out + struct.pack("<B", 1 if value else 0)
    raise ValueError(vtype)


def write_gguf(path, kvs, tensors):
    """kvs: list of encoded key/values; tensors: list of (name, float32 array, ggml dims)."""
    align = 32
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    infos, data, offset = b"", b"", 0
    for name, arr, dims in tensors:
        infos += enc_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", 0, offset)  # type 0 = F32
        blob = arr.astype("<f4").tobytes()
        pad = (-len(blob)) % align
        data += blob + b"\0" * pad
        offset += len(blob) + pad
    head = header + infos
    head += b"\0" * ((-len(head)) % align)
    with open(path, "wb") as f:
        f.write(head + data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizer_json")
    ap.add_argument("tokenizer_config_json")
    ap.add_argument("--pre", required=True)
    ap.add_argument("out")
    args = ap.parse_args()
    tok = json.load(open(args.tokenizer_json, encoding="utf-8"))
    cfg = json.load(open(args.tokenizer_config_json, encoding="utf-8"))
    model = tok["model"]
    assert model["type"] == "BPE", model["type"]
    vocab = dict(model["vocab"])
    added = {t["id"]: t for t in tok.get("added_tokens", [])}
    n = max(list(vocab.values()) + list(added.keys())) + 1
    tokens = [None] * n
    types = [1] * n
    for text, i in vocab.items():
        tokens[i] = text
    for i, t in added.items():
        tokens[i] = t["content"]
        types[i] = 3 if t.get("special") else 4
    for i in range(n):
        if tokens[i] is None:  # holes in the id space, as llama.cpp's converter pads them
            tokens[i] = f"[PAD{i}]"
            types[i] = 5
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    by_text = {t: i for i, t in enumerate(tokens)}

    def token_id(name):
        v = cfg.get(name)
        if isinstance(v, dict):
            v = v.get("content")
        return by_text.get(v) if v else None

    bos, eos = token_id("bos_token"), token_id("eos_token")
    dim, ff, heads = 8, 16, 2
    kvs = [
        enc_kv("general.architecture", GGUF_STRING, "llama"),
        enc_kv("general.name", GGUF_STRING, "tokenizer-test-" + args.pre),
        enc_kv("llama.context_length", GGUF_UINT32, 256),
        enc_kv("llama.embedding_length", GGUF_UINT32, dim),
        enc_kv("llama.block_count", GGUF_UINT32, 1),
        enc_kv("llama.feed_forward_length", GGUF_UINT32, ff),
        enc_kv("llama.attention.head_count", GGUF_UINT32, heads),
        enc_kv("llama.attention.head_count_kv", GGUF_UINT32, heads),
        enc_kv("llama.attention.layer_norm_rms_epsilon", GGUF_FLOAT32, 1e-5),
        enc_kv("llama.rope.dimension_count", GGUF_UINT32, dim // heads),
        enc_kv("llama.vocab_size", GGUF_UINT32, n),
        enc_kv("tokenizer.ggml.model", GGUF_STRING, "gpt2"),
        enc_kv("tokenizer.ggml.pre", GGUF_STRING, args.pre),
        enc_kv("tokenizer.ggml.tokens", GGUF_ARRAY, tokens, GGUF_STRING),
        enc_kv("tokenizer.ggml.token_type", GGUF_ARRAY, types, GGUF_INT32),
        enc_kv("tokenizer.ggml.merges", GGUF_ARRAY, merges, GGUF_STRING),
        enc_kv("tokenizer.ggml.add_bos_token", GGUF_BOOL, bool(cfg.get("add_bos_token", bos is not None))),
    ]
    if bos is not None:
        kvs.append(enc_kv("tokenizer.ggml.bos_token_id", GGUF_UINT32, bos))
    if eos is not None:
        kvs.append(enc_kv("tokenizer.ggml.eos_token_id", GGUF_UINT32, eos))
    rng = np.random.default_rng(0)

    def w(*dims):  # ggml dims order: dims[0] contiguous
        return rng.standard_normal(int(np.prod(dims))).astype(np.float32) * 0.02, list(dims)

    tensors = []
    for name, dims in [("token_embd.weight", (dim, n)), ("output_norm.weight", (dim,)),
                       ("blk.0.attn_norm.weight", (dim,)), ("blk.0.attn_q.weight", (dim, dim)),
                       ("blk.0.attn_k.weight", (dim, dim)), ("blk.0.attn_v.weight", (dim, dim)),
                       ("blk.0.attn_output.weight", (dim, dim)), ("blk.0.ffn_norm.weight", (dim,)),
                       ("blk.0.ffn_gate.weight", (dim, ff)), ("blk.0.ffn_up.weight", (dim, ff)),
                       ("blk.0.ffn_down.weight", (ff, dim))]:
        arr, d = w(*dims)
        if name.endswith("norm.weight"):
            arr = np.ones_like(arr)
        tensors.append((name, arr, d))
    write_gguf(args.out, kvs, tensors)


if __name__ == "__main__":
    main()
