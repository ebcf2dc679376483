"""models/export.py on a torchvision model with random weights, through the
function and the command line, and its errors."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torchvision

import export

EXPORT = os.path.join(os.path.dirname(export.__file__), "export.py")


def read(path):
    files = {"actmax.json": ""}
    m = torch.jit.load(path, _extra_files=files)
    return m, json.loads(files["actmax.json"])


def test_function_resnet18(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    path = str(tmp_path / "resnet18.pt")
    labels = [f"class {i}" for i in range(1000)]
    export.export(net, path, input=[3, 64, 64], labels=labels, dataset="mine")
    m, meta = read(path)
    assert meta["kind"] == "image" and meta["input"] == [3, 64, 64]
    assert meta["mean"] == export.IMAGENET_MEAN and meta["std"] == export.IMAGENET_STD
    assert meta["labels"] == labels and meta["dataset"] == "mine"
    assert "layer3.1.conv2" in {n for n, _ in m.named_modules()}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), net(x), rtol=1e-4, atol=1e-4)


def test_cli_resnet18_with_weights(tmp_path):
    torch.manual_seed(1)
    net = torchvision.models.resnet18(weights=None)
    weights = tmp_path / "w.pth"
    torch.save(net.state_dict(), weights)
    out = tmp_path / "r18.pt"
    r = subprocess.run([sys.executable, EXPORT, "--arch", "resnet18", "--weights", str(weights),
                        "--out", str(out), "--input", "3x32x32"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m, meta = read(str(out))
    assert meta["input"] == [3, 32, 32]
    assert len(meta["labels"]) == 1000 and meta["labels"][0] == "tench"  # ImageNet names
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m(x), net.eval()(x), rtol=1e-4, atol=1e-4)


def test_errors_are_explained(tmp_path):
    net = torchvision.models.resnet18(weights=None)
    with pytest.raises(export.ExportError, match="one label per output unit"):
        export.export(net, str(tmp_path / "a.pt"), input=[3, 32, 32], labels=["a", "b"])
    with pytest.raises(export.ExportError, match="one value per input channel"):
        export.export(net, str(tmp_path / "a.pt"), input=[3, 32, 32], mean=[0.5], std=[0.5])
    with pytest.raises(export.ExportError, match="the model fails on an input of shape"):
        export.export(net, str(tmp_path / "a.pt"), input=[1, 32, 32])
    with pytest.raises(export.ExportError, match="write it like 3x224x224"):
        export.export(net, str(tmp_path / "a.pt"), input="three")
    r = subprocess.run([sys.executable, EXPORT, "--arch", "resnet1800", "--out",
                        str(tmp_path / "b.pt")], capture_output=True, text=True)
    assert r.returncode == 2 and "no architecture 'resnet1800'" in r.stderr
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()
