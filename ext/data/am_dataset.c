/* am_dataset.c: datasets for %examples: Fashion-MNIST images from Debian's
 * gzipped IDX files, any images (a PNG folder or an array: am_images.c), and
 * token windows of held-out text. */
#include "am_data.h"
#include "am_tokenizer_piece.h"
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
    /* text: a window onto the token stream, read as needed */
    struct text_reader *reader;
    int64_t *stream; /* (stream_len) tokens base..base + stream_len of the stream */
    int64_t stream_len, stream_cap, stream_base;
    int64_t token_next;     /* stream position am_dataset_next_tokens returns next */
    int size_known;         /* text: size counted (the stream was read to its end) */
    int text_open;          /* text: opened with at least one window */
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

/* ------------------------------------------------------------- text stream */

/* A text file read in chunks, its entries tokenized as they complete, so no
 * corpus is held whole (a 200 MB file costs about one chunk and one long
 * entry). */
enum { kTextChunk = 1 << 20 };

typedef struct text_reader {
    gzFile f;
    char *path;
    int fortunes; /* entries separated by lines holding a single '%' */
    am_tokenizer *tok;
    char *pend; /* bytes read, not yet split into lines */
    size_t pend_len, pend_cap;
    char *entry; /* the current entry's text */
    size_t entry_len, entry_cap;
    int entry_partial; /* part of the entry has been tokenized already */
    int eof, done;
    int64_t bytes_total;
    /* where tokens go: the dataset's buffer, or only counted */
    am_dataset *ds;
    int64_t counted;
} text_reader;

static int tr_grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 1;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need)
        nc *= 2;
    char *nb = realloc(*buf, nc);
    if (!nb)
        return 0;
    *buf = nb;
    *cap = nc;
    return 1;
}

static int ds_push_tokens(am_dataset *ds, const int64_t *ids, int64_t k)
{
    int64_t need = ds->stream_len + k;
    if (need > ds->stream_cap) {
        int64_t nc = ds->stream_cap ? ds->stream_cap : 4096;
        while (nc < need)
            nc *= 2;
        int64_t *ns = realloc(ds->stream, (size_t)nc * sizeof *ns);
        if (!ns)
            return ds_fail(ds, AM_E_NOMEM, "out of memory holding %lld tokens", (long long)need);
        ds->stream = ns;
        ds->stream_cap = nc;
    }
    memcpy(ds->stream + ds->stream_len, ids, (size_t)k * sizeof *ids);
    ds->stream_len += k;
    return AM_OK;
}

/* Tokenizes text[0..n) and, when `end` and the tokenizer has one, appends
 * <|endoftext|>. */
static int tr_emit(text_reader *r, const char *text, size_t n, int end)
{
    am_dataset *ds = r->ds;
    int64_t *ids;
    size_t k;
    int rc = am__tokenizer_encode_piece(r->tok, text, n, r->entry_partial, &ids, &k);
    if (rc != AM_OK)
        return ds_fail(ds, rc, "tokenizing: %s", am_tokenizer_error(r->tok));
    int64_t eot = am_tokenizer_eot(r->tok);
    int with_eot = end && eot >= 0;
    if (r->counted >= 0) {
        r->counted += (int64_t)k + with_eot;
    } else {
        rc = ds_push_tokens(ds, ids, (int64_t)k);
        if (rc == AM_OK && with_eot)
            rc = ds_push_tokens(ds, &eot, 1);
    }
    free(ids);
    return rc;
}

static int tr_blank(const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t[i] != ' ' && t[i] != '\t' && t[i] != '\n' && t[i] != '\r')
            return 0;
    return 1;
}

/* The entry ends (a separator or the file's end). */
static int tr_end_entry(text_reader *r)
{
    int rc = AM_OK;
    if (!r->fortunes || r->entry_partial || !tr_blank(r->entry, r->entry_len))
        rc = tr_emit(r, r->entry, r->entry_len, 1);
    r->entry_len = 0;
    r->entry_partial = 0;
    return rc;
}

/* A long entry is tokenized up to its last line that starts with a
 * non-space character: byte-level BPE pre-tokenization cuts there anyway,
 * and SentencePiece's words start at a space, so the ids equal those of the
 * whole entry (the pieces after the first are encoded as continuations:
 * without the space SentencePiece prepends to a text). */
static int tr_cut_entry(text_reader *r)
{
    size_t p = r->entry_len;
    while (p > 1) {
        p--;
        char c = r->entry[p];
        if (r->entry[p - 1] == '\n' && c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
    }
    if (p <= 1)
        return AM_OK; /* no cut yet: keep reading the entry */
    int rc = tr_emit(r, r->entry, p, 0);
    memmove(r->entry, r->entry + p, r->entry_len - p);
    r->entry_len -= p;
    r->entry_partial = 1;
    return rc;
}

static int tr_line(text_reader *r, const char *line, size_t n)
{
    size_t m = n && line[n - 1] == '\n' ? n - 1 : n;
    if (m && line[m - 1] == '\r')
        m--;
    if (r->fortunes && m == 1 && line[0] == '%')
        return tr_end_entry(r);
    if (!tr_grow(&r->entry, &r->entry_cap, r->entry_len + n + 1))
        return ds_fail(r->ds, AM_E_NOMEM, "out of memory reading %s", r->path);
    memcpy(r->entry + r->entry_len, line, n);
    r->entry_len += n;
    if (r->entry_len >= kTextChunk)
        return tr_cut_entry(r);
    return AM_OK;
}

/* Reads one chunk and tokenizes what completes; at the file's end, the
 * rest. Sets done when nothing is left. */
static int tr_step(text_reader *r)
{
    if (r->done)
        return AM_OK;
    int rc = AM_OK;
    if (!r->eof) {
        if (!tr_grow(&r->pend, &r->pend_cap, r->pend_len + kTextChunk))
            return ds_fail(r->ds, AM_E_NOMEM, "out of memory reading %s", r->path);
        int got = gzread(r->f, r->pend + r->pend_len, kTextChunk);
        if (got < 0) {
            int zerr;
            return ds_fail(r->ds, AM_E_FORMAT, "%s is not a readable gzip file (%s)", r->path,
                           gzerror(r->f, &zerr));
        }
        if (got == 0)
            r->eof = 1;
        r->pend_len += (size_t)got;
    }
    size_t pos = 0;
    while (rc == AM_OK && pos < r->pend_len) {
        const char *nl = memchr(r->pend + pos, '\n', r->pend_len - pos);
        if (!nl && !r->eof)
            break;
        size_t n = nl ? (size_t)(nl - (r->pend + pos)) + 1 : r->pend_len - pos;
        rc = tr_line(r, r->pend + pos, n);
        pos += n;
    }
    memmove(r->pend, r->pend + pos, r->pend_len - pos);
    r->pend_len -= pos;
    if (rc == AM_OK && r->eof) {
        rc = tr_end_entry(r);
        r->done = 1;
    }
    return rc;
}

static void tr_free(text_reader *r)
{
    if (!r)
        return;
    if (r->f)
        gzclose(r->f);
    free(r->path);
    free(r->pend);
    free(r->entry);
    free(r);
}

static int tr_open(am_dataset *ds, const char *path, int fortunes, am_tokenizer *tok,
                   text_reader **out)
{
    text_reader *r = *out = calloc(1, sizeof *r);
    if (!r)
        return ds_fail(ds, AM_E_NOMEM, "out of memory opening %s", path);
    r->ds = ds;
    r->fortunes = fortunes;
    r->tok = tok;
    r->counted = -1;
    r->path = strdup(path);
    FILE *fp = fopen(path, "rb");
    if (fp) {
        if (fseek(fp, 0, SEEK_END) == 0)
            r->bytes_total = ftell(fp);
        fclose(fp);
    }
    r->f = r->path ? gzopen(path, "rb") : NULL;
    if (!r->f)
        return ds_fail(ds, AM_E_IO, "cannot open %s", path);
    gzbuffer(r->f, 1 << 16);
    return AM_OK;
}

/* Makes tokens [start, end) of the stream available in ds->stream (fewer
 * when the stream ends first); drops those before start. */
static int ds_text_ensure(am_dataset *ds, int64_t start, int64_t end)
{
    if (start < ds->stream_base) { /* behind the buffer: read again from the top */
        text_reader *old = ds->reader, *r;
        int rc = tr_open(ds, old->path, old->fortunes, old->tok, &r);
        if (rc != AM_OK) {
            tr_free(r);
            return rc;
        }
        tr_free(old);
        ds->reader = r;
        ds->stream_base = 0;
        ds->stream_len = 0;
    }
    for (;;) {
        int64_t drop = start - ds->stream_base;
        if (drop > ds->stream_len)
            drop = ds->stream_len;
        if (drop > 0) {
            memmove(ds->stream, ds->stream + drop,
                    (size_t)(ds->stream_len - drop) * sizeof *ds->stream);
            ds->stream_len -= drop;
            ds->stream_base += drop;
        }
        if (ds->stream_base + ds->stream_len >= end || ds->reader->done)
            break;
        int rc = tr_step(ds->reader);
        if (rc != AM_OK)
            return rc;
    }
    if (ds->reader->done && !ds->size_known) {
        int64_t n = ds->stream_base + ds->stream_len;
        ds->size = n >= ds->window ? (n - ds->window) / ds->stride + 1 : 0;
        ds->size_known = 1;
    }
    return AM_OK;
}

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
    /* Encoding only reads the tokenizer's tables; the const is the caller's
     * promise not to free it, not a promise of no internal scratch. */
    am_tokenizer *tok = (am_tokenizer *)o->tokenizer;
    int rc = tr_open(ds, o->path, strcmp(name, "fortunes") == 0, tok, &ds->reader);
    if (rc != AM_OK)
        return rc;
    ds->kind = AM_DATASET_TEXT;
    if ((rc = ds_text_ensure(ds, 0, ds->window)) != AM_OK)
        return rc;
    if (ds->stream_len < ds->window)
        return ds_fail(ds, AM_E_FORMAT, "%s holds %lld tokens, fewer than one window of %lld",
                       o->path, (long long)ds->stream_len, (long long)ds->window);
    ds->text_open = 1;
    return AM_OK;
}

/* The windows of the whole stream, counted by a second reader so the
 * dataset's own position is kept. */
static int ds_text_count(am_dataset *ds)
{
    text_reader *r;
    int rc = tr_open(ds, ds->reader->path, ds->reader->fortunes, ds->reader->tok, &r);
    if (rc == AM_OK) {
        r->counted = 0;
        while (rc == AM_OK && !r->done)
            rc = tr_step(r);
    }
    if (rc == AM_OK) {
        int64_t n = r->counted;
        ds->size = n >= ds->window ? (n - ds->window) / ds->stride + 1 : 0;
        ds->size_known = 1;
    }
    tr_free(r);
    return rc;
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
    tr_free(ds->reader);
    free(ds->batch_tokens);
    free(ds);
}

const char *am_dataset_error(const am_dataset *ds)
{
    return ds ? ds->err : "no dataset (NULL handle; opening ran out of memory)";
}

static int ds_ready(const am_dataset *ds)
{
    return ds && (((ds->pixels || ds->images) && ds->size > 0) || ds->text_open);
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
        for (int64_t i = 0; i < count; i++) {
            int64_t start = (first + i) * ds->stride;
            int rc = ds_text_ensure(ds, start, start + ds->window);
            if (rc != AM_OK)
                return rc;
            if (ds->stream_base + ds->stream_len < start + ds->window) { /* the stream ended */
                count = i;
                break;
            }
            memcpy(ds->batch_tokens + i * ds->window, ds->stream + (start - ds->stream_base),
                   (size_t)ds->window * sizeof *ds->batch_tokens);
        }
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
    /* Text: as many as asked; ds_fill stops at the stream's end. */
    int64_t count = ds->kind == AM_DATASET_TEXT ? max_items : ds->size - ds->next;
    if (count > max_items)
        count = max_items;
    if (count <= 0) {
        batch->first = ds->size;
        return AM_OK;
    }
    int rc = ds_fill(ds, ds->next, count, batch);
    if (rc == AM_OK)
        ds->next += batch->count;
    return rc;
}

int am_dataset_next_tokens(am_dataset *ds, int64_t max_tokens, const int64_t **tokens, int64_t *n,
                           int64_t *bytes_read, int64_t *bytes_total)
{
    if (!ds || !tokens || !n)
        return ds ? ds_fail(ds, AM_E_ARG, "am_dataset_next_tokens: tokens or n is NULL") : AM_E_ARG;
    *tokens = NULL;
    *n = 0;
    if (!ds_ready(ds) || ds->kind != AM_DATASET_TEXT)
        return ds_fail(ds, AM_E_ARG, "am_dataset_next_tokens reads text datasets only");
    if (max_tokens <= 0)
        return ds_fail(ds, AM_E_ARG, "max_tokens is %lld; ask for at least one token",
                       (long long)max_tokens);
    int rc = ds_text_ensure(ds, ds->token_next, ds->token_next + max_tokens);
    if (rc != AM_OK)
        return rc;
    int64_t have = ds->stream_base + ds->stream_len - ds->token_next;
    if (have > max_tokens)
        have = max_tokens;
    if (have > 0) {
        *tokens = ds->stream + (ds->token_next - ds->stream_base);
        *n = have;
        ds->token_next += have;
    }
    if (bytes_read)
        *bytes_read = ds->reader->done ? ds->reader->bytes_total : (int64_t)gzoffset(ds->reader->f);
    if (bytes_total)
        *bytes_total = ds->reader->bytes_total;
    return AM_OK;
}

int am_dataset_item(am_dataset *ds, int64_t index, am_batch *batch)
{
    if (!ds || !batch)
        return ds ? ds_fail(ds, AM_E_ARG, "am_dataset_item: batch is NULL") : AM_E_ARG;
    memset(batch, 0, sizeof *batch);
    if (!ds_ready(ds))
        return ds_fail(ds, AM_E_ARG, "the dataset did not open; free it and open it again");
    if (ds->kind == AM_DATASET_TEXT && !ds->size_known && index >= 0) {
        int rc = ds_fill(ds, index, 1, batch);
        if (rc != AM_OK || batch->count == 1)
            return rc;
        /* past the stream's end: the range for the message below */
        if (!ds->size_known && (rc = ds_text_count(ds)) != AM_OK)
            return rc;
    }
    if (index < 0 || index >= ds->size)
        return ds_fail(ds, AM_E_ARG,
                       "item %lld is out of range: the dataset has items "
                       "0..%lld",
                       (long long)index, (long long)ds->size - 1);
    return ds_fill(ds, index, 1, batch);
}

int64_t am_dataset_size(const am_dataset *ds)
{
    if (!ds)
        return AM_E_ARG;
    if (ds->kind == AM_DATASET_TEXT && ds->text_open && !ds->size_known) {
        /* Counting reads the file once more; the handle's reading position
         * is untouched, so this is logically const. */
        int rc = ds_text_count((am_dataset *)ds);
        if (rc != AM_OK)
            return rc;
    }
    return ds->size;
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
