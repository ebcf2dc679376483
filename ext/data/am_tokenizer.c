/* am_tokenizer.c: the two BPE families of Hugging Face tokenizer.json files,
 * encode and decode:
 *   - GPT-2-style byte-level BPE (also from vocab.json + merges.txt), as
 *     GPT-2's encoder.py (github.com/openai/gpt-2/blob/master/src/encoder.py)
 *     and models/bpe.py;
 *   - the SentencePiece layout of Llama, Mistral and the like: "\xe2\x96\x81"
 *     (U+2581) for a space, a prepended space (Prepend + Replace normalizers or
 *     a Metaspace pre-tokenizer), characters merged by rank with a priority
 *     queue as the tokenizers library's BPE does (models/bpe/word.rs), byte
 *     fallback <0xXX> or <unk> for characters outside the vocabulary, and the
 *     <s> the post-processor puts first.
 * Any other layout fails at load naming the part that is not supported. */
#include "am_data.h"
#include "am_tokenizer_piece.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_json.h"
#include "am_unicode.h"

/* ------------------------------------------------------------------- types */

/* V = vocabulary size (largest id + 1), M = merges, S = added tokens */

typedef struct {
    char *bytes; /* (len) token bytes; NULL for an id the vocabulary skips */
    size_t len;
    char *spell; /* (spell_len) the vocabulary's spelling (SentencePiece layout only) */
    size_t spell_len;
    int fallback; /* a byte-fallback <0xXX> token */
} tok_entry;

enum { TOK_NORM_PREPEND, TOK_NORM_REPLACE };

typedef struct {
    int kind;    /* TOK_NORM_* */
    char *a, *b; /* PREPEND: a; REPLACE: every a becomes b */
    size_t an, bn;
} tok_norm;

enum { TOK_PREPEND_NEVER, TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST };

typedef struct {
    uint64_t key; /* left id << 32 | right id; 0 marks an empty slot (ids + 1) */
    int32_t rank;
    int32_t merged;
} tok_merge_slot;

struct am_tokenizer {
    tok_entry *tokens; /* (V) */
    int64_t vocab_size;
    int32_t *by_bytes; /* (by_bytes_cap) open-addressing table of ids, -1 empty */
    size_t by_bytes_cap;
    int32_t byte_id[256];   /* (256) id of each single-byte token */
    tok_merge_slot *merges; /* (merges_cap) open-addressing table */
    size_t merges_cap;
    int32_t *special; /* (n_special) ids of added tokens */
    size_t n_special;
    int64_t eot;
    /* SentencePiece layout */
    int spm;
    int byte_fallback;
    int fuse_unk;
    int64_t unk;              /* <unk> id, -1 when none */
    int64_t bos;              /* the id the post-processor puts first, -1 when none */
    int32_t fallback_id[256]; /* (256) id of <0xXX>, -1 when absent */
    int32_t *by_spell;        /* (by_bytes_cap) ids by spelling */
    tok_norm norm[8];         /* (n_norm) normalizer steps, in order */
    size_t n_norm;
    char *meta; /* Metaspace pre-tokenizer's replacement, NULL when none */
    size_t meta_len;
    int meta_prepend; /* TOK_PREPEND_* */
    int meta_split;   /* Metaspace splits words before each replacement */
    char space[8];    /* what stands for ' ' in spellings (U+2581) */
    size_t space_len;
    int strip_lead; /* decode drops the one leading space encode adds */
    char describe[200];
    char err[512];
};

static const char kEot[] = "<|endoftext|>";
/* Added tokens that end a text, in the families' spellings. */
static const char *const kEnds[] = {"<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>"};

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

static int32_t tok_lookup_spell(const am_tokenizer *t, const char *s, size_t n)
{
    if (!t->by_spell)
        return -1;
    size_t mask = t->by_bytes_cap - 1;
    for (size_t i = tok_hash(s, n) & mask;; i = (i + 1) & mask) {
        int32_t id = t->by_spell[i];
        if (id < 0)
            return -1;
        if (t->tokens[id].spell_len == n && memcmp(t->tokens[id].spell, s, n) == 0)
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
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else
        return 0;
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

/* A SentencePiece-layout spelling -> token bytes: the space stand-in
 * becomes ' ', a byte-fallback <0xXX> its byte. Sets *fallback for the latter. */
static char *tok_unmap_spm(const am_tokenizer *t, const char *s, size_t n, size_t *out_len,
                           int *fallback)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    *fallback = 0;
    if (t->byte_fallback && n == 6 && memcmp(s, "<0", 2) == 0 && (s[2] == 'x' || s[2] == 'X') &&
        s[5] == '>') {
        char hex[3] = {s[3], s[4], 0}, *end;
        long v = strtol(hex, &end, 16);
        if (*end == '\0' && hex[0] != '-' && hex[0] != '+' && hex[0] != ' ') {
            out[0] = (char)v;
            out[1] = '\0';
            *out_len = 1;
            *fallback = 1;
            return out;
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (t->space_len && n - i >= t->space_len && memcmp(s + i, t->space, t->space_len) == 0) {
            out[k++] = ' ';
            i += t->space_len;
        } else {
            out[k++] = s[i++];
        }
    }
    out[k] = '\0';
    *out_len = k;
    return out;
}

static am_tokenizer *tok_new(void)
{
    am_tokenizer *t = calloc(1, sizeof *t);
    if (t) {
        t->eot = t->unk = t->bos = -1;
        for (int b = 0; b < 256; b++)
            t->fallback_id[b] = -1;
        snprintf(t->describe, sizeof t->describe, "byte-level BPE (GPT-2 family)");
    }
    return t;
}

void am_tokenizer_free(am_tokenizer *t)
{
    if (!t)
        return;
    for (int64_t i = 0; i < t->vocab_size; i++) {
        free(t->tokens[i].bytes);
        free(t->tokens[i].spell);
    }
    for (size_t i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
    }
    free(t->meta);
    free(t->tokens);
    free(t->by_bytes);
    free(t->by_spell);
    free(t->merges);
    free(t->special);
    free(t);
}

/* Fills tokens and the bytes table from a {token: id} object. */
static int tok_set_vocab(am_tokenizer *t, const am__json *vocab, const char *where)
{
    if (!vocab || vocab->type != AM__JSON_OBJECT)
        return tok_fail(t, AM_E_FORMAT,
                        "%s: the vocabulary must be a JSON object "
                        "{\"token\": id, ...}",
                        where);
    if (vocab->n == 0)
        return tok_fail(t, AM_E_FORMAT, "%s: the vocabulary is empty", where);
    double max_id = -1;
    for (size_t i = 0; i < vocab->n; i++) {
        const am__json *v = &vocab->items[i];
        if (v->type != AM__JSON_NUMBER || v->num < 0 || v->num != (double)(int32_t)v->num ||
            v->num >= (double)INT32_MAX / 2)
            return tok_fail(t, AM_E_FORMAT,
                            "%s: the id of vocabulary entry %zu (\"%.40s\") "
                            "must be a non-negative integer",
                            where, i, vocab->keys[i]);
        if (v->num > max_id)
            max_id = v->num;
    }
    t->vocab_size = (int64_t)max_id + 1;
    t->tokens = calloc((size_t)t->vocab_size, sizeof *t->tokens);
    t->by_bytes_cap = tok_pow2(vocab->n);
    t->by_bytes = malloc(t->by_bytes_cap * sizeof *t->by_bytes);
    if (t->spm)
        t->by_spell = malloc(t->by_bytes_cap * sizeof *t->by_spell);
    if (!t->tokens || !t->by_bytes || (t->spm && !t->by_spell))
        return tok_fail(t, AM_E_NOMEM, "out of memory loading %zu tokens", vocab->n);
    memset(t->by_bytes, 0xff, t->by_bytes_cap * sizeof *t->by_bytes);
    if (t->spm)
        memset(t->by_spell, 0xff, t->by_bytes_cap * sizeof *t->by_spell);
    size_t mask = t->by_bytes_cap - 1;
    for (size_t i = 0; i < vocab->n; i++) {
        int32_t id = (int32_t)vocab->items[i].num;
        if (t->tokens[id].bytes)
            return tok_fail(t, AM_E_FORMAT, "%s: id %d is given to two tokens", where, id);
        size_t len;
        int fallback = 0;
        char *b = t->spm ? tok_unmap_spm(t, vocab->keys[i], vocab->key_lens[i], &len, &fallback)
                         : tok_unmap(vocab->keys[i], vocab->key_lens[i], &len);
        if (!b)
            return tok_fail(t, AM_E_NOMEM, "out of memory");
        t->tokens[id].bytes = b;
        t->tokens[id].len = len;
        t->tokens[id].fallback = fallback;
        if (fallback)
            t->fallback_id[(unsigned char)b[0]] = id;
        if (t->spm) {
            t->tokens[id].spell = malloc(vocab->key_lens[i] + 1);
            if (!t->tokens[id].spell)
                return tok_fail(t, AM_E_NOMEM, "out of memory");
            memcpy(t->tokens[id].spell, vocab->keys[i], vocab->key_lens[i] + 1);
            t->tokens[id].spell_len = vocab->key_lens[i];
            size_t j = tok_hash(vocab->keys[i], vocab->key_lens[i]) & mask;
            while (t->by_spell[j] >= 0)
                j = (j + 1) & mask;
            t->by_spell[j] = id;
        }
    }
    /* Bytes -> id: in vocabulary order, the first id wins; a byte-fallback
     * token only when no ordinary token has its byte. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < vocab->n; i++) {
            int32_t id = (int32_t)vocab->items[i].num;
            const tok_entry *e = &t->tokens[id];
            if (e->fallback != pass || tok_lookup(t, e->bytes, e->len) >= 0)
                continue;
            size_t j = tok_hash(e->bytes, e->len) & mask;
            while (t->by_bytes[j] >= 0)
                j = (j + 1) & mask;
            t->by_bytes[j] = id;
        }
    }
    if (t->spm)
        return AM_OK;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = tok_lookup(t, &c, 1);
        if (t->byte_id[b] < 0)
            return tok_fail(t, AM_E_FORMAT,
                            "%s: the vocabulary has no token for byte 0x%02x; "
                            "a byte-level BPE vocabulary holds all 256 single bytes "
                            "(GPT-2's bytes_to_unicode alphabet); a SentencePiece-style one "
                            "sets \"byte_fallback\" or a Metaspace/Prepend layout",
                            where, b);
    }
    return AM_OK;
}

static int tok_token_of(am_tokenizer *t, const char *s, size_t n, int32_t *id)
{
    if (t->spm) {
        *id = tok_lookup_spell(t, s, n);
        return AM_OK;
    }
    size_t len;
    char *b = tok_unmap(s, n, &len);
    if (!b)
        return AM_E_NOMEM;
    *id = tok_lookup(t, b, len);
    free(b);
    return AM_OK;
}

/* Adds merge `rank`: tokens a and b (vocabulary spellings) join into a+b. */
static int tok_add_merge(am_tokenizer *t, size_t rank, const char *a, size_t an, const char *b,
                         size_t bn, const char *where)
{
    int32_t ia, ib;
    if (tok_token_of(t, a, an, &ia) || tok_token_of(t, b, bn, &ib))
        return tok_fail(t, AM_E_NOMEM, "out of memory");
    if (ia < 0 || ib < 0)
        return tok_fail(t, AM_E_FORMAT,
                        "%s: merge %zu (\"%.*s %.*s\") uses the token "
                        "\"%.*s\", which is not in the vocabulary",
                        where, rank, (int)an, a, (int)bn, b, ia < 0 ? (int)an : (int)bn,
                        ia < 0 ? a : b);
    const tok_entry *ea = &t->tokens[ia], *eb = &t->tokens[ib];
    size_t la = t->spm ? ea->spell_len : ea->len, lb = t->spm ? eb->spell_len : eb->len;
    char *joined = malloc(la + lb);
    if (!joined)
        return tok_fail(t, AM_E_NOMEM, "out of memory");
    memcpy(joined, t->spm ? ea->spell : ea->bytes, la);
    memcpy(joined + la, t->spm ? eb->spell : eb->bytes, lb);
    int32_t merged = t->spm ? tok_lookup_spell(t, joined, la + lb) : tok_lookup(t, joined, la + lb);
    free(joined);
    if (merged < 0)
        return tok_fail(t, AM_E_FORMAT,
                        "%s: merge %zu (\"%.*s %.*s\") makes a token that "
                        "is not in the vocabulary",
                        where, rank, (int)an, a, (int)bn, b);
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
    for (size_t k = 0; k < sizeof kEnds / sizeof kEnds[0]; k++)
        if (t->eot < 0 && t->tokens[id].len == strlen(kEnds[k]) &&
            memcmp(t->tokens[id].bytes, kEnds[k], t->tokens[id].len) == 0)
            t->eot = id;
    return AM_OK;
}

static int tok_check_id(const am_tokenizer *t, int64_t id);

/* ------------------------------------------------------------------ layout */

static const char *tok_type(const am__json *v)
{
    const am__json *ty = am__json_get(v, "type");
    return ty && ty->type == AM__JSON_STRING ? ty->str : "(no type)";
}

static char *tok_dup(const am__json *v, size_t *n)
{
    char *c = malloc(v->len + 1);
    if (c) {
        memcpy(c, v->str, v->len + 1);
        *n = v->len;
    }
    return c;
}

static int tok_set_space(am_tokenizer *t, const am__json *v)
{
    if (v->len == 0 || v->len >= sizeof t->space)
        return 0;
    memcpy(t->space, v->str, v->len);
    t->space_len = v->len;
    return 1;
}

static int tok_parse_normalizer(am_tokenizer *t, const am__json *v, const char *where)
{
    if (!v || v->type == AM__JSON_NULL)
        return AM_OK;
    const char *ty = tok_type(v);
    if (strcmp(ty, "Sequence") == 0) {
        const am__json *list = am__json_get(v, "normalizers");
        if (!list || list->type != AM__JSON_ARRAY)
            return tok_fail(t, AM_E_FORMAT,
                            "%s: the normalizer Sequence needs a \"normalizers\" "
                            "array",
                            where);
        for (size_t i = 0; i < list->n; i++) {
            int rc = tok_parse_normalizer(t, &list->items[i], where);
            if (rc != AM_OK)
                return rc;
        }
        return AM_OK;
    }
    if (t->n_norm == sizeof t->norm / sizeof t->norm[0])
        return tok_fail(t, AM_E_FORMAT, "%s: more than %zu normalizer steps are not supported",
                        where, sizeof t->norm / sizeof t->norm[0]);
    tok_norm *nm = &t->norm[t->n_norm];
    if (strcmp(ty, "Prepend") == 0) {
        const am__json *p = am__json_get(v, "prepend");
        if (!p || p->type != AM__JSON_STRING)
            return tok_fail(t, AM_E_FORMAT,
                            "%s: the Prepend normalizer needs a \"prepend\" "
                            "string",
                            where);
        nm->kind = TOK_NORM_PREPEND;
        if (!(nm->a = tok_dup(p, &nm->an)))
            return tok_fail(t, AM_E_NOMEM, "out of memory");
    } else if (strcmp(ty, "Replace") == 0) {
        const am__json *pat = am__json_get(am__json_get(v, "pattern"), "String");
        const am__json *c = am__json_get(v, "content");
        if (!pat || pat->type != AM__JSON_STRING || pat->len == 0 || !c ||
            c->type != AM__JSON_STRING)
            return tok_fail(t, AM_E_FORMAT,
                            "%s: the Replace normalizer is supported with a "
                            "{\"String\": \"...\"} pattern and a \"content\" string only (a Regex "
                            "pattern is not supported)",
                            where);
        nm->kind = TOK_NORM_REPLACE;
        if (!(nm->a = tok_dup(pat, &nm->an)) || !(nm->b = tok_dup(c, &nm->bn)))
            return tok_fail(t, AM_E_NOMEM, "out of memory");
        if (pat->len == 1 && pat->str[0] == ' ')
            tok_set_space(t, c);
    } else {
        return tok_fail(t, AM_E_FORMAT,
                        "%s: the normalizer \"%s\" is not supported; supported "
                        "are Prepend, Replace with a string pattern and a Sequence of these "
                        "(the Llama layout)",
                        where, ty);
    }
    t->n_norm++;
    return AM_OK;
}

static int tok_parse_pre(am_tokenizer *t, const am__json *v, const char *where, int *bytelevel)
{
    if (!v || v->type == AM__JSON_NULL)
        return AM_OK;
    const char *ty = tok_type(v);
    if (strcmp(ty, "Sequence") == 0) {
        const am__json *list = am__json_get(v, "pretokenizers");
        if (!list || list->type != AM__JSON_ARRAY)
            return tok_fail(t, AM_E_FORMAT,
                            "%s: the pre_tokenizer Sequence needs a "
                            "\"pretokenizers\" array",
                            where);
        for (size_t i = 0; i < list->n; i++) {
            int rc = tok_parse_pre(t, &list->items[i], where, bytelevel);
            if (rc != AM_OK)
                return rc;
        }
        return AM_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        const am__json *re = am__json_get(v, "use_regex"),
                       *ap = am__json_get(v, "add_prefix_space");
        if (re && re->type == AM__JSON_FALSE)
            return tok_fail(t, AM_E_FORMAT,
                            "%s: a ByteLevel pre_tokenizer without GPT-2's regex "
                            "(\"use_regex\": false, as Llama 3's layout has) is not supported",
                            where);
        if (ap && ap->type == AM__JSON_TRUE)
            return tok_fail(t, AM_E_FORMAT,
                            "%s: a ByteLevel pre_tokenizer with "
                            "\"add_prefix_space\": true is not supported",
                            where);
        *bytelevel = 1;
        return AM_OK;
    }
    if (strcmp(ty, "Metaspace") == 0) {
        const am__json *r = am__json_get(v, "replacement");
        const am__json *scheme = am__json_get(v, "prepend_scheme");
        const am__json *ap = am__json_get(v, "add_prefix_space");
        const am__json *split = am__json_get(v, "split");
        if (!r || r->type != AM__JSON_STRING || !tok_set_space(t, r))
            return tok_fail(t, AM_E_FORMAT,
                            "%s: the Metaspace pre_tokenizer needs a one-character "
                            "\"replacement\" string",
                            where);
        if (!(t->meta = tok_dup(r, &t->meta_len)))
            return tok_fail(t, AM_E_NOMEM, "out of memory");
        t->meta_prepend = TOK_PREPEND_ALWAYS;
        if (scheme && scheme->type == AM__JSON_STRING) {
            if (strcmp(scheme->str, "always") == 0)
                t->meta_prepend = TOK_PREPEND_ALWAYS;
            else if (strcmp(scheme->str, "first") == 0)
                t->meta_prepend = TOK_PREPEND_FIRST;
            else if (strcmp(scheme->str, "never") == 0)
                t->meta_prepend = TOK_PREPEND_NEVER;
            else
                return tok_fail(t, AM_E_FORMAT,
                                "%s: Metaspace \"prepend_scheme\": \"%s\" is not "
                                "one of \"always\", \"first\", \"never\"",
                                where, scheme->str);
        } else if (ap && ap->type == AM__JSON_FALSE) {
            t->meta_prepend = TOK_PREPEND_NEVER;
        }
        t->meta_split = !split || split->type != AM__JSON_FALSE;
        return AM_OK;
    }
    return tok_fail(t, AM_E_FORMAT,
                    "%s: the pre_tokenizer \"%s\" is not supported; supported are "
                    "ByteLevel (GPT-2) and Metaspace (SentencePiece)",
                    where, ty);
}

static int tok_parse_post(am_tokenizer *t, const am__json *v, const char *where,
                          const am__json **bos_name, const am__json **specials)
{
    if (!v || v->type == AM__JSON_NULL)
        return AM_OK;
    const char *ty = tok_type(v);
    if (strcmp(ty, "Sequence") == 0) {
        const am__json *list = am__json_get(v, "processors");
        for (size_t i = 0; list && list->type == AM__JSON_ARRAY && i < list->n; i++) {
            int rc = tok_parse_post(t, &list->items[i], where, bos_name, specials);
            if (rc != AM_OK)
                return rc;
        }
        return AM_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0)
        return AM_OK;
    if (strcmp(ty, "TemplateProcessing") == 0) {
        const am__json *single = am__json_get(v, "single");
        const am__json *first = single && single->type == AM__JSON_ARRAY && single->n
                                    ? am__json_get(&single->items[0], "SpecialToken")
                                    : NULL;
        const am__json *id = am__json_get(first, "id");
        if (id && id->type == AM__JSON_STRING) {
            *bos_name = id;
            *specials = am__json_get(v, "special_tokens");
        }
        return AM_OK;
    }
    return tok_fail(t, AM_E_FORMAT,
                    "%s: the post_processor \"%s\" is not supported; supported are "
                    "ByteLevel and TemplateProcessing",
                    where, ty);
}

/* Reads the parts of tokenizer.json around the model and decides the family. */
static int tok_parse_layout(am_tokenizer *t, const am__json *root, const am__json *model,
                            const char *where)
{
    static const char *const unsupported[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (size_t i = 0; i < 2; i++) {
        const am__json *v = am__json_get(model, unsupported[i]);
        if (v && v->type == AM__JSON_STRING && v->len)
            return tok_fail(t, AM_E_FORMAT, "%s: a BPE model with \"%s\" (\"%s\") is not supported",
                            where, unsupported[i], v->str);
    }
    const am__json *dropout = am__json_get(model, "dropout");
    if (dropout && dropout->type == AM__JSON_NUMBER && dropout->num > 0)
        return tok_fail(t, AM_E_FORMAT,
                        "%s: BPE dropout (%g) is not supported; set \"dropout\" to "
                        "null for a deterministic encoding",
                        where, dropout->num);
    const am__json *bf = am__json_get(model, "byte_fallback");
    const am__json *fuse = am__json_get(model, "fuse_unk");
    t->byte_fallback = bf && bf->type == AM__JSON_TRUE;
    t->fuse_unk = fuse && fuse->type == AM__JSON_TRUE;
    memcpy(t->space, "\xe2\x96\x81", 3); /* U+2581, SentencePiece's space */
    t->space_len = 3;
    int bytelevel = 0, rc;
    if ((rc = tok_parse_normalizer(t, am__json_get(root, "normalizer"), where)) != AM_OK ||
        (rc = tok_parse_pre(t, am__json_get(root, "pre_tokenizer"), where, &bytelevel)) != AM_OK)
        return rc;
    t->spm = t->byte_fallback || t->meta || t->n_norm;
    if (t->spm && bytelevel)
        return tok_fail(t, AM_E_FORMAT,
                        "%s: a ByteLevel pre_tokenizer together with %s is not "
                        "supported",
                        where,
                        t->byte_fallback ? "\"byte_fallback\""
                        : t->meta        ? "Metaspace"
                                         : "a normalizer");
    if (!t->spm)
        t->space_len = 0;
    for (size_t i = 0; i < t->n_norm; i++)
        if (t->norm[i].kind == TOK_NORM_PREPEND)
            t->strip_lead = 1;
    if (t->meta && t->meta_prepend != TOK_PREPEND_NEVER)
        t->strip_lead = 1;
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
        rc =
            tok_fail(t, AM_E_FORMAT,
                     "%s: no \"model\" object; expected the Hugging Face "
                     "layout {\"model\": {\"type\": \"BPE\", \"vocab\": {...}, \"merges\": [...]}}",
                     where);
        goto done;
    }
    if (type && (type->type != AM__JSON_STRING || strcmp(type->str, "BPE") != 0)) {
        rc = tok_fail(t, AM_E_FORMAT,
                      "%s: model type \"%s\" is not supported; only \"BPE\" "
                      "is (byte-level as GPT-2, or SentencePiece-style as Llama)",
                      where, type->type == AM__JSON_STRING ? type->str : "?");
        goto done;
    }
    const am__json *bos_name = NULL, *specials = NULL;
    if ((rc = tok_parse_layout(t, root, model, where)) != AM_OK ||
        (rc = tok_parse_post(t, am__json_get(root, "post_processor"), where, &bos_name,
                             &specials)) != AM_OK)
        goto done;
    if ((rc = tok_set_vocab(t, am__json_get(model, "vocab"), where)) != AM_OK)
        goto done;
    if (!merges || merges->type != AM__JSON_ARRAY) {
        rc = tok_fail(t, AM_E_FORMAT,
                      "%s: \"model\".\"merges\" must be an array of "
                      "\"a b\" strings or [\"a\", \"b\"] pairs",
                      where);
        goto done;
    }
    if ((rc = tok_alloc_merges(t, merges->n)) != AM_OK)
        goto done;
    for (size_t r = 0; r < merges->n; r++) {
        const am__json *m = &merges->items[r];
        if (m->type == AM__JSON_STRING) {
            const char *sp = memchr(m->str, ' ', m->len);
            if (!sp || sp == m->str || (size_t)(sp - m->str) + 1 >= m->len) {
                rc = tok_fail(t, AM_E_FORMAT,
                              "%s: merge %zu (\"%.40s\") must be two tokens "
                              "separated by one space",
                              where, r, m->str);
                goto done;
            }
            size_t an = (size_t)(sp - m->str);
            rc = tok_add_merge(t, r, m->str, an, sp + 1, m->len - an - 1, where);
        } else if (m->type == AM__JSON_ARRAY && m->n == 2 && m->items[0].type == AM__JSON_STRING &&
                   m->items[1].type == AM__JSON_STRING) {
            rc = tok_add_merge(t, r, m->items[0].str, m->items[0].len, m->items[1].str,
                               m->items[1].len, where);
        } else {
            rc = tok_fail(t, AM_E_FORMAT,
                          "%s: merge %zu must be a string \"a b\" or a pair "
                          "[\"a\", \"b\"]",
                          where, r);
        }
        if (rc != AM_OK)
            goto done;
    }
    for (size_t i = 0; added && added->type == AM__JSON_ARRAY && i < added->n; i++) {
        const am__json *id = am__json_get(&added->items[i], "id");
        const am__json *content = am__json_get(&added->items[i], "content");
        if (!id || id->type != AM__JSON_NUMBER || !content || content->type != AM__JSON_STRING) {
            rc = tok_fail(t, AM_E_FORMAT,
                          "%s: added_tokens[%zu] needs \"id\" (number) and "
                          "\"content\" (string)",
                          where, i);
            goto done;
        }
        int64_t k = (int64_t)id->num;
        if (k < 0 || k >= t->vocab_size || !t->tokens[k].bytes) {
            rc = tok_fail(t, AM_E_FORMAT,
                          "%s: added token \"%s\" has id %lld, which is not in "
                          "the vocabulary",
                          where, content->str, (long long)k);
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
    if (!t->spm)
        goto done;
    const am__json *unk = am__json_get(model, "unk_token");
    if (unk && unk->type == AM__JSON_STRING) {
        t->unk = tok_lookup_spell(t, unk->str, unk->len);
        if (t->unk < 0) {
            rc = tok_fail(t, AM_E_FORMAT, "%s: the unknown token \"%s\" is not in the vocabulary",
                          where, unk->str);
            goto done;
        }
    }
    if (bos_name) {
        const am__json *ids = am__json_get(am__json_get(specials, bos_name->str), "ids");
        if (!ids || ids->type != AM__JSON_ARRAY || ids->n != 1 ||
            ids->items[0].type != AM__JSON_NUMBER || !tok_check_id(t, (int64_t)ids->items[0].num)) {
            rc = tok_fail(t, AM_E_FORMAT,
                          "%s: the post_processor's first token \"%s\" needs one "
                          "id in the vocabulary in its \"special_tokens\" entry",
                          where, bos_name->str);
            goto done;
        }
        t->bos = (int64_t)ids->items[0].num;
    }
    int fallbacks = 0;
    for (int b = 0; b < 256; b++)
        fallbacks += t->fallback_id[b] >= 0;
    if (t->byte_fallback && fallbacks < 256 && t->unk < 0) {
        rc = tok_fail(t, AM_E_FORMAT,
                      "%s: \"byte_fallback\" is set but the vocabulary has only "
                      "%d of the 256 <0xXX> tokens and no unknown token",
                      where, fallbacks);
        goto done;
    }
    snprintf(t->describe, sizeof t->describe,
             "SentencePiece-style BPE (U+2581 for a space%s%s%s%s)",
             t->strip_lead ? ", a space prepended" : "",
             t->byte_fallback ? ", byte fallback <0x00>..<0xFF>" : "", t->unk >= 0 ? ", <unk>" : "",
             t->bos >= 0 ? ", a start token first" : "");
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

int am_tokenizer_load_vocab_merges(const char *vocab_json, size_t vocab_len, const char *merges_txt,
                                   size_t merges_len, am_tokenizer **out)
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
        if (!sp || sp == line || (size_t)(sp - line) + 1 >= n ||
            memchr(sp + 1, ' ', n - (size_t)(sp - line) - 1))
            return tok_fail(t, AM_E_FORMAT,
                            "merges.txt line %zu (\"%.*s\"): expected two tokens "
                            "separated by one space",
                            line_no, (int)(n > 40 ? 40 : n), line);
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

int64_t am_tokenizer_bos(const am_tokenizer *t)
{
    return t ? t->bos : -1;
}

const char *am_tokenizer_describe(const am_tokenizer *t)
{
    return t ? t->describe : "no tokenizer";
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
        return tok_fail((am_tokenizer *)t, AM_E_ARG,
                        "token id %lld is not in the vocabulary "
                        "(ids 0..%lld)",
                        (long long)id, (long long)t->vocab_size - 1);
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
#define TOK_PUT(c)                                                                                 \
    do {                                                                                           \
        if (k + 1 < size)                                                                          \
            buf[k] = (c);                                                                          \
        k++;                                                                                       \
    } while (0)
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)b[i];
        uint32_t cp;
        size_t l = tok_utf8((const unsigned char *)b + i, n - i, &cp);
        const char *esc = c == '\n'   ? "\\n"
                          : c == '\t' ? "\\t"
                          : c == '\r' ? "\\r"
                          : c == '\\' ? "\\\\"
                                      : NULL;
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
        if (cp < r[mid][0])
            hi = mid;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

/* Unicode White_Space, what \s means in GPT-2's regex. */
static int tok_is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
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
    size_t off;  /* byte offset in the text */
    uint32_t cp; /* code point; 0xFFFFFFFF for an invalid byte */
    int klass;
} tok_char;

typedef struct {
    int64_t *ids; /* (n) output */
    size_t n, cap;
    int32_t *work; /* (work_cap) one piece's ids while merging */
    size_t work_cap;
    tok_char *chars; /* (chars_cap) one segment's characters */
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
        if (c == '\'' && i + 1 < nc &&
            (ch[i + 1].cp == 's' || ch[i + 1].cp == 't' || ch[i + 1].cp == 'm' ||
             ch[i + 1].cp == 'd')) {
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

/* ------------------------------------------------ SentencePiece-layout encode */

typedef struct {
    int32_t rank, pos, merged;
} tok_cand;

/* A min-heap of merge candidates by (rank, position), the tokenizers
 * library's order: the lowest-ranked merge first, the leftmost on a tie. */
static int tok_cand_less(const tok_cand *a, const tok_cand *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void tok_heap_push(tok_cand *h, size_t *n, tok_cand c)
{
    size_t i = (*n)++;
    while (i > 0 && tok_cand_less(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static tok_cand tok_heap_pop(tok_cand *h, size_t *n)
{
    tok_cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && tok_cand_less(&h[c + 1], &h[c]))
            c++;
        if (!tok_cand_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = last;
    return top;
}

typedef struct {
    int32_t *id, *prev, *next;
    tok_cand *heap;
    size_t cap;
} tok_word;

static void tok_word_pair(const am_tokenizer *t, tok_word *w, size_t *nh, int32_t a)
{
    if (a < 0 || w->next[a] < 0)
        return;
    const tok_merge_slot *m = tok_merge_find(t, w->id[a], w->id[w->next[a]]);
    if (m)
        tok_heap_push(w->heap, nh, (tok_cand){m->rank, a, m->merged});
}

/* BPE on one word s[0..n) of normalized text: its characters (an invalid
 * byte counts as one) are the first symbols, a character outside the
 * vocabulary becomes its <0xXX> tokens or <unk>; then merges by rank. */
static int tok_spm_word(am_tokenizer *t, tok_out *o, tok_word *w, const unsigned char *s, size_t n)
{
    if (n > w->cap) {
        size_t cap = n;
        int32_t *id = realloc(w->id, cap * sizeof *id);
        if (id)
            w->id = id;
        int32_t *pv = realloc(w->prev, cap * sizeof *pv);
        if (pv)
            w->prev = pv;
        int32_t *nx = realloc(w->next, cap * sizeof *nx);
        if (nx)
            w->next = nx;
        tok_cand *h = realloc(w->heap, 3 * cap * sizeof *h);
        if (h)
            w->heap = h;
        if (!id || !pv || !nx || !h)
            return AM_E_NOMEM;
        w->cap = cap;
    }
    size_t ns = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8(s + i, n - i, &cp);
        if (l == 0)
            l = 1;
        int32_t id = tok_lookup_spell(t, (const char *)s + i, l);
        if (id >= 0) {
            w->id[ns++] = id;
        } else {
            int all = t->byte_fallback;
            for (size_t k = 0; all && k < l; k++)
                all = t->fallback_id[s[i + k]] >= 0;
            if (all) {
                for (size_t k = 0; k < l; k++)
                    w->id[ns++] = t->fallback_id[s[i + k]];
            } else if (t->unk >= 0) {
                if (!(t->fuse_unk && ns && w->id[ns - 1] == t->unk))
                    w->id[ns++] = (int32_t)t->unk;
            } else {
                tok_fail(t, AM_E_ARG,
                         "the character \"%.*s\" is not in the vocabulary and the "
                         "tokenizer has neither byte fallback for it nor an unknown token",
                         (int)l, (const char *)s + i);
                return AM_E_ARG;
            }
        }
        i += l;
    }
    for (size_t i = 0; i < ns; i++) {
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < ns ? (int32_t)i + 1 : -1;
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < ns; i++)
        tok_word_pair(t, w, &nh, (int32_t)i);
    while (nh) {
        tok_cand c = tok_heap_pop(w->heap, &nh);
        int32_t a = c.pos, b = w->next[a];
        if (w->id[a] < 0 || b < 0)
            continue;
        const tok_merge_slot *m = tok_merge_find(t, w->id[a], w->id[b]);
        if (!m || m->merged != c.merged)
            continue; /* a stale candidate: a or b changed since it was pushed */
        w->id[a] = c.merged;
        w->id[b] = -1;
        w->next[a] = w->next[b];
        if (w->next[b] >= 0)
            w->prev[w->next[b]] = a;
        tok_word_pair(t, w, &nh, w->prev[a]);
        tok_word_pair(t, w, &nh, a);
    }
    for (int32_t i = ns ? 0 : -1; i >= 0; i = w->next[i])
        if (tok_emit(o, w->id[i]) != AM_OK)
            return AM_E_NOMEM;
    return AM_OK;
}

/* Appends s[0..n) to a growing buffer. */
static int tok_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 64;
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return AM_E_NOMEM;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    return AM_OK;
}

/* Every occurrence of a in s[0..*n) becomes b; s is replaced. */
static int tok_replace(char **s, size_t *n, const char *a, size_t an, const char *b, size_t bn)
{
    char *out = NULL;
    size_t len = 0, cap = 0;
    int rc = tok_put(&out, &len, &cap, "", 0);
    for (size_t i = 0; rc == AM_OK && i < *n;) {
        if (*n - i >= an && memcmp(*s + i, a, an) == 0) {
            rc = tok_put(&out, &len, &cap, b, bn);
            i += an;
        } else {
            rc = tok_put(&out, &len, &cap, *s + i, 1);
            i++;
        }
    }
    if (rc != AM_OK) {
        free(out);
        return rc;
    }
    free(*s);
    *s = out;
    *n = len;
    return AM_OK;
}

/* One segment of text between added tokens: normalizer, Metaspace, then BPE
 * on each word. `first`: the segment starts the text. `continues`: it
 * continues text encoded before (a piece of a long entry), so nothing is
 * prepended to it. */
static int tok_spm_segment(am_tokenizer *t, tok_out *o, tok_word *w, const char *text, size_t n,
                           int first, int continues)
{
    if (n == 0)
        return AM_OK;
    char *s = NULL;
    size_t len = 0, cap = 0;
    int rc = tok_put(&s, &len, &cap, text, n);
    for (size_t k = 0; rc == AM_OK && k < t->n_norm; k++) {
        const tok_norm *nm = &t->norm[k];
        if (nm->kind == TOK_NORM_REPLACE) {
            rc = tok_replace(&s, &len, nm->a, nm->an, nm->b, nm->bn);
        } else if (len && !continues) {
            char *p = NULL;
            size_t pl = 0, pc = 0;
            rc = tok_put(&p, &pl, &pc, nm->a, nm->an);
            if (rc == AM_OK)
                rc = tok_put(&p, &pl, &pc, s, len);
            free(s);
            s = p;
            len = pl;
        }
    }
    if (rc == AM_OK && t->meta) {
        rc = tok_replace(&s, &len, " ", 1, t->meta, t->meta_len);
        int starts = len >= t->meta_len && memcmp(s, t->meta, t->meta_len) == 0;
        if (rc == AM_OK && len && !starts && !continues &&
            (t->meta_prepend == TOK_PREPEND_ALWAYS ||
             (t->meta_prepend == TOK_PREPEND_FIRST && first))) {
            char *p = NULL;
            size_t pl = 0, pc = 0;
            rc = tok_put(&p, &pl, &pc, t->meta, t->meta_len);
            if (rc == AM_OK)
                rc = tok_put(&p, &pl, &pc, s, len);
            free(s);
            s = p;
            len = pl;
        }
    }
    /* Words: the whole segment, or with Metaspace's split one word starting
     * at each replacement character. */
    for (size_t i = 0; rc == AM_OK && i < len;) {
        size_t e = len;
        if (t->meta && t->meta_split)
            for (e = i + 1; e < len; e++)
                if (len - e >= t->meta_len && memcmp(s + e, t->meta, t->meta_len) == 0)
                    break;
        rc = tok_spm_word(t, o, w, (const unsigned char *)s + i, e - i);
        i = e;
    }
    free(s);
    return rc;
}

int am_tokenizer_encode(am_tokenizer *t, const char *text, size_t len, int64_t **ids, size_t *n)
{
    return am__tokenizer_encode_piece(t, text, len, 0, ids, n);
}

int am__tokenizer_encode_piece(am_tokenizer *t, const char *text, size_t len, int continues,
                               int64_t **ids, size_t *n)
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
    tok_word w = {0};
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
        rc = t->spm ? tok_spm_segment(t, &o, &w, s, (size_t)(seg_end - s), s == text,
                                      continues && s == text)
                    : tok_encode_segment(t, &o, (const unsigned char *)s, (size_t)(seg_end - s));
        if (rc == AM_OK && hit) {
            rc = tok_emit(&o, hit_id);
            s = hit + t->tokens[hit_id].len;
        } else {
            s = seg_end;
        }
    }
    free(o.work);
    free(o.chars);
    free(w.id);
    free(w.prev);
    free(w.next);
    free(w.heap);
    if (rc != AM_OK) {
        free(o.ids);
        return rc == AM_E_NOMEM ? tok_fail(t, rc, "out of memory encoding %zu bytes", len) : rc;
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
            return tok_fail(t, AM_E_ARG,
                            "token id %lld at position %zu is not in the "
                            "vocabulary (ids 0..%lld)",
                            (long long)ids[i], i, (long long)t->vocab_size - 1);
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
    if (t->strip_lead && k && out[0] == ' ') {
        /* the space encoding prepended (the decoders Strip / Metaspace) */
        memmove(out, out + 1, k);
        k--;
    }
    *text = out;
    *len = k;
    return AM_OK;
}
