"""Synthetic models for the model-source tests: a Hugging Face folder (config.json, sharded
safetensors, a byte-level BPE tokenizer.json, tokenizer_config.json, generation_config.json) and
a GGUF file. Random weights, no network.

The tokenizer is GPT-2 style: ids 0..255 are the 256 bytes (in GPT-2's byte-to-character
mapping), 256..297 are merges, 298 is <|bos|> and 299 is <|eos|> (both special).
"""
import json
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(_HERE, "..", "..", "scripts")))
import make_hf_model as hf  # noqa: E402
import make_model as mm  # noqa: E402

VOCAB = 300
BOS, EOS = 298, 299
CHAT_TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"


def bytes_to_unicode():
    """GPT-2's printable stand-ins for the 256 byte values."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1))
                 + list(range(0xAE, 0xFF + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def tokenizer_files():
    """(tokenizer.json, tokenizer_config.json) as dicts."""
    byte_char = bytes_to_unicode()
    vocab = {byte_char[b]: b for b in range(256)}
    space = byte_char[ord(" ")]
    merges = [(space, c) for c in "abcdefghijklmnopqrstuvwxyz"]
    merges += [tuple(p) for p in ("th", "he", "in", "er", "an", "re", "on", "at", "en", "nd",
                                  "ou", "es", "or", "is", "it", "al")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    assert len(vocab) == BOS
    added = [{"id": BOS, "content": "<|bos|>", "special": True, "single_word": False,
              "lstrip": False, "rstrip": False, "normalized": False},
             {"id": EOS, "content": "<|eos|>", "special": True, "single_word": False,
              "lstrip": False, "rstrip": False, "normalized": False}]
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None, "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                  "merges": [f"{a} {b}" for a, b in merges]},
    }
    config = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "add_bos_token": True,
              "chat_template": [{"name": "default", "template": CHAT_TEMPLATE},
                                {"name": "tool_use", "template": "unused"}]}
    return tokenizer, config


def write_hf_folder(out, shards=2, seed=3, rope_scaling=None, ctx=256):
    """A random Llama folder; returns (config, tensors) as written."""
    config, tensors = hf.random_model(arch="llama", dim=64, layers=2, heads=4, kv_heads=2, ffn=96,
                                      vocab=VOCAB, ctx=ctx, seed=seed)
    config["bos_token_id"], config["eos_token_id"] = BOS, EOS
    if rope_scaling is not None:
        config["rope_scaling"] = rope_scaling
    hf.write_hf_folder(out, config, tensors, "F32", shards,
                       generation_config={"bos_token_id": BOS, "eos_token_id": [EOS]})
    tokenizer, tokenizer_config = tokenizer_files()
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config, f)
    return config, tensors


def write_gguf(out, seed=5):
    """A random Llama GGUF without tokenizer metadata (prompts as token ids)."""
    return mm.make_model(out, arch="llama", dim=64, layers=2, heads=4, kv_heads=2, ffn=96,
                         vocab=VOCAB, ctx=256, seed=seed)
