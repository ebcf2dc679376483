/* In-memory input history of the session, for history_request. Bounded:
 * past AM_HISTORY_MAX entries the oldest are dropped. */
#ifndef ACTMAX_HISTORY_H
#define ACTMAX_HISTORY_H

#include <stdbool.h>
#include <stddef.h>

#define AM_HISTORY_MAX 10000

typedef struct am_hist_entry {
    int line;
    char *input;
} am_hist_entry;

typedef struct am_history {
    am_hist_entry *v;
    size_t n, cap;
} am_history;

void am_history_add(am_history *h, int line, const char *input);
void am_history_free(am_history *h);

/* Selections return indices into h->v, in order (caller frees *idx). */
size_t am_history_tail(const am_history *h, size_t n, size_t **idx);
size_t am_history_range(const am_history *h, int start, int stop, size_t **idx); /* stop<0: no end */
size_t am_history_search(const am_history *h, const char *glob, bool unique, size_t n,
                         size_t **idx); /* n == 0: all */

#endif
