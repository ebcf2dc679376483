/* am_images.c: the "images" dataset: a folder of PNG files (class
 * subfolders give labels), a .npy array, or an array in memory. Only the
 * file list or the array header is read at open; pixels are decoded a batch
 * at a time, so a folder or a .npy larger than memory is scanned in bounded
 * memory.
 *
 * N = items, C/H/W = channels/height/width as delivered, Cs = as stored. */
#include "am_images.h"

#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------- types */

enum { SRC_PNG, SRC_NPY, SRC_ARRAY };

struct am__images {
    int src;
    char path[4096];
    int64_t n;       /* N */
    int64_t chw[3];  /* C, H, W as delivered */
    int64_t cs;      /* Cs: stored channels (png: per file, this is the first's) */
    int64_t *labels; /* (N) or NULL */
    char **names;    /* (num_names) label names */
    int num_names;
    /* png */
    char **files; /* (N) paths */
    /* npy and array */
    int dtype;         /* AM__ARRAY_F32 or AM__ARRAY_U8 */
    FILE *f;           /* npy */
    long data_offset;  /* npy: byte offset of item 0 */
    void *array;       /* array: (N, Cs, H, W) */
    unsigned char *io; /* (Cs * H * W * 4) one stored item */
    float *item;       /* (Cs * H * W) one stored item as floats */
};

static int im_fail(char *err, size_t size, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return status;
}

static char *im_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* ---------------------------------------------------------------- channels */

/* Luminance of RGB in [0, 1] (ITU-R BT.601 weights, as PIL's "L" mode). */
static const float kLuma[3] = {0.299f, 0.587f, 0.114f};

/* A stored item (cs, hw) -> (c, hw): equal copies, 1 -> c repeats, 3 -> 1
 * takes the luminance. Other pairs are refused at open. */
static void im_convert(const float *in, int64_t cs, int64_t hw, float *out, int64_t c)
{
    if (cs == c) {
        memcpy(out, in, (size_t)(c * hw) * sizeof *out);
    } else if (cs == 1) {
        for (int64_t k = 0; k < c; k++)
            memcpy(out + k * hw, in, (size_t)hw * sizeof *out);
    } else {
        for (int64_t i = 0; i < hw; i++)
            out[i] = kLuma[0] * in[i] + kLuma[1] * in[hw + i] + kLuma[2] * in[2 * hw + i];
    }
}

static int im_channels_ok(int64_t cs, int64_t c)
{
    return cs == c || cs == 1 || (cs == 3 && c == 1);
}

/* ----------------------------------------------------------------- PNG */

/* One PNG file: its size and stored channels (1: gray, 3: colour; alpha
 * and palettes are resolved by the decoder), and with pixels non-NULL its
 * values (cs, h, w) in [0, 1]. Errors go to err; returns a status. */
typedef struct {
    png_structp png;
    png_infop info;
    FILE *f;
    char *err;
    size_t err_size;
    const char *path;
} png_job;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    im_fail(j->err, j->err_size, AM_E_FORMAT, "%s is not a readable PNG file (%s)", j->path, msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* e.g. an unknown colour profile: the pixels are still read */
}

static int png_load(const char *path, int64_t *h, int64_t *w, int64_t *cs, float *pixels,
                    int64_t max_values, char *err, size_t err_size)
{
    png_job j = {.err = err, .err_size = err_size, .path = path};
    j.f = fopen(path, "rb");
    if (!j.f)
        return im_fail(err, err_size, AM_E_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char sig[8];
    if (fread(sig, 1, 8, j.f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        fclose(j.f);
        return im_fail(err, err_size, AM_E_FORMAT, "%s is not a PNG file (no PNG signature)", path);
    }
    j.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j, png_on_error, png_on_warning);
    j.info = j.png ? png_create_info_struct(j.png) : NULL;
    if (!j.info) {
        png_destroy_read_struct(&j.png, NULL, NULL);
        fclose(j.f);
        return im_fail(err, err_size, AM_E_NOMEM, "out of memory reading %s", path);
    }
    /* volatile: set after setjmp and freed after a longjmp */
    png_bytep *volatile rows = NULL;
    unsigned char *volatile buf = NULL;
    if (setjmp(png_jmpbuf(j.png))) {
        free(rows);
        free(buf);
        png_destroy_read_struct(&j.png, &j.info, NULL);
        fclose(j.f);
        return AM_E_FORMAT;
    }
    png_init_io(j.png, j.f);
    png_set_sig_bytes(j.png, 8);
    png_read_info(j.png, j.info);
    /* Palettes and 1/2/4-bit gray become 8-bit values; alpha (and a tRNS
     * colour key) is dropped: the model sees the colour as stored. */
    png_set_expand(j.png);
    png_set_strip_alpha(j.png);
    png_set_interlace_handling(j.png);
    png_read_update_info(j.png, j.info);
    int64_t ph = png_get_image_height(j.png, j.info), pw = png_get_image_width(j.png, j.info);
    int64_t pc = png_get_channels(j.png, j.info);
    int depth = png_get_bit_depth(j.png, j.info);
    *h = ph;
    *w = pw;
    *cs = pc;
    if (pixels && pc * ph * pw > max_values)
        png_error(j.png, "more pixels than its header announced at open");
    if (pixels) {
        size_t rowbytes = png_get_rowbytes(j.png, j.info);
        buf = malloc(rowbytes * (size_t)ph);
        rows = malloc((size_t)ph * sizeof *rows);
        if (!buf || !rows)
            png_error(j.png, "out of memory");
        for (int64_t y = 0; y < ph; y++)
            rows[y] = buf + (size_t)y * rowbytes;
        png_read_image(j.png, rows);
        png_read_end(j.png, NULL);
        int64_t hw = ph * pw;
        for (int64_t y = 0; y < ph; y++)
            for (int64_t x = 0; x < pw; x++)
                for (int64_t k = 0; k < pc; k++) {
                    const unsigned char *p = rows[y] + (x * pc + k) * (depth == 16 ? 2 : 1);
                    /* 16-bit samples are big-endian in PNG; scaled by their own maximum. */
                    float v =
                        depth == 16 ? (float)(p[0] << 8 | p[1]) / 65535.0f : (float)p[0] / 255.0f;
                    pixels[k * hw + y * pw + x] = v;
                }
    }
    free(rows);
    free(buf);
    png_destroy_read_struct(&j.png, &j.info, NULL);
    fclose(j.f);
    return AM_OK;
}

static int ends_with_png(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
    char **v;
    int64_t n, cap;
} strlist;

static int strlist_add(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        int64_t nc = l->cap ? 2 * l->cap : 64;
        char **nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv)
            return AM_E_NOMEM;
        l->v = nv;
        l->cap = nc;
    }
    if (!(l->v[l->n] = im_strdup(s)))
        return AM_E_NOMEM;
    l->n++;
    return AM_OK;
}

static void strlist_free(strlist *l)
{
    for (int64_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* The entries of dir, sorted by name (byte order): PNG files into files,
 * subdirectories into dirs (either may be NULL to skip). Hidden entries are
 * skipped. */
static int list_dir(const char *dir, strlist *files, strlist *dirs, char *err, size_t err_size)
{
    DIR *d = opendir(dir);
    if (!d)
        return im_fail(err, err_size, AM_E_IO, "cannot read the folder %s: %s", dir,
                       strerror(errno));
    struct dirent *e;
    char full[8192];
    int rc = AM_OK;
    while (rc == AM_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && dirs)
            rc = strlist_add(dirs, e->d_name);
        else if (S_ISREG(st.st_mode) && ends_with_png(e->d_name) && files)
            rc = strlist_add(files, full);
    }
    closedir(d);
    if (rc != AM_OK)
        return im_fail(err, err_size, rc, "out of memory listing %s", dir);
    if (files && files->n)
        qsort(files->v, (size_t)files->n, sizeof *files->v, cmp_str);
    if (dirs && dirs->n)
        qsort(dirs->v, (size_t)dirs->n, sizeof *dirs->v, cmp_str);
    return AM_OK;
}

/* The folder's files in order (flat, or class by class) with their labels;
 * every file's header is read so that a file of another size or a broken
 * one fails here, named, rather than midway through a scan. */
static int open_png_folder(am__images *im, const am_dataset_options *o, char *err, size_t es)
{
    strlist top = {0}, dirs = {0}, all = {0};
    int64_t *labels = NULL, lcap = 0;
    int rc = list_dir(im->path, &top, &dirs, err, es);
    if (rc == AM_OK && top.n && dirs.n)
        rc = im_fail(err, es, AM_E_FORMAT,
                     "the folder %s holds both PNG files (%s, ...) and subfolders (%s, ...); use "
                     "either PNG files only, or one subfolder of PNG files per class",
                     im->path, top.v[0], dirs.v[0]);
    if (rc == AM_OK && dirs.n) {
        /* class per subfolder: the label is the subfolder's position */
        im->names = calloc((size_t)dirs.n, sizeof *im->names);
        if (!im->names)
            rc = im_fail(err, es, AM_E_NOMEM, "out of memory");
        for (int64_t c = 0; rc == AM_OK && c < dirs.n; c++) {
            char sub[8192];
            snprintf(sub, sizeof sub, "%s/%s", im->path, dirs.v[c]);
            im->names[c] = im_strdup(dirs.v[c]);
            im->num_names = (int)c + 1;
            int64_t before = all.n;
            rc = list_dir(sub, &all, NULL, err, es);
            if (rc == AM_OK && all.n > lcap) {
                lcap = all.cap;
                int64_t *nl = realloc(labels, (size_t)lcap * sizeof *nl);
                if (!nl)
                    rc = im_fail(err, es, AM_E_NOMEM, "out of memory");
                else
                    labels = nl;
            }
            for (int64_t i = before; rc == AM_OK && i < all.n; i++)
                labels[i] = c;
        }
    } else if (rc == AM_OK) {
        all = top;
        memset(&top, 0, sizeof top);
    }
    strlist_free(&top);
    strlist_free(&dirs);
    if (rc == AM_OK && all.n == 0)
        rc = im_fail(err, es, AM_E_FORMAT,
                     "the folder %s holds no PNG images (*.png, directly or one subfolder per "
                     "class)",
                     im->path);
    int64_t h0 = 0, w0 = 0, c0 = 0;
    for (int64_t i = 0; rc == AM_OK && i < all.n; i++) {
        int64_t h, w, cs;
        rc = png_load(all.v[i], &h, &w, &cs, NULL, 0, err, es);
        if (rc != AM_OK)
            break;
        if (i == 0) {
            h0 = h;
            w0 = w;
            c0 = cs;
        }
        int64_t want_h = o && o->height ? o->height : h0, want_w = o && o->width ? o->width : w0;
        /* another size than the model's is a mismatch (as for any
         * dataset); within the folder, a malformed dataset */
        if (h != want_h || w != want_w)
            rc = im_fail(err, es, o && o->height ? AM_E_UNSUPPORTED : AM_E_FORMAT,
                         "%s is %lldx%lld pixels (height x width) but %s %lldx%lld; images are "
                         "not resized: give images of that size",
                         all.v[i], (long long)h, (long long)w,
                         o && o->height ? "the model takes" : "the folder's first image is",
                         (long long)want_h, (long long)want_w);
        int64_t want_c = o && o->channels ? o->channels : c0;
        if (rc == AM_OK && !im_channels_ok(cs, want_c))
            rc = im_fail(err, es, AM_E_UNSUPPORTED, "%s has %lld channels; %lld are wanted",
                         all.v[i], (long long)cs, (long long)want_c);
    }
    if (rc != AM_OK) {
        strlist_free(&all);
        free(labels);
        return rc;
    }
    im->src = SRC_PNG;
    im->files = all.v;
    im->n = all.n;
    im->labels = labels;
    im->cs = c0;
    im->chw[0] = o && o->channels ? o->channels : c0;
    im->chw[1] = h0;
    im->chw[2] = w0;
    return AM_OK;
}

/* ----------------------------------------------------------------- .npy */

int am__npy_read_header(FILE *f, const char *path, am__npy_header *hd, char *err, size_t es)
{
    memset(hd, 0, sizeof *hd);
    unsigned char pre[12];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return im_fail(err, es, AM_E_FORMAT, "%s is not a .npy file (no \\x93NUMPY magic)", path);
    size_t hlen;
    int major = pre[6];
    if (major == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        hd->data_offset = 10;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, f) != 2)
            return im_fail(err, es, AM_E_FORMAT, "%s: truncated .npy header", path);
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        hd->data_offset = 12;
    } else {
        return im_fail(err, es, AM_E_FORMAT, "%s: .npy format version %d is not supported (1..3)",
                       path, major);
    }
    if (hlen > 1 << 20)
        return im_fail(err, es, AM_E_FORMAT, "%s: .npy header of %zu bytes is not plausible", path,
                       hlen);
    char *h = malloc(hlen + 1);
    if (!h)
        return im_fail(err, es, AM_E_NOMEM, "out of memory");
    if (fread(h, 1, hlen, f) != hlen) {
        free(h);
        return im_fail(err, es, AM_E_FORMAT, "%s: truncated .npy header", path);
    }
    h[hlen] = 0;
    hd->data_offset += (long)hlen;
    int rc = AM_OK;
    const char *d = strstr(h, "'descr'"), *fo = strstr(h, "'fortran_order'"),
               *sh = strstr(h, "'shape'");
    if (!d || !fo || !sh)
        rc = im_fail(err, es, AM_E_FORMAT,
                     "%s: the .npy header lacks 'descr', 'fortran_order' or 'shape': %s", path, h);
    if (rc == AM_OK) {
        const char *q = strchr(d + 7, '\'');
        const char *q2 = q ? strchr(q + 1, '\'') : NULL;
        if (!q || !q2 || (size_t)(q2 - q - 1) >= sizeof hd->descr)
            rc = im_fail(err, es, AM_E_FORMAT, "%s: unreadable 'descr' in the .npy header: %s",
                         path, h);
        else
            memcpy(hd->descr, q + 1, (size_t)(q2 - q - 1));
        const char *v = fo + 15;
        while (*v == ' ' || *v == ':')
            v++;
        hd->fortran = strncmp(v, "True", 4) == 0;
        const char *p = strchr(sh, '(');
        if (!p)
            rc = im_fail(err, es, AM_E_FORMAT, "%s: unreadable 'shape' in the .npy header: %s",
                         path, h);
        for (p = p ? p + 1 : NULL; rc == AM_OK && p && *p && *p != ')';) {
            while (*p == ' ' || *p == ',')
                p++;
            if (*p == ')')
                break;
            char *end;
            long long x = strtoll(p, &end, 10);
            if (end == p || x < 0 || hd->ndim == 8) {
                rc = im_fail(err, es, AM_E_FORMAT, "%s: unreadable 'shape' in the .npy header: %s",
                             path, h);
                break;
            }
            hd->shape[hd->ndim++] = x;
            p = end;
            while (*p == 'L' || *p == ' ')
                p++;
        }
    }
    free(h);
    return rc;
}

/* The integer labels of NAME.labels.npy beside NAME.npy, when present. */
static int npy_read_labels(am__images *im, const char *path, char *err, size_t es)
{
    size_t n = strlen(path);
    char lp[4200];
    snprintf(lp, sizeof lp, "%.*s.labels.npy", (int)(n - 4), path);
    FILE *f = fopen(lp, "rb");
    if (!f)
        return AM_OK;
    am__npy_header hd;
    int rc = am__npy_read_header(f, lp, &hd, err, es);
    int size = 0;
    if (rc == AM_OK) {
        /* little-endian (or byte-order-free) signed or unsigned integers */
        const char *t = hd.descr;
        if ((t[0] == '<' || t[0] == '|') && (t[1] == 'i' || t[1] == 'u'))
            size = atoi(t + 2);
        if (hd.ndim != 1 || hd.fortran || (size != 1 && size != 2 && size != 4 && size != 8))
            rc = im_fail(err, es, AM_E_FORMAT,
                         "%s must hold one integer label per image: shape (N,), little-endian "
                         "int8..int64 or uint8..uint64; it has descr '%s' and %d dims",
                         lp, hd.descr, hd.ndim);
        else if (hd.shape[0] != im->n)
            rc = im_fail(err, es, AM_E_FORMAT, "%s holds %lld labels for %lld images in %s", lp,
                         (long long)hd.shape[0], (long long)im->n, path);
    }
    unsigned char *raw = NULL;
    if (rc == AM_OK) {
        raw = malloc((size_t)(im->n * size) + 1);
        im->labels = malloc((size_t)im->n * sizeof *im->labels + 1);
        if (!raw || !im->labels)
            rc = im_fail(err, es, AM_E_NOMEM, "out of memory for %lld labels", (long long)im->n);
        else if (fseek(f, hd.data_offset, SEEK_SET) != 0 ||
                 fread(raw, (size_t)size, (size_t)im->n, f) != (size_t)im->n)
            rc = im_fail(err, es, AM_E_FORMAT, "%s is shorter than its header announces", lp);
    }
    for (int64_t i = 0; rc == AM_OK && i < im->n; i++) {
        const unsigned char *p = raw + i * size;
        uint64_t u = 0;
        for (int b = size - 1; b >= 0; b--)
            u = u << 8 | p[b];
        int64_t v = (int64_t)u;
        if (hd.descr[1] == 'i' && size < 8 && (u >> (8 * size - 1)) & 1)
            v = (int64_t)(u | ~((UINT64_C(1) << (8 * size)) - 1)); /* sign-extend */
        if (v < 0 || v > 1000000)
            rc = im_fail(err, es, AM_E_FORMAT,
                         "%s: label %lld of image %lld is not a class index 0..1000000", lp,
                         (long long)v, (long long)i);
        else
            im->labels[i] = v;
    }
    free(raw);
    fclose(f);
    return rc;
}

static int open_npy(am__images *im, char *err, size_t es)
{
    im->f = fopen(im->path, "rb");
    if (!im->f)
        return im_fail(err, es, AM_E_IO, "cannot open %s: %s", im->path, strerror(errno));
    am__npy_header hd;
    int rc = am__npy_read_header(im->f, im->path, &hd, err, es);
    if (rc != AM_OK)
        return rc;
    if (strcmp(hd.descr, "<f4") == 0)
        im->dtype = AM__ARRAY_F32;
    else if (strcmp(hd.descr, "|u1") == 0 || strcmp(hd.descr, "<u1") == 0)
        im->dtype = AM__ARRAY_U8;
    else
        return im_fail(err, es, AM_E_FORMAT,
                       "%s holds '%s' values; images in a .npy must be float32 ('<f4', in [0, 1]) "
                       "or uint8 ('|u1', 0..255): convert with a.astype(np.float32)",
                       im->path, hd.descr);
    if (hd.fortran)
        return im_fail(err, es, AM_E_FORMAT,
                       "%s is in Fortran order; save a C-ordered array (np.ascontiguousarray)",
                       im->path);
    if (hd.ndim == 3) {
        im->n = hd.shape[0];
        im->cs = 1;
        im->chw[1] = hd.shape[1];
        im->chw[2] = hd.shape[2];
    } else if (hd.ndim == 4) {
        im->n = hd.shape[0];
        im->cs = hd.shape[1];
        im->chw[1] = hd.shape[2];
        im->chw[2] = hd.shape[3];
    } else {
        return im_fail(err, es, AM_E_FORMAT,
                       "%s has %d dimensions; images are (N, C, H, W), or (N, H, W) for one "
                       "channel",
                       im->path, hd.ndim);
    }
    long per = (long)(im->cs * im->chw[1] * im->chw[2]) * (im->dtype == AM__ARRAY_U8 ? 1 : 4);
    if (fseek(im->f, 0, SEEK_END) != 0 || ftell(im->f) < hd.data_offset + per * (long)im->n)
        return im_fail(err, es, AM_E_FORMAT,
                       "%s is shorter than the %lld images its header announces", im->path,
                       (long long)im->n);
    im->data_offset = hd.data_offset;
    im->src = SRC_NPY;
    return npy_read_labels(im, im->path, err, es);
}

/* ------------------------------------------------------------------ common */

/* Checks the stored shape against what opts asks for and sets up names
 * and scratch buffers. */
static int im_finish(am__images *im, const am_dataset_options *o, char *err, size_t es)
{
    if (im->n == 0)
        return im_fail(err, es, AM_E_FORMAT, "%s holds no images", im->path);
    int64_t c = o && o->channels ? o->channels : im->cs;
    if (!im_channels_ok(im->cs, c))
        return im_fail(err, es, AM_E_UNSUPPORTED,
                       "%s holds images of %lld channels; the model takes %lld (1 channel is "
                       "repeated, 3 become 1 by luminance; no other conversion)",
                       im->path, (long long)im->cs, (long long)c);
    if (o && ((o->height && o->height != im->chw[1]) || (o->width && o->width != im->chw[2])))
        return im_fail(err, es, AM_E_UNSUPPORTED,
                       "%s holds images of %lldx%lld pixels (height x width); the model takes "
                       "%lldx%lld; images are not resized: give images of that size",
                       im->path, (long long)im->chw[1], (long long)im->chw[2], (long long)o->height,
                       (long long)o->width);
    im->chw[0] = c;
    if (!im->names && o && o->label_names && o->num_label_names > 0) {
        im->names = calloc((size_t)o->num_label_names, sizeof *im->names);
        if (!im->names)
            return im_fail(err, es, AM_E_NOMEM, "out of memory");
        for (int i = 0; i < o->num_label_names; i++) {
            im->names[i] = im_strdup(o->label_names[i] ? o->label_names[i] : "");
            im->num_names = i + 1;
        }
    }
    /* classes without a name are named by their number */
    int64_t most = im->num_names;
    for (int64_t i = 0; im->labels && i < im->n; i++)
        if (im->labels[i] + 1 > most)
            most = im->labels[i] + 1;
    if (most > im->num_names) {
        char **nn = realloc(im->names, (size_t)most * sizeof *nn);
        if (!nn)
            return im_fail(err, es, AM_E_NOMEM, "out of memory");
        im->names = nn;
        for (int64_t i = im->num_names; i < most; i++) {
            char num[24];
            snprintf(num, sizeof num, "%lld", (long long)i);
            im->names[i] = im_strdup(num);
            im->num_names = (int)i + 1;
        }
    }
    /* a PNG folder may mix gray and colour files: room for 3 channels */
    size_t stored = (size_t)((im->cs > 3 ? im->cs : 3) * im->chw[1] * im->chw[2]);
    im->io = malloc(stored * 4);
    im->item = malloc(stored * sizeof *im->item);
    if (!im->io || !im->item)
        return im_fail(err, es, AM_E_NOMEM, "out of memory");
    return AM_OK;
}

int am__images_open(const char *path, const am_dataset_options *o, am__images **out, char *err,
                    size_t es)
{
    *out = NULL;
    if (!path || !*path)
        return im_fail(err, es, AM_E_ARG,
                       "the images dataset needs a path: a folder of PNG files (one subfolder "
                       "per class for labels), or a .npy file");
    am__images *im = calloc(1, sizeof *im);
    if (!im)
        return im_fail(err, es, AM_E_NOMEM, "out of memory");
    snprintf(im->path, sizeof im->path, "%s", path);
    size_t n = strlen(im->path);
    while (n > 1 && im->path[n - 1] == '/')
        im->path[--n] = 0;
    struct stat st;
    int rc;
    if (stat(im->path, &st) != 0)
        rc = im_fail(err, es, AM_E_IO,
                     "cannot read the images at %s: %s (give a folder of PNG files or a .npy "
                     "file)",
                     im->path, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        rc = open_png_folder(im, o, err, es);
    else if (n > 4 && strcasecmp(im->path + n - 4, ".npy") == 0)
        rc = open_npy(im, err, es);
    else if (n > 3 && strcasecmp(im->path + n - 3, ".pt") == 0)
        rc = im_fail(err, es, AM_E_UNSUPPORTED,
                     "%s is a torch.save file, which only the engine's examples read (it needs "
                     "libtorch); here, save the array as .npy instead",
                     im->path);
    else
        rc = im_fail(err, es, AM_E_FORMAT,
                     "%s is neither a folder of PNG files nor a .npy or .pt file", im->path);
    if (rc == AM_OK)
        rc = im_finish(im, o, err, es);
    if (rc != AM_OK) {
        am__images_free(im);
        return rc;
    }
    *out = im;
    return AM_OK;
}

int am__images_from_array(const char *what, void *data, int dtype, const int64_t shape[4],
                          int64_t *labels, const am_dataset_options *o, am__images **out, char *err,
                          size_t es)
{
    *out = NULL;
    am__images *im = calloc(1, sizeof *im);
    if (!im) {
        free(data);
        free(labels);
        return im_fail(err, es, AM_E_NOMEM, "out of memory");
    }
    snprintf(im->path, sizeof im->path, "%s", what ? what : "the array");
    im->src = SRC_ARRAY;
    im->array = data;
    im->labels = labels;
    im->dtype = dtype;
    im->n = shape[0];
    im->cs = shape[1];
    im->chw[1] = shape[2];
    im->chw[2] = shape[3];
    int rc = im_finish(im, o, err, es);
    for (int64_t i = 0; rc == AM_OK && labels && i < im->n; i++)
        if (labels[i] < 0)
            rc = im_fail(err, es, AM_E_FORMAT, "%s: label %lld of image %lld is negative", im->path,
                         (long long)labels[i], (long long)i);
    if (rc != AM_OK) {
        am__images_free(im);
        return rc;
    }
    *out = im;
    return AM_OK;
}

void am__images_free(am__images *im)
{
    if (!im)
        return;
    if (im->files)
        for (int64_t i = 0; i < im->n; i++)
            free(im->files[i]);
    free(im->files);
    for (int i = 0; i < im->num_names; i++)
        free(im->names[i]);
    free(im->names);
    free(im->labels);
    if (im->f)
        fclose(im->f);
    free(im->array);
    free(im->io);
    free(im->item);
    free(im);
}

int64_t am__images_size(const am__images *im)
{
    return im->n;
}

void am__images_shape(const am__images *im, int64_t chw[3])
{
    memcpy(chw, im->chw, sizeof im->chw);
}

int am__images_has_labels(const am__images *im)
{
    return im->labels != NULL;
}

int am__images_num_labels(const am__images *im)
{
    return im->labels || im->src == SRC_PNG ? im->num_names : 0;
}

const char *am__images_label(const am__images *im, int i)
{
    return i >= 0 && i < im->num_names ? im->names[i] : NULL;
}

int am__images_read(am__images *im, int64_t first, int64_t count, float *out, int64_t *labels,
                    char *err, size_t es)
{
    int64_t hw = im->chw[1] * im->chw[2], stored = im->cs * hw, per = im->chw[0] * hw;
    size_t isz = im->dtype == AM__ARRAY_U8 ? 1 : 4;
    if (im->src == SRC_NPY &&
        fseek(im->f, im->data_offset + (long)((size_t)(first * stored) * isz), SEEK_SET) != 0)
        return im_fail(err, es, AM_E_IO, "cannot seek in %s: %s", im->path, strerror(errno));
    for (int64_t b = 0; b < count; b++) {
        int64_t i = first + b, cs = im->cs;
        if (im->src == SRC_PNG) {
            int64_t h, w;
            int rc = png_load(im->files[i], &h, &w, &cs, im->item, 3 * hw, err, es);
            if (rc != AM_OK)
                return rc;
            if (h != im->chw[1] || w != im->chw[2])
                return im_fail(err, es, AM_E_FORMAT, "%s changed while it was read", im->files[i]);
        } else {
            const unsigned char *src;
            if (im->src == SRC_NPY) {
                if (fread(im->io, isz, (size_t)stored, im->f) != (size_t)stored)
                    return im_fail(err, es, AM_E_IO, "%s: cannot read image %lld", im->path,
                                   (long long)i);
                src = im->io;
            } else {
                src = (const unsigned char *)im->array + (size_t)(i * stored) * isz;
            }
            if (im->dtype == AM__ARRAY_U8)
                for (int64_t j = 0; j < stored; j++)
                    im->item[j] = (float)src[j] / 255.0f; /* bytes 0..255 -> [0, 1] */
            else
                memcpy(im->item, src, (size_t)stored * sizeof(float));
        }
        im_convert(im->item, cs, hw, out + b * per, im->chw[0]);
        if (labels)
            labels[b] = im->labels ? im->labels[i] : -1;
    }
    return AM_OK;
}
