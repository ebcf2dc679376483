"""am_model_objective: the objective language of runs evaluated on a batch of
given inputs, against the same indexing done in PyTorch, and its errors."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import amlib

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
    return amlib.Model(path), m


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
    got = model.objective(batch.numpy(), text)
    assert got.shape == (batch.shape[0],)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Items do not depend on each other: one item alone gives the same value.
    np.testing.assert_allclose(model.objective(batch[3:4].numpy(), text), want[3:4], rtol=1e-5, atol=1e-5)


def test_same_number_as_a_run(net):
    """A run's final activation is the objective of its image (mean 0, std 1:
    the image is the model input); am_model_objective gives it too."""
    model, _ = net
    for text in ["conv[1] - 0.5*conv[2] + 2", 'fc["dog"]']:
        run = amlib.Run(model, text, steps=3, batch=2)
        got = model.objective(run.images, text)
        np.testing.assert_allclose(got, run.final, rtol=1e-5, atol=1e-5)


def error_of(model, x, text):
    with pytest.raises(amlib.AmError) as e:
        model.objective(x, text)
    return e.value.status, e.value.message


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
