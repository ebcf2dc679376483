"""tiny-llama: a Llama-architecture module (RMSNorm, rotary positions,
SwiGLU, tied embedding and output, no biases) that loads with its metadata
and its Llama-layout tokenizer.json, whose forward matches a reference Llama
computed here from its weights, and which predicts held-out fortunes better
than a unigram model."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

import fortunes
from conftest import build_file, load_model, metadata

spm = pytest.importorskip("sentencepiece", reason="python3-sentencepiece is not installed "
                          "(scripts/install-deps.sh installs it)")


def load():
    m, files = load_model("tiny-llama", ("actmax.json", "tokenizer.json"))
    sp = spm.SentencePieceProcessor()
    sp.Load(build_file("data", "tiny-llama-spm.model"))
    return m.eval(), metadata(files), json.loads(files["tokenizer.json"]), sp


def test_metadata_and_tokenizer():
    m, meta, tok, sp = load()
    assert meta["kind"] == "text" and meta["tokenizer"] == "tokenizer.json"
    assert meta["dataset"] == "fortunes"
    assert meta["vocab_size"] == sp.GetPieceSize() == len(tok["model"]["vocab"])
    assert (meta["bos"], meta["eot"]) == (sp.bos_id(), sp.eos_id())
    # Hugging Face's Llama layout, the same file as the one in share/.
    assert tok["model"]["byte_fallback"] is True and tok["pre_tokenizer"] is None
    assert [n["type"] for n in tok["normalizer"]["normalizers"]] == ["Prepend", "Replace"]
    with open(build_file("data", "tiny-llama-tokenizer.json"), encoding="utf-8") as f:
        assert json.load(f) == tok
    for t in (1, meta["context"]):
        with torch.no_grad():
            assert m(torch.zeros(1, t, dtype=torch.long)).shape == (1, t, meta["vocab_size"])


def test_llama_architecture():
    m, _, _, _ = load()
    names = {n for n, _ in m.named_modules()}
    for want in ["embed_tokens", "layers.0.input_layernorm", "layers.0.self_attn.q_proj",
                 "layers.0.self_attn.o_proj", "layers.0.post_attention_layernorm",
                 "layers.0.mlp.gate_proj", "layers.0.mlp.up_proj", "layers.0.mlp.act",
                 "layers.0.mlp.down_proj", "norm", "lm_head"]:
        assert want in names, f"{want} missing from {sorted(names)}"
    sd = m.state_dict()
    assert not any(k.endswith(".bias") for k in sd)
    # Tied: one tensor, not two equal ones.
    assert m.lm_head.weight.data_ptr() == m.embed_tokens.weight.data_ptr()
    assert "layers.0.input_layernorm.weight" in sd  # RMSNorm: a scale, no shift


def reference_forward(m, ids):
    """Llama's forward written out from the weights (HF's LlamaModel, rotate_half RoPE)."""
    sd = {k: v for k, v in m.state_dict().items()}
    n_layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("layers."))
    heads = 4
    x = F.embedding(ids, sd["embed_tokens.weight"])
    B, T, C = x.shape
    S = C // heads
    inv = 1.0 / (10000.0 ** (torch.arange(0, S, 2).float() / S))
    ang = torch.outer(torch.arange(T).float(), inv)
    cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()

    def rms(v, w):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def rot(v):
        a, b = v[..., :S // 2], v[..., S // 2:]
        return torch.cat((-b, a), -1)

    for i in range(n_layers):
        p = f"layers.{i}."
        h = rms(x, sd[p + "input_layernorm.weight"])
        q, k, v = (F.linear(h, sd[p + f"self_attn.{n}_proj.weight"]).view(B, T, heads, S)
                   .transpose(1, 2) for n in "qkv")
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        att = (q @ k.transpose(-2, -1)) / math.sqrt(S)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        y = att.softmax(-1) @ v
        x = x + F.linear(y.transpose(1, 2).reshape(B, T, C), sd[p + "self_attn.o_proj.weight"])
        h = rms(x, sd[p + "post_attention_layernorm.weight"])
        g = F.silu(F.linear(h, sd[p + "mlp.gate_proj.weight"])) * F.linear(h, sd[p + "mlp.up_proj.weight"])
        x = x + F.linear(g, sd[p + "mlp.down_proj.weight"])
    return F.linear(rms(x, sd["norm.weight"]), sd["embed_tokens.weight"])


def test_forward_is_llama():
    m, meta, _, sp = load()
    ids = torch.tensor([[sp.bos_id()] + sp.encode("You will meet a tall dark stranger.")])
    with torch.no_grad():
        torch.testing.assert_close(m(ids), reference_forward(m, ids), rtol=1e-4, atol=1e-4)


def test_validation_loss_beats_unigram():
    m, meta, _, sp = load()
    train, held = fortunes.split()
    stream = []
    for e in held:
        stream += [sp.bos_id()] + sp.encode(e) + [sp.eos_id()]
    counts = torch.zeros(meta["vocab_size"], dtype=torch.float64) + 1.0
    for e in train:
        counts += torch.bincount(torch.tensor(sp.encode(e) or [0]), minlength=meta["vocab_size"])
    ctx = meta["context"]
    data = torch.tensor(stream)
    n = min(200, (data.numel() - 1) // ctx)
    x, y = data[:n * ctx].view(n, ctx), data[1:n * ctx + 1].view(n, ctx)
    with torch.no_grad():
        ce = F.cross_entropy(m(x).reshape(-1, meta["vocab_size"]), y.reshape(-1)).item()
    uni = -(counts / counts.sum()).log()[y.reshape(-1)].mean().item()
    print(f"\ntiny-llama: held-out cross-entropy {ce:.3f} nats/token "
          f"(perplexity {math.exp(ce):.0f}), unigram {uni:.3f}")
    assert ce < uni - 0.2
