// The official `openai` npm client over HTTPS to kvserve, trusting the test's own CA (given to
// Node as NODE_EXTRA_CA_CERTS by tls_test.py).
// Usage: node tls_client_test.mjs CLIENTS_DIR BASE_URL
// Prints one line per check; exits non-zero on the first failure.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";

const [clientsDir, baseURL] = process.argv.slice(2);
const require = createRequire(path.join(clientsDir, "package.json"));
const { default: OpenAI } = await import(require.resolve("openai"));
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 60_000 });

const params = { model: "kvserve-demo-random", prompt: "Hello", max_tokens: 8, temperature: 0, ignore_eos: true };
const whole = await client.completions.create(params);
assert.equal(whole.usage.completion_tokens, 8);
console.log("ok - completions.create over TLS");

let text = "";
let usage = null;
const stream = await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const choice of chunk.choices) text += choice.text;
}
assert.equal(text, whole.choices[0].text);
assert.equal(usage.completion_tokens, 8);
console.log("ok - streamed over TLS");
