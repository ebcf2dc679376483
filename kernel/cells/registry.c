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

size_t mg_keys_count(const mg_key *keys)
{
    size_t n = 0;
    while (keys && keys[n].name)
        n++;
    return n;
}

const mg_key *mg_keys_find(const mg_key *keys, const char *name, size_t *index)
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

static void fmt_num(mg_str *s, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        mg_str_addf(s, "%.0f", v);
    else
        mg_str_addf(s, "%g", v);
}

/* "an integer from 1 to 100000", "a number >= 0", ... */
static void describe(mg_str *s, const mg_key *k)
{
    switch (k->type) {
    case MG_T_INT:
    case MG_T_FLOAT: {
        mg_str_add(s, k->type == MG_T_INT ? "an integer" : "a number");
        bool lo = isfinite(k->lo), hi = isfinite(k->hi);
        if (lo && hi) {
            mg_str_add(s, " from ");
            fmt_num(s, k->lo);
            mg_str_add(s, " to ");
            fmt_num(s, k->hi);
        } else if (lo) {
            mg_str_add(s, " >= ");
            fmt_num(s, k->lo);
        } else if (hi) {
            mg_str_add(s, " <= ");
            fmt_num(s, k->hi);
        }
        break;
    }
    case MG_T_BOOL: mg_str_add(s, "true or false"); break;
    case MG_T_STRING: mg_str_add(s, "text"); break;
    case MG_T_ENUM: {
        mg_str_add(s, "one of ");
        const char *p = k->choices;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            mg_str_addn(s, p, n);
            if (!bar)
                break;
            mg_str_add(s, ", ");
            p = bar + 1;
        }
        break;
    }
    }
}

const char *mg_type_name(const mg_key *k)
{
    switch (k->type) {
    case MG_T_INT: return "INT";
    case MG_T_FLOAT: return "FLOAT";
    case MG_T_BOOL: return "BOOL";
    case MG_T_STRING: return "TEXT";
    case MG_T_ENUM: return k->choices;
    }
    return "?";
}

static char *value_error(const mg_key *k, const char *text, const char *what, const char *extra)
{
    mg_str s = MG_STR_INIT;
    mg_str_addf(&s, "%s=%s %s: expected ", k->name, text, what);
    describe(&s, k);
    if (extra)
        mg_str_add(&s, extra);
    return mg_str_steal(&s);
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
    return mg_strndup(p, bar ? (size_t)(bar - p) : strlen(p));
}

int mg_value_parse(const mg_key *k, const char *text, mg_value *out, char **err)
{
    mg_value v;
    memset(&v, 0, sizeof v);
    v.set = true;
    switch (k->type) {
    case MG_T_INT: {
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
    case MG_T_FLOAT: {
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
    case MG_T_BOOL: {
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
    case MG_T_STRING: v.s = mg_strdup(text); break;
    case MG_T_ENUM: {
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
                owned[n] = mg_strndup(p, bar ? (size_t)(bar - p) : strlen(p));
                cands[n] = owned[n];
                n++;
                if (!bar)
                    break;
                p = bar + 1;
            }
            const char *best = mg_closest(text, cands, n);
            char *extra = best ? mg_asprintf(" (did you mean %s?)", best) : NULL;
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
    mg_value_clear(out);
    *out = v;
    return 0;
}

void mg_value_clear(mg_value *v)
{
    free(v->s);
    memset(v, 0, sizeof *v);
}

void mg_value_copy(mg_value *dst, const mg_value *src)
{
    mg_value_clear(dst);
    *dst = *src;
    dst->s = src->s ? mg_strdup(src->s) : NULL;
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

char *mg_value_format(const mg_key *k, const mg_value *v)
{
    if (!v->set)
        return mg_strdup("(unset)");
    mg_str s = MG_STR_INIT;
    switch (k->type) {
    case MG_T_INT: mg_str_addf(&s, "%lld", v->i); break;
    case MG_T_FLOAT: {
        char buf[64];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v->f);
            if (strtod(buf, NULL) == v->f)
                break;
        }
        mg_str_add(&s, buf);
        break;
    }
    case MG_T_BOOL: mg_str_add(&s, v->b ? "true" : "false"); break;
    case MG_T_ENUM: mg_str_add(&s, v->s ? v->s : ""); break;
    case MG_T_STRING:
        if (!needs_quotes(v->s ? v->s : "")) {
            mg_str_add(&s, v->s);
            break;
        }
        mg_str_addc(&s, '"');
        for (const char *p = v->s ? v->s : ""; *p; p++) {
            if (*p == '"' || *p == '\\')
                mg_str_addc(&s, '\\'), mg_str_addc(&s, *p);
            else if (*p == '\n')
                mg_str_add(&s, "\\n");
            else if (*p == '\t')
                mg_str_add(&s, "\\t");
            else
                mg_str_addc(&s, *p);
        }
        mg_str_addc(&s, '"');
        break;
    }
    return mg_str_steal(&s);
}

/* ---- registry ---------------------------------------------------------- */

const mg_magic *mg_magic_find(const mg_registry *reg, const char *name, unsigned kind)
{
    for (const mg_magic *m = reg->magics; m->name; m++)
        if ((m->kinds & kind) && strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

static void key_lines(mg_str *s, const mg_key *keys, const mg_interp *it)
{
    size_t w = 0;
    for (size_t i = 0; keys && keys[i].name; i++) {
        size_t n = strlen(keys[i].name) + 1 + strlen(mg_type_name(&keys[i]));
        if (n > w)
            w = n;
    }
    for (size_t i = 0; keys && keys[i].name; i++) {
        const mg_key *k = &keys[i];
        char *lhs = mg_asprintf("%s=%s", k->name, mg_type_name(k));
        mg_str_addf(s, "  %-*s  %s", (int)w, lhs, k->doc);
        free(lhs);
        if (it) {
            char *cur = mg_value_format(k, mg_setting(it, k->name));
            mg_str_addf(s, " [now %s]", cur);
            free(cur);
        }
        mg_str_add(s, " (");
        if (k->def)
            mg_str_addf(s, "default %s; ", k->def);
        describe(s, k);
        mg_str_add(s, ")\n");
    }
}

static void usage_line(mg_str *s, const mg_magic *m, unsigned kind)
{
    mg_str_addf(s, "%s%s", kind == MG_CELL ? "%%" : "%", m->name);
    if (m->positional)
        mg_str_addf(s, m->positional_required ? " %s" : " [%s]", m->positional);
    for (size_t i = 0; m->keys && m->keys[i].name; i++)
        mg_str_addf(s, " [%s=%s]", m->keys[i].name, mg_type_name(&m->keys[i]));
    if (kind == MG_CELL)
        mg_str_add(s, "\n<body>");
}

char *mg_magic_help(const mg_magic *m, unsigned kind)
{
    mg_str s = MG_STR_INIT;
    if (!(m->kinds & kind))
        kind = (m->kinds & MG_LINE) ? MG_LINE : MG_CELL;
    usage_line(&s, m, kind);
    mg_str_addf(&s, "\n\n%s\n", m->summary);
    if (m->help && m->help[0])
        mg_str_addf(&s, "\n%s\n", m->help);
    if (m->positional)
        mg_str_addf(&s, "\nBare argument:\n  %s  %s\n", m->positional,
                    m->positional_doc ? m->positional_doc : "");
    if (m->keys && m->keys[0].name) {
        mg_str_add(&s, "\nKeys:\n");
        key_lines(&s, m->keys, NULL);
    }
    if ((m->kinds & MG_LINE) && (m->kinds & MG_CELL))
        mg_str_addf(&s, "\nAlso usable as %s%s.\n", kind == MG_CELL ? "%" : "%%", m->name);
    return mg_str_steal(&s);
}

char *mg_settings_help(const mg_interp *it)
{
    mg_str s = MG_STR_INIT;
    mg_str_add(&s, "Session defaults (change with %set key=value):\n");
    key_lines(&s, mg_interp_registry(it)->settings, it);
    return mg_str_steal(&s);
}

static void list_kind(const mg_registry *reg, mg_str *s, unsigned kind, const char *title)
{
    size_t w = 0;
    for (const mg_magic *m = reg->magics; m->name; m++)
        if ((m->kinds & kind) && strlen(m->name) > w)
            w = strlen(m->name);
    bool any = false;
    for (const mg_magic *m = reg->magics; m->name; m++) {
        if (!(m->kinds & kind))
            continue;
        if (!any)
            mg_str_addf(s, "%s:\n", title);
        any = true;
        mg_str_addf(s, "  %s%-*s  %s\n", kind == MG_CELL ? "%%" : "%", (int)w, m->name, m->summary);
    }
}

char *mg_lsmagic_text(const mg_registry *reg)
{
    mg_str s = MG_STR_INIT;
    list_kind(reg, &s, MG_LINE, "Line magics");
    list_kind(reg, &s, MG_CELL, "Cell magics");
    mg_str_add(&s, "Type %help NAME or NAME? for a magic's keys.\n");
    return mg_str_steal(&s);
}

char *mg_help_overview(const mg_registry *reg)
{
    mg_str s = MG_STR_INIT;
    mg_str_add(&s, "actmax cells are magics, not Python:\n"
                   "  %name [ARG] key=value ...   one line magic per line; lines run in order\n"
                   "                              and the cell stops at the first error\n"
                   "  %%name [ARG] key=value ...  a cell magic on the first line; the rest of\n"
                   "                              the cell is its body\n"
                   "  name?  %name?  %%name?      help for one magic (also %help name)\n"
                   "Values may be quoted ('a b' or \"a b\", with backslash escapes); '#' starts\n"
                   "a comment. %set key=value sets session defaults used when a magic's key\n"
                   "of the same name is not given.\n\n");
    char *ls = mg_lsmagic_text(reg);
    mg_str_add(&s, ls);
    free(ls);
    return mg_str_steal(&s);
}

/* Markdown table cells: a '|' would end the cell. */
static void md_cell(mg_str *s, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '|')
            mg_str_add(s, "\\|");
        else if (*p == '\n')
            mg_str_addc(s, ' ');
        else
            mg_str_addc(s, *p);
    }
}

static void md_keys(mg_str *s, const char *title, const mg_key *keys)
{
    mg_str_addf(s, "<!-- keys:%s -->\n", title);
    mg_str_add(s, "| key | default | meaning |\n|---|---|---|\n");
    for (size_t i = 0; keys && keys[i].name; i++) {
        const mg_key *k = &keys[i];
        mg_str d = MG_STR_INIT;
        describe(&d, k);
        mg_str_addf(s, "| `%s` | ", k->name);
        if (k->def && k->def[0])
            mg_str_addf(s, "`%s`", k->def);
        else
            mg_str_add(s, "none");
        mg_str_add(s, " | ");
        md_cell(s, k->doc);
        mg_str_add(s, " (");
        md_cell(s, mg_str_cstr(&d));
        mg_str_add(s, ") |\n");
        mg_str_free(&d);
    }
    mg_str_addf(s, "<!-- /keys:%s -->\n", title);
}

char *mg_registry_markdown(const mg_registry *reg)
{
    mg_str s = MG_STR_INIT;
    md_keys(&s, "set", reg->settings);
    for (const mg_magic *m = reg->magics; m->name; m++)
        if (m->keys && m->keys[0].name && m->keys != reg->settings)
            md_keys(&s, m->name, m->keys);
    return mg_str_steal(&s);
}

int mg_registry_check(const mg_registry *reg, char **err)
{
    const mg_key *lists[256];
    const char *owners[256];
    size_t nl = 0;
    lists[nl] = reg->settings;
    owners[nl++] = "%set";
    for (const mg_magic *m = reg->magics; m->name; m++) {
        if (!m->summary || !m->run || !(m->kinds & (MG_LINE | MG_CELL))) {
            *err = mg_asprintf("magic %s lacks a summary, a run function or a kind", m->name);
            return -1;
        }
        for (const char *p = m->name; *p; p++) {
            if (!mg_is_ident_char((unsigned char)*p)) {
                *err = mg_asprintf("magic name '%s' is not an identifier", m->name);
                return -1;
            }
        }
        for (const mg_magic *o = reg->magics; o < m; o++) {
            if (strcmp(o->name, m->name) == 0 && (o->kinds & m->kinds)) {
                *err = mg_asprintf("magic %s registered twice", m->name);
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
            const mg_key *k = &lists[l][i];
            if (!k->doc || (k->type == MG_T_ENUM && !k->choices)) {
                *err = mg_asprintf("%s: key %s lacks a doc or choices", owners[l], k->name);
                return -1;
            }
            if (k->def) {
                mg_value v;
                memset(&v, 0, sizeof v);
                char *e = NULL;
                if (mg_value_parse(k, k->def, &v, &e) != 0) {
                    *err = mg_asprintf("%s: bad default: %s", owners[l], e);
                    free(e);
                    return -1;
                }
                mg_value_clear(&v);
            }
        }
    }
    return 0;
}

/* ---- completions ------------------------------------------------------- */

void mg_completions_add(mg_completions *c, const char *candidate)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i], candidate) == 0)
            return;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->v = mg_xrealloc(c->v, c->cap * sizeof *c->v);
    }
    c->v[c->n++] = mg_strdup(candidate);
}

void mg_completions_from(mg_completions *c, const mg_complete_ctx *cx, size_t args_offset)
{
    if (args_offset > cx->len)
        args_offset = cx->len;
    c->start = cx->base + args_offset;
}

void mg_completions_free(mg_completions *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i]);
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* ---- call access ------------------------------------------------------- */

static const mg_value *call_value(const mg_call *c, const char *key)
{
    size_t idx;
    if (!mg_keys_find(c->magic->keys, key, &idx)) {
        mg_log("bug: %%%s asked for undeclared key '%s'", c->magic->name, key);
        return NULL;
    }
    return &c->values[idx];
}

long long mg_int(const mg_call *c, const char *key)
{
    const mg_value *v = call_value(c, key);
    return v ? v->i : 0;
}

double mg_float(const mg_call *c, const char *key)
{
    const mg_value *v = call_value(c, key);
    return v ? v->f : 0.0;
}

bool mg_bool(const mg_call *c, const char *key)
{
    const mg_value *v = call_value(c, key);
    return v ? v->b : false;
}

const char *mg_string(const mg_call *c, const char *key)
{
    const mg_value *v = call_value(c, key);
    return v && v->s ? v->s : "";
}

const char *mg_enum(const mg_call *c, const char *key)
{
    return mg_string(c, key);
}

bool mg_given(const mg_call *c, const char *key)
{
    const mg_value *v = call_value(c, key);
    return v ? v->given : false;
}

mg_status mg_fail(const mg_call *c, const char *ename, const char *fmt, ...)
{
    mg_str s = MG_STR_INIT;
    va_list ap;
    va_start(ap, fmt);
    mg_str_vaddf(&s, fmt, ap);
    va_end(ap);
    char *tb0 = mg_asprintf("%s: %s", ename, mg_str_cstr(&s));
    char *tb1 =
        mg_asprintf("  in %s%s (line %zu)", c->is_cell ? "%%" : "%", c->magic->name, c->line);
    const char *tb[2] = {tb0, tb1};
    mg_sink_error(c->out, ename, mg_str_cstr(&s), tb, 2);
    free(tb0);
    free(tb1);
    mg_str_free(&s);
    return MG_ERROR;
}
