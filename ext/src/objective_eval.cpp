// objective_eval.cpp — the objective language evaluated on tapped
// activations: indexing (integers, slices, labels), averaging over the
// dimensions left, algebra, Lucid's diversity. Used by optimization runs
// (run.cpp, per batch element, with gradients) and by am_model_objective
// (every element of a batch at once, no gradients).
#include "objective_eval.hpp"

extern "C" {
#include "am_images.h"
}

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>

namespace am {

std::string shape_of(const torch::Tensor &t) {
    std::string r = "[";
    for (int64_t i = 0; i < t.dim(); i++) r += (i ? ", " : "") + std::to_string(t.size(i));
    return r + "]";
}

torch::Tensor diversity(const torch::Tensor &act) {
    int64_t B = act.size(0);
    if (B < 2 || act.dim() < 2) return torch::zeros({}, act.options());
    auto f = act.reshape({B, act.size(1), -1});
    auto gram = torch::bmm(f, f.transpose(1, 2)).reshape({B, -1});
    gram = gram / (gram.norm(2, {1}, true) + 1e-10);
    auto sim = torch::mm(gram, gram.t());
    return -(sim.sum() - sim.diagonal().sum()) / static_cast<double>(B);
}

// A layer reference's indices applied to its activation: element b's
// (b >= 0) or the whole batch's with the batch dimension in front (b < 0),
// the position of ctx.pos selected in whole-batch mode.
torch::Tensor index_tap(const ObjNode &n, int64_t b, EvalCtx &ctx) {
    torch::Tensor full = ctx.acts->at(n.layer);
    // One element: t is full[b] and indices start at dimension 0. The
    // whole batch: t keeps the batch dimension in front (lead = 1).
    const int64_t lead = b < 0 ? 1 : 0;
    torch::Tensor t = b < 0 ? full : full[b];
    int64_t dim = lead;
    const bool at_pos = b < 0 && ctx.pos >= 0;
    bool pos_done = false;
    for (size_t k = 0; k < n.index.size(); k++) {
        const auto &ix = n.index[k];
        if (k == 0 && at_pos && dim < t.dim()) {
            if (ctx.pos >= t.size(dim))
                throw ObjectiveError(ix.column, "position " + std::to_string(ctx.pos) + " is past the " +
                                                    std::to_string(t.size(dim)) + " positions of " + n.layer);
            t = t.select(dim, ctx.pos);
            pos_done = true;
            continue;
        }
        if (dim >= t.dim()) {
            throw ObjectiveError(ix.column, "too many indices: " + n.layer + " has shape " + shape_of(full[0]) +
                                                " (batch dimension left out)");
        }
        int64_t size = t.size(dim);
        int64_t v = ix.value;
        if (ix.kind == ObjIndex::kLabel) {
            const auto &labels = ctx.m->labels;
            auto f = std::find(labels.begin(), labels.end(), ix.label);
            if (f == labels.end()) {
                std::string close;
                std::vector<std::pair<size_t, std::string>> d;
                for (auto &l : labels) d.emplace_back(edit_distance(ix.label, l), l);
                std::sort(d.begin(), d.end());
                for (size_t i = 0; i < d.size() && i < 4; i++) close += (i ? ", " : "") + ("\"" + d[i].second + "\"");
                throw ObjectiveError(ix.column, labels.empty()
                                                    ? "the model has no labels; index by number instead"
                                                    : "unknown label \"" + ix.label + "\"; closest: " + close);
            }
            v = f - labels.begin();
        }
        if (ix.kind == ObjIndex::kSlice) {
            int64_t s = ix.has_start ? ix.start : 0, e = ix.has_stop ? ix.stop : size;
            if (s < 0) s += size;
            if (e < 0) e += size;
            s = std::clamp<int64_t>(s, 0, size);
            e = std::clamp<int64_t>(e, 0, size);
            if (e <= s)
                throw ObjectiveError(ix.column, "empty slice on dimension " + std::to_string(k) + " of " + n.layer +
                                                    " with shape " + shape_of(full[0]));
            t = t.slice(dim, s, e, ix.step);
            dim++;
            continue;
        }
        if (v < -size || v >= size) {
            bool text_pos = k == 0 && ctx.m->kind == "text" && full.dim() >= 3;
            throw ObjectiveError(
                ix.column, "index " + std::to_string(v) + " is out of range for dimension " + std::to_string(k) +
                               " (size " + std::to_string(size) + ") of " + n.layer + " with shape " +
                               shape_of(full[0]) +
                               (text_pos ? " (dimension 0 is the position: the prompt has " + std::to_string(size) +
                                               " tokens, so use 0.." + std::to_string(size - 1) + " or -1.." +
                                               std::to_string(-size) + ")"
                                         : " (batch dimension left out)"));
        }
        if (v < 0) v += size;
        t = t.select(dim, v);
    }
    if (b < 0 && at_pos && !pos_done) {
        if (t.dim() < 2 || ctx.pos >= t.size(1))
            throw ObjectiveError(n.column, n.layer + " has no position " + std::to_string(ctx.pos));
        t = t.select(1, ctx.pos);
    }
    return t;
}

// Lucid's direction objective: the dot product of the activation's channel
// vector with v at every position, times max(0.1, cos)^cossim_pow when the
// power is not 0, averaged over the positions left. The channel axis is the
// first after the batch for image models (NCHW, or (B, C) for linear
// layers) and the last for text models ((B, T, D)); indices written after
// the layer pick positions (text: the token, with the position rules of
// the rest of the language; images: after a ':' for the channel axis, as
// Lucid's direction_neuron takes one position, conv2[:, 3, 3]).
torch::Tensor direction_value(const ObjNode &n, int64_t b, EvalCtx &ctx) {
    const bool text = ctx.m->kind == "text";
    if (!text && !n.index.empty()) {
        const ObjIndex &c = n.index[0];
        if (c.kind != ObjIndex::kSlice || c.has_start || c.has_stop || c.step != 1)
            throw ObjectiveError(c.column,
                                 "direction() on an image layer keeps the whole channel axis, its first: write ':' "
                                 "there and index positions after it, e.g. direction(" +
                                     n.layer + "[:, 3, 3], ...) at row 3, column 3, or direction(" + n.layer +
                                     ", ...) averaged over every position");
    }
    const torch::Tensor &full = ctx.acts->at(n.layer);
    torch::Tensor t = index_tap(n, b, ctx);
    const int64_t lead = b < 0 ? 1 : 0;
    if (t.dim() <= lead)
        throw ObjectiveError(n.column, "direction() needs a channel axis, but the indices leave a single value of " +
                                           n.layer + " (shape " + shape_of(full[0]) +
                                           "); index positions only, e.g. direction(" + n.layer + "[-1], ...)");
    if (!text) t = t.movedim(lead, -1);  // channels last
    const int64_t C = t.size(-1);
    if (static_cast<int64_t>(n.vec.size()) != C) {
        std::string axis = text ? "last" : "channel";
        throw ObjectiveError(n.vec_column, "the direction has " + std::to_string(n.vec.size()) + " values but " +
                                               n.layer + " (shape " + shape_of(full[0]) + ", batch left out) has " +
                                               std::to_string(C) + " on its " + axis + " axis; give " +
                                               std::to_string(C) + " values");
    }
    auto v = torch::tensor(n.vec, torch::kDouble).to(t.device(), t.scalar_type());
    auto dot = (t * v).sum(-1);
    if (n.cossim_pow != 0) {
        constexpr double eps = 1e-4;  // Lucid's
        auto cos = dot / (t.norm(2, {-1}) + eps) / (v.norm() + eps);
        dot = dot * cos.clamp_min(0.1).pow(n.cossim_pow);
    }
    if (b >= 0) return dot.mean();
    return dot.reshape({dot.size(0), -1}).mean(1);
}

namespace {

std::vector<char> read_file(const std::string &path, int column) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw ObjectiveError(column, "cannot read the direction file " + path + ": " + std::strerror(errno));
    return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// A .npy file as doubles, with its shape: the header read as the image
// datasets read theirs (am__npy_read_header, ext/data).
std::vector<double> read_npy(const std::string &path, int column, std::vector<int64_t> &shape) {
    auto bad = [&](const std::string &why) -> ObjectiveError {
        return ObjectiveError(column, path + " is not a NumPy array file I can read: " + why);
    };
    std::unique_ptr<FILE, int (*)(FILE *)> f(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!f) throw ObjectiveError(column, "cannot read the direction file " + path + ": " + std::strerror(errno));
    am__npy_header hd;
    char err[512];
    if (am__npy_read_header(f.get(), path.c_str(), &hd, err, sizeof err) != AM_OK) throw ObjectiveError(column, err);
    // Fortran order changes nothing for a vector; matrices are refused by the caller.
    shape.assign(hd.shape, hd.shape + hd.ndim);
    int64_t count = 1;
    for (auto n : shape) count *= n;
    const std::string descr = hd.descr;
    const std::map<std::string, torch::ScalarType> types = {{"<f2", torch::kHalf},
                                                            {"<f4", torch::kFloat},
                                                            {"<f8", torch::kDouble},
                                                            {"<i4", torch::kInt},
                                                            {"<i8", torch::kLong}};
    auto it = types.find(descr);
    if (it == types.end()) throw bad("dtype " + descr + " (give float16, float32, float64, int32 or int64)");
    auto t = torch::empty({count}, it->second);
    const size_t bytes = static_cast<size_t>(count) * t.element_size();
    if (std::fread(t.data_ptr(), 1, bytes, f.get()) != bytes) throw bad("the data is shorter than the shape says");
    t = t.to(torch::kDouble);
    return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + count);
}

// A torch.save file of one tensor.
std::vector<double> read_pt(const std::vector<char> &d, const std::string &path, int column,
                            std::vector<int64_t> &shape) {
    c10::IValue v;
    try {
        v = torch::pickle_load(d);
    } catch (const std::exception &e) {
        throw ObjectiveError(column, path + " is not a tensor saved by torch.save: " + short_what(e.what(), 1));
    }
    if (!v.isTensor())
        throw ObjectiveError(column, path + " holds a " + v.tagKind() +
                                         ", not a tensor; save the vector alone: torch.save(v, \"" + path + "\")");
    auto t = v.toTensor().detach().to(torch::kCPU, torch::kDouble).contiguous();
    shape.assign(t.sizes().begin(), t.sizes().end());
    return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

}  // namespace

void load_directions(ObjNode &n) {
    if (n.kind == ObjNode::kDirection && !n.vec_path.empty()) {
        const std::string &path = n.vec_path;
        auto ends = [&](const char *ext) {
            size_t k = std::strlen(ext);
            return path.size() >= k && path.compare(path.size() - k, k, ext) == 0;
        };
        std::vector<int64_t> shape;
        if (ends(".npy"))
            n.vec = read_npy(path, n.vec_column, shape);
        else if (ends(".pt") || ends(".pth"))
            n.vec = read_pt(read_file(path, n.vec_column), path, n.vec_column, shape);
        else
            throw ObjectiveError(n.vec_column, "the direction file " + path +
                                                   " is neither .npy nor .pt; give a NumPy (.npy) or torch.save "
                                                   "(.pt) file of one vector, or the values as [v0, v1, ...]");
        int big = 0;
        for (auto s : shape) big += s > 1;
        if (big > 1 || n.vec.empty())
            throw ObjectiveError(n.vec_column, path + " holds an array of shape " + shape_str(shape) +
                                                   "; a direction is one vector (shape (C,)): save one row, "
                                                   "e.g. W_enc[:, i]");
    }
    if (n.a) load_directions(*n.a);
    if (n.b) load_directions(*n.b);
}

torch::Tensor eval_node(const ObjNode &n, int64_t b, EvalCtx &ctx) {
    switch (n.kind) {
    case ObjNode::kNum: return torch::full({}, n.num);
    case ObjNode::kNeg: return -eval_node(*n.a, b, ctx);
    case ObjNode::kAdd: return eval_node(*n.a, b, ctx) + eval_node(*n.b, b, ctx);
    case ObjNode::kSub: return eval_node(*n.a, b, ctx) - eval_node(*n.b, b, ctx);
    case ObjNode::kMul: return eval_node(*n.a, b, ctx) * eval_node(*n.b, b, ctx);
    case ObjNode::kDiv: {
        // The parser allows only a number after '/', so d is a scalar.
        auto d = eval_node(*n.b, b, ctx);
        if (d.item<double>() == 0.0) throw ObjectiveError(n.column, "division by zero");
        return eval_node(*n.a, b, ctx) / d;
    }
    case ObjNode::kDiversity: {
        if (b < 0)
            throw ObjectiveError(n.column,
                                 "diversity() compares the images of one batch with each other; "
                                 "it has no value for each image on its own");
        auto it = ctx.diversity_cache.find(n.layer);
        if (it != ctx.diversity_cache.end()) return it->second;
        auto d = diversity(ctx.acts->at(n.layer));
        ctx.diversity_cache[n.layer] = d;
        return d;
    }
    case ObjNode::kTap: {
        torch::Tensor t = index_tap(n, b, ctx);
        if (b >= 0) return t.mean();
        return t.reshape({t.size(0), -1}).mean(1);  // (B): the mean of each element's rest
    }
    case ObjNode::kDirection: return direction_value(n, b, ctx);
    }
    throw ObjectiveError(n.column, "internal: unknown node");
}

const ObjNode *find_diversity(const ObjNode &n) {
    if (n.kind == ObjNode::kDiversity) return &n;
    for (const ObjNode *c : {n.a.get(), n.b.get()})
        if (c)
            if (const ObjNode *d = find_diversity(*c)) return d;
    return nullptr;
}

std::vector<int64_t> input_shape(const am_input *input, const char *fn) {
    if (input->kind != AM_INPUT_FLOAT && input->kind != AM_INPUT_EMBEDS && input->kind != AM_INPUT_TOKENS)
        throw Error(AM_E_ARG, std::string(fn) +
                                  " takes AM_INPUT_FLOAT, AM_INPUT_TOKENS or AM_INPUT_EMBEDS inputs, got kind " +
                                  std::to_string(input->kind));
    if (input->kind == AM_INPUT_TOKENS ? !input->tokens : !input->data) throw Error(AM_E_ARG, "input without data");
    if (input->ndim < 1 || input->ndim > AM_MAX_DIMS) throw Error(AM_E_ARG, "input ndim must be 1..8");
    std::vector<int64_t> shape(input->shape, input->shape + input->ndim);
    for (auto d : shape)
        if (d <= 0) throw Error(AM_E_ARG, "input shape has a non-positive size");
    return shape;
}

std::vector<torch::Tensor> input_taps(am_model *m, const am_input *input, const std::vector<int64_t> &shape,
                                      const std::vector<std::string> &layers) {
    Base base = Base::kForward;
    if (input->kind == AM_INPUT_EMBEDS) {
        int st = am_model_embeddings(m, nullptr);
        if (st != AM_OK) throw Error(st, m->error);
        base = Base::kEmbeds;
    }
    auto plan = tap_plan(m, base, layers);  // unknown layers: AM_E_LAYER with the closest names
    auto x = input->kind == AM_INPUT_TOKENS
                 ? torch::from_blob(const_cast<int64_t *>(input->tokens), shape, torch::kLong)
                 : torch::from_blob(const_cast<float *>(input->data), shape, torch::kFloat);
    x = x.clone().to(m->device);
    try {
        return tap_run(m, *plan, x);
    } catch (const std::exception &e) {
        throw Error(AM_E_MODEL, "forward failed on input of shape " + shape_of(x) + ": " + short_what(e.what(), 2));
    }
}

}  // namespace am

using am::Error;

namespace {

// The body of am_model_objective and am_model_objective_positions: values
// (B) or, with positions, (B, T).
void model_objective(am_model *m, const am_input *input, const char *objective, float *values, bool positions) {
    if (!m->loaded || !m->graph) throw Error(AM_E_ARG, "the model did not load; see am_model_error");
    if (!input || !objective || !values)
        throw Error(AM_E_ARG, "am_model_objective needs an input, an objective and an array for the values");
    std::vector<int64_t> shape = am::input_shape(input, "am_model_objective");
    const int64_t B = shape[0];
    if (positions && (m->kind != "text" || input->kind == AM_INPUT_FLOAT || input->ndim < 2))
        throw Error(AM_E_UNSUPPORTED,
                    "per-position values need a text model and a (B, T) token or (B, T, D) "
                    "embedding input");

    const std::string src = objective;
    std::unique_ptr<am::ObjNode> root = am::parse_with_caret(src);
    if (const am::ObjNode *d = am::find_diversity(*root))
        throw Error(AM_E_OBJECTIVE,
                    am::objective_format_error(src, d->column,
                                               "diversity() compares the images of one batch with each other; "
                                               "it has no value for each image on its own (use it in a run)"));
    std::vector<std::string> layers;
    am::objective_layers(*root, layers);

    torch::NoGradGuard ng;
    auto outs = am::input_taps(m, input, shape, layers);
    am::Acts acts;
    for (size_t i = 0; i < layers.size(); i++) acts[layers[i]] = outs[i];
    const int64_t T = positions ? shape[1] : 1;
    for (int64_t t = 0; t < T; t++) {
        am::EvalCtx ctx{m, &acts, {}, positions ? t : -1};
        torch::Tensor v = am::with_caret(src, [&] { return am::eval_node(*root, -1, ctx); });
        v = v.to(torch::kCPU, torch::kFloat).expand({B}).contiguous();
        const float *pv = v.data_ptr<float>();
        for (int64_t i = 0; i < B; i++) values[i * T + t] = pv[i];
    }
}

}  // namespace

extern "C" int am_model_objective(am_model *m, const am_input *input, const char *objective, float *values) {
    if (!m) return AM_E_ARG;
    AM_FENCE_BEGIN
    model_objective(m, input, objective, values, false);
    return AM_OK;
    AM_FENCE_END(&m->error)
}

extern "C" int am_model_objective_positions(am_model *m, const am_input *input, const char *objective, float *values) {
    if (!m) return AM_E_ARG;
    AM_FENCE_BEGIN
    model_objective(m, input, objective, values, true);
    return AM_OK;
    AM_FENCE_END(&m->error)
}

namespace {

// The objective once per index of its one slice (am_objective_each).
std::vector<std::string> objective_each(am_model *m, const std::string &src) {
    std::unique_ptr<am::ObjNode> root = am::parse_with_caret(src);
    std::vector<const am::ObjIndex *> slices;
    am::objective_slices(*root, slices);
    if (slices.size() != 1)
        throw Error(AM_E_OBJECTIVE,
                    am::objective_format_error(src, slices.empty() ? 0 : slices[1]->column,
                                               slices.empty() ? "each needs one slice to sweep, e.g. conv2[0:16]"
                                                              : "each sweeps one slice; this objective has " +
                                                                    std::to_string(slices.size()) + ", keep one"));
    const am::ObjIndex &ix = *slices[0];
    // The node holding the slice, and which of its indices it is: index k
    // reads dimension k of the layer's output (batch left out).
    std::function<const am::ObjNode *(const am::ObjNode &)> owner = [&](const am::ObjNode &n) -> const am::ObjNode * {
        for (const auto &i : n.index)
            if (&i == &ix) return &n;
        for (const am::ObjNode *c : {n.a.get(), n.b.get()})
            if (c)
                if (const am::ObjNode *o = owner(*c)) return o;
        return nullptr;
    };
    const am::ObjNode *node = owner(*root);
    const int64_t k = &ix - node->index.data();
    // The dimension's size from one probe forward (batch 1, zeros).
    auto plan = am::tap_plan(m, am::Base::kForward, {node->layer});
    torch::NoGradGuard ng;
    std::vector<int64_t> s{1};
    s.insert(s.end(), m->input_shape.begin(), m->input_shape.end());
    auto opts = torch::TensorOptions().device(m->device).dtype(m->kind == "text" ? torch::kLong : torch::kFloat);
    torch::Tensor out = am::tap_run(m, *plan, torch::zeros(s, opts))[0];
    if (k + 1 >= out.dim())
        throw Error(AM_E_OBJECTIVE,
                    am::objective_format_error(src, ix.column,
                                               "too many indices: " + node->layer + " has shape " +
                                                   am::shape_of(out[0]) + " (batch dimension left out)"));
    const int64_t size = out.size(k + 1);
    int64_t a = ix.has_start ? ix.start : 0, e = ix.has_stop ? ix.stop : size;
    if (a < 0) a += size;
    if (e < 0) e += size;
    a = std::clamp<int64_t>(a, 0, size);
    e = std::clamp<int64_t>(e, 0, size);
    if (e <= a)
        throw Error(AM_E_OBJECTIVE,
                    am::objective_format_error(src, ix.column,
                                               "empty slice on dimension " + std::to_string(k) + " of " + node->layer +
                                                   " with shape " + am::shape_of(out[0])));
    constexpr int64_t kMaxUnits = 1024;
    const int64_t count = (e - a + ix.step - 1) / ix.step;
    if (count > kMaxUnits)
        throw Error(AM_E_ARG, "each would give " + std::to_string(count) + " objectives, more than " +
                                  std::to_string(kMaxUnits) + " in one batch; sweep a smaller slice");
    std::vector<std::string> units;
    for (int64_t i = a; i < e; i += ix.step)
        units.push_back(src.substr(0, static_cast<size_t>(ix.column)) + std::to_string(i) +
                        src.substr(static_cast<size_t>(ix.end_column)));
    return units;
}

}  // namespace

extern "C" int am_objective_each(am_model *m, const char *objective, char **units, int *count) {
    if (!m) return AM_E_ARG;
    AM_FENCE_BEGIN
    am::checked(m);
    if (!objective || !units || !count)
        throw Error(AM_E_ARG, "am_objective_each needs an objective and places for the units and their count");
    *units = nullptr;
    *count = 0;
    auto v = objective_each(m, objective);
    size_t total = 0;
    for (auto &u : v) total += u.size() + 1;
    char *buf = static_cast<char *>(std::malloc(total));
    if (!buf) throw std::bad_alloc();
    char *p = buf;
    for (auto &u : v) {
        std::memcpy(p, u.c_str(), u.size() + 1);
        p += u.size() + 1;
    }
    *units = buf;
    *count = static_cast<int>(v.size());
    return AM_OK;
    AM_FENCE_END(&m->error)
}
