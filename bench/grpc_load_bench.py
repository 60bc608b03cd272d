#!/usr/bin/python3
"""The concurrency benchmark through the gRPC server: starts `kvserve serve` on a loopback port,
then for each N sends N concurrent streaming Generate calls (prompt of P ids = BOS + the same ids
llama.cpp's bench uses, T tokens, greedy, EOS ignored) and prints one JSON line per N with the
fields of kvserve_load_bench: aggregate tokens/s, TTFT and inter-token latency p50/p99.

Timestamps are taken by the client as messages arrive, so the numbers include the server's
whole path (validation, queues, serialization, HTTP/2). One untimed warm-up round per N with other
prompts, like kvserve_load_bench.

  grpc_load_bench.py --kvserve build/server/kvserve --model M.gguf --n 1,8,32,64 --prompt-len 16 --gen 64
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

import grpc


def percentile(xs, q):
    if not xs:
        return 0.0
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[k]


def prompt_ids(i, p, salt):
    # The llama.cpp oracle's prompt: 100 + ((k * 7 + i * 13) % 20000), after BOS.
    return [1] + [100 + ((k * 7 + (i + salt) * 13) % 20000) for k in range(p)]


def run_round(stub, pb, n, p, t, salt):
    results = [None] * n
    start = time.perf_counter()

    def one(i):
        req = pb.GenerateRequest(prompt_token_ids=pb.TokenIds(ids=prompt_ids(i, p, salt)),
                                 max_tokens=t, ignore_eos=True)
        req.sampling.temperature = 0.0
        t0 = time.perf_counter()
        stamps = []
        count = 0
        for msg in stub.Generate(req, timeout=3600):
            if msg.token_ids:
                now = time.perf_counter()
                stamps.extend([now] * len(msg.token_ids))
                count += len(msg.token_ids)
        results[i] = (t0, stamps, count)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    end = time.perf_counter()
    ttft, itl, total = [], [], 0
    for t0, stamps, count in results:
        total += count
        if stamps:
            ttft.append(1000 * (stamps[0] - t0))
            itl.extend(1000 * (b - a) for a, b in zip(stamps, stamps[1:]) if b > a)
    return {"n": n, "prompt_len": p, "gen": t, "tokens": total, "seconds": round(end - start, 3),
            "tokens_per_s": round(total / (end - start), 2),
            "ttft_ms_p50": percentile(ttft, 50), "ttft_ms_p99": percentile(ttft, 99),
            "itl_ms_p50": percentile(itl, 50), "itl_ms_p99": percentile(itl, 99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvserve", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pb-dir", required=True, help="generated Python stubs (build/proto/python)")
    ap.add_argument("--n", default="1,8,32,64")
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--weight-dtype", default="f32")
    a = ap.parse_args()
    sys.path.insert(0, a.pb_dir)
    from kvserve.v1 import generation_pb2 as pb  # noqa: E402
    from kvserve.v1 import generation_pb2_grpc as pb_grpc  # noqa: E402

    ns = [int(x) for x in a.n.split(",")]
    server = subprocess.Popen(
        [a.kvserve, "serve", "--model", a.model, "--grpc-port", "0", "--http-port", "0",
         "--host", "127.0.0.1", "--weight-dtype", a.weight_dtype, "--max-num-seqs", str(max(ns)),
         "--max-queued-requests", str(4 * max(ns))],
        stderr=subprocess.PIPE, text=True)
    port = None
    deadline = time.time() + 300
    while time.time() < deadline:
        line = server.stderr.readline()
        if not line:
            break
        m = re.search(r"gRPC listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
        if "ready: serving" in line:
            break
    if port is None:
        server.kill()
        sys.exit("kvserve serve did not start")
    # Keep draining the log so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.GenerationStub(channel)
        for n in ns:
            run_round(stub, pb, n, a.prompt_len, max(4, a.gen // 8), salt=1000)  # warm-up
            print(json.dumps(dict(run_round(stub, pb, n, a.prompt_len, a.gen, salt=0),
                                  engine="kvserve-grpc")), flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
