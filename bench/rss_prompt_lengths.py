#!/usr/bin/python3
"""RSS of `kvserve serve` across many distinct prompt lengths (issue 13: memory must not grow
with every new step size; oneDNN primitives are cached per row count, with an LRU bound).

Sends one request per prompt length 1..N (token ids, max_tokens 1, one at a time, so each
prefill's row counts are new) over HTTP and prints VmRSS after a warm-up and at the end.

    bench/rss_prompt_lengths.py [--model M.gguf] [--lengths 1000] [--weight-dtype auto]

Without --model it writes (once, cached) a 32-layer random-weight F16 model with Llama 2's
vocabulary: dim 256, 4 heads, 2 KV heads, FFN 512 (refcommon.ensure_model).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "reference"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--lengths", type=int, default=1000)
    ap.add_argument("--weight-dtype", default="auto")
    ap.add_argument("--kv-cache-memory", default="32MiB",
                    help="small, so that first touches of KV pages do not hide other growth")
    ap.add_argument("--binary", default=os.path.join(SOURCE, "build", "server", "kvserve"))
    args = ap.parse_args()
    model = args.model
    if model is None:
        import refcommon as rc
        model = rc.ensure_model(os.path.join(SOURCE, "build", "bench-models"),
                                rc.spec("llama", "F16", dim=256, layers=32, heads=4, kv_heads=2,
                                        ffn=512, ctx=4096))
    proc = subprocess.Popen([args.binary, "serve", "--model", model, "--grpc-port", "0",
                             "--http-port", "0", "--host", "127.0.0.1", "--weight-dtype",
                             args.weight_dtype, "--kv-cache-memory", args.kv_cache_memory],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    port = None
    for line in proc.stderr:
        m = re.search(r"HTTP listening on 127\.0\.0\.1:(\d+)", line)
        port = int(m.group(1)) if m else port
        if "weights:" in line:
            print(line.strip())
        if "ready: serving" in line:
            break
    url = f"http://127.0.0.1:{port}/v1/completions"
    marks = {}
    start = time.monotonic()
    for n in range(1, args.lengths + 1):
        body = {"prompt": [1] + [100 + (k * 7 + n * 13) % 20000 for k in range(n - 1)],
                "max_tokens": 1}
        req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            r.read()
        if n in (50, args.lengths // 2, args.lengths):
            marks[n] = rss_kib(proc.pid)
    proc.terminate()
    proc.wait(timeout=30)
    first = marks[50]
    print(json.dumps({"model": os.path.basename(model), "weight_dtype": args.weight_dtype,
                      "kv_cache_memory": args.kv_cache_memory, "lengths": args.lengths,
                      "seconds": round(time.monotonic() - start, 1),
                      "rss_kib": marks,
                      "growth_after_warmup_kib": marks[args.lengths] - first}))


if __name__ == "__main__":
    main()
