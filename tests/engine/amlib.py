"""ctypes binding of libactmax for the engine tests and benchmark.

Mirrors ext/include/actmax.h; the library path comes from ACTMAX_LIB (set by
CTest) or the default build folder.
"""
import ctypes as C
import os

import numpy as np

MAX_DIMS = 8
AM_INPUT_FLOAT, AM_INPUT_TOKENS, AM_INPUT_EMBEDS = 0, 1, 2


class Tensor(C.Structure):
    _fields_ = [("data", C.POINTER(C.c_float)), ("shape", C.c_int64 * MAX_DIMS), ("ndim", C.c_int)]


class Input(C.Structure):
    _fields_ = [("kind", C.c_int), ("data", C.POINTER(C.c_float)), ("tokens", C.POINTER(C.c_int64)),
                ("shape", C.c_int64 * MAX_DIMS), ("ndim", C.c_int)]


class LayerInfo(C.Structure):
    _fields_ = [("name", C.c_char_p), ("type", C.c_char_p), ("params", C.c_int64), ("calls", C.c_int),
                ("ndim", C.c_int), ("shape", C.c_int64 * MAX_DIMS)]


class Progress(C.Structure):
    _fields_ = [("step", C.c_int), ("steps", C.c_int), ("objective", C.c_float), ("nterms", C.c_int),
                ("term_names", C.POINTER(C.c_char_p)), ("terms", C.POINTER(C.c_float)),
                ("image", C.POINTER(C.c_float)), ("image_shape", C.c_int64 * 4), ("crop", C.c_float)]


PROGRESS_FN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.POINTER(Progress))


class Options(C.Structure):
    _fields_ = [("objectives", C.POINTER(C.c_char_p)), ("n_objectives", C.c_int), ("batch", C.c_int),
                ("height", C.c_int64), ("width", C.c_int64), ("steps", C.c_int), ("lr", C.c_float),
                ("optimizer", C.c_int), ("momentum", C.c_float), ("seed", C.c_uint64), ("param", C.c_int),
                ("decorrelate", C.c_int), ("decay_power", C.c_float), ("transforms", C.c_int),
                ("pad", C.c_int), ("jitter", C.c_int), ("scale_min", C.c_float), ("scale_max", C.c_float),
                ("rotate_deg", C.c_float), ("l1", C.c_float), ("l2", C.c_float), ("tv", C.c_float),
                ("blur", C.c_float), ("init", C.c_int), ("init_image", C.POINTER(C.c_float)),
                ("init_std", C.c_float), ("thresholds", C.POINTER(C.c_int)), ("n_thresholds", C.c_int),
                ("progress", PROGRESS_FN), ("progress_user", C.c_void_p), ("image_every", C.c_int),
                ("crops", C.c_int), ("crop_max", C.c_float), ("crop_min", C.c_float), ("noise", C.c_float), ("contrast", C.c_float),
                ("accent", C.c_float), ("diversity", C.c_float), ("diversity_layer", C.c_char_p)]

OPT_AUTO, OPT_ADAM, OPT_SGD, OPT_NADAM = -1, 0, 1, 2
PARAM_FFT, PARAM_PIXEL, PARAM_MACO = 0, 1, 2


def _default_lib():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "build-engine", "ext", "libactmax.so")


lib = C.CDLL(os.environ.get("ACTMAX_LIB", _default_lib()))
_HAS_RUN = True
lib.am_strerror.restype = C.c_char_p
lib.am_model_error.restype = C.c_char_p
lib.am_model_error.argtypes = [C.c_void_p]
lib.am_model_note.restype = C.c_char_p
lib.am_model_note.argtypes = [C.c_void_p]
lib.am_model_kind.restype = C.c_char_p
lib.am_model_kind.argtypes = [C.c_void_p]
lib.am_model_load.argtypes = [C.c_char_p, C.c_char_p, C.POINTER(C.c_int64), C.c_int, C.POINTER(C.c_void_p)]
lib.am_model_free.argtypes = [C.c_void_p]
lib.am_model_num_layers.argtypes = [C.c_void_p]
lib.am_model_layer.argtypes = [C.c_void_p, C.c_int, C.POINTER(LayerInfo)]
lib.am_model_tap.argtypes = [C.c_void_p, C.POINTER(Input), C.POINTER(C.c_char_p), C.c_int,
                             C.POINTER(Tensor), C.POINTER(Tensor)]
lib.am_model_embeddings.argtypes = [C.c_void_p, C.POINTER(Tensor)]
lib.am_model_objective.argtypes = [C.c_void_p, C.POINTER(Input), C.c_char_p, C.POINTER(C.c_float)]
lib.am_model_objective_positions.argtypes = [C.c_void_p, C.POINTER(Input), C.c_char_p, C.POINTER(C.c_float)]
lib.am_model_tokenizer.argtypes = [C.c_void_p, C.POINTER(C.c_char_p), C.POINTER(C.c_size_t)]
lib.am_model_label.restype = C.c_char_p
lib.am_model_label.argtypes = [C.c_void_p, C.c_int]
lib.am_model_num_labels.argtypes = [C.c_void_p]
lib.am_tensor_release.argtypes = [C.POINTER(Tensor)]
lib.am_blas_info.argtypes = [C.c_char_p, C.c_size_t, C.POINTER(C.c_int)]
if _HAS_RUN:
    lib.am_options_default.argtypes = [C.POINTER(Options)]
    lib.am_run_new.argtypes = [C.c_void_p, C.POINTER(Options), C.POINTER(C.c_void_p)]
    lib.am_run_free.argtypes = [C.c_void_p]
    lib.am_run_error.restype = C.c_char_p
    lib.am_run_error.argtypes = [C.c_void_p]
    lib.am_run_cancelled.argtypes = [C.c_void_p]
    lib.am_run_steps.argtypes = [C.c_void_p]
    lib.am_run_images.restype = C.POINTER(C.c_float)
    lib.am_run_images.argtypes = [C.c_void_p, C.c_int64 * 4]
    lib.am_run_curve.restype = C.POINTER(C.c_float)
    lib.am_run_curve.argtypes = [C.c_void_p, C.POINTER(C.c_int)]
    lib.am_run_num_terms.argtypes = [C.c_void_p]
    lib.am_run_term_name.restype = C.c_char_p
    lib.am_run_term_name.argtypes = [C.c_void_p, C.c_int]
    lib.am_run_term_curve.restype = C.POINTER(C.c_float)
    lib.am_run_term_curve.argtypes = [C.c_void_p, C.c_int]
    lib.am_run_final.restype = C.POINTER(C.c_float)
    lib.am_run_final.argtypes = [C.c_void_p, C.POINTER(C.c_int)]
    lib.am_run_num_snapshots.argtypes = [C.c_void_p]
    lib.am_run_snapshot.restype = C.POINTER(C.c_float)
    lib.am_run_snapshot.argtypes = [C.c_void_p, C.c_int, C.POINTER(C.c_int), C.c_int64 * 4]
    lib.am_run_seconds.restype = C.c_double
    lib.am_run_seconds.argtypes = [C.c_void_p]
    lib.am_run_activation.restype = C.POINTER(C.c_float)
    lib.am_run_activation.argtypes = [C.c_void_p, C.POINTER(C.c_int)]
    lib.am_run_transparency.restype = C.POINTER(C.c_float)
    lib.am_run_transparency.argtypes = [C.c_void_p, C.c_int64 * 4]
    lib.am_run_diversity_layer.restype = C.c_char_p
    lib.am_run_diversity_layer.argtypes = [C.c_void_p]
    lib.am_run_note.restype = C.c_char_p
    lib.am_run_note.argtypes = [C.c_void_p]


class AmError(Exception):
    def __init__(self, status, message):
        super().__init__(f"{lib.am_strerror(status).decode()}: {message}")
        self.status = status
        self.message = message


def _to_numpy(t):
    shape = tuple(t.shape[i] for i in range(t.ndim))
    n = int(np.prod(shape)) if shape else 1
    arr = np.ctypeslib.as_array(t.data, shape=(n,)).copy().reshape(shape)
    lib.am_tensor_release(C.byref(t))
    return arr


def _input(x, kind=None):
    """An am_input over x: integer arrays are token ids, the rest floats
    (AM_INPUT_FLOAT unless kind says EMBEDS). Returns (input, the array it
    points into), which the caller keeps alive for the call."""
    inp = Input()
    if np.issubdtype(np.asarray(x).dtype, np.integer):
        x = np.ascontiguousarray(x, dtype=np.int64)
        inp.kind = AM_INPUT_TOKENS
        inp.tokens = x.ctypes.data_as(C.POINTER(C.c_int64))
    else:
        x = np.ascontiguousarray(x, dtype=np.float32)
        inp.kind = AM_INPUT_FLOAT if kind is None else kind
        inp.data = x.ctypes.data_as(C.POINTER(C.c_float))
    inp.ndim = x.ndim
    for i, s in enumerate(x.shape):
        inp.shape[i] = s
    return inp, x


class LoadOptions(C.Structure):
    _fields_ = [("path", C.c_char_p), ("data", C.c_void_p), ("len", C.c_size_t), ("device", C.c_char_p),
                ("input_shape", C.POINTER(C.c_int64)), ("input_ndim", C.c_int), ("metadata", C.c_char_p)]


lib.am_model_load_with.argtypes = [C.POINTER(LoadOptions), C.POINTER(C.c_void_p)]
lib.am_model_device.restype = C.c_char_p
lib.am_model_device.argtypes = [C.c_void_p]
lib.am_model_normalization.argtypes = [C.c_void_p, C.POINTER(C.POINTER(C.c_float)), C.POINTER(C.POINTER(C.c_float)),
                                       C.POINTER(C.c_int), C.c_float * 2]


class Model:
    """A loaded model: from a path (am_model_load) or, with data (bytes of a
    TorchScript archive) or metadata (a dict or JSON text), through
    am_model_load_with."""

    def __init__(self, path=None, device="cpu", input_shape=None, data=None, metadata=None):
        self.h = C.c_void_p()
        shape = (C.c_int64 * MAX_DIMS)(*(input_shape or []))
        if data is None and metadata is None:
            st = lib.am_model_load(str(path).encode(), device.encode(), shape, len(input_shape or []),
                                   C.byref(self.h))
        else:
            import json
            o = LoadOptions()
            o.path = str(path).encode() if path is not None else None
            if data is not None:
                self._data = C.create_string_buffer(bytes(data), len(data))
                o.data = C.cast(self._data, C.c_void_p)
                o.len = len(data)
            o.device = device.encode() if device else None
            o.input_shape = shape
            o.input_ndim = len(input_shape or [])
            if metadata is not None:
                o.metadata = (metadata if isinstance(metadata, str) else json.dumps(metadata)).encode()
            st = lib.am_model_load_with(C.byref(o), C.byref(self.h))
        if st != 0:
            msg = lib.am_model_error(self.h).decode()
            lib.am_model_free(self.h)
            self.h = None
            raise AmError(st, msg)

    def close(self):
        if self.h:
            lib.am_model_free(self.h)
            self.h = None

    __del__ = close

    def _check(self, st):
        if st < 0:
            raise AmError(st, lib.am_model_error(self.h).decode())
        return st

    @property
    def note(self):
        return lib.am_model_note(self.h).decode()

    @property
    def device(self):
        return lib.am_model_device(self.h).decode()

    def normalization(self):
        """(mean, std, [lo, hi])"""
        mean, sd, n, rng = C.POINTER(C.c_float)(), C.POINTER(C.c_float)(), C.c_int(), (C.c_float * 2)()
        self._check(lib.am_model_normalization(self.h, C.byref(mean), C.byref(sd), C.byref(n), rng))
        return [mean[i] for i in range(n.value)], [sd[i] for i in range(n.value)], [rng[0], rng[1]]

    def labels(self):
        return [lib.am_model_label(self.h, i).decode() for i in range(lib.am_model_num_labels(self.h))]

    def layers(self):
        n = self._check(lib.am_model_num_layers(self.h))
        out = []
        for i in range(n):
            info = LayerInfo()
            self._check(lib.am_model_layer(self.h, i, C.byref(info)))
            out.append(dict(name=info.name.decode(), type=info.type.decode(), params=info.params,
                            calls=info.calls, shape=tuple(info.shape[d] for d in range(info.ndim))))
        return out

    def tap(self, x, layers, grad=False, kind=None):
        inp, x = _input(x, kind)
        names = (C.c_char_p * len(layers))(*[l.encode() for l in layers])
        outs = (Tensor * len(layers))()
        g = Tensor()
        self._check(lib.am_model_tap(self.h, C.byref(inp), names, len(layers), outs, C.byref(g) if grad else None))
        acts = [_to_numpy(outs[i]) for i in range(len(layers))]
        if grad:
            return acts, _to_numpy(g)
        return acts

    def objective(self, x, objective, kind=None, positions=False):
        """The objective's value for each item of the batch x: (B,); with
        positions (text models), at each token: (B, T). Integer x is taken
        as token ids."""
        inp, x = _input(x, kind)
        values = np.zeros(x.shape[:2] if positions else x.shape[:1], dtype=np.float32)
        fn = lib.am_model_objective_positions if positions else lib.am_model_objective
        self._check(fn(self.h, C.byref(inp), objective.encode(), values.ctypes.data_as(C.POINTER(C.c_float))))
        return values

    def embeddings(self):
        t = Tensor()
        self._check(lib.am_model_embeddings(self.h, C.byref(t)))
        return _to_numpy(t)


def blas_info():
    buf = C.create_string_buffer(4096)
    opt = C.c_int()
    st = lib.am_blas_info(buf, 4096, C.byref(opt))
    return st, buf.value.decode(), opt.value


def tokenizer_bytes(model):
    p = C.c_char_p()
    n = C.c_size_t()
    st = lib.am_model_tokenizer(model.h, C.byref(p), C.byref(n))
    if st != 0:
        return st, None
    return st, C.string_at(p, n.value)


class Run:
    """One optimization; keyword arguments are am_options fields."""

    def __init__(self, model, objectives, progress=None, init_image=None, thresholds=None, **kw):
        if isinstance(kw.get("diversity_layer"), str):
            kw["diversity_layer"] = kw["diversity_layer"].encode()
        o = Options()
        lib.am_options_default(C.byref(o))
        if isinstance(objectives, str):
            objectives = [objectives]
        self._objs = (C.c_char_p * len(objectives))(*[s.encode() for s in objectives])
        o.objectives = self._objs
        o.n_objectives = len(objectives)
        for k, v in kw.items():
            if not hasattr(o, k):
                raise KeyError(k)
            setattr(o, k, v)
        if progress is not None:
            self._cb = PROGRESS_FN(lambda user, p: int(progress(p.contents) or 0))
            o.progress = self._cb
        if init_image is not None:
            self._init = np.ascontiguousarray(init_image, dtype=np.float32)
            o.init = 1
            o.init_image = self._init.ctypes.data_as(C.POINTER(C.c_float))
        if thresholds:
            self._thr = (C.c_int * len(thresholds))(*thresholds)
            o.thresholds = self._thr
            o.n_thresholds = len(thresholds)
        self.h = C.c_void_p()
        self.status = lib.am_run_new(model.h, C.byref(o), C.byref(self.h))
        self.error = lib.am_run_error(self.h).decode()
        if self.status != 0:
            lib.am_run_free(self.h)
            self.h = None
            raise AmError(self.status, self.error)
        shape = (C.c_int64 * 4)()
        p = lib.am_run_images(self.h, shape)
        self.images = np.ctypeslib.as_array(p, shape=(int(np.prod(list(shape))),)).copy().reshape(tuple(shape))
        n = C.c_int()
        p = lib.am_run_curve(self.h, C.byref(n))
        self.curve = np.ctypeslib.as_array(p, shape=(n.value,)).copy()
        self.steps = lib.am_run_steps(self.h)
        self.terms = {}
        for i in range(lib.am_run_num_terms(self.h)):
            name = lib.am_run_term_name(self.h, i).decode()
            self.terms[name] = np.ctypeslib.as_array(lib.am_run_term_curve(self.h, i), shape=(self.steps,)).copy()
        p = lib.am_run_final(self.h, C.byref(n))
        self.final = np.ctypeslib.as_array(p, shape=(n.value,)).copy()
        p = lib.am_run_activation(self.h, C.byref(n))
        self.activation = np.ctypeslib.as_array(p, shape=(n.value,)).copy()
        p = lib.am_run_transparency(self.h, shape)
        self.transparency = np.ctypeslib.as_array(p, shape=self.images.shape).copy() if p else None
        self.diversity_layer = lib.am_run_diversity_layer(self.h).decode()
        self.note = lib.am_run_note(self.h).decode()
        self.cancelled = lib.am_run_cancelled(self.h)
        self.seconds = lib.am_run_seconds(self.h)
        self.snapshots = []
        for k in range(lib.am_run_num_snapshots(self.h)):
            step = C.c_int()
            p = lib.am_run_snapshot(self.h, k, C.byref(step), shape)
            self.snapshots.append((step.value, np.ctypeslib.as_array(p, shape=self.images.shape).copy()))
        lib.am_run_free(self.h)
        self.h = None


# ---------------------------------------------------------------- text prompts

SOFT, PEZ, GCG, SWEEP = 0, 1, 2, 3
DIST_COSINE, DIST_L2 = 0, 1


class TextProgress(C.Structure):
    _fields_ = [("step", C.c_int), ("steps", C.c_int), ("restart", C.c_int), ("restarts", C.c_int),
                ("activation", C.c_float), ("xent", C.c_float), ("tokens", C.POINTER(C.c_int64)), ("len", C.c_int)]


TEXT_PROGRESS_FN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.POINTER(TextProgress))


class TextOptions(C.Structure):
    _fields_ = [("objective", C.c_char_p), ("method", C.c_int), ("len", C.c_int), ("steps", C.c_int),
                ("lr", C.c_float), ("distance", C.c_int), ("snap", C.c_float), ("fluency", C.c_float),
                ("topk", C.c_int), ("nearest", C.c_int), ("batch", C.c_int), ("position", C.c_int),
                ("init_tokens", C.POINTER(C.c_int64)), ("seed", C.c_uint64), ("restarts", C.c_int),
                ("retokenize", C.c_int), ("attribution", C.c_int), ("progress", TEXT_PROGRESS_FN),
                ("progress_user", C.c_void_p)]


TEXT_EXAMPLES_PROGRESS_FN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_int64, C.c_int64, C.c_float)


class TextExamplesOptions(C.Structure):
    _fields_ = [("objective", C.c_char_p), ("dataset", C.c_char_p), ("path", C.c_char_p), ("window", C.c_int64),
                ("stride", C.c_int64), ("k", C.c_int), ("batch", C.c_int),
                ("progress", TEXT_EXAMPLES_PROGRESS_FN), ("progress_user", C.c_void_p)]


_P = C.c_void_p
for _name, _res, _args in [
    ("am_text_options_default", None, [C.POINTER(TextOptions)]),
    ("am_text_run_new", C.c_int, [_P, C.POINTER(TextOptions), C.POINTER(_P)]),
    ("am_text_run_free", None, [_P]),
    ("am_text_run_error", C.c_char_p, [_P]),
    ("am_text_run_cancelled", C.c_int, [_P]),
    ("am_text_run_steps", C.c_int, [_P]),
    ("am_text_run_seconds", C.c_double, [_P]),
    ("am_text_run_tokens", C.POINTER(C.c_int64), [_P, C.POINTER(C.c_int)]),
    ("am_text_run_text", C.c_char_p, [_P]),
    ("am_text_run_roundtrip", C.c_int, [_P]),
    ("am_text_run_activation", C.c_float, [_P]),
    ("am_text_run_xent", C.c_float, [_P]),
    ("am_text_run_soft_activation", C.c_float, [_P]),
    ("am_text_run_retention", C.c_float, [_P]),
    ("am_text_run_embeds", C.POINTER(C.c_float), [_P, C.POINTER(C.c_int), C.POINTER(C.c_int)]),
    ("am_text_run_nearest", C.c_int, [_P, C.POINTER(C.POINTER(C.c_int64)), C.POINTER(C.POINTER(C.c_float)),
                                      C.POINTER(C.c_int), C.POINTER(C.c_int)]),
    ("am_text_run_curve", C.POINTER(C.c_float), [_P, C.POINTER(C.c_int)]),
    ("am_text_run_xent_curve", C.POINTER(C.c_float), [_P, C.POINTER(C.c_int)]),
    ("am_text_run_attribution", C.c_int, [_P, C.POINTER(C.POINTER(C.c_float)), C.POINTER(C.POINTER(C.c_int64)),
                                          C.POINTER(C.c_int)]),
    ("am_text_run_sweep", C.POINTER(C.c_float), [_P, C.POINTER(C.c_int), C.POINTER(C.c_int)]),
    ("am_text_run_projected_curve", C.POINTER(C.c_float), [_P, C.POINTER(C.c_int)]),
    ("am_text_run_best", C.c_int, [_P, C.POINTER(C.POINTER(C.c_int64)), C.POINTER(C.c_int), C.POINTER(C.c_float),
                                   C.POINTER(C.c_int)]),
    ("am_text_examples_new", C.c_int, [_P, C.POINTER(TextExamplesOptions), C.POINTER(_P)]),
    ("am_text_examples_free", None, [_P]),
    ("am_text_examples_error", C.c_char_p, [_P]),
    ("am_text_examples_scanned", C.c_int64, [_P]),
    ("am_text_examples_cancelled", C.c_int, [_P]),
    ("am_text_examples_count", C.c_int, [_P]),
    ("am_text_examples_max", C.c_float, [_P]),
    ("am_text_examples_get", C.c_int, [_P, C.c_int, C.POINTER(C.c_int64), C.POINTER(C.c_float),
                                       C.POINTER(C.POINTER(C.c_int64)), C.POINTER(C.POINTER(C.c_float)),
                                       C.POINTER(C.c_int)]),
    ("am_tokenizer_load_json", C.c_int, [C.c_char_p, C.c_size_t, C.POINTER(_P)]),
    ("am_tokenizer_free", None, [_P]),
    ("am_tokenizer_encode", C.c_int, [_P, C.c_char_p, C.c_size_t, C.POINTER(C.POINTER(C.c_int64)),
                                      C.POINTER(C.c_size_t)]),
]:
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args


def _arr(p, n, dtype):
    return np.ctypeslib.as_array(p, shape=(n,)).copy().astype(dtype) if n > 0 and p else np.zeros(0, dtype)


class TextRun:
    """One text search; keyword arguments are am_text_options fields (method, len, ...)."""

    def __init__(self, model, objective, progress=None, init_tokens=None, **kw):
        o = TextOptions()
        lib.am_text_options_default(C.byref(o))
        o.objective = objective.encode() if objective is not None else None
        for k, v in kw.items():
            if not hasattr(o, k):
                raise KeyError(k)
            setattr(o, k, v)
        if progress is not None:
            self._cb = TEXT_PROGRESS_FN(lambda user, p: int(progress(p.contents) or 0))
            o.progress = self._cb
        if init_tokens is not None:
            self._init = np.ascontiguousarray(init_tokens, dtype=np.int64)
            o.init_tokens = self._init.ctypes.data_as(C.POINTER(C.c_int64))
        h = C.c_void_p()
        self.status = lib.am_text_run_new(model.h, C.byref(o), C.byref(h))
        self.error = lib.am_text_run_error(h).decode()
        try:
            if self.status != 0:
                raise AmError(self.status, self.error)
            n = C.c_int()
            p = lib.am_text_run_tokens(h, C.byref(n))
            self.tokens = _arr(p, n.value, np.int64)
            self.text = C.string_at(lib.am_text_run_text(h))
            self.roundtrip = lib.am_text_run_roundtrip(h)
            self.activation = lib.am_text_run_activation(h)
            self.xent = lib.am_text_run_xent(h)
            self.soft_activation = lib.am_text_run_soft_activation(h)
            self.retention = lib.am_text_run_retention(h)
            self.steps = lib.am_text_run_steps(h)
            self.seconds = lib.am_text_run_seconds(h)
            self.cancelled = lib.am_text_run_cancelled(h)
            p = lib.am_text_run_curve(h, C.byref(n))
            self.curve = _arr(p, n.value, np.float32)
            p = lib.am_text_run_xent_curve(h, C.byref(n))
            self.xent_curve = _arr(p, n.value, np.float32)
            t, d = C.c_int(), C.c_int()
            p = lib.am_text_run_embeds(h, C.byref(t), C.byref(d))
            self.embeds = _arr(p, t.value * d.value, np.float32).reshape(t.value, d.value) if p else None
            ids, vals, k = C.POINTER(C.c_int64)(), C.POINTER(C.c_float)(), C.c_int()
            self.nearest = None
            if lib.am_text_run_nearest(h, C.byref(ids), C.byref(vals), C.byref(t), C.byref(k)) == 0:
                self.nearest = (_arr(ids, t.value * k.value, np.int64).reshape(t.value, k.value),
                                _arr(vals, t.value * k.value, np.float32).reshape(t.value, k.value))
            drop, alt = C.POINTER(C.c_float)(), C.POINTER(C.c_int64)()
            self.attribution = None
            if lib.am_text_run_attribution(h, C.byref(drop), C.byref(alt), C.byref(t)) == 0:
                self.attribution = (_arr(drop, t.value, np.float32), _arr(alt, t.value, np.int64))
            p = lib.am_text_run_projected_curve(h, C.byref(n))
            self.projected_curve = _arr(p, n.value, np.float32)
            ids, act, step = C.POINTER(C.c_int64)(), C.c_float(), C.c_int()
            assert lib.am_text_run_best(h, C.byref(ids), C.byref(n), C.byref(act), C.byref(step)) == 0
            self.best = (_arr(ids, n.value, np.int64), act.value, step.value)
            pos = C.c_int()
            p = lib.am_text_run_sweep(h, C.byref(n), C.byref(pos))
            self.sweep = _arr(p, n.value, np.float32) if p else None
            self.sweep_position = pos.value
        finally:
            lib.am_text_run_free(h)


def text_examples(model, objective, path, window=0, stride=0, k=0, batch=0, dataset=None, progress=None,
                  info=None):
    """Returns (max, scanned, [(index, score, tokens, acts)]). progress(scanned, total, best) is called
    after each batch (a truthy return cancels); info, a dict, gets "cancelled"."""
    o = TextExamplesOptions(objective.encode() if objective is not None else None,
                            dataset.encode() if dataset else None,
                            str(path).encode() if path is not None else None, window, stride, k, batch)
    if progress is not None:
        cb = TEXT_EXAMPLES_PROGRESS_FN(lambda user, scanned, total, best: int(bool(progress(scanned, total, best))))
        o.progress = cb
    h = C.c_void_p()
    st = lib.am_text_examples_new(model.h, C.byref(o), C.byref(h))
    try:
        if st != 0:
            raise AmError(st, lib.am_text_examples_error(h).decode())
        if info is not None:
            info["cancelled"] = lib.am_text_examples_cancelled(h)
        out = []
        for i in range(lib.am_text_examples_count(h)):
            idx, sc, toks, acts, n = C.c_int64(), C.c_float(), C.POINTER(C.c_int64)(), C.POINTER(C.c_float)(), C.c_int()
            assert lib.am_text_examples_get(h, i, C.byref(idx), C.byref(sc), C.byref(toks), C.byref(acts),
                                            C.byref(n)) == 0
            out.append((idx.value, sc.value, _arr(toks, n.value, np.int64), _arr(acts, n.value, np.float32)))
        return lib.am_text_examples_max(h), lib.am_text_examples_scanned(h), out
    finally:
        lib.am_text_examples_free(h)


def encode(tokenizer_json, text):
    """Token ids of text under a tokenizer.json (bytes), through libactmax."""
    t = C.c_void_p()
    st = lib.am_tokenizer_load_json(tokenizer_json, len(tokenizer_json), C.byref(t))
    try:
        if st != 0:
            raise AmError(st, "tokenizer")
        ids, n = C.POINTER(C.c_int64)(), C.c_size_t()
        raw = text.encode() if isinstance(text, str) else text
        assert lib.am_tokenizer_encode(t, raw, len(raw), C.byref(ids), C.byref(n)) == 0
        out = _arr(ids, n.value, np.int64)
        C.CDLL(None).free(ids)
        return out
    finally:
        lib.am_tokenizer_free(t)


# ---------------------------------------------------------------- dataset examples

EXAMPLES_PROGRESS_FN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_int64, C.c_int64, C.c_float)
DATASET_IMAGE, DATASET_TEXT = 0, 1


class ExamplesOptions(C.Structure):
    _fields_ = [("objective", C.c_char_p), ("dataset", C.c_char_p), ("path", C.c_char_p), ("split", C.c_char_p),
                ("window", C.c_int64), ("stride", C.c_int64), ("k", C.c_int), ("limit", C.c_int64),
                ("batch", C.c_int), ("progress", EXAMPLES_PROGRESS_FN), ("progress_user", C.c_void_p)]


class Example(C.Structure):
    _fields_ = [("index", C.c_int64), ("value", C.c_float), ("label", C.c_int64), ("label_name", C.c_char_p),
                ("image", C.POINTER(C.c_float)), ("shape", C.c_int64 * 3), ("tokens", C.POINTER(C.c_int64)),
                ("acts", C.POINTER(C.c_float)), ("len", C.c_int)]


for _name, _res, _args in [
    ("am_examples_options_default", None, [C.POINTER(ExamplesOptions)]),
    ("am_examples_new", C.c_int, [_P, C.POINTER(ExamplesOptions), C.POINTER(_P)]),
    ("am_examples_free", None, [_P]),
    ("am_examples_error", C.c_char_p, [_P]),
    ("am_examples_kind", C.c_int, [_P]),
    ("am_examples_scanned", C.c_int64, [_P]),
    ("am_examples_cancelled", C.c_int, [_P]),
    ("am_examples_count", C.c_int, [_P]),
    ("am_examples_max", C.c_float, [_P]),
    ("am_examples_get", C.c_int, [_P, C.c_int, C.POINTER(Example)]),
]:
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args


def examples(model, objective, progress=None, **kw):
    """am_examples: returns dict(kind, max, scanned, cancelled, items=[dict(index, value, label, label_name,
    image (C, H, W) or None, tokens, acts)]). Keyword arguments are am_examples_options fields (dataset,
    path, split as str). progress(scanned, total, best) may return True to cancel."""
    o = ExamplesOptions()
    lib.am_examples_options_default(C.byref(o))
    o.objective = objective.encode() if objective is not None else None
    for k, v in kw.items():
        if not hasattr(o, k):
            raise KeyError(k)
        setattr(o, k, str(v).encode() if isinstance(v, (str, os.PathLike)) else v)
    if progress is not None:
        cb = EXAMPLES_PROGRESS_FN(lambda user, s, t, b: int(bool(progress(s, t, b))))
        o.progress = cb
    h = C.c_void_p()
    st = lib.am_examples_new(model.h, C.byref(o), C.byref(h))
    try:
        if st != 0:
            raise AmError(st, lib.am_examples_error(h).decode())
        items = []
        for i in range(lib.am_examples_count(h)):
            e = Example()
            assert lib.am_examples_get(h, i, C.byref(e)) == 0
            img = None
            if e.image:
                shape = tuple(e.shape)
                img = np.ctypeslib.as_array(e.image, shape=(int(np.prod(shape)),)).copy().reshape(shape)
            items.append(dict(index=e.index, value=e.value, label=e.label, label_name=e.label_name.decode(),
                              image=img, tokens=_arr(e.tokens, e.len, np.int64) if e.tokens else None,
                              acts=_arr(e.acts, e.len, np.float32) if e.acts else None))
        return dict(kind=lib.am_examples_kind(h), max=lib.am_examples_max(h), scanned=lib.am_examples_scanned(h),
                    cancelled=lib.am_examples_cancelled(h), items=items)
    finally:
        lib.am_examples_free(h)
