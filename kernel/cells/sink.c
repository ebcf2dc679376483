#include "sink.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util.h"

struct mg_bundle {
    mg_bundle_item *items;
    size_t n, cap;
    cJSON *meta; /* object, created on first use */
};

mg_bundle *mg_bundle_new(void)
{
    return mg_xcalloc(1, sizeof(mg_bundle));
}

void mg_bundle_free(mg_bundle *b)
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

static void add_item(mg_bundle *b, const char *mime, const void *data, size_t len, mg_data_kind k)
{
    /* A second item of the same type replaces the first. */
    for (size_t i = 0; i < b->n; i++) {
        if (strcmp(b->items[i].mime, mime) == 0) {
            free(b->items[i].data);
            b->items[i].data = (unsigned char *)mg_strndup(data, len);
            b->items[i].len = len;
            b->items[i].kind = k;
            return;
        }
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 4;
        b->items = mg_xrealloc(b->items, b->cap * sizeof *b->items);
    }
    mg_bundle_item *it = &b->items[b->n++];
    it->mime = mg_strdup(mime);
    it->data = (unsigned char *)mg_strndup(data, len); /* NUL-terminated copy */
    it->len = len;
    it->kind = k;
}

void mg_bundle_text(mg_bundle *b, const char *mime, const char *text)
{
    add_item(b, mime, text, strlen(text), MG_DATA_TEXT);
}

void mg_bundle_bytes(mg_bundle *b, const char *mime, const void *data, size_t len)
{
    add_item(b, mime, data, len, MG_DATA_BINARY);
}

void mg_bundle_json(mg_bundle *b, const char *mime, const char *json_text)
{
    add_item(b, mime, json_text, strlen(json_text), MG_DATA_JSON);
}

static cJSON *meta_target(mg_bundle *b, const char *mime)
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

static void meta_set(mg_bundle *b, const char *mime, const char *key, cJSON *v)
{
    cJSON *o = meta_target(b, mime);
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    cJSON_AddItemToObject(o, key, v);
}

void mg_bundle_meta_num(mg_bundle *b, const char *mime, const char *key, double value)
{
    meta_set(b, mime, key, cJSON_CreateNumber(value));
}

void mg_bundle_meta_str(mg_bundle *b, const char *mime, const char *key, const char *value)
{
    meta_set(b, mime, key, cJSON_CreateString(value));
}

void mg_bundle_meta_bool(mg_bundle *b, const char *mime, const char *key, bool value)
{
    meta_set(b, mime, key, cJSON_CreateBool(value));
}

size_t mg_bundle_count(const mg_bundle *b)
{
    return b->n;
}

const mg_bundle_item *mg_bundle_item_at(const mg_bundle *b, size_t i)
{
    return i < b->n ? &b->items[i] : NULL;
}

const mg_bundle_item *mg_bundle_find(const mg_bundle *b, const char *mime)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->items[i].mime, mime) == 0)
            return &b->items[i];
    return NULL;
}

char *mg_bundle_metadata_json(const mg_bundle *b)
{
    if (!b->meta)
        return mg_strdup("{}");
    char *p = cJSON_PrintUnformatted(b->meta);
    char *r = mg_strdup(p ? p : "{}");
    cJSON_free(p);
    return r;
}

/* ---- wrappers ---------------------------------------------------------- */

void mg_sink_stream(const mg_sink *s, const char *name, const char *text)
{
    if (text && text[0])
        s->ops->stream(s->ctx, name, text);
}

void mg_sink_printf(const mg_sink *s, const char *fmt, ...)
{
    mg_str t = MG_STR_INIT;
    va_list ap;
    va_start(ap, fmt);
    mg_str_vaddf(&t, fmt, ap);
    va_end(ap);
    mg_sink_stream(s, "stdout", mg_str_cstr(&t));
    mg_str_free(&t);
}

void mg_sink_display(const mg_sink *s, const mg_bundle *b, const char *display_id)
{
    s->ops->display(s->ctx, b, display_id, false);
}

void mg_sink_update(const mg_sink *s, const mg_bundle *b, const char *display_id)
{
    s->ops->display(s->ctx, b, display_id, true);
}

void mg_sink_result(const mg_sink *s, const mg_bundle *b)
{
    s->ops->result(s->ctx, b);
}

void mg_sink_error(const mg_sink *s, const char *ename, const char *evalue,
                   const char *const *traceback, size_t n_traceback)
{
    s->ops->error(s->ctx, ename, evalue, traceback, n_traceback);
}

void mg_sink_clear(const mg_sink *s, bool wait)
{
    s->ops->clear(s->ctx, wait);
}

void mg_sink_page(const mg_sink *s, const char *text)
{
    s->ops->page(s->ctx, text);
}

bool mg_sink_should_stop(const mg_sink *s)
{
    return s->ops->should_stop(s->ctx);
}

bool mg_sink_wait(const mg_sink *s, double seconds)
{
    return s->ops->wait(s->ctx, seconds);
}

/* ---- capture sink ------------------------------------------------------ */

static void cat(char **dst, const char *text)
{
    size_t a = *dst ? strlen(*dst) : 0, b = strlen(text);
    *dst = mg_xrealloc(*dst, a + b + 1);
    memcpy(*dst + a, text, b + 1);
}

static void cap_stream(void *ctx, const char *name, const char *text)
{
    mg_capture *c = ctx;
    cat(strcmp(name, "stderr") == 0 ? &c->err : &c->out, text);
}

static void cap_bundle(mg_capture *c, const mg_bundle *b)
{
    const mg_bundle_item *it = mg_bundle_find(b, "text/plain");
    if (it) {
        cat(&c->out, (const char *)it->data);
        cat(&c->out, "\n");
    }
}

static void cap_display(void *ctx, const mg_bundle *b, const char *display_id, bool update)
{
    (void)display_id;
    (void)update;
    cap_bundle(ctx, b);
}

static void cap_result(void *ctx, const mg_bundle *b)
{
    cap_bundle(ctx, b);
}

static void cap_error(void *ctx, const char *ename, const char *evalue, const char *const *tb,
                      size_t n)
{
    mg_capture *c = ctx;
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
    mg_capture *c = ctx;
    cat(&c->page, text);
}

static bool cap_should_stop(void *ctx)
{
    return ((mg_capture *)ctx)->stop;
}

static bool cap_wait(void *ctx, double seconds)
{
    (void)seconds;
    return ((mg_capture *)ctx)->stop;
}

static const mg_sink_ops CAPTURE_OPS = {cap_stream, cap_display, cap_result,      cap_error,
                                        cap_clear,  cap_page,    cap_should_stop, cap_wait};

mg_sink mg_capture_sink(mg_capture *c)
{
    mg_sink s = {&CAPTURE_OPS, c};
    return s;
}

void mg_capture_free(mg_capture *c)
{
    free(c->out);
    free(c->err);
    free(c->page);
    c->out = c->err = c->page = NULL;
}
