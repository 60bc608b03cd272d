#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz (corpus/<fuzzer>/seed-*): small valid and nearly valid
inputs for each fuzzer, so that fuzzing starts past the formats' headers. Re-running it rewrites
the seeds only; inputs named otherwise (crash regressions, `crash-*` renamed to `regress-*`)
are left alone.

Usage: /usr/bin/python3 tests/fuzz/make_seeds.py   (needs numpy and protobuf; runs protoc)
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import gguf_py as g  # noqa: E402

CORPUS = os.path.join(HERE, "corpus")


def write(fuzzer, name, data):
    d = os.path.join(CORPUS, fuzzer)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def clear_seeds():
    if not os.path.isdir(CORPUS):
        return
    for fuzzer in os.listdir(CORPUS):
        for name in os.listdir(os.path.join(CORPUS, fuzzer)):
            if name.startswith("seed-"):
                os.remove(os.path.join(CORPUS, fuzzer, name))


# ---------------------------------------------------------------------------------------------
# JSON

def json_seeds():
    write("json", "object", '{"a": [1, -2.5e3, true, false, null], "b": {"c": "d\\u00e9\\n"}}')
    write("json", "numbers", "[0, -0, 9223372036854775807, -9223372036854775808, 9223372036854775808,"
                             " 1e308, 1e-320, 0.1, 123456789012345678901234567890]")
    write("json", "strings", '["\\ud83d\\ude00", "\\"\\\\\\/\\b\\f\\n\\r\\t", "caf\xc3\xa9", ""]')
    write("json", "nested", "[" * 40 + "{}" + "]" * 40)
    # The remote crash of issue 13: 46 levels made the recursive parser overflow a small stack.
    write("json", "deep46", "[" * 46 + "]" * 46)
    write("json", "deep_unclosed", "{\"a\":" * 70)
    write("json", "ws", " \t\r\n{ } ")


# ---------------------------------------------------------------------------------------------
# Jinja

def jinja_seeds():
    tdir = os.path.join(ROOT, "tests", "server", "chat_templates")
    for name in sorted(os.listdir(tdir)):
        with open(os.path.join(tdir, name), "rb") as f:
            write("jinja", name.replace(".jinja", ""), f.read())
    write("jinja", "filters", "{{ messages | map(attribute='role') | join(', ') | upper }}"
                              "{{ (messages | length) * 2 // 3 }}{{ 'a,b' .split(',') | reverse | list | tojson }}"
                              "{{ range(3) | sum }}{{ {'k': [1, 2.5, none]} | tojson }}{{ '%s-%d' | format('x', 3) }}")
    write("jinja", "loops", "{% set ns = namespace(n=0) %}{% for m in messages if m.role != 'system' %}"
                            "{{ loop.index }}/{{ loop.length }}{% if loop.first %}F{% elif loop.last %}L"
                            "{% else %}-{% endif %}{% set ns.n = ns.n + 1 %}{% else %}none{% endfor %}"
                            "{{ ns.n }}{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}")
    write("jinja", "macro", "{% macro m(x, y='d') -%} [{{ x }}|{{ y }}] {%- endmacro %}{{ m(1) }}{{ m(2, y=3) }}"
                            "{% set b %}block{{ bos_token }}{% endset %}{{ b | trim }}{{ messages[0]['content'][1:4] }}"
                            "{{ messages[-1].content is string }}{{ 3 in [1, 2, 3] }}{{ 'x' ~ 1 if true else 'y' }}")
    write("jinja", "raise", "{% if messages[0].role == 'system' %}{{ raise_exception('no system') }}{% endif %}")
    # The crash of issue 13: 12 nested ifs overflowed an HTTP worker's stack.
    write("jinja", "nested_if", "{% if true %}" * 12 + "x" + "{% endif %}" * 12)
    write("jinja", "nested_expr", "{{ " + "(" * 60 + "1" + ")" * 60 + " }}")
    write("jinja", "whitespace", "  {%- if true -%}\n  a  {%+ if 1 +%} b {# c #}\n{%- endif %}{% endif %}\n")


# ---------------------------------------------------------------------------------------------
# GGUF

SPM_TOKENS = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [
    "\u2581", "\u2581t", "he", "\u2581the", "\u2581a", "\u2581world", "ll", "o", "H", "e", "l", "w", "r", "d"]
GPT2_TOKENS = ["a", "b", "ab", "\u0120", "\u0120ab", "<|end|>", "H", "e", "l", "o", "\u0120w", "r", "d"]


def llama_config(w, arch="llama"):
    w.add("general.architecture", g.STRING, arch)
    w.add("general.name", g.STRING, "fuzz-seed")
    w.add(f"{arch}.embedding_length", g.UINT32, 8)
    w.add(f"{arch}.block_count", g.UINT32, 1)
    w.add(f"{arch}.feed_forward_length", g.UINT32, 16)
    w.add(f"{arch}.attention.head_count", g.UINT32, 2)
    w.add(f"{arch}.attention.head_count_kv", g.UINT32, 1)
    w.add(f"{arch}.context_length", g.UINT32, 64)
    w.add(f"{arch}.attention.layer_norm_rms_epsilon", g.FLOAT32, 1e-5)
    w.add(f"{arch}.rope.freq_base", g.FLOAT32, 10000.0)
    w.add(f"{arch}.rope.dimension_count", g.UINT32, 4)


def gguf_bytes(w):
    with tempfile.NamedTemporaryFile(suffix=".gguf") as f:
        w.write(f.name)
        return open(f.name, "rb").read()


def gguf_seeds():
    import numpy as np
    w = g.GGUFWriter()
    llama_config(w)
    w.add("tokenizer.ggml.model", g.STRING, "llama")
    w.add("tokenizer.ggml.tokens", g.ARRAY, SPM_TOKENS, g.STRING)
    w.add("tokenizer.ggml.scores", g.ARRAY, [-float(i) for i in range(len(SPM_TOKENS))], g.FLOAT32)
    w.add("tokenizer.ggml.token_type", g.ARRAY, [2, 3, 3] + [6] * 256 + [1] * 14, g.INT32)
    w.add("tokenizer.ggml.bos_token_id", g.UINT32, 1)
    w.add("tokenizer.ggml.eos_token_id", g.UINT32, 2)
    w.add("tokenizer.ggml.unknown_token_id", g.UINT32, 0)
    w.add("tokenizer.ggml.add_bos_token", g.BOOL, True)
    w.add("tokenizer.chat_template", g.STRING,
          "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}")
    w.add_tensor("token_embd.weight", np.ones((4, 8), dtype=np.float32), g.GGML_F32)
    w.add_tensor("blk.0.attn_q.weight", np.ones((8, 32), dtype=np.float32), g.GGML_Q8_0)
    write("gguf", "llama_spm", gguf_bytes(w))

    w = g.GGUFWriter(alignment=64)
    llama_config(w, "qwen2")
    w.add("tokenizer.ggml.model", g.STRING, "gpt2")
    w.add("tokenizer.ggml.pre", g.STRING, "llama3")
    w.add("tokenizer.ggml.tokens", g.ARRAY, GPT2_TOKENS, g.STRING)
    w.add("tokenizer.ggml.token_type", g.ARRAY, [1] * 5 + [3] + [1] * 7, g.INT32)
    w.add("tokenizer.ggml.merges", g.ARRAY, ["a b", "\u0120 ab"], g.STRING)
    w.add("tokenizer.ggml.eos_token_id", g.UINT32, 5)
    w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32), g.GGML_F16)
    write("gguf", "qwen2_bpe", gguf_bytes(w))

    w = g.GGUFWriter()
    w.add("u8", g.UINT8, 255)
    w.add("i64", g.INT64, -(2 ** 63))
    w.add("f64", g.FLOAT64, 1.5)
    w.add("nested", g.ARRAY, [g.Value(g.ARRAY, [1, 2], g.INT16), g.Value(g.ARRAY, [], g.INT16)], g.ARRAY)
    w.add("strs", g.ARRAY, ["x", ""], g.STRING)
    w.add("bools", g.ARRAY, [True, False], g.BOOL)
    w.add_tensor("t.bf16", np.ones((2, 3), dtype=np.float32), g.GGML_BF16)
    write("gguf", "value_types", gguf_bytes(w))

    # Version 2 header, no keys, no tensors.
    write("gguf", "v2_empty", b"GGUF" + struct.pack("<IQQ", 2, 0, 0))


# ---------------------------------------------------------------------------------------------
# safetensors

def safetensors_file(header, data):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    write("safetensors", "two", safetensors_file(
        {"__metadata__": {"format": "pt"},
         "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
         "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]}}, bytes(range(22))))
    write("safetensors", "scalar_empty", safetensors_file(
        {"s": {"dtype": "F16", "shape": [], "data_offsets": [0, 2]},
         "e": {"dtype": "I64", "shape": [0, 4], "data_offsets": [2, 2]}}, b"\x00\x3c"))
    write("safetensors", "past_end", safetensors_file(
        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\x00" * 8))


# ---------------------------------------------------------------------------------------------
# config.json

def hf_config_seeds():
    base = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
            "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 2048, "vocab_size": 32000, "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0, "tie_word_embeddings": False, "eos_token_id": [1, 2]}
    write("hf_config", "llama", json.dumps(base))
    llama3 = dict(base, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    write("hf_config", "llama3_rope", json.dumps(llama3))
    write("hf_config", "linear_rope", json.dumps(dict(base, rope_scaling={"type": "linear", "factor": 2},
                                                      head_dim=32)))
    write("hf_config", "qwen2", json.dumps(dict(base, architectures=["Qwen2ForCausalLM"],
                                                tie_word_embeddings=True)))
    write("hf_config", "mistral", json.dumps(dict(base, architectures=["MistralForCausalLM"],
                                                  sliding_window=None)))


# ---------------------------------------------------------------------------------------------
# tokenizer.json (+ tokenizer_config.json after the separator of tokenizer_json_fuzzer.cc)

SEPARATOR = "\n#tokenizer_config.json\n"
LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
                "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def tokenizer_json_seeds():
    bpe = {"version": "1.0", "normalizer": None,
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
               {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
           "added_tokens": [{"id": 5, "content": "<|x|>", "special": True},
                            {"id": 7, "content": "<u>", "special": False}],
           "model": {"type": "BPE", "byte_fallback": False, "ignore_merges": False,
                     "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "\u0120ab": 4},
                     "merges": [["a", "b"], "\u0120 ab"]}}
    config = {"bos_token": {"content": "<|x|>"}, "eos_token": "<u>", "add_bos_token": True,
              "chat_template": "{% for m in messages %}{{ bos_token }}{{ m.content }}{% endfor %}"}
    write("tokenizer_json", "bpe_llama3", json.dumps(bpe) + SEPARATOR + json.dumps(config))
    write("tokenizer_json", "bpe_alone", json.dumps(dict(bpe, pre_tokenizer={
        "type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True})))
    digits = dict(bpe, pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]})
    write("tokenizer_json", "bpe_digits", json.dumps(digits) + SEPARATOR + json.dumps(
        {"chat_template": [{"name": "default", "template": "{{ messages[0].content }}"}]}))
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = 3 + b
    for t in ["\u2581", "\u2581t", "h", "e", "he", "\u2581the"]:
        vocab[t] = len(vocab)
    spm = {"version": "1.0",
           "normalizer": {"type": "Sequence", "normalizers": [
               {"type": "Prepend", "prepend": "\u2581"},
               {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
           "pre_tokenizer": None,
           "added_tokens": [{"id": 0, "content": "<unk>", "special": True},
                            {"id": 1, "content": "<s>", "special": True},
                            {"id": 2, "content": "</s>", "special": True}],
           "model": {"type": "BPE", "byte_fallback": True, "unk_token": "<unk>", "vocab": vocab,
                     "merges": ["\u2581 t", "h e", "\u2581t he"]}}
    write("tokenizer_json", "spm_byte_fallback", json.dumps(spm) + SEPARATOR + json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True}))


# ---------------------------------------------------------------------------------------------
# tokenizer (byte 0: bit 0 SPM, bit 1 ids mode), stop matcher, OpenAI bodies

def tokenizer_seeds():
    text = ("Hello world, the and \u00e9t\u00e9 123456 \n\n    x\ttabs   <|x|> <u> <s>\u2581"
            "\U0001F600 \u0645\u0631\u062d\u0628\u0627 \u4f60\u597d don't I'LL")
    write("tokenizer", "bpe_text", b"\x00" + text.encode())
    write("tokenizer", "spm_text", b"\x01" + text.encode())
    write("tokenizer", "bpe_invalid_utf8", b"\x00ab\xff\xc3(\xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80end")
    ids = struct.pack("<8i", 0, 1, 2, 3, 260, 300, -5, 1 << 30)
    write("tokenizer", "bpe_ids", b"\x02" + ids)
    write("tokenizer", "spm_ids", b"\x03" + ids + struct.pack("<3i", 29871, 13, 31999))
    war = os.path.join(ROOT, "..", "shared", "data", "war-and-peace.txt")
    if os.path.exists(war):
        with open(war, "rb") as f:
            f.seek(100000)
            chunk = f.read(600)
        write("tokenizer", "spm_novel", b"\x01" + chunk)
        write("tokenizer", "bpe_novel", b"\x00" + chunk)


def stop_matcher_seeds():
    # byte 0: include (bit 0) | (number of stops - 1) << 1; then stops, then deltas, '\0'-separated.
    write("stop_matcher", "split", b"\x02" + b"\0".join([b"END", b"ab", b"xx E", b"N", b"Dyy", b"ab"]))
    write("stop_matcher", "overlap_include", b"\x05" + b"\0".join([b"aab", b"ab", b"b", b"a", b"a", b"ab"]))
    write("stop_matcher", "utf8", b"\x00" + b"\0".join(["\u00e9t\u00e9".encode(), b"x\xc3", b"\xa9t\xc3\xa9!"]))
    write("stop_matcher", "none", b"\x06" + b"\0".join([b"zz", b"", b"yyy", b"z y", b"yy", b"zyy"]))


def openai_body_seeds():
    completions = [
        {"model": "kvserve-demo", "prompt": "Hello", "max_tokens": 8, "temperature": 0.7, "top_p": 0.9,
         "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1, "seed": 7, "stop": ["\n", "END"],
         "logprobs": 2, "stream": True, "stream_options": {"include_usage": True}},
        {"prompt": [72, 101, 108], "max_tokens": 1, "logit_bias": {"65": -100, "66": 5.5},
         "presence_penalty": -2, "frequency_penalty": 2, "echo": False, "n": 1, "ignore_eos": True},
        {"prompt": ["just one"], "stop": "x", "user": "u"},
        {"prompt": "x" * 300, "max_tokens": 2147483648},
        {"model": "other\xff", "prompt": ""},
    ]
    for i, body in enumerate(completions):
        write("openai_body", f"completions{i}", b"\x00" + json.dumps(body).encode())
    write("openai_body", "completions_raw_utf8", b"\x00" + b'{"prompt": "caf\xc3\xa9 \xff", "model": "\xc3"}')
    chats = [
        {"model": "kvserve-demo", "messages": [{"role": "system", "content": "Be brief."},
                                               {"role": "user", "content": "Hi"}],
         "max_completion_tokens": 4, "logprobs": True, "top_logprobs": 3, "stream": False},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                      {"role": "assistant", "content": "c"}, {"role": "user", "content": "d"}],
         "max_tokens": 16, "temperature": 2, "stop": []},
        {"messages": [], "temperature": 3},
    ]
    for i, body in enumerate(chats):
        write("openai_body", f"chat{i}", b"\x01" + json.dumps(body).encode())
    write("openai_body", "chat_deep", b"\x01" + b'{"messages": ' + b"[" * 46 + b"]" * 46 + b"}")


# ---------------------------------------------------------------------------------------------
# gRPC request bytes (byte 0: bit 0 Chat)

def grpc_seeds():
    out = tempfile.mkdtemp()
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), f"--python_out={out}",
                    "kvserve/v1/generation.proto"], check=True)
    sys.path.insert(0, out)
    from kvserve.v1 import generation_pb2 as pb  # noqa: E402

    r = pb.GenerateRequest(request_id="r1", prompt="Hello", max_tokens=8, stop=["\n", "END"],
                           stop_token_ids=[257], ignore_eos=False, include_stop_str_in_output=True,
                           logprobs=2, add_special_tokens=True)
    r.sampling.temperature = 0.8
    r.sampling.top_k = 40
    r.sampling.top_p = 0.95
    r.sampling.min_p = 0.05
    r.sampling.repetition_penalty = 1.2
    r.sampling.presence_penalty = 0.5
    r.sampling.frequency_penalty = -0.5
    r.sampling.seed = 42
    r.sampling.logit_bias[65] = -100.0
    write("grpc_request", "generate_text", b"\x00" + r.SerializeToString())
    r = pb.GenerateRequest(max_tokens=1)
    r.prompt_token_ids.ids.extend([256, 72, 105, 1000])
    write("grpc_request", "generate_ids", b"\x00" + r.SerializeToString())
    c = pb.ChatRequest(add_generation_prompt=True)
    c.messages.add(role="system", content="Be brief.")
    c.messages.add(role="user", content="Hi \u00e9")
    c.generation.max_tokens = 4
    c.generation.stop.append("!")
    write("grpc_request", "chat", b"\x01" + c.SerializeToString())
    c = pb.ChatRequest()
    c.messages.add(role="user", content="x")
    c.generation.prompt = "must be unset"
    write("grpc_request", "chat_with_prompt", b"\x01" + c.SerializeToString())
    # A string field with invalid UTF-8: field 2 (prompt), length 3.
    write("grpc_request", "generate_bad_utf8", b"\x00" + b"\x12\x03a\xffb")
    # A message with invalid UTF-8 in messages[0].content.
    write("grpc_request", "chat_bad_utf8", b"\x01" + b"\x0a\x05\x12\x03\xc3(x")


def main():
    clear_seeds()
    json_seeds()
    jinja_seeds()
    gguf_seeds()
    safetensors_seeds()
    hf_config_seeds()
    tokenizer_json_seeds()
    tokenizer_seeds()
    stop_matcher_seeds()
    openai_body_seeds()
    grpc_seeds()


if __name__ == "__main__":
    main()
