"""Shared pieces of the reference checks: the synthetic model table (made once, cached by their
parameters), prompts, and runners for kvserve and the llama.cpp oracle. Every failure raises
CheckFailed with a message that says what to do; nothing is skipped silently."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.normpath(os.path.join(_HERE, "..", "..", "scripts"))
sys.path.insert(0, SCRIPTS)
sys.path.insert(0, _HERE)
import gguf_py  # noqa: E402
import llama_ref  # noqa: E402
import make_model  # noqa: E402


class CheckFailed(Exception):
    pass


def shared_dir():
    d = os.environ.get("KVSERVE_SHARED") or os.path.normpath(os.path.join(_HERE, "..", "..", "..", "shared"))
    return d


def tiny_model():
    path = os.path.join(shared_dir(), "models", "llama-2-tiny-random.gguf")
    if not os.path.isfile(path):
        raise CheckFailed(f"shared tiny model not found at {path} (set KVSERVE_SHARED to the shared folder)")
    return path


# Synthetic models: GQA everywhere (8 query heads share 2 kv heads), qwen2 has q/k/v biases.
BASE = dict(dim=128, layers=4, heads=8, kv_heads=2, ffn=256, ctx=2048, seed=0, rope_base=10000.0, eps=1e-5)


def spec(arch, type, **kw):
    s = dict(BASE, arch=arch, type=type)
    s.update(kw)
    return s


def spec_name(s):
    extra = "-tied" if s.get("tied") else ""
    if s.get("biased"):
        extra += "-biased"
    for key, tag in (("embd_type", "embd"), ("output_type", "out"), ("head_dim", "hd")):
        if s.get(key):
            extra += f"-{tag}{s[key]}"
    return f"{s['arch']}-{s['type']}{extra}"


def _sources_digest():
    h = hashlib.sha256()
    for f in (os.path.join(SCRIPTS, "gguf_py.py"), os.path.join(SCRIPTS, "make_model.py"),
              os.path.join(_HERE, "ggml_quants.py")):
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:12]


def ensure_model(cache_dir, s):
    """Path of the synthetic model `s`, written once into cache_dir (keyed by its parameters and
    the generator's source, so a change to either makes a new file)."""
    os.makedirs(cache_dir, exist_ok=True)
    tok = tiny_model()
    key = hashlib.sha256(json.dumps([s, _sources_digest(), os.path.getsize(tok)], sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"{spec_name(s)}-{key}.gguf")
    if not os.path.isfile(path):
        # Write then rename, so checks running in parallel never read a half-written file.
        tmp = f"{path}.{os.getpid()}.tmp"
        make_model.make_model(tmp, tokenizer_from=tok, **s)
        os.replace(tmp, path)
    return path


def prompts(vocab, lengths=(1, 3, 9, 20, 40), seed=7):
    """Deterministic prompts of the given lengths, BOS (1) first, ids from [3, vocab)."""
    rng = np.random.default_rng(seed)
    return [[1] + rng.integers(3, vocab, n - 1).tolist() for n in lengths]


def ids_arg(ids):
    return ",".join(str(int(t)) for t in ids)


# ---------------------------------------------------------------------------------------------
# llama.cpp oracle

def oracle_script():
    d = os.environ.get("KVSERVE_ORACLE_DIR") or os.path.expanduser("~/.cache/kvserve/oracle")
    script = os.path.join(d, "llamacpp_oracle.mjs")
    if not os.path.isfile(script) or not os.path.isdir(os.path.join(d, "node_modules", "node-llama-cpp")):
        raise CheckFailed(f"llama.cpp oracle not installed in {d} (no llamacpp_oracle.mjs or node_modules/"
                          "node-llama-cpp): run scripts/install-oracle.sh, or set KVSERVE_ORACLE_DIR")
    return script


def _oracle_cache_path(script, model, prompt, n):
    """llama.cpp's answers are fixed for a given model file, prompt and oracle install, so they
    are kept next to the model (the shared model's answers in the cache dir of the caller)."""
    st = os.stat(model)
    pkg = os.path.join(os.path.dirname(script), "node_modules", "node-llama-cpp", "package.json")
    key = json.dumps([os.path.basename(model), st.st_size, int(st.st_mtime), list(prompt), n,
                      os.path.getmtime(pkg) if os.path.exists(pkg) else 0, os.path.getmtime(script)])
    return hashlib.sha256(key.encode()).hexdigest()[:24] + ".json"


def oracle_greedy(model, prompt, n, cache_dir=None):
    script = oracle_script()
    cached = os.path.join(cache_dir, "oracle", _oracle_cache_path(script, model, prompt, n)) if cache_dir else None
    if cached and os.path.isfile(cached):
        with open(cached) as f:
            return json.load(f)["ids"]
    cmd = ["node", script, "greedy", model, str(n), ids_arg(prompt)]
    # One thread: on a busy machine llama.cpp's spinning worker threads make it several times slower.
    env = dict(os.environ, LLAMA_THREADS=os.environ.get("LLAMA_THREADS", "1"))
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    except FileNotFoundError:
        raise CheckFailed("node is not on PATH; the llama.cpp oracle needs Node.js")
    if r.returncode != 0:
        raise CheckFailed(f"oracle failed ({' '.join(cmd)}): {r.stderr.strip()[-2000:]}")
    ids = json.loads(r.stdout.strip().splitlines()[-1])["ids"]
    if cached:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        with open(cached + ".tmp", "w") as f:
            json.dump({"model": model, "prompt": list(prompt), "n": n, "ids": ids}, f)
        os.replace(cached + ".tmp", cached)
    return ids



def oracle_greedy_many(model, prompts, n, cache_dir):
    """oracle_greedy for many prompts, loading the model into llama.cpp once (a node start and a
    model load cost seconds each). Answers are cached per prompt exactly like oracle_greedy's."""
    script = oracle_script()
    paths = [os.path.join(cache_dir, "oracle", _oracle_cache_path(script, model, p, n)) for p in prompts]
    missing = [i for i, c in enumerate(paths) if not os.path.isfile(c)]
    if missing:
        driver = os.path.join(os.path.dirname(script), "oracle_batch.mjs")
        here = os.path.dirname(os.path.abspath(__file__))
        tmp_driver = f"{driver}.{os.getpid()}.tmp"
        with open(os.path.join(here, "oracle_batch.mjs")) as src, open(tmp_driver, "w") as dst:
            dst.write(src.read())
        os.replace(tmp_driver, driver)
        os.makedirs(os.path.join(cache_dir, "oracle"), exist_ok=True)
        pfile = os.path.join(cache_dir, "oracle", f"prompts-{os.getpid()}.json")
        with open(pfile, "w") as f:
            json.dump([list(prompts[i]) for i in missing], f)
        env = dict(os.environ, LLAMA_THREADS=os.environ.get("LLAMA_THREADS", "1"))
        try:
            r = subprocess.run(["node", driver, model, str(n), pfile], capture_output=True, text=True,
                               timeout=600, env=env)
        except FileNotFoundError:
            raise CheckFailed("node is not on PATH; the llama.cpp oracle needs Node.js")
        if r.returncode != 0:
            raise CheckFailed(f"batch oracle failed on {model}: {r.stderr.strip()[-2000:]}")
        answers = json.loads(r.stdout.strip().splitlines()[-1])["ids"]
        for i, ids in zip(missing, answers):
            with open(paths[i] + ".tmp", "w") as f:
                json.dump({"model": model, "prompt": list(prompts[i]), "n": n, "ids": ids}, f)
            os.replace(paths[i] + ".tmp", paths[i])
    out = []
    for c in paths:
        with open(c) as f:
            out.append(json.load(f)["ids"])
    return out


# ---------------------------------------------------------------------------------------------
# kvserve

def run_kvserve(kvserve, args, timeout=300):
    cmd = [kvserve] + args
    if not os.path.isfile(kvserve):
        raise CheckFailed(f"kvserve binary not found: {kvserve}")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise CheckFailed(f"kvserve exited {r.returncode}: {' '.join(cmd)}\n{r.stderr.strip()[-2000:]}")
    return r.stdout


def kvserve_logits(kvserve, model, prompt, weight_dtype, out_path, vocab, kv_dtype="f32"):
    # f32 K/V by default: these checks are about the weights' arithmetic, and the NumPy
    # references keep K/V in f64; the cache dtypes have their own tests (attention_test).
    if os.path.exists(out_path):
        os.remove(out_path)
    run_kvserve(kvserve, ["logits", "--model", model, "--prompt-ids", ids_arg(prompt),
                          "--weight-dtype", weight_dtype, "--kv-cache-dtype", kv_dtype,
                          "--out", out_path])
    raw = np.fromfile(out_path, dtype="<f4")
    if raw.size != len(prompt) * vocab:
        raise CheckFailed(f"kvserve logits wrote {raw.size} floats, expected {len(prompt)} x {vocab}")
    return raw.reshape(len(prompt), vocab).astype(np.float64)


def kvserve_generate(kvserve, model, prompt, n, weight_dtype="f32"):
    out = run_kvserve(kvserve, ["generate", "--model", model, "--prompt-ids", ids_arg(prompt),
                                "--max-tokens", str(n), "--weight-dtype", weight_dtype])
    lines = [l for l in out.splitlines() if l.strip()]
    try:
        return [int(t) for t in json.loads(lines[-1])["ids"]]
    except (IndexError, ValueError, KeyError, TypeError):
        raise CheckFailed(f"kvserve generate printed no {{\"ids\": [...]}} line: {out[-500:]!r}")


# ---------------------------------------------------------------------------------------------
# Judging a greedy divergence from llama.cpp

# llama.cpp keeps K/V in f16 and rounds matmul inputs to f16 for F16 weights: a few 1e-4 of the
# logit range. For Q8_0 weights it also quantizes every matmul input to 8 bits (blocks of 32),
# which moves logits by about 1% of their range on these models (measured with the emulation in
# llama_ref; see evidence printed on divergence). Ties closer than this are not decidable.
TIE_TOLERANCE = {gguf_py.GGML_F32: 1e-3, gguf_py.GGML_F16: 1e-3, gguf_py.GGML_BF16: 1e-3,
                 gguf_py.GGML_Q8_0: 2e-2}
# How close to the reference's top logit our own pick must be (float32 vs float64 arithmetic).
OWN_TIE_TOLERANCE = 1e-4


def weight_type(model_path):
    f = gguf_py.read_gguf(model_path)
    t = f.tensors.get("blk.0.attn_q.weight")
    return t.type if t is not None else gguf_py.GGML_F32


def compare_greedy(model_path, ref_model, prompt, ours, oracle, label, eos=2):
    """Compares our greedy ids with llama.cpp's. Returns a line of evidence; raises CheckFailed
    unless the sequences are equal, or they first differ where the reference logits show a tie
    that llama.cpp's roundings can flip (and our token is the reference's top)."""
    if len(ours) < len(oracle) and ours and ours[-1] == eos:  # we stopped at EOS
        oracle = oracle[:len(ours)]
    if ours == oracle:
        return f"{label}: equal ({len(ours)} ids)"
    n = min(len(ours), len(oracle))
    i = next((k for k in range(n) if ours[k] != oracle[k]), n)
    if i == n:
        raise CheckFailed(f"{label}: lengths differ ({len(ours)} vs llama.cpp {len(oracle)}) with no differing id")
    m = ref_model if ref_model is not None else llama_ref.Model(model_path)
    ctx = list(prompt) + list(ours[:i])
    ref = llama_ref.last_logits(m, ctx)
    top = int(np.argmax(ref))
    rng = float(ref.max() - ref.min())
    gap_oracle = float(ref[top] - ref[oracle[i]])
    gap_ours = float(ref[top] - ref[ours[i]])
    emu = llama_ref.last_logits(m, ctx, emulate_llamacpp=True)
    wtype = weight_type(model_path)
    tol = TIE_TOLERANCE.get(wtype, 1e-3)
    evidence = (f"{label}: first difference at generated index {i} (context {len(ctx)} ids): ours {ours[i]}, "
                f"llama.cpp {oracle[i]}, reference top {top}; reference gaps top-ours {gap_ours:.3g}, "
                f"top-llama.cpp {gap_oracle:.3g}, logit range {rng:.3g} -> ratio {gap_oracle / rng:.2e} "
                f"(allowed {tol:g} for {gguf_py.GGML_TYPE_NAMES.get(wtype, wtype)}); llama.cpp-rounding "
                f"emulation moves logits by up to {np.abs(emu - ref).max() / rng:.2e} of the range and picks {int(np.argmax(emu))}")
    if gap_ours > OWN_TIE_TOLERANCE * rng:
        raise CheckFailed(evidence + " -- our token is not the reference's argmax")
    if gap_oracle >= tol * rng:
        raise CheckFailed(evidence + " -- not a near-tie: a real mismatch with llama.cpp")
    return evidence + " -- accepted as a near-tie"


# Quantized weights: judged against the reference with llama.cpp's roundings emulated (see
# test_quant_ref_vs_llamacpp.py: agreement to ~1e-7 of the logit range at most steps; a step where
# float32 accumulation flips one activation rounding differs by up to ~5e-3; on an AVX2-only Zen 2,
# 2026-12-02, server_greedy's Q4_K_M prompt 2 reached 1.08e-2 at such a step, identical on the
# scalar and avx2 paths, so it is the flip, not a kernel).
QUANT_TIE_TOLERANCE = 1.5e-2


def compare_greedy_emulated(ref_model, prompt, ours, oracle, label, eos=2, tol=QUANT_TIE_TOLERANCE,
                            ours_kv="f16"):
    """compare_greedy for quantized models: equal ids, or a first difference where both tokens are
    within `tol` of the logit range of the top of the emulated reference after the common prefix:
    llama.cpp's token in the emulation of llama.cpp (ggml's matmul roundings, f16 K/V), ours in the
    emulation of kvserve (the same matmul roundings, K/V rounded to kvserve's cache dtype `ours_kv`,
    f16 by default, "f32" for an f32 cache, then plain attention).
    Measuring our token against llama.cpp's K/V rounding would charge us for a cache we do not
    keep. Returns a line of evidence; raises CheckFailed otherwise."""
    if len(ours) < len(oracle) and ours and ours[-1] == eos:
        oracle = oracle[:len(ours)]
    if ours == oracle:
        return f"{label}: equal ({len(ours)} ids)"
    n = min(len(ours), len(oracle))
    i = next((k for k in range(n) if ours[k] != oracle[k]), n)
    if i == n:
        raise CheckFailed(f"{label}: lengths differ ({len(ours)} vs llama.cpp {len(oracle)}) with no differing id")
    ctx = list(prompt) + list(ours[:i])

    def gaps(f16_kv, round_kv=None):
        # logits after prompt + ours[:i]: the row before ours[i] (its id only feeds later rows)
        emu = llama_ref.continuation_logits(ref_model, list(prompt), list(ours[:i + 1]),
                                            emulate_llamacpp=True, f16_kv=f16_kv,
                                            round_kv=round_kv)[-1]
        top = int(np.argmax(emu))
        rng = float(emu.max() - emu.min())
        return top, float(emu[top] - emu[ours[i]]) / rng, float(emu[top] - emu[oracle[i]]) / rng

    top, _, g_oracle = gaps(True)
    top_ours, g_ours, _ = gaps(False, ours_kv)
    evidence = (f"{label}: first difference at generated index {i} (context {len(ctx)} ids): ours {ours[i]}, "
                f"llama.cpp {oracle[i]}; emulated top: llama.cpp's arithmetic {top}, kvserve's "
                f"({ours_kv} K/V) {top_ours}; gaps to the top: ours {g_ours:.2e}, "
                f"llama.cpp {g_oracle:.2e} of the logit range (allowed {tol:g})")
    if g_ours > tol:
        raise CheckFailed(evidence + " -- our token is not near the emulated reference's top")
    if g_oracle > tol:
        raise CheckFailed(evidence + " -- not a near-tie: a real mismatch with llama.cpp")
    return evidence + " -- accepted as a near-tie"
