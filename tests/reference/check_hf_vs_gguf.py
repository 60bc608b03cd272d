#!/usr/bin/python3
"""The same synthetic weights saved as a Hugging Face folder and as a GGUF give the same logits.

For each variant, one random model (HF naming and layout) is written twice:
  * as a HF folder: config.json + model.safetensors (or two shards + model.safetensors.index.json);
  * as a GGUF with llama.cpp's tensor names; for arch `llama` the rows of Q and K are permuted the
    way llama.cpp's converter does (per head: reshape (heads, 2, head_dim/2, dim), swap axes 1
    and 2), which turns rotate-halves RoPE into adjacent-pair RoPE. GGUF `qwen2` is NeoX style,
    so it is written unpermuted.
`kvserve logits` on both must agree to 1e-5 relative to the logit range. Also: greedy ids agree,
EOS comes from generation_config.json (a list), and a truncated safetensors header gives a named
error and exit status 1.
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(_HERE, "..", "..", "scripts")))
import gguf_py as g  # noqa: E402
import make_hf_model as hf  # noqa: E402

GGUF_NAMES = {
    "input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias", "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
}
GGML_TYPE = {"F32": g.GGML_F32, "F16": g.GGML_F16, "BF16": g.GGML_BF16}


class CheckFailed(Exception):
    pass


def permute_for_adjacent_pairs(w, n_heads):
    """llama.cpp's convert_hf_to_gguf permutation of Q/K rows (independent re-derivation)."""
    rows, cols = w.shape
    hd = rows // n_heads
    return w.reshape(n_heads, 2, hd // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def write_gguf(path, arch, config, tensors, dtype, extra_tensors=None):
    """extra_tensors: {gguf name: f32 array} written as is (e.g. rope_freqs.weight)."""
    w = g.GGUFWriter()
    w.add("general.architecture", g.STRING, arch)
    w.add("general.name", g.STRING, "hf-vs-gguf")
    w.add(f"{arch}.context_length", g.UINT32, config["max_position_embeddings"])
    w.add(f"{arch}.embedding_length", g.UINT32, config["hidden_size"])
    w.add(f"{arch}.block_count", g.UINT32, config["num_hidden_layers"])
    w.add(f"{arch}.feed_forward_length", g.UINT32, config["intermediate_size"])
    w.add(f"{arch}.attention.head_count", g.UINT32, config["num_attention_heads"])
    w.add(f"{arch}.attention.head_count_kv", g.UINT32, config["num_key_value_heads"])
    w.add(f"{arch}.attention.layer_norm_rms_epsilon", g.FLOAT32, config["rms_norm_eps"])
    w.add(f"{arch}.rope.freq_base", g.FLOAT32, config["rope_theta"])
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    for name, a in tensors.items():
        if name == "model.embed_tokens.weight":
            gname = "token_embd.weight"
        elif name == "model.norm.weight":
            gname = "output_norm.weight"
        elif name == "lm_head.weight":
            gname = "output.weight"
        else:
            parts = name.split(".")  # model.layers.N.rest
            gname = f"blk.{parts[2]}." + GGUF_NAMES[".".join(parts[3:])]
            if arch == "llama" and name.endswith("q_proj.weight"):
                a = permute_for_adjacent_pairs(a, heads)
            elif arch == "llama" and name.endswith("k_proj.weight"):
                a = permute_for_adjacent_pairs(a, kv_heads)
        # The same stored values as the HF folder: 2-D tensors in `dtype`, 1-D in F32.
        w.add_tensor(gname, a, GGML_TYPE[dtype] if a.ndim == 2 else g.GGML_F32)
    for gname, a in (extra_tensors or {}).items():
        w.add_tensor(gname, a, g.GGML_F32)
    w.write(path)


def run(kvserve, args):
    return subprocess.run([kvserve] + args, capture_output=True, text=True, timeout=300)


def logits(kvserve, model, prompt, vocab, out):
    # f32 K/V: the NumPy references keep K/V unrounded (cache dtypes: attention_test).
    r = run(kvserve, ["logits", "--model", model, "--prompt-ids", ",".join(map(str, prompt)),
                      "--weight-dtype", "f32", "--kv-cache-dtype", "f32", "--out", out])
    if r.returncode != 0:
        raise CheckFailed(f"kvserve logits --model {model} exited {r.returncode}: {r.stderr[-1500:]}")
    raw = np.fromfile(out, dtype="<f4")
    if raw.size != len(prompt) * vocab:
        raise CheckFailed(f"{model}: {raw.size} logits, expected {len(prompt)} x {vocab}")
    return raw.reshape(len(prompt), vocab).astype(np.float64)


def generate(kvserve, model, prompt, n, ignore_eos=True):
    args = ["generate", "--model", model, "--prompt-ids", ",".join(map(str, prompt)),
            "--max-tokens", str(n), "--weight-dtype", "f32"]
    if ignore_eos:
        args.append("--ignore-eos")
    r = run(kvserve, args)
    if r.returncode != 0:
        raise CheckFailed(f"kvserve generate --model {model} exited {r.returncode}: {r.stderr[-1500:]}")
    return json.loads([l for l in r.stdout.splitlines() if l.strip()][-1])


def check_variant(kvserve, workdir, label, arch, dtype="F32", shards=1, tied=False,
                  hf_arch=None):
    config, tensors = hf.random_model(arch=arch, dim=64, layers=2, heads=4, kv_heads=2, ffn=96,
                                      vocab=300, ctx=256, seed=11, tied=tied, rope_theta=10000.0)
    if hf_arch:
        config["architectures"] = [hf.ARCHITECTURES[hf_arch]]
    # Both files must hold identical values: round once, then write both from the rounded copy.
    tensors = {n: (hf.decode_as_stored(a, dtype) if a.ndim == 2 else a) for n, a in tensors.items()}
    d = os.path.join(workdir, label)
    shutil.rmtree(d, ignore_errors=True)
    hf.write_hf_folder(os.path.join(d, "hf"), config, tensors, dtype, shards,
                       generation_config={"eos_token_id": [299, 298]})
    gguf_path = os.path.join(d, "model.gguf")
    write_gguf(gguf_path, arch, config, tensors, dtype)
    rng = np.random.default_rng(5)
    prompt = [int(x) for x in rng.integers(0, 300, size=24)]
    a = logits(kvserve, os.path.join(d, "hf"), prompt, 300, os.path.join(d, "hf.f32"))
    b = logits(kvserve, gguf_path, prompt, 300, os.path.join(d, "gguf.f32"))
    scale = float(np.max(np.abs(b)))
    err = float(np.max(np.abs(a - b))) / scale
    if not err <= 1e-5:
        raise CheckFailed(f"{label}: HF and GGUF logits differ by {err:.3g} of the logit scale")
    ga = generate(kvserve, os.path.join(d, "hf"), prompt[:5], 12)
    gb = generate(kvserve, gguf_path, prompt[:5], 12)
    if ga["ids"] != gb["ids"]:
        raise CheckFailed(f"{label}: greedy ids differ: HF {ga['ids']} vs GGUF {gb['ids']}")
    print(f"ok {label}: logits agree to {err:.2g} (relative), greedy {ga['ids'][:6]}...")
    return d, prompt, ga["ids"]


def check_eos(kvserve, d, prompt, ids):
    """generation_config.json's eos_token_id list stops generation at its second entry."""
    gen = os.path.join(d, "hf", "generation_config.json")
    with open(gen, "w") as f:
        json.dump({"eos_token_id": [299, ids[2]]}, f)
    out = generate(kvserve, os.path.join(d, "hf"), prompt[:5], 12, ignore_eos=False)
    first = ids.index(ids[2]) + 1
    if out["ids"] != ids[:first] or out["finish_reason"] != "stop":
        raise CheckFailed(f"EOS from generation_config.json not honoured: got {out}, expected "
                          f"{ids[:first]} ending with finish_reason stop")
    print(f"ok eos: stopped after {first} tokens at id {ids[2]}")


def check_malformed(kvserve, workdir):
    d = os.path.join(workdir, "malformed")
    shutil.rmtree(d, ignore_errors=True)
    config, tensors = hf.random_model(dim=16, layers=1, heads=2, kv_heads=1, ffn=32, vocab=20)
    hf.write_hf_folder(d, config, tensors)
    path = os.path.join(d, "model.safetensors")
    with open(path, "rb") as f:
        raw = f.read()
    (header_len,) = struct.unpack("<Q", raw[:8])
    with open(path, "wb") as f:
        f.write(raw[:8 + header_len // 2])  # the header stops half way
    r = run(kvserve, ["logits", "--model", d, "--prompt-ids", "1,2", "--out", os.path.join(d, "x")])
    if r.returncode != 1 or "truncated" not in r.stderr or "model.safetensors" not in r.stderr:
        raise CheckFailed(f"truncated safetensors: exit {r.returncode}, stderr {r.stderr!r}; "
                          "expected exit 1 and an error naming the file and 'truncated'")
    print(f"ok malformed: {r.stderr.strip()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kvserve", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    try:
        d, prompt, ids = check_variant(a.kvserve, a.workdir, "llama_f32", "llama")
        check_variant(a.kvserve, a.workdir, "mistral_f32_sharded", "llama", shards=2,
                      hf_arch="mistral")
        check_variant(a.kvserve, a.workdir, "qwen2_f32_tied", "qwen2", tied=True)
        check_variant(a.kvserve, a.workdir, "llama_bf16", "llama", dtype="BF16")
        check_variant(a.kvserve, a.workdir, "qwen2_f16_sharded", "qwen2", dtype="F16", shards=2)
        check_eos(a.kvserve, d, prompt, ids)
        check_malformed(a.kvserve, a.workdir)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    print("all HF-vs-GGUF checks passed")


if __name__ == "__main__":
    main()
