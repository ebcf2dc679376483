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

#define AM_DELIM "<IDS|MSG>"

typedef struct am_buf {
    unsigned char *data;
    size_t len;
} am_buf;

/* An owned list of frames. Zero-initialise before use. */
typedef struct am_frames {
    am_buf *v;
    size_t n, cap;
} am_frames;

void am_frames_push(am_frames *f, const void *data, size_t len); /* copies */
void am_frames_push_take(am_frames *f, void *data, size_t len);  /* takes malloc'd data */
void am_frames_push_str(am_frames *f, const char *s);
void am_frames_free(am_frames *f);

/* ---- signing ---------------------------------------------------------- */

typedef struct am_signer {
    unsigned char *key;
    size_t keylen; /* 0: signing disabled (no-op signer) */
} am_signer;

void am_signer_init(am_signer *s, const void *key, size_t keylen);
void am_signer_free(am_signer *s);
bool am_signer_enabled(const am_signer *s);
/* hex gets 64 hex digits and a NUL, or "" when signing is disabled. */
void am_signer_sign(const am_signer *s, const am_buf parts[4], char hex[65]);
/* Constant-time check of a received hex signature (case-insensitive).
 * With signing disabled every signature is accepted. */
bool am_signer_verify(const am_signer *s, const am_buf parts[4], const am_buf *sig);

void am_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                    unsigned char out[32]);

/* ---- replay protection ------------------------------------------------ */

/* Two generations of open-addressing sets of 32-byte digests: when the
 * current one holds `limit` entries it becomes the old one and a fresh one
 * starts. At least the last `limit` signatures are always remembered and
 * memory stays bounded. */
typedef struct am_replay {
    unsigned char *table[2]; /* cap slots of 32 bytes each */
    unsigned char *used[2];
    size_t cap, limit, count;
    int cur;
} am_replay;

void am_replay_init(am_replay *r, size_t limit);
void am_replay_free(am_replay *r);
/* True when digest was seen before; otherwise remembers it. */
bool am_replay_check_add(am_replay *r, const unsigned char digest[32]);

/* ---- split / decode / encode ------------------------------------------ */

/* Positions inside a frame list; pointers into it, nothing owned. */
typedef struct am_wire_view {
    size_t n_idents; /* frames before the delimiter */
    const am_buf *idents;
    const am_buf *sig;
    const am_buf *parts; /* header, parent_header, metadata, content */
    size_t n_buffers;
    const am_buf *buffers;
} am_wire_view;

/* 0 on success; on failure -1 and *err names the problem (static text). */
int am_wire_split(const am_frames *f, am_wire_view *v, const char **err);

typedef struct am_msg {
    am_frames idents; /* copied routing identities */
    cJSON *header, *parent, *metadata, *content;
    const char *msg_type; /* inside header */
    const char *msg_id;   /* inside header */
    char *header_json;    /* header re-serialised: the parent_header of replies */
} am_msg;

/* Full check of a received message: delimiter and frames, signature,
 * replay, and JSON (four objects, header with string msg_id and msg_type).
 * 0 on success; -1 with *err a malloc'd reason. replay may be NULL. */
int am_wire_decode(const am_frames *f, const am_signer *s, am_replay *replay, am_msg *out,
                   char **err);
void am_msg_free(am_msg *m);

/* Appends a signed message to out (which may already hold frames). */
void am_wire_encode(const am_signer *s, const am_buf *idents, size_t n_idents, const char *header,
                    const char *parent, const char *metadata, const char *content,
                    am_frames *out);

#endif
