/* In-memory input history of the session, for history_request. Bounded:
 * past MG_HISTORY_MAX entries the oldest are dropped. */
#ifndef ACTMAX_HISTORY_H
#define ACTMAX_HISTORY_H

#include <stdbool.h>
#include <stddef.h>

#define MG_HISTORY_MAX 10000

typedef struct mg_hist_entry {
    int line;
    char *input;
} mg_hist_entry;

typedef struct mg_history {
    mg_hist_entry *v;
    size_t n, cap;
} mg_history;

void mg_history_add(mg_history *h, int line, const char *input);
void mg_history_free(mg_history *h);

/* Selections return indices into h->v, in order (caller frees *idx). */
size_t mg_history_tail(const mg_history *h, size_t n, size_t **idx);
size_t mg_history_range(const mg_history *h, int start, int stop,
                        size_t **idx); /* stop<0: no end */
size_t mg_history_search(const mg_history *h, const char *glob, bool unique, size_t n,
                         size_t **idx); /* n == 0: all */

#endif
