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
                ("image", C.POINTER(C.c_float)), ("image_shape", C.c_int64 * 4)]


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
                ("progress", PROGRESS_FN), ("progress_user", C.c_void_p), ("image_every", C.c_int)]


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


class Model:
    def __init__(self, path, device="cpu", input_shape=None):
        self.h = C.c_void_p()
        shape = (C.c_int64 * MAX_DIMS)(*(input_shape or []))
        st = lib.am_model_load(str(path).encode(), device.encode(), shape, len(input_shape or []), C.byref(self.h))
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
        x = np.ascontiguousarray(x)
        inp = Input()
        if x.dtype == np.int64:
            inp.kind = AM_INPUT_TOKENS
            inp.tokens = x.ctypes.data_as(C.POINTER(C.c_int64))
        else:
            x = np.ascontiguousarray(x, dtype=np.float32)
            inp.kind = AM_INPUT_FLOAT if kind is None else kind
            inp.data = x.ctypes.data_as(C.POINTER(C.c_float))
        inp.ndim = x.ndim
        for i, s in enumerate(x.shape):
            inp.shape[i] = s
        names = (C.c_char_p * len(layers))(*[l.encode() for l in layers])
        outs = (Tensor * len(layers))()
        g = Tensor()
        self._check(lib.am_model_tap(self.h, C.byref(inp), names, len(layers), outs, C.byref(g) if grad else None))
        acts = [_to_numpy(outs[i]) for i in range(len(layers))]
        if grad:
            return acts, _to_numpy(g)
        return acts

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
        self.cancelled = lib.am_run_cancelled(self.h)
        self.seconds = lib.am_run_seconds(self.h)
        self.snapshots = []
        for k in range(lib.am_run_num_snapshots(self.h)):
            step = C.c_int()
            p = lib.am_run_snapshot(self.h, k, C.byref(step), shape)
            self.snapshots.append((step.value, np.ctypeslib.as_array(p, shape=self.images.shape).copy()))
        lib.am_run_free(self.h)
        self.h = None
