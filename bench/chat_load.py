#!/usr/bin/python3
"""Chat-shaped load against kvserve's gRPC server and llama.cpp, in one run (issue 12, item 5).

Prompts are token windows cut from ../shared/data/war-and-peace.txt (tokenized by llama.cpp's
tokenizer of the model, BOS first); lengths and output lengths are drawn from a seeded RNG, so
both engines get identical token sequences and the same schedule. Greedy, EOS ignored, so every
request produces exactly its planned number of tokens. Three modes:

  --users N    closed loop: N users, each sends its next request when its previous one ended;
               --requests K in all. With --second-turn every other request of a user is a second
               chat turn: the previous prompt + the engine's answer as history, plus a new question
               of --question-tokens (measures prefix caching; TTFT reported per turn).
  --rate R     --requests K arriving as a seeded Poisson process of R requests/s; at most
               --max-concurrency run at once (kvserve --max-num-seqs, llama.cpp sequences).
  --streams M  latency: M streams decode --gen tokens each (prompts from --prompt-tokens) while
               --long-users L users keep sending --long-prompt-tokens prompts (--long-gen tokens,
               --long-gap seconds apart), starting when every stream has its first token and
               stopping when the streams end. The streams' inter-token latency is the number.

Per engine: output tokens/s (all output tokens / first send to last token), time to first token
p50/p99, inter-token latency p50/p99 and the largest gap (client-side timestamps; a gRPC message
carrying k tokens counts as k gaps of (its gap / k), the largest gap is between messages), the
peak KV held (kvserve: GetServerInfo polled every 0.1 s, pages held by requests; llama.cpp: the
sequences' token counts) against the capacity, and the prompt tokens served from cache.
Ratios kvserve / llama.cpp.

Same conditions: both engines get the same GGUF file, 2 threads (--threads), the same number of
sequences and the same KV capacity in tokens (llama.cpp: a LlamaContext with `sequences` and
`contextSize` per sequence, via bench/chat_load_llamacpp.mjs; kvserve: --kv-cache-memory sized to
sequences x context-per-sequence tokens at its KV dtype). KV dtypes are each engine's default
unless --kvserve-arg=--kv-cache-dtype=... is given (llama.cpp: f16); the table names them.

Default model: the 360M-shape llama (dim 960, 32 layers, 15 heads, 5 KV heads, FFN 2560, vocab
32000 -- the vocabulary of the llama-2 tokenizer make_model.py copies; SmolLM's is 49152),
Q8_0, context 8192, written once to --cache-dir by scripts/make_model.py. --model PATH for another.

The lead's runs (quiet machine; check `uptime`):
  bench/chat_load.py --users 16 --prompt-tokens 1000 --gen 128 --requests 48
  bench/chat_load.py --users 8 --prompt-tokens 256:4096 --gen 64:256 --requests 32
  bench/chat_load.py --users 4 --prompt-tokens 2000 --gen 64 --requests 16 --second-turn
  bench/chat_load.py --rate 0.5 --prompt-tokens 256:4096 --gen 64:256 --requests 32
  bench/chat_load.py --streams 8 --prompt-tokens 256 --gen 256 --long-prompt-tokens 2000
Smoke test (tiny model, about 20 s; writes nothing; `ctest -R chat_load_smoke` runs it with
--second-turn --check: every request ran with its planned lengths, second turns hit the cache):
  bench/chat_load.py --model ../shared/models/llama-2-tiny-random.gguf --users 2 \
      --prompt-tokens 256 --gen 16 --requests 4 --out ''
A busy machine makes the numbers meaningless, llama.cpp's most: its 2 threads wait for each other
at every barrier when another process holds a core (tiny model, load 5: 15 tok/s with 2 threads,
900 with 1).
Each run replaces its own block (same mode and parameters) between the `chat-load` markers of
docs/BENCHMARKS.md and keeps the others.
"""
import argparse
import datetime
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import grpc

from benchcommon import cpu_line

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
SHARED = os.environ.get("KVSERVE_SHARED", os.path.join(ROOT, "..", "shared"))
SHAPE_360M = ["--arch", "llama", "--dim", "960", "--layers", "32", "--heads", "15", "--kv-heads",
              "5", "--ffn", "2560", "--vocab", "32000", "--ctx", "8192", "--seed", "360"]
BEGIN, END = "<!-- chat-load:begin -->", "<!-- chat-load:end -->"
RUN_BEGIN, RUN_END = "<!-- chat-load:run {} -->", "<!-- chat-load:run-end -->"
# Bytes per KV element by kvserve --kv-cache-dtype (q8_0: 32 int8 + one f16 scale per block).
KV_ELEM_BYTES = {"f32": 4.0, "bf16": 2.0, "f16": 2.0, "q8_0": 34 / 32}

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import gguf_py  # noqa: E402


def log(msg):
    print(f"chat_load: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
    except subprocess.CalledProcessError as e:
        sys.exit(f"{' '.join(cmd[:3])} ... failed ({e.returncode}):\n{e.stderr[-3000:]}")


def percentile(xs, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not xs:
        return 0.0
    xs = sorted(xs)
    pos = q / 100.0 * (len(xs) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def parse_range(text):
    lo, _, hi = text.partition(":")
    lo, hi = int(lo), int(hi or lo)
    if not 1 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"'{text}' is not N or LO:HI with 1 <= LO <= HI")
    return lo, hi


def default_model(cache):
    path = os.path.join(cache, "llama360m-ctx8192-q8_0.gguf")
    if not os.path.isfile(path):
        log(f"writing {path} (once)")
        os.makedirs(cache, exist_ok=True)
        run([PY, os.path.join(ROOT, "scripts", "make_model.py"), *SHAPE_360M, "--type", "Q8_0",
             "--tokenizer-from", os.path.join(SHARED, "models", "llama-2-tiny-random.gguf"),
             "--out", path + ".tmp"])
        os.replace(path + ".tmp", path)
    return path


def model_shape(path):
    """Layers, KV heads, head dim, context length and BOS id from the GGUF metadata."""
    meta = {k: (v.value if hasattr(v, "value") else v)
            for k, v in gguf_py.read_gguf(path).metadata.items()}
    arch = meta["general.architecture"]
    heads = meta[f"{arch}.attention.head_count"]
    return dict(layers=meta[f"{arch}.block_count"],
                kv_heads=meta.get(f"{arch}.attention.head_count_kv", heads),
                head_dim=meta.get(f"{arch}.attention.key_length",
                                  meta[f"{arch}.embedding_length"] // heads),
                context=meta[f"{arch}.context_length"], bos=meta.get("tokenizer.ggml.bos_token_id", 1))


# ---------------------------------------------------------------------------------------------
# The plan: every request's prompt ids, output length, user and arrival, shared by both engines.

class Planner:
    def __init__(self, text_ids, bos, seed):
        self.ids, self.bos, self.rng = text_ids, bos, random.Random(seed)

    def length(self, lo_hi):
        lo, hi = lo_hi
        # Log-uniform: chat prompts are more often short than long.
        return lo if lo == hi else int(round(math.exp(self.rng.uniform(math.log(lo), math.log(hi)))))

    def gen(self, lo_hi):
        return self.rng.randint(*lo_hi)

    def cut(self, n):
        if n > len(self.ids):
            raise SystemExit(f"a {n}-token cut is longer than the {len(self.ids)} tokenized tokens")
        off = self.rng.randrange(0, len(self.ids) - n + 1)
        return self.ids[off:off + n]

    def prompt(self, n):
        return [self.bos] + self.cut(n - 1)


def make_plan(a, planner):
    reqs = []

    def add(**kw):
        reqs.append({"id": len(reqs), "follow_up": False, "arrival_s": 0.0, "delay_s": 0.0, **kw})

    if a.users:
        for u in range(a.users):
            for k in range(a.requests // a.users + (u < a.requests % a.users)):
                if a.second_turn and k % 2 == 1:
                    add(kind="chat", user=u, prompt=planner.cut(a.question_tokens),
                        gen=planner.gen(a.gen), follow_up=True)
                else:
                    add(kind="chat", user=u, prompt=planner.prompt(planner.length(a.prompt_tokens)),
                        gen=planner.gen(a.gen))
        sequences = a.users
    elif a.rate:
        t = 0.0
        for _ in range(a.requests):
            t += planner.rng.expovariate(a.rate)
            add(kind="chat", user=-1, prompt=planner.prompt(planner.length(a.prompt_tokens)),
                gen=planner.gen(a.gen), arrival_s=round(t, 4))
        sequences = min(a.max_concurrency, a.requests)
    else:
        for u in range(a.streams):
            add(kind="stream", user=u, prompt=planner.prompt(planner.length(a.prompt_tokens)),
                gen=a.gen[1])
        for u in range(a.streams, a.streams + a.long_users):
            for _ in range(a.long_count):
                add(kind="long", user=u, prompt=planner.prompt(a.long_prompt_tokens),
                    gen=a.long_gen, delay_s=a.long_gap)
        sequences = a.streams + a.long_users
    return reqs, sequences


def context_per_sequence(reqs, page, model_context):
    """Tokens one sequence must hold: the longest prompt (history included) + output, + a page,
    rounded up to 256 (llama.cpp's granularity) but not beyond the model's context."""
    longest, history = 0, {}
    for r in reqs:
        n = len(r["prompt"]) + (history.get(r["user"], 0) if r["follow_up"] else 0)
        history[r["user"]] = n + r["gen"]
        longest = max(longest, n + r["gen"])
    if longest > model_context:
        sys.exit(f"a sequence needs up to {longest} tokens (prompt + history + output), more than "
                 f"the model's context {model_context}")
    return min(int(math.ceil((longest + page) / 256.0) * 256), model_context)


# ---------------------------------------------------------------------------------------------
# kvserve through its gRPC server.

class KvserveServer:
    def __init__(self, binary, model, extra, sequences, kv_bytes, queued):
        cmd = [binary, "serve", "--model", model, "--grpc-port", "0", "--http-port", "0",
               "--host", "127.0.0.1", "--weight-dtype", "auto", "--max-num-seqs", str(sequences),
               "--max-queued-requests", str(queued), "--kv-cache-memory", str(kv_bytes), *extra]
        log("starting " + " ".join(cmd))
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        self.log_lines = []
        self.grpc_port = self.http_port = None
        deadline = time.time() + 600
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log_lines.append(line.rstrip())
            m = re.search(r"(gRPC|HTTP) listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                setattr(self, "grpc_port" if m.group(1) == "gRPC" else "http_port", int(m.group(2)))
            if "ready: serving" in line:
                break
        if self.grpc_port is None or "ready: serving" not in (self.log_lines or [""])[-1]:
            self.stop()
            sys.exit("kvserve serve did not start:\n" + "\n".join(self.log_lines[-20:]))
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def find(self, pattern):
        for line in self.log_lines:
            m = re.search(pattern, line)
            if m:
                return m
        return None

    def metrics(self):
        if self.http_port is None:
            return {}
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=10).read()
        out = {}
        for line in text.decode().splitlines():
            m = re.match(r"(kvserve_[a-z_]+_total)(?:\{[^}]*\})? ([0-9.e+-]+)$", line)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def kvserve_generate(stub, pb, prompt, gen, t0, on_first=None):
    req = pb.GenerateRequest(prompt_token_ids=pb.TokenIds(ids=prompt), max_tokens=gen,
                             ignore_eos=True)
    req.sampling.temperature = 0.0
    sent = time.perf_counter() - t0
    stamps, answer, cached = [], [], 0
    for msg in stub.Generate(req, timeout=7200):
        if msg.token_ids:
            now = time.perf_counter() - t0
            if not answer and on_first:
                on_first()
            stamps.extend([now] * len(msg.token_ids))
            answer.extend(msg.token_ids)
        if msg.HasField("usage"):
            cached = msg.usage.cached_prompt_tokens
    return dict(sent=sent, stamps=stamps, answer=answer, cached_tokens=cached,
                prompt_tokens=len(prompt))


def run_kvserve(a, plan, sequences, ctx_seq, shape):
    sys.path.insert(0, a.pb_dir)
    from kvserve.v1 import generation_pb2 as pb  # noqa: E402
    from kvserve.v1 import generation_pb2_grpc as pb_grpc  # noqa: E402

    dtype = "f16"  # kvserve serve's default
    for x in a.kvserve_arg:
        m = re.match(r"--kv[-_]cache[-_]dtype=(\S+)", x)
        dtype = m.group(1) if m else dtype
    per_token = kv_token_bytes(shape, dtype)
    want_tokens = sequences * ctx_seq
    # --kv-cache-memory for want_tokens (+ one page); if kvserve's pages are larger than this
    # estimate (padding, another dtype), start again with the bytes scaled by the shortfall.
    kv_bytes = int(math.ceil((want_tokens + 16) * per_token))
    for attempt in range(2):
        server = KvserveServer(a.kvserve, a.model,
                               a.kvserve_arg, sequences, kv_bytes, 4 * len(plan) + 64)
        m = server.find(r"KV cache: (\d+) pages of (\d+) tokens \((\d+) tokens")
        capacity = int(m.group(3)) if m else 0
        if capacity >= want_tokens:
            break
        server.stop()
        if attempt == 1 or capacity == 0:
            sys.exit(f"kvserve's KV cache holds {capacity} tokens, {want_tokens} wanted")
        kv_bytes = int(kv_bytes * (want_tokens + 16) / capacity) + 1
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        stub = pb_grpc.GenerationStub(channel)
        info = stub.GetModelInfo(pb.GetModelInfoRequest())
        page = info.kv_page_size
        # Untimed warm-up: one short request per sequence, at once.
        warm = [threading.Thread(target=kvserve_generate,
                                 args=(stub, pb, [shape["bos"], 500 + i, 600, 700], 4, 0.0))
                for i in range(sequences)]
        [t.start() for t in warm]
        [t.join() for t in warm]
        before = server.metrics()
        records, seconds, kv_peak = drive_kvserve(a, plan, stub, pb)
        after = server.metrics()
        hits = after.get("kvserve_prefix_cache_hits_tokens_total", 0) - before.get(
            "kvserve_prefix_cache_hits_tokens_total", 0)
        preempt = after.get("kvserve_preemptions_total", 0) - before.get("kvserve_preemptions_total", 0)
        kernels = [ln.split("kvserve: ", 1)[-1] for ln in server.log_lines
                   if re.search(r"kernels?:|ISA|isa path|attention:", ln)]
        return dict(engine="kvserve", records=records, seconds=seconds,
                    kv_peak_tokens=kv_peak * page, kv_capacity_tokens=capacity,
                    kv_peak_mib=kv_peak * page * kv_bytes / capacity / 2**20,
                    kv_dtype=info.kv_cache_dtype, weight_dtype=info.weight_dtype,
                    prefix_hit_tokens=hits, preemptions=preempt, kernels=kernels,
                    command=" ".join(server.cmd[1:]).replace(a.model, os.path.basename(a.model)))
    finally:
        server.stop()


def drive_kvserve(a, plan, stub, pb):
    """Runs the plan (mode from `a`); returns (records, seconds, peak KV pages held)."""
    records, errors, lock = [], [], threading.Lock()
    peak = [0]
    done = threading.Event()

    def poll():
        while not done.is_set():
            s = stub.GetServerInfo(pb.GetServerInfoRequest())
            peak[0] = max(peak[0], s.total_kv_pages - s.free_kv_pages)
            done.wait(0.1)

    t0 = time.perf_counter()

    def one(req, prompt, on_first=None, arrived=None):
        try:
            rec = kvserve_generate(stub, pb, prompt, req["gen"], t0, on_first)
        except grpc.RpcError as e:
            # A failed request makes the run meaningless: stop the others, report it.
            errors.append(f"request {req['id']}: {e.code().name} {e.details()}")
            streams_done.set()
            return None
        rec.update(id=req["id"], kind=req["kind"], user=req["user"], follow_up=req["follow_up"])
        if arrived is not None:
            rec["sent"] = arrived
        with lock:
            records.append(rec)
        return rec

    by_user = {}
    for r in plan:
        by_user.setdefault(r["user"], []).append(r)
    n_streams = sum(r["kind"] == "stream" for r in plan)
    first_left = [n_streams]
    decoding = threading.Event()
    streams_done = threading.Event()
    if n_streams == 0:
        decoding.set()

    def on_first():
        with lock:
            first_left[0] -= 1
            if first_left[0] == 0:
                decoding.set()

    def user_loop(reqs):
        history = None
        for r in reqs:
            if r["kind"] == "long":
                decoding.wait()
                if streams_done.is_set() or streams_done.wait(r["delay_s"]):
                    return
            prompt = history + r["prompt"] if r["follow_up"] and history else r["prompt"]
            rec = one(r, prompt, on_first if r["kind"] == "stream" else None)
            if rec is None:
                return
            history = prompt + rec["answer"]

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    threads = []
    if a.rate:
        for r in plan:
            delay = t0 + r["arrival_s"] - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            th = threading.Thread(target=one, args=(r, r["prompt"], None, r["arrival_s"]))
            th.start()
            threads.append(th)
    else:
        users = sorted(by_user.items())
        streams = [threading.Thread(target=user_loop, args=(rs,)) for _, rs in users
                   if rs[0]["kind"] != "long"]
        longs = [threading.Thread(target=user_loop, args=(rs,)) for _, rs in users
                 if rs[0]["kind"] == "long"]
        [t.start() for t in streams + longs]
        [t.join() for t in streams]
        streams_done.set()
        threads = longs
    [t.join() for t in threads]
    seconds = time.perf_counter() - t0
    done.set()
    poller.join()
    if errors:
        sys.exit("kvserve: " + "; ".join(errors[:5]))
    return records, seconds, peak[0]


# ---------------------------------------------------------------------------------------------
# llama.cpp through node-llama-cpp.

def kv_token_bytes(shape, dtype):
    return 2 * shape["layers"] * shape["kv_heads"] * shape["head_dim"] * KV_ELEM_BYTES[dtype]


def run_llamacpp(a, plan, sequences, ctx_seq, shape, oracle_dir):
    doc = dict(model=a.model, threads=a.threads, sequences=sequences, context_per_sequence=ctx_seq,
               batch_size=a.llama_batch, mode="rate" if a.rate else "users", requests=plan)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
    try:
        env = dict(os.environ, KVSERVE_ORACLE_DIR=oracle_dir)
        out = run(["node", os.path.join(HERE, "chat_load_llamacpp.mjs"), "run", f.name], env=env)
    finally:
        os.unlink(f.name)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["prefix_hit_tokens"] = sum(r["cached_tokens"] for r in res["records"])
    res["kv_dtype"] = "f16"
    res["kv_peak_mib"] = res["kv_peak_tokens"] * kv_token_bytes(shape, "f16") / 2**20
    return res


# ---------------------------------------------------------------------------------------------
# Statistics, the same for both engines.

def gaps(stamps):
    """Inter-token gaps (a batch of k tokens arriving together: k gaps of its gap / k) and the
    largest gap between arrivals."""
    out, largest = [], 0.0
    i = 0
    while i < len(stamps):
        j = i
        while j + 1 < len(stamps) and stamps[j + 1] == stamps[i]:
            j += 1
        if i > 0:
            g = stamps[i] - stamps[i - 1]
            out.extend([g / (j - i + 1)] * (j - i + 1))
            largest = max(largest, g)
        else:
            out.extend([0.0] * j)  # tokens that came with the first one
        i = j + 1
    return out, largest


def summarize(res, kinds):
    recs = [r for r in res["records"] if r["kind"] in kinds and r["stamps"]]
    tokens = sum(len(r["stamps"]) for r in recs)
    start = min((r["sent"] for r in recs), default=0.0)
    end = max((r["stamps"][-1] for r in recs), default=0.0)
    itl, largest = [], 0.0
    for r in recs:
        g, big = gaps(r["stamps"])
        itl.extend(g)
        largest = max(largest, big)
    ttft = [r["stamps"][0] - r["sent"] for r in recs]
    s = dict(requests=len(recs), tokens=tokens,
             tokens_per_s=tokens / (end - start) if end > start else 0.0,
             ttft_p50=1000 * percentile(ttft, 50), ttft_p99=1000 * percentile(ttft, 99),
             itl_p50=1000 * percentile(itl, 50), itl_p99=1000 * percentile(itl, 99),
             itl_max=1000 * largest)
    for turn, follow in (("turn1", False), ("turn2", True)):
        t = [r["stamps"][0] - r["sent"] for r in recs if r["follow_up"] == follow]
        s[f"ttft_{turn}_p50"] = 1000 * percentile(t, 50) if t else None
    return s


def answers_agree(kv, lc):
    """Requests whose greedy answers are identical in both engines (a note, not a check)."""
    a = {r["id"]: r["answer"] for r in kv["records"]}
    b = {r["id"]: r["answer"] for r in lc["records"]}
    common = set(a) & set(b)
    return sum(a[i] == b[i] for i in common), len(common)


def check(plan, results):
    """What --check verifies (the ctest smoke test): every planned request ran in each engine
    and produced exactly its planned number of tokens (EOS ignored), every second turn's prompt
    was its history + question, and a second turn found part of its history cached. Returns the
    problems found."""
    problems, expected_len, history = [], {}, {}
    for r in plan:
        n = len(r["prompt"]) + (history.get(r["user"], 0) if r["follow_up"] else 0)
        history[r["user"]] = n + r["gen"]
        expected_len[r["id"]] = n
    for res in results:
        got = {r["id"]: r for r in res["records"]}
        for r in plan:
            g = got.get(r["id"])
            if g is None:
                if r["kind"] != "long":  # how many long prompts run depends on timing
                    problems.append(f"{res['engine']}: request {r['id']} did not run")
                continue
            if len(g["stamps"]) != r["gen"]:
                problems.append(f"{res['engine']}: request {r['id']} produced {len(g['stamps'])} "
                                f"tokens, {r['gen']} planned")
            if g["prompt_tokens"] != expected_len[r["id"]]:
                problems.append(f"{res['engine']}: request {r['id']} had a {g['prompt_tokens']}-token "
                                f"prompt, {expected_len[r['id']]} planned")
            if r["follow_up"] and g["cached_tokens"] < 1:
                problems.append(f"{res['engine']}: second turn {r['id']} found nothing cached")
    return problems


# ---------------------------------------------------------------------------------------------
# The report.

def scenario(a):
    p, g = (f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in (a.prompt_tokens, a.gen))
    if a.users:
        return (f"users{a.users}-p{p}-g{g}-r{a.requests}" + ("-turn2" if a.second_turn else ""),
                f"{a.users} closed-loop users, {a.requests} requests, prompts {p} tokens, outputs {g}"
                + (f"; every second request a second chat turn (+{a.question_tokens}-token question)"
                   if a.second_turn else ""))
    if a.rate:
        return (f"rate{a.rate}-p{p}-g{g}-r{a.requests}",
                f"Poisson arrivals at {a.rate} requests/s, {a.requests} requests, prompts {p} tokens, "
                f"outputs {g}, at most {a.max_concurrency} at once")
    return (f"streams{a.streams}-p{p}-g{a.gen[1]}-long{a.long_prompt_tokens}x{a.long_users}"
            f"-gap{a.long_gap}",
            f"latency: {a.streams} streams decode {a.gen[1]} tokens (prompts {p}) while {a.long_users} "
            f"user(s) send {a.long_prompt_tokens}-token prompts ({a.long_gen} output tokens, "
            f"{a.long_gap} s apart)")


def fmt(x, nd=0):
    return "—" if x is None else f"{x:.{nd}f}"


def ratio(x, y):
    return f"{x / y:.2f}×" if x and y else "—"


def render(a, argv, started, loads, results, ctx_seq, sequences, shape_text):
    key, title = scenario(a)
    kinds = ("stream",) if a.streams else ("chat",)
    lines = [RUN_BEGIN.format(key), f"### {title}", "",
             f"`bench/chat_load.py {' '.join(argv)}` on {started}. CPU: {cpu_line()}. "
             f"Load before / after: `{loads[0]}` / `{loads[1]}`.", ""]
    kv = next((r for r in results if r["engine"] == "kvserve"), None)
    lc = next((r for r in results if r["engine"] == "llama.cpp"), None)
    lines.append(f"Model: {shape_text}. {sequences} sequences × {ctx_seq} tokens of context each, "
                 f"{a.threads} threads, greedy, EOS ignored; identical token sequences.")
    if kv:
        lines.append(f"kvserve: `kvserve {kv['command']}` through gRPC (Python client); "
                     f"KV {kv['kv_dtype']}, weights as stored (`--weight-dtype {kv['weight_dtype']}`); "
                     f"{'; '.join(kv['kernels']) or 'kernel path not logged'}; "
                     f"preemptions {kv['preemptions']:.0f}.")
    if lc:
        lines.append(f"llama.cpp: node-llama-cpp 3.22.1 (`bench/chat_load_llamacpp.mjs`), one "
                     f"LlamaContext, {lc['sequences']} sequences × "
                     f"{lc['context_per_sequence']} tokens, "
                     f"batch {lc['batch_size']}, KV f16, a sequence keeps its common prefix "
                     f"(llama-server's cache_prompt).")
    if kv and lc:
        same, n = answers_agree(kv, lc)
        lines.append(f"Greedy answers identical in both engines: {same} of {n} requests.")
    turn2 = a.users and a.second_turn
    head = ("| engine | requests | output tok/s | TTFT p50 / p99 ms | ITL p50 / p99 ms "
            "| largest gap ms | KV peak (MiB) / capacity, tokens | prompt tokens from cache |")
    sep = "|---|---:|---:|---:|---:|---:|---:|---:|"
    if turn2:
        head += " TTFT p50 turn 1 / turn 2 ms |"
        sep += "---:|"
    if a.streams:
        head += " streams' ITL p99 / p50 | long prompts served, TTFT p50 ms |"
        sep += "---:|---:|"
    lines += ["", head, sep]
    stats = {}
    for r in results:
        s = stats[r["engine"]] = summarize(r, kinds)
        row = (f"| {r['engine']} | {s['requests']} | {s['tokens_per_s']:.1f} | "
               f"{s['ttft_p50']:.0f} / {s['ttft_p99']:.0f} | {s['itl_p50']:.1f} / {s['itl_p99']:.1f} | "
               f"{s['itl_max']:.0f} | {r['kv_peak_tokens']} ({r['kv_peak_mib']:.1f}) / "
               f"{r['kv_capacity_tokens']} | "
               f"{r['prefix_hit_tokens']:.0f} |")
        if turn2:
            t1, t2 = s["ttft_turn1_p50"], s["ttft_turn2_p50"]
            share = f"{t2 / t1:.2f}" if t1 and t2 else "—"
            row += f" {fmt(t1)} / {fmt(t2)} ({share}) |"
        if a.streams:
            lg = summarize(r, ("long",))
            row += f" {ratio(s['itl_p99'], s['itl_p50'])} | {lg['requests']}, {lg['ttft_p50']:.0f} |"
        lines.append(row)
    if kv and lc:
        k, l = stats["kvserve"], stats["llama.cpp"]
        row = (f"| kvserve / llama.cpp | | **{ratio(k['tokens_per_s'], l['tokens_per_s'])}** | "
               f"{ratio(k['ttft_p50'], l['ttft_p50'])} / {ratio(k['ttft_p99'], l['ttft_p99'])} | "
               f"{ratio(k['itl_p50'], l['itl_p50'])} / {ratio(k['itl_p99'], l['itl_p99'])} | "
               f"{ratio(k['itl_max'], l['itl_max'])} | | |")
        if turn2:
            row += " |"
        if a.streams:
            row += " | |"
        lines.append(row)
    lines.append(RUN_END)
    return key, "\n".join(lines), stats


INTRO = """## Chat-shaped load against llama.cpp (issue 12): long prompts, many users

`bench/chat_load.py` (see its docstring for every option): prompts cut from
`../shared/data/war-and-peace.txt`, seeded lengths, greedy, EOS ignored, the same token sequences
and schedule for kvserve (gRPC server) and llama.cpp (node-llama-cpp, `bench/chat_load_llamacpp.mjs`)
in one run, the same GGUF file, threads, sequences and KV capacity in tokens. TTFT and inter-token
latency (ITL) are client-side; the largest gap is the longest wait between two tokens of one
request. Each block below is the latest run of its scenario. Runs for issue 12's targets:

```
# output tok/s >= 5x llama.cpp's:
bench/chat_load.py --users 16 --prompt-tokens 1000 --gen 128 --requests 48
# a second turn's TTFT <= 20% of the first's:
bench/chat_load.py --users 4 --prompt-tokens 2000 --gen 64 --requests 16 --second-turn
# the streams' ITL p99 <= 3x their median while 2000-token prompts arrive:
bench/chat_load.py --streams 8 --prompt-tokens 256 --gen 256 --long-prompt-tokens 2000
# mixed lengths, closed loop and Poisson:
bench/chat_load.py --users 8 --prompt-tokens 256:4096 --gen 64:256 --requests 32
bench/chat_load.py --rate 0.5 --prompt-tokens 256:4096 --gen 64:256 --requests 32
```
KV dtypes are each engine's default (named in each block; both are f16 since issue 12); add
`--kvserve-arg=--kv-cache-dtype=f16` (or another dtype kvserve has) to compare like for like.
`ctest -R chat_load_smoke` runs the script on the tiny model (about 20 s, `--check`: every request
ran with its planned lengths, second turns found their history cached; no timings checked).
"""


def write_doc(path, key, block):
    text = open(path).read() if os.path.exists(path) else "# kvserve benchmarks\n"
    blocks = []
    if BEGIN in text:
        section = text[text.index(BEGIN):text.index(END) + len(END)]
        run_re = r"<!-- chat-load:run (\S+) -->.*?<!-- chat-load:run-end -->"
        for m in re.finditer(run_re, section, re.S):
            blocks.append((m.group(1), m.group(0)))
    if key in [k for k, _ in blocks]:
        blocks = [(k, block if k == key else b) for k, b in blocks]
    else:
        blocks.append((key, block))
    section = "\n".join([BEGIN, INTRO] + [b + "\n" for _, b in blocks] + [END])
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    open(path, "w").write(text)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--users", type=int, help="closed-loop users")
    mode.add_argument("--rate", type=float, help="Poisson arrivals, requests per second")
    mode.add_argument("--streams", type=int, help="latency mode: decoding streams")
    ap.add_argument("--requests", type=int, default=32, help="requests in all (users, rate)")
    ap.add_argument("--prompt-tokens", type=parse_range, default=(256, 4096),
                    help="N or LO:HI (log-uniform), BOS included; default 256:4096")
    ap.add_argument("--gen", type=parse_range, default=(64, 256),
                    help="output tokens, N or LO:HI (uniform); latency mode uses HI; default 64:256")
    ap.add_argument("--second-turn", action="store_true",
                    help="users: every other request repeats prompt + answer + a new question")
    ap.add_argument("--question-tokens", type=int, default=64)
    ap.add_argument("--max-concurrency", type=int, default=16, help="rate: sequences at once")
    ap.add_argument("--long-prompt-tokens", type=int, default=2000)
    ap.add_argument("--long-gen", type=int, default=16)
    ap.add_argument("--long-users", type=int, default=1)
    ap.add_argument("--long-gap", type=float, default=2.0, help="seconds between a user's long prompts")
    ap.add_argument("--long-count", type=int, default=64, help="most long prompts per long user")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", default="kvserve,llamacpp")
    ap.add_argument("--kvserve-arg", action="append", default=[],
                    help="extra `kvserve serve` flag, e.g. --kvserve-arg=--kv-cache-dtype=bf16")
    ap.add_argument("--llama-batch", type=int, default=512, help="llama.cpp batch size (tokens)")
    ap.add_argument("--model", default=None, help="GGUF file (default: the 360M-shape Q8_0)")
    ap.add_argument("--text", default=os.path.join(SHARED, "data", "war-and-peace.txt"))
    ap.add_argument("--text-chars", type=int, default=800_000, help="characters of --text tokenized")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--kvserve", default=None, help="kvserve binary (default BUILD_DIR/server/kvserve)")
    ap.add_argument("--pb-dir", default=None,
                    help="generated Python stubs (default BUILD_DIR/proto/python)")
    ap.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/kvserve/bench"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"),
                    help="markdown file to update ('' = none)")
    ap.add_argument("--json", default="", help="also write raw records and statistics here")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every request ran with its planned lengths (smoke test)")
    ap.add_argument("--no-build", action="store_true", help="do not build kvserve first")
    a = ap.parse_args(argv)
    for name in ("users", "streams", "rate"):
        v = getattr(a, name)
        if v is not None and v <= 0:
            ap.error(f"--{name} must be positive")
    if a.requests < 1:
        ap.error("--requests must be at least 1")
    a.kvserve = a.kvserve or os.path.join(a.build_dir, "server", "kvserve")
    a.pb_dir = a.pb_dir or os.path.join(a.build_dir, "proto", "python")
    return a


def main(argv):
    a = parse_args(argv)
    engines = a.engines.split(",")
    env_threads = dict(OMP_NUM_THREADS=str(a.threads), LLAMA_THREADS=str(a.threads))
    os.environ.update(env_threads)
    if "kvserve" in engines and not a.no_build:
        run(["cmake", "--build", a.build_dir, "-j2", "--target", "kvserve", "kvserve_proto_python"])
    oracle_dir = run(["bash", os.path.join(ROOT, "scripts", "install-oracle.sh")]).stdout.split()[-1]
    if a.model is None:
        a.model = default_model(a.cache_dir)
        shape_text = ("360M-shape llama (dim 960, 32 layers, 15 heads, 5 KV heads, FFN 2560, vocab "
                      "32000, context 8192), Q8_0, random weights (`scripts/make_model.py`)")
    else:
        shape_text = f"`{os.path.basename(a.model)}`"
    a.model = os.path.abspath(a.model)
    shape = model_shape(a.model)
    log(f"tokenizing {a.text_chars} characters of {a.text}")
    ids = json.loads(run(["node", os.path.join(HERE, "chat_load_llamacpp.mjs"), "tokenize", a.model,
                          a.text, str(a.text_chars)],
                         env=dict(os.environ, KVSERVE_ORACLE_DIR=oracle_dir)).stdout)["ids"]
    plan, sequences = make_plan(a, Planner(ids, shape["bos"], a.seed))
    ctx_seq = context_per_sequence(plan, 16, shape["context"])
    log(f"{len(plan)} requests, {sequences} sequences x {ctx_seq} tokens")
    load_before = run(["uptime"]).stdout.strip()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = []
    if "kvserve" in engines:
        log("kvserve over gRPC")
        results.append(run_kvserve(a, plan, sequences, ctx_seq, shape))
    if "llamacpp" in engines:
        log("llama.cpp (node-llama-cpp)")
        results.append(run_llamacpp(a, plan, sequences, ctx_seq, shape, oracle_dir))
    load_after = run(["uptime"]).stdout.strip()
    key, block, stats = render(a, argv, started, (load_before, load_after), results, ctx_seq,
                               sequences, shape_text)
    for engine, s in stats.items():
        print(json.dumps(dict(engine=engine, scenario=key, **s)), flush=True)
    print(block)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(scenario=key, stats=stats, results=results), f)
    if a.out:
        write_doc(a.out, key, block)
        log(f"wrote {a.out}")
    if a.check:
        problems = check(plan, results)
        for p in problems:
            log(f"check: {p}")
        if problems:
            sys.exit(1)
        ran = ", ".join(f"{r['engine']} {len(r['records'])}" for r in results)
        log(f"check: every request ran with its planned lengths (requests run: {ran})")


if __name__ == "__main__":
    main(sys.argv[1:])
