// lens.cpp — the logit lens of an MLP neuron: what the neuron writes into
// the residual stream (its column of the MLP's output projection) read
// through the unembedding, as TransformerLens' W_out[n] @ W_U and
// Neuronpedia's "top/bottom logits" show it. Found from the module tree, so
// GPT-2 (c_proj), Llama (down_proj), OPT (fc2) and this project's models
// (proj) are served without naming conventions.
#include <algorithm>

#include "internal.hpp"

using am::Error;

namespace {

torch::jit::Module submodule(const torch::jit::Module &root, const std::string &path) {
    torch::jit::Module mod = root;
    size_t b = 0;
    while (b <= path.size()) {
        size_t e = path.find('.', b);
        if (e == std::string::npos) e = path.size();
        mod = mod.attr(path.substr(b, e - b)).toModule();
        b = e + 1;
    }
    return mod;
}

bool is_linear(const am_model *m, const std::string &path) {
    auto it = m->module_types.find(path);
    if (it == m->module_types.end() || !it->second || !it->second->name()) return false;
    return it->second->name()->name() == "Linear";
}

torch::Tensor weight_of(const am_model *m, const std::string &path) {
    auto mod = submodule(m->module, path);
    if (!mod.hasattr("weight")) return {};
    auto w = mod.attr("weight");
    return w.isTensor() ? w.toTensor().detach() : torch::Tensor();
}

std::string closest_modules(const am_model *m, const std::string &name) {
    std::vector<std::pair<size_t, std::string>> d;
    for (auto &p : m->module_paths) d.emplace_back(am::edit_distance(name, p), p);
    std::sort(d.begin(), d.end());
    std::string r;
    for (size_t i = 0; i < d.size() && i < 4; i++) r += (i ? ", " : "") + d[i].second;
    return r;
}

// The (vocab) values of the neuron's output direction through the unembedding.
torch::Tensor lens_values(am_model *m, const std::string &layer, int64_t neuron, std::string *unembed_name) {
    if (m->kind != "text")
        throw Error(AM_E_UNSUPPORTED, "the logit lens reads a neuron through the unembedding of a text model; " +
                                          std::string("this is an ") + m->kind + " model");
    if (!m->module_types.count(layer))
        throw Error(AM_E_LAYER, "no module " + layer +
                                    " (the logit lens takes a module path, e.g. "
                                    "blocks.1.mlp.act); closest: " +
                                    closest_modules(m, layer));
    size_t dot = layer.rfind('.');
    std::string parent = dot == std::string::npos ? "" : layer.substr(0, dot);
    static const std::vector<std::string> none;
    auto kit = m->module_children.find(parent);
    const auto &kids = kit == m->module_children.end() ? none : kit->second;
    auto self = std::find(kids.begin(), kids.end(), layer);
    // The layer's width, from its output on a probe forward, when listed.
    int64_t width = -1;
    if (am_model_num_layers(m) > 0)
        for (size_t i = 0; i < m->layer_names.size(); i++)
            if (m->layer_names[i] == layer && !m->layer_shapes[i].empty()) width = m->layer_shapes[i].back();
    std::string out_name;
    torch::Tensor w_out;  // (D, hidden)
    for (auto it = self; it != kids.end(); ++it) {
        if (it == self || !is_linear(m, *it)) continue;
        auto w = weight_of(m, *it);
        if (w.defined() && w.dim() == 2 && (width < 0 || w.size(1) == width)) {
            out_name = *it;
            w_out = w;
            break;
        }
    }
    if (!w_out.defined())
        throw Error(AM_E_UNSUPPORTED,
                    "found no output projection after " + layer +
                        ": the logit lens needs an MLP's hidden layer "
                        "followed, in the same parent module, by the Linear that writes back to the residual stream "
                        "(c_proj, down_proj, fc2), e.g. blocks.1.mlp.act" +
                        (width > 0 ? " (" + layer + " has width " + std::to_string(width) + ")" : ""));
    const int64_t hidden = w_out.size(1), D = w_out.size(0);
    if (neuron < 0 || neuron >= hidden)
        throw Error(AM_E_ARG, "neuron " + std::to_string(neuron) + " is out of range: " + layer + " has " +
                                  std::to_string(hidden) + " neurons (0.." + std::to_string(hidden - 1) + ")");
    // The unembedding: the last Linear (vocab, D) of the model, else the
    // embedding matrix (a tied unembedding written as x @ E^T).
    int st = am_model_embeddings(m, nullptr);
    int64_t V = st == AM_OK && m->embedding.defined() ? m->embedding.size(0) : -1;
    torch::Tensor w_u;
    for (auto &p : m->module_paths) {
        if (!is_linear(m, p)) continue;
        auto w = weight_of(m, p);
        if (w.defined() && w.dim() == 2 && w.size(1) == D && (V < 0 ? w.size(0) > D : w.size(0) == V)) {
            w_u = w;
            *unembed_name = p;
        }
    }
    if (!w_u.defined() && V > 0 && m->embedding.size(1) == D) {
        w_u = m->embedding;
        *unembed_name = "the token embedding (tied)";
    }
    if (!w_u.defined())
        throw Error(AM_E_UNSUPPORTED, "found no unembedding: no Linear module with a (vocab, " + std::to_string(D) +
                                          ") weight and no token embedding of width " + std::to_string(D));
    torch::NoGradGuard ng;
    auto col = w_out.select(1, neuron).to(torch::kFloat);
    return torch::mv(w_u.to(torch::kFloat), col.to(w_u.device())).to(torch::kCPU).contiguous();
}

}  // namespace

extern "C" int am_logit_lens(am_model *m, const char *layer, int64_t neuron, int k, int64_t *top_ids, float *top_values,
                             int64_t *bottom_ids, float *bottom_values, am_tensor *all) {
    if (!m) return AM_E_ARG;
    AM_FENCE_BEGIN
    am::checked(m);
    if (!layer || !layer[0]) throw Error(AM_E_ARG, "am_logit_lens needs a layer, e.g. blocks.1.mlp.act");
    if (k < 0) throw Error(AM_E_ARG, "k must be >= 0");
    if (k > 0 && (!top_ids || !top_values || !bottom_ids || !bottom_values))
        throw Error(AM_E_ARG, "k > 0 needs the four arrays of k");
    std::string unembed;
    auto v = lens_values(m, layer, neuron, &unembed);
    if (k > v.size(0))
        throw Error(AM_E_ARG, "k=" + std::to_string(k) + " is more than the " + std::to_string(v.size(0)) +
                                  " tokens of the vocabulary");
    if (k > 0) {
        auto top = v.topk(k, 0, true, true);
        auto bot = v.topk(k, 0, false, true);
        auto tv = std::get<0>(top), ti = std::get<1>(top).to(torch::kLong);
        auto bv = std::get<0>(bot), bi = std::get<1>(bot).to(torch::kLong);
        std::copy_n(tv.data_ptr<float>(), k, top_values);
        std::copy_n(ti.data_ptr<int64_t>(), k, top_ids);
        std::copy_n(bv.data_ptr<float>(), k, bottom_values);
        std::copy_n(bi.data_ptr<int64_t>(), k, bottom_ids);
    }
    if (all) am::tensor_out(v, all);
    return AM_OK;
    AM_FENCE_END(&m->error)
}
