"""Loading: from memory (a TorchScript archive written to an io.BytesIO),
with the caller's metadata over the archive's, and the "auto" device."""
import io
import json

import numpy as np
import pytest
import torch

import amlib

E_ARG, E_IO, E_FORMAT = -1, -2, -3


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.fc = torch.nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def small(model_dir):
    torch.manual_seed(7)
    m = Small().eval()
    traced = torch.jit.trace(m, torch.zeros(1, 3, 8, 8))
    meta = {"kind": "image", "input": [3, 8, 8], "mean": [0.5], "std": [0.25], "labels": list("abcde")}
    path = model_dir / "small.pt"
    torch.jit.save(traced, str(path), _extra_files={"actmax.json": json.dumps(meta)})
    buf = io.BytesIO()
    torch.jit.save(traced, buf, _extra_files={"actmax.json": json.dumps(meta)})
    bare = io.BytesIO()
    torch.jit.save(torch.jit.script(m), bare)  # no metadata at all
    return dict(model=m, path=path, data=buf.getvalue(), bare=bare.getvalue())


def test_memory_gives_the_same_taps_as_the_file(small):
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    a = amlib.Model(small["path"])
    b = amlib.Model(data=small["data"])
    layers = ["conv", "relu", "fc"]
    ta, tb = a.tap(x, layers), b.tap(x, layers)
    for la, lb in zip(ta, tb):
        assert np.array_equal(la, lb)
    with torch.no_grad():
        ref = small["model"](torch.from_numpy(x)).numpy()
    assert np.allclose(tb[2], ref, atol=1e-5)
    assert b.labels() == list("abcde")
    assert b.normalization() == ([0.5] * 3, [0.25] * 3, [0.0, 1.0])
    assert [l["name"] for l in b.layers()] == [l["name"] for l in a.layers()]


def test_metadata_sets_and_overrides(small):
    # A scripted module with no actmax.json: everything from the caller.
    meta = {"kind": "image", "input": [3, 8, 8], "mean": [0.1, 0.2, 0.3], "std": [1, 2, 4],
            "range": [0, 255], "labels": ["p", "q", "r", "s", "t"], "dataset": "fashion-mnist"}
    m = amlib.Model(data=small["bare"], metadata=meta)
    assert m.note == ""
    assert m.labels() == meta["labels"]
    mean, sd, rng = m.normalization()
    assert np.allclose(mean, meta["mean"]) and np.allclose(sd, meta["std"]) and rng == [0.0, 255.0]
    amlib.lib.am_model_dataset.restype = amlib.C.c_char_p
    amlib.lib.am_model_dataset.argtypes = [amlib.C.c_void_p]
    assert amlib.lib.am_model_dataset(m.h) == b"fashion-mnist"
    # Keys given win over the archive's; the others stay.
    o = amlib.Model(data=small["data"], metadata={"labels": ["v", "w", "x", "y", "z"], "range": [-1, 1]})
    assert o.labels() == ["v", "w", "x", "y", "z"]
    assert o.normalization() == ([0.5] * 3, [0.25] * 3, [-1.0, 1.0])
    # With a path too.
    f = amlib.Model(small["path"], metadata='{"mean": [0], "std": [1]}')
    assert f.normalization()[0] == [0.0] * 3
    # Without metadata the bare module needs an input shape, as from a file.
    with pytest.raises(amlib.AmError) as e:
        amlib.Model(data=small["bare"], metadata={})
    assert e.value.status == E_ARG and "input shape is unknown" in e.value.message


def test_bad_load_options(small, tmp_path):
    cases = [
        (dict(data=small["data"], metadata='{"labels": [1, 2'), E_FORMAT, "metadata"),
        (dict(data=small["data"], metadata='[1, 2]'), E_FORMAT, "JSON object"),
        (dict(data=small["data"], metadata={"range": [1, 0]}), E_FORMAT, "metadata: \"range\""),
        (dict(data=small["data"], metadata={"labels": "abc"}), E_FORMAT, "metadata: \"labels\""),
        (dict(path=small["path"], data=small["data"]), E_ARG, "not both"),
        (dict(data=b"not a zip archive"), E_FORMAT, "io.BytesIO"),
        (dict(data=small["data"][: len(small["data"]) // 2]), E_FORMAT, "truncated"),
        (dict(path=tmp_path / "missing.pt", metadata={}), E_IO, "missing.pt"),
        (dict(data=small["data"], device="tpu"), -8, "auto, cpu, cuda"),
    ]
    for kw, status, words in cases:
        with pytest.raises(amlib.AmError) as e:
            amlib.Model(**kw)
        print(f"  {sorted(kw)}: {e.value}")
        assert e.value.status == status and words in e.value.message


def test_auto_device_is_what_libtorch_reports(small):
    m = amlib.Model(small["path"], device="auto")
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert m.device == want
    x = np.zeros((1, 3, 8, 8), np.float32)
    assert m.tap(x, ["fc"])[0].shape == (1, 5)
    # NULL stays the CPU.
    n = amlib.Model(small["path"], device=None, data=None, metadata={})
    assert n.device == "cpu"
