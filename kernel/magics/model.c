/* The model magics: %model (load, or describe), %layers, completion of
 * layer paths and labels in objectives, and the %device and %seed
 * shortcuts of %set. */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "display.h"
#include "magics.h"
#include "paths.h"
#include "session.h"
#include "text.h"
#include "util.h"

/* "3x224x224" or "1,28,28" -> dims; the count, or -1. */
static int parse_shape(const char *text, int64_t *shape, int max)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v <= 0 || v > 1000000 || n >= max)
            return -1;
        shape[n++] = v;
        p = end;
        if (*p == 'x' || *p == 'X' || *p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return n;
}

static int load_layers(mg_session *s, char **err)
{
    const mg_engine_api *e = mg_engine();
    int n = e->am_model_num_layers(s->model);
    if (n < 0) {
        *err = mg_asprintf("listing the layers failed: %s", e->am_model_error(s->model));
        return -1;
    }
    s->layers = mg_xcalloc(n ? (size_t)n : 1, sizeof *s->layers);
    for (int i = 0; i < n; i++)
        e->am_model_layer(s->model, i, &s->layers[i]);
    s->n_layers = n;
    return 0;
}

/* A text model's tokenizer is read here, at load, so an unsupported one is
 * an error naming what is unsupported now rather than at every %tokens. A
 * text model without one still loads (its taps work); the summary says so. */
static mg_status check_tokenizer(const mg_call *c, am_model *m, const char *path, bool had_model)
{
    const mg_engine_api *e = mg_engine();
    const char *bytes = NULL;
    size_t len = 0;
    if (strcmp(e->am_model_kind(m), "text") != 0 || e->am_model_tokenizer(m, &bytes, &len) != AM_OK)
        return MG_OK;
    char *err = NULL;
    am_tokenizer *t = mg_model_tokenizer(m, &err);
    if (t) {
        e->am_tokenizer_free(t);
        return MG_OK;
    }
    mg_status st = mg_fail(c, "TokenizerError", "%s: %s%s", path, err,
                           had_model ? "\nThe previous model is still loaded." : "");
    free(err);
    return st;
}

/* The tokenizer row of the summary (malloc'd). */
static char *tokenizer_text(am_model *m)
{
    const mg_engine_api *e = mg_engine();
    if (strcmp(e->am_model_kind(m), "text") != 0)
        return mg_strdup("(none: an image model)");
    char *err = NULL;
    am_tokenizer *t = mg_model_tokenizer(m, &err);
    if (!t) {
        free(err);
        return mg_strdup("(none: %tokens and %examples need one in the model's actmax.json)");
    }
    char *text = mg_asprintf("%s, %lld tokens", e->am_tokenizer_describe(t),
                             (long long)e->am_tokenizer_vocab_size(t));
    e->am_tokenizer_free(t);
    return text;
}

static void model_summary(const mg_call *c, const mg_session *s)
{
    const mg_engine_api *e = mg_engine();
    am_model *m = s->model;
    int64_t in[AM_MAX_DIMS];
    int nd = e->am_model_input_shape(m, in, AM_MAX_DIMS);
    mg_str shape = MG_STR_INIT, labels = MG_STR_INIT;
    mg_shape_text(&shape, in, nd > 0 ? nd : 0);
    int nl = e->am_model_num_labels(m);
    /* A long label list (ImageNet's 1000) would push the other rows off the
     * screen: the first few, then the count. */
    enum { kShownLabels = 12 };
    for (int i = 0; i < nl && i < kShownLabels; i++)
        mg_str_addf(&labels, "%s%s", i ? ", " : "", e->am_model_label(m, i));
    if (nl > kShownLabels)
        mg_str_addf(&labels, ", ... (%d labels in all)", nl);
    char *layers = mg_asprintf("%d", s->n_layers);
    char *params = mg_asprintf("%lld", (long long)e->am_model_num_params(m));
    const char *note = e->am_model_note(m);
    char *tok = tokenizer_text(m);
    const char *rows[][2] = {
        {"model", s->model_name},
        {"file", s->model_path},
        {"kind", e->am_model_kind(m)},
        {"input", mg_str_cstr(&shape)},
        {"layers", layers},
        {"parameters", params},
        {"labels", nl ? mg_str_cstr(&labels) : "(none)"},
        {"dataset", e->am_model_dataset(m)[0] ? e->am_model_dataset(m) : "(none)"},
        {"device", e->am_model_device(m)},
        {"tokenizer", tok},
        {"note", note && note[0] ? note : "metadata complete; no defaults taken"},
    };
    enum { kRows = sizeof rows / sizeof rows[0] };
    const char *cells[2 * kRows];
    for (int i = 0; i < kRows; i++) {
        cells[2 * i] = rows[i][0];
        cells[2 * i + 1] = rows[i][1];
    }
    render_table t = {.n_cols = 2, .n_rows = kRows, .cells = cells};
    mg_send_table(c, &t);
    free(tok);
    free(layers);
    free(params);
    mg_str_free(&shape);
    mg_str_free(&labels);
}

mg_status mg_magic_model(mg_call *c)
{
    mg_session *s = mg_session_of(c);
    if (!c->positional) {
        if (!s->model)
            return mg_session_need_model(c, s);
        model_summary(c, s);
        return MG_OK;
    }
    const mg_engine_api *e = mg_engine();
    int64_t shape[AM_MAX_DIMS];
    int nd = 0;
    if (mg_given(c, "input")) {
        nd = parse_shape(mg_string(c, "input"), shape, AM_MAX_DIMS);
        if (nd <= 0)
            return mg_fail(c, "ValueError",
                           "input=%s is not a shape: write the input without the batch "
                           "dimension as CxHxW, e.g. input=3x224x224 (or T for text)",
                           mg_string(c, "input"));
    }
    char *err = NULL;
    char *path = mg_resolve_model(c->positional, &err);
    if (!path) {
        mg_status st = mg_fail(c, "ModelNotFoundError", "%s", err);
        free(err);
        return st;
    }
    /* "auto" is resolved by the engine from what libtorch reports. */
    const char *dev = mg_enum(c, "device");
    am_model *m = NULL;
    int rc = e->am_model_load(path, dev, nd ? shape : NULL, nd, &m);
    if (rc != AM_OK) {
        /* The previous model stays: a failed load changes nothing. */
        mg_status st = mg_fail(c, "ModelError", "%s could not be loaded (%s): %s%s", path,
                               e->am_strerror(rc), m ? e->am_model_error(m) : "",
                               s->model ? "\nThe previous model is still loaded." : "");
        e->am_model_free(m);
        free(path);
        return st;
    }
    if (check_tokenizer(c, m, path, s->model != NULL) != MG_OK) {
        e->am_model_free(m);
        free(path);
        return MG_ERROR;
    }
    mg_session fresh = {0};
    fresh.model = m;
    if (load_layers(&fresh, &err) != 0) {
        mg_status st = mg_fail(c, "ModelError", "%s: %s", path, err);
        free(err);
        e->am_model_free(m);
        free(path);
        return st;
    }
    mg_session_set_model(s, m, fresh.layers, fresh.n_layers, c->positional, path);
    model_summary(c, s);
    return MG_OK;
}

/* ================================================================ %layers */

static bool layer_matches(const char *name, const char *pat)
{
    if (!pat || !pat[0])
        return true;
    if (strpbrk(pat, "*?["))
        return fnmatch(pat, name, 0) == 0;
    return strstr(name, pat) != NULL;
}

mg_status mg_magic_layers(mg_call *c)
{
    mg_session *s = mg_session_of(c);
    if (mg_session_need_model(c, s) != MG_OK)
        return MG_ERROR;
    const char *pat = c->positional;
    int n = 0;
    for (int i = 0; i < s->n_layers; i++)
        n += layer_matches(s->layers[i].name, pat);
    if (s->n_layers == 0) {
        mg_sink_printf(c->out,
                       "%s has no submodules to list: its forward only computes on its "
                       "input; an objective can name its result as output\n",
                       s->model_name);
        return MG_OK;
    }
    if (n == 0) {
        const char **names = mg_xcalloc((size_t)s->n_layers + 1, sizeof *names);
        for (int i = 0; i < s->n_layers; i++)
            names[i] = s->layers[i].name;
        const char *best = mg_closest(pat, names, (size_t)s->n_layers);
        mg_status st =
            mg_fail(c, "LayerError",
                    "no layer of %s matches '%s'%s%s%s; %%layers alone lists all %d", s->model_name,
                    pat, best ? " (closest: " : "", best ? best : "", best ? ")" : "", s->n_layers);
        free(names);
        return st;
    }
    char **cells = mg_xcalloc((size_t)n * 5, sizeof *cells);
    int r = 0;
    for (int i = 0; i < s->n_layers; i++) {
        const am_layer_info *L = &s->layers[i];
        if (!layer_matches(L->name, pat))
            continue;
        mg_str sh = MG_STR_INIT;
        if (L->ndim)
            mg_shape_text(&sh, L->shape, L->ndim);
        else
            mg_str_add(&sh, "-");
        cells[r * 5 + 0] = mg_strdup(L->name);
        cells[r * 5 + 1] = mg_strdup(L->type);
        cells[r * 5 + 2] = mg_str_steal(&sh);
        cells[r * 5 + 3] = mg_asprintf("%lld", (long long)L->params);
        cells[r * 5 + 4] = mg_asprintf("%d", L->calls);
        r++;
    }
    const char *header[] = {"layer", "type", "output (batch first)", "params", "calls"};
    char *cap = mg_asprintf("%s: %d of %d layers", s->model_name, n, s->n_layers);
    render_table t = {.n_cols = 5,
                      .n_rows = n,
                      .header = header,
                      .cells = (const char *const *)cells,
                      .caption = cap};
    mg_send_table(c, &t);
    for (int i = 0; i < n * 5; i++)
        free(cells[i]);
    free(cells);
    free(cap);
    return MG_OK;
}

/* Completion of layer paths in an objective, and labels inside ["..."]. */
void mg_magic_objective_complete(const mg_complete_ctx *cx, mg_completions *out)
{
    if (!cx->in_positional || cx->key)
        return;
    mg_session *s = mg_interp_state(cx->interp);
    if (!s->model)
        return;
    const mg_engine_api *e = mg_engine();
    size_t ws = cx->cursor;
    /* Inside a quoted label: the text since the opening quote after '[' or ','. */
    size_t q = ws;
    while (q > 0 && cx->args[q - 1] != '"' && cx->args[q - 1] != '\'' && cx->args[q - 1] != '[' &&
           cx->args[q - 1] != ']')
        q--;
    if (q > 1 && (cx->args[q - 1] == '"' || cx->args[q - 1] == '\'')) {
        size_t k = q - 1;
        while (k > 0 && cx->args[k - 1] == ' ')
            k--;
        if (k > 0 && (cx->args[k - 1] == '[' || cx->args[k - 1] == ',') && e) {
            char quote = cx->args[q - 1];
            size_t plen = ws - q;
            for (int i = 0; i < e->am_model_num_labels(s->model); i++) {
                const char *lab = e->am_model_label(s->model, i);
                if (strncmp(lab, cx->args + q, plen) == 0) {
                    char *cand = mg_asprintf("%s%c]", lab, quote);
                    mg_completions_add(out, cand);
                    free(cand);
                }
            }
            mg_completions_from(out, cx, q);
            return;
        }
    }
    while (ws > 0 && mg_is_layer_char((unsigned char)cx->args[ws - 1]))
        ws--;
    size_t plen = cx->cursor - ws;
    for (int i = 0; i < s->n_layers; i++)
        if (strncmp(s->layers[i].name, cx->args + ws, plen) == 0)
            mg_completions_add(out, s->layers[i].name);
    mg_completions_from(out, cx, ws);
}

/* ================================================================ %device %seed */

static mg_status setting_magic(mg_call *c, const char *name)
{
    if (c->positional) {
        char *err = NULL;
        if (mg_setting_set(c->interp, name, c->positional, &err) != 0) {
            mg_status st = mg_fail(c, "ValueError", "%s", err);
            free(err);
            return st;
        }
    }
    const mg_value *v = mg_setting(c->interp, name);
    size_t idx = 0;
    const mg_key *k = mg_keys_find(mg_settings_table, name, &idx);
    char *txt = mg_value_format(k, v);
    /* Only the engine knows what "auto" becomes (CUDA when libtorch reports
     * it usable); a loaded model says where it went. */
    const mg_session *s = mg_session_of(c);
    const char *where = strcmp(name, "device") == 0 && strcmp(txt, "auto") == 0 && s->model
                            ? mg_engine()->am_model_device(s->model)
                            : NULL;
    mg_sink_printf(c->out, "%s = %s%s%s%s\n", name, txt, where ? " (the loaded model is on " : "",
                   where ? where : "", where ? ")" : "");
    free(txt);
    return MG_OK;
}

mg_status mg_magic_device(mg_call *c)
{
    return setting_magic(c, "device");
}

mg_status mg_magic_seed(mg_call *c)
{
    return setting_magic(c, "seed");
}
