// Drives kvserve's OpenAI-compatible API with the official `openai` npm client.
// Usage: node openai_client_test.mjs CLIENTS_DIR BASE_URL API_KEY MODE
//   MODE main:  completions and chat completions, streamed and not, usage, stop, seed,
//               logprobs, documented errors, and finally a stream aborted mid-way.
//   MODE queue: (server with --max-num-seqs 1 --max-queued-requests 1) a third request gets 429.
// Exits non-zero (an assertion's stack) on the first failed check; prints one line per check.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";

const [clientsDir, baseURL, apiKey, mode] = process.argv.slice(2);
const require = createRequire(path.join(clientsDir, "package.json"));
const { default: OpenAI } = await import(require.resolve("openai"));

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
const log = (what) => console.log("ok -", what);

// Collects a streamed completion: concatenated text, finish reason, usage, chunk count.
async function collect(stream, chat) {
  let text = "", finish = null, usage = null, chunks = 0, first = null;
  for await (const chunk of stream) {
    chunks += 1;
    if (first === null) first = chunk;
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text += chat ? (choice.delta.content ?? "") : choice.text;
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  return { text, finish, usage, chunks, first };
}

async function expectError(promise, cls, status, param) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, status);
    if (param !== undefined) assert.equal(e.param, param);
    assert.equal(typeof e.error.message, "string");
    return e;
  }
  assert.fail(`expected ${cls.name} (${status})`);
}

async function main() {
  const models = await client.models.list();
  const ids = [];
  for await (const m of models) ids.push(m.id);
  assert.deepEqual(ids, ["kvserve-demo-random"]);
  const model = ids[0];
  log("models.list");

  // Greedy completion, not streamed. The demo vocabulary is bytes plus BOS: "Hello" is 6 tokens.
  const params = { model, prompt: "Hello", max_tokens: 24, temperature: 0, ignore_eos: true };
  const whole = await client.completions.create(params);
  assert.match(whole.id, /^cmpl-/);
  assert.equal(whole.object, "text_completion");
  assert.equal(whole.model, model);
  assert.equal(whole.choices.length, 1);
  assert.equal(whole.choices[0].finish_reason, "length");
  assert.deepEqual(whole.usage, { prompt_tokens: 6, completion_tokens: 24, total_tokens: 30 });
  assert.ok(whole.choices[0].text.length > 0);
  log("completions.create: usage and finish_reason");

  // The same request streamed: the same text, and the usage in the last chunk.
  const streamed = await collect(
    await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } }),
    false);
  assert.equal(streamed.text, whole.choices[0].text);
  assert.equal(streamed.finish, "length");
  assert.deepEqual(streamed.usage, whole.usage);
  assert.ok(streamed.chunks >= 3, `only ${streamed.chunks} chunks`);
  log("completions stream == non-stream text, usage");

  // A stop string taken from the greedy text: the output ends right before it.
  const greedy = whole.choices[0].text;
  const at = [...greedy].findIndex((c, i) => i >= 2 && c !== "\uFFFD" && c.trim() !== "");
  if (at > 0) {
    const stop = [...greedy][at];
    const stopped = await client.completions.create({ ...params, stop: [stop] });
    assert.equal(stopped.choices[0].text, greedy.slice(0, greedy.indexOf(stop)));
    assert.equal(stopped.choices[0].finish_reason, "stop");
    log(`stop string ${JSON.stringify(stop)}`);
  }

  // Token-id prompts, and seeded sampling is reproducible.
  const ids5 = await client.completions.create({ ...params, prompt: [256, 72, 101, 108, 108, 111] });
  assert.equal(ids5.choices[0].text, greedy);
  const seeded = { model, prompt: "Once", max_tokens: 16, temperature: 1, seed: 7, ignore_eos: true };
  const a = await client.completions.create(seeded);
  const b = await client.completions.create(seeded);
  assert.equal(a.choices[0].text, b.choices[0].text);
  log("token-id prompt, seed");

  // Logprobs: one entry per token; greedy picks the likeliest of the alternatives.
  const lp = await client.completions.create({ ...params, max_tokens: 5, logprobs: 3 });
  const L = lp.choices[0].logprobs;
  assert.equal(L.tokens.length, 5);
  assert.equal(L.token_logprobs.length, 5);
  for (let i = 0; i < 5; ++i) {
    const top = Object.values(L.top_logprobs[i]);
    assert.ok(top.length >= 1 && top.length <= 3);
    assert.ok(L.token_logprobs[i] <= 0);
    assert.ok(Math.abs(Math.max(...top) - L.token_logprobs[i]) < 1e-5);
  }
  log("completions logprobs");

  await chatChecks(model);
  await errorsAndAbort(model);
}

async function chatChecks(model) {
  // Chat completions (the demo model's chat template), streamed and not.
  const chatParams = {
    model, max_tokens: 20, temperature: 0, ignore_eos: true,
    messages: [{ role: "system", content: "You are terse." }, { role: "user", content: "Hi there" }],
  };
  const chat = await client.chat.completions.create(chatParams);
  assert.match(chat.id, /^chatcmpl-/);
  assert.equal(chat.object, "chat.completion");
  assert.equal(chat.choices[0].message.role, "assistant");
  assert.equal(chat.choices[0].finish_reason, "length");
  assert.equal(chat.usage.completion_tokens, 20);
  assert.ok(chat.usage.prompt_tokens > "You are terse.Hi there".length);  // template text added
  const chatStream = await collect(
    await client.chat.completions.create({ ...chatParams, stream: true, stream_options: { include_usage: true } }),
    true);
  assert.deepEqual(chatStream.first.choices[0].delta, { role: "assistant", content: "" });
  assert.equal(chatStream.first.object, "chat.completion.chunk");
  assert.equal(chatStream.text, chat.choices[0].message.content);
  assert.deepEqual(chatStream.usage, chat.usage);
  const parts = await client.chat.completions.create({
    ...chatParams,
    messages: [{ role: "system", content: [{ type: "text", text: "You are terse." }] },
               { role: "user", content: [{ type: "text", text: "Hi there" }] }],
  });
  assert.equal(parts.choices[0].message.content, chat.choices[0].message.content);
  const chatLp = await client.chat.completions.create({ ...chatParams, max_tokens: 3, logprobs: true, top_logprobs: 2 });
  assert.equal(chatLp.choices[0].logprobs.content.length, 3);
  assert.equal(chatLp.choices[0].logprobs.content[0].top_logprobs.length, 2);
  log("chat completions: stream == non-stream, usage, content parts, logprobs");
}

async function errorsAndAbort(model) {
  const params = { model, prompt: "Hello", max_tokens: 24, temperature: 0, ignore_eos: true };
  const chatParams = { model, max_tokens: 20, messages: [{ role: "user", content: "Hi" }] };
  // Documented errors.
  await expectError(client.completions.create({ ...params, temperature: -1 }), OpenAI.BadRequestError, 400, "temperature");
  await expectError(client.completions.create({ ...params, n: 17 }), OpenAI.BadRequestError, 400, "n");
  await expectError(client.completions.create({ ...params, echo: true, logprobs: 1 }), OpenAI.BadRequestError, 400, "echo");
  await expectError(client.chat.completions.create({ ...chatParams, messages: [] }), OpenAI.BadRequestError, 400, "messages");
  await expectError(client.completions.create({ ...params, model: "no-such-model" }), OpenAI.NotFoundError, 404);
  // Too long for the context: 400 context_length_exceeded, as OpenAI answers it.
  const tooLong = await expectError(client.completions.create({ ...params, max_tokens: 100000 }), OpenAI.BadRequestError, 400, "max_tokens");
  assert.equal(tooLong.code, "context_length_exceeded");
  assert.equal(tooLong.type, "invalid_request_error");
  // OpenAI's own sampling fields and the gRPC API's (vLLM's names) through the typed client.
  await expectError(client.completions.create({ ...params, top_k: -1 }), OpenAI.BadRequestError, 400, "top_k");
  const wrongKey = new OpenAI({ baseURL, apiKey: "wrong-key", maxRetries: 0 });
  await expectError(wrongKey.completions.create(params), OpenAI.AuthenticationError, 401);
  await expectError(wrongKey.models.list(), OpenAI.AuthenticationError, 401);
  log("errors: 400 temperature/n/echo/messages/top_k and too long, 404 model, 401 wrong key");

  // A client that leaves mid-stream: the caller checks that the server goes idle.
  const long = await client.completions.create({ ...params, max_tokens: 1500, stream: true });
  let seen = 0;
  for await (const chunk of long) {
    if (chunk.choices[0]?.text) seen += 1;
    if (seen >= 3) break;  // leaving the loop aborts the HTTP request
  }
  assert.equal(seen, 3);
  log("aborted a stream after 3 chunks");
}

async function queue() {
  const model = "kvserve-demo-random";
  const long = { model, prompt: "Hello", max_tokens: 1500, temperature: 0, ignore_eos: true, stream: true };
  const first = await client.completions.create(long);
  const it = first[Symbol.asyncIterator]();
  await it.next();  // running
  const second = await client.completions.create(long);  // waits: max-num-seqs 1
  // The engine publishes its queue length after each step: wait until it counts the second one.
  const metricsURL = new URL("/metrics", baseURL);
  for (let i = 0; ; ++i) {
    const text = await (await fetch(metricsURL)).text();
    if (/^kvserve_requests_waiting 1$/m.test(text)) break;
    assert.ok(i < 500, "the second request never showed as waiting in /metrics");
    await new Promise((r) => setTimeout(r, 10));
  }
  const full = await expectError(client.completions.create({ ...long, stream: false }), OpenAI.RateLimitError, 429);
  assert.equal(full.code, "queue_full");
  await expectError(client.completions.create(long), OpenAI.RateLimitError, 429);
  log("429 when the queue is full");
  first.controller.abort();
  second.controller.abort();
}

if (mode === "main") await main();
else if (mode === "queue") await queue();
else throw new Error(`unknown mode ${mode}`);
console.log("done");
