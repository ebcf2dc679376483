"""Model.neuron: one unit's dashboard from Python, as the kernel's %neuron
shows it. The engine computes every number (the optimization, the dataset
scan with its distribution, the logit lens); this module asks in order and
renders. Keys and defaults are those of %neuron (actmax.keys("neuron"))."""
import re
import time

import numpy as np

from . import _actmax
from ._display import png_html

_LENS = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.#:]*)\[[^\]]*?(-?\d+)\s*\]\s*$")


def lens_target(objective):
    """("blocks.1.mlp.act", 42) for "blocks.1.mlp.act[-1, 42]": one layer
    reference whose last index is the neuron; None otherwise."""
    m = _LENS.match(objective)
    return (m.group(1), int(m.group(2))) if m else None


def neuron(model, objective, progress=None, **kw):
    from . import _options, UnsupportedError, LayerError
    v, _ = _options("neuron", kw)
    if not isinstance(objective, str) or not objective.strip():
        raise ValueError("neuron needs an objective, e.g. m.neuron(\"conv2[5]\")")
    t0 = time.time()
    sweep = None
    if model.kind == "image":
        batch = v["images"]
        opt = model.maximize(objective, progress=progress, steps=v["image_steps"], batch=batch, seed=v["seed"],
                             diversity=v["diversity"] if batch > 1 else 0.0)
        optimum = float(np.max(np.asarray(opt.final)))
    else:
        opt = model.tokens(objective, progress=progress, method="gcg", len=v["prompt_len"], steps=v["text_steps"],
                           seed=v["seed"], attribution=False)
        optimum = float(opt.activation)
        sw = model.tokens(objective, method="sweep", len=1, position=0, attribution=False)
        values = np.asarray(sw.sweep, dtype=np.float32).reshape(-1)
        order = np.argsort(-np.where(np.isfinite(values), values, -np.inf), kind="stable")[:v["lens_k"]]
        sweep = [(int(i), model.token_text(int(i)), float(values[i])) for i in order]
    t_opt = time.time() - t0
    ex_kw = dict(k=v["top"], limit=v["limit"])
    if model.kind == "text" and v["path"]:
        ex_kw["path"] = v["path"]
    examples = model.examples(objective, progress=progress, bins=v["bins"], quantiles=v["quantiles"],
                              per_band=v["per_band"], **ex_kw)
    lens, lens_note = None, None
    if model.kind == "text":
        target = lens_target(objective)
        if target is None:
            lens_note = "the lens reads one MLP neuron, an objective like blocks.1.mlp.act[-1, 42]"
        else:
            try:
                lens = model.logit_lens(target[0], target[1], k=v["lens_k"])
            except (UnsupportedError, LayerError, ValueError) as e:
                lens_note = str(e)
    return Neuron(model, objective, opt, optimum, sweep, examples, lens, lens_note, t_opt, time.time() - t0)


def _esc(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


class Neuron:
    """One unit's dashboard: optimized (the Result of the image run or the
    TokensResult of the GCG search) and optimum (its best value); examples
    (Examples: top-k with histogram, firing_rate, bands, class_means);
    text: sweep [(id, text, value)] of single tokens and lens (LogitLens, or
    None with lens_note saying why); seconds and optimize_seconds."""

    def __init__(self, model, objective, opt, optimum, sweep, examples, lens, lens_note, t_opt, total):
        self.objective = objective
        self.kind = model.kind
        self.model_name = model.name
        self.optimized = opt
        self.optimum = optimum
        self.sweep = sweep
        self.examples = examples
        self.histogram = examples.histogram
        self.firing_rate = examples.firing_rate
        self.bands = examples.bands
        self.class_means = examples.class_means
        self.lens = lens
        self.lens_note = lens_note
        self.optimize_seconds = t_opt
        self.seconds = total
        self._labels = list(model.labels) if model.kind == "image" else []

    def __repr__(self):
        return (f"<actmax.Neuron {self.objective} on {self.model_name}: optimum {self.optimum:.4g}, "
                f"dataset max {self.examples.max:.4g} over {self.examples.scanned} scanned, firing rate "
                f"{100 * (self.firing_rate or 0):.2f}%, {self.seconds:.2f} s>")

    def histogram_png(self):
        """The histogram (log10(count + 1) per bin) with the optimum marked."""
        counts, lo, hi = self.histogram
        counts = np.asarray(counts, dtype=np.float64)
        bins = len(counts)
        y = np.log10(counts + 1.0).astype(np.float32)
        # plot_png draws against 1..bins: the optimum's place on that axis.
        x = 0.5 + bins * (self.optimum - lo) / (hi - lo) if hi > lo else 1.0
        return _actmax.plot_png([("log10(count + 1)", y)],
                                f"activation: {bins} bins over [{lo:.4g}, {hi:.4g}]", "log10(count + 1)",
                                [float(x)], [f"optimum {self.optimum:.3g}"], 640, 280)[0]

    def _repr_html_(self):
        h = [f"<div class=\"actmax-neuron\"><h3>{_esc(self.objective)} on {_esc(self.model_name)}</h3>"]
        if self.kind == "image":
            h.append(f"<h4>optimized inputs</h4>{png_html(self.optimized.image_png())}")
        else:
            h.append(f"<h4>best prompt (GCG)</h4><code>{_esc(self.optimized.text)}</code> &rarr; "
                     f"{self.optimum:.4g}")
            rows = "".join(f"<tr><td><code>{_esc(t)}</code></td><td>{i}</td><td>{val:.4g}</td></tr>"
                           for i, t, val in self.sweep or [])
            h.append(f"<h4>single-token sweep</h4><table><tr><th>token</th><th>id</th><th>value</th></tr>"
                     f"{rows}</table>")
        ex = self.examples
        h.append(f"<h4>top {len(ex)} of {ex.scanned} scanned</h4><div>dataset maximum {ex.max:.4g}; "
                 f"firing rate {100 * (self.firing_rate or 0):.2f}%</div>{ex._repr_html_()}")
        if self.bands:
            h.append("<h4>examples across the distribution (quantile bands)</h4>")
            for lo, hi, band in reversed(self.bands):
                h.append(f"<div><i>[{lo:.4g}, {hi:.4g}]</i></div>{band._repr_html_() if len(band) else ''}")
        if self.histogram is not None:
            h.append(f"<h4>activation histogram</h4>{png_html(self.histogram_png())}")
        if self.class_means is not None:
            rows = "".join(f"<tr><td>{_esc(lab)}</td><td>{float(m):.4g}</td></tr>"
                           for lab, m in zip(self._labels, np.asarray(self.class_means)))
            h.append(f"<h4>mean activation per class</h4><table>{rows}</table>")
        if self.kind == "text":
            h.append(self.lens._repr_html_() if self.lens is not None
                     else f"<h4>logit lens</h4><div>not shown: {_esc(self.lens_note)}</div>")
        h.append(f"<div>{self.seconds:.2f} s in all ({self.optimize_seconds:.2f} s optimizing)</div></div>")
        return "".join(h)
