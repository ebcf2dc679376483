/* The language-model magics: %tokens (prompt optimization through
 * am_text_run_*) and %examples on a text model (corpus windows through
 * am_text_examples_*), and how a text run is shown: prompt with per-token
 * colouring, nearest-token and attribution tables, soft vs projected values,
 * curves. magics_engine.c keeps text runs beside image runs and calls in
 * here to show, list and save them.
 *
 * Legend for shapes: T = prompt tokens, K = nearest tokens per position,
 * S = steps, V = vocabulary, W = window tokens. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "engine_api.h"
#include "live.h"
#include "magics.h"
#include "render.h"
#include "util.h"

/* ================================================================ helpers */

/* bytes sanitized (invalid UTF-8 as \xNN) with each character of from[]
 * replaced by the string at the same place in to[]; NULL when it fails. */
static char *escape_chars(const char *bytes, size_t len, const char *from, const char *const *to)
{
    char *clean = NULL;
    if (render_utf8_sanitize(bytes, len, &clean, NULL) != RENDER_OK)
        return NULL;
    mg_str s = MG_STR_INIT;
    for (const char *p = clean; *p; p++) {
        const char *hit = strchr(from, *p);
        if (hit)
            mg_str_add(&s, to[hit - from]);
        else
            mg_str_addc(&s, *p);
    }
    render_free(clean);
    return mg_str_steal(&s);
}

/* A token's bytes as table text: whitespace made visible (· for space, ↵
 * for newline, → for tab) so that " the" and "the" differ on screen. */
static char *token_label(const am_tokenizer *tok, int64_t id)
{
    static const char *const to[] = {"\xC2\xB7", "\xE2\x86\xB5", "\xE2\x86\x92", "\\r"};
    const mg_engine_api *e = mg_engine();
    const char *bytes = NULL;
    size_t len = 0;
    char *out = NULL;
    if (!tok || e->am_tokenizer_token_bytes(tok, id, &bytes, &len) != 0 ||
        !(out = escape_chars(bytes, len, " \n\t\r", to)))
        return mg_asprintf("<%lld>", (long long)id);
    if (!*out) {
        free(out);
        return mg_strdup("\"\"");
    }
    return out;
}

/* The model's tokenizer, parsed from the file it carries; NULL with *err. */
static am_tokenizer *model_tokenizer(am_model *m, char **err)
{
    const mg_engine_api *e = mg_engine();
    const char *bytes = NULL;
    size_t len = 0;
    int rc = e->am_model_tokenizer(m, &bytes, &len);
    if (rc != AM_OK) {
        *err = mg_asprintf("the model carries no tokenizer (its actmax.json needs a \"tokenizer\" "
                           "field naming an extra file in the TorchScript archive, e.g. "
                           "tokenizer.json): %s",
                           e->am_strerror(rc));
        return NULL;
    }
    am_tokenizer *t = NULL;
    rc = e->am_tokenizer_load_json(bytes, len, &t);
    if (rc != 0) {
        *err = mg_asprintf("the model's tokenizer does not parse: %s",
                           t ? e->am_tokenizer_error(t) : "out of memory");
        e->am_tokenizer_free(t);
        return NULL;
    }
    return t;
}

/* The prompt as text, escaped where not UTF-8 (never breaks the output). */
static char *ids_text(am_tokenizer *tok, const int64_t *ids, int n)
{
    const mg_engine_api *e = mg_engine();
    char *raw = NULL, *clean = NULL;
    size_t len = 0;
    if (!tok || e->am_tokenizer_decode(tok, ids, (size_t)n, &raw, &len) != 0) {
        free(raw);
        return mg_strdup("?");
    }
    render_utf8_sanitize(raw, len, &clean, NULL);
    free(raw);
    char *out = mg_strdup(clean ? clean : "?");
    render_free(clean);
    return out;
}

/* The prompt on one line of text/plain: \n, \t, \r and " escaped as in C. */
static char *one_line(const char *text)
{
    static const char *const to[] = {"\\n", "\\t", "\\r", "\\\""};
    char *out = escape_chars(text, strlen(text), "\n\t\r\"", to);
    return out ? out : mg_strdup("?");
}

/* Coloured token spans, Neuroscope style: background from the heat colour
 * of each token's activation, the value in the title attribute. */
static void colored_spans(mg_str *html, am_tokenizer *tok, const int64_t *ids, const float *acts,
                          int n, float lo, float hi)
{
    const mg_engine_api *e = mg_engine();
    mg_str_add(html, "<span style=\"font-family:monospace;white-space:pre-wrap\">");
    for (int t = 0; t < n; t++) {
        const char *bytes = NULL;
        size_t len = 0;
        char *clean = NULL, *esc = NULL;
        if (e->am_tokenizer_token_bytes(tok, ids[t], &bytes, &len) != 0) {
            bytes = "?";
            len = 1;
        }
        render_utf8_sanitize(bytes, len, &clean, NULL);
        render_html_escape(clean ? clean : "?", &esc);
        char col[8] = "#ffffff";
        if (acts && isfinite(acts[t]) && lo < hi)
            render_heat_color(acts[t], lo, hi, col);
        mg_str_addf(html, "<span class=\"actmax-tok\" style=\"background:%s\" title=\"%s%.4g\">%s</span>",
                    col, acts ? "" : "token ", acts ? acts[t] : (double)ids[t],
                    esc ? esc : "?");
        render_free(clean);
        render_free(esc);
    }
    mg_str_add(html, "</span>");
}

static void heat_range(const float *v, int n, float *lo, float *hi)
{
    float mx = 0, mn = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] > mx)
                mx = v[i];
            if (v[i] < mn)
                mn = v[i];
        }
    *lo = mn < 0 ? mn : 0;
    *hi = mx > 0 ? mx : (mn < 0 ? -mn * 1e-6f : 1);
    if (*lo >= *hi)
        *hi = *lo + 1;
}

static void bundle_png(mg_bundle *b, const render_png *png)
{
    mg_bundle_bytes(b, "image/png", png->data, png->size);
    mg_bundle_meta_num(b, "image/png", "width", png->width);
    mg_bundle_meta_num(b, "image/png", "height", png->height);
}

/* ================================================================ text runs */

struct mg_text_rec {
    am_text_run *run;     /* owned */
    am_tokenizer *tok;    /* owned: the run's model may be replaced later */
    int method;           /* AM_TEXT_* */
    bool fluency;         /* cross-entropy penalty on */
    float *proj_curve;    /* (S) the projected prompt's value per step; NaN: not evaluated */
    float *acts;          /* (T) per-position activations of the result; NULL: not evaluated */
    int live_updates;
};

static const char *const METHODS[] = {"soft", "pez", "gcg", "sweep"};

void mg_text_rec_free(mg_text_rec *r)
{
    if (!r)
        return;
    const mg_engine_api *e = mg_engine();
    if (e) {
        e->am_text_run_free(r->run);
        e->am_tokenizer_free(r->tok);
    }
    free(r->proj_curve);
    free(r->acts);
    free(r);
}

int mg_text_rec_steps(const mg_text_rec *r)
{
    return mg_engine()->am_text_run_steps(r->run);
}

float mg_text_rec_final(const mg_text_rec *r)
{
    return mg_engine()->am_text_run_activation(r->run);
}

double mg_text_rec_seconds(const mg_text_rec *r)
{
    return mg_engine()->am_text_run_seconds(r->run);
}

const char *mg_text_rec_prompt(const mg_text_rec *r)
{
    return mg_engine()->am_text_run_text(r->run);
}

int mg_text_rec_plot_png(const mg_text_rec *r, int id, const char *objective, render_png *png)
{
    const mg_engine_api *e = mg_engine();
    int steps = 0, xs_n = 0;
    const float *curve = e->am_text_run_curve(r->run, &steps);
    const float *xent = e->am_text_run_xent_curve(r->run, &xs_n);
    float *xs = mg_xmalloc((size_t)(steps ? steps : 1) * sizeof(float)); /* (S) */
    for (int i = 0; i < steps; i++)
        xs[i] = (float)(i + 1);
    render_series ser[3];
    int ns = 0;
    bool soft = r->method == AM_TEXT_SOFT;
    ser[ns++] = (render_series){soft ? "soft (continuous)" : "best prompt", xs, curve, steps};
    if (soft && r->proj_curve)
        ser[ns++] = (render_series){"projected prompt", xs, r->proj_curve, steps};
    if (r->fluency && xent && xs_n == steps)
        ser[ns++] = (render_series){"cross-entropy (nats)", xs, xent, steps};
    char *title = mg_asprintf("run %d: %s (%s)", id, objective, METHODS[r->method]);
    render_plot_opts po = {.width = 640, .height = 360, .title = title, .xlabel = "step",
                           .ylabel = "activation"};
    int rc = render_plot_png(ser, ns, &po, png);
    free(title);
    free(xs);
    return rc;
}

/* Summary lines shared by the text/plain output and %runs. */
static char *summary_text(const mg_text_rec *r, int id, const char *objective, const char *options)
{
    const mg_engine_api *e = mg_engine();
    mg_str t = MG_STR_INIT;
    int len = 0;
    const int64_t *ids = e->am_text_run_tokens(r->run, &len);
    char *raw = ids_text(r->tok, ids, len);
    char *prompt = one_line(raw);
    free(raw);
    float act = e->am_text_run_activation(r->run);
    float soft = e->am_text_run_soft_activation(r->run);
    mg_str_addf(&t, "run %d: %s  [%s]%s\n", id, objective, METHODS[r->method],
                e->am_text_run_cancelled(r->run) ? "  (interrupted: best result so far)" : "");
    mg_str_addf(&t, "prompt: \"%s\"  (%d tokens, %s)\n", prompt, len,
                e->am_text_run_roundtrip(r->run) ? "re-encodes to itself"
                                                  : "does NOT re-encode to the same tokens");
    if (isfinite(soft))
        mg_str_addf(&t, "soft activation %.4g, projected %.4g, retention %.1f%%\n", soft, act,
                    100.0 * e->am_text_run_retention(r->run));
    else
        mg_str_addf(&t, "activation %.4g\n", act);
    if (r->fluency)
        mg_str_addf(&t, "cross-entropy %.4g nats\n", e->am_text_run_xent(r->run));
    double secs = e->am_text_run_seconds(r->run);
    mg_str_addf(&t, "steps %d, %.2f s\n", e->am_text_run_steps(r->run), secs);
    if (options && options[0])
        mg_str_addf(&t, "options: %s\n", options);
    free(prompt);
    return mg_str_steal(&t);
}

void mg_text_rec_show(const mg_call *c, const mg_text_rec *r, int id, const char *objective,
                      const char *options)
{
    const mg_engine_api *e = mg_engine();
    int len = 0;
    const int64_t *ids = e->am_text_run_tokens(r->run, &len);
    float act = e->am_text_run_activation(r->run);
    float soft = e->am_text_run_soft_activation(r->run);

    /* 1. Summary: the prompt coloured by per-token activation, the values. */
    {
        char *text = summary_text(r, id, objective, options);
        mg_str h = MG_STR_INIT;
        char *eobj = NULL;
        render_html_escape(objective, &eobj);
        mg_str_addf(&h, "<div class=\"actmax-text-run\"><b>run %d</b>: <code>%s</code> [%s]<br>",
                    id, eobj ? eobj : "", METHODS[r->method]);
        render_free(eobj);
        float lo = 0, hi = 1;
        if (r->acts)
            heat_range(r->acts, len, &lo, &hi);
        mg_str_add(&h, "prompt: ");
        colored_spans(&h, r->tok, ids, r->acts, len, lo, hi);
        mg_str_addf(&h, "<br><small>%s</small><br>",
                    r->acts ? "colour: the objective at each position (hover for values)"
                            : "no per-position colouring: the objective could not be evaluated per token");
        if (isfinite(soft))
            mg_str_addf(&h, "<table><tr><th>soft (continuous)</th><th>projected (tokens)</th>"
                            "<th>retention</th></tr><tr><td>%.4g</td><td>%.4g</td><td>%.1f%%</td>"
                            "</tr></table>",
                        soft, act, 100.0 * e->am_text_run_retention(r->run));
        else
            mg_str_addf(&h, "activation: <b>%.4g</b><br>", act);
        mg_str_addf(&h, "re-encodes to itself: %s</div>",
                    e->am_text_run_roundtrip(r->run) ? "yes" : "no");
        /* The figures for programs: ids, not only their rendering. */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "run", id);
        cJSON_AddStringToObject(o, "objective", objective);
        cJSON_AddStringToObject(o, "method", METHODS[r->method]);
        cJSON *ja = cJSON_AddArrayToObject(o, "tokens");
        for (int t = 0; t < len; t++)
            cJSON_AddItemToArray(ja, cJSON_CreateNumber((double)ids[t]));
        char *ptext = ids_text(r->tok, ids, len);
        cJSON_AddStringToObject(o, "prompt", ptext);
        free(ptext);
        cJSON_AddBoolToObject(o, "roundtrip", e->am_text_run_roundtrip(r->run));
        cJSON_AddNumberToObject(o, "activation", isfinite(act) ? act : 0.0);
        if (isfinite(soft)) {
            cJSON_AddNumberToObject(o, "soft_activation", soft);
            cJSON_AddNumberToObject(o, "retention", e->am_text_run_retention(r->run));
        }
        if (r->fluency)
            cJSON_AddNumberToObject(o, "xent", e->am_text_run_xent(r->run));
        cJSON_AddNumberToObject(o, "steps", e->am_text_run_steps(r->run));
        cJSON_AddNumberToObject(o, "seconds", e->am_text_run_seconds(r->run));
        cJSON_AddBoolToObject(o, "cancelled", e->am_text_run_cancelled(r->run));
        cJSON_AddNumberToObject(o, "live_updates", r->live_updates);
        char *json = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        mg_bundle *b = mg_bundle_new();
        mg_bundle_text(b, "text/plain", text);
        mg_bundle_text(b, "text/html", mg_str_cstr(&h));
        if (json)
            mg_bundle_json(b, "application/json", json);
        mg_sink_display(c->out, b, NULL);
        mg_bundle_free(b);
        cJSON_free(json);
        mg_str_free(&h);
        free(text);
    }

    /* 2. Positions: the token, its activation, attribution, nearest tokens. */
    const int64_t *nid = NULL;
    const float *nval = NULL;
    int nlen = 0, k = 0;
    if (e->am_text_run_nearest(r->run, &nid, &nval, &nlen, &k) != AM_OK || nlen != len)
        k = 0;
    const float *drop = NULL;
    const int64_t *alt = NULL;
    int alen = 0;
    bool attr = e->am_text_run_attribution(r->run, &drop, &alt, &alen) == AM_OK && alen == len;
    int ncol = 2 + (r->acts ? 1 : 0) + (attr ? 2 : 0) + 2 * k;
    const char **header = mg_xcalloc((size_t)ncol, sizeof *header);
    char **hfree = mg_xcalloc((size_t)ncol, sizeof *hfree);
    char **cells = mg_xcalloc((size_t)(len * ncol), sizeof *cells); /* (T, ncol) */
    float *heat = mg_xmalloc((size_t)(len * ncol > 0 ? len * ncol : 1) * sizeof(float));
    for (int i = 0; i < len * ncol; i++)
        heat[i] = NAN;
    int col = 0;
    header[col++] = "pos";
    header[col++] = "token";
    int c_act = -1, c_attr = -1, c_near = -1;
    if (r->acts) {
        c_act = col;
        header[col++] = "activation";
    }
    if (attr) {
        c_attr = col;
        header[col++] = "drop if swapped";
        header[col++] = "best alternative";
    }
    bool l2 = strstr(options ? options : "", "metric=l2") != NULL;
    if (k) {
        c_near = col;
        for (int j = 0; j < k; j++) {
            header[col] = hfree[col] = mg_asprintf("nearest %d", j + 1);
            col++;
            header[col] = hfree[col] = mg_strdup(l2 ? "L2" : "cos");
            col++;
        }
    }
    float hlo = 0, hhi = 1;
    if (r->acts)
        heat_range(r->acts, len, &hlo, &hhi);
    for (int t = 0; t < len; t++) {
        char **row = cells + t * ncol;
        row[0] = mg_asprintf("%d", t);
        row[1] = token_label(r->tok, ids[t]);
        if (c_act >= 0) {
            row[c_act] = mg_asprintf("%.4g", r->acts[t]);
            heat[t * ncol + c_act] = r->acts[t];
        }
        if (c_attr >= 0) {
            row[c_attr] = mg_asprintf("%.4g", drop[t]);
            row[c_attr + 1] = token_label(r->tok, alt[t]);
        }
        for (int j = 0; j < k; j++) {
            row[c_near + 2 * j] = token_label(r->tok, nid[t * k + j]);
            row[c_near + 2 * j + 1] = mg_asprintf("%.3f", nval[t * k + j]);
        }
    }
    char *cap = mg_asprintf("run %d: per position%s%s", id,
                            attr ? "; drop = objective minus its value with that token swapped "
                                   "for the best alternative" : "",
                            k ? (l2 ? "; nearest tokens by L2 distance of the soft embedding"
                                    : "; nearest tokens by cosine similarity of the soft embedding")
                              : "");
    render_table tb = {.n_cols = ncol, .n_rows = len, .header = header,
                       .cells = (const char *const *)cells, .heat = heat, .heat_lo = hlo,
                       .heat_hi = hhi, .caption = cap};
    mg_send_table(c, &tb);
    free(cap);
    for (int i = 0; i < len * ncol; i++)
        free(cells[i]);
    for (int i = 0; i < ncol; i++)
        free(hfree[i]);
    free(cells);
    free(hfree);
    free(header);
    free(heat);

    /* 3. Curves. */
    render_png png = {0};
    if (mg_text_rec_plot_png(r, id, objective, &png) == RENDER_OK) {
        mg_bundle *b = mg_bundle_new();
        char *pt = mg_asprintf("<plot: %s over %d steps>",
                               r->proj_curve ? "soft and projected activation"
                               : r->method == AM_TEXT_SOFT ? "soft activation"
                                                           : "activation",
                               e->am_text_run_steps(r->run));
        mg_bundle_text(b, "text/plain", pt);
        bundle_png(b, &png);
        mg_sink_display(c->out, b, NULL);
        mg_bundle_free(b);
        free(pt);
    }
    render_png_clear(&png);
}

/* ================================================================ live display */

typedef struct tk_live {
    mg_live d;
    const char *objective;
    am_tokenizer *tok;
    int total;            /* steps * restarts */
    int last_step;
    float last_act;
    int64_t *last_ids;    /* (len) best prompt reported last */
    int len;
    int64_t *step_ids;    /* (restarts, steps, len) the prompt reported at each step */
    int steps, restarts;
} tk_live;

static void tk_live_send(tk_live *L, int step, double act)
{
    char *raw = L->last_ids ? ids_text(L->tok, L->last_ids, L->len) : mg_strdup("");
    char *prompt = one_line(raw);
    free(raw);
    char *label = mg_asprintf("%s   best prompt: \"%s\"", L->objective, prompt);
    mg_live_progress(&L->d, step, L->total, act, label, NULL);
    free(label);
    free(prompt);
}

static int tk_live_progress(void *user, const am_text_progress *p)
{
    tk_live *L = user;
    L->last_step = p->restart * p->steps + p->step;
    L->last_act = p->activation;
    if (p->tokens && p->len == L->len) {
        memcpy(L->last_ids, p->tokens, sizeof(int64_t) * (size_t)L->len);
        /* Kept per step and restart; the kept restart is found afterwards. */
        if (p->step >= 1 && p->step <= L->steps && p->restart >= 0 && p->restart < L->restarts)
            memcpy(L->step_ids + ((size_t)p->restart * (size_t)L->steps + (size_t)(p->step - 1)) *
                                     (size_t)L->len,
                   p->tokens, sizeof(int64_t) * (size_t)L->len);
    }
    if (mg_live_interrupted(&L->d))
        return 1;
    if (mg_live_due(&L->d))
        tk_live_send(L, L->last_step, L->last_act);
    return 0;
}

/* ================================================================ %tokens */

static int method_of(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, METHODS[i]) == 0)
            return i;
    return AM_TEXT_SOFT;
}

mg_status mg_tokens_run(mg_call *c, am_model *model, const char *model_name, mg_text_rec **out,
                        char **options)
{
    const mg_engine_api *e = mg_engine();
    *out = NULL;
    *options = NULL;
    if (!c->positional || !c->positional[0])
        return mg_fail(c, "ValueError", "%%tokens needs an objective, e.g. "
                       "%%tokens blocks.2.mlp.act[-1, 123] len=8");
    if (strcmp(e->am_model_kind(model), "text") != 0)
        return mg_fail(c, "UnsupportedError",
                       "%%tokens optimizes prompts of a text model; %s is an %s model: use "
                       "%%maximize OBJECTIVE for images, or load a text model, e.g. %%model tiny-lm",
                       model_name, e->am_model_kind(model));
    int64_t ishape[AM_MAX_DIMS];
    int nd = e->am_model_input_shape(model, ishape, AM_MAX_DIMS);
    int64_t context = nd >= 1 ? ishape[nd - 1] : 0;
    int len = (int)mg_int(c, "len");
    if (len < 1 || (context > 0 && len > context))
        return mg_fail(c, "ValueError", "len=%d: give a prompt length between 1 and the model's "
                       "context, %lld tokens", len, (long long)context);
    char *err = NULL;
    am_tokenizer *tok = model_tokenizer(model, &err);
    if (!tok) {
        mg_status st = mg_fail(c, "TokenizerError", "%%tokens on %s: %s", model_name, err);
        free(err);
        return st;
    }
    /* init=TEXT: the start prompt of pez, gcg and sweep, as text. */
    int64_t *init = NULL;
    const char *init_text = mg_string(c, "init");
    if (init_text[0]) {
        size_t n = 0;
        if (e->am_tokenizer_encode(tok, init_text, strlen(init_text), &init, &n) != 0 ||
            (int)n != len) {
            mg_status st = mg_fail(c, "ValueError", "init=\"%s\" encodes to %zu tokens; give a "
                                   "text of exactly len=%d tokens", init_text, n, len);
            free(init);
            e->am_tokenizer_free(tok);
            return st;
        }
    }
    am_text_options o;
    e->am_text_options_default(&o);
    o.objective = c->positional;
    o.method = method_of(mg_enum(c, "method"));
    o.len = len;
    o.steps = (int)mg_int(c, "steps");
    o.lr = (float)mg_float(c, "lr");
    o.distance = strcmp(mg_enum(c, "metric"), "l2") == 0 ? AM_DIST_L2 : AM_DIST_COSINE;
    o.snap = (float)mg_float(c, "snap");
    o.fluency = (float)mg_float(c, "fluency");
    o.topk = (int)mg_int(c, "topk");
    o.nearest = (int)mg_int(c, "nearest");
    /* %set batch counts images for %maximize: only a batch typed here
     * changes the engine's default. */
    if (mg_given(c, "batch"))
        o.batch = (int)mg_int(c, "batch");
    o.position = (int)mg_int(c, "position");
    o.init_tokens = init;
    o.seed = (uint64_t)mg_int(c, "seed");
    o.restarts = (int)mg_int(c, "restarts");
    o.retokenize = mg_bool(c, "retokenize");
    o.attribution = mg_bool(c, "attribution");

    mg_text_rec *rec = mg_xcalloc(1, sizeof *rec);
    rec->tok = tok;
    rec->method = o.method;
    rec->fluency = o.fluency > 0;

    tk_live L = {0};
    mg_live_init(&L.d, c, "tokens");
    L.objective = c->positional;
    L.tok = tok;
    L.steps = o.method == AM_TEXT_SWEEP ? 1 : o.steps;
    L.restarts = o.restarts;
    L.total = L.steps * o.restarts;
    L.len = len;
    L.last_act = NAN;
    o.progress = tk_live_progress;
    o.progress_user = &L;
    tk_live_send(&L, 0, NAN); /* before any prompt exists */
    L.last_ids = mg_xcalloc((size_t)len, sizeof(int64_t));
    L.step_ids = mg_xcalloc((size_t)L.restarts * (size_t)L.steps * (size_t)len,
                            sizeof(int64_t)); /* (restarts, S, T) */

    am_text_run *run = NULL;
    int rc = e->am_text_run_new(model, &o, &run);
    free(init);
    if (rc != AM_OK) {
        mg_live_send(&L.d, "run failed before its first step",
                     "<i>run failed before its first step</i>");
        const char *msg = run ? e->am_text_run_error(run) : "";
        const char *ename = rc == AM_E_OBJECTIVE || rc == AM_E_LAYER ? "ObjectiveError"
                            : rc == AM_E_UNSUPPORTED                ? "UnsupportedError"
                                                                    : "ValueError";
        mg_status st = mg_fail(c, ename, "%s: %s", e->am_strerror(rc), msg);
        e->am_text_run_free(run);
        free(L.last_ids);
        free(L.step_ids);
        mg_text_rec_free(rec);
        return st;
    }
    rec->run = run;
    /* The final state always reaches the display, throttle or not. */
    {
        int rl = 0;
        const int64_t *ids = e->am_text_run_tokens(run, &rl);
        if (ids && rl == len)
            memcpy(L.last_ids, ids, sizeof(int64_t) * (size_t)len);
        tk_live_send(&L, L.last_step, e->am_text_run_activation(run));
    }
    rec->live_updates = L.d.updates;

    /* The projected prompt's value at the recorded steps (soft only: the
     * other methods' curve is already a real prompt's). Prompts repeat a
     * lot, so only changes are evaluated. */
    int steps = 0;
    e->am_text_run_curve(run, &steps);
    /* The kept restart: the one whose last reported projection is the
     * result (soft's result is the projection of its final embeddings). */
    const int64_t *kept = NULL;
    {
        int rl = 0;
        const int64_t *ids = e->am_text_run_tokens(run, &rl);
        for (int r = L.restarts - 1; r >= 0 && !kept && steps > 0 && rl == len; r--) {
            const int64_t *at = L.step_ids + (size_t)r * (size_t)L.steps * (size_t)len;
            if (memcmp(at + (size_t)(steps - 1) * (size_t)len, ids, sizeof(int64_t) * (size_t)len) == 0)
                kept = at;
        }
    }
    if (rec->method == AM_TEXT_SOFT && kept && steps <= L.steps) {
        am_input in = {.kind = AM_INPUT_TOKENS, .tokens = kept, .ndim = 2, .shape = {steps, len}};
        rec->proj_curve = mg_xmalloc((size_t)steps * sizeof(float));
        if (e->am_model_objective(model, &in, c->positional, rec->proj_curve) != AM_OK)
            for (int i = 0; i < steps; i++)
                rec->proj_curve[i] = NAN;
    }
    {
        int rl = 0;
        const int64_t *ids = e->am_text_run_tokens(run, &rl);
        am_input in = {.kind = AM_INPUT_TOKENS, .tokens = ids, .ndim = 2, .shape = {1, rl}};
        rec->acts = mg_xmalloc((size_t)(rl > 0 ? rl : 1) * sizeof(float));
        if (rl <= 0 || e->am_model_objective_positions(model, &in, c->positional, rec->acts) != AM_OK) {
            free(rec->acts);
            rec->acts = NULL;
        }
    }
    free(L.last_ids);
    free(L.step_ids);
    *options = mg_asprintf("method=%s len=%d steps=%d lr=%g seed=%llu restarts=%d metric=%s "
                           "fluency=%g%s%s",
                           METHODS[o.method], len, o.steps, o.lr, (unsigned long long)o.seed,
                           o.restarts, o.distance == AM_DIST_L2 ? "l2" : "cosine", o.fluency,
                           init_text[0] ? " init=" : "", init_text);
    *out = rec;
    if (mg_bool(c, "verbose"))
        mg_sink_printf(c->out, "live display updates sent: %d\n", L.d.updates);
    if (e->am_text_run_cancelled(run) || L.d.stopped)
        return MG_INTERRUPTED;
    return MG_OK;
}

int mg_text_rec_live_updates(const mg_text_rec *r)
{
    return r->live_updates;
}

/* ================================================================ %examples (text) */

/* The held-out corpus: $ACTMAX_FORTUNES_HELDOUT, then data/ beside the
 * model's folder (share/actmax/models -> share/actmax/data, wherever the
 * model was found), then the build and install share folders. */
static char *corpus_path(const char *model_path)
{
    const char *env = getenv("ACTMAX_FORTUNES_HELDOUT");
    if (env && env[0])
        return mg_strdup(env);
    const char *slash = model_path ? strrchr(model_path, '/') : NULL;
    if (slash) {
        char *p = mg_asprintf("%.*s/../data/fortunes-heldout.txt", (int)(slash - model_path),
                              model_path);
        if (access(p, R_OK) == 0)
            return p;
        free(p);
    }
    const char *dirs[] = {ACTMAX_MODELS_DIR "/../data", ACTMAX_INSTALL_MODELS_DIR "/../data"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        char *p = mg_asprintf("%s/fortunes-heldout.txt", dirs[i]);
        if (access(p, R_OK) == 0)
            return p;
        free(p);
    }
    return NULL;
}

/* The live display of the corpus scan: windows scanned of the corpus' windows,
 * and the best score so far, updated in place after each batch (throttled). */
typedef struct tx_live {
    mg_live d;
    const char *objective;
    int64_t scanned, total;
    float best;
} tx_live;

static void tx_live_send(tx_live *L)
{
    int64_t total = L->total > 0 ? L->total : 1;
    int64_t step = L->scanned < 0 ? 0 : L->scanned > total ? total : L->scanned;
    if (total > INT_MAX) { /* the bar counts in ints: scale both */
        step = (int64_t)((double)step / (double)total * INT_MAX);
        total = INT_MAX;
    }
    char *label = mg_asprintf("%s   %s", L->objective,
                              L->total > 0 ? "corpus windows scanned, best score so far"
                                           : "reading the corpus");
    mg_live_progress(&L->d, (int)step, (int)total, isfinite(L->best) ? L->best : NAN, label, NULL);
    free(label);
}

static int tx_live_progress(void *user, int64_t scanned, int64_t total, float best)
{
    tx_live *L = user;
    L->scanned = scanned;
    L->total = total;
    L->best = best;
    if (mg_live_interrupted(&L->d))
        return 1;
    if (mg_live_due(&L->d))
        tx_live_send(L);
    return 0;
}

mg_status mg_tokens_examples(mg_call *c, am_model *model, const char *model_name,
                             const char *model_path, const char *opt_prompt, float opt_value, int opt_run)
{
    const mg_engine_api *e = mg_engine();
    char *err = NULL;
    am_tokenizer *tok = model_tokenizer(model, &err);
    if (!tok) {
        mg_status st = mg_fail(c, "TokenizerError", "%%examples on %s: %s", model_name, err);
        free(err);
        return st;
    }
    const char *dsname = e->am_model_dataset(model);
    const char *path_arg = mg_string(c, "path");
    char *path = path_arg[0] ? mg_strdup(path_arg) : corpus_path(model_path);
    if (!path) {
        e->am_tokenizer_free(tok);
        return mg_fail(c, "DatasetError", "%%examples on a text model reads a corpus: the "
                       "held-out fortunes file (share/actmax/data/fortunes-heldout.txt) was not "
                       "found; give path=FILE (any text file)");
    }
    am_text_examples_options o = {0};
    o.objective = c->positional;
    /* A file of the user's is read as one text; the built-in corpus keeps
     * its fortune layout (entries separated by '%' lines). */
    o.dataset = path_arg[0] ? "text" : "fortunes";
    o.path = path;
    o.window = mg_int(c, "window");
    o.k = (int)mg_int(c, "k");
    /* %set batch counts images for %maximize: only a batch typed here
     * changes the engine's default. */
    if (mg_given(c, "batch"))
        o.batch = (int)mg_int(c, "batch");
    tx_live L = {0};
    mg_live_init(&L.d, c, "text-examples");
    L.objective = c->positional;
    L.best = NAN;
    o.progress = tx_live_progress;
    o.progress_user = &L;
    am_text_examples *ex = NULL;
    double t0 = L.d.t0;
    tx_live_send(&L); /* before the corpus is read: 0 windows */
    int rc = e->am_text_examples_new(model, &o, &ex);
    double secs = render_clock_monotonic(NULL) - t0;
    if (rc != AM_OK) {
        mg_live_send(&L.d, "scan failed before its first batch",
                     "<i>scan failed before its first batch</i>");
        mg_status st = mg_fail(c, rc == AM_E_OBJECTIVE || rc == AM_E_LAYER ? "ObjectiveError"
                                                                           : "DatasetError",
                               "%s: %s", e->am_strerror(rc), ex ? e->am_text_examples_error(ex) : "");
        e->am_text_examples_free(ex);
        e->am_tokenizer_free(tok);
        free(path);
        return st;
    }
    int n = e->am_text_examples_count(ex);
    float mx = e->am_text_examples_max(ex);
    int64_t scanned = e->am_text_examples_scanned(ex);
    bool interrupted = e->am_text_examples_cancelled(ex) == 1 || L.d.stopped;
    /* The last state always reaches the display, throttle or not. */
    L.scanned = scanned;
    if (L.total <= 0)
        L.total = scanned;
    if (n > 0)
        L.best = mx;
    tx_live_send(&L);
    /* One colour scale over all windows, so rows compare. */
    float lo = 0, hi = 0;
    for (int i = 0; i < n; i++) {
        int64_t idx;
        float score;
        const int64_t *ids;
        const float *acts;
        int len;
        if (e->am_text_examples_get(ex, i, &idx, &score, &ids, &acts, &len) != AM_OK)
            continue;
        for (int t = 0; t < len; t++)
            if (isfinite(acts[t])) {
                if (acts[t] > hi)
                    hi = acts[t];
                if (acts[t] < lo)
                    lo = acts[t];
            }
    }
    if (lo >= hi)
        hi = lo + 1;
    char *eobj = NULL;
    render_html_escape(c->positional, &eobj);
    mg_str h = MG_STR_INIT, t = MG_STR_INIT;
    const char *mxname = interrupted ? "maximum of the windows scanned" : "dataset maximum";
    mg_str_addf(&h, "<div class=\"actmax-text-examples\"><b>top %d of %lld windows</b> of %s for "
                    "<code>%s</code>: %s <b>%.4g</b>",
                n, (long long)scanned, dsname[0] ? dsname : "the corpus", eobj ? eobj : "", mxname,
                mx);
    mg_str_addf(&t, "top %d of %lld windows for %s: %s %.4g (%.2f s)\n", n, (long long)scanned,
                c->positional, mxname, mx, secs);
    if (interrupted) {
        mg_str_addf(&h, "<br><b>interrupted after %lld of %lld windows</b>: the top %d of those "
                        "scanned",
                    (long long)scanned, (long long)L.total, n);
        mg_str_addf(&t, "interrupted after %lld of %lld windows: the top %d of those scanned\n",
                    (long long)scanned, (long long)L.total, n);
    }
    if (opt_prompt) {
        char *ep = NULL;
        render_html_escape(opt_prompt, &ep);
        mg_str_addf(&h, "; optimized prompt (run %d) <code>%s</code> reaches <b>%.4g</b> "
                        "(%.0f%% of the %s)",
                    opt_run, ep ? ep : "", opt_value, mx != 0 ? 100.0 * opt_value / mx : NAN,
                    mxname);
        char *line = one_line(opt_prompt);
        mg_str_addf(&t, "optimized prompt (run %d) \"%s\" reaches %.4g (%.0f%% of the %s)\n",
                    opt_run, line, opt_value, mx != 0 ? 100.0 * opt_value / mx : NAN, mxname);
        free(line);
        render_free(ep);
    }
    mg_str_add(&h, "<table><tr><th>#</th><th>window</th><th>score</th><th>text (colour: "
                   "activation per token, hover for values)</th></tr>");
    for (int i = 0; i < n; i++) {
        int64_t idx;
        float score;
        const int64_t *ids;
        const float *acts;
        int len;
        if (e->am_text_examples_get(ex, i, &idx, &score, &ids, &acts, &len) != AM_OK)
            continue;
        mg_str_addf(&h, "<tr><td>%d</td><td>%lld</td><td>%.4g</td><td style=\"text-align:left\">",
                    i + 1, (long long)idx, score);
        colored_spans(&h, tok, ids, acts, len, lo, hi);
        mg_str_add(&h, "</td></tr>");
        /* text/plain: the window with the strongest token in [brackets]. */
        int best = 0;
        for (int j = 1; j < len; j++)
            if (acts[j] > acts[best])
                best = j;
        mg_str_addf(&t, "  %2d. #%-6lld %8.4g  ", i + 1, (long long)idx, score);
        for (int j = 0; j < len; j++) {
            char *lab = token_label(tok, ids[j]);
            mg_str_addf(&t, j == best ? "[%s]" : "%s", lab);
            free(lab);
        }
        mg_str_addf(&t, "   (bracketed: %.4g)\n", acts[best]);
    }
    mg_str_add(&h, "</table></div>");
    mg_bundle *b = mg_bundle_new();
    mg_bundle_text(b, "text/plain", mg_str_cstr(&t));
    mg_bundle_text(b, "text/html", mg_str_cstr(&h));
    mg_sink_display(c->out, b, NULL);
    mg_bundle_free(b);
    mg_str_free(&h);
    mg_str_free(&t);
    render_free(eobj);
    e->am_text_examples_free(ex);
    e->am_tokenizer_free(tok);
    free(path);
    if (mg_bool(c, "verbose"))
        mg_sink_printf(c->out, "live display updates sent: %d\n", L.d.updates);
    return interrupted ? MG_INTERRUPTED : MG_OK;
}
