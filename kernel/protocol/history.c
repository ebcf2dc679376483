#include "history.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void mg_history_add(mg_history *h, int line, const char *input)
{
    if (h->n == MG_HISTORY_MAX) {
        /* Drop the oldest tenth at once so adding stays cheap. */
        size_t drop = MG_HISTORY_MAX / 10;
        for (size_t i = 0; i < drop; i++)
            free(h->v[i].input);
        memmove(h->v, h->v + drop, (h->n - drop) * sizeof *h->v);
        h->n -= drop;
    }
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->v = mg_xrealloc(h->v, h->cap * sizeof *h->v);
    }
    h->v[h->n].line = line;
    h->v[h->n].input = mg_strdup(input);
    h->n++;
}

void mg_history_free(mg_history *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->v[i].input);
    free(h->v);
    memset(h, 0, sizeof *h);
}

size_t mg_history_tail(const mg_history *h, size_t n, size_t **idx)
{
    if (n > h->n)
        n = h->n;
    *idx = mg_xcalloc(n ? n : 1, sizeof **idx);
    for (size_t i = 0; i < n; i++)
        (*idx)[i] = h->n - n + i;
    return n;
}

size_t mg_history_range(const mg_history *h, int start, int stop, size_t **idx)
{
    *idx = mg_xcalloc(h->n ? h->n : 1, sizeof **idx);
    size_t k = 0;
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].line >= start && (stop < 0 || h->v[i].line < stop))
            (*idx)[k++] = i;
    return k;
}

size_t mg_history_search(const mg_history *h, const char *glob, bool unique, size_t n, size_t **idx)
{
    *idx = mg_xcalloc(h->n ? h->n : 1, sizeof **idx);
    size_t k = 0;
    /* Walk newest first so that `unique` keeps the latest of each input and
     * `n` the latest matches; reverse at the end. */
    for (size_t j = h->n; j-- > 0;) {
        if (n && k == n)
            break;
        if (fnmatch(glob, h->v[j].input, 0) != 0)
            continue;
        bool dup = false;
        for (size_t q = 0; unique && q < k && !dup; q++)
            dup = strcmp(h->v[(*idx)[q]].input, h->v[j].input) == 0;
        if (!dup)
            (*idx)[k++] = j;
    }
    for (size_t a = 0, b = k ? k - 1 : 0; a < b; a++, b--) {
        size_t t = (*idx)[a];
        (*idx)[a] = (*idx)[b];
        (*idx)[b] = t;
    }
    return k;
}
