/* render.h: turns engine results (plain C float arrays) into the payloads of
 * the MIME bundles the kernel sends: PNG bytes, base64, HTML and text/plain.
 *
 * This header is the specification of the rendering library; nothing is
 * public that is not documented here.
 *
 * Conventions
 * -----------
 * - Every function returns an int status: RENDER_OK (0) or a negative
 *   RENDER_E* code. Results come back through out-pointers, which are set to
 *   empty values (NULL / 0) on failure. render_strerror() gives a fixed string
 *   per code; render_last_error() gives the detailed message of the last
 *   failure on the calling thread ("render_png_encode: channels must be 1, 3
 *   or 4, got 2"), meant to be shown to the user as is.
 * - Strings and byte buffers returned through `char **` / `unsigned char **`
 *   are malloc'd and NUL-terminated; free them with render_free() (or free()).
 *   A render_png's bytes are freed with render_png_clear().
 * - Every free function accepts NULL.
 * - Text handed in (captions, table cells, titles) may be arbitrary bytes,
 *   e.g. token text from a language model: invalid UTF-8 is shown as \xNN,
 *   never a failure.
 * - Nothing here knows the engine or Jupyter; the kernel builds the JSON.
 *
 * Shapes use the legend N = images in a batch, C = channels, H = height,
 * W = width, R = table rows, K = table columns. Image arrays are row-major,
 * channel-first (C, H, W), values in display space [0, 1]; values outside are
 * clamped and NaN shows as 0. C = 1 is grayscale, 3 is RGB, 4 is RGBA.
 *
 * Typical use in the kernel
 * -------------------------
 *   render_png png;
 *   if (render_png_encode(img, 1, 28, 28, RENDER_MIN_PX, &png) == RENDER_OK) {
 *       char *b64 = NULL;
 *       render_base64(png.data, png.size, &b64, NULL);
 *       // {"image/png": b64, "text/plain": "<image 280x280>"},
 *       // metadata {"image/png": {"width": png.width, "height": png.height}}
 *       render_free(b64);
 *   }
 *   render_png_clear(&png);
 */
#ifndef ACTMAX_RENDER_H
#define ACTMAX_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status */

enum {
    RENDER_OK = 0,
    RENDER_EINVAL = -1, /* a bad argument: NULL, zero or negative size, NaN */
    RENDER_ENOMEM = -2, /* allocation failed, or the result would be too big */
    RENDER_EPNG = -3,   /* libpng reported an error */
    RENDER_ECAIRO = -4, /* cairo reported an error */
};

/* Fixed description of a status code ("invalid argument"); never NULL. */
const char *render_strerror(int status);

/* Detailed message of the last failing call on this thread; "" when none.
 * The string stays valid until the next failing call on the same thread. */
const char *render_last_error(void);

/* Frees anything this library returned through a char ** or unsigned char **.
 * Same as free(); accepts NULL. */
void render_free(void *p);

/* Releases the caches cairo and fontconfig keep for the life of the process
 * (fonts, patterns), so leak checkers see a clean exit. Optional; call it
 * once at exit, after the last render_* call and with no other cairo user
 * left in the process. */
void render_cleanup(void);

/* ---------------------------------------------------------------- PNG */

/* Default short side, in pixels, that small images are upscaled to reach. */
#define RENDER_MIN_PX   256
/* Upscaling never makes the long side exceed this many pixels. */
#define RENDER_MAX_PX   2048
/* Images larger than this on either side are refused (RENDER_EINVAL). */
#define RENDER_LIMIT_PX 16384

typedef struct render_png {
    unsigned char *data; /* (size) bytes of a PNG file; free with render_png_clear */
    size_t size;         /* bytes in data */
    int width;           /* pixels, for the bundle's "width" metadata */
    int height;          /* pixels, for the bundle's "height" metadata */
    int scale;           /* integer nearest-neighbour upscaling applied, >= 1 */
} render_png;

/* Frees png->data and zeroes *png. Accepts NULL and an already-clear png. */
void render_png_clear(render_png *png);

/* Integer upscaling factor for an h x w image: the smallest factor that makes
 * the short side at least min_px, lowered so the long side stays within
 * RENDER_MAX_PX; at least 1. min_px <= 0 means 1. Pure function, no status. */
int render_upscale_factor(int h, int w, int min_px);

/* Encodes pix (C, H, W) as an 8-bit PNG (gray, RGB or RGBA as C says),
 * upscaled by render_upscale_factor(h, w, min_px) with nearest neighbour.
 * min_px = 0 keeps the original size. */
int render_png_encode(const float *pix, int c, int h, int w, int min_px, render_png *out);

/* Encodes already-quantized 8-bit pixels, interleaved (H, W, C), C in
 * {1, 3, 4}, without scaling. Used for drawn surfaces; public for tools. */
int render_png_encode_u8(const unsigned char *pix, int c, int h, int w, render_png *out);

/* ---------------------------------------------------------------- grid */

typedef struct render_grid_opts {
    int min_cell_px;   /* cells upscaled (nearest) so their short side reaches
                          this; 0 = 128 */
    int columns;       /* 0 = automatic: near-square, at most 8 */
    int gutter_px;     /* space between cells and around the grid; 0 = 12 */
    const char *title; /* drawn above the grid; NULL or "" = none */
} render_grid_opts;

/* Draws N images pix (N, C, H, W) in a grid, captions[i] (may be NULL, or
 * captions itself NULL) centred under image i, e.g. "fc[\"Sneaker\"] 12.3".
 * A caption too wide for its cell gets a smaller font (down to 9 px), then
 * is cut with an ellipsis. The grid is shrunk (smaller upscaling) to stay
 * within 2 * RENDER_MAX_PX wide and 4 * RENDER_MAX_PX high when it can, and
 * refused (RENDER_EINVAL) over RENDER_LIMIT_PX. opts may be NULL for
 * the defaults. Text is DejaVu Sans through cairo. The PNG is RGB. */
int render_grid_png(const float *pix, int n, int c, int h, int w, const char *const *captions,
                    const render_grid_opts *opts, render_png *out);

/* ---------------------------------------------------------------- plot */

typedef struct render_series {
    const char *name; /* legend entry; NULL or "" = not in the legend */
    const float *x;   /* (n) x values, e.g. steps; NULL = 0, 1, ..., n-1 */
    const float *y;   /* (n) y values; NaN/inf points are skipped (a gap) */
    int n;            /* points; 0 is allowed (an empty series draws nothing) */
} render_series;

typedef struct render_plot_opts {
    int width, height;               /* pixels; 0 = 640 x 400; each 160..4096 */
    const char *title;               /* NULL = none */
    const char *xlabel;              /* NULL = "step" */
    const char *ylabel;              /* NULL = none */
    const float *vlines;             /* (n_vlines) x positions of dashed vertical
                                   markers (thresholds, snapshot steps) */
    const char *const *vline_labels; /* (n_vlines) or NULL; entries may be NULL */
    int n_vlines;
} render_plot_opts;

/* Line plot of several series sharing axes with "nice" ticks, a legend, and
 * dashed vertical markers. Degenerate data never fails: no finite point at
 * all gives empty axes over [0, 1], one point is drawn as a dot, a constant
 * series gets a range around its value. The x axis runs from the first to
 * the last x (snapped to a tick within 4% padding), the y axis is padded by
 * 4%; tick counts follow the picture's size. opts may be NULL for the defaults.
 * RENDER_EINVAL for a NULL series array with n_series > 0, a series with
 * n < 0 or n > 0 and y NULL, a NaN/inf vline. */
int render_plot_png(const render_series *series, int n_series, const render_plot_opts *opts,
                    render_png *out);

/* "Nice" ticks covering [lo, hi] (Heckbert): steps of 1, 2 or 5 times a
 * power of ten, about `target` of them. Writes at most max_ticks values to
 * ticks and their count to *n_ticks, and the step to *step (may be NULL).
 * lo == hi is widened around the value. RENDER_EINVAL for NaN/inf bounds,
 * lo > hi, target < 2 or max_ticks < 2. */
int render_nice_ticks(double lo, double hi, int target, double *ticks, int max_ticks, int *n_ticks,
                      double *step);

/* ---------------------------------------------------------------- logo */

/* Draws the kernel's logo (a rising gradient-ascent curve ending in a lit
 * neuron, with "am") as an RGBA PNG of size x size pixels, 16..512. */
int render_logo_png(int size, render_png *out);

/* ---------------------------------------------------------------- text */

/* RFC 4648 base64 (standard alphabet, '=' padding, no line breaks) of
 * data (len). *out is NUL-terminated; *out_len (may be NULL) gets its length.
 * data may be NULL only when len is 0. */
int render_base64(const unsigned char *data, size_t len, char **out, size_t *out_len);

/* Copies arbitrary bytes (len) into valid UTF-8: every byte that is not part
 * of a well-formed sequence (overlong forms, surrogates and code points above
 * U+10FFFF are not), and NUL, becomes the four characters \xNN (uppercase
 * hex). Valid text comes back unchanged; a backslash already in the text is
 * not doubled. *out_len may be NULL. */
int render_utf8_sanitize(const char *bytes, size_t len, char **out, size_t *out_len);

/* Columns that valid UTF-8 text s (len) takes in a terminal: wide East Asian
 * characters and emoji count 2, combining marks and zero-width characters 0,
 * others 1. Invalid bytes count 4 (the width of their \xNN form). */
size_t render_utf8_width(const char *s, size_t len);

/* HTML-escapes a NUL-terminated string: & < > " ' become &amp; &lt; &gt;
 * &quot; &#39;. Invalid UTF-8 is sanitized first (see above). */
int render_html_escape(const char *s, char **out);

/* Heat colour "#rrggbb" (8 bytes with the NUL) of v in [lo, hi]. When lo < 0 <
 * hi the scale diverges from white at 0 (blue below, red above); otherwise it
 * runs from white at lo to red at hi. Values outside are clamped, and colours
 * stay light enough for dark text. NaN v gives white. RENDER_EINVAL for NaN
 * or infinite bounds, lo >= hi, or out NULL. */
int render_heat_color(double v, double lo, double hi, char out[8]);

/* ---------------------------------------------------------------- tables */

typedef struct render_table {
    int n_cols;                /* K, >= 1 */
    int n_rows;                /* R, >= 0 */
    const char *const *header; /* (K) column titles, or NULL for none */
    const char *const *cells;  /* (R, K) row-major; NULL entries are empty */
    const float *heat;         /* (R, K) background heat values, or NULL;
                                   NaN = no colour for that cell */
    float heat_lo, heat_hi;    /* heat scale, see render_heat_color */
    const char *caption;       /* NULL = none */
} render_table;

/* HTML <table> of t: header row, numeric cells (a whole-cell number such as
 * "12.3", "-4e-2", "nan") right-aligned, the others left-aligned, heat as
 * the cell's background. Everything is escaped; in cells, control
 * characters show as \n, \t, \xNN (as in the text form) and spaces are
 * kept, so a token " the" or "\n" is visible as what it is. */
int render_table_html(const render_table *t, char **out);

/* text/plain of the same table: columns padded to their display width
 * (UTF-8 aware, see render_utf8_width), numbers right-aligned, a rule under
 * the header, rows ending in '\n'. Control characters show as \n, \t, \xNN. */
int render_table_text(const render_table *t, char **out);

/* ---------------------------------------------------------------- progress */

typedef struct render_progress {
    int step;                /* steps done, 0..total */
    int total;               /* steps planned, >= 1 */
    double objective;        /* current objective value; NaN = not known yet */
    double elapsed_s;        /* seconds since the run started, >= 0 */
    const char *label;       /* what runs, e.g. the objective text; may be NULL */
    const render_png *image; /* current image embedded as a data URI; may be NULL */
} render_progress;

/* Builds the HTML and text/plain of a live progress display: a bar, step/total,
 * objective, elapsed time and ETA (from the mean time per step so far, unknown
 * before the first step). Either out-pointer may be NULL when not wanted. */
int render_progress_html(const render_progress *p, char **html, char **text);

/* Seconds as "1.2s", "2m05s", "1h02m" for humans; writes into out (cap bytes,
 * at least 16). Unknown (NaN, negative) gives "?". Returns RENDER_EINVAL for a
 * NULL out or cap < 16. */
int render_format_duration(double seconds, char *out, size_t cap);

/* ---------------------------------------------------------------- throttle */

/* A clock in seconds; ctx is passed through. Tests inject a fake one. */
typedef double (*render_clock_fn)(void *ctx);

/* CLOCK_MONOTONIC in seconds; ignores ctx. */
double render_clock_monotonic(void *ctx);

/* Lets at most max_per_second updates through: a call is allowed when at
 * least 1/max_per_second seconds passed since the last allowed one. The first
 * call and every final call (is_final) are always allowed. Plain value, no
 * allocation: initialize with render_throttle_init, nothing to free. */
typedef struct render_throttle {
    double interval_s; /* minimum seconds between allowed updates */
    double last_s;     /* clock value at the last allowed update */
    bool has_last;     /* false until the first allowed update */
    render_clock_fn clock;
    void *clock_ctx;
} render_throttle;

/* clock NULL = render_clock_monotonic. RENDER_EINVAL for a NULL t or a
 * max_per_second that is not a positive finite number. */
int render_throttle_init(render_throttle *t, double max_per_second, render_clock_fn clock,
                         void *clock_ctx);

/* True when this update should be sent now (and records it as sent). A NULL
 * t lets everything through. */
bool render_throttle_ready(render_throttle *t, bool is_final);

#ifdef __cplusplus
}
#endif

#endif /* ACTMAX_RENDER_H */
