/* The Jupyter wire format (messaging spec 5.3), independent of ZeroMQ:
 *
 *   [identities...] "<IDS|MSG>" signature header parent_header metadata content [buffers...]
 *
 * The signature is the lowercase hex HMAC-SHA256 of the four JSON frames,
 * keyed with the connection file's key; an empty key disables signing.
 * Received signatures are remembered in a bounded set so that a replayed
 * message is dropped. */
#ifndef ACTMAX_WIRE_H
#define ACTMAX_WIRE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#define MG_DELIM "<IDS|MSG>"

typedef struct mg_buf {
    unsigned char *data;
    size_t len;
} mg_buf;

/* An owned list of frames. Zero-initialise before use. */
typedef struct mg_frames {
    mg_buf *v;
    size_t n, cap;
} mg_frames;

void mg_frames_push(mg_frames *f, const void *data, size_t len); /* copies */
void mg_frames_push_take(mg_frames *f, void *data, size_t len);  /* takes malloc'd data */
void mg_frames_push_str(mg_frames *f, const char *s);
void mg_frames_free(mg_frames *f);

/* ---- signing ---------------------------------------------------------- */

typedef struct mg_signer {
    unsigned char *key;
    size_t keylen; /* 0: signing disabled (no-op signer) */
} mg_signer;

void mg_signer_init(mg_signer *s, const void *key, size_t keylen);
void mg_signer_free(mg_signer *s);
bool mg_signer_enabled(const mg_signer *s);
/* hex gets 64 hex digits and a NUL, or "" when signing is disabled. */
void mg_signer_sign(const mg_signer *s, const mg_buf parts[4], char hex[65]);
/* Constant-time check of a received hex signature (case-insensitive).
 * With signing disabled every signature is accepted. */
bool mg_signer_verify(const mg_signer *s, const mg_buf parts[4], const mg_buf *sig);

void mg_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                    unsigned char out[32]);

/* ---- replay protection ------------------------------------------------ */

/* Two generations of open-addressing sets of 32-byte digests: when the
 * current one holds `limit` entries it becomes the old one and a fresh one
 * starts. At least the last `limit` signatures are always remembered and
 * memory stays bounded. */
typedef struct mg_replay {
    unsigned char *table[2]; /* cap slots of 32 bytes each */
    unsigned char *used[2];
    size_t cap, limit, count;
    int cur;
} mg_replay;

void mg_replay_init(mg_replay *r, size_t limit);
void mg_replay_free(mg_replay *r);
/* True when digest was seen before; otherwise remembers it. */
bool mg_replay_check_add(mg_replay *r, const unsigned char digest[32]);

/* ---- split / decode / encode ------------------------------------------ */

/* Positions inside a frame list; pointers into it, nothing owned. */
typedef struct mg_wire_view {
    size_t n_idents; /* frames before the delimiter */
    const mg_buf *idents;
    const mg_buf *sig;
    const mg_buf *parts; /* header, parent_header, metadata, content */
    size_t n_buffers;
    const mg_buf *buffers;
} mg_wire_view;

/* 0 on success; on failure -1 and *err names the problem (static text). */
int mg_wire_split(const mg_frames *f, mg_wire_view *v, const char **err);

typedef struct mg_msg {
    mg_frames idents; /* copied routing identities */
    cJSON *header, *parent, *metadata, *content;
    const char *msg_type; /* inside header */
    const char *msg_id;   /* inside header */
    char *header_json;    /* header re-serialised: the parent_header of replies */
} mg_msg;

/* Full check of a received message: delimiter and frames, signature,
 * replay, and JSON (four objects, header with string msg_id and msg_type).
 * 0 on success; -1 with *err a malloc'd reason. replay may be NULL. */
int mg_wire_decode(const mg_frames *f, const mg_signer *s, mg_replay *replay, mg_msg *out,
                   char **err);
void mg_msg_free(mg_msg *m);

/* Appends a signed message to out (which may already hold frames). */
void mg_wire_encode(const mg_signer *s, const mg_buf *idents, size_t n_idents, const char *header,
                    const char *parent, const char *metadata, const char *content, mg_frames *out);

#endif
