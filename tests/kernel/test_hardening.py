"""Bad inputs a hostile user tried, each through the kernel: one clear error
(or the documented behaviour), the kernel alive with its model and runs
kept, and no C++ frame in any message a user sees."""
import re
import struct
import zlib

import pytest

from conftest import drain, errors, kinds, pngs, run, start, stop

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
