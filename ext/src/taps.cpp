// taps.cpp — the engine's central idea: reading any module's output by
// editing the TorchScript graph (no hooks), the layer list, the speed edits
// of runs' tap graphs, and the embedding edit for text models.
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <iostream>
#include <functional>
#include <set>

#include "internal.hpp"

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

namespace am {

// ============================================================ module paths

// Joins a call-stack entry to the path so far. A module held in a
// ModuleList/ModuleDict is called without its container (the container has
// no forward), so when prefix.name is no module, look one container deeper,
// preferring a module of the same class.
static std::string join_path(const am_model *m, const std::string &prefix, const std::string &name,
                             const c10::ClassTypePtr &type) {
    std::string direct = prefix.empty() ? name : prefix + "." + name;
    if (!m || m->module_types.count(direct)) return direct;
    std::string fallback;
    auto kids = m->module_children.find(prefix);
    if (kids != m->module_children.end()) {
        for (const auto &c : kids->second) {
            auto it = m->module_types.find(c + "." + name);
            if (it == m->module_types.end()) continue;
            if (it->second == type) return it->first;
            if (fallback.empty()) fallback = it->first;
        }
    }
    return fallback.empty() ? direct : fallback;
}

// Module path of a node from its inlined call stack; entries named SELF are
// calls to another method of the same module (scripted _forward_impl).
static std::string node_path(const am_model *m, const Node *n) {
    auto cs = n->callstack();
    std::string path;
    if (!cs) return path;
    auto cur = *cs;
    while (cur) {
        auto mi = cur->module_instance();
        if (mi) {
            std::string name = mi->instance_name();
            if (name != "SELF" && !name.empty()) path = join_path(m, path, name, mi->class_type());
        }
        auto next = cur->callee();
        if (!next) break;
        cur = *next;
    }
    return path;
}

// The call-stack entry at the given depth of non-SELF entries, as a way to
// tell two calls of the same module apart.
static std::string call_site(const am_model *m, const Node *n, const std::string &target) {
    auto cs = n->callstack();
    if (!cs) return "";
    auto cur = *cs;
    std::string path;
    while (cur) {
        auto mi = cur->module_instance();
        if (mi && mi->instance_name() != "SELF" && !mi->instance_name().empty()) {
            path = join_path(m, path, mi->instance_name(), mi->class_type());
            if (path == target) {
                auto r = cur->source_range();
                return cur->function_name() + "@" + std::to_string(r.start()) + ":" + std::to_string(r.end());
            }
        }
        auto next = cur->callee();
        if (!next) break;
        cur = *next;
    }
    return "";
}

static bool path_within(const std::string &path, const std::string &prefix) {
    return path == prefix ||
           (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 && path[prefix.size()] == '.');
}

struct LayerSpec {
    std::string name;  // module path
    int call = 0;      // 1-based; 0 = last
    int elem = -1;     // tuple element; -1 = default
};

static LayerSpec parse_spec(const std::string &s) {
    LayerSpec sp;
    std::string rest = s;
    size_t colon = rest.rfind(':');
    if (colon != std::string::npos) {
        std::string e = rest.substr(colon + 1);
        if (e.empty() || !std::all_of(e.begin(), e.end(), ::isdigit))
            throw Error(AM_E_LAYER, "bad tuple element in '" + s + "': expected path:N with N a number, e.g. lstm:0");
        sp.elem = std::stoi(e);
        rest = rest.substr(0, colon);
    }
    size_t hash = rest.rfind('#');
    if (hash != std::string::npos) {
        std::string c = rest.substr(hash + 1);
        if (c.empty() || !std::all_of(c.begin(), c.end(), ::isdigit) || std::stoi(c) < 1)
            throw Error(AM_E_LAYER, "bad call number in '" + s + "': expected path#K with K >= 1, e.g. relu#2");
        sp.call = std::stoi(c);
        rest = rest.substr(0, hash);
    }
    sp.name = rest;
    return sp;
}

// Closest module paths named when a layer is unknown: enough to spot a
// typo, few enough to read in one line.
constexpr size_t kSuggestions = 5;

static std::string suggest(const am_model *m, const std::string &name) {
    std::vector<std::pair<size_t, std::string>> d;
    for (auto &p : m->module_paths) d.emplace_back(edit_distance(name, p), p);
    std::sort(d.begin(), d.end());
    std::string r;
    for (size_t i = 0; i < d.size() && i < kSuggestions; i++) r += (i ? ", " : "") + d[i].second;
    return r;
}

// The node of block b that holds n (n itself when n sits in b); null when n
// is outside b.
static Node *owner(Node *n, torch::jit::Block *b) {
    while (n && n->owningBlock() != b) n = n->owningBlock()->owningNode();
    return n;
}

// ------------------------------------------------------------ walking forward

// One step of forward as the layer list and the taps see it. Module calls
// inside a scripted `if`/`while` are reached by descending into the control
// node's blocks; a control node that calls no module (a BatchNorm's input
// check, its `if self.training`) carries no call stack after inlining and is
// "neutral": it does not cut the run of the module around it, so such a
// module counts one call, as a forward hook sees it.
struct Step {
    Node *node = nullptr;  // null: the border of a descended block
    std::string path;      // module path; "" for the model's own code
    torch::jit::Block *block = nullptr;
    bool neutral = false;  // control flow calling no module
    std::string keep;      // borders: runs of modules containing keep go on
};

static bool calls_module(const am_model *m, const Node *n) {
    for (const torch::jit::Block *b : n->blocks())
        for (const Node *k : b->nodes())
            if (!node_path(m, k).empty() || calls_module(m, k)) return true;
    return false;
}

// The deepest module path holding every module call inside n.
static std::string common_path(const am_model *m, const Node *n) {
    std::vector<std::string> all;
    std::function<void(const Node *)> add = [&](const Node *x) {
        for (const torch::jit::Block *b : x->blocks())
            for (const Node *k : b->nodes()) {
                std::string p = node_path(m, k);
                if (!p.empty()) all.push_back(p);
                add(k);
            }
    };
    add(n);
    if (all.empty()) return "";
    std::string c = all[0];
    for (auto &p : all)
        while (!c.empty() && !path_within(p, c)) {
            size_t dot = c.rfind('.');
            c = dot == std::string::npos ? "" : c.substr(0, dot);
        }
    return c;
}

static void walk(const am_model *m, torch::jit::Block *b, std::vector<Step> &out) {
    for (Node *n : b->nodes()) {
        if (n->kind() == c10::prim::Constant) continue;
        std::string p = node_path(m, n);
        if (p.empty() && !n->blocks().empty()) {
            if (!calls_module(m, n)) {
                out.push_back({n, "", b, true, ""});
                continue;
            }
            std::string keep = common_path(m, n);
            for (torch::jit::Block *inner : n->blocks()) {
                out.push_back({nullptr, "", nullptr, false, keep});
                walk(m, inner, out);
            }
            out.push_back({nullptr, "", nullptr, false, keep});
            continue;
        }
        out.push_back({n, p, b, false, ""});
    }
}

// An empty tensor stands for "not called" in the branch that does not call
// the tapped module; real activations are never empty.
static torch::Tensor not_called() { return torch::empty({0}); }

// Carries v, made inside a control node's block, out to the graph's top
// block: an extra output of each enclosing `if` (the other branches give
// not_called()), an extra loop-carried value of each enclosing loop (its
// value after the last iteration, as a hook's last call sees it).
static Value *lift(Graph &g, Value *v, torch::jit::Block *b) {
    while (b != g.block()) {
        Node *n = b->owningNode();
        if (n->kind() == c10::prim::If) {
            for (torch::jit::Block *bb : n->blocks()) {
                if (bb == b) {
                    bb->registerOutput(v);
                } else {
                    torch::jit::WithInsertPoint ip(bb->return_node());
                    bb->registerOutput(g.insertConstant(not_called()));
                }
            }
        } else if (n->kind() == c10::prim::Loop) {
            torch::jit::WithInsertPoint ip(n);
            n->addInput(g.insertConstant(not_called()));
            b->addInput()->setType(c10::TensorType::get());
            b->registerOutput(v);
        } else {
            throw Error(AM_E_UNSUPPORTED, std::string("a layer inside ") + n->kind().toQualString() +
                                              " cannot be tapped (only if and while blocks)");
        }
        v = n->addOutput();
        v->setType(c10::TensorType::get());
        b = n->owningBlock();
    }
    return v;
}

// ============================================================ tap plans

// ------------------------------------------------------------ speed edits
// Used only by optimization runs (taps keep the model's own arithmetic so
// they match forward hooks exactly).

// The tensor behind a chain of prim::GetAttr from the module input, if any.
static c10::optional<c10::IValue> attr_value(const am_model *m, const Graph &g, Value *v) {
    if (v->type()->kind() == c10::TypeKind::NoneType) return c10::IValue();
    if (auto c = torch::jit::toIValue(v)) return c;
    std::vector<std::string> names;
    while (v->node()->kind() == c10::prim::GetAttr) {
        names.push_back(v->node()->s(c10::attr::name));
        v = v->node()->inputs()[0];
    }
    if (v != g.inputs()[0]) return c10::nullopt;
    c10::IValue cur = m->module._ivalue();
    for (auto it = names.rbegin(); it != names.rend(); ++it) {
        if (!cur.isObject()) return c10::nullopt;
        cur = cur.toObject()->getAttr(*it);
    }
    return cur;
}

// An int[] argument known when the graph is built: a constant, or (as
// tracing writes them) a list built from int constants.
static c10::optional<std::vector<int64_t>> int_list(Value *v) {
    if (auto c = torch::jit::constant_as<std::vector<int64_t>>(v)) return c;
    if (v->node()->kind() != c10::prim::ListConstruct) return c10::nullopt;
    std::vector<int64_t> r;
    for (Value *e : v->node()->inputs()) {
        auto i = torch::jit::constant_as<int64_t>(e);
        if (!i) return c10::nullopt;
        r.push_back(*i);
    }
    return r;
}

static bool is_conv(const Node *n) {
    if (n->kind() == c10::aten::conv2d) return true;
    if (n->kind() != c10::aten::_convolution) return false;
    auto tr = torch::jit::constant_as<bool>(n->inputs()[6]);
    return tr.has_value() && !*tr;
}

// Folds eval-mode batch norms into the convolution before them: one
// memory-bound pass (and its backward) less per BN.
static void fold_batch_norms(const am_model *m, Graph &g) {
    std::vector<Node *> bns;
    for (Node *n : g.block()->nodes())
        if (n->kind() == c10::aten::batch_norm) bns.push_back(n);
    for (Node *bn : bns) {
        Value *in = bn->inputs()[0];
        Node *conv = in->node();
        if (!is_conv(conv) || in->uses().size() != 1) continue;
        auto training = torch::jit::constant_as<bool>(bn->inputs()[5]);
        auto eps = torch::jit::constant_as<double>(bn->inputs()[7]);
        if (!training || *training || !eps) continue;
        auto w = attr_value(m, g, conv->inputs()[1]);
        auto b = attr_value(m, g, conv->inputs()[2]);
        auto gamma = attr_value(m, g, bn->inputs()[1]);
        auto beta = attr_value(m, g, bn->inputs()[2]);
        auto mean = attr_value(m, g, bn->inputs()[3]);
        auto var = attr_value(m, g, bn->inputs()[4]);
        if (!w || !b || !gamma || !beta || !mean || !var || !w->isTensor() || !mean->isTensor() || !var->isTensor())
            continue;
        torch::Tensor W = w->toTensor();
        torch::Tensor scale = torch::rsqrt(var->toTensor() + *eps);
        if (gamma->isTensor()) scale = scale * gamma->toTensor();
        torch::Tensor bias = b->isTensor() ? b->toTensor() : torch::zeros_like(mean->toTensor());
        bias = (bias - mean->toTensor()) * scale;
        if (beta->isTensor()) bias = bias + beta->toTensor();
        std::vector<int64_t> view(static_cast<size_t>(W.dim()), 1);
        view[0] = -1;
        torch::Tensor W2 = (W * scale.reshape(view)).contiguous();
        torch::jit::WithInsertPoint guard(conv);
        conv->replaceInput(1, g.insertConstant(W2));
        conv->replaceInput(2, g.insertConstant(bias.contiguous()));
        bn->output()->replaceAllUsesWith(in);
        bn->destroy();
    }
}

// On CPU, libtorch's input gradient of a convolution with few input
// channels (the RGB stem: 3 -> 64, 7x7, stride 2) is several times slower
// than the same product written as a transposed convolution (15 ms against
// 4.5 ms at 224x224 here). When the image feeds exactly one such
// convolution, it is taken out of the graph: the graph gets the
// convolution's output as input, and tap_run applies the convolution first
// through StemConvFn, whose backward is conv_transpose2d.
static void extract_stem(const am_model *m, Graph &g, TapPlan &plan) {
    if (!m->device.is_cpu()) return;
    Value *x = g.inputs()[1];
    if (x->uses().size() != 1) return;
    Node *conv = x->uses()[0].user;
    if (!is_conv(conv) || x->uses()[0].offset != 0) return;
    auto w = attr_value(m, g, conv->inputs()[1]);
    auto b = attr_value(m, g, conv->inputs()[2]);
    auto stride = int_list(conv->inputs()[3]);
    auto pad = int_list(conv->inputs()[4]);
    auto dil = int_list(conv->inputs()[5]);
    auto groups = torch::jit::constant_as<int64_t>(conv->inputs()[conv->kind() == c10::aten::conv2d ? 6 : 8]);
    if (!w || !b || !w->isTensor() || !stride || !pad || !dil || !groups || *groups != 1) return;
    if (w->toTensor().dim() != 4 || w->toTensor().size(1) > 4 || stride->size() != 2 || pad->size() != 2 ||
        dil->size() != 2)
        return;
    plan.has_stem = true;
    plan.stem_w = w->toTensor();
    if (b->isTensor()) plan.stem_b = b->toTensor();
    plan.stem_stride = *stride;
    plan.stem_pad = *pad;
    plan.stem_dil = *dil;
    Value *features = g.insertInput(2, "stem");
    features->setType(c10::TensorType::get());
    conv->output()->replaceAllUsesWith(features);
    conv->destroy();
    g.eraseInput(1);
}

// Puts the kernels of fastops.cpp in place of the convolutions and max
// pools they do faster; each stays alive in the plan.
static void use_fast_ops(const am_model *m, Graph &g, TapPlan &plan) {
    if (!m->device.is_cpu()) return;
    std::vector<Node *> todo;
    for (Node *n : g.block()->nodes())
        if (is_conv(n) || n->kind() == c10::aten::max_pool2d) todo.push_back(n);
    for (Node *n : todo) {
        std::shared_ptr<FastOp> op;
        if (n->kind() == c10::aten::max_pool2d) {
            auto k = int_list(n->inputs()[1]);
            auto st = int_list(n->inputs()[2]);
            auto pd = int_list(n->inputs()[3]);
            auto dl = int_list(n->inputs()[4]);
            auto ceil = torch::jit::constant_as<bool>(n->inputs()[5]);
            if (!k || !st || !pd || !dl || !ceil) continue;
            op = fast_max_pool(*k, st->empty() ? *k : *st, *pd, *dl, *ceil);
        } else {
            auto w = attr_value(m, g, n->inputs()[1]);
            auto b = attr_value(m, g, n->inputs()[2]);
            auto st = int_list(n->inputs()[3]);
            auto pd = int_list(n->inputs()[4]);
            auto dl = int_list(n->inputs()[5]);
            auto groups = torch::jit::constant_as<int64_t>(n->inputs()[n->kind() == c10::aten::conv2d ? 6 : 8]);
            if (!w || !b || !w->isTensor() || !st || !pd || !dl || !groups) continue;
            op = fast_conv(w->toTensor(), b->isTensor() ? b->toTensor() : torch::Tensor(), *st, *pd, *dl, *groups);
        }
        if (!op) continue;
        torch::jit::WithInsertPoint guard(n);
        Value *id = g.insertConstant(op->id);
        Node *f = g.create(c10::Symbol::fromQualString("actmax::fast"), {n->inputs()[0], id}, 1);
        f->insertBefore(n);
        f->output()->setType(n->outputs()[0]->type());
        n->outputs()[0]->replaceAllUsesWith(f->output());
        n->destroy();
        plan.fast_ops.push_back(op);
    }
}

struct StemConvFn : public torch::autograd::Function<StemConvFn> {
    static torch::Tensor forward(torch::autograd::AutogradContext *ctx, torch::Tensor x, torch::Tensor w,
                                 c10::optional<torch::Tensor> b, std::vector<int64_t> stride, std::vector<int64_t> pad,
                                 std::vector<int64_t> dil) {
        ctx->save_for_backward({w});
        ctx->saved_data["stride"] = stride;
        ctx->saved_data["pad"] = pad;
        ctx->saved_data["dil"] = dil;
        ctx->saved_data["h"] = x.size(2);
        ctx->saved_data["w"] = x.size(3);
        return torch::conv2d(x, w, b, stride, pad, dil, /*groups=*/1);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                   torch::autograd::variable_list grads) {
        torch::Tensor w = ctx->get_saved_variables()[0];
        torch::Tensor gy = grads[0];
        auto stride = ctx->saved_data["stride"].toIntVector();
        auto pad = ctx->saved_data["pad"].toIntVector();
        auto dil = ctx->saved_data["dil"].toIntVector();
        int64_t in[2] = {ctx->saved_data["h"].toInt(), ctx->saved_data["w"].toInt()};
        std::vector<int64_t> outpad(2);
        // The rows/columns the strided forward never reached.
        for (size_t i = 0; i < 2; i++)
            outpad[i] = in[i] - ((gy.size(static_cast<int64_t>(i) + 2) - 1) * stride[i] - 2 * pad[i] +
                                 dil[i] * (w.size(static_cast<int64_t>(i) + 2) - 1) + 1);
        torch::Tensor gx = torch::conv_transpose2d(gy, w, {}, stride, pad, outpad, /*groups=*/1, dil);
        return {gx, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
};

std::shared_ptr<TapPlan> tap_plan(am_model *m, Base base, const std::vector<std::string> &layers) {
    return tap_plan(m, base, layers, /*fast=*/false, {});
}

std::shared_ptr<TapPlan> tap_plan(am_model *m, Base base, const std::vector<std::string> &layers, bool fast,
                                  const std::vector<int64_t> &in_shape) {
    std::string key = base == Base::kEmbeds ? "E" : "F";
    if (fast) {
        key += "fast";
        for (auto d : in_shape) key += ":" + std::to_string(d);
    }
    for (auto &l : layers) key += "\n" + l;
    auto it = m->tap_cache.find(key);
    if (it != m->tap_cache.end()) return it->second;

    auto src = base == Base::kEmbeds ? m->embed_graph : m->graph;
    if (!src)
        throw Error(AM_E_UNSUPPORTED, "the model has not been prepared for embeddings; call am_model_embeddings first");
    std::shared_ptr<Graph> g = src->copy();
    auto *top = g->block();

    std::vector<Step> steps;
    walk(m, top, steps);
    std::vector<Value *> tapped;
    std::vector<bool> conditional;  // (n) the tap sits in an if/while block
    for (auto &full : layers) {
        LayerSpec sp = parse_spec(full);
        bool is_module = std::find(m->module_paths.begin(), m->module_paths.end(), sp.name) != m->module_paths.end();
        if (sp.name == "output" && !is_module) {
            if (sp.call > 1) throw Error(AM_E_LAYER, "'output' has only one call");
            Value *v = g->outputs()[0];
            if (v->node()->kind() == c10::prim::TupleConstruct) v = v->node()->inputs()[sp.elem < 0 ? 0 : sp.elem];
            Node *c = g->create(c10::aten::clone, {v, g->insertConstant(c10::IValue())});
            c->insertBefore(g->return_node());
            c->output()->setType(v->type());
            tapped.push_back(c->output());
            conditional.push_back(false);
            continue;
        }
        if (!is_module) {
            if (m->module_paths.empty())
                throw Error(AM_E_LAYER, "unknown layer '" + sp.name +
                                            "': this model has no submodules to tap; "
                                            "only its output can be named ('output')");
            throw Error(AM_E_LAYER, "unknown layer '" + sp.name + "'; closest: " + suggest(m, sp.name) +
                                        " (the model's layer list names them all)");
        }
        // Split the module's steps into calls: a call is a run of its steps
        // from one call site, not interrupted by other modules' or the
        // model's own code (neutral control flow sandwiched in a run joins
        // it), nor by entering or leaving a block outside the module.
        std::vector<std::vector<Node *>> calls;
        bool in_run = false;
        std::string site;
        std::vector<Node *> pending;  // neutral steps since the run's last node
        for (const Step &st : steps) {
            if (!st.node) {
                if (!path_within(st.keep, sp.name)) in_run = false;
                pending.clear();
                continue;
            }
            if (st.neutral) {
                if (in_run) pending.push_back(st.node);
                continue;
            }
            if (!path_within(st.path, sp.name)) {
                in_run = false;
                pending.clear();
                continue;
            }
            std::string s = call_site(m, st.node, sp.name);
            if (!in_run || s != site) {
                calls.emplace_back();
                pending.clear();
            }
            for (Node *q : pending) calls.back().push_back(q);
            pending.clear();
            calls.back().push_back(st.node);
            in_run = true;
            site = s;
        }
        if (calls.empty())
            throw Error(AM_E_LAYER, "layer '" + sp.name + "' is never called by forward (nothing to read)");
        if (sp.call > static_cast<int>(calls.size()))
            throw Error(AM_E_LAYER, "layer '" + sp.name + "' is called " + std::to_string(calls.size()) +
                                        " time(s); '#" + std::to_string(sp.call) + "' does not exist (use #1..#" +
                                        std::to_string(calls.size()) + ")");
        const auto &call = calls[sp.call ? static_cast<size_t>(sp.call - 1) : calls.size() - 1];
        // The block the call runs in, and its nodes there (a control node
        // of the module's own code stands for the calls inside it).
        torch::jit::Block *blk = call.front()->owningBlock();
        std::vector<Node *> here;
        std::set<Node *> in_call;
        for (Node *n : call) {
            Node *o = owner(n, blk);
            if (!o) throw Error(AM_E_UNSUPPORTED, "layer '" + full + "' spans blocks of forward and cannot be tapped");
            if (in_call.insert(o).second) here.push_back(o);
        }
        // The call's output: the last tensor (or tuple) value made inside
        // the call and used outside it.
        Value *out = nullptr;
        for (Node *n : here) {
            for (Value *v : n->outputs()) {
                auto kind = v->type()->kind();
                if (kind != c10::TypeKind::TensorType && kind != c10::TypeKind::TupleType) continue;
                bool escapes = false;
                for (auto &u : v->uses()) {
                    Node *o = owner(u.user, blk);
                    if (!o || o == blk->return_node() || !in_call.count(o)) {
                        escapes = true;
                        break;
                    }
                }
                if (escapes) out = v;
            }
        }
        if (!out) throw Error(AM_E_LAYER, "layer '" + full + "' produces no tensor used by the rest of the model");
        Node *last = here.back();
        Value *v = out;
        if (v->type()->kind() == c10::TypeKind::TupleType) {
            if (v->node()->kind() != c10::prim::TupleConstruct)
                throw Error(AM_E_UNSUPPORTED, "layer '" + full + "' returns a tuple that cannot be taken apart");
            size_t k = sp.elem < 0 ? 0 : static_cast<size_t>(sp.elem);
            if (k >= v->node()->inputs().size())
                throw Error(AM_E_LAYER, "layer '" + sp.name + "' returns a tuple of " +
                                            std::to_string(v->node()->inputs().size()) + "; element " +
                                            std::to_string(k) + " does not exist");
            v = v->node()->inputs()[k];
            if (v->type()->kind() != c10::TypeKind::TensorType)
                throw Error(AM_E_UNSUPPORTED,
                            "element " + std::to_string(k) + " of layer '" + sp.name + "' is not a tensor");
        } else if (sp.elem > 0) {
            throw Error(AM_E_LAYER, "layer '" + sp.name +
                                        "' returns one tensor, not a tuple; drop ':" + std::to_string(sp.elem) + "'");
        }
        // Copy the value right after the call so later in-place ops (a
        // ReLU(inplace=True), `out += identity`) cannot change what the tap
        // reads: this is what a forward hook sees at that moment.
        Node *c = g->create(c10::aten::clone, {v, g->insertConstant(c10::IValue())});
        c->insertAfter(last);
        c->inputs()[1]->node()->moveBefore(c);
        c->output()->setType(v->type());
        tapped.push_back(lift(*g, c->output(), blk));
        conditional.push_back(blk != top);
    }

    auto plan = std::make_shared<TapPlan>();
    size_t old_outputs = g->outputs().size();
    Node *tup = g->createTuple(tapped);
    tup->insertBefore(g->return_node());
    g->registerOutput(tup->output());
    for (size_t i = 0; i < old_outputs; i++) g->eraseOutput(0);
    // Everything after the deepest tapped value is now dead.
    torch::jit::EliminateDeadCode(g);
    if (fast) {
        // ACTMAX_NO_BN_FOLD=1 turns folding off, to measure what it brings.
        if (!std::getenv("ACTMAX_NO_BN_FOLD")) fold_batch_norms(m, *g);
        (void)in_shape;
        torch::jit::EliminateDeadCode(g);
        if (!std::getenv("ACTMAX_NO_STEM")) extract_stem(m, *g, *plan);
        use_fast_ops(m, *g, *plan);
        torch::jit::EliminateDeadCode(g);
        if (std::getenv("ACTMAX_DUMP_GRAPH")) std::cerr << *g;
    }

    plan->layers = layers;
    plan->conditional = conditional;
    plan->fn = std::make_shared<torch::jit::GraphFunction>("actmax_tap", g, nullptr);
    m->tap_cache[key] = plan;
    return plan;
}

std::vector<torch::Tensor> tap_run(am_model *m, const TapPlan &plan, const torch::Tensor &input, bool allow_missing) {
    torch::Tensor x = input;
    if (plan.has_stem)
        // The bias goes as an optional, not as a tensor input: autograd
        // records every tensor input's device, which an undefined one lacks.
        x = StemConvFn::apply(input, plan.stem_w,
                              plan.stem_b.defined() ? c10::optional<torch::Tensor>(plan.stem_b) : c10::nullopt,
                              plan.stem_stride, plan.stem_pad, plan.stem_dil);
    std::vector<c10::IValue> stack{m->module._ivalue(), x};
    plan.fn->run(stack);
    auto elems = stack.at(0).toTuple()->elements();
    std::vector<torch::Tensor> r;
    for (size_t i = 0; i < elems.size(); i++) {
        torch::Tensor t = elems[i].toTensor();
        if (i < plan.conditional.size() && plan.conditional[i] && t.dim() == 1 && t.numel() == 0) {
            if (!allow_missing)
                throw Error(AM_E_LAYER, "layer '" + plan.layers[i] +
                                            "' sits in an if/while branch of forward that this input did not run: "
                                            "there is nothing to read");
            t = torch::Tensor();
        }
        r.push_back(t);
    }
    return r;
}

// ============================================================ layers

static void list_layers(am_model *m) {
    if (m->layers_ready) return;
    std::map<std::string, std::string> types;
    std::map<std::string, int64_t> params;
    for (const auto &nm : m->module.named_modules()) {
        if (nm.name.empty()) continue;
        auto t = nm.value.type()->name();
        std::string tn = t ? t->name() : "Module";
        types[nm.name] = tn;
        int64_t n = 0;
        for (const auto &p : nm.value.parameters(/*recurse=*/true)) n += p.numel();
        params[nm.name] = n;
    }
    // Execution order and call counts from the inlined graph, counted as
    // a forward hook counts them: a module runs once per call site reached
    // (a call inside a loop counts once).
    std::vector<std::string> order;
    std::map<std::string, int> calls;
    std::map<std::string, bool> running;
    std::map<std::string, std::string> site;
    std::vector<Step> steps;
    walk(m, m->graph->block(), steps);
    for (const Step &st : steps) {
        if (st.neutral) continue;
        if (!st.node) {
            for (auto &kv : running)
                if (!path_within(st.keep, kv.first)) kv.second = false;
            continue;
        }
        const std::string &p = st.path;
        // Every prefix of the path is "inside"; close runs of paths we left.
        std::set<std::string> now;
        std::string acc;
        size_t start = 0;
        while (!p.empty()) {
            size_t dot = p.find('.', start);
            acc = p.substr(0, dot);
            now.insert(acc);
            if (dot == std::string::npos) break;
            start = dot + 1;
        }
        for (auto &kv : running)
            if (kv.second && !now.count(kv.first)) kv.second = false;
        for (auto &q : now) {
            if (!types.count(q)) continue;
            std::string s = call_site(m, st.node, q);
            if (!running[q] || site[q] != s) {
                if (!calls.count(q)) order.push_back(q);
                calls[q]++;
                running[q] = true;
                site[q] = s;
            }
        }
    }
    // Output shapes from one probe through a tap on every called module.
    std::vector<std::vector<int64_t>> shapes(order.size());
    {
        std::vector<std::string> ok;
        std::vector<size_t> idx;
        for (size_t i = 0; i < order.size(); i++) {
            try {
                tap_plan(m, Base::kForward, {order[i]});
                ok.push_back(order[i]);
                idx.push_back(i);
            } catch (const Error &) {}
        }
        for (size_t i = 0; i < order.size(); i++) m->tap_cache.erase("F\n" + order[i]);
        if (!ok.empty()) {
            torch::NoGradGuard ng;
            std::vector<int64_t> s{1};
            s.insert(s.end(), m->input_shape.begin(), m->input_shape.end());
            torch::Tensor x = m->kind == "text"
                                  ? torch::zeros(s, torch::TensorOptions().dtype(torch::kLong).device(m->device))
                                  : torch::zeros(s, torch::TensorOptions().device(m->device));
            auto plan = tap_plan(m, Base::kForward, ok);
            auto outs = tap_run(m, *plan, x, /*allow_missing=*/true);
            for (size_t k = 0; k < outs.size(); k++) {
                if (!outs[k].defined()) continue;
                auto sz = outs[k].sizes();
                shapes[idx[k]].assign(sz.begin(), sz.end());
            }
            std::string key = "F";
            for (auto &l : ok) key += "\n" + l;
            m->tap_cache.erase(key);
        }
    }
    for (size_t i = 0; i < order.size(); i++) {
        m->layer_names.push_back(order[i]);
        m->layer_types.push_back(types[order[i]]);
        m->layer_params.push_back(params[order[i]]);
        m->layer_calls.push_back(calls[order[i]]);
        m->layer_shapes.push_back(shapes[i]);
    }
    // Modules forward never calls (e.g. auxiliary heads in eval) come last.
    for (auto &p : m->module_paths) {
        if (calls.count(p)) continue;
        m->layer_names.push_back(p);
        m->layer_types.push_back(types[p]);
        m->layer_params.push_back(params[p]);
        m->layer_calls.push_back(0);
        m->layer_shapes.emplace_back();
    }
    m->layers_ready = true;
}

// ============================================================ embeddings

static void make_embed_graph(am_model *m) {
    if (m->embed_graph) return;
    std::shared_ptr<Graph> g = m->graph->copy();
    Value *ids = g->inputs()[1];
    Node *emb = nullptr;
    for (auto &u : ids->uses())
        if (u.user->kind() == c10::aten::embedding && u.offset == 1) emb = u.user;
    if (!emb)
        throw Error(AM_E_UNSUPPORTED,
                    "no aten::embedding lookup is fed by the token-id input; "
                    "the model cannot be driven by embeddings");
    // The weight the lookup reads: a chain of attributes from the module input.
    auto w = attr_value(m, *g, emb->inputs()[0]);
    if (!w || !w->isTensor()) throw Error(AM_E_UNSUPPORTED, "the embedding weight is not a module attribute");
    m->embedding = w->toTensor();
    Value *embeds = g->addInput("embeds");
    embeds->setType(c10::TensorType::get());
    emb->output()->replaceAllUsesWith(embeds);
    emb->destroy();
    // Other uses of the ids may only ask for shape or device: feed them a
    // (B, T) view of the embeddings, which answers those the same way.
    if (ids->hasUses()) {
        for (auto &u : ids->uses()) {
            auto k = u.user->kind();
            if (k != c10::aten::size && k != c10::prim::device && k != c10::aten::len && k != c10::aten::dim)
                throw Error(AM_E_UNSUPPORTED, std::string("the token ids are also used by ") + k.toQualString() +
                                                  ", which cannot be fed from embeddings");
        }
        Node *sel = g->create(c10::aten::select, {embeds, g->insertConstant(-1), g->insertConstant(0)});
        sel->output()->setType(c10::TensorType::get());
        Node *first = g->block()->nodes().front();
        sel->insertBefore(first);
        sel->inputs()[1]->node()->moveBefore(sel);
        sel->inputs()[2]->node()->moveBefore(sel);
        ids->replaceAllUsesWith(sel->output());
    }
    g->eraseInput(1);
    torch::jit::EliminateDeadCode(g);
    m->embed_graph = g;
}

}  // namespace am

// ============================================================ C API

using am::Error;

extern "C" {

int am_model_num_layers(am_model *m) {
    if (!m) return AM_E_ARG;
    AM_FENCE_BEGIN
    am::checked(m);
    am::list_layers(m);
    return static_cast<int>(m->layer_names.size());
    AM_FENCE_END(&m->error)
}

int am_model_layer(am_model *m, int i, am_layer_info *info) {
    if (!m || !info) return AM_E_ARG;
    AM_FENCE_BEGIN
    am::checked(m);
    am::list_layers(m);
    if (i < 0 || static_cast<size_t>(i) >= m->layer_names.size())
        throw Error(AM_E_ARG, "layer index " + std::to_string(i) + " out of range 0.." +
                                  std::to_string(static_cast<int64_t>(m->layer_names.size()) - 1));
    size_t k = static_cast<size_t>(i);
    std::memset(info, 0, sizeof *info);
    info->name = m->layer_names[k].c_str();
    info->type = m->layer_types[k].c_str();
    info->params = m->layer_params[k];
    info->calls = m->layer_calls[k];
    const auto &s = m->layer_shapes[k];
    info->ndim = static_cast<int>(std::min<size_t>(s.size(), AM_MAX_DIMS));
    for (int d = 0; d < info->ndim; d++) info->shape[d] = s[static_cast<size_t>(d)];
    return AM_OK;
    AM_FENCE_END(&m->error)
}

int am_model_tap(am_model *m, const am_input *input, const char *const *layers, int n, am_tensor *outs,
                 am_tensor *grad) {
    if (!m) return AM_E_ARG;
    AM_FENCE_BEGIN
    am::checked(m);
    if (!input || !layers || n <= 0 || !outs)
        throw Error(AM_E_ARG, "am_model_tap needs an input, n > 0 layers and n outputs");
    for (int i = 0; i < n; i++) std::memset(&outs[i], 0, sizeof outs[i]);
    if (grad) std::memset(grad, 0, sizeof *grad);
    if (input->ndim < 1 || input->ndim > AM_MAX_DIMS) throw Error(AM_E_ARG, "input ndim must be 1..8");
    std::vector<int64_t> shape(input->shape, input->shape + input->ndim);
    for (auto d : shape)
        if (d <= 0) throw Error(AM_E_ARG, "input shape has a non-positive size");
    std::vector<std::string> names;
    for (int i = 0; i < n; i++) {
        if (!layers[i]) throw Error(AM_E_ARG, "layer name " + std::to_string(i) + " is NULL");
        names.emplace_back(layers[i]);
    }
    torch::Tensor x;
    am::Base base = am::Base::kForward;
    if (input->kind == AM_INPUT_TOKENS) {
        if (!input->tokens) throw Error(AM_E_ARG, "token input without tokens");
        if (grad) throw Error(AM_E_ARG, "no gradient with respect to token ids; use AM_INPUT_EMBEDS");
        x = torch::from_blob(const_cast<int64_t *>(input->tokens), shape, torch::kLong).clone().to(m->device);
    } else if (input->kind == AM_INPUT_FLOAT || input->kind == AM_INPUT_EMBEDS) {
        if (!input->data) throw Error(AM_E_ARG, "float input without data");
        x = torch::from_blob(const_cast<float *>(input->data), shape, torch::kFloat).clone().to(m->device);
        if (input->kind == AM_INPUT_EMBEDS) {
            am::make_embed_graph(m);
            base = am::Base::kEmbeds;
        }
    } else {
        throw Error(AM_E_ARG, "unknown input kind " + std::to_string(input->kind));
    }
    auto plan = am::tap_plan(m, base, names);
    std::vector<torch::Tensor> acts;
    if (grad) {
        x.requires_grad_(true);
        acts = am::tap_run(m, *plan, x);
        torch::Tensor total = torch::zeros({}, x.options().requires_grad(false));
        for (auto &a : acts) total = total + a.sum();
        auto g = torch::autograd::grad({total}, {x}, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                       /*create_graph=*/false, /*allow_unused=*/true);
        am::tensor_out(g[0].defined() ? g[0] : torch::zeros_like(x), grad);
    } else {
        torch::NoGradGuard ng;
        try {
            acts = am::tap_run(m, *plan, x);
        } catch (const Error &) { throw; } catch (const std::exception &e) {
            throw Error(AM_E_MODEL, "forward failed on input of shape " + am::shape_str(shape) + ": " +
                                        am::short_what(e.what(), 2));
        }
    }
    try {
        for (int i = 0; i < n; i++) am::tensor_out(acts[static_cast<size_t>(i)], &outs[i]);
    } catch (...) {
        for (int i = 0; i < n; i++) am_tensor_release(&outs[i]);
        am_tensor_release(grad);
        throw;
    }
    return AM_OK;
    AM_FENCE_END(&m->error)
}

int am_model_embeddings(am_model *m, am_tensor *matrix) {
    if (!m) return AM_E_ARG;
    AM_FENCE_BEGIN
    am::checked(m);
    if (matrix) std::memset(matrix, 0, sizeof *matrix);
    am::make_embed_graph(m);
    if (matrix) am::tensor_out(m->embedding, matrix);
    return AM_OK;
    AM_FENCE_END(&m->error)
}

}  // extern "C"
