"""actmax.raw: the engine's own options, one call per engine entry point.

The public API (actmax.load, Model.maximize, tokens, examples) takes the
magics' keys and checks them as the kernel does. This layer passes the
engine's option fields as they are (am_options, am_text_options,
am_examples_options: integer enums, height and width apart, fields the
magics derive) and lets the engine check them, so its messages and status
codes (e.status) are the engine's own. Arrays out are numpy arrays, copies
of the engine's buffers. It serves the engine's own tests and tools; see
docs/python.md.

    import actmax, actmax.raw as raw
    m = actmax.load("fashion-cnn", device="cpu")
    r = raw.run(m, ["conv2[0]", "conv2[1]"], steps=64, param=raw.PARAM_PIXEL, height=28, width=40)
"""
from collections import namedtuple
from types import SimpleNamespace

import numpy as np

from . import _actmax

__all__ = ["load", "run", "array_save", "memory_available", "text_run", "examples", "tokenize", "Progress", "TextProgress",
           "SOFT", "PEZ", "GCG", "SWEEP", "DIST_COSINE", "DIST_L2", "OPT_AUTO", "ADAM", "SGD", "NADAM",
           "PARAM_FFT", "PARAM_PIXEL", "PARAM_MACO", "INPUT_FLOAT", "INPUT_TOKENS", "INPUT_EMBEDS"]

# The engine's enums (actmax.h).
OPT_AUTO, ADAM, SGD, NADAM = -1, 0, 1, 2
PARAM_FFT, PARAM_PIXEL, PARAM_MACO = 0, 1, 2
SOFT, PEZ, GCG, SWEEP = 0, 1, 2, 3
DIST_COSINE, DIST_L2 = 0, 1
INPUT_FLOAT, INPUT_TOKENS, INPUT_EMBEDS = _actmax.INPUT_FLOAT, _actmax.INPUT_TOKENS, _actmax.INPUT_EMBEDS

# What a progress callback gets: each step (every step, no throttle).
# terms: ((name, value), ...); image: (B, C, H, W) in [0, 1] or None;
# crop: MACO's crop side this step, a fraction of the canvas side (else 1).
Progress = namedtuple("Progress", "step steps objective terms image crop")
TextProgress = namedtuple("TextProgress", "step steps restart restarts activation xent tokens")


def memory_available(device="cpu"):
    """am_memory_available: the bytes runs on device ("cpu", "cuda",
    "cuda:1") are checked against before they allocate, or None where that
    cannot be known (CUDA without a driver library and no ACTMAX_MEMORY_LIMIT)."""
    return _actmax.memory_available(device)


def _np(pair, dtype=np.float32):
    buf, shape = pair
    return np.frombuffer(buf, dtype=dtype).reshape(shape).copy()


def _core(model):
    core = getattr(model, "_m", None)
    if core is None:
        raise TypeError(f"expected an actmax.Model (from actmax.load), not {type(model).__name__}")
    return core


def load(path=None, device="cpu", input_shape=None, data=None, metadata=None):
    """am_model_load_with as it is: a file path and/or TorchScript bytes (data;
    the engine refuses both), device (None: the engine's default, the CPU),
    input_shape without batch, metadata (a dict or JSON text) over the
    archive's actmax.json. No built-in names and no checks of its own: a
    failure raises actmax.ModelError with the engine's e.status and e.detail.
    Returns an actmax.Model."""
    import json
    from . import Model
    if metadata is not None and not isinstance(metadata, str):
        metadata = json.dumps(metadata)
    core = _actmax.Model(None if path is None else str(path), device,
                         None if input_shape is None else [int(d) for d in input_shape], metadata, data)
    return Model(core, "(memory)" if path is None else str(path), None if path is None else str(path))


def run(model, objectives, progress=None, init_image=None, thresholds=None, **fields):
    """am_run_new with am_options fields (batch, height, width, steps, lr,
    optimizer, momentum, seed, param, decorrelate, decay_power, transforms,
    pad, jitter, scale_min, scale_max, rotate_deg, l1, l2, tv, blur, init_std,
    image_every, crops, crop_max, crop_min, noise, contrast, accent, diversity,
    diversity_layer (a str or None)) over the engine's defaults. init_image:
    (B, C, H, W) in [0, 1]; thresholds: steps to snapshot. progress(Progress)
    is called every step; a truthy return cancels. Returns images (B, C, H, W)
    in [0, 1], curve, final, activation (B), transparency (B, C, H, W) or
    None, diversity_layer, note, terms {name: curve}, snapshots [(step,
    images)], steps, seconds, cancelled, interrupted."""
    if isinstance(objectives, str):
        objectives = [objectives]
    init = None if init_image is None else np.ascontiguousarray(init_image, dtype=np.float32)
    cb = None
    if progress is not None:
        def cb(step, steps, objective, image, terms, crop):
            img = None if image is None else _np(image)
            return progress(Progress(step, steps, objective, tuple(terms), img, crop))
    d = _core(model).maximize(list(objectives), fields, init,
                              None if thresholds is None else [int(t) for t in thresholds], cb, 0.0)
    return SimpleNamespace(
        images=_np(d["images"]), curve=_np(d["curve"]), final=_np(d["final"]),
        activation=_np(d["activation"]),
        transparency=None if d["transparency"] is None else _np(d["transparency"]),
        diversity_layer=d["diversity_layer"], note=d["note"],
        terms={name: _np(c) for name, c in d["terms"]},
        snapshots=[(step, _np(img)) for step, img in d["snapshots"]],
        steps=d["steps"], seconds=d["seconds"], cancelled=int(d["cancelled"]),
        interrupted=bool(d["interrupted"]))


def text_run(model, objective, progress=None, init_tokens=None, **fields):
    """am_text_run_new with am_text_options fields (method, len, steps, lr,
    distance, snap, fluency, topk, nearest, batch, position, seed, restarts,
    retokenize, attribution) over the engine's defaults. progress(TextProgress)
    is called every step; a truthy return cancels. Returns tokens, text
    (bytes), roundtrip, activation, xent, soft_activation, retention, steps,
    seconds, cancelled, curve, xent_curve, embeds, nearest (ids, values) or
    None, attribution (drop, alt) or None, projected_curve, best (ids,
    activation, step), sweep or None, sweep_position, note (what the run
    chose by itself, e.g. a sampled attribution; am_text_run_note)."""
    init = None if init_tokens is None else np.ascontiguousarray(init_tokens, dtype=np.int64)
    cb = None
    if progress is not None:
        def cb(step, steps, restart, restarts, activation, xent, ids):
            return progress(TextProgress(step, steps, restart, restarts, activation, xent,
                                         _np(ids, np.int64)))
    d = _core(model).tokens(objective, fields, init, cb, 0.0)
    nearest = attribution = sweep = None
    if d["nearest"] is not None:
        nearest = (_np(d["nearest"][0], np.int64), _np(d["nearest"][1]))
    if d["attribution"] is not None:
        attribution = (_np(d["attribution"][0]), _np(d["attribution"][1], np.int64))
    if d["sweep"] is not None:
        sweep = _np(d["sweep"][0])
    return SimpleNamespace(
        tokens=_np(d["ids"], np.int64), text=d["text"], roundtrip=int(d["roundtrip"]),
        activation=d["activation"], xent=d["xent"], soft_activation=d["soft_activation"],
        retention=d["retention"], steps=d["steps"], seconds=d["seconds"], cancelled=int(d["cancelled"]),
        interrupted=bool(d["interrupted"]), curve=_np(d["curve"]), xent_curve=_np(d["xent_curve"]),
        embeds=None if d["embeds"] is None else _np(d["embeds"]), nearest=nearest,
        attribution=attribution, projected_curve=_np(d["projected_curve"]),
        best=(_np(d["best_ids"], np.int64), d["best_activation"], d["best_step"]),
        sweep=sweep, sweep_position=d["sweep"][1] if d["sweep"] is not None else 0, note=d["note"])


def _example(t):
    i, v, lab, name, img, toks, acts, peak, scored = t
    return dict(index=i, value=v, label=lab, label_name=name, image=None if img is None else _np(img),
                tokens=None if toks is None else _np(toks, np.int64), acts=None if acts is None else _np(acts),
                peak=peak, scored=scored)


def examples(model, objective, progress=None, dataset=None, path=None, split=None, window=0, stride=0,
             context=0, k=0, limit=0, batch=0, bins=0, quantiles=0, per_band=0, band_percentiles=None):
    """am_examples_new (0 or None: the engine's default). progress(scanned,
    total, best) after each batch; a truthy return cancels. Returns dict(kind
    ("image" or "text"), max, scanned, cancelled, interrupted, items=[dict(
    index, value, label, label_name, image (C, H, W) or None, tokens, acts,
    peak, scored)], histogram=(counts (bins,) int64, lo, hi) or None, sampled,
    firing_rate, bands=[(lo, hi, [items])], class_means (labels,) or None,
    window=(window, context) for text or None, forwards: the model forwards run,
    0 when the activation cache served every value)."""
    d = _core(model).examples(objective, None if dataset is None else str(dataset),
                              None if path is None else str(path), None if split is None else str(split),
                              int(window), int(stride), int(context), int(k), int(limit), int(batch), int(bins),
                              int(quantiles), int(per_band),
                              None if band_percentiles is None else [float(p) for p in band_percentiles],
                              progress, 0.0)
    h = d["histogram"]
    return dict(kind=d["kind"], max=d["max"], scanned=d["scanned"], cancelled=int(d["cancelled"]),
                interrupted=bool(d["interrupted"]), items=[_example(t) for t in d["items"]],
                histogram=None if h is None else (np.array(h[0], np.int64), h[1], h[2]),
                sampled=bool(d["sampled"]), firing_rate=d["firing_rate"],
                bands=[(lo, hi, [_example(t) for t in its]) for lo, hi, its in d["bands"]],
                class_means=None if d["class_means"] is None else _np(d["class_means"]),
                window=d["window"], forwards=d["forwards"])


def tokenize(tokenizer_json, text):
    """Token ids (int64 numpy) of text (str or bytes) under a tokenizer.json
    given as bytes, without a model (am_tokenizer_load_json)."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    js = tokenizer_json.encode() if isinstance(tokenizer_json, str) else bytes(tokenizer_json)
    return _np(_actmax.tokenize(js, raw), np.int64)


def array_save(path, array):
    """am_array_save: a float32 or int64 array (numpy or torch, any shape,
    copied to C order) written to path as .npy (numpy.load) or .pt/.pth
    (torch.load), by the extension. Other dtypes are a TypeError; a bad
    extension a ValueError, an unwritable path an OSError (e.status, e.detail)."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    a = np.require(array, requirements="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    if a.dtype not in (np.float32, np.int64):
        raise TypeError(f"array_save takes float32 or int64 arrays, not {a.dtype}")
    _actmax.array_save(str(path), a)
