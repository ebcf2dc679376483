"""Dataset examples (am_examples) against PyTorch and numpy.

Images: a small CNN with fixed random weights is saved with metadata declaring
"range": [0, 255] and a mean/std in that range, so a scanner that forgot the
range (scoring the [0, 1] pixels as read) would rank and value the images
differently. Every figure is recomputed in PyTorch on the IDX files of
Debian's dataset-fashion-mnist, and the engine's own am_model_objective on
the same input must agree with the examples' values.

Text: a small GPT with random weights and a byte-level BPE tokenizer
(tinygpt.py) scans a generated corpus; a plain PyTorch loop scores every token
with its natural preceding context, and the engine's maximum, histogram,
firing rate and quantile bands must be those of the same values.
"""
import gzip
import json
import os

import numpy as np
import pytest
import torch

import actmax
import actmax.raw as raw
from tinygpt import saved_gpt

DATA = "/usr/share/datasets/fashion-mnist"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
          "Ankle boot"]
MEAN, STD = 72.9, 90.0  # in the 0..255 range the metadata declares
LIMIT = 1500            # test images scanned: enough for a meaningful top-k, quick on CPU
E_ARG, E_FORMAT, E_LAYER, E_OBJECTIVE, E_UNSUPPORTED = -1, -3, -5, -6, -7
# Every scan here runs the model unless a test turns the activation cache on
# (in a folder of its own), so no test depends on an earlier one's files.
os.environ["ACTMAX_ACT_CACHE"] = "off"
# The class the module raises for each status (am_status_class).
ERROR_CLASS = {E_ARG: ValueError, -2: OSError, E_LAYER: actmax.LayerError, E_OBJECTIVE: actmax.ObjectiveError,
               E_UNSUPPORTED: actmax.UnsupportedError}



def idx(name):
    with gzip.open(f"{DATA}/{name}", "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 5, padding=2)
        self.relu = torch.nn.ReLU()
        self.pool = torch.nn.MaxPool2d(4)
        self.fc = torch.nn.Linear(8 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


@pytest.fixture(scope="module")
def net(model_dir):
    if not os.path.exists(f"{DATA}/t10k-images-idx3-ubyte.gz"):
        pytest.skip("dataset-fashion-mnist is not installed (scripts/install-deps.sh)")
    torch.manual_seed(3)
    model = Net().eval()
    meta = {"kind": "image", "input": [1, 28, 28], "mean": [MEAN], "std": [STD], "range": [0, 255],
            "labels": LABELS, "dataset": "fashion-mnist"}
    path = model_dir / "range255.pt"
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 28, 28)), str(path),
                   _extra_files={"actmax.json": json.dumps(meta)})
    images = idx("t10k-images-idx3-ubyte.gz")[:LIMIT].astype(np.float32)  # 0..255, as the model expects
    labels = idx("t10k-labels-idx1-ubyte.gz")[:LIMIT].astype(np.int64)
    return dict(model=model, path=path, am=actmax.load(str(path), device="cpu"), images=images[:, None],
                labels=labels)


def torch_values(net, objective_fn):
    x = (torch.from_numpy(net["images"]) - MEAN) / STD
    got = {}
    hooks = [net["model"].conv.register_forward_hook(lambda m, i, o: got.setdefault("conv", o)),
             net["model"].pool.register_forward_hook(lambda m, i, o: got.setdefault("pool", o))]
    with torch.no_grad():
        got["fc"] = net["model"](x)
    for h in hooks:
        h.remove()
    return objective_fn(got).numpy()


@pytest.mark.parametrize("objective,fn", [
    ("conv[3]", lambda a: a["conv"][:, 3].mean((1, 2))),
    ("fc[\"Sneaker\"] - 0.5*fc[5]", lambda a: a["fc"][:, 7] - 0.5 * a["fc"][:, 5]),
    ("pool[1, 2, 3]", lambda a: a["pool"][:, 1, 2, 3]),
])
def test_topk_matches_pytorch(net, objective, fn):
    K = 9
    r = raw.examples(net["am"], objective, k=K, limit=LIMIT, batch=256)
    ref = torch_values(net, fn)
    order = np.argsort(-ref, kind="stable")[:K]
    print(f"\n{objective}: engine top {[round(e['value'], 4) for e in r['items'][:3]]}, "
          f"PyTorch {[round(float(ref[i]), 4) for i in order[:3]]}")
    assert r["kind"] == "image" and r["scanned"] == LIMIT and r["cancelled"] == 0
    assert len(r["items"]) == K
    # Values to float32 rounding of the model's own arithmetic; ranks equal
    # unless two images lie within that rounding of each other.
    vals = np.array([e["value"] for e in r["items"]])
    assert np.allclose(vals, ref[order], rtol=1e-4, atol=1e-4)
    for e, i in zip(r["items"], order):
        if e["index"] != i:
            assert abs(ref[e["index"]] - ref[i]) <= 1e-4 * max(1, abs(ref[i]))
    assert r["max"] == r["items"][0]["value"]
    for e in r["items"]:
        # The image in the model's value range, the label with its name.
        assert e["image"].shape == (1, 28, 28)
        assert np.array_equal(e["image"], net["images"][e["index"]])
        assert e["label"] == net["labels"][e["index"]]
        assert e["label_name"] == LABELS[e["label"]]


def test_same_value_as_the_objective_on_the_same_image(net):
    """The range is applied as runs apply it: an example's value is what
    am_model_objective gives on the image scaled the same way."""
    r = raw.examples(net["am"], "conv[6]", k=5, limit=LIMIT)
    img = np.stack([e["image"] for e in r["items"]])  # (5, 1, 28, 28) in 0..255
    direct = np.asarray(net["am"].objective((img - MEAN) / STD, "conv[6]"))
    vals = np.array([e["value"] for e in r["items"]])
    print(f"\nexamples {vals}, am_model_objective {direct}")
    assert np.allclose(vals, direct, rtol=1e-5, atol=1e-5)
    # Scoring the [0, 1] pixels as read (the range dropped) gives other values.
    wrong = np.asarray(net["am"].objective((img / 255.0 - MEAN) / STD, "conv[6]"))
    assert not np.allclose(vals, wrong, rtol=1e-2)


def test_progress_cancel_and_split(net):
    B, K = 200, 4
    calls = []
    r = raw.examples(net["am"], "conv[3]", k=K, limit=LIMIT, batch=B,
                     progress=lambda s, t, b: calls.append((s, t, b)))
    assert [c[0] for c in calls] == [min((i + 1) * B, LIMIT) for i in range(len(calls))]
    assert all(c[1] == LIMIT for c in calls) and calls[-1][2] == r["max"]
    # Cancelled after the first batch: the top k of the items read.
    calls = []
    r = raw.examples(net["am"], "conv[3]", k=K, limit=LIMIT, batch=B,
                     progress=lambda s, t, b: calls.append((s, t, b)) or True)
    ref = torch_values(net, lambda a: a["conv"][:, 3].mean((1, 2)))[:B]
    assert len(calls) == 1 and r["cancelled"] == 1 and r["scanned"] == B
    assert [e["index"] for e in r["items"]] == list(np.argsort(-ref, kind="stable")[:K])
    # The training split is another set of images.
    tr = raw.examples(net["am"], "conv[3]", k=1, limit=300, split="train")
    first = idx("train-images-idx3-ubyte.gz")[tr["items"][0]["index"]].astype(np.float32)
    assert np.array_equal(tr["items"][0]["image"][0], first)


def test_bad_requests(net, model_dir, resnet18_file):
    am = net["am"]
    cases = [
        (dict(objective="conv[3] + diversity(conv)"), E_OBJECTIVE, "diversity"),
        (dict(objective="conv[[3]"), E_OBJECTIVE, "^"),
        (dict(objective="conv[99]"), E_OBJECTIVE, "out of range"),
        (dict(objective="convv[1]"), E_LAYER, "conv"),
        (dict(objective="conv[1]", k=-1), E_ARG, "k must be"),
        (dict(objective="conv[1]", limit=-5), E_ARG, "limit"),
        (dict(objective="conv[1]", split="validation"), E_ARG, "validation"),
        (dict(objective="conv[1]", dataset="fashion-mnist", path=str(model_dir)), -2, str(model_dir)),
        (dict(objective="conv[1]", dataset="imagenet"), E_ARG, "imagenet"),
    ]
    for kw, status, words in cases:
        with pytest.raises(ERROR_CLASS[status]) as e:
            raw.examples(am, kw.pop("objective"), **{"limit": 300, **kw})
        print(f"  {kw}: {e.value}")
        assert e.value.status == status and words in e.value.detail
    # A model whose metadata names no dataset, and one of another input shape.
    path, _ = resnet18_file
    other = actmax.load(str(path), device="cpu", input=(3, 64, 64))
    with pytest.raises(actmax.UnsupportedError) as e:
        raw.examples(other, "layer1[0]")
    assert e.value.status == E_UNSUPPORTED and "names no dataset" in e.value.detail
    with pytest.raises(actmax.UnsupportedError) as e:
        raw.examples(other, "layer1[0]", dataset="fashion-mnist", limit=10)
    assert e.value.status == E_UNSUPPORTED and "[1, 28, 28]" in e.value.detail
    # The handle still works after every failure.
    assert raw.examples(am, "conv[1]", k=1, limit=10)["scanned"] == 10


def test_distribution_matches_numpy(net):
    """Histogram, firing rate, quantile bands and class means of every item's
    value, against numpy on PyTorch's values of the same images."""
    edges = [0, 25, 50, 75, 90, 99, 100]
    r = raw.examples(net["am"], "conv[3] - 0.05", k=3, limit=LIMIT, bins=20, quantiles=6, per_band=4,
                     band_percentiles=edges)
    ref = torch_values(net, lambda a: a["conv"][:, 3].mean((1, 2)) - 0.05).astype(np.float64)
    assert r["scanned"] == LIMIT and not r["sampled"]
    counts, lo, hi = r["histogram"]
    want, want_edges = np.histogram(ref, 20, range=(ref.min(), ref.max()))
    print(f"\nhistogram {counts.tolist()}\nnumpy     {want.tolist()}; firing {r['firing_rate']:.4f}")
    assert abs(lo - ref.min()) <= 1e-4 and abs(hi - ref.max()) <= 1e-4
    assert counts.sum() == LIMIT
    # Equal but for values within float rounding of a bin edge.
    near = np.abs(ref[:, None] - want_edges[None, :]).min(1) <= 1e-4
    assert np.abs(counts - want).sum() <= 2 * near.sum()
    assert abs(r["firing_rate"] - (ref > 0).mean()) <= near.sum() / LIMIT + 1e-12
    assert 0 < r["firing_rate"] < 1  # the offset makes both sides occur
    bounds = np.percentile(ref, edges)
    assert len(r["bands"]) == 6
    for b, (blo, bhi, items) in enumerate(r["bands"]):
        assert abs(blo - bounds[b]) <= 1e-4 and abs(bhi - bounds[b + 1]) <= 1e-4
        assert len(items) == 4
        vals = [e["value"] for e in items]
        assert vals == sorted(vals)
        for e in items:
            assert blo - 1e-6 <= e["value"] <= bhi + 1e-6
            assert abs(e["value"] - ref[e["index"]]) <= 1e-4
            assert np.array_equal(e["image"], net["images"][e["index"]])
    means = r["class_means"]
    want_means = np.array([ref[net["labels"] == c].mean() for c in range(10)])
    assert means.shape == (10,) and np.allclose(means, want_means, atol=1e-4)
    # No bands asked: none kept; default bins 50.
    r2 = raw.examples(net["am"], "conv[3]", k=1, limit=200)
    assert r2["bands"] == [] and len(r2["histogram"][0]) == 50 and r2["window"] is None


# ---------------------------------------------------------------- text

CTX = 8
NEURON = "blocks.1.mlp.1"  # the GELU of the second block


@pytest.fixture(scope="module")
def gpt(model_dir):
    path = model_dir / "gpt_examples.pt"
    model, tok, _, eot = saved_gpt(path, CTX)
    return dict(model=model, tok=tok.encode(), eot=eot, am=actmax.load(str(path), device="cpu"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, gpt):
    rng = np.random.default_rng(0)
    words = ["the", "then", "an", "and", "hen", "ant", "tan", "he", "a", "tether", "net", "eh"]
    text = " ".join(rng.choice(words, size=301)) + "\n"
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(text)
    stream = np.concatenate([raw.tokenize(gpt["tok"], text), [gpt["eot"]]]).astype(np.int64)
    return path, stream


def neuron(model, ids, n=6):
    """blocks.1.mlp.1[:, :, n] of (B, T) ids through a forward hook: (B, T)."""
    got = {}
    h = model.blocks[1].mlp[1].register_forward_hook(lambda mod, i, o: got.setdefault("a", o.detach()))
    with torch.no_grad():
        model(torch.as_tensor(np.array(np.atleast_2d(ids))))
    h.remove()
    return got["a"][..., n].numpy()


def natural(model, stream, n=6):
    """Every token with all of its preceding context the model takes (up to
    CTX - 1 tokens), by a plain loop: the model is causal, so token t's value
    is the last position of stream[t - CTX + 1 : t + 1]."""
    first = neuron(model, stream[:CTX], n)[0]  # the tokens with fewer than CTX - 1 before them
    windows = np.lib.stride_tricks.sliding_window_view(stream, CTX)
    rest = neuron(model, windows, n)[:, -1]  # tokens CTX - 1 .. N - 1
    return np.concatenate([first[:CTX - 1], rest]).astype(np.float64)


def test_every_token_scored_with_natural_context(gpt, corpus):
    path, stream = corpus
    N = len(stream)
    brute = natural(gpt["model"], stream)
    edges = [0, 25, 50, 75, 90, 99, 100]
    r = raw.examples(gpt["am"], f"{NEURON}[-1, 6]", dataset="text", path=path, window=CTX, context=CTX - 1,
                     k=5, bins=30, quantiles=6, per_band=3, band_percentiles=edges)
    print(f"\n{N} tokens: engine max {r['max']:.5f}, brute force {brute.max():.5f}, "
          f"firing {r['firing_rate']:.4f}")
    assert r["kind"] == "text" and r["scanned"] == N and r["window"] == (CTX, CTX - 1)
    assert abs(r["max"] - brute.max()) <= 1e-4
    # Top windows: each window's peak is its highest scored token, values best first.
    vals = [e["value"] for e in r["items"]]
    assert vals == sorted(vals, reverse=True) and vals[0] == r["max"]
    assert np.allclose(vals, np.sort(brute)[::-1][:5], atol=1e-4)
    for e in r["items"]:
        i, p, s = e["index"], e["peak"], e["scored"]
        assert np.array_equal(e["tokens"], stream[i:i + len(e["tokens"])])
        assert s <= p < len(e["tokens"])
        assert abs(e["value"] - brute[i + p]) <= 1e-4
        assert np.allclose(e["acts"][s:], brute[i + s:i + len(e["tokens"])], atol=1e-4)
    # The distribution is that of the brute-force values.
    counts, lo, hi = r["histogram"]
    want, want_edges = np.histogram(brute, 30, range=(brute.min(), brute.max()))
    near = np.abs(brute[:, None] - want_edges[None, :]).min(1) <= 1e-4
    assert counts.sum() == N and np.abs(counts - want).sum() <= 2 * near.sum()
    assert abs(lo - brute.min()) <= 1e-4 and abs(hi - brute.max()) <= 1e-4
    assert abs(r["firing_rate"] - (brute > 0).mean()) <= 1e-12 + np.sum(np.abs(brute) <= 1e-4) / N
    bounds = np.percentile(brute, edges)
    assert len(r["bands"]) == 6
    for b, (blo, bhi, items) in enumerate(r["bands"]):
        assert abs(blo - bounds[b]) <= 1e-4 and abs(bhi - bounds[b + 1]) <= 1e-4
        assert 1 <= len(items) <= 3
        for e in items:
            assert blo - 1e-6 <= e["value"] <= bhi + 1e-6
            assert abs(e["value"] - brute[e["index"] + e["peak"]]) <= 1e-4
    assert r["class_means"] is None
    # [:, n] reads neuron n at each token: the same ranking, not a window mean.
    r2 = raw.examples(gpt["am"], f"{NEURON}[:, 6]", dataset="text", path=path, window=CTX, context=CTX - 1, k=5)
    assert r2["max"] == r["max"] and [e["index"] for e in r2["items"]] == [e["index"] for e in r["items"]]


def test_default_windows_score_each_token_once(gpt, corpus):
    """Default context (half the window): the scored parts of all windows
    tile the corpus exactly, each scored token has at least the context
    before it (or the corpus' start), and its value is PyTorch's on that
    window."""
    path, stream = corpus
    N = len(stream)
    W, C = CTX, CTX // 2
    assert (N - W) % (W - C) != 0  # a last window aligned to the end is needed
    r = raw.examples(gpt["am"], f"{NEURON}[-1, 6]", dataset="text", path=path, window=W, k=100000)
    assert r["window"] == (W, C) and r["scanned"] == N
    scored = np.zeros(N, np.int64)
    for e in r["items"]:
        i, s, T = e["index"], e["scored"], len(e["tokens"])
        assert T == W and (i == 0 or s >= C)
        scored[i + s:i + T] += 1
        assert np.allclose(e["acts"], neuron(gpt["model"], stream[i:i + T])[0], atol=1e-4)
        assert abs(e["value"] - e["acts"][s:].max()) <= 1e-6
    assert (scored == 1).all()
    # stride is the other spelling of the context; disagreeing ones are refused.
    r2 = raw.examples(gpt["am"], f"{NEURON}[-1, 6]", dataset="text", path=path, window=W, stride=W - C, k=3)
    assert r2["max"] == r["max"] and r2["window"] == (W, C)
    with pytest.raises(ValueError) as e:
        raw.examples(gpt["am"], f"{NEURON}[-1, 6]", dataset="text", path=path, window=W, stride=2, context=3)
    assert e.value.status == E_ARG and "disagree" in e.value.detail


def test_text_progress_cancel_and_limit(gpt, corpus):
    path, stream = corpus
    N, W, B = len(stream), CTX, 16
    stride = W - W // 2
    calls = []
    r = raw.examples(gpt["am"], f"{NEURON}[-1, 6]", dataset="text", path=path, window=W, batch=B, k=3,
                     progress=lambda s, t, b: calls.append((s, t, b)))
    print(f"\n{len(calls)} progress calls: {calls[:2]} ... {calls[-1]}")
    assert len(calls) > 3 and calls[-1][:2] == (N, N) and calls[-1][2] == r["max"]
    assert all(a[0] < b[0] for a, b in zip(calls, calls[1:])) and all(t >= s for s, t, _ in calls)
    # Cancelled after the first batch: its windows' tokens, the best of them.
    r = raw.examples(gpt["am"], f"{NEURON}[-1, 6]", dataset="text", path=path, window=W, batch=B, k=3,
                     progress=lambda s, t, b: True)
    first = W + (B - 1) * stride
    assert r["cancelled"] == 1 and r["scanned"] == first
    assert all(e["index"] + e["peak"] < first for e in r["items"])
    # limit: the corpus cut at that many tokens.
    r = raw.examples(gpt["am"], f"{NEURON}[-1, 6]", dataset="text", path=path, window=W, limit=21, k=100)
    assert r["scanned"] == 21 and max(e["index"] + len(e["tokens"]) for e in r["items"]) == 21
    # A corpus shorter than the window: one shorter window, every token scored.
    short = path.parent / "short.txt"
    short.write_text("the hen")
    ids = np.concatenate([raw.tokenize(gpt["tok"], "the hen"), [gpt["eot"]]])
    r = raw.examples(gpt["am"], f"{NEURON}[-1, 6]", dataset="text", path=short, window=W, k=3)
    assert r["scanned"] == len(ids) < W and len(r["items"]) == 1
    assert np.allclose(r["items"][0]["acts"], neuron(gpt["model"], ids)[0], atol=1e-4)


def test_large_corpus_is_streamed(gpt, tmp_path):
    """A 200 MB corpus is not read whole: resident memory stays bounded
    while the first tokens are scanned; and a corpus of several read chunks
    gives the tokens of the whole text (chunks cut where the tokenizer cuts)."""
    psutil = pytest.importorskip("psutil")
    line = b"the hen and the ant then tan a net eh tether\n"
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        block = line * 20000
        for _ in range(200 * 2 ** 20 // len(block) + 1):
            f.write(block)
    assert big.stat().st_size >= 200 * 2 ** 20
    proc = psutil.Process()
    before = proc.memory_info().rss
    during = []  # sampled while the scan runs, from its progress callback
    r = raw.examples(gpt["am"], f"{NEURON}[-1, 6]", dataset="text", path=big, limit=50000, k=3, quantiles=4,
                     progress=lambda s, t, b: during.append(proc.memory_info().rss))
    grown = max(during) - before
    print(f"\n200 MB corpus, 50000 tokens scanned: resident memory grew {grown / 2 ** 20:.1f} MiB during the scan "
          f"({len(during)} samples)")
    assert r["scanned"] == 50000 and len(during) > 1
    assert grown < 64 * 2 ** 20  # a reader holding the file and its tokens: > 1 GiB
    # Three chunks and a bit, fully scanned: as many tokens as the whole text has.
    mid = tmp_path / "mid.txt"
    text = (line.decode() * 75000) + "  indented\n\nlast"
    mid.write_text(text)
    want = len(raw.tokenize(gpt["tok"], text)) + 1
    r = raw.examples(gpt["am"], f"{NEURON}[-1, 6]", dataset="text", path=mid, window=CTX, stride=CTX,
                     batch=4096, k=1)
    assert r["scanned"] == want


def test_text_bad_requests(gpt, corpus, model_dir):
    path, _ = corpus
    obj = f"{NEURON}[-1, 6]"
    cases = [
        (dict(window=9), "window must be 1..8"),
        (dict(window=4, context=4), "context must be 0..3"),
        (dict(window=4, stride=5), "stride must be 1..4"),
        (dict(bins=-1), "bins must be"),
        (dict(quantiles=3, band_percentiles=[0, 50, 40, 100]), "increasing"),
        (dict(per_band=101), "per_band"),
    ]
    for kw, words in cases:
        with pytest.raises(ValueError) as e:
            raw.examples(gpt["am"], obj, dataset="text", path=path, **kw)
        print(f"  {kw}: {e.value}")
        assert e.value.status == E_ARG and words in e.value.detail
    with pytest.raises(OSError):
        raw.examples(gpt["am"], obj, dataset="text", path=model_dir / "missing.txt")
    with pytest.raises(actmax.UnsupportedError) as e:
        raw.examples(gpt["am"], obj, dataset="fashion-mnist")
    assert e.value.status == E_UNSUPPORTED and "images" in e.value.detail
    assert raw.examples(gpt["am"], obj, dataset="text", path=path, k=1)["scanned"] > 0


def test_activation_cache_serves_the_second_neuron_of_a_layer(gpt, corpus, monkeypatch, tmp_path):
    """The first scan of a layer writes its activations; another neuron of
    the same layer then runs no forward and gives the values of a scan
    without the cache."""
    path, stream = corpus
    monkeypatch.setenv("ACTMAX_ACT_CACHE", str(tmp_path / "acts"))
    kw = dict(dataset="text", path=path, window=CTX, k=5, quantiles=4)
    first = raw.examples(gpt["am"], f"{NEURON}[-1, 6]", **kw)
    files = list((tmp_path / "acts").iterdir())
    assert first["forwards"] > 0 and len(files) == 1 and files[0].suffix == ".f32"
    second = raw.examples(gpt["am"], f"{NEURON}[:, 9]", **kw)
    monkeypatch.setenv("ACTMAX_ACT_CACHE", "off")
    plain = raw.examples(gpt["am"], f"{NEURON}[:, 9]", **kw)
    print(f"\ncache file {files[0].stat().st_size} bytes; forwards: first {first['forwards']}, "
          f"second {second['forwards']}, without cache {plain['forwards']}")
    assert second["forwards"] == 0 and plain["forwards"] > 0
    assert second["scanned"] == plain["scanned"] == len(stream)
    assert abs(second["max"] - plain["max"]) <= 1e-6
    assert np.array_equal(second["histogram"][0], plain["histogram"][0])
    for a, b in zip(second["items"], plain["items"]):
        assert (a["index"], a["peak"], a["scored"]) == (b["index"], b["peak"], b["scored"])
        assert abs(a["value"] - b["value"]) <= 1e-6 and np.array_equal(a["tokens"], b["tokens"])
        # The scored positions are the same values; the context positions
        # come from the cache with their own natural context.
        assert np.allclose(a["acts"][a["scored"]:], b["acts"][b["scored"]:], atol=1e-6)
    # Not one layer reference, or other windows: the model runs.
    monkeypatch.setenv("ACTMAX_ACT_CACHE", str(tmp_path / "acts"))
    assert raw.examples(gpt["am"], f"2 * {NEURON}[-1, 9]", **kw)["forwards"] > 0
    assert raw.examples(gpt["am"], f"{NEURON}[-1, 9]", **{**kw, "context": 2})["forwards"] > 0
    # The folder is kept under its size: writing a file removes the least recently used.
    before = set((tmp_path / "acts").iterdir())
    monkeypatch.setenv("ACTMAX_ACT_CACHE_BYTES", str(files[0].stat().st_size + 1))
    assert raw.examples(gpt["am"], "blocks.0.mlp.1[-1, 9]", **kw)["forwards"] > 0
    after = set((tmp_path / "acts").iterdir())
    assert len(after) == 1 and not (after & before), (before, after)
    monkeypatch.delenv("ACTMAX_ACT_CACHE_BYTES")
    # A changed corpus is another file.
    path.write_text(path.read_text() + "the end\n")
    try:
        assert raw.examples(gpt["am"], f"{NEURON}[-1, 9]", **kw)["forwards"] > 0
    finally:
        path.write_text(path.read_text()[:-len("the end\n")])


def test_activation_cache_images(net, monkeypatch, tmp_path):
    monkeypatch.setenv("ACTMAX_ACT_CACHE", str(tmp_path / "acts"))
    first = raw.examples(net["am"], "conv[3]", k=5, limit=LIMIT, quantiles=3)
    second = raw.examples(net["am"], "conv[5]", k=5, limit=LIMIT, quantiles=3)
    monkeypatch.setenv("ACTMAX_ACT_CACHE", "off")
    plain = raw.examples(net["am"], "conv[5]", k=5, limit=LIMIT, quantiles=3)
    assert first["forwards"] > 0 and second["forwards"] == 0 and plain["forwards"] > 0
    assert [e["index"] for e in second["items"]] == [e["index"] for e in plain["items"]]
    assert np.allclose([e["value"] for e in second["items"]], [e["value"] for e in plain["items"]], atol=1e-6)
    assert np.allclose(second["class_means"], plain["class_means"], atol=1e-6)
    assert np.array_equal(second["histogram"][0], plain["histogram"][0])
