"""Every bad input the kernel rejects is rejected here with the same class and
the same message, and the module keeps working afterwards."""
import numpy as np
import pytest
import torch

import actmax
from conftest import kernel_error

# (magic line on fashion-cnn, the same call on the module)
ENGINE_CASES = [
    ("%maximize conv2[99] steps=2", lambda m: m.maximize("conv2[99]", steps=2, progress=False)),
    ("%maximize conv2[5] + steps=2", lambda m: m.maximize("conv2[5] +", steps=2, progress=False)),
    ("%maximize conv2[5] +* 2 steps=2", lambda m: m.maximize("conv2[5] +* 2", steps=2, progress=False)),
    ("%maximize fc[\"Sneakers\"] steps=2", lambda m: m.maximize('fc["Sneakers"]', steps=2, progress=False)),
    ("%maximize conv9[1] steps=2", lambda m: m.maximize("conv9[1]", steps=2, progress=False)),
]

# Key errors: the kernel says "%maximize: <message>" (or "%maximize has no key ...").
KEY_CASES = [
    ("%maximize conv2[5] steps=0", dict(steps=0), ValueError),
    ("%maximize conv2[5] steps=2.5", dict(steps=2.5), ValueError),
    ("%maximize conv2[5] lr=-1", dict(lr=-1), ValueError),
    ("%maximize conv2[5] optimizer=adamw", dict(optimizer="adamw"), ValueError),
    ("%maximize conv2[5] transforms=maybe", dict(transforms="maybe"), ValueError),
    ("%maximize conv2[5] batch=1000", dict(batch=1000), ValueError),
    ("%maximize conv2[5] stepz=3", dict(stepz=3), TypeError),
    ("%maximize conv2[5] thresholds=9,3 steps=10", dict(thresholds="9,3", steps=10), ValueError),
    ("%maximize conv2[5] scale_min=2 scale_max=1", dict(scale_min=2, scale_max=1), ValueError),
]


def check_still_works(m):
    r = m.maximize("conv2[1]", steps=2, progress=False)
    assert r.final.shape == (1,)


@pytest.mark.parametrize("line,call", ENGINE_CASES, ids=[c[0] for c in ENGINE_CASES])
def test_engine_errors_match_kernel(fashion, line, call):
    ename, msg = kernel_error("%model fashion-cnn device=cpu\n" + line)
    with pytest.raises(Exception) as e:
        call(fashion)
    assert isinstance(e.value, getattr(actmax, ename)), (type(e.value), ename)
    assert str(e.value) == msg
    check_still_works(fashion)


@pytest.mark.parametrize("line,kw,cls", KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_key_errors_match_kernel(fashion, line, kw, cls):
    ename, msg = kernel_error("%model fashion-cnn device=cpu\n" + line)
    with pytest.raises(cls) as e:
        fashion.maximize("conv2[5]", progress=False, **kw)
    ours = str(e.value)
    if msg.startswith("%maximize: "):
        assert ours == msg[len("%maximize: "):]
    elif msg.startswith("%maximize has no key"):
        assert ours == "maximize()" + msg[len("%maximize"):]
    else:
        assert ename == "ValueError" and ours == msg
    check_still_works(fashion)


def test_model_errors_match_kernel(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    ename, msg = kernel_error(f"%model {bad} device=cpu")
    with pytest.raises(actmax.ModelError) as e:
        actmax.load(str(bad), device="cpu")
    assert ename == "ModelError" and str(e.value) == msg
    ename, msg = kernel_error("%model fashion-cnnn")
    with pytest.raises(actmax.ModelNotFoundError) as e:
        actmax.load("fashion-cnnn")
    assert ename == "ModelNotFoundError" and str(e.value) == msg and "Did you mean fashion-cnn?" in msg


def test_tap_and_objective_errors(fashion):
    x = torch.zeros(1, 1, 28, 28)
    with pytest.raises(actmax.LayerError, match="conv2"):
        fashion.activations(x, ["conv22"])
    with pytest.raises(actmax.ObjectiveError, match=r"\^") as e:
        fashion.objective(x, "conv2[5")
    # The engine's status code and detail travel with the exception.
    assert e.value.status == -6 and str(e.value) == "invalid objective: " + e.value.detail
    with pytest.raises(actmax.ObjectiveError):
        fashion.objective(x, "diversity(conv2)")
    with pytest.raises(Exception):
        fashion.activations(torch.zeros(1, 3, 5, 5), ["conv2"])
    with pytest.raises(TypeError):
        fashion.activations(torch.zeros(1, 1, 28, 28, dtype=torch.bool), ["conv2"])
    with pytest.raises(TypeError):
        fashion.objective("not a tensor", "conv2[1]")
    check_still_works(fashion)
    torch.testing.assert_close(fashion.objective(x, "conv2[1]"),
                               fashion.activations(x, "conv2")[:, 1].mean((1, 2)))


def test_text_errors_match_kernel(tiny_lm, fashion):
    ename, msg = kernel_error("%model tiny-lm device=cpu\n%tokens blocks.0.mlp.act[-1, 99999] len=4 steps=2")
    with pytest.raises(Exception) as e:
        tiny_lm.tokens("blocks.0.mlp.act[-1, 99999]", len=4, steps=2, progress=False)
    assert isinstance(e.value, getattr(actmax, ename)) and str(e.value) == msg
    with pytest.raises(ValueError, match="len=100000"):
        tiny_lm.tokens("blocks.0.mlp.act[-1, 1]", len=100000, progress=False)
    with pytest.raises(actmax.UnsupportedError):
        fashion.tokens("conv2[1]", progress=False)
    with pytest.raises(actmax.UnsupportedError):
        tiny_lm.maximize("blocks.0.mlp.act[-1, 1]", progress=False)
    t = tiny_lm.tokens("blocks.0.mlp.act[-1, 1]", len=2, steps=2, progress=False)
    assert t.ids.shape == (2,)


def test_not_ready_yet_as_the_kernel_says(tmp_path):
    """While scripts/train-background.sh builds the engine or trains a model
    (marker files: its process id, then a sentence), the module says so, with
    the kernel's sentence (ext/loader reads the markers for both), instead of
    loading a half-linked library or saying "no model named"; once the
    process is gone the marker is ignored."""
    import os
    import subprocess
    import sys
    lib = tmp_path / "libactmax.so"
    building = "the engine (libactmax) is being compiled in the background (since 12:00)"
    training = "'lm-in-training' is being trained in the background (since 12:00)"
    code = ("import actmax\n"
            "try:\n"
            "    actmax.load('lm-in-training')\n"
            "except Exception as e:\n"
            "    print(type(e).__name__ + ': ' + str(e))\n")
    env = dict(os.environ, ACTMAX_ENGINE=str(lib), ACTMAX_MODEL_PATH=str(tmp_path))

    def attempt():
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    job = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "lm-in-training.training").write_text(f"{job.pid}\n{training}\n")
        out = attempt()
        assert out.startswith("ModelNotFoundError: model 'lm-in-training' is not ready yet: " + training), out
        (tmp_path / "libactmax.so.building").write_text(f"{job.pid}\n{building}\n")
        env["ACTMAX_MODEL_PATH"] = ""
        code = code.replace("actmax.load('lm-in-training')", "actmax.load('fashion-cnn')")
        out = attempt()
        assert out.startswith("EngineError: the engine is not ready yet: " + building), out
    finally:
        job.kill()
        job.wait()
    # Stale markers: the usual outcomes (the built engine loads; no such model).
    out = attempt()
    assert out == "", out
    env["ACTMAX_MODEL_PATH"] = str(tmp_path)
    code = code.replace("actmax.load('fashion-cnn')", "actmax.load('lm-in-training')")
    out = attempt()
    assert out.startswith("ModelNotFoundError: no model named 'lm-in-training'"), out
