// llama.cpp (node-llama-cpp) as the tokenizer oracle: loads MODEL once, tokenizes every string
// of a JSON array with parse_special = true and no BOS, and times it.
//   node llamacpp_tokenize_lines.mjs MODEL.gguf STRINGS.json OUT.json [--bench]
// OUT.json: {"ids": [[...], ...], "lines_seconds": s, "whole_text_seconds": s, "bytes": n}
// where, with --bench, whole_text_seconds times one tokenize call over all strings joined by
// "\n" (best of 3).
// node-llama-cpp is imported from $KVSERVE_ORACLE_DIR (default ~/.cache/kvserve/oracle).
import {readFileSync, writeFileSync} from "node:fs";
import {homedir} from "node:os";
import {join} from "node:path";
import {pathToFileURL} from "node:url";

const [modelPath, inPath, outPath, benchFlag] = process.argv.slice(2);
const oracleDir = process.env.KVSERVE_ORACLE_DIR || join(homedir(), ".cache", "kvserve", "oracle");
const {getLlama} = await import(
    pathToFileURL(join(oracleDir, "node_modules", "node-llama-cpp", "dist", "index.js")).href);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const strings = JSON.parse(readFileSync(inPath, "utf8"));

let t0 = performance.now();
const ids = strings.map((s) => Array.from(model.tokenize(s, true)));
const linesSeconds = (performance.now() - t0) / 1000;
const whole = strings.join("\n");
// Best of 3 to damp noise from other processes on the machine.
let wholeSeconds = Infinity;
for (let i = 0; i < (benchFlag === "--bench" ? 3 : 0); ++i) {
  t0 = performance.now();
  model.tokenize(whole, true);
  wholeSeconds = Math.min(wholeSeconds, (performance.now() - t0) / 1000);
}
writeFileSync(outPath, JSON.stringify({ids, lines_seconds: linesSeconds,
  whole_text_seconds: Number.isFinite(wholeSeconds) ? wholeSeconds : null, bytes: Buffer.byteLength(whole, "utf8")}));
await model.dispose();
await llama.dispose();
