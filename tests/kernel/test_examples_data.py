"""%examples data= and %check data=: the user's own images (a PNG folder with
class subfolders, a .npy file) for a model of the user's, through the
command line. The listed top items must be PyTorch's on the same files."""
import json
import os
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the test model is exported with python3-torch")
Image = pytest.importorskip("PIL.Image", reason="the test images are written with python3-pil")

EXE = os.environ.get("ACTMAX_EXE", "actmax")
N, S = 30, 12
CLASSES = ["bright", "dark"]


def actmax(cwd, *lines):
    return subprocess.run([EXE, "-c", "\n".join(lines)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * S * S, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    torch.manual_seed(2)
    model = Net().eval()
    meta = {"kind": "image", "input": [3, S, S], "labels": CLASSES}
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 3, S, S)), str(root / "m.pt"),
                   _extra_files={"actmax.json": json.dumps(meta)})
    rng = np.random.default_rng(4)
    u8 = rng.integers(0, 256, size=(N, S, S, 3), dtype=np.uint8)
    u8[: N // 2] //= 4  # the first half dark, the second bright
    order = []  # (class folder, file) order: "bright" sorts before "dark"
    for c, name in enumerate(CLASSES):
        (root / "imgs" / name).mkdir(parents=True)
        idx = range(N // 2, N) if name == "bright" else range(N // 2)
        for i in idx:
            Image.fromarray(u8[i]).save(root / "imgs" / name / f"{i:03d}.png")
            order.append(i)
    x = torch.from_numpy(u8[order].transpose(0, 3, 1, 2).astype(np.float32) / 255)
    # No mean/std in the metadata: a 3-channel model takes ImageNet's.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        conv = model.conv((x - mean) / std)  # the conv module's output, before the ReLU
    ref = conv[:, 1].mean((1, 2)).numpy()
    np.save(root / "imgs.npy", u8.transpose(0, 3, 1, 2)[order])
    return dict(root=root, ref=ref)


def listed(stdout):
    """(index, label, value) of the '  #i label value' lines."""
    rows = []
    for line in stdout.splitlines():
        p = line.split()
        if len(p) == 3 and p[0].startswith("#"):
            rows.append((int(p[0][1:]), p[1], float(p[2])))
    return rows


def test_examples_from_a_class_folder_and_a_npy(setup):
    root, ref = setup["root"], setup["ref"]
    want = np.argsort(-ref, kind="stable")[:5]
    for data in ("imgs", "imgs.npy"):
        r = actmax(root, "%model m.pt", f"%examples conv[1] k=5 data={data}")
        assert r.returncode == 0, r.stderr
        rows = listed(r.stdout)
        print(f"{data}: {rows[:3]}; PyTorch {list(want[:3])} {np.round(ref[want[:3]], 4)}")
        assert f"top 5 of {N} images in {data} for conv[1]" in r.stdout
        assert [i for i, _, _ in rows] == list(want)
        assert np.allclose([v for _, _, v in rows], ref[want], rtol=1e-4, atol=1e-5)
        # Folder labels are the subfolders; the .npy has no labels file.
        for i, lab, _ in rows:
            assert lab == (("bright" if i < N // 2 else "dark") if data == "imgs" else "?")


def test_bad_data_is_a_clear_error(setup):
    root = setup["root"]
    (root / "empty").mkdir(exist_ok=True)
    (root / "notes.txt").write_text("not images")
    # -c stops at the first failing cell: one session per bad input.
    for data, words in (("nowhere/", "No such file"), ("empty", "holds no PNG images"),
                        ("notes.txt", "neither a folder of PNG files nor a .npy or .pt file")):
        r = actmax(root, "%model m.pt", f"%examples conv[1] data={data}")
        print(r.stderr)
        assert r.returncode == 1 and data.rstrip("/") in r.stderr and words in r.stderr


def test_check_ranks_the_given_images(setup):
    root, ref = setup["root"], setup["ref"]
    top = np.argsort(-ref, kind="stable")[:4]
    bright = sum(1 for i in top if i < N // 2)
    f = root / "checks.json"
    f.write_text(json.dumps({"checks": [{
        "name": "bright-channel", "task": "a channel for bright images", "objective": "conv",
        "examples": {"label": "bright", "k": 4, "min_fraction": 0.5}, "hint": "try another"}]}))
    r = actmax(root, "%model m.pt", "%maximize conv[1] steps=2",
               f"%check bright-channel file={f} data=imgs")
    assert r.returncode == 0, r.stderr
    print(r.stdout)
    assert f"top 4 imgs examples of conv[1]: {bright} are bright" in r.stdout
    assert ("PASS" if bright >= 2 else "FAIL") + " bright-channel" in r.stdout
