"""The course (actmax.course, notebooks/course/): the solutions notebook passes
every check, the starter's checks fail with their hints (no exceptions), the
nbgrader version carries its metadata, the notebooks are what the data file
generates, and a check turns every kind of wrong answer into FAIL + hint."""
import json
import os
import re
import subprocess
import sys
import time

import nbformat
import pytest
import torch

import actmax
from actmax import course

from conftest import SOURCE

DATA = os.path.join(SOURCE, "share", "actmax", "exercises.json")
NOTEBOOKS = {v: os.path.join(SOURCE, "notebooks", "course", p) for v, p in
             [("starter", "course.ipynb"), ("solutions", "solutions/course.ipynb"),
              ("teacher", "teacher/course-nbgrader.ipynb")]}
EXERCISES = json.load(open(DATA, encoding="utf-8"))["exercises"]


def run_notebook(path, tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient
    if "python3" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("no python3 kernelspec (Debian's python3-ipykernel)")
    try:
        actmax.load("tiny-lm", device="cpu")
    except FileNotFoundError as e:
        pytest.skip(f"the course's text exercises need tiny-lm, which is not built: {e}")
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    client = NotebookClient(nb, kernel_name="python3", timeout=600, startup_timeout=60,
                            resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.time()
    client.execute(env=dict(os.environ))  # PYTHONPATH=build/python included
    print(f"\n{os.path.relpath(path, SOURCE)}: {time.time() - t0:.1f} s")
    return nb


def outputs(cell):
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def check_cells(nb):
    return {c.id[:-len("-check")]: c for c in nb.cells if c.cell_type == "code" and c.id.endswith("-check")}


def test_the_data_file_defines_at_least_six_exercises_each_complete():
    names = [e["name"] for e in EXERCISES]
    assert len(names) >= 6 and len(set(names)) == len(names)
    for e in EXERCISES:
        for key in ("title", "kind", "model", "settings", "thresholds", "hint", "text", "given", "solution",
                    "check", "points"):
            assert key in e, (e["name"], key)
        assert e["kind"] in course._GRADERS, e["kind"]
        assert f'"{e["name"]}"' in e["check"][-1]  # the check cell grades its own exercise
    assert [n for n, _ in course.exercises()] == names


def test_solutions_notebook_passes_every_check(tmp_path):
    nb = run_notebook(NOTEBOOKS["solutions"], tmp_path)
    for i, c in enumerate(nb.cells):
        errs = [o for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errs, f"cell {i} failed: {errs[0].ename}: {errs[0].evalue}"
    checks = check_cells(nb)
    assert sorted(checks) == sorted(e["name"] for e in EXERCISES)
    for name, c in checks.items():
        assert outputs(c).startswith(f"PASS {name}:"), outputs(c)


def test_starter_notebook_fails_every_check_with_its_hint(tmp_path):
    nb = run_notebook(NOTEBOOKS["starter"], tmp_path)
    for i, c in enumerate(nb.cells):
        errs = [o for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errs, f"cell {i} raised {errs[0].ename}: {errs[0].evalue} (a check must not crash)"
    hints = {e["name"]: " ".join(e["hint"]) for e in EXERCISES}
    for name, c in check_cells(nb).items():
        out = outputs(c)
        assert out.startswith(f"FAIL {name}: not written yet"), out
        assert "Hint: " + hints[name][:40] in out.replace("\\n", "\n").replace("\n", " "), out


def test_teacher_notebook_is_nbgrader_source_with_hidden_solutions(tmp_path):
    nb = nbformat.read(NOTEBOOKS["teacher"], as_version=4)
    nbformat.validate(nb)
    ids = []
    for c in nb.cells:
        meta = c.metadata["nbgrader"]
        assert set(meta) >= {"grade", "solution", "locked", "grade_id", "schema_version"}, meta
        ids.append(meta["grade_id"])
        if meta["solution"]:
            assert c.cell_type == "code" and not meta["locked"] and not meta["grade"]
            assert "### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source
        elif meta["grade"]:
            assert meta["locked"] and meta["points"] > 0 and "assert verdict" in c.source
        else:
            assert meta["locked"]
    assert len(ids) == len(set(ids))
    assert sum(c.metadata["nbgrader"].get("points", 0) for c in nb.cells) == sum(e["points"] for e in EXERCISES)
    # What nbgrader releases (each solution replaced by its stub) is the starter's code.
    starter = nbformat.read(NOTEBOOKS["starter"], as_version=4)
    released = [re.sub(r"( *)### BEGIN SOLUTION\n.*?### END SOLUTION",
                       lambda mt: f"{mt.group(1)}# YOUR CODE HERE\n{mt.group(1)}raise NotImplementedError()",
                       c.source, flags=re.S)
                for c in nb.cells if c.metadata["nbgrader"]["solution"]]
    assert released == [c.source for c in starter.cells if c.id.endswith("-solution")]
    # Its check cells grade: with the solutions in place, every one runs without error.
    ran = run_notebook(NOTEBOOKS["teacher"], tmp_path)
    for c in ran.cells:
        errs = [o for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errs, f"{c.id}: {errs[0].ename}: {errs[0].evalue}"


def test_notebooks_are_what_the_data_file_generates():
    script = os.path.join(SOURCE, "scripts", "course-notebooks.py")
    r = subprocess.run([sys.executable, script, "--check", SOURCE], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------- every wrong answer is FAIL + hint

def verdict(name, fn):
    v = course.check(name, fn)
    text = repr(v)
    assert not v and text.startswith(f"FAIL {name}: ") and "\nHint: " in text, text
    return v.message


def test_wrong_answers_are_messages_with_hints():
    assert "shape (28, 28); expected (1, 1, 28, 28)" in verdict(
        "pixel-ascent", lambda net, normalize, label, steps, lr: torch.rand(28, 28))
    assert "dtype torch.float64" in verdict(
        "pixel-ascent", lambda net, normalize, label, steps, lr: torch.rand(1, 1, 28, 28, dtype=torch.float64))
    assert "NaN" in verdict(
        "fourier", lambda params, h, w, decay: torch.full((2, 1, h, w), float("nan")))
    assert "should be a torch tensor; your function returned list" in verdict(
        "fourier", lambda params, h, w, decay: [[0.5]])
    assert "raised ZeroDivisionError: division by zero" in verdict("diversity", lambda acts: 1 / 0)
    # Below the threshold: a blank image reaches nothing like the engine's optimum.
    msg = verdict("pixel-ascent", lambda net, normalize, label, steps, lr: torch.full((1, 1, 28, 28), 0.5))
    assert "needs 90%" in msg
    # A near miss in the parameterization (Lucid's 4 left out) is caught by the tolerance.
    solution = next(e for e in EXERCISES if e["name"] == "fourier")
    ns = {"torch": torch}
    exec("\n".join(solution["given"] + solution["solution"]).replace("/ 4.0", "/ 3.0"), ns)
    assert "needs 1e-05" in verdict("fourier", ns["fourier_image"])
    assert "exactly one" in verdict("gcg-step", lambda net, neuron, ids, topk: ids.clone())
    assert "not a int" in verdict("diversity", 3)
    with pytest.raises(KeyError, match="no exercise 'nope'; the exercises are pixel-ascent"):
        course.check("nope", print)


# ---------------------------------------------------------------- the engine's parameterizations

def test_param_image_matches_pytorch_for_each_kind(fashion):
    g = torch.Generator().manual_seed(1)
    cmat = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
    cmat_t = (cmat / cmat.norm(2, dim=0).max()).t()
    p = torch.randn(2, 3, 12, 10, generator=g)
    want = torch.sigmoid(torch.matmul(p.permute(0, 2, 3, 1), cmat_t).permute(0, 3, 1, 2))
    assert (actmax.param_image(p, kind="pixel") - want).abs().max() <= 1e-6
    assert (actmax.param_image(p, kind="pixel", decorrelate=False) - torch.sigmoid(p)).abs().max() <= 1e-6
    # MACO: the standardized phase under the model's fixed magnitude, standardized, times contrast.
    phase = torch.randn(2, 1, 28, 15, generator=g)
    mag, note = actmax.param_magnitude((1, 28, 28), model=fashion)
    assert mag.shape == (1, 28, 15) and "fashion-mnist" in note

    def standardize(t):
        f = t.reshape(t.shape[0], -1)
        return ((f - f.mean(1, keepdim=True)) / (f.std(1, unbiased=False, keepdim=True) + 1e-5)).reshape(t.shape)
    img = standardize(torch.fft.irfft2(torch.polar(mag.expand_as(phase), standardize(phase)), s=(28, 28),
                                       norm="ortho"))
    got = actmax.param_image(phase, kind="maco", model=fashion, contrast=2.0)
    assert (got - torch.sigmoid(2.0 * img)).abs().max() <= 1e-5
    # An odd width is given, not guessed.
    assert actmax.param_image(torch.randn(1, 1, 8, 4, 2), kind="fft", width=7).shape == (1, 1, 8, 7)
    with pytest.raises(ValueError, match=r"parameters of shape \(1, 1, 8, 4\): this parameterization takes "
                                         r"\(B, C, H, W/2\+1, 2\)"):
        actmax.param_image(torch.randn(1, 1, 8, 4), kind="fft")
    with pytest.raises(ValueError, match="kind='wavelet': give one of 'fft', 'pixel', 'maco'"):
        actmax.param_image(p, kind="wavelet")


def test_model_diversity_is_the_runs_term(fashion):
    x = torch.rand(3, 1, 28, 28)
    same = fashion.diversity(x[:1].expand(3, -1, -1, -1).contiguous(), "conv1")
    assert abs(same - (-2.0)) <= 1e-5  # three identical items: each has similarity 1 with two others
    assert fashion.diversity(x[:1], "conv1") == 0.0
    with pytest.raises(actmax.LayerError, match="conv9"):
        fashion.diversity(x, "conv9")
