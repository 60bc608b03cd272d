#!/usr/bin/python3
"""Soak: many requests over gRPC and HTTP, about 30% abandoned at random points, then proof that
nothing leaked (issue 13).

  soak.py [--requests 1000] [--concurrency 16] [--seed 1] [--rss-growth 0.05]

Starts `kvserve serve` (the demo model, via server_harness) and sends --requests requests from
--concurrency threads, each drawn from a seeded mix: gRPC Generate streams (random prompt length,
max_tokens, temperature / top_k / top_p / min_p / repetition_penalty / seed, stop strings,
logprobs) and HTTP /v1/completions (streamed and not). About 30% are abandoned: gRPC calls
cancelled after a random number of messages or given a deadline that expires mid-stream, HTTP
sockets closed mid-stream, non-streamed HTTP clients that stop waiting.

Every completed gRPC stream is checked: a finish reason on the last message only, usage's
completion tokens equal to the ids received, and (without stop strings) the streamed text equal
to the server's own detokenization of those ids. At the end it asserts that every KV page is
free, nothing runs or waits, and the server's RSS after the first 20% of requests (warm-up) grew
by less than --rss-growth. Exit 1 with the reasons otherwise.
"""
import argparse
import http.client
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402

from server_harness import Server, pb  # noqa: E402

WORDS = ("the prince said nothing and went to the window where the snow fell on the old house "
         "of his father while the guests talked of war").split()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def random_prompt(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 120)))


def sampling(rng):
    if rng.random() < 0.4:
        return pb.SamplingParams(temperature=0.0)
    return pb.SamplingParams(temperature=rng.uniform(0.5, 1.3), top_k=rng.choice([0, 1, 5, 40]),
                             top_p=rng.uniform(0.5, 1.0), min_p=rng.choice([0.0, 0.05]),
                             repetition_penalty=rng.choice([1.0, 1.1]), seed=rng.randrange(1 << 30))


class Soak:
    def __init__(self, server, args):
        self.server, self.args = server, args
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def fail(self, what):
        with self.lock:
            self.failures.append(what)

    def grpc_request(self, rng, k):
        stops = [rng.choice(WORDS)] if rng.random() < 0.2 else []
        req = pb.GenerateRequest(request_id=f"soak-{k}", prompt=random_prompt(rng),
                                 max_tokens=rng.randint(1, 48), sampling=sampling(rng), stop=stops,
                                 logprobs=rng.choice([0, 0, 2]))
        abandon = rng.random() < 0.3
        deadline = rng.uniform(0.01, 0.3) if abandon and rng.random() < 0.4 else 120
        cancel_after = rng.randint(0, 4) if abandon and deadline == 120 else None
        call = self.server.stub.Generate(req, timeout=deadline)
        ids, text, last, seen = [], "", None, 0
        try:
            for msg in call:
                seen += 1
                if last is not None:
                    self.fail(f"soak-{k}: a message after the finished one")
                ids += msg.token_ids
                text += msg.text
                if msg.finish_reason != pb.FINISH_REASON_UNSPECIFIED:
                    last = msg
                if cancel_after is not None and seen > cancel_after:
                    call.cancel()
                    self.count("grpc cancelled")
                    return
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED) and abandon:
                self.count("grpc abandoned")
                return
            self.fail(f"soak-{k}: {e.code()} {e.details()}")
            return
        if last is None:
            self.fail(f"soak-{k}: stream ended without a finish reason")
            return
        if last.usage.completion_tokens != len(ids):
            self.fail(f"soak-{k}: usage says {last.usage.completion_tokens} tokens, got {len(ids)}")
        if not stops:
            back = self.server.stub.Tokenize(
                pb.TokenizeRequest(token_ids=pb.TokenIds(ids=ids)), timeout=30).text
            if back != text:
                self.fail(f"soak-{k}: streamed text {text!r} != detokenized {back!r}")
        self.count("grpc completed")

    def http_request(self, rng, k):
        stream = rng.random() < 0.6
        body = json.dumps({"prompt": random_prompt(rng), "max_tokens": rng.randint(1, 48),
                           "temperature": rng.choice([0.0, 0.8]), "stream": stream}).encode()
        abandon = rng.random() < 0.3
        conn = http.client.HTTPConnection("127.0.0.1", self.server.http_port,
                                          timeout=rng.uniform(0.01, 0.2) if abandon else 120)
        try:
            conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                self.fail(f"http-{k}: status {resp.status}: {resp.read()[:200]!r}")
                return
            if abandon:
                resp.read(rng.randint(1, 64))  # a little, then the socket closes
                self.count("http abandoned")
                return
            data = resp.read()
            if stream and b"data: [DONE]" not in data:
                self.fail(f"http-{k}: stream without [DONE]")
            elif not stream and "choices" not in json.loads(data):
                self.fail(f"http-{k}: no choices")
            self.count("http completed")
        except (TimeoutError, OSError):
            if abandon:
                self.count("http abandoned")
            else:
                self.fail(f"http-{k}: socket error")
        finally:
            conn.close()

    def worker(self, jobs):
        for k, seed in jobs:
            rng = random.Random(seed)
            kind = self.grpc_request if rng.random() < 0.65 else self.http_request
            t0 = time.monotonic()
            kind(rng, k)
            took = time.monotonic() - t0
            if took > 10:
                print(f"soak: request {k} ({kind.__name__}) took {took:.1f} s", flush=True)

    def run(self, first, last):
        jobs = [(k, self.args.seed * 1_000_003 + k) for k in range(first, last)]
        n = self.args.concurrency
        threads = [threading.Thread(target=self.worker, args=(jobs[i::n],)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rss-growth", type=float, default=0.05)
    a = ap.parse_args()
    t0 = time.monotonic()
    with Server() as server:
        soak = Soak(server, a)
        warm = max(1, a.requests // 5)
        soak.run(0, warm)
        server.wait_idle(10)
        rss_warm = rss_kib(server.proc.pid)
        soak.run(warm, a.requests)
        info = server.wait_idle(30)
        rss_end = rss_kib(server.proc.pid)
        problems = list(soak.failures)
        if info.free_kv_pages != info.total_kv_pages:
            problems.append(f"{info.total_kv_pages - info.free_kv_pages} KV pages still held")
        if info.running_requests or info.waiting_requests:
            problems.append(f"{info.running_requests} running, {info.waiting_requests} waiting")
        growth = (rss_end - rss_warm) / rss_warm
        if growth >= a.rss_growth:
            problems.append(f"RSS grew {100 * growth:.1f}% after warm-up ({rss_warm} -> {rss_end} KiB)")
        if server.proc.poll() is not None:
            problems.append(f"the server exited ({server.proc.returncode})")
    print(f"soak: {a.requests} requests in {time.monotonic() - t0:.0f} s: "
          + ", ".join(f"{v} {k}" for k, v in sorted(soak.counts.items()))
          + f"; pages {info.free_kv_pages}/{info.total_kv_pages} free; RSS {rss_warm} -> {rss_end} KiB")
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems[:30]), file=sys.stderr)
        sys.exit(1)
    print("soak: OK")


if __name__ == "__main__":
    main()
