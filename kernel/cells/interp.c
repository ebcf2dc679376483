/* The interpreter: splits a cell into magic invocations, checks all of them
 * (syntax, names, keys and values) before anything runs, then runs them in
 * order through an output sink. Also completion, inspection and
 * is_complete, which share the same line scanning. */
#include <stdlib.h>
#include <string.h>

#include "magic.h"
#include "utf8.h"
#include "util.h"

struct mg_interp {
    const mg_registry *reg;
    mg_value *settings; /* parallel to reg->settings */
    size_t n_settings;
    void *state; /* the registry's state (engine session); created on first use */
};

void *mg_interp_state(mg_interp *it)
{
    if (!it->state && it->reg->state_new)
        it->state = it->reg->state_new();
    return it->state;
}

const mg_registry *mg_interp_registry(const mg_interp *it)
{
    return it->reg;
}

mg_interp *mg_interp_new(const mg_registry *reg)
{
    /* A bad table entry (a default outside its range, a duplicate name) is
     * a programming error: say so loudly. */
    char *bad = NULL;
    if (mg_registry_check(reg, &bad) != 0) {
        mg_log("magic table: %s", bad);
        free(bad);
    }
    mg_interp *it = mg_xcalloc(1, sizeof *it);
    it->reg = reg;
    it->n_settings = mg_keys_count(reg->settings);
    it->settings = mg_xcalloc(it->n_settings ? it->n_settings : 1, sizeof *it->settings);
    for (size_t i = 0; i < it->n_settings; i++) {
        const mg_key *k = &reg->settings[i];
        char *err = NULL;
        if (k->def && mg_value_parse(k, k->def, &it->settings[i], &err) != 0) {
            mg_log("bad default for setting %s: %s", k->name, err);
            free(err);
        }
    }
    return it;
}

void mg_interp_free(mg_interp *it)
{
    if (!it)
        return;
    for (size_t i = 0; i < it->n_settings; i++)
        mg_value_clear(&it->settings[i]);
    free(it->settings);
    if (it->state && it->reg->state_free)
        it->reg->state_free(it->state);
    free(it);
}

const mg_value *mg_setting(const mg_interp *it, const char *name)
{
    size_t idx;
    if (!mg_keys_find(it->reg->settings, name, &idx))
        return NULL;
    return &it->settings[idx];
}

int mg_setting_set(mg_interp *it, const char *name, const char *text, char **err)
{
    size_t idx;
    const mg_key *k = mg_keys_find(it->reg->settings, name, &idx);
    if (!k) {
        *err = mg_asprintf("unknown setting '%s'", name);
        return -1;
    }
    return mg_value_parse(k, text, &it->settings[idx], err);
}

/* ---- scanning ---------------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

typedef struct line_span {
    size_t start, end; /* [start, end) without the newline and a trailing '\r' */
    size_t text;       /* first non-blank byte */
} line_span;

static line_span line_at(const char *code, size_t len, size_t pos)
{
    line_span l;
    l.start = pos;
    l.end = pos;
    while (l.end < len && code[l.end] != '\n')
        l.end++;
    if (l.end > l.start && code[l.end - 1] == '\r')
        l.end--;
    l.text = l.start;
    while (l.text < l.end && is_blank(code[l.text]))
        l.text++;
    return l;
}

/* Help forms: ?name ??name name? name?? %name? %%name? ?%name, and ? or %?
 * alone for the overview. name is NULL for the overview. */
static bool parse_help(const char *s, size_t n, char **name, unsigned *kind)
{
    size_t e = n;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '#') {
            e = i;
            break;
        }
    while (e > 0 && is_blank(s[e - 1]))
        e--;
    if (e == 0)
        return false;
    size_t a = 0, b = e;
    if (s[0] == '?') {
        while (a < b && s[a] == '?' && a < 2)
            a++;
    } else if (s[e - 1] == '?') {
        while (b > a && s[b - 1] == '?' && e - b < 2)
            b--;
    } else {
        return false;
    }
    *kind = MG_LINE;
    if (a < b && s[a] == '%') {
        a++;
        if (a < b && s[a] == '%') {
            a++;
            *kind = MG_CELL;
        }
    }
    if (a == b) {
        *name = NULL;
        return true;
    }
    if (!mg_is_ident_start((unsigned char)s[a]) && !(s[a] >= '0' && s[a] <= '9'))
        return false;
    for (size_t i = a; i < b; i++)
        if (!mg_is_ident_char((unsigned char)s[i]))
            return false;
    *name = mg_strndup(s + a, b - a);
    return true;
}

/* ---- parsing a cell ---------------------------------------------------- */

typedef enum { ST_MAGIC, ST_HELP } st_kind;

typedef struct stmt {
    st_kind kind;
    const mg_magic *magic; /* ST_HELP: NULL for the overview */
    unsigned mkind;        /* MG_LINE or MG_CELL */
    size_t line;           /* 1-based */
    char *help_name;       /* ST_HELP: name as typed (for settings) */
    mg_args args;
    mg_value *values; /* given values, one per key */
    size_t n_values;
    const char *body; /* cell magic body (inside code) */
} stmt;

typedef struct cell {
    stmt *v;
    size_t n, cap;
} cell;

typedef struct perr {
    const char *ename;
    char *evalue;
    size_t line;
    char *line_text;
    bool open_end; /* the code ended inside a line that goes on */
} perr;

static void cell_free(cell *c)
{
    for (size_t i = 0; i < c->n; i++) {
        stmt *s = &c->v[i];
        free(s->help_name);
        mg_args_free(&s->args);
        for (size_t k = 0; k < s->n_values; k++)
            mg_value_clear(&s->values[k]);
        free(s->values);
    }
    free(c->v);
    memset(c, 0, sizeof *c);
}

static stmt *cell_push(cell *c)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->v = mg_xrealloc(c->v, c->cap * sizeof *c->v);
    }
    stmt *s = &c->v[c->n++];
    memset(s, 0, sizeof *s);
    return s;
}

static void perr_free(perr *e)
{
    free(e->evalue);
    free(e->line_text);
    memset(e, 0, sizeof *e);
}

static int fail_at(perr *e, const char *ename, size_t line, const char *t, size_t tn, char *evalue)
{
    e->ename = ename;
    e->evalue = evalue;
    e->line = line;
    e->line_text = mg_strndup(t, tn);
    return -1;
}

static char *valid_keys(const mg_key *keys)
{
    mg_str s = MG_STR_INIT;
    for (size_t i = 0; keys && keys[i].name; i++)
        mg_str_addf(&s, "%s%s", i ? ", " : "", keys[i].name);
    return mg_str_steal(&s);
}

char *mg_unknown_magic_message(const mg_registry *reg, const char *name, unsigned kind)
{
    const char *pfx = kind == MG_CELL ? "%%" : "%";
    const mg_magic *other = mg_magic_find(reg, name, kind == MG_CELL ? MG_LINE : MG_CELL);
    if (other) {
        if (kind == MG_CELL)
            return mg_asprintf("%%%%%s is not a cell magic; %%%s is a line magic, write it "
                               "as %%%s on its own line",
                               name, name, name);
        return mg_asprintf("%%%s is a cell magic: put %%%%%s on the first line of the cell "
                           "and its body below",
                           name, name);
    }
    const char *cands[512];
    size_t n = 0;
    for (const mg_magic *m = reg->magics; m->name && n < 512; m++)
        if (m->kinds & kind)
            cands[n++] = m->name;
    const char *best = mg_closest(name, cands, n);
    if (best)
        return mg_asprintf("unknown magic %s%s; did you mean %s%s? (%%lsmagic lists them all)", pfx,
                           name, pfx, best);
    return mg_asprintf("unknown magic %s%s (%%lsmagic lists them all)", pfx, name);
}

/* Checks args against the magic's positional and keys, filling s->values. */
static char *check_args(stmt *s)
{
    const mg_magic *m = s->magic;
    const char *pfx = s->mkind == MG_CELL ? "%%" : "%";
    if (s->args.positional && !m->positional) {
        char *keys = valid_keys(m->keys);
        char *msg;
        if (keys[0])
            msg = mg_asprintf("%s%s takes no bare argument (got '%s'); valid keys: %s", pfx,
                              m->name, s->args.positional, keys);
        else
            msg =
                mg_asprintf("%s%s takes no arguments (got '%s')", pfx, m->name, s->args.positional);
        free(keys);
        return msg;
    }
    if (!s->args.positional && m->positional && m->positional_required)
        return mg_asprintf("%s%s needs %s: %s", pfx, m->name, m->positional,
                           m->positional_doc ? m->positional_doc : "");
    s->n_values = mg_keys_count(m->keys);
    s->values = mg_xcalloc(s->n_values ? s->n_values : 1, sizeof *s->values);
    for (size_t i = 0; i < s->args.n_kw; i++) {
        const mg_kwarg *kw = &s->args.kw[i];
        size_t idx;
        const mg_key *k = mg_keys_find(m->keys, kw->key, &idx);
        if (!k) {
            if (!m->keys || !m->keys[0].name)
                return mg_asprintf("%s%s takes no keys (got %s=%s)", pfx, m->name, kw->key,
                                   kw->value);
            const char *cands[256];
            size_t n = 0;
            for (size_t j = 0; m->keys[j].name && n < 256; j++)
                cands[n++] = m->keys[j].name;
            const char *best = mg_closest(kw->key, cands, n);
            char *keys = valid_keys(m->keys);
            char *msg;
            if (best)
                msg = mg_asprintf("%s%s has no key '%s' (did you mean %s?); valid keys: %s", pfx,
                                  m->name, kw->key, best, keys);
            else
                msg = mg_asprintf("%s%s has no key '%s'; valid keys: %s", pfx, m->name, kw->key,
                                  keys);
            free(keys);
            return msg;
        }
        char *err = NULL;
        if (mg_value_parse(k, kw->value, &s->values[idx], &err) != 0) {
            char *msg = mg_asprintf("%s%s: %s", pfx, m->name, err);
            free(err);
            return msg;
        }
        s->values[idx].given = true;
    }
    return NULL;
}

static const char NOT_MAGIC[] =
    "line %zu is not a magic. actmax cells are made of magics: one %%name key=value ... per "
    "line, or a cell magic (%%%%name on the first line, its body below). %%lsmagic lists the "
    "magics, %%help (or ?) explains the syntax and NAME? shows one magic's keys.";

/* The byte after the newline that ends the line at pos (len + 1 at the end). */
static size_t next_line(const char *code, size_t len, size_t pos)
{
    while (pos < len && code[pos] != '\n')
        pos++;
    return pos + 1;
}

/* True when a line magic's text goes on at the next line: it ends in a
 * backslash outside a comment, or its brackets or quotes are still open.
 * *backslash tells which. */
static bool goes_on(const char *t, size_t tn, bool *backslash)
{
    mg_toks toks;
    char *err = NULL;
    mg_tokenize(t, tn, true, &toks, &err);
    free(err);
    bool open = toks.open_quote || toks.depth > 0;
    bool comment = toks.end < tn;
    mg_toks_free(&toks);
    *backslash = !open && !comment && tn > 0 && t[tn - 1] == '\\';
    return open || *backslash;
}

/* A line magic goes on over the next lines as a Python line would: after a
 * trailing backslash (the backslash and the newline are dropped) and while
 * brackets or quotes are open (the newline is kept, as a space between
 * tokens). Returns the whole text (malloc'd), NULL for a line that does not
 * go on; *pos moves past the lines taken, *extra counts them, and *open_end
 * is set when the code ends while the text still goes on. */
static char *join_lines(const char *code, size_t len, const char *t, size_t tn, size_t *pos,
                        size_t *extra, bool *open_end)
{
    bool backslash;
    if (!goes_on(t, tn, &backslash))
        return NULL;
    mg_str s = MG_STR_INIT;
    mg_str_addn(&s, t, tn);
    do {
        if (backslash)
            s.len--;
        if (*pos > len) {
            *open_end = true;
            break;
        }
        line_span l = line_at(code, len, *pos);
        if (!backslash)
            mg_str_addc(&s, '\n');
        mg_str_addn(&s, code + l.start, l.end - l.start);
        *pos = next_line(code, len, *pos);
        (*extra)++;
    } while (goes_on(mg_str_cstr(&s), s.len, &backslash));
    return mg_str_steal(&s);
}

static int parse_lines(const mg_registry *reg, const char *code, cell *out, perr *e, char **joined)
{
    size_t len = strlen(code);
    size_t pos = 0, lineno = 0;
    bool first = true;
    while (pos <= len) {
        line_span l = line_at(code, len, pos);
        size_t next = next_line(code, len, l.end);
        lineno++;
        const char *t = code + l.text;
        size_t tn = l.end - l.text;
        size_t at_line = lineno;
        if (tn > 0 && t[0] == '%' && !(tn > 1 && t[1] == '%')) {
            size_t extra = 0;
            free(*joined);
            *joined = join_lines(code, len, t, tn, &next, &extra, &e->open_end);
            if (*joined) {
                t = *joined;
                tn = strlen(t);
                lineno += extra;
            }
        }
        pos = next;
        if (tn == 0 || t[0] == '#') {
            if (next > len)
                break;
            continue;
        }
        char *hname = NULL;
        unsigned hkind = MG_LINE;
        if (parse_help(t, tn, &hname, &hkind)) {
            stmt *s = cell_push(out);
            s->kind = ST_HELP;
            s->line = at_line;
            s->mkind = hkind;
            s->help_name = hname;
            if (hname) {
                s->magic = mg_magic_find(reg, hname, hkind);
                if (!s->magic)
                    s->magic = mg_magic_find(reg, hname, MG_LINE | MG_CELL);
                if (!s->magic && !mg_keys_find(reg->settings, hname, NULL))
                    return fail_at(e, "UnknownMagicError", at_line, t, tn,
                                   mg_unknown_magic_message(reg, hname, hkind));
            }
            first = false;
            if (next > len)
                break;
            continue;
        }
        if (t[0] != '%')
            return fail_at(e, "UsageError", at_line, t, tn, mg_asprintf(NOT_MAGIC, at_line));
        unsigned kind = (tn > 1 && t[1] == '%') ? MG_CELL : MG_LINE;
        size_t a = kind == MG_CELL ? 2 : 1, b = a;
        while (b < tn && !is_blank(t[b]) && t[b] != '#')
            b++;
        char *name = mg_strndup(t + a, b - a);
        bool ok_name = b > a && mg_is_ident_start((unsigned char)name[0]);
        for (size_t i = 0; ok_name && name[i]; i++)
            ok_name = mg_is_ident_char((unsigned char)name[i]);
        if (!ok_name) {
            char *msg = b == a ? mg_asprintf("'%s' must be followed by a magic name (e.g. "
                                             "%%lsmagic)",
                                             kind == MG_CELL ? "%%" : "%")
                               : mg_unknown_magic_message(reg, name, kind);
            free(name);
            return fail_at(e, b == a ? "UsageError" : "UnknownMagicError", at_line, t, tn, msg);
        }
        if (kind == MG_CELL && !first) {
            char *msg = mg_asprintf("cell magic %%%%%s must be on the first line of the cell "
                                    "(its body follows it)",
                                    name);
            free(name);
            return fail_at(e, "UsageError", at_line, t, tn, msg);
        }
        const mg_magic *m = mg_magic_find(reg, name, kind);
        if (!m) {
            char *msg = mg_unknown_magic_message(reg, name, kind);
            free(name);
            return fail_at(e, "UnknownMagicError", at_line, t, tn, msg);
        }
        free(name);
        stmt *s = cell_push(out);
        s->kind = ST_MAGIC;
        s->magic = m;
        s->mkind = kind;
        s->line = at_line;
        char *err = NULL;
        if (mg_args_parse(t + b, tn - b, &s->args, &err) != 0) {
            char *msg = mg_asprintf("%s%s: %s", kind == MG_CELL ? "%%" : "%", m->name, err);
            free(err);
            return fail_at(e, "UsageError", at_line, t, tn, msg);
        }
        char *msg = check_args(s);
        if (msg)
            return fail_at(e, "UsageError", at_line, t, tn, msg);
        first = false;
        if (kind == MG_CELL) {
            s->body = next <= len ? code + next : code + len;
            break;
        }
        if (next > len)
            break;
    }
    return 0;
}

static int parse_cell(const mg_registry *reg, const char *code, cell *out, perr *e)
{
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    char *joined = NULL;
    int rc = parse_lines(reg, code, out, e, &joined);
    free(joined);
    return rc;
}

/* ---- running ----------------------------------------------------------- */

/* Wraps the caller's sink to notice whether a magic emitted an error. */
typedef struct proxy {
    const mg_sink *inner;
    int errors;
} proxy;

static void px_stream(void *c, const char *name, const char *text)
{
    mg_sink_stream(((proxy *)c)->inner, name, text);
}
static void px_display(void *c, const mg_bundle *b, const char *id, bool update)
{
    ((proxy *)c)->inner->ops->display(((proxy *)c)->inner->ctx, b, id, update);
}
static void px_result(void *c, const mg_bundle *b)
{
    mg_sink_result(((proxy *)c)->inner, b);
}
static void px_error(void *c, const char *ename, const char *evalue, const char *const *tb,
                     size_t n)
{
    ((proxy *)c)->errors++;
    mg_sink_error(((proxy *)c)->inner, ename, evalue, tb, n);
}
static void px_clear(void *c, bool wait)
{
    mg_sink_clear(((proxy *)c)->inner, wait);
}
static void px_page(void *c, const char *text)
{
    mg_sink_page(((proxy *)c)->inner, text);
}
static bool px_should_stop(void *c)
{
    return mg_sink_should_stop(((proxy *)c)->inner);
}
static bool px_wait(void *c, double s)
{
    return mg_sink_wait(((proxy *)c)->inner, s);
}
static const mg_sink_ops PROXY_OPS = {px_stream, px_display, px_result,      px_error,
                                      px_clear,  px_page,    px_should_stop, px_wait};

static void emit_error(const mg_sink *out, const char *ename, const char *evalue,
                       const char *ctx_line)
{
    char *tb0 = mg_asprintf("%s: %s", ename, evalue);
    const char *tb[2] = {tb0, ctx_line};
    mg_sink_error(out, ename, evalue, tb, ctx_line ? 2 : 1);
    free(tb0);
}

static void resolve(mg_interp *it, stmt *s, mg_value *vals)
{
    const mg_key *keys = s->magic->keys;
    for (size_t i = 0; i < s->n_values; i++) {
        const mg_key *k = &keys[i];
        if (s->values[i].given) {
            mg_value_copy(&vals[i], &s->values[i]);
            continue;
        }
        size_t idx;
        const mg_key *sk = mg_keys_find(it->reg->settings, k->name, &idx);
        if (sk && sk->type == k->type && it->settings[idx].set &&
            (k->type != MG_T_ENUM || strcmp(sk->choices, k->choices) == 0)) {
            mg_value_copy(&vals[i], &it->settings[idx]);
            vals[i].given = false;
            continue;
        }
        if (k->def) {
            char *err = NULL;
            if (mg_value_parse(k, k->def, &vals[i], &err) != 0) {
                mg_log("bad default %s=%s: %s", k->name, k->def, err);
                free(err);
            }
        }
    }
}

static mg_status run_help(mg_interp *it, const stmt *s, const mg_sink *out)
{
    char *text;
    if (!s->help_name)
        text = mg_help_overview(it->reg);
    else if (s->magic)
        text = mg_magic_help(s->magic, s->mkind);
    else
        text = mg_settings_help(it); /* a setting name: show the defaults */
    mg_sink_page(out, text);
    free(text);
    return MG_OK;
}

mg_status mg_interp_run(mg_interp *it, const char *code, const mg_sink *user_out)
{
    cell c;
    perr e;
    if (parse_cell(it->reg, code, &c, &e) != 0) {
        char *ctx = mg_asprintf("  line %zu: %s", e.line, e.line_text);
        emit_error(user_out, e.ename, e.evalue, ctx);
        free(ctx);
        perr_free(&e);
        cell_free(&c);
        return MG_ERROR;
    }
    proxy px = {user_out, 0};
    mg_sink out = {&PROXY_OPS, &px};
    mg_status st = MG_OK;
    for (size_t i = 0; i < c.n && st == MG_OK; i++) {
        stmt *s = &c.v[i];
        const char *pfx = s->mkind == MG_CELL ? "%%" : "%";
        if (mg_sink_should_stop(&out)) {
            st = MG_INTERRUPTED;
            char *ctx = mg_asprintf("  before %s%s (line %zu)", pfx,
                                    s->magic ? s->magic->name : "?", s->line);
            emit_error(&out, "KeyboardInterrupt", "interrupted", ctx);
            free(ctx);
            break;
        }
        if (s->kind == ST_HELP) {
            st = run_help(it, s, &out);
            continue;
        }
        if (s->magic->prepare) {
            char *err = NULL;
            if (s->magic->prepare(&err) != 0) {
                char *ctx = mg_asprintf("  in %s%s (line %zu)", pfx, s->magic->name, s->line);
                emit_error(&out, "EngineError", err, ctx);
                free(ctx);
                free(err);
                st = MG_ERROR;
                break;
            }
        }
        mg_value *vals = mg_xcalloc(s->n_values ? s->n_values : 1, sizeof *vals);
        resolve(it, s, vals);
        mg_call call = {s->magic, it,       &out, s->args.positional, s->body, s->mkind == MG_CELL,
                        s->line,  &s->args, vals};
        int errors_before = px.errors;
        st = s->magic->run(&call);
        for (size_t k = 0; k < s->n_values; k++)
            mg_value_clear(&vals[k]);
        free(vals);
        if (st != MG_OK && px.errors == errors_before) {
            char *ctx = mg_asprintf("  in %s%s (line %zu)", pfx, s->magic->name, s->line);
            if (st == MG_INTERRUPTED)
                emit_error(&out, "KeyboardInterrupt", "interrupted", ctx);
            else
                emit_error(&out, "MagicError", "the magic failed", ctx);
            free(ctx);
        }
    }
    cell_free(&c);
    return st;
}

/* ---- completion -------------------------------------------------------- */

static void complete_names(const mg_registry *reg, const char *prefix, size_t n, unsigned kind,
                           mg_completions *out)
{
    for (const mg_magic *m = reg->magics; m->name; m++) {
        if (!(m->kinds & kind) || strncmp(m->name, prefix, n) != 0)
            continue;
        char *cand = mg_asprintf("%s%s", kind == MG_CELL ? "%%" : "%", m->name);
        mg_completions_add(out, cand);
        free(cand);
    }
}

/* The first line that is not blank or a comment, or len. */
static size_t first_code_line(const char *code, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        line_span l = line_at(code, len, pos);
        if (l.text < l.end && code[l.text] != '#')
            return l.start;
        pos = l.end;
        while (pos < len && code[pos] != '\n')
            pos++;
        pos++;
    }
    return len;
}

typedef struct line_info {
    const mg_magic *magic;
    unsigned kind;
    size_t name_start, name_end; /* the name without % signs */
    size_t args_start, args_end;
    bool in_body; /* the position is in a cell magic's body */
} line_info;

/* What the line holding pos says, when it is a magic line or a cell body. */
static bool magic_line(const mg_registry *reg, const char *code, size_t len, size_t pos,
                       line_info *li)
{
    memset(li, 0, sizeof *li);
    size_t ls = pos;
    while (ls > 0 && code[ls - 1] != '\n')
        ls--;
    size_t first = first_code_line(code, len);
    line_span fl = line_at(code, len, first);
    bool is_cell =
        first < len && fl.end - fl.text >= 2 && code[fl.text] == '%' && code[fl.text + 1] == '%';
    line_span l = line_at(code, len, ls);
    if (is_cell && ls > first) {
        l = fl;
        li->in_body = true;
    }
    size_t t = l.text;
    if (t >= l.end || code[t] != '%')
        return false;
    li->kind = (t + 1 < l.end && code[t + 1] == '%') ? MG_CELL : MG_LINE;
    li->name_start = t + (li->kind == MG_CELL ? 2 : 1);
    li->name_end = li->name_start;
    while (li->name_end < l.end && mg_is_ident_char((unsigned char)code[li->name_end]))
        li->name_end++;
    char *name = mg_strndup(code + li->name_start, li->name_end - li->name_start);
    li->magic = mg_magic_find(reg, name, li->kind);
    free(name);
    li->args_start = li->name_end;
    li->args_end = li->in_body ? len : l.end;
    if (li->in_body) {
        li->args_start = l.end < len ? l.end + 1 : len; /* the body */
        if (code[l.end] == '\r' && l.end + 2 <= len)
            li->args_start = l.end + 2;
    }
    return true;
}

void mg_interp_complete(mg_interp *it, const char *code, size_t cursor, mg_completions *out)
{
    size_t len = strlen(code);
    if (cursor > len)
        cursor = len;
    out->start = out->end = cursor;
    size_t ls = cursor;
    while (ls > 0 && code[ls - 1] != '\n')
        ls--;
    line_span l = line_at(code, len, ls);
    line_info li;
    bool is_magic = magic_line(it->reg, code, len, cursor, &li);

    if (!li.in_body) {
        if (cursor <= l.text)
            return;
        /* Completing a magic name: "%sl|", "%%ec|", or a bare "sl|" at line start. */
        size_t pct = 0;
        while (pct < 2 && l.text + pct < l.end && code[l.text + pct] == '%')
            pct++;
        size_t ns = l.text + pct, ne = ns;
        while (ne < l.end && mg_is_ident_char((unsigned char)code[ne]))
            ne++;
        if (cursor <= ne && cursor >= ns) {
            complete_names(it->reg, code + ns, cursor - ns, pct == 2 ? MG_CELL : MG_LINE, out);
            out->start = l.text;
            out->end = ne;
            return;
        }
    }
    if (!is_magic || !li.magic)
        return;

    const mg_magic *m = li.magic;
    const char *args = code + li.args_start;
    size_t alen = li.args_end - li.args_start;
    size_t acur = cursor - li.args_start;
    mg_complete_ctx cx;
    memset(&cx, 0, sizeof cx);
    cx.interp = it;
    cx.magic = m;
    cx.args = args;
    cx.len = alen;
    cx.cursor = acur;
    cx.base = li.args_start;
    if (li.in_body) {
        /* In a cell body only the magic's own hook knows what to offer. */
        size_t ws = acur;
        while (ws > 0 && !is_blank(args[ws - 1]) && args[ws - 1] != '\n')
            ws--;
        cx.word_start = ws;
        cx.in_body = true;
        out->start = li.args_start + ws;
        if (m->complete)
            m->complete(&cx, out);
        return;
    }

    mg_toks toks;
    char *err = NULL;
    mg_tokenize(args, acur, true, &toks, &err);
    free(err);
    if (toks.end < acur && !toks.open_quote && toks.depth == 0) {
        mg_toks_free(&toks); /* the cursor is in a comment */
        return;
    }
    bool word = toks.n > 0 && toks.v[toks.n - 1].end == acur;
    size_t ws = word ? toks.v[toks.n - 1].start : acur;
    size_t eq = word ? toks.v[toks.n - 1].eq : (size_t)-1;
    bool kw_before = false;
    for (size_t i = 0; i + (word ? 1 : 0) < toks.n; i++)
        if (toks.v[i].eq != (size_t)-1)
            kw_before = true;
    cx.word_start = ws;
    out->start = li.args_start + ws;
    char *keyname = NULL;
    if (eq != (size_t)-1) {
        keyname = mg_strndup(args + ws, eq - ws);
        cx.key = keyname;
        const mg_key *k = mg_keys_find(m->keys, keyname, NULL);
        const char *vp = args + eq + 1;
        size_t vn = acur - eq - 1;
        out->start = li.args_start + eq + 1;
        if (k && (k->type == MG_T_ENUM || k->type == MG_T_BOOL) && !toks.open_quote) {
            const char *choices = k->type == MG_T_ENUM ? k->choices : "true|false";
            for (const char *p = choices; *p;) {
                const char *bar = strchr(p, '|');
                size_t n = bar ? (size_t)(bar - p) : strlen(p);
                if (n >= vn && strncmp(p, vp, vn) == 0) {
                    char *cand = mg_strndup(p, n);
                    mg_completions_add(out, cand);
                    free(cand);
                }
                if (!bar)
                    break;
                p = bar + 1;
            }
        }
    } else if (!toks.open_quote && toks.depth == 0) {
        /* Keys not given yet whose name starts with the word. */
        size_t wn = acur - ws;
        for (size_t i = 0; m->keys && m->keys[i].name; i++) {
            const mg_key *k = &m->keys[i];
            bool given = false;
            for (size_t t = 0; t + (word ? 1 : 0) < toks.n; t++) {
                const mg_tok *tk = &toks.v[t];
                if (tk->eq != (size_t)-1 && tk->eq - tk->start == strlen(k->name) &&
                    strncmp(args + tk->start, k->name, tk->eq - tk->start) == 0)
                    given = true;
            }
            if (!given && strncmp(k->name, args + ws, wn) == 0) {
                char *cand = mg_asprintf("%s=", k->name);
                mg_completions_add(out, cand);
                free(cand);
            }
        }
        cx.in_positional = m->positional && !kw_before;
    } else {
        cx.in_positional = m->positional && !kw_before;
    }
    if (m->complete)
        m->complete(&cx, out);
    free(keyname);
    mg_toks_free(&toks);
}

void mg_interp_complete_cp(mg_interp *it, const char *code, size_t cursor_cp, mg_completions *out,
                           size_t *start_cp, size_t *end_cp)
{
    size_t len = strlen(code);
    mg_interp_complete(it, code, mg_utf8_cp_to_byte(code, len, cursor_cp), out);
    *start_cp = mg_utf8_byte_to_cp(code, len, out->start);
    *end_cp = mg_utf8_byte_to_cp(code, len, out->end);
}

/* ---- inspection -------------------------------------------------------- */

char *mg_interp_inspect(mg_interp *it, const char *code, size_t cursor)
{
    size_t len = strlen(code);
    if (cursor > len)
        cursor = len;
    size_t ls = cursor;
    while (ls > 0 && code[ls - 1] != '\n')
        ls--;
    line_span l = line_at(code, len, ls);
    char *hname = NULL;
    unsigned hkind = MG_LINE;
    if (parse_help(code + l.text, l.end - l.text, &hname, &hkind)) {
        char *text = NULL;
        const mg_magic *m = hname ? mg_magic_find(it->reg, hname, hkind) : NULL;
        if (!m && hname)
            m = mg_magic_find(it->reg, hname, MG_LINE | MG_CELL);
        if (m)
            text = mg_magic_help(m, hkind);
        else if (!hname)
            text = mg_help_overview(it->reg);
        free(hname);
        return text;
    }
    line_info li;
    if (magic_line(it->reg, code, len, cursor, &li)) {
        if (!li.magic)
            return NULL;
        if (li.magic->prepare && it->state && it->reg->inspect && cursor > li.args_start) {
            char *layer = it->reg->inspect(it->state, code, len, cursor);
            if (layer)
                return layer;
        }
        char *help = mg_magic_help(li.magic, li.kind);
        if (li.in_body || cursor <= li.args_start)
            return help;
        /* On a key=value: that key's line first. */
        const char *args = code + li.args_start;
        size_t acur = cursor - li.args_start;
        mg_toks toks;
        char *err = NULL;
        mg_tokenize(args, li.args_end - li.args_start, true, &toks, &err);
        free(err);
        const mg_key *k = NULL;
        for (size_t i = 0; i < toks.n; i++) {
            const mg_tok *t = &toks.v[i];
            if (t->eq != (size_t)-1 && acur >= t->start && acur <= t->end) {
                char *kn = mg_strndup(args + t->start, t->eq - t->start);
                k = mg_keys_find(li.magic->keys, kn, NULL);
                free(kn);
            }
        }
        mg_toks_free(&toks);
        if (!k)
            return help;
        char *r = mg_asprintf("%s=%s  %s%s%s\n\n%s", k->name, mg_type_name(k), k->doc,
                              k->def ? "; default " : "", k->def ? k->def : "", help);
        free(help);
        return r;
    }
    /* A bare word under the cursor that names a magic or a setting. */
    size_t a = cursor, b = cursor;
    while (a > l.start && mg_is_ident_char((unsigned char)code[a - 1]))
        a--;
    while (b < l.end && mg_is_ident_char((unsigned char)code[b]))
        b++;
    if (a == b)
        return NULL;
    char *word = mg_strndup(code + a, b - a);
    const mg_magic *m = mg_magic_find(it->reg, word, MG_LINE | MG_CELL);
    char *text = m ? mg_magic_help(m, MG_LINE) : NULL;
    if (!text && mg_setting(it, word))
        text = mg_settings_help(it);
    free(word);
    return text;
}

const char *mg_interp_is_complete(mg_interp *it, const char *code)
{
    (void)it;
    size_t len = strlen(code);
    size_t first = first_code_line(code, len);
    if (first >= len)
        return "complete";
    line_span fl = line_at(code, len, first);
    bool cellmagic = fl.end - fl.text >= 2 && code[fl.text] == '%' && code[fl.text + 1] == '%' &&
                     !(fl.end > fl.text && code[fl.end - 1] == '?');
    cell c;
    perr e;
    int rc = parse_cell(it->reg, code, &c, &e);
    bool open_end = e.open_end;
    cell_free(&c);
    perr_free(&e);
    /* A console user goes on typing: an open bracket or quote, a trailing
     * backslash. */
    if (open_end)
        return "incomplete";
    if (rc != 0)
        return "invalid";
    if (cellmagic) {
        /* A cell magic's body ends with an empty line. */
        size_t n = len;
        if (n >= 2 && code[n - 1] == '\n' && (code[n - 2] == '\n'))
            return "complete";
        if (n >= 3 && code[n - 1] == '\n' && code[n - 2] == '\r' && code[n - 3] == '\n')
            return "complete";
        return "incomplete";
    }
    return "complete";
}
