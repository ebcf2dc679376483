"""Optimization runs: objectives, determinism, cancel, init, regularizers."""
import numpy as np
import pytest
import torch

import actmax
import actmax.raw as raw

E_ARG, E_OBJECTIVE, E_LAYER = -1, -6, -5


@pytest.fixture(scope="module")
def r18(resnet18_file):
    return actmax.load(str(resnet18_file[0]), device="cpu", input=(3, 64, 64))


def objective_error(model, text):
    # LayerError is an ObjectiveError.
    with pytest.raises(actmax.ObjectiveError) as e:
        raw.run(model, text, steps=1)
    return e.value.status, e.value.detail


@pytest.mark.parametrize("text,col,what", [
    ("layer2[3", 9, "expected ',' or ']'"),
    ("layer2[3] +", 12, "expected a layer name"),
    ("layer2[1] * layer3[2]", 11, "needs a number on one side"),
    ("layer2[]", 8, "an index inside the brackets"),
    ("(layer2[1]", 11, "')'"),
    ("layer2[1.5]", 9, "integer index"),
    ("layer2[3] layer3[1]", 11, "an operator"),
])
def test_syntax_errors_point_at_the_column(r18, text, col, what):
    st, msg = objective_error(r18, text)
    assert st == E_OBJECTIVE
    assert f"at column {col}" in msg and what in msg, msg
    lines = msg.splitlines()
    # The caret sits under the offending character.
    assert lines[-1].index("^") - 2 == col - 1 and lines[-2].strip() == text


def test_index_out_of_range_shows_the_shape(r18):
    st, msg = objective_error(r18, "layer2[128]")
    assert st == E_OBJECTIVE and "[128, 8, 8]" in msg and "size 128" in msg
    st, msg = objective_error(r18, "layer2[1, 2, 3, 4]")
    assert st == E_OBJECTIVE and "too many indices" in msg
    st, msg = objective_error(r18, "layer2[-129]")
    assert st == E_OBJECTIVE and "out of range" in msg


def test_unknown_layer_in_objective(r18):
    st, msg = objective_error(r18, "layer2[1] + layr3[4]")
    assert st == E_LAYER and "closest: layer3" in msg


def test_indexing_semantics_match_pytorch(r18, resnet18_file):
    """The final activation of an objective equals PyTorch indexing of the
    hooked layer on the result image (no transforms at evaluation)."""
    _, model = resnet18_file
    exprs = ["layer2[3]", "layer2[3, 2, 5]", "layer2[-1]", "layer2[2:6]", "layer2[:, 1:3, ::2]",
             "-layer2[7]", "2*layer2[1] - 0.5*(layer3[4] + 1)", "fc[10] / 4"]
    run = raw.run(r18, exprs, steps=2)
    x = torch.from_numpy(run.images)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    acts = {}
    hs = [dict(model.named_modules())[n].register_forward_hook(
        lambda mod, i, o, n=n: acts.__setitem__(n, o.clone())) for n in ("layer2", "layer3", "fc")]
    with torch.no_grad():
        model((x - mean) / std)
    for h in hs:
        h.remove()
    l2, l3, fc = acts["layer2"], acts["layer3"], acts["fc"]
    ref = [l2[0, 3].mean(), l2[1, 3, 2, 5], l2[2, -1].mean(), l2[3, 2:6].mean(), l2[4, :, 1:3, ::2].mean(),
           -l2[5, 7].mean(), 2 * l2[6, 1].mean() - 0.5 * (l3[6, 4].mean() + 1), fc[7, 10] / 4]
    ref = np.array([float(v) for v in ref])
    print("final activations", run.final, "reference", ref)
    assert np.allclose(run.final, ref, rtol=1e-4, atol=1e-5)


def test_optimization_raises_the_objective(r18):
    run = raw.run(r18, "layer3[5]", steps=40, thresholds=[10, 40])
    print("layer3[5] curve start/end", run.curve[:3], run.curve[-3:])
    assert run.steps == 40 and len(run.curve) == 40
    assert run.curve[-5:].mean() > run.curve[:5].mean() + 0.5
    assert [s for s, _ in run.snapshots] == [10, 40]
    assert np.array_equal(run.snapshots[1][1], run.images)
    assert run.images.min() >= 0 and run.images.max() <= 1


MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


def test_several_objectives_in_one_batch(r18):
    chans = [1, 2, 3, 4]
    run = raw.run(r18, [f"layer2[{c}]" for c in chans], steps=30)
    assert run.images.shape == (4, 3, 64, 64)
    assert list(run.terms) == [f"obj{i}: layer2[{c}]" for i, c in enumerate(chans)]
    acts = np.asarray(r18.activations((run.images - MEAN) / STD, "layer2"))
    table = acts[:, chans].mean(axis=(2, 3))  # (image, channel)
    print("channel means, image x channel\n", table)
    # Each image drives its own channel harder than the other images do.
    assert all(np.argmax(table[:, k]) == k for k in range(len(chans)))
    assert np.allclose(np.diag(table), run.final, rtol=1e-4, atol=1e-5)


def test_batch_follows_one_objective_and_diversity(r18):
    run = raw.run(r18, "layer2[3] + diversity(layer2)", batch=3, steps=5)
    assert run.images.shape[0] == 3
    assert np.isfinite(run.curve).all()
    # Diversity is a negative mean similarity: at most 0 for 3 images.
    act = np.asarray(r18.activations(np.zeros((3, 3, 64, 64), np.float32), "layer2"))
    f = torch.from_numpy(act).reshape(3, 128, -1)
    g = torch.bmm(f, f.transpose(1, 2)).reshape(3, -1)
    g = g / (g.norm(dim=1, keepdim=True) + 1e-10)
    s = g @ g.t()
    div = float(-(s.sum() - s.diagonal().sum()) / 3)
    assert div <= 0


def test_deterministic_for_a_seed(r18):
    a = raw.run(r18, "layer2[9]", steps=8, seed=7)
    b = raw.run(r18, "layer2[9]", steps=8, seed=7)
    c = raw.run(r18, "layer2[9]", steps=8, seed=8)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.curve, b.curve)
    assert not np.array_equal(a.images, c.images)


def test_cancel_returns_best_so_far(r18):
    seen = []

    def progress(p):
        seen.append((p.step, p.objective, len(p.terms)))
        return 1 if p.step == 6 else 0

    run = raw.run(r18, "layer2[2]", steps=50, progress=progress)
    assert run.cancelled == 1 and run.steps == 6 and len(seen) == 6
    assert seen[0][2] == 1
    assert run.images.shape == (1, 3, 64, 64) and np.isfinite(run.images).all()


def test_progress_sends_images(r18):
    shots = []

    def progress(p):
        if p.image is not None:
            shots.append(p.image.reshape(-1).copy())
        return 0

    raw.run(r18, "layer2[2]", steps=6, image_every=3, progress=progress)
    assert len(shots) == 2 and shots[0].size == 3 * 64 * 64


@pytest.mark.parametrize("param", [0, 1])
def test_init_from_image(r18, param):
    rng = np.random.default_rng(0)
    img = rng.uniform(0.1, 0.9, (1, 3, 64, 64)).astype(np.float32)
    run = raw.run(r18, "layer2[2]", steps=1, lr=1e-7, param=param, init_image=img)
    assert np.abs(run.images - img).max() < 2e-3


def test_regularizers_have_curves_and_effect(r18):
    base = raw.run(r18, "layer2[2]", steps=30, param=1, seed=1)
    reg = raw.run(r18, "layer2[2]", steps=30, param=1, seed=1, tv=50.0, l2=1.0, l1=1.0, blur=10.0)
    assert set(reg.terms) == {"obj0: layer2[2]", "l1", "l2", "tv", "blur"}

    def tv(x):
        return np.abs(np.diff(x, axis=2)).mean() + np.abs(np.diff(x, axis=3)).mean()

    print("total variation without/with regularizers", tv(base.images), tv(reg.images))
    assert tv(reg.images) < tv(base.images)


def test_sgd_and_pixel_options(r18):
    run = raw.run(r18, "layer2[2]", steps=10, optimizer=1, lr=0.5, momentum=0.9, param=1,
                  decorrelate=0, transforms=0)
    assert run.curve[-1] > run.curve[0]


@pytest.mark.parametrize("field,value,what", [
    ("steps", 0, "steps"), ("lr", -1.0, "lr"), ("batch", 0, "batch"), ("optimizer", 5, "optimizer"),
    ("param", 9, "param"), ("height", -3, "height"), ("scale_min", 0.0, "scale_min"), ("tv", -1.0, "regularizer"),
])
def test_bad_options(r18, field, value, what):
    with pytest.raises(ValueError) as e:
        raw.run(r18, "layer2[1]", **{field: value})
    assert e.value.status == E_ARG and what in e.value.detail


def test_batch_and_objective_count_must_agree(r18):
    with pytest.raises(ValueError) as e:
        raw.run(r18, ["layer2[1]", "layer2[2]"], batch=3)
    assert "must equal the number of objectives" in e.value.detail


def test_one_step_gradient_matches_pytorch(r18, resnet18_file):
    """One plain SGD step on pixels equals the PyTorch gradient step: checks
    the whole run path (folded batch norms, the stem's own input gradient)."""
    _, model = resnet18_file
    seed, lr = 5, 20.0
    run = raw.run(r18, "layer2[3]", steps=1, seed=seed, optimizer=1, lr=lr, param=1, decorrelate=0,
                  transforms=0)
    torch.manual_seed(seed)
    p = (torch.randn(1, 3, 64, 64) * 0.01).requires_grad_(True)
    feats = {}
    h = model.layer2.register_forward_hook(lambda m, i, o: feats.__setitem__("t", o))
    mean = torch.from_numpy(MEAN)
    std = torch.from_numpy(STD)
    model((torch.sigmoid(p) - mean) / std)
    h.remove()
    (g,) = torch.autograd.grad(feats["t"][:, 3].mean(), p)
    expect = torch.sigmoid(p.detach() + lr * g).numpy()
    moved = float(np.abs(expect - torch.sigmoid(p.detach()).numpy()).max())
    diff = float(np.abs(run.images - expect).max())
    print(f"one SGD step: image moved by up to {moved:.2e}, engine vs PyTorch max|diff| {diff:.2e}")
    assert moved > 1e-3 and diff <= 1e-5


def test_any_image_size(r18):
    run = raw.run(r18, "layer2[3]", steps=3, height=48, width=80, param=0)
    assert run.images.shape == (1, 3, 48, 80) and np.isfinite(run.final).all()
    run = raw.run(r18, "layer2[3]", steps=3, height=33, width=17, param=1)
    assert run.images.shape == (1, 3, 33, 17)
