"""Text prompts (am_text_run_*); corpus examples are test_examples.py's.

A small GPT with random weights and a real byte-level BPE tokenizer
(tests/engine/tinygpt.py) is scripted here; every figure the engine reports
is recomputed in PyTorch.
The built-in tiny-lm gets one short end-to-end check.
"""
import os

import numpy as np
import pytest
import torch

import actmax
import actmax.raw as raw
from tinygpt import save_scripted, saved_gpt

VOCAB_BYTES = 256
CTX = 8
NEURON = "blocks.1.mlp.1"  # the GELU of the second block


@pytest.fixture(scope="module")
def gpt(model_dir):
    path = model_dir / "gpt_prompts.pt"
    model, tok, vocab, eot = saved_gpt(path, CTX)
    notok = model_dir / "gpt_notok.pt"
    save_scripted(model, notok, {"kind": "text", "context": CTX})
    return dict(path=path, model=model, tok=tok.encode(), vocab=vocab, eot=eot, notok=notok)


def neuron_acts(model, ids=None, embeds=None):
    """Output of blocks.1.mlp.1 (B, T, 4D) through a forward hook."""
    got = {}
    h = model.blocks[1].mlp[1].register_forward_hook(lambda mod, i, o: got.setdefault("a", o.detach()))
    with torch.no_grad():
        if embeds is not None:
            model.from_embeds(torch.as_tensor(embeds))
        else:
            model(torch.as_tensor(np.array(np.atleast_2d(ids))))
    h.remove()
    return got["a"].numpy()


def xent(model, ids):
    with torch.no_grad():
        logits = model(torch.as_tensor(ids)[None])[0]
    lp = torch.log_softmax(logits[:-1], 1)
    return float(-lp[torch.arange(len(ids) - 1), torch.as_tensor(ids[1:])].mean())


@pytest.fixture(scope="module")
def lm(gpt):
    return actmax.load(str(gpt["path"]), device="cpu")


@pytest.mark.parametrize("distance", [raw.DIST_COSINE, raw.DIST_L2])
def test_soft_projection(gpt, lm, distance):
    obj = f"{NEURON}[-1, 7]"
    r = raw.text_run(lm, obj, method=raw.SOFT, len=5, steps=40, lr=0.1, distance=distance, nearest=4, seed=1)
    W = gpt["model"].wte.weight.detach().numpy()
    e = r.embeds
    assert e.shape == (5, W.shape[1])
    # Nearest tokens against numpy.
    if distance == raw.DIST_COSINE:
        sim = (e / np.linalg.norm(e, axis=1, keepdims=True)) @ (W / np.linalg.norm(W, axis=1, keepdims=True)).T
        ref_ids = np.argsort(-sim, axis=1)[:, :4]
        ref_vals = np.take_along_axis(sim, ref_ids, 1)
    else:
        dist = np.linalg.norm(e[:, None, :] - W[None, :, :], axis=2)
        ref_ids = np.argsort(dist, axis=1)[:, :4]
        ref_vals = np.take_along_axis(dist, ref_ids, 1)
    ids, vals = r.nearest
    assert np.array_equal(ids, ref_ids)
    assert np.allclose(vals, ref_vals, atol=1e-4)
    assert np.array_equal(r.tokens, ref_ids[:, 0])
    # The projected prompt re-run gives the reported activation, and the
    # continuous embeddings the soft one.
    proj = neuron_acts(gpt["model"], ids=r.tokens)[0, -1, 7]
    soft = neuron_acts(gpt["model"], embeds=e[None])[0, -1, 7]
    print(f"soft {r.soft_activation:.4f} projected {r.activation:.4f} retention {r.retention:.3f}")
    assert abs(r.activation - proj) <= 1e-4 * max(1, abs(proj))
    assert abs(r.soft_activation - soft) <= 1e-4 * max(1, abs(soft))
    assert abs(r.retention - r.activation / r.soft_activation) <= 1e-5 * max(1, abs(r.retention))
    assert r.curve.shape == (40,) and r.xent_curve.shape == (40,)
    assert abs(r.xent - xent(gpt["model"], r.tokens)) <= 1e-4
    # Optimizing raised the continuous activation above where it started.
    assert r.curve[-1] > r.curve[0]


def test_projected_curve_and_best_projection(gpt, lm):
    """Soft: the objective of each step's nearest-token projection (the
    tokens progress reports), and the best of them, against PyTorch on the
    ids; the last projection (the result) may be worse than the best."""
    steps, T, n = 60, 5, 7
    reported = []
    r = raw.text_run(lm, f"{NEURON}[-1, {n}]", method=raw.SOFT, len=T, steps=steps, lr=0.1, seed=4,
                     progress=lambda p: reported.append(list(p.tokens)))
    ids = np.array(reported, np.int64)  # (S, T)
    assert r.projected_curve.shape == (steps,) and ids.shape == (steps, T)
    ref = neuron_acts(gpt["model"], ids=ids)[:, -1, n]
    print(f"projected curve {r.projected_curve[:4]} ... max {ref.max():.4f} at step {ref.argmax() + 1}, "
          f"last {ref[-1]:.4f}, result {r.activation:.4f}")
    assert np.allclose(r.projected_curve, ref, atol=1e-4)
    best_ids, best_act, best_step = r.best
    # The step where the curve peaks (PyTorch's batched values of one prompt
    # differ in the last bits, so the peak is compared by value) and the
    # first step of that run of equal prompts.
    assert ref[best_step - 1] >= ref.max() - 1e-4
    assert best_step == int(np.argmax(r.projected_curve)) + 1
    assert np.array_equal(best_ids, ids[best_step - 1])
    assert best_step == 1 or not np.array_equal(ids[best_step - 2], best_ids)
    assert abs(best_act - ref.max()) <= 1e-4 * max(1, abs(ref.max()))
    assert best_act >= r.projected_curve[-1] - 1e-6
    # GCG's steps are prompts already: its projected curve is its curve.
    g = raw.text_run(lm, f"{NEURON}[-1, {n}]", method=raw.GCG, len=T, steps=10, topk=16, batch=32, seed=2)
    assert np.array_equal(g.projected_curve, g.curve)
    assert abs(g.best[1] - g.curve.max()) <= 1e-6 and g.best[2] == int(np.argmax(g.curve)) + 1
    # A sweep: one value, the result.
    s = raw.text_run(lm, f"{NEURON}[-1, {n}]", method=raw.SWEEP, len=1)
    assert np.array_equal(s.best[0], s.tokens) and s.best[2] == 1


def test_gcg_monotone_and_recomputed(gpt, lm):
    seen = []
    r = raw.text_run(lm, f"{NEURON}[-1, 3]", method=raw.GCG, len=6, steps=25, topk=16, batch=32, seed=2,
                     progress=lambda p: seen.append(p.activation))
    assert len(seen) == 25 and r.steps == 25
    assert all(b >= a for a, b in zip(seen, seen[1:])), seen
    assert np.allclose(r.curve, seen)
    ref = neuron_acts(gpt["model"], ids=r.tokens)[0, -1, 3]
    print(f"gcg activation {r.activation:.4f} (start {seen[0]:.4f}) torch {ref:.4f}")
    assert abs(r.activation - ref) <= 1e-4 * max(1, abs(ref))
    assert abs(r.curve[-1] - r.activation) <= 1e-4 * max(1, abs(ref))
    # Retokenization: the text encodes back to the very same ids.
    assert r.roundtrip == 1
    assert np.array_equal(raw.tokenize(gpt["tok"], r.text), r.tokens)
    assert gpt["eot"] not in r.tokens
    # Attribution: swapping each token for the reported alternative costs the reported drop.
    drop, alt = r.attribution
    for t in range(6):
        s = r.tokens.copy()
        s[t] = alt[t]
        assert alt[t] != r.tokens[t]
        a = neuron_acts(gpt["model"], ids=s)[0, -1, 3]
        assert abs((r.activation - a) - drop[t]) <= 1e-4 * max(1, abs(a))


def test_gcg_cancel_keeps_best(lm):
    r = raw.text_run(lm, f"{NEURON}[-1, 3]", method=raw.GCG, len=4, steps=50, batch=16, seed=2,
                     progress=lambda p: p.step >= 3)
    assert r.cancelled == 1 and r.steps == 3 and len(r.tokens) == 4


def test_sweep_len1_is_brute_force(gpt, lm):
    r = raw.text_run(lm, f"{NEURON}[-1, 11]", method=raw.SWEEP, len=1)
    ref = neuron_acts(gpt["model"], ids=np.arange(gpt["vocab"])[:, None])[:, 0, 11]
    assert r.sweep.shape == (gpt["vocab"],) and r.sweep_position == 0
    assert np.abs(r.sweep - ref).max() <= 1e-4
    assert r.tokens[0] == int(np.argmax(ref))
    assert abs(r.activation - ref.max()) <= 1e-4


def test_sweep_middle_position(gpt, lm):
    start = np.array([40, 41, 42, 43], dtype=np.int64)
    r = raw.text_run(lm, f"{NEURON}[:, 2]", method=raw.SWEEP, len=4, position=1, init_tokens=start)
    rows = np.repeat(start[None], gpt["vocab"], 0)
    rows[:, 1] = np.arange(gpt["vocab"])
    ref = neuron_acts(gpt["model"], ids=rows)[:, :, 2].mean(1)
    assert np.abs(r.sweep - ref).max() <= 1e-4
    assert np.array_equal(r.tokens[[0, 2, 3]], start[[0, 2, 3]])


def test_fluency_lowers_cross_entropy(gpt, lm):
    kw = dict(method=raw.GCG, len=6, steps=30, topk=32, batch=48, seed=4)
    plain = raw.text_run(lm, f"{NEURON}[-1, 5]", fluency=0.0, **kw)
    fluent = raw.text_run(lm, f"{NEURON}[-1, 5]", fluency=20.0, **kw)
    print(f"xent without fluency {plain.xent:.3f}, with {fluent.xent:.3f}; "
          f"activation {plain.activation:.3f} vs {fluent.activation:.3f}")
    assert fluent.xent < plain.xent
    assert abs(fluent.xent - xent(gpt["model"], fluent.tokens)) <= 1e-4
    assert fluent.xent_curve.shape == (30,)


def test_pez_and_restarts(gpt, lm):
    one = raw.text_run(lm, f"{NEURON}[-1, 9]", method=raw.PEZ, len=4, steps=15, seed=0)
    many = raw.text_run(lm, f"{NEURON}[-1, 9]", method=raw.PEZ, len=4, steps=15, seed=0, restarts=3)
    assert many.activation >= one.activation - 1e-6
    ref = neuron_acts(gpt["model"], ids=many.tokens)[0, -1, 9]
    assert abs(many.activation - ref) <= 1e-4 * max(1, abs(ref))
    assert many.curve[-1] >= many.curve[0]


# The class the module raises for each status (am_status_class).
ERROR_CLASS = {-1: ValueError, -5: actmax.LayerError, -6: actmax.ObjectiveError, -7: actmax.UnsupportedError}


def expect_error(status, fragment, fn):
    with pytest.raises(ERROR_CLASS[status]) as e:
        fn()
    print(e.value)
    assert e.value.status == status and fragment in e.value.detail


def test_bad_input(gpt, lm, resnet18_file):
    obj = f"{NEURON}[-1, 3]"
    expect_error(-1, "len must be 1..8", lambda: raw.text_run(lm, obj, len=0))
    expect_error(-1, "len must be 1..8", lambda: raw.text_run(lm, obj, len=9))
    expect_error(-6, "position", lambda: raw.text_run(lm, f"{NEURON}[5, 3]", len=4, steps=1))
    expect_error(-6, "out of range for dimension 1 (size 128)",
                 lambda: raw.text_run(lm, f"{NEURON}[-1, 999]", len=4, steps=1))
    expect_error(-6, "^", lambda: raw.text_run(lm, f"{NEURON}[-1, 3", len=4, steps=1))
    expect_error(-5, "unknown layer", lambda: raw.text_run(lm, "blocks.7.mlp[-1, 3]", len=4, steps=1))
    expect_error(-1, "method", lambda: raw.text_run(lm, obj, method=9))
    expect_error(-1, "outside the prompt", lambda: raw.text_run(lm, obj, method=raw.SWEEP, len=3, position=3))
    expect_error(-1, "objective", lambda: raw.text_run(lm, None))
    img = actmax.load(str(resnet18_file[0]), device="cpu", input=(3, 64, 64))
    expect_error(-7, "text model", lambda: raw.text_run(img, "layer1[0]", len=4))
    expect_error(-7, "text model", lambda: raw.examples(img, "layer1[0]", dataset="text", path="/dev/null"))
    expect_error(-7, "image model", lambda: raw.run(lm, obj, steps=1))
    notok = actmax.load(str(gpt["notok"]), device="cpu")
    expect_error(-7, "tokenizer", lambda: raw.text_run(notok, obj, len=4, steps=1))
    expect_error(-1, "window must be 1..8",
                 lambda: raw.examples(lm, obj, dataset="text", path="/dev/null", window=9))


def _tiny_lm():
    lib_path = os.environ.get("ACTMAX_LIB", "")
    share = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(lib_path))), "share", "actmax")
    return os.path.join(share, "models", "tiny-lm.pt")


@pytest.mark.skipif(not os.path.exists(_tiny_lm()), reason="tiny-lm.pt is built only with ACTMAX_MODELS=ON")
def test_tiny_lm_end_to_end():
    path = _tiny_lm()
    m = actmax.load(path, device="cpu")
    r = raw.text_run(m, "blocks.2.mlp.act[-1, 123]", method=raw.GCG, len=8, steps=20, attribution=0)
    # The token-id graph (not the embeddings one the search ran on).
    acts = np.asarray(m.activations(r.tokens[None], "blocks.2.mlp.act"))
    ref = float(acts[0, -1, 123])
    print(f"tiny-lm gcg 20 steps: {r.activation:.4f} (torch {ref:.4f}) {r.text!r}")
    assert abs(r.activation - ref) <= 1e-4 * max(1, abs(ref))
    assert r.roundtrip == 1 and r.attribution is None


def test_attribution_budget_bounds_tokens_at_long_prompts(model_dir):
    """At len=160 every swap (160 x vocabulary) is over both bounds: the
    attribution samples each position's top tokens, as many as 16384 prompts
    of at most 1048576 tokens in all allow (1048576 / 160^2 = 40 per position,
    where the prompt bound alone would allow 102), and says so."""
    path = model_dir / "gpt_long.pt"
    _, _, vocab, _ = saved_gpt(path, 160)
    m = actmax.load(str(path), device="cpu")
    r = raw.text_run(m, f"{NEURON}[-1, 3]", method=raw.SOFT, len=160, steps=1)
    per = min(256, 16384 // 160, 1048576 // 160 ** 2)
    print(f"\nlen=160, vocabulary {vocab}: {r.note}")
    assert per == 40 and f"each position's {per} most promising tokens" in r.note, r.note
    assert "1048576 tokens" in r.note
    assert len(r.attribution[0]) == 160
    res = m.tokens(f"{NEURON}[-1, 3]", method="soft", len=160, steps=1, progress=False)
    assert res.note == r.note and "over the budget of 16384 prompts or 1048576 tokens" in res._repr_html_()


def test_attribution_skipped_past_the_token_budget(model_dir):
    """Past 1024 tokens even one swap per position is over the token budget:
    the run keeps its prompt, has no attribution, and says why."""
    path = model_dir / "gpt_longer.pt"
    saved_gpt(path, 1040)
    m = actmax.load(str(path), device="cpu")
    r = raw.text_run(m, f"{NEURON}[-1, 3]", method=raw.SOFT, len=1040, steps=1)
    print(f"\nlen=1040: {r.note}")
    assert r.attribution is None and len(r.tokens) == 1040
    assert r.note.startswith("attribution skipped: one swap at each of the 1040 positions is 1081600 tokens"), r.note
