/* am_json.c: a recursive-descent JSON reader (RFC 8259) for tokenizer files. */
#include "am_json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ parser */

/* Deep enough for any tokenizer file, shallow enough for the C stack. */
#define AM__JSON_MAX_DEPTH 64

typedef struct {
    const char *s; /* (len) input */
    size_t len;
    size_t pos;
    char *err; /* (err_size) message buffer */
    size_t err_size;
    int failed;
} json_parser;

static void json_fail(json_parser *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = 1;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < p->pos && i < p->len; i++) {
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->err_size, "malformed JSON at line %zu, column %zu: %s", line, col, msg);
}

static void json_skip_ws(json_parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static const char *json_describe(json_parser *p)
{
    static const char *end = "the end of the input";
    if (p->pos >= p->len)
        return end;
    return NULL;
}

static void json_unexpected(json_parser *p, const char *expected)
{
    const char *d = json_describe(p);
    if (d) {
        json_fail(p, "expected %s, found %s", expected, d);
    } else {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c >= 0x20 && c < 0x7f)
            json_fail(p, "expected %s, found '%c'", expected, c);
        else
            json_fail(p, "expected %s, found byte 0x%02x", expected, c);
    }
}

static int json_hex4(json_parser *p, uint32_t *out)
{
    if (p->len - p->pos < 4) {
        json_fail(p, "\\u escape needs four hex digits");
        return -1;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + (size_t)i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else {
            json_fail(p, "\\u escape needs four hex digits");
            return -1;
        }
    }
    p->pos += 4;
    *out = v;
    return 0;
}

static size_t json_put_utf8(char *dst, uint32_t cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reads a string starting at '"'; the decoded bytes are never longer than the
 * escaped source, so one allocation of the source span suffices. */
static int json_string(json_parser *p, char **out, size_t *out_len)
{
    p->pos++; /* opening quote */
    size_t start = p->pos, end = start;
    while (end < p->len && p->s[end] != '"') {
        if (p->s[end] == '\\')
            end++;
        end++;
    }
    if (end >= p->len) {
        json_fail(p, "string is not closed by '\"'");
        return -1;
    }
    char *buf = malloc(end - start + 1);
    if (!buf) {
        json_fail(p, "out of memory");
        return -1;
    }
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            json_fail(p, "control byte 0x%02x inside a string must be escaped", c);
            free(buf);
            return -1;
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            p->pos++;
            continue;
        }
        p->pos++;
        char e = p->s[p->pos++];
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (json_hex4(p, &cp) < 0) {
                free(buf);
                return -1;
            }
            if (cp >= 0xD800 && cp < 0xDC00 && p->pos + 6 <= end && p->s[p->pos] == '\\' &&
                p->s[p->pos + 1] == 'u') {
                size_t save = p->pos;
                uint32_t lo;
                p->pos += 2;
                if (json_hex4(p, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else
                    p->pos = save;
                p->failed = 0;
            }
            /* A lone surrogate has no UTF-8 form; keep its 3-byte encoding
             * (as Python's surrogatepass would) rather than reject the file. */
            n += json_put_utf8(buf + n, cp);
            break;
        }
        default:
            p->pos--;
            json_fail(p, "unknown escape '\\%c' in a string", e);
            free(buf);
            return -1;
        }
    }
    p->pos = end + 1;
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

static int json_value(json_parser *p, am__json *v, int depth);

static int json_push(json_parser *p, am__json *v, size_t *cap, int object)
{
    if (v->n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    am__json *items = realloc(v->items, nc * sizeof *items);
    if (!items) {
        json_fail(p, "out of memory");
        return -1;
    }
    v->items = items;
    if (object) {
        char **keys = realloc(v->keys, nc * sizeof *keys);
        if (!keys) {
            json_fail(p, "out of memory");
            return -1;
        }
        v->keys = keys;
        size_t *kl = realloc(v->key_lens, nc * sizeof *kl);
        if (!kl) {
            json_fail(p, "out of memory");
            return -1;
        }
        v->key_lens = kl;
    }
    *cap = nc;
    return 0;
}

static int json_container(json_parser *p, am__json *v, int depth, int object)
{
    char close = object ? '}' : ']';
    v->type = object ? AM__JSON_OBJECT : AM__JSON_ARRAY;
    p->pos++;
    json_skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    size_t cap = 0;
    for (;;) {
        if (json_push(p, v, &cap, object) < 0)
            return -1;
        am__json *item = &v->items[v->n];
        memset(item, 0, sizeof *item);
        if (object) {
            json_skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"') {
                json_unexpected(p, "a '\"' starting an object key");
                return -1;
            }
            if (json_string(p, &v->keys[v->n], &v->key_lens[v->n]) < 0)
                return -1;
            json_skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(v->keys[v->n]);
                json_unexpected(p, "':' after an object key");
                return -1;
            }
            p->pos++;
        }
        v->n++;
        if (json_value(p, item, depth + 1) < 0)
            return -1;
        json_skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return 0;
        }
        json_unexpected(p, object ? "',' or '}' in an object" : "',' or ']' in an array");
        return -1;
    }
}

static int json_literal(json_parser *p, const char *word, am__json_type type, am__json *v)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
        json_unexpected(p, "a value (object, array, string, number, true, false or null)");
        return -1;
    }
    p->pos += n;
    v->type = type;
    return 0;
}

static int json_number(json_parser *p, am__json *v)
{
    size_t start = p->pos;
    if (p->pos < p->len && p->s[p->pos] == '-')
        p->pos++;
    size_t digits = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    if (p->pos == digits) {
        json_unexpected(p, "a digit");
        return -1;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        size_t frac = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
        if (p->pos == frac) {
            json_unexpected(p, "a digit after '.'");
            return -1;
        }
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        size_t ex = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
        if (p->pos == ex) {
            json_unexpected(p, "a digit in the exponent");
            return -1;
        }
    }
    char tmp[64];
    size_t n = p->pos - start;
    if (n >= sizeof tmp)
        n = sizeof tmp - 1;
    memcpy(tmp, p->s + start, n);
    tmp[n] = '\0';
    v->type = AM__JSON_NUMBER;
    v->num = strtod(tmp, NULL);
    return 0;
}

static int json_value(json_parser *p, am__json *v, int depth)
{
    if (depth > AM__JSON_MAX_DEPTH) {
        json_fail(p, "nested deeper than %d levels", AM__JSON_MAX_DEPTH);
        return -1;
    }
    json_skip_ws(p);
    if (p->pos >= p->len) {
        json_unexpected(p, "a value");
        return -1;
    }
    switch (p->s[p->pos]) {
    case '{': return json_container(p, v, depth, 1);
    case '[': return json_container(p, v, depth, 0);
    case '"': v->type = AM__JSON_STRING; return json_string(p, &v->str, &v->len);
    case 't': return json_literal(p, "true", AM__JSON_TRUE, v);
    case 'f': return json_literal(p, "false", AM__JSON_FALSE, v);
    case 'n': return json_literal(p, "null", AM__JSON_NULL, v);
    default:
        if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
            return json_number(p, v);
        json_unexpected(p, "a value (object, array, string, number, true, false or null)");
        return -1;
    }
}

/* ------------------------------------------------------------------ public */

static void json_clear(am__json *v)
{
    for (size_t i = 0; i < v->n; i++) {
        json_clear(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->key_lens);
    free(v->str);
}

void am__json_free(am__json *v)
{
    if (!v)
        return;
    json_clear(v);
    free(v);
}

int am__json_parse(const char *json, size_t len, am__json **out, char *err, size_t err_size)
{
    *out = NULL;
    json_parser p = {json, len, 0, err, err_size, 0};
    if (err_size)
        err[0] = '\0';
    am__json *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    if (len >= 3 && memcmp(json, "\xEF\xBB\xBF", 3) == 0)
        p.pos = 3; /* a UTF-8 byte order mark */
    if (json_value(&p, v, 0) == 0) {
        json_skip_ws(&p);
        if (p.pos < p.len)
            json_unexpected(&p, "the end of the input after the top-level value");
    } else if (!p.failed) {
        json_fail(&p, "invalid value");
    }
    if (p.failed) {
        am__json_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

const am__json *am__json_get(const am__json *v, const char *key)
{
    if (!v || v->type != AM__JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < v->n; i++)
        if (v->key_lens[i] == kl && memcmp(v->keys[i], key, kl) == 0)
            return &v->items[i];
    return NULL;
}
