"""The kernels runs use in place of libtorch's on CPU (ext/src/fastops.cpp):
oneDNN Winograd 3x3 convolutions and channels-last max pooling. They must
change nothing but rounding: one SGD step through them equals PyTorch's."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import actmax
import actmax.raw as raw

HAVE_DNNL = os.environ.get("ACTMAX_TEST_DNNL", "") == "1"
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
SIZE = 128  # layer1 works on 32x32 maps: large enough for Winograd


@pytest.fixture(scope="module")
def r18_128(model_dir):
    import torchvision
    torch.manual_seed(1)
    m = torchvision.models.resnet18().eval()
    path = model_dir / "resnet18-128.pt"
    torch.jit.trace(m, torch.randn(1, 3, SIZE, SIZE)).save(str(path))
    return path, m


def pytorch_step(model, layer, channels, seed, lr):
    """The image after one plain SGD step on pixels, as PyTorch computes it."""
    torch.manual_seed(seed)
    p = (torch.randn(len(channels), 3, SIZE, SIZE) * 0.01).requires_grad_(True)
    feats = {}
    h = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: feats.__setitem__("t", o))
    model((torch.sigmoid(p) - torch.from_numpy(MEAN)) / torch.from_numpy(STD))
    h.remove()
    obj = sum(feats["t"][b, c].mean() for b, c in enumerate(channels))
    (g,) = torch.autograd.grad(obj, p)
    return torch.sigmoid(p.detach() + lr * g).numpy(), torch.sigmoid(p.detach()).numpy()


@pytest.mark.parametrize("layer,channels", [("layer1", [3]), ("layer2", [3, 7]), ("fc", [1])])
def test_one_step_matches_pytorch(r18_128, layer, channels):
    path, model = r18_128
    m = actmax.load(str(path), device="cpu", input=(3, SIZE, SIZE))
    seed, lr = 3, 20.0
    objs = [f"{layer}[{c}]" for c in channels]
    run = raw.run(m, objs if len(objs) > 1 else objs[0], steps=1, seed=seed, optimizer=1, lr=lr, param=1,
                  decorrelate=0, transforms=0)
    expect, start = pytorch_step(model, layer, channels, seed, lr)
    moved = float(np.abs(expect - start).max())
    diff = float(np.abs(run.images - expect).max())
    print(f"{layer} x{len(channels)}: image moved by up to {moved:.2e}, engine vs PyTorch max|diff| {diff:.2e}")
    # Winograd rounds differently from the direct product (about 1e-6
    # relative): the step must agree to 1 % of its size.
    assert moved > 1e-3 and diff <= 0.01 * moved


def fast_ops_in_graph(path, layer):
    code = ("import actmax, actmax.raw as raw; m = actmax.load(%r, device='cpu', input=(3, %d, %d)); "
            "raw.run(m, %r, steps=1)" % (str(path), SIZE, SIZE, layer + "[0]"))
    # The module's folder comes with PYTHONPATH (CTest sets it).
    env = dict(os.environ, ACTMAX_DUMP_GRAPH="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stderr.count("actmax::fast("), out.stderr.count(": winograd")


def test_fast_ops_replace_the_convolutions_and_pool(r18_128):
    """resnet18 up to layer2: one max pool, and 7 convolutions that are 3x3
    with stride 1 (layer1's 4, layer2's 3; the strided ones stay)."""
    path, _ = r18_128
    n, wino = fast_ops_in_graph(path, "layer2")
    print(f"actmax::fast nodes in the layer2 graph: {n}, through Winograd: {wino} "
          f"(oneDNN {'built in' if HAVE_DNNL else 'absent'})")
    assert n == 1 + (7 if HAVE_DNNL else 0)
    # layer1's maps are 32x32 here, layer2's 16x16: too small to gain.
    assert wino == (4 if HAVE_DNNL else 0)


def test_switches_turn_them_off(r18_128, monkeypatch):
    path, _ = r18_128
    monkeypatch.setenv("ACTMAX_NO_WINOGRAD", "1")
    monkeypatch.setenv("ACTMAX_NO_FAST_POOL", "1")
    assert fast_ops_in_graph(path, "layer2") == (0, 0)


class SmallScripted(torch.nn.Module):
    """Scripted, as the built-in fashion-cnn: batch norms stay unfolded
    (their training branch reads the convolution's output too), the first
    convolution has no bias and becomes the extracted stem."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(16)
        self.conv2 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.pool = torch.nn.MaxPool2d(2)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        return torch.relu(self.conv2(x))


def test_scripted_model_without_stem_bias(model_dir):
    torch.manual_seed(2)
    model = SmallScripted().eval()
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.2, 0.2)
        model.bn1.running_var.uniform_(0.5, 2.0)
    path = model_dir / "small-scripted.pt"
    torch.jit.script(model).save(str(path))
    m = actmax.load(str(path), device="cpu", input=(1, 56, 56))
    seed, lr = 4, 100.0
    run = raw.run(m, "conv2[5]", steps=1, seed=seed, optimizer=1, lr=lr, param=1, decorrelate=0, transforms=0)
    torch.manual_seed(seed)
    p = (torch.randn(1, 1, 56, 56) * 0.01).requires_grad_(True)
    feats = {}
    h = model.conv2.register_forward_hook(lambda mod, i, o: feats.__setitem__("t", o))
    # Without actmax.json a 1-channel model is normalized with mean 0, std 1.
    model(torch.sigmoid(p))
    h.remove()
    (g,) = torch.autograd.grad(feats["t"][:, 5].mean(), p)
    expect = torch.sigmoid(p.detach() + lr * g).numpy()
    moved = float(np.abs(expect - torch.sigmoid(p.detach()).numpy()).max())
    diff = float(np.abs(run.images - expect).max())
    print(f"scripted, stem without bias: image moved by up to {moved:.2e}, max|diff| {diff:.2e}")
    assert moved > 1e-3 and diff <= 0.01 * moved
