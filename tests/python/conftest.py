"""Shared helpers of the Python module's tests: the module itself, the
built-in models, and the kernel's command line to compare against."""
import os
import re
import subprocess
import sys

import pytest

import actmax  # from PYTHONPATH=build/python, set by CTest

SOURCE = os.environ.get("ACTMAX_SOURCE_DIR",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
KERNEL_CLI = os.environ.get("ACTMAX_KERNEL_CLI", "")
ENGINE_CLI = os.environ.get("ACTMAX_ENGINE_CLI", "")


@pytest.fixture(scope="session")
def fashion():
    return actmax.load("fashion-cnn", device="cpu")


@pytest.fixture(scope="session")
def tiny_lm():
    try:
        return actmax.load("tiny-lm", device="cpu")
    except FileNotFoundError as e:
        pytest.skip(f"tiny-lm is not built: {e}")


def kernel(code, out_dir=None):
    """Runs magics through the kernel's command line: (rc, stdout, stderr)."""
    if not os.access(KERNEL_CLI, os.X_OK):
        pytest.skip("the kernel's command line (build/actmax) is not built")
    cmd = [KERNEL_CLI, "-c", code] + (["-o", str(out_dir)] if out_dir else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


def kernel_error(code):
    """The class and message of the error a cell ends with, as the kernel
    shows them ("Class: message", then "  in %magic (line N)")."""
    rc, out, err = kernel(code)
    assert rc != 0, f"the kernel accepted {code!r}:\n{out}"
    m = re.search(r"^(\w+): (.*?)\n  (?:in %|line \d+: )", err, re.S | re.M)
    assert m, f"no error in the kernel's stderr:\n{err}"
    return m.group(1), m.group(2)
