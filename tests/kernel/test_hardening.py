"""Bad inputs a hostile user tried, each through the kernel: one clear error
(or the documented behaviour), the kernel alive with its model and runs
kept, and no C++ frame in any message a user sees."""
import re
import struct
import zlib

import pytest

from conftest import displays, drain, errors, kinds, pngs, run, start, stop

# What must never reach a user: libtorch frames and internals.
INTERNALS = re.compile(r"frame #\d|c10::|\.so\b|<unknown function>|Exception raised from|"
                       r"serialized code|am_[a-z_]+\(|am_model_|internal error")


@pytest.fixture(scope="module")
def kernel():
    km, kc = start()
    yield km, kc
    stop(km, kc)


def clean(msgs):
    """Every error and stream a user sees is free of engine internals."""
    for e in errors(msgs):
        for text in [e["evalue"]] + e["traceback"]:
            assert not INTERNALS.search(text), text
    for m in kinds(msgs, "stream"):
        assert not INTERNALS.search(m["content"]["text"]), m["content"]["text"]


def ok(kc, code, timeout=120):
    msgs, reply = run(kc, code, timeout=timeout)
    assert reply["content"]["status"] == "ok", (code, errors(msgs))
    clean(msgs)
    return msgs


def fails(kc, code, ename, *words, timeout=120):
    msgs, reply = run(kc, code, timeout=timeout)
    errs = errors(msgs)
    assert reply["content"]["status"] == "error" and len(errs) == 1, (code, errs)
    assert errs[0]["ename"] == ename, (code, errs[0])
    for w in words:
        assert w.lower() in errs[0]["evalue"].lower(), (w, errs[0]["evalue"])
    clean(msgs)
    return errs[0]


def still_there(kc, model_words, n_runs_at_least):
    """The kernel answers, its model is the one loaded and its runs are kept."""
    msgs = ok(kc, "%model")
    text = "".join(m["content"]["data"].get("text/plain", "") for m in kinds(msgs, "display_data"))
    text += "".join(m["content"]["text"] for m in kinds(msgs, "stream"))
    assert model_words in text, text
    msgs = ok(kc, "%runs")
    text = "".join(m["content"]["data"].get("text/plain", "") for m in kinds(msgs, "display_data"))
    text += "".join(m["content"]["text"] for m in kinds(msgs, "stream"))
    if n_runs_at_least:
        assert f"{n_runs_at_least}" in text, text


# ---- PNG files of every kind, written here ----------------------------------------

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def png_bytes(w, h, color_type, depth, pixel, interlace=False, palette=None):
    """A PNG of w x h; pixel(x, y) gives the sample tuple of a pixel (levels
    of the bit depth; a palette index for type 3)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]

    def row_bytes(xs, y):
        if depth < 8:
            bits, n = 0, 0
            out = bytearray()
            for x in xs:
                bits = (bits << depth) | pixel(x, y)[0]
                n += depth
                if n == 8:
                    out.append(bits)
                    bits, n = 0, 0
            if n:
                out.append(bits << (8 - n))
            return bytes(out)
        fmt = ">" + ("H" if depth == 16 else "B") * channels
        return b"".join(struct.pack(fmt, *pixel(x, y)) for x in xs)

    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        xs = list(range(x0, w, dx))
        if not xs:
            continue
        for y in range(y0, h, dy):
            raw += b"\0" + row_bytes(xs, y)

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))

    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if palette:
        out += chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    return out + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b"")


def png_kinds():
    """(name, bytes) of gray 1/8/16-bit, gray+alpha, RGB 8/16, RGBA, palette,
    each also interlaced."""
    w, h = 13, 11
    kinds_ = {
        "gray1": (0, 1, lambda x, y: ((x + y) % 2,), None),
        "gray8": (0, 8, lambda x, y: ((x * 19 + y * 7) % 256,), None),
        "gray16": (0, 16, lambda x, y: ((x * 5000 + y * 300) % 65536,), None),
        "graya8": (4, 8, lambda x, y: (x * 19 % 256, 200), None),
        "rgb8": (2, 8, lambda x, y: (x * 19 % 256, y * 23 % 256, 128), None),
        "rgb16": (2, 16, lambda x, y: (x * 5000 % 65536, y * 6000 % 65536, 30000), None),
        "rgba8": (6, 8, lambda x, y: (x * 19 % 256, y * 23 % 256, 128, 255 - x), None),
        "palette4": (3, 4, lambda x, y: ((x + y) % 16,),
                     [(i * 16, 255 - i * 16, i * 8) for i in range(16)]),
    }
    for name, (t, d, px, pal) in kinds_.items():
        for interlace in (False, True):
            yield (f"{name}{'-adam7' if interlace else ''}",
                   png_bytes(w, h, t, d, px, interlace, pal))


def test_png_writer_is_read_by_pillow(tmp_path):
    # The writer above is checked by another decoder when one is there.
    Image = pytest.importorskip("PIL.Image")
    for name, data in png_kinds():
        p = tmp_path / f"{name}.png"
        p.write_bytes(data)
        with Image.open(p) as im:
            im.load()
            assert im.size == (13, 11), name


def tiny_model(tmp_path, channels):
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(channels, 4, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x))

    torch.manual_seed(0)
    path = tmp_path / f"tiny{channels}.pt"
    torch.jit.script(Tiny().eval()).save(str(path))
    return path


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_init_png_of_every_kind_on_1_3_4_channel_models(kernel, tmp_path, channels):
    """Every colour type and bit depth, interlaced or not, as init= of a
    gray, an RGB and an RGBA model: each is read (a 4-channel model once
    over-read an RGB file's rows)."""
    km, kc = kernel
    drain(kc)
    model = tiny_model(tmp_path, channels)
    ok(kc, f"%model '{model}' input={channels}x16x16")
    for name, data in png_kinds():
        p = tmp_path / f"{name}.png"
        p.write_bytes(data)
        msgs = ok(kc, f"%maximize conv[1] steps=2 init='{p}' transforms=false")
        assert pngs(msgs), name
    # A file that is not a PNG, and one cut short: one clear error each.
    bad = tmp_path / "not.png"
    bad.write_bytes(b"GIF89a not a png")
    fails(kc, f"%maximize conv[1] steps=2 init='{bad}'", "ImageError", "not a PNG file")
    cut = tmp_path / "cut.png"
    cut.write_bytes(dict(png_kinds())["rgb8-adam7"][:60])
    fails(kc, f"%maximize conv[1] steps=2 init='{cut}'", "ImageError", "init=")
    ok(kc, "%runs")


# ---- objectives built to break the parser ---------------------------------------

@pytest.fixture()
def fashion(kernel):
    km, kc = kernel
    drain(kc)
    ok(kc, "%model fashion-cnn")
    ok(kc, "%maximize conv2[5] steps=2")
    return kc


DEEP = [
    ("-" * 10000 + "conv2[5]", "nested more than 64"),
    ("- " * 10000 + "conv2[5]", "nested more than 64"),
    ("+".join(["conv2[5]"] * 100000), "more than 512 operators"),
    ("conv2[5]" + "*1" * 100000, "more than 512 operators"),
    # 50 brackets (within the cell's 64) holding 70 levels with the signs.
    ("(" * 30 + "-(" * 20 + "conv2[5]" + ")" * 50, "nested more than 64"),
]


@pytest.mark.parametrize("magic", ["%maximize", "%examples"])
def test_deep_and_long_objectives_are_one_short_error(fashion, magic):
    """10,000 signs or 100,000 terms once overflowed the stack of the
    recursive parser and evaluator (SIGSEGV). Now: one ObjectiveError that
    shows the objective around the column only, and the session goes on."""
    kc = fashion
    for obj, words in DEEP:
        err = fails(kc, f"{magic} {obj} steps=2" if magic == "%maximize" else f"{magic} {obj} k=2",
                    "ObjectiveError", words)
        assert len(err["evalue"]) < 600, len(err["evalue"])
    still_there(kc, "fashion-cnn", 1)
    # Within the bounds, the same shapes still run.
    ok(kc, "%maximize " + "-" * 3 + "conv2[5] steps=2")
    ok(kc, "%maximize " + "+".join(["conv2[5]"] * 200) + " steps=2")


def test_number_out_of_range_is_refused(fashion):
    # 1e309 is infinite as a double: the run went to NaN and was reported ok.
    err = fails(fashion, "%maximize 1e309*conv2[5] steps=2", "ObjectiveError", "out of range", "1e309")
    assert "^" in err["evalue"]
    ok(fashion, "%maximize 1e3*conv2[5] steps=2")


def test_diversity_needs_a_batch(fashion):
    fails(fashion, "%maximize diversity(conv2) steps=2", "ObjectiveError", "batch=2 or more",
          "batch=1")
    fails(fashion, "%maximize conv2[5] diversity=1 steps=2", "ObjectiveError", "batch=2 or more")
    ok(fashion, "%maximize conv2[5] diversity=1 batch=2 steps=2")


def test_a_long_objective_is_not_echoed_whole(fashion):
    # A megabyte of objective: the error shows a window of it.
    obj = "conv2[5]" + " " * (1 << 20) + "+ nosuch[1]"
    err = fails(fashion, f"%maximize {obj} steps=2", "ObjectiveError")
    assert len(err["evalue"]) < 2000


# ---- models built to break the engine --------------------------------------------

def scripted(tmp_path, name, source):
    torch = pytest.importorskip("torch")
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / f"{name}.pt"
    torch.jit.script(mod.M().eval()).save(str(out))
    return out


def test_model_without_submodules(kernel, tmp_path):
    """A forward that only computes on its input: %layers once crashed the
    kernel, and a layer name got an empty 'closest' list with an engine
    function's name in it."""
    km, kc = kernel
    drain(kc)
    path = scripted(tmp_path, "nosub", "import torch\n"
                    "class M(torch.nn.Module):\n"
                    "    def forward(self, x):\n"
                    "        return (x * 2).relu()\n")
    ok(kc, f"%model '{path}' input=3x8x8")
    ok(kc, "%layers")
    err = fails(kc, "%maximize x[0] steps=2", "ObjectiveError", "no submodules", "output")
    assert "closest:  " not in err["evalue"]
    ok(kc, "%maximize output[0] steps=2")
    assert km.is_alive()


def test_torchscript_error_shows_its_cause(kernel, tmp_path):
    km, kc = kernel
    drain(kc)
    path = scripted(tmp_path, "raises", "import torch\n"
                    "class M(torch.nn.Module):\n"
                    "    def forward(self, x):\n"
                    "        if bool(x.sum() > -1e30):\n"
                    "            raise ValueError('this model refuses every input')\n"
                    "        return x\n")
    err = fails(kc, f"%model '{path}' input=3x8x8", "ModelError", "this model refuses every input")
    assert "serialized code" not in err["evalue"]


def test_impossible_input_is_refused_by_its_bound(kernel, tmp_path):
    """A metadata-less model asked for a 10^12-pixel input: refused before the
    probe forward allocates it, naming the bound (once libtorch's allocator
    failure, '[enforce fail at alloc_cpu.cpp:75] ...')."""
    km, kc = kernel
    drain(kc)
    path = scripted(tmp_path, "conv", "import torch\n"
                    "class M(torch.nn.Module):\n"
                    "    def __init__(self):\n"
                    "        super().__init__()\n"
                    "        self.conv = torch.nn.Conv2d(3, 2, 3)\n"
                    "    def forward(self, x):\n"
                    "        return self.conv(x)\n")
    err = fails(kc, f"%model '{path}' input=3x1000000x1000000", "ModelError", "over the engine's bound",
                "3x224x224")
    assert "enforce fail" not in err["evalue"] and "alloc_cpu" not in err["evalue"]
    ok(kc, f"%model '{path}' input=3x16x16")
    ok(kc, "%maximize conv[1] steps=2")


def test_run_that_cannot_fit_is_refused(fashion):
    """size=2048 batch=256 once grew past 10 GiB, or failed deep in the
    allocator: now refused before it starts, with the estimate, what is
    available and what would fit."""
    err = fails(fashion, "%maximize conv2[5] size=2048 batch=256 steps=2", "MemoryError", "needs about",
                "available", "would fit")
    assert "alloc_cpu" not in err["evalue"]
    still_there(fashion, "fashion-cnn", 1)
    ok(fashion, "%maximize conv2[5] steps=2")


def test_keys_that_do_nothing_are_named(kernel, tmp_path):
    """%examples' text keys on an image model and its image keys on a text
    model: a warning line each, not silence."""
    km, kc = kernel
    drain(kc)
    ok(kc, "%model fashion-cnn")
    msgs = ok(kc, "%examples conv2[5] k=2 limit=50 path=/nonexistent.txt window=8")
    err = "".join(m["content"]["text"] for m in kinds(msgs, "stream") if m["content"]["name"] == "stderr")
    assert "path= ignored" in err and "window= ignored" in err, err
    assert "limit=" not in err and "k=" not in err, err
    msgs = ok(kc, "%examples conv2[5] k=2 limit=50")
    assert not [m for m in kinds(msgs, "stream") if m["content"]["name"] == "stderr"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. " * 40)
    ok(kc, "%model tiny-lm")
    msgs = ok(kc, f"%examples blocks.1.mlp.act[:, 5] k=2 window=16 split=train path={corpus}", timeout=300)
    err = "".join(m["content"]["text"] for m in kinds(msgs, "stream") if m["content"]["name"] == "stderr")
    assert "split= ignored" in err and "path=" not in err, err


def test_examples_compare_only_runs_of_the_same_model(kernel, tmp_path):
    """A prompt optimized on another model is no measure for this one's
    corpus (it once said "reaches 55%" across two models)."""
    import os
    import shutil
    km, kc = kernel
    drain(kc)
    build = os.path.dirname(os.environ["ACTMAX_EXE"])
    other = tmp_path / "other-lm.pt"
    shutil.copy(os.path.join(build, "share", "actmax", "models", "tiny-lm.pt"), other)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. " * 40)
    obj = "blocks.1.mlp.act[:, 5]"
    ex = f"%examples {obj} k=2 window=16 path={corpus}"

    def example_text():
        msgs = ok(kc, ex, timeout=300)
        return "".join(d["content"]["data"].get("text/plain", "") for d in kinds(msgs, "display_data")
                       if not d["content"].get("transient", {}).get("display_id"))

    ok(kc, f"%model '{other}'")
    ok(kc, f"%tokens {obj} len=4 steps=2 method=gcg batch=8", timeout=300)
    assert "optimized prompt (run" in example_text()  # the same model: compared
    ok(kc, "%model tiny-lm")
    assert "optimized prompt (run" not in example_text()  # another model's run: not compared
    ok(kc, f"%tokens {obj} len=4 steps=2 method=gcg batch=8", timeout=300)
    assert "optimized prompt (run" in example_text()


# ---- text runs --------------------------------------------------------------------

def test_tokens_at_full_context_finishes(kernel):
    """%tokens at tiny-lm's whole context: the attribution (every position
    against the vocabulary) once ran for minutes; it has a budget now."""
    km, kc = kernel
    drain(kc)
    ok(kc, "%model tiny-lm")
    msgs = ok(kc, "%tokens blocks.1.mlp.act[-1, 5] len=64 steps=1 method=gcg batch=8", timeout=300)
    assert kinds(msgs, "display_data")
    # The sampled attribution says so beside its table.
    (table,) = [d for d in displays(msgs) if "drop if swapped" in d["data"]["text/plain"]]
    assert "most promising tokens by the gradient" in table["data"]["text/plain"], table["data"]["text/plain"][-500:]
    assert "over the budget of 16384 prompts" in table["data"]["text/html"]
    still_there(kc, "tiny-lm", 1)


def test_tokens_attribution_is_shown_and_interruptible(kernel):
    """The attribution phase names itself on the live display with its count,
    and an interrupt there ends the cell with the prompt found, the kernel's
    model and runs kept."""
    import time
    from conftest import control_reply, iopub_for, shell_reply
    km, kc = kernel
    drain(kc)
    ok(kc, "%model tiny-lm")
    msg_id = kc.execute("%tokens blocks.1.mlp.act[-1, 5] len=64 steps=1 method=gcg batch=8 updates_per_s=20")
    seen, deadline = [], time.monotonic() + 300
    while time.monotonic() < deadline:
        m = kc.get_iopub_msg(timeout=300)
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        if m["msg_type"] in ("update_display_data", "display_data"):
            text = m["content"]["data"].get("text/plain", "")
            seen.append(text)
            if "attribution " in text:
                break
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            break
    phases = [t for t in seen if "attribution " in t]
    assert phases, "no live update named the attribution phase:\n" + "\n".join(seen[-3:])
    assert re.search(r"attribution \d+/\d+", phases[0]), phases[0]
    assert any("optimizing" in t for t in seen), seen[:3]
    req = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(req)
    control_reply(kc, req["header"]["msg_id"], timeout=30)
    msgs = iopub_for(kc, msg_id, timeout=120)
    reply = shell_reply(kc, msg_id, timeout=120)["content"]
    clean(msgs)
    text = "".join(d["content"]["data"].get("text/plain", "") for d in kinds(msgs, "display_data")
                   + kinds(msgs, "update_display_data"))
    text += "".join(e["evalue"] for e in errors(msgs))
    assert reply["status"] in ("ok", "error"), reply
    if reply["status"] == "error":
        assert reply["ename"] == "KeyboardInterrupt", reply
    assert "interrupted" in text.lower(), text[-2000:]
    still_there(kc, "tiny-lm", 1)
