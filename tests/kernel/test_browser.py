"""The notebook as a person sees it: a notebook with engine magics is executed
through the actmax kernel (nbclient) and saved with its outputs, served by
Jupyter Notebook 6 on localhost, and opened in Debian's headless Chromium.
The rendered page must hold the result images as <img> elements with PNG
data URIs; a screenshot is kept in the build tree as a test artifact."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from nbclient import NotebookClient

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = os.environ.get("ACTMAX_ARTIFACT_DIR")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None,
                       reason="chromium is not installed (scripts/install-deps.sh adds it)"),
    pytest.mark.skipif(os.environ.get("ACTMAX_SANITIZED") == "1",
                       reason="the sanitized build is configured without the engine; this runs in the plain build"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium(args, tmp_path):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=20000"] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_notebook_page_shows_images(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "actmax", "display_name": "actmax", "language": "actmax"}}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# fashion-cnn, channel 5 of conv2"),
        nbformat.v4.new_code_cell("%model fashion-cnn\n%maximize conv2[5] steps=32"),
        nbformat.v4.new_code_cell("%examples conv2[5] k=8"),
    ]
    NotebookClient(nb, kernel_name="actmax", timeout=120, startup_timeout=60).execute()
    root = tmp_path / "nb"
    root.mkdir()
    # Signed as trusted by the server's own key, as a notebook a person ran
    # themselves: an untrusted one would have its HTML styles stripped.
    from nbformat.sign import NotebookNotary
    (tmp_path / "data").mkdir()
    NotebookNotary(data_dir=str(tmp_path / "data")).sign(nb)
    nbformat.write(nb, str(root / "browser.ipynb"))
    pngs_saved = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs)
    assert pngs_saved >= 3  # image, plot, examples grid

    port, token = free_port(), "actmax-browser-test"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"))
    server = subprocess.Popen(
        [sys.executable, "-m", "notebook", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--allow-root", f"--NotebookApp.token={token}", f"--notebook-dir={root}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the notebook server did not start")
        url = f"{base}/notebooks/browser.ipynb?token={token}"
        dom = chromium(["--dump-dom", url], tmp_path).stdout
        shot = tmp_path / "notebook.png"
        chromium(["--window-size=1200,1800", f"--screenshot={shot}", url], tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "%maximize conv2[5]" in dom, "the notebook's cells are not in the page"
    imgs = dom.count('<img src="data:image/png;base64,')
    assert imgs >= pngs_saved, f"{imgs} PNG images in the page, {pngs_saved} in the notebook"
    assert shot.exists() and shot.read_bytes()[:4] == b"\x89PNG"
    assert "background:#2563eb" in dom, "the progress bar lost its styles (notebook not trusted?)"
    if ARTIFACTS:
        os.makedirs(ARTIFACTS, exist_ok=True)
        shutil.copy(shot, os.path.join(ARTIFACTS, "browser-notebook.png"))
        with open(os.path.join(ARTIFACTS, "browser-notebook.html"), "w") as f:
            f.write(dom)
