#include "conn.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>
#include <zmq.h>

#include "util.h"

static char *get_str(const cJSON *o, const char *name, const char *def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsString(v))
        return mg_strdup(v->valuestring);
    return def ? mg_strdup(def) : NULL;
}

static int get_port(const cJSON *o, const char *name, int *out, char **err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 65535 ||
        v->valuedouble != (double)(int)v->valuedouble) {
        *err = mg_asprintf("connection file: %s must be a port number", name);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

/* The CurveZMQ keys: none, or a matching Z85 pair. */
static int check_curve(mg_conn *c, char **err)
{
    if (c->curve_public && !c->curve_public[0]) {
        free(c->curve_public);
        c->curve_public = NULL;
    }
    if (c->curve_secret && !c->curve_secret[0]) {
        free(c->curve_secret);
        c->curve_secret = NULL;
    }
    if (!c->curve_public && !c->curve_secret)
        return 0;
    if (!c->curve_public || !c->curve_secret) {
        *err = mg_asprintf("connection file: %s without %s; CurveZMQ needs both keys",
                           c->curve_public ? "curve_publickey" : "curve_secretkey",
                           c->curve_public ? "curve_secretkey" : "curve_publickey");
        return -1;
    }
    uint8_t bin[32];
    const char *names[2] = {"curve_publickey", "curve_secretkey"};
    const char *keys[2] = {c->curve_public, c->curve_secret};
    for (int i = 0; i < 2; i++)
        if (strlen(keys[i]) != 40 || !zmq_z85_decode(bin, keys[i])) {
            *err = mg_asprintf("connection file: %s is not a Z85 CurveZMQ key (40 characters, "
                               "as zmq.curve_keypair() makes)",
                               names[i]);
            return -1;
        }
    char derived[41];
    if (zmq_curve_public(derived, c->curve_secret) != 0) {
        *err = mg_strdup("connection file: this libzmq has no CurveZMQ support, and the client "
                         "asked for encryption");
        return -1;
    }
    if (strcmp(derived, c->curve_public) != 0) {
        *err = mg_strdup("connection file: curve_publickey is not the public key of "
                         "curve_secretkey");
        return -1;
    }
    return 0;
}

int mg_conn_parse(const char *json, mg_conn *c, char **err)
{
    memset(c, 0, sizeof *c);
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        *err = mg_strdup("connection file is not a JSON object");
        return -1;
    }
    c->transport = get_str(o, "transport", "tcp");
    c->ip = get_str(o, "ip", "127.0.0.1");
    c->key = get_str(o, "key", "");
    c->signature_scheme = get_str(o, "signature_scheme", "hmac-sha256");
    c->curve_public = get_str(o, "curve_publickey", NULL);
    c->curve_secret = get_str(o, "curve_secretkey", NULL);
    int rc = 0;
    if (get_port(o, "shell_port", &c->shell_port, err) ||
        get_port(o, "iopub_port", &c->iopub_port, err) ||
        get_port(o, "stdin_port", &c->stdin_port, err) ||
        get_port(o, "control_port", &c->control_port, err) ||
        get_port(o, "hb_port", &c->hb_port, err))
        rc = -1;
    else if (strcmp(c->transport, "tcp") != 0 && strcmp(c->transport, "ipc") != 0) {
        *err = mg_asprintf("connection file: unknown transport '%s'", c->transport);
        rc = -1;
    } else if (c->key[0] && strcmp(c->signature_scheme, "hmac-sha256") != 0) {
        *err = mg_asprintf("connection file: unsupported signature_scheme '%s' (only hmac-sha256)",
                           c->signature_scheme);
        rc = -1;
    } else if (check_curve(c, err) != 0) {
        rc = -1;
    }
    cJSON_Delete(o);
    if (rc)
        mg_conn_free(c);
    return rc;
}

int mg_conn_load(const char *path, mg_conn *c, char **err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = mg_asprintf("cannot open connection file %s: %s", path, strerror(errno));
        return -1;
    }
    mg_str s = MG_STR_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        mg_str_addn(&s, buf, n);
    fclose(f);
    int rc = mg_conn_parse(mg_str_cstr(&s), c, err);
    mg_str_free(&s);
    return rc;
}

char *mg_conn_endpoint(const mg_conn *c, int port)
{
    if (strcmp(c->transport, "ipc") == 0)
        return mg_asprintf("ipc://%s-%d", c->ip, port);
    return mg_asprintf("tcp://%s:%d", c->ip, port);
}

void mg_conn_free(mg_conn *c)
{
    free(c->transport);
    free(c->ip);
    free(c->key);
    free(c->signature_scheme);
    if (c->curve_secret)
        sodium_memzero(c->curve_secret, strlen(c->curve_secret));
    free(c->curve_public);
    free(c->curve_secret);
    memset(c, 0, sizeof *c);
}
