/* %examples: the dataset items that drive an objective most (the
 * observation approach). A text model's corpus windows are text.c's
 * (mg_text_examples); for images the engine reads the model's dataset,
 * scales each image as runs scale theirs and keeps the top k
 * (am_examples_*): this file shows its live progress and the result.
 *
 * Legend for shapes: C = channels, H = height, W = width, K = examples kept. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "display.h"
#include "image.h"
#include "live.h"
#include "magics.h"
#include "text.h"
#include "util.h"

mg_status mg_magic_examples(mg_call *c)
{
    mg_session *s = mg_session_of(c);
    if (mg_session_need_model(c, s) != MG_OK)
        return MG_ERROR;
    if (!c->positional)
        return mg_fail(c, "ValueError",
                       "%%examples needs an objective, e.g. %%examples conv2[5] k=16");
    if (strcmp(mg_engine()->am_model_kind(s->model), "text") == 0) {
        if (mg_string(c, "data")[0])
            return mg_fail(c, "ValueError",
                           "data= names images for an image model; a text model reads a text "
                           "file: path=FILE");
        return mg_text_examples(c, s);
    }
    return mg_image_examples(c, s);
}

/* The grid of the top k (after the latest %maximize image of the same
 * objective, to compare), with a text twin listing them. Images come back
 * in the model's value range; the grid shows them in [0, 1]. */
static void show_examples(const mg_call *c, const mg_session *s, const am_examples *ex, double secs)
{
    const mg_engine_api *e = mg_engine();
    int n = e->am_examples_count(ex);
    am_example it;
    if (n <= 0 || e->am_examples_get(ex, 0, &it) != AM_OK)
        return;
    const float *mean, *sd;
    int nmean;
    float range[2] = {0, 1};
    e->am_model_normalization(s->model, &mean, &sd, &nmean, range);
    float span = range[1] - range[0] != 0 ? range[1] - range[0] : 1;
    int64_t C = it.shape[0], H = it.shape[1], W = it.shape[2];
    size_t per = (size_t)(C * H * W);
    const mg_run_rec *cmp = mg_session_latest(s, &mg_image_run_ops, c->positional);
    int64_t rshape[4] = {0};
    float rfinal = NAN;
    const float *rimg = cmp ? mg_image_run_result(cmp, rshape, &rfinal) : NULL;
    bool with_run = rimg && rshape[1] == C && rshape[2] == H && rshape[3] == W;
    int cells = n + (with_run ? 1 : 0), g = 0;
    float *grid = mg_xmalloc((size_t)cells * per * sizeof(float)); /* (K, C, H, W) in [0, 1] */
    char **caps = mg_xcalloc((size_t)cells, sizeof *caps);
    if (with_run) {
        memcpy(grid, rimg, per * sizeof(float));
        caps[g++] = mg_asprintf("optimized (run %d) %.3g", cmp->id, rfinal);
    }
    mg_str text = MG_STR_INIT;
    bool interrupted = e->am_examples_cancelled(ex);
    const char *data = mg_string(c, "data");
    const char *cut = interrupted ? " (interrupted: the images read so far)" : "";
    char *title = data[0]
                      ? mg_asprintf("top %d of %lld images in %s for %s%s", n,
                                    (long long)e->am_examples_scanned(ex), data, c->positional, cut)
                      : mg_asprintf("top %d of %lld %s images for %s%s", n,
                                    (long long)e->am_examples_scanned(ex), mg_enum(c, "split"),
                                    c->positional, cut);
    mg_str_addf(&text, "%s (%.2f s)\n", title, secs);
    for (int i = 0; i < n && e->am_examples_get(ex, i, &it) == AM_OK; i++, g++) {
        float *cell = grid + (size_t)g * per;
        for (size_t j = 0; j < per; j++)
            cell[j] = (it.image[j] - range[0]) / span;
        const char *lab = it.label_name[0] ? it.label_name : "?";
        caps[g] = mg_asprintf("%s %.3g", lab, it.value);
        mg_str_addf(&text, "  #%lld %-12s %.6g\n", (long long)it.index, lab, it.value);
    }
    render_png png = {0};
    render_grid_opts go = {.min_cell_px = 96, .title = title};
    mg_bundle *b = mg_bundle_new();
    mg_bundle_text(b, "text/plain", mg_str_cstr(&text));
    if (render_grid_png(grid, g, (int)C, (int)H, (int)W, (const char *const *)caps, &go, &png) ==
        RENDER_OK)
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
    const mg_engine_api *e = mg_engine();
    /* data=: the user's images (a path the engine reads) instead of the
     * model's dataset; the split then does not apply */
    const char *data = mg_string(c, "data");
    char *items = mg_asprintf("%s images", data[0] ? data : mg_enum(c, "split"));
    mg_scan_live L = {
        .objective = c->positional, .items = items, .reading = "reading the dataset", .best = NAN};
    mg_live_init(&L.d, c->out, "examples", mg_float(c, "updates_per_s"));
    am_examples_options o;
    e->am_examples_options_default(&o);
    o.objective = c->positional;
    o.split = mg_enum(c, "split");
    if (data[0])
        o.dataset = data;
    o.k = (int)mg_int(c, "k");
    o.limit = mg_int(c, "limit");
    o.progress = mg_scan_live_progress;
    o.progress_user = &L;
    am_examples *ex = NULL;
    int rc = e->am_examples_new(s->model, &o, &ex);
    double secs = render_clock_monotonic(NULL) - L.d.t0;
    mg_status st = MG_OK;
    if (rc != AM_OK) {
        if (L.d.shown)
            mg_live_fail(&L.d, "failed");
        st = mg_fail(c, e->am_status_class(rc), "%s", ex ? e->am_examples_error(ex) : "");
    } else {
        if (L.d.shown)
            mg_live_finish(&L.d, (int)L.scanned, (int)L.total, e->am_examples_max(ex),
                           c->positional, NULL);
        /* Interrupted: the top k of the images read so far. */
        show_examples(c, s, ex, secs);
        st = e->am_examples_cancelled(ex) ? MG_INTERRUPTED : MG_OK;
    }
    e->am_examples_free(ex);
    if (mg_bool(c, "verbose"))
        mg_sink_printf(c->out, "live display updates sent: %d\n", L.d.updates);
    free(items);
    return st;
}
