"""actmax.course: graded exercises in a PyTorch workflow.

The student writes the PyTorch part (an optimization loop, a
parameterization, a diversity term, a forward hook, a soft prompt, a GCG
step); check(name, fn) runs it and grades it against the engine, with a
pass/fail message and a hint. The exercises are data
(share/actmax/exercises.json: name, model, objective, settings, thresholds,
hint, starter and solution code), so a teacher adds or changes one without
touching C; the notebooks in notebooks/course/ are generated from that file
(python3 -m actmax.course --notebooks DIR).

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
    if d is None or getattr(model, "name", None) not in _DEFS:
        return None
    mod, cls = _DEFS[model.name]
    args = ""
    if model.name == "tiny-lm":
        args = "**tiny_lm_sizes(torch.jit.load(MODEL).state_dict())"
    return (f"import sys\n\nsys.path.insert(0, {d!r})  # the model's Python definition\n"
            f"from {mod} import {cls}  # noqa: E402\n\n"
            + ("from actmax.course import tiny_lm_sizes  # noqa: E402\n\n" if args else "")
            + f"model = {cls}({args})\n"
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
    out.load_state_dict(state)
    out.eval()
    for p in out.parameters():
        p.requires_grad_(False)
    return out
