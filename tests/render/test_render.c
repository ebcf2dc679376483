/* test_render.c: unit tests of the rendering library. One runner, a list of
 * test entries (the project's harness, tests/common/check.h); a failed check
 * prints the expression, both values and file:line and ends the test, and
 * the exit status carries the verdict. `test_render NAME...` runs some tests;
 * with RENDER_SAMPLE_DIR set, sample pictures are written there to look at. */
#include "render.h"

#include "check.h"

#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ checks */

/* A call that must succeed; prints the library's own message when it does not. */
#define CHECK_OK(call)                                                                             \
    do {                                                                                           \
        int st_ = (call);                                                                          \
        if (st_ != RENDER_OK)                                                                      \
            CHECK_FAIL("%s returned %d (%s): %s", #call, st_, render_strerror(st_),                \
                       render_last_error());                                                       \
    } while (0)

#define CHECK_STATUS(call, want)                                                                   \
    do {                                                                                           \
        int st_ = (call);                                                                          \
        if (st_ != (want))                                                                         \
            CHECK_FAIL("%s returned %d, expected %s (%d)", #call, st_, #want, (want));             \
    } while (0)

/* ------------------------------------------------------------ PNG decoding */

/* Decoded picture, always expanded to RGBA so tests compare one layout. */
typedef struct decoded {
    int width, height;
    bool color;          /* the file was RGB(A), not gray */
    bool alpha;          /* the file had an alpha channel */
    unsigned char *rgba; /* (height, width, 4) */
} decoded;

static bool decode_png(const render_png *p, decoded *d)
{
    memset(d, 0, sizeof *d);
    if (!p->data || p->size < 8)
        return false;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, p->data, p->size))
        return false;
    d->color = (img.format & PNG_FORMAT_FLAG_COLOR) != 0;
    d->alpha = (img.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    img.format = PNG_FORMAT_RGBA;
    d->width = (int)img.width;
    d->height = (int)img.height;
    d->rgba = malloc(PNG_IMAGE_SIZE(img));
    if (!d->rgba || !png_image_finish_read(&img, NULL, d->rgba, 0, NULL)) {
        png_image_free(&img);
        free(d->rgba);
        d->rgba = NULL;
        return false;
    }
    return true;
}

static const unsigned char *px(const decoded *d, int x, int y)
{
    return d->rgba + ((size_t)y * d->width + x) * 4;
}

static void save_sample(const char *name, const render_png *p)
{
    const char *dir = getenv("RENDER_SAMPLE_DIR");
    if (!dir || !p->data)
        return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite(p->data, 1, p->size, f);
    fclose(f);
    printf("  wrote %s (%dx%d)\n", path, p->width, p->height);
}

static unsigned char q(float v)
{
    return v <= 0 || isnan(v) ? 0 : v >= 1 ? 255 : (unsigned char)lrintf(v * 255);
}

/* ------------------------------------------------------------ base64 */

static void test_base64_rfc4648(void)
{
    /* RFC 4648 section 10 test vectors. */
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const want[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *s = NULL;
        size_t n = 99;
        CHECK_OK(render_base64((const unsigned char *)in[i], strlen(in[i]), &s, &n));
        CHECK_STR(s, want[i]);
        CHECK_CMP(n, ==, strlen(want[i]));
        render_free(s);
    }
    /* The two last alphabet characters and zero bytes. */
    const unsigned char bin[] = {0xfb, 0xff}, zeros[] = {0, 0, 0};
    char *s = NULL;
    CHECK_OK(render_base64(bin, 2, &s, NULL));
    CHECK_STR(s, "+/8=");
    render_free(s);
    CHECK_OK(render_base64(zeros, 3, &s, NULL));
    CHECK_STR(s, "AAAA");
    render_free(s);
    s = (char *)1;
    CHECK_STATUS(render_base64(NULL, 3, &s, NULL), RENDER_EINVAL);
    CHECK(s == NULL);
    CHECK_STATUS(render_base64(bin, 2, NULL, NULL), RENDER_EINVAL);
    CHECK_OK(render_base64(NULL, 0, &s, NULL));
    CHECK_STR(s, "");
    render_free(s);
}

/* ------------------------------------------------------------ PNG */

static void test_upscale_factor(void)
{
    CHECK_CMP(render_upscale_factor(28, 28, 256), ==, 10);
    CHECK_CMP(render_upscale_factor(224, 224, 256), ==, 2);
    CHECK_CMP(render_upscale_factor(256, 300, 256), ==, 1);
    CHECK_CMP(render_upscale_factor(1000, 1000, 256), ==, 1);
    CHECK_CMP(render_upscale_factor(28, 28, 0), ==, 1);
    /* A 1 x 500 strip would need 256x; the long side cap keeps it at 4. */
    CHECK_CMP(render_upscale_factor(1, 500, 256), ==, RENDER_MAX_PX / 500);
    CHECK_CMP(render_upscale_factor(0, 5, 256), ==, 1);
}

static void test_png_gray_roundtrip(void)
{
    enum { H = 28, W = 28 };
    float img[H * W]; /* (1, H, W) */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            img[y * W + x] = (float)(x + y * 3) / (W + H * 3);
    img[0] = -0.5f; /* clamped to 0 */
    img[1] = 1.5f;  /* clamped to 1 */
    img[2] = NAN;   /* shows as 0 */
    render_png p;
    CHECK_OK(render_png_encode(img, 1, H, W, 256, &p));
    CHECK_CMP(p.scale, ==, 10);
    CHECK_CMP(p.width, ==, 280);
    CHECK_CMP(p.height, ==, 280);
    decoded d;
    CHECK(decode_png(&p, &d));
    CHECK(!d.color);
    CHECK(!d.alpha);
    CHECK_CMP(d.width, ==, 280);
    CHECK_CMP(d.height, ==, 280);
    int bad = 0;
    for (int y = 0; d.rgba && y < d.height; y++)
        for (int x = 0; x < d.width; x++) {
            unsigned char want = q(img[(y / 10) * W + x / 10]);
            const unsigned char *p4 = px(&d, x, y);
            if (p4[0] != want || p4[1] != want || p4[2] != want)
                bad++;
        }
    CHECK_CMP(bad, ==, 0);
    if (d.rgba) {
        CHECK_CMP(px(&d, 0, 0)[0], ==, 0);
        CHECK_CMP(px(&d, 10, 0)[0], ==, 255);
        CHECK_CMP(px(&d, 20, 0)[0], ==, 0);
    }
    free(d.rgba);
    render_png_clear(&p);
    CHECK(p.data == NULL);
    render_png_clear(&p); /* twice is harmless */
    render_png_clear(NULL);
}

static void test_png_rgb_roundtrip(void)
{
    enum { C = 3, H = 4, W = 5 };
    float img[C * H * W]; /* (C, H, W) */
    for (int i = 0; i < C * H * W; i++)
        img[i] = (float)((i * 37) % 101) / 100.0f;
    render_png p;
    CHECK_OK(render_png_encode(img, C, H, W, 0, &p));
    CHECK_CMP(p.scale, ==, 1);
    CHECK_CMP(p.width, ==, W);
    CHECK_CMP(p.height, ==, H);
    decoded d;
    CHECK(decode_png(&p, &d));
    CHECK(d.color);
    CHECK(!d.alpha);
    int bad = 0;
    for (int y = 0; d.rgba && y < H; y++)
        for (int x = 0; x < W; x++)
            for (int k = 0; k < C; k++)
                if (px(&d, x, y)[k] != q(img[k * H * W + y * W + x]))
                    bad++;
    CHECK_CMP(bad, ==, 0);
    free(d.rgba);
    render_png_clear(&p);

    /* RGBA keeps its alpha plane. */
    float rgba[4 * 2 * 2] = {1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0.0f, 0.5f, 1.0f, 1.0f};
    CHECK_OK(render_png_encode(rgba, 4, 2, 2, 0, &p));
    CHECK(decode_png(&p, &d));
    CHECK(d.alpha);
    if (d.rgba) {
        CHECK_CMP(px(&d, 0, 0)[3], ==, 0);
        CHECK_CMP(px(&d, 1, 1)[3], ==, 255);
        CHECK_CMP(px(&d, 0, 0)[0], ==, 255);
    }
    free(d.rgba);
    render_png_clear(&p);
}

static void test_png_bad_arguments(void)
{
    float img[12] = {0};
    render_png p;
    CHECK_STATUS(render_png_encode(img, 2, 2, 3, 0, &p), RENDER_EINVAL);
    CHECK_HAS(render_last_error(), "channels must be 1 (gray), 3 (RGB) or 4 (RGBA), got 2");
    CHECK(p.data == NULL && p.size == 0);
    CHECK_STATUS(render_png_encode(img, 1, 0, 3, 0, &p), RENDER_EINVAL);
    CHECK_HAS(render_last_error(), "got 0x3");
    CHECK_STATUS(render_png_encode(img, 1, 3, -1, 0, &p), RENDER_EINVAL);
    CHECK_STATUS(render_png_encode(NULL, 1, 2, 2, 0, &p), RENDER_EINVAL);
    CHECK_STATUS(render_png_encode(img, 1, 2, 2, 0, NULL), RENDER_EINVAL);
    CHECK_STATUS(render_png_encode(img, 1, 2, 2, -5, &p), RENDER_EINVAL);
    CHECK_HAS(render_last_error(), "min_px");
    CHECK_STATUS(render_png_encode(img, 1, RENDER_LIMIT_PX + 1, 1, 0, &p), RENDER_EINVAL);
    CHECK_STATUS(render_png_encode_u8(NULL, 3, 2, 2, &p), RENDER_EINVAL);
    CHECK(strcmp(render_strerror(RENDER_EINVAL), render_strerror(RENDER_ENOMEM)) != 0);
    CHECK(render_strerror(12345) != NULL);
}

/* ------------------------------------------------------------ grid */

static void test_grid_layout_and_crisp_cells(void)
{
    enum { N = 5, H = 28, W = 28 };
    float *img = malloc(sizeof(float) * N * H * W); /* (N, 1, H, W) */
    if (!img)
        return;
    for (int n = 0; n < N; n++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) /* a checkerboard, brighter per image */
                img[(n * H + y) * W + x] = ((x + y) & 1) ? 0.2f + 0.15f * n : 0.0f;
    const char *caps[N] = {"fc[\"Sneaker\"] 12.3", "fc[\"Bag\"] 9.81", NULL, "fc[\"Coat\"] -1.5",
                           "a caption much too long to fit under a single small cell"};
    render_grid_opts o = {.min_cell_px = 128, .columns = 0, .gutter_px = 12, .title = NULL};
    render_png p;
    CHECK_OK(render_grid_png(img, N, 1, H, W, caps, &o, &p));
    /* 5 images: 3 columns, 2 rows, cells of 28 * 5 = 140 px. */
    CHECK_CMP(p.scale, ==, 5);
    CHECK_CMP(p.width, ==, 3 * (140 + 12) + 12);
    CHECK_CMP(p.height, >, 2 * (140 + 12));
    CHECK_CMP(p.height, <, 2 * (140 + 12 + 40));
    decoded d;
    CHECK(decode_png(&p, &d));
    CHECK(d.color);
    CHECK_CMP(d.width, ==, p.width);
    CHECK_CMP(d.height, ==, p.height);
    if (d.rgba) {
        /* Nearest neighbour: every 5 x 5 block of cell 0 is one flat value,
         * and neighbouring blocks of the checkerboard differ fully. */
        int bad = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                unsigned char want = q(img[y * W + x]);
                for (int dy = 0; dy < 5; dy++)
                    for (int dx = 0; dx < 5; dx++)
                        if (px(&d, 12 + x * 5 + dx, 12 + y * 5 + dy)[0] != want)
                            bad++;
            }
        CHECK_CMP(bad, ==, 0);
        /* Image 4 sits in the second row, middle column: find its top by the
         * frame line above it, then check its own brightness (0.8). */
        int x4 = 12 + 1 * 152, y4 = -1;
        for (int y = 12 + 141; y < d.height && y4 < 0; y++) {
            const unsigned char *f = px(&d, x4 + 70, y);
            if (f[0] == 0xd1 && f[1] == 0xd5 && f[2] == 0xdb)
                y4 = y + 1;
        }
        CHECK_CMP(y4, >, 12 + 140 + 12);
        if (y4 > 0 && y4 + 10 < d.height) {
            CHECK_CMP(px(&d, x4 + 5 + 2, y4 + 2)[0], ==, q(0.2f + 0.15f * 4)); /* pixel (0, 1) */
            CHECK_CMP(px(&d, x4 + 2, y4 + 2)[0], ==, 0);                       /* pixel (0, 0) */
        }
        /* Caption ink: dark pixels in the band under cell 0. */
        int ink = 0;
        for (int y = 12 + 140; y < 12 + 140 + 20 && y < d.height; y++)
            for (int x = 12; x < 12 + 140; x++)
                ink += px(&d, x, y)[0] < 128;
        CHECK_CMP(ink, >, 20);
        /* Cell 2 has no caption: its band stays white. */
        int ink2 = 0;
        for (int y = 12 + 140 + 2; y < 12 + 140 + 20 && y < d.height; y++)
            for (int x = 12 + 2 * 152; x < 12 + 2 * 152 + 140; x++)
                ink2 += px(&d, x, y)[0] < 250;
        CHECK_CMP(ink2, ==, 0);
    }
    save_sample("grid.png", &p);
    free(d.rgba);
    render_png_clear(&p);

    /* A title adds height; an explicit column count is kept. */
    render_png t;
    o.title = "layer3.1.conv2[42]: top dataset examples";
    o.columns = 5;
    CHECK_OK(render_grid_png(img, N, 1, H, W, caps, &o, &t));
    CHECK_CMP(t.width, ==, 5 * (140 + 12) + 12);
    CHECK_CMP(t.height, >, 140 + 2 * 12 + 15);
    save_sample("grid_title.png", &t);
    render_png_clear(&t);

    /* Invalid UTF-8 in a caption and RGB images still render. */
    float *rgb = calloc(3 * 2 * 8 * 8, sizeof(float)); /* (2, 3, 8, 8) */
    const char *bad_caps[2] = {"tok \xff\xfe", "\xe6\x97"};
    if (rgb) {
        for (int i = 0; i < 64; i++)
            rgb[i] = 1.0f, rgb[3 * 64 + 64 + i] = 1.0f;
        CHECK_OK(render_grid_png(rgb, 2, 3, 8, 8, bad_caps, NULL, &t));
        CHECK_CMP(t.scale, ==, 16);
        render_png_clear(&t);
    }
    free(rgb);

    CHECK_STATUS(render_grid_png(img, 0, 1, H, W, NULL, NULL, &t), RENDER_EINVAL);
    CHECK_HAS(render_last_error(), "at least 1 image");
    CHECK_STATUS(render_grid_png(img, N, 2, H, W, NULL, NULL, &t), RENDER_EINVAL);
    CHECK_STATUS(render_grid_png(NULL, N, 1, H, W, NULL, NULL, &t), RENDER_EINVAL);
    o.gutter_px = -1;
    CHECK_STATUS(render_grid_png(img, N, 1, H, W, NULL, &o, &t), RENDER_EINVAL);
    free(img);
}

/* ------------------------------------------------------------ plot */

static void test_nice_ticks(void)
{
    double t[32], step;
    int n;
    CHECK_OK(render_nice_ticks(0, 500, 6, t, 32, &n, &step));
    CHECK_CMP(n, ==, 6);
    CHECK(step == 100);
    CHECK(t[0] == 0 && t[5] == 500);
    CHECK_OK(render_nice_ticks(0.13, 0.87, 5, t, 32, &n, &step));
    CHECK(fabs(step - 0.2) < 1e-12);
    CHECK(t[0] == 0);
    CHECK(fabs(t[n - 1] - 1.0) < 1e-12);
    /* A range across zero has 0 as an exact tick. */
    CHECK_OK(render_nice_ticks(-1.2, 3.7, 5, t, 32, &n, &step));
    bool zero = false;
    for (int i = 0; i < n; i++)
        zero |= t[i] == 0.0;
    CHECK(zero);
    CHECK(t[0] <= -1.2 && t[n - 1] >= 3.7);
    /* A constant is widened around its value. */
    CHECK_OK(render_nice_ticks(3, 3, 5, t, 32, &n, &step));
    CHECK(n >= 2 && t[0] < 3 && t[n - 1] > 3);
    CHECK_OK(render_nice_ticks(0, 0, 5, t, 32, &n, &step));
    CHECK(n >= 2 && t[0] < 0 && t[n - 1] > 0);
    CHECK_STATUS(render_nice_ticks(NAN, 1, 5, t, 32, &n, &step), RENDER_EINVAL);
    CHECK_STATUS(render_nice_ticks(0, INFINITY, 5, t, 32, &n, &step), RENDER_EINVAL);
    CHECK_STATUS(render_nice_ticks(2, 1, 5, t, 32, &n, &step), RENDER_EINVAL);
    CHECK_STATUS(render_nice_ticks(0, 1, 1, t, 32, &n, &step), RENDER_EINVAL);
}

/* Pixels of one colour in a rectangle; how curves are found in the picture. */
static int count_color(const decoded *d, unsigned rgb, int tol, int x0, int y0, int x1, int y1)
{
    int n = 0;
    for (int y = y0; y < y1 && y < d->height; y++)
        for (int x = x0; x < x1 && x < d->width; x++) {
            const unsigned char *p = px(d, x, y);
            if (abs(p[0] - (int)(rgb >> 16 & 255)) <= tol &&
                abs(p[1] - (int)(rgb >> 8 & 255)) <= tol && abs(p[2] - (int)(rgb & 255)) <= tol)
                n++;
        }
    return n;
}

static void test_plot_png(void)
{
    enum { N = 200 };
    float steps[N], obj[N], l2[N], soft[N];
    for (int i = 0; i < N; i++) {
        steps[i] = (float)i * 2.5f;
        obj[i] = 12.0f * (1.0f - expf(-i / 40.0f)) + 0.3f * sinf(i / 3.0f);
        l2[i] = -0.8f * (1.0f - expf(-i / 60.0f));
        soft[i] = i % 50 == 17 ? NAN : 10.5f * (1.0f - expf(-i / 30.0f));
    }
    render_series s[3] = {{"objective", steps, obj, N},
                          {"l2 penalty", steps, l2, N},
                          {"fc[\"Sneaker\"] (soft)", steps, soft, N}};
    float marks[2] = {100, 375};
    const char *mark_names[2] = {"snapshot", "threshold"};
    render_plot_opts o = {.title = "Activation of fc[\"Sneaker\"] over optimization",
                          .xlabel = "step",
                          .ylabel = "activation",
                          .vlines = marks,
                          .vline_labels = mark_names,
                          .n_vlines = 2};
    render_png p;
    CHECK_OK(render_plot_png(s, 3, &o, &p));
    CHECK_CMP(p.width, ==, 640);
    CHECK_CMP(p.height, ==, 400);
    decoded d;
    CHECK(decode_png(&p, &d));
    CHECK(d.color);
    CHECK_CMP(d.width, ==, 640);
    CHECK_CMP(d.height, ==, 400);
    if (d.rgba) {
        /* The first two series' colours show up in the plot area's middle
         * (outside it only the short legend swatches have them). */
        int blue = count_color(&d, 0x1f77b4, 40, 80, 90, 620, 350);
        int orange = count_color(&d, 0xff7f0e, 40, 80, 90, 620, 350);
        CHECK_CMP(blue, >, 300);
        CHECK_CMP(orange, >, 300);
        /* Text in the left margin (tick labels) and the bottom (x label). */
        CHECK_CMP(count_color(&d, 0xffffff, 0, 0, 100, 40, 300), <, 40 * 200);
        CHECK_CMP(count_color(&d, 0xffffff, 0, 250, 380, 400, 400), <, 150 * 20);
    }
    save_sample("plot.png", &p);
    free(d.rgba);
    render_png_clear(&p);

    /* Custom size. */
    o.width = 320;
    o.height = 200;
    CHECK_OK(render_plot_png(s, 3, &o, &p));
    CHECK_CMP(p.width, ==, 320);
    CHECK(decode_png(&p, &d));
    CHECK_CMP(d.height, ==, 200);
    free(d.rgba);
    save_sample("plot_small.png", &p);
    render_png_clear(&p);
}

static void test_plot_degenerate(void)
{
    float one = 3.0f, cst[5] = {2, 2, 2, 2, 2}, bad[4] = {NAN, INFINITY, -INFINITY, NAN};
    float mixed[6] = {1, NAN, 2, 3, INFINITY, 4};
    render_series cases[][2] = {
        {{"one point", NULL, &one, 1}, {NULL, NULL, NULL, 0}},
        {{"constant", NULL, cst, 5}, {"empty", NULL, NULL, 0}},
        {{"all NaN", NULL, bad, 4}, {"", NULL, cst, 0}},
        {{"gaps", NULL, mixed, 6}, {"one", NULL, &one, 1}},
    };
    for (int i = 0; i < 4; i++) {
        render_png p;
        CHECK_OK(render_plot_png(cases[i], 2, NULL, &p));
        decoded d;
        CHECK(decode_png(&p, &d));
        CHECK_CMP(d.width, ==, 640);
        free(d.rgba);
        if (i == 3)
            save_sample("plot_gaps.png", &p);
        render_png_clear(&p);
    }
    /* A lone point is drawn (as a dot), not lost. */
    render_png p;
    CHECK_OK(render_plot_png(cases[0], 1, NULL, &p));
    decoded d;
    CHECK(decode_png(&p, &d));
    if (d.rgba)
        CHECK_CMP(count_color(&d, 0x1f77b4, 40, 60, 60, 640, 360), >, 10);
    free(d.rgba);
    render_png_clear(&p);
    /* No series at all: empty axes. */
    CHECK_OK(render_plot_png(NULL, 0, NULL, &p));
    render_png_clear(&p);

    float nan_mark = NAN;
    render_plot_opts o = {.vlines = &nan_mark, .n_vlines = 1};
    CHECK_STATUS(render_plot_png(cases[1], 1, &o, &p), RENDER_EINVAL);
    CHECK_HAS(render_last_error(), "vline 0");
    CHECK_STATUS(render_plot_png(NULL, 2, NULL, &p), RENDER_EINVAL);
    render_series no_y = {"x", NULL, NULL, 3};
    CHECK_STATUS(render_plot_png(&no_y, 1, NULL, &p), RENDER_EINVAL);
    CHECK_HAS(render_last_error(), "y is NULL");
    render_plot_opts tiny = {.width = 10, .height = 10};
    CHECK_STATUS(render_plot_png(cases[1], 1, &tiny, &p), RENDER_EINVAL);
    CHECK_HAS(render_last_error(), "160..4096");
    CHECK_STATUS(render_plot_png(cases[1], 1, NULL, NULL), RENDER_EINVAL);
}

/* ------------------------------------------------------------ logo */

static void test_logo(void)
{
    int sizes[2] = {32, 64};
    for (int i = 0; i < 2; i++) {
        render_png p;
        CHECK_OK(render_logo_png(sizes[i], &p));
        decoded d;
        CHECK(decode_png(&p, &d));
        CHECK_CMP(d.width, ==, sizes[i]);
        CHECK_CMP(d.height, ==, sizes[i]);
        CHECK(d.alpha);
        if (d.rgba) {
            CHECK_CMP(px(&d, 0, 0)[3], ==, 0);                         /* rounded corner */
            CHECK_CMP(px(&d, sizes[i] / 2, sizes[i] / 2)[3], ==, 255); /* solid tile */
        }
        free(d.rgba);
        render_png_clear(&p);
    }
    render_png p;
    CHECK_STATUS(render_logo_png(8, &p), RENDER_EINVAL);
}

/* ------------------------------------------------------------ text */

static void test_utf8_sanitize(void)
{
    struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        {"plain ascii", 11, "plain ascii"},
        {"h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80", 18,
         "h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80"},
        {"\xC3\x28", 2, "\\xC3("},                       /* lead byte without continuation */
        {"\xC0\xAF", 2, "\\xC0\\xAF"},                   /* overlong '/' */
        {"\xED\xA0\x80", 3, "\\xED\\xA0\\x80"},          /* UTF-16 surrogate */
        {"ab\xE6\x97", 4, "ab\\xE6\\x97"},               /* truncated at the end */
        {"\xF4\x90\x80\x80", 4, "\\xF4\\x90\\x80\\x80"}, /* above U+10FFFF */
        {"a\0b", 3, "a\\x00b"},                          /* NUL would cut a C string */
        {"\x80x", 2, "\\x80x"},                          /* stray continuation byte */
        {"", 0, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = NULL;
        size_t n = 0;
        CHECK_OK(render_utf8_sanitize(cases[i].in, cases[i].len, &s, &n));
        CHECK_STR(s, cases[i].want);
        CHECK_CMP(n, ==, strlen(cases[i].want));
        render_free(s);
    }
    char *s = NULL;
    CHECK_STATUS(render_utf8_sanitize(NULL, 2, &s, NULL), RENDER_EINVAL);
    CHECK_STATUS(render_utf8_sanitize("x", 1, NULL, NULL), RENDER_EINVAL);
}

static void test_utf8_width(void)
{
    CHECK_CMP(render_utf8_width("abc", 3), ==, 3);
    CHECK_CMP(render_utf8_width("\xE6\x97\xA5\xE6\x9C\xAC", 6), ==, 4); /* two CJK, wide */
    CHECK_CMP(render_utf8_width("e\xCC\x81", 3), ==, 1);                /* e + combining acute */
    CHECK_CMP(render_utf8_width("h\xC3\xA9llo", 6), ==, 5);
    CHECK_CMP(render_utf8_width("\xFF", 1), ==, 4); /* shown as \xFF */
    CHECK_CMP(render_utf8_width(NULL, 5), ==, 0);
}

static void test_html_escape(void)
{
    char *s = NULL;
    CHECK_OK(render_html_escape("<a href=\"x\">Tom & Jerry's</a>", &s));
    CHECK_STR(s, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
    render_free(s);
    CHECK_OK(render_html_escape("\xFF<\xC3\xA9", &s));
    CHECK_STR(s, "\\xFF&lt;\xC3\xA9");
    render_free(s);
    CHECK_OK(render_html_escape("", &s));
    CHECK_STR(s, "");
    render_free(s);
    CHECK_STATUS(render_html_escape(NULL, &s), RENDER_EINVAL);
    CHECK(s == NULL);
}

static void test_heat_color(void)
{
    char c[8];
    CHECK_OK(render_heat_color(0, -1, 1, c));
    CHECK_STR(c, "#ffffff");
    CHECK_OK(render_heat_color(1, -1, 1, c));
    CHECK_STR(c, "#ef8a62");
    CHECK_OK(render_heat_color(-1, -1, 1, c));
    CHECK_STR(c, "#67a9cf");
    CHECK_OK(render_heat_color(7, -1, 1, c)); /* clamped */
    CHECK_STR(c, "#ef8a62");
    CHECK_OK(render_heat_color(0, 0, 10, c));
    CHECK_STR(c, "#ffffff");
    CHECK_OK(render_heat_color(5, 0, 10, c)); /* halfway to red */
    CHECK_STR(c, "#f7c4b0");                  /* 247, 196.5, 176.5 rounded half to even */
    CHECK_OK(render_heat_color(NAN, 0, 10, c));
    CHECK_STR(c, "#ffffff");
    CHECK_STATUS(render_heat_color(1, NAN, 1, c), RENDER_EINVAL);
    CHECK_STATUS(render_heat_color(1, 2, 2, c), RENDER_EINVAL);
    CHECK_HAS(render_last_error(), "lo < hi");
}

static const char *const kHeader[3] = {"pos", "token", "sim"};
static const char *const kCells[4 * 3] = {
    "0",
    "\xE6\x97\xA5\xE6\x9C\xAC",
    "0.91",
    "12",
    "h\xC3\xA9llo",
    "0.5",
    "3",
    "a\nb",
    "-1",
    "4",
    "<b>&\xFF",
    "nan",
};

static void test_table_text(void)
{
    render_table t = {.n_cols = 3, .n_rows = 4, .header = kHeader, .cells = kCells};
    char *s = NULL;
    CHECK_OK(render_table_text(&t, &s));
    CHECK_STR(s, "pos  token      sim\n"
                 "---  --------  ----\n"
                 "  0  \xE6\x97\xA5\xE6\x9C\xAC      0.91\n"
                 " 12  h\xC3\xA9llo      0.5\n"
                 "  3  a\\nb        -1\n"
                 "  4  <b>&\\xFF   nan\n");
    /* Every line has the same display width, whatever its bytes. */
    if (s) {
        size_t want = 0;
        for (char *line = s; *line;) {
            char *nl = strchr(line, '\n');
            if (!nl)
                break;
            size_t w = render_utf8_width(line, (size_t)(nl - line));
            if (!want)
                want = w;
            CHECK_CMP(w, ==, want);
            line = nl + 1;
        }
    }
    render_free(s);
    render_table none = {.n_cols = 2, .n_rows = 0, .header = kHeader};
    CHECK_OK(render_table_text(&none, &s));
    CHECK_STR(s, "pos  token\n---  -----\n");
    render_free(s);
    render_table bad = {.n_cols = 0};
    CHECK_STATUS(render_table_text(&bad, &s), RENDER_EINVAL);
    CHECK_HAS(render_last_error(), "n_cols must be >= 1, got 0");
    bad = (render_table){.n_cols = 2, .n_rows = 2};
    CHECK_STATUS(render_table_text(&bad, &s), RENDER_EINVAL);
}

static void test_table_html(void)
{
    float heat[4 * 3] = {NAN, 1, NAN, NAN, -1, NAN, NAN, 0, NAN, NAN, 0.5f, NAN};
    render_table t = {.n_cols = 3,
                      .n_rows = 4,
                      .header = kHeader,
                      .cells = kCells,
                      .heat = heat,
                      .heat_lo = -1,
                      .heat_hi = 1,
                      .caption = "nearest <tokens>"};
    char *s = NULL;
    CHECK_OK(render_table_html(&t, &s));
    CHECK_HAS(
        s, "<caption style=\"text-align:left;font-weight:bold\">nearest &lt;tokens&gt;</caption>");
    CHECK_HAS(s, "<th style=\"text-align:right;padding:2px 8px\">pos</th>");
    CHECK_HAS(s, "<th style=\"text-align:left;padding:2px 8px\">token</th>");
    CHECK_HAS(s, "<td style=\"text-align:right;padding:2px 8px;white-space:pre\">0.91</td>");
    CHECK_HAS(s, "background-color:#ef8a62;color:#111\">\xE6\x97\xA5\xE6\x9C\xAC</td>");
    CHECK_HAS(s, "background-color:#67a9cf;color:#111\">h\xC3\xA9llo</td>");
    CHECK_HAS(s, ">&lt;b&gt;&amp;\\xFF</td>");
    CHECK_HAS(s, ">a\\nb</td>"); /* a newline token stays on its row */
    CHECK(s && !strstr(s, "<b>"));
    render_free(s);
    t.heat_hi = NAN;
    CHECK_STATUS(render_table_html(&t, &s), RENDER_EINVAL);
    CHECK(s == NULL);
}

static void test_progress(void)
{
    render_progress pr = {.step = 50,
                          .total = 200,
                          .objective = 12.3456,
                          .elapsed_s = 10,
                          .label = "fc[\"Sneaker\"] <x>"};
    char *html = NULL, *text = NULL;
    CHECK_OK(render_progress_html(&pr, &html, &text));
    CHECK_HAS(text, "fc[\"Sneaker\"] <x>\n");
    CHECK_HAS(text, "[#######-----------------------] 50/200  25%");
    CHECK_HAS(text, "objective 12.346");
    CHECK_HAS(text, "elapsed 10.0s");
    CHECK_HAS(text, "ETA 30.0s");
    CHECK_HAS(html, "width:25.0%");
    CHECK_HAS(html, "50/200 (25%)");
    CHECK_HAS(html, "fc[&quot;Sneaker&quot;] &lt;x&gt;");
    CHECK_HAS(html, "ETA 30.0s");
    CHECK(html && !strstr(html, "<img"));
    render_free(html);
    render_free(text);

    /* The current image rides along as a data URI. */
    float img[4] = {0, 1, 1, 0};
    render_png p;
    CHECK_OK(render_png_encode(img, 1, 2, 2, 0, &p));
    char *b64 = NULL;
    CHECK_OK(render_base64(p.data, p.size, &b64, NULL));
    pr.image = &p;
    pr.step = 0;
    pr.objective = NAN;
    CHECK_OK(render_progress_html(&pr, &html, NULL));
    CHECK_HAS(html, "<img src=\"data:image/png;base64,");
    CHECK_HAS(html, b64);
    CHECK_HAS(html, "width=\"2\" height=\"2\"");
    CHECK_HAS(html, "ETA ?");
    CHECK_HAS(html, "objective <b>-</b>");
    render_free(html);
    render_free(b64);
    pr.step = 200;
    CHECK_OK(render_progress_html(&pr, NULL, &text));
    CHECK_HAS(text, "200/200 100%");
    CHECK_HAS(text, "ETA done");
    render_free(text);
    render_png_clear(&p);

    pr.image = NULL;
    pr.total = 0;
    CHECK_STATUS(render_progress_html(&pr, &html, &text), RENDER_EINVAL);
    CHECK(html == NULL && text == NULL);
    pr.total = 10;
    pr.step = 11;
    CHECK_STATUS(render_progress_html(&pr, &html, &text), RENDER_EINVAL);
    CHECK_HAS(render_last_error(), "step must be in 0..10, got 11");
    pr.step = 1;
    pr.elapsed_s = NAN;
    CHECK_STATUS(render_progress_html(&pr, &html, &text), RENDER_EINVAL);
    CHECK_STATUS(render_progress_html(NULL, &html, &text), RENDER_EINVAL);
}

static void test_format_duration(void)
{
    char b[32];
    CHECK_OK(render_format_duration(5, b, sizeof b));
    CHECK_STR(b, "5.0s");
    CHECK_OK(render_format_duration(125, b, sizeof b));
    CHECK_STR(b, "2m05s");
    CHECK_OK(render_format_duration(3725, b, sizeof b));
    CHECK_STR(b, "1h02m");
    CHECK_OK(render_format_duration(NAN, b, sizeof b));
    CHECK_STR(b, "?");
    CHECK_OK(render_format_duration(-1, b, sizeof b));
    CHECK_STR(b, "?");
    CHECK_STATUS(render_format_duration(1, b, 4), RENDER_EINVAL);
}

/* ------------------------------------------------------------ throttle */

static double fake_clock(void *ctx)
{
    return *(double *)ctx;
}

static void test_throttle(void)
{
    double now = 100.0;
    render_throttle t;
    CHECK_OK(render_throttle_init(&t, 4.0, fake_clock, &now)); /* one per 0.25 s */
    CHECK(render_throttle_ready(&t, false));                   /* the first always goes */
    now = 100.1;
    CHECK(!render_throttle_ready(&t, false));
    now = 100.2;
    CHECK(!render_throttle_ready(&t, false));
    now = 100.25;
    CHECK(render_throttle_ready(&t, false));
    now = 100.3;
    CHECK(!render_throttle_ready(&t, false));
    CHECK(render_throttle_ready(&t, true)); /* the final one always goes */
    now = 100.5;
    CHECK(!render_throttle_ready(&t, false)); /* counted from the final one */
    now = 100.56;
    CHECK(render_throttle_ready(&t, false));
    now = 50.0; /* a clock jumping back does not freeze it */
    CHECK(render_throttle_ready(&t, false));
    CHECK(!render_throttle_ready(&t, false));

    /* Over 10 simulated seconds at 60 calls a second, 4/s lets about 40 by. */
    int sent = 0;
    for (int i = 0; i < 600; i++) {
        now = 1000.0 + i / 60.0;
        sent += render_throttle_ready(&t, false);
    }
    CHECK_CMP(sent, >=, 38);
    CHECK_CMP(sent, <=, 41);

    CHECK(render_throttle_ready(NULL, false));
    CHECK_STATUS(render_throttle_init(&t, 0, NULL, NULL), RENDER_EINVAL);
    CHECK_STATUS(render_throttle_init(&t, NAN, NULL, NULL), RENDER_EINVAL);
    CHECK_STATUS(render_throttle_init(&t, -2, NULL, NULL), RENDER_EINVAL);
    CHECK_HAS(render_last_error(), "max_per_second must be a positive number");
    CHECK_STATUS(render_throttle_init(NULL, 4, NULL, NULL), RENDER_EINVAL);
    /* The real clock moves forward. */
    CHECK_OK(render_throttle_init(&t, 1e9, NULL, NULL));
    double a = render_clock_monotonic(NULL), b = render_clock_monotonic(NULL);
    CHECK(b >= a && a > 0);
}

/* ------------------------------------------------------------ main */

static const check_test kTests[] = {
    {"base64_rfc4648", test_base64_rfc4648},
    {"upscale_factor", test_upscale_factor},
    {"png_gray_roundtrip", test_png_gray_roundtrip},
    {"png_rgb_roundtrip", test_png_rgb_roundtrip},
    {"png_bad_arguments", test_png_bad_arguments},
    {"grid_layout_and_crisp_cells", test_grid_layout_and_crisp_cells},
    {"nice_ticks", test_nice_ticks},
    {"plot_png", test_plot_png},
    {"plot_degenerate", test_plot_degenerate},
    {"logo", test_logo},
    {"utf8_sanitize", test_utf8_sanitize},
    {"utf8_width", test_utf8_width},
    {"html_escape", test_html_escape},
    {"heat_color", test_heat_color},
    {"table_text", test_table_text},
    {"table_html", test_table_html},
    {"progress", test_progress},
    {"format_duration", test_format_duration},
    {"throttle", test_throttle},
};

int main(int argc, char **argv)
{
    int rc = check_main(kTests, sizeof kTests / sizeof kTests[0], argc, argv);
    render_cleanup(); /* a clean exit for LeakSanitizer */
    return rc;
}
