/* render_png.c: status reporting, PNG encoding to memory and decoding from
 * a file through libpng, nearest-neighbour upscaling, and base64 for
 * carrying PNG bytes in JSON. */
#include "render.h"
#include "render_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ status */

/* One message per thread, so two kernels' threads never read each other's. */
static _Thread_local char render__errbuf[512];

const char *render_strerror(int status)
{
    switch (status) {
    case RENDER_OK: return "ok";
    case RENDER_EINVAL: return "invalid argument";
    case RENDER_ENOMEM: return "out of memory";
    case RENDER_EPNG: return "PNG encoding failed";
    case RENDER_ECAIRO: return "drawing failed";
    default: return "unknown render status";
    }
}

const char *render_last_error(void)
{
    return render__errbuf;
}

int render__fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(render__errbuf, sizeof render__errbuf, fmt, ap);
    va_end(ap);
    return status;
}

void render_free(void *p)
{
    free(p);
}

void render_png_clear(render_png *png)
{
    if (!png)
        return;
    free(png->data);
    memset(png, 0, sizeof *png);
}

/* ------------------------------------------------------------ scaling */

int render_upscale_factor(int h, int w, int min_px)
{
    if (h <= 0 || w <= 0 || min_px <= 0)
        return 1;
    int shortside = h < w ? h : w;
    int longside = h < w ? w : h;
    int f = (min_px + shortside - 1) / shortside;
    /* A thin strip (1 x 500) must not be blown up past a sane size. */
    int cap = RENDER_MAX_PX / longside;
    if (f > cap)
        f = cap;
    return f < 1 ? 1 : f;
}

/* Display value in [0, 1] to a byte; NaN shows as 0 rather than garbage. */
unsigned char render__to_u8(float v)
{
    if (!(v > 0.0f))
        return 0;
    if (v >= 1.0f)
        return 255;
    return (unsigned char)lrintf(v * 255.0f);
}

/* ------------------------------------------------------------ libpng */

typedef struct render__membuf {
    unsigned char *data; /* (cap) growing PNG bytes */
    size_t size;
    size_t cap;
    bool failed; /* allocation failed inside a libpng callback */
} render__membuf;

static void render__png_write(png_structp png, png_bytep bytes, png_size_t n)
{
    render__membuf *m = png_get_io_ptr(png);
    if (m->failed)
        return;
    if (m->size + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->size + n)
            cap *= 2;
        unsigned char *d = realloc(m->data, cap);
        if (!d) {
            m->failed = true;
            png_error(png, "out of memory");
        }
        m->data = d;
        m->cap = cap;
    }
    memcpy(m->data + m->size, bytes, n);
    m->size += n;
}

static void render__png_flush(png_structp png)
{
    (void)png;
}

static void render__png_error(png_structp png, png_const_charp msg)
{
    render__fail(RENDER_EPNG, "libpng: %s", msg);
    png_longjmp(png, 1);
}

static void render__png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Writes rows (H, W*C bytes each, given as row pointers) to memory. Kept
 * separate so that nothing with automatic storage changes across setjmp. */
static int render__png_write_rows(unsigned char **rows, int c, int h, int w, render__membuf *m)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, render__png_error,
                                              render__png_warning);
    if (!png)
        return render__fail(RENDER_ENOMEM, "libpng: cannot create a write struct");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return render__fail(RENDER_ENOMEM, "libpng: cannot create an info struct");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return m->failed ? render__fail(RENDER_ENOMEM, "out of memory writing a PNG") : RENDER_EPNG;
    }
    int type = c == 1   ? PNG_COLOR_TYPE_GRAY
               : c == 3 ? PNG_COLOR_TYPE_RGB
                        : PNG_COLOR_TYPE_RGB_ALPHA;
    png_set_write_fn(png, m, render__png_write, render__png_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    /* Level 6 is zlib's default balance; these are sent live while a run goes. */
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return RENDER_OK;
}

static int render__check_dims(const char *fn, int c, int h, int w)
{
    if (c != 1 && c != 3 && c != 4)
        return render__fail(RENDER_EINVAL,
                            "%s: channels must be 1 (gray), 3 (RGB) or 4 (RGBA), got %d", fn, c);
    if (h <= 0 || w <= 0)
        return render__fail(RENDER_EINVAL, "%s: height and width must be positive, got %dx%d", fn,
                            h, w);
    if (h > RENDER_LIMIT_PX || w > RENDER_LIMIT_PX)
        return render__fail(RENDER_EINVAL,
                            "%s: image %dx%d is larger than the %d px limit per side", fn, h, w,
                            RENDER_LIMIT_PX);
    return RENDER_OK;
}

int render_png_encode_u8(const unsigned char *pix, int c, int h, int w, render_png *out)
{
    if (!out)
        return render__fail(RENDER_EINVAL, "render_png_encode_u8: out is NULL");
    memset(out, 0, sizeof *out);
    if (!pix)
        return render__fail(RENDER_EINVAL, "render_png_encode_u8: pix is NULL");
    int st = render__check_dims("render_png_encode_u8", c, h, w);
    if (st)
        return st;
    unsigned char **rows = malloc((size_t)h * sizeof *rows);
    if (!rows)
        return render__fail(RENDER_ENOMEM, "render_png_encode_u8: out of memory");
    for (int y = 0; y < h; y++)
        rows[y] = (unsigned char *)pix + (size_t)y * (size_t)w * (size_t)c;
    render__membuf m = {0};
    st = render__png_write_rows(rows, c, h, w, &m);
    free(rows);
    if (st) {
        free(m.data);
        return st;
    }
    out->data = m.data;
    out->size = m.size;
    out->width = w;
    out->height = h;
    out->scale = 1;
    return RENDER_OK;
}

int render_png_encode(const float *pix, int c, int h, int w, int min_px, render_png *out)
{
    if (!out)
        return render__fail(RENDER_EINVAL, "render_png_encode: out is NULL");
    memset(out, 0, sizeof *out);
    if (!pix)
        return render__fail(RENDER_EINVAL, "render_png_encode: pix is NULL");
    int st = render__check_dims("render_png_encode", c, h, w);
    if (st)
        return st;
    if (min_px < 0)
        return render__fail(RENDER_EINVAL,
                            "render_png_encode: min_px must be >= 0 (0 = no upscaling), got %d",
                            min_px);
    int f = render_upscale_factor(h, w, min_px);
    int oh = h * f, ow = w * f;
    /* Channel-first floats to interleaved bytes, each source pixel repeated
     * f x f times: nearest neighbour keeps single pixels crisp. */
    unsigned char *buf = malloc((size_t)oh * (size_t)ow * (size_t)c);
    if (!buf)
        return render__fail(RENDER_ENOMEM, "render_png_encode: out of memory for %dx%d pixels", ow,
                            oh);
    size_t plane = (size_t)h * (size_t)w;
    for (int y = 0; y < h; y++) {
        unsigned char *row = buf + (size_t)y * f * (size_t)ow * (size_t)c;
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                unsigned char v = render__to_u8(pix[(size_t)k * plane + (size_t)y * w + x]);
                for (int r = 0; r < f; r++)
                    row[((size_t)x * f + r) * c + k] = v;
            }
        for (int r = 1; r < f; r++)
            memcpy(row + (size_t)r * ow * c, row, (size_t)ow * c);
    }
    st = render_png_encode_u8(buf, c, oh, ow, out);
    free(buf);
    if (st == RENDER_OK)
        out->scale = f;
    return st;
}

/* ------------------------------------------------------------ reading */

typedef struct render__reader {
    FILE *f;
    png_structp png;
    png_infop info;
    unsigned char *buf;   /* (h, w * c) bytes */
    unsigned char **rows; /* h row pointers into buf */
    png_uint_32 w, h;
} render__reader;

/* Decodes r->f as c interleaved 8-bit channels: every colour type, bit
 * depth, palette, transparency chunk and interlacing is converted by libpng
 * (the simplified API refuses interlaced files). State lives in *r, so that
 * nothing with automatic storage changes across setjmp; the caller frees. */
static int render__png_read_rows(render__reader *r, int c)
{
    r->png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, render__png_error, render__png_warning);
    if (!r->png)
        return render__fail(RENDER_ENOMEM, "libpng: cannot create a read struct");
    r->info = png_create_info_struct(r->png);
    if (!r->info)
        return render__fail(RENDER_ENOMEM, "libpng: cannot create an info struct");
    if (setjmp(png_jmpbuf(r->png)))
        return RENDER_EPNG;
    png_init_io(r->png, r->f);
    png_set_user_limits(r->png, RENDER_LIMIT_PX, RENDER_LIMIT_PX);
    png_read_info(r->png, r->info);
    png_byte type = png_get_color_type(r->png, r->info);
    bool color = (type & PNG_COLOR_MASK_COLOR) != 0;
    bool alpha = (type & PNG_COLOR_MASK_ALPHA) || png_get_valid(r->png, r->info, PNG_INFO_tRNS);
    png_set_expand(r->png); /* palette to RGB, gray below 8 bits to 8, tRNS to alpha */
    png_set_strip_16(r->png);
    if (c == 1) {
        if (color)
            png_set_rgb_to_gray_fixed(r->png, 1, -1, -1);
        if (alpha)
            png_set_strip_alpha(r->png);
    } else {
        if (!color)
            png_set_gray_to_rgb(r->png);
        if (c == 3 && alpha)
            png_set_strip_alpha(r->png);
        if (c == 4 && !alpha)
            png_set_add_alpha(r->png, 0xff, PNG_FILLER_AFTER);
    }
    png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->info);
    r->w = png_get_image_width(r->png, r->info);
    r->h = png_get_image_height(r->png, r->info);
    size_t rowbytes = png_get_rowbytes(r->png, r->info);
    if (rowbytes != (size_t)r->w * (size_t)c)
        png_error(r->png, "unexpected row size after conversion");
    r->buf = malloc((size_t)r->h * rowbytes);
    r->rows = malloc((size_t)r->h * sizeof *r->rows);
    if (!r->buf || !r->rows)
        png_error(r->png, "out of memory");
    for (png_uint_32 y = 0; y < r->h; y++)
        r->rows[y] = r->buf + (size_t)y * rowbytes;
    png_read_image(r->png, r->rows);
    png_read_end(r->png, NULL);
    return RENDER_OK;
}

int render_png_read(const char *path, int c, int h, int w, float **out)
{
    if (!out)
        return render__fail(RENDER_EINVAL, "render_png_read: out is NULL");
    *out = NULL;
    if (!path)
        return render__fail(RENDER_EINVAL, "render_png_read: path is NULL");
    int st = render__check_dims("render_png_read", c, h, w);
    if (st)
        return st;
    render__reader r;
    memset(&r, 0, sizeof r);
    r.f = fopen(path, "rb");
    if (!r.f)
        return render__fail(RENDER_EINVAL, "cannot open %s: %s", path, strerror(errno));
    unsigned char sig[8];
    if (fread(sig, 1, sizeof sig, r.f) != sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
        fclose(r.f);
        return render__fail(RENDER_EPNG, "%s is not a PNG file (no PNG signature)", path);
    }
    rewind(r.f);
    st = render__png_read_rows(&r, c);
    png_destroy_read_struct(&r.png, &r.info, NULL);
    fclose(r.f);
    if (st == RENDER_OK) {
        float *o = malloc((size_t)c * (size_t)h * (size_t)w * sizeof *o); /* (C, H, W) */
        if (!o) {
            st = render__fail(RENDER_ENOMEM, "render_png_read: out of memory for %dx%d pixels", w,
                              h);
        } else {
            for (int y = 0; y < h; y++) {
                size_t sy = (size_t)((unsigned long long)y * r.h / (unsigned)h);
                for (int x = 0; x < w; x++) {
                    size_t sx = (size_t)((unsigned long long)x * r.w / (unsigned)w);
                    const unsigned char *px = r.rows[sy] + sx * (size_t)c;
                    for (int k = 0; k < c; k++)
                        o[((size_t)k * h + y) * w + x] = px[k] / 255.0f;
                }
            }
            *out = o;
        }
    }
    free(r.rows);
    free(r.buf);
    return st;
}

/* ------------------------------------------------------------ base64 */

int render_base64(const unsigned char *data, size_t len, char **out, size_t *out_len)
{
    static const char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!out)
        return render__fail(RENDER_EINVAL, "render_base64: out is NULL");
    if (!data && len)
        return render__fail(RENDER_EINVAL, "render_base64: data is NULL but len is %zu", len);
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return render__fail(RENDER_ENOMEM, "render_base64: %zu bytes is too large to encode", len);
    size_t n = (len + 2) / 3 * 4;
    char *s = malloc(n + 1);
    if (!s)
        return render__fail(RENDER_ENOMEM, "render_base64: out of memory for %zu bytes", n);
    char *p = s;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *p++ = kAlphabet[v >> 18 & 63];
        *p++ = kAlphabet[v >> 12 & 63];
        *p++ = kAlphabet[v >> 6 & 63];
        *p++ = kAlphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        *p++ = kAlphabet[v >> 18 & 63];
        *p++ = kAlphabet[v >> 12 & 63];
        *p++ = '=';
        *p++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        *p++ = kAlphabet[v >> 18 & 63];
        *p++ = kAlphabet[v >> 12 & 63];
        *p++ = kAlphabet[v >> 6 & 63];
        *p++ = '=';
    }
    *p = '\0';
    *out = s;
    if (out_len)
        *out_len = n;
    return RENDER_OK;
}
