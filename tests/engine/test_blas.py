"""libtorch's matrix products must use an optimized BLAS, not the reference."""
import subprocess
import sys

import pytest

import numpy as np  # noqa: F401  (loads the same libblas as the engine would)
import torch

import actmax


def test_engine_reports_optimized_blas():
    info = actmax.engine()
    path, optimized = info["blas"], info["blas_optimized"]
    print("BLAS in use:", path)
    assert path, "the engine named no BLAS library"
    assert optimized is True, f"libtorch resolved {path}; install libopenblas0-pthread (scripts/install-deps.sh)"


def test_process_maps_show_openblas_after_matmul():
    a = torch.ones(256, 256)
    (a @ a).sum().item()
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    assert any("openblas" in l or "blis" in l for l in libs), libs


def test_alternatives_select_openblas():
    out = subprocess.run(["update-alternatives", "--query", "libblas.so.3-x86_64-linux-gnu"],
                         capture_output=True, text=True)
    value = [l.split(":", 1)[1].strip() for l in out.stdout.splitlines() if l.startswith("Value:")]
    assert value and "openblas" in value[0], out.stdout


def test_openblas_pool_follows_torch_threads():
    """With libtorch asked for one thread, OpenBLAS's own pool (one thread
    per core by default) would split every product over all cores and spin
    in sched_yield between them: a run sets it to libtorch's count. In a
    fresh process, so the thread settings of other tests do not leak in."""
    code = """
import collections, ctypes, os, sys, torch, actmax
blas = ctypes.CDLL("libblas.so.3", mode=os.RTLD_NOLOAD | os.RTLD_NOW)
if not hasattr(blas, "openblas_get_num_threads"):
    print("SKIP libblas.so.3 is not OpenBLAS"); sys.exit(0)
torch.set_num_threads(1)
layers = collections.OrderedDict(conv=torch.nn.Conv2d(1, 4, 3), relu=torch.nn.ReLU())
m = actmax.load(torch.jit.script(torch.nn.Sequential(layers)), input=(1, 16, 16))
m.maximize("relu[0]", steps=2)
print("threads", blas.openblas_get_num_threads(), os.cpu_count())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith("SKIP"):
        pytest.skip(out.stdout[5:].strip())
    threads, cores = map(int, out.stdout.split()[1:3])
    assert threads == 1, f"OpenBLAS kept {threads} threads after a 1-thread run on {cores} cores"
