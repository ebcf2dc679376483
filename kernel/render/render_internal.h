/* render_internal.h: helpers shared by the render_*.c files; not public. */
#ifndef ACTMAX_RENDER_INTERNAL_H
#define ACTMAX_RENDER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/* Records a detailed message for render_last_error() and returns status. */
int render__fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* [0, 1] display value to a byte; clamped, NaN to 0. */
unsigned char render__to_u8(float v);

/* A growing NUL-terminated string; `failed` sticks after the first failed
 * allocation so callers check once at the end. */
typedef struct render__sb {
    char *s; /* (cap) text, NUL-terminated after len */
    size_t len;
    size_t cap;
    bool failed;
} render__sb;

void render__sb_putn(render__sb *b, const char *s, size_t n);
void render__sb_puts(render__sb *b, const char *s);
void render__sb_printf(render__sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void render__sb_pad(render__sb *b, size_t n);
/* HTML-escaped, UTF-8-sanitized copy of bytes s (n). */
void render__sb_html(render__sb *b, const char *s, size_t n);
/* Hands the string over (never NULL unless failed); the builder is reset. */
char *render__sb_take(render__sb *b);
void render__sb_free(render__sb *b);

/* Valid UTF-8 copy of a NUL-terminated string (NULL = ""), malloc'd; NULL
 * only when out of memory. */
char *render__utf8_dup(const char *s);

#endif /* ACTMAX_RENDER_INTERNAL_H */
