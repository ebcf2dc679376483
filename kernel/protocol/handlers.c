/* The request handlers and their table: the message types the kernel
 * serves, and nowhere else. The dispatcher (server.c) publishes busy and
 * idle, stamps and sends the reply a handler fills, and turns a handler's
 * failure into an error reply. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "actmax_version.h"
#include "kernel_internal.h"
#include "signals.h"
#include "utf8.h"

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
    cJSON_AddStringToObject(c, "implementation_version", AM_VERSION);
    cJSON *li = cJSON_AddObjectToObject(c, "language_info");
    cJSON_AddStringToObject(li, "name", "actmax");
    cJSON_AddStringToObject(li, "version", AM_VERSION);
    cJSON_AddStringToObject(li, "mimetype", "text/x-actmax");
    cJSON_AddStringToObject(li, "file_extension", ".actmax");
    cJSON_AddStringToObject(li, "pygments_lexer", "text");
    cJSON_AddStringToObject(li, "codemirror_mode", "text/plain");
    cJSON_AddStringToObject(c, "banner",
                            "actmax " AM_VERSION " - activation maximization kernel.\n"
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
        mg_kernel_publish(k, r->msg, "execute_input", c);
    }
    if (store)
        mg_history_add(&k->history, n, code);

    mg_iopub s;
    memset(&s, 0, sizeof s);
    s.k = k;
    s.parent = r->msg;
    s.silent = silent;
    s.count = n;
    mg_sink sink = mg_iopub_sink(&s);
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
    mg_iopub_free(&s);
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
    mg_kernel_publish(r->k, r->msg, "comm_close", c);
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
    mg_request_interrupt();
    cJSON_AddStringToObject(r->reply, "status", "ok");
    return 0;
}

/* The message types the kernel serves, and nowhere else. */
static const mg_handler HANDLERS[] = {
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

const mg_handler *mg_handler_find(const char *msg_type, mg_chan chan)
{
    for (size_t i = 0; i < sizeof HANDLERS / sizeof HANDLERS[0]; i++)
        if (strcmp(HANDLERS[i].type, msg_type) == 0 && (HANDLERS[i].chans & chan))
            return &HANDLERS[i];
    return NULL;
}

bool mg_req_bool(const cJSON *o, const char *name, bool def)
{
    return get_bool(o, name, def);
}
