#include "sink.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util.h"

struct am_bundle {
    am_bundle_item *items;
    size_t n, cap;
    cJSON *meta; /* object, created on first use */
};

am_bundle *am_bundle_new(void)
{
    return am_xcalloc(1, sizeof(am_bundle));
}

void am_bundle_free(am_bundle *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->items[i].mime);
        free(b->items[i].data);
    }
    free(b->items);
    cJSON_Delete(b->meta);
    free(b);
}

static void add_item(am_bundle *b, const char *mime, const void *data, size_t len, am_data_kind k)
{
    /* A second item of the same type replaces the first. */
    for (size_t i = 0; i < b->n; i++) {
        if (strcmp(b->items[i].mime, mime) == 0) {
            free(b->items[i].data);
            b->items[i].data = (unsigned char *)am_strndup(data, len);
            b->items[i].len = len;
            b->items[i].kind = k;
            return;
        }
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 4;
        b->items = am_xrealloc(b->items, b->cap * sizeof *b->items);
    }
    am_bundle_item *it = &b->items[b->n++];
    it->mime = am_strdup(mime);
    it->data = (unsigned char *)am_strndup(data, len); /* NUL-terminated copy */
    it->len = len;
    it->kind = k;
}

void am_bundle_text(am_bundle *b, const char *mime, const char *text)
{
    add_item(b, mime, text, strlen(text), AM_DATA_TEXT);
}

void am_bundle_bytes(am_bundle *b, const char *mime, const void *data, size_t len)
{
    add_item(b, mime, data, len, AM_DATA_BINARY);
}

void am_bundle_json(am_bundle *b, const char *mime, const char *json_text)
{
    add_item(b, mime, json_text, strlen(json_text), AM_DATA_JSON);
}

static cJSON *meta_target(am_bundle *b, const char *mime)
{
    if (!b->meta)
        b->meta = cJSON_CreateObject();
    if (!mime)
        return b->meta;
    cJSON *o = cJSON_GetObjectItemCaseSensitive(b->meta, mime);
    if (!cJSON_IsObject(o)) {
        cJSON_DeleteItemFromObjectCaseSensitive(b->meta, mime);
        o = cJSON_AddObjectToObject(b->meta, mime);
    }
    return o;
}

static void meta_set(am_bundle *b, const char *mime, const char *key, cJSON *v)
{
    cJSON *o = meta_target(b, mime);
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    cJSON_AddItemToObject(o, key, v);
}

void am_bundle_meta_num(am_bundle *b, const char *mime, const char *key, double value)
{
    meta_set(b, mime, key, cJSON_CreateNumber(value));
}

void am_bundle_meta_str(am_bundle *b, const char *mime, const char *key, const char *value)
{
    meta_set(b, mime, key, cJSON_CreateString(value));
}

void am_bundle_meta_bool(am_bundle *b, const char *mime, const char *key, bool value)
{
    meta_set(b, mime, key, cJSON_CreateBool(value));
}

size_t am_bundle_count(const am_bundle *b)
{
    return b->n;
}

const am_bundle_item *am_bundle_item_at(const am_bundle *b, size_t i)
{
    return i < b->n ? &b->items[i] : NULL;
}

const am_bundle_item *am_bundle_find(const am_bundle *b, const char *mime)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->items[i].mime, mime) == 0)
            return &b->items[i];
    return NULL;
}

char *am_bundle_metadata_json(const am_bundle *b)
{
    if (!b->meta)
        return am_strdup("{}");
    char *p = cJSON_PrintUnformatted(b->meta);
    char *r = am_strdup(p ? p : "{}");
    cJSON_free(p);
    return r;
}

/* ---- wrappers ---------------------------------------------------------- */

void am_sink_stream(const am_sink *s, const char *name, const char *text)
{
    if (text && text[0])
        s->ops->stream(s->ctx, name, text);
}

void am_sink_printf(const am_sink *s, const char *fmt, ...)
{
    am_str t = AM_STR_INIT;
    va_list ap;
    va_start(ap, fmt);
    am_str_vaddf(&t, fmt, ap);
    va_end(ap);
    am_sink_stream(s, "stdout", am_str_cstr(&t));
    am_str_free(&t);
}

void am_sink_display(const am_sink *s, const am_bundle *b, const char *display_id)
{
    s->ops->display(s->ctx, b, display_id, false);
}

void am_sink_update(const am_sink *s, const am_bundle *b, const char *display_id)
{
    s->ops->display(s->ctx, b, display_id, true);
}

void am_sink_result(const am_sink *s, const am_bundle *b)
{
    s->ops->result(s->ctx, b);
}

void am_sink_error(const am_sink *s, const char *ename, const char *evalue,
                   const char *const *traceback, size_t n_traceback)
{
    s->ops->error(s->ctx, ename, evalue, traceback, n_traceback);
}

void am_sink_clear(const am_sink *s, bool wait)
{
    s->ops->clear(s->ctx, wait);
}

void am_sink_page(const am_sink *s, const char *text)
{
    s->ops->page(s->ctx, text);
}

bool am_sink_should_stop(const am_sink *s)
{
    return s->ops->should_stop(s->ctx);
}

bool am_sink_wait(const am_sink *s, double seconds)
{
    return s->ops->wait(s->ctx, seconds);
}

/* ---- capture sink ------------------------------------------------------ */

static void cat(char **dst, const char *text)
{
    size_t a = *dst ? strlen(*dst) : 0, b = strlen(text);
    *dst = am_xrealloc(*dst, a + b + 1);
    memcpy(*dst + a, text, b + 1);
}

static void cap_stream(void *ctx, const char *name, const char *text)
{
    am_capture *c = ctx;
    cat(strcmp(name, "stderr") == 0 ? &c->err : &c->out, text);
}

static void cap_bundle(am_capture *c, const am_bundle *b)
{
    const am_bundle_item *it = am_bundle_find(b, "text/plain");
    if (it) {
        cat(&c->out, (const char *)it->data);
        cat(&c->out, "\n");
    }
}

static void cap_display(void *ctx, const am_bundle *b, const char *display_id, bool update)
{
    (void)display_id;
    (void)update;
    cap_bundle(ctx, b);
}

static void cap_result(void *ctx, const am_bundle *b)
{
    cap_bundle(ctx, b);
}

static void cap_error(void *ctx, const char *ename, const char *evalue, const char *const *tb,
                      size_t n)
{
    am_capture *c = ctx;
    (void)tb;
    (void)n;
    c->n_errors++;
    cat(&c->err, ename);
    cat(&c->err, ": ");
    cat(&c->err, evalue);
    cat(&c->err, "\n");
}

static void cap_clear(void *ctx, bool wait)
{
    (void)ctx;
    (void)wait;
}

static void cap_page(void *ctx, const char *text)
{
    am_capture *c = ctx;
    cat(&c->page, text);
}

static bool cap_should_stop(void *ctx)
{
    return ((am_capture *)ctx)->stop;
}

static bool cap_wait(void *ctx, double seconds)
{
    (void)seconds;
    return ((am_capture *)ctx)->stop;
}

static const am_sink_ops CAPTURE_OPS = {cap_stream, cap_display, cap_result, cap_error,
                                        cap_clear,  cap_page,    cap_should_stop, cap_wait};

am_sink am_capture_sink(am_capture *c)
{
    am_sink s = {&CAPTURE_OPS, c};
    return s;
}

void am_capture_free(am_capture *c)
{
    free(c->out);
    free(c->err);
    free(c->page);
    c->out = c->err = c->page = NULL;
}
