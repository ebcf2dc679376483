#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

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
    memset(c, 0, sizeof *c);
}
