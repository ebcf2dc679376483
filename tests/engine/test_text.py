"""Text models: the token-embedding lookup is replaced by an embeddings input.

A small GPT-style model with random weights (tests/engine/tinygpt.py).
Running the edited graph on rows of the embedding matrix must equal the original model on the
token ids, and gradients with respect to the embeddings must exist.
"""
import json

import numpy as np
import pytest
import torch

import actmax
import actmax.raw as raw
from tinygpt import TinyGPT, save_scripted


@pytest.fixture(scope="module")
def gpt(model_dir):
    torch.manual_seed(3)
    model = TinyGPT().eval()
    meta = {"kind": "text", "vocab_size": 50, "context": 8, "tokenizer": "tokenizer.json"}
    tok = json.dumps({"type": "bpe", "merges": [["a", "b"]]})
    path = model_dir / "gpt.pt"
    save_scripted(model, path, meta, tok)
    return path, model, tok


def test_metadata_and_tokenizer(gpt):
    path, _, tok = gpt
    m = raw.load(path)
    assert m.kind == "text"
    data = m.tokenizer_json()
    assert data is not None and data.decode() == tok


def test_embeddings_replace_token_lookup(gpt):
    path, model, _ = gpt
    m = raw.load(path)
    W = np.asarray(m.embeddings())
    assert np.array_equal(W, model.wte.weight.detach().numpy())
    ids = np.array([[1, 7, 3, 3, 42, 0, 9, 11], [5, 5, 5, 2, 1, 0, 49, 8]], dtype=np.int64)
    ref = model(torch.from_numpy(ids)).detach().numpy()
    by_ids = np.asarray(m.activations(ids, "output"))
    assert np.abs(by_ids - ref).max() <= 1e-5
    emb = W[ids]
    # Float input to a text model is embeddings (am_input kind AM_INPUT_EMBEDS).
    (by_emb, ), grad = m.activations(emb, ["output"], grad=True)
    by_emb, grad = np.asarray(by_emb), np.asarray(grad)
    print("edited graph vs original max|diff|", float(np.abs(by_emb - ref).max()))
    assert np.abs(by_emb - ref).max() <= 1e-5
    # Reference gradient: the same network fed embeddings directly.
    e = torch.from_numpy(emb).requires_grad_(True)
    out = model.from_embeds(e)
    (gref,) = torch.autograd.grad(out.sum(), e)
    assert grad.shape == emb.shape
    assert np.abs(grad).max() > 0
    assert np.abs(grad - gref.numpy()).max() <= 1e-4 * max(1.0, float(gref.abs().max()))
    # Inner layers can be tapped on embeddings too.
    b0 = np.asarray(m.activations(emb, "blocks.0.mlp"))
    assert b0.shape == (2, 8, 32)


def test_image_model_has_no_embedding(resnet18_file):
    path, _ = resnet18_file
    m = actmax.load(str(path), device="cpu", input=(3, 64, 64))
    with pytest.raises(actmax.UnsupportedError) as e:
        m.embeddings()
    assert e.value.status == -7 and "embedding" in e.value.detail
