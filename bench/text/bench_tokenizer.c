/* bench_tokenizer.c: times the C tokenizer's encode and decode of a file.
 * Prints "encode SECONDS decode SECONDS BYTES TOKENS" for the best of REPEAT
 * runs; bench_tokenizer.py sets these beside models/bpe.py's times. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "am_data.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER.json FILE REPEAT\n");
        return 2;
    }
    am_tokenizer *t;
    if (am_tokenizer_load_file(argv[1], &t) != AM_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", am_tokenizer_error(t));
        am_tokenizer_free(t);
        return 1;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "bench_tokenizer: cannot open %s\n", argv[2]);
        am_tokenizer_free(t);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc(len + 1);
    if (!text || fread(text, 1, len, f) != len) {
        fprintf(stderr, "bench_tokenizer: cannot read %s\n", argv[2]);
        return 1;
    }
    fclose(f);
    int repeat = atoi(argv[3]);
    double best_enc = 1e30, best_dec = 1e30;
    size_t n = 0;
    for (int r = 0; r < repeat; r++) {
        int64_t *ids;
        char *back;
        size_t blen;
        double t0 = now();
        if (am_tokenizer_encode(t, text, len, &ids, &n) != AM_OK)
            return 1;
        double t1 = now();
        if (am_tokenizer_decode(t, ids, n, &back, &blen) != AM_OK)
            return 1;
        double t2 = now();
        best_enc = t1 - t0 < best_enc ? t1 - t0 : best_enc;
        best_dec = t2 - t1 < best_dec ? t2 - t1 : best_dec;
        free(ids);
        free(back);
    }
    printf("encode %.6f decode %.6f %zu %zu\n", best_enc, best_dec, len, n);
    free(text);
    am_tokenizer_free(t);
    return 0;
}
