"""`cmake --install BUILD --prefix P`, then everything runs from P alone.

The installed programs still carry the build tree's paths compiled in (the
engine's, the models'), so each check runs with an environment cleared of
ACTMAX_* and PYTHONPATH naming only P's package, with a fresh HOME (no
~/.local models) and a working folder outside both trees, and asserts which
files were actually used: the engine's path as the module reports it, and
for the programs the dynamic loader's own record of the libraries it
initialized (LD_DEBUG=libs)."""
import glob
import json
import os
import re
import subprocess

import pytest

BUILD = os.environ.get("ACTMAX_BUILD_DIR", "")
CMAKE = os.environ.get("ACTMAX_CMAKE", "cmake")


def real(p):
    return os.path.realpath(p)


def under(path, folder):
    return real(path).startswith(real(folder) + os.sep)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    if not os.path.isfile(os.path.join(BUILD, "cmake_install.cmake")):
        pytest.fail(f"ACTMAX_BUILD_DIR={BUILD!r} is not a configured build tree (CTest sets it)")
    p = tmp_path_factory.mktemp("prefix")
    r = subprocess.run([CMAKE, "--install", BUILD, "--prefix", str(p)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"cmake --install failed:\n{r.stdout}\n{r.stderr}"
    return p


@pytest.fixture(scope="module")
def env(prefix, tmp_path_factory):
    """The environment of every run: nothing of the build tree's."""
    home = tmp_path_factory.mktemp("home")
    e = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONNOUSERSITE": "1",
         "PYTHONDONTWRITEBYTECODE": "1"}
    pkgs = glob.glob(os.path.join(str(prefix), "lib", "python3*", "site-packages", "actmax", "__init__.py"))
    assert len(pkgs) == 1, f"the package is not under {prefix}/lib/python3.X/site-packages/actmax: {pkgs}"
    e["PYTHONPATH"] = os.path.dirname(os.path.dirname(pkgs[0]))
    return e


def run(cmd, env, cwd, **kw):
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, **kw)


def engines_loaded(stderr):
    """The libactmax files the dynamic loader initialized (LD_DEBUG=libs)."""
    return re.findall(r"calling init: (\S*libactmax\S*)", stderr)


def test_layout(prefix):
    p = str(prefix)
    for f in ["lib/libactmax.so", "bin/actmax-engine", "bin/actmax", "share/actmax/exercises.json",
              "share/actmax/checks.json", "share/actmax/models/fashion-cnn.pt",
              "share/actmax/models/fashion_cnn.py", "share/jupyter/kernels/actmax/kernel.json"]:
        assert os.path.exists(os.path.join(p, f)), f"{f} is not installed under {p}"
    spec = json.load(open(os.path.join(p, "share/jupyter/kernels/actmax/kernel.json")))
    assert spec["argv"][0] == os.path.join(p, "bin", "actmax"), spec["argv"]


def runpath(path):
    r = subprocess.run(["readelf", "-d", path], capture_output=True, text=True)
    m = re.search(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]", r.stdout)
    return m.group(1).split(":") if m else []


def test_engine_keeps_its_libtorch_path(prefix):
    """The installed engine finds libtorch as the built one does: every
    run path of the build's engine outside the build tree is kept."""
    if subprocess.run(["which", "readelf"], capture_output=True).returncode != 0:
        pytest.skip("readelf (binutils) is not installed")
    built = glob.glob(os.path.join(BUILD, "ext", "libactmax.so"))[0]
    want = [d for d in runpath(built) if d and not under(d, BUILD) and "$ORIGIN" not in d]
    have = runpath(os.path.join(str(prefix), "lib", "libactmax.so"))
    assert all(d in have for d in want), f"the build's run paths {want}, the installed {have}"
    assert not any(under(d, BUILD) for d in have if d), f"the installed engine looks in the build tree: {have}"
    # And the loader resolves every library it needs.
    r = subprocess.run(["ldd", os.path.join(str(prefix), "lib", "libactmax.so")], capture_output=True, text=True)
    assert "not found" not in r.stdout, r.stdout


MODULE_SCRIPT = r"""
import inspect, json, os, sys
import actmax, actmax.course as course
m = actmax.load("fashion-cnn", device="cpu")
r = m.maximize("conv2[5]", steps=4, progress=False)
net = course.net("fashion-cnn")
print(json.dumps({
    "files": sorted({os.path.realpath(getattr(mod, "__file__", "") or "") for name, mod in sys.modules.items()
                     if name == "actmax" or name.startswith("actmax.")}),
    "engine": actmax.engine()["path"],
    "model": m.path,
    "curve": [float(v) for v in r.curve],
    "final": [float(v) for v in r.final.reshape(-1)],
    "exercises_file": course._exercises_path(),
    "exercises": [n for n, _ in course.exercises()],
    "net_class_file": inspect.getfile(type(net)),
}))
"""


def test_python_module_runs_from_prefix(prefix, env, tmp_path):
    p = str(prefix)
    r = run(["/usr/bin/python3", "-c", MODULE_SCRIPT], env, tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for f in out["files"]:
        assert under(f, p), f"actmax module file {f} is not under the prefix {p}"
    # The engine the module opened is the installed one, not the build's
    # (whose path is compiled in as the last resort).
    assert real(out["engine"]) == real(os.path.join(p, "lib", "libactmax.so")), out["engine"]
    assert real(out["model"]) == real(os.path.join(p, "share/actmax/models/fashion-cnn.pt")), out["model"]
    assert len(out["curve"]) == 4, out["curve"]
    assert all(v == v and abs(v) < 1e30 for v in out["final"]), out["final"]
    assert real(out["exercises_file"]) == real(os.path.join(p, "share/actmax/exercises.json"))
    names = [e["name"] for e in json.load(open(os.path.join(p, "share/actmax/exercises.json")))["exercises"]]
    assert out["exercises"] == names and names
    assert under(out["net_class_file"], os.path.join(p, "share/actmax/models")), out["net_class_file"]


def test_kernel_answers_a_cell(prefix, env, tmp_path):
    p = str(prefix)
    e = dict(env, LD_DEBUG="libs")
    r = run([os.path.join(p, "bin", "actmax"), "-c", "%model fashion-cnn\n%maximize conv2[5] steps=4 code=true"],
            e, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr[-4000:]
    loaded = engines_loaded(r.stderr)
    assert loaded and all(under(f, p) for f in loaded), f"engines loaded: {loaded}"
    m = re.search(r"^file\s+(\S+)", r.stdout, re.M)
    assert m and real(m.group(1)) == real(os.path.join(p, "share/actmax/models/fashion-cnn.pt")), r.stdout
    assert re.search(r"^run 1: conv2\[5\] = -?[0-9.]+(e[-+]?\d+)? on the clean image after 4 steps", r.stdout,
                     re.M), r.stdout
    # code=true's script builds the model from the installed definition.
    m = re.search(r'sys\.path\.insert\(0, "([^"]+)"\)', r.stdout)
    assert m and real(m.group(1)) == real(os.path.join(p, "share/actmax/models")), r.stdout
    # %check reads the prefix's checks file before the source tree's (the
    # same file until one is edited: this prefix's copy gets one more check).
    checks = os.path.join(p, "share/actmax/checks.json")
    doc = json.load(open(checks))
    doc["checks"].append(dict(doc["checks"][0], name="only-in-this-prefix"))
    with open(checks, "w") as f:
        json.dump(doc, f)
    r = run([os.path.join(p, "bin", "actmax"), "-c", "%check"], env, tmp_path)
    assert r.returncode == 0 and "only-in-this-prefix" in r.stdout, r.stdout + r.stderr


def test_engine_runner(prefix, env, tmp_path):
    p = str(prefix)
    exe = os.path.join(p, "bin", "actmax-engine")
    r = run([exe, "--help"], env, tmp_path)
    assert r.returncode == 0 and "usage" in (r.stdout + r.stderr), r.stdout + r.stderr
    # A command that needs the engine: it must come from the prefix.
    r = run([exe, "layers", os.path.join(p, "share/actmax/models/fashion-cnn.pt")], dict(env, LD_DEBUG="libs"),
            tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr[-4000:]
    assert "conv2" in r.stdout, r.stdout
    loaded = engines_loaded(r.stderr)
    assert loaded and all(under(f, p) for f in loaded), f"engines loaded: {loaded}"
