"""tiny-lm: loads, carries metadata and tokenizer, has GPT-2 layer names and
an aten::embedding fed by the token ids, and predicts held-out fortunes
clearly better than a unigram model; all recomputed here from the saved file."""
import math

import torch
import torch.nn.functional as F

import bpe
import fortunes
from conftest import build_file, load_model, metadata


def load():
    m, files = load_model("tiny-lm", ("actmax.json", "tokenizer.json"))
    meta = metadata(files)
    tok = bpe.Tokenizer.from_json(files["tokenizer.json"])
    return m.eval(), meta, tok


def test_metadata_and_tokenizer():
    m, meta, tok = load()
    assert meta["kind"] == "text"
    assert meta["tokenizer"] == "tokenizer.json"
    assert meta["dataset"] == "fortunes"
    assert 2000 <= meta["vocab_size"] <= 4096
    assert meta["vocab_size"] == tok.vocab_size
    assert meta["eot"] == tok.eot
    ctx = meta["context"]
    for t in (1, ctx):
        with torch.no_grad():
            out = m(torch.zeros(1, t, dtype=torch.long))
        assert out.shape == (1, t, meta["vocab_size"])


def test_layer_names():
    m, _, _ = load()
    names = {n for n, _ in m.named_modules()}
    for want in ["wte", "wpe", "blocks.0.ln1", "blocks.0.attn", "blocks.0.ln2", "blocks.0.mlp",
                 "blocks.2.mlp.fc", "blocks.2.mlp.act", "blocks.2.mlp.proj", "ln_f", "head"]:
        assert want in names, f"{want} missing from {sorted(names)}"


def test_embedding_fed_by_input_ids():
    m, _, _ = load()
    g = m.inlined_graph
    ids = list(g.inputs())[1]  # inputs: self, idx
    emb = [n for n in g.nodes() if n.kind() == "aten::embedding"]
    fed = [n for n in emb if list(n.inputs())[1] is ids]
    assert len(fed) == 1, f"{len(emb)} aten::embedding nodes, {len(fed)} fed by the ids"


def test_heldout_file_is_the_split():
    with open(build_file("data", "fortunes-heldout.txt"), "rb") as f:
        written = f.read()
    _, held = fortunes.split()
    assert written == fortunes.format_entries(held).encode("utf-8", "surrogateescape")


def test_validation_loss_beats_unigram():
    m, meta, tok = load()
    train, held = fortunes.split()
    stream = lambda es: [i for e in es for i in tok.encode(e) + [tok.eot]]  # noqa: E731
    tr = torch.tensor(stream(train))
    va = torch.tensor(stream(held))
    # Unigram baseline: add-one-smoothed token frequencies of the training text.
    counts = torch.bincount(tr, minlength=tok.vocab_size).double() + 1
    unigram = -(counts / counts.sum()).log()[va].mean().item()
    ctx = meta["context"]
    n = (va.numel() - 1) // ctx
    x = va[:n * ctx].view(n, ctx)
    y = va[1:n * ctx + 1].view(n, ctx)
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, 64):
            logits = m(x[i:i + 64])
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                     y[i:i + 64].reshape(-1), reduction="sum").item()
    ce = total / (n * ctx)
    print(f"tiny-lm validation cross-entropy {ce:.3f} nats/token (perplexity "
          f"{math.exp(ce):.1f}) vs unigram {unigram:.3f} ({math.exp(unigram):.1f}) "
          f"on {n * ctx} held-out tokens")
    assert n * ctx > 50000
    assert ce < unigram - 1.0
