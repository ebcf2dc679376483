// objective_eval.hpp — objectives evaluated on tapped activations (libtorch).
// Shared by optimization runs (run.cpp) and am_model_objective.
#pragma once
#include <map>
#include <string>

#include "internal.hpp"
#include "objective.hpp"

namespace am {

using Acts = std::map<std::string, torch::Tensor>;  // layer -> (B, ...)

struct EvalCtx {
    const am_model *m;
    const Acts *acts;
    std::map<std::string, torch::Tensor> diversity_cache;
    // Text layers are (B, T, ...). With pos >= 0 (whole-batch mode only),
    // position pos stands in for the first index of every layer reference,
    // or is selected when there is none: the objective "at token pos", for
    // per-token colouring.
    int64_t pos = -1;
};

// "[d0, d1, ...]"
std::string shape_of(const torch::Tensor &t);

// Lucid's diversity: negative mean pairwise cosine similarity of the
// per-image Gram matrices (channels x channels) across the batch.
torch::Tensor diversity(const torch::Tensor &act);

// An am_input checked (kind, data, 1..8 positive dimensions; fn names the
// caller in the message): its shape.
std::vector<int64_t> input_shape(const am_input *input, const char *fn);

// The layers' activations on an am_input (tokens, floats, or embeddings
// through the model's embedding entry); unknown layers: AM_E_LAYER with the
// closest names, a failing forward: AM_E_MODEL with the input's shape.
std::vector<torch::Tensor> input_taps(am_model *m, const am_input *input, const std::vector<int64_t> &shape,
                                      const std::vector<std::string> &layers);

// The objective n for batch element b: a scalar tensor. With b < 0, for
// every element at once: (B) (diversity() is refused there, it is a
// property of the batch, not of an element). Same indexing, labels and
// averaging either way. Throws ObjectiveError (column, message) for bad
// indices, unknown labels, division by zero. Used for image runs, text
// runs, corpus scoring and am_model_objective alike.
torch::Tensor eval_node(const ObjNode &n, int64_t b, EvalCtx &ctx);

// The first diversity() node of the subtree, or null.
const ObjNode *find_diversity(const ObjNode &n);

// Runs f(); an ObjectiveError it throws becomes Error(AM_E_OBJECTIVE) quoting
// src with a caret under the column, so every parse and evaluation of an
// objective reports its failures the same way.
template <class F>
auto with_caret(const std::string &src, F &&f) -> decltype(f()) {
    try {
        return f();
    } catch (const ObjectiveError &e) { throw Error(AM_E_OBJECTIVE, objective_format_error(src, e.column, e.what())); }
}

// Reads the vector files of the subtree's direction() nodes (.npy: float16/32/64
// or int32/64, little-endian, C order; .pt: one tensor saved by torch.save)
// into their vec: every element of an array whose dimensions are all 1 but
// one. Throws ObjectiveError at the file name for an unreadable file, another
// format, a dict or a matrix.
void load_directions(ObjNode &n);

// parse_objective and load_directions, with their errors reported by with_caret.
inline std::unique_ptr<ObjNode> parse_with_caret(const std::string &src) {
    return with_caret(src, [&] {
        auto n = parse_objective(src);
        load_directions(*n);
        return n;
    });
}

}  // namespace am
