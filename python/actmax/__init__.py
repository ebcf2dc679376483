"""actmax: activation maximization on TorchScript models, from Python.

    import actmax
    m = actmax.load("fashion-cnn")
    r = m.maximize("conv2[5]", steps=256, batch=4, diversity=1.0, seed=0)
    r.images, r.curve, r.final, r.terms

The engine (libactmax) does every computation; this package translates
arguments with the same keys, defaults and messages as the kernel's magics
(one table, linked from the kernel) and returns torch tensors (numpy arrays
when torch does not import). See docs/python.md.
"""
import math
import os
import sys
import time
from collections import namedtuple

import numpy as np

from . import _actmax
from ._actmax import (Error, FormatError, ModelError, ObjectiveError, LayerError,  # noqa: F401
                      UnsupportedError, DeviceError, EngineError)
from ._display import Live, in_notebook, png_html

__all__ = ["load", "Model", "Layer", "Result", "TokensResult", "Examples", "LogitLens", "engine", "keys",
           "Error", "ModelNotFoundError", "FormatError", "ModelError", "ObjectiveError", "LayerError",
           "UnsupportedError", "DeviceError", "EngineError"]
__version__ = _actmax.VERSION

Layer = namedtuple("Layer", "name type shape params calls")


class ModelNotFoundError(FileNotFoundError, Error):
    """No model by that name or path (the kernel's ModelNotFoundError)."""

# ---------------------------------------------------------------- tensors


def _torch():
    """torch when it imports (Debian's python3-torch shares the engine's
    libtorch), else None; imported on first use so `import actmax` stays quick."""
    global _torch_mod
    if _torch_mod is False:
        try:
            import torch
            _torch_mod = torch
        except ImportError:
            _torch_mod = None
    return _torch_mod


_torch_mod = False


def _out(pair, dtype=np.float32):
    """(bytearray, shape) from the C half -> a torch tensor (numpy without torch), no copy."""
    buf, shape = pair
    a = np.frombuffer(buf, dtype=dtype).reshape(shape)
    t = _torch()
    return t.from_numpy(a) if t is not None else a


def _wrap(a):
    """A numpy array as a torch tensor (sharing memory) when torch imports."""
    t = _torch()
    return t.from_numpy(a) if t is not None else a


def _array(x, what="input"):
    """Any torch tensor, numpy array or nested list -> a C-contiguous numpy
    array: float32 for floating input, int64 (token ids) for integers."""
    torch = sys.modules.get("torch")  # only when the caller already uses it
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach()
        if x.is_floating_point():
            return x.to("cpu", torch.float32).contiguous().numpy()
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"{what} must be a float tensor (or int64 token ids), not {x.dtype}")
        return x.to("cpu", torch.int64).contiguous().numpy()
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{what} must be a float tensor or array (or int64 token ids), not {type(x).__name__}")
    a = np.asarray(x)
    if a.dtype.kind == "f":
        return np.ascontiguousarray(a, dtype=np.float32)
    if a.dtype.kind in "iu":
        return np.ascontiguousarray(a, dtype=np.int64)
    raise TypeError(f"{what} must be a float tensor or array (or int64 token ids), not {a.dtype}")


# ---------------------------------------------------------------- keys (the magics' table)

_KEYS = {}


def keys(magic):
    """The typed keys of a magic ("maximize", "tokens", "examples", "model"),
    from the kernel's own table: {name: (type, default, lo, hi, choices, doc)}."""
    if magic not in _KEYS:
        _KEYS[magic] = {k[0]: k[1:] for k in _actmax.keys(magic)}
    return _KEYS[magic]


def _fmt_num(v):
    return "%.0f" % v if v == math.floor(v) and abs(v) < 1e15 else "%g" % v


def _describe(k):
    typ, _, lo, hi, choices, _ = k
    if typ in ("int", "float"):
        return ("an integer" if typ == "int" else "a number") + f" from {_fmt_num(lo)} to {_fmt_num(hi)}"
    if typ == "bool":
        return "true or false"
    if typ == "string":
        return "text"
    return "one of " + ", ".join(choices.split("|"))


def _edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _closest(name, cands):
    """The kernel's suggestion rule: a prefix counts as one edit; up to half of
    the longer name may be wrong (at least 2 edits)."""
    best, best_d = None, None
    for c in cands:
        d = _edit_distance(name, c)
        if len(name) >= 2 and c.startswith(name) and d > 1:
            d = 1
        if d <= max(2, max(len(name), len(c)) // 2) and (best_d is None or d < best_d):
            best, best_d = c, d
    return best


def _text(v):
    """A Python value as the kernel's user would type it."""
    if isinstance(v, bool) or (type(v).__name__ == "bool_"):
        return "true" if v else "false"
    return str(v)


def _parse(name, k, v):
    """One value checked as the kernel's mg_value_parse does, same messages."""
    typ, _, lo, hi, choices, _ = k
    text = _text(v)

    def bad(what, extra=""):
        return ValueError(f"{name}={text} {what}: expected {_describe(k)}{extra}")

    if typ == "int":
        try:
            if text != text.strip() or not text:
                raise ValueError
            x = int(text, 10)
        except ValueError:
            raise bad("is not valid") from None
        if x < lo or x > hi:
            raise bad("is out of range")
        return x
    if typ == "float":
        x, why = _number(text, lo, hi)
        if why:
            raise bad("is " + why)
        return x
    if typ == "bool":
        t = text.lower()
        if t in ("true", "yes", "on", "1"):
            return True
        if t in ("false", "no", "off", "0"):
            return False
        raise bad("is not valid")
    if typ == "string":
        return text
    opts = choices.split("|")
    if text in opts:
        return text
    for o in opts:
        if o.lower() == text.lower():
            return o
    best = _closest(text, opts)
    raise bad("is not valid", f" (did you mean {best}?)" if best else "")


def _options(magic, kw, drop=()):
    """kw checked against the magic's keys: (values with defaults, names given)."""
    table = keys(magic)
    for key in kw:
        if key not in table or key in drop:
            names = [n for n in table if n not in drop]
            best = _closest(key, names)
            hint = f" (did you mean {best}?)" if best else ""
            raise TypeError(f"{magic}() has no key '{key}'{hint}; valid keys: {', '.join(names)}")
    values = {}
    for name, k in table.items():
        if name in kw:
            values[name] = _parse(name, k, kw[name])
        elif k[1] is not None:
            values[name] = _parse(name, k, k[1])
        else:
            values[name] = None
    return values, set(kw)


# ---------------------------------------------------------------- models


def _model_dirs():
    """The folders searched for built-in names, in the kernel's order."""
    dirs = [os.path.expanduser(p) for p in os.environ.get("ACTMAX_MODEL_PATH", "").split(":") if p]
    dirs.append(os.path.expanduser("~/.local/share/actmax/models"))
    try:
        from . import _paths
        dirs += [_paths.MODELS_DIR, _paths.INSTALL_MODELS_DIR]
    except ImportError:
        pass
    return list(dict.fromkeys(dirs))  # an installed package's two are one


def _resolve(name):
    """A built-in name or a path -> an existing file (the kernel's rules and messages)."""
    if "/" in name or name.endswith(".pt") or name.endswith(".pth"):
        p = os.path.expanduser(name)
        if os.access(p, os.R_OK):
            return p
        try:
            open(p, "rb").close()
            reason = os.strerror(13)
        except OSError as e:
            reason = e.strerror
        raise ModelNotFoundError(f"model file {p} cannot be read ({reason}); give an existing "
                                "TorchScript file or a built-in name such as fashion-cnn")
    dirs = _model_dirs()
    for d in dirs:
        p = os.path.join(d, name + ".pt")
        if os.access(p, os.R_OK):
            return p
    for d in dirs:  # scripts/train-background.sh marks what it still trains
        note = _actmax.background_note(os.path.join(d, name + ".training"))
        if note:
            raise ModelNotFoundError(f"model '{name}' is not ready yet: {note}. Load it again then; "
                                     "the models already built work meanwhile")
    names = []
    for d in dirs:
        try:
            for stem in sorted(f[:-3] for f in os.listdir(d) if f.endswith(".pt")):
                if stem not in names:
                    names.append(stem)
        except OSError:
            pass
    best = _closest(name, names)
    raise ModelNotFoundError(f"no model named '{name}' (looked for {name}.pt in {', '.join(dirs)})."
                            + (f" Did you mean {best}?" if best else "")
                            + f" Available: {', '.join(names) if names else 'none'}; or give a file path")


def _parse_shape(text):
    dims = [p for p in str(text).replace("X", "x").replace(",", "x").split("x")]
    try:
        out = [int(p) for p in dims]
    except ValueError:
        out = []
    if not out or any(v <= 0 or v > 1000000 for v in out):
        raise ValueError(f"input={text} is not a shape: write the input without the batch dimension "
                         "as CxHxW, e.g. input=3x224x224 (or T for text)")
    return out


def _metadata(mean, std, labels, range, dataset):
    """The keyword arguments that set or override the model's actmax.json, as JSON."""
    import json
    meta = {}
    for key, v in (("mean", mean), ("std", std), ("range", range)):
        if v is not None:
            v = v.detach().cpu() if hasattr(v, "detach") else v
            meta[key] = [float(x) for x in np.asarray(v, dtype=np.float64).reshape(-1)]
    if labels is not None:
        if isinstance(labels, str) or not all(isinstance(l, str) for l in labels):
            raise TypeError("labels must be a list of strings, one per output class")
        meta["labels"] = list(labels)
    if dataset is not None:
        meta["dataset"] = str(dataset)
    return json.dumps(meta) if meta else None


def load(model, device="auto", input=None, mean=None, std=None, labels=None, range=None, dataset=None):
    """Loads a model: a built-in name ("fashion-cnn", "tiny-lm"), a TorchScript
    file, or a torch.jit.ScriptModule (scripted or traced; loaded from memory).
    input: the input shape without batch ("3x224x224" or (3, 224, 224)), needed
    when the model carries no metadata; mean, std, labels, range, dataset set
    or override its metadata (actmax.json)."""
    torch = sys.modules.get("torch")
    source, name, path = None, None, None
    if torch is not None and isinstance(model, torch.nn.Module):
        if not isinstance(model, torch.jit.ScriptModule):
            raise TypeError(
                f"actmax.load takes a TorchScript model; {type(model).__name__} is a plain nn.Module. "
                "Script or trace it first: actmax.load(torch.jit.script(model)) or "
                "actmax.load(torch.jit.trace(model.eval(), example_input))")
        import io
        buf = io.BytesIO()
        torch.jit.save(model, buf)
        source, name, path = buf.getvalue(), type(model).__name__, "(memory)"
    elif not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"actmax.load takes a model name, a file path or a torch.jit.ScriptModule, "
                        f"not {type(model).__name__}")
    kw = {"device": device}
    if input is not None:
        kw["input"] = input if isinstance(input, str) else "x".join(str(int(v)) for v in input)
    values, _ = _options("model", kw)
    shape = _parse_shape(values["input"]) if values["input"] else None
    meta = _metadata(mean, std, labels, range, dataset)
    if source is None:
        name = os.fspath(model)
        source = path = _resolve(name)
    # The engine resolves device="auto" (CUDA when libtorch sees a GPU).
    return Model(_actmax.Model(source, values["device"], shape, meta), name, path)


class Model:
    """A loaded model. Image models: layers, maximize, objective, activations.
    Text models also: tokens, encode, decode, examples."""

    def __init__(self, core, name, path):
        self._m = core
        self.name = name
        self.path = path
        info = core.info()
        self.kind = info["kind"]
        self.device = info["device"]
        self.input_shape = tuple(info["input"])
        self.labels = info["labels"]
        self.mean, self.std, self.range = info["mean"], info["std"], info["range"]
        self.dataset = info["dataset"]
        self.note = info["note"]
        self.params = info["params"]
        self.tokenizer_info = info["tokenizer"]
        self._layers = None

    def __repr__(self):
        return (f"<actmax.Model {self.name}: {self.kind}, input {self.input_shape}, "
                f"{len(self.layers())} layers, on {self.device}>")

    def summary(self):
        """The rows the kernel's %model shows: [(field, value)]."""
        shown = 12  # the kernel's kShownLabels: a long list would hide the other rows
        labels = ", ".join(self.labels[:shown]) if self.labels else "(none)"
        if len(self.labels) > shown:
            labels += f", ... ({len(self.labels)} labels in all)"
        if self.kind != "text":
            tok = "(none: an image model)"
        else:
            tok = self.tokenizer_info or \
                "(none: %tokens and %examples need one in the model's actmax.json)"
        return [("model", self.name), ("file", self.path), ("kind", self.kind),
                ("input", "(" + ", ".join(str(d) for d in self.input_shape) + ")"),
                ("layers", str(len(self.layers()))), ("parameters", str(self.params)),
                ("labels", labels),
                ("dataset", self.dataset or "(none)"), ("device", self.device),
                ("tokenizer", tok),
                ("note", self.note or "metadata complete; no defaults taken")]

    def _repr_html_(self):
        return _actmax.table(None, [list(r) for r in self.summary()], None, 0.0, 1.0, None)[0]

    def close(self):
        """Frees the engine's model now (it is freed with the object otherwise)."""
        self._m.close()

    # ------------------------------------------------------------ layers and taps

    def layers(self):
        """[Layer(name, type, shape, params, calls)] in execution order."""
        if self._layers is None:
            self._layers = [Layer(n, t, s, p, c) for n, t, s, p, c in self._m.layers()]
        return list(self._layers)

    def _input(self, x, what="x"):
        a = _array(x, what)
        kind = _actmax.INPUT_FLOAT
        if self.kind == "text" and a.dtype == np.float32:
            kind = _actmax.INPUT_EMBEDS
        return a, kind

    def activations(self, x, layers, grad=False):
        """The outputs of layers (a name or a list) on input x, batch first:
        a tensor, or a list of them. grad=True also returns the gradient of the
        sum of all of them with respect to x (float inputs): (acts, grad)."""
        one = isinstance(layers, str)
        names = [layers] if one else list(layers)
        a, kind = self._input(x)
        outs, g = self._m.tap(a, kind, names, bool(grad))
        acts = [_out(o) for o in outs]
        acts = acts[0] if one else acts
        return (acts, _out(g)) if grad else acts

    def objective(self, x, objective, positions=False):
        """The objective's value on each item of the batch x, no gradients: (B,).
        Text models take token ids (B, T); positions=True gives (B, T)."""
        a, kind = self._input(x)
        return _out(self._m.objective(a, kind, objective, bool(positions)))

    def diversity(self, x, layer):
        """Lucid's diversity term of the batch x at layer, as a run's
        diversity(layer) computes it (without its weight): a float."""
        a, kind = self._input(x)
        return self._m.diversity(a, kind, layer)

    def embeddings(self):
        """Text models: the token embedding matrix (vocab, D)."""
        return _out(self._m.embeddings())

    def objective_each(self, objective):
        """The objective once per index of its one slice: "conv2[0:4]" ->
        ["conv2[0]", "conv2[1]", "conv2[2]", "conv2[3]"]."""
        return self._m.objective_each(objective)

    def logit_lens(self, layer, neuron, k=10):
        """Text models: MLP neuron `neuron` of `layer` (e.g. "blocks.1.mlp.act")
        read through the unembedding (W_out[:, n] @ W_U): a LogitLens with the k
        highest and lowest tokens (ids, values, text) and every token's value."""
        ti, tv, bi, bv, al = self._m.logit_lens(layer, int(neuron), int(k))
        return LogitLens(self, layer, int(neuron), _out(ti, np.int64), _out(tv), _out(bi, np.int64),
                         _out(bv), _out(al))

    def neuron(self, objective, progress=None, **kw):
        """A dashboard of one unit: optimized inputs beside dataset examples,
        the activation distribution and, for text, the logit lens. Keys are
        those of %neuron (actmax.keys("neuron")). Returns a Neuron."""
        from .neuron import neuron
        return neuron(self, objective, progress, **kw)

    # ------------------------------------------------------------ image runs

    def maximize(self, objective, progress=None, **kw):
        """Optimizes images that maximize an objective (a string), or one image
        per objective of a list in one batch; each=True sweeps the one slice of
        the objective, one image per unit ("conv2[0:16]" -> conv2[0] ...
        conv2[15], as %maximize conv2[0:16] each). Keys and defaults are those of
        %maximize (actmax.keys("maximize")); init= may also be a tensor
        (C, H, W) or (B, C, H, W) in the model's value range. Ctrl-C stops the
        run and returns the best result so far (r.interrupted)."""
        init = kw.pop("init", None)
        thresholds = kw.pop("thresholds", None)
        if kw.pop("each", False):
            if not isinstance(objective, str):
                raise ValueError("each=True sweeps the slice of one objective (a string, e.g. \"conv2[0:16]\"), "
                                 "not a list")
            objective = self._m.objective_each(objective)
        if init is not None and not isinstance(init, str):
            init_arr, init_text = _array(init, "init"), None
        else:
            init_arr, init_text = None, init
        if init_text is not None:
            kw["init"] = init_text
        if thresholds is not None and not isinstance(thresholds, str):
            thresholds = ",".join(str(int(t)) for t in thresholds)
        if thresholds is not None:
            kw["thresholds"] = thresholds
        v, given = _options("maximize", kw)
        objectives = [objective] if isinstance(objective, str) else list(objective)
        if not objectives or not all(isinstance(o, str) and o.strip() for o in objectives):
            raise ValueError("maximize needs an objective, e.g. m.maximize(\"conv2[5]\")")
        if v["scale_min"] > v["scale_max"]:
            raise ValueError(f"scale_min={v['scale_min']:g} is above scale_max={v['scale_max']:g}: "
                             "give scale_min <= scale_max")
        if self.kind != "image" or len(self.input_shape) != 3:
            raise UnsupportedError(
                f"maximize optimizes images; {self.name} is a {self.kind} model: optimize a prompt "
                "with tokens(OBJECTIVE), e.g. lm.tokens(\"blocks.2.mlp.act[-1, 123]\", len=8)")
        batch = v["batch"]
        if len(objectives) > 1:
            if "batch" in given and batch != len(objectives):
                raise ValueError(f"batch={batch} with {len(objectives)} objectives: a list gives one "
                                 "image per objective; leave batch out")
            batch = len(objectives)
        engine_objs = list(objectives)
        lr = _parse_lr(v["lr"])
        div, div_layer = _parse_diversity(v["diversity"])
        if div != 0 and len(objectives) > 1:
            raise ValueError("diversity compares the images of one objective: give one objective "
                             "with batch >= 2")
        if div != 0 and batch < 2:
            raise ObjectiveError(f"diversity={v['diversity']} compares the images of a batch with each "
                                 f"other: it needs batch=2 or more, got batch={batch}")
        maco = v["param"] == "maco"
        for key in _MACO_KEYS:
            if key in given and not maco:
                raise ValueError(f"{key}= acts on the maco parameterization only: add param=maco, "
                                 f"or leave {key} out")
        if maco and v["crop_min"] > v["crop_max"]:
            raise ValueError(f"crop_min={v['crop_min']:g} is above crop_max={v['crop_max']:g}: the "
                             "crops shrink from crop_max to crop_min; give crop_min <= crop_max")
        steps = v["steps"]
        thr = None
        if v["thresholds"]:
            thr = _parse_thresholds(v["thresholds"], steps)
        C, H, W = self.input_shape
        if v["size"] is not None:
            H = W = v["size"]
        lo, hi = self.range
        init_buf = None
        init_name = v["init"]
        if init_arr is None and init_name.startswith("dataset:"):
            init_arr = self._dataset_item(init_name, (C, H, W))
            init_arr = lo + (hi - lo) * init_arr
        if init_arr is not None:
            if init_arr.ndim == 3:
                init_arr = np.broadcast_to(init_arr, (batch,) + init_arr.shape)
            if init_arr.shape != (batch, C, H, W):
                raise ValueError(f"init has shape {tuple(init_arr.shape)}; give (C, H, W) or (B, C, H, W) "
                                 f"= {(batch, C, H, W)} in the model's value range [{lo:g}, {hi:g}]")
            init_buf = np.ascontiguousarray((init_arr - lo) / (hi - lo), dtype=np.float32)
        elif init_name not in ("", "noise"):
            raise ValueError(f"init={init_name}: give init=\"noise\", init=\"dataset:INDEX\" or the "
                             "initial image as a tensor (C, H, W) in the model's value range (read a "
                             "PNG with torchvision.io.read_image(path) / 255)")
        if v["accent"] > 0 and init_buf is None:
            raise ValueError(f"accent={v['accent']:g} keeps the image close to a start image: give one "
                             "with init=dataset:INDEX (an item of the model's dataset) or init=FILE.png")
        opts = dict(batch=batch, steps=steps, lr=lr, seed=v["seed"],
                    optimizer=_OPTIMIZERS[v["optimizer"]], momentum=v["momentum"],
                    param=_PARAMS[v["param"]], decorrelate=int(v["decorrelate"]),
                    decay_power=v["decay_power"], transforms=int(v["transforms"]), pad=v["pad"],
                    jitter=v["jitter"], scale_min=v["scale_min"], scale_max=v["scale_max"],
                    rotate_deg=v["rotate"], l1=v["l1"], l2=v["l2"], tv=v["tv"], blur=v["blur"],
                    init_std=v["init_std"], height=H if v["size"] is not None else 0,
                    width=W if v["size"] is not None else 0, accent=v["accent"], diversity=div,
                    diversity_layer=div_layer)
        for key in _MACO_KEYS:
            if key in given:
                opts[key] = v[key]
        live_label = " | ".join(objectives) + ("   (live objective: mean over random crops with noise)"
                                               if maco else "   (live objective: on transformed copies)")
        live = Live(live_label, steps, progress)
        every = v["image_every"] or (steps // 16 if steps >= 64 else 4)
        opts["image_every"] = every if live.images else 0
        live.start()
        try:
            d = self._m.maximize(engine_objs, opts, init_buf, thr, live.run_step if live.on else None,
                                 v["updates_per_s"])
        finally:
            live.close()
        options = ("steps=%d lr=%s batch=%d seed=%d optimizer=%s param=%s transforms=%s diversity=%s"
                   % (steps, v["lr"], batch, v["seed"], v["optimizer"], v["param"],
                      "on" if v["transforms"] else "off", v["diversity"]))
        if v["accent"] > 0:
            options += " init=%s accent=%g" % (init_name if init_arr is None or init_name else "tensor",
                                               v["accent"])
        res = Result(self, objectives, engine_objs, d, options, thr or [])
        res._code_args = (engine_objs, {k: v for k, v in opts.items() if k != "image_every"}, init_buf)
        return res

    def _code(self, objectives, opts, init):
        """The run of these engine options as a PyTorch script (am_run_code)."""
        from . import course
        return self._m.code(objectives, opts, init, self.path or "", course.model_code(self))

    def _dataset_item(self, arg, chw):
        """init=dataset:INDEX: item INDEX of the test split of the model's
        dataset (the split examples() ranks by default), in [0, 1]."""
        idx = arg[len("dataset:"):]
        if not idx.isdigit():
            raise ValueError(f"init={arg}: give init=dataset:INDEX with INDEX a whole number >= 0 "
                             "(an index examples() shows)")
        if not self.dataset:
            raise ValueError(f"init={arg}: {self.name} names no dataset (its actmax.json has no "
                             "\"dataset\"); give the start image as a tensor (C, H, W)")
        size, shape, item = _actmax.dataset_item(self.dataset, "test", int(idx))
        if item is None:
            raise ValueError(f"init={arg}: the {self.dataset} test split has {size} items: give an "
                             f"index from 0 to {size - 1}")
        if tuple(shape) != tuple(chw):
            raise ValueError(f"init={arg}: {self.dataset} items are {'x'.join(map(str, shape))}, the "
                             f"image is {'x'.join(map(str, chw))}: leave size= out")
        return np.frombuffer(item[0], np.float32).reshape(item[1])

    # ------------------------------------------------------------ text

    def encode(self, text):
        """Token ids of text (str or bytes) under the model's tokenizer: int64 (T,)."""
        raw = text.encode() if isinstance(text, str) else bytes(text)
        return _out(self._m.encode(raw), np.int64)

    def decode(self, ids, errors="replace"):
        """The text of token ids (str; bytes that are not UTF-8 replaced)."""
        a = np.ascontiguousarray(_array(ids, "ids").reshape(-1), dtype=np.int64)
        return self._m.decode(a).decode("utf-8", errors)

    def token_text(self, i):
        """One token as printable text (\\n, \\xNN escapes)."""
        return self._m.token_text(int(i))

    def tokenizer_json(self):
        """The tokenizer the model carries (its tokenizer.json, bytes), or None."""
        return self._m.tokenizer_bytes()

    def tokens(self, objective, progress=None, **kw):
        """Searches for the prompt that maximizes an objective of a text model.
        Keys and defaults are those of %tokens (actmax.keys("tokens"))."""
        v, given = _options("tokens", kw)
        if not isinstance(objective, str) or not objective.strip():
            raise ValueError("tokens needs an objective, e.g. lm.tokens(\"blocks.2.mlp.act[-1, 123]\", len=8)")
        if self.kind != "text":
            raise UnsupportedError(
                f"tokens optimizes prompts of a text model; {self.name} is an {self.kind} model: use "
                "maximize(OBJECTIVE) for images, or load a text model, e.g. actmax.load(\"tiny-lm\")")
        context = self.input_shape[-1] if self.input_shape else 0
        n = v["len"]
        if n < 1 or (context > 0 and n > context):
            raise ValueError(f"len={n}: give a prompt length between 1 and the model's context, "
                             f"{context} tokens")
        init = None
        if v["init"]:
            init = np.ascontiguousarray(np.asarray(self.encode(v["init"])), dtype=np.int64)
            if init.shape[0] != n:
                raise ValueError(f"init=\"{v['init']}\" encodes to {init.shape[0]} tokens; give a text "
                                 f"of exactly len={n} tokens")
        methods = {"soft": 0, "pez": 1, "gcg": 2, "sweep": 3}
        opts = dict(method=methods[v["method"]], len=n, steps=v["steps"], lr=v["lr"],
                    distance=1 if v["metric"] == "l2" else 0, snap=v["snap"], fluency=v["fluency"],
                    topk=v["topk"], nearest=v["nearest"], position=v["position"], seed=v["seed"],
                    restarts=v["restarts"], retokenize=int(v["retokenize"]),
                    attribution=int(v["attribution"]))
        if "batch" in given:
            opts["batch"] = v["batch"]
        total = (1 if v["method"] == "sweep" else v["steps"]) * v["restarts"]
        live = Live(objective, total, progress, images=False)
        live.start()
        try:
            d = self._m.tokens(objective, opts, init, live.text_step(self) if live.on else None,
                               v["updates_per_s"])
        finally:
            live.close()
        return TokensResult(self, objective, d, v)

    def examples(self, objective, progress=None, bins=0, quantiles=0, per_band=0, band_percentiles=None, **kw):
        """The top-k items of a dataset by an objective, best first, and the
        distribution of the objective over it: for image models the images of
        the model's dataset (split=, limit=) or of data=
        the user's (a folder of PNG files, one subfolder per class for labels,
        a .npy or .pt file), for text models every token of
        the held-out corpus or of path= any text file, each scored with at
        least context= tokens before it (an example is the window around its
        peak token). bins= (histogram, 0: 50), quantiles= (bands, 0: none),
        per_band= (0: 3) and band_percentiles= (quantiles + 1 edges, None:
        equally spaced) shape the distribution. Other keys and defaults are
        those of %examples (actmax.keys("examples"))."""
        v, given = _options("examples", kw)
        if not isinstance(objective, str) or not objective.strip():
            raise ValueError("examples needs an objective, e.g. m.examples(\"conv2[5]\", k=16)")
        dataset, path, split = None, None, v["split"]
        if v["data"] and self.kind == "text":
            raise ValueError("data= names images for an image model; a text model reads a text file: path=FILE")
        if self.kind == "text":
            path = v["path"] or _corpus_path(self.path)
            if not path:
                raise FileNotFoundError("examples on a text model reads a corpus: the held-out fortunes "
                                        "file (share/actmax/data/fortunes-heldout.txt) was not found; give "
                                        "path=FILE (any text file)")
            # A file of the user's is read as one text; the built-in corpus keeps its layout.
            dataset = "text" if v["path"] else "fortunes"
            split = "heldout"
        elif v["data"]:
            dataset = v["data"]  # a path the engine reads as images
        elif v["path"]:
            path = v["path"]
        live = Live(objective, 1, progress, images=False)
        live.start()
        try:
            d = self._m.examples(objective, dataset, path, split, v["window"], 0, v["context"], v["k"],
                                 v["limit"], v["batch"] if "batch" in given else 0, int(bins), int(quantiles),
                                 int(per_band),
                                 None if band_percentiles is None else [float(p) for p in band_percentiles],
                                 live.scan_step if live.on else None, v["updates_per_s"])
        finally:
            live.close()
        return Examples(self, objective, d, split, data=v["data"] or None)


def _corpus_path(model_path):
    env = os.environ.get("ACTMAX_FORTUNES_HELDOUT")
    if env:
        return env
    cands = [os.path.join(os.path.dirname(model_path), "..", "data", "fortunes-heldout.txt")]
    try:
        from . import _paths
        cands += [os.path.join(d, "..", "data", "fortunes-heldout.txt")
                  for d in (_paths.MODELS_DIR, _paths.INSTALL_MODELS_DIR)]
    except ImportError:
        pass
    for p in cands:
        if os.access(p, os.R_OK):
            return os.path.normpath(p)
    return None


_OPTIMIZERS = {"auto": -1, "adam": 0, "sgd": 1, "nadam": 2}  # AM_OPT_*
_PARAMS = {"fft": 0, "pixel": 1, "maco": 2}  # AM_PARAM_*
_MACO_KEYS = ("crops", "crop_max", "crop_min", "noise", "contrast")


def _number(text, lo, hi):
    """A whole-text number in [lo, hi], as the kernel reads one: the value,
    or the reason it is not one ("not valid", "out of range")."""
    try:
        if text != text.strip() or not text:
            raise ValueError
        x = float(text)
        if not math.isfinite(x):
            raise ValueError
    except ValueError:
        return None, "not valid"
    return (x, None) if lo <= x <= hi else (None, "out of range")


def _parse_lr(text):
    """lr=auto (0: the engine's rule for the optimizer) or a number."""
    if text == "auto":
        return 0.0
    x, why = _number(text, 1e-6, 100)
    if why:
        raise ValueError(f"lr={text} is {why}: expected auto or a number from 1e-06 to 100")
    return x


def _parse_diversity(text):
    """diversity=WEIGHT or LAYER:WEIGHT (the weight after the last ':', since
    a layer name may hold one): (weight, layer or None)."""
    layer, sep, num = text.rpartition(":")
    x, why = _number(num, 0, 1e6)
    if why or (sep and not layer):
        raise ValueError(f"diversity={text} is {why or 'not valid'}: expected a weight from 0 to "
                         "1e+06, or LAYER:WEIGHT, e.g. diversity=conv1:1.0")
    return x, (layer or None)


def _parse_thresholds(text, steps):
    out = []
    p = text.replace(" ", ",")
    for part in [s for s in p.split(",") if s]:
        try:
            x = int(part)
        except ValueError:
            x = 0
        if x < 1 or x > steps or (out and x <= out[-1]):
            raise ValueError(f"thresholds={text}: give ascending steps between 1 and steps={steps} "
                             f"separated by commas, e.g. thresholds=16,64,{steps}")
        out.append(x)
    return out


# ---------------------------------------------------------------- results


class Result:
    """An image run: images (B, C, H, W) in the model's value range;
    activation (B,), each image's own unit activation on the clean final
    image (the number to quote: never the diversity term); final (B,), the
    objective as written on the clean image; curve (S,), the objective summed
    over the batch at each step, measured on transformed copies (Lucid's
    transforms, or MACO's crops with noise), so it differs from activation;
    curves {name: (S,)}, the objective and each term (every image's
    objective, the diversity term, accent and each penalty) as separate
    curves (terms is the same without the total); transparency (B, C, H, W)
    or None, |d loss / d image| summed over the steps (where the unit looks);
    diversity_layer ("" without diversity); note (what the engine chose by
    itself, e.g. MACO's magnitude); snapshots [(step, images)], steps,
    seconds, interrupted. Shows inline in Jupyter."""

    def __init__(self, model, objectives, engine_objectives, d, options, thresholds):
        self.objective = objectives[0] if len(objectives) == 1 else objectives
        self.engine_objective = engine_objectives[0] if len(engine_objectives) == 1 else engine_objectives
        self.options = options
        self.thresholds = thresholds
        lo, hi = model.range
        self._display = np.frombuffer(d["images"][0], np.float32).reshape(d["images"][1])
        images = self._display if (lo, hi) == (0.0, 1.0) else (lo + (hi - lo) * self._display).astype(np.float32)
        t = _torch()
        self.images = t.from_numpy(images) if t is not None else images
        self.curve = _out(d["curve"])
        self.final = _out(d["final"])
        self.activation = _out(d["activation"])
        self.terms = {name: _out(c) for name, c in d["terms"]}
        self.curves = {"objective": self.curve, **self.terms}
        self.transparency = _out(d["transparency"]) if d["transparency"] is not None else None
        tm = d["transparency_map"]  # as shown (am_run_transparency_map)
        self._transparency_map = None if tm is None else np.frombuffer(tm[0], np.float32).reshape(tm[1])
        self.diversity_layer = d["diversity_layer"]
        self.note = d["note"]
        self.snapshots = [(step, _out(img)) for step, img in d["snapshots"]]
        self.steps = d["steps"]
        self.seconds = d["seconds"]
        self.interrupted = bool(d["interrupted"] or d["cancelled"])
        self._model, self._code, self._code_args = model, None, None

    def _figures(self):
        act = " ".join("%.4g" % float(v) for v in list(self.activation)[:16])
        live = float(self.curve[-1]) if len(self.curve) else float("nan")
        text = (f"activation on the clean image {act}; live objective at the last step, on "
                f"transformed copies, {live:.4g}")
        if self.diversity_layer:
            text += f"; diversity on layer {self.diversity_layer}"
        return text

    def __repr__(self):
        b, c, h, w = self._display.shape
        return (f"<actmax.Result {self.objective}{'  (interrupted: best result so far)' if self.interrupted else ''}"
                f": {self._figures()}; {self.steps} steps, {self.seconds:.2f} s, image {c}x{h}x{w} x{b}>")

    @property
    def code(self):
        """The run as a runnable PyTorch script (str): the same parameterization,
        transforms with the same random numbers, regularizers, optimizer and
        seed; it prints the final activation of each image."""
        if self._code is None:
            self._code = self._model._code(*self._code_args)
        return self._code

    def image_png(self):
        """The result as the kernel draws it: one upscaled image, or a grid
        captioned with each image's own activation on the clean image."""
        b = self._display.shape[0]
        if b == 1:
            caps = None
        elif isinstance(self.objective, list) and len(self.objective) == b:
            caps = ["%s activation %.4g" % (o, float(self.activation[i])) for i, o in enumerate(self.objective)]
        else:
            caps = ["#%d activation %.4g" % (i, float(self.activation[i])) for i in range(b)]
        return _actmax.images_png(self._display, caps, None, _actmax.RENDER_MIN_PX)[0]

    def transparency_png(self):
        """Each image beside its transparency map as the engine renders it for
        display (am_run_transparency_map), as the kernel shows a MACO run; None
        without a map."""
        if self._transparency_map is None:
            return None
        grey = self._transparency_map
        b = self._display.shape[0]
        pix = np.ascontiguousarray(np.stack([self._display, grey], 1).reshape((2 * b,) + self._display.shape[1:]),
                                   np.float32)
        caps = [c for i in range(b) for c in ("#%d" % i, "#%d transparency" % i)]
        return _actmax.images_png(pix, caps, None, 128)[0]

    def plot_png(self, title=None):
        """The objective and each term as separate curves, as the kernel plots them."""
        series = [("objective", np.ascontiguousarray(np.asarray(self.curve), np.float32))]
        if len(self.terms) > 1:
            series += [(n, np.ascontiguousarray(np.asarray(c), np.float32)) for n, c in self.terms.items()]
        obj = self.objective if isinstance(self.objective, str) else " | ".join(self.objective)
        return _actmax.plot_png(series, title if title is not None else obj, "on transformed copies",
                                [float(t) for t in self.thresholds],
                                ["step %d" % t for t in self.thresholds], 640, 360)[0]

    def _repr_png_(self):
        return self.image_png()

    def _repr_html_(self):
        head = (f"<b>{_html(str(self.objective))}</b>: {_html(self._figures())} after {self.steps} "
                f"steps in {self.seconds:.2f} s{' (interrupted: best result so far)' if self.interrupted else ''}")
        tp = self.transparency_png() if "param=maco" in self.options else None
        note = f"<br><small>{_html(self.note)}</small>" if self.note else ""
        return (f"<div>{head}<br>{png_html(self.image_png())}"
                + (f"<br>{png_html(tp)}" if tp else "")
                + f"<br>{png_html(self.plot_png())}<br><small>{_html(self.options)}</small>{note}</div>")


def _html(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


LensToken = namedtuple("LensToken", "id text value")


class LogitLens:
    """A neuron's output direction through the unembedding: top and bottom
    (lists of LensToken, k each), values (vocab,)."""

    def __init__(self, model, layer, neuron, ti, tv, bi, bv, values):
        self.layer, self.neuron = layer, neuron

        def text(i):
            try:
                return model.token_text(i)
            except UnsupportedError:  # no tokenizer: the id stands for the token
                return "#%d" % i
        self.top = [LensToken(int(i), text(int(i)), float(v)) for i, v in zip(ti, tv)]
        self.bottom = [LensToken(int(i), text(int(i)), float(v)) for i, v in zip(bi, bv)]
        self.values = values

    def __repr__(self):
        top = ", ".join("%r %.3g" % (t.text, t.value) for t in self.top[:5])
        return f"<actmax.LogitLens {self.layer}[{self.neuron}]: top {top}>"

    def _repr_html_(self):
        def rows(ts):
            return "".join(f"<tr><td><code>{_html(t.text)}</code></td><td>{t.value:+.3f}</td></tr>" for t in ts)
        return (f"<div><b>logit lens of {_html(self.layer)}[{self.neuron}]</b><table><tr><th>top</th>"
                f"<th></th></tr>{rows(self.top)}<tr><th>bottom</th><th></th></tr>{rows(self.bottom)}"
                f"</table></div>")


class TokensResult:
    """A prompt search: ids (T,), text, activation, xent, curve (S,), table
    (one row per position: token, id, nearest tokens, attribution)."""

    def __init__(self, model, objective, d, v):
        self.objective = objective
        self.method = v["method"]
        self.ids = _out(d["ids"], np.int64)
        self.text = d["text"].decode("utf-8", "replace")
        self.roundtrip = d["roundtrip"]
        self.activation = d["activation"]
        self.xent = d["xent"]
        self.soft_activation = d["soft_activation"]
        self.retention = d["retention"]
        self.curve = _out(d["curve"])
        self.xent_curve = _out(d["xent_curve"])
        self.embeds = _out(d["embeds"]) if d["embeds"] is not None else None
        self.nearest = None
        if d["nearest"] is not None:
            self.nearest = (_out(d["nearest"][0], np.int64), _out(d["nearest"][1]))
        self.attribution = None
        if d["attribution"] is not None:
            self.attribution = (_out(d["attribution"][0]), _out(d["attribution"][1], np.int64))
        self.sweep = _out(d["sweep"][0]) if d["sweep"] is not None else None
        # The objective of each step's discrete prompt, and the best one seen
        # (soft's result is its last projection, which may be worse).
        self.projected_curve = _out(d["projected_curve"])
        self.best_ids = _out(d["best_ids"], np.int64)
        self.best_activation = d["best_activation"]
        self.best_step = d["best_step"]
        self.note = d["note"]  # what the engine chose by itself, e.g. a sampled attribution
        self.steps = d["steps"]
        self.seconds = d["seconds"]
        self.interrupted = bool(d["interrupted"] or d["cancelled"])
        self.table = []
        ids = np.asarray(self.ids)
        for t, i in enumerate(ids):
            row = {"position": t, "id": int(i), "token": model.token_text(int(i))}
            if self.nearest is not None:
                nid, nval = np.asarray(self.nearest[0]), np.asarray(self.nearest[1])
                row["nearest"] = [(model.token_text(int(a)), float(b)) for a, b in zip(nid[t], nval[t])]
            if self.attribution is not None:
                row["drop"] = float(self.attribution[0][t])
                row["alt"] = model.token_text(int(self.attribution[1][t]))
            self.table.append(row)

    def __repr__(self):
        return (f"<actmax.TokensResult {self.objective}: {self.text!r} activation {self.activation:.4g}, "
                f"xent {self.xent:.3g}; {self.steps} steps, {self.seconds:.2f} s"
                f"{' (interrupted: best result so far)' if self.interrupted else ''}>")

    def _table(self):
        header = ["pos", "token", "id"]
        if self.attribution is not None:
            header += ["drop", "best swap"]
        if self.nearest is not None:
            header += ["nearest"]
        rows = []
        for r in self.table:
            row = [str(r["position"]), r["token"], str(r["id"])]
            if self.attribution is not None:
                row += ["%.4g" % r["drop"], r["alt"]]
            if self.nearest is not None:
                row += ["  ".join("%s %.3f" % (tok, val) for tok, val in r["nearest"])]
            rows.append(row)
        cap = f"{self.objective} = {self.activation:.4g} (xent {self.xent:.3g} nats)"
        if self.note:
            cap += f"; {self.note}"
        return _actmax.table(header, rows, None, 0.0, 1.0, cap)

    def _repr_html_(self):
        return self._table()[0]


class Examples:
    """The top-k dataset items of an objective, best first: values (k,),
    indices (k,), and for images images (k, C, H, W) in the model's value range,
    labels (k,) and label_names; for text ids and acts (per token) per item,
    peaks (the position of each value in its window), texts, and window and
    context (each token scored with at least context tokens before it).
    scanned (items, or tokens for text), max (over every scored value),
    interrupted. The distribution: histogram ((bins,) counts, lo, hi), sampled,
    firing_rate, bands ([(lo, hi, Examples of the band)]) and class_means
    (per label, None for text); forwards (0 when the layer's activations came
    from the activation cache)."""

    def __init__(self, model, objective, d, split, items=None, data=None):
        self.objective = objective
        self.kind = d["kind"]
        self.split = None if data else split
        self.data = data  # the images' path when given as data=
        items = d["items"] if items is None else items
        self.values = _wrap(np.array([it[1] for it in items], np.float32))
        self.indices = _wrap(np.array([it[0] for it in items], np.int64))
        self.peaks = _wrap(np.array([it[7] for it in items], np.int64))
        self.scanned = d["scanned"]
        self.max = d["max"]
        self.interrupted = bool(d["interrupted"] or d["cancelled"])
        self._range = model.range
        h = d.get("histogram")
        self.histogram = None if h is None else (_wrap(np.array(h[0], np.int64)), h[1], h[2])
        self.sampled = bool(d.get("sampled"))
        self.firing_rate = d.get("firing_rate")
        cm = d.get("class_means")
        self.class_means = None if cm is None else _out(cm)
        self.window, self.context = d.get("window") or (None, None)
        self.forwards = d.get("forwards")
        self.bands = [] if items is not d["items"] else [
            (lo, hi, Examples(model, objective, d, split, its, data)) for lo, hi, its in d.get("bands", [])]
        if self.kind == "image":
            self.labels = _wrap(np.array([it[2] for it in items], np.int64))
            self.label_names = [it[3] for it in items]
            imgs = [np.frombuffer(it[4][0], np.float32).reshape(it[4][1]) for it in items]
            arr = np.stack(imgs) if imgs else np.zeros((0,) + tuple(model.input_shape), np.float32)
            self.images = _wrap(arr)
            self.ids = self.acts = self.texts = None
        else:
            self.images = self.labels = None
            self.label_names = None
            self.ids = [_out(it[5], np.int64) for it in items]
            self.acts = [_out(it[6]) for it in items]
            self.texts = [model.decode(i) for i in self.ids]
            self._peak_texts = [(model.decode(i[:p]), model.decode(i[p:p + 1]), model.decode(i[p + 1:]))
                                for i, p in zip(self.ids, (it[7] for it in items))]

    def __len__(self):
        return len(self.indices)

    def __repr__(self):
        return (f"<actmax.Examples {self.objective}: top {len(self)} of {self.scanned} {self.kind} items, "
                f"max {self.max:.4g}{' (interrupted)' if self.interrupted else ''}>")

    def _title(self):
        source = "images in %s" % self.data if self.data else "%s images" % self.split
        return ("top %d of %d %s for %s%s" % (len(self), self.scanned, source, self.objective,
                " (interrupted: the images read so far)" if self.interrupted else ""))

    def _repr_png_(self):
        if self.kind != "image" or not len(self):
            return None
        lo, hi = self._range
        pix = np.ascontiguousarray((np.asarray(self.images) - lo) / (hi - lo), dtype=np.float32)
        caps = ["%s %.3g" % (n or "?", float(v)) for n, v in zip(self.label_names, self.values)]
        return _actmax.images_png(pix, caps, self._title(), _actmax.RENDER_MIN_PX, 96)[0]

    def _repr_html_(self):
        if self.kind == "image":
            png = self._repr_png_()
            return png_html(png) if png else f"<i>{_html(repr(self))}</i>"
        rows = [[str(int(i)), "%.4g" % float(v), "%s[%s]%s" % pt]
                for i, v, pt in zip(self.indices, self.values, self._peak_texts)]
        return _actmax.table(["window", "value", "text (peak token in [brackets])"], rows, None, 0.0, 1.0,
                             self.objective)[0]


_PARAM_KINDS = {"fft": 0, "pixel": 1, "maco": 2}


def param_image(params, kind="fft", model=None, decorrelate=True, decay_power=1.0, contrast=3.0,
                width=None):
    """The display image (B, C, H, W) in [0, 1] that a run renders from its
    parameters, computed by the engine: kind "fft" takes (B, C, H, W/2+1, 2)
    (real and imaginary parts, scaled by 1/f^decay_power), "pixel" (B, C, H, W),
    "maco" the phase (B, C, H, W/2+1) with the magnitude of model (its dataset's
    mean spectrum, or 1/f without a model) and contrast. Colour decorrelation
    applies to 3 channels. width: the image's width when W/2+1 leaves it open
    (default: the model's, else even)."""
    if kind not in _PARAM_KINDS:
        raise ValueError(f"kind={kind!r}: give one of {', '.join(map(repr, _PARAM_KINDS))}")
    opts = dict(param=_PARAM_KINDS[kind], decorrelate=int(bool(decorrelate)), decay_power=float(decay_power),
                contrast=float(contrast), width=int(width or 0))
    a = np.ascontiguousarray(_array(params, "params"), dtype=np.float32)
    core = model._m if isinstance(model, Model) else None
    if model is not None and core is None:
        raise TypeError(f"model must be an actmax.Model (actmax.load) or None, not {type(model).__name__}")
    return _out(_actmax.param_image(core, opts, a))


def param_magnitude(shape, model=None, decay_power=1.0):
    """MACO's fixed Fourier magnitude (C, H, W/2+1) for an image of shape
    (C, H, W), as a run of model uses it; also returns the engine's note
    saying which magnitude it is."""
    C, H, W = (int(v) for v in shape)
    core = model._m if isinstance(model, Model) else None
    mag, note = _actmax.param_magnitude(core, dict(decay_power=float(decay_power)), C, H, W)
    return _out(mag), note


def engine():
    """Loads the engine if needed: {version, api_version, path, blas, blas_optimized}."""
    return _actmax.engine()
