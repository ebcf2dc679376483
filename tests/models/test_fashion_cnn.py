"""fashion-cnn: loads, carries its metadata, names its layers readably, and
reaches >= 90% accuracy on the 10k Fashion-MNIST test images, recomputed here
from the saved file."""
import numpy as np
import torch

import fmnist
from conftest import load_model, metadata


def test_metadata():
    m, files = load_model("fashion-cnn")
    meta = metadata(files)
    assert meta["kind"] == "image"
    assert meta["input"] == [1, 28, 28]
    assert meta["dataset"] == "fashion-mnist"
    assert meta["normalize"] == "engine"
    assert meta["range"] == [0, 1]
    assert meta["labels"] == fmnist.LABELS
    assert len(meta["mean"]) == 1 and len(meta["std"]) == 1
    # The stated normalization is the training images' own statistics.
    x, _ = fmnist.load("train")
    x = x.astype(np.float64) / 255.0
    assert abs(meta["mean"][0] - x.mean()) < 1e-3
    assert abs(meta["std"][0] - x.std()) < 1e-3


def test_layer_names():
    m, _ = load_model("fashion-cnn")
    names = {n for n, _ in m.named_modules()}
    for want in ["conv1", "conv2", "conv3", "conv2.conv", "conv2.relu", "conv2.pool", "fc"]:
        assert want in names, f"{want} missing from {sorted(names)}"
    # conv2[5] must select a channel: conv2's output is (N, C, H, W).
    out = m.conv2(m.conv1(torch.zeros(1, 1, 28, 28)))
    assert out.dim() == 4 and out.shape[1] > 5


def test_accuracy():
    m, files = load_model("fashion-cnn")
    meta = metadata(files)
    m.eval()
    images, labels = fmnist.load("test")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x = (x - meta["mean"][0]) / meta["std"][0]  # the engine's job, per the metadata
    y = torch.from_numpy(labels.astype(np.int64))
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], 1000):
            logits = m(x[i:i + 1000])
            assert logits.shape == (min(1000, x.shape[0] - i), 10)
            correct += (logits.argmax(1) == y[i:i + 1000]).sum().item()
    acc = correct / x.shape[0]
    print(f"fashion-cnn test accuracy {acc:.4f} on {x.shape[0]} images")
    assert x.shape[0] == 10000
    assert acc >= 0.90
