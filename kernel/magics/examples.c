/* %examples: the dataset items that drive an objective most (the
 * observation approach). A text model's corpus windows are text.c's
 * (mg_text_examples); images are read here from the model's dataset with
 * the readers of ext/data and scored by the engine.
 *
 * Legend for shapes: B = batch, C = channels, H = height, W = width,
 * K = examples kept. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "display.h"
#include "image.h"
#include "live.h"
#include "magics.h"
#include "text.h"
#include "util.h"

#ifdef MG_HAVE_DATA
#include "am_data.h"
#endif

mg_status mg_magic_examples(mg_call *c)
{
    mg_session *s = mg_session_of(c);
    if (mg_session_need_model(c, s) != MG_OK)
        return MG_ERROR;
    if (!c->positional)
        return mg_fail(c, "ValueError",
                       "%%examples needs an objective, e.g. %%examples conv2[5] k=16");
    if (strcmp(mg_engine()->am_model_kind(s->model), "text") == 0)
        return mg_text_examples(c, s);
    return mg_image_examples(c, s);
}

#ifndef MG_HAVE_DATA
mg_status mg_image_examples(mg_call *c, mg_session *s)
{
    (void)s;
    return mg_fail(c, "UnsupportedError",
                   "this kernel was built without the dataset readers (ext/data)");
}
#else

typedef struct top_item {
    float value;
    int64_t index;
    int64_t label;
} top_item;

/* The top k seen so far, highest first. */
typedef struct scan {
    top_item *top; /* (k) */
    int ntop, k;
    int64_t seen, total;
    double secs;
    int live_updates;
} scan;

static void top_insert(top_item *top, int *n, int k, top_item it)
{
    if (*n == k && it.value <= top[k - 1].value)
        return;
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && top[i - 1].value < it.value) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = it;
}

/* A batch normalized as the model expects it, into *x (grown as needed). */
static void normalize(const mg_session *s, const am_batch *bt, const int64_t shp[4], float **x,
                      size_t *xcap)
{
    const float *mean = NULL, *sd = NULL;
    int nmean = 0;
    float range[2];
    mg_engine()->am_model_normalization(s->model, &mean, &sd, &nmean, range);
    size_t per = (size_t)(shp[1] * shp[2] * shp[3]), n = per * (size_t)bt->count;
    if (n > *xcap)
        *x = mg_xrealloc(*x, (*xcap = n) * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        int ch = (int)((i % per) / (size_t)(shp[2] * shp[3]));
        float m = nmean ? mean[ch % nmean] : 0, d = nmean ? sd[ch % nmean] : 1;
        (*x)[i] = (bt->images[i] - m) / d;
    }
}

/* The engine evaluates the objective as a run would (the whole language
 * but diversity), per item. A bad objective fails on the first batch,
 * before anything is shown. */
static mg_status score_batch(const mg_call *c, const mg_session *s, am_dataset *ds,
                             const am_batch *bt, float **x, size_t *xcap, float *vals)
{
    const mg_engine_api *e = mg_engine();
    int64_t shp[4];
    am_dataset_item_shape(ds, shp + 1, 3);
    shp[0] = bt->count;
    normalize(s, bt, shp, x, xcap);
    am_input in = {.kind = AM_INPUT_FLOAT, .data = *x, .ndim = 4};
    memcpy(in.shape, shp, sizeof shp);
    int rc = e->am_model_objective(s->model, &in, c->positional, vals);
    if (rc == AM_OK)
        return MG_OK;
    const char *ename = rc == AM_E_LAYER       ? "LayerError"
                        : rc == AM_E_OBJECTIVE ? "ObjectiveError"
                                               : "EngineError";
    if (rc == AM_E_LAYER || rc == AM_E_OBJECTIVE)
        return mg_fail(c, ename, "%s", e->am_model_error(s->model));
    return mg_fail(c, ename, "%s: %s", e->am_strerror(rc), e->am_model_error(s->model));
}

/* Reads the dataset in batches, keeping the top k, with a live display as
 * for %maximize over the items read. */
static mg_status scan_dataset(const mg_call *c, const mg_session *s, am_dataset *ds, scan *sc)
{
    int64_t limit = mg_int(c, "limit");
    float *x = NULL, *vals = NULL; /* (B, C, H, W) normalized; (B) objectives */
    size_t xcap = 0, vcap = 0;
    mg_status st = MG_OK;
    mg_live prog;
    mg_live_init(&prog, c->out, "examples", mg_float(c, "updates_per_s"));
    double t0 = prog.t0;
    sc->total = am_dataset_size(ds);
    if (limit && limit < sc->total)
        sc->total = limit;
    am_batch bt;
    while ((!limit || sc->seen < limit) &&
           am_dataset_next_batch(ds, limit && limit - sc->seen < 256 ? limit - sc->seen : 256,
                                 &bt) == 0 &&
           bt.count > 0) {
        if (mg_live_interrupted(&prog)) {
            st = MG_INTERRUPTED;
            break;
        }
        if ((size_t)bt.count > vcap)
            vals = mg_xrealloc(vals, (vcap = (size_t)bt.count) * sizeof(float));
        st = score_batch(c, s, ds, &bt, &x, &xcap, vals);
        if (st != MG_OK)
            break;
        for (int64_t b = 0; b < bt.count; b++)
            top_insert(sc->top, &sc->ntop, sc->k, (top_item){vals[b], bt.first + b, bt.labels[b]});
        sc->seen += bt.count;
        if (mg_live_due(&prog))
            mg_live_progress(&prog, (int)sc->seen, (int)sc->total,
                             sc->ntop ? sc->top[0].value : NAN, c->positional, NULL);
    }
    sc->secs = render_clock_monotonic(NULL) - t0;
    if (prog.shown)
        mg_live_finish(&prog, (int)(sc->seen < sc->total ? sc->seen : sc->total), (int)sc->total,
                       sc->ntop ? sc->top[0].value : NAN, c->positional, NULL);
    free(x);
    free(vals);
    sc->live_updates = prog.updates;
    return st;
}

/* The grid of the top k (after the latest %maximize image of the same
 * objective, to compare), with a text twin listing them. */
static void show_examples(const mg_call *c, const mg_session *s, am_dataset *ds, const scan *sc,
                          bool interrupted)
{
    int64_t ishape[3];
    am_dataset_item_shape(ds, ishape, 3);
    size_t per = (size_t)(ishape[0] * ishape[1] * ishape[2]);
    const mg_run_rec *cmp = mg_session_latest(s, &mg_image_run_ops, c->positional);
    int64_t rshape[4] = {0};
    float rfinal = NAN;
    const float *rimg = cmp ? mg_image_run_result(cmp, rshape, &rfinal) : NULL;
    bool with_run =
        rimg && rshape[1] == ishape[0] && rshape[2] == ishape[1] && rshape[3] == ishape[2];
    int cells = sc->ntop + (with_run ? 1 : 0), g = 0;
    float *grid = mg_xmalloc((size_t)cells * per * sizeof(float)); /* (K, C, H, W) */
    char **caps = mg_xcalloc((size_t)cells, sizeof *caps);
    if (with_run) {
        memcpy(grid, rimg, per * sizeof(float));
        caps[g++] = mg_asprintf("optimized (run %d) %.3g", cmp->id, rfinal);
    }
    mg_str text = MG_STR_INIT;
    char *title = mg_asprintf("top %d of %lld %s images for %s%s", sc->ntop, (long long)sc->seen,
                              mg_enum(c, "split"), c->positional,
                              interrupted ? " (interrupted: the images read so far)" : "");
    mg_str_addf(&text, "%s (%.2f s)\n", title, sc->secs);
    for (int i = 0; i < sc->ntop; i++, g++) {
        am_batch one;
        am_dataset_item(ds, sc->top[i].index, &one);
        memcpy(grid + (size_t)g * per, one.images, per * sizeof(float));
        const char *lab = am_dataset_label(ds, (int)sc->top[i].label);
        caps[g] = mg_asprintf("%s %.3g", lab ? lab : "?", sc->top[i].value);
        mg_str_addf(&text, "  #%lld %-12s %.6g\n", (long long)sc->top[i].index, lab ? lab : "?",
                    sc->top[i].value);
    }
    render_png png = {0};
    render_grid_opts go = {.min_cell_px = 96, .title = title};
    mg_bundle *b = mg_bundle_new();
    mg_bundle_text(b, "text/plain", mg_str_cstr(&text));
    if (render_grid_png(grid, cells, (int)ishape[0], (int)ishape[1], (int)ishape[2],
                        (const char *const *)caps, &go, &png) == RENDER_OK)
        mg_bundle_png(b, &png);
    mg_sink_display(c->out, b, NULL);
    mg_bundle_free(b);
    render_png_clear(&png);
    mg_str_free(&text);
    free(title);
    for (int i = 0; i < cells; i++)
        free(caps[i]);
    free(caps);
    free(grid);
}

mg_status mg_image_examples(mg_call *c, mg_session *s)
{
    const char *dsname = mg_engine()->am_model_dataset(s->model);
    if (strcmp(dsname, "fashion-mnist") != 0)
        return mg_fail(c, "UnsupportedError",
                       "%%examples reads the model's dataset; %s names "
                       "'%s', and only fashion-mnist images are supported",
                       s->model_name, dsname[0] ? dsname : "none");
    am_dataset *ds = NULL;
    int rc = am_dataset_open(dsname, mg_enum(c, "split"), NULL, &ds);
    if (rc != 0) {
        mg_status st = mg_fail(c, "DatasetError", "%s: %s", mg_engine()->am_strerror(rc),
                               ds ? am_dataset_error(ds) : "");
        am_dataset_free(ds);
        return st;
    }
    scan sc = {0};
    sc.k = (int)mg_int(c, "k");
    sc.top = mg_xcalloc((size_t)sc.k, sizeof *sc.top);
    mg_status st = scan_dataset(c, s, ds, &sc);
    /* Interrupted: the top k of the images read so far. */
    if ((st == MG_OK || st == MG_INTERRUPTED) && sc.ntop > 0)
        show_examples(c, s, ds, &sc, st == MG_INTERRUPTED);
    free(sc.top);
    am_dataset_free(ds);
    if (mg_bool(c, "verbose"))
        mg_sink_printf(c->out, "live display updates sent: %d\n", sc.live_updates);
    return st;
}
#endif
