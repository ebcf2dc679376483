/* _actmax.c — the C half of the Python module `actmax`: the engine's one C
 * contract (actmax.h, taken from am_get_api) and the kernel's renderer, exposed
 * to the pure-Python layer (actmax/__init__.py) in plain Python values.
 *
 * The engine is dlopen'ed on first use (so `import actmax` stays quick) from
 * $ACTMAX_ENGINE, then beside this module, then the build tree's libactmax.so,
 * and refused when its API version is not the one this module was built for.
 * Arrays cross as C-contiguous buffers: float32 ('f') or int64 ('q'/'l') in,
 * (bytearray, shape) out, so the Python layer wraps them in numpy or torch
 * without a copy. Every engine call runs with the GIL released; the progress
 * callbacks take it back to check for Ctrl-C and call the Python progress.
 *
 * Legend: B = batch, C = channels, H = height, W = width, T = tokens,
 * S = steps, D = embedding width. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <stdbool.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actmax.h"
#include "am_loader.h"
#include "magic_keys.h"
#ifndef ACTMAX_PYTHON_NO_RENDER
#include "render.h"
#else
/* An engine-only build (ACTMAX_KERNEL=OFF, as on a GPU machine) has no
 * renderer: models, taps, runs and results work, progress is throttled here,
 * and drawing (images, plots, tables, the progress bar) raises. */
#include <time.h>
#define RENDER_MIN_PX 256
typedef struct render_throttle {
    double interval_s, last_s;
    bool has_last;
} render_throttle;

static double clock_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void render_throttle_init(render_throttle *t, double per_second, void *clock, void *ctx)
{
    (void)clock;
    (void)ctx;
    t->interval_s = 1.0 / per_second;
    t->last_s = 0;
    t->has_last = false;
}

static bool render_throttle_ready(render_throttle *t, bool is_final)
{
    double now = clock_s();
    if (!is_final && t->has_last && now - t->last_s < t->interval_s)
        return false;
    t->last_s = now;
    t->has_last = true;
    return true;
}
#endif

#ifndef ACTMAX_ENGINE_LIB
#define ACTMAX_ENGINE_LIB "libactmax.so"
#endif

/* ================================================================ engine */

static const am_api *g_api;
static char g_engine_path[PATH_MAX];

/* The exception classes, by the names of AM_STATUS_MAP (the names
 * am_status_class gives); builtin names map to the builtin classes. */
static PyObject *g_error;       /* actmax.Error, base of the actmax-only classes */
static PyObject *g_module_dict; /* borrowed: the classes are looked up here */

static PyObject *error_class(const char *name)
{
    PyObject *cls = name[0] ? PyDict_GetItemString(g_module_dict, name) : NULL;
    if (!cls)
        cls = PyDict_GetItemString(PyEval_GetBuiltins(), name);
    if (!cls || !PyExceptionClass_Check(cls))
        cls = PyDict_GetItemString(g_module_dict, "EngineError");
    return cls;
}

/* Loads and checks the engine once (ext/loader, as the kernel does); 0, or
 * -1 with EngineError set. */
static int ensure_engine(void)
{
    if (g_api)
        return 0;
    /* $ACTMAX_ENGINE, beside this module (an installed package carries its
     * engine), then the build's path. */
    char beside[PATH_MAX] = "";
    Dl_info info;
    if (dladdr((const void *)&g_api, &info) && info.dli_fname) {
        snprintf(beside, sizeof beside, "%s", info.dli_fname);
        char *slash = strrchr(beside, '/');
        if (slash)
            snprintf(slash + 1, sizeof beside - (size_t)(slash + 1 - beside), "libactmax.so");
        else
            beside[0] = '\0';
    }
    am_loader_candidate cands[] = {
        {getenv("ACTMAX_ENGINE"), false}, {beside, true}, {ACTMAX_ENGINE_LIB, false}};
    am_loader_engine eng;
    char msg[8192];
    if (am_loader_open(cands, 3, "module", &eng, msg, sizeof msg) != 0) {
        if (strncmp(msg, "the engine library could not be loaded", 38) == 0)
            PyErr_Format(error_class("EngineError"),
                         "%s\nBuild it (cmake --build build) or point $ACTMAX_ENGINE at "
                         "libactmax.so",
                         msg);
        else
            PyErr_SetString(error_class("EngineError"), msg);
        return -1;
    }
    g_api = eng.api;
    snprintf(g_engine_path, sizeof g_engine_path, "%s", eng.path);
    return 0; /* the library stays loaded for the life of the process */
}

/* Raises the class am_status_class names, with the kernel's message:
 * "<am_strerror>: <the handle's detailed message>". Returns NULL. */
static PyObject *raise_error(PyObject *cls, PyObject *msg, int status, const char *detail);

static PyObject *raise_status(int status, const char *detail)
{
    return raise_error(
        error_class(g_api->am_status_class(status)),
        PyUnicode_FromFormat("%s: %s", g_api->am_strerror(status), detail ? detail : ""), status,
        detail);
}

/* Raises cls(msg) (msg stolen) with e.status and e.detail set. Returns NULL. */
static PyObject *raise_error(PyObject *cls, PyObject *msg, int status, const char *detail)
{
    PyObject *exc = PyObject_CallFunction(cls, "s", "");
    PyObject *code = PyLong_FromLong(status);
    PyObject *det = PyUnicode_FromString(detail ? detail : "");
    if (exc && msg && code && det) {
        /* The message as the only argument; the engine's status code and its
         * detailed message for callers that compare them (e.status == -6). */
        PyObject *args = PyTuple_Pack(1, msg);
        if (args && PyObject_SetAttrString(exc, "args", args) == 0 &&
            PyObject_SetAttrString(exc, "status", code) == 0 &&
            PyObject_SetAttrString(exc, "detail", det) == 0)
            PyErr_SetObject(cls, exc);
        Py_XDECREF(args);
    }
    Py_XDECREF(exc);
    Py_XDECREF(msg);
    Py_XDECREF(code);
    Py_XDECREF(det);
    return NULL;
}

/* ================================================================ arrays */

/* A float32 array out: (bytearray, shape). */
static PyObject *array_out(const void *data, size_t elem, const int64_t *shape, int ndim)
{
    Py_ssize_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (Py_ssize_t)shape[i];
    PyObject *buf = PyByteArray_FromStringAndSize(NULL, n * (Py_ssize_t)elem);
    if (!buf)
        return NULL;
    if (n && data)
        memcpy(PyByteArray_AS_STRING(buf), data, (size_t)n * elem);
    else if (n)
        memset(PyByteArray_AS_STRING(buf), 0, (size_t)n * elem);
    PyObject *sh = PyTuple_New(ndim);
    if (!sh) {
        Py_DECREF(buf);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        PyTuple_SET_ITEM(sh, i, PyLong_FromLongLong(shape[i]));
    return Py_BuildValue("(NN)", buf, sh);
}

static PyObject *floats_out(const float *data, int64_t n)
{
    return array_out(data, sizeof(float), &n, 1);
}

static PyObject *ints_out(const int64_t *data, int64_t n)
{
    return array_out(data, sizeof(int64_t), &n, 1);
}

/* Moves an engine-filled am_tensor into (bytearray, shape) and releases it. */
static PyObject *tensor_out(am_tensor *t)
{
    PyObject *r = array_out(t->data, sizeof(float), t->shape, t->ndim);
    g_api->am_tensor_release(t);
    return r;
}

static int is_int64_format(const char *f)
{
    if (!f)
        return 0;
    if (f[0] == '<' || f[0] == '=' || f[0] == '@')
        f++;
    return (strcmp(f, "q") == 0 || (strcmp(f, "l") == 0 && sizeof(long) == 8));
}

static int is_float_format(const char *f)
{
    if (!f)
        return 1; /* unsigned bytes are never passed; no format means 'B' only for bytes */
    if (f[0] == '<' || f[0] == '=' || f[0] == '@')
        f++;
    return strcmp(f, "f") == 0;
}

/* An am_input over a C-contiguous buffer: int64 items are token ids, float32
 * items floats of kind (AM_INPUT_FLOAT or AM_INPUT_EMBEDS). The view is kept
 * by the caller until the call is over. */
static int input_from(PyObject *obj, int kind, Py_buffer *view, am_input *in)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    memset(in, 0, sizeof *in);
    if (view->ndim < 1 || view->ndim > AM_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "an input needs 1 to %d dimensions (batch first), not %d",
                     AM_MAX_DIMS, view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    if (is_int64_format(view->format) && view->itemsize == 8) {
        in->kind = AM_INPUT_TOKENS;
        in->tokens = view->buf;
    } else if (is_float_format(view->format) && view->itemsize == 4) {
        in->kind = kind;
        in->data = view->buf;
    } else {
        PyErr_Format(PyExc_TypeError, "an input must be float32 or int64, not format '%s'",
                     view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    in->ndim = view->ndim;
    for (int i = 0; i < view->ndim; i++)
        in->shape[i] = view->shape[i];
    return 0;
}

/* ================================================================ progress */

/* What the engine's progress callbacks carry: the Python progress (or None),
 * the throttle that decides when it is called, and what stopped the run. */
typedef struct progress_ctx {
    PyObject *fn; /* borrowed; NULL: none */
    render_throttle thr;
    bool every_step;                         /* no throttle */
    int interrupted;                         /* Ctrl-C (KeyboardInterrupt) seen */
    PyObject *exc_type, *exc_value, *exc_tb; /* an error raised by fn */
    float *image;                            /* (B, C, H, W) the latest live image not yet passed */
    int64_t image_shape[4];
} progress_ctx;

/* With the GIL held: 1 when the run should stop (Ctrl-C or an error in fn). */
static int progress_check_signals(progress_ctx *g)
{
    if (PyErr_CheckSignals() < 0) {
        if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
            PyErr_Clear();
            g->interrupted = 1;
        } else {
            PyErr_Fetch(&g->exc_type, &g->exc_value, &g->exc_tb);
        }
        return 1;
    }
    return 0;
}

/* Calls fn(args) (a new reference, stolen); 1 when it asks to stop or fails. */
static int progress_call(progress_ctx *g, PyObject *args)
{
    if (!args) {
        PyErr_Fetch(&g->exc_type, &g->exc_value, &g->exc_tb);
        return 1;
    }
    PyObject *r = PyObject_CallObject(g->fn, args);
    Py_DECREF(args);
    if (!r) {
        if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
            PyErr_Clear();
            g->interrupted = 1;
        } else {
            PyErr_Fetch(&g->exc_type, &g->exc_value, &g->exc_tb);
        }
        return 1;
    }
    int stop = PyObject_IsTrue(r) > 0;
    Py_DECREF(r);
    return stop;
}

static void progress_init(progress_ctx *g, PyObject *fn, double per_second)
{
    memset(g, 0, sizeof *g);
    g->fn = fn && fn != Py_None ? fn : NULL;
    /* per_second <= 0: every step reaches fn (a caller that counts steps). */
    g->every_step = per_second <= 0;
    render_throttle_init(&g->thr, per_second > 0 ? per_second : 4, NULL, NULL);
}

static bool progress_due(progress_ctx *g, bool is_final)
{
    return g->every_step || render_throttle_ready(&g->thr, is_final);
}

/* After the run, with the GIL: re-raises an error of the progress; -1 then. */
static int progress_finish(progress_ctx *g)
{
    free(g->image);
    g->image = NULL;
    if (g->exc_type) {
        PyErr_Restore(g->exc_type, g->exc_value, g->exc_tb);
        g->exc_type = g->exc_value = g->exc_tb = NULL;
        return -1;
    }
    return 0;
}

static int run_progress(void *user, const am_progress *p)
{
    progress_ctx *g = user;
    PyGILState_STATE gs = PyGILState_Ensure();
    int stop = progress_check_signals(g);
    if (!stop && g->fn) {
        if (p->image) {
            size_t n = (size_t)(p->image_shape[0] * p->image_shape[1] * p->image_shape[2] *
                                p->image_shape[3]);
            float *copy = realloc(g->image, n * sizeof(float));
            if (copy) {
                memcpy(copy, p->image, n * sizeof(float));
                g->image = copy;
                memcpy(g->image_shape, p->image_shape, sizeof g->image_shape);
            }
        }
        if (progress_due(g, p->step == p->steps)) {
            PyObject *img = Py_None;
            Py_INCREF(img);
            if (g->image) {
                Py_DECREF(img);
                img = array_out(g->image, sizeof(float), g->image_shape, 4);
                free(g->image);
                g->image = NULL;
            }
            /* The step's value of each term, by name: ((name, value), ...). */
            PyObject *terms = img ? PyTuple_New(p->nterms > 0 ? p->nterms : 0) : NULL;
            for (int i = 0; terms && i < p->nterms; i++) {
                PyObject *t = Py_BuildValue("(sd)", p->term_names[i], (double)p->terms[i]);
                if (!t) {
                    Py_CLEAR(terms);
                    break;
                }
                PyTuple_SET_ITEM(terms, i, t);
            }
            if (!terms)
                Py_XDECREF(img);
            stop = terms ? progress_call(g, Py_BuildValue("(iidNNd)", p->step, p->steps,
                                                          (double)p->objective, img, terms,
                                                          (double)p->crop))
                         : progress_call(g, NULL);
        }
    }
    PyGILState_Release(gs);
    return stop;
}

static int text_progress(void *user, const am_text_progress *p)
{
    progress_ctx *g = user;
    PyGILState_STATE gs = PyGILState_Ensure();
    int stop = progress_check_signals(g);
    int last = p->step == p->steps && p->restart + 1 == p->restarts;
    if (!stop && g->fn && progress_due(g, last))
        stop = progress_call(g, Py_BuildValue("(iiiiddN)", p->step, p->steps, p->restart,
                                              p->restarts, (double)p->activation, (double)p->xent,
                                              ints_out(p->tokens, p->len)));
    PyGILState_Release(gs);
    return stop;
}

static int examples_progress(void *user, int64_t scanned, int64_t total, float best)
{
    progress_ctx *g = user;
    PyGILState_STATE gs = PyGILState_Ensure();
    int stop = progress_check_signals(g);
    if (!stop && g->fn && progress_due(g, scanned >= total))
        stop = progress_call(
            g, Py_BuildValue("(LLd)", (long long)scanned, (long long)total, (double)best));
    PyGILState_Release(gs);
    return stop;
}

/* ================================================================ Model */

typedef struct ModelObject {
    PyObject_HEAD am_model *m;
    am_tokenizer *tok; /* parsed on first use */
    int busy;          /* an engine call on m is in progress (GIL released) */
} ModelObject;

static PyTypeObject ModelType;

/* Refuses a second call on the same model while one runs (another thread,
 * or the progress callback of a run on it). */
static int model_enter(ModelObject *self)
{
    if (!self->m) {
        PyErr_SetString(PyExc_ValueError, "the model was closed");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the model is busy with another call (from another thread or a progress "
                        "callback); wait for it to finish");
        return -1;
    }
    self->busy = 1;
    return 0;
}

static void model_leave(ModelObject *self)
{
    self->busy = 0;
}

/* input_from, then model_enter: on failure nothing is held (view released). */
static int input_enter(ModelObject *self, PyObject *x, int kind, Py_buffer *view, am_input *in)
{
    if (input_from(x, kind, view, in) < 0)
        return -1;
    if (model_enter(self) < 0) {
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static void Model_dealloc(ModelObject *self)
{
    if (g_api) {
        g_api->am_tokenizer_free(self->tok);
        g_api->am_model_free(self->m);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Model(source, device="cpu", input_shape=None, metadata=None, data=None):
 * source is a TorchScript file's path (str) or a TorchScript archive in memory
 * (bytes, as torch.jit.save writes to an io.BytesIO); metadata a JSON object
 * whose keys set or override the archive's actmax.json. source=None with
 * data (bytes), or a path and data both, and device=None are passed to
 * am_model_load_with as they are, for its own checks. */
static int Model_init(ModelObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"source", "device", "input_shape", "metadata", "data", NULL};
    PyObject *source, *shape_obj = Py_None, *data = Py_None;
    const char *device = "cpu", *metadata = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|zOzO", kwlist, &source, &device, &shape_obj,
                                     &metadata, &data))
        return -1;
    if (ensure_engine() < 0)
        return -1;
    if (self->m) {
        PyErr_SetString(PyExc_RuntimeError, "Model.__init__ called twice");
        return -1;
    }
    am_model_load_options o = {0};
    o.device = device;
    o.metadata = metadata;
    int64_t shape[AM_MAX_DIMS];
    if (shape_obj != Py_None) {
        PyObject *seq = PySequence_Fast(shape_obj, "input_shape must be a sequence of ints");
        if (!seq)
            return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        if (n > AM_MAX_DIMS) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "input_shape has %zd dims; at most %d", n, AM_MAX_DIMS);
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            shape[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
            if (shape[i] == -1 && PyErr_Occurred()) {
                Py_DECREF(seq);
                return -1;
            }
        }
        Py_DECREF(seq);
        o.input_shape = n ? shape : NULL;
        o.input_ndim = (int)n;
    }
    Py_buffer view = {0};
    int have_view = 0;
    const char *what = "the TorchScript module";
    if (PyUnicode_Check(source)) {
        if (!(o.path = PyUnicode_AsUTF8(source)))
            return -1;
        what = o.path;
    } else if (source != Py_None) {
        if (data != Py_None) {
            PyErr_SetString(PyExc_TypeError, "give the archive's bytes once: as source or as data");
            return -1;
        }
        data = source;
    }
    if (data != Py_None) {
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
            return -1;
        have_view = 1;
        o.data = view.buf;
        o.len = (size_t)view.len;
    }
    am_model *m = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = g_api->am_model_load_with(&o, &m);
    Py_END_ALLOW_THREADS if (rc != AM_OK)
    {
        /* As the kernel's %model: whatever the status, the model did not load. */
        const char *detail = m ? g_api->am_model_error(m) : "";
        raise_error(error_class("ModelError"),
                    PyUnicode_FromFormat("%s could not be loaded (%s): %s", what,
                                         g_api->am_strerror(rc), detail),
                    rc, detail);
        g_api->am_model_free(m);
        if (have_view)
            PyBuffer_Release(&view);
        return -1;
    }
    if (have_view)
        PyBuffer_Release(&view); /* the engine copied it */
    self->m = m;
    return 0;
}

static PyObject *model_fail(ModelObject *self, int rc)
{
    return raise_status(rc, g_api->am_model_error(self->m));
}

static PyObject *Model_info(ModelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->m) {
        PyErr_SetString(PyExc_ValueError, "the model was closed");
        return NULL;
    }
    const am_model *m = self->m;
    int64_t shape[AM_MAX_DIMS];
    int nd = g_api->am_model_input_shape(m, shape, AM_MAX_DIMS);
    PyObject *in = PyTuple_New(nd > 0 ? nd : 0);
    for (int i = 0; in && i < nd; i++)
        PyTuple_SET_ITEM(in, i, PyLong_FromLongLong(shape[i]));
    const float *mean = NULL, *std = NULL;
    int count = 0;
    float range[2] = {0, 1};
    g_api->am_model_normalization(m, &mean, &std, &count, range);
    PyObject *lm = PyList_New(count), *ls = PyList_New(count);
    for (int i = 0; lm && ls && i < count; i++) {
        PyList_SET_ITEM(lm, i, PyFloat_FromDouble(mean[i]));
        PyList_SET_ITEM(ls, i, PyFloat_FromDouble(std[i]));
    }
    int nl = g_api->am_model_num_labels(m);
    PyObject *labels = PyList_New(nl > 0 ? nl : 0);
    for (int i = 0; labels && i < nl; i++)
        PyList_SET_ITEM(labels, i,
                        PyUnicode_DecodeUTF8(g_api->am_model_label(m, i),
                                             (Py_ssize_t)strlen(g_api->am_model_label(m, i)),
                                             "replace"));
    /* The tokenizer's family and size, as %model shows it ("" when none). */
    char tok[512] = "";
    const char *bytes = NULL;
    size_t blen = 0;
    if (g_api->am_model_tokenizer(m, &bytes, &blen) == AM_OK) {
        am_tokenizer *t = NULL;
        if (g_api->am_tokenizer_load_json(bytes, blen, &t) == AM_OK)
            snprintf(tok, sizeof tok, "%s, %lld tokens", g_api->am_tokenizer_describe(t),
                     (long long)g_api->am_tokenizer_vocab_size(t));
        g_api->am_tokenizer_free(t);
    }
    return Py_BuildValue("{s:s,s:s,s:N,s:N,s:N,s:(dd),s:N,s:s,s:s,s:L,s:s}", "kind",
                         g_api->am_model_kind(m), "device", g_api->am_model_device(m), "input", in,
                         "mean", lm, "std", ls, "range", (double)range[0], (double)range[1],
                         "labels", labels, "dataset", g_api->am_model_dataset(m), "note",
                         g_api->am_model_note(m), "params",
                         (long long)g_api->am_model_num_params(m), "tokenizer", tok);
}

static PyObject *Model_layers(ModelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (model_enter(self) < 0)
        return NULL;
    int n;
    Py_BEGIN_ALLOW_THREADS n = g_api->am_model_num_layers(self->m);
    Py_END_ALLOW_THREADS model_leave(self);
    if (n < 0)
        return model_fail(self, n);
    PyObject *out = PyList_New(n);
    for (int i = 0; out && i < n; i++) {
        am_layer_info li;
        int rc = g_api->am_model_layer(self->m, i, &li);
        if (rc != AM_OK) {
            Py_DECREF(out);
            return model_fail(self, rc);
        }
        PyObject *sh = PyTuple_New(li.ndim);
        for (int d = 0; sh && d < li.ndim; d++)
            PyTuple_SET_ITEM(sh, d, PyLong_FromLongLong(li.shape[d]));
        PyList_SET_ITEM(
            out, i, Py_BuildValue("(ssNLi)", li.name, li.type, sh, (long long)li.params, li.calls));
    }
    return out;
}

/* tap(x, kind, layers, grad) -> ([(bytes, shape)...], (bytes, shape) | None) */
static PyObject *Model_tap(ModelObject *self, PyObject *args)
{
    PyObject *x, *layers;
    int kind, want_grad;
    if (!PyArg_ParseTuple(args, "OiOp", &x, &kind, &layers, &want_grad))
        return NULL;
    PyObject *seq = PySequence_Fast(layers, "layers must be a list of names");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "name at least one layer, e.g. [\"conv2\"]");
        return NULL;
    }
    const char **names = PyMem_Calloc((size_t)n, sizeof *names);
    am_tensor *outs = PyMem_Calloc((size_t)n, sizeof *outs);
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        names[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
        if (!names[i])
            goto done;
    }
    Py_buffer view;
    am_input in;
    if (input_enter(self, x, kind, &view, &in) < 0)
        goto done;
    am_tensor grad = {0};
    int rc;
    Py_BEGIN_ALLOW_THREADS rc =
        g_api->am_model_tap(self->m, &in, names, (int)n, outs, want_grad ? &grad : NULL);
    Py_END_ALLOW_THREADS model_leave(self);
    PyBuffer_Release(&view);
    if (rc != AM_OK) {
        for (Py_ssize_t i = 0; i < n; i++)
            g_api->am_tensor_release(&outs[i]);
        g_api->am_tensor_release(&grad);
        model_fail(self, rc);
        goto done;
    }
    PyObject *list = PyList_New(n);
    for (Py_ssize_t i = 0; i < n; i++)
        PyList_SET_ITEM(list, i, tensor_out(&outs[i]));
    PyObject *g = Py_None;
    Py_INCREF(g);
    if (want_grad) {
        Py_DECREF(g);
        g = tensor_out(&grad);
    }
    result = Py_BuildValue("(NN)", list, g);
done:
    PyMem_Free(names);
    PyMem_Free(outs);
    Py_DECREF(seq);
    return result;
}

/* objective(x, kind, objective, positions) -> (bytes, shape): (B,) or (B, T) */
static PyObject *Model_objective(ModelObject *self, PyObject *args)
{
    PyObject *x;
    int kind, positions;
    const char *objective;
    if (!PyArg_ParseTuple(args, "Oisp", &x, &kind, &objective, &positions))
        return NULL;
    Py_buffer view;
    am_input in;
    if (input_from(x, kind, &view, &in) < 0)
        return NULL;
    if (positions && in.ndim < 2) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "objective at each token needs token ids (B, T)");
        return NULL;
    }
    int64_t shape[2] = {in.shape[0], positions ? in.shape[1] : 1};
    float *values = PyMem_Calloc((size_t)(shape[0] * shape[1]) + 1, sizeof(float));
    if (!values || model_enter(self) < 0) {
        PyMem_Free(values);
        PyBuffer_Release(&view);
        return values ? NULL : PyErr_NoMemory();
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS rc =
        positions ? g_api->am_model_objective_positions(self->m, &in, objective, values)
                  : g_api->am_model_objective(self->m, &in, objective, values);
    Py_END_ALLOW_THREADS model_leave(self);
    PyBuffer_Release(&view);
    PyObject *r = rc == AM_OK ? array_out(values, sizeof(float), shape, positions ? 2 : 1)
                              : model_fail(self, rc);
    PyMem_Free(values);
    return r;
}

static PyObject *Model_objective_each(ModelObject *self, PyObject *args)
{
    const char *objective;
    if (!PyArg_ParseTuple(args, "s", &objective))
        return NULL;
    if (model_enter(self) < 0)
        return NULL;
    char *units = NULL;
    int count = 0, rc;
    Py_BEGIN_ALLOW_THREADS rc = g_api->am_objective_each(self->m, objective, &units, &count);
    Py_END_ALLOW_THREADS model_leave(self);
    if (rc != AM_OK)
        return model_fail(self, rc);
    PyObject *r = PyList_New(count);
    const char *p = units;
    for (int i = 0; r && i < count; i++) {
        PyObject *u = PyUnicode_FromString(p);
        if (!u) {
            Py_CLEAR(r);
            break;
        }
        PyList_SET_ITEM(r, i, u);
        p += strlen(p) + 1;
    }
    free(units);
    return r;
}

static PyObject *Model_logit_lens(ModelObject *self, PyObject *args)
{
    const char *layer;
    long long neuron;
    int k;
    if (!PyArg_ParseTuple(args, "sLi", &layer, &neuron, &k))
        return NULL;
    if (k < 0 || k > 1 << 20) {
        PyErr_SetString(PyExc_ValueError, "k must be 0..1048576");
        return NULL;
    }
    int64_t *ids = PyMem_Calloc((size_t)k * 2 + 1, sizeof(int64_t));
    float *vals = PyMem_Calloc((size_t)k * 2 + 1, sizeof(float));
    if (!ids || !vals || model_enter(self) < 0) {
        PyMem_Free(ids);
        PyMem_Free(vals);
        return ids && vals ? NULL : PyErr_NoMemory();
    }
    am_tensor all = {0};
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = g_api->am_logit_lens(self->m, layer, (int64_t)neuron, k, ids, vals,
                                                     ids + k, vals + k, &all);
    Py_END_ALLOW_THREADS model_leave(self);
    PyObject *r = NULL;
    if (rc == AM_OK) {
        int64_t shape[1] = {k};
        r = Py_BuildValue("(NNNNN)", array_out(ids, sizeof(int64_t), shape, 1),
                          array_out(vals, sizeof(float), shape, 1),
                          array_out(ids + k, sizeof(int64_t), shape, 1),
                          array_out(vals + k, sizeof(float), shape, 1), tensor_out(&all));
    } else {
        r = model_fail(self, rc);
        g_api->am_tensor_release(&all);
    }
    PyMem_Free(ids);
    PyMem_Free(vals);
    return r;
}

static PyObject *Model_embeddings(ModelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (model_enter(self) < 0)
        return NULL;
    am_tensor t = {0};
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = g_api->am_model_embeddings(self->m, &t);
    Py_END_ALLOW_THREADS model_leave(self);
    if (rc != AM_OK)
        return model_fail(self, rc);
    return tensor_out(&t);
}

/* ---------------------------------------------------------------- image runs */

/* The am_options fields a Python dict may set, by name. */
typedef struct opt_field {
    const char *name;
    size_t offset;
    char type; /* 'i' int, 'L' int64, 'U' uint64, 'f' float, 's' const char * (None: NULL) */
} opt_field;

#define OPT(n, t)                                                                                  \
    {                                                                                              \
#n, offsetof(am_options, n), t                                                             \
    }
static const opt_field k_run_fields[] = {
    OPT(batch, 'i'),
    OPT(height, 'L'),
    OPT(width, 'L'),
    OPT(steps, 'i'),
    OPT(lr, 'f'),
    OPT(optimizer, 'i'),
    OPT(momentum, 'f'),
    OPT(seed, 'U'),
    OPT(param, 'i'),
    OPT(decorrelate, 'i'),
    OPT(decay_power, 'f'),
    OPT(transforms, 'i'),
    OPT(pad, 'i'),
    OPT(jitter, 'i'),
    OPT(scale_min, 'f'),
    OPT(scale_max, 'f'),
    OPT(rotate_deg, 'f'),
    OPT(l1, 'f'),
    OPT(l2, 'f'),
    OPT(tv, 'f'),
    OPT(blur, 'f'),
    OPT(init_std, 'f'),
    OPT(image_every, 'i'),
    OPT(crops, 'i'),
    OPT(crop_max, 'f'),
    OPT(crop_min, 'f'),
    OPT(noise, 'f'),
    OPT(contrast, 'f'),
    OPT(accent, 'f'),
    OPT(diversity, 'f'),
    OPT(diversity_layer, 's'),
};
#undef OPT

#define TOPT(n, t)                                                                                 \
    {                                                                                              \
#n, offsetof(am_text_options, n), t                                                        \
    }
static const opt_field k_text_fields[] = {
    TOPT(method, 'i'),   TOPT(len, 'i'),        TOPT(steps, 'i'),       TOPT(lr, 'f'),
    TOPT(distance, 'i'), TOPT(snap, 'f'),       TOPT(fluency, 'f'),     TOPT(topk, 'i'),
    TOPT(nearest, 'i'),  TOPT(batch, 'i'),      TOPT(position, 'i'),    TOPT(seed, 'U'),
    TOPT(restarts, 'i'), TOPT(retokenize, 'i'), TOPT(attribution, 'i'),
};
#undef TOPT

/* Sets the fields named in dict d on the struct at base; -1 on a bad key or value. */
static int set_fields(void *base, const opt_field *fields, size_t nf, PyObject *d)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &key, &value)) {
        const char *k = PyUnicode_AsUTF8(key);
        if (!k)
            return -1;
        const opt_field *f = NULL;
        for (size_t i = 0; i < nf && !f; i++)
            if (strcmp(fields[i].name, k) == 0)
                f = &fields[i];
        if (!f) {
            PyErr_Format(PyExc_KeyError, "no engine option %s", k);
            return -1;
        }
        char *p = (char *)base + f->offset;
        if (f->type == 's') {
            /* The text stays owned by the str the dict holds, which outlives the call. */
            const char *t = NULL;
            if (value != Py_None) {
                if (!PyUnicode_Check(value)) {
                    PyErr_Format(PyExc_TypeError, "%s must be a str or None, not %s", k,
                                 Py_TYPE(value)->tp_name);
                    return -1;
                }
                if (!(t = PyUnicode_AsUTF8(value)))
                    return -1;
            }
            *(const char **)p = t;
            continue;
        }
        if (f->type == 'f') {
            double v = PyFloat_AsDouble(value);
            if (v == -1 && PyErr_Occurred())
                return -1;
            *(float *)p = (float)v;
            continue;
        }
        long long v = PyLong_AsLongLong(value);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (f->type == 'i') {
            if (v < INT_MIN || v > INT_MAX) {
                PyErr_Format(PyExc_OverflowError, "%s=%lld does not fit an int", k, v);
                return -1;
            }
            *(int *)p = (int)v;
        } else if (f->type == 'L') {
            *(int64_t *)p = (int64_t)v;
        } else {
            *(uint64_t *)p = (uint64_t)v;
        }
    }
    return 0;
}

/* The fields of the struct at base as a dict (strings and NULL as None). */
static PyObject *get_fields(const void *base, const opt_field *fields, size_t nf)
{
    PyObject *d = PyDict_New();
    for (size_t i = 0; d && i < nf; i++) {
        const char *p = (const char *)base + fields[i].offset;
        PyObject *v;
        switch (fields[i].type) {
        case 'f': v = PyFloat_FromDouble(*(const float *)p); break;
        case 'i': v = PyLong_FromLong(*(const int *)p); break;
        case 'L': v = PyLong_FromLongLong(*(const int64_t *)p); break;
        case 'U': v = PyLong_FromUnsignedLongLong(*(const uint64_t *)p); break;
        default:
            v = *(const char *const *)p ? PyUnicode_FromString(*(const char *const *)p)
                                        : Py_NewRef(Py_None);
        }
        if (!v || PyDict_SetItemString(d, fields[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_CLEAR(d);
            break;
        }
        Py_DECREF(v);
    }
    return d;
}

/* options_default("image" | "text") -> the engine's defaults
 * (am_options_default, am_text_options_default) for the fields the module
 * passes, so the magics' key tables can be checked against them. */
static PyObject *mod_options_default(PyObject *Py_UNUSED(self), PyObject *arg)
{
    const char *kind = PyUnicode_AsUTF8(arg);
    if (!kind || ensure_engine() < 0)
        return NULL;
    if (strcmp(kind, "image") == 0) {
        am_options o;
        g_api->am_options_default(&o);
        return get_fields(&o, k_run_fields, sizeof k_run_fields / sizeof *k_run_fields);
    }
    if (strcmp(kind, "text") == 0) {
        am_text_options o;
        g_api->am_text_options_default(&o);
        return get_fields(&o, k_text_fields, sizeof k_text_fields / sizeof *k_text_fields);
    }
    PyErr_Format(PyExc_ValueError, "options_default(%R): expected \"image\" or \"text\"", arg);
    return NULL;
}

static PyObject *run_result(const am_run *r, int interrupted)
{
    int64_t shape[4] = {0};
    const float *img = g_api->am_run_images(r, shape);
    int steps = 0, nb = 0;
    const float *curve = g_api->am_run_curve(r, &steps);
    const float *fin = g_api->am_run_final(r, &nb);
    int na = 0;
    const float *act = g_api->am_run_activation(r, &na);
    int64_t tshape[4] = {0};
    const float *transp = g_api->am_run_transparency(r, tshape);
    const float *tgrey = g_api->am_run_transparency_map(r, NULL);
    const char *div_layer = g_api->am_run_diversity_layer(r);
    const char *note = g_api->am_run_note(r);
    int taken = g_api->am_run_steps(r);
    int nt = g_api->am_run_num_terms(r);
    PyObject *terms = PyList_New(0);
    for (int i = 0; terms && i < nt; i++) {
        PyObject *t = Py_BuildValue("(sN)", g_api->am_run_term_name(r, i),
                                    floats_out(g_api->am_run_term_curve(r, i), taken));
        if (!t || PyList_Append(terms, t) < 0) {
            Py_XDECREF(t);
            Py_CLEAR(terms);
            break;
        }
        Py_DECREF(t);
    }
    int ns = g_api->am_run_num_snapshots(r);
    PyObject *snaps = PyList_New(0);
    for (int k = 0; snaps && k < ns; k++) {
        int step = 0;
        int64_t ss[4] = {0};
        const float *s = g_api->am_run_snapshot(r, k, &step, ss);
        PyObject *t = Py_BuildValue("(iN)", step, array_out(s, sizeof(float), ss, 4));
        if (!t || PyList_Append(snaps, t) < 0) {
            Py_XDECREF(t);
            Py_CLEAR(snaps);
            break;
        }
        Py_DECREF(t);
    }
    /* No transparency map (not a MACO run): None. */
    PyObject *tmap = transp ? array_out(transp, sizeof(float), tshape, 4) : Py_NewRef(Py_None);
    PyObject *tgmap = tgrey ? array_out(tgrey, sizeof(float), tshape, 4) : Py_NewRef(Py_None);
    if (!terms || !snaps || !tmap || !tgmap) {
        Py_XDECREF(terms);
        Py_XDECREF(snaps);
        Py_XDECREF(tmap);
        Py_XDECREF(tgmap);
        return NULL;
    }
    return Py_BuildValue("{s:N,s:N,s:N,s:N,s:N,s:N,s:s,s:s,s:N,s:N,s:i,s:d,s:O,s:O}", "images",
                         array_out(img, sizeof(float), shape, 4), "curve", floats_out(curve, steps),
                         "final", floats_out(fin, nb), "activation", floats_out(act, na),
                         "transparency", tmap, "transparency_map", tgmap, "diversity_layer",
                         div_layer ? div_layer : "", "note", note ? note : "", "terms", terms,
                         "snapshots", snaps, "steps", taken, "seconds", g_api->am_run_seconds(r),
                         "cancelled", g_api->am_run_cancelled(r) ? Py_True : Py_False,
                         "interrupted", interrupted ? Py_True : Py_False);
}

/* The engine options of a run from Python's (objectives, options dict,
 * init buffer or None), shared by maximize and code; release with
 * run_args_release whatever run_args_init returned. */
typedef struct run_args {
    PyObject *seq;
    const char **names;
    Py_buffer view;
    int have_view;
    am_options o;
} run_args;

static void run_args_release(run_args *ra)
{
    if (ra->have_view)
        PyBuffer_Release(&ra->view);
    PyMem_Free(ra->names);
    Py_XDECREF(ra->seq);
}

static int run_args_init(run_args *ra, PyObject *objs, PyObject *opts, PyObject *init)
{
    memset(ra, 0, sizeof *ra);
    g_api->am_options_default(&ra->o);
    if (!(ra->seq = PySequence_Fast(objs, "objectives must be a list of strings")))
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(ra->seq);
    if (!(ra->names = PyMem_Calloc((size_t)n + 1, sizeof *ra->names))) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(ra->names[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(ra->seq, i))))
            return -1;
    ra->o.objectives = ra->names;
    ra->o.n_objectives = (int)n;
    if (set_fields(&ra->o, k_run_fields, sizeof k_run_fields / sizeof *k_run_fields, opts) < 0)
        return -1;
    if (init != Py_None) {
        if (PyObject_GetBuffer(init, &ra->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            return -1;
        ra->have_view = 1;
        if (!is_float_format(ra->view.format) || ra->view.itemsize != 4) {
            PyErr_SetString(PyExc_TypeError, "init must be float32");
            return -1;
        }
        ra->o.init = AM_INIT_IMAGE;
        ra->o.init_image = ra->view.buf;
    }
    return 0;
}

/* maximize(objectives, options, init, thresholds, progress, updates_per_s) -> dict */
static PyObject *Model_maximize(ModelObject *self, PyObject *args)
{
    PyObject *objs, *opts, *init, *thr, *progress;
    double per_second;
    if (!PyArg_ParseTuple(args, "OO!OOOd", &objs, &PyDict_Type, &opts, &init, &thr, &progress,
                          &per_second))
        return NULL;
    PyObject *thr_seq = NULL, *result = NULL;
    int *thresholds = NULL;
    run_args ra;
    if (run_args_init(&ra, objs, opts, init) < 0)
        goto done;
    if (thr != Py_None) {
        if (!(thr_seq = PySequence_Fast(thr, "thresholds must be a list of steps")))
            goto done;
        Py_ssize_t nt = PySequence_Fast_GET_SIZE(thr_seq);
        thresholds = PyMem_Calloc((size_t)nt + 1, sizeof *thresholds);
        for (Py_ssize_t i = 0; i < nt; i++) {
            long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(thr_seq, i));
            if (v == -1 && PyErr_Occurred())
                goto done;
            thresholds[i] = (int)v;
        }
        ra.o.thresholds = thresholds;
        ra.o.n_thresholds = (int)nt;
    }
    progress_ctx g;
    progress_init(&g, progress, per_second);
    ra.o.progress = run_progress;
    ra.o.progress_user = &g;
    if (model_enter(self) < 0)
        goto done;
    am_run *run = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = g_api->am_run_new(self->m, &ra.o, &run);
    Py_END_ALLOW_THREADS model_leave(self);
    if (progress_finish(&g) < 0) {
        g_api->am_run_free(run);
        goto done;
    }
    if (rc != AM_OK) {
        raise_status(rc, run ? g_api->am_run_error(run) : "");
        g_api->am_run_free(run);
        goto done;
    }
    result = run_result(run, g.interrupted);
    g_api->am_run_free(run);
done:
    run_args_release(&ra);
    PyMem_Free(thresholds);
    Py_XDECREF(thr_seq);
    return result;
}

/* code(objectives, options, init, model_code) -> str: the run as a PyTorch script (am_run_code) */
static PyObject *Model_code(ModelObject *self, PyObject *args)
{
    PyObject *objs, *opts, *init;
    const char *path, *model_code;
    if (!PyArg_ParseTuple(args, "OO!Osz", &objs, &PyDict_Type, &opts, &init, &path, &model_code))
        return NULL;
    PyObject *result = NULL;
    run_args ra;
    if (run_args_init(&ra, objs, opts, init) < 0 || model_enter(self) < 0)
        goto done;
    char *code = NULL, err[1024] = "";
    int rc;
    Py_BEGIN_ALLOW_THREADS rc =
        g_api->am_run_code(self->m, &ra.o, path, model_code, &code, err, sizeof err);
    Py_END_ALLOW_THREADS model_leave(self);
    if (rc != AM_OK)
        raise_status(rc, err);
    else
        result = PyUnicode_FromString(code);
    free(code);
done:
    run_args_release(&ra);
    return result;
}

/* diversity(x, kind, layer) -> float: the batch's diversity term (am_model_diversity) */
static PyObject *Model_diversity(ModelObject *self, PyObject *args)
{
    PyObject *x;
    int kind;
    const char *layer;
    if (!PyArg_ParseTuple(args, "Ois", &x, &kind, &layer))
        return NULL;
    Py_buffer view;
    am_input in;
    if (input_enter(self, x, kind, &view, &in) < 0)
        return NULL;
    float value = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = g_api->am_model_diversity(self->m, &in, layer, &value);
    Py_END_ALLOW_THREADS model_leave(self);
    PyBuffer_Release(&view);
    return rc == AM_OK ? PyFloat_FromDouble(value) : model_fail(self, rc);
}

/* ---------------------------------------------------------------- text runs */

static PyObject *text_result(const am_text_run *r, int interrupted)
{
    int len = 0, steps = 0, xsteps = 0, dim = 0, k = 0, vocab = 0, pos = 0;
    const int64_t *ids = g_api->am_text_run_tokens(r, &len);
    const char *text = g_api->am_text_run_text(r);
    const float *curve = g_api->am_text_run_curve(r, &steps);
    const float *xcurve = g_api->am_text_run_xent_curve(r, &xsteps);
    int psteps = 0, blen = 0, bstep = 0;
    const float *pcurve = g_api->am_text_run_projected_curve(r, &psteps);
    const int64_t *bids = NULL;
    float bact = NAN;
    g_api->am_text_run_best(r, &bids, &blen, &bact, &bstep);
    PyObject *embeds = Py_None, *nearest = Py_None, *attribution = Py_None, *sweep = Py_None;
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    int elen = 0;
    const float *e = g_api->am_text_run_embeds(r, &elen, &dim);
    if (e) {
        int64_t sh[2] = {elen, dim};
        Py_DECREF(embeds);
        embeds = array_out(e, sizeof(float), sh, 2);
    }
    const int64_t *nid = NULL;
    const float *nval = NULL;
    int nlen = 0;
    if (g_api->am_text_run_nearest(r, &nid, &nval, &nlen, &k) == AM_OK && nid) {
        int64_t sh[2] = {nlen, k};
        Py_DECREF(nearest);
        nearest = Py_BuildValue("(NN)", array_out(nid, sizeof(int64_t), sh, 2),
                                array_out(nval, sizeof(float), sh, 2));
    }
    const float *drop = NULL;
    const int64_t *alt = NULL;
    int alen = 0;
    if (g_api->am_text_run_attribution(r, &drop, &alt, &alen) == AM_OK && drop) {
        Py_DECREF(attribution);
        attribution = Py_BuildValue("(NN)", floats_out(drop, alen), ints_out(alt, alen));
    }
    const float *sw = g_api->am_text_run_sweep(r, &vocab, &pos);
    if (sw) {
        Py_DECREF(sweep);
        sweep = Py_BuildValue("(Ni)", floats_out(sw, vocab), pos);
    }
    if (!embeds || !nearest || !attribution || !sweep) {
        Py_XDECREF(embeds);
        Py_XDECREF(nearest);
        Py_XDECREF(attribution);
        Py_XDECREF(sweep);
        return NULL;
    }
    return Py_BuildValue(
        "{s:N,s:y,s:O,s:d,s:d,s:d,s:d,s:N,s:N,s:N,s:N,s:N,s:N,s:i,s:d,s:O,s:O,s:N,s:N,s:d,s:i,s:s}",
        "ids", ints_out(ids, len), "text", text ? text : "", "roundtrip",
        g_api->am_text_run_roundtrip(r) ? Py_True : Py_False, "activation",
        (double)g_api->am_text_run_activation(r), "xent", (double)g_api->am_text_run_xent(r),
        "soft_activation", (double)g_api->am_text_run_soft_activation(r), "retention",
        (double)g_api->am_text_run_retention(r), "curve", floats_out(curve, steps), "xent_curve",
        floats_out(xcurve, xsteps), "embeds", embeds, "nearest", nearest, "attribution",
        attribution, "sweep", sweep, "steps", g_api->am_text_run_steps(r), "seconds",
        g_api->am_text_run_seconds(r), "cancelled",
        g_api->am_text_run_cancelled(r) ? Py_True : Py_False, "interrupted",
        interrupted ? Py_True : Py_False, "projected_curve", floats_out(pcurve, psteps), "best_ids",
        ints_out(bids, bids ? blen : 0), "best_activation", (double)bact, "best_step", bstep,
        "note", g_api->am_text_run_note(r));
}

/* tokens(objective, options, init_ids, progress, updates_per_s) -> dict */
static PyObject *Model_tokens(ModelObject *self, PyObject *args)
{
    const char *objective;
    PyObject *opts, *init, *progress;
    double per_second;
    if (!PyArg_ParseTuple(args, "zO!OOd", &objective, &PyDict_Type, &opts, &init, &progress,
                          &per_second))
        return NULL;
    am_text_options o;
    g_api->am_text_options_default(&o);
    o.objective = objective;
    if (set_fields(&o, k_text_fields, sizeof k_text_fields / sizeof *k_text_fields, opts) < 0)
        return NULL;
    Py_buffer view = {0};
    int have_view = 0;
    if (init != Py_None) {
        if (PyObject_GetBuffer(init, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            return NULL;
        have_view = 1;
        if (!is_int64_format(view.format) || view.itemsize != 8 ||
            view.len / 8 != (Py_ssize_t)o.len) {
            PyBuffer_Release(&view);
            PyErr_Format(PyExc_ValueError, "init must be %d int64 token ids", o.len);
            return NULL;
        }
        o.init_tokens = view.buf;
    }
    progress_ctx g;
    progress_init(&g, progress, per_second);
    o.progress = text_progress;
    o.progress_user = &g;
    PyObject *result = NULL;
    if (model_enter(self) == 0) {
        am_text_run *run = NULL;
        int rc;
        Py_BEGIN_ALLOW_THREADS rc = g_api->am_text_run_new(self->m, &o, &run);
        Py_END_ALLOW_THREADS model_leave(self);
        if (progress_finish(&g) == 0) {
            if (rc != AM_OK)
                raise_status(rc, run ? g_api->am_text_run_error(run) : "");
            else
                result = text_result(run, g.interrupted);
        }
        g_api->am_text_run_free(run);
    }
    if (have_view)
        PyBuffer_Release(&view);
    return result;
}

/* One am_example as (index, value, label, label_name, image, tokens, acts,
 * peak, scored). */
static PyObject *example_tuple(const am_example *e)
{
    PyObject *img = Py_None, *toks = Py_None, *acts = Py_None;
    if (e->image)
        img = array_out(e->image, sizeof(float), e->shape, 3);
    else
        Py_INCREF(img);
    if (e->tokens) {
        toks = ints_out(e->tokens, e->len);
        acts = floats_out(e->acts, e->len);
    } else {
        Py_INCREF(toks);
        Py_INCREF(acts);
    }
    if (!img || !toks || !acts) {
        Py_XDECREF(img);
        Py_XDECREF(toks);
        Py_XDECREF(acts);
        return NULL;
    }
    return Py_BuildValue("(LdLsNNNii)", (long long)e->index, (double)e->value, (long long)e->label,
                         e->label_name ? e->label_name : "", img, toks, acts, e->peak, e->scored);
}

/* The distribution parts of a scan: histogram, firing rate, bands, class
 * means and (text) the window, as dict entries of d. */
static int examples_distribution(const am_examples *ex, PyObject *d)
{
    const int64_t *counts;
    int bins;
    float lo, hi;
    PyObject *v;
    if (g_api->am_examples_histogram(ex, &counts, &bins, &lo, &hi) == AM_OK) {
        PyObject *c = PyList_New(bins);
        for (int i = 0; c && i < bins; i++)
            PyList_SET_ITEM(c, i, PyLong_FromLongLong((long long)counts[i]));
        v = c ? Py_BuildValue("(Ndd)", c, (double)lo, (double)hi) : NULL;
    } else {
        v = Py_NewRef(Py_None);
    }
    if (!v || PyDict_SetItemString(d, "histogram", v) < 0)
        return Py_XDECREF(v), -1;
    Py_DECREF(v);
    if (PyDict_SetItemString(d, "sampled",
                             g_api->am_examples_sampled(ex) == 1 ? Py_True : Py_False) < 0)
        return -1;
    v = PyFloat_FromDouble(g_api->am_examples_firing_rate(ex));
    if (!v || PyDict_SetItemString(d, "firing_rate", v) < 0)
        return Py_XDECREF(v), -1;
    Py_DECREF(v);
    int nb = g_api->am_examples_num_bands(ex);
    PyObject *bands = PyList_New(0);
    for (int b = 0; bands && b < nb; b++) {
        PyObject *items = PyList_New(0);
        float blo = NAN, bhi = NAN;
        am_example e;
        for (int i = 0; items; i++) {
            memset(&e, 0, sizeof e);
            if (g_api->am_examples_band_get(ex, b, i, &e, &blo, &bhi) != AM_OK)
                break;
            PyObject *t = example_tuple(&e);
            if (!t || PyList_Append(items, t) < 0)
                Py_CLEAR(items);
            Py_XDECREF(t);
        }
        if (!items) {
            Py_CLEAR(bands);
            break;
        }
        g_api->am_examples_band_get(ex, b, 0, NULL, &blo, &bhi);
        PyObject *band = Py_BuildValue("(ddN)", (double)blo, (double)bhi, items);
        if (!band || PyList_Append(bands, band) < 0)
            Py_CLEAR(bands);
        Py_XDECREF(band);
    }
    if (!bands || PyDict_SetItemString(d, "bands", bands) < 0)
        return Py_XDECREF(bands), -1;
    Py_DECREF(bands);
    const float *means;
    int n;
    if (g_api->am_examples_class_means(ex, &means, &n) == AM_OK)
        v = floats_out(means, n);
    else
        v = Py_NewRef(Py_None);
    if (!v || PyDict_SetItemString(d, "class_means", v) < 0)
        return Py_XDECREF(v), -1;
    Py_DECREF(v);
    v = PyLong_FromLongLong((long long)g_api->am_examples_forwards(ex));
    if (!v || PyDict_SetItemString(d, "forwards", v) < 0)
        return Py_XDECREF(v), -1;
    Py_DECREF(v);
    int64_t window, context;
    if (g_api->am_examples_text_window(ex, &window, &context) == AM_OK)
        v = Py_BuildValue("(LL)", (long long)window, (long long)context);
    else
        v = Py_NewRef(Py_None);
    if (!v || PyDict_SetItemString(d, "window", v) < 0)
        return Py_XDECREF(v), -1;
    Py_DECREF(v);
    return 0;
}

/* examples(objective, dataset, path, split, window, stride, context, k,
 * limit, batch, bins, quantiles, per_band, band_percentiles, progress,
 * updates_per_s) -> dict: the top-k items of a dataset (images or token
 * windows) and the distribution of the objective over it, through the
 * engine's one scanner. band_percentiles: a sequence of quantiles + 1
 * floats, or None. */
static PyObject *Model_examples(ModelObject *self, PyObject *args)
{
    am_examples_options o;
    g_api->am_examples_options_default(&o);
    PyObject *progress, *percentiles;
    double per_second;
    long long window, stride, context, limit;
    if (!PyArg_ParseTuple(args, "zzzzLLLiLiiiiOOd", &o.objective, &o.dataset, &o.path, &o.split,
                          &window, &stride, &context, &o.k, &limit, &o.batch, &o.bins, &o.quantiles,
                          &o.per_band, &percentiles, &progress, &per_second))
        return NULL;
    o.window = window;
    o.stride = stride;
    o.context = context;
    o.limit = limit;
    double edges[101];
    if (percentiles != Py_None) {
        PyObject *seq =
            PySequence_Fast(percentiles, "band_percentiles must be a sequence of numbers");
        if (!seq)
            return NULL;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        if (n != o.quantiles + 1 || n > 101) {
            Py_DECREF(seq);
            return PyErr_Format(PyExc_ValueError,
                                "band_percentiles needs quantiles + 1 = %d edges, got %zd",
                                o.quantiles + 1, n);
        }
        for (Py_ssize_t i = 0; i < n; i++)
            edges[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        Py_DECREF(seq);
        if (PyErr_Occurred())
            return NULL;
        o.band_percentiles = edges;
    }
    progress_ctx g;
    progress_init(&g, progress, per_second);
    o.progress = examples_progress;
    o.progress_user = &g;
    if (model_enter(self) < 0)
        return NULL;
    am_examples *ex = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = g_api->am_examples_new(self->m, &o, &ex);
    Py_END_ALLOW_THREADS model_leave(self);
    PyObject *result = NULL;
    if (progress_finish(&g) < 0)
        goto done;
    if (rc != AM_OK) {
        raise_status(rc, ex ? g_api->am_examples_error(ex) : "");
        goto done;
    }
    int n = g_api->am_examples_count(ex);
    PyObject *items = PyList_New(n);
    for (int i = 0; items && i < n; i++) {
        am_example e;
        memset(&e, 0, sizeof e);
        g_api->am_examples_get(ex, i, &e);
        PyObject *t = example_tuple(&e);
        if (!t) {
            Py_CLEAR(items);
            break;
        }
        PyList_SET_ITEM(items, i, t);
    }
    if (items)
        result = Py_BuildValue("{s:N,s:s,s:d,s:L,s:O,s:O}", "items", items, "kind",
                               g_api->am_examples_kind(ex) == AM_DATASET_IMAGE ? "image" : "text",
                               "max", (double)g_api->am_examples_max(ex), "scanned",
                               (long long)g_api->am_examples_scanned(ex), "cancelled",
                               g_api->am_examples_cancelled(ex) ? Py_True : Py_False, "interrupted",
                               g.interrupted ? Py_True : Py_False);
    if (result && examples_distribution(ex, result) < 0)
        Py_CLEAR(result);
done:
    g_api->am_examples_free(ex);
    return result;
}

/* ---------------------------------------------------------------- tokenizer */

static am_tokenizer *model_tokenizer(ModelObject *self)
{
    if (self->tok)
        return self->tok;
    if (!self->m) {
        PyErr_SetString(PyExc_ValueError, "the model was closed");
        return NULL;
    }
    const char *bytes = NULL;
    size_t len = 0;
    int rc = g_api->am_model_tokenizer(self->m, &bytes, &len);
    if (rc != AM_OK) {
        PyErr_Format(error_class("UnsupportedError"),
                     "%s: the model carries no tokenizer (its actmax.json needs a \"tokenizer\" "
                     "field naming an extra file in the TorchScript archive, e.g. tokenizer.json)",
                     g_api->am_strerror(rc));
        return NULL;
    }
    am_tokenizer *t = NULL;
    rc = g_api->am_tokenizer_load_json(bytes, len, &t);
    if (rc != 0) {
        PyErr_Format(error_class("FormatError"), "the model's tokenizer does not parse: %s",
                     t ? g_api->am_tokenizer_error(t) : "out of memory");
        g_api->am_tokenizer_free(t);
        return NULL;
    }
    return self->tok = t;
}

static PyObject *Model_encode(ModelObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    am_tokenizer *t = model_tokenizer(self);
    PyObject *r = NULL;
    if (t) {
        int64_t *ids = NULL;
        size_t n = 0;
        int rc = g_api->am_tokenizer_encode(t, view.buf, (size_t)view.len, &ids, &n);
        if (rc != 0)
            PyErr_Format(PyExc_ValueError, "%s: %s", g_api->am_strerror(rc),
                         g_api->am_tokenizer_error(t));
        else
            r = ints_out(ids, (int64_t)n);
        free(ids);
    }
    PyBuffer_Release(&view);
    return r;
}

static PyObject *Model_decode(ModelObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    PyObject *r = NULL;
    if (!is_int64_format(view.format) || view.itemsize != 8) {
        PyErr_SetString(PyExc_TypeError, "token ids must be int64");
    } else {
        am_tokenizer *t = model_tokenizer(self);
        if (t) {
            char *text = NULL;
            size_t len = 0;
            int rc = g_api->am_tokenizer_decode(t, view.buf, (size_t)(view.len / 8), &text, &len);
            if (rc != 0)
                PyErr_Format(PyExc_ValueError, "%s", g_api->am_tokenizer_error(t));
            else
                r = PyBytes_FromStringAndSize(text, (Py_ssize_t)len);
            free(text);
        }
    }
    PyBuffer_Release(&view);
    return r;
}

static PyObject *Model_token_text(ModelObject *self, PyObject *arg)
{
    long long id = PyLong_AsLongLong(arg);
    if (id == -1 && PyErr_Occurred())
        return NULL;
    am_tokenizer *t = model_tokenizer(self);
    if (!t)
        return NULL;
    char buf[256];
    int n = g_api->am_tokenizer_token_text(t, id, buf, sizeof buf);
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "%s", g_api->am_tokenizer_error(t));
        return NULL;
    }
    return PyUnicode_DecodeUTF8(buf, (Py_ssize_t)strlen(buf), "replace");
}

static PyObject *Model_tokenizer_bytes(ModelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->m) {
        PyErr_SetString(PyExc_ValueError, "the model was closed");
        return NULL;
    }
    const char *bytes = NULL;
    size_t len = 0;
    int rc = g_api->am_model_tokenizer(self->m, &bytes, &len);
    if (rc != AM_OK)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(bytes, (Py_ssize_t)len);
}

static PyObject *Model_vocab_size(ModelObject *self, PyObject *Py_UNUSED(ignored))
{
    am_tokenizer *t = model_tokenizer(self);
    return t ? PyLong_FromLongLong(g_api->am_tokenizer_vocab_size(t)) : NULL;
}

static PyObject *Model_close(ModelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the model is busy; close it after the call returns");
        return NULL;
    }
    if (g_api) {
        g_api->am_tokenizer_free(self->tok);
        g_api->am_model_free(self->m);
    }
    self->tok = NULL;
    self->m = NULL;
    Py_RETURN_NONE;
}

static PyMethodDef Model_methods[] = {
    {"info", (PyCFunction)Model_info, METH_NOARGS,
     "kind, device, input, mean, std, range, labels, ..."},
    {"layers", (PyCFunction)Model_layers, METH_NOARGS, "[(name, type, shape, params, calls)]"},
    {"tap", (PyCFunction)Model_tap, METH_VARARGS, "tap(x, kind, layers, grad)"},
    {"objective", (PyCFunction)Model_objective, METH_VARARGS,
     "objective(x, kind, objective, positions)"},
    {"embeddings", (PyCFunction)Model_embeddings, METH_NOARGS, "the embedding matrix (vocab, D)"},
    {"objective_each", (PyCFunction)Model_objective_each, METH_VARARGS,
     "objective_each(objective) -> [one objective per index of its slice]"},
    {"logit_lens", (PyCFunction)Model_logit_lens, METH_VARARGS,
     "logit_lens(layer, neuron, k) -> (top ids, top values, bottom ids, bottom values, all)"},
    {"maximize", (PyCFunction)Model_maximize, METH_VARARGS,
     "maximize(objectives, options, init, thresholds, progress, updates_per_s)"},
    {"code", (PyCFunction)Model_code, METH_VARARGS,
     "code(objectives, options, init, model_path, model_code) -> the run as a PyTorch script"},
    {"diversity", (PyCFunction)Model_diversity, METH_VARARGS,
     "diversity(x, kind, layer) -> the batch's diversity term"},
    {"tokens", (PyCFunction)Model_tokens, METH_VARARGS,
     "tokens(objective, options, init_ids, progress, updates_per_s)"},
    {"examples", (PyCFunction)Model_examples, METH_VARARGS,
     "examples(objective, dataset, path, split, window, stride, context, k, limit, batch, bins, "
     "quantiles, per_band, band_percentiles, progress, updates_per_s)"},
    {"encode", (PyCFunction)Model_encode, METH_O, "encode(bytes) -> int64 ids"},
    {"decode", (PyCFunction)Model_decode, METH_O, "decode(int64 ids) -> bytes"},
    {"token_text", (PyCFunction)Model_token_text, METH_O, "one token as printable text"},
    {"vocab_size", (PyCFunction)Model_vocab_size, METH_NOARGS, "tokens in the vocabulary"},
    {"tokenizer_bytes", (PyCFunction)Model_tokenizer_bytes, METH_NOARGS,
     "the tokenizer extra file's bytes, or None"},
    {"close", (PyCFunction)Model_close, METH_NOARGS, "frees the engine's model now"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ModelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "actmax._actmax.Model",
    .tp_basicsize = sizeof(ModelObject),
    .tp_dealloc = (destructor)Model_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "An engine model (am_model): Model(path | bytes, device='cpu', input_shape=None, "
              "metadata=None)",
    .tp_methods = Model_methods,
    .tp_init = (initproc)Model_init,
    .tp_new = PyType_GenericNew,
};

/* ================================================================ module functions */

static PyObject *mod_engine(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(ignored))
{
    if (ensure_engine() < 0)
        return NULL;
    char blas[1024] = "";
    int optimized = 0;
    g_api->am_blas_info(blas, sizeof blas, &optimized);
    return Py_BuildValue("{s:s,s:I,s:s,s:s,s:O}", "version", g_api->version, "api_version",
                         (unsigned)g_api->api_version, "path", g_engine_path, "blas", blas,
                         "blas_optimized", optimized ? Py_True : Py_False);
}

/* background_note(marker) -> the sentence of a background build's marker
 * file while its process runs, else None (ext/loader, as the kernel reads
 * it). */
static PyObject *mod_background_note(PyObject *Py_UNUSED(self), PyObject *args)
{
    const char *marker;
    if (!PyArg_ParseTuple(args, "s", &marker))
        return NULL;
    char note[1024];
    if (!am_loader_background_note(marker, note, sizeof note))
        Py_RETURN_NONE;
    return PyUnicode_FromString(note);
}

/* memory_available(device) -> bytes the engine may still take there, or
 * None where it cannot be known (am_memory_available). */
static PyObject *mod_memory_available(PyObject *Py_UNUSED(self), PyObject *args)
{
    const char *device = "cpu";
    if (!PyArg_ParseTuple(args, "|s", &device))
        return NULL;
    if (ensure_engine() < 0)
        return NULL;
    double bytes = -1;
    if (g_api->am_memory_available(device, &bytes) != AM_OK) {
        PyErr_Format(PyExc_ValueError, "device=%s: expected cpu, cuda or cuda:N", device);
        return NULL;
    }
    if (bytes < 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(bytes);
}

/* dataset_item(name, split, index) -> (size, (C, H, W), item): item index of
 * an image dataset in [0, 1] as (bytearray, shape), None when index is not
 * below size; the readers' error raised when the dataset cannot be read. */
static PyObject *mod_dataset_item(PyObject *Py_UNUSED(self), PyObject *args)
{
    const char *name, *split;
    long long index;
    if (!PyArg_ParseTuple(args, "ssL", &name, &split, &index))
        return NULL;
    if (ensure_engine() < 0)
        return NULL;
    am_dataset *ds = NULL;
    am_batch b = {0};
    int64_t shape[3] = {0};
    PyObject *r = NULL;
    int rc = g_api->am_dataset_open(name, split, NULL, &ds);
    if (rc != AM_OK) {
        raise_status(rc, g_api->am_dataset_error(ds));
        g_api->am_dataset_free(ds);
        return NULL;
    }
    int64_t size = g_api->am_dataset_size(ds);
    if (g_api->am_dataset_item_shape(ds, shape, 3) != 3) {
        PyErr_Format(PyExc_ValueError, "%s is not an image dataset", name);
    } else if (index < 0 || index >= size) {
        r = Py_BuildValue("(L(LLL)O)", (long long)size, (long long)shape[0], (long long)shape[1],
                          (long long)shape[2], Py_None);
    } else if ((rc = g_api->am_dataset_item(ds, index, &b)) != AM_OK || !b.images) {
        raise_status(rc != AM_OK ? rc : AM_E_FORMAT, g_api->am_dataset_error(ds));
    } else {
        r = Py_BuildValue("(L(LLL)N)", (long long)size, (long long)shape[0], (long long)shape[1],
                          (long long)shape[2], array_out(b.images, sizeof(float), shape, 3));
    }
    g_api->am_dataset_free(ds);
    return r;
}

/* tokenize(tokenizer_json, text) -> int64 ids: a tokenizer.json (bytes) of
 * one's own, without a model, through am_tokenizer_*. */
static PyObject *mod_tokenize(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer json, text;
    if (!PyArg_ParseTuple(args, "y*y*", &json, &text))
        return NULL;
    PyObject *r = NULL;
    am_tokenizer *t = NULL;
    if (ensure_engine() < 0)
        goto done;
    int rc = g_api->am_tokenizer_load_json(json.buf, (size_t)json.len, &t);
    if (rc != 0) {
        raise_error(error_class(g_api->am_status_class(rc)),
                    PyUnicode_FromFormat("%s: the tokenizer does not parse: %s",
                                         g_api->am_strerror(rc),
                                         t ? g_api->am_tokenizer_error(t) : "out of memory"),
                    rc, t ? g_api->am_tokenizer_error(t) : "");
        goto done;
    }
    int64_t *ids = NULL;
    size_t n = 0;
    rc = g_api->am_tokenizer_encode(t, text.buf, (size_t)text.len, &ids, &n);
    if (rc != 0)
        raise_status(rc, g_api->am_tokenizer_error(t));
    else
        r = ints_out(ids, (int64_t)n);
    free(ids);
done:
    g_api->am_tokenizer_free(t);
    PyBuffer_Release(&json);
    PyBuffer_Release(&text);
    return r;
}

/* array_save(path, array): a C-contiguous float32 or int64 buffer (any
 * dimensions, none included) written by am_array_save as .npy or .pt. */
static PyObject *mod_array_save(PyObject *Py_UNUSED(self), PyObject *args)
{
    const char *path;
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "sO", &path, &obj))
        return NULL;
    if (ensure_engine() < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    int dtype = -1;
    if (is_int64_format(view.format) && view.itemsize == 8)
        dtype = AM_DTYPE_INT64;
    else if (view.format && is_float_format(view.format) && view.itemsize == 4)
        dtype = AM_DTYPE_FLOAT32;
    if (dtype < 0) {
        PyErr_Format(PyExc_TypeError, "array_save takes float32 or int64 arrays, not format '%s'",
                     view.format ? view.format : "B");
        PyBuffer_Release(&view);
        return NULL;
    }
    int64_t *shape = PyMem_Calloc((size_t)view.ndim + 1, sizeof *shape);
    if (!shape) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    for (int i = 0; i < view.ndim; i++)
        shape[i] = view.shape ? (int64_t)view.shape[i] : (int64_t)(view.len / view.itemsize);
    char err[1024] = "";
    int rc;
    Py_BEGIN_ALLOW_THREADS rc =
        g_api->am_array_save(path, dtype, view.buf, shape, view.ndim, err, sizeof err);
    Py_END_ALLOW_THREADS PyMem_Free(shape);
    PyBuffer_Release(&view);
    if (rc != AM_OK)
        return raise_status(rc, err);
    Py_RETURN_NONE;
}

/* param_image(model or None, options, params) -> (bytes, shape): the display image a run
 * renders from its parameters (am_param_image); param_magnitude(model or None, options, C, H, W)
 * -> ((bytes, shape), note): MACO's fixed magnitude (am_param_magnitude). */
static int param_args(PyObject *model, PyObject *opts, am_model **m, am_options *o)
{
    if (ensure_engine() < 0)
        return -1;
    *m = NULL;
    if (model != Py_None) {
        if (!PyObject_TypeCheck(model, &ModelType)) {
            PyErr_SetString(PyExc_TypeError, "model must be an actmax model or None");
            return -1;
        }
        if (!(*m = ((ModelObject *)model)->m)) {
            PyErr_SetString(PyExc_ValueError, "the model was closed");
            return -1;
        }
    }
    g_api->am_options_default(o);
    return set_fields(o, k_run_fields, sizeof k_run_fields / sizeof *k_run_fields, opts);
}

static PyObject *mod_param_image(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *model, *opts, *obj;
    if (!PyArg_ParseTuple(args, "OO!O", &model, &PyDict_Type, &opts, &obj))
        return NULL;
    am_model *m;
    am_options o;
    if (param_args(model, opts, &m, &o) < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    PyObject *r = NULL;
    int64_t shape[8] = {0}, out[4] = {0};
    if (!is_float_format(view.format) || view.itemsize != 4 || view.ndim < 1 || view.ndim > 8) {
        PyErr_SetString(PyExc_TypeError, "params must be a float32 array of 1 to 8 dimensions");
        goto done;
    }
    for (int i = 0; i < view.ndim; i++)
        shape[i] = (int64_t)view.shape[i];
    /* The image is (B, C, H, W): W from the options or the model when the parameters hold frequencies. */
    out[0] = shape[0];
    out[1] = view.ndim > 1 ? shape[1] : 1;
    out[2] = view.ndim > 2 ? shape[2] : 1;
    out[3] = view.ndim > 3 ? shape[3] : 1;
    if (o.param != AM_PARAM_PIXEL && view.ndim >= 4) {
        int64_t in[AM_MAX_DIMS] = {0};
        int64_t wf = shape[3],
                mw = m && g_api->am_model_input_shape(m, in, AM_MAX_DIMS) == 3 ? in[2] : 0;
        out[3] = o.width > 0 ? o.width : mw > 0 && mw / 2 + 1 == wf ? mw : 2 * (wf - 1);
    }
    size_t count = (size_t)(out[0] * out[1] * out[2] * (out[3] > 0 ? out[3] : 1));
    float *img = PyMem_Calloc(count + 1, sizeof *img);
    if (!img) {
        PyErr_NoMemory();
        goto done;
    }
    char err[1024] = "";
    int rc;
    Py_BEGIN_ALLOW_THREADS rc =
        g_api->am_param_image(m, &o, view.buf, shape, view.ndim, img, err, sizeof err);
    Py_END_ALLOW_THREADS if (rc != AM_OK) raise_status(rc, err);
    else r = array_out(img, sizeof(float), out, 4);
    PyMem_Free(img);
done:
    PyBuffer_Release(&view);
    return r;
}

static PyObject *mod_param_magnitude(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *model, *opts;
    long long C, H, W;
    if (!PyArg_ParseTuple(args, "OO!LLL", &model, &PyDict_Type, &opts, &C, &H, &W))
        return NULL;
    am_model *m;
    am_options o;
    if (param_args(model, opts, &m, &o) < 0)
        return NULL;
    if (C < 1 || H < 1 || W < 1 || C > 64 || H > 4096 || W > 4096) {
        PyErr_SetString(PyExc_ValueError, "the canvas C x H x W must be 1..64 x 1..4096 x 1..4096");
        return NULL;
    }
    int64_t shape[3] = {C, H, W / 2 + 1};
    float *mag = PyMem_Calloc((size_t)(C * H * (W / 2 + 1)), sizeof *mag);
    if (!mag)
        return PyErr_NoMemory();
    char note[1024] = "";
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = g_api->am_param_magnitude(m, &o, C, H, W, mag, note, sizeof note);
    Py_END_ALLOW_THREADS PyObject *r =
        rc == AM_OK ? Py_BuildValue("(Ns)", array_out(mag, sizeof(float), shape, 3), note)
                    : raise_status(rc, note);
    PyMem_Free(mag);
    return r;
}

static PyObject *mod_keys(PyObject *Py_UNUSED(self), PyObject *arg)
{
    const char *magic = PyUnicode_AsUTF8(arg);
    if (!magic)
        return NULL;
    const mg_key *k = mg_magic_keys(magic);
    if (!k) {
        PyErr_Format(PyExc_KeyError, "no magic %s", magic);
        return NULL;
    }
    static const char *const types[] = {"int", "float", "string", "bool", "enum"};
    PyObject *out = PyList_New(0);
    for (; out && k->name; k++) {
        PyObject *t = Py_BuildValue("(sszddzs)", k->name, types[k->type], k->def, k->lo, k->hi,
                                    k->choices, k->doc);
        if (!t || PyList_Append(out, t) < 0)
            Py_CLEAR(out);
        Py_XDECREF(t);
    }
    return out;
}

#ifndef ACTMAX_PYTHON_NO_RENDER
static PyObject *render_fail(int rc)
{
    PyErr_Format(PyExc_RuntimeError, "render: %s: %s", render_strerror(rc), render_last_error());
    return NULL;
}

static PyObject *png_out(render_png *png)
{
    PyObject *r = Py_BuildValue("(y#ii)", (const char *)png->data, (Py_ssize_t)png->size,
                                png->width, png->height);
    render_png_clear(png);
    return r;
}

/* Fills a C array of strings from a list (None entries stay NULL). */
static const char **strings_in(PyObject *list, Py_ssize_t *n)
{
    *n = PyList_Size(list);
    if (*n < 0)
        return NULL;
    const char **v = PyMem_Calloc((size_t)*n + 1, sizeof *v);
    for (Py_ssize_t i = 0; v && i < *n; i++) {
        PyObject *s = PyList_GET_ITEM(list, i);
        if (s != Py_None && !(v[i] = PyUnicode_AsUTF8(s))) {
            PyMem_Free(v);
            return NULL;
        }
    }
    return v;
}

/* images_png(pix, captions, title, min_px, cell_px=128) -> (png, width, height):
 * pix is (B, C, H, W) float32 in [0, 1]; one upscaled image, or a grid of
 * cells cell_px high, as the kernel draws a run's result. */
static PyObject *mod_images_png(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *pix, *caps;
    const char *title;
    int min_px, cell_px = 128;
    if (!PyArg_ParseTuple(args, "OOzi|i", &pix, &caps, &title, &min_px, &cell_px))
        return NULL;
    Py_buffer v;
    if (PyObject_GetBuffer(pix, &v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (v.ndim != 4 || !is_float_format(v.format) || v.itemsize != 4) {
        PyBuffer_Release(&v);
        PyErr_SetString(PyExc_ValueError, "images must be float32 (B, C, H, W)");
        return NULL;
    }
    int b = (int)v.shape[0], ch = (int)v.shape[1], h = (int)v.shape[2], w = (int)v.shape[3];
    const char **cv = NULL;
    Py_ssize_t nc = 0;
    if (caps != Py_None && !(cv = strings_in(caps, &nc))) {
        PyBuffer_Release(&v);
        return NULL;
    }
    if (cv && nc < b) {
        PyMem_Free(cv);
        PyBuffer_Release(&v);
        PyErr_SetString(PyExc_ValueError, "one caption per image");
        return NULL;
    }
    render_png png = {0};
    int rc;
    if (b == 1 && !cv && !title) {
        rc = render_png_encode(v.buf, ch, h, w, min_px, &png);
    } else {
        render_grid_opts go = {0};
        go.min_cell_px = b == 1 ? min_px : cell_px;
        go.title = title;
        rc = render_grid_png(v.buf, b, ch, h, w, cv, &go, &png);
    }
    PyMem_Free(cv);
    PyBuffer_Release(&v);
    return rc == RENDER_OK ? png_out(&png) : render_fail(rc);
}

/* plot_png([(name, ys)], title, ylabel, vlines, vline_labels, width, height) */
static PyObject *mod_plot_png(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *series, *vlines, *vlabels;
    const char *title, *ylabel;
    int width, height;
    if (!PyArg_ParseTuple(args, "O!zzO!O!ii", &PyList_Type, &series, &title, &ylabel, &PyList_Type,
                          &vlines, &PyList_Type, &vlabels, &width, &height))
        return NULL;
    Py_ssize_t ns = PyList_GET_SIZE(series), nv = PyList_GET_SIZE(vlines);
    render_series *ser = PyMem_Calloc((size_t)ns + 1, sizeof *ser);
    Py_buffer *views = PyMem_Calloc((size_t)ns + 1, sizeof *views);
    float *vl = PyMem_Calloc((size_t)nv + 1, sizeof *vl);
    float *xs = NULL;
    Py_ssize_t nviews = 0, nlab = 0, maxn = 1;
    const char **labs = NULL;
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < ns; i++) {
        const char *name;
        PyObject *ys;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(series, i), "zO", &name, &ys))
            goto done;
        if (PyObject_GetBuffer(ys, &views[i], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            goto done;
        nviews++;
        if (!is_float_format(views[i].format) || views[i].itemsize != 4) {
            PyErr_SetString(PyExc_ValueError, "series must be float32");
            goto done;
        }
        ser[i].name = name;
        ser[i].y = views[i].buf;
        ser[i].n = (int)(views[i].len / 4);
        if (ser[i].n > maxn)
            maxn = ser[i].n;
    }
    xs = PyMem_Calloc((size_t)maxn, sizeof *xs); /* (S) steps 1..S */
    for (Py_ssize_t i = 0; i < maxn; i++)
        xs[i] = (float)(i + 1);
    for (Py_ssize_t i = 0; i < ns; i++)
        ser[i].x = xs;
    for (Py_ssize_t i = 0; i < nv; i++) {
        vl[i] = (float)PyFloat_AsDouble(PyList_GET_ITEM(vlines, i));
        if (PyErr_Occurred())
            goto done;
    }
    if (!(labs = strings_in(vlabels, &nlab)))
        goto done;
    render_plot_opts po = {.width = width,
                           .height = height,
                           .title = title,
                           .xlabel = "step",
                           .ylabel = ylabel,
                           .vlines = vl,
                           .vline_labels = nlab == nv ? labs : NULL,
                           .n_vlines = (int)nv};
    render_png png = {0};
    int rc = render_plot_png(ser, (int)ns, &po, &png);
    result = rc == RENDER_OK ? png_out(&png) : render_fail(rc);
done:
    for (Py_ssize_t i = 0; i < nviews; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(labs);
    PyMem_Free(views);
    PyMem_Free(ser);
    PyMem_Free(vl);
    PyMem_Free(xs);
    return result;
}

/* table(header, rows, heat, lo, hi, caption) -> (html, text); header may be None, heat a
 * float32 buffer (R, K) or None. */
static PyObject *mod_table(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *header, *rows, *heat;
    double lo, hi;
    const char *caption;
    if (!PyArg_ParseTuple(args, "OO!Oddz", &header, &PyList_Type, &rows, &heat, &lo, &hi, &caption))
        return NULL;
    Py_ssize_t k = 0, r = PyList_GET_SIZE(rows);
    const char **hv = NULL;
    if (header == Py_None) { /* no header row: the columns of the first row */
        k = r ? PyList_Size(PyList_GET_ITEM(rows, 0)) : 1;
        if (k < 0)
            return NULL;
    } else if (!PyList_Check(header) || !(hv = strings_in(header, &k))) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "header must be a list of strings or None");
        return NULL;
    }
    const char **cells = PyMem_Calloc((size_t)(r * k) + 1, sizeof *cells);
    PyObject *result = NULL;
    Py_buffer hview = {0};
    int have_heat = 0;
    for (Py_ssize_t i = 0; i < r; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyList_Check(row) || PyList_GET_SIZE(row) != k) {
            PyErr_Format(PyExc_ValueError, "row %zd needs %zd cells", i, k);
            goto done;
        }
        for (Py_ssize_t j = 0; j < k; j++) {
            PyObject *s = PyList_GET_ITEM(row, j);
            if (s != Py_None && !(cells[i * k + j] = PyUnicode_AsUTF8(s)))
                goto done;
        }
    }
    if (heat != Py_None) {
        if (PyObject_GetBuffer(heat, &hview, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            goto done;
        have_heat = 1;
        if (!is_float_format(hview.format) || hview.len != (Py_ssize_t)(r * k * 4)) {
            PyErr_SetString(PyExc_ValueError, "heat must be float32 (rows, columns)");
            goto done;
        }
    }
    render_table t = {.n_cols = (int)k,
                      .n_rows = (int)r,
                      .header = hv,
                      .cells = cells,
                      .heat = have_heat ? hview.buf : NULL,
                      .heat_lo = (float)lo,
                      .heat_hi = (float)hi,
                      .caption = caption};
    char *html = NULL, *text = NULL;
    int rc = render_table_html(&t, &html);
    if (rc == RENDER_OK)
        rc = render_table_text(&t, &text);
    if (rc == RENDER_OK)
        result = Py_BuildValue("(ss)", html, text);
    else
        render_fail(rc);
    render_free(html);
    render_free(text);
done:
    if (have_heat)
        PyBuffer_Release(&hview);
    PyMem_Free(cells);
    PyMem_Free(hv);
    return result;
}

/* progress_html(step, total, objective, elapsed_s, label, png|None) -> (html, text) */
static PyObject *mod_progress_html(PyObject *Py_UNUSED(self), PyObject *args)
{
    render_progress p = {0};
    Py_buffer img = {0};
    int have_img = 0;
    PyObject *png_obj;
    int w = 0, h = 0;
    if (!PyArg_ParseTuple(args, "iiddzOii", &p.step, &p.total, &p.objective, &p.elapsed_s, &p.label,
                          &png_obj, &w, &h))
        return NULL;
    render_png png = {0};
    if (png_obj != Py_None) {
        if (PyObject_GetBuffer(png_obj, &img, PyBUF_SIMPLE) < 0)
            return NULL;
        have_img = 1;
        png.data = img.buf;
        png.size = (size_t)img.len;
        png.width = w;
        png.height = h;
        png.scale = 1;
        p.image = &png;
    }
    char *html = NULL, *text = NULL;
    int rc = render_progress_html(&p, &html, &text);
    if (have_img)
        PyBuffer_Release(&img);
    PyObject *r = rc == RENDER_OK ? Py_BuildValue("(ss)", html, text) : render_fail(rc);
    render_free(html);
    render_free(text);
    return r;
}
#else
static PyObject *no_renderer(void)
{
    PyErr_SetString(
        PyExc_RuntimeError,
        "this actmax module was built without the kernel's renderer (an engine-only "
        "build, ACTMAX_KERNEL=OFF): results are there as tensors, but nothing is drawn; "
        "build with ACTMAX_KERNEL=ON for images, plots and tables");
    return NULL;
}

static PyObject *mod_images_png(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
    return no_renderer();
}

static PyObject *mod_plot_png(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
    return no_renderer();
}

static PyObject *mod_table(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
    return no_renderer();
}

static PyObject *mod_progress_html(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
    return no_renderer();
}
#endif

static PyMethodDef module_methods[] = {
    {"engine", mod_engine, METH_NOARGS, "loads the engine; its version, API version, path, BLAS"},
    {"background_note", mod_background_note, METH_VARARGS,
     "the sentence of a background build's marker file while it runs, or None"},
    {"memory_available", mod_memory_available, METH_VARARGS,
     "bytes the engine may still take on a device, or None where unknown"},
    {"tokenize", mod_tokenize, METH_VARARGS, "tokenize(tokenizer_json, text) -> int64 ids"},
    {"dataset_item", mod_dataset_item, METH_VARARGS,
     "dataset_item(name, split, index) -> (size, (C, H, W), item or None)"},
    {"array_save", mod_array_save, METH_VARARGS,
     "array_save(path, float32 or int64 array): .npy or .pt"},
    {"param_image", mod_param_image, METH_VARARGS,
     "param_image(model or None, options, params) -> the image a run renders from them"},
    {"param_magnitude", mod_param_magnitude, METH_VARARGS,
     "param_magnitude(model or None, options, C, H, W) -> (MACO's magnitude, note)"},
    {"options_default", mod_options_default, METH_O,
     "the engine's default run options (\"image\" or \"text\") as a dict"},
    {"keys", mod_keys, METH_O,
     "a magic's typed keys: [(name, type, default, lo, hi, choices, doc)]"},
    {"images_png", mod_images_png, METH_VARARGS,
     "images_png(pix, captions, title, min_px, cell_px=128)"},
    {"plot_png", mod_plot_png, METH_VARARGS,
     "plot_png(series, title, ylabel, vlines, vline_labels, width, height)"},
    {"table", mod_table, METH_VARARGS,
     "table(header|None, rows, heat, lo, hi, caption) -> (html, text)"},
    {"progress_html", mod_progress_html, METH_VARARGS,
     "progress_html(step, total, objective, elapsed_s, label, png, width, height)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "actmax._actmax",
    "The C half of actmax: the engine (libactmax, via am_get_api) and the kernel's renderer.",
    -1,
    module_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

/* The Python base of each actmax-only error class. */
static PyObject *error_base(const char *name)
{
    static const struct {
        const char *name;
        PyObject **base;
    } k_bases[] = {
        {"FormatError", &PyExc_ValueError},    {"ModelError", &PyExc_RuntimeError},
        {"ObjectiveError", &PyExc_ValueError}, {"UnsupportedError", &PyExc_ValueError},
        {"DeviceError", &PyExc_RuntimeError},  {"EngineError", &PyExc_RuntimeError},
    };
    for (size_t i = 0; i < sizeof k_bases / sizeof *k_bases; i++)
        if (strcmp(k_bases[i].name, name) == 0)
            return *k_bases[i].base;
    return PyExc_RuntimeError;
}

PyMODINIT_FUNC PyInit__actmax(void);
PyMODINIT_FUNC PyInit__actmax(void)
{
    if (PyType_Ready(&ModelType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    g_module_dict = PyModule_GetDict(m);
    g_error = PyErr_NewExceptionWithDoc("actmax.Error", "Base of the errors only actmax raises.",
                                        PyExc_Exception, NULL);
    if (!g_error || PyModule_AddObjectRef(m, "Error", g_error) < 0)
        goto fail;
    /* One class per status of AM_STATUS_MAP whose class is not a builtin;
     * an unknown layer is an objective that names no layer, so LayerError
     * is an ObjectiveError too (the kernel shows it as one in a run). */
    static const char *const k_names[] = {
#define AM_STATUS_NAME(name, value, text, cls) cls,
        AM_STATUS_MAP(AM_STATUS_NAME)
#undef AM_STATUS_NAME
    };
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < sizeof k_names / sizeof *k_names; i++) {
            const char *name = k_names[i];
            if (!name[0] || PyDict_GetItemString(PyEval_GetBuiltins(), name) ||
                PyDict_GetItemString(g_module_dict, name))
                continue;
            int is_layer = strcmp(name, "LayerError") == 0;
            if (is_layer != pass) /* LayerError after ObjectiveError exists */
                continue;
            char full[64];
            snprintf(full, sizeof full, "actmax.%s", name);
            PyObject *base0 =
                is_layer ? PyDict_GetItemString(g_module_dict, "ObjectiveError") : error_base(name);
            PyObject *bases = PyTuple_Pack(2, base0 ? base0 : PyExc_ValueError, g_error);
            PyObject *cls = bases ? PyErr_NewException(full, bases, NULL) : NULL;
            Py_XDECREF(bases);
            if (!cls || PyModule_AddObject(m, name, cls) < 0) {
                Py_XDECREF(cls);
                goto fail;
            }
        }
    }
    if (PyModule_AddObjectRef(m, "Model", (PyObject *)&ModelType) < 0 ||
        PyModule_AddStringConstant(m, "VERSION", AM_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "API_VERSION", AM_API_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "INPUT_FLOAT", AM_INPUT_FLOAT) < 0 ||
        PyModule_AddIntConstant(m, "INPUT_TOKENS", AM_INPUT_TOKENS) < 0 ||
        PyModule_AddIntConstant(m, "INPUT_EMBEDS", AM_INPUT_EMBEDS) < 0 ||
        PyModule_AddIntConstant(m, "RENDER_MIN_PX", RENDER_MIN_PX) < 0 ||
#ifdef ACTMAX_PYTHON_NO_RENDER
        PyModule_AddObjectRef(m, "HAVE_RENDER", Py_False) < 0 ||
#else
        PyModule_AddObjectRef(m, "HAVE_RENDER", Py_True) < 0 ||
#endif
        PyModule_AddStringConstant(m, "ENGINE_LIB", ACTMAX_ENGINE_LIB) < 0)
        goto fail;
    /* The sizes of the structs this module passes by pointer, as compiled
     * here: the contract test compares them with the engine's table. */
    PyObject *sizes = PyDict_New();
    if (!sizes || PyModule_AddObject(m, "STRUCT_SIZES", sizes) < 0) {
        Py_XDECREF(sizes);
        goto fail;
    }
#define AM_STRUCT_SIZE(s)                                                                          \
    {                                                                                              \
        PyObject *v = PyLong_FromSize_t(sizeof(s));                                                \
        if (!v || PyDict_SetItemString(sizes, #s, v) < 0) {                                        \
            Py_XDECREF(v);                                                                         \
            goto fail;                                                                             \
        }                                                                                          \
        Py_DECREF(v);                                                                              \
    }
    AM_API_STRUCTS(AM_STRUCT_SIZE)
#undef AM_STRUCT_SIZE
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
