// examples.cpp — the top-k dataset items of an objective (am_examples), for
// images and text through one scanner: items come from an ext/data dataset
// in batches, images are scaled exactly as runs scale theirs (the model's
// value range, then mean/std), and every item is scored by the objective
// language of runs.
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>

#include "internal.hpp"
#include "objective_eval.hpp"

using am::Error;

struct am_examples {
    std::string error;
    int kind = AM_DATASET_IMAGE;
    int64_t scanned = 0;
    bool cancelled = false;
    std::vector<int64_t> shape;                // one item: (C, H, W) or (T)
    std::vector<int64_t> index, label;         // (k)
    std::vector<float> value;                  // (k)
    std::vector<std::string> label_name;       // (k)
    std::vector<std::vector<float>> images;    // (k, C*H*W) in the model's value range
    std::vector<std::vector<int64_t>> tokens;  // (k, T)
    std::vector<std::vector<float>> acts;      // (k, T)
};

// The text-only spelling of the same result (am_text_examples_*).
struct am_text_examples : am_examples {};

namespace am {
namespace {

// Defaults: k as many as a grid shows at a glance; items per forward, as
// many as keep a small model's matrix products efficient without holding
// large activations; the text window, a few sentences of context.
constexpr int kDefaultK = 10;
constexpr int kMaxK = 100000;
constexpr int64_t kDefaultBatch = 256;
constexpr int64_t kDefaultWindow = 64;

struct Dataset {
    am_dataset *p = nullptr;
    Dataset() = default;
    Dataset(const Dataset &) = delete;
    Dataset &operator=(const Dataset &) = delete;
    ~Dataset() { am_dataset_free(p); }
    [[noreturn]] void fail(int st) const {
        throw Error(st ? st : AM_E_INTERNAL, std::string("dataset: ") + am_dataset_error(p));
    }
};

// The objective on a batch of model inputs: (B) values, or with pos >= 0
// (text), the value with position pos standing in for the first index.
struct Scorer {
    am_model *m = nullptr;
    std::string src;
    std::unique_ptr<ObjNode> root;
    std::vector<std::string> layers;
    std::shared_ptr<TapPlan> plan;

    void parse(am_model *model, const char *objective, const char *example) {
        m = model;
        if (!objective || !*objective)
            throw Error(AM_E_ARG, std::string("no objective given, e.g. \"") + example + "\"");
        src = objective;
        root = parse_with_caret(src);
        if (const ObjNode *d = find_diversity(*root))
            throw Error(AM_E_OBJECTIVE, objective_format_error(src, d->column,
                                                               "diversity() compares the items of one batch with "
                                                               "each other; it has no value for one dataset item"));
        objective_layers(*root, layers);
        if (layers.empty()) throw Error(AM_E_OBJECTIVE, "the objective names no layer, so nothing can be maximized");
        plan = tap_plan(m, Base::kForward, layers);  // unknown layers: AM_E_LAYER with the closest names
    }

    std::vector<torch::Tensor> forward(const torch::Tensor &x) const {
        try {
            return tap_run(m, *plan, x);
        } catch (const std::exception &e) {
            throw Error(AM_E_MODEL,
                        "forward failed on input of shape " + shape_str(x.sizes()) + ": " + short_what(e.what(), 2));
        }
    }

    std::vector<float> values(const torch::Tensor &x) const {
        auto outs = forward(x);
        Acts acts;
        for (size_t i = 0; i < layers.size(); i++) acts[layers[i]] = outs[i];
        EvalCtx ctx{m, &acts, {}};
        auto v = with_caret(src, [&] { return eval_node(*root, -1, ctx); });
        v = v.to(torch::kCPU, torch::kFloat).expand({x.size(0)}).contiguous();
        return std::vector<float>(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
    }

    // One (1, T) window: the objective at each position (T).
    std::vector<float> positions(const torch::Tensor &x) const {
        auto outs = forward(x);
        Acts acts;
        for (size_t i = 0; i < layers.size(); i++) acts[layers[i]] = outs[i];
        std::vector<float> r;
        for (int64_t t = 0; t < x.size(1); t++) {
            EvalCtx ctx{m, &acts, {}, t};
            auto v = with_caret(src, [&] { return eval_node(*root, -1, ctx); });
            r.push_back(v.to(torch::kCPU, torch::kFloat).expand({1})[0].item<float>());
        }
        return r;
    }
};

// The one top-k scanner: every batch of the dataset (up to limit items)
// through to_input and the scorer; returns (value, index) of the k best,
// best first, ties to the lower index. The progress callback may stop it,
// keeping the top-k of what was read.
std::vector<std::pair<float, int64_t>> scan(Dataset &ds, const Scorer &sc,
                                            const std::function<torch::Tensor(const am_batch &)> &to_input,
                                            const am_examples_options &o, int k, int64_t chunk, am_examples *ex) {
    int64_t total = am_dataset_size(ds.p);
    if (o.limit > 0 && o.limit < total) total = o.limit;
    std::vector<std::pair<float, int64_t>> all;
    float best = -std::numeric_limits<float>::infinity();
    torch::NoGradGuard ng;
    while (static_cast<int64_t>(all.size()) < total) {
        am_batch b{};
        int st = am_dataset_next_batch(ds.p, std::min(chunk, total - static_cast<int64_t>(all.size())), &b);
        if (st != AM_OK) ds.fail(st);
        if (b.count == 0) break;
        auto v = sc.values(to_input(b));
        for (int64_t i = 0; i < b.count; i++) {
            float x = v[static_cast<size_t>(i)];
            if (x > best) best = x;
            all.emplace_back(x, b.first + i);
        }
        if (o.progress && o.progress(o.progress_user, static_cast<int64_t>(all.size()), total, best)) {
            ex->cancelled = true;
            break;
        }
    }
    ex->scanned = static_cast<int64_t>(all.size());
    size_t kk = std::min(all.size(), static_cast<size_t>(k));
    std::partial_sort(all.begin(), all.begin() + static_cast<long>(kk), all.end(), [](const auto &x, const auto &y) {
        return x.first > y.first || (x.first == y.first && x.second < y.second);
    });
    all.resize(kk);
    return all;
}

void check_common(const am_examples_options *o, int &k, int64_t &chunk) {
    if (!o) throw Error(AM_E_ARG, "options are NULL; fill them with am_examples_options_default first");
    k = o->k ? o->k : kDefaultK;
    if (k < 1 || k > kMaxK)
        throw Error(AM_E_ARG, "k must be 1.." + std::to_string(kMaxK) + ", got " + std::to_string(k));
    chunk = o->batch ? o->batch : kDefaultBatch;
    if (chunk < 1) throw Error(AM_E_ARG, "batch must be >= 1");
    if (o->limit < 0) throw Error(AM_E_ARG, "limit must be >= 0 (0: every item)");
}

void image_examples(am_model *m, const am_examples_options *o, const std::string &name, am_examples *ex) {
    int k;
    int64_t chunk;
    check_common(o, k, chunk);
    if (m->kind != "image")
        throw Error(AM_E_UNSUPPORTED, "dataset \"" + name + "\" holds images; this model is a " + m->kind + " model");
    Scorer sc;
    sc.parse(m, o->objective, "conv2[5]");
    Dataset ds;
    ds.p = open_image_dataset(m, name, o->path, o->split ? o->split : "test");
    int st = AM_OK;
    if (am_dataset_kind(ds.p) != AM_DATASET_IMAGE)
        throw Error(AM_E_UNSUPPORTED, "dataset \"" + name + "\" is not an image dataset; this model takes images");
    int64_t shape[3];
    am_dataset_item_shape(ds.p, shape, 3);
    std::vector<int64_t> item(shape, shape + 3);
    if (item != m->input_shape)
        throw Error(AM_E_UNSUPPORTED, "dataset \"" + name + "\" holds images of shape " + shape_str(item) +
                                          " (C, H, W); the model takes " + shape_str(m->input_shape));
    ex->kind = AM_DATASET_IMAGE;
    ex->shape = item;
    InputScale scale(m, m->device);
    std::vector<int64_t> bshape{0, shape[0], shape[1], shape[2]};
    auto to_input = [&](const am_batch &b) {
        bshape[0] = b.count;
        auto x = torch::from_blob(const_cast<float *>(b.images), bshape, torch::kFloat).to(m->device);
        return scale(x);
    };
    auto top = scan(ds, sc, to_input, *o, k, chunk, ex);
    for (auto &[value, index] : top) {
        am_batch b{};
        st = am_dataset_item(ds.p, index, &b);
        if (st != AM_OK || b.count != 1) ds.fail(st);
        auto x = torch::from_blob(const_cast<float *>(b.images), item, torch::kFloat);
        auto v = scale.value_range(x).contiguous();
        ex->index.push_back(index);
        ex->value.push_back(value);
        ex->images.emplace_back(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
        int64_t label = b.labels ? b.labels[0] : -1;
        const char *ln = label >= 0 ? am_dataset_label(ds.p, static_cast<int>(label)) : nullptr;
        ex->label.push_back(label);
        ex->label_name.emplace_back(ln ? ln : "");
    }
}

void text_examples(am_model *m, const am_examples_options *o, const std::string &name, am_examples *ex) {
    if (m->kind != "text")
        throw Error(AM_E_UNSUPPORTED, "text examples need a text model; this one is '" + m->kind + "'");
    if (m->input_shape.size() != 1) throw Error(AM_E_MODEL, "a text model's input shape must be [T] (its context)");
    if (!o) throw Error(AM_E_ARG, "options are NULL");
    int64_t context = m->input_shape[0];
    int64_t T = o->window ? o->window : std::min<int64_t>(kDefaultWindow, context);
    if (T < 1 || T > context)
        throw Error(AM_E_ARG, "window must be 1.." + std::to_string(context) + " (the model's context), got " +
                                  std::to_string(T));
    if (o->stride < 0) throw Error(AM_E_ARG, "stride must be >= 0 (0: the window)");
    int k;
    int64_t chunk;
    check_common(o, k, chunk);
    if (!o->path) throw Error(AM_E_ARG, "path to the corpus is required (e.g. share/actmax/data/fortunes-heldout.txt)");
    Tokenizer tok;
    load_tokenizer(m, tok);
    Scorer sc;
    sc.parse(m, o->objective, "blocks.2.mlp.act[-1, 123]");
    Dataset ds;
    am_dataset_options dopt{};
    dopt.path = o->path;
    dopt.tokenizer = tok.t;
    dopt.window = T;
    dopt.stride = o->stride;
    int st = am_dataset_open(name.c_str(), o->split ? o->split : "heldout", &dopt, &ds.p);
    if (st != AM_OK) throw Error(st, std::string("corpus: ") + am_dataset_error(ds.p));
    if (am_dataset_kind(ds.p) != AM_DATASET_TEXT)
        throw Error(AM_E_ARG, "the dataset is not text; use \"fortunes\" or \"text\"");
    ex->kind = AM_DATASET_TEXT;
    ex->shape = {T};
    auto to_input = [&](const am_batch &b) {
        return torch::from_blob(const_cast<int64_t *>(b.tokens), {b.count, T}, torch::kLong).clone().to(m->device);
    };
    auto top = scan(ds, sc, to_input, *o, k, chunk, ex);
    if (ex->scanned == 0) throw Error(AM_E_ARG, "the corpus holds no whole window of " + std::to_string(T) + " tokens");
    torch::NoGradGuard ng;
    for (auto &[value, index] : top) {
        am_batch b{};
        st = am_dataset_item(ds.p, index, &b);
        if (st != AM_OK || b.count != 1)
            throw Error(st ? st : AM_E_INTERNAL, std::string("corpus: ") + am_dataset_error(ds.p));
        std::vector<int64_t> toks(b.tokens, b.tokens + T);
        ex->acts.push_back(sc.positions(to_input(b)));
        ex->index.push_back(index);
        ex->value.push_back(value);
        ex->tokens.push_back(std::move(toks));
        ex->label.push_back(-1);
        ex->label_name.emplace_back();
    }
}

// Which reader a dataset name needs: text here; images (a name or a path)
// through open_image_dataset.
bool is_text_dataset(const std::string &name) { return name == "fortunes" || name == "text"; }

void examples_impl(am_model *m, const am_examples_options *o, am_examples *ex) {
    checked(m);
    std::string name = o && o->dataset && *o->dataset ? o->dataset : m->dataset;
    if (name.empty())
        throw Error(AM_E_UNSUPPORTED,
                    "the model's metadata names no dataset; give one: \"fashion-mnist\", or the path of "
                    "the images (a folder of PNG files, a .npy or .pt file), or \"fortunes\" or \"text\" "
                    "with a path (text)");
    if (is_text_dataset(name))
        text_examples(m, o, name, ex);
    else
        image_examples(m, o, name, ex);
}

}  // namespace
}  // namespace am

extern "C" {

void am_examples_options_default(am_examples_options *o) {
    if (!o) return;
    std::memset(o, 0, sizeof *o);
    o->k = am::kDefaultK;
    o->batch = static_cast<int>(am::kDefaultBatch);
}

int am_examples_new(am_model *m, const am_examples_options *o, am_examples **out) {
    return am::construct(out, [&](am_examples *ex) { am::examples_impl(m, o, ex); });
}

void am_examples_free(am_examples *e) { delete e; }
const char *am_examples_error(const am_examples *e) { return e ? e->error.c_str() : "examples handle is NULL"; }
int am_examples_kind(const am_examples *e) { return e ? e->kind : AM_E_ARG; }
int64_t am_examples_scanned(const am_examples *e) { return e ? e->scanned : static_cast<int64_t>(AM_E_ARG); }
int am_examples_cancelled(const am_examples *e) { return e ? (e->cancelled ? 1 : 0) : AM_E_ARG; }
int am_examples_count(const am_examples *e) { return e ? static_cast<int>(e->index.size()) : AM_E_ARG; }
float am_examples_max(const am_examples *e) {
    return e && !e->value.empty() ? e->value[0] : std::numeric_limits<float>::quiet_NaN();
}

int am_examples_get(const am_examples *e, int i, am_example *out) {
    if (!e || !out || i < 0 || static_cast<size_t>(i) >= e->index.size()) return AM_E_ARG;
    size_t k = static_cast<size_t>(i);
    std::memset(out, 0, sizeof *out);
    out->index = e->index[k];
    out->value = e->value[k];
    out->label = e->label[k];
    out->label_name = e->label_name[k].c_str();
    if (e->kind == AM_DATASET_IMAGE) {
        out->image = e->images[k].data();
        for (int d = 0; d < 3; d++) out->shape[d] = e->shape[static_cast<size_t>(d)];
    } else {
        out->tokens = e->tokens[k].data();
        out->acts = e->acts[k].data();
        out->len = static_cast<int>(e->tokens[k].size());
    }
    return AM_OK;
}

// ---------------------------------------------------------------- the text spelling

int am_text_examples_new(am_model *m, const am_text_examples_options *o, am_text_examples **out) {
    return am::construct(out, [&](am_text_examples *ex) {
        if (!o) throw Error(AM_E_ARG, "options are NULL");
        am_examples_options g{};
        g.objective = o->objective;
        g.dataset = o->dataset ? o->dataset : "fortunes";
        g.path = o->path;
        g.window = o->window;
        g.stride = o->stride;
        g.k = o->k;
        g.batch = o->batch;
        g.progress = o->progress;
        g.progress_user = o->progress_user;
        am::checked(m);
        am::text_examples(m, &g, g.dataset, ex);
    });
}

void am_text_examples_free(am_text_examples *e) { delete e; }
const char *am_text_examples_error(const am_text_examples *e) { return am_examples_error(e); }
int64_t am_text_examples_scanned(const am_text_examples *e) { return am_examples_scanned(e); }
int am_text_examples_cancelled(const am_text_examples *e) { return am_examples_cancelled(e); }
int am_text_examples_count(const am_text_examples *e) { return am_examples_count(e); }
float am_text_examples_max(const am_text_examples *e) { return am_examples_max(e); }

int am_text_examples_get(const am_text_examples *e, int i, int64_t *index, float *score, const int64_t **tokens,
                         const float **acts, int *len) {
    am_example x;
    int st = am_examples_get(e, i, &x);
    if (st != AM_OK) return st;
    if (index) *index = x.index;
    if (score) *score = x.value;
    if (tokens) *tokens = x.tokens;
    if (acts) *acts = x.acts;
    if (len) *len = x.len;
    return AM_OK;
}

}  // extern "C"
