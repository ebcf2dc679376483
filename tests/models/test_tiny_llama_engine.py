"""tiny-llama through the engine (the Python module actmax, as users call
it): it loads with its SentencePiece-layout tokenizer, and a short GCG and a
short soft-prompt search on an MLP neuron report activations that PyTorch
recomputes on the same ids."""
import numpy as np
import pytest
import torch

from conftest import build_file

import actmax  # the build's python/ folder, on PYTHONPATH from CTest
import actmax.raw as raw

NEURON = "layers.1.mlp.act"
UNIT = 17


@pytest.fixture(scope="module")
def llama():
    path = build_file("models", "tiny-llama.pt")
    return actmax.load(path, device="cpu"), torch.jit.load(path).eval()


def torch_act(module, ids):
    """layers.1.mlp.act's output (T, hidden) on ids, from the scripted
    module's parts (a scripted module takes no forward hooks)."""
    x = module.embed_tokens(torch.as_tensor(np.asarray(ids, dtype=np.int64))[None])
    x = getattr(module.layers, "0")(x)  # a loaded ModuleList has no [i]
    layer = getattr(module.layers, "1")
    x = x + layer.self_attn(layer.input_layernorm(x))
    h = layer.post_attention_layernorm(x)
    return layer.mlp.act(layer.mlp.gate_proj(h), layer.mlp.up_proj(h))[0]


def test_tokenizer_is_read(llama):
    m, _ = llama
    tok = m.tokenizer_json()
    assert tok is not None and b"\"byte_fallback\": true" in tok
    ids = raw.tokenize(tok, "Hello world")
    assert len(ids) >= 2


@pytest.mark.parametrize("method", ["gcg", "soft"])
def test_search_activation_matches_torch(llama, method):
    m, module = llama
    obj = f"{NEURON}[-1, {UNIT}]"
    kw = dict(method=raw.GCG, len=6, steps=8) if method == "gcg" else \
        dict(method=raw.SOFT, len=6, steps=30, lr=0.1)
    r = raw.text_run(m, obj, seed=3, **kw)
    assert len(r.tokens) == 6
    with torch.no_grad():
        ref = float(torch_act(module, r.tokens)[-1, UNIT])
    # The engine's own token-id tap agrees too.
    acts = np.asarray(m.activations(r.tokens[None], NEURON))
    print(f"\ntiny-llama {method}: activation {r.activation:.4f}, torch {ref:.4f}, "
          f"text {r.text!r}")
    assert abs(r.activation - ref) <= 1e-4 * max(1.0, abs(ref))
    assert abs(float(acts[0, -1, UNIT]) - ref) <= 1e-4 * max(1.0, abs(ref))
    if method == "gcg":
        assert r.roundtrip == 1  # the prompt's text re-encodes to the same ids
