/* test_data.c: unit tests of ext/data's tokenizer and dataset readers.
 *
 * Usage: test_data TOKENIZER.json HELDOUT.txt FASHION_MNIST_DIR
 * (the first two come from the build's trained tiny-lm). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_data.h"
#include "check.h"

/* The paths the runner is given: main() stores them for the tests. */
static const char *g_tokenizer, *g_heldout, *g_fashion;

/* ----------------------------------------------------------------- helpers */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* Encodes then decodes text; returns 1 when the bytes come back exactly. */
static int round_trips(am_tokenizer *t, const char *text, size_t len, size_t *n_tokens)
{
    int64_t *ids;
    size_t n;
    if (am_tokenizer_encode(t, text, len, &ids, &n) != AM_OK)
        return 0;
    char *back;
    size_t blen;
    int ok = am_tokenizer_decode(t, ids, n, &back, &blen) == AM_OK && blen == len &&
             memcmp(back, text, len) == 0;
    if (ok)
        free(back);
    free(ids);
    if (n_tokens)
        *n_tokens = n;
    return ok;
}

/* GPT-2's bytes_to_unicode, to spell a tiny vocabulary the way GPT-2 does. */
static void byte_char(int b, char *out)
{
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    int cp = b;
    if (!printable) {
        cp = 256;
        for (int k = 0; k < b; k++) {
            int pk = (k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || k >= 0xAE;
            cp += !pk;
        }
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* A tiny GPT-2-layout vocab.json: the 256 bytes (ids 0..255 in byte order),
 * then "Ġt" 256, "he" 257, "Ġthe" 258, "<|endoftext|>" 259. */
static char *tiny_vocab_json(void)
{
    char *s = malloc(16384), *p = s;
    p += sprintf(p, "{");
    for (int b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        int esc = c[0] == '"' || c[0] == '\\';
        p += sprintf(p, "\"%s%s\": %d, ", esc ? "\\" : "", c, b);
    }
    sprintf(p, "\"\\u0120t\": 256, \"he\": 257, \"\\u0120the\": 258, \"<|endoftext|>\": 259}");
    return s;
}

static const char kTinyMerges[] = "#version: 0.2\n\xC4\xA0 t\nh e\n\xC4\xA0t he\n";

/* ------------------------------------------------------------------- tests */

static void test_tiny_gpt2_pair(void)
{
    char *vocab = tiny_vocab_json();
    am_tokenizer *t;
    int rc =
        am_tokenizer_load_vocab_merges(vocab, strlen(vocab), kTinyMerges, strlen(kTinyMerges), &t);
    CHECK_INT(rc, AM_OK);
    if (rc != AM_OK) {
        fprintf(stderr, "  %s\n", am_tokenizer_error(t));
        am_tokenizer_free(t);
        free(vocab);
        return;
    }
    CHECK_INT(am_tokenizer_vocab_size(t), 260);
    CHECK_INT(am_tokenizer_eot(t), 259);
    int64_t *ids;
    size_t n;
    /* " the the" -> "Ġthe" "Ġthe"; "the" alone has no leading space: "t" "he". */
    static const char text[] = "the the<|endoftext|>x";
    CHECK_INT(am_tokenizer_encode(t, text, strlen(text), &ids, &n), AM_OK);
    CHECK_INT(n, 5);
    if (n == 5) {
        CHECK_INT(ids[0], 't');
        CHECK_INT(ids[1], 257);
        CHECK_INT(ids[2], 258);
        CHECK_INT(ids[3], 259);
        CHECK_INT(ids[4], 'x');
    }
    free(ids);
    CHECK(round_trips(t, text, strlen(text), NULL));
    char buf[64];
    CHECK_INT(am_tokenizer_token_text(t, 258, buf, sizeof buf), 4);
    CHECK(strcmp(buf, " the") == 0);
    CHECK_INT(am_tokenizer_token_text(t, '\n', buf, sizeof buf), 2);
    CHECK(strcmp(buf, "\\n") == 0);
    CHECK_INT(am_tokenizer_token_text(t, 0xff, buf, sizeof buf), 4);
    CHECK(strcmp(buf, "\\xff") == 0);
    /* Truncation reports the full length, like snprintf. */
    CHECK_INT(am_tokenizer_token_text(t, 258, buf, 3), 4);
    CHECK(strcmp(buf, " t") == 0);
    CHECK_INT(am_tokenizer_token_id(t, " the", 4), 258);

    /* The same tokenizer in tokenizer.json layout, merges as pairs. */
    size_t vl = strlen(vocab);
    char *json = malloc(vl + 512);
    sprintf(json,
            "{\"added_tokens\": [{\"id\": 259, \"content\": \"<|endoftext|>\", \"special\": true}],"
            " \"model\": {\"type\": \"BPE\", \"vocab\": %s, \"merges\": [[\"\\u0120\", \"t\"], "
            "[\"h\", \"e\"], [\"\\u0120t\", \"he\"]]}}",
            vocab);
    am_tokenizer *t2;
    rc = am_tokenizer_load_json(json, strlen(json), &t2);
    CHECK_INT(rc, AM_OK);
    if (rc == AM_OK) {
        int64_t *ids2;
        size_t n2;
        CHECK_INT(am_tokenizer_encode(t2, text, strlen(text), &ids2, &n2), AM_OK);
        CHECK_INT(n2, 5);
        CHECK(n2 == 5 && ids2[2] == 258 && ids2[3] == 259);
        free(ids2);
    } else {
        fprintf(stderr, "  %s\n", am_tokenizer_error(t2));
    }
    am_tokenizer_free(t2);
    free(json);

    /* A merges.txt line that is not two tokens. */
    am_tokenizer *t3;
    static const char bad_merges[] = "#version: 0.2\nh e\nabc\n";
    CHECK_INT(am_tokenizer_load_vocab_merges(vocab, vl, bad_merges, strlen(bad_merges), &t3),
              AM_E_FORMAT);
    CHECK_HAS(am_tokenizer_error(t3), "merges.txt line 3");
    am_tokenizer_free(t3);
    /* A merge of tokens that are not in the vocabulary. */
    static const char unknown_merges[] = "q zz\n";
    CHECK_INT(
        am_tokenizer_load_vocab_merges(vocab, vl, unknown_merges, strlen(unknown_merges), &t3),
        AM_E_FORMAT);
    CHECK_HAS(am_tokenizer_error(t3), "not in the vocabulary");
    am_tokenizer_free(t3);

    am_tokenizer_free(t);
    free(vocab);
}

/* A SentencePiece-layout tokenizer.json (Llama's): <unk> <s> </s>, the 256
 * byte-fallback tokens, then "\u2581" a b "\u2581a" ab "\u2581ab" with the
 * merges in the given order. */
static char *tiny_spm_json(const char *merges)
{
    char *j = malloc(16384);
    if (!j)
        return NULL;
    int k = sprintf(
        j, "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true},"
           "{\"id\": 1, \"content\": \"<s>\", \"special\": true},"
           "{\"id\": 2, \"content\": \"</s>\", \"special\": true}],"
           "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": ["
           "{\"type\": \"Prepend\", \"prepend\": \"\\u2581\"},"
           "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}]},"
           "\"pre_tokenizer\": null,"
           "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": ["
           "{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
           "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
           "\"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}}},"
           "\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true,"
           "\"byte_fallback\": true, \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2");
    for (int b = 0; b < 256; b++)
        k += sprintf(j + k, ", \"<0x%02X>\": %d", b, 3 + b);
    sprintf(j + k,
            ", \"\\u2581\": 259, \"a\": 260, \"b\": 261, \"\\u2581a\": 262, \"ab\": 263,"
            " \"\\u2581ab\": 264}, \"merges\": [%s]}}",
            merges);
    return j;
}

static void check_ids(am_tokenizer *t, const char *text, const int64_t *want, size_t n_want)
{
    int64_t *ids;
    size_t n;
    CHECK_INT(am_tokenizer_encode(t, text, strlen(text), &ids, &n), AM_OK);
    CHECK_INT(n, n_want);
    for (size_t i = 0; i < n && i < n_want; i++)
        CHECK_INT(ids[i], want[i]);
    free(ids);
}

static void test_tiny_spm(void)
{
    char *j = tiny_spm_json("\"\\u2581 a\", \"a b\", \"\\u2581a b\"");
    am_tokenizer *t;
    CHECK_INT(am_tokenizer_load_json(j, strlen(j), &t), AM_OK);
    CHECK_HAS(am_tokenizer_error(t), "");
    CHECK_INT(am_tokenizer_bos(t), 1);
    CHECK_INT(am_tokenizer_eot(t), 2);
    CHECK_INT(am_tokenizer_vocab_size(t), 265);
    CHECK_HAS(am_tokenizer_describe(t), "SentencePiece-style BPE");
    /* "\u2581 a" ranks first, so "\u2581a" + "b" wins over "\u2581" + "ab". */
    check_ids(t, "ab ab", (const int64_t[]){264, 264}, 2);
    /* "c" and "\xc3\xa9" are not in the vocabulary: their bytes' tokens. */
    check_ids(t, "c\xc3\xa9", (const int64_t[]){259, 3 + 'c', 3 + 0xc3, 3 + 0xa9}, 4);
    check_ids(t, "<s>a", (const int64_t[]){1, 262}, 2);
    check_ids(t, " a", (const int64_t[]){259, 262}, 2);
    check_ids(t, "", NULL, 0);
    CHECK_INT(am_tokenizer_token_id(t, " a", 2), 262);
    CHECK_INT(am_tokenizer_token_id(t, "c", 1), 3 + 'c'); /* a byte token when no other has it */
    CHECK(round_trips(t, " ab  a\n\xff", 8, NULL));
    char *text;
    size_t len;
    CHECK_INT(am_tokenizer_decode(t, (const int64_t[]){1, 262}, 2, &text, &len), AM_OK);
    CHECK(len == 5 && memcmp(text, "<s> a", 5) == 0);
    free(text);
    am_tokenizer_free(t);
    free(j);

    /* The other order: "a b" first leaves "\u2581" + "ab", which no merge joins. */
    j = tiny_spm_json("\"a b\", \"\\u2581 a\", \"\\u2581a b\"");
    CHECK_INT(am_tokenizer_load_json(j, strlen(j), &t), AM_OK);
    check_ids(t, "ab ab", (const int64_t[]){259, 263, 259, 263}, 4);
    am_tokenizer_free(t);
    free(j);
}

static void test_malformed_json(void)
{
    am_tokenizer *t;
    static const char bad[] = "{\"model\": {\"type\": \"BPE\",\n \"vocab\": {\"a\": 1,, }}}";
    CHECK_INT(am_tokenizer_load_json(bad, strlen(bad), &t), AM_E_FORMAT);
    CHECK(t != NULL);
    CHECK_HAS(am_tokenizer_error(t), "malformed JSON at line 2");
    CHECK_HAS(am_tokenizer_error(t), "expected");
    am_tokenizer_free(t);

    static const char truncated[] = "{\"model\": {\"vocab\": {\"a\": 1";
    CHECK_INT(am_tokenizer_load_json(truncated, strlen(truncated), &t), AM_E_FORMAT);
    CHECK_HAS(am_tokenizer_error(t), "end of the input");
    am_tokenizer_free(t);

    static const char no_model[] = "{\"vocab\": {}}";
    CHECK_INT(am_tokenizer_load_json(no_model, strlen(no_model), &t), AM_E_FORMAT);
    CHECK_HAS(am_tokenizer_error(t), "no \"model\" object");
    am_tokenizer_free(t);

    static const char wordpiece[] = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}";
    CHECK_INT(am_tokenizer_load_json(wordpiece, strlen(wordpiece), &t), AM_E_FORMAT);
    CHECK_HAS(am_tokenizer_error(t), "\"WordPiece\" is not supported");
    am_tokenizer_free(t);

    static const char few_bytes[] =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}";
    CHECK_INT(am_tokenizer_load_json(few_bytes, strlen(few_bytes), &t), AM_E_FORMAT);
    CHECK_HAS(am_tokenizer_error(t), "no token for byte 0x00");
    am_tokenizer_free(t);

    CHECK_INT(am_tokenizer_load_file("/nonexistent/tokenizer.json", &t), AM_E_IO);
    CHECK_HAS(am_tokenizer_error(t), "/nonexistent/tokenizer.json");
    am_tokenizer_free(t);
    am_tokenizer_free(NULL);
}

static void test_real_tokenizer(void)
{
    const char *tok_path = g_tokenizer, *heldout_path = g_heldout;
    am_tokenizer *t;
    int rc = am_tokenizer_load_file(tok_path, &t);
    CHECK_INT(rc, AM_OK);
    if (rc != AM_OK) {
        fprintf(stderr, "  %s\n", am_tokenizer_error(t));
        am_tokenizer_free(t);
        return;
    }
    CHECK(am_tokenizer_vocab_size(t) >= 1024 && am_tokenizer_vocab_size(t) <= 8192);
    CHECK(am_tokenizer_eot(t) >= 0);

    /* The empty string: no tokens, and decoding nothing gives "". */
    int64_t *ids;
    size_t n = 99;
    CHECK_INT(am_tokenizer_encode(t, "", 0, &ids, &n), AM_OK);
    CHECK_INT(n, 0);
    CHECK(ids != NULL);
    free(ids);
    char *text;
    size_t len = 99;
    CHECK_INT(am_tokenizer_decode(t, NULL, 0, &text, &len), AM_OK);
    CHECK_INT(len, 0);
    CHECK(text && text[0] == '\0');
    free(text);

    /* Bytes that are not UTF-8 still encode, one byte at a time at worst. */
    static const char bad_utf8[] =
        "caf\xc3\xa9 \xff\xfe x\xc3\x28 \xe2\x82 end\xf0\x9f\x98\x80\x80";
    size_t nt;
    CHECK(round_trips(t, bad_utf8, sizeof bad_utf8 - 1, &nt));
    CHECK(nt > 0);
    static const char nul_bytes[] = "a\0b\0\0c";
    CHECK(round_trips(t, nul_bytes, sizeof nul_bytes - 1, NULL));

    /* An id outside the vocabulary is refused with the valid range. */
    int64_t bad_id = am_tokenizer_vocab_size(t);
    CHECK_INT(am_tokenizer_decode(t, &bad_id, 1, &text, &len), AM_E_ARG);
    CHECK_HAS(am_tokenizer_error(t), "not in the vocabulary (ids 0..");
    CHECK(text == NULL);

    /* The whole held-out text round-trips exactly. */
    char *held = read_file(heldout_path, &len);
    CHECK(held != NULL);
    if (held) {
        CHECK(len > 100000);
        CHECK(round_trips(t, held, len, &nt));
        /* Compression a trained BPE should give on English: >2 bytes/token. */
        CHECK(nt * 2 < len);
        printf("held-out text: %zu bytes -> %zu tokens, round trip exact\n", len, nt);
        free(held);
    }
    am_tokenizer_free(t);
}

static void test_datasets(void)
{
    const char *fashion_dir = g_fashion, *tok_path = g_tokenizer, *heldout_path = g_heldout;
    am_dataset *ds;
    am_dataset_options o = {0};
    o.path = fashion_dir;
    static const char *splits[2] = {"train", "test"};
    static const int64_t sizes[2] = {60000, 10000};
    for (int s = 0; s < 2; s++) {
        int rc = am_dataset_open("fashion-mnist", splits[s], &o, &ds);
        CHECK_INT(rc, AM_OK);
        if (rc != AM_OK) {
            fprintf(stderr, "  %s\n", am_dataset_error(ds));
            am_dataset_free(ds);
            continue;
        }
        CHECK_INT(am_dataset_size(ds), sizes[s]);
        CHECK_INT(am_dataset_kind(ds), AM_DATASET_IMAGE);
        int64_t shape[3] = {0};
        CHECK_INT(am_dataset_item_shape(ds, shape, 3), 3);
        CHECK(shape[0] == 1 && shape[1] == 28 && shape[2] == 28);
        CHECK_INT(am_dataset_num_labels(ds), 10);
        CHECK(strcmp(am_dataset_label(ds, 7), "Sneaker") == 0);
        CHECK(am_dataset_label(ds, 10) == NULL);
        /* Walk the whole split in batches: every item once, pixels in [0, 1]. */
        am_batch b;
        int64_t seen = 0, label_counts[10] = {0};
        int in_range = 1;
        while (am_dataset_next_batch(ds, 4096, &b) == AM_OK && b.count > 0) {
            CHECK_INT(b.first, seen);
            for (int64_t i = 0; i < b.count * 784; i++)
                in_range &= b.images[i] >= 0.0f && b.images[i] <= 1.0f;
            for (int64_t i = 0; i < b.count; i++)
                label_counts[b.labels[i]]++;
            seen += b.count;
        }
        CHECK_INT(seen, sizes[s]);
        CHECK(in_range);
        for (int c = 0; c < 10; c++)
            CHECK_INT(label_counts[c], sizes[s] / 10); /* Fashion-MNIST is balanced */
        CHECK_INT(am_dataset_item(ds, sizes[s], &b), AM_E_ARG);
        CHECK_HAS(am_dataset_error(ds), "out of range");
        CHECK_INT(am_dataset_item(ds, 3, &b), AM_OK);
        CHECK(b.count == 1 && b.first == 3);
        am_dataset_free(ds);
    }

    CHECK_INT(am_dataset_open("fashion-mnist", "validation", &o, &ds), AM_E_ARG);
    CHECK_HAS(am_dataset_error(ds), "use \"train\"");
    am_dataset_free(ds);
    CHECK_INT(am_dataset_open("imagenet", "train", NULL, &ds), AM_E_ARG);
    CHECK_HAS(am_dataset_error(ds), "unknown dataset \"imagenet\"");
    am_dataset_free(ds);
    o.path = "/nonexistent";
    CHECK_INT(am_dataset_open("fashion-mnist", "test", &o, &ds), AM_E_IO);
    CHECK_HAS(am_dataset_error(ds), "dataset-fashion-mnist");
    am_dataset_free(ds);
    CHECK_INT(am_dataset_open("fortunes", "heldout", NULL, &ds), AM_E_ARG);
    CHECK_HAS(am_dataset_error(ds), "needs options.path");
    am_dataset_free(ds);
    am_dataset_free(NULL);

    /* Text windows: T tokens each, consecutive, ids in the vocabulary. */
    am_tokenizer *t;
    if (am_tokenizer_load_file(tok_path, &t) != AM_OK) {
        am_tokenizer_free(t);
        CHECK_FAIL("%s does not load", tok_path);
    }
    am_dataset_options to = {0};
    to.path = heldout_path;
    to.tokenizer = t;
    to.window = 32;
    int rc = am_dataset_open("fortunes", "heldout", &to, &ds);
    CHECK_INT(rc, AM_OK);
    if (rc == AM_OK) {
        CHECK_INT(am_dataset_kind(ds), AM_DATASET_TEXT);
        int64_t shape[1];
        CHECK_INT(am_dataset_item_shape(ds, shape, 1), 1);
        CHECK_INT(shape[0], 32);
        CHECK(am_dataset_size(ds) > 1000);
        am_batch b;
        CHECK_INT(am_dataset_next_batch(ds, 8, &b), AM_OK);
        CHECK_INT(b.count, 8);
        CHECK(b.tokens != NULL && b.images == NULL);
        int ok = 1;
        for (int64_t i = 0; i < 8 * 32; i++)
            ok &= b.tokens[i] >= 0 && b.tokens[i] < am_tokenizer_vocab_size(t);
        CHECK(ok);
        CHECK_INT(am_dataset_next_batch(ds, 0, &b), AM_E_ARG);
    } else {
        fprintf(stderr, "  %s\n", am_dataset_error(ds));
    }
    am_dataset_free(ds);
    am_tokenizer_free(t);
}

static const check_test TESTS[] = {
    {"tiny_gpt2_pair", test_tiny_gpt2_pair},
    {"tiny_spm", test_tiny_spm},
    {"malformed_json", test_malformed_json},
    {"real_tokenizer", test_real_tokenizer},
    {"datasets", test_datasets},
};

/* test_data TOKENIZER.json HELDOUT.txt FASHION_MNIST_DIR [TEST...] */
int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr,
                "usage: test_data TOKENIZER.json HELDOUT.txt FASHION_MNIST_DIR [TEST...]\n");
        return 2;
    }
    g_tokenizer = argv[1];
    g_heldout = argv[2];
    g_fashion = argv[3];
    argv[3] = argv[0]; /* the runner reads test names after its own argv[0] */
    return check_main(TESTS, sizeof TESTS / sizeof TESTS[0], argc - 3, argv + 3);
}
