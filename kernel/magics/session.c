/* The engine session (session.h) and the magics over its runs of every
 * kind: %runs, %show, %save. */
#include "session.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "display.h"
#include "magics.h"
#include "util.h"

/* ================================================================ state */

void *mg_session_new(void)
{
    return mg_xcalloc(1, sizeof(mg_session));
}

static void drop_model(mg_session *s)
{
    const mg_engine_api *e = mg_engine();
    if (s->model && e)
        e->am_model_free(s->model);
    s->model = NULL;
    free(s->model_name);
    free(s->model_path);
    free(s->layers);
    s->model_name = s->model_path = NULL;
    s->layers = NULL;
    s->n_layers = 0;
}

void mg_session_free(void *session)
{
    mg_session *s = session;
    if (!s)
        return;
    for (int i = 0; i < s->n_runs; i++) {
        mg_run_rec *r = &s->runs[i];
        r->ops->free(r->data);
        free(r->objective);
        free(r->options);
    }
    free(s->runs);
    drop_model(s);
    free(s);
}

mg_session *mg_session_of(const mg_call *c)
{
    return mg_interp_state(c->interp);
}

mg_status mg_session_need_model(const mg_call *c, const mg_session *s)
{
    if (s->model)
        return MG_OK;
    return mg_fail(c, "NoModelError",
                   "%%%s needs a model: load one first, e.g. `%%model fashion-cnn` "
                   "(built-in) or `%%model path/to/model.pt input=3x224x224`",
                   c->magic->name);
}

void mg_session_set_model(mg_session *s, am_model *m, am_layer_info *layers, int n_layers,
                          const char *name, char *path)
{
    drop_model(s);
    s->model = m;
    s->layers = layers;
    s->n_layers = n_layers;
    s->model_name = mg_strdup(name);
    s->model_path = path;
}

mg_run_rec *mg_session_add_run(mg_session *s, const mg_run_rec *r)
{
    if (s->n_runs == s->cap_runs) {
        s->cap_runs = s->cap_runs ? 2 * s->cap_runs : 8;
        s->runs = mg_xrealloc(s->runs, (size_t)s->cap_runs * sizeof *s->runs);
    }
    mg_run_rec *kept = &s->runs[s->n_runs++];
    *kept = *r;
    kept->id = s->n_runs;
    return kept;
}

const mg_run_rec *mg_session_latest(const mg_session *s, const mg_run_ops *ops,
                                    const char *objective)
{
    for (int i = s->n_runs - 1; i >= 0; i--)
        if (s->runs[i].ops == ops && strcmp(s->runs[i].objective, objective) == 0)
            return &s->runs[i];
    return NULL;
}

/* ================================================================ layers */

int mg_is_layer_char(int ch)
{
    return isalnum(ch) || ch == '_' || ch == '.' || ch == '#' || ch == ':';
}

const am_layer_info *mg_session_layer(const mg_session *s, const char *name, size_t n)
{
    for (int i = 0; i < s->n_layers; i++)
        if (strlen(s->layers[i].name) == n && strncmp(s->layers[i].name, name, n) == 0)
            return &s->layers[i];
    return NULL;
}

char *mg_session_inspect(void *session, const char *code, size_t len, size_t cursor)
{
    mg_session *s = session;
    if (!s || !s->model)
        return NULL;
    size_t a = cursor, b = cursor;
    while (a > 0 && mg_is_layer_char((unsigned char)code[a - 1]))
        a--;
    while (b < len && mg_is_layer_char((unsigned char)code[b]))
        b++;
    const am_layer_info *L = mg_session_layer(s, code + a, b - a);
    if (!L)
        return NULL;
    mg_str t = MG_STR_INIT;
    mg_str_addf(&t, "%s  (%s)\noutput: ", L->name, L->type);
    mg_shape_text(&t, L->shape, L->ndim);
    mg_str_addf(&t, "  batch first\nparameters: %lld\ncalls per forward: %d\n",
                (long long)L->params, L->calls);
    if (L->ndim >= 2)
        mg_str_addf(&t, "objective: %s[c] with c in 0..%lld\n", L->name,
                    (long long)L->shape[1] - 1);
    return mg_str_steal(&t);
}

/* ================================================================ %runs %show %save */

static int parse_run_ref(const mg_call *c, mg_session *s, mg_run_rec **out)
{
    const char *ref = c->positional;
    if (s->n_runs == 0) {
        mg_fail(c, "NoRunError",
                "no runs yet in this session: run %%maximize OBJECTIVE (images) "
                "or %%tokens OBJECTIVE (text) first");
        return -1;
    }
    if (!ref || strcmp(ref, "last") == 0) {
        *out = &s->runs[s->n_runs - 1];
        return 0;
    }
    char *end;
    long v = strtol(ref, &end, 10);
    if (*end || end == ref || v < 1 || v > s->n_runs) {
        mg_fail(c, "ValueError",
                "run '%s' does not exist: give `last` or a run number 1..%d (see %%runs)", ref,
                s->n_runs);
        return -1;
    }
    *out = &s->runs[v - 1];
    return 0;
}

mg_status mg_magic_runs(mg_call *c)
{
    mg_session *s = mg_session_of(c);
    if (s->n_runs == 0) {
        mg_sink_printf(c->out, "no runs yet in this session\n");
        return MG_OK;
    }
    char **cells = mg_xcalloc((size_t)s->n_runs * 6, sizeof *cells);
    for (int i = 0; i < s->n_runs; i++) {
        mg_run_rec *r = &s->runs[i];
        int steps = 0;
        double final = NAN, seconds = 0;
        r->ops->row(r, &steps, &final, &seconds);
        cells[i * 6 + 0] = mg_asprintf("%d", r->id);
        cells[i * 6 + 1] = mg_strdup(r->objective);
        cells[i * 6 + 2] = mg_asprintf("%d", steps);
        cells[i * 6 + 3] = mg_asprintf("%.4g", final);
        cells[i * 6 + 4] = mg_asprintf("%.2f", seconds);
        cells[i * 6 + 5] = mg_strdup(r->options);
    }
    const char *header[] = {"run", "objective", "steps", "final", "seconds", "options"};
    render_table t = {
        .n_cols = 6, .n_rows = s->n_runs, .header = header, .cells = (const char *const *)cells};
    mg_send_table(c, &t);
    for (int i = 0; i < s->n_runs * 6; i++)
        free(cells[i]);
    free(cells);
    return MG_OK;
}

mg_status mg_magic_show(mg_call *c)
{
    mg_run_rec *r;
    if (parse_run_ref(c, mg_session_of(c), &r) != 0)
        return MG_ERROR;
    r->ops->show(c, r);
    return MG_OK;
}

mg_status mg_magic_save(mg_call *c)
{
    mg_run_rec *r;
    if (parse_run_ref(c, mg_session_of(c), &r) != 0)
        return MG_ERROR;
    const char *path = mg_string(c, "path");
    if (!path[0])
        return mg_fail(c, "ValueError",
                       "%%save needs path=FILE.png, e.g. %%save last path=run.png");
    if (strcmp(mg_enum(c, "what"), "plot") != 0)
        return r->ops->save(c, r, path);
    render_png png = {0};
    if (r->ops->plot_png(r, &png) != RENDER_OK)
        return mg_fail(c, "RenderError", "%s", render_last_error());
    mg_status st = mg_write_png(c, &png, path);
    if (st == MG_OK)
        mg_sink_printf(c->out, "saved run %d plot (%dx%d PNG) to %s\n", r->id, png.width,
                       png.height, path);
    render_png_clear(&png);
    return st;
}
