"""Results as data: %save by extension (.npy .pt .png .csv .json .txt), and
every option of a run in its record (%runs, the JSON summary)."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

EXE = os.environ.get("ACTMAX_EXE", "actmax")
MODELS_SRC = os.path.join(os.path.dirname(__file__), "..", "..", "models")


def actmax(tmp_path, *lines):
    r = subprocess.run([EXE, "-o", str(tmp_path / "out"), "-c", "\n".join(lines)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    return r


def summaries(tmp_path):
    """The JSON summaries the command line wrote (one per run shown)."""
    out = []
    for name in sorted(os.listdir(tmp_path / "out")):
        if name.endswith(".json"):
            d = json.load(open(tmp_path / "out" / name))
            if "final" in d:
                out.append(d)
    return out


def fashion_cnn():
    """The built-in model as its Python class, with the built file's weights."""
    sys.path.insert(0, MODELS_SRC)
    from fashion_cnn import FashionCNN, metadata
    f = os.path.join(os.path.dirname(EXE), "share", "actmax", "models", "fashion-cnn.pt")
    if not os.path.exists(f):
        pytest.skip(f"{f} is not built")
    model = FashionCNN()
    model.load_state_dict(torch.jit.load(f).state_dict())
    return model.eval(), metadata()


def test_npy_and_pt_hold_the_native_batch(tmp_path):
    r = actmax(tmp_path, "%model fashion-cnn", "%maximize conv2[5] steps=8 batch=2",
               "%save last path=run.npy", "%save last path=run.pt")
    assert r.returncode == 0, r.stderr
    a = np.load(tmp_path / "run.npy")
    assert a.dtype == np.float32 and a.shape == (2, 1, 28, 28)  # native size, not the display PNG
    assert 0 <= a.min() and a.max() <= 1 and len(np.unique(a)) > 256  # float, not 8-bit
    t = torch.load(tmp_path / "run.pt")
    assert torch.equal(t, torch.from_numpy(a))
    assert "saved run 1 images (2, 1, 28, 28) float32 to run.npy" in r.stdout
    # The saved images give the engine's final activations (PyTorch, forward hook).
    model, meta = fashion_cnn()
    acts = {}
    model.conv2.register_forward_hook(lambda m, i, o: acts.setdefault("conv2", o))
    with torch.no_grad():
        model((t - meta["mean"][0]) / meta["std"][0])
    ours = acts["conv2"][:, 5].mean((1, 2))
    final = summaries(tmp_path)[0]["final"]
    assert np.allclose(ours.numpy(), final, atol=1e-4), (ours, final)


def test_curves_as_csv_and_json(tmp_path):
    r = actmax(tmp_path, "%model fashion-cnn", "%maximize conv2[5] steps=6 tv=0.5 l2=0.25",
               "%save last path=curves.csv", "%save last path=curves.json")
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(open(tmp_path / "curves.csv")))
    assert rows[0] == ["step", "objective", "obj0: conv2[5]", "l2", "tv"]
    assert [int(x[0]) for x in rows[1:]] == [1, 2, 3, 4, 5, 6]
    j = json.load(open(tmp_path / "curves.json"))
    assert j["step"] == [1, 2, 3, 4, 5, 6] and j["objective"] == "conv2[5]"
    assert j["options"]["tv"] == 0.5 and j["options"]["l2"] == 0.25
    for k, name in enumerate(rows[0][1:], start=1):
        assert np.allclose([float(x[k]) for x in rows[1:]], j["curves"][name], rtol=1e-6)
    # The total is the objective's (regularizers excluded), the terms are weighted penalties.
    assert np.allclose(j["curves"]["objective"], j["curves"]["obj0: conv2[5]"], rtol=1e-6)
    assert all(v > 0 for v in j["curves"]["tv"])


def test_png_grid_or_one_per_image(tmp_path):
    r = actmax(tmp_path, "%model fashion-cnn", "%maximize conv2[5] steps=4 batch=3",
               "%save last path=grid.png", "%save last path=img.png each=true",
               "%save last path=plot.png what=plot")
    assert r.returncode == 0, r.stderr
    for f in ["grid.png", "img-0.png", "img-1.png", "img-2.png", "plot.png"]:
        assert open(tmp_path / f, "rb").read(8) == b"\x89PNG\r\n\x1a\n", f
    assert not (tmp_path / "img-3.png").exists()


def test_unknown_extension_is_an_error_naming_the_formats(tmp_path):
    r = actmax(tmp_path, "%model fashion-cnn", "%maximize conv2[5] steps=2",
               "%save last path=x.bmp")
    assert r.returncode == 1
    assert "ValueError" in r.stderr and "'.bmp'" in r.stderr
    for ext in [".png", ".npy", ".pt", ".csv", ".json", ".py"]:
        assert ext in r.stderr, ext
    assert not (tmp_path / "x.bmp").exists()
    r = actmax(tmp_path, "%model fashion-cnn", "%maximize conv2[5] steps=2",
               "%save last path=x.npy what=plot")
    assert r.returncode == 1 and "what=plot draws the curve as PNG" in r.stderr


def test_every_option_is_recorded(tmp_path):
    base = "%maximize conv2[5] steps=2"
    variants = ["", "tv=0.05", "l1=0.1", "l2=0.1", "blur=0.1", "init_std=0.1", "jitter=3",
                "pad=4", "rotate=5", "scale_min=0.8", "scale_max=1.2", "decay_power=1.5",
                "decorrelate=false", "transforms=false", "momentum=0.5 optimizer=sgd"]
    r = actmax(tmp_path, "%model fashion-cnn", *[f"{base} {v}" for v in variants], "%runs")
    assert r.returncode == 0, r.stderr
    runs = summaries(tmp_path)
    assert len(runs) == len(variants)
    options = [s["options"] for s in runs]
    assert len(set(options)) == len(options), options  # no two look alike
    for v, s in zip(variants, runs):
        for kv in v.split():
            assert kv in s["options"].split(), (kv, s["options"])
            key, val = kv.split("=")
            got = s["option_values"][key]
            assert str(got).lower() == val or float(got) == float(val), (key, got)
    for key in ["tv", "l1", "l2", "blur", "init", "init_std", "jitter", "pad", "rotate",
                "scale_min", "scale_max", "decay_power", "decorrelate", "diversity", "seed"]:
        assert key in runs[0]["option_values"], key
    assert "tv=0.05" in r.stdout  # %runs shows the options column


def test_text_run_saves_ids_prompt_and_curves(tmp_path):
    r = actmax(tmp_path, "%model tiny-lm", "%tokens blocks.0.mlp.act[-1, 3] len=3 steps=4",
               "%save last path=ids.npy", "%save last path=ids.pt", "%save last path=p.txt",
               "%save last path=c.csv", "%save last path=x.png")
    assert r.returncode == 1  # the last line: a prompt has no PNG
    assert "'.png'" in r.stderr and ".txt" in r.stderr and ".npy" in r.stderr
    ids = np.load(tmp_path / "ids.npy")
    assert ids.dtype == np.int64 and ids.shape == (1, 3)
    assert torch.equal(torch.load(tmp_path / "ids.pt"), torch.from_numpy(ids))
    assert (tmp_path / "p.txt").stat().st_size > 0
    rows = list(csv.reader(open(tmp_path / "c.csv")))
    assert rows[0][:2] == ["step", "activation (soft)"] and len(rows) == 5
