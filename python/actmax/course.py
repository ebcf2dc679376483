"""actmax.course: graded exercises in a PyTorch workflow.

The student writes the PyTorch part (an optimization loop, a
parameterization, a diversity term, a forward hook, a soft prompt, a GCG
step); check(name, fn) runs it and grades it against the engine, with a
pass/fail message and a hint. The exercises are data
(share/actmax/exercises.json: name, model, objective, settings, thresholds,
hint, starter and solution code), so a teacher adds or changes one without
touching C; the notebooks in notebooks/course/ are generated from that file
(scripts/course-notebooks.py).

    import actmax.course as course
    course.exercises()                       # [(name, title)]
    course.check("pixel-ascent", pixel_ascent)
"""
import json
import os
import sys

import numpy as np

from . import _paths

# ---------------------------------------------------------------- models in PyTorch

# Built-in models whose Python definition is in the source tree (models/):
# name -> (module, class, keyword arguments from the state_dict).
_DEFS = {
    "fashion-cnn": ("fashion_cnn", "FashionCNN"),
    "tiny-lm": ("tiny_lm", "TinyLM"),
}


def _models_dir():
    d = os.path.join(getattr(_paths, "SOURCE_DIR", ""), "models")
    return d if os.path.isfile(os.path.join(d, "fashion_cnn.py")) else None


def model_code(model):
    """Python that sets `model` to the built-in model's nn.Module class with
    the TorchScript file's weights (forward hooks do not run on TorchScript
    modules), for a run's PyTorch script; None for other models."""
    d = _models_dir()
    if d is None or getattr(model, "name", None) != "fashion-cnn":  # image runs only
        return None
    mod, cls = _DEFS[model.name]
    return (f"import sys\n\nsys.path.insert(0, {d!r})  # the model's Python definition\n"
            f"from {mod} import {cls}  # noqa: E402\n\n"
            f"model = {cls}()\n"
            f"model.load_state_dict(torch.jit.load(MODEL, map_location=\"cpu\").state_dict())\n")


def tiny_lm_sizes(state):
    """TinyLM's constructor arguments read from its state_dict."""
    vocab, d = state["wte.weight"].shape
    layers = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    return dict(vocab=int(vocab), context=int(state["wpe.weight"].shape[0]), d=int(d), layers=layers)


def net(model):
    """The built-in model (an actmax.Model or its name) as its PyTorch class
    (nn.Module, eval mode, weights from the model's file), so forward hooks
    and submodules work as in any PyTorch code."""
    import torch
    import actmax
    m = actmax.load(model, device="cpu") if isinstance(model, str) else model
    d = _models_dir()
    if d is None or m.name not in _DEFS:
        raise FileNotFoundError(f"no Python definition of {m.name!r} is known (the source tree's models/ folder "
                                f"holds {', '.join(_DEFS)})")
    if d not in sys.path:
        sys.path.insert(0, d)
    mod, cls = _DEFS[m.name]
    klass = getattr(__import__(mod), cls)
    state = torch.jit.load(m.path, map_location="cpu").state_dict()
    out = klass(**tiny_lm_sizes(state)) if m.name == "tiny-lm" else klass()
    # Buffers the class does not keep in its state_dict (an attention mask) are rebuilt by it.
    own = out.state_dict()
    out.load_state_dict({k: v for k, v in state.items() if k in own})
    out.eval()
    for p in out.parameters():
        p.requires_grad_(False)
    return out


def normalize(model):
    """The function from a display image in [0, 1] (B, C, H, W) to what the
    model takes: its value range, then (x - mean) / std, as runs scale theirs."""
    import torch
    lo, hi = model.range
    mean = torch.tensor(model.mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    std = torch.tensor(model.std, dtype=torch.float32).reshape(1, -1, 1, 1)

    def to_model(image):
        x = image if (lo, hi) == (0.0, 1.0) else lo + (hi - lo) * image
        return (x - mean) / std
    return to_model


def neuron(layer, unit):
    """For a TinyLM nn.Module: the function (net, embeds (B, T, D)) -> (B,)
    giving unit `unit` of module `layer` at the last position, the model run
    from input embeddings (its token lookup left out) with a forward hook."""
    def value(net, embeds):
        import torch
        seen = {}
        module = dict(net.named_modules())[layer]
        handle = module.register_forward_hook(lambda mod, inputs, output: seen.setdefault("acts", output))
        try:
            x = embeds + net.wpe(torch.arange(embeds.shape[1]))
            for block in net.blocks:
                x = block(x)
                if "acts" in seen:  # the layers after it do not change it
                    break
        finally:
            handle.remove()
        return seen["acts"][:, -1, unit]
    value.__doc__ = f"{layer}[-1, {unit}] of prompts given as embeddings (B, T, D): (B,)"
    return value


def fashion_mnist(split="test", limit=0):
    """Fashion-MNIST images (N, 1, 28, 28) in [0, 1] as the engine reads them
    (the Debian package dataset-fashion-mnist, or $ACTMAX_FASHION_MNIST)."""
    import gzip
    import torch
    d = os.environ.get("ACTMAX_FASHION_MNIST") or "/usr/share/datasets/fashion-mnist"
    name = {"test": "t10k", "train": "train"}[split] + "-images-idx3-ubyte"
    path = next((os.path.join(d, name + ext) for ext in (".gz", "") if os.path.exists(os.path.join(d, name + ext))),
                None)
    if path is None:
        raise FileNotFoundError(f"no {name}(.gz) in {d}: install Debian's dataset-fashion-mnist")
    with (gzip.open(path) if path.endswith(".gz") else open(path, "rb")) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    if limit:
        raw = raw[:limit]
    return torch.from_numpy(raw.astype(np.float32) / 255.0)


# ---------------------------------------------------------------- exercises (the data file)

def _exercises_path():
    cands = [os.environ.get("ACTMAX_EXERCISES", ""),
             os.path.join(getattr(_paths, "SOURCE_DIR", ""), "share", "actmax", "exercises.json"),
             os.path.join(os.path.dirname(getattr(_paths, "INSTALL_MODELS_DIR", "")), "exercises.json")]
    for c in cands:
        if c and os.path.isfile(c):
            return c
    raise FileNotFoundError("the exercises file was not found (set ACTMAX_EXERCISES to share/actmax/exercises.json)")


def _load():
    with open(_exercises_path(), encoding="utf-8") as f:
        doc = json.load(f)
    return {e["name"]: e for e in doc["exercises"]}


def exercises():
    """[(name, title)] of the exercises in the data file, in order."""
    return [(e["name"], e["title"]) for e in _load().values()]


# ---------------------------------------------------------------- verdicts

class Verdict:
    """The outcome of one check: passed (bool), message, hint; prints as
    PASS or FAIL with the message (and the hint when it failed)."""

    def __init__(self, name, passed, message, hint):
        self.name, self.passed, self.message, self.hint = name, passed, message, hint

    def __bool__(self):
        return self.passed

    def __repr__(self):
        head = f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.message}"
        return head if self.passed else f"{head}\nHint: {self.hint}"


class _Fail(Exception):
    """Stops a grader with a message for the student."""


def _call(fn, *args):
    """fn(*args), or _Fail saying what it raised (and where, in the student's code)."""
    import traceback
    try:
        return fn(*args)
    except NotImplementedError:
        raise _Fail("not written yet: your function raises NotImplementedError") from None
    except Exception as e:  # the student's code: any failure is a message, never a crash
        tb = traceback.extract_tb(e.__traceback__)
        where = f" (line {tb[-1].lineno}: {tb[-1].line})" if len(tb) > 1 and tb[-1].line else ""
        raise _Fail(f"your function raised {type(e).__name__}: {e}{where}") from None


def _tensor(v, what, shape=None, dtype="float32"):
    """v as a detached tensor of that shape and dtype, or _Fail saying why not."""
    import torch
    if not isinstance(v, torch.Tensor):
        raise _Fail(f"{what} should be a torch tensor; your function returned {type(v).__name__}")
    want = getattr(torch, dtype)
    if v.dtype != want:
        raise _Fail(f"{what} has dtype {v.dtype}; give {want} (e.g. .float() or .long())")
    if shape is not None and tuple(v.shape) != tuple(shape):
        raise _Fail(f"{what} has shape {tuple(v.shape)}; expected {tuple(shape)}")
    v = v.detach().cpu()
    if v.is_floating_point() and not torch.isfinite(v).all():
        raise _Fail(f"{what} holds NaN or infinite values")
    return v


_MODELS = {}


def _model(name):
    import actmax
    if name not in _MODELS:
        _MODELS[name] = actmax.load(name, device="cpu")
    return _MODELS[name]


def _net(name):
    key = name + "#net"
    if key not in _MODELS:
        _MODELS[key] = net(_model(name))
    return _MODELS[key]


# ---------------------------------------------------------------- graders (one per kind)

def _pixel_engine(m, ex):
    """The engine's pixel optimum with the exercise's settings (cached per process)."""
    s = ex["settings"]
    key = ("pixel", m.name, ex["objective"], s["steps"], s["lr"], s["seed"])
    if key not in _MODELS:
        _MODELS[key] = m.maximize(ex["objective"], param="pixel", transforms=False, steps=s["steps"], lr=s["lr"],
                                  seed=s["seed"], progress=False)
    return _MODELS[key]


def _grade_pixel_ascent(ex, fn):
    m, s, t = _model(ex["model"]), ex["settings"], ex["thresholds"]
    C, H, W = m.input_shape
    img = _tensor(_call(fn, _net(ex["model"]), normalize(m), m.labels.index(s["label"]), s["steps"], s["lr"]),
                  "the image", (1, C, H, W))
    if img.min() < 0 or img.max() > 1:
        raise _Fail(f"the image has values in [{float(img.min()):.3g}, {float(img.max()):.3g}]; keep it in [0, 1] "
                    "(torch.sigmoid of the parameters)")
    mine = float(m.objective(normalize(m)(img), ex["objective"])[0])
    engine = float(_pixel_engine(m, ex).final[0])
    ratio = mine / engine if engine > 0 else float("inf")
    msg = (f"your image reaches {mine:.4g} on {ex['objective']}, {100 * ratio:.0f}% of the engine's {engine:.4g} "
           f"with the same settings (needs {100 * t['ratio']:.0f}%)")
    return ratio >= t["ratio"], msg


def _grade_fft_param(ex, fn):
    import actmax
    import torch
    s, t = ex["settings"], ex["thresholds"]
    B, C, H, W = s["shape"]
    g = torch.Generator().manual_seed(s["seed"])
    params = torch.randn(B, C, H, W // 2 + 1, 2, generator=g)
    img = _tensor(_call(fn, params.clone(), H, W, s["decay_power"]), "the image", (B, C, H, W))
    engine = actmax.param_image(params, kind="fft", decay_power=s["decay_power"], decorrelate=False, width=W)
    err = float((img - engine).abs().max())
    return err <= t["atol"], (f"your image differs from the engine's render of the same parameters by at most "
                              f"{err:.3g} (needs {t['atol']:g})")


def _shifted(img, dy, dx):
    """img moved by dy, dx pixels, black filling in."""
    import torch.nn.functional as F
    H, W = img.shape[-2:]
    d = max(abs(dy), abs(dx))
    p = F.pad(img, (d, d, d, d))
    return p[..., d - dy:d - dy + H, d - dx:d - dx + W]


def _keep(m, img, objective, shift):
    """Mean objective over all shifts by -shift..shift, over the clean one."""
    import torch
    shifts = [(dy, dx) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)]
    batch = torch.cat([_shifted(img, dy, dx) for dy, dx in shifts])
    vals = m.objective(normalize(m)(batch), objective)
    clean = float(m.objective(normalize(m)(img), objective)[0])
    return clean, float(vals.mean()) / clean if clean > 0 else 0.0


def _grade_robustness(ex, fn):
    m, s, t = _model(ex["model"]), ex["settings"], ex["thresholds"]
    C, H, W = m.input_shape
    img = _tensor(_call(fn, _net(ex["model"]), normalize(m), m.labels.index(s["label"]), s["steps"], s["lr"],
                        s["shift"]), "the image", (1, C, H, W))
    clean, keep = _keep(m, img, ex["objective"], s["shift"])
    _, pixel_keep = _keep(m, _pixel_engine(m, ex).images, ex["objective"], s["shift"])
    msg = (f"shifted by up to {s['shift']} px your image keeps {100 * keep:.0f}% of its {clean:.4g} on "
           f"{ex['objective']} (needs {100 * t['keep']:.0f}%); the engine's pixel optimum keeps {100 * pixel_keep:.0f}%")
    if clean <= 0:
        return False, f"your image scores {clean:.4g} on {ex['objective']}: it should raise it above 0"
    if pixel_keep >= t["keep"]:
        return False, msg + ": the pixel optimum is robust here too, so this model shows nothing; ask your teacher"
    return keep >= t["keep"], msg


def _grade_diversity(ex, fn):
    import torch
    m, s, t = _model(ex["model"]), ex["settings"], ex["thresholds"]
    g = torch.Generator().manual_seed(s["seed"])
    x = normalize(m)(torch.rand((s["batch"],) + tuple(m.input_shape), generator=g))
    acts = m.activations(x, s["layer"])
    mine = _tensor(_call(fn, acts.clone()), "the diversity", ())
    engine = m.diversity(x, s["layer"])
    err = abs(float(mine) - engine)
    ok = err <= t["rtol"] * max(1.0, abs(engine))
    return ok, (f"your term is {float(mine):.6g}, the engine's {engine:.6g} on the same batch at {s['layer']} "
                f"(needs agreement to a relative {t['rtol']:g})")


def _grade_topk_hook(ex, fn):
    import torch
    m, s, t = _model(ex["model"]), ex["settings"], ex["thresholds"]
    x = normalize(m)(fashion_mnist("test", s["limit"]))
    out = _call(fn, _net(ex["model"]), x, s["layer"], s["channel"], s["k"])
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise _Fail(f"return (values, indices) as torch.topk does; your function returned {type(out).__name__}")
    values = _tensor(out[0], "the values", (s["k"],))
    indices = _tensor(out[1], "the indices", (s["k"],), dtype="int64")
    ex_ = m.examples(ex["objective"], k=s["k"], limit=s["limit"], progress=False)
    want_i, want_v = torch.as_tensor(ex_.indices).long(), torch.as_tensor(ex_.values).float()
    same = sorted(indices.tolist()) == sorted(want_i.tolist())
    err = float((values - want_v).abs().max())
    ok = same and err <= t["rtol"] * max(1.0, float(want_v.abs().max()))
    return ok, (f"your top {s['k']} are images {indices.tolist()}, the engine's {want_i.tolist()}; values agree to "
                f"{err:.3g} (needs the same images and a relative {t['rtol']:g})")


def _start_prompt(lm, objective, T, seed):
    """The best of 64 random prompts (a random one usually sits where the neuron is flat)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    cands = torch.randint(0, lm.embeddings().shape[0], (64, T), generator=g)
    return cands[int(lm.objective(cands, objective).argmax())]


def _grade_soft_prompt(ex, fn):
    import torch
    import torch.nn.functional as F
    lm, s, t = _model(ex["model"]), ex["settings"], ex["thresholds"]
    ids = _start_prompt(lm, ex["objective"], s["len"], s["seed"])
    E = lm.embeddings()
    out = _call(fn, _net(ex["model"]), neuron(s["layer"], s["unit"]), ids.clone(), s["steps"], s["lr"])
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise _Fail("return (embeds, ids, retention)")
    embeds = _tensor(out[0], "the embeddings", (s["len"], E.shape[1]))
    proj = _tensor(out[1], "the ids", (s["len"],), dtype="int64")
    try:
        retention = float(out[2])
    except (TypeError, ValueError):
        raise _Fail(f"the retention should be a number; your function returned {type(out[2]).__name__}") from None
    nearest = (F.normalize(embeds, dim=-1) @ F.normalize(E, dim=-1).t()).argmax(-1)
    if not torch.equal(nearest, proj):
        raise _Fail(f"your ids {proj.tolist()} are not the nearest tokens (cosine) of your embeddings, "
                    f"{nearest.tolist()}")
    soft = float(lm.objective(embeds[None], ex["objective"])[0])
    hard = float(lm.objective(proj[None], ex["objective"])[0])
    if soft <= 0:
        return False, f"your soft prompt scores {soft:.4g} on {ex['objective']}: maximize it first"
    engine = hard / soft
    ok = abs(retention - engine) <= t["atol"]
    return ok, (f"soft prompt {soft:.4g}, its nearest tokens {hard:.4g} ({lm.decode(proj)!r}): retention "
                f"{engine:.4g} by the engine, {retention:.4g} by yours (needs agreement to {t['atol']:g})")


def _grade_gcg_step(ex, fn):
    lm, s = _model(ex["model"]), ex["settings"]
    ids = _start_prompt(lm, ex["objective"], s["len"], s["seed"])
    new = _tensor(_call(fn, _net(ex["model"]), neuron(s["layer"], s["unit"]), ids.clone(), s["topk"]),
                  "the prompt", (s["len"],), dtype="int64")
    changed = int((new != ids).sum())
    if changed != 1:
        return False, f"your prompt differs from the start in {changed} positions; a GCG step swaps exactly one"
    before, after = (float(v) for v in lm.objective(__import__("torch").stack([ids, new]), ex["objective"]))
    return after > before, (f"the swap takes {ex['objective']} from {before:.4g} to {after:.4g} "
                            f"({lm.decode(ids)!r} -> {lm.decode(new)!r}; needs an increase)")


_GRADERS = {
    "pixel_ascent": _grade_pixel_ascent,
    "fft_param": _grade_fft_param,
    "robustness": _grade_robustness,
    "diversity": _grade_diversity,
    "topk_hook": _grade_topk_hook,
    "soft_prompt": _grade_soft_prompt,
    "gcg_step": _grade_gcg_step,
}


def check(name, fn):
    """Grades fn, the student's function for exercise `name`, against the
    engine: a Verdict (PASS or FAIL, the message, the hint; true when it
    passed). A failure of any kind (wrong shape or dtype, NaN, a threshold
    not reached, an exception in fn) is a FAIL with its hint, never an
    exception."""
    exs = _load()
    if name not in exs:
        raise KeyError(f"no exercise {name!r}; the exercises are {', '.join(exs)}")
    ex = exs[name]
    hint = " ".join(ex["hint"])
    if not callable(fn):
        v = Verdict(name, False, f"give your function itself, not a {type(fn).__name__}", hint)
    elif ex["kind"] not in _GRADERS:
        raise KeyError(f"exercise {name!r} has kind {ex['kind']!r}; the kinds are {', '.join(_GRADERS)}")
    else:
        try:
            ok, msg = _GRADERS[ex["kind"]](ex, fn)
            v = Verdict(name, bool(ok), msg, hint)
        except _Fail as e:
            v = Verdict(name, False, str(e), hint)
    return v
