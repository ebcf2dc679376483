/* The magics that need no engine: %lsmagic, %help, %set, and the
 * diagnostics %sleep, %echo and %clear used by the tests. */
#include <stdlib.h>
#include <string.h>

#include "magics.h"
#include "util.h"

am_status am_magic_lsmagic(am_call *c)
{
    char *text = am_lsmagic_text();
    am_sink_stream(c->out, "stdout", text);
    free(text);
    return AM_OK;
}

am_status am_magic_help_run(am_call *c)
{
    if (!c->positional) {
        char *text = am_help_overview();
        am_sink_stream(c->out, "stdout", text);
        free(text);
        return AM_OK;
    }
    /* Accept "sleep", "%sleep", "%%echo" and a trailing "?". */
    const char *p = c->positional;
    unsigned kind = AM_LINE;
    if (p[0] == '%') {
        p++;
        if (p[0] == '%') {
            p++;
            kind = AM_CELL;
        }
    }
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '?')
        n--;
    char *name = am_strndup(p, n);
    const am_magic *m = am_magic_find(name, kind);
    if (!m)
        m = am_magic_find(name, AM_LINE | AM_CELL);
    char *text = NULL;
    if (m)
        text = am_magic_help(m, kind);
    else if (am_setting(c->interp, name))
        text = am_settings_help(c->interp);
    if (!text) {
        char *msg = am_unknown_magic_message(name, kind);
        free(name);
        am_status st = am_fail(c, "UnknownMagicError", "%s", msg);
        free(msg);
        return st;
    }
    am_sink_stream(c->out, "stdout", text);
    free(text);
    free(name);
    return AM_OK;
}

void am_magic_help_complete(const am_complete_ctx *cx, am_completions *out)
{
    if (!cx->in_positional || cx->key)
        return;
    const char *w = cx->args + cx->word_start;
    size_t wn = cx->cursor - cx->word_start;
    size_t pct = 0;
    while (pct < wn && pct < 2 && w[pct] == '%')
        pct++;
    for (const am_magic *m = am_magic_table; m->name; m++) {
        if (strncmp(m->name, w + pct, wn - pct) != 0)
            continue;
        if (pct == 2 && !(m->kinds & AM_CELL))
            continue;
        char *cand = am_asprintf("%.*s%s", (int)pct, w, m->name);
        am_completions_add(out, cand);
        free(cand);
    }
}

am_status am_magic_set(am_call *c)
{
    if (c->args->n_kw == 0) {
        char *text = am_settings_help(c->interp);
        am_sink_stream(c->out, "stdout", text);
        free(text);
        return AM_OK;
    }
    /* The values were checked against the settings' types before the cell
     * ran, so storing them cannot fail. */
    for (size_t i = 0; i < c->args->n_kw; i++) {
        char *err = NULL;
        if (am_setting_set(c->interp, c->args->kw[i].key, c->args->kw[i].value, &err) != 0) {
            am_status st = am_fail(c, "ValueError", "%s", err);
            free(err);
            return st;
        }
    }
    return AM_OK;
}

am_status am_magic_sleep(am_call *c)
{
    double left = am_float(c, "seconds");
    while (left > 0) {
        double step = left < 0.05 ? left : 0.05;
        if (am_sink_wait(c->out, step))
            return AM_INTERRUPTED;
        left -= step;
    }
    return am_sink_should_stop(c->out) ? AM_INTERRUPTED : AM_OK;
}

am_status am_magic_echo(am_call *c)
{
    const char *text = c->is_cell ? c->body : (c->positional ? c->positional : "");
    const char *to = am_enum(c, "to");
    const char *id = am_given(c, "display_id") ? am_string(c, "display_id") : NULL;
    bool update = am_bool(c, "update");
    if (update && !id)
        return am_fail(c, "ValueError", "update=true needs display_id=NAME of an earlier display");
    if (strcmp(to, "stdout") == 0 || strcmp(to, "stderr") == 0) {
        size_t n = strlen(text);
        if (n == 0 || text[n - 1] != '\n') {
            char *line = am_asprintf("%s\n", text);
            am_sink_stream(c->out, to, line);
            free(line);
        } else {
            am_sink_stream(c->out, to, text);
        }
        return AM_OK;
    }
    if (strcmp(to, "page") == 0) {
        am_sink_page(c->out, text);
        return AM_OK;
    }
    am_bundle *b = am_bundle_new();
    am_bundle_text(b, "text/plain", text);
    am_bundle_meta_str(b, NULL, "actmax_magic", "echo");
    if (strcmp(to, "result") == 0)
        am_sink_result(c->out, b);
    else if (update)
        am_sink_update(c->out, b, id);
    else
        am_sink_display(c->out, b, id);
    am_bundle_free(b);
    return AM_OK;
}

am_status am_magic_clear(am_call *c)
{
    am_sink_clear(c->out, am_bool(c, "wait"));
    return AM_OK;
}
