#!/usr/bin/python3
"""Malformed model files through the real binary: `kvserve generate` must exit 1 with an error
on stderr that names the problem (never a crash, never exit 0).

Each case starts from ../shared/models/llama-2-tiny-random.gguf, rewritten with scripts/gguf_py.py
(an independent writer) or patched byte by byte.

  test_malformed_models.py --kvserve PATH --workdir DIR
"""

import argparse
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import gguf_py as g  # noqa: E402
import make_model as mm  # noqa: E402


def shared_model():
    shared = os.environ.get("KVSERVE_SHARED") or os.path.join(HERE, "..", "..", "..", "shared")
    return os.path.join(shared, "models", "llama-2-tiny-random.gguf")


def rewrite(src, dst, drop=(), reshape=None, meta=None):
    """Copies src into dst through gguf_py, dropping tensors, replacing one tensor's array, or
    overriding metadata values."""
    f = g.read_gguf(src)
    w = g.GGUFWriter()
    for k, v in f.metadata.items():
        if k == "general.alignment":
            continue
        w.add_value(k, (meta or {}).get(k, v))
    for name, t in f.tensors.items():
        if name in drop:
            continue
        arr = f.tensor(name)
        if reshape and name == reshape[0]:
            arr = reshape[1](arr)
        w.add_tensor(name, arr, t.type if t.type in g.GGML_TYPE_NAMES else g.GGML_F32)
    w.write(dst)


def tensor_type_offset(data, name):
    """Byte offset of the type field in tensor `name`'s directory entry."""
    key = struct.pack("<Q", len(name)) + name.encode()
    pos = data.index(key) + len(key)
    n_dims = struct.unpack_from("<I", data, pos)[0]
    return pos + 4 + 8 * n_dims


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvserve", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    src = shared_model()
    raw = open(src, "rb").read()

    def write_bytes(name, data):
        path = os.path.join(a.workdir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def rewritten(name, **kw):
        path = os.path.join(a.workdir, name)
        rewrite(src, path, **kw)
        return path

    bad_type = bytearray(raw)
    struct.pack_into("<I", bad_type, tensor_type_offset(raw, "blk.0.attn_q.weight"), 99)

    # A Q4_K model (row length 256), then: a tensor retyped to IQ2_XXS (a ggml type kvserve does
    # not multiply; its 66-byte blocks fit in the Q4_K bytes), a Q4_K tensor whose rows (288
    # values) are not whole 256-value blocks, and the file cut inside its last tensor.
    q4k = mm.make_model(os.path.join(a.workdir, "q4k.gguf"), dim=256, layers=1, heads=4,
                        kv_heads=2, ffn=512, type="Q4_K", tokenizer_from=src)
    qraw = open(q4k, "rb").read()
    iq2 = bytearray(qraw)
    struct.pack_into("<I", iq2, tensor_type_offset(qraw, "blk.0.attn_q.weight"), 16)  # IQ2_XXS
    rows = bytearray(qraw)
    pos = tensor_type_offset(qraw, "blk.0.ffn_up.weight") - 16  # dims[0] of a 2-D tensor
    struct.pack_into("<Q", rows, pos, 288)
    cases = [
        ("missing file", os.path.join(a.workdir, "does-not-exist.gguf"), "does-not-exist.gguf"),
        ("empty file", write_bytes("empty.gguf", b""), "truncated"),
        ("truncated header", write_bytes("trunc-header.gguf", raw[:100]), "truncated"),
        ("truncated tensor data", write_bytes("trunc-data.gguf", raw[: len(raw) - 1000]), "past end"),
        ("wrong magic", write_bytes("magic.gguf", b"GGUX" + raw[4:]), "magic"),
        ("unknown version", write_bytes("version.gguf", raw[:4] + struct.pack("<I", 1) + raw[8:]),
         "version 1"),
        ("unknown tensor type", write_bytes("type.gguf", bytes(bad_type)), "blk.0.attn_q.weight"),
        ("missing tensor", rewritten("missing.gguf", drop={"blk.0.ffn_up.weight"}),
         "blk.0.ffn_up.weight"),
        ("shape contradicts metadata",
         rewritten("shape.gguf", reshape=("blk.0.attn_k.weight", lambda x: x[: x.shape[0] // 2])),
         "blk.0.attn_k.weight"),
        ("unsupported architecture",
         rewritten("arch.gguf", meta={"general.architecture": g.Value(g.STRING, "gpt2")}), "gpt2"),
        ("quantized type kvserve does not multiply", write_bytes("iq2.gguf", bytes(iq2)),
         "'blk.0.attn_q.weight' has type IQ2_XXS, which kvserve does not support"),
        ("rows not whole blocks", write_bytes("rows.gguf", bytes(rows)), "blk.0.ffn_up.weight"),
        ("truncated quantized tensor", write_bytes("q4k-trunc.gguf", qraw[: len(qraw) - 100]),
         "past end"),
    ]
    failures = []
    for label, path, needle in cases:
        r = subprocess.run([a.kvserve, "generate", "--model", path, "--prompt-ids", "1,2,3",
                            "--max-tokens", "2", "--weight-dtype", "auto"],
                           capture_output=True, text=True, timeout=60)
        err = r.stderr.strip().splitlines()
        msg = err[-1] if err else ""
        ok = r.returncode == 1 and needle.lower() in r.stderr.lower() and not r.stdout.strip()
        print(f"{'ok  ' if ok else 'FAIL'} {label}: exit {r.returncode}: {msg}")
        if not ok:
            failures.append(f"{label}: exit {r.returncode}, wanted 1 and '{needle}' in: {r.stderr[-400:]!r}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"{len(cases)} malformed models: named errors, exit 1: OK")


if __name__ == "__main__":
    main()
