"""Text models: tokens, encode/decode, objectives on token ids, corpus examples,
each checked against another route through the engine or PyTorch."""
import numpy as np
import pytest
import torch

import actmax


def test_encode_decode_roundtrip(tiny_lm):
    ids = tiny_lm.encode("The quick brown fox.")
    assert ids.dtype == torch.int64 and ids.ndim == 1
    assert tiny_lm.decode(ids) == "The quick brown fox."
    assert tiny_lm.decode(ids.numpy()) == "The quick brown fox."


def test_tokens_result(tiny_lm):
    obj = "blocks.1.mlp.act[-1, 7]"
    t = tiny_lm.tokens(obj, method="gcg", len=5, steps=8, seed=1, progress=False)
    assert t.ids.shape == (5,) and isinstance(t.text, str)
    assert t.curve.shape == (t.steps,)
    # The prompt's activation is the objective on its ids.
    got = tiny_lm.objective(t.ids[None], obj)
    assert abs(float(got[0]) - t.activation) <= 1e-4 * max(1.0, abs(t.activation))
    assert len(t.table) == 5 and t.table[0]["token"] == tiny_lm.token_text(int(t.ids[0]))
    assert "<table" in t._repr_html_()


def test_soft_tokens_have_nearest(tiny_lm):
    t = tiny_lm.tokens("blocks.1.mlp.act[:, 7]", method="soft", len=3, steps=6, nearest=4, progress=False)
    ids, sims = t.nearest
    assert ids.shape == (3, 4) and sims.shape == (3, 4)
    assert t.embeds.shape[0] == 3


def test_same_seed_same_prompt(tiny_lm):
    a = tiny_lm.tokens("blocks.2.mlp.act[-1, 11]", method="gcg", len=4, steps=6, seed=3, progress=False)
    b = tiny_lm.tokens("blocks.2.mlp.act[-1, 11]", method="gcg", len=4, steps=6, seed=3, progress=False)
    assert a.ids.tolist() == b.ids.tolist() and a.curve.numpy().tobytes() == b.curve.numpy().tobytes()


def test_activations_on_ids_and_embeddings(tiny_lm):
    ids = tiny_lm.encode("hello world, again")[None]
    a = tiny_lm.activations(ids, "blocks.0.mlp.act")
    E = tiny_lm.embeddings()
    b = tiny_lm.activations(E[ids[0]][None], "blocks.0.mlp.act")
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    pos = tiny_lm.objective(ids, "blocks.0.mlp.act[:, 5]", positions=True)
    torch.testing.assert_close(pos[0], a[0, :, 5], rtol=1e-4, atol=1e-5)


def test_examples_scores_are_the_objective(tiny_lm, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. " * 40 + "a dog ran in the park! " * 40)
    obj = "blocks.1.mlp.act[-1, 4]"
    ex = tiny_lm.examples(obj, path=str(corpus), window=8, k=5, progress=False)
    assert len(ex) == 5 and ex.scanned > 5 and ex.kind == "text"
    assert ex.values.tolist() == sorted(ex.values.tolist(), reverse=True)
    assert ex.window == 8 and ex.context == 4
    for ids, value, peak in zip(ex.ids, ex.values, ex.peaks):
        # The value is the objective at the window's peak token: the model is
        # causal, so that is the last position of the window cut after it.
        got = float(tiny_lm.objective(ids[None, :int(peak) + 1], obj)[0])
        assert abs(got - float(value)) <= 1e-4 * max(1.0, abs(float(value)))
    assert "<table" in ex._repr_html_()


def test_tokens_best_projection(tiny_lm):
    obj = "blocks.1.mlp.act[-1, 7]"
    t = tiny_lm.tokens(obj, method="soft", len=4, steps=12, seed=2, progress=False)
    assert t.projected_curve.shape == (t.steps,)
    assert 1 <= t.best_step <= t.steps
    assert abs(t.best_activation - float(t.projected_curve.max())) <= 1e-5 * max(1.0, abs(t.best_activation))
    got = float(tiny_lm.objective(t.best_ids[None], obj)[0])
    assert abs(got - t.best_activation) <= 1e-4 * max(1.0, abs(got))
