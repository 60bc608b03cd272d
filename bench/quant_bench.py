#!/usr/bin/python3
"""Quantized weights against llama.cpp (issue 10), through the gRPC server, in one run.

  bench/quant_bench.py [--build-dir build] [--cache-dir ~/.cache/kvserve/bench] [--ns 1,8,32,64]
                       [--types Q4_K_M,Q8_0] [--gen 64] [--prompt-len 16] [--out docs/BENCHMARKS.md]

1. writes the 420M-shape llama (dim 1024, 24 layers, 16 heads, 8 KV heads, FFN 2816, vocab 32000)
   as GGUF files of each type (scripts/make_model.py: random valid blocks; Q4_K_M mixes Q4_K
   and Q6_K as llama-quantize does), once, in the cache dir;
2. measures the machine's read bandwidth (kvserve_bandwidth_probe, 1 and 2 threads) and the
   matmul ceiling of each type (kvserve_matmul_bench);
3. for each file and N: kvserve through the gRPC server (bench/grpc_load_bench.py, weights as
   stored, N concurrent greedy streams, prompt P, T tokens) and llama.cpp on the same file
   (llamacpp_oracle.mjs bench), 2 threads each;
4. writes the table, with ratios, the bandwidth reached at N=1 and the kernel path, between the
   `quant-bench` markers of docs/BENCHMARKS.md. Check `uptime` first: a busy machine makes the
   numbers meaningless.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys

from benchcommon import cpu_line

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
SHAPE = ["--arch", "llama", "--dim", "1024", "--layers", "24", "--heads", "16", "--kv-heads", "8",
         "--ffn", "2816", "--vocab", "32000", "--seed", "420"]
BEGIN, END = "<!-- quant-bench:begin -->", "<!-- quant-bench:end -->"


def log(msg):
    print(f"quant_bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def make_model(cache, t):
    path = os.path.join(cache, f"llama420-{t.lower()}.gguf")
    if not os.path.isfile(path):
        log(f"writing {path}")
        tok = os.path.join(os.environ.get("KVSERVE_SHARED", os.path.join(ROOT, "..", "shared")),
                           "models", "llama-2-tiny-random.gguf")
        run([PY, os.path.join(ROOT, "scripts", "make_model.py"), *SHAPE, "--type", t,
             "--tokenizer-from", tok, "--out", path + ".tmp"])
        os.replace(path + ".tmp", path)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/kvserve/bench"))
    ap.add_argument("--ns", default="1,8,32,64")
    ap.add_argument("--types", default="Q4_K_M,Q8_0")
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    a = ap.parse_args()
    os.makedirs(a.cache_dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="2", LLAMA_THREADS="2")
    b = a.build_dir
    run(["cmake", "--build", b, "-j2", "--target", "kvserve", "kvserve_proto",
         "kvserve_matmul_bench", "kvserve_bandwidth_probe"])
    oracle_dir = run(["bash", os.path.join(ROOT, "scripts", "install-oracle.sh")]).stdout.split()[-1]
    load_before = run(["uptime"]).stdout.strip()
    started = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
    bw = [json.loads(l) for l in run([os.path.join(b, "bench", "kvserve_bandwidth_probe")],
                                       env=env).stdout.splitlines()]
    bw2 = max(x["read_gb_per_s"] for x in bw)
    rows, ceilings, kernel = [], {}, ""
    for t in a.types.split(","):
        path = make_model(a.cache_dir, t)
        size_gb = os.path.getsize(path) / 1e9
        log(f"matmul ceiling {t}")
        mm = run([os.path.join(b, "bench", "kvserve_matmul_bench"), f"--dtype={t.lower()}",
                  f"--m={a.ns}", "--reps=10"], env=env).stdout
        for m, tps in re.findall(r"m=(\d+)\s+\S+ ms/step \(min \S+\)\s+ceiling\s+(\S+) tokens/s", mm):
            ceilings[(t, int(m))] = float(tps)
        weight_gb = float(re.search(r"([\d.]+) GB of weights", mm).group(1))
        # The matmul bench and the server pick the same path (engine/quant/isa.cc).
        m = re.search(r"quantized kernels on (\S+)", mm)
        kernel = m.group(1) if m else kernel
        log(f"kvserve over gRPC {t}")
        out = run([PY, os.path.join(HERE, "grpc_load_bench.py"), "--kvserve",
                   os.path.join(b, "server", "kvserve"), "--model", path, "--pb-dir",
                   os.path.join(b, "proto", "python"), "--n", a.ns, "--prompt-len",
                   str(a.prompt_len), "--gen", str(a.gen), "--weight-dtype", "auto"], env=env)
        ours = {r["n"]: r for r in map(json.loads, out.stdout.splitlines())}
        m = re.search(r"quantized kernels: (\S+)", out.stderr)
        kernel = m.group(1) if m else kernel
        for n in map(int, a.ns.split(",")):
            log(f"llama.cpp {t} N={n}")
            lc = json.loads(run(["node", os.path.join(oracle_dir, "llamacpp_oracle.mjs"), "bench",
                                 path, str(n), str(a.gen), str(a.prompt_len)], env=env).stdout)
            k = ours[n]
            rows.append(dict(type=t, n=n, kv=k["tokens_per_s"], lc=lc["tokens_per_s"],
                             ceiling=ceilings.get((t, n)), ttft=k["ttft_ms_p50"],
                             itl=k["itl_ms_p50"], itl99=k["itl_ms_p99"],
                             file_gb=size_gb, weight_gb=weight_gb))
            print(json.dumps(rows[-1]), flush=True)
    load_after = run(["uptime"]).stdout.strip()
    lines = [BEGIN, "## Quantized weights against llama.cpp (issue 10)", "",
             f"Generated by `bench/quant_bench.py --ns {a.ns} --types {a.types}` on {started}.",
             f"CPU: {cpu_line()}. Kernel path: **{kernel}**. 2 threads for both engines.",
             f"Read bandwidth (`kvserve_bandwidth_probe`): "
             + ", ".join(f"{x['threads']} thread{'s' if x['threads'] > 1 else ''} "
                         f"{x['read_gb_per_s']} GB/s" for x in bw) + ".",
             f"Load before / after: `{load_before}` / `{load_after}`.", "",
             "Model: 420M-shape llama (dim 1024, 24 layers, 16 heads, 8 KV heads, FFN 2816, vocab "
             "32000), random valid blocks (`scripts/make_model.py`). kvserve: `kvserve serve "
             "--weight-dtype auto` through gRPC (`bench/grpc_load_bench.py`, Python client, "
             f"prompt {a.prompt_len}, {a.gen} greedy tokens per stream); llama.cpp: "
             "`llamacpp_oracle.mjs bench` (node-llama-cpp 3.22.1) on the same file. Bandwidth at "
             "N=1 = weight bytes read per token × tokens/s (weights only: attention and "
             "activations are extra). Ceiling = the matmuls alone (`kvserve_matmul_bench`).", "",
             "| file | N | kvserve tok/s | llama.cpp tok/s | ratio | matmul ceiling tok/s | "
             "bandwidth at N=1 | TTFT p50 ms | ITL p50 / p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        bwr = (f"{r['kv'] * r['weight_gb']:.1f} GB/s ({100 * r['kv'] * r['weight_gb'] / bw2:.0f}%)"
               if r["n"] == 1 else "")
        ceil = f"{r['ceiling']:.0f}" if r["ceiling"] else "—"
        lines.append(f"| {r['type']} ({r['file_gb']:.2f} GB) | {r['n']} | {r['kv']:.1f} | "
                     f"{r['lc']:.1f} | {r['kv'] / r['lc']:.2f}× | {ceil} | {bwr} | "
                     f"{r['ttft']:.0f} | {r['itl']:.1f} / {r['itl99']:.1f} |")
    lines.append(END)
    text = open(a.out).read() if os.path.exists(a.out) else "# kvserve benchmarks\n"
    section = "\n".join(lines)
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    open(a.out, "w").write(text)
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
