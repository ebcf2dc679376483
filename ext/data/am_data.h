/* am_data.h: the byte-level BPE tokenizer and the dataset readers behind the
 * built-in models (fashion-cnn, tiny-lm) and %examples. C11; depends on libc
 * and zlib only, so it builds without libtorch.
 *
 * Conventions (those of actmax.h):
 *   - Every call returns an int status: AM_DATA_OK (0) or a negative
 *     AM_DATA_E_* code, numerically equal to actmax.h's AM_E_* codes.
 *   - Constructors fill their out-pointer even on failure (unless memory ran
 *     out), so the caller can read the message with *_errmsg; then free it.
 *   - Destructors accept NULL.
 *   - Buffers returned through `T **` out-pointers are malloc'ed and the
 *     caller frees them with free(); `const T **` ones belong to the handle.
 */
#ifndef AM_DATA_H
#define AM_DATA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    AM_DATA_OK       = 0,
    AM_DATA_E_ARG    = -1,  /* NULL argument, unknown name or split, id out of range */
    AM_DATA_E_IO     = -2,  /* file missing or unreadable */
    AM_DATA_E_FORMAT = -3,  /* malformed JSON, bad vocabulary, bad IDX file */
    AM_DATA_E_NOMEM  = -9   /* allocation failed */
};

/* A fixed, static English string per status code; never NULL. */
const char *am_data_strerror(int status);

/* ------------------------------------------------------------- tokenizer */

/* A GPT-2-style byte-level BPE tokenizer: GPT-2's pre-tokenization regex,
 * its bytes-to-unicode vocabulary alphabet, merges applied by rank. Any byte
 * string encodes (bytes that are not valid UTF-8 form pieces of their own);
 * decoding returns bytes. Added tokens such as <|endoftext|> are split out of
 * the text before pre-tokenization. */
typedef struct am_tokenizer am_tokenizer;

/* From the Hugging Face tokenizer.json layout:
 * {"model": {"type": "BPE", "vocab": {token: id}, "merges": ["a b", ...] or
 * [["a", "b"], ...]}, "added_tokens": [{"id": .., "content": ..}, ...]}. */
int am_tokenizer_load_json(const char *json, size_t len, am_tokenizer **out);

/* From GPT-2's original pair of files: vocab.json ({token: id}) and
 * merges.txt (one "a b" per line, an optional "#version" first line).
 * "<|endoftext|>", when in the vocabulary, is treated as an added token. */
int am_tokenizer_load_vocab_merges(const char *vocab_json, size_t vocab_len,
                                   const char *merges_txt, size_t merges_len,
                                   am_tokenizer **out);

/* Reads a tokenizer.json file. */
int am_tokenizer_load_file(const char *path, am_tokenizer **out);

void am_tokenizer_free(am_tokenizer *t);

/* The last error on t, "" when none; a fixed message for t == NULL. */
const char *am_tokenizer_errmsg(const am_tokenizer *t);

/* One more than the largest token id. */
int64_t am_tokenizer_vocab_size(const am_tokenizer *t);

/* The id of <|endoftext|>, or -1 when the vocabulary has none. */
int64_t am_tokenizer_eot(const am_tokenizer *t);

/* text[0..len) -> *ids (n), malloc'ed (free() it; non-NULL even when n is 0). */
int am_tokenizer_encode(am_tokenizer *t, const char *text, size_t len,
                        int64_t **ids, size_t *n);

/* ids (n) -> *text (len bytes plus a NUL), malloc'ed. An id out of range
 * fails with AM_DATA_E_ARG and names the id and the valid range. */
int am_tokenizer_decode(am_tokenizer *t, const int64_t *ids, size_t n,
                        char **text, size_t *len);

/* The raw bytes of one token, owned by t. */
int am_tokenizer_token_bytes(const am_tokenizer *t, int64_t id,
                             const char **bytes, size_t *len);

/* A token's bytes as printable text, like snprintf: writes at most size
 * bytes including the NUL into buf and returns the full length (or a
 * negative status). Valid printable UTF-8 is kept; \n \t \r and backslash
 * become \n \t \r \\; any other byte becomes \xNN. */
int am_tokenizer_token_text(const am_tokenizer *t, int64_t id, char *buf, size_t size);

/* The id of the token whose bytes are bytes[0..len), or -1. */
int64_t am_tokenizer_token_id(const am_tokenizer *t, const char *bytes, size_t len);

/* --------------------------------------------------------------- datasets */

typedef struct am_dataset am_dataset;

enum { AM_DATASET_IMAGE = 0, AM_DATASET_TEXT = 1 };  /* am_dataset_kind() */

typedef struct am_dataset_options {
    /* fashion-mnist: directory of the IDX .gz files (NULL: the environment
     *   variable ACTMAX_FASHION_MNIST, else /usr/share/datasets/fashion-mnist).
     * fortunes: the held-out file written by the build
     *   (share/actmax/data/fortunes-heldout.txt), fortune layout: entries
     *   separated by lines holding a single '%'. Required.
     * text: any text file, one entry. Required. */
    const char *path;
    /* Text datasets: the model's tokenizer (required; must outlive the
     * dataset). */
    const am_tokenizer *tokenizer;
    int64_t window;   /* text: tokens per window T; 0 means 64 */
    int64_t stride;   /* text: tokens between window starts; 0 means window */
} am_dataset_options;

/* One batch; its buffers belong to the dataset and stay valid until the next
 * am_dataset_next_batch / am_dataset_item / am_dataset_free on it.
 * B = items in the batch, C/H/W = image channels/height/width, T = window. */
typedef struct am_batch {
    int64_t count;           /* B; 0 once the dataset is exhausted */
    int64_t first;           /* dataset index of item 0; item b is first + b */
    const float *images;     /* image: (B, C, H, W) in [0, 1]; NULL for text */
    const int64_t *labels;   /* image: (B) class indices; NULL for text */
    const int64_t *tokens;   /* text: (B, T) token ids; NULL for images */
} am_batch;

/* name: "fashion-mnist" (split "train" 60000 or "test" 10000 images),
 * "fortunes" (split "heldout"; "test" is a synonym), or "text" (split
 * ignored). Text datasets are the tokens of every entry, each followed by
 * <|endoftext|> when the tokenizer has it, concatenated and cut into windows
 * [i*stride, i*stride + T) of which only whole ones count. opts may be NULL
 * for fashion-mnist. */
int am_dataset_open(const char *name, const char *split, const am_dataset_options *opts,
                    am_dataset **out);
void am_dataset_free(am_dataset *ds);
const char *am_dataset_errmsg(const am_dataset *ds);

/* Fills batch with up to max_items items following the previous batch. */
int am_dataset_next_batch(am_dataset *ds, int64_t max_items, am_batch *batch);
/* Starts the iteration over. */
int am_dataset_reset(am_dataset *ds);
/* A batch of the one item at index (for showing top-k examples). */
int am_dataset_item(am_dataset *ds, int64_t index, am_batch *batch);

int64_t am_dataset_size(const am_dataset *ds);             /* items, or a negative status */
int am_dataset_kind(const am_dataset *ds);                 /* AM_DATASET_* or a negative status */
/* One item's shape: (C, H, W) for images, (T) for text; returns the number
 * of dims or a negative status. */
int am_dataset_item_shape(const am_dataset *ds, int64_t *shape, int max);
int am_dataset_num_labels(const am_dataset *ds);           /* 0 for text */
const char *am_dataset_label(const am_dataset *ds, int i); /* NULL when out of range */

#ifdef __cplusplus
}
#endif

#endif
