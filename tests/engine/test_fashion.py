"""Optimization works on a trained model.

Trains a small Fashion-MNIST CNN here (under a minute on the CPU) from the
IDX files of Debian's dataset-fashion-mnist, saves it with actmax.json, and
checks that optimized images drive conv channels and class logits far above
random inputs and above the best of 1000 test images.
"""
import gzip
import json
import os
import time

import numpy as np
import pytest
import torch

import actmax
import actmax.raw as raw

DATA = "/usr/share/datasets/fashion-mnist"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
          "Ankle boot"]
MEAN, STD = 0.286, 0.353

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DATA}/train-images-idx3-ubyte.gz"),
                                reason="dataset-fashion-mnist is not installed (scripts/install-deps.sh)")


def idx(name):
    with gzip.open(f"{DATA}/{name}", "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


class FashionCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.relu1 = torch.nn.ReLU()
        self.pool1 = torch.nn.MaxPool2d(2)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = torch.nn.ReLU()
        self.pool2 = torch.nn.MaxPool2d(2)
        self.fc1 = torch.nn.Linear(32 * 7 * 7, 64)
        self.relu3 = torch.nn.ReLU()
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(self.relu3(self.fc1(x.flatten(1))))


@pytest.fixture(scope="module")
def fashion(model_dir):
    torch.manual_seed(0)
    x = torch.from_numpy(idx("train-images-idx3-ubyte.gz").astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(idx("train-labels-idx1-ubyte.gz").astype(np.int64))
    xt = torch.from_numpy(idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0).unsqueeze(1)
    yt = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))
    model = FashionCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    t0 = time.time()
    for epoch in range(2):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            b = perm[i:i + 128]
            loss = torch.nn.functional.cross_entropy(model((x[b] - MEAN) / STD), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if time.time() - t0 > 50:
                break
    model.eval()
    with torch.no_grad():
        acc = float((model((xt - MEAN) / STD).argmax(1) == yt).float().mean())
    print(f"\nfashion-cnn trained in {time.time() - t0:.1f} s, test accuracy {acc:.3f}")
    meta = {"kind": "image", "input": [1, 28, 28], "mean": [MEAN], "std": [STD], "labels": LABELS,
            "dataset": "fashion-mnist"}
    path = model_dir / "fashion.pt"
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 28, 28)), str(path),
                   _extra_files={"actmax.json": json.dumps(meta)})
    return path, xt[:1000].numpy(), acc


def test_metadata_from_the_file(fashion):
    m = actmax.load(str(fashion[0]), device="cpu")
    assert m.note == ""
    assert len(m.labels) == 10
    assert m.labels[7] == "Sneaker"


def test_channels_beat_random_and_dataset(fashion):
    path, images, acc = fashion
    assert acc > 0.8
    m = actmax.load(str(path), device="cpu")
    chans = list(range(32))
    run = raw.run(m, [f"conv2[{c}]" for c in chans], steps=128, lr=0.05, seed=0)
    opt = run.final
    ds = np.asarray(m.activations((images - MEAN) / STD, "conv2"))
    best_ds = ds.mean(axis=(2, 3)).max(axis=0)
    rnd = np.random.default_rng(0).uniform(0, 1, (200, 1, 28, 28)).astype(np.float32)
    ra = np.asarray(m.activations((rnd - MEAN) / STD, "conv2"))
    rnd_mean = ra.mean(axis=(2, 3)).mean(axis=0)
    rnd_max = ra.mean(axis=(2, 3)).max(axis=0)
    beat_ds = int((opt > best_ds).sum())
    beat_rnd = int((opt > rnd_max).sum())
    print(f"conv2 channel sweep in one batch of 32, 128 steps, {run.seconds:.1f} s")
    print(f"  optimized > best of 1000 test images: {beat_ds}/32 channels")
    print(f"  optimized > best of 200 random images: {beat_rnd}/32 channels")
    print(f"  median optimized {np.median(opt):.2f}, median best-dataset {np.median(best_ds):.2f}, "
          f"median random mean {np.median(rnd_mean):.2f}")
    print(f"  median (optimized - random mean) / (best dataset - random mean): "
          f"{np.median((opt - rnd_mean) / np.maximum(best_ds - rnd_mean, 1e-6)):.2f}")
    assert beat_rnd >= 28
    assert beat_ds > 16, "most channels should beat the dataset"


def test_logits_by_label(fashion):
    path, images, _ = fashion
    m = actmax.load(str(path), device="cpu")
    run = raw.run(m, [f'fc["{l}"]' for l in LABELS], steps=128, lr=0.05, seed=0)
    logits = np.asarray(m.activations((images - MEAN) / STD, "fc"))
    best_ds = logits.max(axis=0)
    print("logit by label: optimized vs best of 1000 test images")
    for l, o, d in zip(LABELS, run.final, best_ds):
        print(f"  {l:12s} {o:8.2f} {d:8.2f}")
    assert int((run.final > best_ds).sum()) >= 6
    with pytest.raises(actmax.ObjectiveError) as e:
        raw.run(m, 'fc["Sneakers"]', steps=1)
    assert 'closest: "Sneaker"' in e.value.detail
