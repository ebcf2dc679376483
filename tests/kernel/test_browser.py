"""The notebook as a person runs it: an unexecuted notebook with engine magics
is served by Jupyter Notebook 6 on localhost, opened in Debian's headless
Chromium, and run in the page (Jupyter.notebook.execute_all_cells()), the
browser driven through the Chrome DevTools Protocol over a websocket
(tornado's client). While it runs, a MutationObserver watches the live
progress display of %maximize: it must be replaced in place once per update
the kernel sent, never appended. After the run the page must hold the result
images as decoded <img> elements with PNG data URIs in the right cells, the
cell with a deliberate error must show it, and the cell after it must still
run. A full-page screenshot (and the page's DOM) is kept in
$ACTMAX_ARTIFACT_DIR (else the test's tmp directory) as a test artifact."""
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from tornado.websocket import websocket_connect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = os.environ.get("ACTMAX_ARTIFACT_DIR")
TOKEN = "actmax-browser-test"
RUN_TIMEOUT = 240  # seconds for all cells, in the page

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None,
                       reason="chromium is not installed (scripts/install-deps.sh adds it)"),
    pytest.mark.skipif(os.environ.get("ACTMAX_SANITIZED") == "1",
                       reason="the sanitized build is configured without the engine; this runs in the plain build"),
]

# The cells, by index in the notebook (cell 0 is markdown).
MODEL, MAXIMIZE, EXAMPLES, ERROR, AFTER = 1, 2, 3, 4, 5


def make_notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "actmax", "display_name": "actmax", "language": "actmax"}}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# fashion-cnn, channel 5 of conv2"),
        nbformat.v4.new_code_cell("%model fashion-cnn"),
        # Enough steps and updates for the live display to change several
        # times; verbose=true prints how many updates the kernel sent.
        nbformat.v4.new_code_cell("%maximize conv2[5] steps=256 updates_per_s=40 verbose=true"),
        nbformat.v4.new_code_cell("%examples conv2[5] k=8"),
        # Tagged as Jupyter expects of a cell meant to fail: the page then
        # sends it with stop_on_error=false and the cells after it still run.
        nbformat.v4.new_code_cell("%maximize conv2[999]",
                                  metadata={"tags": ["raises-exception"]}),
        nbformat.v4.new_code_cell("%maximize conv2[7] steps=32"),
    ]
    for i, c in enumerate(nb.cells):
        assert c.cell_type == "code" or i == 0
    return nb


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, what, tries=150):
    for _ in range(tries):
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with status {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.read()
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{what} did not answer at {url}")


def stop(proc, grace=15):
    """Ends a process this test started, with the process group it leads
    (Chromium's renderers and helpers)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


def tail(path, n=3000):
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


@pytest.fixture()
def server(tmp_path):
    """Notebook 6 on a free localhost port, serving an unexecuted notebook."""
    root = tmp_path / "nb"
    root.mkdir()
    nbformat.write(make_notebook(), str(root / "browser.ipynb"))
    log = tmp_path / "notebook.log"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"))
    base = f"http://127.0.0.1:{free_port()}"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "notebook", "--no-browser", f"--port={base.rsplit(':', 1)[1]}",
             "--NotebookApp.port_retries=0", "--ip=127.0.0.1", "--allow-root",
             f"--NotebookApp.token={TOKEN}", f"--notebook-dir={root}"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"{base}/api/status?token={TOKEN}", proc, "the notebook server")
        yield base, log
    finally:
        if proc.poll() is None:
            # Kernels are their own process groups: shut them down by the API.
            try:
                with urllib.request.urlopen(f"{base}/api/kernels?token={TOKEN}", timeout=5) as r:
                    kernels = json.load(r)
                for k in kernels:
                    req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={TOKEN}",
                                                 method="DELETE")
                    urllib.request.urlopen(req, timeout=30).close()
            except OSError as e:
                print(f"could not shut the kernels down through the API: {e}")
        stop(proc)


@pytest.fixture()
def browser(tmp_path):
    """Headless Chromium with the DevTools protocol on a port it picks itself
    (written to DevToolsActivePort in its profile directory)."""
    profile = tmp_path / "profile"
    log = tmp_path / "chromium.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--hide-scrollbars", "--no-first-run", "--no-default-browser-check",
             f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--window-size=1200,900", "about:blank"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not open its DevTools port:\n{tail(log)}")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(wait_http(f"http://127.0.0.1:{port}/json", proc, "chromium"))
        pages = [t for t in targets if t.get("type") == "page"]
        assert pages, f"no page among chromium's DevTools targets: {targets}"
        yield pages[0]["webSocketDebuggerUrl"], log
    finally:
        stop(proc)


class Cdp:
    """A minimal Chrome DevTools Protocol client: one command at a time; the
    events read while waiting for a reply are kept (console, exceptions)."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.console = []

    @classmethod
    async def connect(cls, url):
        return cls(await websocket_connect(url, max_message_size=256 << 20))

    async def call(self, method, timeout=60, **params):
        self.next_id += 1
        mid = self.next_id
        await self.ws.write_message(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no DevTools reply to {method} in {timeout} s")
            msg = await asyncio.wait_for(self.ws.read_message(), left)
            if msg is None:
                raise AssertionError(f"the DevTools connection closed during {method}")
            m = json.loads(msg)
            if m.get("id") == mid:
                if "error" in m:
                    raise AssertionError(f"DevTools {method} failed: {m['error']}")
                return m["result"]
            self.event(m)

    def event(self, m):
        p = m.get("params", {})
        if m.get("method") == "Runtime.consoleAPICalled":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.console.append(f"console.{p.get('type')}: {args}"[:500])
        elif m.get("method") == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console.append(f"exception: {d.get('exception', {}).get('description', d.get('text'))}"[:500])
        del self.console[:-40]

    async def js(self, expr, timeout=60):
        r = await self.call("Runtime.evaluate", timeout=timeout, expression=expr,
                            returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise AssertionError(f"script failed in the page: "
                                 f"{d.get('exception', {}).get('description', d.get('text'))}\n{expr}")
        return r["result"].get("value")

    async def until(self, expr, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            if await self.js(expr):
                return
            if time.monotonic() > deadline:
                state = await self.js(STATE)
                console = "\n".join(self.console[-15:])
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n"
                                     f"page state: {state}\nconsole:\n{console}")
            await asyncio.sleep(0.25)


# The page's view of the notebook: kernel, and per code cell its prompt number.
STATE = """JSON.stringify((() => {
  if (!window.Jupyter || !Jupyter.notebook) return {notebook: false};
  const k = Jupyter.notebook.kernel;
  const icon = document.getElementById('kernel_indicator_icon');
  return {kernel_connected: !!(k && k.is_connected()),
          kernel_ready: !!(k && k.info_reply && k.info_reply.implementation),
          indicator: icon && icon.className,
          prompts: Jupyter.notebook.get_cells().map(c => c.cell_type === 'code' ? c.input_prompt_number : c.cell_type)};
})())"""

KERNEL_READY = """!!(window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel
  && Jupyter.notebook.kernel.is_connected()
  && Jupyter.notebook.kernel.info_reply && Jupyter.notebook.kernel.info_reply.implementation === 'actmax'
  && document.querySelector('#kernel_indicator_icon.kernel_idle_icon'))"""

# Counts what happens to the live progress display of one cell: every node
# with .actmax-progress added to or removed from the cell's output.
OBSERVE = """(() => {
  const out = Jupyter.notebook.get_cell(%d).output_area.element[0];
  const w = window.__actmaxLive = {added: 0, removed: 0, texts: []};
  const progress = n => n.nodeType === 1 && (n.matches('.actmax-progress') ? n : n.querySelector('.actmax-progress'));
  new MutationObserver(records => {
    for (const r of records) {
      for (const n of r.addedNodes) {
        const p = progress(n);
        if (p) { w.added++; w.texts.push(p.textContent.replace(/\\s+/g, ' ').trim()); }
      }
      for (const n of r.removedNodes) if (progress(n)) w.removed++;
    }
  }).observe(out, {childList: true, subtree: true});
  return true;
})()""" % MAXIMIZE

RUN_DONE = """(() => {
  const cells = Jupyter.notebook.get_cells().filter(c => c.cell_type === 'code');
  return cells.every(c => typeof c.input_prompt_number === 'number')
    && !!document.querySelector('#kernel_indicator_icon.kernel_idle_icon');
})()"""

# What each code cell shows once the run is over; images decoded first.
CELLS = """(async () => {
  await Promise.all([...document.querySelectorAll('#notebook img')].map(i => i.decode().catch(() => null)));
  return JSON.stringify(Jupyter.notebook.get_cells().map((c, i) => {
    const out = c.element[0].querySelector('.output');
    if (c.cell_type !== 'code' || !out) return {i: i, type: c.cell_type};
    const imgs = sel => [...out.querySelectorAll(sel)].map(im => ({
      png: im.getAttribute('src').startsWith('data:image/png;base64,'), width: im.naturalWidth}));
    return {i: i, type: 'code', prompt: c.input_prompt_number,
            areas: out.querySelectorAll(':scope > .output_area').length,
            png: imgs('.output_png img'),
            progress: out.querySelectorAll('.actmax-progress').length,
            progress_text: [...out.querySelectorAll('.actmax-progress')].map(p => p.textContent.replace(/\\s+/g, ' ').trim()),
            progress_imgs: imgs('.actmax-progress img'),
            styled_bar: out.innerHTML.includes('background:#2563eb') || out.innerHTML.includes('background: rgb(37, 99, 235)'),
            errors: [...out.querySelectorAll('.output_error')].map(e => e.textContent),
            text: out.textContent};
  }));
})()"""


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


async def drive(ws_url, url, artifacts):
    cdp = await Cdp.connect(ws_url)
    try:
        await cdp.call("Runtime.enable")
        await cdp.call("Page.enable")
        await cdp.call("Page.navigate", url=url)
        await cdp.until(KERNEL_READY, 120, "the notebook page with a connected, idle actmax kernel")
        assert await cdp.js(OBSERVE)
        prompts = json.loads(await cdp.js(STATE))["prompts"]
        assert all(p is None for p in prompts[1:]), f"the notebook was not served unexecuted: {prompts}"

        t0 = time.monotonic()
        await cdp.js("Jupyter.notebook.execute_all_cells(), true")
        # The kernel goes busy right away; wait until every code cell has its
        # number and the kernel is idle again.
        await cdp.until(RUN_DONE, RUN_TIMEOUT, "every code cell to run (a number in each prompt) "
                        "and the kernel to be idle")
        run_s = time.monotonic() - t0
        cells = json.loads(await cdp.js(CELLS))
        live = await cdp.js("JSON.stringify(window.__actmaxLive)")
        live = json.loads(live)

        # Full page: a viewport as tall as the notebook (Notebook 6 scrolls
        # inside #site, so a tall viewport is what shows all of it).
        height = await cdp.js("""(() => {
          const site = document.getElementById('site');
          site.scrollTop = 0;
          return document.getElementById('header').offsetHeight
                 + document.getElementById('notebook').scrollHeight + 40;
        })()""")
        height = max(900, min(int(height), 16000))
        await cdp.call("Emulation.setDeviceMetricsOverride", width=1200, height=height,
                       deviceScaleFactor=1, mobile=False)
        await asyncio.sleep(1.0)  # relayout after the resize
        shot = base64.b64decode((await cdp.call("Page.captureScreenshot", timeout=120,
                                                format="png"))["data"])
        dom = await cdp.js("document.documentElement.outerHTML")
        with open(os.path.join(artifacts, "browser-notebook.png"), "wb") as f:
            f.write(shot)
        with open(os.path.join(artifacts, "browser-notebook.html"), "w") as f:
            f.write(dom)
        return cells, live, shot, run_s, "\n".join(cdp.console)
    finally:
        cdp.ws.close()


def test_notebook_runs_in_the_page(server, browser, tmp_path):
    base, server_log = server
    ws_url, chromium_log = browser
    artifacts = ARTIFACTS or str(tmp_path)
    os.makedirs(artifacts, exist_ok=True)
    url = f"{base}/notebooks/browser.ipynb?token={TOKEN}"
    try:
        cells, live, shot, run_s, console = asyncio.run(drive(ws_url, url, artifacts))
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- notebook server log:\n{tail(server_log)}\n"
                             f"--- chromium log:\n{tail(chromium_log, 1500)}") from None

    mx, ex, err, after = cells[MAXIMIZE], cells[EXAMPLES], cells[ERROR], cells[AFTER]
    summary = {i: {k: v for k, v in c.items() if k != "text"} for i, c in enumerate(cells)}
    print(f"ran in the page in {run_s:.1f} s; live display: {live['added']} added, "
          f"{live['removed']} removed; screenshot {png_size(shot)} {len(shot)} bytes\n"
          f"cells: {json.dumps(summary)}")

    # The cells ran in order, each once: an aborted cell (the kernel stopping
    # after the error) would repeat the number before it.
    prompts = [c["prompt"] for c in cells if c["type"] == "code"]
    assert prompts == list(range(1, len(prompts) + 1)), \
        f"prompt numbers {prompts}: not every cell ran once, in order (a cell aborted?)"

    # The live display was updated in place: one node per update the kernel
    # sent (verbose=true prints the count), each replacing the one before,
    # and a single progress display left, at the last step.
    m = re.search(r"live display updates sent: (\d+)", mx["text"])
    assert m, f"the %maximize cell did not print its update count: {mx['text'][:500]}"
    sent = int(m.group(1))
    assert sent >= 3, f"the kernel sent only {sent} live display messages"
    assert live["added"] == sent, f"{sent} live display messages sent, {live['added']} rendered"
    assert live["removed"] == sent - 1, f"updates not in place: {live}"
    assert len(set(live["texts"])) > 1, f"the live display never changed: {live['texts']}"
    assert mx["progress"] == 1, f"{mx['progress']} progress displays in the %maximize cell"
    assert "256/256" in mx["progress_text"][0], mx["progress_text"]
    assert mx["styled_bar"], "the progress bar lost its styles"
    assert all(i["png"] and i["width"] > 0 for i in mx["progress_imgs"]), mx["progress_imgs"]

    # Images as decoded <img> with PNG data URIs: the optimized image and the
    # objective curve of %maximize, the grid of %examples, the later run.
    for name, c, least in (("%maximize", mx, 2), ("%examples", ex, 1), ("after the error", after, 2)):
        assert len(c["png"]) >= least, f"{len(c['png'])} PNG images in the {name} cell: {c['text'][:300]}"
        assert all(i["png"] for i in c["png"]), f"an image in the {name} cell is not a PNG data URI"
        assert all(i["width"] > 0 for i in c["png"]), f"an image in the {name} cell was not decoded: {c['png']}"
    assert "run 1: conv2[5]" in mx["text"]

    # The error shows as an error, and the next cell still ran.
    assert len(err["errors"]) == 1, f"no error output in the failing cell: {err['text'][:500]}"
    assert "ObjectiveError" in err["errors"][0] and "out of range" in err["errors"][0], err["errors"][0]
    assert not err["png"]
    assert not after["errors"] and "run 2: conv2[7]" in after["text"], after["text"][:500]

    w, h = png_size(shot)
    assert len(shot) > 0 and w == 1200 and h >= 900, (w, h, len(shot))
    assert not [c for c in console.splitlines() if c.startswith("exception")], console
