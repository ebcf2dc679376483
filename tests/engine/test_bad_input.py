"""Bad input gets an error status and a message; nothing crashes or leaks.
(NULL handles are checked in test_contract.py, below the module.)"""
import json
import os

import psutil
import pytest
import torch

import actmax
import actmax.raw as raw

E_ARG, E_IO, E_FORMAT, E_MODEL, E_LAYER, E_OBJECTIVE, E_DEVICE = -1, -2, -3, -4, -5, -6, -8


def load_status(path, shape=(3, 64, 64), device="cpu"):
    # A failed load raises ModelError, as %model does; e.status says why.
    with pytest.raises(actmax.ModelError) as e:
        raw.load(path, device=device, input_shape=shape)
    return e.value.status, e.value.detail


def test_missing_file(tmp_path):
    st, msg = load_status(tmp_path / "nope.pt")
    assert st == E_IO and "nope.pt" in msg and "No such file" in msg


def test_not_torchscript(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello, not a model\n")
    st, msg = load_status(p)
    assert st == E_FORMAT and "not a TorchScript file" in msg


def test_truncated_file(tmp_path, resnet18_file):
    src, _ = resnet18_file
    data = src.read_bytes()
    p = tmp_path / "half.pt"
    p.write_bytes(data[: len(data) // 2])
    st, msg = load_status(p)
    assert st == E_FORMAT and "truncated or corrupt" in msg


def test_forward_fails_on_declared_shape(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    p = tmp_path / "lin.pt"
    torch.jit.trace(model, torch.randn(1, 3, 2, 2)).save(str(p))
    st, msg = load_status(p, shape=(3, 5, 5))
    assert st == E_MODEL and "[1, 3, 5, 5]" in msg


def test_no_shape_without_metadata(resnet18_file):
    st, msg = load_status(resnet18_file[0], shape=None)
    assert st == E_ARG and "input=3x224x224" in msg


def test_bad_metadata(tmp_path):
    model = torch.nn.Conv2d(1, 2, 3)
    p = tmp_path / "meta.pt"
    torch.jit.save(torch.jit.script(model), str(p), _extra_files={"actmax.json": '{"kind": "image", "input": [1, 8'})
    st, msg = load_status(p, shape=None)
    assert st == E_FORMAT and "actmax.json" in msg
    torch.jit.save(torch.jit.script(model), str(p),
                   _extra_files={"actmax.json": json.dumps({"input": [1, 8, 8], "mean": [0.1, 0.2], "std": [1, 1]})})
    st, msg = load_status(p, shape=None)
    assert st == E_FORMAT and "one value per channel" in msg


def test_bad_device(resnet18_file):
    st, msg = load_status(resnet18_file[0], device="tpu")
    assert st == E_DEVICE and "cpu" in msg


def test_unknown_layer_lists_closest(resnet18_file):
    m = actmax.load(str(resnet18_file[0]), device="cpu", input=(3, 64, 64))
    with pytest.raises(actmax.LayerError) as e:
        m.activations(torch.zeros(1, 3, 64, 64), ["layer3.1.conv3"])
    assert e.value.status == E_LAYER
    assert "closest: layer3.1.conv1" in e.value.detail or "closest: layer3.1.conv2" in e.value.detail
    with pytest.raises(actmax.LayerError) as e:
        m.activations(torch.zeros(1, 3, 64, 64), ["layer1.0.relu#3"])
    assert e.value.status == E_LAYER and "#1..#2" in e.value.detail
    # The model stays usable after errors.
    (a,) = m.activations(torch.zeros(1, 3, 64, 64), ["layer1"])
    assert tuple(a.shape) == (1, 64, 16, 16)


def test_failed_loads_do_not_leak(tmp_path, resnet18_file):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(resnet18_file[0].read_bytes()[:5000])
    txt = tmp_path / "t.txt"
    txt.write_text("x")
    proc = psutil.Process(os.getpid())

    def churn(n):
        for _ in range(n):
            for p in (bad, txt, tmp_path / "missing.pt"):
                with pytest.raises(actmax.ModelError) as e:
                    raw.load(p)
                assert e.value.status < 0

    churn(50)  # warm up allocator caches
    before = proc.memory_info().rss
    churn(300)
    grown = (proc.memory_info().rss - before) / 2**20
    print(f"RSS growth over 900 failed loads: {grown:.1f} MiB")
    assert grown < 16
