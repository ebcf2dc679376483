/* The output sink of an execute_request: every output a magic shows
 * becomes an iopub message parented to the request; the last error and the
 * pager text are kept for the reply. Waiting serves the control channel. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <zmq.h>

#include "kernel_internal.h"

static cJSON *bundle_data(const mg_bundle *b)
{
    cJSON *data = cJSON_CreateObject();
    for (size_t i = 0; i < mg_bundle_count(b); i++) {
        const mg_bundle_item *it = mg_bundle_item_at(b, i);
        switch (it->kind) {
        case MG_DATA_TEXT: cJSON_AddStringToObject(data, it->mime, (const char *)it->data); break;
        case MG_DATA_BINARY: {
            size_t n = sodium_base64_encoded_len(it->len, sodium_base64_VARIANT_ORIGINAL);
            char *b64 = mg_xmalloc(n);
            sodium_bin2base64(b64, n, it->data, it->len, sodium_base64_VARIANT_ORIGINAL);
            cJSON_AddStringToObject(data, it->mime, b64);
            free(b64);
            break;
        }
        case MG_DATA_JSON: {
            cJSON *j = cJSON_Parse((const char *)it->data);
            if (j)
                cJSON_AddItemToObject(data, it->mime, j);
            else
                cJSON_AddStringToObject(data, it->mime, (const char *)it->data);
            break;
        }
        }
    }
    return data;
}

static cJSON *bundle_meta(const mg_bundle *b)
{
    char *m = mg_bundle_metadata_json(b);
    cJSON *j = cJSON_Parse(m);
    free(m);
    return j ? j : cJSON_CreateObject();
}

static void ks_stream(void *ctx, const char *name, const char *text)
{
    mg_iopub *s = ctx;
    if (s->silent)
        return;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", name);
    cJSON_AddStringToObject(c, "text", text);
    mg_kernel_publish(s->k, s->parent, "stream", c);
}

static void ks_display(void *ctx, const mg_bundle *b, const char *display_id, bool update)
{
    mg_iopub *s = ctx;
    if (s->silent)
        return;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "data", bundle_data(b));
    cJSON_AddItemToObject(c, "metadata", bundle_meta(b));
    cJSON *tr = cJSON_AddObjectToObject(c, "transient");
    if (display_id)
        cJSON_AddStringToObject(tr, "display_id", display_id);
    mg_kernel_publish(s->k, s->parent, update ? "update_display_data" : "display_data", c);
}

static void ks_result(void *ctx, const mg_bundle *b)
{
    mg_iopub *s = ctx;
    if (s->silent)
        return;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "execution_count", s->count);
    cJSON_AddItemToObject(c, "data", bundle_data(b));
    cJSON_AddItemToObject(c, "metadata", bundle_meta(b));
    mg_kernel_publish(s->k, s->parent, "execute_result", c);
}

static void ks_error(void *ctx, const char *ename, const char *evalue, const char *const *tb,
                     size_t n)
{
    mg_iopub *s = ctx;
    free(s->ename);
    free(s->evalue);
    cJSON_Delete(s->traceback);
    s->ename = mg_strdup(ename);
    s->evalue = mg_strdup(evalue);
    s->traceback = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(s->traceback, cJSON_CreateString(tb[i]));
    if (s->silent)
        return;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "ename", ename);
    cJSON_AddStringToObject(c, "evalue", evalue);
    cJSON_AddItemToObject(c, "traceback", cJSON_Duplicate(s->traceback, 1));
    mg_kernel_publish(s->k, s->parent, "error", c);
}

static void ks_clear(void *ctx, bool wait)
{
    mg_iopub *s = ctx;
    if (s->silent)
        return;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddBoolToObject(c, "wait", wait);
    mg_kernel_publish(s->k, s->parent, "clear_output", c);
}

static void ks_page(void *ctx, const char *text)
{
    mg_iopub *s = ctx;
    if (s->page.len && s->page.p[s->page.len - 1] != '\n')
        mg_str_addc(&s->page, '\n');
    if (s->page.len)
        mg_str_addc(&s->page, '\n');
    mg_str_add(&s->page, text);
}

static bool ks_should_stop(void *ctx)
{
    return mg_kernel_poll_control(((mg_iopub *)ctx)->k);
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool ks_wait(void *ctx, double seconds)
{
    mg_kernel *k = ((mg_iopub *)ctx)->k;
    double end = mono_now() + seconds;
    for (;;) {
        if (mg_kernel_poll_control(k))
            return true;
        double left = end - mono_now();
        if (left <= 0)
            return false;
        int ms = left > 0.05 ? 50 : (int)(left * 1000.0) + 1;
        zmq_pollitem_t it = {k->control, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, ms) < 0 && errno != EINTR) {
            mg_log("zmq_poll: %s", zmq_strerror(errno));
            return mg_kernel_should_stop(k);
        }
    }
}

static const mg_sink_ops KSINK_OPS = {ks_stream, ks_display, ks_result,      ks_error,
                                      ks_clear,  ks_page,    ks_should_stop, ks_wait};

mg_sink mg_iopub_sink(mg_iopub *s)
{
    mg_sink sink = {&KSINK_OPS, s};
    return sink;
}

void mg_iopub_free(mg_iopub *s)
{
    free(s->ename);
    free(s->evalue);
    cJSON_Delete(s->traceback);
    mg_str_free(&s->page);
}
