/* Image runs: %maximize, and how an image run is shown, listed and saved
 * (the "image" kind of session.h). The engine (libactmax, through the
 * table of engine.h) optimizes; this file turns its plain float arrays
 * into MIME bundles with kernel/render (PNG, grids, plots, progress HTML).
 *
 * Legend for shapes: B = batch, C = channels, H = height, W = width,
 * S = steps. */
#include "image.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "display.h"
#include "live.h"
#include "magics.h"
#include "util.h"

/* An image run's own record. */
typedef struct image_rec {
    am_run *run;      /* images (B, C, H, W), curves (S), terms: owned */
    char *engine_obj; /* the objective the engine ran */
    int *thresholds;  /* (n_thresholds) steps of the snapshots */
    int n_thresholds;
    double live_obj; /* the live display's last objective (transformed copies) */
    bool maco;       /* the transparency map is shown beside each image */
    char *units;     /* "each": the n_units objectives, NUL-separated (captions), or NULL */
    int n_units;
} image_rec;

static void image_rec_free(void *data)
{
    image_rec *ir = data;
    if (!ir)
        return;
    const mg_engine_api *e = mg_engine();
    if (e)
        e->am_run_free(ir->run);
    free(ir->engine_obj);
    free(ir->thresholds);
    free(ir->units);
    free(ir);
}

static const image_rec *rec_of(const mg_run_rec *r)
{
    return r->data;
}

/* ================================================================ images in */

/* Decodes a PNG to (C, H, W) floats in [0, 1], C = 1, 3 or 4 as the model
 * takes, resized with nearest neighbour to h x w (render_png_read). NULL
 * with *err when the file is missing or not a readable PNG. */
static float *read_png(const char *path, int c, int h, int w, char **err)
{
    float *out = NULL;
    if (render_png_read(path, c, h, w, &out) != RENDER_OK)
        *err = mg_asprintf("init=%s cannot be used as the initial image: %s; give a readable "
                           "PNG file, or init=noise",
                           path, render_last_error());
    return out;
}

/* ================================================================ live display */

/* %maximize's live display: the progress bar with the latest image. */
typedef struct live {
    mg_live d;
    char *label;    /* the objective, and what the live value is measured on: owned */
    render_png img; /* latest image encoded */
    /* The latest image received, encoded only when a display update is due:
     * the engine sends one every image_every steps, the display shows at
     * most updates_per_s, and encoding each one cost about 6% of a
     * 224-px resnet18 step. */
    float *pending;
    size_t pending_cap;
    int64_t pending_shape[4];
    bool dirty;
    int last_step, steps;
    double last_obj;
} live;

static void live_encode_pending(live *L)
{
    if (!L->dirty)
        return;
    L->dirty = false;
    const int64_t *sh = L->pending_shape;
    render_png_clear(&L->img);
    if (sh[0] > 1) {
        render_grid_opts go = {.min_cell_px = 64, .gutter_px = 4};
        render_grid_png(L->pending, (int)sh[0], (int)sh[1], (int)sh[2], (int)sh[3], NULL, &go,
                        &L->img);
    } else {
        render_png_encode(L->pending, (int)sh[1], (int)sh[2], (int)sh[3], 128, &L->img);
    }
}

static void live_send(live *L, int step, double obj)
{
    mg_live_progress(&L->d, step, L->steps, obj, L->label, &L->img);
}

static int live_progress(void *user, const am_progress *p)
{
    live *L = user;
    L->last_step = p->step;
    L->last_obj = p->objective;
    if (p->image) {
        size_t n = 1;
        for (int i = 0; i < 4; i++)
            n *= (size_t)p->image_shape[i];
        if (n > L->pending_cap) {
            free(L->pending);
            L->pending = mg_xcalloc(n, sizeof *L->pending);
            L->pending_cap = n;
        }
        memcpy(L->pending, p->image, n * sizeof *L->pending);
        memcpy(L->pending_shape, p->image_shape, sizeof L->pending_shape);
        L->dirty = true;
    }
    if (mg_live_interrupted(&L->d))
        return 1;
    if (mg_live_due(&L->d)) {
        live_encode_pending(L);
        live_send(L, p->step, p->objective);
    }
    return 0;
}

/* Each image's own unit activation on the clean image (am_run_activation),
 * never the objective plus the diversity term the batch was optimized with. */
static char **activation_captions(const mg_run_rec *r, int b)
{
    const mg_engine_api *e = mg_engine();
    int nb = 0;
    const float *act = e->am_run_activation(rec_of(r)->run, &nb);
    char **caps = mg_xcalloc((size_t)b, sizeof *caps);
    const char *unit = rec_of(r)->n_units == b ? rec_of(r)->units : NULL;
    for (int i = 0; i < b; i++) {
        double v = act && i < nb ? act[i] : NAN;
        if (unit) {
            caps[i] = mg_asprintf("%s activation %.4g", unit, v);
            unit += strlen(unit) + 1;
        } else {
            caps[i] = mg_asprintf("#%d activation %.4g", i, v);
        }
    }
    return caps;
}

static void free_captions(char **caps, int n)
{
    for (int i = 0; i < n; i++)
        free(caps[i]);
    free(caps);
}

static int run_image_png(const mg_run_rec *r, render_png *png)
{
    const mg_engine_api *e = mg_engine();
    int64_t shape[4];
    const float *img = e->am_run_images(rec_of(r)->run, shape);
    if (!img)
        return RENDER_EINVAL;
    /* One image stays a plain upscale, pixel for pixel (the line above it
     * gives its activation); a batch is captioned. */
    if (shape[0] == 1)
        return mg_images_png(img, shape, NULL, NULL, RENDER_MIN_PX, png);
    char **caps = activation_captions(r, (int)shape[0]);
    int rc = mg_images_png(img, shape, (const char *const *)caps, NULL, RENDER_MIN_PX, png);
    free_captions(caps, (int)shape[0]);
    return rc;
}

/* Each image beside its transparency map (where the unit looks), as
 * pairs in a grid (2B cells). */
static int transparency_png(const mg_run_rec *r, render_png *png)
{
    const mg_engine_api *e = mg_engine();
    int64_t shape[4], ts[4];
    const float *img = e->am_run_images(rec_of(r)->run, shape);
    const float *t = e->am_run_transparency_map(rec_of(r)->run, ts);
    if (!img || !t || memcmp(shape, ts, sizeof shape) != 0)
        return RENDER_EINVAL;
    int b = (int)shape[0];
    int64_t per = shape[1] * shape[2] * shape[3];
    float *pix = mg_xmalloc((size_t)(2 * b * per) * sizeof(float)); /* (2B, C, H, W) */
    char **caps = mg_xcalloc((size_t)(2 * b), sizeof *caps);
    for (int i = 0; i < b; i++) {
        memcpy(pix + (size_t)(2 * i * per), img + (size_t)(i * per), (size_t)per * sizeof(float));
        memcpy(pix + (size_t)((2 * i + 1) * per), t + (size_t)(i * per),
               (size_t)per * sizeof(float));
        caps[2 * i] = mg_asprintf("#%d", i);
        caps[2 * i + 1] = mg_asprintf("#%d transparency", i);
    }
    render_grid_opts go = {.min_cell_px = 128, .columns = 2 * (b < 4 ? b : 4)};
    int rc = render_grid_png(pix, 2 * b, (int)shape[1], (int)shape[2], (int)shape[3],
                             (const char *const *)caps, &go, png);
    free_captions(caps, 2 * b);
    free(pix);
    return rc;
}

static int run_plot_png(const mg_run_rec *r, render_png *png)
{
    const mg_engine_api *e = mg_engine();
    int steps = 0;
    const float *curve = e->am_run_curve(rec_of(r)->run, &steps);
    int nt = e->am_run_num_terms(rec_of(r)->run);
    /* The total, then each term when there is more than one. */
    int ns = 1 + (nt > 1 ? nt : 0);
    render_series *ser = mg_xcalloc((size_t)ns, sizeof *ser);
    float *xs = mg_xmalloc((size_t)(steps ? steps : 1) * sizeof(float)); /* (S) */
    for (int i = 0; i < steps; i++)
        xs[i] = (float)(i + 1);
    ser[0] = (render_series){"objective", xs, curve, steps};
    for (int i = 0; i + 1 < ns; i++)
        ser[i + 1] = (render_series){e->am_run_term_name(rec_of(r)->run, i), xs,
                                     e->am_run_term_curve(rec_of(r)->run, i),
                                     e->am_run_steps(rec_of(r)->run)};
    float *vl = mg_xcalloc((size_t)rec_of(r)->n_thresholds + 1, sizeof *vl);
    char **vlab = mg_xcalloc((size_t)rec_of(r)->n_thresholds + 1, sizeof *vlab);
    for (int i = 0; i < rec_of(r)->n_thresholds; i++) {
        vl[i] = (float)rec_of(r)->thresholds[i];
        vlab[i] = mg_asprintf("step %d", rec_of(r)->thresholds[i]);
    }
    char *title = mg_asprintf("run %d: %s", r->id, r->objective);
    render_plot_opts po = {.width = 640,
                           .height = 360,
                           .title = title,
                           .xlabel = "step",
                           .ylabel = "on transformed copies",
                           .vlines = vl,
                           .vline_labels = (const char *const *)vlab,
                           .n_vlines = rec_of(r)->n_thresholds};
    int rc = render_plot_png(ser, ns, &po, png);
    for (int i = 0; i < rec_of(r)->n_thresholds; i++)
        free(vlab[i]);
    free(vlab);
    free(vl);
    free(title);
    free(xs);
    free(ser);
    return rc;
}

/* Why the live value and the final one differ, in one line. */
static const char *live_vs_final(const mg_run_rec *r)
{
    if (rec_of(r)->maco)
        return "the live objective is the mean over random crops with noise; the final "
               "activation is measured on the whole clean image";
    return "the live objective is measured on transformed copies (padded, jittered, scaled, "
           "rotated); the final activation on the clean image";
}

/* The diversity term's layer and its value at the last step, or NULL. */
static const float *diversity_curve(const mg_run_rec *r, const char **layer)
{
    const mg_engine_api *e = mg_engine();
    *layer = e->am_run_diversity_layer(rec_of(r)->run);
    if (!*layer || !(*layer)[0])
        return NULL;
    for (int i = 0; i < e->am_run_num_terms(rec_of(r)->run); i++) {
        const char *n = e->am_run_term_name(rec_of(r)->run, i);
        if (n && strncmp(n, "diversity", 9) == 0)
            return e->am_run_term_curve(rec_of(r)->run, i);
    }
    return NULL;
}

static char *run_summary_text(const mg_run_rec *r)
{
    const mg_engine_api *e = mg_engine();
    const am_run *run = rec_of(r)->run;
    int nb = 0;
    const float *act = e->am_run_activation(run, &nb);
    int64_t shape[4] = {0};
    e->am_run_images(run, shape);
    double secs = e->am_run_seconds(run);
    int steps = e->am_run_steps(run);
    mg_str t = MG_STR_INIT;
    mg_str_addf(&t, "run %d: %s%s\n", r->id, r->objective,
                e->am_run_cancelled(run) ? "  (interrupted: best result so far)" : "");
    mg_str_addf(&t, "final activation on the clean image:");
    for (int i = 0; i < nb && i < 16; i++)
        mg_str_addf(&t, " %.4g", act[i]);
    mg_str_addf(&t, "\nlive objective at the last step, on transformed copies: %.4g (%s)\n",
                rec_of(r)->live_obj, live_vs_final(r));
    const char *layer = NULL;
    const float *div = diversity_curve(r, &layer);
    if (layer && layer[0])
        mg_str_addf(&t,
                    "diversity on layer %s: term %.4g at the last step (not in the "
                    "activations)\n",
                    layer, div && steps > 0 ? div[steps - 1] : NAN);
    const char *note = e->am_run_note(run);
    if (note && note[0])
        mg_str_addf(&t, "note: %s\n", note);
    mg_str_addf(&t, "steps %d, %.2f s (%.1f steps/s), image %lldx%lldx%lld x%lld\n", steps, secs,
                secs > 0 ? steps / secs : 0.0, (long long)shape[1], (long long)shape[2],
                (long long)shape[3], (long long)shape[0]);
    if (r->options && r->options[0])
        mg_str_addf(&t, "options: %s\n", r->options);
    return mg_str_steal(&t);
}

static cJSON *float_array(const float *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; v && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(isfinite(v[i]) ? v[i] : 0.0));
    return a;
}

/* The honest figures: the activations on the clean image, the live
 * objective on transformed copies, the diversity layer, the engine's note. */
static void add_figures_json(cJSON *o, const mg_run_rec *r)
{
    const mg_engine_api *e = mg_engine();
    const am_run *run = rec_of(r)->run;
    int nb = 0, na = 0;
    const float *fin = e->am_run_final(run, &nb);
    const float *act = e->am_run_activation(run, &na);
    cJSON_AddItemToObject(o, "final", float_array(fin, nb));
    cJSON_AddItemToObject(o, "activation", float_array(act, na));
    double lv = rec_of(r)->live_obj;
    cJSON_AddNumberToObject(o, "live_objective", isfinite(lv) ? lv : 0.0);
    cJSON_AddStringToObject(o, "live_objective_is",
                            "the sum over the batch at the last step, "
                            "on transformed copies");
    cJSON_AddStringToObject(o, "activation_is", "the unit alone on the clean final image");
    const char *layer = NULL;
    const float *div = diversity_curve(r, &layer);
    cJSON_AddStringToObject(o, "diversity_layer", layer ? layer : "");
    int steps = e->am_run_steps(run);
    if (div && steps > 0)
        cJSON_AddNumberToObject(o, "diversity_term", isfinite(div[steps - 1]) ? div[steps - 1] : 0);
    const char *note = e->am_run_note(run);
    cJSON_AddStringToObject(o, "note", note ? note : "");
    int64_t ts[4];
    cJSON_AddBoolToObject(o, "transparency", e->am_run_transparency(run, ts) != NULL);
}

static char *run_summary_json(const mg_run_rec *r)
{
    const mg_engine_api *e = mg_engine();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "run", r->id);
    cJSON_AddStringToObject(o, "objective", r->objective);
    cJSON_AddStringToObject(o, "engine_objective", rec_of(r)->engine_obj);
    cJSON_AddStringToObject(o, "options", r->options ? r->options : "");
    cJSON *vals = cJSON_Parse(r->options_json ? r->options_json : "{}");
    cJSON_AddItemToObject(o, "option_values", vals ? vals : cJSON_CreateObject());
    cJSON_AddNumberToObject(o, "steps", e->am_run_steps(rec_of(r)->run));
    cJSON_AddNumberToObject(o, "seconds", e->am_run_seconds(rec_of(r)->run));
    cJSON_AddBoolToObject(o, "cancelled", e->am_run_cancelled(rec_of(r)->run));
    cJSON_AddNumberToObject(o, "live_updates", r->live_updates);
    add_figures_json(o, r);
    if (rec_of(r)->units) {
        cJSON *u = cJSON_AddArrayToObject(o, "units");
        const char *p = rec_of(r)->units;
        for (int i = 0; i < rec_of(r)->n_units; i++, p += strlen(p) + 1)
            cJSON_AddItemToArray(u, cJSON_CreateString(p));
    }
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = mg_strdup(txt ? txt : "{}");
    cJSON_free(txt);
    return out;
}

/* The snapshots at the thresholds, then the result: image 0 of the batch
 * at each, as one row showing how the image formed. */
static void show_snapshots(const mg_call *c, const mg_run_rec *r)
{
    const mg_engine_api *e = mg_engine();
    int ns = e->am_run_num_snapshots(rec_of(r)->run);
    if (ns <= 0)
        return;
    int64_t shape[4];
    const float *fin = e->am_run_images(rec_of(r)->run, shape);
    if (!fin)
        return;
    size_t per = (size_t)(shape[1] * shape[2] * shape[3]);
    float *pix = mg_xmalloc((size_t)(ns + 1) * per * sizeof(float)); /* (ns + 1, C, H, W) */
    char **caps = mg_xcalloc((size_t)ns + 1, sizeof *caps);
    int n = 0;
    for (int k = 0; k < ns; k++) {
        int step = 0;
        int64_t sshape[4];
        const float *img = e->am_run_snapshot(rec_of(r)->run, k, &step, sshape);
        if (!img || sshape[1] != shape[1] || sshape[2] != shape[2] || sshape[3] != shape[3])
            continue;
        memcpy(pix + (size_t)n * per, img, per * sizeof(float));
        caps[n++] = mg_asprintf("step %d", step);
    }
    memcpy(pix + (size_t)n * per, fin, per * sizeof(float));
    caps[n++] = mg_asprintf("final (step %d)", e->am_run_steps(rec_of(r)->run));
    render_grid_opts go = {.min_cell_px = 128, .columns = n};
    render_png png = {0};
    if (render_grid_png(pix, n, (int)shape[1], (int)shape[2], (int)shape[3],
                        (const char *const *)caps, &go, &png) == RENDER_OK) {
        char *text = mg_asprintf("<snapshots of run %d at %d steps>", r->id, n - 1);
        mg_show_png(c, text, &png);
        free(text);
    }
    render_png_clear(&png);
    for (int i = 0; i < n; i++)
        free(caps[i]);
    free(caps);
    free(pix);
}

/* The key figures as a line of text: the notebook shows the PNG of the
 * result's bundle, not its text. */
static void print_result_line(const mg_call *c, const mg_run_rec *r)
{
    const mg_engine_api *e = mg_engine();
    int nb = 0;
    const float *act = e->am_run_activation(rec_of(r)->run, &nb);
    double secs = e->am_run_seconds(rec_of(r)->run);
    mg_sink_printf(c->out, "run %d: %s = %.4g%s on the clean image after %d steps in %.2f s%s\n",
                   r->id, r->objective, nb ? act[0] : NAN, nb > 1 ? " (image 0)" : "",
                   e->am_run_steps(rec_of(r)->run), secs,
                   e->am_run_cancelled(rec_of(r)->run) ? ", interrupted: best result so far" : "");
}

static void show_plot(const mg_call *c, const mg_run_rec *r)
{
    render_png png = {0};
    mg_bundle *b = mg_bundle_new();
    char *ptext =
        mg_asprintf("<plot: objective over %d steps>", mg_engine()->am_run_steps(rec_of(r)->run));
    mg_bundle_text(b, "text/plain", ptext);
    if (run_plot_png(r, &png) == RENDER_OK) {
        mg_bundle_png(b, &png);
        mg_sink_display(c->out, b, NULL);
    }
    mg_bundle_free(b);
    render_png_clear(&png);
    free(ptext);
}

static void show_transparency(const mg_call *c, const mg_run_rec *r)
{
    render_png png = {0};
    if (transparency_png(r, &png) == RENDER_OK) {
        char *text = mg_asprintf("<run %d: each image beside its transparency map (where the "
                                 "objective's gradient was largest over the run)>",
                                 r->id);
        mg_show_png(c, text, &png);
        free(text);
    }
    render_png_clear(&png);
}

static void show_run(const mg_call *c, const mg_run_rec *r)
{
    render_png png = {0};
    mg_bundle *b = mg_bundle_new();
    char *text = run_summary_text(r);
    mg_bundle_text(b, "text/plain", text);
    if (run_image_png(r, &png) == RENDER_OK)
        mg_bundle_png(b, &png);
    else
        mg_sink_printf(c->out, "(image not rendered: %s)\n", render_last_error());
    char *json = run_summary_json(r);
    mg_bundle_json(b, "application/json", json);
    print_result_line(c, r);
    mg_sink_display(c->out, b, NULL);
    mg_bundle_free(b);
    render_png_clear(&png);
    free(json);
    free(text);
    if (rec_of(r)->maco)
        show_transparency(c, r);
    show_snapshots(c, r);
    show_plot(c, r);
}

static void run_row(const mg_run_rec *r, int *steps, double *final, double *seconds)
{
    const mg_engine_api *e = mg_engine();
    int nb = 0;
    const float *act = e->am_run_activation(rec_of(r)->run, &nb);
    *steps = e->am_run_steps(rec_of(r)->run);
    *final = nb ? act[0] : NAN;
    *seconds = e->am_run_seconds(rec_of(r)->run);
}

/* each=true: image i of the batch to PATH-i.png (PATH without ".png"). */
static mg_status save_each(const mg_call *c, const mg_run_rec *r, const char *path)
{
    const mg_engine_api *e = mg_engine();
    int64_t shape[4];
    const float *img = e->am_run_images(rec_of(r)->run, shape);
    if (!img)
        return mg_fail(c, "ValueError", "run %d has no image", r->id);
    size_t per = (size_t)(shape[1] * shape[2] * shape[3]);
    size_t stem = strlen(path) - 4;
    for (int64_t b = 0; b < shape[0]; b++) {
        int64_t one[4] = {1, shape[1], shape[2], shape[3]};
        render_png png = {0};
        char *file = mg_asprintf("%.*s-%lld.png", (int)stem, path, (long long)b);
        mg_status st = MG_ERROR;
        if (mg_images_png(img + per * (size_t)b, one, NULL, NULL, RENDER_MIN_PX, &png) != RENDER_OK)
            mg_fail(c, "RenderError", "%s", render_last_error());
        else
            st = mg_write_png(c, &png, file);
        render_png_clear(&png);
        free(file);
        if (st != MG_OK)
            return st;
    }
    mg_sink_printf(c->out, "saved run %d's %lld images to %.*s-0.png .. -%lld.png\n", r->id,
                   (long long)shape[0], (int)stem, path, (long long)shape[0] - 1);
    return MG_OK;
}

static mg_status run_save(const mg_call *c, const mg_run_rec *r, const char *path)
{
    if (mg_bool(c, "each"))
        return save_each(c, r, path);
    render_png png = {0};
    if (run_image_png(r, &png) != RENDER_OK)
        return mg_fail(c, "RenderError", "%s", render_last_error());
    mg_status st = mg_write_png(c, &png, path);
    if (st == MG_OK)
        mg_sink_printf(c->out, "saved run %d image (%dx%d PNG) to %s\n", r->id, png.width,
                       png.height, path);
    render_png_clear(&png);
    return st;
}

static int run_array(const mg_run_rec *r, const void **data, int *dtype, int64_t *shape)
{
    *data = mg_engine()->am_run_images(rec_of(r)->run, shape);
    *dtype = AM_DTYPE_FLOAT32;
    return *data ? 4 : -1;
}

/* The total objective, then every term (each image's objective, each
 * regularizer's weighted penalty). */
static int run_curves(const mg_run_rec *r, const char **names, const float **curves, int max,
                      int *steps)
{
    const mg_engine_api *e = mg_engine();
    const am_run *run = rec_of(r)->run;
    curves[0] = e->am_run_curve(run, steps);
    names[0] = "objective";
    int n = 1, nt = e->am_run_num_terms(run);
    for (int i = 0; i < nt && n < max; i++) {
        names[n] = e->am_run_term_name(run, i);
        curves[n] = e->am_run_term_curve(run, i);
        if (names[n] && curves[n])
            n++;
    }
    return curves[0] ? n : 0;
}

const mg_run_ops mg_image_run_ops = {.kind = "image",
                                     .show = show_run,
                                     .plot_png = run_plot_png,
                                     .row = run_row,
                                     .save = run_save,
                                     .save_exts = "png",
                                     .free = image_rec_free,
                                     .array = run_array,
                                     .curves = run_curves};

const float *mg_image_run_result(const mg_run_rec *r, int64_t shape[4], float *final0)
{
    const mg_engine_api *e = mg_engine();
    int nb = 0;
    const float *act = e->am_run_activation(rec_of(r)->run, &nb);
    *final0 = nb ? act[0] : NAN;
    return e->am_run_images(rec_of(r)->run, shape);
}

/* ================================================================ %maximize */

/* "16,32,64" -> ascending steps within 1..steps; count or -1 with *err. */
static int parse_thresholds(const char *text, int steps, int **out, char **err)
{
    int n = 0, cap = 8;
    *out = mg_xcalloc((size_t)cap, sizeof(int));
    const char *p = text;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > steps || (n && v <= (*out)[n - 1])) {
            *err = mg_asprintf("thresholds=%s: give ascending steps between 1 and steps=%d "
                               "separated by commas, e.g. thresholds=16,64,%d",
                               text, steps, steps);
            free(*out);
            *out = NULL;
            return -1;
        }
        if (n == cap)
            *out = mg_xrealloc(*out, (size_t)(cap *= 2) * sizeof(int));
        (*out)[n++] = (int)v;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return n;
}

/* Everything a %maximize call asks for, checked, before the engine runs. */
typedef struct max_opts {
    am_options o;
    char *engine_obj; /* the objective as the engine runs it */
    const char *objs[1];
    char *units; /* "each": one objective per unit, NUL-separated (am_objective_each) */
    const char **unit_objs;
    int n_units;
    char *div_layer; /* diversity=LAYER:W's layer, or NULL */
    float *init;     /* (B, C, H, W) from init=PNG or init=dataset:INDEX, or NULL */
    int *thresholds; /* (n_thresholds) */
    int n_thresholds;
} max_opts;

static void max_opts_free(max_opts *m)
{
    free(m->engine_obj);
    free(m->units);
    free(m->unit_objs);
    free(m->div_layer);
    free(m->init);
    free(m->thresholds);
}

/* A whole-text number in [lo, hi]: 0, -1 when not a number, -2 when out of range. */
static int parse_number(const char *t, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    *out = strtod(t, &end);
    if (!t[0] || isspace((unsigned char)t[0]) || *end || !isfinite(*out) || errno == ERANGE)
        return -1;
    return *out < lo || *out > hi ? -2 : 0;
}

/* lr=auto (0: the engine's rule for the optimizer) or a number. */
static mg_status read_lr(const mg_call *c, float *lr)
{
    const char *t = mg_string(c, "lr");
    double v = 0;
    if (strcmp(t, "auto") == 0) {
        *lr = 0;
        return MG_OK;
    }
    int rc = parse_number(t, 1e-6, 100, &v);
    if (rc != 0)
        return mg_fail(c, "UsageError",
                       "%%maximize: lr=%s is %s: expected auto or a number from 1e-06 to 100", t,
                       rc == -1 ? "not valid" : "out of range");
    *lr = (float)v;
    return MG_OK;
}

/* diversity=WEIGHT (on the objective's first layer) or LAYER:WEIGHT. The
 * weight follows the last ':' since a layer name may hold one (path:j). */
static mg_status read_diversity(const mg_call *c, max_opts *m)
{
    const char *t = mg_string(c, "diversity");
    const char *colon = strrchr(t, ':');
    double w = 0;
    int rc = parse_number(colon ? colon + 1 : t, 0, 1e6, &w);
    if (rc != 0 || colon == t)
        return mg_fail(c, "UsageError",
                       "%%maximize: diversity=%s is %s: expected a weight from 0 to 1e+06, or "
                       "LAYER:WEIGHT, e.g. diversity=conv1:1.0",
                       t, rc == -2 ? "out of range" : "not valid");
    m->o.diversity = (float)w;
    if (colon) {
        m->div_layer = mg_strndup(t, (size_t)(colon - t));
        m->o.diversity_layer = m->div_layer;
    }
    return MG_OK;
}

static int optimizer_of(const char *name)
{
    return strcmp(name, "sgd") == 0     ? AM_OPT_SGD
           : strcmp(name, "adam") == 0  ? AM_OPT_ADAM
           : strcmp(name, "nadam") == 0 ? AM_OPT_NADAM
                                        : AM_OPT_AUTO;
}

static int param_of(const char *name)
{
    return strcmp(name, "pixel") == 0  ? AM_PARAM_PIXEL
           : strcmp(name, "maco") == 0 ? AM_PARAM_MACO
                                       : AM_PARAM_FFT;
}

/* MACO's keys, when given: the engine's defaults otherwise. A MACO key on
 * another parameterization would change nothing: refused. */
static mg_status read_maco_keys(const mg_call *c, am_options *o)
{
    static const char *const k_maco[] = {"crops", "crop_max", "crop_min", "noise", "contrast"};
    for (size_t i = 0; i < sizeof k_maco / sizeof *k_maco; i++)
        if (mg_given(c, k_maco[i]) && o->param != AM_PARAM_MACO)
            return mg_fail(c, "ValueError",
                           "%s= acts on the maco parameterization only: add param=maco, or leave "
                           "%s out",
                           k_maco[i], k_maco[i]);
    if (mg_given(c, "crops"))
        o->crops = (int)mg_int(c, "crops");
    if (mg_given(c, "crop_max"))
        o->crop_max = (float)mg_float(c, "crop_max");
    if (mg_given(c, "crop_min"))
        o->crop_min = (float)mg_float(c, "crop_min");
    if (mg_given(c, "noise"))
        o->noise = (float)mg_float(c, "noise");
    if (mg_given(c, "contrast"))
        o->contrast = (float)mg_float(c, "contrast");
    if (o->crop_min > o->crop_max)
        return mg_fail(c, "ValueError",
                       "crop_min=%g is above crop_max=%g: the crops shrink from crop_max to "
                       "crop_min; give crop_min <= crop_max",
                       o->crop_min, o->crop_max);
    return MG_OK;
}

static mg_status read_keys(const mg_call *c, max_opts *m)
{
    am_options *o = &m->o;
    o->batch = (int)mg_int(c, "batch");
    o->steps = (int)mg_int(c, "steps");
    if (read_lr(c, &o->lr) != MG_OK || read_diversity(c, m) != MG_OK)
        return MG_ERROR;
    o->optimizer = optimizer_of(mg_enum(c, "optimizer"));
    o->momentum = (float)mg_float(c, "momentum");
    o->seed = (uint64_t)mg_int(c, "seed");
    o->param = param_of(mg_enum(c, "param"));
    o->decorrelate = mg_bool(c, "decorrelate");
    o->decay_power = (float)mg_float(c, "decay_power");
    o->transforms = mg_bool(c, "transforms");
    o->pad = (int)mg_int(c, "pad");
    o->jitter = (int)mg_int(c, "jitter");
    o->scale_min = (float)mg_float(c, "scale_min");
    o->scale_max = (float)mg_float(c, "scale_max");
    o->rotate_deg = (float)mg_float(c, "rotate");
    o->l1 = (float)mg_float(c, "l1");
    o->l2 = (float)mg_float(c, "l2");
    o->tv = (float)mg_float(c, "tv");
    o->blur = (float)mg_float(c, "blur");
    o->init_std = (float)mg_float(c, "init_std");
    o->accent = (float)mg_float(c, "accent");
    int every = (int)mg_int(c, "image_every");
    o->image_every = every ? every : (o->steps >= 64 ? o->steps / 16 : 4);
    o->height = o->width = 0;
    if (mg_given(c, "size"))
        o->height = o->width = mg_int(c, "size");
    if (o->scale_min > o->scale_max)
        return mg_fail(c, "ValueError",
                       "scale_min=%g is above scale_max=%g: give scale_min <= scale_max",
                       o->scale_min, o->scale_max);
    return read_maco_keys(c, o);
}

/* init=dataset:INDEX: item INDEX of the test split of the dataset the
 * model's metadata names (the split %examples ranks by default), in [0, 1].
 * NULL with *err. */
static float *read_dataset_item(const mg_session *s, const char *arg, const int64_t chw[3],
                                char **err)
{
    const mg_engine_api *e = mg_engine();
    const char *name = e->am_model_dataset(s->model);
    char *end = NULL;
    long long idx = strtoll(arg + 8, &end, 10);
    if (!arg[8] || *end || idx < 0) {
        *err = mg_asprintf("init=%s: give init=dataset:INDEX with INDEX a whole number >= 0 (an "
                           "index %%examples shows)",
                           arg);
        return NULL;
    }
    if (!name || !name[0]) {
        *err = mg_asprintf("init=%s: %s names no dataset (its actmax.json has no \"dataset\"); "
                           "give a PNG file, init=FILE.png",
                           arg, s->model_name);
        return NULL;
    }
    am_dataset *ds = NULL;
    am_batch b = {0};
    int64_t shape[3] = {0};
    float *out = NULL;
    if (e->am_dataset_open(name, "test", NULL, &ds) != AM_OK)
        *err = mg_asprintf("init=%s: cannot read the dataset %s: %s", arg, name,
                           e->am_dataset_error(ds));
    else if (idx >= e->am_dataset_size(ds))
        *err = mg_asprintf("init=%s: the %s test split has %lld items: give an index from 0 to "
                           "%lld",
                           arg, name, (long long)e->am_dataset_size(ds),
                           (long long)e->am_dataset_size(ds) - 1);
    else if (e->am_dataset_item_shape(ds, shape, 3) != 3 || shape[0] != chw[0] ||
             shape[1] != chw[1] || shape[2] != chw[2])
        *err = mg_asprintf("init=%s: %s items are %lldx%lldx%lld, the image is %lldx%lldx%lld: "
                           "leave size= out, or give init=FILE.png",
                           arg, name, (long long)shape[0], (long long)shape[1], (long long)shape[2],
                           (long long)chw[0], (long long)chw[1], (long long)chw[2]);
    else if (e->am_dataset_item(ds, idx, &b) != AM_OK || b.count < 1 || !b.images)
        *err = mg_asprintf("init=%s: cannot read item %lld: %s", arg, idx, e->am_dataset_error(ds));
    else {
        size_t bytes = (size_t)(chw[0] * chw[1] * chw[2]) * sizeof(float);
        out = memcpy(mg_xmalloc(bytes), b.images, bytes);
    }
    e->am_dataset_free(ds);
    return out;
}

/* init=PNG or init=dataset:INDEX, the same image for every item of the
 * batch; accent= needs one. */
static mg_status read_init(const mg_call *c, const mg_session *s, max_opts *m, const int64_t in[3])
{
    const char *init_arg = mg_string(c, "init");
    if (!init_arg[0] || strcmp(init_arg, "noise") == 0) {
        if (m->o.accent > 0)
            return mg_fail(c, "ValueError",
                           "accent=%g keeps the image close to a start image: give one with "
                           "init=dataset:INDEX (an item of the model's dataset) or init=FILE.png",
                           m->o.accent);
        return MG_OK;
    }
    int64_t chw[3] = {in[0], m->o.height ? m->o.height : in[1], m->o.width ? m->o.width : in[2]};
    char *err = NULL;
    float *one = strncmp(init_arg, "dataset:", 8) == 0
                     ? read_dataset_item(s, init_arg, chw, &err)
                     : read_png(init_arg, (int)chw[0], (int)chw[1], (int)chw[2], &err);
    if (!one) {
        mg_status st = mg_fail(c, "ImageError", "%s", err);
        free(err);
        return st;
    }
    size_t per = (size_t)(chw[0] * chw[1] * chw[2]);
    m->init = mg_xmalloc(per * (size_t)m->o.batch * sizeof(float));
    for (int b = 0; b < m->o.batch; b++)
        memcpy(m->init + per * (size_t)b, one, per * sizeof(float));
    free(one);
    m->o.init = AM_INIT_IMAGE;
    m->o.init_image = m->init;
    return MG_OK;
}

/* "%maximize conv2[0:16] each": one image per unit of the slice. */
static mg_status max_each(const mg_call *c, const mg_session *s, max_opts *m)
{
    const mg_engine_api *e = mg_engine();
    size_t plen = strlen(c->positional);
    if (plen <= 5 || strcmp(c->positional + plen - 5, " each") != 0)
        return MG_OK;
    if (m->o.diversity != 0)
        return mg_fail(c, "ValueError",
                       "each gives every unit its own image; diversity compares the images of "
                       "one objective: leave diversity out");
    m->engine_obj[strlen(m->engine_obj) - 5] = '\0';
    int rc = e->am_objective_each(s->model, m->engine_obj, &m->units, &m->n_units);
    if (rc != AM_OK)
        return mg_fail(c, e->am_status_class(rc), "%s", e->am_model_error(s->model));
    m->unit_objs = mg_xcalloc((size_t)m->n_units, sizeof *m->unit_objs);
    const char *u = m->units;
    for (int i = 0; i < m->n_units; i++, u += strlen(u) + 1)
        m->unit_objs[i] = u;
    m->o.objectives = m->unit_objs;
    m->o.n_objectives = m->n_units;
    m->o.batch = m->n_units;
    return MG_OK;
}

/* The options of a %maximize call on model s->model; MG_OK, or the error
 * already shown. */
static mg_status max_options(const mg_call *c, const mg_session *s, max_opts *m)
{
    const mg_engine_api *e = mg_engine();
    e->am_options_default(&m->o);
    m->engine_obj = mg_strdup(c->positional);
    m->objs[0] = m->engine_obj;
    m->o.objectives = m->objs;
    m->o.n_objectives = 1;
    if (read_keys(c, m) != MG_OK || max_each(c, s, m) != MG_OK)
        return MG_ERROR;
    /* Worded as the objective language's diversity(...) is refused. */
    if (m->o.diversity > 0 && m->o.batch < 2)
        return mg_fail(c, "ObjectiveError",
                       "diversity=%s compares the images of a batch with each other: it needs "
                       "batch=2 or more, got batch=%d",
                       mg_string(c, "diversity"), m->o.batch);
    int64_t in[AM_MAX_DIMS];
    int nd = e->am_model_input_shape(s->model, in, AM_MAX_DIMS);
    if (strcmp(e->am_model_kind(s->model), "image") != 0 || nd != 3)
        return mg_fail(c, "UnsupportedError",
                       "%%maximize optimizes images; %s is a %s model: optimize a prompt with "
                       "%%tokens OBJECTIVE, e.g. %%tokens blocks.2.mlp.act[-1, 123] len=8",
                       s->model_name, e->am_model_kind(s->model));
    if (read_init(c, s, m, in) != MG_OK)
        return MG_ERROR;
    if (mg_string(c, "thresholds")[0]) {
        char *err = NULL;
        int n = parse_thresholds(mg_string(c, "thresholds"), m->o.steps, &m->thresholds, &err);
        if (n < 0) {
            mg_status st = mg_fail(c, "ValueError", "%s", err);
            free(err);
            return st;
        }
        m->n_thresholds = n;
        m->o.thresholds = m->thresholds;
        m->o.n_thresholds = n;
    }
    return MG_OK;
}

/* Runs the engine with the live display; the run, or NULL with the error
 * shown. */
static am_run *max_run(const mg_call *c, const mg_session *s, max_opts *m, live *L)
{
    const mg_engine_api *e = mg_engine();
    mg_live_init(&L->d, c->out, "run", mg_float(c, "updates_per_s"));
    L->label = mg_asprintf("%s   (live objective: %s)", c->positional,
                           m->o.param == AM_PARAM_MACO ? "mean over random crops with noise"
                                                       : "on transformed copies");
    L->steps = m->o.steps;
    L->last_obj = NAN;
    m->o.progress = live_progress;
    m->o.progress_user = L;
    live_send(L, 0, NAN);
    am_run *run = NULL;
    int rc = e->am_run_new(s->model, &m->o, &run);
    render_png_clear(&L->img);
    free(L->pending);
    L->pending = NULL;
    L->pending_cap = 0;
    L->dirty = false;
    if (rc != AM_OK) {
        mg_live_fail(&L->d, "run failed before its first step");
        mg_fail(c, rc == AM_E_NOMEM ? "MemoryError" : "ObjectiveError", "%s: %s",
                e->am_strerror(rc), run ? e->am_run_error(run) : "");
        e->am_run_free(run);
        return NULL;
    }
    /* Small in the live display: the full-size result follows it. */
    int64_t shape[4];
    const float *img = e->am_run_images(run, shape);
    if (img)
        mg_images_png(img, shape, NULL, NULL, 128, &L->img);
    mg_live_finish(&L->d, L->last_step, L->steps, L->last_obj, L->label, &L->img);
    render_png_clear(&L->img);
    return run;
}

/* The run as a session record (m's engine objective and thresholds taken). */
static mg_run_rec max_record(const mg_call *c, max_opts *m, am_run *run, const live *L)
{
    image_rec *ir = mg_xcalloc(1, sizeof *ir);
    ir->run = run;
    ir->live_obj = L->last_obj;
    ir->maco = m->o.param == AM_PARAM_MACO;
    ir->engine_obj = m->engine_obj;
    ir->thresholds = m->thresholds;
    ir->n_thresholds = m->n_thresholds;
    ir->units = m->units;
    ir->n_units = m->n_units;
    m->units = NULL;
    m->engine_obj = NULL;
    m->thresholds = NULL;
    mg_run_rec r = {.ops = &mg_image_run_ops, .data = ir, .live_updates = L->d.updates};
    r.objective = mg_strdup(c->positional);
    /* Every key that changes the result: the display-only ones are left
     * out, and so are MACO's keys on another parameterization and Lucid's
     * transforms on MACO (which uses crops instead). */
    static const char *const maco_skip[] = {"image_every", "updates_per_s", "verbose", "code",
                                            "transforms",  "pad",           "jitter",  "scale_min",
                                            "scale_max",   "rotate",        NULL};
    static const char *const not_maco[] = {
        "image_every", "updates_per_s", "verbose", "code",     "crops",
        "crop_max",    "crop_min",      "noise",   "contrast", NULL};
    mg_session_record_options(c, &r, ir->maco ? maco_skip : not_maco);
    return r;
}

/* Built-in models whose Python definition is beside the model's file (an
 * installed share/actmax/models) or in the source tree: the script builds
 * the class and loads the TorchScript file's weights into it, since forward
 * hooks do not run on TorchScript modules. */
#ifndef ACTMAX_SOURCE_MODELS_DIR
#define ACTMAX_SOURCE_MODELS_DIR ""
#endif
static char *python_model_code(const mg_session *s)
{
    static const struct {
        const char *name, *module, *cls;
    } k_defs[] = {{"fashion-cnn", "fashion_cnn", "FashionCNN"}};
    for (size_t i = 0; i < sizeof k_defs / sizeof k_defs[0]; i++) {
        if (strcmp(s->model_name, k_defs[i].name) != 0)
            continue;
        const char *slash = s->model_path ? strrchr(s->model_path, '/') : NULL;
        char *dirs[2] = {slash ? mg_strndup(s->model_path, (size_t)(slash - s->model_path)) : NULL,
                         ACTMAX_SOURCE_MODELS_DIR[0] ? mg_strdup(ACTMAX_SOURCE_MODELS_DIR) : NULL};
        const char *dir = NULL;
        for (int k = 0; k < 2 && !dir; k++) {
            char *file = dirs[k] ? mg_asprintf("%s/%s.py", dirs[k], k_defs[i].module) : NULL;
            if (file && access(file, R_OK) == 0)
                dir = dirs[k];
            free(file);
        }
        char *code =
            dir ? mg_asprintf(
                      "import sys\n\n"
                      "sys.path.insert(0, \"%s\")  # the model's Python definition\n"
                      "from %s import %s  # noqa: E402\n\n"
                      "model = %s()\n"
                      "model.load_state_dict(torch.jit.load(MODEL, map_location=\"cpu\").state_dict())\n",
                      dir, k_defs[i].module, k_defs[i].cls, k_defs[i].cls)
                : NULL;
        free(dirs[0]);
        free(dirs[1]);
        return code;
    }
    return NULL;
}

/* The run as a PyTorch script (NULL when the engine cannot write it: the
 * reason is printed when code=true asked for it). */
static char *max_code(const mg_call *c, const mg_session *s, const max_opts *m)
{
    char *model_code = python_model_code(s);
    char *code = NULL, err[512];
    int rc = mg_engine()->am_run_code(s->model, &m->o, s->model_path, model_code, &code, err,
                                      sizeof err);
    free(model_code);
    if (rc != AM_OK && mg_bool(c, "code"))
        mg_sink_printf(c->out, "(no PyTorch script for this run: %s)\n", err);
    return rc == AM_OK ? code : NULL;
}

mg_status mg_magic_maximize(mg_call *c)
{
    mg_session *s = mg_session_of(c);
    if (mg_session_need_model(c, s) != MG_OK)
        return MG_ERROR;
    if (!c->positional || !c->positional[0])
        return mg_fail(c, "ValueError", "%%maximize needs an objective, e.g. %%maximize conv2[5]");
    max_opts m = {0};
    live L = {0};
    am_run *run = NULL;
    if (max_options(c, s, &m) == MG_OK)
        run = max_run(c, s, &m, &L);
    free(L.label);
    if (!run) {
        max_opts_free(&m);
        return MG_ERROR;
    }
    mg_run_rec rec = max_record(c, &m, run, &L);
    rec.code = max_code(c, s, &m);
    max_opts_free(&m);
    const mg_run_rec *kept = mg_session_add_run(s, &rec);
    kept->ops->show(c, kept);
    if (mg_bool(c, "code") && kept->code) {
        mg_bundle *b = mg_bundle_new();
        mg_bundle_text(b, "text/plain", kept->code);
        char *md = mg_asprintf("```python\n%s```\n", kept->code);
        mg_bundle_text(b, "text/markdown", md);
        mg_sink_display(c->out, b, NULL);
        mg_bundle_free(b);
        free(md);
    }
    if (mg_bool(c, "verbose"))
        mg_sink_printf(c->out, "live display updates sent: %d\n", L.d.updates);
    bool cancelled = mg_engine()->am_run_cancelled(run) || L.d.stopped;
    return cancelled ? MG_INTERRUPTED : MG_OK;
}
