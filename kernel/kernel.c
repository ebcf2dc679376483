/* The Jupyter kernel (messaging spec 5.3) over ZeroMQ.
 *
 * shell, control and stdin are ROUTER sockets, iopub a PUB socket whose
 * messages start with a topic frame, and the heartbeat a REP socket echoed
 * by its own thread. One table maps message types to handlers; the
 * dispatcher around it checks messages, publishes busy/idle, sends and
 * stamps replies and turns a handler failure into an error reply. */
#include "kernel.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>
#include <zmq.h>

#include "conn.h"
#include "history.h"
#include "magic.h"
#include "utf8.h"
#include "util.h"
#include "wire.h"

#ifndef ACTMAX_VERSION
#define ACTMAX_VERSION "0.0.0"
#endif

#define PROTOCOL_VERSION "5.3"
#define MAX_FRAMES 1024
#define REPLAY_LIMIT 4096

/* ---- signals ----------------------------------------------------------- */

static volatile sig_atomic_t g_interrupt;
static volatile sig_atomic_t g_terminate;

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupt = 1;
}

static void on_sigterm(int sig)
{
    (void)sig;
    g_terminate = 1;
}

void mg_install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls return EINTR and retry */
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_sigterm;
    sigaction(SIGTERM, &sa, NULL);
}

bool mg_interrupted(void)
{
    return g_interrupt != 0;
}

void mg_clear_interrupt(void)
{
    g_interrupt = 0;
}

/* ---- kernel state ------------------------------------------------------ */

struct mg_kernel {
    void *ctx, *shell, *control, *stdin_sock, *iopub, *hb;
    pthread_t hb_thread;
    bool hb_started;
    atomic_int hb_stop;
    mg_signer signer;
    mg_replay replay;
    char session[33];
    int pid;
    unsigned long long seq;
    mg_interp *interp;
    int exec_count;
    mg_history history;
    bool shutdown;
    bool abort_pending; /* an execute failed with stop_on_error */
    /* Shell requests that were already queued when that execute failed:
     * taken off the socket before its reply, then handled in abort mode. */
    mg_frames *queued;
    size_t n_queued, head_queued;
};

typedef enum { CH_SHELL = 1, CH_CONTROL = 2 } mg_chan;

static const char *chan_name(mg_chan c)
{
    return c == CH_SHELL ? "shell" : "control";
}

/* ---- sending ----------------------------------------------------------- */

static char *iso_now(void)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    return mg_asprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000L);
}

static int send_frames(void *sock, const mg_frames *f)
{
    for (size_t i = 0; i < f->n; i++) {
        int flags = i + 1 < f->n ? ZMQ_SNDMORE : 0;
        while (zmq_send(sock, f->v[i].data, f->v[i].len, flags) < 0) {
            if (errno == EINTR)
                continue;
            mg_log("send failed: %s", zmq_strerror(errno));
            return -1;
        }
    }
    return 0;
}

static char *print_json(const cJSON *j)
{
    char *p = cJSON_PrintUnformatted(j);
    char *r = mg_strdup(p ? p : "{}");
    cJSON_free(p);
    return r;
}

/* Sends msg_type with content (taken) and metadata (taken, may be NULL),
 * parented to parent_json ("{}" when NULL). */
static void send_msg(mg_kernel *k, void *sock, const mg_buf *idents, size_t n_idents,
                     const char *msg_type, const char *parent_json, cJSON *content,
                     cJSON *metadata)
{
    char *date = iso_now();
    char *msg_id = mg_asprintf("%s_%d_%llu", k->session, k->pid, ++k->seq);
    cJSON *hdr = cJSON_CreateObject();
    cJSON_AddStringToObject(hdr, "msg_id", msg_id);
    cJSON_AddStringToObject(hdr, "session", k->session);
    cJSON_AddStringToObject(hdr, "username", "kernel");
    cJSON_AddStringToObject(hdr, "date", date);
    cJSON_AddStringToObject(hdr, "msg_type", msg_type);
    cJSON_AddStringToObject(hdr, "version", PROTOCOL_VERSION);
    char *h = print_json(hdr);
    char *c = print_json(content);
    char *md = metadata ? print_json(metadata) : mg_strdup("{}");
    mg_frames f = {0};
    mg_wire_encode(&k->signer, idents, n_idents, h, parent_json ? parent_json : "{}", md, c, &f);
    send_frames(sock, &f);
    mg_frames_free(&f);
    free(h);
    free(c);
    free(md);
    free(date);
    free(msg_id);
    cJSON_Delete(hdr);
    cJSON_Delete(content);
    cJSON_Delete(metadata);
}

static void publish(mg_kernel *k, const mg_msg *parent, const char *msg_type, cJSON *content)
{
    char *topic = mg_asprintf("kernel.%s.%s", k->session, msg_type);
    mg_buf t = {(unsigned char *)topic, strlen(topic)};
    send_msg(k, k->iopub, &t, 1, msg_type, parent ? parent->header_json : NULL, content, NULL);
    free(topic);
}

static void publish_status(mg_kernel *k, const mg_msg *parent, const char *state)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "execution_state", state);
    publish(k, parent, "status", c);
}

static void send_reply(mg_kernel *k, void *sock, const mg_msg *req, const char *type,
                       cJSON *content)
{
    send_msg(k, sock, req->idents.v, req->idents.n, type, req->header_json, content, NULL);
}

/* ---- receiving --------------------------------------------------------- */

/* One multipart message; false when none is waiting (with ZMQ_DONTWAIT) or
 * on error. Frames past MAX_FRAMES are read and dropped. */
static bool recv_frames(void *sock, mg_frames *f, int flags)
{
    bool more = true;
    bool first = true;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int rc;
        while ((rc = zmq_msg_recv(&m, sock, first ? flags : 0)) < 0 && errno == EINTR)
            ;
        if (rc < 0) {
            int e = errno;
            zmq_msg_close(&m);
            if (e != EAGAIN)
                mg_log("receive failed: %s", zmq_strerror(e));
            mg_frames_free(f);
            return false;
        }
        first = false;
        more = zmq_msg_more(&m);
        if (f->n < MAX_FRAMES)
            mg_frames_push(f, zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
    }
    return true;
}

/* ---- output sink of an execute_request --------------------------------- */

typedef struct ksink {
    mg_kernel *k;
    const mg_msg *parent;
    bool silent;
    int count;
    char *ename, *evalue;
    cJSON *traceback;
    mg_str page;
} ksink;

static cJSON *bundle_data(const mg_bundle *b)
{
    cJSON *data = cJSON_CreateObject();
    for (size_t i = 0; i < mg_bundle_count(b); i++) {
        const mg_bundle_item *it = mg_bundle_item_at(b, i);
        switch (it->kind) {
        case MG_DATA_TEXT:
            cJSON_AddStringToObject(data, it->mime, (const char *)it->data);
            break;
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
    ksink *s = ctx;
    if (s->silent)
        return;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", name);
    cJSON_AddStringToObject(c, "text", text);
    publish(s->k, s->parent, "stream", c);
}

static void ks_display(void *ctx, const mg_bundle *b, const char *display_id, bool update)
{
    ksink *s = ctx;
    if (s->silent)
        return;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "data", bundle_data(b));
    cJSON_AddItemToObject(c, "metadata", bundle_meta(b));
    cJSON *tr = cJSON_AddObjectToObject(c, "transient");
    if (display_id)
        cJSON_AddStringToObject(tr, "display_id", display_id);
    publish(s->k, s->parent, update ? "update_display_data" : "display_data", c);
}

static void ks_result(void *ctx, const mg_bundle *b)
{
    ksink *s = ctx;
    if (s->silent)
        return;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "execution_count", s->count);
    cJSON_AddItemToObject(c, "data", bundle_data(b));
    cJSON_AddItemToObject(c, "metadata", bundle_meta(b));
    publish(s->k, s->parent, "execute_result", c);
}

static void ks_error(void *ctx, const char *ename, const char *evalue, const char *const *tb,
                     size_t n)
{
    ksink *s = ctx;
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
    publish(s->k, s->parent, "error", c);
}

static void ks_clear(void *ctx, bool wait)
{
    ksink *s = ctx;
    if (s->silent)
        return;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddBoolToObject(c, "wait", wait);
    publish(s->k, s->parent, "clear_output", c);
}

static void ks_page(void *ctx, const char *text)
{
    ksink *s = ctx;
    if (s->page.len && s->page.p[s->page.len - 1] != '\n')
        mg_str_addc(&s->page, '\n');
    if (s->page.len)
        mg_str_addc(&s->page, '\n');
    mg_str_add(&s->page, text);
}

static bool should_stop(mg_kernel *k)
{
    return g_interrupt || g_terminate || k->shutdown;
}

static bool ks_should_stop(void *ctx)
{
    return mg_kernel_poll_control(((ksink *)ctx)->k);
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool dispatch(mg_kernel *k, void *sock, mg_chan chan, int flags);

static bool ks_wait(void *ctx, double seconds)
{
    mg_kernel *k = ((ksink *)ctx)->k;
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
            return should_stop(k);
        }
    }
}

static const mg_sink_ops KSINK_OPS = {ks_stream, ks_display, ks_result,      ks_error,
                                      ks_clear,  ks_page,    ks_should_stop, ks_wait};

bool mg_kernel_poll_control(mg_kernel *k)
{
    while (!should_stop(k) && dispatch(k, k->control, CH_CONTROL, ZMQ_DONTWAIT))
        ;
    return should_stop(k);
}

/* ---- handlers ---------------------------------------------------------- */

typedef struct mg_req {
    mg_kernel *k;
    const mg_msg *msg;
    void *sock;
    mg_chan chan;
    cJSON *reply; /* content of the reply, to fill */
} mg_req;

static bool get_bool(const cJSON *o, const char *name, bool def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static const char *get_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An integer field, clamped to the int range (a client may send 1e300). */
static bool get_int(const cJSON *o, const char *name, long long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || v->valuedouble != v->valuedouble)
        return false;
    double d = v->valuedouble;
    *out = d < (double)INT_MIN ? INT_MIN : d > (double)INT_MAX ? INT_MAX : (long long)d;
    return true;
}

static int h_kernel_info(mg_req *r, char **err)
{
    (void)err;
    cJSON *c = r->reply;
    cJSON_AddStringToObject(c, "status", "ok");
    cJSON_AddStringToObject(c, "protocol_version", PROTOCOL_VERSION);
    cJSON_AddStringToObject(c, "implementation", "actmax");
    cJSON_AddStringToObject(c, "implementation_version", ACTMAX_VERSION);
    cJSON *li = cJSON_AddObjectToObject(c, "language_info");
    cJSON_AddStringToObject(li, "name", "actmax");
    cJSON_AddStringToObject(li, "version", ACTMAX_VERSION);
    cJSON_AddStringToObject(li, "mimetype", "text/x-actmax");
    cJSON_AddStringToObject(li, "file_extension", ".actmax");
    cJSON_AddStringToObject(li, "pygments_lexer", "text");
    cJSON_AddStringToObject(li, "codemirror_mode", "text/plain");
    cJSON_AddStringToObject(c, "banner",
                            "actmax " ACTMAX_VERSION " - activation maximization kernel.\n"
                            "Cells are magics: %help explains the syntax, %lsmagic lists them.");
    cJSON_AddArrayToObject(c, "help_links");
    cJSON_AddBoolToObject(c, "debugger", 0);
    return 0;
}

static int h_execute(mg_req *r, char **err)
{
    mg_kernel *k = r->k;
    const cJSON *in = r->msg->content;
    const char *code = get_str(in, "code");
    if (!code) {
        *err = mg_strdup("execute_request without a string 'code'");
        return -1;
    }
    bool silent = get_bool(in, "silent", false);
    bool store = get_bool(in, "store_history", true) && !silent;
    bool stop_on_error = get_bool(in, "stop_on_error", true);
    if (store)
        k->exec_count++;
    int n = k->exec_count;
    if (!silent) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "code", code);
        cJSON_AddNumberToObject(c, "execution_count", n);
        publish(k, r->msg, "execute_input", c);
    }
    if (store)
        mg_history_add(&k->history, n, code);

    ksink s;
    memset(&s, 0, sizeof s);
    s.k = k;
    s.parent = r->msg;
    s.silent = silent;
    s.count = n;
    mg_sink sink = {&KSINK_OPS, &s};
    mg_clear_interrupt();
    mg_status st = mg_interp_run(k->interp, code, &sink);
    mg_clear_interrupt();

    cJSON *c = r->reply;
    if (st == MG_OK) {
        cJSON_AddStringToObject(c, "status", "ok");
    } else {
        cJSON_AddStringToObject(c, "status", "error");
        cJSON_AddStringToObject(c, "ename", s.ename ? s.ename : "Error");
        cJSON_AddStringToObject(c, "evalue", s.evalue ? s.evalue : "");
        cJSON_AddItemToObject(c, "traceback", s.traceback ? s.traceback : cJSON_CreateArray());
        s.traceback = NULL;
        if (stop_on_error)
            k->abort_pending = true;
    }
    cJSON_AddNumberToObject(c, "execution_count", n);
    cJSON_AddObjectToObject(c, "user_expressions");
    cJSON *payload = cJSON_AddArrayToObject(c, "payload");
    if (s.page.len) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "source", "page");
        cJSON *d = cJSON_AddObjectToObject(p, "data");
        cJSON_AddStringToObject(d, "text/plain", s.page.p);
        cJSON_AddNumberToObject(p, "start", 0);
        cJSON_AddItemToArray(payload, p);
    }
    free(s.ename);
    free(s.evalue);
    cJSON_Delete(s.traceback);
    mg_str_free(&s.page);
    return 0;
}

/* The code and cursor of a complete or inspect request; the cursor is in
 * code points (protocol 5.2+), defaulting to the end and clamped to >= 0. */
static int request_code_cursor(mg_req *r, const char *what, const char **code, size_t *len,
                               size_t *cp, char **err)
{
    *code = get_str(r->msg->content, "code");
    if (!*code) {
        *err = mg_asprintf("%s without a string 'code'", what);
        return -1;
    }
    *len = strlen(*code);
    long long c = (long long)mg_utf8_byte_to_cp(*code, *len, *len);
    get_int(r->msg->content, "cursor_pos", &c);
    *cp = c < 0 ? 0 : (size_t)c;
    return 0;
}

static int h_complete(mg_req *r, char **err)
{
    const char *code;
    size_t len, cp;
    if (request_code_cursor(r, "complete_request", &code, &len, &cp, err) != 0)
        return -1;
    mg_completions comp;
    memset(&comp, 0, sizeof comp);
    size_t start = 0, end = 0;
    mg_interp_complete_cp(r->k->interp, code, cp, &comp, &start, &end);
    cJSON *m = cJSON_AddArrayToObject(r->reply, "matches");
    for (size_t i = 0; i < comp.n; i++)
        cJSON_AddItemToArray(m, cJSON_CreateString(comp.v[i]));
    cJSON_AddNumberToObject(r->reply, "cursor_start", (double)start);
    cJSON_AddNumberToObject(r->reply, "cursor_end", (double)end);
    cJSON_AddObjectToObject(r->reply, "metadata");
    cJSON_AddStringToObject(r->reply, "status", "ok");
    mg_completions_free(&comp);
    return 0;
}

static int h_inspect(mg_req *r, char **err)
{
    const char *code;
    size_t len, cp;
    if (request_code_cursor(r, "inspect_request", &code, &len, &cp, err) != 0)
        return -1;
    char *text = mg_interp_inspect(r->k->interp, code, mg_utf8_cp_to_byte(code, len, cp));
    cJSON_AddStringToObject(r->reply, "status", "ok");
    cJSON_AddBoolToObject(r->reply, "found", text != NULL);
    cJSON *d = cJSON_AddObjectToObject(r->reply, "data");
    if (text)
        cJSON_AddStringToObject(d, "text/plain", text);
    cJSON_AddObjectToObject(r->reply, "metadata");
    free(text);
    return 0;
}

static int h_is_complete(mg_req *r, char **err)
{
    const char *code = get_str(r->msg->content, "code");
    if (!code) {
        *err = mg_strdup("is_complete_request without a string 'code'");
        return -1;
    }
    const char *st = mg_interp_is_complete(r->k->interp, code);
    cJSON_AddStringToObject(r->reply, "status", st);
    if (strcmp(st, "incomplete") == 0)
        cJSON_AddStringToObject(r->reply, "indent", "");
    return 0;
}

static int h_history(mg_req *r, char **err)
{
    (void)err;
    const cJSON *in = r->msg->content;
    const char *type = get_str(in, "hist_access_type");
    bool output = get_bool(in, "output", false);
    size_t *idx = NULL, n = 0;
    const mg_history *h = &r->k->history;
    if (type && strcmp(type, "tail") == 0) {
        long long want = 10;
        get_int(in, "n", &want);
        n = mg_history_tail(h, want > 0 ? (size_t)want : 0, &idx);
    } else if (type && strcmp(type, "range") == 0) {
        long long session = 0, start = 0, stop = -1;
        get_int(in, "session", &session);
        get_int(in, "start", &start);
        if (!get_int(in, "stop", &stop))
            stop = -1;
        /* Only this session exists: 0 (current), 1 (its number). */
        if (session == 0 || session == 1)
            n = mg_history_range(h, (int)start, (int)stop, &idx);
    } else if (type && strcmp(type, "search") == 0) {
        const char *pattern = get_str(in, "pattern");
        long long want = 0;
        get_int(in, "n", &want);
        n = mg_history_search(h, pattern ? pattern : "*", get_bool(in, "unique", false),
                              want > 0 ? (size_t)want : 0, &idx);
    }
    cJSON_AddStringToObject(r->reply, "status", "ok");
    cJSON *list = cJSON_AddArrayToObject(r->reply, "history");
    for (size_t i = 0; i < n; i++) {
        const mg_hist_entry *e = &h->v[idx[i]];
        cJSON *t = cJSON_CreateArray();
        cJSON_AddItemToArray(t, cJSON_CreateNumber(1));
        cJSON_AddItemToArray(t, cJSON_CreateNumber(e->line));
        if (output) {
            cJSON *io = cJSON_CreateArray();
            cJSON_AddItemToArray(io, cJSON_CreateString(e->input));
            cJSON_AddItemToArray(io, cJSON_CreateNull());
            cJSON_AddItemToArray(t, io);
        } else {
            cJSON_AddItemToArray(t, cJSON_CreateString(e->input));
        }
        cJSON_AddItemToArray(list, t);
    }
    free(idx);
    return 0;
}

static int h_comm_info(mg_req *r, char **err)
{
    (void)err;
    cJSON_AddStringToObject(r->reply, "status", "ok");
    cJSON_AddObjectToObject(r->reply, "comms");
    return 0;
}

/* No comm targets: every comm_open is answered with comm_close. */
static int h_comm_open(mg_req *r, char **err)
{
    (void)err;
    const char *id = get_str(r->msg->content, "comm_id");
    const char *target = get_str(r->msg->content, "target_name");
    mg_log("comm_open for unknown target '%s'; closing it", target ? target : "");
    if (!id)
        return 0;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "comm_id", id);
    cJSON_AddObjectToObject(c, "data");
    publish(r->k, r->msg, "comm_close", c);
    return 0;
}

static int h_comm_ignore(mg_req *r, char **err)
{
    (void)r;
    (void)err;
    return 0;
}

static int h_shutdown(mg_req *r, char **err)
{
    (void)err;
    bool restart = get_bool(r->msg->content, "restart", false);
    cJSON_AddStringToObject(r->reply, "status", "ok");
    cJSON_AddBoolToObject(r->reply, "restart", restart);
    r->k->shutdown = true;
    return 0;
}

static int h_interrupt(mg_req *r, char **err)
{
    (void)err;
    g_interrupt = 1;
    cJSON_AddStringToObject(r->reply, "status", "ok");
    return 0;
}

typedef struct handler {
    const char *type;
    const char *reply; /* NULL: no reply message */
    unsigned chans;
    int (*fn)(mg_req *r, char **err);
} handler;

/* The message types the kernel serves, and nowhere else. */
static const handler HANDLERS[] = {
    {"kernel_info_request", "kernel_info_reply", CH_SHELL | CH_CONTROL, h_kernel_info},
    {"execute_request", "execute_reply", CH_SHELL, h_execute},
    {"complete_request", "complete_reply", CH_SHELL, h_complete},
    {"inspect_request", "inspect_reply", CH_SHELL, h_inspect},
    {"is_complete_request", "is_complete_reply", CH_SHELL, h_is_complete},
    {"history_request", "history_reply", CH_SHELL, h_history},
    {"comm_info_request", "comm_info_reply", CH_SHELL, h_comm_info},
    {"comm_open", NULL, CH_SHELL, h_comm_open},
    {"comm_msg", NULL, CH_SHELL, h_comm_ignore},
    {"comm_close", NULL, CH_SHELL, h_comm_ignore},
    {"shutdown_request", "shutdown_reply", CH_SHELL | CH_CONTROL, h_shutdown},
    {"interrupt_request", "interrupt_reply", CH_CONTROL, h_interrupt},
};

/* ---- dispatcher -------------------------------------------------------- */

/* Takes every shell request waiting now off the socket (for aborting). */
static void take_queued(mg_kernel *k)
{
    for (;;) {
        mg_frames f = {0};
        if (!recv_frames(k->shell, &f, ZMQ_DONTWAIT))
            return;
        k->queued = mg_xrealloc(k->queued, (k->n_queued + 1) * sizeof *k->queued);
        k->queued[k->n_queued++] = f;
    }
}

static void aborted_reply(mg_kernel *k, void *sock, const mg_msg *m)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "status", "aborted");
    cJSON_AddNumberToObject(c, "execution_count", k->exec_count);
    cJSON_AddObjectToObject(c, "user_expressions");
    cJSON_AddArrayToObject(c, "payload");
    send_reply(k, sock, m, "execute_reply", c);
}

/* Checks and handles one received message. With aborting, an
 * execute_request (unless it says stop_on_error: false) gets an aborted
 * reply instead of running. */
static void handle(mg_kernel *k, mg_frames *f, void *sock, mg_chan chan, bool aborting)
{
    mg_msg m;
    char *err = NULL;
    if (mg_wire_decode(f, &k->signer, &k->replay, &m, &err) != 0) {
        mg_log("dropped a message on %s: %s", chan_name(chan), err);
        free(err);
        return;
    }

    const handler *h = NULL;
    for (size_t i = 0; i < sizeof HANDLERS / sizeof HANDLERS[0]; i++)
        if (strcmp(HANDLERS[i].type, m.msg_type) == 0 && (HANDLERS[i].chans & chan))
            h = &HANDLERS[i];

    publish_status(k, &m, "busy");
    if (!h) {
        mg_log("unknown message type '%s' on %s; ignored", m.msg_type, chan_name(chan));
    } else if (aborting && strcmp(m.msg_type, "execute_request") == 0 &&
               get_bool(m.content, "stop_on_error", true)) {
        aborted_reply(k, sock, &m);
    } else {
        mg_req r = {k, &m, sock, chan, cJSON_CreateObject()};
        if (h->fn(&r, &err) != 0) {
            mg_log("%s failed: %s", m.msg_type, err ? err : "?");
            cJSON_Delete(r.reply);
            r.reply = cJSON_CreateObject();
            cJSON_AddStringToObject(r.reply, "status", "error");
            cJSON_AddStringToObject(r.reply, "ename", "KernelError");
            cJSON_AddStringToObject(r.reply, "evalue", err ? err : "request failed");
            cJSON_AddArrayToObject(r.reply, "traceback");
            free(err);
        }
        if (!cJSON_GetObjectItemCaseSensitive(r.reply, "status"))
            cJSON_AddStringToObject(r.reply, "status", "ok");
        /* Before the error reply goes out: whatever is queued now was sent
         * without knowing of the error, and is aborted. */
        if (chan == CH_SHELL && k->abort_pending) {
            k->abort_pending = false;
            take_queued(k);
        }
        if (h->reply)
            send_reply(k, sock, &m, h->reply, r.reply);
        else
            cJSON_Delete(r.reply);
    }
    publish_status(k, &m, "idle");
    mg_msg_free(&m);
}

/* Receives and handles one message from sock; false when none was there
 * (flags ZMQ_DONTWAIT) or receiving failed. */
static bool dispatch(mg_kernel *k, void *sock, mg_chan chan, int flags)
{
    mg_frames f = {0};
    if (!recv_frames(sock, &f, flags))
        return false;
    handle(k, &f, sock, chan, false);
    mg_frames_free(&f);
    return true;
}

/* ---- heartbeat --------------------------------------------------------- */

static void *hb_main(void *arg)
{
    mg_kernel *k = arg;
    while (!atomic_load(&k->hb_stop)) {
        zmq_pollitem_t it = {k->hb, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, 100);
        if (rc <= 0)
            continue;
        /* REP: echo every part of the request back. */
        for (;;) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, k->hb, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            int more = zmq_msg_more(&m);
            if (zmq_msg_send(&m, k->hb, more ? ZMQ_SNDMORE : 0) < 0)
                zmq_msg_close(&m);
            if (!more)
                break;
        }
    }
    return NULL;
}

/* ---- set-up and main loop ---------------------------------------------- */

static void *open_socket(mg_kernel *k, int type, const mg_conn *c, int port, const char *what)
{
    void *s = zmq_socket(k->ctx, type);
    if (!s) {
        mg_log("cannot create %s socket: %s", what, zmq_strerror(errno));
        return NULL;
    }
    int linger = 1000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    char *ep = mg_conn_endpoint(c, port);
    if (zmq_bind(s, ep) != 0) {
        mg_log("cannot bind %s socket to %s: %s", what, ep, zmq_strerror(errno));
        free(ep);
        zmq_close(s);
        return NULL;
    }
    free(ep);
    return s;
}

static void close_all(mg_kernel *k)
{
    if (k->hb_started) {
        atomic_store(&k->hb_stop, 1);
        pthread_join(k->hb_thread, NULL);
    }
    void **socks[] = {&k->shell, &k->control, &k->stdin_sock, &k->iopub, &k->hb};
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++) {
        if (*socks[i])
            zmq_close(*socks[i]);
        *socks[i] = NULL;
    }
    if (k->ctx)
        zmq_ctx_term(k->ctx);
    k->ctx = NULL;
    for (size_t i = k->head_queued; i < k->n_queued; i++)
        mg_frames_free(&k->queued[i]);
    free(k->queued);
    mg_signer_free(&k->signer);
    mg_replay_free(&k->replay);
    mg_interp_free(k->interp);
    mg_history_free(&k->history);
}

int mg_kernel_main(const char *connection_file)
{
    if (sodium_init() < 0) {
        mg_log("libsodium failed to initialise");
        return 1;
    }
    mg_conn conn;
    char *err = NULL;
    if (mg_conn_load(connection_file, &conn, &err) != 0) {
        mg_log("%s", err);
        free(err);
        return 1;
    }
    mg_kernel *k = mg_xcalloc(1, sizeof *k);
    mg_signer_init(&k->signer, conn.key, strlen(conn.key));
    mg_replay_init(&k->replay, REPLAY_LIMIT);
    unsigned char sid[16];
    randombytes_buf(sid, sizeof sid);
    sodium_bin2hex(k->session, sizeof k->session, sid, sizeof sid);
    k->pid = (int)getpid();

    mg_install_signal_handlers();
    int status = 1;
    k->ctx = zmq_ctx_new();
    if (!k->ctx)
        goto out;
    k->shell = open_socket(k, ZMQ_ROUTER, &conn, conn.shell_port, "shell");
    k->control = open_socket(k, ZMQ_ROUTER, &conn, conn.control_port, "control");
    k->stdin_sock = open_socket(k, ZMQ_ROUTER, &conn, conn.stdin_port, "stdin");
    k->iopub = open_socket(k, ZMQ_PUB, &conn, conn.iopub_port, "iopub");
    k->hb = open_socket(k, ZMQ_REP, &conn, conn.hb_port, "heartbeat");
    if (!k->shell || !k->control || !k->stdin_sock || !k->iopub || !k->hb)
        goto out;

    /* The heartbeat thread gets no signals: they reach the main thread and
     * interrupt its zmq_poll. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    k->hb_started = pthread_create(&k->hb_thread, NULL, hb_main, k) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!k->hb_started) {
        mg_log("cannot start the heartbeat thread");
        goto out;
    }

    /* Everything heavy (the engine) loads on first use, so kernel_info is
     * answered as soon as the sockets are up. */
    k->interp = mg_interp_new();
    mg_log("kernel %s started (pid %d)", k->session, (int)getpid());

    /* Like ipykernel: when the client that started us (JPY_PARENT_PID) is
     * gone, we are orphaned and exit instead of lingering. */
    const char *ppid_env = getenv("JPY_PARENT_PID");
    long parent = ppid_env ? strtol(ppid_env, NULL, 10) : 0;

    while (!k->shutdown && !g_terminate) {
        if (parent > 1 && (long)getppid() != parent) {
            mg_log("parent process %ld is gone", parent);
            break;
        }
        if (k->head_queued < k->n_queued) {
            /* Requests queued before a failed execute (control still first). */
            while (!k->shutdown && dispatch(k, k->control, CH_CONTROL, ZMQ_DONTWAIT))
                ;
            if (k->shutdown)
                break;
            mg_frames f = k->queued[k->head_queued++];
            handle(k, &f, k->shell, CH_SHELL, true);
            mg_frames_free(&f);
            if (k->head_queued == k->n_queued) {
                free(k->queued);
                k->queued = NULL;
                k->n_queued = k->head_queued = 0;
            }
            continue;
        }
        zmq_pollitem_t items[2] = {{k->control, 0, ZMQ_POLLIN, 0}, {k->shell, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(items, 2, 1000);
        if (rc < 0) {
            if (errno == EINTR)
                continue; /* SIGINT while idle: nothing to stop */
            mg_log("zmq_poll failed: %s", zmq_strerror(errno));
            break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            /* Control first: everything waiting there before the next shell request. */
            while (!k->shutdown && dispatch(k, k->control, CH_CONTROL, ZMQ_DONTWAIT))
                ;
            continue;
        }
        if (items[1].revents & ZMQ_POLLIN)
            dispatch(k, k->shell, CH_SHELL, ZMQ_DONTWAIT);
    }
    mg_log("kernel %s exiting (%s)", k->session,
           k->shutdown ? "shutdown" : g_terminate ? "terminated" : "orphaned");
    status = 0;
out:
    close_all(k);
    free(k);
    mg_conn_free(&conn);
    return status;
}
