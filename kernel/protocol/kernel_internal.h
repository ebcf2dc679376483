/* What the protocol's units share: the kernel's state, the two request
 * channels, and the calls between the server (server.c), the iopub sink of
 * an execute_request (iopub.c) and the handlers (handlers.c). Private to
 * kernel/protocol. */
#ifndef ACTMAX_KERNEL_INTERNAL_H
#define ACTMAX_KERNEL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <cjson/cJSON.h>

#include "history.h"
#include "kernel.h"
#include "magic.h"
#include "util.h"
#include "wire.h"

#define PROTOCOL_VERSION "5.3"

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

static inline const char *chan_name(mg_chan c)
{
    return c == CH_SHELL ? "shell" : "control";
}

/* ---- server.c ---------------------------------------------------------- */

/* Publishes msg_type with content (taken) on iopub, parented to parent. */
void mg_kernel_publish(mg_kernel *k, const mg_msg *parent, const char *msg_type, cJSON *content);
/* Interrupt, SIGTERM or shutdown: the running command should stop. */
bool mg_kernel_should_stop(const mg_kernel *k);

/* ---- iopub.c: the output sink of one execute_request --------------------- */

typedef struct mg_iopub {
    mg_kernel *k;
    const mg_msg *parent;
    bool silent;
    int count;
    char *ename, *evalue; /* the last error shown, for the reply */
    cJSON *traceback;
    mg_str page; /* pager text, the reply's payload */
} mg_iopub;

mg_sink mg_iopub_sink(mg_iopub *s);
void mg_iopub_free(mg_iopub *s);

/* ---- handlers.c -------------------------------------------------------- */

/* One request being served: the handler fills reply. */
typedef struct mg_req {
    mg_kernel *k;
    const mg_msg *msg;
    void *sock;
    mg_chan chan;
    cJSON *reply; /* content of the reply, to fill */
} mg_req;

typedef struct mg_handler {
    const char *type;
    const char *reply; /* NULL: no reply message */
    unsigned chans;
    int (*fn)(mg_req *r, char **err);
} mg_handler;

/* The handler of msg_type on chan, or NULL. */
const mg_handler *mg_handler_find(const char *msg_type, mg_chan chan);
/* A boolean field of a request's content, def when absent. */
bool mg_req_bool(const cJSON *o, const char *name, bool def);

#endif
