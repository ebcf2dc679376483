"""Every claim the tutorials' text makes about an output is checked against
that output, so a claim that stops holding after a model or a default changes
fails here instead of misleading a student.

A Markdown cell marks a claim with an HTML comment, invisible in Jupyter,
placed before the words that make it: `<!-- claim: NAME -->`. When a number
follows the marker directly ("span <!-- claim: classes -->7 of the ten
classes"), that number is the claim's value, and the check compares the output
with it, so the text and the test cannot drift apart. Teacher notes kept out
of a notebook (notebooks/teacher/NAME.md) make claims about notebook NAME's
outputs. CHECKS holds one function per claim; a marked claim without a
check, or a check whose claim is gone from the text, fails the test.

Each notebook is executed once per process (tutorial_run.py, shared with
test_tutorials.py); the test prints each notebook's execution time and the
number of claims it checked."""
import base64
import glob
import io
import itertools
import math
import os
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from tutorial_run import NOTEBOOKS, ROOT, executed

pytestmark = pytest.mark.skipif(
    os.environ.get("ACTMAX_SANITIZED") == "1",
    reason="the sanitized build is configured without the engine; these run in the plain build")

MARKER = re.compile(r"<!--\s*claim:\s*([\w-]+)\s*-->")
NUMBER = re.compile(r"\s*\**\s*(-?\d+(?:\.\d+)?)")


# ---------------------------------------------------------------- the text

class Claim:
    def __init__(self, name, where, after):
        self.name = name
        self.where = where
        m = NUMBER.match(after)
        self._value = float(m.group(1)) if m else None

    @property
    def value(self):
        assert self._value is not None, \
            f"{self.where}: the claim's number must follow its marker directly"
        return self._value


def claims_in(text, where):
    return [Claim(m.group(1), where, text[m.end():]) for m in MARKER.finditer(text)]


def claims_of(path, nb):
    """The claims of a notebook's Markdown cells and of its teacher notes."""
    name = os.path.splitext(os.path.basename(path))[0]
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            found += claims_in(cell.source, f"{name} cell {i}")
        else:
            assert not MARKER.search(cell.source), f"{name} cell {i}: a claim marker in a code cell"
    notes = os.path.join(ROOT, "notebooks", "teacher", name + ".md")
    if os.path.exists(notes):
        with open(notes, encoding="utf-8") as f:
            found += claims_in(f.read(), os.path.relpath(notes, ROOT))
    seen = Counter(c.name for c in found)
    dup = [n for n, k in seen.items() if k > 1]
    assert not dup, f"{name}: claims marked twice: {dup}"
    return {c.name: c for c in found}


# ---------------------------------------------------------------- the outputs

LIVE = re.compile(r"^\[[#. -]*\]\s+\d+/\d+.*?objective (\S+)", re.M)
EXAMPLES_HEAD = re.compile(r"^top (\d+) of (\d+) \w+ images for (.+?)(?: \(interrupted.*)? \([\d.]+ s\)$")
EXAMPLES_ROW = re.compile(r"^\s+#(\d+) (.+?)\s+(\S+)$")


class Outputs:
    """Reads a notebook's outputs: the runs' JSON summaries, the examples'
    rankings and the pictures, found by the code cell that made them."""

    def __init__(self, nb, name):
        self.nb = nb
        self.name = name

    def cell(self, snippet):
        """The one code cell whose source contains snippet, or is exactly
        snippet when several contain it."""
        hits = [c for c in self.nb.cells if c.cell_type == "code" and snippet in c.source]
        if len(hits) > 1:
            hits = [c for c in hits if c.source.strip() == snippet.strip()]
        assert len(hits) == 1, f"{self.name}: {len(hits)} code cells contain {snippet!r}"
        return hits[0]

    def runs(self, snippet):
        """Each image run of the cell: its JSON summary, with the last live
        objective the display showed ('live') and the result's PNG ('png')."""
        out, live = [], None
        for o in self.cell(snippet).outputs:
            data = o.get("data", {})
            text = data.get("text/plain", "")
            m = LIVE.search(text)
            if m:
                live = float(m.group(1))
            if "application/json" in data and "final" in data["application/json"]:
                run = dict(data["application/json"])
                run["live"] = live
                run["png"] = base64.b64decode(data["image/png"]) if "image/png" in data else None
                out.append(run)
                live = None
        assert out, f"{self.name}: no run in the cell {snippet!r}"
        return out

    def run(self, snippet):
        runs = self.runs(snippet)
        assert len(runs) == 1, f"{self.name}: {len(runs)} runs in the cell {snippet!r}"
        return runs[0]

    def examples(self, snippet):
        """Each image %examples of the cell: objective and its ranking as
        (index, label, value) rows, best first."""
        out = []
        for o in self.cell(snippet).outputs:
            text = o.get("data", {}).get("text/plain", "")
            lines = text.splitlines()
            head = EXAMPLES_HEAD.match(lines[0]) if lines else None
            if not head:
                continue
            rows = []
            for line in lines[1:]:
                r = EXAMPLES_ROW.match(line)
                if r:
                    rows.append((int(r.group(1)), r.group(2), float(r.group(3))))
            assert len(rows) == int(head.group(1)), f"{self.name}: unreadable ranking:\n{text}"
            out.append({"objective": head.group(3), "rows": rows})
        assert out, f"{self.name}: no examples in the cell {snippet!r}"
        return out

    def ranking(self, snippet, objective):
        hits = [e["rows"] for e in self.examples(snippet) if e["objective"] == objective]
        assert len(hits) == 1, f"{self.name}: {len(hits)} rankings of {objective} in {snippet!r}"
        return hits[0]


def pictures(png, n, h=28, w=28):
    """The n images of a run's PNG, back at their own resolution (h, w), grey
    levels in 0..1: one image is upscaled by an integer factor; a batch is
    the renderer's captioned grid (near-square, 12 px gutters)."""
    a = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float) / 255
    if n == 1:
        f = a.shape[1] // w
        assert a.shape == (h * f, w * f), f"a {a.shape} picture is not a {h}x{w} image upscaled"
        return [a[f // 2::f, f // 2::f]]
    gutter, cap_h = 12, math.ceil(12 * 1.7)
    cols = min(n, 8, math.ceil(math.sqrt(n)))
    f = ((a.shape[1] - gutter) / cols - gutter) / w
    assert f == int(f) and f >= 1, f"a {a.shape} grid is not {cols} columns of {h}x{w} images"
    f = int(f)
    out = []
    for i in range(n):
        x0 = gutter + (i % cols) * (w * f + gutter)
        y0 = gutter + (i // cols) * (h * f + gutter + cap_h)
        out.append(a[y0 + f // 2:y0 + h * f:f, x0 + f // 2:x0 + w * f:f])
    return out


def total_variation(img):
    """Mean absolute difference of neighbouring pixels, as the engine's tv= term."""
    return float(np.abs(np.diff(img, axis=0)).mean() + np.abs(np.diff(img, axis=1)).mean())


def mean_correlation(imgs):
    return float(np.mean([np.corrcoef(a.ravel(), b.ravel())[0, 1]
                          for a, b in itertools.combinations(imgs, 2)]))


def relative(a, b):
    return abs(a - b) / abs(b)


# ---------------------------------------------------------------- the checks

CHECKS = {}


def claim(notebook, name):
    def register(fn):
        assert name not in CHECKS.setdefault(notebook, {}), f"{notebook}: two checks for {name}"
        CHECKS[notebook][name] = fn
        return fn
    return register


# 01-first-neuron
N1 = "01-first-neuron"
SNEAKER = '%maximize fc["Sneaker"]\n'
PIXEL = '%maximize fc["Sneaker"] param=pixel transforms=false lr=0.1'
TV = "tv=20"


def _real_sneakers(o):
    return [v for _, _, v in o.ranking(SNEAKER, 'fc["Sneaker"]')]


@claim(N1, "conv2-channels")
def _(o, c):
    text = "".join(out.get("data", {}).get("text/plain", "") for out in o.cell("%layers").outputs)
    row = re.search(r"^conv2 +\S+ +\((\d+), (\d+), (\d+), (\d+)\)", text, re.M)
    assert row, f"no conv2 row in:\n{text}"
    # The text quotes the whole shape: (1, 32, 7, 7).
    assert [int(g) for g in row.groups()] == [1, int(c.value), 7, 7], row.group(0)


@claim(N1, "pixel-logit")
def _(o, c):
    final = _pixel_runs(o)[0]["final"][0]
    assert relative(final, c.value) < 0.25, final


@claim(N1, "live-differs-from-final")
def _(o, c):
    r = o.run("%maximize conv2[5]")
    assert r["live"] is not None, "no live objective"
    assert relative(r["live"], r["final"][0]) > c.value / 100, \
        f"live {r['live']} vs final {r['final'][0]}: closer than {c.value}%"


@claim(N1, "conv2-5-sandals")
def _(o, c):
    labels = [lab for _, lab, _ in o.ranking("%examples conv2[5] k=15", "conv2[5]")]
    assert labels.count("Sandal") == c.value, labels


@claim(N1, "regularized-below-real")
def _(o, c):
    r = o.run(SNEAKER)
    real = _real_sneakers(o)
    assert len(real) == 7 and r["final"][0] < min(real), (r["final"], real)


def _pixel_runs(o):
    """The pixel run without a penalty, then tv=20, then tv=80."""
    runs = [o.run(PIXEL)] + o.runs(TV)
    assert len(runs) == 3, len(runs)
    return runs


@claim(N1, "unregularized-beats-real")
def _(o, c):
    final = _pixel_runs(o)[0]["final"][0]
    assert final > max(_real_sneakers(o)), (final, _real_sneakers(o))


@claim(N1, "live-near-final-without-transforms")
def _(o, c):
    r = _pixel_runs(o)[0]
    assert relative(r["live"], r["final"][0]) < c.value / 100, (r["live"], r["final"])


@claim(N1, "tv-lowers-score")
def _(o, c):
    finals = [r["final"][0] for r in _pixel_runs(o)]
    assert finals[0] > finals[1] > finals[2], finals


@claim(N1, "tv-smooths")
def _(o, c):
    tvs = [total_variation(pictures(r["png"], 1)[0]) for r in _pixel_runs(o)]
    assert tvs[0] > tvs[1] > tvs[2], tvs


@claim(N1, "tv20-beats-real")
def _(o, c):
    r = _pixel_runs(o)[1]
    assert "tv=20" in o.cell(TV).source.splitlines()[0]
    assert r["final"][0] > max(_real_sneakers(o)), (r["final"], _real_sneakers(o))


@claim(N1, "tv80-below-real")
def _(o, c):
    r = _pixel_runs(o)[2]
    assert "tv=80" in o.cell(TV).source.splitlines()[1]
    assert r["final"][0] < max(_real_sneakers(o)), (r["final"], _real_sneakers(o))


# 02-polysemantic
N2 = "02-polysemantic"
DIVERSITY = "%maximize conv3[23] batch=4"
UPPER_BODY = {"T-shirt/top", "Pullover", "Coat", "Shirt"}
SHOES = {"Sandal", "Sneaker", "Ankle boot"}


def _diversity_runs(o):
    runs = o.runs(DIVERSITY)
    assert [r["options"].split("diversity=")[-1].split()[0] for r in runs] == ["0.05", "1"], \
        [r["options"] for r in runs]
    return runs


@claim(N2, "diversity-separates")
def _(o, c):
    low, high = (mean_correlation(pictures(r["png"], 4)) for r in _diversity_runs(o))
    assert low - high > c.value, f"mean correlation {low:.3f} at 0.05, {high:.3f} at 1"


@claim(N2, "diversity-costs")
def _(o, c):
    low, high = (r["final"] for r in _diversity_runs(o))
    assert max(high) < min(low), (low, high)


def _labels(o, snippet, objective):
    return [lab for _, lab, _ in o.ranking(snippet, objective)]


@claim(N2, "conv3-23-classes")
def _(o, c):
    labels = _labels(o, "%examples conv3[23] k=24", "conv3[23]")
    assert len(labels) == 24 and len(set(labels)) == c.value, Counter(labels)


@claim(N2, "conv3-23-upper-body")
def _(o, c):
    labels = _labels(o, "%examples conv3[23] k=24", "conv3[23]")
    assert sum(lab in UPPER_BODY for lab in labels) == c.value, Counter(labels)


@claim(N2, "conv3-6-bags")
def _(o, c):
    labels = _labels(o, "%examples conv3[6] k=16", "conv3[6]")
    assert labels.count("Bag") == c.value, Counter(labels)


@claim(N2, "conv3-62-mixed")
def _(o, c):
    counts = Counter(_labels(o, "%examples conv3[62] k=16", "conv3[62]"))
    assert max(counts.values()) == c.value, counts
    assert {"Bag", "Shirt", "Sandal"} <= set(counts), counts


@claim(N2, "neuron-sneakers")
def _(o, c):
    labels = _labels(o, "%examples conv3[23, 1, 1]", "conv3[23, 1, 1]")
    assert len(labels) == 16 and labels.count("Sneaker") == c.value, Counter(labels)


@claim(N2, "channel-no-shoes")
def _(o, c):
    labels = _labels(o, "%examples conv3[23] k=24", "conv3[23]")
    assert not SHOES & set(labels), Counter(labels)


# 03-inhibition
N3 = "03-inhibition"


@claim(N3, "least-trouser-like")
def _(o, c):
    labels = _labels(o, '%examples -fc["Trouser"]', '-fc["Trouser"]')
    assert len(labels) == 12 and set(labels) <= {"Sandal", "Bag"}, Counter(labels)


@claim(N3, "relu-floor")
def _(o, c):
    final = o.run("%maximize -conv2[5]")["final"][0]
    assert -c.value <= final <= 0, final


# 04-exercises-teacher (the claims are in notebooks/teacher/04-exercises-teacher.md)
N4 = "04-exercises-teacher"
SEEDS = "%maximize conv2[3] seed=1"
BAG = '%maximize fc["Bag"] param=pixel'


@claim(N4, "seeds-similar-activation")
def _(o, c):
    finals = [r["final"][0] for r in o.runs(SEEDS)]
    assert len(finals) == 3 and (max(finals) - min(finals)) / max(finals) <= c.value / 100, finals


@claim(N4, "seeds-different-images")
def _(o, c):
    imgs = [pictures(r["png"], 1)[0] for r in o.runs(SEEDS)]
    corr = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in itertools.combinations(imgs, 2)]
    assert max(corr) < c.value, corr


@claim(N4, "pixel-noisier")
def _(o, c):
    pixel, default = (total_variation(pictures(r["png"], 1)[0]) for r in o.runs(BAG))
    assert pixel > default, (pixel, default)


@claim(N4, "pixel-scores-higher")
def _(o, c):
    pixel, default = (r["final"][0] for r in o.runs(BAG))
    assert pixel > default, (pixel, default)


# 05-text-is-discrete
N5 = "05-text-is-discrete"
OBJ5 = "blocks.2.mlp.act[-1, 123]"
SOFT = f"%tokens {OBJ5} len=8 steps=100"
EARLY = f"%tokens {OBJ5} len=8 steps=8"
GCG = f"%tokens {OBJ5} method=gcg"


def text_run(o, snippet):
    """A %tokens run: its JSON summary, with its per-position table as
    'table', one dict per row keyed by the table's header."""
    run, table = None, None
    for out in o.cell(snippet).outputs:
        data = out.get("data", {})
        if "application/json" in data and "method" in data["application/json"]:
            run = dict(data["application/json"])
        text = data.get("text/plain", "")
        if re.match(r"run \d+: per position", text):
            lines = text.splitlines()
            # The header's names hold spaces; the cells do not (whitespace
            # in tokens is shown as visible marks).
            names = re.split(r"\s{2,}", lines[1].strip())
            # "cos" (or "L2") follows each "nearest k": named "cos k" here.
            names = [f"{n} {names[i - 1].split()[-1]}" if n in ("cos", "L2") else n
                     for i, n in enumerate(names)]
            table = [dict(zip(names, line.split())) for line in lines[3:] if line.strip()]
    assert run and table, f"{o.name}: no %tokens summary and table in {snippet!r}"
    run["table"] = table
    return run


def text_examples(o, snippet):
    """The corpus maximum and the optimized prompt's share of it."""
    for out in o.cell(snippet).outputs:
        text = out.get("data", {}).get("text/plain", "")
        top = re.search(r"corpus maximum (\S+) \(", text)
        ours = re.search(r"optimized prompt \(run (\d+)\) .* reaches (\S+) \((\d+)% of the", text)
        if top:
            assert ours, f"{o.name}: no optimized prompt beside the corpus:\n{text}"
            return {"maximum": float(top.group(1)), "run": int(ours.group(1)),
                    "reaches": float(ours.group(2)), "percent": float(ours.group(3))}
    raise AssertionError(f"{o.name}: no text examples in {snippet!r}")


@claim(N5, "retention-small")
def _(o, c):
    r = text_run(o, SOFT)
    assert r["retention"] < c.value / 100, r["retention"]
    assert r["retention"] == pytest.approx(r["activation"] / r["soft_activation"], abs=1e-4)


@claim(N5, "retention-negative")
def _(o, c):
    assert text_run(o, SOFT)["retention"] < 0


@claim(N5, "soft-between-tokens")
def _(o, c):
    cos = [float(row["cos 1"]) for row in text_run(o, SOFT)["table"]]
    assert len(cos) == 8 and max(cos) < c.value, cos


@claim(N5, "soft-drops-negative")
def _(o, c):
    drops = [float(row["drop if swapped"]) for row in text_run(o, SOFT)["table"]]
    assert len(drops) == 8 and max(drops) < 0, drops


@claim(N5, "early-projection-higher")
def _(o, c):
    late, early = text_run(o, SOFT), text_run(o, EARLY)
    assert early["steps"] == 8 and late["steps"] == 100
    assert early["activation"] > late["activation"] + 1, (early["activation"], late["activation"])
    assert early["soft_activation"] < late["soft_activation"], \
        (early["soft_activation"], late["soft_activation"])


@claim(N5, "best-projection-reported")
def _(o, c):
    late, early = text_run(o, SOFT), text_run(o, EARLY)
    # Same seed, same start: the 100-step run passed through the 8-step run's
    # last projection, so its best is at least that.
    assert late["best_activation"] >= early["activation"] - 1e-4, \
        (late["best_activation"], early["activation"])
    assert late["best_activation"] > late["activation"], late
    assert 1 <= late["best_step"] <= 100 and len(late["best_tokens"]) == 8, late


@claim(N5, "gcg-above-projections")
def _(o, c):
    gcg = text_run(o, GCG)["activation"]
    assert gcg > max(text_run(o, s)["activation"] for s in (SOFT, EARLY)), gcg


@claim(N5, "gcg-roundtrip")
def _(o, c):
    assert text_run(o, GCG)["roundtrip"] is True


@claim(N5, "gcg-drops-small")
def _(o, c):
    r = text_run(o, GCG)
    drops = [float(row["drop if swapped"]) for row in r["table"]]
    assert min(drops) > 0 and max(drops) <= c.value / 100 * r["activation"], \
        (drops, r["activation"])


@claim(N5, "gcg-fires-late")
def _(o, c):
    acts = [float(row["activation"]) for row in text_run(o, GCG)["table"]]
    firing = [i for i, a in enumerate(acts) if a > c.value]
    assert firing and min(firing) >= len(acts) - 4, acts


@claim(N5, "gcg-beats-corpus")
def _(o, c):
    ex = text_examples(o, "%examples")
    gcg = text_run(o, GCG)
    assert ex["run"] == gcg["run"] and ex["reaches"] == pytest.approx(gcg["activation"], rel=1e-3)
    assert gcg["activation"] > ex["maximum"] and ex["percent"] > 100, ex


@claim(N5, "soft-vs-corpus")
def _(o, c):
    soft = text_run(o, SOFT)["soft_activation"]
    assert soft > c.value * text_examples(o, "%examples")["maximum"], soft


# ---------------------------------------------------------------- the test

@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_claims(path, capsys):
    ex = executed(path)
    marked = claims_of(path, ex.nb)
    checks = CHECKS.get(ex.name, {})
    unchecked = sorted(set(marked) - set(checks))
    gone = sorted(set(checks) - set(marked))
    o = Outputs(ex.nb, ex.name)
    failed = []
    for name in sorted(set(marked) & set(checks)):
        try:
            checks[name](o, marked[name])
        except AssertionError as e:
            failed.append(f"{name} ({marked[name].where}): {e}")
    with capsys.disabled():
        print(f"\n{ex.name}: executed in {ex.seconds:.1f} s, "
              f"{len(marked) - len(unchecked) - len(failed)} of {len(marked)} claims hold")
    assert not unchecked, f"{ex.name}: claims marked in the text without a check: {unchecked}"
    assert not gone, f"{ex.name}: checks whose claim is no longer in the text: {gone}"
    assert not failed, f"{ex.name}: claims the outputs contradict:\n" + "\n".join(failed)
    assert marked, f"{ex.name}: a tutorial without a single checked claim"


def test_every_check_and_note_has_a_notebook():
    names = {os.path.splitext(os.path.basename(p))[0] for p in NOTEBOOKS}
    assert set(CHECKS) <= names, sorted(set(CHECKS) - names)
    notes = {os.path.splitext(os.path.basename(p))[0]
             for p in glob.glob(os.path.join(ROOT, "notebooks", "teacher", "*.md"))}
    assert notes <= names, f"teacher notes without their notebook: {sorted(notes - names)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_committed_without_outputs(path):
    """Outputs in the repository would go stale beside the text the claims
    check; the notebooks are shipped empty and executed by whoever reads them."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    full = [i for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not full, f"cells with outputs: {full}"
