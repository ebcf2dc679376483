"""The command-line runner: JSON summary, PGM/PPM and raw float output, errors."""
import json
import os
import subprocess

import numpy as np
import pytest

CLI = os.environ.get("ACTMAX_ENGINE_CLI",
                     os.path.join(os.path.dirname(__file__), "..", "..", "build-engine", "ext", "actmax-engine"))


def cli(*args):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_blas():
    r = cli("blas")
    assert r.returncode == 0 and json.loads(r.stdout)["optimized"] is True


def test_layers(resnet18_file):
    r = cli("layers", resnet18_file[0], "--input", "3x64x64")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert "ImageNet" in info["note"]
    assert info["layers"][0] == {"name": "conv1", "type": "Conv2d", "params": 9408, "calls": 1,
                                 "shape": [1, 64, 32, 32]}


def test_run_writes_images(resnet18_file, tmp_path):
    out = tmp_path / "img"
    r = cli("run", resnet18_file[0], "layer2[1]", "layer2[2]", "--input", "3x64x64", "--steps", "4",
            "--out", out)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["shape"] == [2, 3, 64, 64] and len(s["curve"]) == 4 and len(s["final"]) == 2
    raw = np.fromfile(f"{out}.f32", np.float32).reshape(2, 3, 64, 64)
    assert 0 <= raw.min() and raw.max() <= 1
    ppm = (tmp_path / "img-1.ppm").read_bytes()
    assert ppm.startswith(b"P6\n64 64\n255\n") and len(ppm) == len(b"P6\n64 64\n255\n") + 64 * 64 * 3


@pytest.mark.parametrize("args,msg", [
    (["run", "{m}", "layer2[3", "--input", "3x64x64"], "at column 9"),
    (["run", "{m}", "layer2[3]", "--input", "3x64"], "C x H x W"),
    (["run", "{m}", "layer2[3]", "--input", "3x64x64", "--steps", "ten"], "wants a number"),
    (["layers", "/nonexistent.pt", "--input", "3x64x64"], "cannot open model file"),
    (["frobnicate"], "unknown command"),
])
def test_errors(resnet18_file, args, msg):
    r = cli(*[a.format(m=resnet18_file[0]) for a in args])
    assert r.returncode != 0 and msg in r.stderr, r.stderr
