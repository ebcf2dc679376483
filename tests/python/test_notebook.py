"""The Python tutorial executed headless on Debian's python3 kernel (ipykernel),
with the build tree's module on its path: no cell fails, the results show
inline (PNG images and HTML), and the progress is one display updated in place."""
import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import SOURCE

NOTEBOOK = os.path.join(SOURCE, "notebooks", "06-python-api.ipynb")


def test_python_tutorial_runs(tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager
    if "python3" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("no python3 kernelspec (Debian's python3-ipykernel)")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    client = NotebookClient(nb, kernel_name="python3", timeout=600, startup_timeout=60,
                            resources={"metadata": {"path": str(tmp_path)}})
    # The kernel inherits this environment, PYTHONPATH=build/python included.
    client.execute(env=dict(os.environ))
    images = html = updates = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errs = [o for o in cell.outputs if o.output_type == "error"]
        assert not errs, f"cell {i} failed:\n{cell.source}\n{errs[0].ename}: {errs[0].evalue}"
        for o in cell.outputs:
            data = o.get("data", {})
            images += "image/png" in data
            html += "text/html" in data and "data:image/png;base64," in data["text/html"]
    assert images + html >= 3, "the runs did not show inline"
    # Each run's progress is one display, updated in place to its last step.
    run = next(c for c in nb.cells if c.cell_type == "code" and 'm.maximize("conv2[5]", steps=128' in c.source)
    live = [o for o in run.outputs if o.output_type == "display_data" and "actmax-progress" in
            o.get("data", {}).get("text/html", "")]
    assert len(live) == 1 and "128/128" in live[0].data["text/html"], [o.output_type for o in run.outputs]
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "my loop" in text and "actmax" in text
