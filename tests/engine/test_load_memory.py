"""The load probe's memory: a large image input is estimated from a probe at a
reduced size, and a text model's long context from probes at three shorter
ones, before the full-size probe forward runs, and refused when it will not
fit. ACTMAX_MEMORY_LIMIT is read from the environment at each check,
so each case runs in a fresh process of its own."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

E_NOMEM = -9


class Resizable(torch.nn.Module):
    """A small conv net that takes any image size (global mean at the end)."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.conv3 = torch.nn.Conv2d(32, 32, 3, padding=1)
        self.fc = torch.nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.fc(x.mean(dim=(2, 3)))


class ExactSize(torch.nn.Module):
    """The same net, refusing any size but 1536x1536."""

    def __init__(self):
        super().__init__()
        self.net = Resizable()

    def forward(self, x):
        if x.size(2) != 1536 or x.size(3) != 1536:
            raise ValueError("this model takes 1536x1536 images only")
        return self.net(x)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("load_memory")
    torch.manual_seed(3)
    paths = {}
    for name, cls in [("resizable", Resizable), ("exact", ExactSize)]:
        paths[name] = d / f"{name}.pt"
        torch.jit.script(cls().eval()).save(str(paths[name]))  # no actmax.json: input given at load
    return paths


def in_fresh_process(code, *args):
    """Runs code in a new Python with the test's environment; returns the
    JSON it prints last."""
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                         timeout=540, env=dict(os.environ))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


_REFUSE = r'''
import json, os, sys
import actmax, actmax.raw as raw
path, side, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if limit:
    os.environ["ACTMAX_MEMORY_LIMIT"] = limit
r = {}
try:
    raw.load(path, device="cpu", input_shape=(3, side, side))
    r["loaded"] = True
except actmax.ModelError as e:
    r.update(loaded=False, status=e.status, detail=e.detail)
print(json.dumps(r))
'''

_REFUSE_THEN_FIT = r'''
import json, os, re, sys
import actmax, actmax.raw as raw
path, side, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.environ["ACTMAX_MEMORY_LIMIT"] = limit
r = {}
try:
    raw.load(path, device="cpu", input_shape=(3, side, side))
    raise SystemExit(f"input 3x{side}x{side} loaded under ACTMAX_MEMORY_LIMIT={limit}")
except actmax.ModelError as e:
    r.update(status=e.status, detail=e.detail)
# The process goes on: what the refusal proposes loads under the same limit,
# and so does a small input, which then runs.
fit = re.search(r"input=3x(\d+)x(\d+) would fit", r["detail"])
if fit:
    n = int(fit.group(1))
    m = raw.load(path, device="cpu", input_shape=(3, n, n))
    r["fit_shape"] = [int(d) for d in m.input_shape]
small = raw.load(path, device="cpu", input_shape=(3, 64, 64))
run = raw.run(small, ["conv1[0]"], steps=2)
r["small_activation"] = float(run.activation[0])
print(json.dumps(r))
'''


def test_large_input_refused_with_what_fits(models):
    """3x4096x4096 (a forward of about 2 GiB) under a 256 MiB limit is refused
    before the probe forward, naming the estimate and an input that fits;
    that input then loads under the same limit, and the process goes on."""
    r = in_fresh_process(_REFUSE_THEN_FIT, models["resizable"], 4096, "256M")
    print(f"\n{r['detail']}")
    assert r["status"] == E_NOMEM, r
    m = re.fullmatch(r"the model's probe forward at 1x3x4096x4096 needs about ([0-9.]+) (GiB|MiB), "
                     r"256 MiB available; input=3x(\d+)x(\d+) would fit", r["detail"])
    assert m, r["detail"]
    need = float(m.group(1)) * (1024 if m.group(2) == "GiB" else 1)
    n, n2 = int(m.group(3)), int(m.group(4))
    # conv1's output alone is 16x4096x4096 floats, 1 GiB.
    assert need > 1024, need
    assert n == n2 and n % 8 == 0 and 0 < n < 4096
    # By the area scaling the estimate uses, n is the largest multiple of 8
    # that fits (up to the rounding of the estimate in the message).
    rounding = 0.05 * 1024 if m.group(2) == "GiB" else 1
    assert (need - rounding) * (n / 4096) ** 2 <= 256 < (need + rounding) * ((n + 8) / 4096) ** 2, (need, n)
    assert r["fit_shape"] == [3, n, n]
    assert r["small_activation"] == r["small_activation"]  # a number, not NaN


_MEASURE = r'''
import json, os, re, sys
import torch
import actmax, actmax.raw as raw
path, side = sys.argv[1], int(sys.argv[2])
shape = (3, side, side)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
def peak_growth(f):
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # peak RSS (VmHWM) starts again from the current RSS
    base = status("VmRSS:")
    f()
    return status("VmHWM:") - base
# Warm both sides at a small size: what the first forward of a process loads
# once (kernels, thread pools) is not the forward's.
raw.load(path, device="cpu", input_shape=(3, 64, 64))
mod = torch.jit.load(path).eval()
with torch.no_grad():
    mod(torch.zeros(1, 3, 64, 64))
# The estimate, as a refusal under a 1-byte limit names it.
os.environ["ACTMAX_MEMORY_LIMIT"] = "1"
try:
    raw.load(path, device="cpu", input_shape=shape)
    raise SystemExit("a 1-byte memory limit let the probe through")
except actmax.ModelError as e:
    msg = e.detail
del os.environ["ACTMAX_MEMORY_LIMIT"]
num, unit = re.search(r"needs about ([0-9.]+) (GiB|MiB)", msg).groups()
est = float(num) * (1024 if unit == "GiB" else 1)
# The full-size no-grad forward, its input included (the probe makes it too).
def forward():
    with torch.no_grad():
        mod(torch.zeros(1, *shape))
fwd = peak_growth(forward)
# The engine's load at that size: the forward plus the weights read again.
load = peak_growth(lambda: raw.load(path, device="cpu", input_shape=shape))
print(json.dumps({"estimate_mib": est, "forward_mib": fwd, "load_mib": load, "message": msg}))
'''


@pytest.mark.parametrize("name", ["resizable", "resnet18"])
def test_estimate_within_2x_of_measured(name, models, resnet18_file):
    """The estimate for 3x1536x1536 is within a factor 2 of the peak RSS the
    same no-grad forward adds in a fresh process."""
    path = resnet18_file[0] if name == "resnet18" else models[name]
    r = in_fresh_process(_MEASURE, path, 1536)
    print(f"\n{name} at 3x1536x1536: estimate {r['estimate_mib']:.0f} MiB, measured peak growth of the "
          f"no-grad forward {r['forward_mib']:.0f} MiB (of the engine's whole load {r['load_mib']:.0f} MiB)")
    assert r["message"].startswith("the model's probe forward at 1x3x1536x1536 needs about"), r
    assert r["forward_mib"] / 2 <= r["estimate_mib"] <= r["forward_mib"] * 2, r


def test_exact_size_model_skips_the_estimate(models):
    """A forward that only accepts its own size has no reduced probe: the
    estimate is skipped and the model loads as before, even under a limit
    that refuses the same net when it accepts other sizes."""
    r = in_fresh_process(_REFUSE, models["resizable"], 1536, "64M")
    assert not r["loaded"] and r["status"] == E_NOMEM and "64 MiB available" in r["detail"], r
    r = in_fresh_process(_REFUSE, models["exact"], 1536, "64M")
    assert r["loaded"], r
    # Its own check still speaks at any other size.
    r = in_fresh_process(_REFUSE, models["exact"], 1024, "")
    assert not r["loaded"] and "takes 1536x1536 images only" in r["detail"], r


@pytest.fixture(scope="module")
def gpt8192(tmp_path_factory):
    import tinygpt
    path = tmp_path_factory.mktemp("load_memory_text") / "gpt8192.pt"
    tinygpt.saved_gpt(path, 8192)  # nn.MultiheadAttention: its scores are made inside if blocks
    return path


_TEXT = r'''
import json, os, re, sys
import actmax, actmax.raw as raw
path, limit = sys.argv[1], sys.argv[2]
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
r = {}
raw.load(path, device="cpu", input_shape=(512,))  # libtorch and the weights warmed once
os.environ["ACTMAX_MEMORY_LIMIT"] = limit
try:
    raw.load(path, device="cpu")
    r["loaded"] = True
except actmax.ModelError as e:
    r.update(loaded=False, status=e.status, detail=e.detail)
fit = re.search(r"a context of (\d+) would fit", r.get("detail", ""))
if fit:
    m = raw.load(path, device="cpu", input_shape=(int(fit.group(1)),))
    r["fit_shape"] = [int(d) for d in m.input_shape]
del os.environ["ACTMAX_MEMORY_LIMIT"]
if limit == "1":
    # The declared context's load, measured: its probe forward dominates.
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = status("VmRSS:")
    raw.load(path, device="cpu")
    r["load_mib"] = status("VmHWM:") - base
print(json.dumps(r))
'''


def test_long_text_context_estimated_and_refused_with_what_fits(gpt8192):
    """A 2-layer GPT declaring a context of 8192 (a probe forward of about
    2.4 GiB: the attention scores grow with the square of the length) under
    a 1 GiB limit is refused before the probe, naming the estimate and a
    context that fits; that context then loads under the same limit. The
    estimate is within a factor 2 of the peak RSS the full load adds."""
    r = in_fresh_process(_TEXT, gpt8192, "1G")
    print(f"\n{r.get('detail')}")
    assert not r["loaded"] and r["status"] == E_NOMEM, r
    m = re.fullmatch(r"the model's probe forward at a context of 8192 tokens needs about ([0-9.]+) GiB, 1.0 GiB "
                     r"available; a context of (\d+) would fit \(actmax.json's \"context\", or input=\d+\)",
                     r["detail"])
    assert m, r["detail"]
    n = int(m.group(2))
    assert 1024 < n < 8192 and n % 64 == 0 and r["fit_shape"] == [n], r
    r = in_fresh_process(_TEXT, gpt8192, "1")
    est = float(re.search(r"needs about ([0-9.]+) GiB", r["detail"]).group(1)) * 1024
    print(f"context 8192: estimate {est:.0f} MiB, measured peak growth of the load {r['load_mib']:.0f} MiB")
    assert r["load_mib"] / 2 <= est <= r["load_mib"] * 2, (est, r)
