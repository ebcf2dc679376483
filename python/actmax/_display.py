"""The live progress of a run: one display updated in place in a notebook, one
line rewritten on a terminal. The engine calls back at most updates_per_s times
a second (the C half throttles); the bar itself is the kernel's renderer's."""
import base64
import math
import sys
import time

import numpy as np

from . import _actmax


def in_notebook():
    """True inside a Jupyter kernel (an IPython kernel app is running)."""
    ip = sys.modules.get("IPython")
    if ip is None:
        return False
    try:
        shell = ip.get_ipython()
    except AttributeError:
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def png_html(png):
    return '<img src="data:image/png;base64,%s"/>' % base64.b64encode(png).decode()


class Live:
    """progress: None shows it where someone watches (a notebook or a
    terminal), True always, False never."""

    def __init__(self, label, total, progress=None, images=True):
        self.label = label
        self.total = max(1, int(total))
        self.notebook = in_notebook()
        if progress is None:
            progress = self.notebook or sys.stderr.isatty()
        # An engine-only build has no renderer to draw the bar with.
        self.on = bool(progress) and _actmax.HAVE_RENDER
        self.images = bool(images and self.on and self.notebook)
        self.handle = None
        self.png = None
        self.t0 = time.monotonic()
        self.last_len = 0

    def start(self):
        self.t0 = time.monotonic()
        if self.on:
            self.show(0, math.nan)

    def show(self, step, value):
        png, w, h = self.png if self.png else (None, 0, 0)
        html, text = _actmax.progress_html(int(step), self.total, float(value),
                                           time.monotonic() - self.t0, self.label, png, w, h)
        if self.notebook:
            from IPython.display import display
            bundle = {"text/html": html, "text/plain": text}
            if self.handle is None:
                self.handle = display(bundle, raw=True, display_id=True)
            else:
                self.handle.update(bundle, raw=True)
        else:
            # One line: the renderer's bar line, after the label.
            lines = [l for l in text.splitlines() if l.strip()]
            line = (self.label[:40] + "  " + lines[-1]) if lines else ""
            pad = max(0, self.last_len - len(line))
            sys.stderr.write("\r" + line + " " * pad)
            sys.stderr.flush()
            self.last_len = len(line)

    # The engine's callbacks (called with the GIL, between steps).

    def run_step(self, step, steps, objective, image, terms=(), crop=1.0):
        if image is not None and self.images:
            buf, shape = image
            pix = np.frombuffer(buf, np.float32).reshape(shape)
            self.png = _actmax.images_png(pix, None, None, 128)
        self.show(step, objective)

    def text_step(self, model):
        def step(s, steps, restart, restarts, activation, xent, ids):
            self.show(restart * steps + s, activation)
        return step

    def scan_step(self, scanned, total, best):
        self.total = max(1, int(total))
        self.show(min(scanned, total), best)

    def close(self):
        if self.on and not self.notebook and self.last_len:
            sys.stderr.write("\n")
            sys.stderr.flush()
