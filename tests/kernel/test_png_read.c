/* render_png_read, the reader of %maximize's init=PNG: every PNG colour
 * type and bit depth, with and without a transparency chunk, interlaced
 * and not, read as 1, 3 and 4 channels (the gray, RGB and RGBA models),
 * at the file's size and resized; and the files it must refuse. The PNGs
 * are written here with libpng, so every pixel's expected value is known.
 * Run under ASan and UBSan in the sanitized build: an over-read of a row
 * (an RGB file read for a 4-channel model) fails there. */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "render.h"

#define W 5 /* odd sizes: every Adam7 pass is partial */
#define H 3

static char dir[] = "/tmp/actmax-png-read-XXXXXX";

/* The source pixel at (x, y) as 8-bit RGBA, for a file of colour type and
 * bit depth: gray files have r = g = b; low bit depths hold levels that
 * expand exactly to 8 bits. */
static void src_pixel(int type, int depth, int x, int y, unsigned char px[4])
{
    int i = y * W + x;
    if (type == PNG_COLOR_TYPE_PALETTE) {
        int n = 1 << (depth < 8 ? depth : 4);
        int e = i % n;
        px[0] = (unsigned char)(e * 37 % 256);
        px[1] = (unsigned char)(255 - e * 13);
        px[2] = (unsigned char)(e * 71 % 256);
        px[3] = (unsigned char)(e % 2 ? 255 : 40 + e);
        return;
    }
    if (!(type & PNG_COLOR_MASK_COLOR)) {
        int max = depth >= 8 ? 255 : (1 << depth) - 1;
        int level = (i * 7) % (max + 1);
        unsigned char g = (unsigned char)(level * 255 / max);
        px[0] = px[1] = px[2] = g;
    } else {
        px[0] = (unsigned char)(i * 17 % 256);
        px[1] = (unsigned char)(255 - i * 9);
        px[2] = (unsigned char)(i * 29 % 256);
    }
    px[3] = (type & PNG_COLOR_MASK_ALPHA) ? (unsigned char)(i * 11 % 256) : 255;
}

/* Writes a W x H PNG; trns adds a tRNS chunk (palette alphas, or one
 * transparent gray/RGB value: pixel 0's). Returns 0 on success. */
static int write_png(const char *path, int type, int depth, int interlace, int trns)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, W, H, depth, type, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    unsigned char px[4];
    if (type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        png_byte alpha[256];
        int n = 1 << (depth < 8 ? depth : 4);
        for (int e = 0; e < n; e++) {
            /* The entry of pixel index e (src_pixel's formula). */
            int x = e % W, y = e / W;
            src_pixel(type, depth, x, y, px);
            pal[e].red = px[0];
            pal[e].green = px[1];
            pal[e].blue = px[2];
            alpha[e] = px[3];
        }
        png_set_PLTE(png, info, pal, n);
        if (trns)
            png_set_tRNS(png, info, alpha, n, NULL);
    } else if (trns && !(type & PNG_COLOR_MASK_ALPHA)) {
        src_pixel(type, depth, 0, 0, px);
        png_color_16 c = {0};
        int max = depth >= 8 ? 255 : (1 << depth) - 1;
        int scale = depth == 16 ? 257 : 1;
        c.gray = (png_uint_16)(px[0] * max / 255 * scale);
        c.red = (png_uint_16)(px[0] * scale);
        c.green = (png_uint_16)(px[1] * scale);
        c.blue = (png_uint_16)(px[2] * scale);
        png_set_tRNS(png, info, NULL, 0, &c);
    }
    png_write_info(png, info);
    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    unsigned char *rows = calloc(H, rowbytes);
    for (int y = 0; y < H; y++) {
        unsigned char *row = rows + (size_t)y * rowbytes;
        for (int x = 0; x < W; x++) {
            src_pixel(type, depth, x, y, px);
            unsigned v[4];
            if (type == PNG_COLOR_TYPE_PALETTE) {
                v[0] = (unsigned)((y * W + x) % (1 << (depth < 8 ? depth : 4)));
            } else if (!(type & PNG_COLOR_MASK_COLOR)) {
                int max = depth >= 8 ? 255 : (1 << depth) - 1;
                v[0] = (unsigned)(px[0] * max / 255);
                v[1] = px[3];
            } else {
                v[0] = px[0];
                v[1] = px[1];
                v[2] = px[2];
                v[3] = px[3];
            }
            for (int k = 0; k < ch; k++) {
                if (depth == 16) {
                    unsigned s = v[k] * 257;
                    row[((size_t)x * ch + k) * 2] = (unsigned char)(s >> 8);
                    row[((size_t)x * ch + k) * 2 + 1] = (unsigned char)(s & 255);
                } else if (depth == 8) {
                    row[(size_t)x * ch + k] = (unsigned char)v[k];
                } else {
                    size_t bit = (size_t)x * (size_t)depth;
                    row[bit / 8] |= (unsigned char)(v[k] << (8 - depth - bit % 8));
                }
            }
        }
    }
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < H; y++)
            png_write_row(png, rows + (size_t)y * rowbytes);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return fclose(f);
}

/* The expected value of channel k read as c channels, from the 8-bit source
 * pixel. Colour to gray goes by luminance (libpng's sRGB coefficients). */
static double expect(const unsigned char px[4], int c, int k, int type, int trns,
                     const unsigned char first[4])
{
    bool alpha = (type & PNG_COLOR_MASK_ALPHA) || trns;
    unsigned char a = px[3];
    if (trns && type != PNG_COLOR_TYPE_PALETTE && !(type & PNG_COLOR_MASK_ALPHA))
        a = memcmp(px, first, 3) == 0 ? 0 : 255;
    if (type == PNG_COLOR_TYPE_PALETTE && !trns)
        a = 255;
    if (c == 1)
        return 0.2126 * px[0] + 0.7152 * px[1] + 0.0722 * px[2];
    if (k < 3)
        return px[k];
    return alpha ? a : 255;
}

static void check_file(const char *path, int type, int depth, int interlace, int trns)
{
    unsigned char first[4];
    src_pixel(type, depth, 0, 0, first);
    for (int c = 1; c <= 4; c++) {
        if (c == 2)
            continue;
        static const int sizes[][2] = {{H, W}, {7, 11}, {1, 2}};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            int h = sizes[s][0], w = sizes[s][1];
            float *out = NULL;
            int st = render_png_read(path, c, h, w, &out);
            if (st != RENDER_OK)
                CHECK_FAIL("type %d depth %d interlace %d trns %d as %d channels: %s", type, depth,
                           interlace, trns, c, render_last_error());
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    unsigned char px[4];
                    src_pixel(type, depth, x * W / w, y * H / h, px);
                    for (int k = 0; k < c; k++) {
                        double want = expect(px, c, k, type, trns, first);
                        double got = out[((size_t)k * h + y) * w + x] * 255.0;
                        if (fabs(got - want) > (c == 1 ? 2.5 : 0.5)) {
                            free(out);
                            CHECK_FAIL("type %d depth %d interlace %d trns %d as %d channels, "
                                       "%dx%d: pixel (%d, %d) channel %d is %.1f, expected %.1f",
                                       type, depth, interlace, trns, c, w, h, x, y, k, got, want);
                        }
                    }
                }
            free(out);
        }
    }
}

static void test_every_colour_type_and_depth(void)
{
    static const struct {
        int type, depth;
    } kinds[] = {
        {PNG_COLOR_TYPE_GRAY, 1},        {PNG_COLOR_TYPE_GRAY, 2},
        {PNG_COLOR_TYPE_GRAY, 4},        {PNG_COLOR_TYPE_GRAY, 8},
        {PNG_COLOR_TYPE_GRAY, 16},       {PNG_COLOR_TYPE_GRAY_ALPHA, 8},
        {PNG_COLOR_TYPE_GRAY_ALPHA, 16}, {PNG_COLOR_TYPE_RGB, 8},
        {PNG_COLOR_TYPE_RGB, 16},        {PNG_COLOR_TYPE_RGBA, 8},
        {PNG_COLOR_TYPE_RGBA, 16},       {PNG_COLOR_TYPE_PALETTE, 1},
        {PNG_COLOR_TYPE_PALETTE, 2},     {PNG_COLOR_TYPE_PALETTE, 4},
        {PNG_COLOR_TYPE_PALETTE, 8},
    };
    int files = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        for (int interlace = 0; interlace <= 1; interlace++)
            for (int trns = 0; trns <= 1; trns++) {
                if (trns && (kinds[i].type & PNG_COLOR_MASK_ALPHA))
                    continue; /* tRNS is not allowed with an alpha channel */
                char path[128];
                snprintf(path, sizeof path, "%s/t%d-d%d-i%d-r%d.png", dir, kinds[i].type,
                         kinds[i].depth, interlace, trns);
                CHECK(write_png(path, kinds[i].type, kinds[i].depth,
                                interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, trns) == 0);
                check_file(path, kinds[i].type, kinds[i].depth, interlace, trns);
                if (t_failed)
                    return;
                unlink(path);
                files++;
            }
    CHECK(files == 52);
}

static void test_refused_files(void)
{
    char path[128];
    float *out = (float *)1;
    CHECK(render_png_read("/nonexistent/x.png", 3, 4, 4, &out) == RENDER_EINVAL);
    CHECK(out == NULL);
    CHECK(strstr(render_last_error(), "cannot open /nonexistent/x.png") != NULL);

    snprintf(path, sizeof path, "%s/text.png", dir);
    FILE *f = fopen(path, "wb");
    fputs("not a picture at all\n", f);
    fclose(f);
    CHECK(render_png_read(path, 3, 4, 4, &out) == RENDER_EPNG);
    CHECK(strstr(render_last_error(), "not a PNG file") != NULL);

    /* A PNG cut short after its header: libpng's error, no crash, no leak. */
    char full[128];
    snprintf(full, sizeof full, "%s/full.png", dir);
    CHECK(write_png(full, PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_ADAM7, 0) == 0);
    f = fopen(full, "rb");
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(path, "wb");
    fwrite(buf, 1, n - 20, f);
    fclose(f);
    CHECK(render_png_read(path, 3, 4, 4, &out) == RENDER_EPNG);
    CHECK(out == NULL);
    CHECK(strstr(render_last_error(), "libpng") != NULL);

    /* Two channels is no model's input the reader knows. */
    CHECK(render_png_read(full, 2, 4, 4, &out) == RENDER_EINVAL);
    CHECK(strstr(render_last_error(), "channels must be 1") != NULL);
    unlink(full);
    unlink(path);
}

static const check_test TESTS[] = {
    {"every_colour_type_and_depth", test_every_colour_type_and_depth},
    {"refused_files", test_refused_files},
};

int main(int argc, char **argv)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    int rc = check_main(TESTS, sizeof TESTS / sizeof TESTS[0], argc, argv);
    rmdir(dir);
    render_cleanup();
    return rc;
}
