"""Trains tiny-llama, a Llama-architecture language model (RMSNorm, rotary
position embeddings, SwiGLU MLPs, no biases, tied embedding and output) of
the English text in Debian's `fortunes` package, with a SentencePiece BPE
tokenizer trained by Debian's python3-sentencepiece as Llama's was (byte
fallback, identity normalization, a dummy prefix, digits split). The model is
exported through models/export.py with the tokenizer converted to Hugging
Face's Llama layout (models/spm_json.py) as its tokenizer.json. Also writes a
copy of that tokenizer and of the SentencePiece model under share/actmax/data/
for the tests. The held-out entries are fortunes.py's, as tiny-lm's.

Input: token ids (1, T) int64, T <= context. Output: logits (1, T, vocab).
Training text: each entry as <s> ids </s>, concatenated.
"""
import argparse
import io
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export  # noqa: E402
import fortunes  # noqa: E402
import spm_json  # noqa: E402

# B = batch, T = tokens, C = channels (d_model), H = heads, S = head size, V = vocabulary


class RMSNorm(nn.Module):
    def __init__(self, d, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Attention(nn.Module):
    def __init__(self, d, heads, context, base=10000.0):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        S = d // heads
        inv = 1.0 / (base ** (torch.arange(0, S, 2).float() / S))
        ang = torch.outer(torch.arange(context).float(), inv)  # (context, S/2)
        ang = torch.cat((ang, ang), dim=-1)                     # (context, S), Llama's layout
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)
        self.register_buffer("mask", torch.tril(torch.ones(context, context, dtype=torch.bool)),
                             persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        S = C // self.heads
        q = self.q_proj(x).view(B, T, self.heads, S).transpose(1, 2)  # (B, H, T, S)
        k = self.k_proj(x).view(B, T, self.heads, S).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.heads, S).transpose(1, 2)
        cos, sin = self.cos[:T], self.sin[:T]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(S))  # (B, H, T, T)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.o_proj(y)


class SwiGLU(nn.Module):
    """silu(gate) * up: its own module so that `layers.N.mlp.act` names the
    MLP's neurons, the inputs of down_proj."""

    def forward(self, gate, up):
        return F.silu(gate) * up


class MLP(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.gate_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.act = SwiGLU()
        self.down_proj = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x), self.up_proj(x)))


class Block(nn.Module):
    def __init__(self, d, heads, hidden, context):
        super().__init__()
        self.input_layernorm = RMSNorm(d)
        self.self_attn = Attention(d, heads, context)
        self.post_attention_layernorm = RMSNorm(d)
        self.mlp = MLP(d, hidden)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class TinyLlama(nn.Module):
    def __init__(self, vocab, context=64, d=96, layers=3, heads=4, hidden=256):
        super().__init__()
        self.context = context
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([Block(d, heads, hidden, context) for _ in range(layers)])
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.embed_tokens.weight  # tied
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx):
        x = self.embed_tokens(idx)  # (B, T, C)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm(x))  # (B, T, V)


def train_tokenizer(entries, vocab, threads=2):
    """A SentencePiece BPE model (serialized bytes) of the entries' lines,
    with Llama's settings: unk 0, <s> 1, </s> 2, byte fallback, no NFKC, no
    whitespace squeezing. Newlines never occur in a line, so a newline
    encodes by byte fallback, as in Llama."""
    import sentencepiece as spm
    lines = [ln for e in entries for ln in e.split("\n") if ln.strip()]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, model_type="bpe", vocab_size=vocab,
        byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, split_digits=True, allow_whitespace_only_pieces=True,
        character_coverage=0.9995, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=threads, minloglevel=2)
    return buf.getvalue()


def token_stream(sp, entries):
    ids = []
    for e in entries:
        ids.append(sp.bos_id())
        ids.extend(sp.encode(e))
        ids.append(sp.eos_id())
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


@torch.no_grad()
def greedy(model, sp, prompt, n, context):
    model.eval()
    ids = [sp.bos_id()] + sp.encode(prompt)
    for _ in range(n):
        nxt = int(model(torch.tensor([ids[-context:]]))[0, -1].argmax())
        if nxt == sp.eos_id():
            break
        ids.append(nxt)
    return sp.decode(ids[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="path of the .pt file to write")
    ap.add_argument("--data-dir", required=True,
                    help="where to write tiny-llama-tokenizer.json and tiny-llama-spm.model")
    ap.add_argument("--fortunes", default=fortunes.DEFAULT_DIR)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    # One thread: the model is small enough that a second one mostly waits,
    # and on a loaded machine OpenMP's waiting makes a step 20x slower.
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import sentencepiece as spm
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    train_entries, held_entries = fortunes.split(args.fortunes)
    model_bytes = train_tokenizer(train_entries, args.vocab, args.threads)
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(model_bytes)
    V = sp.GetPieceSize()
    train = torch.tensor(token_stream(sp, train_entries), dtype=torch.long)
    val = torch.tensor(token_stream(sp, held_entries), dtype=torch.long)
    print(f"tiny-llama: SentencePiece BPE vocabulary {V}; {train.numel()} training tokens, "
          f"{val.numel()} held out ({time.time() - t0:.0f} s)", flush=True)

    ctx = args.context
    model = TinyLlama(V, context=ctx)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}], lr=3e-3, betas=(0.9, 0.95))
    warm = min(50, args.steps // 5)

    def lr_at(step):
        if step < warm:
            return (step + 1) / warm
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, args.steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = torch.Generator().manual_seed(args.seed)
    for step in range(args.steps):
        model.train()
        starts = torch.randint(0, train.numel() - ctx - 1, (args.batch,), generator=gen).tolist()
        x = torch.stack([train[s:s + ctx] for s in starts])
        y = torch.stack([train[s + 1:s + ctx + 1] for s in starts])
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"tiny-llama: step {step}/{args.steps} loss {loss.item():.3f} "
                  f"({time.time() - t0:.0f} s)", flush=True)

    ce = evaluate(model, val[:64 * 400 + 1], ctx)
    counts = torch.bincount(train, minlength=V).double() + 1.0
    base = -(counts / counts.sum()).log()[val].mean().item()
    print(f"tiny-llama: validation cross-entropy {ce:.3f} nats/token, unigram baseline "
          f"{base:.3f}", flush=True)
    for prompt in ["The", "A computer", "Love is"]:
        print(f"tiny-llama: greedy: {greedy(model, sp, prompt, 20, ctx)!r}", flush=True)

    os.makedirs(args.data_dir, exist_ok=True)
    tok_path = os.path.join(args.data_dir, "tiny-llama-tokenizer.json")
    with open(tok_path, "w", encoding="utf-8") as f:
        f.write(spm_json.dumps(model_bytes))
    with open(os.path.join(args.data_dir, "tiny-llama-spm.model"), "wb") as f:
        f.write(model_bytes)
    tmp = args.out + ".tmp"
    export.export(model.eval(), tmp, kind="text", tokenizer=tok_path, context=ctx,
                  dataset="fortunes", eot=sp.eos_id(), bos=sp.bos_id(),
                  embedding="embed_tokens")
    os.replace(tmp, args.out)
    print(f"tiny-llama: trained in {time.time() - t0:.0f} s, wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
