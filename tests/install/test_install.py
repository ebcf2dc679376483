"""`cmake --install BUILD --prefix P`, then everything runs from P alone.

The installed programs still carry the build and source trees' paths
compiled in (the engine's, the models', the checks'), so every run here:
  - has an environment cleared of ACTMAX_* and PYTHONPATH naming only P's
    package, a fresh HOME (no ~/.local models) and a working folder outside
    both trees;
  - where user namespaces allow it (`unshare -rm`), runs with empty folders
    mounted over the source and build trees, as if both were deleted;
  - asserts which files were used: the engine's path as the module reports
    it and, for the programs, the dynamic loader's own record of the
    libraries it initialized (LD_DEBUG=libs), the model file the kernel
    names, the checks and exercises read (this prefix's copies are edited)."""
import glob
import json
import os
import re
import shutil
import subprocess

import pytest

BUILD = os.environ.get("ACTMAX_BUILD_DIR", "")
SOURCE = os.environ.get("ACTMAX_SOURCE_DIR", "")
CMAKE = os.environ.get("ACTMAX_CMAKE", "cmake")
HAVE_KERNEL = os.environ.get("ACTMAX_TEST_KERNEL") == "1"
HAVE_MODELS = os.environ.get("ACTMAX_TEST_MODELS") == "1"


def real(p):
    return os.path.realpath(p)


def under(path, folder):
    return real(path).startswith(real(folder) + os.sep)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    if not os.path.isfile(os.path.join(BUILD, "cmake_install.cmake")):
        pytest.fail(f"ACTMAX_BUILD_DIR={BUILD!r} is not a configured build tree (CTest sets it)")
    p = tmp_path_factory.mktemp("prefix")
    assert not under(p, BUILD) and not under(p, SOURCE), f"the temporary prefix {p} is inside a tree"
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


HIDE = 'for d in "$@"; do [ "$d" = -- ] && break; mount -t tmpfs actmax-hidden "$d" || exit 97; shift; done; ' \
       'shift; exec "$@"'


@pytest.fixture(scope="module")
def wrap():
    """The command prefix that hides the source and build trees, or [] where
    user namespaces are not available (then the checks of which files were
    used carry the test alone)."""
    trees = [real(d) for d in (SOURCE, BUILD) if d and os.path.isdir(d)]
    trees = [d for d in trees if not any(under(d, o) for o in trees)]  # the build inside the source: one mount
    if not trees:
        return []
    cmd = ["unshare", "-rm", "sh", "-c", HIDE, "sh"] + trees + ["--"]
    probe = " && ".join(f'[ -z "$(ls -A {json.dumps(d)})" ]' for d in trees)
    if shutil.which("unshare"):
        r = subprocess.run(cmd + ["sh", "-c", probe], capture_output=True, text=True, cwd="/")
        if r.returncode == 0:
            print(f"install.prefix: runs with {', '.join(trees)} hidden (unshare)")
            return cmd
        print(f"install.prefix: unshare -rm is not allowed here ({r.stderr.strip()}); the trees stay visible")
    return []


def run(cmd, env, cwd, wrap):
    return subprocess.run(wrap + cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def engines_loaded(stderr):
    """The libactmax files the dynamic loader initialized (LD_DEBUG=libs)."""
    return re.findall(r"calling init: (\S*libactmax\S*)", stderr)


def test_layout(prefix):
    p = str(prefix)
    want = ["lib/libactmax.so", "bin/actmax-engine", "share/actmax/exercises.json"]
    if HAVE_KERNEL:
        want += ["bin/actmax", "share/actmax/checks.json", "share/jupyter/kernels/actmax/kernel.json"]
    if HAVE_MODELS:
        want += ["share/actmax/models/fashion-cnn.pt", "share/actmax/models/fashion_cnn.py"]
    for f in want:
        assert os.path.exists(os.path.join(p, f)), f"{f} is not installed under {p}"
    if HAVE_KERNEL:
        spec = json.load(open(os.path.join(p, "share/jupyter/kernels/actmax/kernel.json")))
        assert spec["argv"][0] == os.path.join(p, "bin", "actmax"), spec["argv"]


def runpath(path):
    r = subprocess.run(["readelf", "-d", path], capture_output=True, text=True)
    m = re.search(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]", r.stdout)
    return m.group(1).split(":") if m else []


def test_engine_keeps_its_libtorch_path(prefix):
    """The installed engine finds libtorch as the built one does: every
    run path of the build's engine outside the build tree is kept (a pip
    torch's lib folder; Debian's libtorch needs none)."""
    if not shutil.which("readelf"):
        pytest.skip("readelf (binutils) is not installed")
    built = os.path.join(BUILD, "ext", "libactmax.so")
    want = [d for d in runpath(built) if d and not under(d, BUILD) and "$ORIGIN" not in d]
    have = runpath(os.path.join(str(prefix), "lib", "libactmax.so"))
    assert all(d in have for d in want), f"the build's run paths {want}, the installed {have}"
    assert not any(under(d, BUILD) for d in have if d), f"the installed engine looks in the build tree: {have}"
    r = subprocess.run(["ldd", os.path.join(str(prefix), "lib", "libactmax.so")], capture_output=True, text=True)
    assert "not found" not in r.stdout, r.stdout


MODULE_SCRIPT = r"""
import inspect, json, os, sys
import actmax, actmax.course as course
out = {"engine": actmax.engine()["path"], "exercises_file": course._exercises_path(),
       "exercises": [n for n, _ in course.exercises()]}
if sys.argv[1] == "1":
    m = actmax.load("fashion-cnn", device="cpu")
    r = m.maximize("conv2[5]", steps=4, progress=False)
    net = course.net("fashion-cnn")
    out.update(model=m.path, curve=[float(v) for v in r.curve], final=[float(v) for v in r.final.reshape(-1)],
               net_class_file=inspect.getfile(type(net)))
out["files"] = sorted({os.path.realpath(getattr(mod, "__file__", "") or "") for name, mod in sys.modules.items()
                       if name == "actmax" or name.startswith("actmax.")})
print(json.dumps(out))
"""


def test_python_module_runs_from_prefix(prefix, env, tmp_path, wrap):
    p = str(prefix)
    # This prefix's exercises get one more, so that reading it shows.
    ex = os.path.join(p, "share/actmax/exercises.json")
    doc = json.load(open(ex))
    doc["exercises"].append(dict(doc["exercises"][0], name="only-in-this-prefix"))
    with open(ex, "w") as f:
        json.dump(doc, f)
    r = run(["/usr/bin/python3", "-c", MODULE_SCRIPT, "1" if HAVE_MODELS else "0"], env, tmp_path, wrap)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for f in out["files"]:
        assert under(f, p), f"actmax module file {f} is not under the prefix {p}"
    # The engine the module opened is the installed one, not the build's
    # (whose path is compiled in as the last resort).
    assert real(out["engine"]) == real(os.path.join(p, "lib", "libactmax.so")), out["engine"]
    assert real(out["exercises_file"]) == real(ex)
    assert out["exercises"] == [e["name"] for e in doc["exercises"]]
    if not HAVE_MODELS:
        pytest.skip("no built-in models in this build (ACTMAX_MODELS=OFF): loading and running one is not checked")
    assert real(out["model"]) == real(os.path.join(p, "share/actmax/models/fashion-cnn.pt")), out["model"]
    assert len(out["curve"]) == 4, out["curve"]
    assert out["final"] and all(v == v and abs(v) < 1e30 for v in out["final"]), out["final"]
    assert under(out["net_class_file"], os.path.join(p, "share/actmax/models")), out["net_class_file"]


def test_kernel_answers_a_cell(prefix, env, tmp_path, wrap):
    if not HAVE_KERNEL:
        pytest.skip("no kernel in this build (ACTMAX_KERNEL=OFF)")
    if not HAVE_MODELS:
        pytest.skip("no built-in models in this build (ACTMAX_MODELS=OFF) for the kernel to run")
    p = str(prefix)
    kernel = os.path.join(p, "bin", "actmax")
    r = run([kernel, "-c", "%model fashion-cnn\n%maximize conv2[5] steps=4 code=true"], dict(env, LD_DEBUG="libs"),
            tmp_path, wrap)
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
    r = run([kernel, "-c", "%check"], env, tmp_path, wrap)
    assert r.returncode == 0 and "only-in-this-prefix" in r.stdout, r.stdout + r.stderr


def test_engine_runner(prefix, env, tmp_path, wrap):
    p = str(prefix)
    exe = os.path.join(p, "bin", "actmax-engine")
    # It links the engine, so even --help has the loader find it ($ORIGIN/../lib).
    r = run([exe, "--help"], dict(env, LD_DEBUG="libs"), tmp_path, wrap)
    assert r.returncode == 0 and "usage" in r.stdout, r.stdout + r.stderr[-4000:]
    loaded = engines_loaded(r.stderr)
    assert loaded and all(under(f, p) for f in loaded), f"engines loaded: {loaded}"
    if not HAVE_MODELS:
        pytest.skip("no built-in models in this build (ACTMAX_MODELS=OFF) for actmax-engine layers")
    r = run([exe, "layers", os.path.join(p, "share/actmax/models/fashion-cnn.pt")], env, tmp_path, wrap)
    assert r.returncode == 0 and "conv2" in r.stdout, r.stdout + r.stderr
