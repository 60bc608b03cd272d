// Drives kvserve's chat page (GET /) in headless Chromium (Debian's /usr/bin/chromium through
// npm playwright-core): sends a message, watches the answer grow, presses Stop.
// Usage: node chat_page_test.mjs CLIENTS_DIR BASE_URL SCREENSHOT_PATH
// Prints one JSON line {"lengths": [...], "ttft": "...", "tps": "..."}; exits non-zero on failure.
// The caller checks that the server has no running request afterwards.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";

const [clientsDir, baseURL, screenshot] = process.argv.slice(2);
const require = createRequire(path.join(clientsDir, "package.json"));
const { chromium } = require("playwright-core");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  // Root in a container: Chromium's sandbox needs user namespaces it may not have.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(baseURL + "/");
  await page.waitForFunction(() => document.getElementById("model").textContent === "kvserve-demo",
                             null, { timeout: 10_000 });
  // The default model's context is 256 tokens: 200 fit after the prompt.
  await page.fill("#max-tokens", "200");
  await page.fill("#temperature", "0");  // greedy: the same words every run
  await page.fill("#input", "Hello, who are you?");
  await page.click("#send");
  await page.waitForSelector("#stop:not([disabled])");

  // The answer's text, sampled until it has grown in at least three separate observations.
  const answerLength = () => page.evaluate(() => {
    const answers = document.querySelectorAll(".msg.assistant .text");
    return answers.length ? answers[answers.length - 1].textContent.length : 0;
  });
  const lengths = [];
  const deadline = Date.now() + 30_000;
  // ...and until it holds a few words (60 characters), to check what the model writes.
  while ((lengths.length < 4 || lengths[lengths.length - 1] < 60) && Date.now() < deadline) {
    const n = await answerLength();
    if (n > (lengths.length ? lengths[lengths.length - 1] : 0)) lengths.push(n);
    await sleep(10);
  }
  assert.ok(lengths.length >= 3, `the answer grew in only ${lengths.length} steps: ${lengths}`);
  assert.match(await page.textContent("#ttft"), /^\d+ ms$/);

  await page.click("#stop");
  await page.waitForFunction(() => document.getElementById("status").textContent === "idle",
                             null, { timeout: 10_000 });
  const note = await page.textContent(".msg.assistant .note");
  assert.equal(note, "stopped");
  const stoppedAt = await answerLength();
  await sleep(300);
  assert.equal(await answerLength(), stoppedAt, "the answer kept growing after Stop");
  const tps = await page.textContent("#tps");
  assert.match(tps, /tokens\/s$/);
  assert.deepEqual(pageErrors, []);
  await page.screenshot({ path: screenshot });
  const answer = await page.textContent(".msg.assistant .text");
  console.log(JSON.stringify({ lengths, ttft: await page.textContent("#ttft"), tps, answer }));
} finally {
  await browser.close();
}
