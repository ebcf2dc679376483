/* am_dataset.c: datasets for %examples: Fashion-MNIST images from Debian's
 * gzipped IDX files, any images (a PNG folder or an array: am_images.c), and
 * token windows of held-out text. */
#include "am_data.h"
#include "am_images.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ------------------------------------------------------------------- types */

/* N = items, C/H/W = image channels/height/width, B = batch, T = window */

static const char kFashionDir[] = "/usr/share/datasets/fashion-mnist";
static const char *const kFashionLabels[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                               "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                               "Bag",         "Ankle boot"};

struct am_dataset {
    int kind;     /* AM_DATASET_IMAGE or AM_DATASET_TEXT */
    int64_t size; /* N */
    int64_t next; /* index of the next item next_batch returns */
    /* images */
    unsigned char *pixels;  /* (N, H, W) raw 0..255 */
    unsigned char *labels8; /* (N) */
    am__images *images;     /* "images": read a batch at a time */
    int64_t chw[3];         /* C, H, W */
    float *batch_images;    /* (batch_cap, C, H, W) */
    int64_t *batch_labels;  /* (batch_cap) */
    /* text */
    int64_t *stream; /* (stream_len) all tokens, entries joined */
    int64_t stream_len;
    int64_t window, stride; /* T and the step between window starts */
    int64_t *batch_tokens;  /* (batch_cap, T) */
    int64_t batch_cap;
    char err[512];
};

static int ds_fail(am_dataset *ds, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ds->err, sizeof ds->err, fmt, ap);
    va_end(ap);
    return status;
}

/* ------------------------------------------------------------------- files */

/* Reads a whole gzip (or plain) file through zlib into *out (len). */
static int ds_read_gz(am_dataset *ds, const char *path, unsigned char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return ds_fail(ds, AM_E_IO, "cannot open %s", path);
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            gzclose(f);
            return ds_fail(ds, AM_E_NOMEM, "out of memory reading %s", path);
        }
        if (n == cap) {
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
            continue;
        }
        size_t want = cap - n > (1u << 30) ? (1u << 30) : cap - n;
        int got = gzread(f, buf + n, (unsigned)want);
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            ds_fail(ds, AM_E_FORMAT, "%s is not a readable gzip file (%s)", path, msg);
            free(buf);
            gzclose(f);
            return AM_E_FORMAT;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    gzclose(f);
    *out = buf;
    *len = n;
    return AM_OK;
}

static uint32_t ds_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* An IDX file of unsigned bytes (http://yann.lecun.com/exdb/mnist/): magic
 * 0x0000080D (D dims), D big-endian sizes, then the data. Keeps the data and
 * its dims; frees the header. */
static int ds_read_idx(am_dataset *ds, const char *path, int ndim, uint32_t *dims,
                       unsigned char **data)
{
    unsigned char *buf;
    size_t len;
    int rc = ds_read_gz(ds, path, &buf, &len);
    if (rc != AM_OK)
        return rc;
    size_t header = 4 + 4 * (size_t)ndim;
    uint32_t magic = len >= 4 ? ds_be32(buf) : 0;
    if (len < header || magic != (0x0800u | (uint32_t)ndim)) {
        free(buf);
        return ds_fail(ds, AM_E_FORMAT,
                       "%s is not an IDX file of %d-dimensional unsigned "
                       "bytes (magic 0x%08x, expected 0x%08x)",
                       path, ndim, magic, 0x0800u | (uint32_t)ndim);
    }
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = ds_be32(buf + 4 + 4 * i);
        count *= dims[i];
    }
    if (len - header != count) {
        free(buf);
        return ds_fail(ds, AM_E_FORMAT, "%s holds %zu data bytes but its header announces %zu",
                       path, len - header, count);
    }
    memmove(buf, buf + header, count);
    *data = buf;
    return AM_OK;
}

static int ds_open_fashion(am_dataset *ds, const char *split, const char *dir)
{
    const char *prefix = NULL;
    if (split && strcmp(split, "train") == 0)
        prefix = "train";
    else if (split && strcmp(split, "test") == 0)
        prefix = "t10k";
    else
        return ds_fail(ds, AM_E_ARG,
                       "fashion-mnist has no split \"%s\"; use \"train\" "
                       "(60000 images) or \"test\" (10000)",
                       split ? split : "(null)");
    if (!dir)
        dir = getenv("ACTMAX_FASHION_MNIST");
    if (!dir || !*dir)
        dir = kFashionDir;
    char path[4096];
    /* Zeroed because GCC 13 cannot see ds_read_idx fills them on success. */
    uint32_t idims[3] = {0, 0, 0}, ldims[1] = {0};
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    int rc = ds_read_idx(ds, path, 3, idims, &ds->pixels);
    if (rc != AM_OK) {
        if (rc == AM_E_IO) {
            char msg[sizeof ds->err];
            snprintf(msg, sizeof msg, "%s", ds->err);
            ds_fail(ds, rc,
                    "%s (install Debian's dataset-fashion-mnist, or set the dataset path "
                    "or ACTMAX_FASHION_MNIST to a directory holding the IDX .gz files)",
                    msg);
        }
        return rc;
    }
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    if ((rc = ds_read_idx(ds, path, 1, ldims, &ds->labels8)) != AM_OK)
        return rc;
    if (idims[0] != ldims[0])
        return ds_fail(ds, AM_E_FORMAT, "%s: %u images but %u labels", dir, idims[0], ldims[0]);
    for (uint32_t i = 0; i < ldims[0]; i++)
        if (ds->labels8[i] >= 10)
            return ds_fail(ds, AM_E_FORMAT, "%s: label %u of item %u is not a class 0..9", path,
                           ds->labels8[i], i);
    ds->kind = AM_DATASET_IMAGE;
    ds->size = idims[0];
    ds->chw[0] = 1;
    ds->chw[1] = idims[1];
    ds->chw[2] = idims[2];
    return AM_OK;
}

/* The "images" dataset over an opened source. */
static int ds_adopt_images(am_dataset *ds, am__images *im)
{
    ds->images = im;
    ds->kind = AM_DATASET_IMAGE;
    ds->size = am__images_size(im);
    am__images_shape(im, ds->chw);
    return AM_OK;
}

static int ds_open_images(am_dataset *ds, const am_dataset_options *o)
{
    am__images *im;
    int rc = am__images_open(o ? o->path : NULL, o, &im, ds->err, sizeof ds->err);
    return rc == AM_OK ? ds_adopt_images(ds, im) : rc;
}

int am__dataset_open_array(const char *what, void *data, int dtype, const int64_t shape[4],
                           int64_t *labels, const am_dataset_options *opts, am_dataset **out)
{
    am_dataset *ds = *out = calloc(1, sizeof *ds);
    if (!ds) {
        free(data);
        free(labels);
        return AM_E_NOMEM;
    }
    am__images *im;
    int rc =
        am__images_from_array(what, data, dtype, shape, labels, opts, &im, ds->err, sizeof ds->err);
    return rc == AM_OK ? ds_adopt_images(ds, im) : rc;
}

/* Appends the tokens of text[0..n) and, when the tokenizer has one,
 * <|endoftext|>. */
static int ds_add_entry(am_dataset *ds, am_tokenizer *tok, const char *text, size_t n, int64_t *cap)
{
    int64_t *ids;
    size_t k;
    int rc = am_tokenizer_encode(tok, text, n, &ids, &k);
    if (rc != AM_OK)
        return ds_fail(ds, rc, "tokenizing: %s", am_tokenizer_error(tok));
    int64_t eot = am_tokenizer_eot(tok);
    int64_t need = ds->stream_len + (int64_t)k + 1;
    if (need > *cap) {
        int64_t nc = *cap ? *cap : 4096;
        while (nc < need)
            nc *= 2;
        int64_t *ns = realloc(ds->stream, (size_t)nc * sizeof *ns);
        if (!ns) {
            free(ids);
            return ds_fail(ds, AM_E_NOMEM, "out of memory holding %lld tokens", (long long)need);
        }
        ds->stream = ns;
        *cap = nc;
    }
    memcpy(ds->stream + ds->stream_len, ids, k * sizeof *ids);
    ds->stream_len += (int64_t)k;
    if (eot >= 0)
        ds->stream[ds->stream_len++] = eot;
    free(ids);
    return AM_OK;
}

/* fortune layout: an entry is the text between lines holding a single '%'
 * (models/fortunes.py parse_entries; blank entries are dropped there too). */
static int ds_open_text(am_dataset *ds, const char *name, const am_dataset_options *o)
{
    if (!o || !o->path)
        return ds_fail(ds, AM_E_ARG,
                       "dataset \"%s\" needs options.path: the text file "
                       "(the build writes share/actmax/data/fortunes-heldout.txt)",
                       name);
    if (!o->tokenizer)
        return ds_fail(ds, AM_E_ARG,
                       "dataset \"%s\" needs options.tokenizer: the model's "
                       "tokenizer turns its text into token windows",
                       name);
    if (o->window < 0 || o->stride < 0)
        return ds_fail(ds, AM_E_ARG,
                       "window (%lld) and stride (%lld) must be positive, or 0 "
                       "for the defaults (64, window)",
                       (long long)o->window, (long long)o->stride);
    ds->window = o->window ? o->window : 64;
    ds->stride = o->stride ? o->stride : ds->window;
    unsigned char *text;
    size_t len;
    int rc = ds_read_gz(ds, o->path, &text, &len);
    if (rc != AM_OK)
        return rc;
    /* Encoding only reads the tokenizer's tables; the const is the caller's
     * promise not to free it, not a promise of no internal scratch. */
    am_tokenizer *tok = (am_tokenizer *)o->tokenizer;
    int64_t cap = 0;
    if (strcmp(name, "text") == 0) {
        rc = ds_add_entry(ds, tok, (const char *)text, len, &cap);
    } else {
        size_t start = 0;
        for (size_t pos = 0; pos <= len && rc == AM_OK;) {
            const unsigned char *nl = pos < len ? memchr(text + pos, '\n', len - pos) : NULL;
            size_t line_end = nl ? (size_t)(nl - text) : len;
            size_t next = nl ? line_end + 1 : len + 1;
            size_t n = line_end - pos;
            if (n && text[pos + n - 1] == '\r')
                n--;
            int sep = n == 1 && text[pos] == '%';
            if (sep || next > len) {
                size_t end = sep ? pos : len;
                int blank = 1;
                for (size_t i = start; i < end && blank; i++)
                    blank = text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r';
                if (!blank)
                    rc = ds_add_entry(ds, tok, (const char *)text + start, end - start, &cap);
                start = next;
            }
            pos = next;
        }
    }
    free(text);
    if (rc != AM_OK)
        return rc;
    ds->kind = AM_DATASET_TEXT;
    ds->size = ds->stream_len >= ds->window ? (ds->stream_len - ds->window) / ds->stride + 1 : 0;
    if (ds->size == 0)
        return ds_fail(ds, AM_E_FORMAT, "%s holds %lld tokens, fewer than one window of %lld",
                       o->path, (long long)ds->stream_len, (long long)ds->window);
    return AM_OK;
}

/* ------------------------------------------------------------------ public */

int am_dataset_open(const char *name, const char *split, const am_dataset_options *opts,
                    am_dataset **out)
{
    if (!out)
        return AM_E_ARG;
    am_dataset *ds = *out = calloc(1, sizeof *ds);
    if (!ds)
        return AM_E_NOMEM;
    if (!name)
        return ds_fail(ds, AM_E_ARG,
                       "dataset name is NULL; use \"fashion-mnist\", \"images\", "
                       "\"fortunes\" or \"text\"");
    if (strcmp(name, "fashion-mnist") == 0)
        return ds_open_fashion(ds, split, opts ? opts->path : NULL);
    if (strcmp(name, "images") == 0)
        return ds_open_images(ds, opts);
    if (strcmp(name, "fortunes") == 0) {
        if (split && strcmp(split, "heldout") != 0 && strcmp(split, "test") != 0)
            return ds_fail(ds, AM_E_ARG,
                           "fortunes has no split \"%s\"; only \"heldout\" "
                           "(the entries tiny-lm did not train on) is kept",
                           split);
        return ds_open_text(ds, name, opts);
    }
    if (strcmp(name, "text") == 0)
        return ds_open_text(ds, name, opts);
    return ds_fail(ds, AM_E_ARG,
                   "unknown dataset \"%s\"; known: \"fashion-mnist\", \"images\" (a "
                   "folder of PNG files or a .npy file as the path), \"fortunes\" (held-out "
                   "text), \"text\" (any text file)",
                   name);
}

void am_dataset_free(am_dataset *ds)
{
    if (!ds)
        return;
    free(ds->pixels);
    free(ds->labels8);
    am__images_free(ds->images);
    free(ds->batch_images);
    free(ds->batch_labels);
    free(ds->stream);
    free(ds->batch_tokens);
    free(ds);
}

const char *am_dataset_error(const am_dataset *ds)
{
    return ds ? ds->err : "no dataset (NULL handle; opening ran out of memory)";
}

static int ds_ready(const am_dataset *ds)
{
    return ds && (ds->pixels || ds->images || ds->stream) && ds->size > 0;
}

/* Fills the batch buffers with items [first, first + count). */
static int ds_fill(am_dataset *ds, int64_t first, int64_t count, am_batch *b)
{
    memset(b, 0, sizeof *b);
    b->first = first;
    if (count > ds->batch_cap) {
        if (ds->kind == AM_DATASET_IMAGE) {
            size_t per = (size_t)(ds->chw[0] * ds->chw[1] * ds->chw[2]);
            float *im = realloc(ds->batch_images, (size_t)count * per * sizeof *im);
            if (im)
                ds->batch_images = im;
            int64_t *lb = realloc(ds->batch_labels, (size_t)count * sizeof *lb);
            if (lb)
                ds->batch_labels = lb;
            if (!im || !lb)
                return ds_fail(ds, AM_E_NOMEM, "out of memory for a batch of %lld images",
                               (long long)count);
        } else {
            int64_t *tk = realloc(ds->batch_tokens, (size_t)(count * ds->window) * sizeof *tk);
            if (!tk)
                return ds_fail(ds, AM_E_NOMEM, "out of memory for a batch of %lld windows",
                               (long long)count);
            ds->batch_tokens = tk;
        }
        ds->batch_cap = count;
    }
    if (ds->images) {
        int rc = am__images_read(ds->images, first, count, ds->batch_images, ds->batch_labels,
                                 ds->err, sizeof ds->err);
        if (rc != AM_OK)
            return rc;
        b->images = ds->batch_images;
        b->labels = am__images_has_labels(ds->images) ? ds->batch_labels : NULL;
    } else if (ds->kind == AM_DATASET_IMAGE) {
        int64_t per = ds->chw[0] * ds->chw[1] * ds->chw[2];
        const unsigned char *src = ds->pixels + first * per;
        for (int64_t i = 0; i < count * per; i++)
            ds->batch_images[i] = (float)src[i] / 255.0f; /* bytes 0..255 -> [0, 1] */
        for (int64_t i = 0; i < count; i++)
            ds->batch_labels[i] = ds->labels8[first + i];
        b->images = ds->batch_images;
        b->labels = ds->batch_labels;
    } else {
        for (int64_t i = 0; i < count; i++)
            memcpy(ds->batch_tokens + i * ds->window, ds->stream + (first + i) * ds->stride,
                   (size_t)ds->window * sizeof *ds->batch_tokens);
        b->tokens = ds->batch_tokens;
    }
    b->count = count;
    return AM_OK;
}

int am_dataset_next_batch(am_dataset *ds, int64_t max_items, am_batch *batch)
{
    if (!ds || !batch)
        return ds ? ds_fail(ds, AM_E_ARG, "am_dataset_next_batch: batch is NULL") : AM_E_ARG;
    memset(batch, 0, sizeof *batch);
    if (!ds_ready(ds))
        return ds_fail(ds, AM_E_ARG, "the dataset did not open; free it and open it again");
    if (max_items <= 0)
        return ds_fail(ds, AM_E_ARG, "max_items is %lld; a batch holds at least one item",
                       (long long)max_items);
    int64_t count = ds->size - ds->next;
    if (count > max_items)
        count = max_items;
    if (count <= 0) {
        batch->first = ds->size;
        return AM_OK;
    }
    int rc = ds_fill(ds, ds->next, count, batch);
    if (rc == AM_OK)
        ds->next += count;
    return rc;
}

int am_dataset_item(am_dataset *ds, int64_t index, am_batch *batch)
{
    if (!ds || !batch)
        return ds ? ds_fail(ds, AM_E_ARG, "am_dataset_item: batch is NULL") : AM_E_ARG;
    memset(batch, 0, sizeof *batch);
    if (!ds_ready(ds))
        return ds_fail(ds, AM_E_ARG, "the dataset did not open; free it and open it again");
    if (index < 0 || index >= ds->size)
        return ds_fail(ds, AM_E_ARG,
                       "item %lld is out of range: the dataset has items "
                       "0..%lld",
                       (long long)index, (long long)ds->size - 1);
    return ds_fill(ds, index, 1, batch);
}

int64_t am_dataset_size(const am_dataset *ds)
{
    return ds ? ds->size : AM_E_ARG;
}

int am_dataset_kind(const am_dataset *ds)
{
    return ds_ready(ds) ? ds->kind : AM_E_ARG;
}

int am_dataset_item_shape(const am_dataset *ds, int64_t *shape, int max)
{
    if (!ds_ready(ds) || !shape)
        return AM_E_ARG;
    int nd = ds->kind == AM_DATASET_IMAGE ? 3 : 1;
    for (int i = 0; i < nd && i < max; i++)
        shape[i] = ds->kind == AM_DATASET_IMAGE ? ds->chw[i] : ds->window;
    return nd;
}

int am_dataset_num_labels(const am_dataset *ds)
{
    if (!ds_ready(ds))
        return AM_E_ARG;
    if (ds->images)
        return am__images_num_labels(ds->images);
    return ds->kind == AM_DATASET_IMAGE ? 10 : 0;
}

const char *am_dataset_label(const am_dataset *ds, int i)
{
    if (!ds_ready(ds) || ds->kind != AM_DATASET_IMAGE || i < 0)
        return NULL;
    if (ds->images)
        return am__images_label(ds->images, i);
    return i < 10 ? kFashionLabels[i] : NULL;
}
