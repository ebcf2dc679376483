/* The connection file a Jupyter client writes for the kernel. */
#ifndef ACTMAX_CONN_H
#define ACTMAX_CONN_H

typedef struct am_conn {
    char *transport; /* "tcp" or "ipc" */
    char *ip;
    char *key;
    char *signature_scheme;
    int shell_port, iopub_port, stdin_port, control_port, hb_port;
} am_conn;

int am_conn_parse(const char *json, am_conn *c, char **err);
int am_conn_load(const char *path, am_conn *c, char **err);
/* "tcp://127.0.0.1:5555" or "ipc://path-5555" (malloc'd). */
char *am_conn_endpoint(const am_conn *c, int port);
void am_conn_free(am_conn *c);

#endif
