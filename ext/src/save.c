/* save.c — arrays written as files that NumPy and PyTorch read: .npy
 * (NumPy format 1.0) and .pt (the zip layout of torch.save), in plain C so
 * every front saves results the same way without libtorch headers.
 *
 * References: numpy.lib.format (NEP 1), and torch/serialization.py's
 * _save / _load (a zip of archive/data.pkl, archive/data/0, archive/version).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actmax.h"
#include "errbuf.h"

/* ================================================================ helpers */

static size_t dtype_size(int dtype) { return dtype == AM_DTYPE_INT64 ? 8 : 4; }

static int64_t numel_of(const int64_t *shape, int ndim) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

/* A growable byte buffer. */
typedef struct buf {
    unsigned char *p;
    size_t len, cap;
    int oom;
} buf;

static void put(buf *b, const void *data, size_t len) {
    if (b->oom) return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len) cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void put_str(buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_le(buf *b, uint64_t v, int bytes) {
    unsigned char t[8];
    for (int i = 0; i < bytes; i++) t[i] = (unsigned char)(v >> (8 * i));
    put(b, t, (size_t)bytes);
}

/* ================================================================ .npy */

static void npy_bytes(buf *b, int dtype, const void *data, const int64_t *shape, int ndim) {
    char header[256];
    int h = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     dtype == AM_DTYPE_INT64 ? "<i8" : "<f4");
    for (int i = 0; i < ndim; i++)
        h += snprintf(header + h, sizeof header - (size_t)h, "%lld,%s", (long long)shape[i], i + 1 < ndim ? " " : "");
    h += snprintf(header + h, sizeof header - (size_t)h, "), }");
    /* Magic (6) + version (2) + header length (2) + header, padded with
     * spaces and ended by '\n' to a multiple of 64 so the data is aligned. */
    size_t total = 10 + (size_t)h + 1;
    size_t padded = (total + 63) / 64 * 64;
    put(b, "\x93NUMPY\x01\x00", 8);
    put_le(b, padded - 10, 2);
    put(b, header, (size_t)h);
    for (size_t i = total; i < padded; i++) put(b, " ", 1);
    put(b, "\n", 1);
    put(b, data, (size_t)numel_of(shape, ndim) * dtype_size(dtype));
}

/* ================================================================ .pt (torch.save) */

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

/* Pickle (protocol 2) of
 *   torch._utils._rebuild_tensor_v2(
 *       persistent_id(('storage', torch.FloatStorage, '0', 'cpu', numel)),
 *       0, shape, contiguous strides, False, collections.OrderedDict())
 * which is what torch.save writes for a contiguous CPU tensor. */
static void pickle_int(buf *b, int64_t v) {
    if (v >= 0 && v < 256) {
        put(b, "K", 1);
        put_le(b, (uint64_t)v, 1);
    } else if (v >= -2147483647LL - 1 && v <= 2147483647LL) {
        put(b, "J", 1);
        put_le(b, (uint64_t)(uint32_t)(int32_t)v, 4);
    } else {
        put(b, "\x8a\x08", 2); /* LONG1, 8 bytes little-endian two's complement */
        put_le(b, (uint64_t)v, 8);
    }
}

static void pickle_str(buf *b, const char *s) {
    put(b, "X", 1); /* BINUNICODE */
    put_le(b, strlen(s), 4);
    put_str(b, s);
}

static void pickle_tensor(buf *b, int dtype, const int64_t *shape, int ndim) {
    put(b, "\x80\x02", 2);
    put_str(b, "ctorch._utils\n_rebuild_tensor_v2\n");
    put(b, "(", 1);
    put(b, "(", 1);
    pickle_str(b, "storage");
    put_str(b, dtype == AM_DTYPE_INT64 ? "ctorch\nLongStorage\n" : "ctorch\nFloatStorage\n");
    pickle_str(b, "0");
    pickle_str(b, "cpu");
    pickle_int(b, numel_of(shape, ndim));
    put(b, "tQ", 2); /* TUPLE, BINPERSID */
    pickle_int(b, 0);
    put(b, "(", 1);
    for (int i = 0; i < ndim; i++) pickle_int(b, shape[i]);
    put(b, "t", 1);
    put(b, "(", 1);
    for (int i = 0; i < ndim; i++) {
        int64_t stride = 1;
        for (int k = i + 1; k < ndim; k++) stride *= shape[k];
        pickle_int(b, stride);
    }
    put(b, "t", 1);
    put(b, "\x89", 1); /* NEWFALSE: requires_grad */
    put_str(b, "ccollections\nOrderedDict\n)R");
    put(b, "tR.", 3);
}

typedef struct zip_entry {
    const char *name;
    const unsigned char *data;
    size_t len;
    uint32_t crc;
    size_t offset;
} zip_entry;

/* A stored (uncompressed) zip whose entries' data start on 64-byte
 * boundaries, as PyTorch's writer does (so the reader may map them). */
static void zip_bytes(buf *b, zip_entry *e, int n) {
    for (int i = 0; i < n; i++) {
        e[i].crc = crc32_of(e[i].data, e[i].len);
        e[i].offset = b->len;
        size_t name_len = strlen(e[i].name);
        size_t start = b->len + 30 + name_len + 4;
        size_t pad = (64 - start % 64) % 64;
        put_le(b, 0x04034b50, 4);
        put_le(b, 20, 2); /* version needed */
        put_le(b, 0, 2);  /* flags */
        put_le(b, 0, 2);  /* stored */
        put_le(b, 0, 4);  /* time, date */
        put_le(b, e[i].crc, 4);
        put_le(b, e[i].len, 4);
        put_le(b, e[i].len, 4);
        put_le(b, name_len, 2);
        put_le(b, 4 + pad, 2);
        put_str(b, e[i].name);
        put_le(b, 0x4246, 2); /* an extra field of padding, id "FB" as PyTorch's */
        put_le(b, pad, 2);
        for (size_t k = 0; k < pad; k++) put(b, "Z", 1);
        put(b, e[i].data, e[i].len);
    }
    size_t cd = b->len;
    for (int i = 0; i < n; i++) {
        put_le(b, 0x02014b50, 4);
        put_le(b, 20, 2);
        put_le(b, 20, 2);
        put_le(b, 0, 2);
        put_le(b, 0, 2);
        put_le(b, 0, 4);
        put_le(b, e[i].crc, 4);
        put_le(b, e[i].len, 4);
        put_le(b, e[i].len, 4);
        put_le(b, strlen(e[i].name), 2);
        put_le(b, 0, 2); /* extra */
        put_le(b, 0, 2); /* comment */
        put_le(b, 0, 2); /* disk */
        put_le(b, 0, 2); /* internal attributes */
        put_le(b, 0, 4); /* external attributes */
        put_le(b, e[i].offset, 4);
        put_str(b, e[i].name);
    }
    size_t cd_len = b->len - cd;
    put_le(b, 0x06054b50, 4);
    put_le(b, 0, 2);
    put_le(b, 0, 2);
    put_le(b, (uint64_t)n, 2);
    put_le(b, (uint64_t)n, 2);
    put_le(b, cd_len, 4);
    put_le(b, cd, 4);
    put_le(b, 0, 2);
}

static void pt_bytes(buf *b, int dtype, const void *data, const int64_t *shape, int ndim) {
    buf pkl = {0};
    pickle_tensor(&pkl, dtype, shape, ndim);
    zip_entry e[] = {
        {"archive/data.pkl", pkl.p, pkl.len, 0, 0},
        {"archive/byteorder", (const unsigned char *)"little", 6, 0, 0},
        {"archive/data/0", data, (size_t)numel_of(shape, ndim) * dtype_size(dtype), 0, 0},
        {"archive/version", (const unsigned char *)"3\n", 2, 0, 0},
    };
    b->oom |= pkl.oom;
    zip_bytes(b, e, (int)(sizeof e / sizeof e[0]));
    free(pkl.p);
}

/* ================================================================ the entry */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int am_array_save(const char *path, int dtype, const void *data, const int64_t *shape, int ndim, char *err, size_t n) {
    if (err && n) err[0] = '\0';
    if (!path || !data || !shape || ndim < 0 || ndim > AM_MAX_DIMS)
        return fail(err, n, AM_E_ARG, "am_array_save needs a path, data and 0..%d dims", AM_MAX_DIMS);
    if (dtype != AM_DTYPE_FLOAT32 && dtype != AM_DTYPE_INT64)
        return fail(err, n, AM_E_ARG, "dtype must be AM_DTYPE_FLOAT32 or AM_DTYPE_INT64");
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) return fail(err, n, AM_E_ARG, "dimension %d is negative (%lld)", i, (long long)shape[i]);
    int pt = ends_with(path, ".pt") || ends_with(path, ".pth");
    if (!pt && !ends_with(path, ".npy"))
        return fail(err, n, AM_E_ARG,
                    "%s: an array is saved as .npy (NumPy) or .pt (torch.load); give one of "
                    "those extensions",
                    path);
    buf b = {0};
    if (pt)
        pt_bytes(&b, dtype, data, shape, ndim);
    else
        npy_bytes(&b, dtype, data, shape, ndim);
    if (b.oom) {
        free(b.p);
        return fail(err, n, AM_E_NOMEM, "out of memory while writing %s", path);
    }
    if (pt && b.len > 0xFFFFFFFFu) {
        free(b.p);
        return fail(err, n, AM_E_ARG, "%s: arrays over 4 GiB are not written as .pt", path);
    }
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b.p, 1, b.len, f) == b.len;
    int saved = errno;
    if (f && fclose(f) != 0) ok = 0;
    free(b.p);
    if (!ok) return fail(err, n, AM_E_IO, "cannot write %s: %s", path, strerror(saved));
    return AM_OK;
}
