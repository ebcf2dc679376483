/* render_draw.c: everything drawn with cairo: labelled image grids, line
 * plots with nice ticks, and the kernel's logo. Surfaces are encoded through
 * render_png_encode_u8 so every PNG comes out of the same libpng path. */
#include "render.h"
#include "render_internal.h"

#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char kFont[] = "DejaVu Sans";
static const double kPi = 3.14159265358979323846;

/* ------------------------------------------------------------ helpers */

/* Surface (ARGB32, premultiplied) to a PNG: RGB when opaque is promised,
 * RGBA (un-premultiplied) otherwise. */
static int render__surface_png(cairo_surface_t *s, bool alpha, render_png *out)
{
    cairo_surface_flush(s);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
        return render__fail(RENDER_ECAIRO, "cairo: %s",
                            cairo_status_to_string(cairo_surface_status(s)));
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *src = cairo_image_surface_get_data(s);
    int c = alpha ? 4 : 3;
    unsigned char *buf = malloc((size_t)w * (size_t)h * (size_t)c); /* (H, W, C) */
    if (!buf)
        return render__fail(RENDER_ENOMEM, "out of memory for a %dx%d picture", w, h);
    for (int y = 0; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(src + (size_t)y * stride);
        unsigned char *d = buf + (size_t)y * w * c;
        for (int x = 0; x < w; x++) {
            uint32_t p = row[x];
            unsigned a = p >> 24, r = p >> 16 & 255, g = p >> 8 & 255, b = p & 255;
            if (alpha && a > 0 && a < 255) {
                r = (r * 255 + a / 2) / a;
                g = (g * 255 + a / 2) / a;
                b = (b * 255 + a / 2) / a;
            }
            d[0] = (unsigned char)r;
            d[1] = (unsigned char)g;
            d[2] = (unsigned char)b;
            if (alpha)
                d[3] = (unsigned char)a;
            d += c;
        }
    }
    int st = render_png_encode_u8(buf, c, h, w, out);
    free(buf);
    return st;
}

static void render__rgb(cairo_t *cr, unsigned hex)
{
    cairo_set_source_rgb(cr, (hex >> 16 & 255) / 255.0, (hex >> 8 & 255) / 255.0,
                         (hex & 255) / 255.0);
}

static double render__text_width(cairo_t *cr, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* Shortens valid UTF-8 *s (malloc'd) by whole code points, adding an
 * ellipsis, until it fits max_w; it may end up "". */
static void render__ellipsize(cairo_t *cr, char **s, double max_w)
{
    if (render__text_width(cr, *s) <= max_w)
        return;
    size_t n = strlen(*s);
    char *tmp = malloc(n + 4);
    if (!tmp) {
        (*s)[0] = '\0';
        return;
    }
    tmp[0] = '\0';
    while (n > 0) {
        do
            n--;
        while (n > 0 && ((unsigned char)(*s)[n] & 0xC0) == 0x80);
        memcpy(tmp, *s, n);
        memcpy(tmp + n, "\xE2\x80\xA6", 4);
        if (render__text_width(cr, tmp) <= max_w)
            break;
    }
    if (n == 0 && render__text_width(cr, tmp) > max_w)
        tmp[0] = '\0';
    free(*s);
    *s = tmp;
}

static void render__font(cairo_t *cr, double size, bool bold)
{
    cairo_select_font_face(cr, kFont, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

/* Draws valid UTF-8 text with its baseline at y: align 0 left, 0.5 centre,
 * 1 right of x. */
static void render__text(cairo_t *cr, const char *s, double x, double y, double align)
{
    cairo_move_to(cr, x - align * render__text_width(cr, s), y);
    cairo_show_text(cr, s);
}

void render_cleanup(void)
{
    cairo_debug_reset_static_data();
    FcFini();
}

/* ------------------------------------------------------------ grid */

/* One (C, H, W) image as a premultiplied ARGB32 surface of H x W. */
static cairo_surface_t *render__image_surface(const float *pix, int c, int h, int w)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
        return s;
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    size_t plane = (size_t)h * (size_t)w;
    for (int y = 0; y < h; y++) {
        uint32_t *row = (uint32_t *)(data + (size_t)y * stride);
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            unsigned r, g, b, a = 255;
            r = render__to_u8(pix[i]);
            g = c >= 3 ? render__to_u8(pix[plane + i]) : r;
            b = c >= 3 ? render__to_u8(pix[2 * plane + i]) : r;
            if (c == 4) {
                a = render__to_u8(pix[3 * plane + i]);
                r = (r * a + 127) / 255;
                g = (g * a + 127) / 255;
                b = (b * a + 127) / 255;
            }
            row[x] = (uint32_t)a << 24 | r << 16 | g << 8 | b;
        }
    }
    cairo_surface_mark_dirty(s);
    return s;
}

int render_grid_png(const float *pix, int n, int c, int h, int w, const char *const *captions,
                    const render_grid_opts *opts, render_png *out)
{
    if (!out)
        return render__fail(RENDER_EINVAL, "render_grid_png: out is NULL");
    memset(out, 0, sizeof *out);
    if (!pix)
        return render__fail(RENDER_EINVAL, "render_grid_png: pix is NULL");
    if (n < 1)
        return render__fail(RENDER_EINVAL, "render_grid_png: need at least 1 image, got n=%d", n);
    if (c != 1 && c != 3 && c != 4)
        return render__fail(
            RENDER_EINVAL,
            "render_grid_png: channels must be 1 (gray), 3 (RGB) or 4 (RGBA), got %d", c);
    if (h <= 0 || w <= 0 || h > RENDER_LIMIT_PX || w > RENDER_LIMIT_PX)
        return render__fail(RENDER_EINVAL,
                            "render_grid_png: image size must be 1..%d per side, got %dx%d",
                            RENDER_LIMIT_PX, h, w);
    render_grid_opts o = opts ? *opts : (render_grid_opts){0};
    if (o.min_cell_px < 0 || o.columns < 0 || o.gutter_px < 0)
        return render__fail(RENDER_EINVAL,
                            "render_grid_png: min_cell_px, columns and gutter_px must be >= 0 "
                            "(0 = default), got %d, %d, %d",
                            o.min_cell_px, o.columns, o.gutter_px);
    if (o.min_cell_px == 0)
        o.min_cell_px = 128;
    if (o.gutter_px == 0)
        o.gutter_px = 12;
    int cols = o.columns;
    if (cols == 0) {
        cols = (int)ceil(sqrt((double)n));
        if (cols > 8)
            cols = 8;
    }
    if (cols > n)
        cols = n;
    int rows = (n + cols - 1) / cols;
    bool any_caption = false;
    for (int i = 0; captions && i < n; i++)
        any_caption |= captions[i] && captions[i][0];
    bool has_title = o.title && o.title[0];
    const double cap_font = 12.0, title_font = 15.0;
    int g = o.gutter_px;
    int cap_h = any_caption ? (int)ceil(cap_font * 1.7) : 0;
    int title_h = has_title ? (int)ceil(title_font * 2.0) : 0;

    /* The whole picture must stay within the size limit: lower the cell
     * scale until it does, refuse when even scale 1 is too big. */
    int f = render_upscale_factor(h, w, o.min_cell_px);
    long W, H;
    for (;; f--) {
        W = (long)cols * (w * (long)f + g) + g;
        H = (long)rows * (h * (long)f + g + cap_h) + g + title_h;
        if ((W <= RENDER_MAX_PX * 2 && H <= RENDER_MAX_PX * 4) || f == 1)
            break;
    }
    if (W > RENDER_LIMIT_PX || H > RENDER_LIMIT_PX)
        return render__fail(RENDER_EINVAL,
                            "render_grid_png: a %dx%d grid of %dx%d images is %ldx%ld px, over the "
                            "%d px limit; pass fewer images or more columns",
                            rows, cols, h, w, H, W, RENDER_LIMIT_PX);
    int cw = w * f, ch = h * f;

    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)W, (int)H);
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    char *text = NULL;
    if (has_title) {
        text = render__utf8_dup(o.title);
        if (text) {
            render__font(cr, title_font, true);
            render__rgb(cr, 0x1f2937);
            render__ellipsize(cr, &text, (double)W - 2 * g);
            render__text(cr, text, W / 2.0, g + title_font, 0.5);
        }
        free(text);
    }
    render__font(cr, cap_font, false);
    for (int i = 0; i < n; i++) {
        int x0 = g + (i % cols) * (cw + g);
        int y0 = g + title_h + (i / cols) * (ch + g + cap_h);
        cairo_surface_t *img = render__image_surface(pix + (size_t)i * c * (size_t)h * w, c, h, w);
        cairo_save(cr);
        cairo_translate(cr, x0, y0);
        cairo_scale(cr, f, f);
        cairo_set_source_surface(cr, img, 0, 0);
        /* Nearest neighbour: each input pixel stays a crisp f x f block. */
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
        cairo_rectangle(cr, 0, 0, w, h);
        cairo_fill(cr);
        cairo_restore(cr);
        cairo_surface_destroy(img);
        /* A hairline frame so dark and white images both read as tiles. */
        cairo_set_line_width(cr, 1);
        render__rgb(cr, 0xd1d5db);
        cairo_rectangle(cr, x0 - 0.5, y0 - 0.5, cw + 1, ch + 1);
        cairo_stroke(cr);
        if (captions && captions[i] && captions[i][0]) {
            text = render__utf8_dup(captions[i]);
            if (text) {
                /* A long caption first gets a smaller font (its end, the
                 * value, matters most), then an ellipsis. */
                double room = cw + g - 2, wid = render__text_width(cr, text);
                if (wid > room)
                    render__font(cr, fmax(9.0, cap_font * room / wid), false);
                render__rgb(cr, 0x374151);
                render__ellipsize(cr, &text, room);
                render__text(cr, text, x0 + cw / 2.0, y0 + ch + cap_font + 3, 0.5);
                render__font(cr, cap_font, false);
            }
            free(text);
        }
    }
    int st = RENDER_OK;
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        st = render__fail(RENDER_ECAIRO, "render_grid_png: cairo: %s",
                          cairo_status_to_string(cairo_status(cr)));
    cairo_destroy(cr);
    if (st == RENDER_OK)
        st = render__surface_png(surf, false, out);
    cairo_surface_destroy(surf);
    if (st == RENDER_OK)
        out->scale = f;
    return st;
}

/* ------------------------------------------------------------ ticks */

/* Heckbert's nice number: 1, 2, 5 or 10 times a power of ten near x. */
static double render__nicenum(double x, bool round)
{
    double e = floor(log10(x));
    double f = x / pow(10.0, e), nf;
    if (round)
        nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    else
        nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nf * pow(10.0, e);
}

/* Widens an empty or vanishing range around its value. */
static void render__widen(double *lo, double *hi)
{
    double mag = fmax(fabs(*lo), fabs(*hi));
    if (*hi - *lo > mag * 1e-9 && *hi - *lo > 1e-300)
        return;
    double pad = mag > 0 ? mag * 0.1 : 1.0;
    *lo -= pad;
    *hi += pad;
}

int render_nice_ticks(double lo, double hi, int target, double *ticks, int max_ticks, int *n_ticks,
                      double *step)
{
    if (n_ticks)
        *n_ticks = 0;
    if (step)
        *step = 0;
    if (!ticks || !n_ticks)
        return render__fail(RENDER_EINVAL, "render_nice_ticks: ticks and n_ticks must not be NULL");
    if (!isfinite(lo) || !isfinite(hi) || lo > hi)
        return render__fail(RENDER_EINVAL,
                            "render_nice_ticks: need finite lo <= hi, got lo=%g hi=%g", lo, hi);
    if (target < 2 || max_ticks < 2)
        return render__fail(RENDER_EINVAL,
                            "render_nice_ticks: target and max_ticks must be >= 2, got %d and %d",
                            target, max_ticks);
    if (fabs(lo) > 1e300 || fabs(hi) > 1e300)
        return render__fail(RENDER_EINVAL,
                            "render_nice_ticks: bounds beyond 1e300 cannot be ticked");
    render__widen(&lo, &hi);
    double range = render__nicenum(hi - lo, false);
    double d = render__nicenum(range / (target - 1), true);
    double gmin = floor(lo / d) * d, gmax = ceil(hi / d) * d;
    int n = (int)floor((gmax - gmin) / d + 0.5) + 1;
    if (n > max_ticks)
        n = max_ticks;
    for (int i = 0; i < n; i++) {
        double v = gmin + i * d;
        if (fabs(v) < d * 1e-9)
            v = 0; /* no "-0" or 1e-17 labels */
        ticks[i] = v;
    }
    *n_ticks = n;
    if (step)
        *step = d;
    return RENDER_OK;
}

/* Tick label with as many decimals as the step needs. */
static void render__tick_label(double v, double step, char *out, size_t cap)
{
    double mag = fmax(fabs(v), step);
    if (mag >= 1e6 || step < 1e-4) {
        snprintf(out, cap, "%g", v);
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6)
        dec = 6;
    snprintf(out, cap, "%.*f", dec, v);
}

/* ------------------------------------------------------------ plot */

/* Tableau 10: distinct, colour-blind-tolerant series colours. */
static const unsigned kPalette[10] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                      0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};

enum { kMaxTicks = 32 };

/* Axis for data [lo, hi]: the range padded by 4% a side, with snap snapped
 * out to a tick when one lies within that padding (so steps from 0 to the
 * last start and end at the corners), with the 1-2-5 step whose tick count
 * inside is nearest target. The y axis does not snap: a curve or a dot is
 * never drawn on the frame.
 * Unlike loose labelling, curves fill the plot instead of leaving a band of
 * up to a whole step empty at each end. */
static void render__axis(double lo, double hi, int target, bool snap, double *a0, double *a1,
                         double *ticks, int *n, double *step)
{
    render__widen(&lo, &hi);
    double pad = (hi - lo) * 0.04, plo = lo - pad, phi = hi + pad;
    double base = pow(10.0, floor(log10((phi - plo) / target)));
    static const double kMant[3] = {1, 2, 5};
    double d = base;
    int best = -1;
    for (int e = -1; e <= 1; e++)
        for (int m = 0; m < 3; m++) {
            double cand = kMant[m] * base * pow(10.0, e);
            int cnt = (int)(floor(phi / cand) - ceil(plo / cand)) + 1;
            int err = abs(cnt - target);
            if (cnt >= 2 && cnt <= kMaxTicks && (best < 0 || err < best)) {
                best = err;
                d = cand;
            }
        }
    double slo = floor(lo / d) * d, shi = ceil(hi / d) * d;
    *a0 = snap && slo >= plo ? slo : plo;
    *a1 = snap && shi <= phi ? shi : phi;
    int k = 0;
    for (double t = ceil(*a0 / d - 1e-9); k < kMaxTicks && t * d <= *a1 + d * 1e-9; t += 1) {
        double v = t * d;
        ticks[k++] = fabs(v) < d * 1e-9 ? 0.0 : v; /* no "-0" labels */
    }
    *n = k;
    *step = d;
}

/* Lays out (and with draw, draws) the legend as rows of swatch + name
 * entries from x = left, wrapping at right_edge, below top. Returns the y
 * where the plot may start: top itself when no series has a name. */
static double render__legend(cairo_t *cr, const render_series *series, int n_series, double left,
                             double right_edge, double top, bool draw)
{
    const double font = 11.5, row_h = font + 8;
    render__font(cr, font, false);
    double lx = left, ly = top + font;
    bool any = false;
    for (int s = 0; s < n_series; s++) {
        if (!series[s].name || !series[s].name[0])
            continue;
        char *text = render__utf8_dup(series[s].name);
        if (!text)
            continue;
        render__ellipsize(cr, &text, right_edge - left - 30);
        double ew = 22 + render__text_width(cr, text) + 16;
        if (lx > left && lx + ew > right_edge) {
            lx = left;
            ly += row_h;
        }
        if (draw) {
            render__rgb(cr, kPalette[s % 10]);
            cairo_set_line_width(cr, 2.5);
            cairo_move_to(cr, lx, ly - font * 0.35);
            cairo_line_to(cr, lx + 16, ly - font * 0.35);
            cairo_stroke(cr);
            render__rgb(cr, 0x374151);
            render__text(cr, text, lx + 22, ly, 0);
        }
        lx += ew;
        any = true;
        free(text);
    }
    return any ? ly + 10 : top;
}

int render_plot_png(const render_series *series, int n_series, const render_plot_opts *opts,
                    render_png *out)
{
    if (!out)
        return render__fail(RENDER_EINVAL, "render_plot_png: out is NULL");
    memset(out, 0, sizeof *out);
    if (n_series < 0)
        return render__fail(RENDER_EINVAL, "render_plot_png: n_series must be >= 0, got %d",
                            n_series);
    if (n_series > 0 && !series)
        return render__fail(RENDER_EINVAL, "render_plot_png: series is NULL but n_series is %d",
                            n_series);
    for (int s = 0; s < n_series; s++) {
        if (series[s].n < 0)
            return render__fail(RENDER_EINVAL,
                                "render_plot_png: series %d has n=%d points; must be >= 0", s,
                                series[s].n);
        if (series[s].n > 0 && !series[s].y)
            return render__fail(RENDER_EINVAL,
                                "render_plot_png: series %d has %d points but y is NULL", s,
                                series[s].n);
    }
    render_plot_opts o = opts ? *opts : (render_plot_opts){0};
    if (o.width == 0)
        o.width = 640;
    if (o.height == 0)
        o.height = 400;
    if (o.width < 160 || o.width > 4096 || o.height < 160 || o.height > 4096)
        return render__fail(
            RENDER_EINVAL,
            "render_plot_png: width and height must be 160..4096 (0 = 640x400), got %dx%d", o.width,
            o.height);
    if (o.n_vlines < 0 || (o.n_vlines > 0 && !o.vlines))
        return render__fail(RENDER_EINVAL,
                            "render_plot_png: n_vlines=%d needs a vlines array of that length",
                            o.n_vlines);
    for (int i = 0; i < o.n_vlines; i++)
        if (!isfinite(o.vlines[i]))
            return render__fail(RENDER_EINVAL,
                                "render_plot_png: vline %d is %g; markers must be finite x values",
                                i, (double)o.vlines[i]);
    if (!o.xlabel)
        o.xlabel = "step";

    /* Data range over finite points and markers. */
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int s = 0; s < n_series; s++)
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x ? series[s].x[i] : i, y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y))
                continue;
            xlo = fmin(xlo, x), xhi = fmax(xhi, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
        }
    bool empty = !(xlo <= xhi);
    for (int i = 0; i < o.n_vlines; i++) {
        xlo = fmin(xlo, o.vlines[i]);
        xhi = fmax(xhi, o.vlines[i]);
    }
    if (!(xlo <= xhi))
        xlo = 0, xhi = 1;
    if (empty)
        ylo = 0, yhi = 1;

    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, o.width, o.height);
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);

    const double tick_font = 11, label_font = 12, title_font = 15;
    char buf[64], *text;
    bool has_ylabel = o.ylabel && o.ylabel[0];
    double top = 12, right = 24, bottom = 10 + tick_font + 8 + label_font + 10;
    if (o.title && o.title[0]) {
        text = render__utf8_dup(o.title);
        if (text) {
            render__font(cr, title_font, true);
            render__rgb(cr, 0x111827);
            render__ellipsize(cr, &text, o.width - 20);
            render__text(cr, text, o.width / 2.0, top + title_font, 0.5);
            top += title_font + 10;
        }
        free(text);
    }

    /* The legend's height depends on the left margin, which fits the widest
     * y tick label, whose count depends on the plot's height: two passes
     * settle it. Tick counts follow the room, about one per 55 px up and
     * 100 px across, so small plots stay legible. */
    double title_bottom = top, left = 60, pw, ph;
    double xt[kMaxTicks], yt[kMaxTicks], xstep, ystep, x0, x1, y0, y1;
    int nxt, nyt, st = RENDER_OK;
    for (int pass = 0; pass < 2; pass++) {
        top = render__legend(cr, series, n_series, left, o.width - right, title_bottom, false) + 4;
        ph = o.height - top - bottom;
        int ytarget = (int)fmin(8, fmax(3, ph / 55));
        render__axis(ylo, yhi, ytarget, false, &y0, &y1, yt, &nyt, &ystep);
        render__font(cr, tick_font, false);
        double ytw = 0;
        for (int i = 0; i < nyt; i++) {
            render__tick_label(yt[i], ystep, buf, sizeof buf);
            ytw = fmax(ytw, render__text_width(cr, buf));
        }
        left = 10 + (has_ylabel ? label_font + 10 : 0) + ytw + 8;
    }
    pw = o.width - left - right;
    render__axis(xlo, xhi, (int)fmin(10, fmax(3, pw / 100)), true, &x0, &x1, xt, &nxt, &xstep);
    top = render__legend(cr, series, n_series, left, o.width - right, title_bottom, true) + 4;
    ph = o.height - top - bottom;
    if (ph < 40) {
        /* A legend of many series on a small picture: give the plot room. */
        ph = 40;
        top = o.height - bottom - ph;
    }
#define PX(v) (left + ((v)-x0) / (x1 - x0) * pw)
#define PY(v) (top + ph - ((v)-y0) / (y1 - y0) * ph)

    /* Grid and tick labels. */
    render__font(cr, tick_font, false);
    cairo_set_line_width(cr, 1);
    for (int i = 0; i < nyt; i++) {
        double y = floor(PY(yt[i])) + 0.5;
        render__rgb(cr, 0xe5e7eb);
        cairo_move_to(cr, left, y);
        cairo_line_to(cr, left + pw, y);
        cairo_stroke(cr);
        render__tick_label(yt[i], ystep, buf, sizeof buf);
        render__rgb(cr, 0x4b5563);
        render__text(cr, buf, left - 8, y + tick_font * 0.36, 1);
    }
    for (int i = 0; i < nxt; i++) {
        double x = floor(PX(xt[i])) + 0.5;
        render__rgb(cr, 0xe5e7eb);
        cairo_move_to(cr, x, top);
        cairo_line_to(cr, x, top + ph);
        cairo_stroke(cr);
        render__tick_label(xt[i], xstep, buf, sizeof buf);
        render__rgb(cr, 0x4b5563);
        render__text(cr, buf, x, top + ph + 8 + tick_font, 0.5);
    }
    /* Axes: left and bottom only, drawn over the grid. */
    render__rgb(cr, 0x6b7280);
    cairo_move_to(cr, floor(left) + 0.5, top);
    cairo_line_to(cr, floor(left) + 0.5, floor(top + ph) + 0.5);
    cairo_line_to(cr, left + pw, floor(top + ph) + 0.5);
    cairo_stroke(cr);

    /* Axis labels. */
    render__font(cr, label_font, false);
    render__rgb(cr, 0x1f2937);
    text = render__utf8_dup(o.xlabel);
    if (text) {
        render__ellipsize(cr, &text, pw);
        render__text(cr, text, left + pw / 2, o.height - 10, 0.5);
    }
    free(text);
    if (has_ylabel) {
        text = render__utf8_dup(o.ylabel);
        if (text) {
            render__ellipsize(cr, &text, ph);
            cairo_save(cr);
            cairo_translate(cr, 10 + label_font, top + ph / 2);
            cairo_rotate(cr, -kPi / 2);
            render__text(cr, text, 0, 0, 0.5);
            cairo_restore(cr);
        }
        free(text);
    }

    /* Everything data-bound is clipped to the plot area. */
    cairo_save(cr);
    /* A little slack so a line or dot on the frame is not cut in half. */
    cairo_rectangle(cr, left - 4, top - 4, pw + 8, ph + 8);
    cairo_clip(cr);

    /* Markers: dashed verticals with an optional label at the top. */
    static const double kDash[2] = {5, 4};
    render__font(cr, 10, false);
    for (int i = 0; i < o.n_vlines; i++) {
        double x = floor(PX(o.vlines[i])) + 0.5;
        render__rgb(cr, 0x9ca3af);
        cairo_set_line_width(cr, 1.2);
        cairo_set_dash(cr, kDash, 2, 0);
        cairo_move_to(cr, x, top);
        cairo_line_to(cr, x, top + ph);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        if (o.vline_labels && o.vline_labels[i] && o.vline_labels[i][0]) {
            text = render__utf8_dup(o.vline_labels[i]);
            if (text) {
                render__rgb(cr, 0x6b7280);
                /* Right of the line unless that runs out of the plot. */
                double tw = render__text_width(cr, text);
                bool flip = x + 4 + tw > left + pw;
                render__text(cr, text, flip ? x - 4 : x + 4, top + 12, flip ? 1 : 0);
            }
            free(text);
        }
    }

    /* Series: polylines broken at non-finite points; lone points as dots. */
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    for (int s = 0; s < n_series; s++) {
        const render_series *sr = &series[s];
        render__rgb(cr, kPalette[s % 10]);
        cairo_set_line_width(cr, 2);
        int run = 0;
        for (int i = 0; i <= sr->n; i++) {
            bool ok = false;
            double x = 0, y = 0;
            if (i < sr->n) {
                x = sr->x ? sr->x[i] : i;
                y = sr->y[i];
                ok = isfinite(x) && isfinite(y);
            }
            if (ok) {
                if (run == 0)
                    cairo_move_to(cr, PX(x), PY(y));
                else
                    cairo_line_to(cr, PX(x), PY(y));
                run++;
                continue;
            }
            if (run == 1) {
                double cx, cy;
                cairo_get_current_point(cr, &cx, &cy);
                cairo_new_path(cr);
                cairo_arc(cr, cx, cy, 3, 0, 2 * kPi);
                cairo_fill(cr);
            } else if (run > 1) {
                cairo_stroke(cr);
            }
            run = 0;
        }
    }
    cairo_restore(cr);
#undef PX
#undef PY

    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        st = render__fail(RENDER_ECAIRO, "render_plot_png: cairo: %s",
                          cairo_status_to_string(cairo_status(cr)));
    cairo_destroy(cr);
    if (st == RENDER_OK)
        st = render__surface_png(surf, false, out);
    cairo_surface_destroy(surf);
    return st;
}

/* ------------------------------------------------------------ logo */

int render_logo_png(int size, render_png *out)
{
    if (!out)
        return render__fail(RENDER_EINVAL, "render_logo_png: out is NULL");
    memset(out, 0, sizeof *out);
    if (size < 16 || size > 512)
        return render__fail(RENDER_EINVAL, "render_logo_png: size must be 16..512 pixels, got %d",
                            size);
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, size, size);
    cairo_t *cr = cairo_create(surf);
    /* Drawn on a 64-unit canvas so both sizes share one design. */
    cairo_scale(cr, size / 64.0, size / 64.0);

    /* Rounded tile, deep blue to violet: the colours of a saliency map. */
    double r = 12;
    cairo_new_sub_path(cr);
    cairo_arc(cr, 64 - r, r, r, -kPi / 2, 0);
    cairo_arc(cr, 64 - r, 64 - r, r, 0, kPi / 2);
    cairo_arc(cr, r, 64 - r, r, kPi / 2, kPi);
    cairo_arc(cr, r, r, r, kPi, 3 * kPi / 2);
    cairo_close_path(cr);
    cairo_pattern_t *bg = cairo_pattern_create_linear(0, 64, 64, 0);
    cairo_pattern_add_color_stop_rgb(bg, 0, 0x1d / 255.0, 0x4e / 255.0, 0xd8 / 255.0);
    cairo_pattern_add_color_stop_rgb(bg, 1, 0x6d / 255.0, 0x28 / 255.0, 0xd9 / 255.0);
    cairo_set_source(cr, bg);
    cairo_fill(cr);
    cairo_pattern_destroy(bg);

    /* Gradient ascent: a curve climbing to the top right. */
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_set_line_width(cr, 4);
    cairo_move_to(cr, 9, 31);
    cairo_curve_to(cr, 22, 29, 30, 24, 44, 13);
    cairo_stroke(cr);

    /* The neuron it maximizes: a lit unit with a soft glow. */
    cairo_pattern_t *glow = cairo_pattern_create_radial(48, 12, 2, 48, 12, 13);
    cairo_pattern_add_color_stop_rgba(glow, 0, 1, 0.85, 0.3, 0.9);
    cairo_pattern_add_color_stop_rgba(glow, 1, 1, 0.85, 0.3, 0);
    cairo_set_source(cr, glow);
    cairo_arc(cr, 48, 12, 13, 0, 2 * kPi);
    cairo_fill(cr);
    cairo_pattern_destroy(glow);
    cairo_set_source_rgb(cr, 0xfb / 255.0, 0xbf / 255.0, 0x24 / 255.0);
    cairo_arc(cr, 48, 12, 6.5, 0, 2 * kPi);
    cairo_fill(cr);

    /* "am" in heavy white type, the part that must read at 32 px. */
    cairo_select_font_face(cr, kFont, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 30);
    cairo_set_source_rgb(cr, 1, 1, 1);
    render__text(cr, "am", 32, 56, 0.5);

    int st = RENDER_OK;
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        st = render__fail(RENDER_ECAIRO, "render_logo_png: cairo: %s",
                          cairo_status_to_string(cairo_status(cr)));
    cairo_destroy(cr);
    if (st == RENDER_OK)
        st = render__surface_png(surf, true, out);
    cairo_surface_destroy(surf);
    return st;
}
