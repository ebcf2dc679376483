/* am_json.h: a small JSON reader for tokenizer files (internal to ext/data).
 * Parses a whole document into a tree; strings are decoded to UTF-8 bytes
 * (\uXXXX escapes and surrogate pairs included) and may contain NUL. */
#ifndef AM_JSON_H
#define AM_JSON_H

#include <stddef.h>

typedef enum {
    AM__JSON_NULL,
    AM__JSON_FALSE,
    AM__JSON_TRUE,
    AM__JSON_NUMBER,
    AM__JSON_STRING,
    AM__JSON_ARRAY,
    AM__JSON_OBJECT
} am__json_type;

typedef struct am__json am__json;
struct am__json {
    am__json_type type;
    double num; /* NUMBER */
    char *str;  /* STRING: (len) bytes plus a NUL */
    size_t len;
    am__json *items;  /* ARRAY items or OBJECT values: (n) */
    char **keys;      /* OBJECT keys: (n), each NUL-terminated */
    size_t *key_lens; /* OBJECT key lengths: (n) */
    size_t n;
};

/* Parses json[0..len). On success returns 0 and fills *out (free with
 * am__json_free). On failure returns -1, *out is NULL, and err holds a
 * message naming the line and column. */
int am__json_parse(const char *json, size_t len, am__json **out, char *err, size_t err_size);
void am__json_free(am__json *v);

/* The value of key in an object, or NULL when v is not an object or lacks it. */
const am__json *am__json_get(const am__json *v, const char *key);

#endif
