"""One unit at a time from the module: the sweep of a slice (one image per
unit), the logit lens of the built-in text models against PyTorch, and the
Neuron dashboard (m.neuron) on fashion-cnn and tiny-lm."""
import time

import numpy as np
import pytest
import torch

import actmax


def model_input(m, images):
    """Images in the model's value range -> what the model takes."""
    x = np.asarray(images, dtype=np.float32)
    mean = np.asarray(m.mean, np.float32)[None, :, None, None]
    std = np.asarray(m.std, np.float32)[None, :, None, None]
    return np.ascontiguousarray((x - mean) / std)


def test_each_one_image_per_unit(fashion):
    m = fashion
    r = m.maximize("conv2[0:16]", each=True, steps=64, seed=0)
    assert r.objective == [f"conv2[{i}]" for i in range(16)]
    assert tuple(r.images.shape) == (16, 1, 28, 28)
    x = model_input(m, r.images)
    # A[i, j]: unit j on image i.
    A = np.stack([np.asarray(m.objective(x, f"conv2[{j}]")) for j in range(16)], 1)
    np.testing.assert_allclose(np.diag(A), np.asarray(r.final), rtol=1e-3, atol=1e-4)
    own = np.diag(A)
    others = (A.sum(0) - own) / 15
    wins = sum(bool(A[j, j] >= A[:, j].max()) for j in range(16))
    print(f"\neach conv2[0:16], 64 steps: own image best for {wins}/16 units; own - mean of others "
          f"{np.round(own - others, 2)}")
    assert (own - others).mean() > 0
    assert wins >= 12


def test_each_needs_one_slice(fashion):
    with pytest.raises(actmax.ObjectiveError, match="needs one slice"):
        fashion.maximize("conv2[3]", each=True, steps=2)
    with pytest.raises(ValueError, match="not a list"):
        fashion.maximize(["conv2[0:2]", "conv2[3]"], each=True, steps=2)


def scripted(m):
    return torch.jit.load(m.path, map_location="cpu").eval()


@pytest.mark.parametrize("name,layer,out,unembed", [
    ("tiny-lm", "blocks.1.mlp.act", lambda s: getattr(s.blocks, "1").mlp.proj, lambda s: s.head),
    ("tiny-llama", "layers.1.mlp.act", lambda s: getattr(s.layers, "1").mlp.down_proj, lambda s: s.lm_head),
])
def test_logit_lens_against_torch(name, layer, out, unembed):
    try:
        m = actmax.load(name, device="cpu")
    except FileNotFoundError as e:
        pytest.skip(f"{name} is not built: {e}")
    s = scripted(m)
    for n in (0, 17):
        lens = m.logit_lens(layer, n, k=10)
        with torch.no_grad():
            want = unembed(s).weight @ out(s).weight[:, n]
        np.testing.assert_allclose(np.asarray(lens.values), want.numpy(), rtol=1e-4, atol=1e-6)
        assert [t.id for t in lens.top] == torch.topk(want, 10).indices.tolist()
        assert [t.id for t in lens.bottom] == torch.topk(want, 10, largest=False).indices.tolist()
        assert all(t.text == m.token_text(t.id) for t in lens.top)
    print(f"\n{name} {layer}[17] top: {[t.text for t in lens.top[:5]]}")
    with pytest.raises(actmax.UnsupportedError, match="no output projection"):
        m.logit_lens(layer.replace(".act", ".down_proj" if "llama" in name else ".proj"), 0)


def test_neuron_image(fashion):
    m = fashion
    times = []
    for unit in (3, 4):
        t = time.time()
        nr = m.neuron(f"conv2[{unit}]", image_steps=32, limit=2000)
        times.append(time.time() - t)
    print(f"\nm.neuron on fashion-cnn conv2, 2000 test images, 32 steps: first {times[0]:.2f} s, "
          f"second {times[1]:.2f} s (machine shared with other builds)")
    assert tuple(nr.optimized.images.shape)[0] == 4
    assert nr.optimum == pytest.approx(float(np.max(np.asarray(nr.optimized.final))))
    counts, lo, hi = nr.histogram
    assert int(np.asarray(counts).sum()) == nr.examples.scanned == 2000
    assert lo <= float(nr.examples.max) <= hi
    assert 0.0 <= nr.firing_rate <= 1.0
    assert len(nr.bands) == 4 and all(len(b) > 0 for _, _, b in nr.bands)
    assert len(np.asarray(nr.class_means)) == 10
    html = nr._repr_html_()
    for part in ("optimized inputs", "top ", "quantile bands", "activation histogram", "per class"):
        assert part in html


def test_neuron_text(tiny_lm):
    m = tiny_lm
    times = []
    for unit in (123, 124):
        t = time.time()
        nr = m.neuron(f"blocks.2.mlp.act[-1, {unit}]", text_steps=8, limit=20000)
        times.append(time.time() - t)
    print(f"\nm.neuron on tiny-lm blocks.2.mlp.act, 20000 corpus tokens, GCG 8 steps: first "
          f"{times[0]:.2f} s, second {times[1]:.2f} s (machine shared with other builds)")
    assert nr.optimum == pytest.approx(float(nr.optimized.activation))
    counts, lo, hi = nr.histogram
    assert int(np.asarray(counts).sum()) == nr.examples.scanned
    assert len(nr.sweep) == 10 and nr.sweep[0][2] >= nr.sweep[-1][2]
    assert nr.lens is not None and len(nr.lens.top) == 10
    html = nr._repr_html_()
    for part in ("best prompt", "single-token sweep", "activation histogram", "logit lens"):
        assert part in html
