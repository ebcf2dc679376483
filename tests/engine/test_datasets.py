"""Dataset examples for any image model: a folder of PNG files (flat or one
subfolder per class), a .npy array and a torch.save file, given per call or
declared in actmax.json. Every top-k is recomputed in plain PyTorch on the
same files (read back with PIL / numpy / torch.load, converted as the docs
say), so the engine must agree on values and order; bad inputs must fail
with a message naming what is wrong.
"""
import json
import os

import numpy as np
import psutil
import pytest
import torch
from PIL import Image

import actmax
import actmax.raw as raw

H = W = 16
N = 40
MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
LABELS = ["zero", "one", "two"]
E_IO, E_FORMAT, E_UNSUPPORTED = -2, -3, -7
LUMA = (0.299, 0.587, 0.114)


class Net(torch.nn.Module):
    def __init__(self, channels, classes=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 6, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.pool = torch.nn.AdaptiveAvgPool2d(2)
        self.fc = torch.nn.Linear(6 * 4, classes)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


def export(path, channels, size=H, meta_extra=None):
    torch.manual_seed(7 + channels)
    model = Net(channels).eval()
    meta = {"kind": "image", "input": [channels, size, size], "mean": MEAN[:channels],
            "std": STD[:channels], "labels": LABELS}
    meta.update(meta_extra or {})
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, channels, size, size)), str(path),
                   _extra_files={"actmax.json": json.dumps(meta)})
    return model


def reference(model, images01, objective_fn, channels):
    """The objective on images in [0, 1], (N, C, H, W) float32, by PyTorch."""
    x = (torch.from_numpy(images01) - torch.tensor(MEAN[:channels]).view(1, -1, 1, 1)) \
        / torch.tensor(STD[:channels]).view(1, -1, 1, 1)
    got = {}
    h = model.conv.register_forward_hook(lambda m, i, o: got.setdefault("conv", o))
    with torch.no_grad():
        got["fc"] = model(x)
    h.remove()
    return objective_fn(got).numpy()


def check_topk(r, ref, k, images01=None, labels=None, names=None):
    order = np.argsort(-ref, kind="stable")[:k]
    vals = np.array([e["value"] for e in r["items"]])
    print(f"  engine {np.round(vals[:3], 5)} {[e['index'] for e in r['items'][:3]]}, "
          f"PyTorch {np.round(ref[order[:3]], 5)} {list(order[:3])}")
    assert r["scanned"] == len(ref) and len(r["items"]) == k
    # float32 rounding of the model's arithmetic (batched against unbatched)
    assert np.allclose(vals, ref[order], rtol=1e-5, atol=1e-5)
    for e, i in zip(r["items"], order):
        if e["index"] != i:
            assert abs(ref[e["index"]] - ref[i]) <= 1e-5 * max(1, abs(ref[i]))
        if images01 is not None:
            assert np.allclose(e["image"], images01[e["index"]], atol=1e-6)
        if labels is not None:
            assert e["label"] == labels[e["index"]] and e["label_name"] == names[labels[e["index"]]]
        else:
            assert e["label"] == -1 and e["label_name"] == ""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    rng = np.random.default_rng(5)
    u8 = rng.integers(0, 256, size=(N, 3, H, W), dtype=np.uint8)
    labels = rng.integers(0, 3, size=N).astype(np.int64)
    d = dict(root=root, u8=u8, labels=labels, rgb01=u8.astype(np.float32) / 255)
    d["rgb_model"] = export(root / "rgb.pt", 3)
    d["gray_model"] = export(root / "gray.pt", 1)
    d["rgb"] = actmax.load(str(root / "rgb.pt"), device="cpu")
    d["gray"] = actmax.load(str(root / "gray.pt"), device="cpu")
    # flat folder: names sort as the indices do
    flat = root / "flat"
    flat.mkdir()
    for i in range(N):
        Image.fromarray(u8[i].transpose(1, 2, 0)).save(flat / f"img{i:03d}.png")
    # one subfolder per class, names in byte order: "a_zero" < "b_one" < "c_two"
    classes = root / "classes"
    order = []
    for c, cname in enumerate(["a_zero", "b_one", "c_two"]):
        (classes / cname).mkdir(parents=True)
        for i in np.nonzero(labels == c)[0]:
            Image.fromarray(u8[i].transpose(1, 2, 0)).save(classes / cname / f"x{i:03d}.png")
            order.append(i)
    d["class_order"] = np.array(order)
    return d


OBJECTIVES = [("conv[2]", lambda a: a["conv"][:, 2].mean((1, 2))),
              ("fc[\"two\"] - 0.5*fc[0]", lambda a: a["fc"][:, 2] - 0.5 * a["fc"][:, 0])]


@pytest.mark.parametrize("objective,fn", OBJECTIVES)
def test_png_folder_flat_and_by_class(data, objective, fn):
    K = 7
    ref = reference(data["rgb_model"], data["rgb01"], fn, 3)
    r = raw.examples(data["rgb"], objective, dataset=str(data["root"] / "flat"), k=K, batch=16)
    check_topk(r, ref, K, images01=data["rgb01"])
    # By class: index = position in (class, file name) order, the label its subfolder.
    o = data["class_order"]
    r = raw.examples(data["rgb"], objective, dataset=str(data["root"] / "classes"), k=K, batch=9)
    check_topk(r, ref[o], K, images01=data["rgb01"][o], labels=data["labels"][o],
               names=["a_zero", "b_one", "c_two"])


def test_png_colour_types_and_channels(data, tmp_path):
    """Gray repeated to RGB, palette expanded, alpha dropped, 16-bit by 1/65535;
    RGB to a 1-channel model by luminance."""
    rng = np.random.default_rng(9)
    rgb = rng.integers(0, 256, size=(5, H, W, 3), dtype=np.uint8)
    gray16 = rng.integers(0, 65536, size=(H, W), dtype=np.uint16)
    pal = Image.fromarray(rgb[3]).quantize(16)
    files = [Image.fromarray(rgb[0]), Image.fromarray(np.dstack([rgb[1], rgb[2][..., 0]]), "RGBA"),
             Image.fromarray(rgb[2][..., 1]), pal, Image.fromarray(gray16)]
    want = [rgb[0] / 255, rgb[1] / 255, np.repeat(rgb[2][..., 1:2], 3, 2) / 255,
            np.asarray(pal.convert("RGB")) / 255, np.repeat(gray16[..., None], 3, 2) / 65535]
    for i, im in enumerate(files):
        im.save(tmp_path / f"{i}.png")
    assert Image.open(tmp_path / "4.png").mode.startswith("I")  # a 16-bit file indeed
    want = np.stack(want).transpose(0, 3, 1, 2).astype(np.float32)
    fn = OBJECTIVES[0][1]
    r = raw.examples(data["rgb"], "conv[2]", dataset=str(tmp_path), k=5)
    check_topk(r, reference(data["rgb_model"], want, fn, 3), 5, images01=want)
    # The same files to a 1-channel model: RGB -> luminance, gray as is.
    lum = (LUMA[0] * want[:, 0] + LUMA[1] * want[:, 1] + LUMA[2] * want[:, 2])[:, None]
    lum[2] = want[2, :1]
    lum[4] = want[4, :1]
    r = raw.examples(data["gray"], "conv[2]", dataset=str(tmp_path), k=5)
    check_topk(r, reference(data["gray_model"], lum.astype(np.float32), fn, 1), 5, images01=lum)


def test_npy_and_pt(data, tmp_path):
    fn = OBJECTIVES[1][1]
    ref = reference(data["rgb_model"], data["rgb01"], fn, 3)
    K = 6
    # float32 (N, C, H, W), no labels
    np.save(tmp_path / "f32.npy", data["rgb01"])
    r = raw.examples(data["rgb"], OBJECTIVES[1][0], dataset=str(tmp_path / "f32.npy"), k=K, batch=7)
    check_topk(r, ref, K, images01=data["rgb01"])
    # uint8 with labels beside it, named by the model's labels
    np.save(tmp_path / "u8.npy", data["u8"])
    np.save(tmp_path / "u8.labels.npy", data["labels"].astype(np.int32))
    r = raw.examples(data["rgb"], OBJECTIVES[1][0], dataset=str(tmp_path / "u8.npy"), k=K)
    check_topk(r, ref, K, images01=data["rgb01"], labels=data["labels"], names=LABELS)
    # (N, H, W) uint8 for the 1-channel model
    g = data["u8"][:, 0]
    np.save(tmp_path / "g.npy", g)
    gref = reference(data["gray_model"], g[:, None].astype(np.float32) / 255, fn, 1)
    r = raw.examples(data["gray"], OBJECTIVES[1][0], dataset=str(tmp_path / "g.npy"), k=K)
    check_topk(r, gref, K, images01=g[:, None].astype(np.float32) / 255)
    # torch.save: a tensor, a dict with labels, a tuple
    torch.save(torch.from_numpy(data["rgb01"]), tmp_path / "t.pt")
    r = raw.examples(data["rgb"], OBJECTIVES[1][0], dataset=str(tmp_path / "t.pt"), k=K)
    check_topk(r, ref, K, images01=data["rgb01"])
    torch.save({"images": torch.from_numpy(data["u8"]), "labels": torch.from_numpy(data["labels"])},
               tmp_path / "d.pt")
    r = raw.examples(data["rgb"], OBJECTIVES[1][0], dataset=str(tmp_path / "d.pt"), k=K)
    check_topk(r, ref, K, images01=data["rgb01"], labels=data["labels"], names=LABELS)
    torch.save((torch.from_numpy(data["rgb01"]).double(), torch.from_numpy(data["labels"])),
               tmp_path / "tup.pth")
    r = raw.examples(data["rgb"], OBJECTIVES[1][0], dataset=str(tmp_path / "tup.pth"), k=K)
    check_topk(r, ref, K, images01=data["rgb01"], labels=data["labels"], names=LABELS)


def test_declared_in_metadata(data, tmp_path):
    """"dataset": {"path", "labels"} relative to the model file; the
    dataset's label names win over the model's."""
    sub = tmp_path / "model"
    sub.mkdir()
    np.save(sub / "imgs.npy", data["u8"])
    np.save(sub / "imgs.labels.npy", data["labels"])
    names = ["cat", "dog", "owl"]
    model = export(sub / "m.pt", 3, meta_extra={"dataset": {"path": "imgs.npy", "labels": names}})
    am = actmax.load(str(sub / "m.pt"), device="cpu")
    r = raw.examples(am, "conv[2]", k=5)
    ref = reference(model, data["rgb01"], OBJECTIVES[0][1], 3)
    check_topk(r, ref, 5, images01=data["rgb01"], labels=data["labels"], names=names)
    # A metadata dataset that is neither a name nor a {"path": ...} object.
    export(sub / "bad.pt", 3, meta_extra={"dataset": {"labels": names}})
    with pytest.raises(actmax.Error) as e:
        actmax.load(str(sub / "bad.pt"), device="cpu")
    print(f"  {e.value}")
    assert '"dataset" must be' in str(e.value) and '"path"' in str(e.value)


def test_bad_inputs(data, tmp_path):
    am = data["rgb"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "big").mkdir()
    Image.fromarray(data["u8"][0].transpose(1, 2, 0)).save(tmp_path / "big" / "a.png")
    Image.fromarray(np.zeros((20, 18, 3), np.uint8)).save(tmp_path / "big" / "b.png")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'   \n")
    np.save(tmp_path / "f64.npy", np.zeros((2, 3, H, W)))
    np.save(tmp_path / "small.npy", np.zeros((2, 3, 8, 8), np.float32))
    torch.save(data["rgb_model"].state_dict(), tmp_path / "sd.pt")
    cases = [
        (tmp_path / "missing", OSError, E_IO, ["missing"]),
        (tmp_path / "empty", actmax.FormatError, E_FORMAT, ["no PNG images"]),
        (tmp_path / "big", actmax.UnsupportedError, E_UNSUPPORTED, ["b.png", "20x18", "16x16"]),
        (tmp_path / "broken", actmax.FormatError, E_FORMAT, ["x.png", "PNG"]),
        (tmp_path / "bad.npy", actmax.FormatError, E_FORMAT, ["bad.npy", "shape"]),
        (tmp_path / "f64.npy", actmax.FormatError, E_FORMAT, ["<f8", "float32"]),
        (tmp_path / "small.npy", actmax.UnsupportedError, E_UNSUPPORTED, ["8x8", "16x16"]),
        (tmp_path / "sd.pt", actmax.FormatError, E_FORMAT, ["state_dict", "images"]),
    ]
    for path, cls, status, words in cases:
        with pytest.raises(cls) as e:
            raw.examples(am, "conv[1]", dataset=str(path))
        print(f"  {path.name}: {e.value}")
        assert e.value.status == status
        for w in words:
            assert w in e.value.detail
    # A 3-channel folder for a 2-channel model has no conversion.
    export(tmp_path / "two.pt", 2)
    two = actmax.load(str(tmp_path / "two.pt"), device="cpu")
    with pytest.raises(actmax.UnsupportedError) as e:
        raw.examples(two, "conv[1]", dataset=str(data["root"] / "flat"))
    assert "channels" in e.value.detail
    # The handle still works.
    assert raw.examples(am, "conv[1]", dataset=str(data["root"] / "flat"), k=1)["scanned"] == N


def test_big_folder_and_npy_are_streamed(tmp_path):
    """Memory stays bounded: the scan's resident growth is a fraction of the
    dataset's size as floats."""
    S, M = 64, 2400
    export(tmp_path / "m64.pt", 3, size=S)
    am = actmax.load(str(tmp_path / "m64.pt"), device="cpu")
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, size=(M, S, S, 3), dtype=np.uint8)
    (tmp_path / "many").mkdir()
    for i in range(M):
        Image.fromarray(u8[i]).save(tmp_path / "many" / f"{i:05d}.png", compress_level=0)
    np.save(tmp_path / "many.npy", u8.transpose(0, 3, 1, 2))
    del u8
    as_floats = M * 3 * S * S * 4
    proc = psutil.Process()
    for path in ("many", "many.npy"):
        # A first scan warms up the allocator and the model's buffers.
        raw.examples(am, "conv[1]", dataset=str(tmp_path / path), k=3, limit=64, batch=32)
        peak = [proc.memory_info().rss]
        base = peak[0]
        r = raw.examples(am, "conv[1]", dataset=str(tmp_path / path), k=3, batch=32,
                         progress=lambda s, t, b: peak.append(proc.memory_info().rss) and None)
        growth = max(peak) - base
        print(f"  {path}: {r['scanned']} images ({as_floats / 2**20:.0f} MiB as floats), "
              f"resident growth {growth / 2**20:.1f} MiB")
        assert r["scanned"] == M
        assert growth < as_floats / 4


def test_module_examples_data_key(data):
    """m.examples(..., data=PATH): the same scan as the engine's, titled by
    the path; an unknown key still fails as before."""
    folder = str(data["root"] / "classes")
    ex = data["rgb"].examples("conv[2]", k=4, data=folder)
    r = raw.examples(data["rgb"], "conv[2]", dataset=folder, k=4)
    assert list(ex.indices) == [e["index"] for e in r["items"]]
    assert np.allclose(ex.values, [e["value"] for e in r["items"]])
    assert ex.label_names == [e["label_name"] for e in r["items"]]
    assert ex.data == folder and f"images in {folder}" in ex._title()
    with pytest.raises(TypeError):
        data["rgb"].examples("conv[2]", dta=folder)
