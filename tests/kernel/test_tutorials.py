"""Every notebook in notebooks/ executed headless with nbclient through the
actmax kernel. A cell may fail only when its metadata tags say
"raises-exception" (a cell that shows an error on purpose, and then it must);
every tutorial must show at least one image. The execution is shared with
test_tutorial_claims.py (tutorial_run.py)."""
import os

import pytest
from tutorial_run import NOTEBOOKS, executed

pytestmark = pytest.mark.skipif(
    os.environ.get("ACTMAX_SANITIZED") == "1",
    reason="the sanitized build is configured without the engine; these run in the plain build")


def test_there_are_tutorials():
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path):
    nb = executed(path).nb
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
