// Tokenizes strings with @lenml/tokenizers (a port of transformers.js's tokenizers), loaded from a
// tokenizer.json and tokenizer_config.json, without special tokens added.
//   node hf_tokenize_lines.mjs TOKENIZER.json TOKENIZER_CONFIG.json STRINGS.json OUT.json
// Run with the folder that holds node_modules/@lenml/tokenizers as NODE_PATH's parent (cwd).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const [tokJson, configJson, stringsJson, outJson] = process.argv.slice(2);
const require = createRequire(path.join(process.cwd(), "package.json"));
const { TokenizerLoader } = require("@lenml/tokenizers");
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(tokJson, "utf8")),
  tokenizerConfig: JSON.parse(fs.readFileSync(configJson, "utf8")),
});
const strings = JSON.parse(fs.readFileSync(stringsJson, "utf8"));
const ids = strings.map((s) => tokenizer.encode(s, { add_special_tokens: false }));
fs.writeFileSync(outJson, JSON.stringify({ ids }));
