#!/usr/bin/python3
"""The HTTP front's figures: starts `kvserve serve` on loopback ports (the demo model unless
--model) and prints one JSON line per measurement.

  overhead: N concurrent streams of T tokens (greedy, EOS ignored, the same prompt) through gRPC
            Generate (grpcio, a thread per stream) and through HTTP SSE POST /v1/completions
            (asyncio, one connection per stream), alternately, R rounds each after a warm-up:
            aggregate tokens/s, TTFT p50/p99, the per-stream mean inter-token latency p50, and
            the server's CPU time per generated token (the engine's share is the same for both).
  capacity: S SSE streams opened at once (T tokens each): how many complete, in how long, the
            server's threads and peak RSS, and the slowest /health probe meanwhile.

Timestamps are the client's, as bytes arrive: they include the whole server path.

  http_load_bench.py --kvserve build/server/kvserve --pb-dir build/proto/python \\
      --mode overhead --n 32 --gen 64
  http_load_bench.py --kvserve build/server/kvserve --pb-dir build/proto/python \\
      --mode capacity --streams 1000,2000,4000 --gen 16
"""

import argparse
import asyncio
import http.client
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time


def percentile(xs, q):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q / 100.0 * (len(xs) - 1)))))]


def process_figures(pid):
    """Threads, resident and peak resident memory (MiB) of a process, from /proc."""
    names = {"Threads": "threads", "VmRSS": "rss_mib", "VmHWM": "peak_rss_mib"}
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "Threads":
                out["threads"] = int(value)
            elif key in names:
                out[names[key]] = round(int(value.split()[0]) / 1024, 1)
    return out


class Serve:
    def __init__(self, kvserve, flags):
        self.proc = subprocess.Popen([kvserve, "serve", "--grpc-port", "0", "--http-port", "0",
                                      "--host", "127.0.0.1", *flags],
                                     stderr=subprocess.PIPE, text=True)
        self.grpc_port = self.http_port = None
        for line in self.proc.stderr:
            if m := re.search(r"gRPC listening on 127\.0\.0\.1:(\d+)", line):
                self.grpc_port = int(m[1])
            if m := re.search(r"HTTP listening on 127\.0\.0\.1:(\d+)", line):
                self.http_port = int(m[1])
            if "ready: serving" in line:
                break
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def figures(self):
        return process_figures(self.proc.pid)

    def cpu_seconds(self):
        """User + system CPU time of the server so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def summarize(kind, streams, wall):
    """streams: (ttft_s, last_s, tokens) per stream, times from the round's start."""
    tokens = sum(s[2] for s in streams)
    itl = [(s[1] - s[0]) / (s[2] - 1) for s in streams if s[2] > 1]
    return {"transport": kind, "n": len(streams), "tokens": tokens,
            "tok_per_s": round(tokens / wall, 1),
            "ttft_p50_ms": round(1000 * percentile([s[0] for s in streams], 50), 1),
            "ttft_p99_ms": round(1000 * percentile([s[0] for s in streams], 99), 1),
            "itl_p50_ms": round(1000 * percentile(itl, 50), 2)}


def grpc_round(stub, pb, n, gen, prompt):
    results = [None] * n
    start = time.perf_counter()

    def one(i):
        req = pb.GenerateRequest(prompt=prompt, max_tokens=gen, ignore_eos=True)
        req.sampling.temperature = 0.0
        first, count = None, 0
        for msg in stub.Generate(req, timeout=600):
            if msg.token_ids and first is None:
                first = time.perf_counter() - start
            count += len(msg.token_ids)
        results[i] = (first, time.perf_counter() - start, count)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - start


async def sse_stream(port, body, start):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: b\r\nContent-Type: application/json"
                     b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if int(head.split()[1]) != 200:
            return None
        first = last = None
        tokens = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            data = (await reader.readexactly(size + 2))[:-2]
            now = time.perf_counter() - start
            for line in data.split(b"\n"):
                if not line.startswith(b"data: {"):
                    continue
                event = json.loads(line[6:])
                if event.get("usage"):
                    tokens = event["usage"]["completion_tokens"]
                elif event["choices"] and event["choices"][0]["finish_reason"] is None:
                    first = now if first is None else first
                    last = now
        return (first, last, tokens)
    finally:
        writer.close()


def sse_round(port, n, gen, prompt):
    body = json.dumps({"prompt": prompt, "max_tokens": gen, "temperature": 0, "ignore_eos": True,
                       "stream": True, "stream_options": {"include_usage": True}}).encode()

    async def run():
        start = time.perf_counter()
        out = await asyncio.gather(*(sse_stream(port, body, start) for _ in range(n)))
        return out, time.perf_counter() - start

    return asyncio.run(run())


def health_prober(port, stop, worst):
    while not stop.is_set():
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
        except OSError:
            ok = False
        finally:
            conn.close()
        worst["ms"] = max(worst["ms"], 1000 * (time.perf_counter() - t0))
        worst["failed"] += 0 if ok else 1
        stop.wait(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvserve", required=True)
    ap.add_argument("--pb-dir", required=True, help="generated Python stubs (build/proto/python)")
    ap.add_argument("--model", default="")
    ap.add_argument("--mode", choices=["overhead", "capacity"], default="overhead")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--streams", default="1000,2000,4000")
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--prompt", default="The quick brown fox jumps over the lazy dog")
    ap.add_argument("--serve-flag", action="append", default=[],
                    help="extra flag for kvserve serve (repeatable), e.g. --serve-flag=--max-num-seqs=256")
    args = ap.parse_args()
    sys.path.insert(0, args.pb_dir)
    import grpc
    from kvserve.v1 import generation_pb2 as pb
    from kvserve.v1 import generation_pb2_grpc as pb_grpc

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    flags = ["--kv-cache-memory", "512MiB", *args.serve_flag]
    if args.model:
        flags += ["--model", args.model]
    server = Serve(args.kvserve, flags)
    try:
        if args.mode == "overhead":
            channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
            stub = pb_grpc.GenerationStub(channel)
            grpc_round(stub, pb, args.n, 4, args.prompt)  # warm-up
            sse_round(server.http_port, args.n, 4, args.prompt)
            for _ in range(args.rounds):
                for kind in ("grpc", "http"):
                    cpu = server.cpu_seconds()
                    if kind == "grpc":
                        streams, wall = grpc_round(stub, pb, args.n, args.gen, args.prompt)
                    else:
                        streams, wall = sse_round(server.http_port, args.n, args.gen, args.prompt)
                    row = summarize(kind, streams, wall)
                    # The server's CPU per generated token: the engine's share is the same for
                    # both transports, the difference is the transport's.
                    row["server_cpu_us_per_token"] = round(
                        1e6 * (server.cpu_seconds() - cpu) / max(1, row["tokens"]), 1)
                    print(json.dumps(row), flush=True)
            channel.close()
        else:
            for count in (int(x) for x in args.streams.split(",")):
                stop, worst = threading.Event(), {"ms": 0.0, "failed": 0}
                prober = threading.Thread(target=health_prober,
                                          args=(server.http_port, stop, worst))
                prober.start()
                peak = {}
                sampling = threading.Event()

                def sample():
                    while not sampling.is_set():
                        f = server.figures()
                        if f.get("threads", 0) >= peak.get("threads", 0):
                            peak["threads"] = f["threads"]
                        peak["rss_mib"] = max(peak.get("rss_mib", 0), f["rss_mib"])
                        sampling.wait(0.2)

                sampler = threading.Thread(target=sample)
                sampler.start()
                streams, wall = sse_round(server.http_port, count, args.gen, args.prompt)
                sampling.set()
                sampler.join()
                stop.set()
                prober.join()
                done = [s for s in streams if s is not None and s[2] == args.gen]
                print(json.dumps({"streams": count, "completed": len(done),
                                  "seconds": round(wall, 2),
                                  "tok_per_s": round(sum(s[2] for s in done) / wall, 1),
                                  "ttft_p50_ms": round(1000 * percentile([s[0] for s in done], 50)),
                                  "ttft_p99_ms": round(1000 * percentile([s[0] for s in done], 99)),
                                  "server_threads": peak.get("threads"),
                                  "server_rss_mib": peak.get("rss_mib"),
                                  "health_worst_ms": round(worst["ms"], 1),
                                  "health_failed": worst["failed"]}), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
