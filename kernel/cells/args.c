#include "args.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "util.h"

bool mg_is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool mg_is_ident_char(int c)
{
    return mg_is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static void push_tok(mg_toks *t, size_t start, size_t end, size_t eq)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 8;
        t->v = mg_xrealloc(t->v, t->cap * sizeof *t->v);
    }
    t->v[t->n].start = start;
    t->v[t->n].end = end;
    t->v[t->n].eq = eq;
    t->n++;
}

static char closer(char open)
{
    return open == '[' ? ']' : open == '(' ? ')' : '}';
}

#define MAX_DEPTH 64

/* '#' at i inside a word is a call selector (conv2#1, layer1.0.relu#2[3])
 * when a name character comes right before it and a digit right after. */
static bool layer_call_hash(const char *s, size_t len, size_t start, size_t i)
{
    return i > start && (mg_is_ident_char((unsigned char)s[i - 1]) || s[i - 1] == '.') &&
           i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9';
}

int mg_tokenize(const char *s, size_t len, bool lenient, mg_toks *out, char **err)
{
    memset(out, 0, sizeof *out);
    *err = NULL;
    size_t i = 0;
    char stack[MAX_DEPTH];
    size_t open_at[MAX_DEPTH];
    for (;;) {
        while (i < len && is_space(s[i]))
            i++;
        if (i >= len || s[i] == '#') {
            out->end = i;
            return 0;
        }
        size_t start = i, eq = (size_t)-1;
        int depth = 0;
        bool ident_prefix = mg_is_ident_start((unsigned char)s[i]);
        while (i < len) {
            char c = s[i];
            /* LAYER#k (a layer's k-th call) stays in the word: '#' starts a
             * comment only at the start of a word. */
            if (depth == 0 && (is_space(c) || (c == '#' && !layer_call_hash(s, len, start, i))))
                break;
            if (c == '\'' || c == '"') {
                size_t q = i++;
                while (i < len && s[i] != c) {
                    if (s[i] == '\\' && i + 1 < len)
                        i++;
                    i++;
                }
                if (i >= len) {
                    if (lenient) {
                        out->open_quote = true;
                        out->depth = depth;
                        push_tok(out, start, len, eq);
                        out->end = len;
                        return 0;
                    }
                    *err = mg_asprintf("unterminated string starting at column %zu",
                                       mg_utf8_byte_to_cp(s, len, q) + 1);
                    goto fail;
                }
                ident_prefix = false;
                i++;
                continue;
            }
            if (c == '[' || c == '(' || c == '{') {
                if (depth == MAX_DEPTH) {
                    *err = mg_asprintf("brackets nested deeper than %d at column %zu", MAX_DEPTH,
                                       mg_utf8_byte_to_cp(s, len, i) + 1);
                    if (lenient) {
                        free(*err);
                        *err = NULL;
                        push_tok(out, start, i, eq);
                        out->end = i;
                        return 0;
                    }
                    goto fail;
                }
                stack[depth] = c;
                open_at[depth] = i;
                depth++;
                ident_prefix = false;
                i++;
                continue;
            }
            if (c == ']' || c == ')' || c == '}') {
                if (depth == 0 || closer(stack[depth - 1]) != c) {
                    if (lenient) {
                        push_tok(out, start, i, eq);
                        out->end = i;
                        return 0;
                    }
                    if (depth == 0)
                        *err = mg_asprintf("unmatched '%c' at column %zu", c,
                                           mg_utf8_byte_to_cp(s, len, i) + 1);
                    else
                        *err = mg_asprintf("'%c' at column %zu closes '%c' from column %zu", c,
                                           mg_utf8_byte_to_cp(s, len, i) + 1, stack[depth - 1],
                                           mg_utf8_byte_to_cp(s, len, open_at[depth - 1]) + 1);
                    goto fail;
                }
                depth--;
                ident_prefix = false;
                i++;
                continue;
            }
            if (c == '=' && depth == 0 && ident_prefix && eq == (size_t)-1) {
                /* IDENT= but not IDENT== (a comparison inside an objective). */
                if (!(i + 1 < len && s[i + 1] == '='))
                    eq = i;
                ident_prefix = false;
                i++;
                continue;
            }
            if (ident_prefix && !mg_is_ident_char((unsigned char)c))
                ident_prefix = false;
            i++;
        }
        if (depth > 0) {
            if (lenient) {
                out->depth = depth;
                push_tok(out, start, len, eq);
                out->end = len;
                return 0;
            }
            *err = mg_asprintf("'%c' at column %zu is never closed", stack[depth - 1],
                               mg_utf8_byte_to_cp(s, len, open_at[depth - 1]) + 1);
            goto fail;
        }
        push_tok(out, start, i, eq);
    }
fail:
    mg_toks_free(out);
    return -1;
}

void mg_toks_free(mg_toks *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}

char *mg_unescape(const char *s, size_t n)
{
    mg_str o = MG_STR_INIT;
    mg_str_addn(&o, "", 0);
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            mg_str_addc(&o, s[i]);
            continue;
        }
        char c = s[++i];
        switch (c) {
        case '\\': mg_str_addc(&o, '\\'); break;
        case '\'': mg_str_addc(&o, '\''); break;
        case '"': mg_str_addc(&o, '"'); break;
        case 'n': mg_str_addc(&o, '\n'); break;
        case 't': mg_str_addc(&o, '\t'); break;
        case 'r': mg_str_addc(&o, '\r'); break;
        case '0':
            mg_str_addn(&o, "", 0); /* an embedded NUL would truncate; drop it */
            break;
        default:
            mg_str_addc(&o, '\\');
            mg_str_addc(&o, c);
            break;
        }
    }
    return mg_str_steal(&o);
}

/* True when s[0..n) is exactly one quoted string. */
static bool whole_quoted(const char *s, size_t n)
{
    if (n < 2 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0])
        return false;
    size_t i = 1;
    while (i < n && s[i] != s[0]) {
        if (s[i] == '\\')
            i++;
        i++;
    }
    return i == n - 1;
}

int mg_args_parse(const char *s, size_t len, mg_args *out, char **err)
{
    memset(out, 0, sizeof *out);
    mg_toks t;
    if (mg_tokenize(s, len, false, &t, err) != 0)
        return -1;
    size_t k = 0;
    while (k < t.n && t.v[k].eq == (size_t)-1)
        k++;
    if (k > 0) {
        size_t a = t.v[0].start, b = t.v[k - 1].end;
        if (k == 1 && whole_quoted(s + a, b - a))
            out->positional = mg_unescape(s + a + 1, b - a - 2);
        else
            out->positional = mg_strndup(s + a, b - a);
        out->pos_col = a;
    }
    if (t.n > k)
        out->kw = mg_xcalloc(t.n - k, sizeof *out->kw);
    for (size_t j = k; j < t.n; j++) {
        const mg_tok *tok = &t.v[j];
        if (tok->eq == (size_t)-1) {
            *err = mg_asprintf("'%.*s' at column %zu: a bare argument cannot follow key=value "
                               "arguments (only the first argument may be bare)",
                               (int)(tok->end - tok->start), s + tok->start,
                               mg_utf8_byte_to_cp(s, len, tok->start) + 1);
            goto fail;
        }
        char *key = mg_strndup(s + tok->start, tok->eq - tok->start);
        for (size_t q = 0; q < out->n_kw; q++) {
            if (strcmp(out->kw[q].key, key) == 0) {
                *err = mg_asprintf("key '%s' given twice", key);
                free(key);
                goto fail;
            }
        }
        const char *v = s + tok->eq + 1;
        size_t vn = tok->end - tok->eq - 1;
        if (vn == 0) {
            *err = mg_asprintf("'%s=' at column %zu has no value", key,
                               mg_utf8_byte_to_cp(s, len, tok->start) + 1);
            free(key);
            goto fail;
        }
        mg_kwarg *kw = &out->kw[out->n_kw++];
        kw->key = key;
        kw->col = tok->start;
        if (whole_quoted(v, vn)) {
            kw->value = mg_unescape(v + 1, vn - 2);
            kw->quoted = true;
        } else {
            kw->value = mg_strndup(v, vn);
        }
    }
    mg_toks_free(&t);
    return 0;
fail:
    mg_toks_free(&t);
    mg_args_free(out);
    return -1;
}

void mg_args_free(mg_args *a)
{
    free(a->positional);
    for (size_t i = 0; i < a->n_kw; i++) {
        free(a->kw[i].key);
        free(a->kw[i].value);
    }
    free(a->kw);
    memset(a, 0, sizeof *a);
}
