"""Every notebook in notebooks/ executed headless with nbclient through the
actmax kernel. A cell may fail only when its metadata tags say
"raises-exception" (a cell that shows an error on purpose, and then it must);
every tutorial must show at least one image."""
import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The actmax kernel's tutorials; a notebook on another kernel (the Python
# module's, on python3) is executed by that part's own tests.
NOTEBOOKS = sorted(p for p in glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb"))
                   if nbformat.read(p, as_version=4).metadata.get("kernelspec", {}).get("name") == "actmax")

pytestmark = pytest.mark.skipif(
    os.environ.get("ACTMAX_SANITIZED") == "1",
    reason="the sanitized build is configured without the engine; these run in the plain build")


def test_there_are_tutorials():
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="actmax", timeout=300, startup_timeout=60,
                            allow_errors=True, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    images = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errs = [o for o in cell.outputs if o.output_type == "error"]
        expected = "raises-exception" in cell.metadata.get("tags", [])
        if expected:
            assert errs, f"cell {i} should show an error:\n{cell.source}"
        else:
            assert not errs, f"cell {i} failed:\n{cell.source}\n{errs[0].ename}: {errs[0].evalue}"
        images += sum(1 for o in cell.outputs if "image/png" in o.get("data", {}))
    assert images > 0, "a tutorial without a single picture"
