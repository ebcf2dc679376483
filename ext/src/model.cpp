// model.cpp — loading TorchScript models, their metadata, the layer list,
// taps by graph editing, and the embedding edit for text models.
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "internal.hpp"

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// ============================================================ helpers

namespace am {

std::string short_what(const std::string &what, int max_lines) {
    // libtorch's allocator failure, in plain words.
    size_t oom = what.find("can't allocate memory");
    if (oom != std::string::npos) {
        size_t at = what.find("allocate ", oom + 21);
        size_t end = at == std::string::npos ? at : what.find(" bytes", at);
        if (end != std::string::npos)
            return "not enough memory (could not allocate " + what.substr(at + 9, end - at - 9) + " bytes)";
        return "not enough memory";
    }
    std::istringstream in(what);
    std::vector<std::string> lines;
    std::string line;
    bool torchscript = false;
    while (std::getline(in, line)) {
        if (line.rfind("Exception raised from", 0) == 0) break;
        // C++ frames and libtorch's own source locations are for the log.
        if (line.rfind("frame #", 0) == 0 || line.find("<unknown function>") != std::string::npos) continue;
        if (line.find("Traceback of TorchScript") != std::string::npos) torchscript = true;
        lines.push_back(line);
    }
    // A TorchScript traceback ends with the exception that was raised
    // ("RuntimeError: ...", "builtins.ValueError: ..."): that is the cause.
    if (torchscript) {
        for (size_t i = lines.size(); i-- > 0;) {
            const std::string &l = lines[i];
            size_t colon = l.find(": ");
            if (colon != std::string::npos && colon > 0 && l[0] != ' ' &&
                (l.compare(0, colon, "Exception") == 0 ||
                 (colon >= 5 && l.compare(colon - 5, 5, "Error") == 0)) &&
                l.find(' ') > colon) {
                std::string cause = l;
                for (size_t k = i + 1; k < lines.size() && k < i + static_cast<size_t>(max_lines); k++)
                    cause += "\n" + lines[k];
                return cause;
            }
        }
    }
    std::string out;
    int n = 0;
    for (const auto &l : lines) {
        if (n >= max_lines) break;
        if (l.find("Traceback of TorchScript") != std::string::npos) break;
        if (!out.empty()) out += "\n";
        out += l;
        n++;
    }
    if (out.empty()) out = what.substr(0, 300);
    // libtorch's "[enforce fail at alloc_cpu.cpp:75] ..." prefixes: the
    // message after them is the part a user can read.
    if (out.rfind("[enforce fail at ", 0) == 0) {
        size_t close = out.find("] ");
        if (close != std::string::npos) out = out.substr(close + 2);
    }
    return out;
}

size_t edit_distance(const std::string &a, const std::string &b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); j++) prev[j] = j;
    for (size_t i = 1; i <= a.size(); i++) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); j++) {
            size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

void tensor_out(const torch::Tensor &t0, am_tensor *out) {
    torch::Tensor t = t0.detach().to(torch::kCPU, torch::kFloat).contiguous();
    if (t.dim() > AM_MAX_DIMS) throw Error(AM_E_UNSUPPORTED, "tensor has more than 8 dimensions");
    std::memset(out, 0, sizeof *out);
    size_t bytes = static_cast<size_t>(t.numel()) * sizeof(float);
    out->data = static_cast<float *>(std::malloc(bytes ? bytes : 1));
    if (!out->data) throw std::bad_alloc();
    if (bytes) std::memcpy(out->data, t.data_ptr<float>(), bytes);
    out->ndim = static_cast<int>(t.dim());
    for (int i = 0; i < out->ndim; i++) out->shape[i] = t.size(i);
}

static std::string shape_str(c10::IntArrayRef s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

// ============================================================ tiny JSON reader
// Enough JSON for actmax.json: objects, arrays, strings, numbers, literals.

struct Json {
    enum Kind { kNull, kBool, kNum, kStr, kArr, kObj } kind = kNull;
    double num = 0;
    bool b = false;
    std::string str;
    std::vector<Json> arr;
    std::vector<std::pair<std::string, Json>> obj;
    const Json *get(const std::string &k) const {
        for (auto &kv : obj)
            if (kv.first == k) return &kv.second;
        return nullptr;
    }
};

struct JsonParser {
    const std::string &s;
    size_t p = 0;
    explicit JsonParser(const std::string &src) : s(src) {}
    [[noreturn]] void fail(const std::string &what) {
        throw Error(AM_E_FORMAT, "actmax.json: expected " + what + " at offset " + std::to_string(p));
    }
    void ws() { while (p < s.size() && std::isspace(static_cast<unsigned char>(s[p]))) p++; }
    std::string string() {
        if (s[p] != '"') fail("'\"'");
        p++;
        std::string r;
        while (p < s.size() && s[p] != '"') {
            char c = s[p++];
            if (c != '\\') { r += c; continue; }
            if (p >= s.size()) fail("an escape");
            char e = s[p++];
            switch (e) {
            case 'n': r += '\n'; break;
            case 't': r += '\t'; break;
            case 'r': r += '\r'; break;
            case 'b': r += '\b'; break;
            case 'f': r += '\f'; break;
            case 'u': {
                if (p + 4 > s.size()) fail("4 hex digits");
                unsigned cp = static_cast<unsigned>(std::stoul(s.substr(p, 4), nullptr, 16));
                p += 4;
                // UTF-8 encode the BMP code point; labels are short and rarely escaped.
                if (cp < 0x80) r += static_cast<char>(cp);
                else if (cp < 0x800) { r += static_cast<char>(0xC0 | (cp >> 6)); r += static_cast<char>(0x80 | (cp & 0x3F)); }
                else { r += static_cast<char>(0xE0 | (cp >> 12)); r += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)); r += static_cast<char>(0x80 | (cp & 0x3F)); }
                break;
            }
            default: r += e;
            }
        }
        if (p >= s.size()) fail("a closing '\"'");
        p++;
        return r;
    }
    Json value(int depth = 0) {
        if (depth > 64) fail("less nesting");
        ws();
        if (p >= s.size()) fail("a value");
        Json j;
        char c = s[p];
        if (c == '{') {
            j.kind = Json::kObj;
            p++; ws();
            if (p < s.size() && s[p] == '}') { p++; return j; }
            for (;;) {
                ws();
                if (p >= s.size()) fail("a key");
                std::string k = string();
                ws();
                if (p >= s.size() || s[p] != ':') fail("':'");
                p++;
                j.obj.emplace_back(k, value(depth + 1));
                ws();
                if (p < s.size() && s[p] == ',') { p++; continue; }
                if (p < s.size() && s[p] == '}') { p++; return j; }
                fail("',' or '}'");
            }
        }
        if (c == '[') {
            j.kind = Json::kArr;
            p++; ws();
            if (p < s.size() && s[p] == ']') { p++; return j; }
            for (;;) {
                j.arr.push_back(value(depth + 1));
                ws();
                if (p < s.size() && s[p] == ',') { p++; continue; }
                if (p < s.size() && s[p] == ']') { p++; return j; }
                fail("',' or ']'");
            }
        }
        if (c == '"') { j.kind = Json::kStr; j.str = string(); return j; }
        if (s.compare(p, 4, "true") == 0) { p += 4; j.kind = Json::kBool; j.b = true; return j; }
        if (s.compare(p, 5, "false") == 0) { p += 5; j.kind = Json::kBool; return j; }
        if (s.compare(p, 4, "null") == 0) { p += 4; return j; }
        const char *b = s.c_str() + p;
        char *e = nullptr;
        j.num = std::strtod(b, &e);
        if (e == b) fail("a value");
        j.kind = Json::kNum;
        p += static_cast<size_t>(e - b);
        return j;
    }
    Json parse() {
        Json j = value();
        ws();
        if (p != s.size()) fail("end of text");
        return j;
    }
};

static std::vector<double> json_numbers(const Json *j, const char *key) {
    std::vector<double> r;
    if (!j) return r;
    if (j->kind == Json::kNum) { r.push_back(j->num); return r; }
    if (j->kind != Json::kArr) throw Error(AM_E_FORMAT, std::string("actmax.json: \"") + key + "\" must be a list of numbers");
    for (auto &e : j->arr) {
        if (e.kind != Json::kNum) throw Error(AM_E_FORMAT, std::string("actmax.json: \"") + key + "\" must be a list of numbers");
        r.push_back(e.num);
    }
    return r;
}

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
    return path == prefix || (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
                              path[prefix.size()] == '.');
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

static std::string suggest(const am_model *m, const std::string &name) {
    std::vector<std::pair<size_t, std::string>> d;
    for (auto &p : m->module_paths) d.emplace_back(edit_distance(name, p), p);
    std::sort(d.begin(), d.end());
    std::string r;
    for (size_t i = 0; i < d.size() && i < 5; i++) r += (i ? ", " : "") + d[i].second;
    return r;
}

// The top-level node that owns n (n itself unless it sits in a sub-block).
static Node *owner(Node *n, torch::jit::Block *top) {
    while (n->owningBlock() != top) n = n->owningBlock()->owningNode();
    return n;
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
                                 c10::optional<torch::Tensor> b, std::vector<int64_t> stride,
                                 std::vector<int64_t> pad,
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
    if (!src) throw Error(AM_E_UNSUPPORTED, "the model has not been prepared for embeddings; call am_model_embeddings first");
    std::shared_ptr<Graph> g = src->copy();
    auto *top = g->block();

    // Top-level nodes with their module paths, in execution order.
    std::vector<Node *> nodes;
    std::vector<std::string> paths;
    for (Node *n : top->nodes()) {
        nodes.push_back(n);
        paths.push_back(node_path(m, n));
    }
    std::unordered_map<Node *, size_t> pos;
    for (size_t i = 0; i < nodes.size(); i++) pos[nodes[i]] = i;

    std::vector<Value *> tapped;
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
            continue;
        }
        if (!is_module) {
            if (m->module_paths.empty())
                throw Error(AM_E_LAYER, "unknown layer '" + sp.name + "': this model has no submodules to tap; "
                                        "only its output can be named ('output')");
            throw Error(AM_E_LAYER, "unknown layer '" + sp.name + "'; closest: " + suggest(m, sp.name) +
                                        " (the model's layer list names them all)");
        }
        // Split the module's nodes into calls: a call is a run of nodes of
        // this path not interrupted by other nodes, from one call site.
        std::vector<std::vector<size_t>> calls;
        bool in_run = false;
        std::string site;
        for (size_t i = 0; i < nodes.size(); i++) {
            Node *n = nodes[i];
            if (n->kind() == c10::prim::Constant) continue;
            bool inside = path_within(paths[i], sp.name);
            if (!inside) { in_run = false; continue; }
            std::string s = call_site(m, n, sp.name);
            if (!in_run || s != site) calls.emplace_back();
            calls.back().push_back(i);
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
        std::set<Node *> in_call;
        for (size_t i : call) in_call.insert(nodes[i]);
        // The call's output: the last tensor (or tuple) value made inside
        // the call and used outside it.
        Value *out = nullptr;
        for (size_t i : call) {
            for (Value *v : nodes[i]->outputs()) {
                auto kind = v->type()->kind();
                if (kind != c10::TypeKind::TensorType && kind != c10::TypeKind::TupleType) continue;
                bool escapes = false;
                for (auto &u : v->uses()) {
                    Node *o = owner(u.user, top);
                    if (o == g->return_node() || !in_call.count(o)) { escapes = true; break; }
                }
                if (escapes) out = v;
            }
        }
        if (!out) throw Error(AM_E_LAYER, "layer '" + full + "' produces no tensor used by the rest of the model");
        Node *last = nodes[call.back()];
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
                throw Error(AM_E_UNSUPPORTED, "element " + std::to_string(k) + " of layer '" + sp.name + "' is not a tensor");
        } else if (sp.elem > 0) {
            throw Error(AM_E_LAYER, "layer '" + sp.name + "' returns one tensor, not a tuple; drop ':" +
                                        std::to_string(sp.elem) + "'");
        }
        // Copy the value right after the call so later in-place ops (a
        // ReLU(inplace=True), `out += identity`) cannot change what the tap
        // reads: this is what a forward hook sees at that moment.
        Node *c = g->create(c10::aten::clone, {v, g->insertConstant(c10::IValue())});
        c->insertAfter(last);
        c->inputs()[1]->node()->moveBefore(c);
        c->output()->setType(v->type());
        tapped.push_back(c->output());
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
    plan->fn = std::make_shared<torch::jit::GraphFunction>("actmax_tap", g, nullptr);
    m->tap_cache[key] = plan;
    return plan;
}

std::vector<torch::Tensor> tap_run(am_model *m, const TapPlan &plan, const torch::Tensor &input) {
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
    for (auto &e : elems) r.push_back(e.toTensor());
    return r;
}

// ============================================================ loading

static void collect_modules(const torch::jit::Module &root, am_model *m) {
    for (const auto &nm : root.named_modules()) {
        if (nm.name.empty()) continue;
        m->module_paths.push_back(nm.name);
        m->module_types[nm.name] = nm.value.type();
        size_t dot = nm.name.rfind('.');
        m->module_children[dot == std::string::npos ? "" : nm.name.substr(0, dot)].push_back(nm.name);
    }
}

static void load_model(am_model *m, const char *path, const char *device, const int64_t *shape, int ndim) {
    if (!path || !*path) throw Error(AM_E_ARG, "no model path given");
    if (ndim < 0 || ndim > AM_MAX_DIMS || (ndim > 0 && !shape))
        throw Error(AM_E_ARG, "input shape must have 0.." + std::to_string(AM_MAX_DIMS) + " dims");
    std::string dev = device && *device ? device : "cpu";
    try {
        m->device = torch::Device(dev);
    } catch (const c10::Error &) {
        throw Error(AM_E_DEVICE, "unknown device '" + dev + "'; expected cpu, cuda or cuda:N");
    }
    if (m->device.is_cuda() && !torch::cuda::is_available())
        throw Error(AM_E_DEVICE, "device '" + dev + "' requested but CUDA is not available here; use cpu");
    m->device_name = dev;

    {
        std::ifstream f(path, std::ios::binary);
        if (!f) throw Error(AM_E_IO, std::string("cannot open model file '") + path + "': " + std::strerror(errno));
        char magic[4] = {0};
        f.read(magic, 4);
        // TorchScript archives are zip files; anything else is rejected with
        // a clear message before libtorch's parser sees it.
        if (f.gcount() < 4 || std::memcmp(magic, "PK\x03\x04", 4) != 0)
            throw Error(AM_E_FORMAT, std::string("'") + path + "' is not a TorchScript file (expected a zip archive written by torch.jit.save)");
    }
    torch::jit::ExtraFilesMap extra{{"actmax.json", ""}};
    try {
        m->module = torch::jit::load(path, m->device, extra);
    } catch (const c10::Error &e) {
        throw Error(AM_E_FORMAT, std::string("cannot load '") + path + "' as TorchScript (truncated or corrupt?): " +
                                     short_what(e.what(), 1));
    }
    m->loaded = true;
    m->metadata = extra["actmax.json"];

    Json meta;
    if (!m->metadata.empty()) {
        meta = JsonParser(m->metadata).parse();
        if (meta.kind != Json::kObj) throw Error(AM_E_FORMAT, "actmax.json must hold a JSON object");
    }
    if (auto k = meta.get("kind")) {
        if (k->kind != Json::kStr || (k->str != "image" && k->str != "text"))
            throw Error(AM_E_FORMAT, "actmax.json: \"kind\" must be \"image\" or \"text\"");
        m->kind = k->str;
    }
    if (auto d = meta.get("dataset"); d && d->kind == Json::kStr) m->dataset = d->str;
    if (auto l = meta.get("labels")) {
        if (l->kind != Json::kArr) throw Error(AM_E_FORMAT, "actmax.json: \"labels\" must be a list of strings");
        for (auto &e : l->arr) {
            if (e.kind != Json::kStr) throw Error(AM_E_FORMAT, "actmax.json: \"labels\" must be a list of strings");
            m->labels.push_back(e.str);
        }
    }
    if (auto t = meta.get("tokenizer")) {
        if (t->kind != Json::kStr) throw Error(AM_E_FORMAT, "actmax.json: \"tokenizer\" must name an extra file");
        caffe2::serialize::PyTorchStreamReader reader(path);
        std::string rec = "extra/" + t->str;
        if (!reader.hasRecord(rec))
            throw Error(AM_E_FORMAT, "actmax.json names tokenizer '" + t->str + "' but the file carries no such extra file");
        auto data = reader.getRecord(rec);
        m->tokenizer.assign(static_cast<const char *>(std::get<0>(data).get()), std::get<1>(data));
        m->has_tokenizer = true;
    }

    if (ndim > 0) {
        m->input_shape.assign(shape, shape + ndim);
    } else if (auto in = meta.get("input")) {
        for (double d : json_numbers(in, "input")) m->input_shape.push_back(static_cast<int64_t>(d));
    } else if (m->kind == "text") {
        auto ctx = meta.get("context");
        m->input_shape.push_back(ctx && ctx->kind == Json::kNum ? static_cast<int64_t>(ctx->num) : 16);
    } else {
        throw Error(AM_E_ARG, "the model carries no actmax.json metadata, so its input shape is unknown; "
                              "give it, e.g. input=3x224x224");
    }
    for (auto d : m->input_shape)
        if (d <= 0) throw Error(AM_E_ARG, "input shape " + shape_str(m->input_shape) + " has a non-positive size");

    if (auto r = meta.get("range")) {
        auto v = json_numbers(r, "range");
        if (v.size() != 2 || !(v[0] < v[1])) throw Error(AM_E_FORMAT, "actmax.json: \"range\" must be [lo, hi] with lo < hi");
        m->range[0] = static_cast<float>(v[0]);
        m->range[1] = static_cast<float>(v[1]);
    }
    if (m->kind == "image") {
        if (m->input_shape.size() != 3)
            throw Error(AM_E_ARG, "an image model needs an input shape C x H x W, got " + shape_str(m->input_shape));
        int64_t C = m->input_shape[0];
        auto mean = json_numbers(meta.get("mean"), "mean");
        auto sd = json_numbers(meta.get("std"), "std");
        if (mean.empty() && sd.empty()) {
            if (C == 3) {
                mean = {0.485, 0.456, 0.406};
                sd = {0.229, 0.224, 0.225};
                m->note += "no mean/std in metadata: using the ImageNet mean/std for 3 channels. ";
            } else {
                mean.assign(static_cast<size_t>(C), 0.0);
                sd.assign(static_cast<size_t>(C), 1.0);
                m->note += "no mean/std in metadata: using mean 0, std 1. ";
            }
        }
        if (mean.size() == 1 && C > 1) mean.assign(static_cast<size_t>(C), mean[0]);
        if (sd.size() == 1 && C > 1) sd.assign(static_cast<size_t>(C), sd[0]);
        if (static_cast<int64_t>(mean.size()) != C || static_cast<int64_t>(sd.size()) != C)
            throw Error(AM_E_FORMAT, "mean/std must have one value per channel (" + std::to_string(C) + ")");
        for (double s : sd)
            if (!(s > 0)) throw Error(AM_E_FORMAT, "std values must be positive");
        for (size_t i = 0; i < mean.size(); i++) {
            m->mean.push_back(static_cast<float>(mean[i]));
            m->stdev.push_back(static_cast<float>(sd[i]));
        }
    }

    m->module.eval();
    for (auto p : m->module.parameters()) p.set_requires_grad(false);
    collect_modules(m->module, m);

    // Probe: the model must run on its declared shape.
    {
        torch::NoGradGuard ng;
        std::vector<int64_t> s{1};
        s.insert(s.end(), m->input_shape.begin(), m->input_shape.end());
        torch::Tensor x = m->kind == "text" ? torch::zeros(s, torch::TensorOptions().dtype(torch::kLong).device(m->device))
                                            : torch::zeros(s, torch::TensorOptions().device(m->device));
        try {
            m->module.forward({x});
        } catch (const std::exception &e) {
            throw Error(AM_E_MODEL, "the model's forward fails on an input of shape " + shape_str(s) + ": " +
                                        short_what(e.what(), 2));
        }
    }
    m->graph = m->module.get_method("forward").graph()->copy();
    torch::jit::Inline(*m->graph);
    if (m->graph->inputs().size() != 2)
        throw Error(AM_E_UNSUPPORTED, "forward takes " + std::to_string(m->graph->inputs().size() - 1) +
                                          " inputs; the engine drives models with exactly one");
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
    // Execution order and call counts from the inlined graph.
    std::vector<std::string> order;
    std::map<std::string, int> calls;
    std::map<std::string, bool> running;
    for (Node *n : m->graph->block()->nodes()) {
        if (n->kind() == c10::prim::Constant) continue;
        std::string p = node_path(m, n);
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
            if (!running[q]) {
                if (!calls.count(q)) order.push_back(q);
                calls[q]++;
                running[q] = true;
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
            } catch (const Error &) {
            }
        }
        for (size_t i = 0; i < order.size(); i++) m->tap_cache.erase("F\n" + order[i]);
        if (!ok.empty()) {
            torch::NoGradGuard ng;
            std::vector<int64_t> s{1};
            s.insert(s.end(), m->input_shape.begin(), m->input_shape.end());
            torch::Tensor x = m->kind == "text" ? torch::zeros(s, torch::TensorOptions().dtype(torch::kLong).device(m->device))
                                                : torch::zeros(s, torch::TensorOptions().device(m->device));
            auto plan = tap_plan(m, Base::kForward, ok);
            auto outs = tap_run(m, *plan, x);
            for (size_t k = 0; k < outs.size(); k++) {
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

// Resolves a chain of prim::GetAttr from the module input to a tensor.
static torch::Tensor resolve_attr(am_model *m, Value *v) {
    std::vector<std::string> names;
    while (v->node()->kind() == c10::prim::GetAttr) {
        names.push_back(v->node()->s(c10::attr::name));
        v = v->node()->inputs()[0];
    }
    if (v != m->graph->inputs()[0] && v->node()->kind() != c10::prim::Param)
        throw Error(AM_E_UNSUPPORTED, "the embedding weight is not a module attribute");
    c10::IValue cur = m->module._ivalue();
    for (auto it = names.rbegin(); it != names.rend(); ++it) cur = cur.toObject()->getAttr(*it);
    return cur.toTensor();
}

static void make_embed_graph(am_model *m) {
    if (m->embed_graph) return;
    std::shared_ptr<Graph> g = m->graph->copy();
    Value *ids = g->inputs()[1];
    Node *emb = nullptr;
    for (auto &u : ids->uses())
        if (u.user->kind() == c10::aten::embedding && u.offset == 1) emb = u.user;
    if (!emb)
        throw Error(AM_E_UNSUPPORTED, "no aten::embedding lookup is fed by the token-id input; "
                                      "the model cannot be driven by embeddings");
    // Resolve the weight on the original graph's matching node.
    Value *w = emb->inputs()[0];
    {
        std::vector<std::string> names;
        Value *v = w;
        while (v->node()->kind() == c10::prim::GetAttr) {
            names.push_back(v->node()->s(c10::attr::name));
            v = v->node()->inputs()[0];
        }
        if (v != g->inputs()[0]) throw Error(AM_E_UNSUPPORTED, "the embedding weight is not a module attribute");
        c10::IValue cur = m->module._ivalue();
        for (auto it = names.rbegin(); it != names.rend(); ++it) cur = cur.toObject()->getAttr(*it);
        m->embedding = cur.toTensor();
    }
    Value *embeds = g->addInput("embeds");
    embeds->setType(c10::TensorType::get());
    emb->output()->replaceAllUsesWith(embeds);
    emb->destroy();
    // Other uses of the ids may only ask for shape or device: feed them a
    // (B, T) view of the embeddings, which answers those the same way.
    if (ids->hasUses()) {
        for (auto &u : ids->uses()) {
            auto k = u.user->kind();
            if (k != c10::aten::size && k != c10::prim::device && k != c10::aten::len &&
                k != c10::aten::dim)
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
    (void)resolve_attr;
}

}  // namespace am

// ============================================================ C API

using am::Error;

static am_model *checked(am_model *m) {
    if (!m) throw Error(AM_E_ARG, "model handle is NULL");
    if (!m->loaded || !m->graph) throw Error(AM_E_ARG, "the model did not load; see am_model_error");
    return m;
}

extern "C" {


int am_blas_info(char *buf, size_t n, int *optimized) {
    if (optimized) *optimized = 0;
    if (buf && n) buf[0] = 0;
    try {
        {
            torch::NoGradGuard ng;
            auto a = torch::ones({64, 64});
            auto c = torch::mm(a, a);
            (void)c.sum().item<float>();
        }
        std::ifstream maps("/proc/self/maps");
        std::string line, found;
        while (std::getline(maps, line)) {
            size_t sl = line.find('/');
            if (sl == std::string::npos) continue;
            std::string p = line.substr(sl);
            std::string base = p.substr(p.rfind('/') + 1);
            std::string low = p;
            std::transform(low.begin(), low.end(), low.begin(), ::tolower);
            if (low.find("cublas") != std::string::npos || low.find("hipblas") != std::string::npos) continue;
            if (base.find("blas") != std::string::npos || low.find("libmkl") != std::string::npos) {
                found = p;
                if (low.find("openblas") != std::string::npos || low.find("blis") != std::string::npos ||
                    low.find("mkl") != std::string::npos)
                    break;
            }
        }
        // Wheels of PyTorch link MKL statically: no BLAS library in the maps.
        if (found.empty() && at::globalContext().hasMKL()) found = "MKL (linked into libtorch)";
        if (found.empty()) found = "unknown";
        std::string low = found;
        std::transform(low.begin(), low.end(), low.begin(), ::tolower);
        bool opt = low.find("openblas") != std::string::npos || low.find("blis") != std::string::npos ||
                   low.find("mkl") != std::string::npos;
        if (optimized) *optimized = opt ? 1 : 0;
        if (buf && n) std::snprintf(buf, n, "%s", found.c_str());
        return AM_OK;
    } catch (...) {
        return AM_E_INTERNAL;
    }
}

void am_tensor_release(am_tensor *t) {
    if (!t) return;
    std::free(t->data);
    std::memset(t, 0, sizeof *t);
}

int64_t am_tensor_numel(const am_tensor *t) {
    if (!t) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int am_model_load(const char *path, const char *device, const int64_t *input_shape, int input_ndim,
                  am_model **out) {
    if (!out) return AM_E_ARG;
    *out = nullptr;
    am_model *m = nullptr;
    try {
        m = new am_model();
    } catch (...) {
        return AM_E_NOMEM;
    }
    *out = m;
    AM_FENCE_BEGIN
    try {
        am::load_model(m, path, device, input_shape, input_ndim);
    } catch (const c10::Error &e) {
        std::string why = am::short_what(e.what(), 1);
        if (why.rfind("not enough memory", 0) != 0) throw;
        throw Error(AM_E_NOMEM, why + " for the model's probe forward; give a smaller input shape");
    }
    return AM_OK;
    AM_FENCE_END(&m->error)
}

void am_model_free(am_model *m) { delete m; }

const char *am_model_error(const am_model *m) { return m ? m->error.c_str() : "model handle is NULL"; }
const char *am_model_note(const am_model *m) { return m ? m->note.c_str() : ""; }
const char *am_model_kind(const am_model *m) { return m ? m->kind.c_str() : ""; }
const char *am_model_device(const am_model *m) { return m ? m->device_name.c_str() : ""; }
const char *am_model_dataset(const am_model *m) { return m ? m->dataset.c_str() : ""; }
const char *am_model_metadata(const am_model *m) { return m ? m->metadata.c_str() : ""; }

int am_model_input_shape(const am_model *m, int64_t *shape, int max) {
    if (!m || (max > 0 && !shape)) return AM_E_ARG;
    int n = static_cast<int>(m->input_shape.size());
    for (int i = 0; i < n && i < max; i++) shape[i] = m->input_shape[static_cast<size_t>(i)];
    return n;
}

int am_model_normalization(const am_model *m, const float **mean, const float **sd, int *count, float range[2]) {
    if (!m) return AM_E_ARG;
    if (mean) *mean = m->mean.data();
    if (sd) *sd = m->stdev.data();
    if (count) *count = static_cast<int>(m->mean.size());
    if (range) { range[0] = m->range[0]; range[1] = m->range[1]; }
    return AM_OK;
}

int am_model_num_labels(const am_model *m) { return m ? static_cast<int>(m->labels.size()) : AM_E_ARG; }

const char *am_model_label(const am_model *m, int i) {
    if (!m || i < 0 || static_cast<size_t>(i) >= m->labels.size()) return nullptr;
    return m->labels[static_cast<size_t>(i)].c_str();
}

int am_model_tokenizer(const am_model *m, const char **bytes, size_t *len) {
    if (!m || !bytes || !len) return AM_E_ARG;
    *bytes = nullptr;
    *len = 0;
    if (!m->has_tokenizer) return AM_E_UNSUPPORTED;
    *bytes = m->tokenizer.data();
    *len = m->tokenizer.size();
    return AM_OK;
}

int am_model_num_layers(am_model *m) {
    if (!m) return AM_E_ARG;
    AM_FENCE_BEGIN
    checked(m);
    am::list_layers(m);
    return static_cast<int>(m->layer_names.size());
    AM_FENCE_END(&m->error)
}

int am_model_layer(am_model *m, int i, am_layer_info *info) {
    if (!m || !info) return AM_E_ARG;
    AM_FENCE_BEGIN
    checked(m);
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
    checked(m);
    if (!input || !layers || n <= 0 || !outs) throw Error(AM_E_ARG, "am_model_tap needs an input, n > 0 layers and n outputs");
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
        } catch (const std::exception &e) {
            throw Error(AM_E_MODEL, "forward failed on input of shape " + am::shape_str(shape) + ": " + am::short_what(e.what(), 2));
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
    checked(m);
    if (matrix) std::memset(matrix, 0, sizeof *matrix);
    am::make_embed_graph(m);
    if (matrix) am::tensor_out(m->embedding, matrix);
    return AM_OK;
    AM_FENCE_END(&m->error)
}

}  // extern "C"
