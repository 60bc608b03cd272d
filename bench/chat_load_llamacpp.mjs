// llama.cpp's side of bench/chat_load.py: runs a chat-load plan (the same token sequences and
// schedule kvserve gets) on node-llama-cpp and records, per request, when it was sent and when
// each output token arrived. chat_load.py computes every statistic from these records, for both
// engines, with the same code.
//
//   node bench/chat_load_llamacpp.mjs tokenize MODEL.gguf TEXT_FILE MAX_CHARS   -> {"ids": [...]}
//   node bench/chat_load_llamacpp.mjs run PLAN.json                            -> {"records": [...], ...}
//
// node-llama-cpp is loaded from $KVSERVE_ORACLE_DIR (default ~/.cache/kvserve/oracle, installed by
// scripts/install-oracle.sh), so this file can stay in the source tree. Threads: plan.threads.
//
// The plan (written by chat_load.py): {model, threads, sequences, context_per_sequence, batch_size,
// mode: "users" | "rate", requests: [...]}. A request: {id, kind: "chat" | "stream" | "long", user,
// prompt (ids), gen, follow_up, arrival_s, delay_s}. A follow-up's prompt is the previous request
// of the same user's prompt + answer + its own ids (a second chat turn). One LlamaContext with
// `sequences`, `contextSize` tokens each. "users" mode: each user owns one sequence and sends its
// requests in order; "long" users (chat_load.py's latency mode) start when every "stream" has its
// first token, wait delay_s before each request and stop once every stream has finished. "rate"
// mode: requests arrive at arrival_s and take a free sequence in arrival order. A request first
// keeps the part of its sequence's KV that equals the start of its prompt (as llama-server's
// cache_prompt does), then evaluates the rest; greedy, EOS ignored (yieldEogToken).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {pathToFileURL} from "node:url";

const oracleDir = process.env.KVSERVE_ORACLE_DIR || path.join(os.homedir(), ".cache", "kvserve", "oracle");
const {getLlama} = await import(
    pathToFileURL(path.join(oracleDir, "node_modules", "node-llama-cpp", "dist", "index.js")).href);

const now = () => performance.now() / 1000;

async function loadModel(modelPath) {
  const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
  return llama.loadModel({modelPath});
}

// Tokenizes the first maxChars characters of a text file, without BOS.
async function tokenize(modelPath, textFile, maxChars) {
  const model = await loadModel(modelPath);
  const text = fs.readFileSync(textFile, "utf8").slice(0, maxChars);
  console.log(JSON.stringify({ids: Array.from(model.tokenize(text, false))}));
}

// A FIFO of free sequences (rate mode).
class SequencePool {
  constructor(seqs) { this.free = [...seqs]; this.waiters = []; }
  async take() {
    if (this.free.length > 0) return this.free.shift();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  give(seq) {
    if (this.waiters.length > 0) this.waiters.shift()(seq);
    else this.free.push(seq);
  }
}

// Runs one request on `seq`; returns its record. `prompt` is the full prompt (history included).
async function runRequest(seq, req, prompt, t0, onFirst) {
  const sent = now();
  // Keep the cached prefix; at least one prompt token must be evaluated to get logits.
  const keep = Math.min(seq.compareContextTokens(prompt).firstDifferentIndex, prompt.length - 1);
  if (keep < seq.nextTokenIndex) {
    await seq.eraseContextTokenRanges([{start: keep, end: seq.nextTokenIndex}]);
  }
  const stamps = [];
  const answer = [];
  if (req.gen > 0) {
    for await (const t of seq.evaluate(prompt.slice(keep), {temperature: 0, yieldEogToken: true})) {
      stamps.push(now() - t0);
      answer.push(t);
      if (answer.length === 1 && onFirst) onFirst();
      if (answer.length >= req.gen) break;
    }
  }
  return {id: req.id, kind: req.kind, user: req.user, follow_up: req.follow_up,
          prompt_tokens: prompt.length, cached_tokens: keep, sent: sent - t0, stamps, answer};
}

// Each user's requests in order on its own sequence. Latency mode: the arriving long prompts
// ("long" requests) start once every stream has its first token and stop once every stream has
// finished.
async function runUser(seq, reqs, t0, records, lat) {
  let history = null;
  for (const req of reqs) {
    if (req.kind === "long") {
      await lat.decoding;
      if (lat.streamsLeft === 0) return;
      if (req.delay_s > 0) await new Promise((r) => setTimeout(r, req.delay_s * 1000));
      if (lat.streamsLeft === 0) return;
    }
    const prompt = req.follow_up && history ? [...history, ...req.prompt] : req.prompt;
    const rec = await runRequest(seq, req, prompt, t0, req.kind === "stream" ? lat.onFirst : null);
    records.push(rec);
    if (req.kind === "stream") lat.streamsLeft--;
    history = [...prompt, ...rec.answer];
  }
}

async function run(planFile) {
  const plan = JSON.parse(fs.readFileSync(planFile, "utf8"));
  const model = await loadModel(plan.model);
  const ctx = await model.createContext({
    contextSize: plan.context_per_sequence, sequences: plan.sequences, threads: plan.threads,
    batchSize: plan.batch_size});
  const seqs = Array.from({length: plan.sequences}, () => ctx.getSequence());

  // Untimed warm-up on every sequence: a short prompt and a few tokens.
  await Promise.all(seqs.map(async (seq, i) => {
    let n = 0;
    for await (const _ of seq.evaluate([1, 500 + i, 600, 700], {temperature: 0, yieldEogToken: true})) {
      if (++n >= 4) break;
    }
    await seq.clearHistory();
  }));

  const records = [];
  let kvPeak = 0;
  const sampler = setInterval(() => {
    kvPeak = Math.max(kvPeak, seqs.reduce((s, q) => s + q.nextTokenIndex, 0));
  }, 100);
  const t0 = now();
  if (plan.mode === "rate") {
    const pool = new SequencePool(seqs);
    await Promise.all(plan.requests.map(async (req) => {
      const wait = t0 + req.arrival_s - now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait * 1000));
      const arrived = now();
      const seq = await pool.take();
      try {
        const rec = await runRequest(seq, req, req.prompt, t0);
        rec.sent = arrived - t0;  // queueing for a free sequence counts toward TTFT
        records.push(rec);
      } finally {
        pool.give(seq);
      }
    }));
  } else {
    const byUser = new Map();
    for (const r of plan.requests) {
      if (!byUser.has(r.user)) byUser.set(r.user, []);
      byUser.get(r.user).push(r);
    }
    const users = [...byUser.keys()].sort((a, b) => a - b);
    if (users.length > seqs.length) throw new Error(`${users.length} users, ${seqs.length} sequences`);
    const nStreams = plan.requests.filter((r) => r.kind === "stream").length;
    const lat = {streamsLeft: nStreams, onFirst: null, decoding: null};
    let waiting = nStreams;
    lat.decoding = new Promise((resolve) => {
      if (waiting === 0) resolve();
      lat.onFirst = () => { if (--waiting === 0) resolve(); };
    });
    await Promise.all(users.map((u, i) => runUser(seqs[i], byUser.get(u), t0, records, lat)));
  }
  const seconds = now() - t0;
  clearInterval(sampler);
  console.log(JSON.stringify({
    engine: "llama.cpp", seconds, records, kv_peak_tokens: kvPeak,
    kv_capacity_tokens: ctx.contextSize * plan.sequences, context_per_sequence: ctx.contextSize,
    sequences: plan.sequences, threads: plan.threads, batch_size: ctx.batchSize}));
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "tokenize") {
  await tokenize(args[0], args[1], Number(args[2]));
} else if (cmd === "run") {
  await run(args[0]);
} else {
  console.error("usage: chat_load_llamacpp.mjs tokenize MODEL TEXT MAX_CHARS | run PLAN.json");
  process.exit(2);
}
