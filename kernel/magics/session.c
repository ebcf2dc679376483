/* The engine session (session.h) and the magics over its runs of every
 * kind: %runs, %show, %save. */
#include "session.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

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
        free(r->options_json);
        free(r->code);
        free(r->model);
        free(r->model_path);
    }
    free(s->runs);
    drop_model(s);
    free(s);
}

mg_session *mg_session_of(const mg_call *c)
{
    return mg_interp_state(c->interp);
}

/* Keys a magic declares that do nothing for one kind of model: given there,
 * they are named with the reason instead of being accepted silently. */
typedef struct key_scope {
    const char *magic, *key;
    const char *kind; /* the model kind the key serves */
    const char *why;  /* why it does nothing for the other kind */
} key_scope;

static const key_scope KEY_SCOPES[] = {
    {"examples", "split", "image",
     "a text model's examples come from its corpus, which has no splits"},
    {"examples", "limit", "image", "a text model's corpus is read whole"},
    {"examples", "path", "text", "an image model's examples come from its own dataset"},
    {"examples", "window", "text", "windows are spans of a text corpus"},
    {"examples", "batch", "text", "image examples are read at the engine's own batch"},
};

/* One warning line per key given where it does nothing. */
static void note_ignored_keys(const mg_call *c, const mg_session *s)
{
    const char *kind = mg_engine()->am_model_kind(s->model);
    for (size_t i = 0; i < sizeof KEY_SCOPES / sizeof KEY_SCOPES[0]; i++) {
        const key_scope *k = &KEY_SCOPES[i];
        if (strcmp(c->magic->name, k->magic) != 0 || strcmp(kind, k->kind) == 0 ||
            !mg_keys_find(c->magic->keys, k->key, NULL) || !mg_given(c, k->key))
            continue;
        char *line =
            mg_asprintf("warning: %s= ignored on this %s model (%s)\n", k->key, kind, k->why);
        mg_sink_stream(c->out, "stderr", line);
        free(line);
    }
}

mg_status mg_session_need_model(const mg_call *c, const mg_session *s)
{
    if (s->model) {
        note_ignored_keys(c, s);
        return MG_OK;
    }
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
    kept->model = mg_strdup(s->model_name ? s->model_name : "");
    kept->model_path = mg_strdup(s->model_path ? s->model_path : "");
    return kept;
}

const mg_run_rec *mg_session_latest(const mg_session *s, const mg_run_ops *ops,
                                    const char *objective)
{
    const char *name = s->model_name ? s->model_name : "";
    const char *path = s->model_path ? s->model_path : "";
    for (int i = s->n_runs - 1; i >= 0; i--) {
        const mg_run_rec *r = &s->runs[i];
        if (r->ops == ops && strcmp(r->objective, objective) == 0 && strcmp(r->model, name) == 0 &&
            strcmp(r->model_path ? r->model_path : "", path) == 0)
            return r;
    }
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

/* ================================================================ run records */

static bool skipped(const char *name, const char *const *skip)
{
    for (; skip && *skip; skip++)
        if (strcmp(*skip, name) == 0)
            return true;
    return false;
}

void mg_session_record_options(const mg_call *c, mg_run_rec *r, const char *const *skip)
{
    mg_str t = MG_STR_INIT;
    cJSON *o = cJSON_CreateObject();
    const mg_key *keys = c->magic->keys;
    for (size_t i = 0; keys && keys[i].name; i++) {
        const mg_key *k = &keys[i];
        const mg_value *v = &c->values[i];
        bool text_key = k->type == MG_T_STRING || k->type == MG_T_ENUM;
        if (!v->set || skipped(k->name, skip) || (text_key && (!v->s || !v->s[0])))
            continue;
        if (k->type == MG_T_INT)
            mg_str_addf(&t, "%s%s=%lld", t.len ? " " : "", k->name, v->i);
        else if (k->type == MG_T_FLOAT)
            mg_str_addf(&t, "%s%s=%.6g", t.len ? " " : "", k->name, v->f);
        else if (k->type == MG_T_BOOL)
            mg_str_addf(&t, "%s%s=%s", t.len ? " " : "", k->name, v->b ? "true" : "false");
        else
            mg_str_addf(&t, "%s%s=%s", t.len ? " " : "", k->name, v->s);
        if (k->type == MG_T_INT)
            cJSON_AddNumberToObject(o, k->name, (double)v->i);
        else if (k->type == MG_T_FLOAT)
            cJSON_AddNumberToObject(o, k->name, v->f);
        else if (k->type == MG_T_BOOL)
            cJSON_AddBoolToObject(o, k->name, v->b);
        else
            cJSON_AddStringToObject(o, k->name, v->s ? v->s : "");
    }
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    r->options = mg_str_steal(&t);
    r->options_json = mg_strdup(json ? json : "{}");
    cJSON_free(json);
}

mg_run_rec *mg_session_run_ref(const mg_call *c, mg_session *s, const char *ref)
{
    if (s->n_runs == 0) {
        mg_fail(c, "NoRunError",
                "no runs yet in this session: run %%maximize OBJECTIVE (images) "
                "or %%tokens OBJECTIVE (text) first");
        return NULL;
    }
    if (!ref || strcmp(ref, "last") == 0)
        return &s->runs[s->n_runs - 1];
    char *end;
    long v = strtol(ref, &end, 10);
    if (*end || end == ref || v < 1 || v > s->n_runs) {
        mg_fail(c, "ValueError",
                "run '%s' does not exist: give `last` or a run number 1..%d (see %%runs)", ref,
                s->n_runs);
        return NULL;
    }
    return &s->runs[v - 1];
}

/* ================================================================ %runs %show */

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
    mg_run_rec *r = mg_session_run_ref(c, mg_session_of(c), c->positional);
    if (!r)
        return MG_ERROR;
    r->ops->show(c, r);
    return MG_OK;
}

/* ================================================================ %save */

static const char *extension_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    return dot ? dot + 1 : "";
}

static bool in_list(const char *word, const char *list)
{
    size_t n = strlen(word);
    for (const char *p = list; n && (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

static FILE *open_for_write(const mg_call *c, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        mg_fail(c, "OSError",
                "cannot write %s: %s; give a path in a folder that exists and is writable", path,
                strerror(errno));
    return f;
}

static mg_status close_written(const mg_call *c, FILE *f, const char *path)
{
    if (ferror(f) | (fclose(f) != 0))
        return mg_fail(c, "OSError", "cannot write %s: %s", path, strerror(errno));
    return MG_OK;
}

static mg_status save_array(const mg_call *c, const mg_run_rec *r, const char *path)
{
    const void *data = NULL;
    int dtype = AM_DTYPE_FLOAT32;
    int64_t shape[AM_MAX_DIMS] = {0};
    int nd = r->ops->array(r, &data, &dtype, shape);
    if (nd < 0 || !data)
        return mg_fail(c, "ValueError", "run %d has no result to save", r->id);
    char err[512];
    int rc = mg_engine()->am_array_save(path, dtype, data, shape, nd, err, sizeof err);
    if (rc != AM_OK)
        return mg_fail(c, rc == AM_E_IO ? "OSError" : "ValueError", "%s", err);
    mg_str t = MG_STR_INIT;
    mg_shape_text(&t, shape, nd);
    mg_sink_printf(c->out, "saved run %d %s %s %s to %s\n", r->id,
                   dtype == AM_DTYPE_INT64 ? "token ids" : "images", mg_str_cstr(&t),
                   dtype == AM_DTYPE_INT64 ? "int64" : "float32", path);
    mg_str_free(&t);
    return MG_OK;
}

#define MG_MAX_CURVES 64

/* Every curve of the run: .csv with one row per step, or .json with the
 * run's objective and options beside the curves. */
static mg_status save_curves(const mg_call *c, const mg_run_rec *r, const char *path, bool json)
{
    const char *names[MG_MAX_CURVES];
    const float *curves[MG_MAX_CURVES];
    int steps = 0;
    int n = r->ops->curves(r, names, curves, MG_MAX_CURVES, &steps);
    FILE *f = open_for_write(c, path);
    if (!f)
        return MG_ERROR;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "run", r->id);
        cJSON_AddStringToObject(o, "kind", r->ops->kind);
        cJSON_AddStringToObject(o, "objective", r->objective);
        cJSON *opts = cJSON_Parse(r->options_json ? r->options_json : "{}");
        cJSON_AddItemToObject(o, "options", opts ? opts : cJSON_CreateObject());
        cJSON *st = cJSON_AddArrayToObject(o, "step");
        for (int s = 0; s < steps; s++)
            cJSON_AddItemToArray(st, cJSON_CreateNumber(s + 1));
        cJSON *cu = cJSON_AddObjectToObject(o, "curves");
        for (int i = 0; i < n; i++) {
            cJSON *a = cJSON_AddArrayToObject(cu, names[i]);
            for (int s = 0; s < steps; s++)
                cJSON_AddItemToArray(a, isfinite(curves[i][s]) ? cJSON_CreateNumber(curves[i][s])
                                                               : cJSON_CreateNull());
        }
        char *txt = cJSON_Print(o);
        fputs(txt ? txt : "{}", f);
        fputc('\n', f);
        cJSON_free(txt);
        cJSON_Delete(o);
    } else {
        fputs("step", f);
        for (int i = 0; i < n; i++) {
            /* A name holding a comma or quote is quoted, RFC 4180 style. */
            fputs(",\"", f);
            for (const char *p = names[i]; *p; p++) {
                if (*p == '"')
                    fputc('"', f);
                fputc(*p, f);
            }
            fputc('"', f);
        }
        fputc('\n', f);
        for (int s = 0; s < steps; s++) {
            fprintf(f, "%d", s + 1);
            for (int i = 0; i < n; i++)
                fprintf(f, ",%.9g", (double)curves[i][s]);
            fputc('\n', f);
        }
    }
    if (close_written(c, f, path) != MG_OK)
        return MG_ERROR;
    mg_sink_printf(c->out, "saved run %d curves (%d, %d steps) to %s\n", r->id, n, steps, path);
    return MG_OK;
}

static mg_status save_code(const mg_call *c, const mg_run_rec *r, const char *path)
{
    FILE *f = open_for_write(c, path);
    if (!f)
        return MG_ERROR;
    fputs(r->code, f);
    if (close_written(c, f, path) != MG_OK)
        return MG_ERROR;
    mg_sink_printf(c->out, "saved run %d as a PyTorch script to %s (run it with python3)\n", r->id,
                   path);
    return MG_OK;
}

static mg_status save_plot(const mg_call *c, const mg_run_rec *r, const char *path)
{
    if (strcmp(extension_of(path), "png") != 0)
        return mg_fail(c, "ValueError",
                       "what=plot draws the curve as PNG: give path=NAME.png (the curves as data: "
                       "path=NAME.csv or NAME.json)");
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

mg_status mg_magic_save(mg_call *c)
{
    mg_run_rec *r = mg_session_run_ref(c, mg_session_of(c), c->positional);
    if (!r)
        return MG_ERROR;
    const char *path = mg_string(c, "path");
    char *valid = mg_asprintf("%s npy pt csv json%s", r->ops->save_exts, r->code ? " py" : "");
    mg_status st;
    if (!path[0]) {
        st = mg_fail(c, "ValueError",
                     "%%save needs path=FILE, one of .%s; e.g. %%save last path=run.npy", valid);
    } else if (strcmp(mg_enum(c, "what"), "plot") == 0) {
        st = save_plot(c, r, path);
    } else {
        const char *ext = extension_of(path);
        if (strcmp(ext, "npy") == 0 || strcmp(ext, "pt") == 0 || strcmp(ext, "pth") == 0)
            st = save_array(c, r, path);
        else if (strcmp(ext, "csv") == 0 || strcmp(ext, "json") == 0)
            st = save_curves(c, r, path, ext[0] == 'j');
        else if (strcmp(ext, "py") == 0 && r->code)
            st = save_code(c, r, path);
        else if (ext[0] && in_list(ext, r->ops->save_exts))
            st = r->ops->save(c, r, path);
        else {
            mg_str v = MG_STR_INIT;
            for (const char *p = valid; *p; p++) {
                if (*p == ' ')
                    mg_str_add(&v, ", .");
                else
                    mg_str_addc(&v, *p);
            }
            st = mg_fail(c, "ValueError",
                         "%s: %s run %d cannot be saved as '.%s'; the formats are .%s (by the "
                         "path's extension)",
                         path, r->ops->kind, r->id, ext, mg_str_cstr(&v));
            mg_str_free(&v);
        }
    }
    free(valid);
    return st;
}
