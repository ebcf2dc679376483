/* The language-model magics: %tokens (prompt optimization through
 * am_text_run_*) and %examples on a text model (corpus windows through
 * am_examples_*), and how a text run is shown: prompt with per-token
 * colouring, nearest-token and attribution tables, soft vs projected values,
 * curves (the "text" kind of session.h). The corpus scan of %examples is
 * text_examples.c.
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

#include "text.h"

#include "display.h"
#include "live.h"
#include "magics.h"
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
char *mg_token_label(const am_tokenizer *tok, int64_t id)
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
am_tokenizer *mg_model_tokenizer(am_model *m, char **err)
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
char *mg_ids_text(am_tokenizer *tok, const int64_t *ids, int n)
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
char *mg_one_line(const char *text)
{
    static const char *const to[] = {"\\n", "\\t", "\\r", "\\\""};
    char *out = escape_chars(text, strlen(text), "\n\t\r\"", to);
    return out ? out : mg_strdup("?");
}

/* Coloured token spans, Neuroscope style: background from the heat colour
 * of each token's activation, the value in the title attribute. */
void mg_colored_spans(mg_str *html, am_tokenizer *tok, const int64_t *ids, const float *acts, int n,
                      float lo, float hi)
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
        mg_str_addf(html,
                    "<span class=\"actmax-tok\" style=\"background:%s\" title=\"%s%.4g\">%s</span>",
                    col, acts ? "" : "token ", acts ? acts[t] : (double)ids[t], esc ? esc : "?");
        render_free(clean);
        render_free(esc);
    }
    mg_str_add(html, "</span>");
}

void mg_heat_range(const float *v, int n, float *lo, float *hi)
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

/* ================================================================ text runs */

typedef struct mg_text_rec {
    am_text_run *run;  /* owned */
    am_tokenizer *tok; /* owned: the run's model may be replaced later */
    int method;        /* AM_TEXT_* */
    bool fluency;      /* cross-entropy penalty on */
    float *proj_curve; /* (S) the projected prompt's value per step; NaN: not evaluated */
    float *acts;       /* (T) per-position activations of the result; NULL: not evaluated */
    int live_updates;
    bool stopped; /* the user interrupted while it ran */
} mg_text_rec;

static const char *const METHODS[] = {"soft", "pez", "gcg", "sweep"};

static void text_rec_free(void *data)
{
    mg_text_rec *r = data;
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

static const mg_text_rec *rec_of(const mg_run_rec *r)
{
    return r->data;
}

const char *mg_text_run_prompt(const mg_run_rec *r)
{
    return mg_engine()->am_text_run_text(rec_of(r)->run);
}

float mg_text_run_final(const mg_run_rec *r)
{
    return mg_engine()->am_text_run_activation(rec_of(r)->run);
}

float mg_text_run_retention(const mg_run_rec *r)
{
    return mg_engine()->am_text_run_retention(rec_of(r)->run);
}

static int text_rec_plot_png(const mg_text_rec *r, int id, const char *objective, render_png *png)
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
    render_plot_opts po = {
        .width = 640, .height = 360, .title = title, .xlabel = "step", .ylabel = "activation"};
    int rc = render_plot_png(ser, ns, &po, png);
    free(title);
    free(xs);
    return rc;
}

/* The best projection seen over the run, when it is not the last one (soft
 * reports the projection of its final embeddings, which can be worse than
 * an earlier step's); NULL otherwise (malloc'd). */
static char *best_text(const mg_text_rec *r)
{
    const mg_engine_api *e = mg_engine();
    const int64_t *ids = NULL;
    int len = 0, step = 0;
    float act = NAN;
    if (r->method != AM_TEXT_SOFT ||
        e->am_text_run_best(r->run, &ids, &len, &act, &step) != AM_OK || !ids || !isfinite(act) ||
        !(act > e->am_text_run_activation(r->run)))
        return NULL;
    char *raw = mg_ids_text(r->tok, ids, len);
    char *prompt = mg_one_line(raw);
    free(raw);
    char *line = mg_asprintf("best projection seen: %.4g at step %d: \"%s\" (the last "
                             "projection, reported above, is the run's result)",
                             act, step, prompt);
    free(prompt);
    return line;
}

/* Summary lines shared by the text/plain output and %runs. */
static char *summary_text(const mg_text_rec *r, int id, const char *objective, const char *options)
{
    const mg_engine_api *e = mg_engine();
    mg_str t = MG_STR_INIT;
    int len = 0;
    const int64_t *ids = e->am_text_run_tokens(r->run, &len);
    char *raw = mg_ids_text(r->tok, ids, len);
    char *prompt = mg_one_line(raw);
    free(raw);
    float act = e->am_text_run_activation(r->run);
    float soft = e->am_text_run_soft_activation(r->run);
    mg_str_addf(&t, "run %d: %s  [%s]%s\n", id, objective, METHODS[r->method],
                e->am_text_run_cancelled(r->run) ? "  (interrupted: best result so far)" : "");
    mg_str_addf(&t, "prompt: \"%s\"  (%d tokens, %s)\n", prompt, len,
                e->am_text_run_roundtrip(r->run) ? "re-encodes to itself"
                                                 : "does NOT re-encode to the same tokens");
    if (isfinite(soft)) {
        mg_str_addf(&t, "soft activation %.4g, projected %.4g, retention %.1f%%\n", soft, act,
                    100.0 * e->am_text_run_retention(r->run));
        char *best = best_text(r);
        if (best)
            mg_str_addf(&t, "%s\n", best);
        free(best);
    } else
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

/* The summary as HTML: the prompt coloured by per-token activation, the
 * values. */
static char *summary_html(const mg_text_rec *r, int id, const char *objective)
{
    const mg_engine_api *e = mg_engine();
    int len = 0;
    const int64_t *ids = e->am_text_run_tokens(r->run, &len);
    float act = e->am_text_run_activation(r->run);
    float soft = e->am_text_run_soft_activation(r->run);
    mg_str h = MG_STR_INIT;
    char *eobj = NULL;
    render_html_escape(objective, &eobj);
    mg_str_addf(&h, "<div class=\"actmax-text-run\"><b>run %d</b>: <code>%s</code> [%s]<br>", id,
                eobj ? eobj : "", METHODS[r->method]);
    render_free(eobj);
    float lo = 0, hi = 1;
    if (r->acts)
        mg_heat_range(r->acts, len, &lo, &hi);
    mg_str_add(&h, "prompt: ");
    mg_colored_spans(&h, r->tok, ids, r->acts, len, lo, hi);
    mg_str_addf(&h, "<br><small>%s</small><br>",
                r->acts
                    ? "colour: the objective at each position (hover for values)"
                    : "no per-position colouring: the objective could not be evaluated per token");
    if (isfinite(soft))
        mg_str_addf(&h,
                    "<table><tr><th>soft (continuous)</th><th>projected (tokens)</th>"
                    "<th>retention</th></tr><tr><td>%.4g</td><td>%.4g</td><td>%.1f%%</td>"
                    "</tr></table>",
                    soft, act, 100.0 * e->am_text_run_retention(r->run));
    else
        mg_str_addf(&h, "activation: <b>%.4g</b><br>", act);
    char *best = best_text(r);
    if (best) {
        char *ebest = NULL;
        render_html_escape(best, &ebest);
        mg_str_addf(&h, "%s<br>", ebest ? ebest : "");
        render_free(ebest);
    }
    free(best);
    mg_str_addf(&h, "re-encodes to itself: %s</div>",
                e->am_text_run_roundtrip(r->run) ? "yes" : "no");
    return mg_str_steal(&h);
}

/* The figures for programs: ids, not only their rendering (malloc'd). */
static char *summary_json(const mg_text_rec *r, int id, const char *objective, const char *options)
{
    const mg_engine_api *e = mg_engine();
    int len = 0;
    const int64_t *ids = e->am_text_run_tokens(r->run, &len);
    float act = e->am_text_run_activation(r->run);
    float soft = e->am_text_run_soft_activation(r->run);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "run", id);
    cJSON_AddStringToObject(o, "objective", objective);
    cJSON_AddStringToObject(o, "method", METHODS[r->method]);
    cJSON_AddStringToObject(o, "options", options ? options : "");
    cJSON *ja = cJSON_AddArrayToObject(o, "tokens");
    for (int t = 0; t < len; t++)
        cJSON_AddItemToArray(ja, cJSON_CreateNumber((double)ids[t]));
    char *ptext = mg_ids_text(r->tok, ids, len);
    cJSON_AddStringToObject(o, "prompt", ptext);
    free(ptext);
    cJSON_AddBoolToObject(o, "roundtrip", e->am_text_run_roundtrip(r->run));
    cJSON_AddNumberToObject(o, "activation", isfinite(act) ? act : 0.0);
    if (isfinite(soft)) {
        cJSON_AddNumberToObject(o, "soft_activation", soft);
        cJSON_AddNumberToObject(o, "retention", e->am_text_run_retention(r->run));
        const int64_t *bids = NULL;
        int blen = 0, bstep = 0;
        float bact = NAN;
        if (e->am_text_run_best(r->run, &bids, &blen, &bact, &bstep) == AM_OK && bids &&
            isfinite(bact)) {
            cJSON_AddNumberToObject(o, "best_activation", bact);
            cJSON_AddNumberToObject(o, "best_step", bstep);
            cJSON *jb = cJSON_AddArrayToObject(o, "best_tokens");
            for (int t = 0; t < blen; t++)
                cJSON_AddItemToArray(jb, cJSON_CreateNumber((double)bids[t]));
        }
    }
    if (r->fluency)
        cJSON_AddNumberToObject(o, "xent", e->am_text_run_xent(r->run));
    cJSON_AddNumberToObject(o, "steps", e->am_text_run_steps(r->run));
    cJSON_AddNumberToObject(o, "seconds", e->am_text_run_seconds(r->run));
    cJSON_AddBoolToObject(o, "cancelled", e->am_text_run_cancelled(r->run));
    cJSON_AddNumberToObject(o, "live_updates", r->live_updates);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = json ? mg_strdup(json) : NULL;
    cJSON_free(json);
    return out;
}

static void show_summary(const mg_call *c, const mg_text_rec *r, int id, const char *objective,
                         const char *options)
{
    char *text = summary_text(r, id, objective, options);
    char *html = summary_html(r, id, objective);
    char *json = summary_json(r, id, objective, options);
    mg_bundle *b = mg_bundle_new();
    mg_bundle_text(b, "text/plain", text);
    mg_bundle_text(b, "text/html", html);
    if (json)
        mg_bundle_json(b, "application/json", json);
    mg_sink_display(c->out, b, NULL);
    mg_bundle_free(b);
    free(json);
    free(html);
    free(text);
}

/* The positions table: the token, its activation, attribution, nearest
 * tokens. */
typedef struct pos_table {
    int len, ncol, k;
    int c_act, c_attr, c_near; /* first column of each part; -1: absent */
    const int64_t *nid;        /* (T, K) nearest token ids */
    const float *nval;         /* (T, K) their similarities */
    const float *drop;         /* (T) attribution */
    const int64_t *alt;        /* (T) best alternative token */
    const char **header;       /* (ncol) */
    char **hfree;              /* (ncol) owned header texts */
    char **cells;              /* (T, ncol) */
    float *heat;               /* (T, ncol) */
} pos_table;

static void pos_columns(pos_table *p, const mg_text_rec *r, bool attr, bool l2)
{
    int len = p->len;
    p->ncol = 2 + (r->acts ? 1 : 0) + (attr ? 2 : 0) + 2 * p->k;
    p->header = mg_xcalloc((size_t)p->ncol, sizeof *p->header);
    p->hfree = mg_xcalloc((size_t)p->ncol, sizeof *p->hfree);
    p->cells = mg_xcalloc((size_t)(len * p->ncol), sizeof *p->cells);
    p->heat = mg_xmalloc((size_t)(len * p->ncol > 0 ? len * p->ncol : 1) * sizeof(float));
    for (int i = 0; i < len * p->ncol; i++)
        p->heat[i] = NAN;
    int col = 0;
    p->header[col++] = "pos";
    p->header[col++] = "token";
    p->c_act = p->c_attr = p->c_near = -1;
    if (r->acts) {
        p->c_act = col;
        p->header[col++] = "activation";
    }
    if (attr) {
        p->c_attr = col;
        p->header[col++] = "drop if swapped";
        p->header[col++] = "best alternative";
    }
    if (p->k)
        p->c_near = col;
    for (int j = 0; j < p->k; j++) {
        p->header[col] = p->hfree[col] = mg_asprintf("nearest %d", j + 1);
        col++;
        p->header[col] = p->hfree[col] = mg_strdup(l2 ? "L2" : "cos");
        col++;
    }
}

static void pos_rows(pos_table *p, const mg_text_rec *r, const int64_t *ids)
{
    for (int t = 0; t < p->len; t++) {
        char **row = p->cells + t * p->ncol;
        row[0] = mg_asprintf("%d", t);
        row[1] = mg_token_label(r->tok, ids[t]);
        if (p->c_act >= 0) {
            row[p->c_act] = mg_asprintf("%.4g", r->acts[t]);
            p->heat[t * p->ncol + p->c_act] = r->acts[t];
        }
        if (p->c_attr >= 0) {
            row[p->c_attr] = mg_asprintf("%.4g", p->drop[t]);
            row[p->c_attr + 1] = mg_token_label(r->tok, p->alt[t]);
        }
        for (int j = 0; j < p->k; j++) {
            row[p->c_near + 2 * j] = mg_token_label(r->tok, p->nid[t * p->k + j]);
            row[p->c_near + 2 * j + 1] = mg_asprintf("%.3f", p->nval[t * p->k + j]);
        }
    }
}

static void pos_table_free(pos_table *p)
{
    for (int i = 0; i < p->len * p->ncol; i++)
        free(p->cells[i]);
    for (int i = 0; i < p->ncol; i++)
        free(p->hfree[i]);
    free(p->cells);
    free(p->hfree);
    free(p->header);
    free(p->heat);
}

static void show_positions(const mg_call *c, const mg_text_rec *r, int id, const char *options)
{
    const mg_engine_api *e = mg_engine();
    pos_table p = {0};
    const int64_t *ids = e->am_text_run_tokens(r->run, &p.len);
    int nlen = 0, alen = 0;
    if (e->am_text_run_nearest(r->run, &p.nid, &p.nval, &nlen, &p.k) != AM_OK || nlen != p.len)
        p.k = 0;
    bool attr =
        e->am_text_run_attribution(r->run, &p.drop, &p.alt, &alen) == AM_OK && alen == p.len;
    bool l2 = strstr(options ? options : "", "metric=l2") != NULL;
    const char *note = e->am_text_run_note(r->run);
    pos_columns(&p, r, attr, l2);
    pos_rows(&p, r, ids);
    float hlo = 0, hhi = 1;
    if (r->acts)
        mg_heat_range(r->acts, p.len, &hlo, &hhi);
    char *cap =
        mg_asprintf("run %d: per position%s%s%s%s", id,
                    attr ? "; drop = objective minus its value with that token swapped "
                           "for the best alternative"
                         : "",
                    p.k ? (l2 ? "; nearest tokens by L2 distance of the soft embedding"
                              : "; nearest tokens by cosine similarity of the soft embedding")
                        : "",
                    attr && note[0] ? "; " : "", attr ? note : "");
    render_table tb = {.n_cols = p.ncol,
                       .n_rows = p.len,
                       .header = p.header,
                       .cells = (const char *const *)p.cells,
                       .heat = p.heat,
                       .heat_lo = hlo,
                       .heat_hi = hhi,
                       .caption = cap};
    mg_send_table(c, &tb);
    free(cap);
    pos_table_free(&p);
}

static void show_curves(const mg_call *c, const mg_text_rec *r, int id, const char *objective)
{
    render_png png = {0};
    if (text_rec_plot_png(r, id, objective, &png) == RENDER_OK) {
        char *pt = mg_asprintf("<plot: %s over %d steps>",
                               r->proj_curve               ? "soft and projected activation"
                               : r->method == AM_TEXT_SOFT ? "soft activation"
                                                           : "activation",
                               mg_engine()->am_text_run_steps(r->run));
        mg_show_png(c, pt, &png);
        free(pt);
    }
    render_png_clear(&png);
}

static void text_rec_show(const mg_call *c, const mg_text_rec *r, int id, const char *objective,
                          const char *options)
{
    show_summary(c, r, id, objective, options);
    show_positions(c, r, id, options);
    show_curves(c, r, id, objective);
}

/* ================================================================ live display */

typedef struct tk_live {
    mg_live d;
    const char *objective;
    am_tokenizer *tok;
    int total; /* steps * restarts */
    int last_step;
    float last_act;
    int64_t *last_ids; /* (len) best prompt reported last */
    int len;
    int steps, restarts;
    char phase[64]; /* "optimizing", "attribution 3/64", ... */
} tk_live;

static void tk_live_send(tk_live *L, int step, double act)
{
    char *raw = L->last_ids ? mg_ids_text(L->tok, L->last_ids, L->len) : mg_strdup("");
    char *prompt = mg_one_line(raw);
    free(raw);
    char *label = mg_asprintf("%s   %s   best prompt: \"%s\"", L->objective,
                              L->phase[0] ? L->phase : "optimizing", prompt);
    mg_live_progress(&L->d, step, L->total, act, label, NULL);
    free(label);
    free(prompt);
}

static int tk_live_progress(void *user, const am_text_progress *p)
{
    tk_live *L = user;
    /* The scoring phases (start, sweep, attribution) come with their
     * count and keep the last step's state. */
    if (p->phase && strcmp(p->phase, "optimizing") != 0) {
        snprintf(L->phase, sizeof L->phase, "%s %lld/%lld", p->phase, (long long)p->done,
                 (long long)p->total);
    } else {
        snprintf(L->phase, sizeof L->phase, "optimizing");
    }
    if (p->step > 0 || !p->phase || strcmp(p->phase, "optimizing") == 0) {
        L->last_step = p->restart * p->steps + p->step;
        L->last_act = p->activation;
    }
    if (p->tokens && p->len == L->len)
        memcpy(L->last_ids, p->tokens, sizeof(int64_t) * (size_t)L->len);
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

/* The prompt length asked for, checked against the model's context. */
static mg_status check_len(const mg_call *c, am_model *model, const char *model_name, int *len)
{
    const mg_engine_api *e = mg_engine();
    if (!c->positional || !c->positional[0])
        return mg_fail(c, "ValueError",
                       "%%tokens needs an objective, e.g. "
                       "%%tokens blocks.2.mlp.act[-1, 123] len=8");
    if (strcmp(e->am_model_kind(model), "text") != 0)
        return mg_fail(
            c, "UnsupportedError",
            "%%tokens optimizes prompts of a text model; %s is an %s model: use "
            "%%maximize OBJECTIVE for images, or load a text model, e.g. %%model tiny-lm",
            model_name, e->am_model_kind(model));
    int64_t ishape[AM_MAX_DIMS];
    int nd = e->am_model_input_shape(model, ishape, AM_MAX_DIMS);
    int64_t context = nd >= 1 ? ishape[nd - 1] : 0;
    *len = (int)mg_int(c, "len");
    if (*len < 1 || (context > 0 && *len > context))
        return mg_fail(c, "ValueError",
                       "len=%d: give a prompt length between 1 and the model's "
                       "context, %lld tokens",
                       *len, (long long)context);
    return MG_OK;
}

/* init=TEXT: the start prompt of pez, gcg and sweep, as len tokens. */
static mg_status encode_init(const mg_call *c, am_tokenizer *tok, int len, int64_t **init)
{
    const char *init_text = mg_string(c, "init");
    *init = NULL;
    if (!init_text[0])
        return MG_OK;
    size_t n = 0;
    if (mg_engine()->am_tokenizer_encode(tok, init_text, strlen(init_text), init, &n) != 0 ||
        (int)n != len) {
        mg_status st = mg_fail(c, "ValueError",
                               "init=\"%s\" encodes to %zu tokens; give a "
                               "text of exactly len=%d tokens",
                               init_text, n, len);
        free(*init);
        *init = NULL;
        return st;
    }
    return MG_OK;
}

static void read_keys(const mg_call *c, am_text_options *o, int len, const int64_t *init)
{
    mg_engine()->am_text_options_default(o);
    o->objective = c->positional;
    o->method = method_of(mg_enum(c, "method"));
    o->len = len;
    o->steps = (int)mg_int(c, "steps");
    o->lr = (float)mg_float(c, "lr");
    o->distance = strcmp(mg_enum(c, "metric"), "l2") == 0 ? AM_DIST_L2 : AM_DIST_COSINE;
    o->snap = (float)mg_float(c, "snap");
    o->fluency = (float)mg_float(c, "fluency");
    o->topk = (int)mg_int(c, "topk");
    o->nearest = (int)mg_int(c, "nearest");
    /* %set batch counts images for %maximize: only a batch typed here
     * changes the engine's default. */
    if (mg_given(c, "batch"))
        o->batch = (int)mg_int(c, "batch");
    o->position = (int)mg_int(c, "position");
    o->init_tokens = init;
    o->seed = (uint64_t)mg_int(c, "seed");
    o->restarts = (int)mg_int(c, "restarts");
    o->retokenize = mg_bool(c, "retokenize");
    o->attribution = mg_bool(c, "attribution");
}

/* Runs the engine with the live display; the run, or NULL with the error
 * shown. L keeps the prompt reported at each step. */
static am_text_run *tokens_engine(const mg_call *c, am_model *model, am_text_options *o,
                                  am_tokenizer *tok, tk_live *L)
{
    const mg_engine_api *e = mg_engine();
    mg_live_init(&L->d, c->out, "tokens", mg_float(c, "updates_per_s"));
    L->objective = c->positional;
    L->tok = tok;
    L->steps = o->method == AM_TEXT_SWEEP ? 1 : o->steps;
    L->restarts = o->restarts;
    L->total = L->steps * o->restarts;
    L->len = o->len;
    L->last_act = NAN;
    o->progress = tk_live_progress;
    o->progress_user = L;
    tk_live_send(L, 0, NAN); /* before any prompt exists */
    L->last_ids = mg_xcalloc((size_t)o->len, sizeof(int64_t));
    am_text_run *run = NULL;
    int rc = e->am_text_run_new(model, o, &run);
    if (rc != AM_OK) {
        mg_live_fail(&L->d, "run failed before its first step");
        const char *ename = rc == AM_E_OBJECTIVE || rc == AM_E_LAYER ? "ObjectiveError"
                            : rc == AM_E_UNSUPPORTED                 ? "UnsupportedError"
                            : rc == AM_E_NOMEM                       ? "MemoryError"
                                                                     : "ValueError";
        mg_fail(c, ename, "%s: %s", e->am_strerror(rc), run ? e->am_text_run_error(run) : "");
        e->am_text_run_free(run);
        return NULL;
    }
    /* The closing update shows the final prompt. */
    int rl = 0;
    const int64_t *ids = e->am_text_run_tokens(run, &rl);
    if (ids && rl == o->len)
        memcpy(L->last_ids, ids, sizeof(int64_t) * (size_t)o->len);
    snprintf(L->phase, sizeof L->phase, "%s",
             e->am_text_run_cancelled(run) == 1 ? "interrupted" : "done");
    tk_live_send(L, L->last_step, e->am_text_run_activation(run));
    return run;
}

/* The projected prompt's value at each step of the kept restart (soft
 * only: the other methods' curve is already a real prompt's), as the engine
 * measured it. */
static void projected_curve(mg_text_rec *rec)
{
    const mg_engine_api *e = mg_engine();
    int steps = 0;
    const float *pc = e->am_text_run_projected_curve(rec->run, &steps);
    if (rec->method != AM_TEXT_SOFT || !pc || steps <= 0)
        return;
    rec->proj_curve = mg_xmalloc((size_t)steps * sizeof(float));
    memcpy(rec->proj_curve, pc, (size_t)steps * sizeof(float));
}

/* The objective at each position of the result, for the colouring. */
static void position_acts(mg_text_rec *rec, am_model *model, const char *objective)
{
    const mg_engine_api *e = mg_engine();
    int rl = 0;
    const int64_t *ids = e->am_text_run_tokens(rec->run, &rl);
    am_input in = {.kind = AM_INPUT_TOKENS, .tokens = ids, .ndim = 2, .shape = {1, rl}};
    rec->acts = mg_xmalloc((size_t)(rl > 0 ? rl : 1) * sizeof(float));
    if (rl <= 0 || e->am_model_objective_positions(model, &in, objective, rec->acts) != AM_OK) {
        free(rec->acts);
        rec->acts = NULL;
    }
}

/* options -> run -> record; the record (NULL when the run failed, the error
 * shown). */
static mg_text_rec *tokens_run(const mg_call *c, const mg_session *s)
{
    const mg_engine_api *e = mg_engine();
    int len = 0;
    char *err = NULL;
    int64_t *init = NULL;
    if (check_len(c, s->model, s->model_name, &len) != MG_OK)
        return NULL;
    am_tokenizer *tok = mg_model_tokenizer(s->model, &err);
    if (!tok) {
        mg_fail(c, "TokenizerError", "%%tokens on %s: %s", s->model_name, err);
        free(err);
        return NULL;
    }
    if (encode_init(c, tok, len, &init) != MG_OK) {
        e->am_tokenizer_free(tok);
        return NULL;
    }
    am_text_options o;
    read_keys(c, &o, len, init);
    tk_live L = {0};
    am_text_run *run = tokens_engine(c, s->model, &o, tok, &L);
    free(init);
    mg_text_rec *rec = NULL;
    if (run) {
        rec = mg_xcalloc(1, sizeof *rec);
        *rec = (mg_text_rec){.run = run,
                             .tok = tok,
                             .method = o.method,
                             .fluency = o.fluency > 0,
                             .live_updates = L.d.updates,
                             .stopped = L.d.stopped};
        projected_curve(rec);
        position_acts(rec, s->model, c->positional);
    } else {
        e->am_tokenizer_free(tok);
    }
    free(L.last_ids);
    return rec;
}

/* ================================================================ the text kind */

static void show_run(const mg_call *c, const mg_run_rec *r)
{
    text_rec_show(c, rec_of(r), r->id, r->objective, r->options);
}

static int run_plot_png(const mg_run_rec *r, render_png *png)
{
    return text_rec_plot_png(rec_of(r), r->id, r->objective, png);
}

static void run_row(const mg_run_rec *r, int *steps, double *final, double *seconds)
{
    const mg_engine_api *e = mg_engine();
    *steps = e->am_text_run_steps(rec_of(r)->run);
    *final = e->am_text_run_activation(rec_of(r)->run);
    *seconds = e->am_text_run_seconds(rec_of(r)->run);
}

/* A text run has no image: its result is the prompt, saved as the bytes it
 * decodes to. */
static mg_status run_save(const mg_call *c, const mg_run_rec *r, const char *path)
{
    const char *prompt = mg_text_run_prompt(r);
    FILE *f = fopen(path, "wb");
    size_t n = strlen(prompt);
    if (!f || fwrite(prompt, 1, n, f) != n || fclose(f) != 0) {
        int en = errno;
        return mg_fail(c, "OSError",
                       "cannot write %s: %s; give a path in a folder that "
                       "exists and is writable",
                       path, strerror(en));
    }
    mg_sink_printf(c->out, "saved run %d prompt (%zu bytes of text) to %s\n", r->id, n, path);
    return MG_OK;
}

static int run_array(const mg_run_rec *r, const void **data, int *dtype, int64_t *shape)
{
    int len = 0;
    *data = mg_engine()->am_text_run_tokens(rec_of(r)->run, &len);
    *dtype = AM_DTYPE_INT64;
    shape[0] = 1;
    shape[1] = len;
    return *data ? 2 : -1;
}

/* The activation the search reports per step, its cross-entropy, and the
 * projected prompt's activation when it was evaluated (soft, pez). */
static int run_curves(const mg_run_rec *r, const char **names, const float **curves, int max,
                      int *steps)
{
    const mg_engine_api *e = mg_engine();
    const mg_text_rec *tr = rec_of(r);
    int n = 0, xs = 0;
    curves[n] = e->am_text_run_curve(tr->run, steps);
    names[n++] = tr->method == AM_TEXT_SOFT || tr->method == AM_TEXT_PEZ ? "activation (soft)"
                                                                         : "activation";
    const float *xent = e->am_text_run_xent_curve(tr->run, &xs);
    if (xent && xs == *steps && n < max) {
        curves[n] = xent;
        names[n++] = "xent";
    }
    if (tr->proj_curve && n < max) {
        curves[n] = tr->proj_curve;
        names[n++] = "activation (projected)";
    }
    return curves[0] ? n : 0;
}

const mg_run_ops mg_text_run_ops = {.kind = "text",
                                    .show = show_run,
                                    .plot_png = run_plot_png,
                                    .row = run_row,
                                    .save = run_save,
                                    .save_exts = "txt",
                                    .free = text_rec_free,
                                    .array = run_array,
                                    .curves = run_curves};

mg_status mg_magic_tokens(mg_call *c)
{
    mg_session *s = mg_session_of(c);
    if (mg_session_need_model(c, s) != MG_OK)
        return MG_ERROR;
    mg_text_rec *tr = tokens_run(c, s);
    if (!tr)
        return MG_ERROR;
    mg_run_rec rec = {.ops = &mg_text_run_ops, .data = tr, .live_updates = tr->live_updates};
    rec.objective = mg_strdup(c->positional);
    static const char *const display_only[] = {"updates_per_s", "verbose", NULL};
    mg_session_record_options(c, &rec, display_only);
    if (mg_bool(c, "verbose"))
        mg_sink_printf(c->out, "live display updates sent: %d\n", tr->live_updates);
    const mg_run_rec *kept = mg_session_add_run(s, &rec);
    kept->ops->show(c, kept);
    const mg_engine_api *e = mg_engine();
    return e->am_text_run_cancelled(tr->run) || tr->stopped ? MG_INTERRUPTED : MG_OK;
}
