"""Tapped activations and input gradients equal PyTorch forward hooks.

Random-weight torchvision models are traced here by Debian's torchvision; the
engine reads layers by graph editing, PyTorch by forward hooks on the eager
model. A hook's view is the output at the moment of the call, so hooks store
a clone (later in-place ReLUs and `+=` would otherwise change it).
"""
import numpy as np
import pytest
import torch
import torchvision

import actmax
from arrays import as_numpy

TOL = 1e-5

CASES = {
    # name: (constructor, input, layers); layers include in-place neighbours
    # (a BatchNorm followed by ReLU(inplace=True)), modules called twice,
    # whole blocks and the logits.
    "resnet18": (lambda: torchvision.models.resnet18(), (1, 3, 64, 64),
                 ["conv1", "bn1", "relu", "layer1.0.relu#1", "layer1.0.relu", "layer1.0",
                  "layer2.1.bn2", "layer3", "avgpool", "fc"]),
    "vgg11": (lambda: torchvision.models.vgg11(), (1, 3, 64, 64),
              ["features.0", "features.1", "features.5", "avgpool", "classifier.0", "classifier.1",
               "classifier.6"]),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(), (1, 3, 64, 64),
                     ["features.0.0", "features.0.1", "features.0.2", "features.3.conv.0", "features.3",
                      "features.18", "classifier.1"]),
    "googlenet": (lambda: torchvision.models.googlenet(aux_logits=False, init_weights=True), (1, 3, 64, 64),
                  ["conv1.conv", "conv1.bn", "conv1", "maxpool1", "inception3a.branch2.1", "inception3a",
                   "inception4e", "avgpool", "fc"]),
}


def hooked(model, x, layers):
    """Activations by forward hooks; layer#k means the k-th call."""
    want = {}
    for spec in layers:
        name, _, call = spec.partition("#")
        want.setdefault(name, []).append((spec, int(call) if call else None))
    seen, store, handles = {}, {}, []
    mods = dict(model.named_modules())
    for name in want:
        def hook(mod, inp, out, name=name):
            seen[name] = seen.get(name, 0) + 1
            store[(name, seen[name])] = out.clone()
        handles.append(mods[name].register_forward_hook(hook))
    model(x)
    for h in handles:
        h.remove()
    return [store[(spec.partition("#")[0], int(spec.partition("#")[2]) if "#" in spec else seen[spec])]
            for spec in layers]


@pytest.mark.parametrize("name", sorted(CASES))
def test_taps_match_hooks(name, model_dir):
    ctor, shape, layers = CASES[name]
    torch.manual_seed(1)
    model = ctor().eval()
    x = torch.randn(*shape)
    path = model_dir / f"taps_{name}.pt"
    torch.jit.trace(model, x, check_trace=False).save(str(path))
    m = actmax.load(str(path), device="cpu", input=shape[1:])

    acts, grad = as_numpy(m.activations(x, layers, grad=True))
    xr = x.clone().requires_grad_(True)
    refs = hooked(model, xr, layers)
    for spec, a, r in zip(layers, acts, refs):
        assert a.shape == tuple(r.shape), (spec, a.shape, r.shape)
        diff = float(np.abs(a - r.detach().numpy()).max())
        print(f"{name} {spec:28s} shape {str(a.shape):20s} max|diff| {diff:.2e}")
        assert diff <= TOL, (spec, diff)
    total = sum(r.sum() for r in refs)
    (gref,) = torch.autograd.grad(total, xr)
    gdiff = float(np.abs(grad - gref.numpy()).max())
    scale = max(1.0, float(gref.abs().max()))
    print(f"{name} input gradient max|diff| {gdiff:.2e} (max|grad| {scale:.2e})")
    assert gdiff <= TOL * scale


def test_layer_listing_matches_modules(resnet18_file):
    path, model = resnet18_file
    m = actmax.load(str(path), device="cpu", input=(3, 64, 64))
    layers = [l._asdict() for l in m.layers()]
    names = [l["name"] for l in layers]
    # Execution order: the stem before the blocks, blocks in order, fc last.
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"]
    assert names.index("layer1") < names.index("layer2") < names.index("fc")
    info = {l["name"]: l for l in layers}
    assert info["layer1.0.relu"]["calls"] == 2
    assert info["layer2.0.conv1"]["type"] == "Conv2d"
    mods = dict(model.named_modules())
    for n in ["layer2.0.conv1", "layer3", "fc", "bn1"]:
        assert info[n]["params"] == sum(p.numel() for p in mods[n].parameters())
    assert info["layer2"]["shape"] == (1, 128, 8, 8)
    assert info["fc"]["shape"] == (1, 1000)


class Inner(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.relu = torch.nn.ReLU(inplace=True)

    def _forward_impl(self, x):
        y = self.relu(self.conv(x))
        return self.relu(y + x)

    def forward(self, x):
        return self._forward_impl(x)


class Pair(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3)), x.amax(dim=(2, 3))


class Scripted(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.act = torch.nn.ReLU(inplace=True)
        self.block = Inner()
        self.pair = Pair()
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = self.act(self.bn(self.stem(x)))
        x = self.block(x)
        a, b = self.pair(x)
        return self.head(torch.cat([a, b], 1))


def test_scripted_model(model_dir):
    torch.manual_seed(2)
    model = Scripted().eval()
    model.bn.running_mean.uniform_(-0.5, 0.5)
    path = model_dir / "scripted.pt"
    torch.jit.script(model).save(str(path))
    m = actmax.load(str(path), device="cpu", input=(3, 16, 16))
    layers = ["stem", "bn", "block.conv", "block.relu#1", "block.relu", "block", "head"]
    x = torch.randn(2, 3, 16, 16)
    acts, grad = as_numpy(m.activations(x, layers, grad=True))
    xr = x.clone().requires_grad_(True)
    refs = hooked(model, xr, layers)
    for spec, a, r in zip(layers, acts, refs):
        diff = float(np.abs(a - r.detach().numpy()).max())
        print(f"scripted {spec:14s} max|diff| {diff:.2e}")
        assert diff <= TOL, spec
    (gref,) = torch.autograd.grad(sum(r.sum() for r in refs), xr)
    assert float(np.abs(grad - gref.numpy()).max()) <= TOL * max(1.0, float(gref.abs().max()))
    # A module returning a tuple: element 0 by default, element 1 by ':1'.
    a0, a1 = as_numpy(m.activations(x, ["pair", "pair:1"]))
    r0, r1 = model.pair(model.block(model.act(model.bn(model.stem(x)))))
    assert np.abs(a0 - r0.detach().numpy()).max() <= TOL
    assert np.abs(a1 - r1.detach().numpy()).max() <= TOL
    names = [l.name for l in m.layers()]
    assert names.index("stem") < names.index("block.conv") < names.index("head")


def test_cut_graph_still_right_for_many_layer_sets(resnet18_file):
    """The tap cache is per layer set: different sets must not mix."""
    path, model = resnet18_file
    m = actmax.load(str(path), device="cpu", input=(3, 64, 64))
    x = torch.randn(1, 3, 64, 64)
    (a,) = as_numpy(m.activations(x, ["layer1"]))
    (b, c) = as_numpy(m.activations(x, ["layer1", "layer4"]))
    (d,) = as_numpy(m.activations(x, ["layer1"]))
    assert np.array_equal(a, b) and np.array_equal(a, d)
    assert c.shape == (1, 512, 2, 2)


class Branchy(torch.nn.Module):
    """Layers called only inside `if` and `for` of a scripted forward, and a
    BatchNorm (whose scripted forward has `if`s of its own)."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.gate = torch.nn.Conv2d(4, 4, 1)
        self.skip = torch.nn.Conv2d(4, 4, 1)
        self.loop = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        x = self.bn(self.stem(x))
        if bool(x.mean() > -100.0):
            x = self.gate(x)
        else:
            x = self.skip(x)
        for _ in range(3):
            x = torch.relu(self.loop(x)) + 0.5
        return self.head(x.mean(dim=(2, 3)))


def hook_calls(model, x):
    counts = {}
    for name, mod in model.named_modules():
        if name:
            mod.register_forward_hook(lambda *a, name=name: counts.__setitem__(name, counts.get(name, 0) + 1))
    model(x)
    return counts


def test_layers_inside_if_and_loop(model_dir):
    torch.manual_seed(3)
    model = Branchy().eval()
    model.bn.running_mean.uniform_(-0.5, 0.5)
    path = model_dir / "branchy.pt"
    torch.jit.script(model).save(str(path))
    m = actmax.load(str(path), device="cpu", input=(3, 16, 16))
    x = torch.randn(2, 3, 16, 16)
    # The taken branch and the loop's last iteration, as hooks see them.
    layers = ["bn", "gate", "loop", "head"]
    acts, grad = as_numpy(m.activations(x, layers, grad=True))
    xr = x.clone().requires_grad_(True)
    refs = hooked(model, xr, layers)
    for spec, a, r in zip(layers, acts, refs):
        diff = float(np.abs(a - r.detach().numpy()).max())
        print(f"branchy {spec:6s} max|diff| {diff:.2e}")
        assert diff <= TOL, spec
    (gref,) = torch.autograd.grad(sum(r.sum() for r in refs), xr)
    assert float(np.abs(grad - gref.numpy()).max()) <= TOL * max(1.0, float(gref.abs().max()))
    # The branch not taken has nothing to read: a clear error, not zeros.
    with pytest.raises(actmax.LayerError, match="branch of forward that this input did not run"):
        m.activations(x, ["skip"])
    info = {l.name: l for l in m.layers()}
    names = list(info)
    assert names.index("stem") < names.index("bn") < names.index("gate") < names.index("loop") < names.index("head")
    assert info["gate"].shape == (1, 4, 16, 16)
    assert info["loop"].shape == (1, 4, 16, 16)


def test_calls_column_counts_as_hooks(resnet18_file, model_dir):
    """BatchNorm's scripted forward holds `if`s: one call all the same."""
    torch.manual_seed(4)
    model = Scripted().eval()
    path = model_dir / "scripted_calls.pt"
    torch.jit.script(model).save(str(path))
    m = actmax.load(str(path), device="cpu", input=(3, 16, 16))
    counts = hook_calls(model, torch.randn(1, 3, 16, 16))
    for l in m.layers():
        assert l.calls == counts.get(l.name, 0), (l.name, l.calls, counts.get(l.name, 0))
    # Scripted torchvision resnet18 (BatchNorm everywhere, ReLU called twice per block).
    rpath = model_dir / "resnet18_scripted.pt"
    torch.jit.script(torchvision.models.resnet18().eval()).save(str(rpath))
    m = actmax.load(str(rpath), device="cpu", input=(3, 64, 64))
    counts = hook_calls(torchvision.models.resnet18().eval(), torch.randn(1, 3, 64, 64))
    for l in m.layers():
        assert l.calls == counts.get(l.name, 0), (l.name, l.calls, counts.get(l.name, 0))
