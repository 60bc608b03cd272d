// Tool calling through the official `openai` npm client, for tool_calling_test.py.
// Usage: node tool_calling_client_test.mjs CLIENTS_DIR BASE_URL TOOLS_JSON
// Prints one JSON line per response: {"case", "finish", "content", "calls": [{"id", "name",
// "arguments"}]} (streamed responses assembled from their deltas as the client's users do), for
// the Python side to validate the arguments with jsonschema. Exits non-zero on a failed check.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [clientsDir, baseURL, toolsPath] = process.argv.slice(2);
const require = createRequire(path.join(clientsDir, "package.json"));
const { default: OpenAI } = await import(require.resolve("openai"));
const client = new OpenAI({ baseURL, apiKey: "none", maxRetries: 0, timeout: 60_000 });
const tools = JSON.parse(fs.readFileSync(toolsPath, "utf8"));
const messages = [{ role: "user", content: "What is the weather in Paris?" }];
const base = { model: "", messages, tools, max_tokens: 200, temperature: 1.0 };

function emit(name, finish, content, calls) {
  console.log(JSON.stringify({ case: name, finish, content, calls }));
}

function plain(calls) {
  return (calls ?? []).map((c) => {
    assert.equal(c.type, "function");
    assert.match(c.id, /^call_[0-9a-f]{24}$/);
    return { id: c.id, name: c.function.name, arguments: c.function.arguments };
  });
}

async function once(name, extra) {
  const r = await client.chat.completions.create({ ...base, ...extra });
  const choice = r.choices[0];
  emit(name, choice.finish_reason, choice.message.content, plain(choice.message.tool_calls));
}

// Deltas: content pieces, and tool calls by index (id/name once, arguments concatenated).
async function streamed(name, extra) {
  const stream = await client.chat.completions.create({ ...base, ...extra, stream: true });
  let content = "", finish = null;
  const calls = [];
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      content += choice.delta.content ?? "";
      for (const d of choice.delta.tool_calls ?? []) {
        const c = (calls[d.index] ??= { id: "", type: "function", function: { name: "", arguments: "" } });
        if (d.id) c.id = d.id;
        if (d.function?.name) c.function.name += d.function.name;
        if (d.function?.arguments) c.function.arguments += d.function.arguments;
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  emit(name, finish, content, plain(calls));
}

for (let seed = 0; seed < 6; seed++) {
  await once(`required/${seed}`, { tool_choice: "required", seed });
  await streamed(`required-stream/${seed}`, { tool_choice: "required", seed });
}
const named = { type: "function", function: { name: tools[1].function.name } };
await once("named", { tool_choice: named, seed: 7 });
await streamed("named-stream", { tool_choice: named, seed: 7 });
await once("auto", { tool_choice: "auto", seed: 8 });
await streamed("auto-stream", { seed: 8 });
// A second turn: the call and its result go back into the template.
const call = { id: "call_000000000000000000000001", type: "function",
               function: { name: tools[0].function.name, arguments: '{"city": "Paris"}' } };
await once("round-trip", { messages: [...messages,
  { role: "assistant", content: null, tool_calls: [call] },
  { role: "tool", tool_call_id: call.id, content: '{"temperature": 21}' },
  { role: "user", content: "Thanks. And tomorrow?" }], tool_choice: "required", seed: 9 });
// Errors the client sees as 400s.
await assert.rejects(client.chat.completions.create({ ...base, tool_choice: {
  type: "function", function: { name: "no_such_function" } } }), (e) => e.status === 400);
await assert.rejects(client.chat.completions.create({ ...base, tools: [{ type: "function",
  function: { name: "bad name!" } }] }), (e) => e.status === 400);
