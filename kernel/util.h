/* Small helpers shared by the kernel: checked allocation, a growable
 * string, logging to stderr, edit distance. */
#ifndef ACTMAX_UTIL_H
#define ACTMAX_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#if defined(__GNUC__)
#define AM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define AM_PRINTF(f, a)
#endif

/* Allocation failure aborts: the kernel has no sensible way to go on. */
void *am_xmalloc(size_t n);
void *am_xcalloc(size_t n, size_t size);
void *am_xrealloc(void *p, size_t n);
char *am_strdup(const char *s);
char *am_strndup(const char *s, size_t n);

/* Growable NUL-terminated string. Zero-initialise (AM_STR_INIT) before use. */
typedef struct am_str {
    char *p;
    size_t len;
    size_t cap;
} am_str;
#define AM_STR_INIT {NULL, 0, 0}

void am_str_addn(am_str *s, const char *text, size_t n);
void am_str_add(am_str *s, const char *text);
void am_str_addc(am_str *s, char c);
void am_str_addf(am_str *s, const char *fmt, ...) AM_PRINTF(2, 3);
void am_str_vaddf(am_str *s, const char *fmt, va_list ap) AM_PRINTF(2, 0);
const char *am_str_cstr(const am_str *s); /* never NULL */
char *am_str_steal(am_str *s);            /* malloc'd, never NULL; s is reset */
void am_str_clear(am_str *s);
void am_str_free(am_str *s);

char *am_asprintf(const char *fmt, ...) AM_PRINTF(1, 2);

/* "actmax: " prefixed line on stderr; the kernel's only log. */
void am_log(const char *fmt, ...) AM_PRINTF(1, 2);

/* Levenshtein distance between two ASCII-ish names. */
size_t am_edit_distance(const char *a, const char *b);

/* The candidate closest to name among n strings, or NULL when nothing is
 * reasonably close. */
const char *am_closest(const char *name, const char *const *cands, size_t n);

#endif
