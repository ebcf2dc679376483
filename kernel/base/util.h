/* Small helpers shared by the kernel: checked allocation, a growable
 * string, logging to stderr, edit distance. */
#ifndef ACTMAX_UTIL_H
#define ACTMAX_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#if defined(__GNUC__)
#define MG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MG_PRINTF(f, a)
#endif

/* Allocation failure aborts: the kernel has no sensible way to go on. */
void *mg_xmalloc(size_t n);
void *mg_xcalloc(size_t n, size_t size);
void *mg_xrealloc(void *p, size_t n);
char *mg_strdup(const char *s);
char *mg_strndup(const char *s, size_t n);

/* Growable NUL-terminated string. Zero-initialise (MG_STR_INIT) before use. */
typedef struct mg_str {
    char *p;
    size_t len;
    size_t cap;
} mg_str;
#define MG_STR_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void mg_str_addn(mg_str *s, const char *text, size_t n);
void mg_str_add(mg_str *s, const char *text);
void mg_str_addc(mg_str *s, char c);
void mg_str_addf(mg_str *s, const char *fmt, ...) MG_PRINTF(2, 3);
void mg_str_vaddf(mg_str *s, const char *fmt, va_list ap) MG_PRINTF(2, 0);
const char *mg_str_cstr(const mg_str *s); /* never NULL */
char *mg_str_steal(mg_str *s);            /* malloc'd, never NULL; s is reset */
void mg_str_clear(mg_str *s);
void mg_str_free(mg_str *s);

char *mg_asprintf(const char *fmt, ...) MG_PRINTF(1, 2);

/* "actmax: " prefixed line on stderr; the kernel's only log. */
void mg_log(const char *fmt, ...) MG_PRINTF(1, 2);

/* Levenshtein distance between two ASCII-ish names. */
size_t mg_edit_distance(const char *a, const char *b);

/* The candidate closest to name among n strings, or NULL when nothing is
 * reasonably close. */
const char *mg_closest(const char *name, const char *const *cands, size_t n);

#endif
