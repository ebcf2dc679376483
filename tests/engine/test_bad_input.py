"""Bad input gets an error status and a message; nothing crashes or leaks.
(NULL handles are checked in test_contract.py, below the module.)"""
import json
import os
import re

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


# ---- memory: estimated before a run, refused with what would fit ----------------

_MEASURE = r'''
import json, os, re, sys
import actmax
path, shape, kw = sys.argv[1], tuple(json.loads(sys.argv[2])), json.loads(sys.argv[3])
m = actmax.load(path, device="cpu", input=shape)
# Warm at the model's own size, batch 1: what the first run of a process
# loads once (libtorch's kernels, thread pools) is not the run's.
m.maximize("layer1[0]" if "resnet" in path else "conv[0]", steps=1)
os.environ["ACTMAX_MEMORY_LIMIT"] = "1"
try:
    m.maximize("layer1[0]" if "resnet" in path else "conv[0]", steps=2, **kw)
    raise SystemExit("a 1-byte memory limit let the run through")
except MemoryError as e:
    msg = str(e)
del os.environ["ACTMAX_MEMORY_LIMIT"]
num, unit = re.search(r"needs about ([0-9.]+) (GiB|MiB)", msg).groups()
est = float(num) * (1024 if unit == "GiB" else 1)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # peak RSS (VmHWM) starts again from the current RSS
base = status("VmRSS:")
m.maximize("layer1[0]" if "resnet" in path else "conv[0]", steps=2, **kw)
print(json.dumps({"estimate_mib": est, "growth_mib": status("VmHWM:") - base, "message": msg}))
'''

CONV = """import torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(32, 32, 3, padding=1)
    def forward(self, x):
        return self.conv2(torch.relu(self.conv(x))).mean(dim=(2, 3))
"""


@pytest.mark.parametrize("case", [
    ("conv", (3, 64, 64), {"size": 256, "batch": 4}),
    ("conv", (3, 64, 64), {"size": 512, "batch": 2, "param": "pixel"}),
    ("resnet", (3, 64, 64), {"size": 128, "batch": 8}),
])
def test_memory_estimate_within_2x_of_measured(case, tmp_path, resnet18_file):
    """The estimate a refusal names is within a factor 2 of the peak RSS the
    same run then adds (each in a fresh process)."""
    import subprocess
    import sys
    name, shape, kw = case
    if name == "resnet":
        path = resnet18_file[0]
    else:
        src = tmp_path / "conv_mod.py"
        src.write_text(CONV)
        sys.path.insert(0, str(tmp_path))
        import conv_mod
        path = tmp_path / "conv.pt"
        torch.jit.script(conv_mod.M().eval()).save(str(path))
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(path), json.dumps(shape), json.dumps(kw)],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n{name} {kw}: estimate {r['estimate_mib']:.0f} MiB, measured peak growth "
          f"{r['growth_mib']:.0f} MiB ({r['message']})")
    assert "available" in r["message"]
    assert r["growth_mib"] / 2 <= r["estimate_mib"] <= r["growth_mib"] * 2, r


def test_run_that_cannot_fit_is_refused_with_what_fits(resnet18_file):
    path, _ = resnet18_file
    m = actmax.load(str(path), device="cpu", input=(3, 64, 64))
    os.environ["ACTMAX_MEMORY_LIMIT"] = "64M"
    try:
        with pytest.raises(MemoryError) as e:
            m.maximize("layer2[3]", steps=2, size=512, batch=16)
        assert "needs about" in str(e.value) and "64 MiB available" in str(e.value)
        want = re.search(r"batch=1 at size=(\d+) would fit", str(e.value))
        assert want, str(e.value)
        # What it proposes does run under the same limit.
        r = m.maximize("layer2[3]", steps=2, size=int(want.group(1)), batch=1)
        assert r is not None
    finally:
        del os.environ["ACTMAX_MEMORY_LIMIT"]
    # The model and the session are intact.
    assert m.maximize("layer2[3]", steps=2, batch=2) is not None


def test_metadata_context_is_bounded(tmp_path):
    """A declared context of 1e8 once took 41 s and 10 GiB before failing."""
    import time
    mod = tmp_path / "lm.py"
    mod.write_text("import torch\nclass M(torch.nn.Module):\n    def __init__(self):\n"
                   "        super().__init__()\n        self.emb = torch.nn.Embedding(10, 4)\n"
                   "    def forward(self, x):\n        return self.emb(x)\n")
    import sys
    sys.path.insert(0, str(tmp_path))
    import lm
    path = tmp_path / "lm.pt"
    torch.jit.script(lm.M().eval()).save(str(path), _extra_files={
        "actmax.json": json.dumps({"kind": "text", "context": 1e8})})
    t0 = time.time()
    with pytest.raises(actmax.ModelError) as e:
        raw.load(path, device="cpu")
    assert e.value.status == E_ARG and "context of 100000000" in e.value.detail and "bound of 131072" in e.value.detail
    with pytest.raises(actmax.ModelError) as e:
        raw.load(path, device="cpu", input_shape=(3, 1000000, 1000000))
    assert e.value.status == E_ARG and "bound of" in e.value.detail
    print(f"refused in {time.time() - t0:.2f} s")


def test_text_search_sized_by_memory(model_dir):
    """A prompt length whose gradient step cannot fit is refused with one
    that would; under a limit that only bounds the scoring forwards, the
    sweep takes smaller chunks and finds the same values."""
    import numpy as np
    from tinygpt import TinyGPT, save_scripted, tokenizer_json
    torch.manual_seed(6)
    tok, vocab, _ = tokenizer_json()
    path = model_dir / "gpt_memory.pt"
    save_scripted(TinyGPT(vocab, ctx=8).eval(), path,
                  {"kind": "text", "vocab_size": vocab, "context": 8, "tokenizer": "tokenizer.json"}, tok)
    lm = actmax.load(str(path), device="cpu")
    obj = "blocks.1.mlp.1[-1, 3]"
    free = lm.tokens(obj, len=8, method="sweep")
    try:
        os.environ["ACTMAX_MEMORY_LIMIT"] = "1K"
        with pytest.raises(MemoryError) as e:
            lm.tokens(obj, len=8, method="sweep")
        assert "a gradient step at len=8 needs about" in str(e.value), str(e.value)
        suggested = None
        for limit in ["400K", "200K", "100K", "50K", "25K", "12K", "6K"]:
            os.environ["ACTMAX_MEMORY_LIMIT"] = limit
            try:
                lm.tokens(obj, len=8, method="sweep")
            except MemoryError as err:
                suggested = re.search(r"len=(\d+) would fit", str(err))
                if suggested:
                    break
        assert suggested and 1 <= int(suggested.group(1)) < 8
        os.environ["ACTMAX_MEMORY_LIMIT"] = "1M"
        bounded = lm.tokens(obj, len=8, method="sweep")
    finally:
        del os.environ["ACTMAX_MEMORY_LIMIT"]
    a, b = np.asarray(free.sweep), np.asarray(bounded.sweep)
    assert a.shape == b.shape == (vocab,)
    assert np.abs(a - b).max() <= 1e-5, np.abs(a - b).max()
