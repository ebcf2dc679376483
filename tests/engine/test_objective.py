"""am_model_objective: the objective language of runs evaluated on a batch of
given inputs, against the same indexing done in PyTorch, and its errors."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import actmax
import actmax.raw as raw

E_OBJECTIVE, E_LAYER = -6, -5
LABELS = ["cat", "dog", "Sneaker"]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        h = self.act(self.conv(x))
        return self.fc(h.flatten(1))


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    torch.manual_seed(0)
    m = Net().eval()
    path = tmp_path_factory.mktemp("objective") / "net.pt"
    meta = {"kind": "image", "input": [1, 8, 8], "mean": [0.0], "std": [1.0], "labels": LABELS}
    torch.jit.save(torch.jit.trace(m, torch.randn(1, 1, 8, 8)), str(path),
                   _extra_files={"actmax.json": json.dumps(meta)})
    return actmax.load(str(path), device="cpu"), m


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(7, 1, 8, 8, generator=g)


def reference(m, x):
    with torch.no_grad():
        conv = m.conv(x)
        fc = m(x)
    return conv, fc


CASES = [
    ("conv", lambda conv, fc: conv.mean((1, 2, 3))),
    ("conv[1]", lambda conv, fc: conv[:, 1].mean((1, 2))),
    ("conv[1, 2, 5]", lambda conv, fc: conv[:, 1, 2, 5]),
    ("conv[-1]", lambda conv, fc: conv[:, -1].mean((1, 2))),
    ("conv[-1, -2, 0]", lambda conv, fc: conv[:, -1, -2, 0]),
    ("conv[1:3]", lambda conv, fc: conv[:, 1:3].mean((1, 2, 3))),
    ("conv[:, 2:6, ::2]", lambda conv, fc: conv[:, :, 2:6, ::2].mean((1, 2, 3))),
    ('fc["dog"]', lambda conv, fc: fc[:, 1]),
    ("fc['Sneaker']", lambda conv, fc: fc[:, 2]),
    ("-fc[0]", lambda conv, fc: -fc[:, 0]),
    ("conv[1] - 0.5*conv[2] + 2", lambda conv, fc: conv[:, 1].mean((1, 2)) - 0.5 * conv[:, 2].mean((1, 2)) + 2),
    ("(conv[0] + fc[2]) / 4", lambda conv, fc: (conv[:, 0].mean((1, 2)) + fc[:, 2]) / 4),
    ("-(conv[3, 0, 0] - 2*(fc[1] + 1))", lambda conv, fc: -(conv[:, 3, 0, 0] - 2 * (fc[:, 1] + 1))),
]


@pytest.mark.parametrize("text,ref", CASES, ids=[c[0] for c in CASES])
def test_values_match_pytorch(net, batch, text, ref):
    model, m = net
    conv, fc = reference(m, batch)
    want = ref(conv, fc).numpy()
    got = np.asarray(model.objective(batch.numpy(), text))
    assert got.shape == (batch.shape[0],)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Items do not depend on each other: one item alone gives the same value.
    np.testing.assert_allclose(model.objective(batch[3:4].numpy(), text), want[3:4], rtol=1e-5, atol=1e-5)


def test_same_number_as_a_run(net):
    """A run's final activation is the objective of its image (mean 0, std 1:
    the image is the model input); am_model_objective gives it too."""
    model, _ = net
    for text in ["conv[1] - 0.5*conv[2] + 2", 'fc["dog"]']:
        run = raw.run(model, text, steps=3, batch=2)
        got = model.objective(run.images, text)
        np.testing.assert_allclose(got, run.final, rtol=1e-5, atol=1e-5)


def error_of(model, x, text):
    # LayerError is an ObjectiveError.
    with pytest.raises(actmax.ObjectiveError) as e:
        model.objective(x, text)
    return e.value.status, e.value.detail


def test_syntax_error_points_at_the_column(net, batch):
    model, _ = net
    st, msg = error_of(model, batch.numpy(), "conv[1")
    assert st == E_OBJECTIVE and "at column 7" in msg and "expected ',' or ']'" in msg, msg
    lines = msg.splitlines()
    assert lines[-2].strip() == "conv[1" and lines[-1].index("^") - 2 == 6
    st, msg = error_of(model, batch.numpy(), "conv[1] * conv[2]")
    assert st == E_OBJECTIVE and "number" in msg, msg


def test_unknown_layer_lists_the_closest(net, batch):
    model, _ = net
    st, msg = error_of(model, batch.numpy(), "conv[1] + cnov[2]")
    assert st == E_LAYER and "cnov" in msg and "closest: conv" in msg, msg


def test_index_out_of_range_and_labels(net, batch):
    model, _ = net
    st, msg = error_of(model, batch.numpy(), "conv[4]")
    assert st == E_OBJECTIVE and "size 4" in msg and "[4, 8, 8]" in msg and "^" in msg, msg
    st, msg = error_of(model, batch.numpy(), "conv[-5]")
    assert st == E_OBJECTIVE and "out of range" in msg, msg
    st, msg = error_of(model, batch.numpy(), "conv[1, 2, 3, 4]")
    assert st == E_OBJECTIVE and "too many indices" in msg, msg
    st, msg = error_of(model, batch.numpy(), 'fc["dgo"]')
    assert st == E_OBJECTIVE and '"dog"' in msg, msg
    st, msg = error_of(model, batch.numpy(), "conv[3:3]")
    assert st == E_OBJECTIVE and "empty slice" in msg, msg


def test_diversity_is_refused(net, batch):
    model, _ = net
    for text in ["diversity(conv)", "conv[1] + 0.1*diversity(conv)"]:
        st, msg = error_of(model, batch.numpy(), text)
        assert st == E_OBJECTIVE and "diversity" in msg and "batch" in msg and "^" in msg, msg
    # The model is still usable after the errors.
    assert model.objective(batch.numpy(), "conv[0]").shape == (batch.shape[0],)


# ------------------------------------------------------------ text models

@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    from tinygpt import TinyGPT, save_scripted
    torch.manual_seed(7)
    model = TinyGPT(vocab=50, ctx=8).eval()
    path = tmp_path_factory.mktemp("objective") / "gpt.pt"
    save_scripted(model, path, {"kind": "text", "vocab_size": 50, "context": 8})
    return model, actmax.load(str(path), device="cpu")


def gpt_acts(model, ids):
    got = {}
    hs = [model.blocks[i].mlp[1].register_forward_hook(lambda mod, inp, o, i=i: got.__setitem__(i, o.detach()))
          for i in (0, 1)]
    with torch.no_grad():
        model(torch.as_tensor(ids))
    for h in hs:
        h.remove()
    return got  # block -> (B, T, 128)


TEXT_OBJ = "blocks.1.mlp.1[-1, 9] - 0.5 * blocks.0.mlp.1[:, 3] + 1"


def test_text_tokens_and_positions_match_pytorch(gpt):
    """One objective of two terms on token inputs: per prompt (the position
    as written) and per token (the position index set to each token in turn,
    or the position selected where a term has no index there)."""
    model, m = gpt
    ids = np.random.default_rng(0).integers(0, 50, size=(3, 6))
    a = gpt_acts(model, ids)
    want = (a[1][:, -1, 9] - 0.5 * a[0][:, :, 3].mean(1) + 1).numpy()
    got = np.asarray(m.objective(ids, TEXT_OBJ))
    assert np.abs(got - want).max() <= 1e-5
    per = np.asarray(m.objective(ids, TEXT_OBJ, positions=True))
    want_per = (a[1][:, :, 9] - 0.5 * a[0][:, :, 3] + 1).numpy()
    print(f"text objective: max|diff| {np.abs(got - want).max():.1e}, per token {np.abs(per - want_per).max():.1e}")
    assert per.shape == (3, 6) and np.abs(per - want_per).max() <= 1e-5
    # A layer without indices: its mean over the rest at each position.
    per = np.asarray(m.objective(ids, "blocks.1.mlp.1", positions=True))
    assert np.abs(per - a[1].mean(2).numpy()).max() <= 1e-5


def test_text_errors(gpt, net, batch):
    _, m = gpt
    ids = np.zeros((1, 4), dtype=np.int64)
    st, msg = error_of(m, ids, "blocks.1.mlp.1[9, 0]")
    assert st == -6 and "dimension 0 is the position" in msg and "4 tokens" in msg
    st, msg = error_of(m, ids, "blocks.1.mlp.1[-1, 999]")
    assert st == -6 and "dimension 1 (size 128)" in msg
    with pytest.raises(actmax.UnsupportedError) as e:
        net[0].objective(batch.numpy(), "conv[1]", positions=True)
    assert e.value.status == -7 and "text model" in e.value.detail
