"""tests/kernel/smoke.ipynb executed headless with nbclient; its outputs are
checked cell by cell."""
import os

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))


def test_smoke_notebook():
    nb = nbformat.read(os.path.join(HERE, "smoke.ipynb"), as_version=4)
    client = NotebookClient(nb, kernel_name="actmax", timeout=60, startup_timeout=60,
                            allow_errors=False)
    client.execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]

    def text(cell):
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")

    lsmagic, help_set, settings, bad_magic, bad_key, page, result = cells
    assert [c.execution_count for c in cells] == list(range(1, 8))
    assert "Line magics:" in text(lsmagic) and "%help" in text(lsmagic)
    assert "%set [seed=INT] [device=auto|cpu|cuda]" in text(help_set)
    assert "[now 3]" in text(settings) and "[now cpu]" in text(settings)

    (err,) = bad_magic.outputs
    assert err.output_type == "error"
    assert err.ename == "UnknownMagicError"
    assert "%maximise" in err.evalue
    (err,) = bad_key.outputs
    assert err.ename == "UsageError" and "did you mean seconds?" in err.evalue

    assert page.outputs == []  # help goes to the pager payload, not the outputs
    (res,) = result.outputs
    assert res.output_type == "execute_result"
    assert res.data["text/plain"] == "done"
