"""The tutorials executed headless, once per test process: test_tutorials.py
(every cell runs) and test_tutorial_claims.py (every claim of the text holds)
read the same execution, so the suite pays for each notebook once when ctest
runs both files in one pytest."""
import atexit
import glob
import os
import shutil
import tempfile
import time

import nbformat
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The actmax kernel's tutorials; a notebook on another kernel (the Python
# module's, on python3) is executed by that part's own tests.
NOTEBOOKS = sorted(p for p in glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb"))
                   if nbformat.read(p, as_version=4).metadata.get("kernelspec", {}).get("name")
                   == "actmax")


class Executed:
    """A notebook after execution: its cells with outputs, the wall time of
    the execution and the folder it ran in (where %save writes)."""

    def __init__(self, path, nb, seconds, workdir):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.nb = nb
        self.seconds = seconds
        self.workdir = workdir


_done = {}
_workdirs = []


def _cleanup():
    for d in _workdirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def executed(path):
    """The notebook at path executed through the actmax kernel (as a student's
    Jupyter would: nbclient, errors kept as outputs), cached for the process."""
    if path not in _done:
        nb = nbformat.read(path, as_version=4)
        workdir = tempfile.mkdtemp(prefix="actmax-tutorial-")
        _workdirs.append(workdir)
        client = NotebookClient(nb, kernel_name="actmax", timeout=300, startup_timeout=60,
                                allow_errors=True, resources={"metadata": {"path": workdir}})
        t0 = time.monotonic()
        client.execute()
        _done[path] = Executed(path, nb, time.monotonic() - t0, workdir)
    return _done[path]
