/* am_tokenizer.c: GPT-2-style byte-level BPE, encode and decode, loaded from
 * tokenizer.json or vocab.json + merges.txt. Follows GPT-2's encoder.py
 * (github.com/openai/gpt-2/blob/master/src/encoder.py) and models/bpe.py. */
#include "am_data.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_json.h"
#include "am_unicode.h"

/* ------------------------------------------------------------------- types */

/* V = vocabulary size (largest id + 1), M = merges, S = added tokens */

typedef struct {
    char *bytes;      /* (len) token bytes; NULL for an id the vocabulary skips */
    size_t len;
} tok_entry;

typedef struct {
    uint64_t key;     /* left id << 32 | right id; 0 marks an empty slot (ids + 1) */
    int32_t rank;
    int32_t merged;
} tok_merge_slot;

struct am_tokenizer {
    tok_entry *tokens;        /* (V) */
    int64_t vocab_size;
    int32_t *by_bytes;        /* (by_bytes_cap) open-addressing table of ids, -1 empty */
    size_t by_bytes_cap;
    int32_t byte_id[256];     /* (256) id of each single-byte token */
    tok_merge_slot *merges;   /* (merges_cap) open-addressing table */
    size_t merges_cap;
    int32_t *special;         /* (n_special) ids of added tokens */
    size_t n_special;
    int64_t eot;
    char err[512];
};

static const char kEot[] = "<|endoftext|>";

static int tok_fail(am_tokenizer *t, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
    return status;
}

/* ---------------------------------------------------------------- hashing */

static uint64_t tok_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t tok_mix(uint64_t x)
{
    x ^= x >> 33; /* splitmix64 finalizer */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static size_t tok_pow2(size_t n)
{
    size_t c = 16;
    while (c < 2 * n)
        c *= 2;
    return c;
}

static int32_t tok_lookup(const am_tokenizer *t, const char *s, size_t n)
{
    if (!t->by_bytes)
        return -1;
    size_t mask = t->by_bytes_cap - 1;
    for (size_t i = tok_hash(s, n) & mask;; i = (i + 1) & mask) {
        int32_t id = t->by_bytes[i];
        if (id < 0)
            return -1;
        if (t->tokens[id].len == n && memcmp(t->tokens[id].bytes, s, n) == 0)
            return id;
    }
}

static const tok_merge_slot *tok_merge_find(const am_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
    size_t mask = t->merges_cap - 1;
    for (size_t i = tok_mix(key) & mask;; i = (i + 1) & mask) {
        if (t->merges[i].key == 0)
            return NULL;
        if (t->merges[i].key == key)
            return &t->merges[i];
    }
}

/* ------------------------------------------------------- GPT-2 byte alphabet */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
 * other 68 bytes map in order onto U+0100.. . Returns -1 for code points
 * outside the alphabet. */
static int tok_unicode_to_byte(uint32_t cp)
{
    static int table[324];
    static int ready = 0;
    if (!ready) {
        int n = 0;
        for (int i = 0; i < 324; i++)
            table[i] = -1;
        for (int b = 0; b < 256; b++) {
            int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            table[printable ? b : 256 + n++] = b;
        }
        ready = 1;
    }
    return cp < 324 ? table[cp] : -1;
}

/* Decodes one UTF-8 character strictly (no overlongs, surrogates or code
 * points past U+10FFFF). Returns its length, or 0 for an invalid byte. */
static size_t tok_utf8(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* A vocabulary string (UTF-8 of alphabet characters) -> token bytes. Strings
 * with characters outside the alphabet (added tokens) keep their UTF-8. */
static char *tok_unmap(const char *s, size_t n, size_t *out_len)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8((const unsigned char *)s + i, n - i, &cp);
        int b = l ? tok_unicode_to_byte(cp) : -1;
        if (b < 0) {
            memcpy(out, s, n);
            out[n] = '\0';
            *out_len = n;
            return out;
        }
        out[k++] = (char)b;
        i += l;
    }
    out[k] = '\0';
    *out_len = k;
    return out;
}

/* ------------------------------------------------------------------ loading */

static am_tokenizer *tok_new(void)
{
    am_tokenizer *t = calloc(1, sizeof *t);
    if (t)
        t->eot = -1;
    return t;
}

void am_tokenizer_free(am_tokenizer *t)
{
    if (!t)
        return;
    for (int64_t i = 0; i < t->vocab_size; i++)
        free(t->tokens[i].bytes);
    free(t->tokens);
    free(t->by_bytes);
    free(t->merges);
    free(t->special);
    free(t);
}

/* Fills tokens and the bytes table from a {token: id} object. */
static int tok_set_vocab(am_tokenizer *t, const am__json *vocab, const char *where)
{
    if (!vocab || vocab->type != AM__JSON_OBJECT)
        return tok_fail(t, AM_E_FORMAT, "%s: the vocabulary must be a JSON object "
                        "{\"token\": id, ...}", where);
    if (vocab->n == 0)
        return tok_fail(t, AM_E_FORMAT, "%s: the vocabulary is empty", where);
    double max_id = -1;
    for (size_t i = 0; i < vocab->n; i++) {
        const am__json *v = &vocab->items[i];
        if (v->type != AM__JSON_NUMBER || v->num < 0 || v->num != (double)(int32_t)v->num ||
            v->num >= (double)INT32_MAX / 2)
            return tok_fail(t, AM_E_FORMAT, "%s: the id of vocabulary entry %zu (\"%.40s\") "
                            "must be a non-negative integer", where, i, vocab->keys[i]);
        if (v->num > max_id)
            max_id = v->num;
    }
    t->vocab_size = (int64_t)max_id + 1;
    t->tokens = calloc((size_t)t->vocab_size, sizeof *t->tokens);
    t->by_bytes_cap = tok_pow2(vocab->n);
    t->by_bytes = malloc(t->by_bytes_cap * sizeof *t->by_bytes);
    if (!t->tokens || !t->by_bytes)
        return tok_fail(t, AM_E_NOMEM, "out of memory loading %zu tokens", vocab->n);
    memset(t->by_bytes, 0xff, t->by_bytes_cap * sizeof *t->by_bytes);
    for (size_t i = 0; i < vocab->n; i++) {
        int32_t id = (int32_t)vocab->items[i].num;
        if (t->tokens[id].bytes)
            return tok_fail(t, AM_E_FORMAT, "%s: id %d is given to two tokens", where, id);
        size_t len;
        char *b = tok_unmap(vocab->keys[i], vocab->key_lens[i], &len);
        if (!b)
            return tok_fail(t, AM_E_NOMEM, "out of memory");
        t->tokens[id].bytes = b;
        t->tokens[id].len = len;
        if (tok_lookup(t, b, len) >= 0)
            continue; /* two spellings of the same bytes: the first id wins */
        size_t mask = t->by_bytes_cap - 1, j = tok_hash(b, len) & mask;
        while (t->by_bytes[j] >= 0)
            j = (j + 1) & mask;
        t->by_bytes[j] = id;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = tok_lookup(t, &c, 1);
        if (t->byte_id[b] < 0)
            return tok_fail(t, AM_E_FORMAT, "%s: the vocabulary has no token for byte 0x%02x; "
                            "a byte-level BPE vocabulary holds all 256 single bytes "
                            "(GPT-2's bytes_to_unicode alphabet)", where, b);
    }
    return AM_OK;
}

static int tok_token_of(am_tokenizer *t, const char *s, size_t n, int32_t *id)
{
    size_t len;
    char *b = tok_unmap(s, n, &len);
    if (!b)
        return AM_E_NOMEM;
    *id = tok_lookup(t, b, len);
    free(b);
    return AM_OK;
}

/* Adds merge `rank`: tokens a and b (vocabulary spellings) join into a+b. */
static int tok_add_merge(am_tokenizer *t, size_t rank, const char *a, size_t an,
                         const char *b, size_t bn, const char *where)
{
    int32_t ia, ib;
    if (tok_token_of(t, a, an, &ia) || tok_token_of(t, b, bn, &ib))
        return tok_fail(t, AM_E_NOMEM, "out of memory");
    if (ia < 0 || ib < 0)
        return tok_fail(t, AM_E_FORMAT, "%s: merge %zu (\"%.*s %.*s\") uses the token "
                        "\"%.*s\", which is not in the vocabulary", where, rank, (int)an, a,
                        (int)bn, b, ia < 0 ? (int)an : (int)bn, ia < 0 ? a : b);
    size_t la = t->tokens[ia].len, lb = t->tokens[ib].len;
    char *joined = malloc(la + lb);
    if (!joined)
        return tok_fail(t, AM_E_NOMEM, "out of memory");
    memcpy(joined, t->tokens[ia].bytes, la);
    memcpy(joined + la, t->tokens[ib].bytes, lb);
    int32_t merged = tok_lookup(t, joined, la + lb);
    free(joined);
    if (merged < 0)
        return tok_fail(t, AM_E_FORMAT, "%s: merge %zu (\"%.*s %.*s\") makes a token that "
                        "is not in the vocabulary", where, rank, (int)an, a, (int)bn, b);
    uint64_t key = ((uint64_t)(uint32_t)(ia + 1) << 32) | (uint32_t)(ib + 1);
    size_t mask = t->merges_cap - 1, j = tok_mix(key) & mask;
    while (t->merges[j].key != 0) {
        if (t->merges[j].key == key)
            return AM_OK; /* a repeated merge keeps its first (lowest) rank */
        j = (j + 1) & mask;
    }
    t->merges[j].key = key;
    t->merges[j].rank = (int32_t)rank;
    t->merges[j].merged = merged;
    return AM_OK;
}

static int tok_alloc_merges(am_tokenizer *t, size_t n)
{
    t->merges_cap = tok_pow2(n);
    t->merges = calloc(t->merges_cap, sizeof *t->merges);
    return t->merges ? AM_OK : tok_fail(t, AM_E_NOMEM, "out of memory");
}

static int tok_add_special(am_tokenizer *t, int32_t id)
{
    for (size_t i = 0; i < t->n_special; i++)
        if (t->special[i] == id)
            return AM_OK;
    int32_t *s = realloc(t->special, (t->n_special + 1) * sizeof *s);
    if (!s)
        return tok_fail(t, AM_E_NOMEM, "out of memory");
    t->special = s;
    t->special[t->n_special++] = id;
    if (t->tokens[id].len == sizeof kEot - 1 && memcmp(t->tokens[id].bytes, kEot, sizeof kEot - 1) == 0)
        t->eot = id;
    return AM_OK;
}

static int tok_load_json(am_tokenizer *t, const char *json, size_t len)
{
    const char *where = "tokenizer.json";
    am__json *root = NULL;
    char err[300];
    if (am__json_parse(json, len, &root, err, sizeof err) < 0)
        return tok_fail(t, AM_E_FORMAT, "%s: %s", where, err);
    int rc = AM_OK;
    const am__json *model = am__json_get(root, "model");
    const am__json *type = am__json_get(model, "type");
    const am__json *merges = am__json_get(model, "merges");
    const am__json *added = am__json_get(root, "added_tokens");
    if (!model) {
        rc = tok_fail(t, AM_E_FORMAT, "%s: no \"model\" object; expected the Hugging Face "
                      "layout {\"model\": {\"type\": \"BPE\", \"vocab\": {...}, \"merges\": [...]}}", where);
        goto done;
    }
    if (type && (type->type != AM__JSON_STRING || strcmp(type->str, "BPE") != 0)) {
        rc = tok_fail(t, AM_E_FORMAT, "%s: model type \"%s\" is not supported; only "
                      "byte-level \"BPE\" (GPT-2 family) is", where,
                      type->type == AM__JSON_STRING ? type->str : "?");
        goto done;
    }
    if ((rc = tok_set_vocab(t, am__json_get(model, "vocab"), where)) != AM_OK)
        goto done;
    if (!merges || merges->type != AM__JSON_ARRAY) {
        rc = tok_fail(t, AM_E_FORMAT, "%s: \"model\".\"merges\" must be an array of "
                      "\"a b\" strings or [\"a\", \"b\"] pairs", where);
        goto done;
    }
    if ((rc = tok_alloc_merges(t, merges->n)) != AM_OK)
        goto done;
    for (size_t r = 0; r < merges->n; r++) {
        const am__json *m = &merges->items[r];
        if (m->type == AM__JSON_STRING) {
            const char *sp = memchr(m->str, ' ', m->len);
            if (!sp || sp == m->str || (size_t)(sp - m->str) + 1 >= m->len) {
                rc = tok_fail(t, AM_E_FORMAT, "%s: merge %zu (\"%.40s\") must be two tokens "
                              "separated by one space", where, r, m->str);
                goto done;
            }
            size_t an = (size_t)(sp - m->str);
            rc = tok_add_merge(t, r, m->str, an, sp + 1, m->len - an - 1, where);
        } else if (m->type == AM__JSON_ARRAY && m->n == 2 &&
                   m->items[0].type == AM__JSON_STRING && m->items[1].type == AM__JSON_STRING) {
            rc = tok_add_merge(t, r, m->items[0].str, m->items[0].len, m->items[1].str,
                               m->items[1].len, where);
        } else {
            rc = tok_fail(t, AM_E_FORMAT, "%s: merge %zu must be a string \"a b\" or a pair "
                          "[\"a\", \"b\"]", where, r);
        }
        if (rc != AM_OK)
            goto done;
    }
    for (size_t i = 0; added && added->type == AM__JSON_ARRAY && i < added->n; i++) {
        const am__json *id = am__json_get(&added->items[i], "id");
        const am__json *content = am__json_get(&added->items[i], "content");
        if (!id || id->type != AM__JSON_NUMBER || !content || content->type != AM__JSON_STRING) {
            rc = tok_fail(t, AM_E_FORMAT, "%s: added_tokens[%zu] needs \"id\" (number) and "
                          "\"content\" (string)", where, i);
            goto done;
        }
        int64_t k = (int64_t)id->num;
        if (k < 0 || k >= t->vocab_size || !t->tokens[k].bytes) {
            rc = tok_fail(t, AM_E_FORMAT, "%s: added token \"%s\" has id %lld, which is not in "
                          "the vocabulary", where, content->str, (long long)k);
            goto done;
        }
        /* An added token's text is its content, not a bytes_to_unicode spelling. */
        char *b = malloc(content->len + 1);
        if (!b) {
            rc = tok_fail(t, AM_E_NOMEM, "out of memory");
            goto done;
        }
        memcpy(b, content->str, content->len + 1);
        free(t->tokens[k].bytes);
        t->tokens[k].bytes = b;
        t->tokens[k].len = content->len;
        if ((rc = tok_add_special(t, (int32_t)k)) != AM_OK)
            goto done;
    }
done:
    am__json_free(root);
    return rc;
}

int am_tokenizer_load_json(const char *json, size_t len, am_tokenizer **out)
{
    if (!out)
        return AM_E_ARG;
    am_tokenizer *t = *out = tok_new();
    if (!t)
        return AM_E_NOMEM;
    if (!json)
        return tok_fail(t, AM_E_ARG, "am_tokenizer_load_json: json is NULL");
    return tok_load_json(t, json, len);
}

int am_tokenizer_load_vocab_merges(const char *vocab_json, size_t vocab_len,
                                   const char *merges_txt, size_t merges_len, am_tokenizer **out)
{
    if (!out)
        return AM_E_ARG;
    am_tokenizer *t = *out = tok_new();
    if (!t)
        return AM_E_NOMEM;
    if (!vocab_json || !merges_txt)
        return tok_fail(t, AM_E_ARG, "am_tokenizer_load_vocab_merges: %s is NULL",
                        vocab_json ? "merges_txt" : "vocab_json");
    am__json *vocab = NULL;
    char err[300];
    if (am__json_parse(vocab_json, vocab_len, &vocab, err, sizeof err) < 0)
        return tok_fail(t, AM_E_FORMAT, "vocab.json: %s", err);
    int rc = tok_set_vocab(t, vocab, "vocab.json");
    am__json_free(vocab);
    if (rc != AM_OK)
        return rc;
    size_t lines = 1;
    for (size_t i = 0; i < merges_len; i++)
        lines += merges_txt[i] == '\n';
    if ((rc = tok_alloc_merges(t, lines)) != AM_OK)
        return rc;
    size_t rank = 0, line_no = 0;
    for (size_t pos = 0; pos < merges_len;) {
        const char *line = merges_txt + pos;
        const char *nl = memchr(line, '\n', merges_len - pos);
        size_t n = nl ? (size_t)(nl - line) : merges_len - pos;
        pos += n + (nl != NULL);
        line_no++;
        if (n && line[n - 1] == '\r')
            n--;
        if (n == 0 || (line_no == 1 && n >= 8 && memcmp(line, "#version", 8) == 0))
            continue;
        const char *sp = memchr(line, ' ', n);
        if (!sp || sp == line || (size_t)(sp - line) + 1 >= n || memchr(sp + 1, ' ', n - (size_t)(sp - line) - 1))
            return tok_fail(t, AM_E_FORMAT, "merges.txt line %zu (\"%.*s\"): expected two tokens "
                            "separated by one space", line_no, (int)(n > 40 ? 40 : n), line);
        size_t an = (size_t)(sp - line);
        if ((rc = tok_add_merge(t, rank++, line, an, sp + 1, n - an - 1, "merges.txt")) != AM_OK)
            return rc;
    }
    int64_t eot = am_tokenizer_token_id(t, kEot, sizeof kEot - 1);
    if (eot >= 0 && (rc = tok_add_special(t, (int32_t)eot)) != AM_OK)
        return rc;
    return AM_OK;
}

int am_tokenizer_load_file(const char *path, am_tokenizer **out)
{
    if (!out)
        return AM_E_ARG;
    am_tokenizer *t = *out = tok_new();
    if (!t)
        return AM_E_NOMEM;
    if (!path)
        return tok_fail(t, AM_E_ARG, "am_tokenizer_load_file: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f)
        return tok_fail(t, AM_E_IO, "cannot open tokenizer file %s", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return tok_fail(t, AM_E_NOMEM, "out of memory reading %s", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    int rc = bad ? tok_fail(t, AM_E_IO, "error reading %s", path) : tok_load_json(t, buf, len);
    free(buf);
    if (rc != AM_OK && rc != AM_E_IO) {
        char msg[sizeof t->err];
        snprintf(msg, sizeof msg, "%s", t->err);
        tok_fail(t, rc, "%s: %s", path, msg);
    }
    return rc;
}

/* ---------------------------------------------------------------- queries */

const char *am_tokenizer_error(const am_tokenizer *t)
{
    return t ? t->err : "no tokenizer (NULL handle; loading ran out of memory)";
}

int64_t am_tokenizer_vocab_size(const am_tokenizer *t)
{
    return t ? t->vocab_size : AM_E_ARG;
}

int64_t am_tokenizer_eot(const am_tokenizer *t)
{
    return t ? t->eot : -1;
}

int64_t am_tokenizer_token_id(const am_tokenizer *t, const char *bytes, size_t len)
{
    if (!t || !bytes)
        return -1;
    return tok_lookup(t, bytes, len);
}

static int tok_check_id(const am_tokenizer *t, int64_t id)
{
    return id >= 0 && id < t->vocab_size && t->tokens[id].bytes;
}

int am_tokenizer_token_bytes(const am_tokenizer *t, int64_t id, const char **bytes, size_t *len)
{
    if (!t || !bytes || !len)
        return AM_E_ARG;
    if (!tok_check_id(t, id))
        return tok_fail((am_tokenizer *)t, AM_E_ARG, "token id %lld is not in the vocabulary "
                        "(ids 0..%lld)", (long long)id, (long long)t->vocab_size - 1);
    *bytes = t->tokens[id].bytes;
    *len = t->tokens[id].len;
    return AM_OK;
}

int am_tokenizer_token_text(const am_tokenizer *t, int64_t id, char *buf, size_t size)
{
    const char *b;
    size_t n;
    int rc = am_tokenizer_token_bytes(t, id, &b, &n);
    if (rc != AM_OK)
        return rc;
    size_t k = 0;
#define TOK_PUT(c) do { if (k + 1 < size) buf[k] = (c); k++; } while (0)
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)b[i];
        uint32_t cp;
        size_t l = tok_utf8((const unsigned char *)b + i, n - i, &cp);
        const char *esc = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" :
                          c == '\\' ? "\\\\" : NULL;
        if (esc) {
            TOK_PUT(esc[0]);
            TOK_PUT(esc[1]);
            i++;
        } else if (l == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
            static const char hex[] = "0123456789abcdef";
            TOK_PUT('\\');
            TOK_PUT('x');
            TOK_PUT(hex[c >> 4]);
            TOK_PUT(hex[c & 15]);
            i++;
        } else {
            for (size_t j = 0; j < l; j++)
                TOK_PUT(b[i + j]);
            i += l;
        }
    }
#undef TOK_PUT
    if (size)
        buf[k < size ? k : size - 1] = '\0';
    return k > INT32_MAX ? INT32_MAX : (int)k;
}

/* ------------------------------------------------------------------ encode */

enum { TOK_SPACE, TOK_LETTER, TOK_NUMBER, TOK_OTHER };

static int tok_in(const uint32_t (*r)[2], size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

/* Unicode White_Space, what \s means in GPT-2's regex. */
static int tok_is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static int tok_class(uint32_t cp, size_t len)
{
    if (len == 0)
        return TOK_OTHER; /* an invalid UTF-8 byte */
    if (tok_is_space(cp))
        return TOK_SPACE;
    if (tok_in(am__unicode_letters, sizeof am__unicode_letters / sizeof am__unicode_letters[0], cp))
        return TOK_LETTER;
    if (tok_in(am__unicode_numbers, sizeof am__unicode_numbers / sizeof am__unicode_numbers[0], cp))
        return TOK_NUMBER;
    return TOK_OTHER;
}

typedef struct {
    size_t off;        /* byte offset in the text */
    uint32_t cp;       /* code point; 0xFFFFFFFF for an invalid byte */
    int klass;
} tok_char;

typedef struct {
    int64_t *ids;      /* (n) output */
    size_t n, cap;
    int32_t *work;     /* (work_cap) one piece's ids while merging */
    size_t work_cap;
    tok_char *chars;   /* (chars_cap) one segment's characters */
    size_t chars_cap;
} tok_out;

static int tok_emit(tok_out *o, int64_t id)
{
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 256;
        int64_t *ni = realloc(o->ids, nc * sizeof *ni);
        if (!ni)
            return AM_E_NOMEM;
        o->ids = ni;
        o->cap = nc;
    }
    o->ids[o->n++] = id;
    return AM_OK;
}

/* BPE on one pre-tokenized piece: repeatedly join every occurrence, left to
 * right, of the adjacent pair with the lowest merge rank. */
static int tok_bpe(am_tokenizer *t, tok_out *o, const unsigned char *s, size_t n)
{
    if (n > o->work_cap) {
        int32_t *w = realloc(o->work, n * sizeof *w);
        if (!w)
            return AM_E_NOMEM;
        o->work = w;
        o->work_cap = n;
    }
    int32_t *w = o->work;
    for (size_t i = 0; i < n; i++)
        w[i] = t->byte_id[s[i]];
    size_t len = n;
    while (len > 1) {
        int32_t best_rank = INT32_MAX, best_a = -1, best_b = -1, merged = -1;
        for (size_t i = 0; i + 1 < len; i++) {
            const tok_merge_slot *m = tok_merge_find(t, w[i], w[i + 1]);
            if (m && m->rank < best_rank) {
                best_rank = m->rank;
                best_a = w[i];
                best_b = w[i + 1];
                merged = m->merged;
            }
        }
        if (merged < 0)
            break;
        size_t k = 0;
        for (size_t i = 0; i < len;) {
            if (i + 1 < len && w[i] == best_a && w[i + 1] == best_b) {
                w[k++] = merged;
                i += 2;
            } else {
                w[k++] = w[i++];
            }
        }
        len = k;
    }
    for (size_t i = 0; i < len; i++)
        if (tok_emit(o, w[i]) != AM_OK)
            return AM_E_NOMEM;
    return AM_OK;
}

/* Pre-tokenizes s[0..n) as GPT-2's regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * does, and runs BPE on each piece. */
static int tok_encode_segment(am_tokenizer *t, tok_out *o, const unsigned char *s, size_t n)
{
    if (n + 1 > o->chars_cap) {
        tok_char *c = realloc(o->chars, (n + 1) * sizeof *c);
        if (!c)
            return AM_E_NOMEM;
        o->chars = c;
        o->chars_cap = n + 1;
    }
    tok_char *ch = o->chars;
    size_t nc = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t l = tok_utf8(s + i, n - i, &cp);
        ch[nc].off = i;
        ch[nc].cp = l ? cp : 0xFFFFFFFFu;
        ch[nc].klass = tok_class(cp, l);
        nc++;
        i += l ? l : 1;
    }
    ch[nc].off = n; /* sentinel: the end offset of the last character */
    for (size_t i = 0; i < nc;) {
        size_t e;
        uint32_t c = ch[i].cp;
        if (c == '\'' && i + 1 < nc && (ch[i + 1].cp == 's' || ch[i + 1].cp == 't' ||
                                        ch[i + 1].cp == 'm' || ch[i + 1].cp == 'd')) {
            e = i + 2;
        } else if (c == '\'' && i + 2 < nc &&
                   ((ch[i + 1].cp == 'r' && ch[i + 2].cp == 'e') ||
                    (ch[i + 1].cp == 'v' && ch[i + 2].cp == 'e') ||
                    (ch[i + 1].cp == 'l' && ch[i + 2].cp == 'l'))) {
            e = i + 3;
        } else {
            size_t j = (c == ' ' && i + 1 < nc && ch[i + 1].klass != TOK_SPACE) ? i + 1 : i;
            int k = ch[j].klass;
            if (k != TOK_SPACE) {
                e = j + 1;
                while (e < nc && ch[e].klass == k)
                    e++;
            } else {
                /* A whitespace run: whole at the end of the text; otherwise
                 * all but its last character, which then prefixes what
                 * follows; a lone character stands alone. */
                e = i + 1;
                while (e < nc && ch[e].klass == TOK_SPACE)
                    e++;
                if (e < nc && e - i >= 2)
                    e--;
            }
        }
        int rc = tok_bpe(t, o, s + ch[i].off, ch[e].off - ch[i].off);
        if (rc != AM_OK)
            return rc;
        i = e;
    }
    return AM_OK;
}

int am_tokenizer_encode(am_tokenizer *t, const char *text, size_t len, int64_t **ids, size_t *n)
{
    if (ids)
        *ids = NULL;
    if (n)
        *n = 0;
    if (!t || !ids || !n)
        return t ? tok_fail(t, AM_E_ARG, "am_tokenizer_encode: ids and n must not be NULL")
                 : AM_E_ARG;
    if (!text && len)
        return tok_fail(t, AM_E_ARG, "am_tokenizer_encode: text is NULL but len is %zu", len);
    tok_out o = {0};
    int rc = tok_emit(&o, 0); /* ensures a non-NULL buffer for empty text */
    o.n = 0;
    const char *s = text, *end = text + len;
    while (rc == AM_OK && s < end) {
        /* The earliest added token in the rest of the text splits it. */
        const char *hit = NULL;
        int32_t hit_id = -1;
        for (size_t k = 0; k < t->n_special; k++) {
            const tok_entry *sp = &t->tokens[t->special[k]];
            if (sp->len == 0 || sp->len > (size_t)(end - s))
                continue;
            const char *p = s;
            while ((p = memchr(p, sp->bytes[0], (size_t)(end - p))) != NULL) {
                if ((size_t)(end - p) >= sp->len && memcmp(p, sp->bytes, sp->len) == 0)
                    break;
                p++;
            }
            if (p && (!hit || p < hit || (p == hit && sp->len > t->tokens[hit_id].len))) {
                hit = p;
                hit_id = t->special[k];
            }
        }
        const char *seg_end = hit ? hit : end;
        rc = tok_encode_segment(t, &o, (const unsigned char *)s, (size_t)(seg_end - s));
        if (rc == AM_OK && hit) {
            rc = tok_emit(&o, hit_id);
            s = hit + t->tokens[hit_id].len;
        } else {
            s = seg_end;
        }
    }
    free(o.work);
    free(o.chars);
    if (rc != AM_OK) {
        free(o.ids);
        return tok_fail(t, rc, "out of memory encoding %zu bytes", len);
    }
    *ids = o.ids;
    *n = o.n;
    return AM_OK;
}

/* ------------------------------------------------------------------ decode */

int am_tokenizer_decode(am_tokenizer *t, const int64_t *ids, size_t n, char **text, size_t *len)
{
    if (text)
        *text = NULL;
    if (len)
        *len = 0;
    if (!t || !text || !len)
        return t ? tok_fail(t, AM_E_ARG, "am_tokenizer_decode: text and len must not be NULL")
                 : AM_E_ARG;
    if (!ids && n)
        return tok_fail(t, AM_E_ARG, "am_tokenizer_decode: ids is NULL but n is %zu", n);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!tok_check_id(t, ids[i]))
            return tok_fail(t, AM_E_ARG, "token id %lld at position %zu is not in the "
                            "vocabulary (ids 0..%lld)", (long long)ids[i], i,
                            (long long)t->vocab_size - 1);
        total += t->tokens[ids[i]].len;
    }
    char *out = malloc(total + 1);
    if (!out)
        return tok_fail(t, AM_E_NOMEM, "out of memory decoding %zu tokens", n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + k, t->tokens[ids[i]].bytes, t->tokens[ids[i]].len);
        k += t->tokens[ids[i]].len;
    }
    out[k] = '\0';
    *text = out;
    *len = k;
    return AM_OK;
}
