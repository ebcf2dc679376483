"""libtorch's matrix products must use an optimized BLAS, not the reference."""
import subprocess

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
