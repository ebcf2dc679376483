/* The live progress display of the engine magics (%maximize, %examples,
 * %tokens): one output shown once, updated in place under its display_id
 * at most updates_per_s times a second, closed by mg_live_finish (or
 * mg_live_fail), and the place where an interrupt is noticed. */
#ifndef ACTMAX_LIVE_H
#define ACTMAX_LIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "magic.h"
#include "render.h"

typedef struct mg_live {
    const mg_sink *out;
    render_throttle thr;
    char display_id[96];
    bool shown;   /* display_data sent; later sends are updates */
    bool stopped; /* the user interrupted */
    double t0;    /* when the work started */
    int updates;  /* display_data + update_display_data sent */
} mg_live;

/* A new display on out ("actmax-live-KIND-N-PID"), throttled to
 * updates_per_s. */
void mg_live_init(mg_live *L, const mg_sink *out, const char *kind, double updates_per_s);

/* Sends text and html: the first time as a display, then in place. */
void mg_live_send(mg_live *L, const char *text, const char *html);

/* A progress bar: step of total, the current value, a label and an image
 * (may be NULL). */
void mg_live_progress(mg_live *L, int step, int total, double value, const char *label,
                      const render_png *img);

/* For progress callbacks: true when the user interrupted (this also serves
 * the control channel), after which L->stopped stays true. */
bool mg_live_interrupted(mg_live *L);

/* Whether a throttled update is due now. */
bool mg_live_due(mg_live *L);

/* The closing call: the last state always reaches the display, throttle or
 * not. The number of display messages sent in all. */
int mg_live_finish(mg_live *L, int step, int total, double value, const char *label,
                   const render_png *img);
/* The closing call of work that failed before its first step. */
void mg_live_fail(mg_live *L, const char *what);

/* The live display of a dataset scan (%examples, %check): items scanned of
 * the items to scan and the best value so far, after each batch, throttled.
 * items names them ("test images", "corpus windows"); reading is shown
 * while the total is not known yet. */
typedef struct mg_scan_live {
    mg_live d;
    const char *objective;
    const char *items, *reading;
    int64_t scanned, total;
    float best;
} mg_scan_live;

/* Sends the scan's state now (a progress bar, whatever the throttle says). */
void mg_scan_live_send(mg_scan_live *L);

/* An am_examples_progress_fn over an mg_scan_live (user): records the state,
 * sends it when due, and returns 1 once the user interrupted. */
int mg_scan_live_progress(void *user, int64_t scanned, int64_t total, float best);

#endif
