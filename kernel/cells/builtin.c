/* The magics every registry may list, which need nothing but the
 * interpreter: %lsmagic, %help, %set, and the diagnostics %sleep, %echo and
 * %clear used by the tests (builtin.h). */
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "util.h"

mg_status mg_magic_lsmagic(mg_call *c)
{
    char *text = mg_lsmagic_text(mg_interp_registry(c->interp));
    mg_sink_stream(c->out, "stdout", text);
    free(text);
    return MG_OK;
}

mg_status mg_magic_help_run(mg_call *c)
{
    if (!c->positional) {
        char *text = mg_help_overview(mg_interp_registry(c->interp));
        mg_sink_stream(c->out, "stdout", text);
        free(text);
        return MG_OK;
    }
    /* Accept "sleep", "%sleep", "%%echo" and a trailing "?". */
    const char *p = c->positional;
    unsigned kind = MG_LINE;
    if (p[0] == '%') {
        p++;
        if (p[0] == '%') {
            p++;
            kind = MG_CELL;
        }
    }
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '?')
        n--;
    char *name = mg_strndup(p, n);
    const mg_registry *reg = mg_interp_registry(c->interp);
    const mg_magic *m = mg_magic_find(reg, name, kind);
    if (!m)
        m = mg_magic_find(reg, name, MG_LINE | MG_CELL);
    char *text = NULL;
    if (m)
        text = mg_magic_help(m, kind);
    else if (mg_setting(c->interp, name))
        text = mg_settings_help(c->interp);
    if (!text) {
        char *msg = mg_unknown_magic_message(reg, name, kind);
        free(name);
        mg_status st = mg_fail(c, "UnknownMagicError", "%s", msg);
        free(msg);
        return st;
    }
    mg_sink_stream(c->out, "stdout", text);
    free(text);
    free(name);
    return MG_OK;
}

void mg_magic_help_complete(const mg_complete_ctx *cx, mg_completions *out)
{
    if (!cx->in_positional || cx->key)
        return;
    const char *w = cx->args + cx->word_start;
    size_t wn = cx->cursor - cx->word_start;
    size_t pct = 0;
    while (pct < wn && pct < 2 && w[pct] == '%')
        pct++;
    for (const mg_magic *m = mg_interp_registry(cx->interp)->magics; m->name; m++) {
        if (strncmp(m->name, w + pct, wn - pct) != 0)
            continue;
        if (pct == 2 && !(m->kinds & MG_CELL))
            continue;
        char *cand = mg_asprintf("%.*s%s", (int)pct, w, m->name);
        mg_completions_add(out, cand);
        free(cand);
    }
}

mg_status mg_magic_set(mg_call *c)
{
    if (c->args->n_kw == 0) {
        char *text = mg_settings_help(c->interp);
        mg_sink_stream(c->out, "stdout", text);
        free(text);
        return MG_OK;
    }
    /* The values were checked against the settings' types before the cell
     * ran, so storing them cannot fail. */
    for (size_t i = 0; i < c->args->n_kw; i++) {
        char *err = NULL;
        if (mg_setting_set(c->interp, c->args->kw[i].key, c->args->kw[i].value, &err) != 0) {
            mg_status st = mg_fail(c, "ValueError", "%s", err);
            free(err);
            return st;
        }
    }
    return MG_OK;
}

mg_status mg_magic_sleep(mg_call *c)
{
    double left = mg_float(c, "seconds");
    while (left > 0) {
        double step = left < 0.05 ? left : 0.05;
        if (mg_sink_wait(c->out, step))
            return MG_INTERRUPTED;
        left -= step;
    }
    return mg_sink_should_stop(c->out) ? MG_INTERRUPTED : MG_OK;
}

mg_status mg_magic_echo(mg_call *c)
{
    const char *text = c->is_cell ? c->body : (c->positional ? c->positional : "");
    const char *to = mg_enum(c, "to");
    const char *id = mg_given(c, "display_id") ? mg_string(c, "display_id") : NULL;
    bool update = mg_bool(c, "update");
    if (update && !id)
        return mg_fail(c, "ValueError", "update=true needs display_id=NAME of an earlier display");
    if (strcmp(to, "stdout") == 0 || strcmp(to, "stderr") == 0) {
        size_t n = strlen(text);
        if (n == 0 || text[n - 1] != '\n') {
            char *line = mg_asprintf("%s\n", text);
            mg_sink_stream(c->out, to, line);
            free(line);
        } else {
            mg_sink_stream(c->out, to, text);
        }
        return MG_OK;
    }
    if (strcmp(to, "page") == 0) {
        mg_sink_page(c->out, text);
        return MG_OK;
    }
    mg_bundle *b = mg_bundle_new();
    mg_bundle_text(b, "text/plain", text);
    mg_bundle_meta_str(b, NULL, "actmax_magic", "echo");
    if (strcmp(to, "result") == 0)
        mg_sink_result(c->out, b);
    else if (update)
        mg_sink_update(c->out, b, id);
    else
        mg_sink_display(c->out, b, id);
    mg_bundle_free(b);
    return MG_OK;
}

mg_status mg_magic_clear(mg_call *c)
{
    mg_sink_clear(c->out, mg_bool(c, "wait"));
    return MG_OK;
}
