/* %neuron OBJECTIVE: one cell, one dashboard of a unit, what a Neuronpedia
 * feature page shows plus what only optimization gives: the optimized
 * inputs (a diverse batch of images; for text the best prompt of a short
 * GCG search and the single-token sweep) beside the dataset's top examples,
 * examples from quantile bands, the activation histogram with the optimum
 * marked, the firing rate, and per model kind the class means (images) or
 * the logit lens (text). The engine computes every number (runs, the scan
 * and its distribution, the lens); this file asks in order, shows the phase
 * live, and renders one display: HTML, its text twin, and the numbers as
 * application/json for programs.
 *
 * Legend for shapes: B = batch, C = channels, H = height, W = width. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "display.h"
#include "live.h"
#include "magics.h"
#include "paths.h"
#include "text.h"
#include "util.h"

typedef struct dash {
    mg_call *c;
    mg_session *s;
    const mg_engine_api *e;
    const char *obj;
    bool text;
    mg_str html, plain;
    cJSON *json;
    double optimum; /* the best optimized input's objective (NaN: none) */
    bool stopped;
    char *error; /* why the optimization failed */
} dash;

/* ---------------------------------------------------------------- output pieces */

static void heading(dash *d, const char *title)
{
    char *t = NULL;
    render_html_escape(title, &t);
    mg_str_addf(&d->html, "<h4 style=\"margin:0.6em 0 0.2em\">%s</h4>", t ? t : "");
    mg_str_addf(&d->plain, "\n== %s ==\n", title);
    render_free(t);
}

static void note(dash *d, const char *text)
{
    char *t = NULL;
    render_html_escape(text, &t);
    mg_str_addf(&d->html, "<div>%s</div>", t ? t : "");
    mg_str_addf(&d->plain, "%s\n", text);
    render_free(t);
}

static void png_html(dash *d, const render_png *png)
{
    char *b64 = NULL;
    if (!png->data || render_base64(png->data, png->size, &b64, NULL) != RENDER_OK)
        return;
    mg_str_addf(&d->html, "<img src=\"data:image/png;base64,%s\" width=\"%d\"/>", b64, png->width);
    render_free(b64);
}

static void table(dash *d, const render_table *t)
{
    char *h = NULL, *p = NULL;
    if (render_table_html(t, &h) == RENDER_OK)
        mg_str_add(&d->html, h);
    if (render_table_text(t, &p) == RENDER_OK)
        mg_str_add(&d->plain, p);
    render_free(h);
    render_free(p);
}

static cJSON *floats_json(const float *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull());
    return a;
}

/* ---------------------------------------------------------------- live phases */

typedef struct phase {
    mg_live d;
    const char *label;
    int steps, step;
    double value;
} phase;

static int image_progress(void *user, const am_progress *p)
{
    phase *L = user;
    L->step = p->step;
    L->value = p->objective;
    if (mg_live_interrupted(&L->d))
        return 1;
    if (mg_live_due(&L->d))
        mg_live_progress(&L->d, L->step, L->steps, L->value, L->label, NULL);
    return 0;
}

static int text_progress(void *user, const am_text_progress *p)
{
    phase *L = user;
    L->step = p->step;
    L->value = p->activation;
    if (mg_live_interrupted(&L->d))
        return 1;
    if (mg_live_due(&L->d))
        mg_live_progress(&L->d, L->step, L->steps, L->value, L->label, NULL);
    return 0;
}

/* ---------------------------------------------------------------- optimized inputs */

/* Images: a batch optimized together with Lucid's diversity term. The keys
 * are %neuron's own (images=, image_steps=), not the session's batch and
 * steps, so its modest defaults hold after a %set. A failed
 * run (a bad objective: the engine's message with its caret) fails the
 * magic: AM_OK or the status, the message in d->error. */
static int image_optimized(dash *d)
{
    const mg_engine_api *e = d->e;
    am_options o;
    e->am_options_default(&o);
    const char *objs[1] = {d->obj};
    o.objectives = objs;
    o.n_objectives = 1;
    o.batch = (int)mg_int(d->c, "images");
    o.steps = (int)mg_int(d->c, "image_steps");
    o.seed = (uint64_t)mg_int(d->c, "seed");
    o.diversity = o.batch > 1 ? (float)mg_float(d->c, "diversity") : 0.f;
    char *label = mg_asprintf("optimizing %s", d->obj);
    phase L = {.label = label, .steps = o.steps, .value = NAN};
    mg_live_init(&L.d, d->c->out, "neuron", mg_float(d->c, "updates_per_s"));
    mg_live_progress(&L.d, 0, o.steps, NAN, label, NULL);
    o.progress = image_progress;
    o.progress_user = &L;
    am_run *run = NULL;
    int rc = e->am_run_new(d->s->model, &o, &run);
    if (rc != AM_OK) {
        mg_live_fail(&L.d, "the optimization failed");
        d->error = mg_strdup(run ? e->am_run_error(run) : "");
        e->am_run_free(run);
        free(label);
        return rc;
    }
    heading(d, "optimized inputs");
    int64_t shape[4];
    const float *img = e->am_run_images(run, shape);
    int nb = 0;
    const float *fin = e->am_run_final(run, &nb);
    mg_live_finish(&L.d, e->am_run_steps(run), o.steps, fin && nb ? fin[0] : NAN, label, NULL);
    d->stopped |= e->am_run_cancelled(run) || L.d.stopped;
    char **caps = mg_xcalloc((size_t)nb + 1, sizeof *caps);
    for (int i = 0; i < nb; i++) {
        caps[i] = mg_asprintf("optimized %.4g", fin[i]);
        if (!isfinite(d->optimum) || fin[i] > d->optimum)
            d->optimum = fin[i];
    }
    render_png png = {0};
    render_grid_opts go = {.min_cell_px = 96};
    if (img && render_grid_png(img, (int)shape[0], (int)shape[1], (int)shape[2], (int)shape[3],
                               (const char *const *)caps, &go, &png) == RENDER_OK)
        png_html(d, &png);
    render_png_clear(&png);
    char *line = mg_asprintf("%d images, %d steps, diversity %g, seed %lld: best %.4g (%.2f s)", nb,
                             e->am_run_steps(run), o.diversity, (long long)o.seed, d->optimum,
                             e->am_run_seconds(run));
    note(d, line);
    free(line);
    cJSON_AddItemToObject(d->json, "optimized", floats_json(fin, nb));
    for (int i = 0; i < nb; i++)
        free(caps[i]);
    free(caps);
    e->am_run_free(run);
    free(label);
    return AM_OK;
}

/* Text: a short GCG search, the best discrete prompt. A failed search
 * fails the magic, as for images. */
static int text_optimized(dash *d, am_tokenizer *tok)
{
    const mg_engine_api *e = d->e;
    am_text_options o;
    e->am_text_options_default(&o);
    o.objective = d->obj;
    o.method = AM_TEXT_GCG;
    o.len = (int)mg_int(d->c, "prompt_len");
    o.steps = (int)mg_int(d->c, "text_steps");
    o.seed = (uint64_t)mg_int(d->c, "seed");
    o.attribution = 0;
    char *label = mg_asprintf("optimizing a prompt for %s", d->obj);
    phase L = {.label = label, .steps = o.steps, .value = NAN};
    mg_live_init(&L.d, d->c->out, "neuron", mg_float(d->c, "updates_per_s"));
    mg_live_progress(&L.d, 0, o.steps, NAN, label, NULL);
    o.progress = text_progress;
    o.progress_user = &L;
    am_text_run *run = NULL;
    int rc = e->am_text_run_new(d->s->model, &o, &run);
    if (rc != AM_OK) {
        mg_live_fail(&L.d, "the search failed");
        d->error = mg_strdup(run ? e->am_text_run_error(run) : "");
        e->am_text_run_free(run);
        free(label);
        return rc;
    }
    heading(d, "best prompt (GCG)");
    {
        float act = e->am_text_run_activation(run);
        mg_live_finish(&L.d, e->am_text_run_steps(run), o.steps, act, label, NULL);
        d->stopped |= e->am_text_run_cancelled(run) || L.d.stopped;
        d->optimum = act;
        int len = 0;
        const int64_t *ids = e->am_text_run_tokens(run, &len);
        char *text = mg_ids_text(tok, ids, len);
        char *one = mg_one_line(text);
        char *line = mg_asprintf("\"%s\" -> %.4g (%d tokens, %d steps, %.2f s)", one, act, len,
                                 e->am_text_run_steps(run), e->am_text_run_seconds(run));
        note(d, line);
        cJSON *p = cJSON_AddObjectToObject(d->json, "prompt");
        cJSON_AddStringToObject(p, "text", text);
        cJSON_AddNumberToObject(p, "activation", act);
        cJSON *a = cJSON_AddArrayToObject(p, "ids");
        for (int i = 0; i < len; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber((double)ids[i]));
        free(line);
        free(one);
        free(text);
    }
    e->am_text_run_free(run);
    free(label);
    return AM_OK;
}

/* Every token alone: a sweep at the one position of a 1-token prompt, the
 * best lens_k shown. */
static void text_sweep(dash *d, am_tokenizer *tok)
{
    const mg_engine_api *e = d->e;
    am_text_options so;
    e->am_text_options_default(&so);
    so.objective = d->obj;
    so.method = AM_TEXT_SWEEP;
    so.len = 1;
    so.position = 0;
    so.attribution = 0;
    am_text_run *run = NULL;
    int rc = e->am_text_run_new(d->s->model, &so, &run);
    heading(d, "single-token sweep");
    int vocab = 0, pos = 0;
    const float *sw = rc == AM_OK ? e->am_text_run_sweep(run, &vocab, &pos) : NULL;
    if (!sw) {
        char *msg = mg_asprintf("no sweep: %s", run ? e->am_text_run_error(run) : "");
        note(d, msg);
        free(msg);
        e->am_text_run_free(run);
        return;
    }
    int k = (int)mg_int(d->c, "lens_k");
    if (k > vocab)
        k = vocab;
    /* Partial selection of the k best: k is small. */
    int *best = mg_xcalloc((size_t)k + 1, sizeof *best);
    char *used = mg_xcalloc((size_t)vocab, 1);
    for (int j = 0; j < k; j++) {
        int b = -1;
        for (int v = 0; v < vocab; v++)
            if (!used[v] && isfinite(sw[v]) && (b < 0 || sw[v] > sw[b]))
                b = v;
        if (b < 0) {
            k = j;
            break;
        }
        used[b] = 1;
        best[j] = b;
    }
    const char *header[] = {"token", "id", "value"};
    char **cells = mg_xcalloc((size_t)k * 3 + 1, sizeof *cells);
    cJSON *arr = cJSON_AddArrayToObject(d->json, "sweep");
    for (int j = 0; j < k; j++) {
        cells[j * 3] = mg_token_label(tok, best[j]);
        cells[j * 3 + 1] = mg_asprintf("%d", best[j]);
        cells[j * 3 + 2] = mg_asprintf("%.4g", sw[best[j]]);
        cJSON *it = cJSON_CreateObject();
        cJSON_AddNumberToObject(it, "id", best[j]);
        cJSON_AddNumberToObject(it, "value", sw[best[j]]);
        cJSON_AddItemToArray(arr, it);
    }
    render_table t = {
        .n_cols = 3, .n_rows = k, .header = header, .cells = (const char *const *)cells};
    table(d, &t);
    for (int j = 0; j < k * 3; j++)
        free(cells[j]);
    free(cells);
    free(best);
    free(used);
    e->am_text_run_free(run);
}

/* ---------------------------------------------------------------- logit lens */

/* "blocks.1.mlp.act[-1, 42]" -> layer "blocks.1.mlp.act", unit 42: a
 * single layer reference whose last index is the neuron. 0 when the
 * objective is anything else. */
static int lens_target(const char *obj, char **layer, long long *unit)
{
    const char *p = obj;
    while (isspace((unsigned char)*p))
        p++;
    const char *b = p;
    while (*p && mg_is_layer_char((unsigned char)*p))
        p++;
    if (p == b || *p != '[')
        return 0;
    const char *close = strchr(p, ']');
    if (!close)
        return 0;
    for (const char *q = close + 1; *q; q++)
        if (!isspace((unsigned char)*q))
            return 0;
    const char *last = close;
    while (last > p && last[-1] != ',' && last[-1] != '[')
        last--;
    char *end = NULL;
    long long v = strtoll(last, &end, 10);
    while (end && end < close && isspace((unsigned char)*end))
        end++;
    if (!end || end != close || end == last)
        return 0;
    *layer = mg_strndup(b, (size_t)(p - b));
    *unit = v;
    return 1;
}

static void logit_lens(dash *d, am_tokenizer *tok)
{
    const mg_engine_api *e = d->e;
    heading(d, "logit lens (output direction through the unembedding)");
    char *layer = NULL;
    long long unit = 0;
    if (!lens_target(d->obj, &layer, &unit)) {
        note(d, "not shown: the lens reads one MLP neuron, an objective like "
                "blocks.1.mlp.act[-1, 42]");
        return;
    }
    int k = (int)mg_int(d->c, "lens_k");
    int64_t *ids = mg_xcalloc((size_t)k * 2 + 1, sizeof *ids);
    float *vals = mg_xcalloc((size_t)k * 2 + 1, sizeof *vals);
    int rc = e->am_logit_lens(d->s->model, layer, unit, k, ids, vals, ids + k, vals + k, NULL);
    if (rc != AM_OK) {
        char *msg = mg_asprintf("not shown: %s", e->am_model_error(d->s->model));
        note(d, msg);
        free(msg);
    } else {
        const char *header[] = {"top token", "logit weight", "bottom token", "logit weight"};
        char **cells = mg_xcalloc((size_t)k * 4 + 1, sizeof *cells);
        cJSON *lj = cJSON_AddObjectToObject(d->json, "lens");
        cJSON *top = cJSON_AddArrayToObject(lj, "top");
        cJSON *bot = cJSON_AddArrayToObject(lj, "bottom");
        for (int j = 0; j < k; j++) {
            cells[j * 4] = mg_token_label(tok, ids[j]);
            cells[j * 4 + 1] = mg_asprintf("%+.4f", vals[j]);
            cells[j * 4 + 2] = mg_token_label(tok, ids[k + j]);
            cells[j * 4 + 3] = mg_asprintf("%+.4f", vals[k + j]);
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)ids[j]);
            cJSON_AddNumberToObject(a, "value", vals[j]);
            cJSON_AddItemToArray(top, a);
            cJSON *b = cJSON_CreateObject();
            cJSON_AddNumberToObject(b, "id", (double)ids[k + j]);
            cJSON_AddNumberToObject(b, "value", vals[k + j]);
            cJSON_AddItemToArray(bot, b);
        }
        render_table t = {
            .n_cols = 4, .n_rows = k, .header = header, .cells = (const char *const *)cells};
        table(d, &t);
        for (int j = 0; j < k * 4; j++)
            free(cells[j]);
        free(cells);
    }
    free(ids);
    free(vals);
    free(layer);
}

/* ---------------------------------------------------------------- the dataset */

/* Text examples as rows: the window's tokens coloured, the peak in brackets
 * in the text twin. */
static void text_rows(dash *d, am_tokenizer *tok, const am_example *ex, int n, const char *what,
                      cJSON *arr)
{
    float lo = 0, hi = 0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < ex[i].len; t++)
            if (isfinite(ex[i].acts[t])) {
                hi = ex[i].acts[t] > hi ? ex[i].acts[t] : hi;
                lo = ex[i].acts[t] < lo ? ex[i].acts[t] : lo;
            }
    if (hi <= lo)
        hi = lo + 1;
    mg_str_addf(&d->html,
                "<table><tr><th>%s</th><th>value</th><th style=\"text-align:left\">"
                "context (colour: activation per token)</th></tr>",
                what);
    for (int i = 0; i < n; i++) {
        mg_str_addf(&d->html, "<tr><td>%d</td><td>%.4g</td><td style=\"text-align:left\">", i + 1,
                    ex[i].value);
        mg_colored_spans(&d->html, tok, ex[i].tokens, ex[i].acts, ex[i].len, lo, hi);
        mg_str_add(&d->html, "</td></tr>");
        mg_str_addf(&d->plain, "  %2d. %8.4g  ", i + 1, ex[i].value);
        for (int t = 0; t < ex[i].len; t++) {
            char *lab = mg_token_label(tok, ex[i].tokens[t]);
            mg_str_addf(&d->plain, t == ex[i].peak ? "[%s]" : "%s", lab);
            free(lab);
        }
        mg_str_add(&d->plain, "\n");
        cJSON *it = cJSON_CreateObject();
        cJSON_AddNumberToObject(it, "value", ex[i].value);
        cJSON_AddNumberToObject(it, "index", (double)ex[i].index);
        cJSON_AddNumberToObject(it, "peak", ex[i].peak);
        cJSON_AddItemToArray(arr, it);
    }
    mg_str_add(&d->html, "</table>");
}

/* Image examples as a grid captioned with label and value. */
static void image_grid(dash *d, const am_example *ex, int n, const float range[2], cJSON *arr)
{
    if (n <= 0)
        return;
    int64_t C = ex[0].shape[0], H = ex[0].shape[1], W = ex[0].shape[2];
    size_t per = (size_t)(C * H * W);
    float span = range[1] - range[0] != 0 ? range[1] - range[0] : 1;
    float *grid = mg_xmalloc((size_t)n * per * sizeof(float));
    char **caps = mg_xcalloc((size_t)n, sizeof *caps);
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < per; j++)
            grid[(size_t)i * per + j] = (ex[i].image[j] - range[0]) / span;
        caps[i] = mg_asprintf("%s %.3g", ex[i].label_name[0] ? ex[i].label_name : "?", ex[i].value);
        mg_str_addf(&d->plain, "  #%lld %-12s %.6g\n", (long long)ex[i].index,
                    ex[i].label_name[0] ? ex[i].label_name : "?", ex[i].value);
        cJSON *it = cJSON_CreateObject();
        cJSON_AddNumberToObject(it, "value", ex[i].value);
        cJSON_AddNumberToObject(it, "index", (double)ex[i].index);
        cJSON_AddNumberToObject(it, "label", (double)ex[i].label);
        cJSON_AddItemToArray(arr, it);
    }
    render_png png = {0};
    render_grid_opts go = {.min_cell_px = 64, .columns = n < 8 ? n : 8};
    if (render_grid_png(grid, n, (int)C, (int)H, (int)W, (const char *const *)caps, &go, &png) ==
        RENDER_OK)
        png_html(d, &png);
    render_png_clear(&png);
    for (int i = 0; i < n; i++)
        free(caps[i]);
    free(caps);
    free(grid);
}

static void show_examples(dash *d, am_tokenizer *tok, const am_example *ex, int n,
                          const float range[2], const char *what, cJSON *arr)
{
    if (d->text)
        text_rows(d, tok, ex, n, what, arr);
    else
        image_grid(d, ex, n, range, arr);
}

static void histogram(dash *d, const am_examples *ex)
{
    const mg_engine_api *e = d->e;
    const int64_t *counts = NULL;
    int bins = 0;
    float lo = 0, hi = 0;
    heading(d, "activation histogram");
    if (e->am_examples_histogram(ex, &counts, &bins, &lo, &hi) != AM_OK || bins <= 0) {
        note(d, "no histogram: nothing was scored");
        return;
    }
    float *x = mg_xcalloc((size_t)bins, sizeof *x), *y = mg_xcalloc((size_t)bins, sizeof *y);
    int64_t total = 0;
    cJSON *h = cJSON_AddObjectToObject(d->json, "histogram");
    cJSON *cj = cJSON_AddArrayToObject(h, "counts");
    for (int i = 0; i < bins; i++) {
        x[i] = lo + (hi - lo) * ((float)i + 0.5f) / (float)bins;
        y[i] = counts[i] > 0 ? (float)log10((double)counts[i] + 1.0) : 0.f;
        total += counts[i];
        cJSON_AddItemToArray(cj, cJSON_CreateNumber((double)counts[i]));
    }
    cJSON_AddNumberToObject(h, "lo", lo);
    cJSON_AddNumberToObject(h, "hi", hi);
    cJSON_AddBoolToObject(h, "sampled", e->am_examples_sampled(ex) == 1);
    float vl[2];
    const char *vlab[2];
    int nv = 0;
    char *optlab = NULL;
    if (isfinite(d->optimum)) {
        vl[nv] = (float)d->optimum;
        optlab = mg_asprintf("optimum %.3g", d->optimum);
        vlab[nv++] = optlab;
    }
    render_series s = {.name = "log10(count + 1)", .x = x, .y = y, .n = bins};
    render_plot_opts po = {.width = 640,
                           .height = 280,
                           .xlabel = "activation",
                           .ylabel = "log10(count + 1)",
                           .vlines = vl,
                           .vline_labels = vlab,
                           .n_vlines = nv};
    render_png png = {0};
    if (render_plot_png(&s, 1, &po, &png) == RENDER_OK)
        png_html(d, &png);
    render_png_clear(&png);
    char *line = mg_asprintf("%lld values in %d bins over [%.4g, %.4g]%s; optimum %.4g is %s the "
                             "dataset maximum %.4g",
                             (long long)total, bins, lo, hi,
                             e->am_examples_sampled(ex) == 1 ? " (a uniform sample, scaled)" : "",
                             d->optimum, d->optimum > e->am_examples_max(ex) ? "above" : "below",
                             e->am_examples_max(ex));
    note(d, line);
    free(line);
    free(optlab);
    free(x);
    free(y);
}

static void bands(dash *d, am_tokenizer *tok, const am_examples *ex, const float range[2])
{
    const mg_engine_api *e = d->e;
    int nb = e->am_examples_num_bands(ex);
    if (nb <= 0)
        return;
    heading(d, "examples across the distribution (quantile bands, highest first)");
    cJSON *bj = cJSON_AddArrayToObject(d->json, "bands");
    int per = (int)mg_int(d->c, "per_band");
    am_example *items = mg_xcalloc((size_t)per + 1, sizeof *items);
    for (int b = nb - 1; b >= 0; b--) {
        float blo = NAN, bhi = NAN;
        int n = 0;
        while (n < per && e->am_examples_band_get(ex, b, n, &items[n], &blo, &bhi) == AM_OK)
            n++;
        if (n == 0)
            e->am_examples_band_get(ex, b, 0, &items[0], &blo, &bhi);
        char *t = mg_asprintf("band %d: [%.4g, %.4g]", b + 1, blo, bhi);
        mg_str_addf(&d->html, "<div><i>%s</i></div>", t);
        mg_str_addf(&d->plain, "%s\n", t);
        free(t);
        cJSON *one = cJSON_CreateObject();
        cJSON_AddNumberToObject(one, "lo", blo);
        cJSON_AddNumberToObject(one, "hi", bhi);
        cJSON *arr = cJSON_AddArrayToObject(one, "examples");
        cJSON_AddItemToArray(bj, one);
        show_examples(d, tok, items, n, range, "#", arr);
    }
    free(items);
}

static void class_means(dash *d, const am_examples *ex)
{
    const mg_engine_api *e = d->e;
    const float *means = NULL;
    int n = 0;
    if (e->am_examples_class_means(ex, &means, &n) != AM_OK || n <= 0)
        return;
    heading(d, "mean activation per class");
    const char *header[] = {"class", "mean"};
    char **cells = mg_xcalloc((size_t)n * 2 + 1, sizeof *cells);
    float *heat = mg_xcalloc((size_t)n * 2 + 1, sizeof *heat);
    float lo = 0, hi = 0;
    for (int i = 0; i < n; i++) {
        const char *lab = e->am_model_label(d->s->model, i);
        cells[i * 2] = mg_strdup(lab ? lab : "?");
        cells[i * 2 + 1] = mg_asprintf("%.4g", means[i]);
        heat[i * 2] = NAN;
        heat[i * 2 + 1] = means[i];
        if (isfinite(means[i])) {
            lo = means[i] < lo ? means[i] : lo;
            hi = means[i] > hi ? means[i] : hi;
        }
    }
    render_table t = {.n_cols = 2,
                      .n_rows = n,
                      .header = header,
                      .cells = (const char *const *)cells,
                      .heat = hi > lo ? heat : NULL,
                      .heat_lo = lo,
                      .heat_hi = hi};
    table(d, &t);
    cJSON_AddItemToObject(d->json, "class_means", floats_json(means, n));
    for (int i = 0; i < n * 2; i++)
        free(cells[i]);
    free(cells);
    free(heat);
}

/* The scan: top-k, bands, histogram, firing rate, class means. */
static void dataset(dash *d, am_tokenizer *tok)
{
    const mg_engine_api *e = d->e;
    char *path = NULL;
    am_examples_options o;
    e->am_examples_options_default(&o);
    o.objective = d->obj;
    o.k = (int)mg_int(d->c, "top");
    o.limit = mg_int(d->c, "limit");
    o.bins = (int)mg_int(d->c, "bins");
    o.quantiles = (int)mg_int(d->c, "quantiles");
    o.per_band = (int)mg_int(d->c, "per_band");
    if (d->text) {
        const char *p = mg_string(d->c, "path");
        path = p[0] ? mg_strdup(p) : mg_corpus_path(d->s->model_path);
        if (!path) {
            heading(d, "dataset");
            note(d, "no corpus found beside the model; give path=FILE (any text file)");
            return;
        }
        o.dataset = p[0] ? "text" : "fortunes";
        o.path = path;
    }
    mg_scan_live L = {.objective = d->obj,
                      .items = d->text ? "corpus tokens" : "test images",
                      .reading = d->text ? "scanning: reading the corpus" : "scanning the dataset",
                      .best = NAN};
    mg_live_init(&L.d, d->c->out, "neuron-scan", mg_float(d->c, "updates_per_s"));
    mg_scan_live_send(&L);
    o.progress = mg_scan_live_progress;
    o.progress_user = &L;
    am_examples *ex = NULL;
    double t0 = render_clock_monotonic(NULL);
    int rc = e->am_examples_new(d->s->model, &o, &ex);
    double secs = render_clock_monotonic(NULL) - t0;
    free(path);
    if (rc != AM_OK) {
        mg_live_fail(&L.d, "the scan failed");
        heading(d, "dataset");
        char *msg = mg_asprintf("not scanned: %s", ex ? e->am_examples_error(ex) : "");
        note(d, msg);
        free(msg);
        e->am_examples_free(ex);
        return;
    }
    mg_live_finish(&L.d, (int)L.scanned, (int)L.total, e->am_examples_max(ex), d->obj, NULL);
    d->stopped |= e->am_examples_cancelled(ex) || L.d.stopped;
    const float *mean, *sd;
    int nmean;
    float range[2] = {0, 1};
    e->am_model_normalization(d->s->model, &mean, &sd, &nmean, range);
    int64_t scanned = e->am_examples_scanned(ex);
    double rate = e->am_examples_firing_rate(ex);
    cJSON_AddNumberToObject(d->json, "scanned", (double)scanned);
    cJSON_AddNumberToObject(d->json, "dataset_max", e->am_examples_max(ex));
    cJSON_AddNumberToObject(d->json, "firing_rate", rate);
    cJSON_AddNumberToObject(d->json, "scan_seconds", secs);

    int n = e->am_examples_count(ex);
    char *title = mg_asprintf("top %d of %lld %s", n, (long long)scanned,
                              d->text ? "tokens (each with its context)" : "test images");
    heading(d, title);
    free(title);
    char *line =
        mg_asprintf("dataset maximum %.4g; firing rate %.2f%% (values > 0); scanned in "
                    "%.2f s%s",
                    e->am_examples_max(ex), 100.0 * rate, secs,
                    e->am_examples_cancelled(ex) ? " (interrupted: what was scanned)" : "");
    note(d, line);
    free(line);
    am_example *items = mg_xcalloc((size_t)n + 1, sizeof *items);
    int got = 0;
    for (int i = 0; i < n; i++)
        if (e->am_examples_get(ex, i, &items[got]) == AM_OK)
            got++;
    show_examples(d, tok, items, got, range, "#", cJSON_AddArrayToObject(d->json, "top"));
    free(items);
    bands(d, tok, ex, range);
    histogram(d, ex);
    if (!d->text)
        class_means(d, ex);
    e->am_examples_free(ex);
}

/* ---------------------------------------------------------------- the magic */

mg_status mg_magic_neuron(mg_call *c)
{
    mg_session *s = mg_session_of(c);
    if (mg_session_need_model(c, s) != MG_OK)
        return MG_ERROR;
    if (!c->positional || !c->positional[0])
        return mg_fail(c, "ValueError",
                       "%%neuron needs an objective, e.g. %%neuron conv2[5] or %%neuron "
                       "blocks.1.mlp.act[-1, 42]");
    const mg_engine_api *e = mg_engine();
    dash d = {.c = c, .s = s, .e = e, .obj = c->positional, .optimum = NAN};
    d.text = strcmp(e->am_model_kind(s->model), "text") == 0;
    am_tokenizer *tok = NULL;
    if (d.text) {
        char *err = NULL;
        tok = mg_model_tokenizer(s->model, &err);
        if (!tok) {
            mg_status st = mg_fail(c, "TokenizerError", "%%neuron on %s: %s", s->model_name, err);
            free(err);
            return st;
        }
    }
    d.json = cJSON_CreateObject();
    cJSON_AddStringToObject(d.json, "objective", d.obj);
    cJSON_AddStringToObject(d.json, "kind", d.text ? "text" : "image");
    char *esc = NULL;
    render_html_escape(d.obj, &esc);
    mg_str_addf(&d.html, "<div class=\"actmax-neuron\"><h3 style=\"margin:0.2em 0\">%s on %s</h3>",
                esc ? esc : "", s->model_name);
    mg_str_addf(&d.plain, "%%neuron %s on %s\n", d.obj, s->model_name);
    render_free(esc);
    double t0 = render_clock_monotonic(NULL);

    int rc = d.text ? text_optimized(&d, tok) : image_optimized(&d);
    if (rc == AM_OK && d.text && !d.stopped)
        text_sweep(&d, tok);
    if (rc != AM_OK) {
        mg_status st = mg_fail(c, e->am_status_class(rc), "%s", d.error ? d.error : "");
        free(d.error);
        cJSON_Delete(d.json);
        mg_str_free(&d.html);
        mg_str_free(&d.plain);
        e->am_tokenizer_free(tok);
        return st;
    }
    double t_opt = render_clock_monotonic(NULL) - t0;
    if (!d.stopped)
        dataset(&d, tok);
    if (d.text && !d.stopped)
        logit_lens(&d, tok);
    double total = render_clock_monotonic(NULL) - t0;
    cJSON_AddNumberToObject(d.json, "optimum", d.optimum);
    cJSON_AddNumberToObject(d.json, "optimize_seconds", t_opt);
    cJSON_AddNumberToObject(d.json, "seconds", total);
    char *line = mg_asprintf("%.2f s in all (%.2f s optimizing)%s", total, t_opt,
                             d.stopped ? "; interrupted" : "");
    note(&d, line);
    free(line);
    mg_str_add(&d.html, "</div>");

    mg_bundle *b = mg_bundle_new();
    mg_bundle_text(b, "text/plain", mg_str_cstr(&d.plain));
    mg_bundle_text(b, "text/html", mg_str_cstr(&d.html));
    char *js = cJSON_PrintUnformatted(d.json);
    if (js)
        mg_bundle_json(b, "application/json", js);
    mg_sink_display(c->out, b, NULL);
    mg_bundle_free(b);
    cJSON_free(js);
    cJSON_Delete(d.json);
    mg_str_free(&d.html);
    mg_str_free(&d.plain);
    e->am_tokenizer_free(tok);
    return d.stopped ? MG_INTERRUPTED : MG_OK;
}
