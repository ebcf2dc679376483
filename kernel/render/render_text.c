/* render_text.c: the textual payloads: UTF-8 repair and widths, HTML escaping,
 * tables (HTML and aligned text/plain), heat colours, the live progress
 * display and its throttle. */
/* clock_gettime and CLOCK_MONOTONIC are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L
#include "render.h"
#include "render_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ string builder */

static bool render__sb_reserve(render__sb *b, size_t extra)
{
    if (b->failed)
        return false;
    if (extra > SIZE_MAX - b->len - 1) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void render__sb_putn(render__sb *b, const char *s, size_t n)
{
    if (!render__sb_reserve(b, n))
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void render__sb_puts(render__sb *b, const char *s)
{
    render__sb_putn(b, s, strlen(s));
}

void render__sb_printf(render__sb *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        render__sb_putn(b, small, (size_t)n);
        return;
    }
    if (!render__sb_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void render__sb_pad(render__sb *b, size_t n)
{
    if (!render__sb_reserve(b, n))
        return;
    memset(b->s + b->len, ' ', n);
    b->len += n;
    b->s[b->len] = '\0';
}

char *render__sb_take(render__sb *b)
{
    if (b->failed) {
        render__sb_free(b);
        return NULL;
    }
    if (!b->s)
        render__sb_putn(b, "", 0);
    char *s = b->failed ? NULL : b->s;
    if (!s)
        render__sb_free(b);
    memset(b, 0, sizeof *b);
    return s;
}

void render__sb_free(render__sb *b)
{
    if (!b)
        return;
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------ UTF-8 */

/* Length of the well-formed UTF-8 sequence at s (n bytes left) and its code
 * point, or 0 when the first byte does not start one (RFC 3629 table 3-7). */
static size_t render__utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        unsigned char t = s[i];
        if (t < (i == 1 ? lo : 0x80) || t > (i == 1 ? hi : 0xBF))
            return 0;
        v = v << 6 | (t & 0x3F);
    }
    *cp = v;
    return len;
}

/* Appends bytes s (n) as valid UTF-8. With controls, C0 controls and DEL
 * become visible escapes too, so a table cell stays on one line. */
static void render__sb_utf8(render__sb *b, const char *s, size_t n, bool controls)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = render__utf8_next(u + i, n - i, &cp);
        bool bad = k == 0 || cp == 0;
        bool ctl = controls && k == 1 && (cp < 0x20 || cp == 0x7F);
        if (!bad && !ctl) {
            i += k;
            run += k;
            continue;
        }
        render__sb_putn(b, s + i - run, run);
        run = 0;
        if (bad) {
            render__sb_printf(b, "\\x%02X", u[i]);
        } else if (cp == '\n') {
            render__sb_puts(b, "\\n");
        } else if (cp == '\t') {
            render__sb_puts(b, "\\t");
        } else if (cp == '\r') {
            render__sb_puts(b, "\\r");
        } else {
            render__sb_printf(b, "\\x%02X", (unsigned)cp);
        }
        i += 1;
    }
    render__sb_putn(b, s + n - run, run);
}

int render_utf8_sanitize(const char *bytes, size_t len, char **out, size_t *out_len)
{
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!out)
        return render__fail(RENDER_EINVAL, "render_utf8_sanitize: out is NULL");
    if (!bytes && len)
        return render__fail(RENDER_EINVAL, "render_utf8_sanitize: bytes is NULL but len is %zu",
                            len);
    render__sb b = {0};
    render__sb_utf8(&b, bytes ? bytes : "", len, false);
    size_t n = b.len;
    char *s = render__sb_take(&b);
    if (!s)
        return render__fail(RENDER_ENOMEM, "render_utf8_sanitize: out of memory");
    *out = s;
    if (out_len)
        *out_len = n;
    return RENDER_OK;
}

char *render__utf8_dup(const char *s)
{
    render__sb b = {0};
    if (!s)
        s = "";
    render__sb_utf8(&b, s, strlen(s), false);
    return render__sb_take(&b);
}

/* Terminal columns of one code point: a compact take on wcwidth(). */
static int render__cp_width(uint32_t cp)
{
    if (cp == 0)
        return 0;
    if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
        (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x20D0 && cp <= 0x20FF) ||
        (cp >= 0xFE20 && cp <= 0xFE2F) || (cp >= 0x200B && cp <= 0x200F) ||
        (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0x2060 || cp == 0xFEFF)
        return 0;
    if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0x303E) ||
        (cp >= 0x3041 && cp <= 0x33FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
        (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xA000 && cp <= 0xA4CF) ||
        (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
        (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
        (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1F64F) ||
        (cp >= 0x1F900 && cp <= 0x1F9FF) || (cp >= 0x20000 && cp <= 0x3FFFD))
        return 2;
    return 1;
}

size_t render_utf8_width(const char *s, size_t len)
{
    if (!s)
        return 0;
    const unsigned char *u = (const unsigned char *)s;
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = render__utf8_next(u + i, len - i, &cp);
        if (k == 0) {
            w += 4;
            i += 1;
        } else {
            w += (size_t)render__cp_width(cp);
            i += k;
        }
    }
    return w;
}

/* ------------------------------------------------------------ HTML */

/* With controls, newlines and tabs show as \n and \t: a table cell holding a
 * token such as "\n" must stay one visible line. */
static void render__sb_html_ex(render__sb *b, const char *s, size_t n, bool controls)
{
    render__sb clean = {0};
    render__sb_utf8(&clean, s, n, controls);
    if (clean.failed) {
        b->failed = true;
        render__sb_free(&clean);
        return;
    }
    size_t run = 0;
    for (size_t i = 0; i < clean.len; i++) {
        const char *rep = NULL;
        switch (clean.s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: run++; continue;
        }
        render__sb_putn(b, clean.s + i - run, run);
        run = 0;
        render__sb_puts(b, rep);
    }
    if (clean.len)
        render__sb_putn(b, clean.s + clean.len - run, run);
    render__sb_free(&clean);
}

void render__sb_html(render__sb *b, const char *s, size_t n)
{
    render__sb_html_ex(b, s, n, false);
}

int render_html_escape(const char *s, char **out)
{
    if (out)
        *out = NULL;
    if (!out)
        return render__fail(RENDER_EINVAL, "render_html_escape: out is NULL");
    if (!s)
        return render__fail(RENDER_EINVAL, "render_html_escape: s is NULL");
    render__sb b = {0};
    render__sb_html(&b, s, strlen(s));
    render__sb_putn(&b, "", 0);
    char *r = render__sb_take(&b);
    if (!r)
        return render__fail(RENDER_ENOMEM, "render_html_escape: out of memory");
    *out = r;
    return RENDER_OK;
}

int render_heat_color(double v, double lo, double hi, char out[8])
{
    if (!out)
        return render__fail(RENDER_EINVAL, "render_heat_color: out is NULL");
    strcpy(out, "#ffffff");
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
        return render__fail(RENDER_EINVAL,
                            "render_heat_color: need finite lo < hi, got lo=%g hi=%g", lo, hi);
    if (isnan(v))
        return RENDER_OK;
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    /* Light ends of ColorBrewer's RdBu: dark text stays readable on both. */
    static const double kRed[3] = {239, 138, 98}, kBlue[3] = {103, 169, 207};
    const double *end = kRed;
    double t;
    if (lo < 0 && hi > 0) {
        if (v >= 0) {
            t = v / hi;
        } else {
            t = v / lo;
            end = kBlue;
        }
    } else {
        t = (v - lo) / (hi - lo);
    }
    int rgb[3];
    for (int k = 0; k < 3; k++)
        rgb[k] = (int)lrint(255.0 + (end[k] - 255.0) * t);
    snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
    return RENDER_OK;
}

/* ------------------------------------------------------------ tables */

/* A whole-cell number (surrounding spaces allowed), as strtod reads it. */
static bool render__is_number(const char *s)
{
    if (!s)
        return false;
    while (*s == ' ')
        s++;
    if (!*s)
        return false;
    char *end;
    (void)strtod(s, &end);
    if (end == s)
        return false;
    while (*end == ' ')
        end++;
    return *end == '\0';
}

static const char *render__cell(const render_table *t, int r, int k)
{
    const char *s = t->cells ? t->cells[(size_t)r * (size_t)t->n_cols + (size_t)k] : NULL;
    return s ? s : "";
}

static int render__check_table(const char *fn, const render_table *t, char **out)
{
    if (out)
        *out = NULL;
    if (!out)
        return render__fail(RENDER_EINVAL, "%s: out is NULL", fn);
    if (!t)
        return render__fail(RENDER_EINVAL, "%s: table is NULL", fn);
    if (t->n_cols < 1)
        return render__fail(RENDER_EINVAL, "%s: n_cols must be >= 1, got %d", fn, t->n_cols);
    if (t->n_rows < 0)
        return render__fail(RENDER_EINVAL, "%s: n_rows must be >= 0, got %d", fn, t->n_rows);
    if (t->n_rows > 0 && !t->cells)
        return render__fail(RENDER_EINVAL, "%s: cells is NULL but n_rows is %d", fn, t->n_rows);
    if (t->heat && t->n_rows > 0 &&
        (!isfinite(t->heat_lo) || !isfinite(t->heat_hi) || !(t->heat_lo < t->heat_hi)))
        return render__fail(RENDER_EINVAL,
                            "%s: heat scale needs finite heat_lo < heat_hi, got %g and %g", fn,
                            (double)t->heat_lo, (double)t->heat_hi);
    return RENDER_OK;
}

/* A column is right-aligned in its header when all its non-empty cells are. */
static bool render__numeric_column(const render_table *t, int k)
{
    bool any = false;
    for (int r = 0; r < t->n_rows; r++) {
        const char *s = render__cell(t, r, k);
        if (!*s)
            continue;
        if (!render__is_number(s))
            return false;
        any = true;
    }
    return any;
}

int render_table_html(const render_table *t, char **out)
{
    int st = render__check_table("render_table_html", t, out);
    if (st)
        return st;
    render__sb b = {0};
    render__sb_puts(&b, "<table class=\"actmax-table\" style=\"border-collapse:collapse;"
                        "font-variant-numeric:tabular-nums\">\n");
    if (t->caption) {
        render__sb_puts(&b, "<caption style=\"text-align:left;font-weight:bold\">");
        render__sb_html(&b, t->caption, strlen(t->caption));
        render__sb_puts(&b, "</caption>\n");
    }
    if (t->header) {
        render__sb_puts(&b, "<thead><tr>");
        for (int k = 0; k < t->n_cols; k++) {
            const char *h = t->header[k] ? t->header[k] : "";
            render__sb_printf(&b, "<th style=\"text-align:%s;padding:2px 8px\">",
                              render__numeric_column(t, k) ? "right" : "left");
            render__sb_html_ex(&b, h, strlen(h), true);
            render__sb_puts(&b, "</th>");
        }
        render__sb_puts(&b, "</tr></thead>\n");
    }
    render__sb_puts(&b, "<tbody>\n");
    for (int r = 0; r < t->n_rows; r++) {
        render__sb_puts(&b, "<tr>");
        for (int k = 0; k < t->n_cols; k++) {
            const char *s = render__cell(t, r, k);
            render__sb_printf(&b, "<td style=\"text-align:%s;padding:2px 8px;white-space:pre",
                              render__is_number(s) ? "right" : "left");
            if (t->heat) {
                char color[8];
                float v = t->heat[(size_t)r * (size_t)t->n_cols + (size_t)k];
                if (!isnan(v) && render_heat_color(v, t->heat_lo, t->heat_hi, color) == RENDER_OK)
                    render__sb_printf(&b, ";background-color:%s;color:#111", color);
            }
            render__sb_puts(&b, "\">");
            render__sb_html_ex(&b, s, strlen(s), true);
            render__sb_puts(&b, "</td>");
        }
        render__sb_puts(&b, "</tr>\n");
    }
    render__sb_puts(&b, "</tbody>\n</table>");
    char *s = render__sb_take(&b);
    if (!s)
        return render__fail(RENDER_ENOMEM, "render_table_html: out of memory");
    *out = s;
    return RENDER_OK;
}

/* Cell text as it shows in text/plain: valid UTF-8, controls escaped. */
static char *render__text_cell(const char *s)
{
    render__sb b = {0};
    render__sb_utf8(&b, s, strlen(s), true);
    render__sb_putn(&b, "", 0);
    return render__sb_take(&b);
}

int render_table_text(const render_table *t, char **out)
{
    int st = render__check_table("render_table_text", t, out);
    if (st)
        return st;
    int K = t->n_cols, R = t->n_rows, hdr = t->header ? 1 : 0;
    size_t n = (size_t)(R + hdr) * (size_t)K;
    char **txt = calloc(n ? n : 1, sizeof *txt);        /* (R + hdr, K) display text */
    size_t *width = calloc((size_t)K, sizeof *width);   /* (K) column widths */
    bool *num_col = calloc((size_t)K, sizeof *num_col); /* (K) */
    bool ok = txt && width && num_col;
    for (int r = 0; ok && r < R + hdr; r++)
        for (int k = 0; ok && k < K; k++) {
            const char *s =
                hdr && r == 0 ? (t->header[k] ? t->header[k] : "") : render__cell(t, r - hdr, k);
            char *c = render__text_cell(s);
            if (!c) {
                ok = false;
                break;
            }
            txt[(size_t)r * K + k] = c;
            size_t w = render_utf8_width(c, strlen(c));
            if (w > width[k])
                width[k] = w;
        }
    render__sb b = {0};
    if (ok) {
        for (int k = 0; k < K; k++)
            num_col[k] = render__numeric_column(t, k);
        if (t->caption) {
            char *c = render__text_cell(t->caption);
            if (c)
                render__sb_printf(&b, "%s\n", c);
            else
                b.failed = true;
            free(c);
        }
        for (int r = 0; r < R + hdr; r++) {
            /* Pad every column but the last, so lines carry no trailing blanks. */
            for (int k = 0; k < K; k++) {
                const char *c = txt[(size_t)r * K + k];
                size_t w = render_utf8_width(c, strlen(c));
                bool right =
                    hdr && r == 0 ? num_col[k] : render__is_number(render__cell(t, r - hdr, k));
                if (k)
                    render__sb_puts(&b, "  ");
                if (right)
                    render__sb_pad(&b, width[k] - w);
                render__sb_puts(&b, c);
                if (!right && k + 1 < K)
                    render__sb_pad(&b, width[k] - w);
            }
            render__sb_puts(&b, "\n");
            if (hdr && r == 0) {
                for (int k = 0; k < K; k++) {
                    if (k)
                        render__sb_puts(&b, "  ");
                    for (size_t i = 0; i < width[k]; i++)
                        render__sb_puts(&b, "-");
                }
                render__sb_puts(&b, "\n");
            }
        }
        if (R + hdr == 0)
            render__sb_putn(&b, "", 0);
    }
    for (size_t i = 0; txt && i < n; i++)
        free(txt[i]);
    free(txt);
    free(width);
    free(num_col);
    char *s = ok ? render__sb_take(&b) : NULL;
    render__sb_free(&b);
    if (!s)
        return render__fail(RENDER_ENOMEM, "render_table_text: out of memory");
    *out = s;
    return RENDER_OK;
}

/* ------------------------------------------------------------ progress */

int render_format_duration(double seconds, char *out, size_t cap)
{
    if (!out || cap < 16)
        return render__fail(RENDER_EINVAL,
                            "render_format_duration: out must hold at least 16 bytes");
    if (!(seconds >= 0) || !isfinite(seconds)) {
        snprintf(out, cap, "?");
    } else if (seconds < 60) {
        snprintf(out, cap, "%.1fs", seconds);
    } else if (seconds < 3600) {
        long s = lrint(seconds);
        snprintf(out, cap, "%ldm%02lds", s / 60, s % 60);
    } else if (seconds < 1e9) {
        long m = lrint(seconds / 60);
        snprintf(out, cap, "%ldh%02ldm", m / 60, m % 60);
    } else {
        snprintf(out, cap, "forever");
    }
    return RENDER_OK;
}

int render_progress_html(const render_progress *p, char **html, char **text)
{
    if (html)
        *html = NULL;
    if (text)
        *text = NULL;
    if (!p)
        return render__fail(RENDER_EINVAL, "render_progress_html: progress is NULL");
    if (p->total < 1)
        return render__fail(RENDER_EINVAL, "render_progress_html: total must be >= 1, got %d",
                            p->total);
    if (p->step < 0 || p->step > p->total)
        return render__fail(RENDER_EINVAL, "render_progress_html: step must be in 0..%d, got %d",
                            p->total, p->step);
    if (!(p->elapsed_s >= 0) || !isfinite(p->elapsed_s))
        return render__fail(RENDER_EINVAL,
                            "render_progress_html: elapsed_s must be a finite number >= 0, got %g",
                            p->elapsed_s);
    if (p->image && (!p->image->data || !p->image->size))
        return render__fail(RENDER_EINVAL, "render_progress_html: image has no PNG bytes");

    double frac = (double)p->step / p->total;
    char elapsed[32], eta[32], obj[48];
    render_format_duration(p->elapsed_s, elapsed, sizeof elapsed);
    if (p->step == p->total)
        snprintf(eta, sizeof eta, "done");
    else
        render_format_duration(p->step > 0 ? p->elapsed_s / p->step * (p->total - p->step) : NAN,
                               eta, sizeof eta);
    if (isnan(p->objective))
        snprintf(obj, sizeof obj, "-");
    else
        snprintf(obj, sizeof obj, "%.5g", p->objective);
    int pct = (int)floor(frac * 100.0);

    int st = RENDER_OK;
    if (text) {
        /* A 30-cell bar reads well in a terminal and in a notebook's pre. */
        render__sb b = {0};
        if (p->label && *p->label) {
            char *l = render__text_cell(p->label);
            if (l)
                render__sb_printf(&b, "%s\n", l);
            else
                b.failed = true;
            free(l);
        }
        int filled = (int)floor(frac * 30.0);
        render__sb_puts(&b, "[");
        for (int i = 0; i < 30; i++)
            render__sb_puts(&b, i < filled ? "#" : "-");
        render__sb_printf(&b, "] %d/%d %3d%%  objective %s  elapsed %s  ETA %s", p->step, p->total,
                          pct, obj, elapsed, eta);
        *text = render__sb_take(&b);
        if (!*text)
            st = render__fail(RENDER_ENOMEM, "render_progress_html: out of memory");
    }
    if (html && st == RENDER_OK) {
        render__sb b = {0};
        render__sb_puts(
            &b,
            "<div class=\"actmax-progress\" style=\"font-family:sans-serif;font-size:13px;line-height:1.5\">\n");
        if (p->label && *p->label) {
            render__sb_puts(&b, "<div style=\"font-family:monospace\">");
            render__sb_html(&b, p->label, strlen(p->label));
            render__sb_puts(&b, "</div>\n");
        }
        render__sb_printf(
            &b,
            "<div style=\"display:flex;align-items:center;gap:10px\">"
            "<div style=\"width:240px;height:10px;background:#e5e7eb;border-radius:5px;overflow:hidden\">"
            "<div style=\"width:%.1f%%;height:100%%;background:#2563eb\"></div></div>"
            "<span style=\"font-variant-numeric:tabular-nums\">%d/%d (%d%%) &middot; objective <b>%s</b>"
            " &middot; elapsed %s &middot; ETA %s</span></div>\n",
            frac * 100.0, p->step, p->total, pct, obj, elapsed, eta);
        if (p->image) {
            char *b64 = NULL;
            if (render_base64(p->image->data, p->image->size, &b64, NULL) == RENDER_OK) {
                render__sb_printf(&b, "<img src=\"data:image/png;base64,%s\"", b64);
                if (p->image->width > 0 && p->image->height > 0)
                    render__sb_printf(&b, " width=\"%d\" height=\"%d\"", p->image->width,
                                      p->image->height);
                render__sb_puts(
                    &b,
                    " style=\"image-rendering:pixelated;margin-top:4px\" alt=\"current image\"/>\n");
            } else {
                b.failed = true;
            }
            free(b64);
        }
        render__sb_puts(&b, "</div>");
        *html = render__sb_take(&b);
        if (!*html)
            st = render__fail(RENDER_ENOMEM, "render_progress_html: out of memory");
    }
    if (st) {
        if (text) {
            free(*text);
            *text = NULL;
        }
    }
    return st;
}

/* ------------------------------------------------------------ throttle */

double render_clock_monotonic(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int render_throttle_init(render_throttle *t, double max_per_second, render_clock_fn clock,
                         void *clock_ctx)
{
    if (!t)
        return render__fail(RENDER_EINVAL, "render_throttle_init: throttle is NULL");
    memset(t, 0, sizeof *t);
    if (!(max_per_second > 0) || !isfinite(max_per_second))
        return render__fail(
            RENDER_EINVAL, "render_throttle_init: max_per_second must be a positive number, got %g",
            max_per_second);
    t->interval_s = 1.0 / max_per_second;
    t->clock = clock ? clock : render_clock_monotonic;
    t->clock_ctx = clock_ctx;
    return RENDER_OK;
}

bool render_throttle_ready(render_throttle *t, bool is_final)
{
    if (!t || !t->clock)
        return true;
    double now = t->clock(t->clock_ctx);
    /* A clock that went backwards (a fake one, a suspended machine) must not
     * freeze the display: treat it as a fresh start. */
    bool ready = is_final || !t->has_last || now < t->last_s || now - t->last_s >= t->interval_s;
    if (ready) {
        t->last_s = now;
        t->has_last = true;
    }
    return ready;
}
