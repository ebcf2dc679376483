/* The live progress display shared by the engine magics (live.h). */
#include "live.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"

void mg_live_init(mg_live *L, const mg_sink *out, const char *kind, double updates_per_s)
{
    static int n;
    *L = (mg_live){0};
    L->out = out;
    render_throttle_init(&L->thr, updates_per_s, NULL, NULL);
    snprintf(L->display_id, sizeof L->display_id, MG_LIVE_PREFIX "%s-%d-%ld", kind, ++n,
             (long)getpid());
    L->t0 = render_clock_monotonic(NULL);
}

void mg_live_send(mg_live *L, const char *text, const char *html)
{
    mg_bundle *b = mg_bundle_new();
    mg_bundle_text(b, "text/plain", text);
    mg_bundle_text(b, "text/html", html);
    if (L->shown)
        mg_sink_update(L->out, b, L->display_id);
    else
        mg_sink_display(L->out, b, L->display_id);
    L->shown = true;
    L->updates++;
    mg_bundle_free(b);
}

void mg_live_progress(mg_live *L, int step, int total, double value, const char *label,
                      const render_png *img)
{
    render_progress p = {step,  total > 0 ? total : 1,
                         value, render_clock_monotonic(NULL) - L->t0,
                         label, img && img->data ? img : NULL};
    char *html = NULL, *text = NULL;
    if (render_progress_html(&p, &html, &text) == RENDER_OK)
        mg_live_send(L, text, html);
    render_free(html);
    render_free(text);
}

bool mg_live_interrupted(mg_live *L)
{
    if (mg_sink_should_stop(L->out))
        L->stopped = true;
    return L->stopped;
}

bool mg_live_due(mg_live *L)
{
    return render_throttle_ready(&L->thr, false);
}

int mg_live_finish(mg_live *L, int step, int total, double value, const char *label,
                   const render_png *img)
{
    mg_live_progress(L, step, total, value, label, img);
    return L->updates;
}

void mg_live_fail(mg_live *L, const char *what)
{
    char *html = mg_asprintf("<i>%s</i>", what);
    mg_live_send(L, what, html);
    free(html);
}

void mg_scan_live_send(mg_scan_live *L)
{
    int64_t total = L->total > 0 ? L->total : 1;
    int64_t step = L->scanned < 0 ? 0 : L->scanned > total ? total : L->scanned;
    if (total > INT_MAX) { /* the bar counts in ints: scale both */
        step = (int64_t)((double)step / (double)total * INT_MAX);
        total = INT_MAX;
    }
    char *label = L->total > 0
                      ? mg_asprintf("%s   %s scanned, best score so far", L->objective, L->items)
                      : mg_asprintf("%s   %s", L->objective, L->reading);
    mg_live_progress(&L->d, (int)step, (int)total, isfinite(L->best) ? L->best : NAN, label, NULL);
    free(label);
}

int mg_scan_live_progress(void *user, int64_t scanned, int64_t total, float best)
{
    mg_scan_live *L = user;
    L->scanned = scanned;
    L->total = total;
    L->best = best;
    if (mg_live_interrupted(&L->d))
        return 1;
    if (mg_live_due(&L->d))
        mg_scan_live_send(L);
    return 0;
}
