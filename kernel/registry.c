/* Typed keys, registry look-ups and help texts. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "magic.h"
#include "util.h"

/* ---- values ------------------------------------------------------------ */

size_t am_keys_count(const am_key *keys)
{
    size_t n = 0;
    while (keys && keys[n].name)
        n++;
    return n;
}

const am_key *am_keys_find(const am_key *keys, const char *name, size_t *index)
{
    for (size_t i = 0; keys && keys[i].name; i++) {
        if (strcmp(keys[i].name, name) == 0) {
            if (index)
                *index = i;
            return &keys[i];
        }
    }
    return NULL;
}

static void fmt_num(am_str *s, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        am_str_addf(s, "%.0f", v);
    else
        am_str_addf(s, "%g", v);
}

/* "an integer from 1 to 100000", "a number >= 0", ... */
static void describe(am_str *s, const am_key *k)
{
    switch (k->type) {
    case AM_T_INT:
    case AM_T_FLOAT: {
        am_str_add(s, k->type == AM_T_INT ? "an integer" : "a number");
        bool lo = isfinite(k->lo), hi = isfinite(k->hi);
        if (lo && hi) {
            am_str_add(s, " from ");
            fmt_num(s, k->lo);
            am_str_add(s, " to ");
            fmt_num(s, k->hi);
        } else if (lo) {
            am_str_add(s, " >= ");
            fmt_num(s, k->lo);
        } else if (hi) {
            am_str_add(s, " <= ");
            fmt_num(s, k->hi);
        }
        break;
    }
    case AM_T_BOOL:
        am_str_add(s, "true or false");
        break;
    case AM_T_STRING:
        am_str_add(s, "text");
        break;
    case AM_T_ENUM: {
        am_str_add(s, "one of ");
        const char *p = k->choices;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            am_str_addn(s, p, n);
            if (!bar)
                break;
            am_str_add(s, ", ");
            p = bar + 1;
        }
        break;
    }
    }
}

const char *am_type_name(const am_key *k)
{
    switch (k->type) {
    case AM_T_INT: return "INT";
    case AM_T_FLOAT: return "FLOAT";
    case AM_T_BOOL: return "BOOL";
    case AM_T_STRING: return "TEXT";
    case AM_T_ENUM: return k->choices;
    }
    return "?";
}

static char *value_error(const am_key *k, const char *text, const char *what, const char *extra)
{
    am_str s = AM_STR_INIT;
    am_str_addf(&s, "%s=%s %s: expected ", k->name, text, what);
    describe(&s, k);
    if (extra)
        am_str_add(&s, extra);
    return am_str_steal(&s);
}

static int enum_index(const char *choices, const char *text, bool nocase)
{
    int idx = 0;
    const char *p = choices;
    size_t tn = strlen(text);
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == tn && (nocase ? strncasecmp(p, text, n) : strncmp(p, text, n)) == 0)
            return idx;
        if (!bar)
            return -1;
        p = bar + 1;
        idx++;
    }
}

static char *enum_choice(const char *choices, int idx)
{
    const char *p = choices;
    for (int i = 0; i < idx; i++)
        p = strchr(p, '|') + 1;
    const char *bar = strchr(p, '|');
    return am_strndup(p, bar ? (size_t)(bar - p) : strlen(p));
}

int am_value_parse(const am_key *k, const char *text, am_value *out, char **err)
{
    am_value v;
    memset(&v, 0, sizeof v);
    v.set = true;
    switch (k->type) {
    case AM_T_INT: {
        char *end = NULL;
        errno = 0;
        long long x = strtoll(text, &end, 10);
        if (!text[0] || isspace((unsigned char)text[0]) || *end || errno == ERANGE) {
            *err = value_error(k, text, "is not valid", NULL);
            return -1;
        }
        if ((double)x < k->lo || (double)x > k->hi) {
            *err = value_error(k, text, "is out of range", NULL);
            return -1;
        }
        v.i = x;
        v.f = (double)x;
        break;
    }
    case AM_T_FLOAT: {
        char *end = NULL;
        errno = 0;
        double x = strtod(text, &end);
        if (!text[0] || isspace((unsigned char)text[0]) || *end || !isfinite(x)) {
            *err = value_error(k, text, "is not valid", NULL);
            return -1;
        }
        if (x < k->lo || x > k->hi) {
            *err = value_error(k, text, "is out of range", NULL);
            return -1;
        }
        v.f = x;
        break;
    }
    case AM_T_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"};
        static const char *const no[] = {"false", "no", "off", "0"};
        bool found = false;
        for (int i = 0; i < 4 && !found; i++) {
            if (strcasecmp(text, yes[i]) == 0)
                v.b = true, found = true;
            else if (strcasecmp(text, no[i]) == 0)
                v.b = false, found = true;
        }
        if (!found) {
            *err = value_error(k, text, "is not valid", NULL);
            return -1;
        }
        break;
    }
    case AM_T_STRING:
        v.s = am_strdup(text);
        break;
    case AM_T_ENUM: {
        int idx = enum_index(k->choices, text, false);
        if (idx < 0)
            idx = enum_index(k->choices, text, true);
        if (idx < 0) {
            /* Suggest the closest choice. */
            const char *cands[64];
            char *owned[64];
            size_t n = 0;
            for (const char *p = k->choices; n < 64;) {
                const char *bar = strchr(p, '|');
                owned[n] = am_strndup(p, bar ? (size_t)(bar - p) : strlen(p));
                cands[n] = owned[n];
                n++;
                if (!bar)
                    break;
                p = bar + 1;
            }
            const char *best = am_closest(text, cands, n);
            char *extra = best ? am_asprintf(" (did you mean %s?)", best) : NULL;
            *err = value_error(k, text, "is not valid", extra);
            free(extra);
            for (size_t i = 0; i < n; i++)
                free(owned[i]);
            return -1;
        }
        v.e = idx;
        v.s = enum_choice(k->choices, idx);
        break;
    }
    }
    am_value_clear(out);
    *out = v;
    return 0;
}

void am_value_clear(am_value *v)
{
    free(v->s);
    memset(v, 0, sizeof *v);
}

void am_value_copy(am_value *dst, const am_value *src)
{
    am_value_clear(dst);
    *dst = *src;
    dst->s = src->s ? am_strdup(src->s) : NULL;
}

static bool needs_quotes(const char *s)
{
    if (!s[0])
        return true;
    for (const char *p = s; *p; p++)
        if (isspace((unsigned char)*p) || strchr("'\"#\\[](){}=", *p))
            return true;
    return false;
}

char *am_value_format(const am_key *k, const am_value *v)
{
    if (!v->set)
        return am_strdup("(unset)");
    am_str s = AM_STR_INIT;
    switch (k->type) {
    case AM_T_INT: am_str_addf(&s, "%lld", v->i); break;
    case AM_T_FLOAT: {
        char buf[64];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v->f);
            if (strtod(buf, NULL) == v->f)
                break;
        }
        am_str_add(&s, buf);
        break;
    }
    case AM_T_BOOL: am_str_add(&s, v->b ? "true" : "false"); break;
    case AM_T_ENUM: am_str_add(&s, v->s ? v->s : ""); break;
    case AM_T_STRING:
        if (!needs_quotes(v->s ? v->s : "")) {
            am_str_add(&s, v->s);
            break;
        }
        am_str_addc(&s, '"');
        for (const char *p = v->s ? v->s : ""; *p; p++) {
            if (*p == '"' || *p == '\\')
                am_str_addc(&s, '\\'), am_str_addc(&s, *p);
            else if (*p == '\n')
                am_str_add(&s, "\\n");
            else if (*p == '\t')
                am_str_add(&s, "\\t");
            else
                am_str_addc(&s, *p);
        }
        am_str_addc(&s, '"');
        break;
    }
    return am_str_steal(&s);
}

/* ---- registry ---------------------------------------------------------- */

const am_magic *am_magic_find(const char *name, unsigned kind)
{
    for (const am_magic *m = am_magic_table; m->name; m++)
        if ((m->kinds & kind) && strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

static void key_lines(am_str *s, const am_key *keys, const am_interp *it)
{
    size_t w = 0;
    for (size_t i = 0; keys && keys[i].name; i++) {
        size_t n = strlen(keys[i].name) + 1 + strlen(am_type_name(&keys[i]));
        if (n > w)
            w = n;
    }
    for (size_t i = 0; keys && keys[i].name; i++) {
        const am_key *k = &keys[i];
        char *lhs = am_asprintf("%s=%s", k->name, am_type_name(k));
        am_str_addf(s, "  %-*s  %s", (int)w, lhs, k->doc);
        free(lhs);
        if (it) {
            char *cur = am_value_format(k, am_setting(it, k->name));
            am_str_addf(s, " [now %s]", cur);
            free(cur);
        }
        am_str_add(s, " (");
        if (k->def)
            am_str_addf(s, "default %s; ", k->def);
        describe(s, k);
        am_str_add(s, ")\n");
    }
}

static void usage_line(am_str *s, const am_magic *m, unsigned kind)
{
    am_str_addf(s, "%s%s", kind == AM_CELL ? "%%" : "%", m->name);
    if (m->positional)
        am_str_addf(s, m->positional_required ? " %s" : " [%s]", m->positional);
    for (size_t i = 0; m->keys && m->keys[i].name; i++)
        am_str_addf(s, " [%s=%s]", m->keys[i].name, am_type_name(&m->keys[i]));
    if (kind == AM_CELL)
        am_str_add(s, "\n<body>");
}

char *am_magic_help(const am_magic *m, unsigned kind)
{
    am_str s = AM_STR_INIT;
    if (!(m->kinds & kind))
        kind = (m->kinds & AM_LINE) ? AM_LINE : AM_CELL;
    usage_line(&s, m, kind);
    am_str_addf(&s, "\n\n%s\n", m->summary);
    if (m->help && m->help[0])
        am_str_addf(&s, "\n%s\n", m->help);
    if (m->positional)
        am_str_addf(&s, "\nBare argument:\n  %s  %s\n", m->positional,
                    m->positional_doc ? m->positional_doc : "");
    if (m->keys && m->keys[0].name) {
        am_str_add(&s, "\nKeys:\n");
        key_lines(&s, m->keys, NULL);
    }
    if ((m->kinds & AM_LINE) && (m->kinds & AM_CELL))
        am_str_addf(&s, "\nAlso usable as %s%s.\n", kind == AM_CELL ? "%" : "%%", m->name);
    return am_str_steal(&s);
}

char *am_settings_help(const am_interp *it)
{
    am_str s = AM_STR_INIT;
    am_str_add(&s, "Session defaults (change with %set key=value):\n");
    key_lines(&s, am_settings_table, it);
    return am_str_steal(&s);
}

static void list_kind(am_str *s, unsigned kind, const char *title)
{
    size_t w = 0;
    for (const am_magic *m = am_magic_table; m->name; m++)
        if ((m->kinds & kind) && strlen(m->name) > w)
            w = strlen(m->name);
    bool any = false;
    for (const am_magic *m = am_magic_table; m->name; m++) {
        if (!(m->kinds & kind))
            continue;
        if (!any)
            am_str_addf(s, "%s:\n", title);
        any = true;
        am_str_addf(s, "  %s%-*s  %s\n", kind == AM_CELL ? "%%" : "%", (int)w, m->name,
                    m->summary);
    }
}

char *am_lsmagic_text(void)
{
    am_str s = AM_STR_INIT;
    list_kind(&s, AM_LINE, "Line magics");
    list_kind(&s, AM_CELL, "Cell magics");
    am_str_add(&s, "Type %help NAME or NAME? for a magic's keys.\n");
    return am_str_steal(&s);
}

char *am_help_overview(void)
{
    am_str s = AM_STR_INIT;
    am_str_add(&s,
               "actmax cells are magics, not Python:\n"
               "  %name [ARG] key=value ...   one line magic per line; lines run in order\n"
               "                              and the cell stops at the first error\n"
               "  %%name [ARG] key=value ...  a cell magic on the first line; the rest of\n"
               "                              the cell is its body\n"
               "  name?  %name?  %%name?      help for one magic (also %help name)\n"
               "Values may be quoted ('a b' or \"a b\", with backslash escapes); '#' starts\n"
               "a comment. %set key=value sets session defaults used when a magic's key\n"
               "of the same name is not given.\n\n");
    char *ls = am_lsmagic_text();
    am_str_add(&s, ls);
    free(ls);
    return am_str_steal(&s);
}

int am_registry_check(char **err)
{
    const am_key *lists[256];
    const char *owners[256];
    size_t nl = 0;
    lists[nl] = am_settings_table;
    owners[nl++] = "%set";
    for (const am_magic *m = am_magic_table; m->name; m++) {
        if (!m->summary || !m->run || !(m->kinds & (AM_LINE | AM_CELL))) {
            *err = am_asprintf("magic %s lacks a summary, a run function or a kind", m->name);
            return -1;
        }
        for (const char *p = m->name; *p; p++) {
            if (!am_is_ident_char((unsigned char)*p)) {
                *err = am_asprintf("magic name '%s' is not an identifier", m->name);
                return -1;
            }
        }
        for (const am_magic *o = am_magic_table; o < m; o++) {
            if (strcmp(o->name, m->name) == 0 && (o->kinds & m->kinds)) {
                *err = am_asprintf("magic %s registered twice", m->name);
                return -1;
            }
        }
        if (nl < 256) {
            lists[nl] = m->keys;
            owners[nl++] = m->name;
        }
    }
    for (size_t l = 0; l < nl; l++) {
        for (size_t i = 0; lists[l] && lists[l][i].name; i++) {
            const am_key *k = &lists[l][i];
            if (!k->doc || (k->type == AM_T_ENUM && !k->choices)) {
                *err = am_asprintf("%s: key %s lacks a doc or choices", owners[l], k->name);
                return -1;
            }
            if (k->def) {
                am_value v;
                memset(&v, 0, sizeof v);
                char *e = NULL;
                if (am_value_parse(k, k->def, &v, &e) != 0) {
                    *err = am_asprintf("%s: bad default: %s", owners[l], e);
                    free(e);
                    return -1;
                }
                am_value_clear(&v);
            }
        }
    }
    return 0;
}

/* ---- completions ------------------------------------------------------- */

void am_completions_add(am_completions *c, const char *candidate)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i], candidate) == 0)
            return;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->v = am_xrealloc(c->v, c->cap * sizeof *c->v);
    }
    c->v[c->n++] = am_strdup(candidate);
}

void am_completions_from(am_completions *c, const am_complete_ctx *cx, size_t args_offset)
{
    if (args_offset > cx->len)
        args_offset = cx->len;
    c->start = cx->base + args_offset;
}

void am_completions_free(am_completions *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i]);
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* ---- call access ------------------------------------------------------- */

static const am_value *call_value(const am_call *c, const char *key)
{
    size_t idx;
    if (!am_keys_find(c->magic->keys, key, &idx)) {
        am_log("bug: %%%s asked for undeclared key '%s'", c->magic->name, key);
        return NULL;
    }
    return &c->values[idx];
}

long long am_int(const am_call *c, const char *key)
{
    const am_value *v = call_value(c, key);
    return v ? v->i : 0;
}

double am_float(const am_call *c, const char *key)
{
    const am_value *v = call_value(c, key);
    return v ? v->f : 0.0;
}

bool am_bool(const am_call *c, const char *key)
{
    const am_value *v = call_value(c, key);
    return v ? v->b : false;
}

const char *am_string(const am_call *c, const char *key)
{
    const am_value *v = call_value(c, key);
    return v && v->s ? v->s : "";
}

const char *am_enum(const am_call *c, const char *key)
{
    return am_string(c, key);
}

bool am_given(const am_call *c, const char *key)
{
    const am_value *v = call_value(c, key);
    return v ? v->given : false;
}

am_status am_fail(const am_call *c, const char *ename, const char *fmt, ...)
{
    am_str s = AM_STR_INIT;
    va_list ap;
    va_start(ap, fmt);
    am_str_vaddf(&s, fmt, ap);
    va_end(ap);
    char *tb0 = am_asprintf("%s: %s", ename, am_str_cstr(&s));
    char *tb1 = am_asprintf("  in %s%s (line %zu)", c->is_cell ? "%%" : "%", c->magic->name,
                            c->line);
    const char *tb[2] = {tb0, tb1};
    am_sink_error(c->out, ename, am_str_cstr(&s), tb, 2);
    free(tb0);
    free(tb1);
    am_str_free(&s);
    return AM_ERROR;
}
