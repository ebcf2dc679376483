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

typedef struct mg_bundle mg_bundle;

/* Every display id of live progress (a display updated in place while a
 * command runs) starts with this; the command line's sink leaves such
 * displays out, as only their final state matters there. */
#define MG_LIVE_PREFIX "actmax-live-"

typedef enum mg_data_kind {
    MG_DATA_TEXT,   /* UTF-8 text (text/plain, text/html, image/svg+xml, ...) */
    MG_DATA_BINARY, /* raw bytes, base64-encoded on the wire (image/png) */
    MG_DATA_JSON    /* JSON text embedded as a value (application/json) */
} mg_data_kind;

typedef struct mg_bundle_item {
    char *mime;
    unsigned char *data;
    size_t len;
    mg_data_kind kind;
} mg_bundle_item;

mg_bundle *mg_bundle_new(void);
void mg_bundle_free(mg_bundle *b);
void mg_bundle_text(mg_bundle *b, const char *mime, const char *text);
void mg_bundle_bytes(mg_bundle *b, const char *mime, const void *data, size_t len);
void mg_bundle_json(mg_bundle *b, const char *mime, const char *json_text);
/* Metadata for one MIME type (mime != NULL: {"image/png": {"width": 64}})
 * or for the whole output (mime == NULL: {"isolated": true}). */
void mg_bundle_meta_num(mg_bundle *b, const char *mime, const char *key, double value);
void mg_bundle_meta_str(mg_bundle *b, const char *mime, const char *key, const char *value);
void mg_bundle_meta_bool(mg_bundle *b, const char *mime, const char *key, bool value);

size_t mg_bundle_count(const mg_bundle *b);
const mg_bundle_item *mg_bundle_item_at(const mg_bundle *b, size_t i);
const mg_bundle_item *mg_bundle_find(const mg_bundle *b, const char *mime);
/* The metadata as a JSON object text (malloc'd), "{}" when none. */
char *mg_bundle_metadata_json(const mg_bundle *b);

typedef struct mg_sink_ops {
    /* name is "stdout" or "stderr". */
    void (*stream)(void *ctx, const char *name, const char *text);
    /* display_data; with update, update_display_data (display_id required). */
    void (*display)(void *ctx, const mg_bundle *b, const char *display_id, bool update);
    void (*result)(void *ctx, const mg_bundle *b); /* execute_result */
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
} mg_sink_ops;

typedef struct mg_sink {
    const mg_sink_ops *ops;
    void *ctx;
} mg_sink;

/* Convenience wrappers used by magics and the interpreter. */
void mg_sink_stream(const mg_sink *s, const char *name, const char *text);
void mg_sink_printf(const mg_sink *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void mg_sink_display(const mg_sink *s, const mg_bundle *b, const char *display_id);
void mg_sink_update(const mg_sink *s, const mg_bundle *b, const char *display_id);
void mg_sink_result(const mg_sink *s, const mg_bundle *b);
void mg_sink_error(const mg_sink *s, const char *ename, const char *evalue,
                   const char *const *traceback, size_t n_traceback);
void mg_sink_clear(const mg_sink *s, bool wait);
void mg_sink_page(const mg_sink *s, const char *text);
bool mg_sink_should_stop(const mg_sink *s);
bool mg_sink_wait(const mg_sink *s, double seconds);

/* A sink that records calls as text, for unit tests and as a fallback. */
typedef struct mg_capture {
    char *out; /* stdout text, results and displays as text/plain */
    char *err; /* stderr text and errors ("ename: evalue") */
    char *page;
    int n_errors;
    bool stop; /* value returned by should_stop */
} mg_capture;
mg_sink mg_capture_sink(mg_capture *c);
void mg_capture_free(mg_capture *c);

#endif
