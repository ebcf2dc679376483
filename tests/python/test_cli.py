"""Same seed, same options: the module's run equals the kernel's command line
(`actmax -c ... -o DIR`: its image and plot PNGs, and the final values of its
JSON) and the engine's command line (`actmax-engine run --out`: the float
images, bitwise, and the curve)."""
import glob
import json
import os
import subprocess

import numpy as np
import pytest

from conftest import ENGINE_CLI, kernel

RUNS = [
    # (kernel keys, module keywords)
    ("steps=24 seed=3", dict(steps=24, seed=3)),
    ("steps=16 seed=5 batch=3 lr=0.1 tv=0.5", dict(steps=16, seed=5, batch=3, lr=0.1, tv=0.5)),
    ("steps=12 seed=2 batch=2 diversity=1.5 param=pixel", dict(steps=12, seed=2, batch=2, diversity=1.5,
                                                               param="pixel")),
    ("steps=12 seed=4 batch=2 param=maco crops=3 diversity=conv1:0.5",
     dict(steps=12, seed=4, batch=2, param="maco", crops=3, diversity="conv1:0.5")),
]


@pytest.mark.parametrize("line,kw", RUNS)
def test_equals_kernel_command_line(fashion, tmp_path, line, kw):
    rc, out, err = kernel(f"%model fashion-cnn device=cpu\n%maximize conv2[5] {line}", tmp_path)
    assert rc == 0, err
    files = sorted(glob.glob(str(tmp_path / "out-*")))
    pngs = [f for f in files if f.endswith(".png")]
    summary = json.loads(open([f for f in files if f.endswith(".json")][-1]).read())
    r = fashion.maximize("conv2[5]", progress=False, **kw)
    # cJSON prints enough digits to give back each float32 exactly: equal, not close.
    assert r.final.numpy().tobytes() == np.array(summary["final"], np.float32).tobytes()
    assert r.activation.numpy().tobytes() == np.array(summary["activation"], np.float32).tobytes()
    assert r.diversity_layer == summary["diversity_layer"] and r.note == summary["note"]
    assert summary["engine_objective"] == r.engine_objective
    image_png = open(pngs[-2 if len(pngs) >= 2 else 0], "rb").read()
    assert r.image_png() in [open(p, "rb").read() for p in pngs], "the result image differs"
    assert r.plot_png(title="run 1: conv2[5]") == open(pngs[-1], "rb").read(), "the curve differs"
    assert image_png


def test_equals_engine_command_line_bitwise(fashion, tmp_path):
    if not os.access(ENGINE_CLI, os.X_OK):
        pytest.skip("actmax-engine is not built")
    prefix = tmp_path / "run"
    p = subprocess.run([ENGINE_CLI, "run", fashion.path, "conv2[5]", "--steps", "20", "--seed", "7",
                        "--batch", "2", "--out", str(prefix)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    ref = np.fromfile(str(prefix) + ".f32", dtype=np.float32)
    r = fashion.maximize("conv2[5]", steps=20, seed=7, batch=2, progress=False)
    ours = r.images.numpy().reshape(-1)
    assert ours.shape == ref.shape
    assert ours.tobytes() == ref.tobytes(), f"max |diff| {np.abs(ours - ref).max()}"
    report = json.loads(p.stdout[p.stdout.index("{"):])
    np.testing.assert_allclose(r.curve.numpy(), np.array(report["curve"], np.float32), rtol=1e-5, atol=1e-6)


def test_progress_does_not_change_the_run(fashion):
    """A live display (progress callback with images) leaves the numbers alone."""
    a = fashion.maximize("conv2[3]", steps=20, seed=4, progress=False)
    b = fashion.maximize("conv2[3]", steps=20, seed=4, progress=True, updates_per_s=100)
    assert a.images.numpy().tobytes() == b.images.numpy().tobytes()
    assert a.curve.numpy().tobytes() == b.curve.numpy().tobytes()


def test_model_summary_equals_kernel(fashion, tmp_path):
    rc, out, err = kernel("%model fashion-cnn device=cpu", tmp_path)
    assert rc == 0, err
    html = open(sorted(glob.glob(str(tmp_path / "out-*.html")))[0]).read()
    assert fashion._repr_html_() == html
