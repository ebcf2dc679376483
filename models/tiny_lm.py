"""Trains tiny-lm, a GPT-2-style transformer language model of the English
text in Debian's `fortunes` package, with the project's own byte-level BPE
tokenizer, and saves it as TorchScript carrying actmax.json and
tokenizer.json. Also writes the held-out entries (fortunes.py's split rule)
and a copy of the tokenizer under share/actmax/data/ for the dataset reader.

Input: token ids (1, T) int64, T <= context. Output: logits (1, T, vocab).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import fortunes  # noqa: E402

# B = batch, T = tokens, C = channels (d_model), H = heads, V = vocabulary


class Attention(nn.Module):
    def __init__(self, d, heads, context):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.register_buffer("mask", torch.tril(torch.ones(context, context, dtype=torch.bool))
                             .view(1, 1, context, context), persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        hs = C // self.heads
        q = q.view(B, T, self.heads, hs).transpose(1, 2)  # (B, H, T, hs)
        k = k.view(B, T, self.heads, hs).transpose(1, 2)
        v = v.view(B, T, self.heads, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, H, T, T)
        att = att.masked_fill(~self.mask[:, :, :T, :T], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, 4 * d)
        # Its own module so that `blocks.N.mlp.act` names the neurons.
        self.act = nn.GELU()
        self.proj = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    def __init__(self, d, heads, context):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d, heads, context)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = MLP(d)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    def __init__(self, vocab, context=64, d=128, layers=4, heads=4):
        super().__init__()
        self.context = context
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d)
        self.blocks = nn.ModuleList([Block(d, heads, context) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight  # tied, as in GPT-2
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx):
        T = idx.size(1)
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # (B, T, V)


def token_stream(tok, entries):
    """Entries encoded and each followed by <|endoftext|>, as one id list."""
    ids = []
    for e in entries:
        ids.extend(tok.encode(e))
        ids.append(tok.eot)
    return ids


@torch.no_grad()
def evaluate(model, data, context, batch=64):
    """Mean cross-entropy (nats/token) over non-overlapping windows."""
    model.eval()
    n = (data.numel() - 1) // context
    x = data[:n * context].view(n, context)
    y = data[1:n * context + 1].view(n, context)
    total = 0.0
    for i in range(0, n, batch):
        logits = model(x[i:i + batch])
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y[i:i + batch].reshape(-1),
                                 reduction="sum").item()
    return total / (n * context)


def unigram_ce(train_ids, val_ids, vocab):
    """Cross-entropy of the add-one-smoothed unigram distribution of training
    tokens, on the validation tokens: the baseline a language model must beat."""
    counts = torch.bincount(train_ids, minlength=vocab).double() + 1.0
    logp = (counts / counts.sum()).log()
    return -logp[val_ids].mean().item()


@torch.no_grad()
def greedy(model, tok, prompt, n, context):
    model.eval()
    ids = tok.encode(prompt)
    for _ in range(n):
        logits = model(torch.tensor([ids[-context:]]))
        nxt = int(logits[0, -1].argmax())
        if nxt == tok.eot:
            break
        ids.append(nxt)
    return tok.decode(ids).decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="path of the .pt file to write")
    ap.add_argument("--data-dir", required=True,
                    help="where to write fortunes-heldout.txt and tiny-lm-tokenizer.json")
    ap.add_argument("--fortunes", default=fortunes.DEFAULT_DIR)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    train_entries, held_entries = fortunes.split(args.fortunes)
    tok = bpe.train(train_entries, args.vocab)
    train = torch.tensor(token_stream(tok, train_entries), dtype=torch.long)
    val = torch.tensor(token_stream(tok, held_entries), dtype=torch.long)
    print(f"tiny-lm: {len(train_entries)} training entries ({train.numel()} tokens), "
          f"{len(held_entries)} held out ({val.numel()} tokens), vocabulary "
          f"{tok.vocab_size} ({time.time() - t0:.0f} s)", flush=True)

    ctx = args.context
    model = TinyLM(tok.vocab_size, context=ctx)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}], lr=2e-3, betas=(0.9, 0.95))
    warm = 100

    def lr_at(step):
        if step < warm:
            return (step + 1) / warm
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / (args.steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = torch.Generator().manual_seed(args.seed)
    for step in range(args.steps):
        model.train()
        starts = torch.randint(0, train.numel() - ctx - 1, (args.batch,), generator=gen)
        x = torch.stack([train[s:s + ctx] for s in starts.tolist()])
        y = torch.stack([train[s + 1:s + ctx + 1] for s in starts.tolist()])
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 250 == 0 or step == args.steps - 1:
            print(f"tiny-lm: step {step}/{args.steps} loss {loss.item():.3f} "
                  f"({time.time() - t0:.0f} s)", flush=True)

    ce = evaluate(model, val, ctx)
    base = unigram_ce(train, val, tok.vocab_size)
    print(f"tiny-lm: validation cross-entropy {ce:.3f} nats/token, unigram baseline "
          f"{base:.3f}", flush=True)
    # Prompts end without a space: GPT-2-style tokens carry their leading space.
    for prompt in ["The", "A computer", "Love is", "You will", "Never"]:
        print(f"tiny-lm: greedy: {greedy(model, tok, prompt, 30, ctx)!r}", flush=True)

    model.eval()
    scripted = torch.jit.script(model)
    meta = {"kind": "text", "vocab_size": tok.vocab_size, "context": ctx,
            "tokenizer": "tokenizer.json", "eot": tok.eot, "dataset": "fortunes",
            "dataset_splits": ["heldout"], "embedding": "wte"}
    tok_json = tok.dumps()
    os.makedirs(args.data_dir, exist_ok=True)
    with open(os.path.join(args.data_dir, "fortunes-heldout.txt"), "w", encoding="utf-8",
              errors="surrogateescape", newline="") as f:
        f.write(fortunes.format_entries(held_entries))
    with open(os.path.join(args.data_dir, "tiny-lm-tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tok_json)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    torch.jit.save(scripted, tmp, _extra_files={"actmax.json": json.dumps(meta),
                                                 "tokenizer.json": tok_json})
    os.replace(tmp, args.out)
    print(f"tiny-lm: trained in {time.time() - t0:.0f} s, wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
