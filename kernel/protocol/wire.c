#include "wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "util.h"

void mg_frames_push_take(mg_frames *f, void *data, size_t len)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->v = mg_xrealloc(f->v, f->cap * sizeof *f->v);
    }
    f->v[f->n].data = data;
    f->v[f->n].len = len;
    f->n++;
}

void mg_frames_push(mg_frames *f, const void *data, size_t len)
{
    unsigned char *copy = mg_xmalloc(len ? len : 1);
    if (len)
        memcpy(copy, data, len);
    mg_frames_push_take(f, copy, len);
}

void mg_frames_push_str(mg_frames *f, const char *s)
{
    mg_frames_push(f, s, strlen(s));
}

void mg_frames_free(mg_frames *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].data);
    free(f->v);
    f->v = NULL;
    f->n = f->cap = 0;
}

/* ---- signing ---------------------------------------------------------- */

void mg_signer_init(mg_signer *s, const void *key, size_t keylen)
{
    s->keylen = keylen;
    s->key = NULL;
    if (keylen) {
        s->key = mg_xmalloc(keylen);
        memcpy(s->key, key, keylen);
    }
}

void mg_signer_free(mg_signer *s)
{
    if (s->key) {
        sodium_memzero(s->key, s->keylen);
        free(s->key);
    }
    s->key = NULL;
    s->keylen = 0;
}

bool mg_signer_enabled(const mg_signer *s)
{
    return s->keylen > 0;
}

void mg_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                    unsigned char out[32])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, msg, msglen);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

static void digest_parts(const mg_signer *s, const mg_buf parts[4], unsigned char out[32])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, s->key, s->keylen);
    for (int i = 0; i < 4; i++)
        crypto_auth_hmacsha256_update(&st, parts[i].data, parts[i].len);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

void mg_signer_sign(const mg_signer *s, const mg_buf parts[4], char hex[65])
{
    if (!mg_signer_enabled(s)) {
        hex[0] = '\0';
        return;
    }
    unsigned char d[32];
    digest_parts(s, parts, d);
    sodium_bin2hex(hex, 65, d, sizeof d);
}

/* Parses 64 hex digits (either case) into 32 bytes. */
static bool hex_to_digest(const mg_buf *sig, unsigned char out[32])
{
    if (!sig || sig->len != 64)
        return false;
    size_t bin_len = 0;
    if (sodium_hex2bin(out, 32, (const char *)sig->data, sig->len, NULL, &bin_len, NULL) != 0)
        return false;
    return bin_len == 32;
}

bool mg_signer_verify(const mg_signer *s, const mg_buf parts[4], const mg_buf *sig)
{
    if (!mg_signer_enabled(s))
        return true;
    unsigned char want[32], got[32];
    if (!hex_to_digest(sig, got))
        return false;
    digest_parts(s, parts, want);
    return sodium_memcmp(want, got, sizeof want) == 0;
}

/* ---- replay protection ------------------------------------------------ */

void mg_replay_init(mg_replay *r, size_t limit)
{
    if (limit < 16)
        limit = 16;
    size_t cap = 32;
    while (cap < 2 * limit)
        cap *= 2;
    r->cap = cap;
    r->limit = limit;
    r->count = 0;
    r->cur = 0;
    for (int g = 0; g < 2; g++) {
        r->table[g] = mg_xcalloc(cap, 32);
        r->used[g] = mg_xcalloc(cap, 1);
    }
}

void mg_replay_free(mg_replay *r)
{
    for (int g = 0; g < 2; g++) {
        free(r->table[g]);
        free(r->used[g]);
        r->table[g] = NULL;
        r->used[g] = NULL;
    }
}

/* HMAC output is uniformly distributed, so its first bytes are the hash. */
static size_t slot_of(const mg_replay *r, const unsigned char d[32])
{
    uint64_t h;
    memcpy(&h, d, sizeof h);
    return (size_t)(h & (uint64_t)(r->cap - 1));
}

static bool table_has(const mg_replay *r, int g, const unsigned char d[32])
{
    for (size_t i = slot_of(r, d), probes = 0; probes < r->cap;
         i = (i + 1) & (r->cap - 1), probes++) {
        if (!r->used[g][i])
            return false;
        if (memcmp(r->table[g] + 32 * i, d, 32) == 0)
            return true;
    }
    return false;
}

bool mg_replay_check_add(mg_replay *r, const unsigned char digest[32])
{
    if (table_has(r, 0, digest) || table_has(r, 1, digest))
        return true;
    if (r->count >= r->limit) {
        r->cur ^= 1;
        memset(r->used[r->cur], 0, r->cap);
        r->count = 0;
    }
    int g = r->cur;
    size_t i = slot_of(r, digest);
    while (r->used[g][i])
        i = (i + 1) & (r->cap - 1);
    memcpy(r->table[g] + 32 * i, digest, 32);
    r->used[g][i] = 1;
    r->count++;
    return false;
}

/* ---- split / decode / encode ------------------------------------------ */

int mg_wire_split(const mg_frames *f, mg_wire_view *v, const char **err)
{
    static const size_t dlen = sizeof MG_DELIM - 1;
    size_t d = 0;
    while (d < f->n && !(f->v[d].len == dlen && memcmp(f->v[d].data, MG_DELIM, dlen) == 0))
        d++;
    if (d == f->n) {
        *err = "no <IDS|MSG> delimiter";
        return -1;
    }
    if (f->n - d - 1 < 5) {
        *err = "truncated message: fewer than 5 frames after <IDS|MSG>";
        return -1;
    }
    v->n_idents = d;
    v->idents = f->v;
    v->sig = &f->v[d + 1];
    v->parts = &f->v[d + 2];
    v->n_buffers = f->n - d - 6;
    v->buffers = &f->v[d + 6];
    return 0;
}

/* A JSON object and nothing but whitespace after it. */
static cJSON *parse_object(const mg_buf *b)
{
    const char *end = NULL;
    const char *text = (const char *)b->data;
    if (b->len == 0)
        return NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, b->len, &end, 0);
    if (!j)
        return NULL;
    size_t used = end ? (size_t)(end - text) : b->len;
    while (used < b->len &&
           (text[used] == ' ' || text[used] == '\n' || text[used] == '\r' || text[used] == '\t'))
        used++;
    if (!cJSON_IsObject(j) || used < b->len) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

int mg_wire_decode(const mg_frames *f, const mg_signer *s, mg_replay *replay, mg_msg *out,
                   char **err)
{
    memset(out, 0, sizeof *out);
    mg_wire_view v;
    const char *why = NULL;
    if (mg_wire_split(f, &v, &why) != 0) {
        *err = mg_strdup(why);
        return -1;
    }
    if (mg_signer_enabled(s)) {
        if (v.sig->len == 0) {
            *err = mg_strdup("missing signature");
            return -1;
        }
        if (!mg_signer_verify(s, v.parts, v.sig)) {
            *err = mg_strdup("bad signature");
            return -1;
        }
        unsigned char d[32];
        hex_to_digest(v.sig, d);
        if (replay && mg_replay_check_add(replay, d)) {
            *err = mg_strdup("replayed message (signature seen before)");
            return -1;
        }
    }
    static const char *const names[4] = {"header", "parent_header", "metadata", "content"};
    cJSON *obj[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++) {
        obj[i] = parse_object(&v.parts[i]);
        if (!obj[i]) {
            for (int k = 0; k < i; k++)
                cJSON_Delete(obj[k]);
            *err = mg_asprintf("malformed JSON in %s (not a JSON object)", names[i]);
            return -1;
        }
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj[0], "msg_type");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj[0], "msg_id");
    if (!cJSON_IsString(type) || !cJSON_IsString(id) || !type->valuestring[0]) {
        for (int k = 0; k < 4; k++)
            cJSON_Delete(obj[k]);
        *err = mg_strdup("header without string msg_type and msg_id");
        return -1;
    }
    out->header = obj[0];
    out->parent = obj[1];
    out->metadata = obj[2];
    out->content = obj[3];
    out->msg_type = type->valuestring;
    out->msg_id = id->valuestring;
    char *hj = cJSON_PrintUnformatted(out->header);
    out->header_json = mg_strdup(hj ? hj : "{}");
    cJSON_free(hj);
    for (size_t i = 0; i < v.n_idents; i++)
        mg_frames_push(&out->idents, v.idents[i].data, v.idents[i].len);
    return 0;
}

void mg_msg_free(mg_msg *m)
{
    mg_frames_free(&m->idents);
    cJSON_Delete(m->header);
    cJSON_Delete(m->parent);
    cJSON_Delete(m->metadata);
    cJSON_Delete(m->content);
    free(m->header_json);
    memset(m, 0, sizeof *m);
}

void mg_wire_encode(const mg_signer *s, const mg_buf *idents, size_t n_idents, const char *header,
                    const char *parent, const char *metadata, const char *content, mg_frames *out)
{
    const char *texts[4] = {header, parent, metadata, content};
    mg_buf parts[4];
    for (int i = 0; i < 4; i++) {
        parts[i].data = (unsigned char *)(uintptr_t)texts[i];
        parts[i].len = strlen(texts[i]);
    }
    char hex[65];
    mg_signer_sign(s, parts, hex);
    for (size_t i = 0; i < n_idents; i++)
        mg_frames_push(out, idents[i].data, idents[i].len);
    mg_frames_push_str(out, MG_DELIM);
    mg_frames_push_str(out, hex);
    for (int i = 0; i < 4; i++)
        mg_frames_push(out, parts[i].data, parts[i].len);
}
