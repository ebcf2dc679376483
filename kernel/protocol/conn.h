/* The connection file a Jupyter client writes for the kernel. */
#ifndef ACTMAX_CONN_H
#define ACTMAX_CONN_H

typedef struct mg_conn {
    char *transport; /* "tcp" or "ipc" */
    char *ip;
    char *key;
    char *signature_scheme;
    int shell_port, iopub_port, stdin_port, control_port, hb_port;
} mg_conn;

int mg_conn_parse(const char *json, mg_conn *c, char **err);
int mg_conn_load(const char *path, mg_conn *c, char **err);
/* "tcp://127.0.0.1:5555" or "ipc://path-5555" (malloc'd). */
char *mg_conn_endpoint(const mg_conn *c, int port);
void mg_conn_free(mg_conn *c);

#endif
