"""%check: a run graded against an exercise of a data file (checks.json)."""
import json
import os
import subprocess

EXE = os.environ.get("ACTMAX_EXE", "actmax")


def actmax(tmp_path, *lines, env=None):
    return subprocess.run([EXE, "-c", "\n".join(lines)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={**os.environ, **(env or {})})


def test_sandal_channel_passes_and_fails_with_the_hint(tmp_path):
    # Channel 5's top test examples are sandals; channel 0's are not.
    r = actmax(tmp_path, "%model fashion-cnn", "%maximize conv2[5] steps=2",
               "%maximize conv2[0] steps=2", "%check sandal-channel run=1",
               "%check sandal-channel")
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.split("check sandal-channel on run ")[1:]
    assert "PASS sandal-channel" in first
    assert "are Sandal (" in first and "needs >= 80%" in first
    assert "FAIL sandal-channel" in second and "Hint: Look at a few channels" in second


def test_options_and_objective_are_graded(tmp_path):
    r = actmax(tmp_path, "%model fashion-cnn", '%maximize fc["Trouser"] steps=4',
               "%check pixel-ascent")
    assert r.returncode == 0, r.stderr
    assert '[no] option param is "fft" (needs "pixel")' in r.stdout
    assert "[no] option transforms is true (needs false)" in r.stdout
    assert "FAIL pixel-ascent" in r.stdout and "Hint: " in r.stdout
    r = actmax(tmp_path, "%model fashion-cnn", "%maximize conv2[5] steps=2 param=pixel "
               "transforms=false", "%check pixel-ascent")
    assert "[no] objective conv2[5] misses the pattern" in r.stdout


def test_a_teachers_own_check_file(tmp_path):
    f = tmp_path / "course.json"
    f.write_text(json.dumps({"checks": [{
        "name": "strong-sneaker", "task": "Sneaker logit above 1",
        "model": "fashion-cnn", "objective": "Sneaker", "final": {"min": 1},
        "hint": "more steps"}, {
        "name": "impossible", "final": {"min": 1e9}, "hint": "it cannot be done"}]}))
    r = actmax(tmp_path, "%model fashion-cnn", '%maximize fc["Sneaker"] steps=32 lr=0.1',
               f"%check strong-sneaker file={f}", f"%check impossible file={f}")
    assert r.returncode == 0, r.stderr
    assert "PASS strong-sneaker" in r.stdout
    assert "FAIL impossible: 1 of 1 criteria not met. Hint: it cannot be done" in r.stdout
    # $ACTMAX_CHECKS names the file too, and %check alone lists the tasks.
    r = actmax(tmp_path, "%check", env={"ACTMAX_CHECKS": str(f)})
    assert r.returncode == 0 and "strong-sneaker" in r.stdout and "Sneaker logit above 1" in r.stdout


def test_bad_names_and_files_are_clear_errors(tmp_path):
    r = actmax(tmp_path, "%model fashion-cnn", "%maximize conv2[5] steps=2",
               "%check sandal-chanel")
    assert r.returncode == 1
    assert "no check named 'sandal-chanel'; did you mean sandal-channel?" in r.stderr
    r = actmax(tmp_path, "%check sandal-channel")
    assert r.returncode == 1 and "NoRunError" in r.stderr
    (tmp_path / "bad.json").write_text("{\"checks\": 3}")
    r = actmax(tmp_path, f"%check x file={tmp_path / 'bad.json'}")
    assert r.returncode == 1 and "is not a checks file" in r.stderr
    r = actmax(tmp_path, "%model fashion-cnn", "%maximize conv2[5] steps=2", "%model tiny-lm",
               "%check sandal-channel")
    assert r.returncode == 1 and "load it again with %model fashion-cnn" in r.stderr


def test_every_shipped_check_is_well_formed():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "share", "actmax", "checks.json")
    checks = json.load(open(path))["checks"]
    known = {"name", "task", "model", "kind", "objective", "options", "final", "examples",
             "beats_examples", "retention", "hint"}
    names = [c["name"] for c in checks]
    assert len(names) == len(set(names))
    for c in checks:
        assert set(c) <= known, set(c) - known
        assert c.get("task") and c.get("hint"), c["name"]


# One solution per shipped exercise, as a student would type it: each must
# pass, so an exercise that stops being solvable (a retrained model, a
# changed default) fails here instead of in a classroom.
SOLUTIONS = {
    "sandal-channel": ["%model fashion-cnn", "%maximize conv2[5] steps=16"],
    "sneaker-beats-data": ["%model fashion-cnn",
                           '%maximize fc["Sneaker"] param=pixel transforms=false lr=0.1 steps=128'],
    "pixel-ascent": ["%model fashion-cnn",
                     '%maximize fc["Trouser"] param=pixel transforms=false lr=0.1 steps=128'],
    "inhibition": ["%model fashion-cnn", "%maximize -conv3.conv[0]"],
    "prompt-retention": ["%model tiny-lm", "%tokens blocks.1.mlp.act[-1, 5] len=4 steps=64 "
                         "method=pez"],
}


def test_every_shipped_exercise_has_a_passing_solution(tmp_path):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "share", "actmax", "checks.json")
    names = [c["name"] for c in json.load(open(path))["checks"]]
    assert sorted(names) == sorted(SOLUTIONS)
    for name, lines in SOLUTIONS.items():
        r = actmax(tmp_path, *lines, f"%check {name}")
        assert r.returncode == 0, r.stderr
        assert f"PASS {name}" in r.stdout, r.stdout
    # And the default run, which the hints warn about, does not beat the data.
    r = actmax(tmp_path, "%model fashion-cnn", '%maximize fc["Sneaker"]',
               "%check sneaker-beats-data")
    assert "FAIL sneaker-beats-data" in r.stdout
