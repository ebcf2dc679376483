"""The module's API against PyTorch: layers, activations (forward hooks on an
eager copy of the model), objectives, runs' shapes and value range."""
import os
import sys

import numpy as np
import pytest
import torch

import actmax
from conftest import ENGINE_CLI, SOURCE

sys.path.insert(0, os.path.join(SOURCE, "models"))


@pytest.fixture(scope="module")
def eager(fashion):
    """fashion-cnn as plain PyTorch: its own class with the file's weights."""
    from fashion_cnn import FashionCNN
    net = FashionCNN().eval()
    net.load_state_dict(torch.jit.load(fashion.path).state_dict())
    return net


def hooks(net, x, names):
    got = {}
    mods = dict(net.named_modules())
    hs = [mods[n].register_forward_hook(lambda mod, i, o, n=n: got.__setitem__(n, o.detach()))
          for n in names]
    with torch.no_grad():
        net(x)
    for h in hs:
        h.remove()
    return [got[n] for n in names]


def test_load_and_layers(fashion):
    assert fashion.kind == "image" and fashion.input_shape == (1, 28, 28)
    names = [l.name for l in fashion.layers()]
    assert names[:2] == ["conv1", "conv1.conv"] or "conv2" in names
    l = {l.name: l for l in fashion.layers()}["conv2"]
    assert l.shape == (1, 32, 7, 7) and l.type == "Sequential" and l.params == 32 * 16 * 9 + 64
    assert len(fashion.labels) == 10


def test_layers_equal_the_engine_command_line(fashion):
    if not os.access(ENGINE_CLI, os.X_OK):
        pytest.skip("actmax-engine is not built")
    import json
    import subprocess
    out = subprocess.run([ENGINE_CLI, "layers", fashion.path], capture_output=True, text=True, check=True)
    ref = json.loads(out.stdout)["layers"]
    assert [(l.name, l.type, list(l.shape), l.params, l.calls) for l in fashion.layers()] == \
        [(r["name"], r["type"], r["shape"], r["params"], r["calls"]) for r in ref]


def test_activations_equal_forward_hooks(fashion, eager):
    torch.manual_seed(1)
    x = torch.randn(3, 1, 28, 28)
    names = ["conv1", "conv2.conv", "conv2", "fc"]
    ours = fashion.activations(x, names)
    ref = hooks(eager, x, names)
    for n, a, b in zip(names, ours, ref):
        assert isinstance(a, torch.Tensor) and a.shape == b.shape, n
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=n)
    one = fashion.activations(x, "conv2")
    torch.testing.assert_close(one, ref[2], rtol=1e-4, atol=1e-5)


def test_any_layout_and_dtype(fashion, eager):
    x = torch.randn(2, 28, 28, 1, dtype=torch.float64).permute(0, 3, 1, 2)  # not contiguous
    ref = hooks(eager, x.float(), ["conv2"])[0]
    torch.testing.assert_close(fashion.activations(x, "conv2"), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fashion.activations(x.numpy(), "conv2"), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fashion.activations(x.half(), "conv2"),
                               hooks(eager, x.half().float(), ["conv2"])[0], rtol=1e-4, atol=1e-5)


def test_input_gradient_equals_autograd(fashion, eager):
    x = torch.randn(2, 1, 28, 28)
    acts, g = fashion.activations(x, ["conv2"], grad=True)
    xr = x.clone().requires_grad_(True)
    out = {}
    h = eager.conv2.register_forward_hook(lambda m, i, o: out.__setitem__("o", o))
    eager(xr)
    h.remove()
    out["o"].sum().backward()
    torch.testing.assert_close(g, xr.grad, rtol=1e-3, atol=1e-5)


def test_objective_equals_pytorch(fashion, eager):
    x = torch.randn(4, 1, 28, 28)
    got = fashion.objective(x, 'conv2[5] - 0.5*conv2[3] + fc["Sneaker"]')
    c2, fc = hooks(eager, x, ["conv2", "fc"])
    want = c2[:, 5].mean((1, 2)) - 0.5 * c2[:, 3].mean((1, 2)) + fc[:, fashion.labels.index("Sneaker")]
    assert got.shape == (4,)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_maximize_shapes_and_range(fashion):
    r = fashion.maximize("conv2[5]", steps=8, batch=2, seed=1, progress=False)
    assert r.images.shape == (2, 1, 28, 28) and r.images.dtype == torch.float32
    assert r.curve.shape == (8,) and r.final.shape == (2,)
    assert float(r.images.min()) >= 0 and float(r.images.max()) <= 1
    assert list(r.terms) and all(c.shape == (8,) for c in r.terms.values())
    # The final value is the objective on the result image (normalized as the model expects).
    x = (r.images - fashion.mean[0]) / fashion.std[0]
    torch.testing.assert_close(fashion.objective(x, "conv2[5]"), r.final, rtol=1e-4, atol=1e-5)
    png = r._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in r._repr_html_()


def test_maco_result_activation_transparency_curves(fashion):
    """MACO with diversity on a named layer: the activation is the unit alone
    on the clean image (the objective evaluated on the result), the diversity
    term is its own curve, the transparency map has the images' shape."""
    r = fashion.maximize("conv2[5]", steps=12, batch=2, seed=2, param="maco", crops=3,
                         diversity="conv1:100", progress=False)
    x = (r.images - fashion.mean[0]) / fashion.std[0]
    torch.testing.assert_close(fashion.objective(x, "conv2[5]"), r.activation, rtol=1e-4, atol=1e-5)
    assert float(r.activation.min()) >= 0  # a ReLU channel, whatever the diversity term
    assert r.diversity_layer == "conv1" and "diversity (conv1)" in r.curves
    assert float(r.curves["diversity (conv1)"][-1]) < 0
    torch.testing.assert_close(r.curves["objective"], r.curve)
    assert r.transparency.shape == r.images.shape and float(r.transparency.sum()) > 0
    assert "MACO magnitude" in r.note
    assert r.transparency_png()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "activation on the clean image" in repr(r) and "transformed copies" in repr(r)
    # The map as shown is the engine's (am_run_transparency_map): per image the
    # channel mean over its largest value, square-rooted.
    t = np.asarray(r.transparency, np.float32).mean(1, keepdims=True)
    want = np.sqrt(t / t.reshape(len(t), -1).max(1).reshape(-1, 1, 1, 1))
    np.testing.assert_allclose(r._transparency_map, np.broadcast_to(want, r._transparency_map.shape),
                               rtol=1e-5, atol=1e-6)
    # Other parameterizations keep no input gradient per step: no map.
    assert fashion.maximize("conv2[5]", steps=2, progress=False).transparency is None


def test_accent_from_a_dataset_item(fashion):
    item = fashion.maximize("conv2[5]", steps=1, init="dataset:7", accent=1e6, lr=1e-6,
                            progress=False)
    import gzip
    path = os.environ.get("ACTMAX_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
    with gzip.open(os.path.join(path, "t10k-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), np.uint8)[16 + 7 * 784:16 + 8 * 784]
    start = torch.from_numpy(raw.reshape(1, 28, 28) / np.float32(255))
    # One step at a tiny rate from the item: still the item (to the Fourier inversion's precision).
    assert float((item.images[0] - start).abs().max()) < 0.05
    near = fashion.maximize("conv2[5]", steps=16, init="dataset:7", accent=100, progress=False)
    far = fashion.maximize("conv2[5]", steps=16, init="dataset:7", accent=0.01, progress=False)
    assert float(((near.images[0] - start) ** 2).mean()) < float(((far.images[0] - start) ** 2).mean())
    with pytest.raises(ValueError, match="init=dataset:INDEX"):
        fashion.maximize("conv2[5]", steps=2, accent=1, progress=False)


def test_channel_sweep_one_image_per_objective(fashion):
    r = fashion.maximize(["conv2[0]", "conv2[1]", "conv2[2]"], steps=4, progress=False)
    assert r.images.shape[0] == 3 and r.final.shape == (3,)


def test_snapshots_at_thresholds(fashion):
    r = fashion.maximize("conv2[5]", steps=10, thresholds=[3, 7], progress=False)
    assert [s for s, _ in r.snapshots] == [3, 7]
    assert r.snapshots[0][1].shape == r.images.shape


def test_numpy_without_torch(tmp_path):
    """Without torch the same calls give numpy arrays."""
    import subprocess
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np, actmax\n"
            "m = actmax.load('fashion-cnn', device='cpu')\n"
            "a = m.activations(np.zeros((1, 1, 28, 28), np.float64), 'conv2')\n"
            "r = m.maximize('conv2[1]', steps=2, progress=False)\n"
            "assert type(a) is np.ndarray and a.shape == (1, 32, 7, 7), type(a)\n"
            "assert type(r.images) is np.ndarray and r.curve.shape == (2,)\n"
            "print('ok')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr


def test_plain_module_gets_a_clear_error():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
    with pytest.raises(TypeError, match=r"plain nn.Module.*torch.jit.script\(model\).*torch.jit.trace"):
        actmax.load(net)


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.relu(self.conv(x)).mean((2, 3)))


@pytest.mark.parametrize("how", ["trace", "script"])
def test_script_module_loads_from_memory(how):
    torch.manual_seed(3)
    net = Small().eval()
    x = torch.rand(2, 3, 16, 16)
    sm = torch.jit.trace(net, x) if how == "trace" else torch.jit.script(net)
    m = actmax.load(sm, device="cpu", input=(3, 16, 16), labels=["a", "b", "c", "d"],
                    mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], range=(0, 1))
    assert m.input_shape == (3, 16, 16) and m.labels == ["a", "b", "c", "d"]
    assert m.mean == [0.5] * 3 and m.std == [0.25] * 3
    assert m.note == "" or "default" not in m.note
    got = m.activations(x, ["conv", "head"])
    want = hooks(net, x, ["conv", "head"])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(m.objective(x, 'head["c"]'), want[1][:, 2], rtol=1e-4, atol=1e-5)


def test_metadata_keywords_are_checked():
    sm = torch.jit.trace(Small().eval(), torch.rand(1, 3, 8, 8))
    with pytest.raises(TypeError, match="labels"):
        actmax.load(sm, input=(3, 8, 8), labels="abcd")
    with pytest.raises(actmax.ModelError, match="metadata"):
        actmax.load(sm, input=(3, 8, 8), mean=[0.5, 0.5])  # 2 values for 3 channels


def fashion_test_set():
    from fmnist import load
    images, labels = load("test")
    return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def test_examples_equal_a_pytorch_topk(fashion, eager):
    ex = fashion.examples("conv2[5]", k=8, limit=2000, progress=False)
    assert ex.kind == "image" and len(ex) == 8 and ex.scanned == 2000
    x, y = fashion_test_set()
    x, y = x[:2000], y[:2000]
    with torch.no_grad():
        z = (x - fashion.mean[0]) / fashion.std[0]
        vals = hooks(eager, z, ["conv2"])[0][:, 5].mean((1, 2))
    top = torch.topk(vals, 8)
    assert ex.indices.tolist() == top.indices.tolist()
    torch.testing.assert_close(ex.values, top.values, rtol=1e-4, atol=1e-5)
    assert ex.labels.tolist() == y[top.indices].tolist()
    assert ex.label_names[0] == fashion.labels[int(y[top.indices[0]])]
    torch.testing.assert_close(ex.images, x[top.indices], rtol=0, atol=1e-6)
    assert ex._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


def test_keys_are_the_kernels_table():
    k = actmax.keys("maximize")
    assert k["steps"][1] == "256" and k["optimizer"][4] == "auto|adam|nadam|sgd"
    assert k["param"][4] == "fft|pixel|maco" and k["lr"][1] == "auto"
    assert set(actmax.keys("tokens")) >= {"method", "len", "fluency"}


def test_engine_version_matches():
    e = actmax.engine()
    assert e["api_version"] == actmax._actmax.API_VERSION
    assert e["version"] == actmax.__version__


def test_an_engine_of_another_api_version_is_refused(tmp_path):
    """A libactmax built from another actmax.h: refused, both versions named."""
    import subprocess
    src = tmp_path / "fake.c"
    src.write_text("#include <stddef.h>\n#include <stdint.h>\n"
                   "const void *am_get_api(uint32_t v, uint32_t *engine) { (void)v; if (engine) *engine = 999;"
                   " return NULL; }\n"
                   "const char *am_version(void) { return \"9.9.9\"; }\n")
    lib = tmp_path / "libactmax.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    code = ("import actmax\n"
            "try:\n    actmax.engine()\nexcept actmax.EngineError as e:\n    print('refused:', e)\n")
    env = dict(os.environ, ACTMAX_ENGINE=str(lib))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert "refused:" in p.stdout and "9.9.9" in p.stdout and "API version 999" in p.stdout
    assert f"needs engine API version {actmax._actmax.API_VERSION}" in p.stdout


def test_key_defaults_are_the_engines():
    """The magics' key tables (kernel/keys, which the docs and both fronts'
    help show) state the engine's own defaults for every numeric key that
    names an engine option: the MACO keys, for one, are passed only when
    given, so a table that drifted would show a default no run uses. The
    fronts' deliberate choices are listed here, each passed on every run."""
    from actmax import _actmax
    fronts_own = {("tokens", "steps"), ("tokens", "nearest")}
    checked = 0
    for magic, kind in (("maximize", "image"), ("tokens", "text")):
        engine = _actmax.options_default(kind)
        for key, (typ, default, *_) in actmax.keys(magic).items():
            field = {"rotate": "rotate_deg"}.get(key, key)
            if field not in engine or typ not in ("int", "float") or default is None:
                continue
            if (magic, key) in fronts_own:
                assert float(default) != engine[field], f"{magic} {key}: no longer the front's own default"
                continue
            checked += 1
            assert float(default) == pytest.approx(engine[field], rel=1e-6), (magic, key, default, engine[field])
    assert checked >= 25, checked  # crops, crop_min, noise, ... and the text keys
