"""A small GPT-style model with random weights and a byte-level BPE
tokenizer.json for it, shared by the engine's text tests (test_text.py,
test_text_prompts.py). The model's parameters are created in the same order
whatever the options, so a seed gives the same weights."""
import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from models.bpe import bytes_to_unicode  # noqa: E402


class Block(torch.nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(d)
        self.attn = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = torch.nn.LayerNorm(d)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, 4 * d), torch.nn.GELU(), torch.nn.Linear(4 * d, d))

    def forward(self, x, mask):
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False)
        x = x + a
        return x + self.mlp(self.ln2(x))


class TinyGPT(torch.nn.Module):
    def __init__(self, vocab=50, d=32, ctx=8, layers=2):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, d)
        self.wpe = torch.nn.Embedding(ctx, d)
        self.blocks = torch.nn.ModuleList([Block(d, 4) for _ in range(layers)])
        self.ln_f = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        return self.from_embeds(self.wte(idx))

    def from_embeds(self, e):
        """The network after the token-embedding lookup: e is (B, T, d)."""
        T = e.size(1)
        x = e + self.wpe(torch.arange(T, device=e.device))
        mask = torch.triu(torch.full((T, T), float("-inf"), device=e.device), diagonal=1)
        for blk in self.blocks:
            x = blk(x, mask)
        return self.head(self.ln_f(x))


def save_scripted(model, path, meta, tokenizer=None):
    """Scripts model and saves it to path with actmax.json (meta) and, when
    given, tokenizer.json among its extra files."""
    extra = {"actmax.json": json.dumps(meta)}
    if tokenizer is not None:
        extra["tokenizer.json"] = tokenizer
    torch.jit.save(torch.jit.script(model), str(path), _extra_files=extra)


def saved_gpt(path, ctx, seed=5):
    """A TinyGPT (seeded) with the tokenizer below, scripted and saved to
    path with text metadata. Returns (model, tokenizer json, vocab, eot)."""
    torch.manual_seed(seed)
    tok, vocab, eot = tokenizer_json()
    model = TinyGPT(vocab, ctx=ctx).eval()
    meta = {"kind": "text", "vocab_size": vocab, "context": ctx, "tokenizer": "tokenizer.json"}
    save_scripted(model, path, meta, tok)
    return model, tok, vocab, eot


def tokenizer_json():
    """A GPT-2-style byte-level BPE tokenizer.json: the 256 bytes, four
    merges and <|endoftext|>. Returns (json text, vocabulary size, eot id)."""
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("a", "n")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    eot = len(vocab)
    vocab["<|endoftext|>"] = eot
    tok = {"version": "1.0", "added_tokens": [{"id": eot, "content": "<|endoftext|>", "special": True}],
           "model": {"type": "BPE", "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]}}
    return json.dumps(tok), len(vocab), eot
