"""Dataset examples for image models (am_examples) against PyTorch.

A small CNN with fixed random weights is saved with metadata declaring
"range": [0, 255] and a mean/std in that range, so a scanner that forgot the
range (scoring the [0, 1] pixels as read) would rank and value the images
differently. Every figure is recomputed in PyTorch on the IDX files of
Debian's dataset-fashion-mnist, and the engine's own am_model_objective on
the same input must agree with the examples' values.
"""
import gzip
import json
import os

import numpy as np
import pytest
import torch

import amlib

DATA = "/usr/share/datasets/fashion-mnist"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
          "Ankle boot"]
MEAN, STD = 72.9, 90.0  # in the 0..255 range the metadata declares
LIMIT = 1500            # test images scanned: enough for a meaningful top-k, quick on CPU
E_ARG, E_FORMAT, E_LAYER, E_OBJECTIVE, E_UNSUPPORTED = -1, -3, -5, -6, -7

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DATA}/t10k-images-idx3-ubyte.gz"),
                                reason="dataset-fashion-mnist is not installed (scripts/install-deps.sh)")


def idx(name):
    with gzip.open(f"{DATA}/{name}", "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 5, padding=2)
        self.relu = torch.nn.ReLU()
        self.pool = torch.nn.MaxPool2d(4)
        self.fc = torch.nn.Linear(8 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


@pytest.fixture(scope="module")
def net(model_dir):
    torch.manual_seed(3)
    model = Net().eval()
    meta = {"kind": "image", "input": [1, 28, 28], "mean": [MEAN], "std": [STD], "range": [0, 255],
            "labels": LABELS, "dataset": "fashion-mnist"}
    path = model_dir / "range255.pt"
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 28, 28)), str(path),
                   _extra_files={"actmax.json": json.dumps(meta)})
    images = idx("t10k-images-idx3-ubyte.gz")[:LIMIT].astype(np.float32)  # 0..255, as the model expects
    labels = idx("t10k-labels-idx1-ubyte.gz")[:LIMIT].astype(np.int64)
    return dict(model=model, path=path, am=amlib.Model(path), images=images[:, None], labels=labels)


def torch_values(net, objective_fn):
    x = (torch.from_numpy(net["images"]) - MEAN) / STD
    got = {}
    hooks = [net["model"].conv.register_forward_hook(lambda m, i, o: got.setdefault("conv", o)),
             net["model"].pool.register_forward_hook(lambda m, i, o: got.setdefault("pool", o))]
    with torch.no_grad():
        got["fc"] = net["model"](x)
    for h in hooks:
        h.remove()
    return objective_fn(got).numpy()


@pytest.mark.parametrize("objective,fn", [
    ("conv[3]", lambda a: a["conv"][:, 3].mean((1, 2))),
    ("fc[\"Sneaker\"] - 0.5*fc[5]", lambda a: a["fc"][:, 7] - 0.5 * a["fc"][:, 5]),
    ("pool[1, 2, 3]", lambda a: a["pool"][:, 1, 2, 3]),
])
def test_topk_matches_pytorch(net, objective, fn):
    K = 9
    r = amlib.examples(net["am"], objective, k=K, limit=LIMIT, batch=256)
    ref = torch_values(net, fn)
    order = np.argsort(-ref, kind="stable")[:K]
    print(f"\n{objective}: engine top {[round(e['value'], 4) for e in r['items'][:3]]}, "
          f"PyTorch {[round(float(ref[i]), 4) for i in order[:3]]}")
    assert r["kind"] == amlib.DATASET_IMAGE and r["scanned"] == LIMIT and r["cancelled"] == 0
    assert len(r["items"]) == K
    # Values to float32 rounding of the model's own arithmetic; ranks equal
    # unless two images lie within that rounding of each other.
    vals = np.array([e["value"] for e in r["items"]])
    assert np.allclose(vals, ref[order], rtol=1e-4, atol=1e-4)
    for e, i in zip(r["items"], order):
        if e["index"] != i:
            assert abs(ref[e["index"]] - ref[i]) <= 1e-4 * max(1, abs(ref[i]))
    assert r["max"] == r["items"][0]["value"]
    for e in r["items"]:
        # The image in the model's value range, the label with its name.
        assert e["image"].shape == (1, 28, 28)
        assert np.array_equal(e["image"], net["images"][e["index"]])
        assert e["label"] == net["labels"][e["index"]]
        assert e["label_name"] == LABELS[e["label"]]


def test_same_value_as_the_objective_on_the_same_image(net):
    """The range is applied as runs apply it: an example's value is what
    am_model_objective gives on the image scaled the same way."""
    r = amlib.examples(net["am"], "conv[6]", k=5, limit=LIMIT)
    img = np.stack([e["image"] for e in r["items"]])  # (5, 1, 28, 28) in 0..255
    direct = net["am"].objective((img - MEAN) / STD, "conv[6]")
    vals = np.array([e["value"] for e in r["items"]])
    print(f"\nexamples {vals}, am_model_objective {direct}")
    assert np.allclose(vals, direct, rtol=1e-5, atol=1e-5)
    # Scoring the [0, 1] pixels as read (the range dropped) gives other values.
    wrong = net["am"].objective((img / 255.0 - MEAN) / STD, "conv[6]")
    assert not np.allclose(vals, wrong, rtol=1e-2)


def test_progress_cancel_and_split(net):
    B, K = 200, 4
    calls = []
    r = amlib.examples(net["am"], "conv[3]", k=K, limit=LIMIT, batch=B,
                       progress=lambda s, t, b: calls.append((s, t, b)))
    assert [c[0] for c in calls] == [min((i + 1) * B, LIMIT) for i in range(len(calls))]
    assert all(c[1] == LIMIT for c in calls) and calls[-1][2] == r["max"]
    # Cancelled after the first batch: the top k of the items read.
    calls = []
    r = amlib.examples(net["am"], "conv[3]", k=K, limit=LIMIT, batch=B,
                       progress=lambda s, t, b: calls.append((s, t, b)) or True)
    ref = torch_values(net, lambda a: a["conv"][:, 3].mean((1, 2)))[:B]
    assert len(calls) == 1 and r["cancelled"] == 1 and r["scanned"] == B
    assert [e["index"] for e in r["items"]] == list(np.argsort(-ref, kind="stable")[:K])
    # The training split is another set of images.
    tr = amlib.examples(net["am"], "conv[3]", k=1, limit=300, split="train")
    first = idx("train-images-idx3-ubyte.gz")[tr["items"][0]["index"]].astype(np.float32)
    assert np.array_equal(tr["items"][0]["image"][0], first)


def test_bad_requests(net, model_dir, resnet18_file):
    am = net["am"]
    cases = [
        (dict(objective="conv[3] + diversity(conv)"), E_OBJECTIVE, "diversity"),
        (dict(objective="conv[[3]"), E_OBJECTIVE, "^"),
        (dict(objective="conv[99]"), E_OBJECTIVE, "out of range"),
        (dict(objective="convv[1]"), E_LAYER, "conv"),
        (dict(objective="conv[1]", k=-1), E_ARG, "k must be"),
        (dict(objective="conv[1]", limit=-5), E_ARG, "limit"),
        (dict(objective="conv[1]", split="validation"), E_ARG, "validation"),
        (dict(objective="conv[1]", dataset="fashion-mnist", path=str(model_dir)), -2, str(model_dir)),
        (dict(objective="conv[1]", dataset="imagenet"), E_ARG, "imagenet"),
    ]
    for kw, status, words in cases:
        with pytest.raises(amlib.AmError) as e:
            amlib.examples(am, kw.pop("objective"), **{"limit": 300, **kw})
        print(f"  {kw}: {e.value}")
        assert e.value.status == status and words in e.value.message
    # A model whose metadata names no dataset, and one of another input shape.
    path, _ = resnet18_file
    other = amlib.Model(path, input_shape=[3, 64, 64])
    with pytest.raises(amlib.AmError) as e:
        amlib.examples(other, "layer1[0]")
    assert e.value.status == E_UNSUPPORTED and "names no dataset" in e.value.message
    with pytest.raises(amlib.AmError) as e:
        amlib.examples(other, "layer1[0]", dataset="fashion-mnist", limit=10)
    assert e.value.status == E_UNSUPPORTED and "[1, 28, 28]" in e.value.message
    # The handle still works after every failure.
    assert amlib.examples(am, "conv[1]", k=1, limit=10)["scanned"] == 10
