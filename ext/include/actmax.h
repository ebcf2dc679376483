/* actmax.h — the C interface of libactmax, the activation-maximization engine.
 *
 * This header is the specification: every exported function is documented
 * here and nothing else is public. It is plain C (C11 and C++ compatible) so
 * the Jupyter kernel can dlopen libactmax.so and call it without any C++.
 *
 * Conventions
 *   - Every call returns an int status: AM_OK (0) or a negative AM_E_* code,
 *     one family for the whole library (the tokenizer and dataset readers
 *     included). am_strerror(code) gives a fixed string per code.
 *   - The detailed message of the last failure is kept on the handle it
 *     happened on and read with am_<thing>_error(handle): am_model_error,
 *     am_run_error, am_text_run_error, am_examples_error,
 *     am_tokenizer_error, am_dataset_error. Each
 *     returns "" when the handle has had no failure and a fixed message for
 *     a NULL handle; never NULL.
 *   - Constructors fill *out even on failure (unless out itself is NULL), so
 *     the caller can read the message and must then free the handle.
 *   - Destructors accept NULL.
 *   - Pointers returned by accessors are owned by the handle and stay valid
 *     until the handle is freed (or, for am_model, until the next call that
 *     says it invalidates them). am_tensor values filled by the library are
 *     owned by the caller and released with am_tensor_release.
 *   - Shapes are int64_t arrays, row-major, batch first.
 *   - No function ever aborts the process on bad input; libtorch exceptions
 *     are caught at the boundary and turned into status codes.
 *
 * Legend for shapes: B = batch, C = channels, H = height, W = width,
 * T = tokens, D = embedding width, S = steps.
 */
#ifndef ACTMAX_H
#define ACTMAX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define AM_API __attribute__((visibility("default")))
#else
#define AM_API
#endif

/* ---------------------------------------------------------------- versions */

/* AM_VERSION ("major.minor.patch") and AM_API_VERSION come from the build
 * (CMake writes actmax_version.h from the project's version). AM_API_VERSION
 * changes whenever a function, a struct layout or a meaning in this header
 * changes, so a front built against one header refuses an engine built from
 * another instead of calling it with the wrong layout. */
#include "actmax_version.h"

/* ---------------------------------------------------------------- status */

/* Every status code, its value, its fixed message and the name of the error
 * class a front shows for it (the kernel's "ObjectiveError: ...", the Python
 * module's exception classes), listed once: the enum, am_strerror and
 * am_status_class are all generated from this list. */
/* One row per status, aligned as a table. */
/* clang-format off */
#define AM_STATUS_MAP(X)                                                      \
    X(OK,            0, "ok", "")                                             \
    /* a NULL handle, a bad size, an option out of range */                   \
    X(E_ARG,        -1, "invalid argument", "ValueError")                     \
    /* file missing or unreadable */                                          \
    X(E_IO,         -2, "file missing or unreadable", "OSError")              \
    /* not a TorchScript file, bad actmax.json, tokenizer or dataset file */  \
    X(E_FORMAT,     -3, "malformed model, metadata or data file", "FormatError") \
    /* the model's forward failed or has an unusable shape */                 \
    X(E_MODEL,      -4, "the model failed to run", "ModelError")              \
    /* unknown layer, call number or tuple element */                         \
    X(E_LAYER,      -5, "unknown layer", "LayerError")                        \
    /* objective syntax error, index out of range, unknown label */           \
    X(E_OBJECTIVE,  -6, "invalid objective", "ObjectiveError")                \
    /* a request the model cannot serve (e.g. no embedding) */                \
    X(E_UNSUPPORTED,-7, "not supported by this model", "UnsupportedError")    \
    /* device unknown or not available */                                     \
    X(E_DEVICE,     -8, "device not available", "DeviceError")                \
    /* allocation failed */                                                   \
    X(E_NOMEM,      -9, "out of memory", "MemoryError")                       \
    /* an unexpected libtorch or C++ failure */                               \
    X(E_INTERNAL,  -10, "internal error", "EngineError")

enum {
#define AM_STATUS_ENUM(name, value, text, cls) AM_##name = value,
    AM_STATUS_MAP(AM_STATUS_ENUM)
#undef AM_STATUS_ENUM
    AM_STATUS_END_ = 1
};
/* clang-format on */

/* A fixed, static English string per status code ("unknown status code" for
 * any other value); never NULL. */
AM_API const char *am_strerror(int status);

/* The error class name for a status ("ObjectiveError" for AM_E_OBJECTIVE, ""
 * for AM_OK, "EngineError" for any unknown value); never NULL. */
AM_API const char *am_status_class(int status);

/* The library version, AM_VERSION of the build that made it. */
AM_API const char *am_version(void);

/* Which BLAS libtorch's matrix products resolved to. Runs one small matmul
 * (so the library is loaded), then looks in /proc/self/maps for the
 * libblas/openblas shared object in use (GPU BLAS libraries are skipped).
 * Writes a NUL-terminated path, "MKL (linked into libtorch)" for builds with
 * MKL inside, or "unknown" to buf (size n). *optimized (may be NULL) is set
 * to 1 for OpenBLAS, BLIS or MKL, 0 for the reference BLAS or unknown. */
AM_API int am_blas_info(char *buf, size_t n, int *optimized);

/* Bytes the engine may still take on device ("cpu", "cuda", "cuda:1"; NULL
 * means "cpu"): what runs, scans and loads are checked against before they
 * allocate. On the CPU, /proc/meminfo's MemAvailable lowered by the cgroup's
 * limit. On CUDA, the driver's free memory (libcuda.so.1, loaded at run
 * time, or the library $ACTMAX_LIBCUDA names) plus the largest run estimate
 * already checked on that device in this process (libtorch keeps what a run
 * freed in its cache, where the driver counts it as used). Both lowered by
 * $ACTMAX_MEMORY_LIMIT (bytes, or 512M, 8G). *bytes = -1 where it cannot be
 * known (CUDA without a driver and no limit set). AM_E_ARG for another
 * device name. */
AM_API int am_memory_available(const char *device, double *bytes);

/* ---------------------------------------------------------------- tensors */

#define AM_MAX_DIMS 8

/* A dense float32 array, row-major. Filled by the library, owned by the
 * caller: release with am_tensor_release (which accepts an empty tensor). */
typedef struct am_tensor {
    float *data;                /* (numel) */
    int64_t shape[AM_MAX_DIMS]; /* (ndim) */
    int ndim;
} am_tensor;

/* Frees t->data and zeroes t. Accepts NULL and already-released tensors. */
AM_API void am_tensor_release(am_tensor *t);

/* ---------------------------------------------------------------- models */

typedef struct am_model am_model;

/* Loads a TorchScript file (traced or scripted) onto device ("cpu", "cuda",
 * "cuda:1", or "auto": CUDA when libtorch reports it available, else the
 * CPU; NULL means "cpu"). am_model_device then names the device chosen.
 *
 * Metadata comes from the optional extra file actmax.json:
 *   {"kind": "image"|"text", "input": [C,H,W] or [T], "mean": [...],
 *    "std": [...], "range": [lo, hi], "labels": [...], "dataset": "...",
 *    "tokenizer": "<name of another extra file>", "vocab_size": N,
 *    "context": T}
 * input_shape (without batch dimension; may be NULL when ndim is 0)
 * overrides the metadata's "input". Without metadata an image model needs
 * input_shape; 3-channel inputs then default to the ImageNet mean/std and
 * other channel counts to mean 0, std 1, which am_model_note reports.
 *
 * The module is put in eval mode and its parameters stop requiring grad.
 * One probe forward on zeros of the declared shape checks that it runs.
 * *out is always set when out is non-NULL; free it with am_model_free. */
AM_API int am_model_load(const char *path, const char *device, const int64_t *input_shape,
                         int input_ndim, am_model **out);
AM_API void am_model_free(am_model *m);

/* Everything am_model_load takes, and a model from memory or with metadata
 * given by the caller (a front that holds a module, such as the Python
 * module with a torch.jit.ScriptModule). Zero-initialize, then set: */
typedef struct am_model_load_options {
    const char *path;           /* a TorchScript file; or NULL with data: */
    const void *data;           /* a TorchScript archive in memory, as torch.jit.save */
    size_t len;                 /*   writes it to a file or an io.BytesIO (copied) */
    const char *device;         /* as am_model_load */
    const int64_t *input_shape; /* as am_model_load: overrides the metadata's "input" */
    int input_ndim;
    /* A JSON object whose keys set or override the archive's actmax.json
     * ("input", "mean", "std", "range", "labels", "kind", "dataset",
     * "context", "tokenizer"); NULL or "" for none. */
    const char *metadata;
} am_model_load_options;

/* am_model_load with options: exactly one of path and data. Bad metadata
 * JSON fails with AM_E_FORMAT naming "metadata" and the line and column.
 * *out is always set when out is non-NULL; free it with am_model_free. */
AM_API int am_model_load_with(const am_model_load_options *o, am_model **out);

/* The detailed message of the last failure on m ("" if none). */
AM_API const char *am_model_error(const am_model *m);

/* Human-readable notes about defaults taken at load ("" if none). */
AM_API const char *am_model_note(const am_model *m);

/* "image" or "text". */
AM_API const char *am_model_kind(const am_model *m);

/* The device the model lives on, e.g. "cpu". */
AM_API const char *am_model_device(const am_model *m);

/* Input shape without batch: writes up to max dims to shape, returns the
 * number of dims (or a negative status). */
AM_API int am_model_input_shape(const am_model *m, int64_t *shape, int max);

/* Per-channel normalization (count = channels; 0 for text models) and the
 * value range [lo, hi] of the un-normalized input (default [0, 1]). */
AM_API int am_model_normalization(const am_model *m, const float **mean, const float **std,
                                  int *count, float range[2]);

/* Class labels from the metadata: count, and the i-th (NULL if out of range). */
/* Parameters of the model, each shared tensor (a tied embedding and
 * unembedding) counted once; a negative status on failure. */
AM_API int64_t am_model_num_params(const am_model *m);

AM_API int am_model_num_labels(const am_model *m);
AM_API const char *am_model_label(const am_model *m, int i);

/* The "dataset" field of the metadata ("" if absent): a name, or for an
 * object {"path": ..., "labels": [...]} (the model's own images: a PNG
 * folder, .npy or .pt file; labels name their class indices) the path,
 * resolved against the model file's folder when relative. */
AM_API const char *am_model_dataset(const am_model *m);

/* The bytes of the tokenizer extra file named by the metadata's "tokenizer"
 * field, for the tokenizer code to parse. *bytes points into memory owned by
 * m. Returns AM_E_UNSUPPORTED if the model carries none. */
AM_API int am_model_tokenizer(const am_model *m, const char **bytes, size_t *len);

/* ---------------------------------------------------------------- layers */

typedef struct am_layer_info {
    const char *name;           /* module path, e.g. "layer3.1.conv2" */
    const char *type;           /* module class, e.g. "Conv2d" */
    int64_t params;             /* parameters owned by the module and its children */
    int calls;                  /* how many times forward calls it */
    int ndim;                   /* dims of the output of its last call, batch included */
    int64_t shape[AM_MAX_DIMS]; /* (ndim); 0 dims if not a tensor */
} am_layer_info;

/* Lists the model's modules in execution order (order of first call),
 * running one probe forward (batch 1) to learn output shapes. Returns the
 * count (>= 0) or a negative status. */
AM_API int am_model_num_layers(am_model *m);

/* Fills *info for layer i (0-based, execution order). Strings are owned by m. */
AM_API int am_model_layer(am_model *m, int i, am_layer_info *info);

/* ---------------------------------------------------------------- taps */

/* Layer names accepted wherever a layer is named:
 *   path          the module's output on its last call ("layer1.0.relu")
 *   path#k        its output on call k (1-based): "layer1.0.relu#1"
 *   path:j        element j (0-based) when the module returns a tuple
 *   output        the model's own output (unless a module has that name)
 * An unknown name fails with AM_E_LAYER and a message listing the closest
 * module paths by edit distance.
 *
 * Taps are read by editing the TorchScript graph: the tapped values become
 * the graph's outputs and everything after the deepest one is removed, so
 * no hooks are needed and early layers cost a fraction of a full forward.
 * Compiled tap graphs are cached per set of layers. */

/* How the input of a forward is given. */
enum {
    AM_INPUT_FLOAT = 0,  /* images or any float input: (B, ...input shape) */
    AM_INPUT_TOKENS = 1, /* token ids as int64_t: (B, T) */
    AM_INPUT_EMBEDS = 2  /* continuous embeddings for text models: (B, T, D) */
};

typedef struct am_input {
    int kind;                   /* AM_INPUT_* */
    const float *data;          /* for FLOAT and EMBEDS: (numel) */
    const int64_t *tokens;      /* for TOKENS: (B*T) */
    int64_t shape[AM_MAX_DIMS]; /* (ndim) batch first */
    int ndim;
} am_input;

/* Runs the model on input and returns the activations of n layers into
 * outs[0..n-1] (caller releases each). If grad is non-NULL, also returns the
 * gradient of sum_i sum(outs[i]) with respect to the input (FLOAT and EMBEDS
 * inputs only), shaped like the input. */
AM_API int am_model_tap(am_model *m, const am_input *input, const char *const *layers, int n,
                        am_tensor *outs, am_tensor *grad);

/* The objective of an optimization run (the language of am_options's
 * objectives: indices, slices, "labels", averaging over the dimensions left,
 * + - * / by numbers, unary minus, parentheses) evaluated on each of the B
 * items of a FLOAT (or, for text models, TOKENS or EMBEDS) input batch,
 * without gradients: writes values[0..B-1], B = input->shape[0]. The model
 * runs up to the deepest layer the objective reads, as for am_model_tap; the
 * input is what the model takes (already normalized, no transforms). Gives the
 * same number as a run's objective for that image (am_run_final) or prompt
 * (am_text_run_activation).
 * diversity(...) compares the items of a batch with each other, so it is
 * refused (AM_E_OBJECTIVE). Syntax errors, indices out of range and unknown
 * labels: AM_E_OBJECTIVE with the objective and a caret under the column;
 * unknown layers: AM_E_LAYER with the closest names; messages via
 * am_model_error. values is left unspecified on failure. */
AM_API int am_model_objective(am_model *m, const am_input *input, const char *objective,
                              float *values);

/* Text models: the objective at each token, for per-token colouring.
 * values (B, T) row-major, T = input->shape[1]: for position t, t stands in
 * for the first index (the position) of every layer reference, or selects
 * position t of a layer referenced without indices; the rest as in
 * am_model_objective. One forward for all positions. AM_E_UNSUPPORTED for
 * image models and FLOAT inputs. */
AM_API int am_model_objective_positions(am_model *m, const am_input *input, const char *objective,
                                        float *values);

/* A sweep over units: the objective once per index of its one slice, e.g.
 * "conv2[0:16]" -> "conv2[0]", "conv2[1]", ..., "conv2[15]" (the slice's
 * text replaced, the rest of the objective kept: "conv2[2:4] - 0.1*conv1"
 * -> "conv2[2] - 0.1*conv1", ...). Bounds left out or negative are resolved
 * on the layer's shape from one probe forward. Pass the results as the
 * objectives of one run (one image per unit). *units (malloc'ed, free() it)
 * holds the *count objectives one after the other, each NUL-terminated.
 * AM_E_OBJECTIVE (caret under the column) when the objective has no slice
 * or more than one, or the slice is empty; AM_E_ARG for more than 1024
 * units; AM_E_LAYER for an unknown layer. */
AM_API int am_objective_each(am_model *m, const char *objective, char **units, int *count);

/* ---------------------------------------------------------------- text models */

/* Prepares the model to be driven by embeddings: finds the aten::embedding
 * lookup fed by the token-id input and replaces it with a new input. Fills
 * *matrix (may be NULL) with the embedding matrix (vocab, D). Afterwards
 * AM_INPUT_EMBEDS inputs are accepted by am_model_tap. Returns
 * AM_E_UNSUPPORTED when no such lookup exists. */
AM_API int am_model_embeddings(am_model *m, am_tensor *matrix);

/* The logit lens of an MLP neuron (text models): neuron n's output direction
 * (column n of the MLP's output projection, what the neuron adds to the
 * residual stream per unit of activation) times the unembedding, one value
 * per token of the vocabulary, as TransformerLens' W_out[n] @ W_U.
 * layer is the MLP's hidden activation as a module path (e.g.
 * "blocks.1.mlp.act"). The output projection is the first Linear module
 * after it among its parent's children whose input width is the layer's
 * (GPT-2's c_proj, Llama's down_proj, OPT's fc2); the unembedding is the
 * last Linear module of the model with a (vocab, D) weight (lm_head), else
 * the token embedding matrix (an unembedding tied as x @ E^T). No bias and
 * no final norm are applied (a norm's gain is not folded in).
 * Writes the k highest values and their token ids (highest first) and the
 * k lowest (lowest first) to the four arrays of k (may be NULL when k is 0)
 * and, when all is non-NULL, every token's value (vocab) to *all.
 * AM_E_UNSUPPORTED for an image model or a layer without such an output
 * projection or a model without an unembedding; AM_E_LAYER for a name that
 * is no module; AM_E_ARG for a neuron out of range or k above the vocabulary. */
AM_API int am_logit_lens(am_model *m, const char *layer, int64_t neuron, int k, int64_t *top_ids,
                         float *top_values, int64_t *bottom_ids, float *bottom_values,
                         am_tensor *all);

/* ---------------------------------------------------------------- tokenizer and datasets
 *
 * The byte-level BPE tokenizer and the dataset readers (C, libc + zlib; also
 * built alone as the static library actmax_data, whose header am_data.h is
 * this header). Buffers returned through `T **` out-pointers are malloc'ed
 * and freed by the caller with free(); `const T **` ones belong to the handle.
 * Statuses are the AM_E_* codes above: AM_E_ARG (NULL argument, unknown name
 * or split, id out of range), AM_E_IO, AM_E_FORMAT (malformed JSON, bad
 * vocabulary, bad IDX file), AM_E_NOMEM. */

/* ------------------------------------------------------------- tokenizer */

/* A BPE tokenizer of one of two families, encoding as the Hugging Face
 * tokenizers library does:
 *   - byte-level BPE (GPT-2, tiny-lm): GPT-2's pre-tokenization regex, its
 *     bytes-to-unicode vocabulary alphabet, merges applied by rank;
 *   - SentencePiece-style BPE (Llama, Mistral): U+2581 stands for a space, a
 *     space is prepended (normalizers Prepend + Replace, or a Metaspace
 *     pre-tokenizer), characters are merged by rank, and a character outside
 *     the vocabulary becomes its bytes' <0x00>..<0xFF> tokens (byte
 *     fallback) or <unk>.
 * Any byte string encodes (bytes that are not valid UTF-8 form pieces of
 * their own or byte-fallback tokens); decoding returns bytes (a token's bytes
 * have ' ' for U+2581; the space encoding prepended is dropped again). Added
 * tokens such as <|endoftext|> or <s> are split out of the text first. */
typedef struct am_tokenizer am_tokenizer;

/* From the Hugging Face tokenizer.json layout:
 * {"model": {"type": "BPE", "vocab": {token: id}, "merges": ["a b", ...] or
 * [["a", "b"], ...], "byte_fallback": .., "unk_token": ..}, "normalizer": ..,
 * "pre_tokenizer": .., "post_processor": .., "added_tokens": [{"id": ..,
 * "content": ..}, ...]}. A layout outside the two families (another model
 * type, normalizer or pre-tokenizer, BPE dropout, a subword prefix) fails
 * with AM_E_FORMAT naming the part that is not supported. */
AM_API int am_tokenizer_load_json(const char *json, size_t len, am_tokenizer **out);

/* From GPT-2's original pair of files: vocab.json ({token: id}) and
 * merges.txt (one "a b" per line, an optional "#version" first line).
 * "<|endoftext|>", when in the vocabulary, is treated as an added token. */
AM_API int am_tokenizer_load_vocab_merges(const char *vocab_json, size_t vocab_len,
                                          const char *merges_txt, size_t merges_len,
                                          am_tokenizer **out);

/* Reads a tokenizer.json file. */
AM_API int am_tokenizer_load_file(const char *path, am_tokenizer **out);

AM_API void am_tokenizer_free(am_tokenizer *t);

/* The last error on t, "" when none; a fixed message for t == NULL. */
AM_API const char *am_tokenizer_error(const am_tokenizer *t);

/* One more than the largest token id. */
AM_API int64_t am_tokenizer_vocab_size(const am_tokenizer *t);

/* The id of the added token that ends a text (<|endoftext|>, </s>, <eos> or
 * <|end_of_text|>), or -1 when there is none. */
AM_API int64_t am_tokenizer_eot(const am_tokenizer *t);

/* The id the post-processor puts before a text (Llama's <s>), or -1 when
 * there is none. am_tokenizer_encode does not add it: a caller that feeds a
 * whole text to the model puts it first. */
AM_API int64_t am_tokenizer_bos(const am_tokenizer *t);

/* The family and layout, for display: "byte-level BPE (GPT-2 family)" or
 * "SentencePiece-style BPE (U+2581 for a space, ...)"; never NULL. */
AM_API const char *am_tokenizer_describe(const am_tokenizer *t);

/* text[0..len) -> *ids (n), malloc'ed (free() it; non-NULL even when n is 0). */
AM_API int am_tokenizer_encode(am_tokenizer *t, const char *text, size_t len, int64_t **ids,
                               size_t *n);

/* ids (n) -> *text (len bytes plus a NUL), malloc'ed. An id out of range
 * fails with AM_E_ARG and names the id and the valid range. */
AM_API int am_tokenizer_decode(am_tokenizer *t, const int64_t *ids, size_t n, char **text,
                               size_t *len);

/* The raw bytes of one token, owned by t. */
AM_API int am_tokenizer_token_bytes(const am_tokenizer *t, int64_t id, const char **bytes,
                                    size_t *len);

/* A token's bytes as printable text, like snprintf: writes at most size
 * bytes including the NUL into buf and returns the full length (or a
 * negative status). Valid printable UTF-8 is kept; \n \t \r and backslash
 * become \n \t \r \\; any other byte becomes \xNN. */
AM_API int am_tokenizer_token_text(const am_tokenizer *t, int64_t id, char *buf, size_t size);

/* The id of the token whose bytes are bytes[0..len), or -1. */
AM_API int64_t am_tokenizer_token_id(const am_tokenizer *t, const char *bytes, size_t len);

/* --------------------------------------------------------------- datasets */

typedef struct am_dataset am_dataset;

enum { AM_DATASET_IMAGE = 0, AM_DATASET_TEXT = 1 }; /* am_dataset_kind() */

typedef struct am_dataset_options {
    /* fashion-mnist: directory of the IDX .gz files (NULL: the environment
     *   variable ACTMAX_FASHION_MNIST, else /usr/share/datasets/fashion-mnist).
     * fortunes: the held-out file written by the build
     *   (share/actmax/data/fortunes-heldout.txt), fortune layout: entries
     *   separated by lines holding a single '%'. Required.
     * text: any text file, one entry. Required.
     * images: a folder of PNG files, or a .npy file. Required. */
    const char *path;
    /* Text datasets: the model's tokenizer (required; must outlive the
     * dataset). */
    const am_tokenizer *tokenizer;
    int64_t window; /* text: tokens per window T; 0 means 64 */
    int64_t stride; /* text: tokens between window starts; 0 means window */
    /* images: the channels, height and width to deliver (the model's input;
     * 0: as stored). Channels are converted: 1 stored channel is repeated,
     * 3 (RGB) become 1 by luminance (0.299 R + 0.587 G + 0.114 B); other
     * pairs fail. Images are never resized: another size fails, naming the
     * file and both sizes. */
    int64_t channels, height, width;
    /* images without label names of their own (.npy): the name of each
     * class index (num_label_names); NULL for none. */
    const char *const *label_names;
    int num_label_names;
} am_dataset_options;

/* One batch; its buffers belong to the dataset and stay valid until the next
 * am_dataset_next_batch / am_dataset_item / am_dataset_free on it.
 * B = items in the batch, C/H/W = image channels/height/width, T = window. */
typedef struct am_batch {
    int64_t count;         /* B; 0 once the dataset is exhausted */
    int64_t first;         /* dataset index of item 0; item b is first + b */
    const float *images;   /* image: (B, C, H, W) in [0, 1]; NULL for text */
    const int64_t *labels; /* image: (B) class indices; NULL for text */
    const int64_t *tokens; /* text: (B, T) token ids; NULL for images */
} am_batch;

/* name: "fashion-mnist" (split "train" 60000 or "test" 10000 images),
 * "images" (split ignored; opts->path one of:
 *   - a folder of PNG files (any bit depth and colour type libpng reads;
 *     palettes expanded, alpha dropped, 16-bit samples scaled by 1/65535),
 *     in byte order of their names, or a folder of class subfolders of PNG
 *     files: the label is the subfolder's position in byte order of names
 *     and its name the label's name; index = position in that order;
 *   - a .npy file (format versions 1..3), C order, float32 in [0, 1] or
 *     uint8 (scaled by 1/255), shape (N, C, H, W) or (N, H, W) for one
 *     channel; labels, when a file NAME.labels.npy beside NAME.npy holds
 *     one integer per image (int8..int64 or uint8..uint64, shape (N,)),
 *     named by opts->label_names;
 *   only the file list or the header is read at open (every PNG's header
 *   is checked), pixels a batch at a time, so memory stays bounded),
 * "fortunes" (split "heldout"; "test" is a synonym), or "text" (split
 * ignored). Text datasets are the tokens of every entry, each followed by
 * <|endoftext|> when the tokenizer has it, concatenated and cut into windows
 * [i*stride, i*stride + T) of which only whole ones count. opts may be NULL
 * for fashion-mnist. Text files are streamed: read and tokenized in chunks
 * of about 1 MiB as batches ask for them (a "text" file is cut only before
 * a line that starts with a non-space character), never held whole. */
AM_API int am_dataset_open(const char *name, const char *split, const am_dataset_options *opts,
                           am_dataset **out);
AM_API void am_dataset_free(am_dataset *ds);
/* The last error on ds, "" when none; a fixed message for ds == NULL. */
AM_API const char *am_dataset_error(const am_dataset *ds);

/* Fills batch with up to max_items items following the previous batch. */
AM_API int am_dataset_next_batch(am_dataset *ds, int64_t max_items, am_batch *batch);
/* A batch of the one item at index (for showing top-k examples). */
AM_API int am_dataset_item(am_dataset *ds, int64_t index, am_batch *batch);

/* The next up to max_tokens tokens of a text dataset's stream (the one
 * next_batch cuts into windows; use one or the other on a dataset):
 * *tokens (owned by ds, valid until the next call on it) and *n, 0 at the
 * stream's end. *bytes_read and *bytes_total (may be NULL): how far into
 * its file the reader is, for a progress estimate. AM_E_ARG for an image
 * dataset. */
AM_API int am_dataset_next_tokens(am_dataset *ds, int64_t max_tokens, const int64_t **tokens,
                                  int64_t *n, int64_t *bytes_read, int64_t *bytes_total);

/* Items, or a negative status. Text: the windows; asked before the stream
 * has been read to its end, it is counted by reading the file once more
 * (tokenizing it; memory stays bounded). */
AM_API int64_t am_dataset_size(const am_dataset *ds);
AM_API int am_dataset_kind(const am_dataset *ds); /* AM_DATASET_* or a negative status */
/* One item's shape: (C, H, W) for images, (T) for text; returns the number
 * of dims or a negative status. */
AM_API int am_dataset_item_shape(const am_dataset *ds, int64_t *shape, int max);
AM_API int am_dataset_num_labels(const am_dataset *ds);           /* 0 for text */
AM_API const char *am_dataset_label(const am_dataset *ds, int i); /* NULL when out of range */

/* ---------------------------------------------------------------- runs */

/* AM_OPT_AUTO: Adam for the pixel and Fourier parameterizations, NAdam for
 * MACO. NAdam is torch.optim.NAdam's update (betas 0.9, 0.999, eps 1e-8,
 * momentum_decay 4e-3). */
enum { AM_OPT_AUTO = -1, AM_OPT_ADAM = 0, AM_OPT_SGD = 1, AM_OPT_NADAM = 2 };
/* AM_PARAM_MACO: magnitude-constrained optimization (Fel et al. 2023): only
 * the Fourier phase is optimized; the magnitude is fixed to the mean |rfft2|
 * of the model's training images when its metadata names a dataset the
 * engine reads (fashion-mnist), else to Lucid's 1/f^decay_power. Image =
 * sigmoid(contrast * colour recorrelation(standardize(irfft2(magnitude *
 * e^(i * standardize(phase)))))). Each step the model sees `crops` random crops of
 * each image resized to its input size, with noise; see the MACO fields of
 * am_options. The image (the canvas) is height x width. */
enum { AM_PARAM_FFT = 0, AM_PARAM_PIXEL = 1, AM_PARAM_MACO = 2 };
enum { AM_INIT_NOISE = 0, AM_INIT_IMAGE = 1 };

/* What the progress callback sees on each step. Pointers are valid only
 * during the call. */
typedef struct am_progress {
    int step; /* 1-based */
    int steps;
    float objective; /* sum over the batch of the objectives */
    int nterms;
    const char *const *term_names; /* (nterms) */
    const float *terms;            /* (nterms) value of each term this step */
    const float *image;            /* (B, C, H, W) in [0,1], or NULL when not sent */
    int64_t image_shape[4];
    float crop; /* MACO: this step's crop side, a fraction of the canvas side; else 1 */
} am_progress;

/* Return nonzero to cancel; the run then stops and keeps its best result. */
typedef int (*am_progress_fn)(void *user, const am_progress *p);

typedef struct am_options {
    /* objectives: n_objectives strings; the batch holds one image per
     * objective, or batch images all following objectives[0] when
     * n_objectives == 1 and batch > 1. */
    const char *const *objectives; /* (n_objectives) */
    int n_objectives;
    int batch;             /* default 1 */
    int64_t height, width; /* default: the model's input size */
    int steps;             /* default 256 */
    float lr;              /* default 0: 0.05, or 1.0 for MACO */
    int optimizer;         /* AM_OPT_* (default AM_OPT_AUTO) */
    float momentum;        /* SGD only, default 0 */
    uint64_t seed;         /* default 0 */
    int param;             /* AM_PARAM_FFT (default), AM_PARAM_PIXEL or AM_PARAM_MACO */
    int decorrelate;       /* colour decorrelation (3 channels), default 1 */
    float decay_power;     /* FFT 1/f^decay scaling, default 1 */
    /* transformation robustness (Lucid's standard set by default) */
    int transforms; /* 1 = on (default), 0 = all off */
    int pad;        /* default -1: 12 px at 224, scaled to the image size; 0 = off */
    int jitter;     /* default -1: 8 px at 224, scaled; then a second jitter of jitter/2 */
    float scale_min, scale_max; /* default 0.9 .. 1.1 (11 steps) */
    float rotate_deg;           /* default 10: uniform integer in [-10, 10] */
    /* After the transforms the image is resized back to height x width
     * (bilinear), so fixed-size models see the size they expect. */
    /* regularizers, subtracted from the objective with these weights:
     * l1 = mean|x-0.5|, l2 = mean (x-0.5)^2, tv = mean |neighbour
     * differences|, blur = mean (x - blur3x3(x))^2, on the display image */
    float l1, l2, tv, blur; /* default 0 */
    /* initial image */
    int init;                /* AM_INIT_NOISE (default) or AM_INIT_IMAGE */
    const float *init_image; /* (B, C, H, W) in [0,1] display space, copied */
    float init_std;          /* noise scale, default 0.01 */
    /* snapshots kept at these steps (1-based, ascending) */
    const int *thresholds; /* (n_thresholds) */
    int n_thresholds;
    /* progress */
    am_progress_fn progress; /* may be NULL */
    void *progress_user;
    int image_every; /* send the image every k steps; 0 = never */
    /* MACO (AM_PARAM_MACO; the Lucid transforms above are not used): each
     * step, `crops` crops per image, each a square-ish window whose side is
     * a fraction of the canvas side drawn in [0.8 s, s], s going linearly
     * from crop_max at the first step to crop_min at the last; each crop is
     * resized (bilinear) to the model's input size and gets noise *
     * (gaussian + uniform(-0.5, 0.5)) added in [0, 1] display space. The
     * objective of an image is the mean over its crops. */
    int crops;                /* default 6 */
    float crop_max, crop_min; /* default 1.0 .. 1.0 (no shrinking) */
    float noise;              /* default 0.03 */
    /* the standardized image is multiplied by contrast before the sigmoid:
     * at 1 most pixels stay mid-grey, which data with black backgrounds
     * (Fashion-MNIST) never shows */
    float contrast; /* default 3 */
    /* Feature accentuation (Hamblin et al. 2024): with init_image, subtract
     * accent * mean((image - init_image)^2) (display space), which keeps the
     * result close to the start image while the unit is pushed. */
    float accent; /* default 0 (off) */
    /* Lucid's diversity term, added to the sum of the objectives with this
     * weight: minus the mean pairwise cosine similarity of the images' Gram
     * matrices at diversity_layer (batch >= 2). A separate term, never part
     * of the per-image objectives. */
    float diversity;             /* default 0 (off) */
    const char *diversity_layer; /* NULL or "": the first layer objectives[0] reads */
} am_options;

/* Fills o with the defaults above (objectives NULL). */
AM_API void am_options_default(am_options *o);

typedef struct am_run am_run;

/* Runs an optimization to completion (or cancellation) and keeps the
 * results on *out. Objective syntax errors fail before any step with
 * AM_E_OBJECTIVE and a message pointing at the column. *out is always set
 * when out is non-NULL; free with am_run_free. */
AM_API int am_run_new(am_model *m, const am_options *o, am_run **out);
AM_API void am_run_free(am_run *r);
AM_API const char *am_run_error(const am_run *r);

/* 1 if the progress callback cancelled the run. */
AM_API int am_run_cancelled(const am_run *r);

/* Steps actually taken. */
AM_API int am_run_steps(const am_run *r);

/* The result images (B, C, H, W) in [0,1] display space: the final image,
 * or the best one so far when cancelled. shape has 4 entries. */
AM_API const float *am_run_images(const am_run *r, int64_t shape[4]);

/* Objective per step (S): sum over the batch, regularizers excluded. */
AM_API const float *am_run_curve(const am_run *r, int *steps);

/* Terms: one per objective (per batch element) plus one per active
 * regularizer. Names are like "obj0: layer2[3]" or "tv". Each curve has
 * am_run_steps values. */
AM_API int am_run_num_terms(const am_run *r);
AM_API const char *am_run_term_name(const am_run *r, int i);
AM_API const float *am_run_term_curve(const am_run *r, int i);

/* Objective of each batch element evaluated on the result images without
 * transforms (B). MACO: on the canvas resized to the model's input size. */
AM_API const float *am_run_final(const am_run *r, int *batch);

/* The unit's own activation per image (B): as am_run_final with every
 * diversity(...) of the objective taken as 0, so the number under an image
 * is the objective alone, whatever diversity term the run optimized. */
AM_API const float *am_run_activation(const am_run *r, int *batch);

/* The transparency map of a MACO run (B, C, H, W): |d loss / d image|
 * summed over the steps (loss: the objectives, the diversity term and the
 * penalties), for showing where the unit looks as an alpha mask. Not
 * normalized. NULL for other parameterizations (not accumulated). */
AM_API const float *am_run_transparency(const am_run *r, int64_t shape[4]);

/* The same map as the fronts show it (B, C, H, W) in [0, 1]: per image,
 * sqrt(channel mean / its largest value), the same grey in every channel
 * so it sits beside the image in one grid. NULL when the run has no map. */
AM_API const float *am_run_transparency_map(const am_run *r, int64_t shape[4]);

/* The layer the diversity term used ("" when the run had none). */
AM_API const char *am_run_diversity_layer(const am_run *r);

/* What the run chose by itself, for display (never NULL, "" if nothing):
 * e.g. "MACO magnitude: mean |rfft2| of 60000 fashion-mnist train images". */
AM_API const char *am_run_note(const am_run *r);

/* Snapshots at the thresholds: count, then the k-th step and images
 * (B, C, H, W). */
AM_API int am_run_num_snapshots(const am_run *r);
AM_API const float *am_run_snapshot(const am_run *r, int k, int *step, int64_t shape[4]);

/* Wall-clock seconds of the optimization loop, and steps per second. */
AM_API double am_run_seconds(const am_run *r);

/* ---------------------------------------------------------------- text prompts
 *
 * Activation maximization for text models (kind "text", driven through the
 * embedding input of am_model_embeddings, which these calls prepare
 * themselves). The model must carry a tokenizer (the metadata's
 * "tokenizer" extra file). Objectives use the language of am_options, on
 * layer outputs of shape (T, ...) with the batch left out:
 * "blocks.2.mlp.act[-1, 123]" is neuron 123 at the last position,
 * "blocks.2.mlp.act[:, 123]" its mean over positions. Labels and diversity()
 * are not available on text.
 *
 * "score" below is what the methods maximize: the objective minus
 * fluency times the prompt's cross-entropy (mean over positions 2..T of
 * -log p(token | tokens before it), in nats). */

enum {
    AM_TEXT_SOFT = 0, /* Adam on continuous embeddings, then projection to the nearest tokens */
    AM_TEXT_PEZ =
        1, /* projected gradient: forward/backward at the projected tokens, update the continuous ones */
    AM_TEXT_GCG = 2,  /* greedy coordinate gradient over real tokens */
    AM_TEXT_SWEEP = 3 /* every vocabulary token at one position (exact for len 1) */
};
enum { AM_DIST_COSINE = 0, AM_DIST_L2 = 1 };

/* What the text progress callback sees once per step. */
typedef struct am_text_progress {
    int step; /* 1-based, within the restart */
    int steps;
    int restart; /* 0-based */
    int restarts;
    float activation; /* soft: the continuous embeddings' objective; others: the best prompt's */
    float xent;       /* cross-entropy of that prompt (0 when fluency is off and not computed) */
    const int64_t *tokens; /* (len) the best prompt so far (soft: the current projection) */
    int len;
    /* What runs now: "optimizing" (the steps, one call each), or a scoring
     * phase that calls at most twice a second so an interrupt is seen:
     * "start" (the start prompt's last token swept over the vocabulary),
     * "sweep", "attribution". done of total prompts scored in that phase
     * (0 of 0 while optimizing). */
    const char *phase;
    int64_t done, total;
} am_text_progress;

/* Return nonzero to cancel; the run then stops and keeps its best result. */
typedef int (*am_text_progress_fn)(void *user, const am_text_progress *p);

typedef struct am_text_options {
    const char *objective; /* required */
    int method;            /* AM_TEXT_*, default AM_TEXT_SOFT */
    int len;               /* prompt tokens T, 1..context; default 8 */
    int steps;             /* default 200 (sweep: ignored) */
    float lr;              /* soft and pez Adam step, default 0.05 */
    int distance;          /* projection metric, AM_DIST_COSINE (default) or AM_DIST_L2 */
    float snap;            /* soft: weight of the penalty on the distance to the nearest token
                                  (cosine: 1 - similarity; L2: squared distance / D); default 0 */
    float fluency;         /* weight of the cross-entropy penalty, default 0 (off) */
    int topk;              /* gcg: candidate tokens per position, default 64 */
    int nearest;           /* soft and pez: nearest tokens reported per position;
                                  default 0: topk of them (callers that set topk for this keep working) */
    int batch;             /* gcg: single-token swaps tried per step (default 128);
                                  sweep and attribution: sequences per forward (at least 512) */
    int position; /* sweep: the position searched (negative counts from the end), default -1 */
    const int64_t *init_tokens; /* (len) start prompt (soft and pez start from its embedding rows),
                                  copied. NULL: the best of min(batch, 256) random prompts that
                                  re-encode to themselves, then (except for sweep) its last token
                                  chosen by a sweep over the vocabulary */
    uint64_t seed;              /* default 0; restart r uses seed + r */
    int restarts;               /* default 1; the best score is kept */
    int retokenize;  /* gcg: reject swaps whose prompt does not re-encode to itself; default 1 */
    int attribution; /* per-position attribution of the result, default 1 */
    am_text_progress_fn progress; /* may be NULL */
    void *progress_user;
} am_text_options;

/* Fills o with the defaults above (objective NULL). */
AM_API void am_text_options_default(am_text_options *o);

typedef struct am_text_run am_text_run;

/* Runs one search to completion (or cancellation). Fails before any step
 * with AM_E_UNSUPPORTED for an image model or a model without tokenizer,
 * AM_E_ARG for len outside 1..context and other bad options, AM_E_OBJECTIVE
 * (with the column) for a syntax error or an index out of range such as a
 * position >= len, AM_E_LAYER for an unknown layer. *out is always set when
 * out is non-NULL; free with am_text_run_free. */
AM_API int am_text_run_new(am_model *m, const am_text_options *o, am_text_run **out);
AM_API void am_text_run_free(am_text_run *r);
AM_API const char *am_text_run_error(const am_text_run *r);
AM_API int am_text_run_cancelled(const am_text_run *r);
/* Steps taken by the kept restart. */
AM_API int am_text_run_steps(const am_text_run *r);
AM_API double am_text_run_seconds(const am_text_run *r);

/* The discrete result: the best prompt (soft: the projection of the final
 * embeddings) as ids (len), and its decoded text (NUL-terminated). */
AM_API const int64_t *am_text_run_tokens(const am_text_run *r, int *len);
AM_API const char *am_text_run_text(const am_text_run *r);
/* 1 when the text re-encodes to exactly these ids. */
AM_API int am_text_run_roundtrip(const am_text_run *r);

/* The discrete prompt's objective and cross-entropy, recomputed on the ids. */
AM_API float am_text_run_activation(const am_text_run *r);
AM_API float am_text_run_xent(const am_text_run *r);

/* soft and pez: the objective of the final continuous embeddings, and
 * activation / soft_activation (retention). NaN for gcg and sweep. */
AM_API float am_text_run_soft_activation(const am_text_run *r);
AM_API float am_text_run_retention(const am_text_run *r);
/* soft and pez: the final continuous embeddings (len, D); NULL otherwise. */
AM_API const float *am_text_run_embeds(const am_text_run *r, int *len, int *dim);

/* soft and pez: the k = nearest nearest tokens per position of the final embeddings,
 * ids (len, k) and values (len, k), nearest first: cosine similarity for
 * AM_DIST_COSINE, Euclidean distance for AM_DIST_L2. */
AM_API int am_text_run_nearest(const am_text_run *r, const int64_t **ids, const float **values,
                               int *len, int *k);

/* Curves over the kept restart's steps (S): the activation and
 * cross-entropy of the prompt the progress reports (soft: continuous). */
AM_API const float *am_text_run_curve(const am_text_run *r, int *steps);
AM_API const float *am_text_run_xent_curve(const am_text_run *r, int *steps);

/* The objective of the discrete prompt behind each step of the kept
 * restart (S), computed on its token ids: soft: that step's nearest-token
 * projection (the tokens its progress reports); pez and gcg: the curve
 * above (their steps are discrete prompts already); sweep: its one value. */
AM_API const float *am_text_run_projected_curve(const am_text_run *r, int *steps);

/* The best discrete prompt seen: the step (1-based) where the projected
 * curve peaks (the first on ties), that prompt's ids (len) and objective.
 * Soft's result is the projection of its last step, which may be worse;
 * this is the one to keep. Any pointer may be NULL. */
AM_API int am_text_run_best(const am_text_run *r, const int64_t **ids, int *len, float *activation,
                            int *step);

/* Per position t of the result: the objective minus its value with token t
 * swapped for the best other token there (drop, len), and that token (alt,
 * len). Every token at every position while len x vocab is at most 16384
 * prompts, else each position's top tokens by the gradient (at most 256,
 * within the same budget; am_text_run_note says so). Returns
 * AM_E_UNSUPPORTED when not computed (off, or the run was stopped). */
AM_API int am_text_run_attribution(const am_text_run *r, const float **drop, const int64_t **alt,
                                   int *len);

/* What the run chose by itself, for display (never NULL, "" if nothing):
 * e.g. that the attribution tried each position's top tokens by the
 * gradient instead of the whole vocabulary. */
AM_API const char *am_text_run_note(const am_text_run *r);

/* sweep: the objective of every vocabulary token at the searched position
 * (vocab), the rest of the prompt fixed. */
AM_API const float *am_text_run_sweep(const am_text_run *r, int *vocab, int *position);

/* ---------------------------------------------------------------- dataset examples
 *
 * The top-k items of a dataset by an objective, and the distribution of the
 * objective over the dataset, for comparing an optimized input with the real
 * ones that drive the same unit: images for image models, tokens of a
 * corpus for text models, through one scanner. Images (in [0, 1] as read)
 * are scaled exactly as runs scale theirs (to the model's value range
 * [lo, hi], then mean/std), so an item's value is what am_model_objective
 * gives on the same input. The objective language is that of runs, without
 * diversity().
 *
 * Text: every token of the corpus is scored once, with its natural
 * preceding context. The corpus (its entries' tokens, each followed by
 * <|endoftext|> when the tokenizer has it, as one stream: the way the model
 * was trained) is read in overlapping windows of `window` tokens starting
 * every `window - context` tokens; one forward per batch of windows, the
 * objective read at every position of each window (its first index standing
 * for the position, as am_model_objective_positions does). The first window
 * scores all its positions, every later one only its last `window -
 * context`, and a last window ends at the stream's end, so every token is
 * scored exactly once with at least `context` tokens before it (all the
 * tokens before it near the stream's start). `[-1, n]` and `[:, n]` are
 * thus the same objective here: neuron n at each token (the mean over a
 * window is not offered: it would depend on where windows are cut). A
 * text example is the scanning window holding its peak token, ranked by the
 * maximum over its scored tokens; am_examples_max is the maximum over every
 * scored token. The corpus is streamed (read and tokenized in chunks of
 * about 1 MiB, cut only before a line that starts with a non-space
 * character, a boundary the tokenizer's pre-tokenization cuts at anyway):
 * memory is bounded by the top-k, the kept values and the band samples,
 * not by the corpus' size. */

/* Called after each batch: items scanned so far (increasing), the items to
 * scan (total: the dataset's or limit; text: tokens, the total estimated
 * from the bytes read until the corpus has been read to its end), and the
 * best value so far. Return nonzero to cancel; the scan then stops and keeps
 * what it scanned. */
typedef int (*am_examples_progress_fn)(void *user, int64_t scanned, int64_t total, float best);

typedef struct am_examples_options {
    const char *objective; /* required */
    /* The dataset: "fashion-mnist" (images; path: the folder of its IDX
     * files, NULL for the default), the path of any images (a folder of PNG
     * files, class subfolders giving labels, a .npy or a torch.save .pt
     * file: am_dataset_open's "images", .pt read with libtorch; or "images"
     * with path), "fortunes" or "text" (text; path: the file, required).
     * NULL: the model's metadata "dataset". Images come at the model's input
     * channels (converted as am_dataset_options says) and size (another
     * size fails with AM_E_UNSUPPORTED naming both). */
    const char *dataset;
    const char *path;
    const char *split; /* fashion-mnist: "test" (default) or "train"; fortunes: "heldout" */
    int64_t window;    /* text: tokens per window, 1..context; 0: 64 or the context if smaller */
    /* text: tokens between window starts, 1..window; 0: window - context.
     * Giving both stride and context is an error unless they agree. */
    int64_t stride;
    int k;         /* items kept, 1..100000; 0: 10 */
    int64_t limit; /* scan at most this many items (the first ones; text: tokens); 0: all */
    int batch;     /* items (text: windows) per forward; 0: 256 */
    am_examples_progress_fn progress; /* may be NULL */
    void *progress_user;
    /* text: the least context of a scored token, 0..window-1; 0 with
     * stride 0: window / 2 (then stride = window - context). */
    int64_t context;
    /* Histogram bins over [min, max] of every scored value, 1..10000; 0: 50. */
    int bins;
    /* Quantile bands of the scored values to draw examples from, 0..100;
     * 0: none. */
    int quantiles;
    /* Examples per band, 1..100; 0: 3. */
    int per_band;
    /* quantiles + 1 increasing percentiles in [0, 100], the bands' edges
     * (e.g. {0, 25, 50, 75, 90, 99, 100} for 6 bands); NULL: equally
     * spaced (0, 100/quantiles, ..., 100). Copied by am_examples_new. */
    const double *band_percentiles;
} am_examples_options;

/* Fills o with the defaults above (objective and dataset NULL). */
AM_API void am_examples_options_default(am_examples_options *o);

/* One kept item; pointers are owned by the examples handle. */
typedef struct am_example {
    int64_t index;          /* images: the item's index in the dataset (its split);
                               text: the position of the window's first token in
                               the corpus' token stream */
    float value;            /* the objective on it (text: at its peak token) */
    int64_t label;          /* its class, -1 when the dataset has none (text) */
    const char *label_name; /* the class's name, "" when none */
    const float *image;     /* images: (C, H, W) in the model's value range
                                   [lo, hi] of am_model_normalization; NULL for text */
    int64_t shape[3];       /* images: C, H, W */
    const int64_t *tokens;  /* text: the window's ids (len); NULL for images */
    const float *acts;      /* text: the objective at each position of the window
                               (len), computed in the same forward (positions
                               before `scored` have less context than scanning
                               gives them) */
    int len;                /* text: T */
    int peak;               /* text: the position in tokens of the example's
                               value (the scored maximum of the window); 0 for images */
    int scored;             /* text: the first position of the window the scan
                               scored (positions scored..len-1 were); 0 for images */
} am_example;

typedef struct am_examples am_examples;

/* Scans the dataset and keeps the top k, best first (ties: the lower
 * index), the distribution of the scored values and the band examples.
 * Fails before any forward with AM_E_OBJECTIVE (with the caret) or
 * AM_E_LAYER for a bad objective, AM_E_ARG for bad options, AM_E_UNSUPPORTED
 * for a dataset of the other kind or of another item shape than the model's
 * input, or when neither the options nor the metadata name a dataset, and
 * with the readers' status for a missing or bad dataset. *out is always set
 * when out is non-NULL; free with am_examples_free. */
AM_API int am_examples_new(am_model *m, const am_examples_options *o, am_examples **out);
AM_API void am_examples_free(am_examples *e);
AM_API const char *am_examples_error(const am_examples *e);
/* AM_DATASET_IMAGE or AM_DATASET_TEXT. */
AM_API int am_examples_kind(const am_examples *e);
/* Values scored: items (images) or tokens (text); fewer than the total when
 * cancelled or limited. */
AM_API int64_t am_examples_scanned(const am_examples *e);
/* 1 when the progress callback stopped the scan. */
AM_API int am_examples_cancelled(const am_examples *e);
/* Items kept (<= k). */
AM_API int am_examples_count(const am_examples *e);
/* The maximum over every scored value (= item 0's value; NaN when none). */
AM_API float am_examples_max(const am_examples *e);
/* Item i (0 = best). */
AM_API int am_examples_get(const am_examples *e, int i, am_example *out);
/* Model forwards the scan ran: 0 when every value came from the
 * activation cache. The cache: when the objective is one layer reference
 * (indexing only, e.g. "conv2[5]" or "blocks.2.mlp.act[-1, 7]"), a complete
 * scan of at most 1 GiB of that layer's activations writes them (per image,
 * or per scored token with its context) to a file named by a hash of the
 * model's weights, the layer, the dataset (file, size, time) and how it is
 * read, in $ACTMAX_ACT_CACHE ("off": none; default ~/.cache/actmax/acts,
 * kept under 2 GiB by removing the least recently used files);
 * the next scan of the same layer, for any index, maps the file and runs no
 * forward. Values are the same either way. */
AM_API int64_t am_examples_forwards(const am_examples *e);
/* Text: the scan's window and the least context of a scored token (what
 * the maximum is over); AM_E_UNSUPPORTED for images. */
AM_API int am_examples_text_window(const am_examples *e, int64_t *window, int64_t *context);

/* The histogram of every scored value: *bins counts (owned by e) over
 * [*lo, *hi] = [min, max] in equal bins, the last one closed (numpy's
 * histogram; when min == max, [min - 0.5, max + 0.5]). Exact while the scan
 * kept every value (up to 4194304); beyond that it is the histogram of a
 * uniform sample of that many values, counts scaled to the values scored
 * (am_examples_sampled says so). AM_E_ARG when nothing was scored. */
AM_API int am_examples_histogram(const am_examples *e, const int64_t **counts, int *bins, float *lo,
                                 float *hi);
/* 1 when the histogram and band edges come from a sample (more values were
 * scored than kept), 0 when exact. */
AM_API int am_examples_sampled(const am_examples *e);
/* The fraction of scored values > 0 (exact; NaN when none). */
AM_API double am_examples_firing_rate(const am_examples *e);
/* The quantile bands asked for (options.quantiles; 0 when none). */
AM_API int am_examples_num_bands(const am_examples *e);
/* Example i (0..per_band-1, lowest value first) of band `band`: the values
 * v with band_lo <= v < band_hi (the last band: <= band_hi), band_lo and
 * band_hi the band's edge percentiles of the scored values (numpy's
 * percentile, linear). Examples are spread evenly over the band's values
 * by rank: from every item for images, from a uniform sample of 4096 scored
 * tokens (each with its window) for text, so a narrow text band may hold
 * fewer than per_band. band_lo/band_hi may be NULL and are set even when i
 * is past the band's examples, which returns AM_E_ARG (so a front asks
 * for i = 0, 1, ... until it fails), as does a bad e, band or out. Text
 * examples: the window holding the token, peak = its position. */
AM_API int am_examples_band_get(const am_examples *e, int band, int i, am_example *out,
                                float *band_lo, float *band_hi);
/* The mean value per label (*n = the dataset's labels, means owned by e;
 * NaN for a label no scanned item has) for labelled datasets;
 * AM_E_UNSUPPORTED for unlabelled ones (text). */
AM_API int am_examples_class_means(const am_examples *e, const float **means, int *n);

/* ---------------------------------------------------------------- the image parameterization as a function
 *
 * What a run does to its parameters, callable on its own: a course checks a
 * student's PyTorch parameterization or diversity term against these. */

/* The display image (B, C, H, W) in [0, 1] that an image run with options o
 * renders from the parameters params (row-major, shape (ndim)):
 *   AM_PARAM_FFT   (B, C, H, W/2+1, 2), real and imaginary parts:
 *                  sigmoid(decorrelate(irfft2(p * 1/f^o->decay_power, "ortho") / 4));
 *   AM_PARAM_PIXEL (B, C, H, W): sigmoid(decorrelate(p));
 *   AM_PARAM_MACO  (B, C, H, W/2+1), the phase, with the run's fixed magnitude
 *                  (am_param_magnitude) and o->contrast.
 * Colour decorrelation applies when o->decorrelate is set and C == 3. W is
 * o->width, else the model's input width, else 2 * (W/2+1 - 1) (ndim 4 or 5
 * with a frequency axis): it must give the frequency axis's length. m may be
 * NULL (MACO then uses the 1/f magnitude). image holds B*C*H*W floats (the
 * caller's). Fails with AM_E_ARG naming the shape expected (message in err,
 * size n, may be NULL). */
AM_API int am_param_image(am_model *m, const am_options *o, const float *params,
                          const int64_t *shape, int ndim, float *image, char *err, size_t n);

/* MACO's fixed Fourier magnitude (C, H, W/2+1) for a C x H x W canvas, as a
 * run of model m (may be NULL) uses it: the mean |rfft2| of the model's
 * training images when its dataset reads as C-channel images, else
 * 1/f^o->decay_power. mag holds C*H*(W/2+1) floats (the caller's); note
 * (size note_n, may be NULL) says which magnitude it is. */
AM_API int am_param_magnitude(am_model *m, const am_options *o, int64_t C, int64_t H, int64_t W,
                              float *mag, char *note, size_t note_n);

/* Lucid's diversity term of a batch at a layer, as runs compute it for
 * diversity(layer) (without its weight): minus the mean over the B items of
 * the summed cosine similarities of each item's Gram matrix (channels x
 * channels, over positions) with the others' (0 for B = 1). input as for
 * am_model_objective (already normalized). Unknown layers: AM_E_LAYER with
 * the closest names; messages via am_model_error. */
AM_API int am_model_diversity(am_model *m, const am_input *input, const char *layer, float *value);

/* ---------------------------------------------------------------- results as files and code
 *
 * What every front needs to hand results to a PyTorch workflow: arrays as
 * files NumPy and PyTorch read, and a run as a PyTorch script. */

enum { AM_DTYPE_FLOAT32 = 0, AM_DTYPE_INT64 = 1 };

/* Writes a row-major array (float32 or int64, shape (ndim)) to path in the
 * format its extension names: ".npy" (NumPy format 1.0: numpy.load) or
 * ".pt"/".pth" (torch.save's zip layout: torch.load gives the tensor). Any
 * other extension fails with AM_E_ARG; an unwritable file with AM_E_IO. On
 * failure a message naming what was wrong is written to err (size n; err
 * may be NULL). */
AM_API int am_array_save(const char *path, int dtype, const void *data, const int64_t *shape,
                         int ndim, char *err, size_t n);

/* A runnable PyTorch script (Python 3, torch only) equivalent to an image
 * run of options o on model m: the same parameterization (Fourier 1/f,
 * pixels, or MACO's phase with the engine's magnitude written into the
 * script; colour decorrelation, sigmoid), the same transforms or MACO crops
 * drawn from the same random numbers (the engine's std::mt19937_64,
 * reimplemented), the same regularizers, accent and diversity terms,
 * optimizer (Adam, SGD, or NAdam written out as the engine computes it),
 * seed and initial noise (torch.manual_seed),
 * layers read with forward hooks and the objective written out as Python
 * indexing. It prints the final activation of each image (no transforms),
 * as am_run_final does: with transforms off it reproduces the engine's
 * numbers up to float rounding.
 * model_path is the TorchScript file the script loads; model_code (may be
 * NULL) is Python that sets `model` to an nn.Module with the same
 * submodules (forward hooks do not run on TorchScript modules), e.g. the
 * model's class with the file's state_dict; without it the script loads the
 * TorchScript module and reads only the layer "output" (any other layer
 * stops the script with a message saying what to supply).
 * *code (NUL-terminated, malloc'ed: free() it) is set on success. Fails with
 * AM_E_ARG for bad options, AM_E_OBJECTIVE for an objective the script
 * cannot express (message in err, size n, may be NULL). */
AM_API int am_run_code(am_model *m, const am_options *o, const char *model_path,
                       const char *model_code, char **code, char *err, size_t n);

/* ---------------------------------------------------------------- the function table
 *
 * Fronts that load libactmax at run time (the kernel dlopens it; the Python
 * module too) take every function above from one table instead of looking
 * each name up, the way ONNX Runtime's OrtGetApiBase works:
 *
 *     const am_api *api = am_get_api(AM_API_VERSION, &engine_version);
 *     if (!api) ... refuse: built for AM_API_VERSION, the engine is engine_version
 *     api->am_model_load(...);
 *
 * The table lists each function of this header by its own name, its type
 * taken from the declaration above, so the list below is the only other
 * place a function is named, and a test checks it against the declarations.
 * The struct sizes let a binding that declares its own copies of the structs
 * (ctypes, cffi) check them against the engine's. */

/* clang-format off */
#define AM_API_FUNCTIONS(X)                                                           \
    X(am_strerror) X(am_status_class) X(am_version) X(am_blas_info)                   \
    X(am_memory_available)                                                            \
    X(am_tensor_release)                                                              \
    X(am_model_load) X(am_model_load_with) X(am_model_free) X(am_model_error)         \
    X(am_model_note)                                                                  \
    X(am_model_kind) X(am_model_device) X(am_model_input_shape)                       \
    X(am_model_normalization) X(am_model_num_params) X(am_model_num_labels)           \
    X(am_model_label)                                                                 \
    X(am_model_dataset) X(am_model_tokenizer)                                         \
    X(am_model_num_layers) X(am_model_layer) X(am_model_tap) X(am_model_objective)    \
    X(am_model_objective_positions) X(am_model_embeddings)                            \
    X(am_tokenizer_load_json) X(am_tokenizer_load_vocab_merges)                       \
    X(am_tokenizer_load_file) X(am_tokenizer_free) X(am_tokenizer_error)              \
    X(am_tokenizer_vocab_size) X(am_tokenizer_eot) X(am_tokenizer_encode)             \
    X(am_tokenizer_bos) X(am_tokenizer_describe)                                      \
    X(am_tokenizer_decode) X(am_tokenizer_token_bytes) X(am_tokenizer_token_text)     \
    X(am_tokenizer_token_id)                                                          \
    X(am_dataset_open) X(am_dataset_free) X(am_dataset_error)                         \
    X(am_dataset_next_batch) X(am_dataset_item) X(am_dataset_next_tokens)            \
    X(am_dataset_size) X(am_dataset_kind) X(am_dataset_item_shape)                    \
    X(am_dataset_num_labels) X(am_dataset_label)                                      \
    X(am_options_default) X(am_run_new) X(am_run_free) X(am_run_error)                \
    X(am_run_cancelled) X(am_run_steps) X(am_run_images) X(am_run_curve)              \
    X(am_run_num_terms) X(am_run_term_name) X(am_run_term_curve) X(am_run_final)      \
    X(am_run_num_snapshots) X(am_run_snapshot) X(am_run_seconds)                      \
    X(am_run_activation) X(am_run_transparency) X(am_run_transparency_map)            \
    X(am_run_diversity_layer) X(am_run_note)                                          \
    X(am_text_options_default) X(am_text_run_new) X(am_text_run_free)                 \
    X(am_text_run_error) X(am_text_run_cancelled) X(am_text_run_steps)                \
    X(am_text_run_seconds) X(am_text_run_tokens) X(am_text_run_text)                  \
    X(am_text_run_roundtrip) X(am_text_run_activation) X(am_text_run_xent)            \
    X(am_text_run_soft_activation) X(am_text_run_retention) X(am_text_run_embeds)     \
    X(am_text_run_nearest) X(am_text_run_curve) X(am_text_run_xent_curve)             \
    X(am_text_run_projected_curve) X(am_text_run_best)                                \
    X(am_text_run_attribution) X(am_text_run_sweep) X(am_text_run_note)               \
    X(am_examples_options_default) X(am_examples_new) X(am_examples_free)             \
    X(am_examples_error) X(am_examples_kind) X(am_examples_scanned)                   \
    X(am_examples_cancelled) X(am_examples_count) X(am_examples_max)                  \
    X(am_examples_get) X(am_examples_text_window) X(am_examples_forwards)             \
    X(am_examples_histogram) X(am_examples_sampled)                                   \
    X(am_examples_firing_rate) X(am_examples_num_bands) X(am_examples_band_get)       \
    X(am_examples_class_means)                                                        \
    X(am_array_save) X(am_run_code)                                                   \
    X(am_param_image) X(am_param_magnitude) X(am_model_diversity)                     \
    X(am_objective_each) X(am_logit_lens)

/* Every struct passed by pointer, for the size check. */
#define AM_API_STRUCTS(X)                                                             \
    X(am_tensor) X(am_model_load_options) X(am_layer_info) X(am_input)                \
    X(am_dataset_options) X(am_batch) X(am_progress) X(am_options)                    \
    X(am_text_progress) X(am_text_options) X(am_examples_options) X(am_example)

/* clang-format on */
typedef struct am_api {
    uint32_t api_version; /* AM_API_VERSION of the engine */
    uint32_t size;        /* sizeof(am_api) in the engine */
    const char *version;  /* AM_VERSION of the engine */
#define AM_API_SIZE_FIELD(s) uint32_t sizeof_##s;
    AM_API_STRUCTS(AM_API_SIZE_FIELD)
#undef AM_API_SIZE_FIELD
#define AM_API_FUNCTION_FIELD(f) __typeof__(&f) f;
    AM_API_FUNCTIONS(AM_API_FUNCTION_FIELD)
#undef AM_API_FUNCTION_FIELD
} am_api;

/* The engine's function table when api_version is the engine's
 * AM_API_VERSION, else NULL. *engine_api_version (may be NULL) is always set
 * to the engine's AM_API_VERSION, so the caller can name both versions when
 * it refuses. The table is static: never freed. */
AM_API const am_api *am_get_api(uint32_t api_version, uint32_t *engine_api_version);

#ifdef __cplusplus
}
#endif
#endif /* ACTMAX_H */
