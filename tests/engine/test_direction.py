"""Direction objectives (Lucid's direction with cosine power), the sweep of
a slice (one objective per unit) and the logit lens, against PyTorch."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import actmax
from tinygpt import TinyGPT, save_scripted


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    torch.manual_seed(0)
    m = Net().eval()
    path = tmp_path_factory.mktemp("direction") / "net.pt"
    meta = {"kind": "image", "input": [1, 8, 8], "mean": [0.0], "std": [1.0]}
    torch.jit.save(torch.jit.trace(m, torch.randn(1, 1, 8, 8)), str(path),
                   _extra_files={"actmax.json": json.dumps(meta)})
    return actmax.load(str(path), device="cpu"), m


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(5, 1, 8, 8, generator=g)


V = [0.5, -1.25, 2.0, 0.75]


def lucid(act, v, p=0):
    """Lucid's _dot_cossim on channels-last activations, mean per item."""
    v = torch.as_tensor(v, dtype=torch.float64)
    act = act.double()
    dot = (act * v).sum(-1)
    if p:
        cos = dot / (act.norm(dim=-1) + 1e-4) / (v.norm() + 1e-4)
        dot = dot * cos.clamp(min=0.1) ** p
    return dot.reshape(dot.shape[0], -1).mean(1)


def vec(v):
    return "[" + ", ".join(repr(x) for x in v) + "]"


@pytest.mark.parametrize("p", [0, 1, 2])
def test_direction_conv_matches_lucid(net, batch, p):
    m, ref = net
    with torch.no_grad():
        conv = ref.conv(batch)
    want = lucid(conv.permute(0, 2, 3, 1), V, p)
    obj = f"direction(conv, {vec(V)}" + (f", cossim_pow={p})" if p else ")")
    got = np.asarray(m.objective(batch, obj))
    print(f"\n{obj}: engine {got}, torch {want.numpy()}")
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


def test_direction_linear_layer_and_algebra(net, batch):
    m, ref = net
    with torch.no_grad():
        fc = ref(batch)
    v = [1.0, -2.0, 0.5]
    got = np.asarray(m.objective(batch, f"2*direction(fc, {vec(v)}) - fc[0]"))
    want = 2 * (fc.double() @ torch.tensor(v, dtype=torch.float64)) - fc[:, 0].double()
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["npy32", "npy64", "pt", "pt_row"])
def test_direction_files(net, batch, tmp_path, kind):
    m, ref = net
    if kind.startswith("npy"):
        f = tmp_path / "v.npy"
        np.save(f, np.asarray(V, dtype=np.float32 if kind == "npy32" else np.float64))
    else:
        f = tmp_path / "v.pt"
        t = torch.tensor(V)
        torch.save(t[None] if kind == "pt_row" else t, f)
    got = np.asarray(m.objective(batch, f"direction(conv, {f})"))
    quoted = np.asarray(m.objective(batch, f"direction(conv, \"{f}\")"))
    want = np.asarray(m.objective(batch, f"direction(conv, {vec(V)})"))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(quoted, want, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "int32", "int64"])
def test_direction_npy_dtypes(net, batch, tmp_path, dtype):
    m, _ = net
    np.save(tmp_path / "v.npy", np.array([1, -2, 3, 4], dtype=dtype))
    got = np.asarray(m.objective(batch, f"direction(conv, {tmp_path / 'v.npy'})"))
    want = np.asarray(m.objective(batch, "direction(conv, [1, -2, 3, 4])"))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_direction_errors(net, batch, tmp_path):
    m, _ = net
    with pytest.raises(actmax.ObjectiveError, match=r"has 3 values but conv .* has 4 on its channel axis"):
        m.objective(batch, "direction(conv, [1, 2, 3])")
    torch.save({"w": torch.zeros(4)}, tmp_path / "d.pt")
    with pytest.raises(actmax.ObjectiveError, match="not a tensor"):
        m.objective(batch, f"direction(conv, {tmp_path / 'd.pt'})")
    np.save(tmp_path / "mat.npy", np.zeros((4, 2), np.float32))
    with pytest.raises(actmax.ObjectiveError, match="one vector"):
        m.objective(batch, f"direction(conv, {tmp_path / 'mat.npy'})")
    with pytest.raises(actmax.ObjectiveError, match="cannot read"):
        m.objective(batch, f"direction(conv, {tmp_path / 'missing.npy'})")
    np.save(tmp_path / "u.npy", np.zeros(4, np.uint16))
    with pytest.raises(actmax.ObjectiveError, match="dtype <u2"):
        m.objective(batch, f"direction(conv, {tmp_path / 'u.npy'})")
    (tmp_path / "junk.npy").write_bytes(b"hello")
    with pytest.raises(actmax.ObjectiveError, match="not a .npy file"):
        m.objective(batch, f"direction(conv, {tmp_path / 'junk.npy'})")
    with pytest.raises(actmax.ObjectiveError, match="neither .npy nor .pt"):
        m.objective(batch, "direction(conv, v.txt)")
    with pytest.raises(actmax.ObjectiveError, match="cossim_pow"):
        m.objective(batch, "direction(conv, [1, 2, 3, 4], power=2)")
    for bad in ("conv[0]", "conv[1:, 3, 3]", "conv[::2]"):
        with pytest.raises(actmax.ObjectiveError, match="keeps the whole channel axis"):
            m.objective(batch, f"direction({bad}, [1, 2, 3, 4])")


@pytest.mark.parametrize("where,pick", [("[:, 3, 3]", (slice(None), 3, 3)),
                                        ("[:, 2:5, -2:]", (slice(None), slice(2, 5), slice(-2, None))),
                                        ("[:, 0]", (slice(None), 0)),
                                        ("[:]", (slice(None),))])
def test_direction_at_image_positions(net, batch, where, pick):
    # Lucid's direction_neuron: the dot product at chosen positions only.
    m, ref = net
    with torch.no_grad():
        conv = ref.conv(batch)  # (B, C, H, W)
    sub = conv[(slice(None),) + pick]
    if sub.dim() == 2:
        sub = sub[:, :, None]
    want = lucid(sub.movedim(1, -1), V, 2)
    got = np.asarray(m.objective(batch, f"direction(conv{where}, {vec(V)}, cossim_pow=2)"))
    print(f"\ndirection(conv{where}): engine {got}, torch {want.numpy()}")
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


def test_direction_run_raises_it(net):
    m, _ = net
    obj = f"direction(conv, {vec(V)}, cossim_pow=1)"
    r = m.maximize(obj, steps=24, seed=0, transforms=False)
    start = float(r.curve[0])
    final = float(r.final[0])
    # The final value is the objective on the run's image, as am_model_objective gives it.
    again = float(m.objective(r._display[:1].copy(), obj)[0])
    print(f"\n{obj}: step 0 {start:.4f} -> final {final:.4f}")
    assert final > start
    assert abs(again - final) <= 1e-4 * max(1.0, abs(final))


# ---------------------------------------------------------------- text


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    torch.manual_seed(5)
    model = TinyGPT().eval()
    meta = {"kind": "text", "vocab_size": 50, "context": 8}
    path = tmp_path_factory.mktemp("direction") / "gpt.pt"
    save_scripted(model, path, meta)
    return actmax.load(str(path), device="cpu"), model


def mlp_act(model, ids):
    out = {}
    h = model.blocks[0].mlp[1].register_forward_hook(lambda mod, i, o: out.update(a=o))
    with torch.no_grad():
        model(torch.as_tensor(ids))
    h.remove()
    return out["a"]


def test_direction_text_positions(gpt):
    m, model = gpt
    ids = torch.randint(0, 50, (3, 8), generator=torch.Generator().manual_seed(2))
    v = torch.randn(128, generator=torch.Generator().manual_seed(3))
    act = mlp_act(model, ids)  # (B, T, 128)
    last = f"direction(blocks.0.mlp.1[-1], {vec(v.tolist())}, cossim_pow=2)"
    got = np.asarray(m.objective(ids.numpy(), last))
    np.testing.assert_allclose(got, lucid(act[:, -1:], v, 2).numpy(), rtol=1e-4, atol=1e-5)
    every = f"direction(blocks.0.mlp.1, {vec(v.tolist())})"
    np.testing.assert_allclose(np.asarray(m.objective(ids.numpy(), every)), lucid(act, v).numpy(),
                               rtol=1e-4, atol=1e-5)
    # At each token: the position stands in for the index, as for [-1, n].
    per = np.asarray(m.objective(ids.numpy(), last, positions=True))
    want = (act.double() * v.double()).sum(-1)
    cos = want / (act.double().norm(dim=-1) + 1e-4) / (v.double().norm() + 1e-4)
    np.testing.assert_allclose(per, (want * cos.clamp(min=0.1) ** 2).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(actmax.ObjectiveError, match="has 4 values but blocks.0.mlp.1 .* has 128 on its last axis"):
        m.objective(ids.numpy(), "direction(blocks.0.mlp.1[-1], [1, 2, 3, 4])")


# ---------------------------------------------------------------- each


def test_each_expands_one_slice(net):
    m, _ = net
    assert m.objective_each("conv[0:4]") == [f"conv[{i}]" for i in range(4)]
    assert m.objective_each("conv[:]") == [f"conv[{i}]" for i in range(4)]
    assert m.objective_each("conv[-3:]") == [f"conv[{i}]" for i in range(1, 4)]
    assert m.objective_each("conv[0:4:2, 3]") == ["conv[0, 3]", "conv[2, 3]"]
    assert m.objective_each("conv[1:3] - 0.5*fc[0]") == ["conv[1] - 0.5*fc[0]", "conv[2] - 0.5*fc[0]"]
    with pytest.raises(actmax.ObjectiveError, match="needs one slice"):
        m.objective_each("conv[1]")
    with pytest.raises(actmax.ObjectiveError, match="this objective has 2"):
        m.objective_each("conv[0:2] + conv[1, 0:3]")
    with pytest.raises(actmax.ObjectiveError, match="empty slice"):
        m.objective_each("conv[5:9]")
    with pytest.raises(actmax.LayerError):
        m.objective_each("nope[0:3]")


def test_each_run_labels(net):
    m, _ = net
    r = m.maximize("fc[0:3]", each=True, steps=16, seed=0, transforms=False)
    assert r.objective == ["fc[0]", "fc[1]", "fc[2]"]
    assert tuple(r.images.shape)[0] == 3
    # Each image's own unit, as am_model_objective computes it on that image.
    for i in range(3):
        v = float(m.objective(r._display[i:i + 1].copy(), f"fc[{i}]")[0])
        assert abs(v - float(r.final[i])) <= 1e-4 * max(1.0, abs(v))


# ---------------------------------------------------------------- logit lens


def test_logit_lens_matches_torch(gpt):
    m, model = gpt
    n = 7
    lens = m.logit_lens("blocks.1.mlp.1", n, k=5)
    with torch.no_grad():
        want = model.head.weight @ model.blocks[1].mlp[2].weight[:, n]
    np.testing.assert_allclose(np.asarray(lens.values), want.numpy(), rtol=1e-5, atol=1e-6)
    top = torch.topk(want, 5)
    bot = torch.topk(want, 5, largest=False)
    assert [t.id for t in lens.top] == top.indices.tolist()
    assert [t.id for t in lens.bottom] == bot.indices.tolist()
    np.testing.assert_allclose([t.value for t in lens.top], top.values.numpy(), rtol=1e-5)


def test_logit_lens_errors(gpt, net):
    m, _ = gpt
    with pytest.raises(actmax.UnsupportedError, match="no output projection after blocks.1.mlp.2"):
        m.logit_lens("blocks.1.mlp.2", 0)
    with pytest.raises(ValueError, match="out of range: blocks.1.mlp.1 has 128 neurons"):
        m.logit_lens("blocks.1.mlp.1", 128)
    with pytest.raises(actmax.LayerError, match="closest"):
        m.logit_lens("blocks.1.mlp.act", 0)
    with pytest.raises(actmax.UnsupportedError, match="text model"):
        net[0].logit_lens("conv", 0)


def test_direction_with_diversity(net):
    m, _ = net
    r = m.maximize(f"direction(conv, {vec(V)})", batch=2, diversity=0.5, steps=4, seed=0)
    assert r.diversity_layer == "conv"  # the direction's layer, chosen by the engine
