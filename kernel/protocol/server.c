/* The Jupyter kernel (messaging spec 5.5) over ZeroMQ.
 *
 * shell, control and stdin are ROUTER sockets, iopub an XPUB socket whose
 * messages start with a topic frame and which greets every subscription
 * with iopub_welcome, and the heartbeat a REP socket echoed by its own
 * thread. Every socket is read (stdin's messages are dropped: the kernel
 * never asks for input), and each bounds the size of what it accepts. One table maps message types to handlers; the
 * dispatcher around it checks messages, publishes busy/idle, sends and
 * stamps replies and turns a handler failure into an error reply. */
#include "kernel_internal.h"

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
#include "signals.h"

#define MAX_FRAMES    1024
#define REPLAY_LIMIT  4096
/* Per-frame bounds: a peer sending more is disconnected by libzmq before
 * the kernel holds the bytes. A cell may be large (a long objective, a
 * pasted corpus line); control and stdin messages are small. */
#define MAX_SHELL_MSG (64LL << 20)
#define MAX_SMALL_MSG (1LL << 20)

/* ---- sending ----------------------------------------------------------- */

char *mg_kernel_iso_now(void)
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
                     const char *msg_type, const char *parent_json, cJSON *content, cJSON *metadata)
{
    char *date = mg_kernel_iso_now();
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

void mg_kernel_publish(mg_kernel *k, const mg_msg *parent, const char *msg_type, cJSON *content)
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
    mg_kernel_publish(k, parent, "status", c);
}

static void send_reply(mg_kernel *k, void *sock, const mg_msg *req, const char *type,
                       cJSON *content, cJSON *metadata)
{
    send_msg(k, sock, req->idents.v, req->idents.n, type, req->header_json, content, metadata);
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

/* ---- iopub subscriptions and stdin -------------------------------------- */

/* XPUB hands the kernel each subscription as a frame: 1 then the topic
 * (0 then the topic for an unsubscription). A new subscriber is greeted
 * with iopub_welcome on its own topic (spec 5.5), so a client knows that
 * what is published next reaches it. */
static void serve_subscriptions(mg_kernel *k)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int rc;
        while ((rc = zmq_msg_recv(&m, k->iopub, ZMQ_DONTWAIT)) < 0 && errno == EINTR)
            ;
        if (rc < 0) {
            zmq_msg_close(&m);
            return;
        }
        const unsigned char *d = zmq_msg_data(&m);
        size_t n = zmq_msg_size(&m);
        if (n >= 1 && d[0] == 1) {
            char *topic = mg_strndup((const char *)d + 1, n - 1);
            cJSON *c = cJSON_CreateObject();
            /* A topic that is not text is not one a Jupyter client sends:
             * it is greeted, but named as empty in the content. */
            cJSON_AddStringToObject(c, "subscription", strlen(topic) == n - 1 ? topic : "");
            if (n == 1) {
                mg_kernel_publish(k, NULL, "iopub_welcome", c);
            } else {
                mg_buf t = {(unsigned char *)d + 1, n - 1};
                send_msg(k, k->iopub, &t, 1, "iopub_welcome", NULL, c, NULL);
            }
            free(topic);
        }
        zmq_msg_close(&m);
    }
}

/* The kernel never sends input_request (no magic reads input), so whatever
 * arrives on stdin is read and dropped: unread, it would stay queued in
 * the kernel for as long as the client is connected. */
static void drain_stdin(mg_kernel *k)
{
    for (int i = 0; i < 1000; i++) {
        mg_frames f = {0};
        if (!recv_frames(k->stdin_sock, &f, ZMQ_DONTWAIT))
            return;
        if (i == 0)
            mg_log("dropped a message on stdin (the kernel does not ask for input)");
        mg_frames_free(&f);
    }
}

static void serve_side_sockets(mg_kernel *k)
{
    serve_subscriptions(k);
    drain_stdin(k);
}

/* ---- control and stopping ---------------------------------------------- */

static bool dispatch(mg_kernel *k, void *sock, mg_chan chan, int flags);

bool mg_kernel_should_stop(const mg_kernel *k)
{
    return mg_interrupted() || mg_terminated() || k->shutdown;
}

bool mg_kernel_poll_control(mg_kernel *k)
{
    serve_side_sockets(k);
    while (!mg_kernel_should_stop(k) && dispatch(k, k->control, CH_CONTROL, ZMQ_DONTWAIT))
        ;
    return mg_kernel_should_stop(k);
}

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
    /* The cell did not run and has no number: null shows "In [ ]", where
     * the previous count would show one number on two cells. */
    cJSON_AddNullToObject(c, "execution_count");
    cJSON_AddObjectToObject(c, "user_expressions");
    cJSON_AddArrayToObject(c, "payload");
    cJSON *md = cJSON_CreateObject();
    cJSON_AddStringToObject(md, "status", "aborted");
    send_reply(k, sock, m, "execute_reply", c, md);
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

    const mg_handler *h = mg_handler_find(m.msg_type, chan);

    publish_status(k, &m, "busy");
    if (!h) {
        mg_log("unknown message type '%s' on %s; ignored", m.msg_type, chan_name(chan));
    } else if (aborting && strcmp(m.msg_type, "execute_request") == 0 &&
               mg_req_bool(m.content, "stop_on_error", true)) {
        aborted_reply(k, sock, &m);
    } else {
        mg_req r = {k, &m, sock, chan, cJSON_CreateObject(), NULL};
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
        if (h->reply) {
            send_reply(k, sock, &m, h->reply, r.reply, r.reply_meta);
        } else {
            cJSON_Delete(r.reply);
            cJSON_Delete(r.reply_meta);
        }
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

static void *open_socket(mg_kernel *k, int type, const mg_conn *c, int port, const char *what,
                         long long max_msg)
{
    void *s = zmq_socket(k->ctx, type);
    if (!s) {
        mg_log("cannot create %s socket: %s", what, zmq_strerror(errno));
        return NULL;
    }
    int linger = 1000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (max_msg > 0)
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg);
    if (c->curve_secret) {
        /* CurveZMQ, set before bind: only a client holding the public key
         * (from the connection file) completes the handshake. */
        int server = 1;
        if (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &server, sizeof server) != 0 ||
            zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, c->curve_secret, 41) != 0 ||
            zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, c->curve_public, 41) != 0) {
            mg_log("cannot set CurveZMQ keys on the %s socket: %s", what, zmq_strerror(errno));
            zmq_close(s);
            return NULL;
        }
    }
    if (type == ZMQ_XPUB) {
        /* Every subscription reaches the kernel, not only a topic's first:
         * each client is greeted. */
        int verbose = 1;
        zmq_setsockopt(s, ZMQ_XPUB_VERBOSE, &verbose, sizeof verbose);
    }
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
    mg_history_free(&k->history);
}

int mg_kernel_main(const char *connection_file, mg_interp *interp)
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
    k->shell = open_socket(k, ZMQ_ROUTER, &conn, conn.shell_port, "shell", MAX_SHELL_MSG);
    k->control = open_socket(k, ZMQ_ROUTER, &conn, conn.control_port, "control", MAX_SMALL_MSG);
    k->stdin_sock = open_socket(k, ZMQ_ROUTER, &conn, conn.stdin_port, "stdin", MAX_SMALL_MSG);
    k->iopub = open_socket(k, ZMQ_XPUB, &conn, conn.iopub_port, "iopub", MAX_SMALL_MSG);
    k->hb = open_socket(k, ZMQ_REP, &conn, conn.hb_port, "heartbeat", MAX_SMALL_MSG);
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
    k->interp = interp;
    mg_log("kernel %s started (pid %d%s)", k->session, (int)getpid(),
           conn.curve_secret ? ", CurveZMQ encryption" : "");

    /* Like ipykernel: when the client that started us (JPY_PARENT_PID) is
     * gone, we are orphaned and exit instead of lingering. */
    const char *ppid_env = getenv("JPY_PARENT_PID");
    long parent = ppid_env ? strtol(ppid_env, NULL, 10) : 0;

    while (!k->shutdown && !mg_terminated()) {
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
        zmq_pollitem_t items[4] = {{k->control, 0, ZMQ_POLLIN, 0},
                                   {k->shell, 0, ZMQ_POLLIN, 0},
                                   {k->iopub, 0, ZMQ_POLLIN, 0},
                                   {k->stdin_sock, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(items, 4, 1000);
        if (rc < 0) {
            if (errno == EINTR)
                continue; /* SIGINT while idle: nothing to stop */
            mg_log("zmq_poll failed: %s", zmq_strerror(errno));
            break;
        }
        if ((items[2].revents | items[3].revents) & ZMQ_POLLIN)
            serve_side_sockets(k);
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
           k->shutdown       ? "shutdown"
           : mg_terminated() ? "terminated"
                             : "orphaned");
    status = 0;
out:
    close_all(k);
    free(k);
    mg_conn_free(&conn);
    return status;
}