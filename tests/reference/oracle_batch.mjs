// Greedy continuations of many prompts from llama.cpp (node-llama-cpp), loading the model once.
// Copied next to node_modules/node-llama-cpp in the oracle folder before running (ES modules
// resolve packages next to the script).
//   node oracle_batch.mjs MODEL.gguf N PROMPTS.json   (PROMPTS.json: [[1,2,3],[1,5],...])
//   -> one JSON line {"ids": [[...], [...], ...]}
import {readFileSync} from "node:fs";
import {getLlama} from "node-llama-cpp";

const [modelPath, nArg, promptsPath] = process.argv.slice(2);
const n = Number(nArg);
const prompts = JSON.parse(readFileSync(promptsPath, "utf8"));
const threads = Number(process.env.LLAMA_THREADS || 1);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const longest = Math.max(...prompts.map((p) => p.length));
const ctx = await model.createContext({contextSize: longest + n + 16, threads});
const out = [];
for (const prompt of prompts) {
  const seq = ctx.getSequence();
  const ids = [];
  for await (const t of seq.evaluate(prompt, {temperature: 0})) {
    ids.push(t);
    if (ids.length >= n) break;
  }
  out.push(ids);
  seq.dispose();
}
console.log(JSON.stringify({ids: out}));
