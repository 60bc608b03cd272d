#!/usr/bin/python3
"""Trains kvserve's default model on War and Peace and writes it as one Q8_0 GGUF.

  /usr/bin/python3 scripts/train_demo_model.py \
      --text ../shared/data/war-and-peace.txt --out models/kvserve-demo.gguf

A development tool (Debian's python3-torch and python3-numpy; `apt-get install python3-torch`),
not a runtime dependency, and not run in CI: the GGUF it writes is committed, and `kvserve serve`
loads it when no --model is given. What it does, all seeded:

1. Learns a byte-level BPE vocabulary (GPT-2's byte-to-character mapping and pre-tokenizer, as
   llama.cpp's `gpt2` tokenizer with pre-tokenizer `gpt-2` reads it) from the text: 256 byte
   tokens, then merges by pair frequency (ties: the pair seen first), then `<|endoftext|>`.
2. Trains a small Llama (RMSNorm, rotary embeddings on adjacent pairs as llama.cpp's `llama`
   architecture applies them, grouped-query attention, SwiGLU FFN, LM head tied to the
   embedding) on random windows of the first 98% of the text with AdamW and a cosine schedule;
   the last 2% is held out and its loss reported.
3. Writes the GGUF (Q8_0 matrices, F32 norms) with the tokenizer, a chat template that turns
   the conversation into a passage of the novel for the model to continue, and the
   hyper-parameters and losses under `kvserve.training.*`.

Floating-point results differ between CPUs and torch builds, so the bytes are reproducible on
one machine and the losses close elsewhere; docs/DEMO_MODEL.md records the committed run.
"""

import argparse
import collections
import hashlib
import json
import math
import os
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_py as g  # noqa: E402

# GPT-2's pre-tokenizer, with Python `re` classes for \p{L} ([^\W\d_]) and \p{N} (\d); the text
# is English with a few accented words, where the two agree. It only shapes which merges are
# learned; at run time kvserve and llama.cpp apply the real `gpt-2` pre-tokenizer.
PRETOKENIZE = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")
END_OF_TEXT = "<|endoftext|>"

# The chat template: the system message as a paragraph, each user turn as a remark of a visitor
# and each assistant turn as Prince Andrew's reply, then an open quotation for the model to
# continue (the novel is mostly such dialogue). No special tokens: the model never saw any.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}\"{{ message['content'] }}\" said Pierre.\n\n"
    "{% else %}\"{{ message['content'] }}\" replied Prince Andrew.\n\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}\"{% endif %}"
)


def bytes_to_unicode():
    """GPT-2's map from the 256 byte values to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def train_bpe(text, vocab_size):
    """Returns (token strings, merges) with len(tokens) == vocab_size (the last is END_OF_TEXT)."""
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    counts = collections.Counter(PRETOKENIZE.findall(text))
    words = [list(w.encode("utf-8")) for w in counts]
    freq = list(counts.values())
    pair_count = collections.defaultdict(int)
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += freq[i]
            where[(a, b)].add(i)
    merges = []
    while len(tokens) < vocab_size - 1 and pair_count:
        best = max(pair_count, key=pair_count.__getitem__)
        new_id = len(tokens)
        tokens.append(tokens[best[0]] + tokens[best[1]])
        merges.append(f"{tokens[best[0]]} {tokens[best[1]]}")
        for i in sorted(where.pop(best)):
            w = words[i]
            for a, b in zip(w, w[1:]):
                pair_count[(a, b)] -= freq[i]
                if pair_count[(a, b)] <= 0:
                    del pair_count[(a, b)]
            merged, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and (w[j], w[j + 1]) == best:
                    merged.append(new_id)
                    j += 2
                else:
                    merged.append(w[j])
                    j += 1
            words[i] = merged
            for a, b in zip(merged, merged[1:]):
                pair_count[(a, b)] += freq[i]
                where[(a, b)].add(i)
        pair_count.pop(best, None)
    tokens.append(END_OF_TEXT)
    return tokens, merges


class Encoder:
    """Applies the merges by rank to each pre-token, as a BPE tokenizer does."""

    def __init__(self, tokens, merges):
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.rank = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
        self.b2u = bytes_to_unicode()
        self.cache = {}

    def encode_word(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = [self.b2u[b] for b in word.encode("utf-8")]
        while len(parts) > 1:
            ranks = [self.rank.get((a, b), math.inf) for a, b in zip(parts, parts[1:])]
            r = min(ranks)
            if r == math.inf:
                break
            i = ranks.index(r)
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        out = [self.ids[p] for p in parts]
        self.cache[word] = out
        return out

    def encode(self, text):
        out = []
        for w in PRETOKENIZE.findall(text):
            out.extend(self.encode_word(w))
        return out


def build_model(torch, vocab, dim, layers, heads, kv_heads, ffn, ctx, rope_base, eps):
    nn = torch.nn
    head_dim = dim // heads

    class RmsNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight

    # Rotary angles: pair (2i, 2i+1) of each head turns by pos * base^(-2i/head_dim).
    inv_freq = rope_base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(ctx, dtype=torch.float64)[:, None] * inv_freq[None, :]
    cos_t, sin_t = torch.cos(angles).float(), torch.sin(angles).float()

    def rope(x):  # (B, H, T, D)
        t = x.shape[2]
        x2 = x.reshape(*x.shape[:-1], head_dim // 2, 2)
        a, b = x2[..., 0], x2[..., 1]
        c, s = cos_t[:t], sin_t[:t]
        return torch.stack((a * c - b * s, a * s + b * c), dim=-1).reshape(x.shape)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn_norm = RmsNorm()
            self.wq = nn.Linear(dim, heads * head_dim, bias=False)
            self.wk = nn.Linear(dim, kv_heads * head_dim, bias=False)
            self.wv = nn.Linear(dim, kv_heads * head_dim, bias=False)
            self.wo = nn.Linear(heads * head_dim, dim, bias=False)
            self.ffn_norm = RmsNorm()
            self.w_gate = nn.Linear(dim, ffn, bias=False)
            self.w_up = nn.Linear(dim, ffn, bias=False)
            self.w_down = nn.Linear(ffn, dim, bias=False)

        def forward(self, x, mask):
            bsz, t, _ = x.shape
            h = self.attn_norm(x)
            q = self.wq(h).view(bsz, t, heads, head_dim).transpose(1, 2)
            k = self.wk(h).view(bsz, t, kv_heads, head_dim).transpose(1, 2)
            v = self.wv(h).view(bsz, t, kv_heads, head_dim).transpose(1, 2)
            q, k = rope(q), rope(k)
            k = k.repeat_interleave(heads // kv_heads, dim=1)
            v = v.repeat_interleave(heads // kv_heads, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(head_dim) + mask[:t, :t]
            y = (torch.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(bsz, t, dim)
            x = x + self.wo(y)
            h = self.ffn_norm(x)
            return x + self.w_down(torch.nn.functional.silu(self.w_gate(h)) * self.w_up(h))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, dim)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.norm = RmsNorm()
            self.register_buffer("mask", torch.triu(torch.full((ctx, ctx), float("-inf")), 1))
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    std = 0.02 / math.sqrt(2 * layers) if name.endswith(("wo.weight", "w_down.weight")) else 0.02
                    nn.init.normal_(p, 0.0, std)

        def forward(self, ids):
            x = self.embed(ids)
            for blk in self.blocks:
                x = blk(x, self.mask)
            return self.norm(x) @ self.embed.weight.t()

    return Model()


def write_gguf(path, model, tokens, merges, hp, record):
    w = g.GGUFWriter()
    w.add("general.architecture", g.STRING, "llama")
    w.add("general.name", g.STRING, "kvserve-demo")
    w.add("general.description", g.STRING,
          "kvserve's default model: a small Llama trained on Tolstoy's War and Peace "
          "(scripts/train_demo_model.py)")
    w.add("general.file_type", g.UINT32, 7)  # MOSTLY_Q8_0
    w.add("llama.context_length", g.UINT32, hp["ctx"])
    w.add("llama.embedding_length", g.UINT32, hp["dim"])
    w.add("llama.block_count", g.UINT32, hp["layers"])
    w.add("llama.feed_forward_length", g.UINT32, hp["ffn"])
    w.add("llama.attention.head_count", g.UINT32, hp["heads"])
    w.add("llama.attention.head_count_kv", g.UINT32, hp["kv_heads"])
    w.add("llama.attention.layer_norm_rms_epsilon", g.FLOAT32, hp["eps"])
    w.add("llama.rope.freq_base", g.FLOAT32, hp["rope_base"])
    w.add("llama.rope.dimension_count", g.UINT32, hp["dim"] // hp["heads"])
    w.add("llama.vocab_size", g.UINT32, len(tokens))
    w.add("tokenizer.ggml.model", g.STRING, "gpt2")
    w.add("tokenizer.ggml.pre", g.STRING, "gpt-2")
    w.add("tokenizer.ggml.tokens", g.ARRAY, tokens, g.STRING)
    w.add("tokenizer.ggml.token_type", g.ARRAY, [1] * (len(tokens) - 1) + [3], g.INT32)
    w.add("tokenizer.ggml.merges", g.ARRAY, merges, g.STRING)
    eot = len(tokens) - 1
    w.add("tokenizer.ggml.bos_token_id", g.UINT32, eot)
    w.add("tokenizer.ggml.eos_token_id", g.UINT32, eot)
    w.add("tokenizer.ggml.add_bos_token", g.BOOL, False)
    w.add("tokenizer.ggml.add_eos_token", g.BOOL, False)
    w.add("tokenizer.chat_template", g.STRING, CHAT_TEMPLATE)
    for key, value in record.items():
        if isinstance(value, bool):
            w.add(f"kvserve.training.{key}", g.BOOL, value)
        elif isinstance(value, int):
            w.add(f"kvserve.training.{key}", g.UINT64, value)
        elif isinstance(value, float):
            w.add(f"kvserve.training.{key}", g.FLOAT32, value)
        else:
            w.add(f"kvserve.training.{key}", g.STRING, str(value))

    sd = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    q8 = g.GGML_Q8_0
    w.add_tensor("token_embd.weight", sd["embed.weight"], q8)
    for i in range(hp["layers"]):
        p, s = f"blk.{i}.", f"blocks.{i}."
        w.add_tensor(p + "attn_norm.weight", sd[s + "attn_norm.weight"], g.GGML_F32)
        for ours, theirs in (("attn_q", "wq"), ("attn_k", "wk"), ("attn_v", "wv"),
                             ("attn_output", "wo"), ("ffn_gate", "w_gate"), ("ffn_up", "w_up"),
                             ("ffn_down", "w_down")):
            w.add_tensor(p + ours + ".weight", sd[s + theirs + ".weight"], q8)
        w.add_tensor(p + "ffn_norm.weight", sd[s + "ffn_norm.weight"], g.GGML_F32)
    w.add_tensor("output_norm.weight", sd["norm.weight"], g.GGML_F32)
    tmp = path + ".tmp"
    w.write(tmp)
    os.replace(tmp, path)


def retemplate(path):
    """Replaces tokenizer.chat_template with CHAT_TEMPLATE, keeping everything else."""
    g.copy_with_metadata(path, path, {"tokenizer.chat_template": g.Value(g.STRING, CHAT_TEMPLATE)})
    print(f"rewrote the chat template of {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                   "data", "war-and-peace.txt"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "models",
                                                  "kvserve-demo.gguf"))
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--ctx", type=int, default=256, help="training window = the model's context length")
    ap.add_argument("--batch", type=int, default=16, help="windows per step")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                    help="bf16 autocast for the matmuls (fast where the CPU has AMX or AVX-512 BF16)")
    ap.add_argument("--tokenize-only", action="store_true", help="learn the vocabulary, report, stop")
    ap.add_argument("--retemplate", metavar="GGUF",
                    help="rewrite the chat template of an existing GGUF (no training), in place")
    args = ap.parse_args()
    if args.retemplate:
        retemplate(args.retemplate)
        return

    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    with open(args.text, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")
    t0 = time.time()
    tokens, merges = train_bpe(text, args.vocab)
    enc = Encoder(tokens, merges)
    ids = np.array(enc.encode(text), dtype=np.int64)
    print(f"vocabulary: {len(tokens)} tokens ({len(merges)} merges) in {time.time() - t0:.1f} s; "
          f"the text is {len(ids)} tokens ({len(raw) / len(ids):.2f} bytes per token)", flush=True)
    if args.tokenize_only:
        print("longest tokens:", sorted(tokens[:-1], key=len)[-12:])
        return
    split = int(len(ids) * 0.98)
    train_ids, val_ids = torch.from_numpy(ids[:split]), torch.from_numpy(ids[split:])

    hp = dict(vocab=len(tokens), dim=args.dim, layers=args.layers, heads=args.heads,
              kv_heads=args.kv_heads, ffn=args.ffn, ctx=args.ctx, rope_base=10000.0, eps=1e-5)
    model = build_model(torch, **hp)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        frac = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    def loss_of(batch):
        x, y = batch[:, :-1], batch[:, 1:]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(x)
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, hp["vocab"]), y.reshape(-1))

    def validation_loss():
        model.eval()
        n = (len(val_ids) - 1) // args.ctx
        with torch.no_grad():
            windows = torch.stack([val_ids[i * args.ctx:i * args.ctx + args.ctx + 1] for i in range(n)])
            losses = [loss_of(windows[i:i + 16]).item() for i in range(0, n, 16)]
        model.train()
        return float(np.mean(losses))

    print(f"model: {n_params} parameters {hp}; {args.steps} steps of {args.batch}x{args.ctx} tokens",
          flush=True)
    t_train = time.time()
    ema = None
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        starts = rng.integers(0, len(train_ids) - args.ctx - 1, size=args.batch)
        batch = torch.stack([train_ids[s:s + args.ctx + 1] for s in starts])
        loss = loss_of(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 50 == 0 or step == args.steps - 1:
            el = time.time() - t_train
            print(f"step {step}: loss {loss.item():.3f} (smoothed {ema:.3f}), lr {lr_at(step):.2e}, "
                  f"{el:.0f} s, {(step + 1) * args.batch * args.ctx / el:.0f} tokens/s", flush=True)
    train_seconds = time.time() - t_train
    val = validation_loss()
    print(f"trained in {train_seconds:.0f} s: training loss (smoothed) {ema:.3f}, held-out loss {val:.3f}",
          flush=True)
    record = dict(script="scripts/train_demo_model.py", corpus=os.path.basename(args.text),
                  corpus_sha256=hashlib.sha256(raw).hexdigest(), seed=args.seed, steps=args.steps,
                  batch_windows=args.batch, window_tokens=args.ctx, learning_rate=args.lr,
                  warmup_steps=args.warmup, weight_decay=args.weight_decay, bf16_autocast=args.bf16,
                  parameters=n_params, train_loss=float(ema), heldout_loss=val,
                  train_seconds=float(round(train_seconds)), torch_version=torch.__version__,
                  hyperparameters=json.dumps(hp, sort_keys=True))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_gguf(args.out, model, tokens, merges, hp, record)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
