/* %examples on a text model: the top-k windows of a corpus (the held-out
 * fortunes, or a file given with path=) scored by the engine (am_examples:
 * every token scored once with its natural preceding context), each shown
 * as the context around its peak token, every token coloured by its
 * activation, beside the latest %tokens prompt of the same objective.
 *
 * Legend for shapes: W = window tokens. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "live.h"
#include "paths.h"
#include "text.h"
#include "util.h"

/* Tokens shown before and after the peak in the text/plain table. */
enum { kBefore = 24, kAfter = 8 };

/* The scan's options and the engine call, with the live display; the
 * examples, or NULL with the error shown. */
static am_examples *scan_corpus(const mg_call *c, am_model *model, const char *path,
                                mg_scan_live *L, double *secs)
{
    const mg_engine_api *e = mg_engine();
    am_examples_options o;
    e->am_examples_options_default(&o);
    o.objective = c->positional;
    /* A file of the user's is read as one text; the built-in corpus keeps
     * its fortune layout (entries separated by '%' lines). */
    o.dataset = mg_string(c, "path")[0] ? "text" : "fortunes";
    o.split = "heldout";
    o.path = path;
    o.window = mg_int(c, "window");
    o.context = mg_int(c, "context");
    o.limit = mg_int(c, "limit");
    o.k = (int)mg_int(c, "k");
    /* %set batch counts images for %maximize: only a batch typed here
     * changes the engine's default. */
    if (mg_given(c, "batch"))
        o.batch = (int)mg_int(c, "batch");
    mg_live_init(&L->d, c->out, "text-examples", mg_float(c, "updates_per_s"));
    L->objective = c->positional;
    L->items = "corpus tokens";
    L->reading = "reading the corpus";
    L->best = NAN;
    o.progress = mg_scan_live_progress;
    o.progress_user = L;
    am_examples *ex = NULL;
    double t0 = L->d.t0;
    mg_scan_live_send(L); /* before the corpus is read: 0 tokens */
    int rc = e->am_examples_new(model, &o, &ex);
    *secs = render_clock_monotonic(NULL) - t0;
    if (rc != AM_OK) {
        mg_live_fail(&L->d, "scan failed before its first batch");
        mg_fail(c, rc == AM_E_OBJECTIVE || rc == AM_E_LAYER ? "ObjectiveError" : "DatasetError",
                "%s: %s", e->am_strerror(rc), ex ? e->am_examples_error(ex) : "");
        e->am_examples_free(ex);
        return NULL;
    }
    return ex;
}

/* One colour scale over all windows, so rows compare. */
static void windows_range(const am_examples *ex, int n, float *lo, float *hi)
{
    const mg_engine_api *e = mg_engine();
    *lo = 0;
    *hi = 0;
    am_example it;
    for (int i = 0; i < n && e->am_examples_get(ex, i, &it) == AM_OK; i++)
        for (int t = 0; t < it.len; t++)
            if (isfinite(it.acts[t])) {
                if (it.acts[t] > *hi)
                    *hi = it.acts[t];
                if (it.acts[t] < *lo)
                    *lo = it.acts[t];
            }
    if (*lo >= *hi)
        *hi = *lo + 1;
}

/* The latest %tokens prompt of the same objective, if any, and how close
 * it comes to the maximum. */
typedef struct opt_prompt {
    const char *prompt; /* NULL: none */
    float value;
    int run;
} opt_prompt;

/* The heading lines, in HTML (h) and text (t). */
static void heading(const mg_call *c, const am_examples *ex, int n, int64_t total,
                    bool interrupted, const opt_prompt *op, double secs, mg_str *h, mg_str *t)
{
    const mg_engine_api *e = mg_engine();
    float mx = e->am_examples_max(ex);
    int64_t scanned = e->am_examples_scanned(ex);
    int64_t window = 0, context = 0;
    e->am_examples_text_window(ex, &window, &context);
    const char *dsname = e->am_model_dataset(mg_session_of(c)->model);
    char *eobj = NULL;
    render_html_escape(c->positional, &eobj);
    const char *mxname = interrupted ? "maximum of the tokens scanned" : "corpus maximum";
    mg_str_addf(h,
                "<div class=\"actmax-text-examples\"><b>top %d windows</b> of %s for "
                "<code>%s</code>: %s <b>%.4g</b> over every one of %lld tokens, each with at "
                "least %lld tokens of context (windows of %lld)",
                n, dsname[0] ? dsname : "the corpus", eobj ? eobj : "", mxname, mx,
                (long long)scanned, (long long)context, (long long)window);
    mg_str_addf(t,
                "top %d windows for %s: %s %.4g (%lld tokens, each with >= %lld tokens of "
                "context; %.2f s)\n",
                n, c->positional, mxname, mx, (long long)scanned, (long long)context, secs);
    render_free(eobj);
    if (interrupted) {
        mg_str_addf(h,
                    "<br><b>interrupted after %lld of about %lld tokens</b>: the top %d of those "
                    "scanned",
                    (long long)scanned, (long long)total, n);
        mg_str_addf(t, "interrupted after %lld of about %lld tokens: the top %d of those scanned\n",
                    (long long)scanned, (long long)total, n);
    }
    if (!op->prompt)
        return;
    char *ep = NULL;
    render_html_escape(op->prompt, &ep);
    mg_str_addf(h,
                "; optimized prompt (run %d) <code>%s</code> reaches <b>%.4g</b> "
                "(%.0f%% of the %s)",
                op->run, ep ? ep : "", op->value, mx != 0 ? 100.0 * op->value / mx : NAN, mxname);
    char *line = mg_one_line(op->prompt);
    mg_str_addf(t, "optimized prompt (run %d) \"%s\" reaches %.4g (%.0f%% of the %s)\n", op->run,
                line, op->value, mx != 0 ? 100.0 * op->value / mx : NAN, mxname);
    free(line);
    render_free(ep);
}

/* The windows, one row each: the corpus position of the peak token, its
 * value, and the coloured window with the peak outlined (HTML); in text the
 * context around the peak with the peak in [brackets]. */
static void window_rows(const am_examples *ex, int n, am_tokenizer *tok, mg_str *h, mg_str *t)
{
    const mg_engine_api *e = mg_engine();
    float lo, hi;
    windows_range(ex, n, &lo, &hi);
    mg_str_add(h, "<table><tr><th>#</th><th>token</th><th>peak</th><th>context around the peak "
                  "(outlined; colour: activation per token, hover for values)</th></tr>");
    am_example it;
    for (int i = 0; i < n && e->am_examples_get(ex, i, &it) == AM_OK; i++) {
        int p = it.peak;
        mg_str_addf(h, "<tr><td>%d</td><td>%lld</td><td>%.4g</td><td style=\"text-align:left\">",
                    i + 1, (long long)(it.index + p), it.value);
        mg_colored_spans(h, tok, it.tokens, it.acts, p, lo, hi);
        mg_str_add(h, "<span style=\"outline:2px solid #000\">");
        mg_colored_spans(h, tok, it.tokens + p, it.acts + p, 1, lo, hi);
        mg_str_add(h, "</span>");
        mg_colored_spans(h, tok, it.tokens + p + 1, it.acts + p + 1, it.len - p - 1, lo, hi);
        mg_str_add(h, "</td></tr>");
        mg_str_addf(t, "  %2d. @%-7lld %8.4g  ", i + 1, (long long)(it.index + p), it.value);
        int from = p > kBefore ? p - kBefore : 0;
        int to = p + 1 + kAfter < it.len ? p + 1 + kAfter : it.len;
        if (from > 0)
            mg_str_add(t, "…");
        for (int j = from; j < to; j++) {
            char *lab = mg_token_label(tok, it.tokens[j]);
            mg_str_addf(t, j == p ? "[%s]" : "%s", lab);
            free(lab);
        }
        mg_str_add(t, to < it.len ? "…\n" : "\n");
    }
    mg_str_add(h, "</table></div>");
}

static mg_status examples_run(mg_call *c, const mg_session *s, const opt_prompt *op)
{
    const mg_engine_api *e = mg_engine();
    char *err = NULL;
    am_tokenizer *tok = mg_model_tokenizer(s->model, &err);
    if (!tok) {
        mg_status st = mg_fail(c, "TokenizerError", "%%examples on %s: %s", s->model_name, err);
        free(err);
        return st;
    }
    const char *path_arg = mg_string(c, "path");
    char *path = path_arg[0] ? mg_strdup(path_arg) : mg_corpus_path(s->model_path);
    if (!path) {
        e->am_tokenizer_free(tok);
        return mg_fail(c, "DatasetError",
                       "%%examples on a text model reads a corpus: the "
                       "held-out fortunes file (share/actmax/data/fortunes-heldout.txt) was not "
                       "found; give path=FILE (any text file)");
    }
    mg_scan_live L = {0};
    double secs = 0;
    am_examples *ex = scan_corpus(c, s->model, path, &L, &secs);
    free(path);
    if (!ex) {
        e->am_tokenizer_free(tok);
        return MG_ERROR;
    }
    int n = e->am_examples_count(ex);
    bool interrupted = e->am_examples_cancelled(ex) == 1 || L.d.stopped;
    /* The closing update: the last state, throttle or not. */
    L.scanned = e->am_examples_scanned(ex);
    /* A finished scan knows its total; an interrupted one keeps the estimate. */
    if (!interrupted || L.total < L.scanned)
        L.total = L.scanned;
    if (n > 0)
        L.best = e->am_examples_max(ex);
    mg_scan_live_send(&L);
    mg_str h = MG_STR_INIT, t = MG_STR_INIT;
    heading(c, ex, n, L.total, interrupted, op, secs, &h, &t);
    window_rows(ex, n, tok, &h, &t);
    mg_bundle *b = mg_bundle_new();
    mg_bundle_text(b, "text/plain", mg_str_cstr(&t));
    mg_bundle_text(b, "text/html", mg_str_cstr(&h));
    mg_sink_display(c->out, b, NULL);
    mg_bundle_free(b);
    mg_str_free(&h);
    mg_str_free(&t);
    e->am_examples_free(ex);
    e->am_tokenizer_free(tok);
    if (mg_bool(c, "verbose"))
        mg_sink_printf(c->out, "live display updates sent: %d\n", L.d.updates);
    return interrupted ? MG_INTERRUPTED : MG_OK;
}

mg_status mg_text_examples(mg_call *c, mg_session *s)
{
    /* The latest prompt of the same objective goes beside the corpus. */
    const mg_run_rec *cmp = mg_session_latest(s, &mg_text_run_ops, c->positional);
    opt_prompt op = {NULL, NAN, 0};
    if (cmp)
        op = (opt_prompt){mg_text_run_prompt(cmp), mg_text_run_final(cmp), cmp->id};
    return examples_run(c, s, &op);
}
