"""Phase-only (MACO) optimization, NAdam, feature accentuation, the
transparency map and the honest per-image figures of image runs.

Exact references where one exists (the image from its phase, with a 1/f or
a dataset magnitude; NAdam against torch.optim.NAdam on the same gradients;
the accentuation penalty; the unit's activation without the diversity term),
behaviour checks elsewhere (the crops shrink, the run raises the objective).
"""
import gzip
import json
import os

import numpy as np
import pytest
import torch

import actmax
import actmax.raw as raw

DATA = "/usr/share/datasets/fashion-mnist"
SIZE = 28


class Small(torch.nn.Module):
    """(N, 1, 28, 28) -> (N, 10): conv1 (N, 8, 14, 14), conv2 (N, 16, 7, 7), fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
        self.conv2 = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
        self.flatten = torch.nn.Flatten()
        self.fc = torch.nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(self.flatten(self.conv2(self.conv1(x))))


def save(model, path, meta):
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, SIZE, SIZE)), str(path),
                   _extra_files={"actmax.json": json.dumps(meta)})


META = {"kind": "image", "input": [1, SIZE, SIZE], "mean": [0.5], "std": [0.25], "range": [0, 1]}


@pytest.fixture(scope="module")
def small(model_dir):
    torch.manual_seed(4)
    m = Small().eval()
    path = model_dir / "small-maco.pt"
    save(m, path, META)
    return raw.load(str(path), device="cpu"), m


@pytest.fixture(scope="module")
def small_fashion(model_dir, small):
    """The same network declaring Fashion-MNIST as its dataset."""
    path = model_dir / "small-maco-fashion.pt"
    save(small[1], path, dict(META, dataset="fashion-mnist"))
    return raw.load(str(path), device="cpu"), small[1]


def to_model(x):
    return (x - 0.5) / 0.25


def objective(m, x, text):
    """The objective's value on each image of x (the engine's am_model_objective): (B,) numpy."""
    return np.asarray(m.objective(np.ascontiguousarray(x, dtype=np.float32), text))


def inverse_f(h, w):
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)[None, :]
    f = torch.sqrt(fx * fx + fy * fy)
    return (1.0 / torch.clamp(f, min=1.0 / max(h, w))).float()


def standardize(t):
    flat = t.reshape(t.shape[0], -1)
    flat = (flat - flat.mean(1, keepdim=True)) / (flat.std(1, unbiased=False, keepdim=True) + 1e-5)
    return flat.reshape(t.shape)


def maco_image(phase, mag, contrast):
    """MACO's image (Xplique's maco_image_parametrization, 1 channel, with a contrast)."""
    spec = torch.polar(mag.expand_as(phase), standardize(phase))
    return torch.sigmoid(contrast * standardize(torch.fft.irfft2(spec, s=(SIZE, SIZE), norm="ortho")))


def start_phase(seed, b):
    torch.manual_seed(seed)
    return torch.randn(b, 1, SIZE, SIZE // 2 + 1)


def frozen(**kw):
    """A run whose single step barely moves the phase: its image is the start image."""
    return dict(param=raw.PARAM_MACO, steps=1, lr=1e-12, crops=1, noise=0.0, **kw)


# ---------------------------------------------------------------- the parameterization

def test_image_from_phase_with_inverse_f(small):
    m, _ = small
    run = raw.run(m, ["fc[0]", "fc[1]"], seed=7, contrast=1.5, **frozen())
    expect = maco_image(start_phase(7, 2), inverse_f(SIZE, SIZE), 1.5)
    diff = float(np.abs(run.images - expect.numpy()).max())
    print(f"MACO 1/f image: engine vs PyTorch max|diff| {diff:.2e}; note: {run.note}")
    assert run.images.shape == (2, 1, SIZE, SIZE)
    assert diff < 1e-4
    assert "1/f" in run.note


def fashion_train_magnitude():
    with gzip.open(f"{DATA}/train-images-idx3-ubyte.gz", "rb") as f:
        data = f.read()
    x = torch.from_numpy(np.frombuffer(data, np.uint8, offset=16).reshape(-1, 1, SIZE, SIZE).astype(np.float32) / 255)
    return torch.fft.rfft2(x.double(), norm="ortho").abs().mean(0).float(), x.shape[0]


@pytest.mark.skipif(not os.path.exists(f"{DATA}/train-images-idx3-ubyte.gz"),
                    reason="dataset-fashion-mnist is not installed (scripts/install-deps.sh)")
def test_image_from_phase_with_dataset_magnitude(small_fashion):
    m, _ = small_fashion
    run = raw.run(m, "fc[2]", seed=3, **frozen())  # the default contrast, 3
    mag, n = fashion_train_magnitude()
    expect = maco_image(start_phase(3, 1), mag, 3.0)
    other = maco_image(start_phase(3, 1), inverse_f(SIZE, SIZE), 3.0)
    diff = float(np.abs(run.images - expect.numpy()).max())
    apart = float(np.abs(expect - other).max())
    print(f"MACO dataset image: engine vs PyTorch max|diff| {diff:.2e} (1/f image differs by {apart:.2f}); "
          f"note: {run.note}")
    assert diff < 1e-4 and apart > 0.05
    assert f"{n} fashion-mnist train images" in run.note


# ---------------------------------------------------------------- NAdam

@pytest.mark.parametrize("steps", [1, 5])
def test_nadam_matches_pytorch(small, steps):
    m, net = small
    lr, seed = 0.1, 11
    run = raw.run(m, ["fc[3]", "conv2[5]"], steps=steps, seed=seed, lr=lr, optimizer=raw.NADAM,
                    param=raw.PARAM_PIXEL, decorrelate=0, transforms=0)
    torch.manual_seed(seed)
    p = (torch.randn(2, 1, SIZE, SIZE) * 0.01).requires_grad_(True)
    start = torch.sigmoid(p).detach().clone()
    # foreach=True: before PyTorch 2.0 (pytorch/pytorch#92699) the
    # single-tensor NAdam counted mu_t twice in its second step; the
    # multi-tensor one is NAdam as published, and as the engine does it.
    opt = torch.optim.NAdam([p], lr=lr, foreach=True)
    for _ in range(steps):
        opt.zero_grad()
        x = to_model(torch.sigmoid(p))
        obj = net(x)[0, 3] + net.conv2(net.conv1(x))[1, 5].mean()
        (-obj).backward()
        opt.step()
    expect = torch.sigmoid(p).detach()
    moved = float((expect - start).abs().max())
    diff = float(np.abs(run.images - expect.numpy()).max())
    print(f"NAdam {steps} steps: image moved by up to {moved:.2e}, engine vs torch.optim.NAdam max|diff| {diff:.2e}")
    assert moved > 1e-2 and diff <= 1e-3 * moved + 1e-6


# ---------------------------------------------------------------- behaviour of a MACO run

def test_crops_shrink_over_the_run(small):
    m, _ = small
    seen = []
    run = raw.run(m, "fc[1]", param=raw.PARAM_MACO, steps=20, crop_max=0.9, crop_min=0.3,
                    progress=lambda p: seen.append(p.crop))
    assert run.steps == 20 and len(seen) == 20
    assert seen[0] == pytest.approx(0.9) and seen[-1] == pytest.approx(0.3)
    assert all(a >= b for a, b in zip(seen, seen[1:])) and seen[0] > seen[10] > seen[-1]


def test_maco_run_raises_the_objective(small):
    m, _ = small
    objs = ["fc[0]", "fc[4]", "conv2[2]"]
    start = raw.run(m, objs, seed=5, **frozen())
    run = raw.run(m, objs, seed=5, param=raw.PARAM_MACO, steps=48)
    before = objective(m, to_model(start.images), "fc[0]")[0]
    print(f"MACO: activation per image {run.activation} (start {start.activation}); "
          f"transparency sum {run.transparency.sum():.3g}")
    assert np.all(run.activation > start.activation + 0.02) and np.mean(run.activation - start.activation) > 0.1
    assert before == pytest.approx(start.activation[0], abs=1e-4)
    # The transparency map: where the objective's gradient went, per pixel.
    assert run.transparency.shape == run.images.shape
    assert run.transparency.min() >= 0 and run.transparency.max() > 0


def test_maco_canvas_larger_than_the_input(small):
    m, net = small
    run = raw.run(m, "fc[6]", param=raw.PARAM_MACO, steps=8, height=56, width=56)
    assert run.images.shape == (1, 1, 56, 56)
    small_img = torch.nn.functional.interpolate(torch.from_numpy(run.images), size=(SIZE, SIZE), mode="bilinear",
                                                align_corners=False)
    with torch.no_grad():
        expect = net(to_model(small_img))[0, 6].item()
    assert run.activation[0] == pytest.approx(expect, abs=1e-3)


# ---------------------------------------------------------------- feature accentuation

def test_accent_penalty_matches_pytorch(small):
    m, net = small
    rng = np.random.default_rng(0)
    seed_img = rng.uniform(0.1, 0.9, (1, 1, SIZE, SIZE)).astype(np.float32)
    lr, w, steps = 2.0, 30.0, 3
    run = raw.run(m, "fc[7]", init_image=seed_img, accent=w, steps=steps, lr=lr, optimizer=raw.SGD,
                    param=raw.PARAM_PIXEL, decorrelate=0, transforms=0)
    p = torch.logit(torch.from_numpy(seed_img).clamp(1e-4, 1 - 1e-4)).requires_grad_(True)
    s = torch.from_numpy(seed_img)
    pens = []
    for _ in range(steps):
        img = torch.sigmoid(p)
        pen = w * ((img - s) ** 2).mean()
        loss = -net(to_model(img))[0, 7] + pen
        (g,) = torch.autograd.grad(loss, p)
        with torch.no_grad():
            p -= lr * g
        pens.append(pen.item())
    expect = torch.sigmoid(p).detach().numpy()
    diff = float(np.abs(run.images - expect).max())
    print(f"accent: penalty per step {run.terms['accent']} (PyTorch {pens}), image max|diff| {diff:.2e}")
    assert np.allclose(run.terms["accent"], pens, rtol=1e-3, atol=1e-7)
    assert pens[-1] > 0 and diff < 1e-4


def test_accent_keeps_the_image_close(small):
    m, _ = small
    seed_img = np.full((1, 1, SIZE, SIZE), 0.3, np.float32)
    kw = dict(init_image=seed_img, steps=30, param=raw.PARAM_PIXEL, transforms=0)
    free = raw.run(m, "fc[7]", **kw)
    held = raw.run(m, "fc[7]", accent=100.0, **kw)
    d_free = np.abs(free.images - seed_img).mean()
    d_held = np.abs(held.images - seed_img).mean()
    print(f"accent: distance to the seed {d_held:.4f} with the penalty, {d_free:.4f} without")
    assert d_held < 0.5 * d_free
    # pushed all the same, less far
    start = objective(m, to_model(seed_img), "fc[7]")[0]
    assert start + 0.01 < held.activation[0] < free.activation[0]


def test_accent_needs_a_start_image(small):
    with pytest.raises(ValueError) as e:
        raw.run(small[0], "fc[7]", accent=1.0, steps=2)
    assert e.value.status == -1 and "init_image" in e.value.detail


# ---------------------------------------------------------------- honest figures

def test_diversity_is_a_term_of_its_own(small):
    m, _ = small
    run = raw.run(m, "conv2[3]", batch=3, steps=6, diversity=100.0, diversity_layer="conv1")
    assert run.diversity_layer == "conv1"
    assert "diversity (conv1)" in run.terms
    div = run.terms["diversity (conv1)"]
    assert np.all(div < 0)  # minus a mean cosine similarity of nonnegative Gram matrices
    # The curve is the objectives alone, the unit's activation is the objective
    # on the clean result, each image for itself.
    objs = sum(run.terms[k] for k in run.terms if k.startswith("obj"))
    assert np.allclose(run.curve, objs, rtol=1e-5, atol=1e-5)
    acts = objective(m, to_model(run.images), "conv2[3]")
    assert np.allclose(run.activation, acts, rtol=1e-4, atol=1e-4)
    assert np.allclose(run.final, acts, rtol=1e-4, atol=1e-4)
    assert np.all(run.activation >= 0)  # ReLU then max pool: never negative


def test_diversity_layer_defaults_to_the_objective_s_first(small):
    run = raw.run(small[0], "conv2[3] + fc[1]", batch=2, steps=2, diversity=1.0)
    assert run.diversity_layer == "conv2" and "diversity (conv2)" in run.terms


def test_diversity_inside_the_objective_is_left_out_of_the_activation(small):
    m, _ = small
    run = raw.run(m, "conv2[3] + 100 * diversity(conv1)", batch=2, steps=4)
    acts = objective(m, to_model(run.images), "conv2[3]")
    assert np.allclose(run.activation, acts, rtol=1e-4, atol=1e-4)
    assert np.all(run.final < run.activation - 1)  # the diversity value is negative and large here
    assert run.diversity_layer == ""


def test_diversity_errors(small):
    m, _ = small
    with pytest.raises(ValueError) as e:
        raw.run(m, "conv2[3]", diversity=1.0, steps=2)
    assert e.value.status == -1 and "batch >= 2" in e.value.detail
    with pytest.raises(actmax.LayerError) as e:
        raw.run(m, "conv2[3]", batch=2, diversity=1.0, diversity_layer="conv9", steps=2)
    assert e.value.status == -5 and "conv" in e.value.detail


def test_maco_option_errors(small):
    m, _ = small
    for kw, word in [(dict(crops=0), "crops"), (dict(crop_min=0.8, crop_max=0.5), "crop_min"),
                     (dict(noise=-1.0), "noise"), (dict(contrast=0.0), "contrast")]:
        with pytest.raises(ValueError) as e:
            raw.run(m, "fc[0]", param=raw.PARAM_MACO, steps=2, **kw)
        assert e.value.status == -1 and word in e.value.detail, kw
