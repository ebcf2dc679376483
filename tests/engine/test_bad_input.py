"""Bad input gets an error status and a message; nothing crashes or leaks."""
import ctypes as C
import json
import os

import psutil
import pytest
import torch

import amlib

E_ARG, E_IO, E_FORMAT, E_MODEL, E_LAYER, E_OBJECTIVE, E_DEVICE = -1, -2, -3, -4, -5, -6, -8


def load_status(path, shape=(3, 64, 64), device="cpu"):
    with pytest.raises(amlib.AmError) as e:
        amlib.Model(path, device=device, input_shape=list(shape) if shape else None)
    return e.value.status, e.value.message


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
    m = amlib.Model(resnet18_file[0], input_shape=[3, 64, 64])
    with pytest.raises(amlib.AmError) as e:
        m.tap(torch.zeros(1, 3, 64, 64).numpy(), ["layer3.1.conv3"])
    assert e.value.status == E_LAYER
    assert "closest: layer3.1.conv1" in e.value.message or "closest: layer3.1.conv2" in e.value.message
    with pytest.raises(amlib.AmError) as e:
        m.tap(torch.zeros(1, 3, 64, 64).numpy(), ["layer1.0.relu#3"])
    assert e.value.status == E_LAYER and "#1..#2" in e.value.message
    # The model stays usable after errors.
    (a,) = m.tap(torch.zeros(1, 3, 64, 64).numpy(), ["layer1"])
    assert a.shape == (1, 64, 16, 16)


def test_null_handles_and_codes():
    lib = amlib.lib
    lib.am_model_free(None)
    lib.am_run_free(None)
    lib.am_tensor_release(None)
    assert lib.am_model_load(b"x", None, None, 0, None) == E_ARG
    assert lib.am_model_num_layers(None) == E_ARG
    for code in range(0, -11, -1):
        assert lib.am_strerror(code)
    assert lib.am_strerror(-99) == b"unknown status code"


def test_failed_loads_do_not_leak(tmp_path, resnet18_file):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(resnet18_file[0].read_bytes()[:5000])
    txt = tmp_path / "t.txt"
    txt.write_text("x")
    proc = psutil.Process(os.getpid())

    def churn(n):
        for _ in range(n):
            for p in (bad, txt, tmp_path / "missing.pt"):
                h = C.c_void_p()
                assert amlib.lib.am_model_load(str(p).encode(), b"cpu", None, 0, C.byref(h)) < 0
                amlib.lib.am_model_free(h)

    churn(50)  # warm up allocator caches
    before = proc.memory_info().rss
    churn(300)
    grown = (proc.memory_info().rss - before) / 2**20
    print(f"RSS growth over 900 failed loads: {grown:.1f} MiB")
    assert grown < 16
