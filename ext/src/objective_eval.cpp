// objective_eval.cpp — the objective language evaluated on tapped
// activations: indexing (integers, slices, labels), averaging over the
// dimensions left, algebra, Lucid's diversity. Used by optimization runs
// (run.cpp, per batch element, with gradients) and by am_model_objective
// (every element of a batch at once, no gradients).
#include "objective_eval.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>

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
                    for (size_t i = 0; i < d.size() && i < 4; i++)
                        close += (i ? ", " : "") + ("\"" + d[i].second + "\"");
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
        if (b >= 0) return t.mean();
        if (at_pos && !pos_done) {
            if (t.dim() < 2 || ctx.pos >= t.size(1))
                throw ObjectiveError(n.column, n.layer + " has no position " + std::to_string(ctx.pos));
            t = t.select(1, ctx.pos);
        }
        return t.reshape({t.size(0), -1}).mean(1);  // (B): the mean of each element's rest
    }
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

}  // namespace am

using am::Error;

namespace {

// The body of am_model_objective and am_model_objective_positions: values
// (B) or, with positions, (B, T).
void model_objective(am_model *m, const am_input *input, const char *objective, float *values, bool positions) {
    if (!m->loaded || !m->graph) throw Error(AM_E_ARG, "the model did not load; see am_model_error");
    if (!input || !objective || !values)
        throw Error(AM_E_ARG, "am_model_objective needs an input, an objective and an array for the values");
    if (input->kind != AM_INPUT_FLOAT && input->kind != AM_INPUT_EMBEDS && input->kind != AM_INPUT_TOKENS)
        throw Error(AM_E_ARG,
                    "am_model_objective takes AM_INPUT_FLOAT, AM_INPUT_TOKENS or AM_INPUT_EMBEDS "
                    "inputs, got kind " +
                        std::to_string(input->kind));
    bool tokens = input->kind == AM_INPUT_TOKENS;
    if (tokens ? !input->tokens : !input->data) throw Error(AM_E_ARG, "input without data");
    if (input->ndim < 1 || input->ndim > AM_MAX_DIMS) throw Error(AM_E_ARG, "input ndim must be 1..8");
    std::vector<int64_t> shape(input->shape, input->shape + input->ndim);
    for (auto d : shape)
        if (d <= 0) throw Error(AM_E_ARG, "input shape has a non-positive size");
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

    am::Base base = am::Base::kForward;
    if (input->kind == AM_INPUT_EMBEDS) {
        int st = am_model_embeddings(m, nullptr);
        if (st != AM_OK) throw Error(st, m->error);
        base = am::Base::kEmbeds;
    }
    auto plan = am::tap_plan(m, base, layers);  // unknown layers: AM_E_LAYER with the closest names

    torch::NoGradGuard ng;
    auto x = tokens ? torch::from_blob(const_cast<int64_t *>(input->tokens), shape, torch::kLong)
                    : torch::from_blob(const_cast<float *>(input->data), shape, torch::kFloat);
    x = x.clone().to(m->device);
    std::vector<torch::Tensor> outs;
    try {
        outs = am::tap_run(m, *plan, x);
    } catch (const std::exception &e) {
        throw Error(AM_E_MODEL,
                    "forward failed on input of shape " + am::shape_of(x) + ": " + am::short_what(e.what(), 2));
    }
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
