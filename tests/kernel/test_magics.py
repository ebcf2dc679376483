"""The engine magics through a real kernel and Debian's jupyter_client: the
fashion-cnn workflow of docs/magics.md, the live display updated in place,
PNG sizes, plots, the session's runs, completion and inspection of layer
names, interrupts, and one error output per bad input with the session kept."""
import base64
import os
import struct
import time

import numpy as np
import pytest

from conftest import control_reply, drain, errors, iopub_for, kinds, png_size, pngs, run, shell_reply

pytestmark = pytest.mark.skipif(
    os.environ.get("ACTMAX_SANITIZED") == "1",
    reason="the sanitized build is configured without the engine; these run in the plain build")


@pytest.fixture(scope="module")
def loaded(kernel):
    km, kc = kernel
    drain(kc)
    msgs, reply = run(kc, "%model fashion-cnn")
    assert reply["content"]["status"] == "ok", errors(msgs)
    return kc


def test_engine_magic_before_model_is_an_error(kernel):
    km, kc = kernel
    drain(kc)
    msgs, reply = run(kc, "%layers")
    (err,) = errors(msgs)
    assert err["ename"] == "NoModelError" and "%model fashion-cnn" in err["evalue"]
    msgs, reply = run(kc, "%maximize conv2[5] steps=4")
    assert errors(msgs)[0]["ename"] == "NoModelError"


def test_model_summary_and_layers(loaded):
    kc = loaded
    msgs, _ = run(kc, "%model")
    text = "".join(m["content"]["data"]["text/plain"] for m in kinds(msgs, "display_data"))
    assert "image" in text and "(1, 28, 28)" in text and "Sneaker" in text and "cpu" in text
    msgs, _ = run(kc, "%layers conv2")
    (d,) = kinds(msgs, "display_data")
    html = d["content"]["data"]["text/html"]
    assert "<table" in html and "conv2.conv" in html and "(1, 32, 7, 7)" in html
    assert "conv1" not in d["content"]["data"]["text/plain"]


def test_maximize_live_display_png_and_plot(loaded):
    kc = loaded
    msgs, reply = run(kc, "%maximize conv2[5] steps=32")
    assert reply["content"]["status"] == "ok", errors(msgs)
    live = [m for m in kinds(msgs, "display_data") if m["content"].get("transient", {}).get("display_id")]
    assert len(live) == 1, "one live display per run"
    did = live[0]["content"]["transient"]["display_id"]
    updates = kinds(msgs, "update_display_data")
    assert updates, "the live display was never updated"
    assert all(u["content"]["transient"]["display_id"] == did for u in updates)
    assert msgs.index(live[0]) < msgs.index(updates[0])
    last = updates[-1]["content"]["data"]
    assert "32/32" in last["text/plain"] and "data:image/png;base64" in last["text/html"]
    image, plot = pngs(msgs)[:2]
    w, h = png_size(image["data"]["image/png"])
    assert (w, h) == (280, 280), "28x28 upscaled by 10 without smoothing"
    assert image["metadata"]["image/png"] == {"width": 280, "height": 280}
    assert "final activation" in image["data"]["text/plain"]
    assert png_size(plot["data"]["image/png"]) == (640, 360)


def test_live_display_shows_images_while_the_run_goes(loaded):
    # Images arrive every image_every steps and are encoded only when an
    # update is due: the updates before the last must carry one too.
    kc = loaded
    msgs, reply = run(kc, "%maximize conv2[5] steps=600 image_every=2 updates_per_s=50")
    assert reply["content"]["status"] == "ok", errors(msgs)
    updates = kinds(msgs, "update_display_data")
    during = [u for u in updates[:-1] if "/600" in u["content"]["data"]["text/plain"]
              and "600/600" not in u["content"]["data"]["text/plain"]]
    with_image = [u for u in during if "data:image/png;base64" in u["content"]["data"]["text/html"]]
    assert len(during) >= 3, [u["content"]["data"]["text/plain"] for u in updates]
    assert len(with_image) >= len(during) - 1, "every update after the first image shows one"


def test_batch_grid_diversity_and_inhibition(loaded):
    kc = loaded
    msgs, reply = run(kc, '%maximize fc["Sneaker"] steps=32 batch=4 diversity=1e-2 thresholds=8,16')
    assert reply["content"]["status"] == "ok", errors(msgs)
    w, h = png_size(pngs(msgs)[0]["data"]["image/png"])
    assert w > 280 and h > 280, "a batch of 4 is a 2x2 grid"
    text = pngs(msgs)[0]["data"]["text/plain"]
    acts = text.split("final activation on the clean image:")[1].split("\n")[0].split()
    assert len(acts) == 4
    assert "diversity on layer fc" in text  # the objective's first layer, said so
    snaps = [p for p in pngs(msgs) if p["data"]["text/plain"].startswith("<snapshots")]
    assert len(snaps) == 1 and "at 2 steps" in snaps[0]["data"]["text/plain"]
    w, h = png_size(snaps[0]["data"]["image/png"])
    assert w > 2 * h, "steps 8, 16 and the final image in one row"
    msgs, reply = run(kc, "%maximize -conv2[5] steps=32")
    assert reply["content"]["status"] == "ok", errors(msgs)
    final = float(pngs(msgs)[0]["data"]["text/plain"].split("on the clean image:")[1].split()[0])
    assert final <= 0, "minimizing a ReLU channel drives it to zero"


def test_examples_runs_show_save(loaded, tmp_path):
    kc = loaded
    run(kc, "%maximize conv2[5] steps=32")
    msgs, reply = run(kc, "%examples conv2[5] k=8")
    assert reply["content"]["status"] == "ok", errors(msgs)
    (grid,) = pngs(msgs)
    assert "top 8 of 10000 test images" in grid["data"]["text/plain"]
    vals = [float(l.split()[-1]) for l in grid["data"]["text/plain"].splitlines()[1:]]
    assert len(vals) == 8 and vals == sorted(vals, reverse=True)
    msgs, _ = run(kc, "%runs")
    table = kinds(msgs, "display_data")[0]["content"]["data"]["text/plain"]
    assert "conv2[5]" in table and 'fc["Sneaker"]' in table
    msgs, _ = run(kc, "%show 1")
    assert len(pngs(msgs)) == 2
    out = tmp_path / "sneaker.png"
    msgs, reply = run(kc, f"%save last path={out}")
    assert reply["content"]["status"] == "ok" and out.exists()
    assert out.read_bytes()[:4] == b"\x89PNG"


def fashion_test_images(indices):
    """Test-split images of Debian's dataset-fashion-mnist, as the kernel reads
    them ([0, 1]), by index."""
    import gzip

    import numpy as np
    d = os.environ.get("ACTMAX_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
    with gzip.open(f"{d}/t10k-images-idx3-ubyte.gz", "rb") as f:
        data = f.read()
    px = np.frombuffer(data, np.uint8, offset=16).reshape(-1, 1, 28, 28)
    return px[indices].astype(np.float32) / 255.0


def test_examples_compound_objective_matches_torch(loaded):
    """The whole objective language ranks dataset images: the values shown are
    those PyTorch computes for the same images, and they are the top ones."""
    torch = pytest.importorskip("torch")
    import json
    kc = loaded
    obj = "conv2[5] - conv2[3]"
    msgs, reply = run(kc, f"%examples {obj} k=6 limit=2000")
    assert reply["content"]["status"] == "ok", errors(msgs)
    (grid,) = pngs(msgs)
    lines = grid["data"]["text/plain"].splitlines()
    assert f"top 6 of 2000 test images for {obj}" in lines[0]
    rows = [l.split() for l in lines[1:]]
    idx = [int(r[0].lstrip("#")) for r in rows]
    vals = [float(r[-1]) for r in rows]
    assert len(vals) == 6 and vals == sorted(vals, reverse=True)

    path = os.path.join(os.path.dirname(os.environ["ACTMAX_EXE"]), "share", "actmax", "models", "fashion-cnn.pt")
    extra = {"actmax.json": ""}
    m = torch.jit.load(path, _extra_files=extra).eval()
    meta = json.loads(extra["actmax.json"])
    mean, std = meta["mean"][0], meta["std"][0]
    x = torch.from_numpy(fashion_test_images(list(range(2000))))
    with torch.no_grad():
        c2 = m.conv2(m.conv1((x - mean) / std))
    want = (c2[:, 5].mean((1, 2)) - c2[:, 3].mean((1, 2))).numpy()
    for i, v in zip(idx, vals):
        assert abs(want[i] - v) <= 1e-4 + 1e-5 * abs(v), (i, v, want[i])
    # The top of the whole slice, not just some images.
    assert abs(float(want.max()) - vals[0]) <= 1e-4 + 1e-5 * abs(vals[0])
    assert sorted(idx) == sorted(int(i) for i in want.argsort()[::-1][:6])
    # A bad objective: one error, and the next cell works.
    msgs, reply = run(kc, "%examples conv2[5] conv2[3] k=4")
    errs = errors(msgs)
    assert len(errs) == 1 and errs[0]["ename"] == "ObjectiveError", errs
    assert not pngs(msgs) and not kinds(msgs, "update_display_data")
    msgs, reply = run(kc, "%examples -(conv2[5] - conv2[3]) / 2 k=3 limit=500")
    assert reply["content"]["status"] == "ok", errors(msgs)
    lines = pngs(msgs)[0]["data"]["text/plain"].splitlines()
    vals2 = [float(l.split()[-1]) for l in lines[1:]]
    assert len(vals2) == 3 and abs(vals2[0] - float(-want[:500].min() / 2)) <= 1e-4


def test_examples_scale_images_as_runs_do(loaded, tmp_path):
    """A model declaring "range": [0, 255] sees its dataset images in that
    range, as a run's images are: the values %examples shows are PyTorch's on
    the images scaled to [0, 255] and then normalized, not on [0, 1] ones."""
    torch = pytest.importorskip("torch")
    import json

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(3)
            self.conv = torch.nn.Conv2d(1, 4, 3)

        def forward(self, x):
            return torch.relu(self.conv(x))

    meta = {"kind": "image", "input": [1, 28, 28], "range": [0, 255], "mean": [72.9],
            "std": [90.0], "dataset": "fashion-mnist"}
    path = tmp_path / "range255.pt"
    net = torch.jit.script(Net().eval())
    torch.jit.save(net, str(path), _extra_files={"actmax.json": json.dumps(meta)})
    kc = loaded
    msgs, reply = run(kc, f"%model {path}")
    assert reply["content"]["status"] == "ok", errors(msgs)
    msgs, reply = run(kc, "%examples conv[1] k=4 limit=300")
    assert reply["content"]["status"] == "ok", errors(msgs)
    rows = [l.split() for l in pngs(msgs)[0]["data"]["text/plain"].splitlines()[1:]]
    idx = [int(r[0].lstrip("#")) for r in rows]
    vals = [float(r[-1]) for r in rows]
    x = torch.from_numpy(fashion_test_images(list(range(300))))
    with torch.no_grad():
        want = net.conv((x * 255 - 72.9) / 90.0)[:, 1].mean((1, 2)).numpy()
        unscaled = net.conv((x - 72.9) / 90.0)[:, 1].mean((1, 2)).numpy()
    for i, v in zip(idx, vals):
        assert abs(want[i] - v) <= 1e-4 + 1e-5 * abs(v), (i, v, want[i])
        assert abs(unscaled[i] - v) > 1e-2, "the [0, 1] images would give this value"
    assert sorted(idx) == sorted(int(i) for i in want.argsort()[::-1][:4])
    msgs, reply = run(kc, "%model fashion-cnn")
    assert reply["content"]["status"] == "ok", errors(msgs)


@pytest.mark.parametrize("code,ename,words", [
    ("%model fashion-cn", "ModelNotFoundError", ["fashion-cnn"]),
    ("%model /etc/hostname", "ModelError", ["previous model is still loaded"]),
    ("%model /no/such/model.pt", "ModelNotFoundError", ["/no/such/model.pt"]),
    ("%model fashion-cnn input=abc", "ValueError", ["3x224x224"]),
    ("%maximize conv9[5] steps=4", "ObjectiveError", ["conv2"]),
    ("%maximize conv2[99] steps=4", "ObjectiveError", ["32"]),
    ('%maximize fc["Snaker"] steps=4', "ObjectiveError", ["Sneaker"]),
    ("%maximize conv2[5] steps=-3", "UsageError", ["1 to 100000"]),
    ("%maximize conv2[5] lr=abc", "UsageError", ["lr"]),
    ("%maximize conv2[5] size=0", "UsageError", ["8 to 2048"]),
    ("%maximize conv2[5] batch=100000", "UsageError", ["1 to 256"]),
    ("%maximize conv2[5] steps=4 init=/etc/hostname", "ImageError", ["PNG"]),
    ("%save last path=/nonexistent/dir/x.png", "OSError", ["/nonexistent/dir"]),
    ('%examples fc["Snaker"]', "ObjectiveError", ["Sneaker"]),
    ("%examples conv2[40]", "ObjectiveError", ["size 32", "[32, 7, 7]"]),
    ("%examples conv2[5] - * conv2[3]", "ObjectiveError", ["column 12", "^"]),
    ("%examples conv2[5] - cnv2[3]", "LayerError", ["conv2"]),
    ("%examples conv2[5] + 0.1*diversity(conv2)", "ObjectiveError", ["diversity", "batch"]),
    ("%show 999", "ValueError", ["last"]),
])
def test_bad_input_is_one_error_and_state_is_kept(loaded, code, ename, words):
    kc = loaded
    msgs, reply = run(kc, code)
    errs = errors(msgs)
    assert len(errs) == 1, errs
    assert errs[0]["ename"] == ename, errs[0]
    for w in words:
        assert w in errs[0]["evalue"], errs[0]["evalue"]
    assert reply["content"]["status"] == "error"
    msgs, reply = run(kc, "%model")
    assert reply["content"]["status"] == "ok"
    assert "fashion-cnn" in kinds(msgs, "display_data")[0]["content"]["data"]["text/plain"]


def test_completion_and_inspection(loaded):
    kc = loaded
    code = "%maximize conv"
    r = shell_reply(kc, kc.complete(code, len(code)))["content"]
    assert {"conv1", "conv2", "conv2.conv"} <= set(r["matches"])
    assert r["cursor_start"] == len("%maximize ")
    code = '%maximize fc["Sn'
    r = shell_reply(kc, kc.complete(code, len(code)))["content"]
    assert r["matches"] == ['Sneaker"]']
    code = "%maximize conv2[5] ste"
    r = shell_reply(kc, kc.complete(code, len(code)))["content"]
    assert any(m.startswith("steps") for m in r["matches"])
    code = "%maximize conv2.conv[5]"
    r = shell_reply(kc, kc.inspect(code, len("%maximize conv2.c")))["content"]
    assert r["found"] and "Conv2d" in r["data"]["text/plain"] and "(1, 32, 14, 14)" in r["data"]["text/plain"]


def test_settings_drive_defaults(loaded):
    kc = loaded
    msgs, _ = run(kc, "%set steps=8\n%seed 3\n%device cpu\n%maximize conv2[1]")
    text = pngs(msgs)[0]["data"]["text/plain"]
    assert "steps 8," in text and "seed=3" in text
    run(kc, "%set steps=256 seed=0 device=auto")


@pytest.mark.parametrize("how", ["interrupt_request", "SIGINT"])
def test_interrupt_shows_best_result_and_kernel_goes_on(kernel, how):
    km, kc = kernel
    drain(kc)
    run(kc, "%model fashion-cnn")
    msg_id = kc.execute("%maximize conv2[5] steps=100000")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the run is live
        m = kc.get_iopub_msg(timeout=60)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "update_display_data":
            break
    if how == "SIGINT":  # the notebook's stop button (interrupt_mode "signal")
        km.interrupt_kernel()
    else:
        req = kc.session.msg("interrupt_request", {})
        kc.control_channel.send(req)
        control_reply(kc, req["header"]["msg_id"])
    msgs = iopub_for(kc, msg_id, timeout=60)
    shell_reply(kc, msg_id)
    (err,) = errors(msgs)
    assert err["ename"] == "KeyboardInterrupt"
    text = pngs(msgs)[0]["data"]["text/plain"]
    assert "interrupted" in text
    msgs, reply = run(kc, "%runs")
    assert reply["content"]["status"] == "ok"


def test_interrupted_examples_show_the_top_k_read_so_far(kernel):
    km, kc = kernel
    drain(kc)
    run(kc, "%model fashion-cnn")
    msg_id = kc.execute("%examples conv2[5] k=4 split=train updates_per_s=20")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the scan is under way
        m = kc.get_iopub_msg(timeout=60)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "update_display_data":
            break
    req = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(req)
    control_reply(kc, req["header"]["msg_id"])
    msgs = iopub_for(kc, msg_id, timeout=60)
    shell_reply(kc, msg_id)
    (err,) = errors(msgs)
    assert err["ename"] == "KeyboardInterrupt"
    (grid,) = pngs(msgs)
    text = grid["data"]["text/plain"]
    assert "interrupted" in text, text
    n = int(text.split(" of ")[1].split()[0])
    assert 0 < n < 60000
    values = [float(l.split()[-1]) for l in text.splitlines() if l.strip().startswith("#")]
    assert len(values) == 4 and values == sorted(values, reverse=True)
    print(f"%examples interrupted after {n} of 60000 training images")
    msgs, reply = run(kc, "%runs")
    assert reply["content"]["status"] == "ok"


def test_command_line_writes_png_html_and_json(tmp_path):
    import json
    import subprocess
    out = tmp_path / "out"
    r = subprocess.run([os.environ["ACTMAX_EXE"], "-o", str(out), "-c",
                        "%model fashion-cnn\n%layers conv2\n%maximize conv2[5] steps=16"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "final activation" in r.stdout
    files = sorted(p.name for p in out.iterdir())
    assert [f for f in files if f.endswith(".html")], files
    (js,) = [p for p in out.iterdir() if p.suffix == ".json"]
    summary = json.loads(js.read_text())
    assert summary["objective"] == "conv2[5]" and summary["steps"] == 16
    assert summary["live_updates"] >= 2 and len(summary["final"]) == 1
    assert len([f for f in files if f.endswith(".png")]) == 2  # image and plot, no progress
    r = subprocess.run([os.environ["ACTMAX_EXE"], "-c", "%maximize conv2[5]"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "NoModelError" in r.stderr


def test_plain_torchscript_rgb_model(kernel, tmp_path):
    """A TorchScript file without actmax.json: the input comes from input=, the
    engine's note says which normalization it assumed, and the result is an
    RGB PNG."""
    import zlib

    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.relu = torch.nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv(x))

    torch.manual_seed(0)
    path = tmp_path / "tiny rgb.pt"
    torch.jit.script(Tiny().eval()).save(str(path))
    km, kc = kernel
    drain(kc)
    msgs, reply = run(kc, f"%model '{path}'")
    (err,) = errors(msgs)
    assert "input=" in err["evalue"] or "input" in err["evalue"], err
    msgs, reply = run(kc, f"%model '{path}' input=3x32x32")
    assert reply["content"]["status"] == "ok", errors(msgs)
    summary = kinds(msgs, "display_data")[0]["content"]["data"]["text/plain"]
    assert "(3, 32, 32)" in summary and "ImageNet" in summary
    msgs, reply = run(kc, "%maximize conv[2] steps=16")
    assert reply["content"]["status"] == "ok", errors(msgs)
    raw = base64.b64decode(pngs(msgs)[0]["data"]["image/png"])
    w, h = struct.unpack(">II", raw[16:24])
    assert (w, h) == (256, 256) and raw[25] == 2, "32x32 RGB upscaled by 8, colour type 2 (RGB)"
    assert zlib.crc32(raw[12:29]) == struct.unpack(">I", raw[29:33])[0]
    run(kc, "%model fashion-cnn")


def test_model_still_training_says_so(tmp_path):
    """scripts/train-background.sh marks a model it trains with NAME.training
    (its process id, then a sentence saying when the model should be ready):
    `%model NAME` shows that sentence while the process lives, and the usual
    not-found error once it is gone (a stale marker)."""
    import subprocess
    sentence = ("'lm-in-training' is being trained in the background (since 12:00, "
                "expected ready around 12:08)")
    marker = tmp_path / "lm-in-training.training"
    env = dict(os.environ, ACTMAX_MODEL_PATH=str(tmp_path))

    def model_cell():
        return subprocess.run([os.environ["ACTMAX_EXE"], "-c", "%model lm-in-training"],
                              capture_output=True, text=True, timeout=60, env=env)

    trainer = subprocess.Popen(["sleep", "60"])
    try:
        marker.write_text(f"{trainer.pid}\n{sentence}\n")
        r = model_cell()
        assert r.returncode == 1
        assert "ModelNotFoundError: model 'lm-in-training' is not ready yet: " + sentence in r.stderr
        assert "no model named" not in r.stderr
    finally:
        trainer.kill()
        trainer.wait()
    r = model_cell()
    assert r.returncode == 1
    assert "no model named 'lm-in-training'" in r.stderr and "not ready" not in r.stderr


def test_engine_still_building_says_so(tmp_path):
    """scripts/run.sh serves the notebooks while scripts/train-background.sh
    compiles the engine, marking it with LIBRARY.building (its process id,
    then a sentence): a cell that needs the engine shows that sentence while
    the process lives, and a stale marker is ignored."""
    import subprocess
    sentence = ("the engine (libactmax) is being compiled in the background (since 12:00, "
                "expected ready around 12:05)")
    lib = tmp_path / "libactmax.so"
    env = dict(os.environ, ACTMAX_ENGINE=str(lib))

    def model_cell():
        return subprocess.run([os.environ["ACTMAX_EXE"], "-c", "%model fashion-cnn"],
                              capture_output=True, text=True, timeout=120, env=env)

    builder = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "libactmax.so.building").write_text(f"{builder.pid}\n{sentence}\n")
        r = model_cell()
        assert r.returncode == 1
        assert "EngineError: the engine is not ready yet: " + sentence in r.stderr, r.stderr
    finally:
        builder.kill()
        builder.wait()
    # Stale: the library named by $ACTMAX_ENGINE is missing, so the built one loads.
    r = model_cell()
    assert r.returncode == 0, r.stderr
    assert "not ready" not in r.stderr


# ---------------------------------------------------------------- MACO, accentuation, honest figures

def cli(tmp_path, *lines):
    """Runs the command line on fashion-cnn; (result, JSON summaries of the runs)."""
    import json
    import subprocess
    out = tmp_path / "out"
    r = subprocess.run([os.environ["ACTMAX_EXE"], "-o", str(out), "-c",
                        "\n".join(("%model fashion-cnn",) + lines)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    runs = []
    if out.exists():
        for p in sorted(out.iterdir()):
            if p.suffix == ".json":
                d = json.loads(p.read_text())
                if "final" in d:
                    runs.append(d)
    return r, runs


def fashion_torch():
    """fashion-cnn as its PyTorch class with the built weights, and its metadata."""
    import sys
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "models"))
    from fashion_cnn import FashionCNN, metadata
    f = os.path.join(os.path.dirname(os.environ["ACTMAX_EXE"]), "share", "actmax", "models",
                     "fashion-cnn.pt")
    if not os.path.exists(f):
        pytest.skip(f"{f} is not built")
    model = FashionCNN()
    model.load_state_dict(torch.jit.load(f).state_dict())
    return model.eval(), metadata()


def test_maco_keys_transparency_and_note(tmp_path):
    r, runs = cli(tmp_path, "%maximize conv2[5] steps=12 batch=2 param=maco optimizer=nadam lr=auto "
                            "crops=3 crop_max=0.9 crop_min=0.5 noise=0.02 contrast=2")
    assert r.returncode == 0, r.stderr
    (j,) = runs
    assert j["transparency"] is True and "MACO magnitude" in j["note"]
    assert "note: MACO magnitude" in r.stdout
    assert "each image beside its transparency map" in r.stdout  # the map is shown
    assert "crops=3" in j["options"] and "param=maco" in j["options"]
    assert "mean over random crops" in r.stdout  # what the live value is measured on
    assert "live objective at the last step, on transformed copies" in r.stdout
    assert j["option_values"]["optimizer"] == "nadam" and j["option_values"]["lr"] == "auto"
    # A Fourier run records no MACO keys (they would change nothing).
    r, runs = cli(tmp_path, "%maximize conv2[5] steps=2")
    assert r.returncode == 0 and "crops=" not in runs[-1]["options"], runs[-1]["options"]


@pytest.mark.parametrize("line,ename,words", [
    ("%maximize conv2[5] steps=2 crops=3", "ValueError", ["param=maco"]),
    ("%maximize conv2[5] steps=2 param=maco crop_min=0.9 crop_max=0.5", "ValueError",
     ["crop_min <= crop_max"]),
    ("%maximize conv2[5] steps=2 lr=fast", "UsageError", ["lr=fast", "auto"]),
    ("%maximize conv2[5] steps=2 optimizer=adamw", "UsageError", ["nadam"]),
    ("%maximize conv2[5] steps=2 param=mac", "UsageError", ["maco"]),
    ("%maximize conv2[5] steps=2 batch=2 diversity=conv1:x", "UsageError", ["LAYER:WEIGHT"]),
    ("%maximize conv2[5] steps=2 batch=2 diversity=:1", "UsageError", ["LAYER:WEIGHT"]),
    ("%maximize conv2[5] steps=2 batch=2 diversity=conv9:1", "ObjectiveError", ["conv2"]),
    ("%maximize conv2[5] steps=2 accent=1", "ValueError", ["init=dataset:INDEX", "init=FILE.png"]),
    ("%maximize conv2[5] steps=2 init=dataset:99999", "ImageError", ["0 to 9999"]),
    ("%maximize conv2[5] steps=2 init=dataset:x", "ImageError", ["INDEX"]),
    ("%maximize conv2.relu#2[5] steps=2", "ObjectiveError", ["#2", "#1..#1"]),
])
def test_image_keys_refused_with_clear_errors(tmp_path, line, ename, words):
    r, _ = cli(tmp_path, line)
    assert r.returncode == 1, r.stdout
    assert f"{ename}:" in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def test_activation_under_each_image_is_the_unit_alone(tmp_path):
    """At a large diversity weight the objective plus the diversity term is
    negative; the numbers shown are the unit's own activations on the clean
    images, checked here with PyTorch (forward hook) on the saved images."""
    import torch
    r, runs = cli(tmp_path, "%maximize conv2[5] steps=16 batch=3 diversity=100 seed=1",
                  "%save last path=run.npy")
    assert r.returncode == 0, r.stderr
    (j,) = runs
    assert j["diversity_layer"] == "conv2" and j["diversity_term"] < 0, j
    assert "diversity on layer conv2" in r.stdout
    model, meta = fashion_torch()
    x = torch.from_numpy(np.load(tmp_path / "run.npy"))
    acts = {}
    model.conv2.register_forward_hook(lambda m, i, o: acts.setdefault("conv2", o))
    with torch.no_grad():
        model((x - meta["mean"][0]) / meta["std"][0])
    ours = acts["conv2"][:, 5].mean((1, 2)).numpy()
    assert np.allclose(ours, j["activation"], atol=1e-4), (ours, j["activation"])
    assert min(j["activation"]) >= 0  # a ReLU channel's mean cannot be negative
    shown = r.stdout.split("final activation on the clean image:")[1].split("\n")[0].split()
    assert np.allclose([float(v) for v in shown], j["activation"], rtol=1e-3), shown


def test_diversity_on_a_named_layer(tmp_path):
    r, runs = cli(tmp_path, "%maximize conv2[5] steps=8 batch=2 diversity=conv1:1.0",
                  "%save last path=curves.json")
    assert r.returncode == 0, r.stderr
    assert runs[0]["diversity_layer"] == "conv1" and runs[0]["engine_objective"] == "conv2[5]"
    assert "diversity on layer conv1" in r.stdout
    import json
    curves = json.load(open(tmp_path / "curves.json"))["curves"]
    assert "diversity (conv1)" in curves and "objective" in curves  # separate curves


def test_accent_from_a_dataset_item_stays_close_to_it(tmp_path):
    """accent= keeps the image near the start item: the larger the weight,
    the closer the result to the item (mean squared difference)."""
    r, runs = cli(tmp_path, "%maximize conv2[5] steps=24 init=dataset:0 accent=0.01",
                  "%save last path=weak.npy",
                  "%maximize conv2[5] steps=24 init=dataset:0 accent=100",
                  "%save last path=strong.npy",
                  "%examples conv2[5] k=1 limit=1")
    assert r.returncode == 0, r.stderr
    assert [j["option_values"]["init"] for j in runs] == ["dataset:0", "dataset:0"]
    import gzip
    path = os.environ.get("ACTMAX_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
    with gzip.open(os.path.join(path, "t10k-images-idx3-ubyte.gz")) as f:
        item = np.frombuffer(f.read(), np.uint8)[16:16 + 784].reshape(1, 1, 28, 28) / 255.0
    weak = ((np.load(tmp_path / "weak.npy") - item) ** 2).mean()
    strong = ((np.load(tmp_path / "strong.npy") - item) ** 2).mean()
    assert strong < weak, (strong, weak)


def test_layer_call_selector_is_not_a_comment(tmp_path):
    r, runs = cli(tmp_path, "%maximize conv2.relu#1[5] steps=2 seed=3 # a comment after a space",
                  "%maximize conv2.relu[5] steps=2 seed=3")
    assert r.returncode == 0, r.stderr
    assert runs[0]["objective"] == "conv2.relu#1[5]"
    # conv2.relu runs once: its first call is its last, so both runs are the same.
    assert runs[0]["activation"] == runs[1]["activation"]


def test_state_dict_is_named_as_such(tmp_path):
    import subprocess
    import torch
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "weights.pt")
    r = subprocess.run([os.environ["ACTMAX_EXE"], "-c", "%model weights.pt input=3x8x8"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 1
    assert "torch.save" in r.stderr and "torch.jit.script(model).save" in r.stderr, r.stderr
