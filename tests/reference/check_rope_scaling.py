#!/usr/bin/python3
"""Llama 3 `rope_scaling` (rope_type "llama3"): kvserve's logits against an independent NumPy
reference, and a Hugging Face folder against the same weights as a GGUF with rope_freqs.weight.

The reference computes the llama3 inverse frequencies itself, in float64, the way transformers'
_compute_llama3_parameters does (wavelength bands: unchanged below L/high_freq_factor, divided by
`factor` above L/low_freq_factor, interpolated between), then runs a plain float64 forward pass in
Hugging Face layout (rotate-halves RoPE). The GGUF gets llama.cpp's converter form: Q/K permuted
for adjacent pairs and a rope_freqs.weight tensor of per-frequency divisors (derived here as the
ratio of unscaled to scaled frequencies). A small original_max_position_embeddings (64) puts
frequencies of a 16-wide head in all three bands, and the check makes sure that ignoring the
scaling would miss the tolerance by far, so the test can fail.
"""

import argparse
import os
import shutil
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
import check_hf_vs_gguf as cmp  # noqa: E402

hf = cmp.hf
SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 64}
TOLERANCE = 1e-4  # f32 kvserve vs float64 reference, relative to the largest |logit|


def llama3_inv_freq(head_dim, theta, s):
    inv = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    old = s["original_max_position_embeddings"]
    low_wavelen = old / s["low_freq_factor"]
    high_wavelen = old / s["high_freq_factor"]
    wavelen = 2 * np.pi / inv
    scaled = np.where(wavelen > low_wavelen, inv / s["factor"], inv)
    smooth = (old / wavelen - s["low_freq_factor"]) / (s["high_freq_factor"] - s["low_freq_factor"])
    smoothed = (1 - smooth) * scaled / s["factor"] + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled), inv


def reference_logits(config, t, ids, inv_freq):
    w = {n: a.astype(np.float64) for n, a in t.items()}
    eps = config["rms_norm_eps"]
    H, KV = config["num_attention_heads"], config["num_key_value_heads"]
    hd = config["hidden_size"] // H
    T = len(ids)

    def rms(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g

    angles = np.arange(T, dtype=np.float64)[:, None] * inv_freq[None, :]
    cos = np.cos(np.concatenate([angles, angles], -1))[:, None, :]
    sin = np.sin(np.concatenate([angles, angles], -1))[:, None, :]

    def rotate(v):  # [T, heads, hd], halves rotate together
        rotated = np.concatenate([-v[..., hd // 2:], v[..., : hd // 2]], -1)
        return v * cos + rotated * sin

    mask = np.triu(np.full((T, T), -np.inf), k=1)
    x = w["model.embed_tokens.weight"][ids]
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms(x, w[p + "input_layernorm.weight"])
        q = rotate((h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, H, hd))
        k = rotate((h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, KV, hd))
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, KV, hd)
        k, v = np.repeat(k, H // KV, axis=1), np.repeat(v, H // KV, axis=1)
        scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", probs, v).reshape(T, H * hd)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        gate, up = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
    x = rms(x, w["model.norm.weight"])
    return x @ w["lm_head.weight"].T


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kvserve", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    d = os.path.join(a.workdir, "llama3_rope")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    config, tensors = hf.random_model(arch="llama", dim=64, layers=2, heads=4, kv_heads=2, ffn=96,
                                      vocab=300, ctx=256, seed=17, rope_theta=10000.0)
    config["rope_scaling"] = dict(SCALING)
    hf.write_hf_folder(os.path.join(d, "hf"), config, tensors, "F32")
    hd = config["hidden_size"] // config["num_attention_heads"]
    inv_freq, unscaled = llama3_inv_freq(hd, config["rope_theta"], SCALING)
    bands = (np.isclose(inv_freq, unscaled).sum(), np.isclose(inv_freq, unscaled / 8).sum())
    divisors = (unscaled / inv_freq).astype(np.float32)
    gguf_path = os.path.join(d, "model.gguf")
    cmp.write_gguf(gguf_path, "llama", config, tensors, "F32",
                   extra_tensors={"rope_freqs.weight": divisors})

    rng = np.random.default_rng(3)
    prompt = [int(x) for x in rng.integers(0, 300, size=48)]
    try:
        got_hf = cmp.logits(a.kvserve, os.path.join(d, "hf"), prompt, 300, os.path.join(d, "a"))
        got_gguf = cmp.logits(a.kvserve, gguf_path, prompt, 300, os.path.join(d, "b"))
        ref = reference_logits(config, tensors, np.array(prompt), inv_freq)
        unscaled_ref = reference_logits(config, tensors, np.array(prompt), unscaled)
        scale = float(np.max(np.abs(ref)))
        err_hf = float(np.max(np.abs(got_hf - ref))) / scale
        err_gguf = float(np.max(np.abs(got_gguf - got_hf))) / scale
        err_unscaled = float(np.max(np.abs(unscaled_ref - ref))) / scale
        print(f"frequencies unchanged {bands[0]}, divided by 8 {bands[1]}, "
              f"interpolated {len(inv_freq) - sum(bands)} of {len(inv_freq)}")
        print(f"HF folder vs NumPy reference: {err_hf:.2e} (limit {TOLERANCE:g}); GGUF with "
              f"rope_freqs vs HF folder: {err_gguf:.2e} (limit 1e-5); without scaling the "
              f"reference moves by {err_unscaled:.2e}")
        if min(bands) == 0 or len(inv_freq) - sum(bands) == 0:
            raise cmp.CheckFailed("the test model does not exercise all three llama3 bands")
        if not err_unscaled > 100 * TOLERANCE:
            raise cmp.CheckFailed("the scaling barely changes the logits; the check is too weak")
        if not err_hf < TOLERANCE:
            raise cmp.CheckFailed(f"HF folder logits differ from the reference by {err_hf:.3g}")
        if not err_gguf <= 1e-5:
            raise cmp.CheckFailed(f"GGUF (rope_freqs) and HF logits differ by {err_gguf:.3g}")
    except cmp.CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    print("llama3 rope_scaling checks passed")


if __name__ == "__main__":
    main()
