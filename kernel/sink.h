/* The output sink: everything a magic shows goes through these calls, never
 * through protocol JSON built by hand. The kernel's sink turns them into
 * iopub messages parented to the current request (kernel.c); the command
 * line's sink prints text and writes other outputs to files (cli.c).
 *
 * A bundle is a MIME bundle plus per-type metadata. Binary types (image/png)
 * hold raw bytes; each sink encodes them as it needs (base64 on the wire, a
 * file on the command line). */
#ifndef ACTMAX_SINK_H
#define ACTMAX_SINK_H

#include <stdbool.h>
#include <stddef.h>

typedef struct am_bundle am_bundle;

typedef enum am_data_kind {
    AM_DATA_TEXT,   /* UTF-8 text (text/plain, text/html, image/svg+xml, ...) */
    AM_DATA_BINARY, /* raw bytes, base64-encoded on the wire (image/png) */
    AM_DATA_JSON    /* JSON text embedded as a value (application/json) */
} am_data_kind;

typedef struct am_bundle_item {
    char *mime;
    unsigned char *data;
    size_t len;
    am_data_kind kind;
} am_bundle_item;

am_bundle *am_bundle_new(void);
void am_bundle_free(am_bundle *b);
void am_bundle_text(am_bundle *b, const char *mime, const char *text);
void am_bundle_bytes(am_bundle *b, const char *mime, const void *data, size_t len);
void am_bundle_json(am_bundle *b, const char *mime, const char *json_text);
/* Metadata for one MIME type (mime != NULL: {"image/png": {"width": 64}})
 * or for the whole output (mime == NULL: {"isolated": true}). */
void am_bundle_meta_num(am_bundle *b, const char *mime, const char *key, double value);
void am_bundle_meta_str(am_bundle *b, const char *mime, const char *key, const char *value);
void am_bundle_meta_bool(am_bundle *b, const char *mime, const char *key, bool value);

size_t am_bundle_count(const am_bundle *b);
const am_bundle_item *am_bundle_item_at(const am_bundle *b, size_t i);
const am_bundle_item *am_bundle_find(const am_bundle *b, const char *mime);
/* The metadata as a JSON object text (malloc'd), "{}" when none. */
char *am_bundle_metadata_json(const am_bundle *b);

typedef struct am_sink_ops {
    /* name is "stdout" or "stderr". */
    void (*stream)(void *ctx, const char *name, const char *text);
    /* display_data; with update, update_display_data (display_id required). */
    void (*display)(void *ctx, const am_bundle *b, const char *display_id, bool update);
    void (*result)(void *ctx, const am_bundle *b); /* execute_result */
    void (*error)(void *ctx, const char *ename, const char *evalue, const char *const *traceback,
                  size_t n_traceback);
    void (*clear)(void *ctx, bool wait);
    /* Help text for the pager (the `page` payload of execute_reply). */
    void (*page)(void *ctx, const char *text);
    /* True when the running command should stop (interrupt, shutdown). The
     * kernel's sink also serves the control channel here. */
    bool (*should_stop)(void *ctx);
    /* Waits up to seconds, serving control and returning early (true) when
     * the command should stop. */
    bool (*wait)(void *ctx, double seconds);
} am_sink_ops;

typedef struct am_sink {
    const am_sink_ops *ops;
    void *ctx;
} am_sink;

/* Convenience wrappers used by magics and the interpreter. */
void am_sink_stream(const am_sink *s, const char *name, const char *text);
void am_sink_printf(const am_sink *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void am_sink_display(const am_sink *s, const am_bundle *b, const char *display_id);
void am_sink_update(const am_sink *s, const am_bundle *b, const char *display_id);
void am_sink_result(const am_sink *s, const am_bundle *b);
void am_sink_error(const am_sink *s, const char *ename, const char *evalue,
                   const char *const *traceback, size_t n_traceback);
void am_sink_clear(const am_sink *s, bool wait);
void am_sink_page(const am_sink *s, const char *text);
bool am_sink_should_stop(const am_sink *s);
bool am_sink_wait(const am_sink *s, double seconds);

/* A sink that records calls as text, for unit tests and as a fallback. */
typedef struct am_capture {
    char *out;     /* stdout text, results and displays as text/plain */
    char *err;     /* stderr text and errors ("ename: evalue") */
    char *page;
    int n_errors;
    bool stop;     /* value returned by should_stop */
} am_capture;
am_sink am_capture_sink(am_capture *c);
void am_capture_free(am_capture *c);

#endif
