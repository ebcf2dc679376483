#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(void)
{
    fputs("actmax: out of memory\n", stderr);
    abort();
}

void *mg_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *mg_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *mg_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

char *mg_strndup(const char *s, size_t n)
{
    char *d = mg_xmalloc(n + 1);
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *mg_strdup(const char *s)
{
    return mg_strndup(s, strlen(s));
}

static void reserve(mg_str *s, size_t extra)
{
    size_t need = s->len + extra + 1;
    if (need <= s->cap)
        return;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < need)
        cap *= 2;
    s->p = mg_xrealloc(s->p, cap);
    s->cap = cap;
}

void mg_str_addn(mg_str *s, const char *text, size_t n)
{
    reserve(s, n);
    if (n)
        memcpy(s->p + s->len, text, n);
    s->len += n;
    s->p[s->len] = '\0';
}

void mg_str_add(mg_str *s, const char *text)
{
    mg_str_addn(s, text, strlen(text));
}

void mg_str_addc(mg_str *s, char c)
{
    mg_str_addn(s, &c, 1);
}

void mg_str_vaddf(mg_str *s, const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0)
        return;
    reserve(s, (size_t)n);
    vsnprintf(s->p + s->len, (size_t)n + 1, fmt, ap);
    s->len += (size_t)n;
}

void mg_str_addf(mg_str *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mg_str_vaddf(s, fmt, ap);
    va_end(ap);
}

const char *mg_str_cstr(const mg_str *s)
{
    return s->p ? s->p : "";
}

char *mg_str_steal(mg_str *s)
{
    char *p = s->p ? s->p : mg_strdup("");
    s->p = NULL;
    s->len = s->cap = 0;
    return p;
}

void mg_str_clear(mg_str *s)
{
    s->len = 0;
    if (s->p)
        s->p[0] = '\0';
}

void mg_str_free(mg_str *s)
{
    free(s->p);
    s->p = NULL;
    s->len = s->cap = 0;
}

char *mg_asprintf(const char *fmt, ...)
{
    mg_str s = MG_STR_INIT;
    va_list ap;
    va_start(ap, fmt);
    mg_str_vaddf(&s, fmt, ap);
    va_end(ap);
    return mg_str_steal(&s);
}

void mg_log(const char *fmt, ...)
{
    mg_str s = MG_STR_INIT;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    mg_str_addf(&s, "[actmax %02d:%02d:%02d.%03ld] ", tm.tm_hour, tm.tm_min, tm.tm_sec,
                ts.tv_nsec / 1000000L);
    va_list ap;
    va_start(ap, fmt);
    mg_str_vaddf(&s, fmt, ap);
    va_end(ap);
    mg_str_addc(&s, '\n');
    fputs(s.p, stderr);
    fflush(stderr);
    mg_str_free(&s);
}

/* Optimal string alignment distance: insertions, deletions, substitutions
 * and transpositions of neighbours ("cdua" -> "cuda") each cost 1. */
size_t mg_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), w = lb + 1;
    size_t *d = mg_xmalloc((la + 1) * w * sizeof *d);
    for (size_t i = 0; i <= la; i++)
        d[i * w] = i;
    for (size_t j = 0; j <= lb; j++)
        d[j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = d[(i - 1) * w + j - 1] + cost;
            if (d[(i - 1) * w + j] + 1 < best)
                best = d[(i - 1) * w + j] + 1;
            if (d[i * w + j - 1] + 1 < best)
                best = d[i * w + j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[(i - 2) * w + j - 2] + 1 < best)
                best = d[(i - 2) * w + j - 2] + 1;
            d[i * w + j] = best;
        }
    }
    size_t r = d[la * w + lb];
    free(d);
    return r;
}

const char *mg_closest(const char *name, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++) {
        size_t d = mg_edit_distance(name, cands[i]);
        /* A prefix of a candidate ("max" for "maximize") counts as close. */
        if (len >= 2 && strncmp(cands[i], name, len) == 0 && d > 1)
            d = 1;
        /* Accept up to half of the longer name wrong, at least 2 edits. */
        size_t cl = strlen(cands[i]);
        size_t limit = (len > cl ? len : cl) / 2;
        if (limit < 2)
            limit = 2;
        if (d <= limit && d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return best;
}
