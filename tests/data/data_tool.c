/* data_tool.c: a command-line window on ext/data for the Python tests, which
 * compare its answers with models/bpe.py and models/fmnist.py.
 *
 *   data_tool encode TOKENIZER.json FILE         ids of FILE's bytes, one line
 *   data_tool encode-each TOKENIZER.json FILE    FILE holds texts separated by NUL
 *                                                bytes: one line of ids per text
 *   data_tool info TOKENIZER.json                vocabulary size, eot, bos, then
 *                                                the family on a second line
 *   data_tool decode TOKENIZER.json              ids on stdin -> bytes on stdout
 *   data_tool token-text TOKENIZER.json ID       a token as printable text
 *   data_tool images DIR SPLIT N                 size, then N labels, then the
 *                                                pixel sums of the first N images
 *   data_tool windows TOKENIZER.json FILE T      size, then every window decoded
 *                                                and concatenated on stdout
 *   data_tool stream TOKENIZER.json FILE         the ids of FILE read as a text
 *                                                dataset (am_dataset_next_tokens,
 *                                                read in chunks), one line
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_data.h"

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    *len = n;
    return buf;
}

static int load_tok(const char *path, am_tokenizer **t)
{
    int rc = am_tokenizer_load_file(path, t);
    if (rc != AM_OK)
        fprintf(stderr, "data_tool: %s\n", am_tokenizer_error(*t));
    return rc;
}

static int cmd_encode(const char *tok_path, const char *file)
{
    am_tokenizer *t;
    if (load_tok(tok_path, &t) != AM_OK) {
        am_tokenizer_free(t);
        return 1;
    }
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "data_tool: cannot open %s\n", file);
        am_tokenizer_free(t);
        return 1;
    }
    size_t len;
    char *text = read_all(f, &len);
    fclose(f);
    int64_t *ids;
    size_t n;
    int rc = am_tokenizer_encode(t, text, len, &ids, &n);
    if (rc != AM_OK)
        fprintf(stderr, "data_tool: %s\n", am_tokenizer_error(t));
    for (size_t i = 0; rc == AM_OK && i < n; i++)
        printf(i ? " %lld" : "%lld", (long long)ids[i]);
    printf("\n");
    free(ids);
    free(text);
    am_tokenizer_free(t);
    return rc != AM_OK;
}

static int cmd_encode_each(const char *tok_path, const char *file)
{
    am_tokenizer *t;
    if (load_tok(tok_path, &t) != AM_OK) {
        am_tokenizer_free(t);
        return 1;
    }
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "data_tool: cannot open %s\n", file);
        am_tokenizer_free(t);
        return 1;
    }
    size_t len;
    char *text = read_all(f, &len);
    fclose(f);
    int rc = text ? AM_OK : AM_E_NOMEM;
    for (size_t pos = 0; rc == AM_OK && pos <= len;) {
        const char *end = memchr(text + pos, '\0', len - pos);
        size_t n = end ? (size_t)(end - (text + pos)) : len - pos;
        int64_t *ids;
        size_t k;
        rc = am_tokenizer_encode(t, text + pos, n, &ids, &k);
        if (rc != AM_OK) {
            fprintf(stderr, "data_tool: %s\n", am_tokenizer_error(t));
            break;
        }
        for (size_t i = 0; i < k; i++)
            printf(i ? " %lld" : "%lld", (long long)ids[i]);
        printf("\n");
        free(ids);
        pos += n + 1;
    }
    free(text);
    am_tokenizer_free(t);
    return rc != AM_OK;
}

static int cmd_info(const char *tok_path)
{
    am_tokenizer *t;
    if (load_tok(tok_path, &t) != AM_OK) {
        am_tokenizer_free(t);
        return 1;
    }
    printf("%lld %lld %lld\n%s\n", (long long)am_tokenizer_vocab_size(t),
           (long long)am_tokenizer_eot(t), (long long)am_tokenizer_bos(t),
           am_tokenizer_describe(t));
    am_tokenizer_free(t);
    return 0;
}

static int cmd_decode(const char *tok_path)
{
    am_tokenizer *t;
    if (load_tok(tok_path, &t) != AM_OK) {
        am_tokenizer_free(t);
        return 1;
    }
    size_t cap = 1024, n = 0;
    int64_t *ids = malloc(cap * sizeof *ids);
    long long v;
    while (ids && scanf("%lld", &v) == 1) {
        if (n == cap) {
            int64_t *ni = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!ni)
                free(ids);
            ids = ni;
            if (!ids)
                break;
        }
        ids[n++] = v;
    }
    char *text;
    size_t len;
    int rc = ids ? am_tokenizer_decode(t, ids, n, &text, &len) : AM_E_NOMEM;
    if (rc == AM_OK) {
        fwrite(text, 1, len, stdout);
        free(text);
    } else {
        fprintf(stderr, "data_tool: %s\n", am_tokenizer_error(t));
    }
    free(ids);
    am_tokenizer_free(t);
    return rc != AM_OK;
}

static int cmd_token_text(const char *tok_path, const char *id)
{
    am_tokenizer *t;
    if (load_tok(tok_path, &t) != AM_OK) {
        am_tokenizer_free(t);
        return 1;
    }
    char buf[256];
    int rc = am_tokenizer_token_text(t, atoll(id), buf, sizeof buf);
    if (rc < 0)
        fprintf(stderr, "data_tool: %s\n", am_tokenizer_error(t));
    else
        printf("%s\n", buf);
    am_tokenizer_free(t);
    return rc < 0;
}

static int cmd_images(const char *dir, const char *split, const char *count)
{
    am_dataset_options o = {0};
    o.path = dir;
    am_dataset *ds;
    if (am_dataset_open("fashion-mnist", split, &o, &ds) != AM_OK) {
        fprintf(stderr, "data_tool: %s\n", am_dataset_error(ds));
        am_dataset_free(ds);
        return 1;
    }
    int64_t n = atoll(count), shape[3];
    am_dataset_item_shape(ds, shape, 3);
    printf("%lld %lld %lld %lld\n", (long long)am_dataset_size(ds), (long long)shape[0],
           (long long)shape[1], (long long)shape[2]);
    am_batch b;
    if (am_dataset_next_batch(ds, n, &b) != AM_OK) {
        fprintf(stderr, "data_tool: %s\n", am_dataset_error(ds));
        am_dataset_free(ds);
        return 1;
    }
    int64_t per = shape[0] * shape[1] * shape[2];
    for (int64_t i = 0; i < b.count; i++)
        printf(i ? " %lld" : "%lld", (long long)b.labels[i]);
    printf("\n");
    for (int64_t i = 0; i < b.count; i++) {
        double s = 0;
        for (int64_t k = 0; k < per; k++)
            s += b.images[i * per + k];
        printf(i ? " %.6f" : "%.6f", s);
    }
    printf("\n");
    am_dataset_free(ds);
    return 0;
}

/* The tokenizer and a text dataset of file (name "fortunes" or "text"); 0,
 * or 1 with the reason on stderr (both freed). */
static int open_text(const char *tok_path, const char *name, const char *file, int64_t window,
                     am_tokenizer **t, am_dataset **ds)
{
    *ds = NULL;
    if (load_tok(tok_path, t) != AM_OK) {
        am_tokenizer_free(*t);
        return 1;
    }
    am_dataset_options o = {0};
    o.path = file;
    o.tokenizer = *t;
    o.window = window;
    if (am_dataset_open(name, "heldout", &o, ds) != AM_OK) {
        fprintf(stderr, "data_tool: %s\n", am_dataset_error(*ds));
        am_dataset_free(*ds);
        am_tokenizer_free(*t);
        return 1;
    }
    return 0;
}

static int cmd_windows(const char *tok_path, const char *file, const char *window)
{
    am_tokenizer *t;
    am_dataset *ds;
    int64_t w = atoll(window);
    int status = open_text(tok_path, "fortunes", file, w, &t, &ds);
    if (status)
        return status;
    fprintf(stderr, "%lld\n", (long long)am_dataset_size(ds));
    am_batch b;
    while (am_dataset_next_batch(ds, 100, &b) == AM_OK && b.count > 0) {
        char *text;
        size_t len;
        if (am_tokenizer_decode(t, b.tokens, (size_t)(b.count * w), &text, &len)) {
            status = 1;
            break;
        }
        fwrite(text, 1, len, stdout);
        free(text);
    }
    am_dataset_free(ds);
    am_tokenizer_free(t);
    return status;
}

static int cmd_stream(const char *tok_path, const char *file)
{
    am_tokenizer *t;
    am_dataset *ds;
    int status = open_text(tok_path, "text", file, 0, &t, &ds);
    if (status)
        return status;
    const int64_t *ids;
    int64_t n, read, total;
    const char *sep = "";
    while (am_dataset_next_tokens(ds, 65536, &ids, &n, &read, &total) == AM_OK && n > 0) {
        for (int64_t i = 0; i < n; i++) {
            printf("%s%lld", sep, (long long)ids[i]);
            sep = " ";
        }
    }
    if (am_dataset_error(ds)[0]) {
        fprintf(stderr, "data_tool: %s\n", am_dataset_error(ds));
        status = 1;
    }
    printf("\n");
    am_dataset_free(ds);
    am_tokenizer_free(t);
    return status;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "encode") == 0)
        return cmd_encode(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "encode-each") == 0)
        return cmd_encode_each(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "info") == 0)
        return cmd_info(argv[2]);
    if (argc == 3 && strcmp(argv[1], "decode") == 0)
        return cmd_decode(argv[2]);
    if (argc == 4 && strcmp(argv[1], "token-text") == 0)
        return cmd_token_text(argv[2], argv[3]);
    if (argc == 5 && strcmp(argv[1], "images") == 0)
        return cmd_images(argv[2], argv[3], argv[4]);
    if (argc == 5 && strcmp(argv[1], "windows") == 0)
        return cmd_windows(argv[2], argv[3], argv[4]);
    if (argc == 4 && strcmp(argv[1], "stream") == 0)
        return cmd_stream(argv[2], argv[3]);
    fprintf(stderr, "usage: data_tool encode TOK FILE | decode TOK | token-text TOK ID | "
                    "images DIR SPLIT N | windows TOK FILE T | stream TOK FILE\n");
    return 2;
}
