// internal.hpp — what the engine's translation units share: the handle
// structs, the C-boundary fence, tap plans. Includes libtorch.
#pragma once
#include <torch/script.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actmax.h"

namespace am {

// An error that carries an AM_E_* status across the C++ interior.
struct Error : std::runtime_error {
    int status;
    Error(int st, const std::string &msg) : std::runtime_error(msg), status(st) {}
};

// First lines of a libtorch message: enough to say what failed, without the
// C++ backtrace that c10::Error appends.
std::string short_what(const std::string &what, int max_lines = 3);

// Edit distance, for "did you mean" lists.
size_t edit_distance(const std::string &a, const std::string &b);

// A faster kernel that a run's tap graph calls through the op
// actmax::fast(x, id) in place of one node (fastops.cpp).
struct FastOp {
    int64_t id = 0;  // set by fast_op_register
    virtual ~FastOp() = default;
    virtual torch::Tensor run(const torch::Tensor &x) = 0;
};

// Makes op reachable from graphs by op->id for as long as it lives.
void fast_op_register(const std::shared_ptr<FastOp> &op);

// A 3x3 stride-1 convolution with fixed weights through oneDNN's Winograd
// kernels where they win, libtorch's elsewhere; null when the convolution
// does not qualify or the engine was built without oneDNN.
std::shared_ptr<FastOp> fast_conv(const torch::Tensor &w, const torch::Tensor &b, const std::vector<int64_t> &stride,
                                  const std::vector<int64_t> &pad, const std::vector<int64_t> &dil, int64_t groups);

// 2-D max pooling through channels-last memory (vectorized on CPU).
std::shared_ptr<FastOp> fast_max_pool(const std::vector<int64_t> &kernel, const std::vector<int64_t> &stride,
                                      const std::vector<int64_t> &pad, const std::vector<int64_t> &dil, bool ceil);

// Every step of a run allocates and frees the same few megabyte-sized
// tensors. glibc serves blocks that large by mmap and returns them on free,
// so each step pays a page fault per 4 KiB touched: a tenth of a step of
// resnet18 at 224x224 on CPU. Called by runs, once per process: raises the
// mmap and trim thresholds so those blocks stay in the heap (glibc only;
// ACTMAX_NO_MALLOPT=1 leaves malloc alone).
void tune_malloc_for_runs();

// A compiled tap graph: input(s) -> tuple of the tapped tensors.
struct TapPlan {
    std::shared_ptr<torch::jit::GraphFunction> fn;
    std::vector<std::string> layers;  // (n) as requested
    std::vector<bool> conditional;    // (n) inside an if/while of forward: may not be called
    // Runs only: the convolution applied to the image, taken out of the graph
    // and run before it with a faster input gradient (see stem_conv).
    bool has_stem = false;
    torch::Tensor stem_w;                                  // (Co, C, kh, kw)
    torch::Tensor stem_b;                                  // (Co) or undefined
    std::vector<int64_t> stem_stride, stem_pad, stem_dil;  // (2) each
    std::vector<std::shared_ptr<FastOp>> fast_ops;         // called from fn by id
};

// Which base graph a tap plan edits.
enum class Base { kForward, kEmbeds };

}  // namespace am

struct am_model {
    std::string error;  // last failure
    std::string note;   // defaults taken at load
    std::string kind = "image";
    std::string device_name = "cpu";
    std::string metadata;  // raw actmax.json
    std::string dataset;
    // dataset: a dataset's name, or the path of the model's own images, whose
    // label names the metadata may give ({"dataset": {"labels": [...]}})
    std::vector<std::string> dataset_labels;
    std::string tokenizer;  // bytes of the tokenizer extra file
    bool has_tokenizer = false;
    torch::Device device{torch::kCPU};
    torch::jit::Module module;
    bool loaded = false;

    std::vector<int64_t> input_shape;  // (C, H, W) or (T), no batch
    std::vector<float> mean, stdev;    // (C)
    float range[2] = {0.f, 1.f};
    std::vector<std::string> labels;  // (num_labels)

    // forward's graph, inlined, with the module input first (self, x)
    std::shared_ptr<torch::jit::Graph> graph;
    // the same graph fed by embeddings instead of token ids (text models)
    std::shared_ptr<torch::jit::Graph> embed_graph;
    torch::Tensor embedding;  // (vocab, D)

    // module paths known to the module tree, for suggestions
    std::vector<std::string> module_paths;
    std::map<std::string, c10::ClassTypePtr> module_types;            // path -> class
    std::map<std::string, std::vector<std::string>> module_children;  // path -> child paths

    // layer listing, filled on first request
    bool layers_ready = false;
    std::vector<std::string> layer_names, layer_types;
    std::vector<int64_t> layer_params;
    std::vector<int> layer_calls;
    std::vector<std::vector<int64_t>> layer_shapes;

    // compiled tap graphs per (base, layer set)
    std::map<std::string, std::shared_ptr<am::TapPlan>> tap_cache;
};

namespace am {

// Returns the cached plan for these layers, building it on first use.
// Throws am::Error(AM_E_LAYER, ...) for unknown names.
std::shared_ptr<TapPlan> tap_plan(am_model *m, Base base, const std::vector<std::string> &layers);

// The same for optimization runs: eval-mode batch norms folded into the
// convolutions before them; cached per input shape (B, C, H, W). Values
// differ from the model's own arithmetic by rounding only.
std::shared_ptr<TapPlan> tap_plan(am_model *m, Base base, const std::vector<std::string> &layers, bool fast,
                                  const std::vector<int64_t> &in_shape);

// Runs a plan; inputs after the module. Returns (n) tensors. A tapped layer
// that forward did not call on this input (an `if` branch not taken) fails
// with AM_E_LAYER, or comes back undefined with allow_missing.
std::vector<torch::Tensor> tap_run(am_model *m, const TapPlan &plan, const torch::Tensor &input,
                                   bool allow_missing = false);

// Fills an am_tensor (caller-owned copy) from a tensor.
void tensor_out(const torch::Tensor &t, am_tensor *out);

// "[d0, d1, ...]"
std::string shape_str(c10::IntArrayRef s);

// How an image in [0, 1] display space (a run's image, a dataset's) becomes
// what the model takes: the model's value range [lo, hi], then mean/std.
// Runs and dataset examples both scale through this, so the two agree.
struct InputScale {
    torch::Tensor mean, sd;  // (1, C, 1, 1) on the device
    float lo = 0.f, hi = 1.f;
    InputScale(const am_model *m, torch::Device dev);
    // display -> the model's value range
    torch::Tensor value_range(const torch::Tensor &display) const {
        return lo != 0.f || hi != 1.f ? lo + (hi - lo) * display : display;
    }
    // display -> the model's input
    torch::Tensor operator()(const torch::Tensor &display) const { return (value_range(display) - mean) / sd; }
};

// The image dataset an image model's examples read (datasets.cpp): name is
// "fashion-mnist", "images" (path: a PNG folder, .npy or .pt file) or such a
// path itself; items come at the model's input shape. Throws Error with the
// reader's message; the caller frees the result with am_dataset_free.
am_dataset *open_image_dataset(const am_model *m, const std::string &name, const char *path, const char *split);

// The model's tokenizer (the metadata's "tokenizer" extra file), freed with
// the holder.
struct Tokenizer {
    am_tokenizer *t = nullptr;
    Tokenizer() = default;
    Tokenizer(const Tokenizer &) = delete;
    Tokenizer &operator=(const Tokenizer &) = delete;
    ~Tokenizer() { am_tokenizer_free(t); }
};

// Loads it; AM_E_UNSUPPORTED when the model carries none, AM_E_FORMAT when
// it does not parse.
void load_tokenizer(const am_model *m, Tokenizer &tok);

// OpenBLAS's thread pool set to libtorch's intra-op thread count (model.cpp),
// at the start of every run and scan.
void blas_follow_threads();

// m, once it has loaded; throws AM_E_ARG for NULL or a failed load.
inline am_model *checked(am_model *m) {
    if (!m) throw Error(AM_E_ARG, "model handle is NULL");
    if (!m->loaded || !m->graph) throw Error(AM_E_ARG, "the model did not load; see am_model_error");
    return m;
}

}  // namespace am

// The C boundary: every exported function body runs inside this fence so no
// exception ever crosses into C. `err` is a std::string lvalue to receive the
// message (or nullptr-able pointer expression).
#define AM_FENCE_BEGIN try {
#define AM_FENCE_END(errstr)                            \
    }                                                   \
    catch (const am::Error &e) {                        \
        am_set_error(errstr, e.what());                 \
        return e.status;                                \
    }                                                   \
    catch (const c10::Error &e) {                       \
        am_set_error(errstr, am::short_what(e.what())); \
        return AM_E_INTERNAL;                           \
    }                                                   \
    catch (const std::bad_alloc &) {                    \
        am_set_error(errstr, "out of memory");          \
        return AM_E_NOMEM;                              \
    }                                                   \
    catch (const std::exception &e) {                   \
        am_set_error(errstr, e.what());                 \
        return AM_E_INTERNAL;                           \
    }                                                   \
    catch (...) {                                       \
        am_set_error(errstr, "unknown C++ exception");  \
        return AM_E_INTERNAL;                           \
    }

inline void am_set_error(std::string *dst, const std::string &msg) {
    if (dst) {
        try {
            *dst = msg;
        } catch (...) {}
    }
}

namespace am {

// The constructors' contract (actmax.h): *out is set even on failure, so the
// caller can read the message from the handle and must free it; no
// exception crosses the boundary. H has a std::string `error`; body(h) does
// the work and throws on failure.
template <class H, class Body>
int construct(H **out, Body &&body) {
    if (!out) return AM_E_ARG;
    *out = nullptr;
    H *h = nullptr;
    try {
        h = new H();
    } catch (...) { return AM_E_NOMEM; }
    *out = h;
    AM_FENCE_BEGIN
    body(h);
    return AM_OK;
    AM_FENCE_END(&h->error)
}

}  // namespace am
