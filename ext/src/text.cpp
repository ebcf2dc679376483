// text.cpp — prompts for text models: continuous embeddings projected to
// tokens (soft), projected gradient (PEZ, Wen et al. 2023), greedy
// coordinate gradient over real tokens (GCG, Zou et al. 2023), exhaustive
// single-position sweeps, per-position attribution, and corpus top-k.
//
// Everything runs on the embeddings graph of am_model_embeddings, so token
// ids become rows of the embedding matrix and gradients reach them.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <set>

#include "internal.hpp"
#include "memory.hpp"
#include "objective.hpp"
#include "objective_eval.hpp"

using am::Error;

struct am_text_run {
    std::string error;
    bool cancelled = false;
    int steps_done = 0;
    double seconds = 0;
    std::vector<int64_t> tokens;  // (T)
    std::string text;
    bool roundtrip = false;
    float act = 0, xent = 0;
    float soft_act = std::numeric_limits<float>::quiet_NaN();
    float retention = std::numeric_limits<float>::quiet_NaN();
    int T = 0, D = 0, K = 0;
    std::vector<float> embeds;         // (T, D) soft and pez only
    std::vector<int64_t> near_ids;     // (T, K)
    std::vector<float> near_vals;      // (T, K)
    std::vector<float> curve, xcurve;  // (S) each
    bool has_attr = false;
    std::vector<float> attr_drop;   // (T)
    std::vector<int64_t> attr_alt;  // (T)
    std::vector<float> sweep;       // (vocab) sweep only
    std::string note;               // choices made for the caller, for display
    int sweep_pos = -1;
    std::vector<float> proj_curve;  // (S)
    std::vector<int64_t> best_ids;  // (T)
    float best_act = std::numeric_limits<float>::quiet_NaN();
    int best_step = 0;
};

namespace am {

void load_tokenizer(const am_model *m, Tokenizer &tok) {
    if (!m->has_tokenizer)
        throw Error(AM_E_UNSUPPORTED,
                    "the model carries no tokenizer (its actmax.json names no \"tokenizer\" extra "
                    "file); text prompts need one to decode and check the prompts");
    int st = am_tokenizer_load_json(m->tokenizer.data(), m->tokenizer.size(), &tok.t);
    if (st != AM_OK)
        throw Error(AM_E_FORMAT, std::string("the model's tokenizer does not load: ") + am_tokenizer_error(tok.t));
}

namespace {

// Tuning numbers of the text searches.
// Random prompts drawn for the start (capped: each costs a forward, and
// beyond a few hundred the best of them hardly improves).
constexpr int kStartPrompts = 256;
// Sequences per forward when scoring many prompts (sweeps, attribution):
// large enough to keep the matrix products efficient, small enough that
// a (batch, T, vocab) logits tensor stays in memory for models like tiny-lm.
constexpr int64_t kScoreBatch = 512;
// When every token at every position would exceed the attribution's budget
// (kAttributionBudget), each position tries at most this many of the
// gradient's top tokens.
constexpr int64_t kAttributionCandidates = 256;
// Random prompts that re-encode to themselves: whole prompts tried, and
// draws per position, before giving up (a tokenizer whose pieces never
// round-trip would otherwise loop forever).
constexpr int kPromptAttempts = 20;
constexpr int kTokenDraws = 200;

void check_text_model(am_model *m) {
    if (m->kind != "text")
        throw Error(AM_E_UNSUPPORTED,
                    "text prompts need a text model; this one is '" + m->kind + "' (optimize images with am_run_new)");
    if (m->input_shape.size() != 1) throw Error(AM_E_MODEL, "a text model's input shape must be [T] (its context)");
}

struct Parsed {
    std::string src;
    std::unique_ptr<ObjNode> root;
    std::vector<std::string> layers;
};

Parsed parse_text_objective(const char *s) {
    if (!s || !*s) throw Error(AM_E_ARG, "no objective given, e.g. \"blocks.2.mlp.act[-1, 123]\"");
    Parsed p;
    p.src = s;
    p.root = parse_with_caret(p.src);
    objective_layers(*p.root, p.layers);
    if (p.layers.empty()) throw Error(AM_E_OBJECTIVE, "the objective names no layer, so nothing can be maximized");
    return p;
}

// The model driven by embeddings, with the objective and the logits tapped.
struct Engine {
    am_model *m;
    Parsed obj;
    // The objective's layers, then the logits (plan_full) or without them
    // (plan_obj: the graph stops at the deepest objective layer, much
    // cheaper for batched scoring when no cross-entropy is needed).
    std::shared_ptr<TapPlan> plan_full, plan_obj;
    size_t n_obj;
    torch::Tensor E;  // (V, D)
    int64_t V = 0, D = 0, T = 0;
    float fluency = 0;
    Tokenizer tok;
    int64_t eot = -1;
    // Sequences one scoring forward may take so that it holds at most half
    // of the memory available (setup measures a sequence's cost).
    int64_t max_chunk = std::numeric_limits<int64_t>::max();

    struct Out {
        torch::Tensor act, xent, logp;  // (B), (B), (B, T-1, V) or undefined
        torch::Tensor score() const { return act; }
    };

    Out run(const torch::Tensor &emb, const torch::Tensor &ids, bool need_xent = true, bool keep_logp = false) {
        auto outs = tap_run(m, need_xent ? *plan_full : *plan_obj, emb);
        Acts acts;
        for (size_t i = 0; i < n_obj; i++) acts[obj.layers[i]] = outs[i];
        int64_t B = emb.size(0);
        Out o;
        EvalCtx ctx{m, &acts, {}};
        o.act = with_caret(obj.src, [&] { return eval_node(*obj.root, -1, ctx); }).expand({B});
        o.act = o.act.to(m->device);
        if (!need_xent) return o;
        const torch::Tensor &logits = outs.back();  // (B, T, V)
        if (T < 2) {
            o.xent = torch::zeros({B}, emb.options().requires_grad(false));
        } else {
            auto lp = torch::log_softmax(logits.slice(1, 0, T - 1).to(torch::kFloat), 2);
            o.xent = -lp.gather(2, ids.slice(1, 1, T).unsqueeze(2)).squeeze(2).mean(1);
            if (keep_logp) o.logp = lp.detach();
        }
        return o;
    }

    torch::Tensor embed(const torch::Tensor &ids) const {  // (B, T) -> (B, T, D)
        return E.index_select(0, ids.reshape({-1})).reshape({ids.size(0), ids.size(1), D});
    }

    // Objective and cross-entropy of token sequences (N, T), in chunks.
    // need_xent false leaves xent empty.
    // stop (may be empty) is asked between chunks with the sequences done
    // and in all; true ends the loop early.
    void eval_ids(const torch::Tensor &ids, int64_t chunk, std::vector<float> &act, std::vector<float> &xent,
                  bool need_xent = true, const std::function<bool(int64_t, int64_t)> &stop = {}) {
        torch::NoGradGuard ng;
        act.clear();
        xent.clear();
        chunk = std::max<int64_t>(1, std::min(chunk, max_chunk));
        for (int64_t s = 0; s < ids.size(0); s += chunk) {
            if (stop && s > 0 && stop(s, ids.size(0))) return;
            auto part = ids.slice(0, s, std::min(ids.size(0), s + chunk));
            auto o = run(embed(part), part, need_xent);
            auto a = o.act.to(torch::kCPU).contiguous();
            act.insert(act.end(), a.data_ptr<float>(), a.data_ptr<float>() + a.numel());
            if (!need_xent) continue;
            auto x = o.xent.to(torch::kCPU).contiguous();
            xent.insert(xent.end(), x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
        }
    }

    bool roundtrip(const std::vector<int64_t> &ids, std::string *text = nullptr) {
        char *s = nullptr;
        size_t n = 0;
        if (am_tokenizer_decode(tok.t, ids.data(), ids.size(), &s, &n) != AM_OK) return false;
        int64_t *back = nullptr;
        size_t nb = 0;
        bool ok = am_tokenizer_encode(tok.t, s, n, &back, &nb) == AM_OK && nb == ids.size() &&
                  std::equal(ids.begin(), ids.end(), back);
        if (text) text->assign(s, n);
        std::free(s);
        std::free(back);
        return ok;
    }

    // Random non-special tokens whose text re-encodes to themselves.
    std::vector<int64_t> random_prompt(std::mt19937_64 &rng) {
        std::uniform_int_distribution<int64_t> pick(0, V - 1);
        auto draw = [&]() {
            for (;;) {
                int64_t v = pick(rng);
                if (v != eot) return v;
            }
        };
        for (int attempt = 0; attempt < kPromptAttempts; attempt++) {
            std::vector<int64_t> ids;
            for (int64_t t = 0; t < T; t++) {
                bool ok = false;
                for (int tries = 0; tries < kTokenDraws && !ok; tries++) {
                    ids.push_back(draw());
                    ok = roundtrip(ids);
                    if (!ok) ids.pop_back();
                }
                if (!ok) break;
            }
            if (static_cast<int64_t>(ids.size()) == T && roundtrip(ids)) return ids;
        }
        throw Error(AM_E_UNSUPPORTED, "found no random prompt of " + std::to_string(T) +
                                          " tokens that re-encodes to itself; give init_tokens");
    }
};

torch::Tensor ids_tensor(const std::vector<int64_t> &ids, torch::Device dev) {
    return torch::tensor(ids, torch::kLong).reshape({1, static_cast<int64_t>(ids.size())}).to(dev);
}

// Nearest tokens of each row of e (T, D): values (T, K) and ids (T, K),
// nearest first. Cosine: similarity, larger is nearer; L2: distance.
std::pair<torch::Tensor, torch::Tensor> nearest(const torch::Tensor &e, const torch::Tensor &E, int dist, int64_t K) {
    torch::NoGradGuard ng;
    if (dist == AM_DIST_COSINE) {
        auto en = e / e.norm(2, {1}, true).clamp_min(1e-12);
        auto En = E / E.norm(2, {1}, true).clamp_min(1e-12);
        auto sim = torch::matmul(en, En.t());
        auto r = sim.topk(K, 1, true, true);
        return {std::get<0>(r), std::get<1>(r)};
    }
    auto d2 = (e * e).sum(1, true) - 2 * torch::matmul(e, E.t()) + (E * E).sum(1).unsqueeze(0);
    auto r = d2.topk(K, 1, false, true);
    return {std::get<0>(r).clamp_min(0).sqrt(), std::get<1>(r)};
}

std::vector<int64_t> to_ids(const torch::Tensor &t) {
    auto c = t.to(torch::kCPU, torch::kLong).contiguous();
    return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::vector<float> to_floats(const torch::Tensor &t) {
    auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// What one restart leaves.
struct Result {
    std::vector<int64_t> ids;
    float score = -std::numeric_limits<float>::infinity();
    float soft_act = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> embeds, curve, xcurve;
    std::vector<int64_t> step_ids;  // (S, T) the discrete prompt behind each step
    int steps = 0;
    bool cancelled = false;
    std::vector<float> sweep;
};

struct Ctx {
    Engine &en;
    const am_text_options &o;
    int restart;
    std::mt19937_64 rng;
};

bool report(Ctx &c, int step, float act, float xent, const std::vector<int64_t> &ids) {
    if (!c.o.progress) return false;
    am_text_progress p{};
    p.step = step;
    p.steps = c.o.steps;
    p.restart = c.restart;
    p.restarts = c.o.restarts;
    p.activation = act;
    p.xent = xent;
    p.tokens = ids.data();
    p.len = static_cast<int>(ids.size());
    p.phase = "optimizing";
    return c.o.progress(c.o.progress_user, &p) != 0;
}

// A scoring phase's report: the run's last state with the phase and its
// count, at most twice a second, so a short phase adds no call and a long
// one shows on the live display and sees an interrupt between chunks.
struct PhasePoll {
    const am_text_options &o;
    am_text_progress p{};
    std::chrono::steady_clock::time_point asked = std::chrono::steady_clock::now();
    bool stopped = false;
    PhasePoll(const am_text_options &opts, const char *phase, const am_text_progress &last) : o(opts), p(last) {
        p.phase = phase;
    }
    bool operator()(int64_t done, int64_t total) {
        if (!o.progress) return false;
        auto now = std::chrono::steady_clock::now();
        if (now - asked < std::chrono::milliseconds(500)) return stopped;
        asked = now;
        p.done = done;
        p.total = total;
        stopped = stopped || o.progress(o.progress_user, &p) != 0;
        return stopped;
    }
};

// The state a phase before the first step reports: step 0 of the restart.
am_text_progress before_steps(const Ctx &c, const std::vector<int64_t> &ids) {
    am_text_progress p{};
    p.steps = c.o.steps;
    p.restart = c.restart;
    p.restarts = c.o.restarts;
    p.activation = std::numeric_limits<float>::quiet_NaN();
    p.tokens = ids.data();
    p.len = static_cast<int>(ids.size());
    return p;
}

std::vector<int64_t> start_ids(Ctx &c) {
    if (c.o.init_tokens) {
        std::vector<int64_t> ids(c.o.init_tokens, c.o.init_tokens + c.en.T);
        for (auto v : ids)
            if (v < 0 || v >= c.en.V)
                throw Error(AM_E_ARG,
                            "init_tokens holds id " + std::to_string(v) + "; ids are 0.." + std::to_string(c.en.V - 1));
        return ids;
    }
    // Random prompts often sit where the objective is flat (a GELU far
    // below zero has no useful gradient, and its local maximum is there), so
    // the start is the best of a batch of random prompts.
    Engine &en = c.en;
    int64_t n = std::max(1, std::min(c.o.batch, kStartPrompts));
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < n; i++) {
        auto p = en.random_prompt(c.rng);
        rows.insert(rows.end(), p.begin(), p.end());
    }
    std::vector<float> a, x;
    bool fl = c.o.fluency != 0;
    en.eval_ids(torch::tensor(rows, torch::kLong).reshape({n, en.T}).to(en.m->device), n, a, x, fl);
    size_t best = 0;
    for (size_t i = 0; i < a.size(); i++)
        if (a[i] - (fl ? c.o.fluency * x[i] : 0.f) > a[best] - (fl ? c.o.fluency * x[best] : 0.f)) best = i;
    std::vector<int64_t> ids(rows.begin() + static_cast<long>(best) * en.T,
                             rows.begin() + static_cast<long>(best + 1) * en.T);
    if (c.o.method == AM_TEXT_SWEEP) return ids;
    // Then the last token, the one every position's context ends with, by a
    // sweep over the vocabulary: a neuron that fires on few tokens is
    // usually off for every random prompt, and its gradient there says
    // nothing.
    std::vector<int64_t> cand;
    for (int64_t v = 0; v < en.V; v++) {
        if (v == en.eot) continue;
        auto s = ids;
        s.back() = v;
        if (!en.roundtrip(s)) continue;
        cand.insert(cand.end(), s.begin(), s.end());
    }
    int64_t N = static_cast<int64_t>(cand.size()) / en.T;
    if (N == 0) return ids;
    // Stopped here, the best so far stands; the first step's report sees
    // the interrupt again and ends the run.
    PhasePoll poll(c.o, "start", before_steps(c, ids));
    en.eval_ids(torch::tensor(cand, torch::kLong).reshape({N, en.T}).to(en.m->device), kScoreBatch, a, x, fl,
                std::ref(poll));
    best = 0;
    for (size_t i = 0; i < a.size(); i++)
        if (a[i] - (fl ? c.o.fluency * x[i] : 0.f) > a[best] - (fl ? c.o.fluency * x[best] : 0.f)) best = i;
    return std::vector<int64_t>(cand.begin() + static_cast<long>(best) * en.T,
                                cand.begin() + static_cast<long>(best + 1) * en.T);
}

// soft (pez = false) and PEZ (pez = true).
Result run_continuous(Ctx &c, bool pez) {
    Engine &en = c.en;
    const auto &o = c.o;
    Result r;
    auto init = start_ids(c);
    auto e = en.embed(ids_tensor(init, en.m->device)).detach().clone().squeeze(0).requires_grad_(true);  // (T, D)
    torch::optim::Adam opt({e}, torch::optim::AdamOptions(o.lr));
    for (int step = 1; step <= o.steps; step++) {
        auto proj = std::get<1>(nearest(e.detach(), en.E, o.distance, 1)).reshape({1, en.T});
        opt.zero_grad();
        float act, xent;
        if (!pez) {
            auto out = en.run(e.unsqueeze(0), proj);
            auto loss = -(out.act.sum() - o.fluency * out.xent.sum());
            if (o.snap > 0) {
                if (o.distance == AM_DIST_COSINE) {
                    auto en_ = e / e.norm(2, {1}, true).clamp_min(1e-12);
                    auto En = en.E / en.E.norm(2, {1}, true).clamp_min(1e-12);
                    loss = loss + o.snap * (1 - std::get<0>(torch::matmul(en_, En.t()).max(1))).mean();
                } else {
                    auto d2 = (e * e).sum(1, true) - 2 * torch::matmul(e, en.E.t()) + (en.E * en.E).sum(1).unsqueeze(0);
                    loss = loss + o.snap * (std::get<0>(d2.min(1)) / static_cast<double>(en.D)).mean();
                }
            }
            loss.backward();
            act = out.act.item<float>();
            xent = out.xent.item<float>();
            r.ids = to_ids(proj);
        } else {
            // PEZ: the gradient is taken at the projected tokens and applied
            // to the continuous embeddings.
            auto hard = en.embed(proj).detach().clone().requires_grad_(true);
            auto out = en.run(hard, proj);
            auto score = out.act.sum() - o.fluency * out.xent.sum();
            auto g = torch::autograd::grad({score}, {hard})[0];
            e.mutable_grad() = -g.squeeze(0);
            float s = score.item<float>();
            if (s > r.score) {
                r.score = s;
                r.ids = to_ids(proj);
            }
            act = out.act.item<float>();
            xent = out.xent.item<float>();
        }
        opt.step();
        auto at = to_ids(proj);
        r.step_ids.insert(r.step_ids.end(), at.begin(), at.end());
        r.curve.push_back(act);
        r.xcurve.push_back(xent);
        r.steps = step;
        if (report(c, step, act, xent, pez ? r.ids : to_ids(proj))) {
            r.cancelled = true;
            break;
        }
    }
    torch::NoGradGuard ng;
    auto ef = e.detach();
    auto proj = std::get<1>(nearest(ef, en.E, o.distance, 1)).reshape({1, en.T});
    auto soft = en.run(ef.unsqueeze(0), proj);
    r.soft_act = soft.act.item<float>();
    if (!pez) {
        // Restarts are compared on what they deliver: the projected prompt.
        r.ids = to_ids(proj);
        std::vector<float> a, x;
        en.eval_ids(proj, 1, a, x);
        r.score = a[0] - o.fluency * x[0];
    }
    r.embeds = to_floats(ef);
    return r;
}

Result run_gcg(Ctx &c) {
    Engine &en = c.en;
    const auto &o = c.o;
    Result r;
    auto cur = start_ids(c);
    int64_t K = std::min<int64_t>(o.topk, en.V - 1);
    std::vector<float> a, x;
    en.eval_ids(ids_tensor(cur, en.m->device), 1, a, x);
    float cur_act = a[0], cur_x = x[0];
    float cur_score = cur_act - o.fluency * cur_x;
    for (int step = 1; step <= o.steps; step++) {
        // Gradient with respect to the one-hot tokens: through the
        // embeddings (grad . E^T) and, for the fluency term, through the
        // next-token targets (d xent / d onehot[t, v] = -logp[t-1, v] / (T-1)).
        auto ids = ids_tensor(cur, en.m->device);
        auto emb = en.embed(ids).detach().clone().requires_grad_(true);
        auto out = en.run(emb, ids, true, o.fluency != 0);
        auto score = out.act.sum() - o.fluency * out.xent.sum();
        auto g = torch::autograd::grad({score}, {emb})[0].squeeze(0);  // (T, D)
        torch::Tensor G;
        {
            torch::NoGradGuard ng;
            G = torch::matmul(g, en.E.t());  // (T, V)
            if (o.fluency != 0 && en.T > 1)
                G.slice(0, 1, en.T).add_(out.logp.squeeze(0) * (o.fluency / static_cast<double>(en.T - 1)));
            if (en.eot >= 0) G.select(1, en.eot).fill_(-std::numeric_limits<float>::infinity());
            G.scatter_(1, ids.reshape({en.T, 1}), -std::numeric_limits<float>::infinity());
        }
        auto top = to_ids(std::get<1>(G.topk(K, 1)).to(torch::kCPU));  // (T, K)
        std::set<std::pair<int64_t, int64_t>> seen;
        std::vector<int64_t> cand;  // (N, T)
        std::uniform_int_distribution<int64_t> pos_d(0, en.T - 1), k_d(0, K - 1);
        int tries = 0;
        while (static_cast<int>(seen.size()) < o.batch && tries < 4 * o.batch) {
            tries++;
            int64_t p = pos_d(c.rng), v = top[static_cast<size_t>(p * K + k_d(c.rng))];
            if (!seen.insert({p, v}).second) continue;
            auto s = cur;
            s[static_cast<size_t>(p)] = v;
            if (o.retokenize && !en.roundtrip(s)) continue;
            cand.insert(cand.end(), s.begin(), s.end());
        }
        int64_t N = static_cast<int64_t>(cand.size()) / en.T;
        bool fl = o.fluency != 0;
        if (N > 0) {
            auto ct = torch::tensor(cand, torch::kLong).reshape({N, en.T}).to(en.m->device);
            en.eval_ids(ct, std::max(1, o.batch), a, x, fl);
            int64_t pick = -1;
            for (int64_t i = 0; i < N; i++) {
                float s = a[static_cast<size_t>(i)] - (fl ? o.fluency * x[static_cast<size_t>(i)] : 0.f);
                if (s > cur_score) {
                    cur_score = s;
                    cur_act = a[static_cast<size_t>(i)];
                    pick = i;
                }
            }
            if (pick >= 0) {
                cur.assign(cand.begin() + pick * en.T, cand.begin() + (pick + 1) * en.T);
                if (fl) {
                    cur_x = x[static_cast<size_t>(pick)];
                } else {
                    std::vector<float> a1;
                    en.eval_ids(ids_tensor(cur, en.m->device), 1, a1, x);
                    cur_x = x[0];
                }
            }
        }
        r.step_ids.insert(r.step_ids.end(), cur.begin(), cur.end());
        r.curve.push_back(cur_act);
        r.xcurve.push_back(cur_x);
        r.steps = step;
        if (report(c, step, cur_act, cur_x, cur)) {
            r.cancelled = true;
            break;
        }
    }
    r.ids = cur;
    r.score = cur_score;
    return r;
}

Result run_sweep(Ctx &c) {
    Engine &en = c.en;
    const auto &o = c.o;
    Result r;
    auto base = start_ids(c);
    int64_t p = o.position < 0 ? o.position + en.T : o.position;
    auto all = torch::tensor(base, torch::kLong).reshape({1, en.T}).repeat({en.V, 1});
    all.select(1, p).copy_(torch::arange(en.V, torch::kLong));
    std::vector<float> a, x;
    bool fl = o.fluency != 0;
    PhasePoll poll(o, "sweep", before_steps(c, base));
    en.eval_ids(all.to(en.m->device), std::max<int64_t>(o.batch, kScoreBatch), a, x, fl, std::ref(poll));
    auto score = [&](size_t v) { return a[v] - (fl ? o.fluency * x[v] : 0.f); };
    size_t best = 0;
    for (size_t v = 0; v < a.size(); v++)
        if (score(v) > score(best)) best = v;
    r.ids = base;
    r.ids[static_cast<size_t>(p)] = static_cast<int64_t>(best);
    r.score = score(best);
    std::vector<float> a1, x1;
    en.eval_ids(ids_tensor(r.ids, en.m->device), 1, a1, x1);
    r.curve = {a[best]};
    r.xcurve = {x1[0]};
    r.steps = 1;
    r.sweep = a;
    r.cancelled = report(c, 1, a[best], x1[0], r.ids);
    return r;
}

// Prompts scored by the attribution, at most: every position against the
// whole vocabulary while that fits, else each position's most promising
// tokens by the gradient. Bounds its time at long prompts and vocabularies.
// The tokens those prompts hold are bounded too (a prompt's forward grows
// with its length): at len=256 the prompt budget alone took 45 s on a
// 2-layer GPT 32 wide.
constexpr int64_t kAttributionBudget = 16384;
constexpr int64_t kAttributionTokens = kAttributionBudget * 64;

// Between chunks, once half a second has passed since the last call, the
// attribution reports the run's last state again, so that an interrupt (the
// callback returning nonzero) is seen; stopped, the run keeps no attribution.
void attribution(Engine &en, const am_text_options &o, const std::vector<int64_t> &ids, float act, am_text_run *out,
                 const am_text_progress *last) {
    std::vector<int64_t> rows;   // candidates, (N, T)
    std::vector<int64_t> where;  // (N) position of the swap
    auto add = [&](int64_t t, int64_t v) {
        if (v == ids[static_cast<size_t>(t)]) return;
        auto s = ids;
        s[static_cast<size_t>(t)] = v;
        rows.insert(rows.end(), s.begin(), s.end());
        where.push_back(t);
    };
    if (en.T * en.T > kAttributionTokens) {
        // Even one swap per position is over the token budget: no
        // attribution rather than one that runs for hours.
        out->note = "attribution skipped: one swap at each of the " + std::to_string(en.T) + " positions is " +
                    std::to_string(en.T * en.T) + " tokens, over the budget of " + std::to_string(kAttributionTokens) +
                    " (attribution=false skips it; a prompt of at most " +
                    std::to_string(static_cast<int64_t>(std::sqrt(static_cast<double>(kAttributionTokens)))) +
                    " tokens gets one)";
        return;
    }
    if (en.T * en.V <= kAttributionBudget && en.T * en.V * en.T <= kAttributionTokens) {
        for (int64_t t = 0; t < en.T; t++)
            for (int64_t v = 0; v < en.V; v++) add(t, v);
    } else {
        const int64_t per = std::max<int64_t>(
            1, std::min({kAttributionCandidates, kAttributionBudget / en.T, kAttributionTokens / (en.T * en.T)}));
        out->note = "attribution: each position's " + std::to_string(per) +
                    " most promising tokens by the gradient (all " + std::to_string(en.T) + " x " +
                    std::to_string(en.V) + " swaps are over the budget of " + std::to_string(kAttributionBudget) +
                    " prompts or " + std::to_string(kAttributionTokens) + " tokens)";
        auto idt = ids_tensor(ids, en.m->device);
        auto emb = en.embed(idt).detach().clone().requires_grad_(true);
        auto g = torch::autograd::grad({en.run(emb, idt, false).act.sum()}, {emb})[0].squeeze(0);
        torch::NoGradGuard ng;
        auto top = to_ids(std::get<1>(torch::matmul(g, en.E.t()).topk(per, 1)).to(torch::kCPU));
        for (int64_t t = 0; t < en.T; t++)
            for (int64_t k = 0; k < per; k++) add(t, top[static_cast<size_t>(t * per + k)]);
    }
    int64_t N = static_cast<int64_t>(where.size());
    out->attr_drop.assign(static_cast<size_t>(en.T), 0.f);
    out->attr_alt.assign(static_cast<size_t>(en.T), -1);
    if (N == 0) return;
    std::vector<float> a, x;
    bool stopped = false;
    am_text_progress state{};
    if (last) state = *last;
    PhasePoll poll(o, "attribution", state);
    auto stop = [&](int64_t done, int64_t total) {
        if (!last) return false;
        return stopped = poll(done, total);
    };
    en.eval_ids(torch::tensor(rows, torch::kLong).reshape({N, en.T}).to(en.m->device),
                std::max<int64_t>(o.batch, kScoreBatch), a, x, false, stop);
    if (stopped) {
        out->cancelled = true;
        return;
    }
    std::vector<float> best(static_cast<size_t>(en.T), -std::numeric_limits<float>::infinity());
    for (int64_t i = 0; i < N; i++) {
        size_t t = static_cast<size_t>(where[static_cast<size_t>(i)]);
        if (a[static_cast<size_t>(i)] > best[t]) {
            best[t] = a[static_cast<size_t>(i)];
            out->attr_alt[t] = rows[static_cast<size_t>(i * en.T) + t];
        }
    }
    for (size_t t = 0; t < best.size(); t++) out->attr_drop[t] = act - best[t];
    out->has_attr = true;
}

void check_text_options(const am_text_options *o, int64_t context) {
    if (!o) throw Error(AM_E_ARG, "options are NULL; fill them with am_text_options_default first");
    if (o->method < AM_TEXT_SOFT || o->method > AM_TEXT_SWEEP)
        throw Error(AM_E_ARG,
                    "method must be AM_TEXT_SOFT (0), AM_TEXT_PEZ (1), AM_TEXT_GCG (2) or AM_TEXT_SWEEP (3), got " +
                        std::to_string(o->method));
    if (o->len < 1 || o->len > context)
        throw Error(AM_E_ARG, "len must be 1.." + std::to_string(context) + " (the model's context), got " +
                                  std::to_string(o->len));
    if (o->steps < 1 || o->steps > 1000000)
        throw Error(AM_E_ARG, "steps must be 1..1000000, got " + std::to_string(o->steps));
    if (!(o->lr > 0) || !std::isfinite(o->lr)) throw Error(AM_E_ARG, "lr must be a positive number");
    if (o->distance != AM_DIST_COSINE && o->distance != AM_DIST_L2)
        throw Error(AM_E_ARG, "distance must be AM_DIST_COSINE (0) or AM_DIST_L2 (1)");
    if (!(o->snap >= 0) || !std::isfinite(o->snap)) throw Error(AM_E_ARG, "snap must be >= 0");
    if (!(o->fluency >= 0) || !std::isfinite(o->fluency)) throw Error(AM_E_ARG, "fluency must be >= 0");
    if (o->topk < 1) throw Error(AM_E_ARG, "topk must be >= 1, got " + std::to_string(o->topk));
    if (o->nearest < 0) throw Error(AM_E_ARG, "nearest must be >= 0 (0: topk), got " + std::to_string(o->nearest));
    if (o->batch < 1 || o->batch > 65536)
        throw Error(AM_E_ARG, "batch must be 1..65536, got " + std::to_string(o->batch));
    if (o->restarts < 1 || o->restarts > 1000)
        throw Error(AM_E_ARG, "restarts must be 1..1000, got " + std::to_string(o->restarts));
    if (o->method == AM_TEXT_SWEEP && (o->position < -o->len || o->position >= o->len))
        throw Error(AM_E_ARG, "position " + std::to_string(o->position) + " is outside the prompt of len " +
                                  std::to_string(o->len) + " (use 0.." + std::to_string(o->len - 1) + " or -1..-" +
                                  std::to_string(o->len) + ")");
}

// A prompt's forward holds every activation up to the logits, kept for the
// gradient steps (and about as much again in gradients); scoring forwards
// hold no graph, so a sequence costs a few of its largest tensors (the
// logits, their log-softmax).
constexpr double kTextAutogradFactor = 2.5;
constexpr double kScoreTensors = 4;

// Refuses a prompt length whose gradient step will not fit, and bounds the
// scoring chunks by what is available. forward_peak: what the allocator held
// at most during one forward at T (tensors made inside if blocks, such as a
// scripted nn.MultiheadAttention's scores, included), a floor under the sum
// of the graph's top-level tensors.
void budget_memory(Engine &en, int64_t T, double forward_peak) {
    double avail = memory_available(en.m->device);
    if (avail < 0) return;
    ProbeBytes pb;
    try {
        pb = probe_bytes(en.m, *en.plan_full, torch::zeros({1, T, en.D}, en.E.options()));
    } catch (const std::exception &) {
        return;  // the estimate is advice; the run reports its own failure
    }
    double step = kTextAutogradFactor * std::max(pb.sum, forward_peak);
    check_memory(en.m->device, step, "a gradient step at len=" + std::to_string(T), [&](double av) -> std::string {
        // Activations grow at least linearly with the length.
        int64_t fit = static_cast<int64_t>(static_cast<double>(T) * av / step);
        return fit >= 1 ? "len=" + std::to_string(fit) + " would fit" : "";
    });
    double per_seq = kScoreTensors * pb.max;
    if (per_seq > 0) en.max_chunk = std::max<int64_t>(1, static_cast<int64_t>(avail / 2 / per_seq));
    // On the CPU, chunks whose largest tensor stays well under the mmap
    // threshold runs set (tune_malloc_for_runs, 256 MiB): glibc then reuses
    // the same heap memory chunk after chunk. Larger tensors were mapped
    // afresh and their pages zeroed by the kernel for every chunk: two
    // thirds of a len=1040 soft run's time on a 2-layer GPT went there.
    constexpr double kChunkTensorBytes = 64.0 * 1024 * 1024;
    if (en.m->device.is_cpu() && pb.max > 0)
        en.max_chunk = std::min(en.max_chunk, std::max<int64_t>(1, static_cast<int64_t>(kChunkTensorBytes / pb.max)));
}

// Builds the engine and checks the objective on one probe forward.
void setup(Engine &en, am_model *m, const char *objective, int64_t T) {
    en.m = m;
    load_tokenizer(m, en.tok);
    en.eot = am_tokenizer_eot(en.tok.t);
    en.obj = parse_text_objective(objective);
    int st = am_model_embeddings(m, nullptr);
    if (st != AM_OK) throw Error(st, m->error);
    en.E = m->embedding;
    en.V = en.E.size(0);
    en.D = en.E.size(1);
    en.T = T;
    en.n_obj = en.obj.layers.size();
    auto layers = en.obj.layers;
    layers.push_back("output");
    en.plan_full = tap_plan(m, Base::kEmbeds, layers);
    en.plan_obj = tap_plan(m, Base::kEmbeds, en.obj.layers);
    std::vector<float> a, x;
    double peak = measure_peak(m->device, [&] {
        en.eval_ids(torch::zeros({1, T}, torch::kLong).to(m->device), 1, a, x);
    });
    budget_memory(en, T, peak);
}

// The projected curve and the best discrete prompt seen. Soft's steps are
// continuous, so their projections are evaluated here on the ids, in
// batches, each run of equal prompts once (prompts repeat a lot).
void projected(Engine &en, const am_text_options &o, const Result &best, am_text_run *r) {
    size_t S = best.curve.size(), T = static_cast<size_t>(en.T);
    if (best.step_ids.size() != S * T || S == 0) {  // sweep: one value, the result
        r->proj_curve = best.curve;
        r->best_ids = r->tokens;
        r->best_act = r->act;
        r->best_step = r->steps_done;
        return;
    }
    if (o.method == AM_TEXT_SOFT) {
        std::vector<int64_t> rows;
        std::vector<size_t> row_of(S);
        for (size_t s = 0; s < S; s++) {
            auto at = best.step_ids.begin() + static_cast<long>(s * T);
            if (s == 0 ||
                !std::equal(at, at + static_cast<long>(T), best.step_ids.begin() + static_cast<long>((s - 1) * T)))
                rows.insert(rows.end(), at, at + static_cast<long>(T));
            row_of[s] = rows.size() / T - 1;
        }
        int64_t N = static_cast<int64_t>(rows.size() / T);
        std::vector<float> a, x;
        en.eval_ids(torch::tensor(rows, torch::kLong).reshape({N, en.T}).to(en.m->device), kScoreBatch, a, x, false);
        r->proj_curve.resize(S);
        for (size_t s = 0; s < S; s++) r->proj_curve[s] = a[row_of[s]];
    } else {
        r->proj_curve = best.curve;
    }
    size_t at = 0;
    for (size_t s = 1; s < S; s++)
        if (r->proj_curve[s] > r->proj_curve[at]) at = s;
    r->best_step = static_cast<int>(at) + 1;
    r->best_act = r->proj_curve[at];
    r->best_ids.assign(best.step_ids.begin() + static_cast<long>(at * T),
                       best.step_ids.begin() + static_cast<long>((at + 1) * T));
}

void text_run_impl(am_model *m, const am_text_options *o, am_text_run *r) {
    if (m->device.is_cpu()) tune_malloc_for_runs();
    check_text_model(m);
    int64_t context = m->input_shape[0];
    check_text_options(o, context);
    Engine en;
    en.fluency = o->fluency;
    setup(en, m, o->objective, o->len);
    auto t0 = std::chrono::steady_clock::now();
    Result best;
    for (int rs = 0; rs < o->restarts; rs++) {
        torch::manual_seed(o->seed + static_cast<uint64_t>(rs));
        Ctx c{en, *o, rs, std::mt19937_64(o->seed + static_cast<uint64_t>(rs))};
        Result res;
        switch (o->method) {
        case AM_TEXT_SOFT: res = run_continuous(c, false); break;
        case AM_TEXT_PEZ: res = run_continuous(c, true); break;
        case AM_TEXT_GCG: res = run_gcg(c); break;
        default: res = run_sweep(c); break;
        }
        bool cancelled = res.cancelled;
        if (rs == 0 || res.score > best.score) best = std::move(res);
        if (cancelled) {
            r->cancelled = true;
            break;
        }
    }
    r->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r->T = static_cast<int>(en.T);
    r->D = static_cast<int>(en.D);
    r->tokens = best.ids;
    r->steps_done = best.steps;
    r->curve = best.curve;
    r->xcurve = best.xcurve;
    r->sweep = best.sweep;
    if (o->method == AM_TEXT_SWEEP) r->sweep_pos = static_cast<int>(o->position < 0 ? o->position + en.T : o->position);
    std::vector<float> a, x;
    en.eval_ids(ids_tensor(r->tokens, m->device), 1, a, x);
    r->act = a[0];
    r->xent = x[0];
    r->roundtrip = en.roundtrip(r->tokens, &r->text);
    if (o->method == AM_TEXT_SOFT || o->method == AM_TEXT_PEZ) {
        r->soft_act = best.soft_act;
        r->retention = r->act / best.soft_act;
        r->embeds = best.embeds;
        auto e = torch::tensor(best.embeds).reshape({en.T, en.D}).to(m->device);
        int64_t K = std::min<int64_t>(o->nearest ? o->nearest : o->topk, en.V);
        auto nv = nearest(e, en.E, o->distance, K);
        r->K = static_cast<int>(K);
        r->near_vals = to_floats(nv.first);
        r->near_ids = to_ids(nv.second);
    }
    projected(en, *o, best, r);
    if (o->attribution && !r->cancelled) {
        am_text_progress last{};
        last.step = r->steps_done;
        last.steps = o->steps;
        last.restart = o->restarts - 1;
        last.restarts = o->restarts;
        last.activation = r->act;
        last.xent = r->xent;
        last.tokens = r->tokens.data();
        last.len = static_cast<int>(r->tokens.size());
        attribution(en, *o, r->tokens, r->act, r, &last);
    }
}

}  // namespace
}  // namespace am

extern "C" {

void am_text_options_default(am_text_options *o) {
    if (!o) return;
    std::memset(o, 0, sizeof *o);
    o->method = AM_TEXT_SOFT;
    o->len = 8;
    o->steps = 200;
    o->lr = 0.05f;
    o->distance = AM_DIST_COSINE;
    o->topk = 64;
    o->batch = 128;
    o->position = -1;
    o->restarts = 1;
    o->retokenize = 1;
    o->attribution = 1;
}

int am_text_run_new(am_model *m, const am_text_options *o, am_text_run **out) {
    return am::construct(out, [&](am_text_run *r) {
        if (!m || !m->loaded || !m->graph) throw Error(AM_E_ARG, "model handle is NULL or did not load");
        try {
            am::blas_follow_threads();
            am::text_run_impl(m, o, r);
        } catch (const c10::Error &e) {
            // libtorch's allocator failure, in one plain sentence.
            if (!am::allocation_failure(e.what())) throw;
            throw Error(AM_E_NOMEM, "not enough memory for this search (len " + std::to_string(o ? o->len : 0) +
                                        "): try a smaller len or batch");
        }
    });
}

void am_text_run_free(am_text_run *r) { delete r; }
const char *am_text_run_error(const am_text_run *r) { return r ? r->error.c_str() : "text run handle is NULL"; }
int am_text_run_cancelled(const am_text_run *r) { return r ? (r->cancelled ? 1 : 0) : AM_E_ARG; }
int am_text_run_steps(const am_text_run *r) { return r ? r->steps_done : AM_E_ARG; }
double am_text_run_seconds(const am_text_run *r) { return r ? r->seconds : 0.0; }

const int64_t *am_text_run_tokens(const am_text_run *r, int *len) {
    if (len) *len = r ? static_cast<int>(r->tokens.size()) : 0;
    return r && !r->tokens.empty() ? r->tokens.data() : nullptr;
}
const char *am_text_run_text(const am_text_run *r) { return r ? r->text.c_str() : ""; }
int am_text_run_roundtrip(const am_text_run *r) { return r ? (r->roundtrip ? 1 : 0) : AM_E_ARG; }
float am_text_run_activation(const am_text_run *r) { return r ? r->act : std::numeric_limits<float>::quiet_NaN(); }
float am_text_run_xent(const am_text_run *r) { return r ? r->xent : std::numeric_limits<float>::quiet_NaN(); }
float am_text_run_soft_activation(const am_text_run *r) {
    return r ? r->soft_act : std::numeric_limits<float>::quiet_NaN();
}
float am_text_run_retention(const am_text_run *r) { return r ? r->retention : std::numeric_limits<float>::quiet_NaN(); }

const float *am_text_run_embeds(const am_text_run *r, int *len, int *dim) {
    bool ok = r && !r->embeds.empty();
    if (len) *len = ok ? r->T : 0;
    if (dim) *dim = ok ? r->D : 0;
    return ok ? r->embeds.data() : nullptr;
}

int am_text_run_nearest(const am_text_run *r, const int64_t **ids, const float **values, int *len, int *k) {
    if (!r) return AM_E_ARG;
    if (r->near_ids.empty()) return AM_E_UNSUPPORTED;
    if (ids) *ids = r->near_ids.data();
    if (values) *values = r->near_vals.data();
    if (len) *len = r->T;
    if (k) *k = r->K;
    return AM_OK;
}

const float *am_text_run_curve(const am_text_run *r, int *steps) {
    if (steps) *steps = r ? static_cast<int>(r->curve.size()) : 0;
    return r && !r->curve.empty() ? r->curve.data() : nullptr;
}
const float *am_text_run_xent_curve(const am_text_run *r, int *steps) {
    if (steps) *steps = r ? static_cast<int>(r->xcurve.size()) : 0;
    return r && !r->xcurve.empty() ? r->xcurve.data() : nullptr;
}

const float *am_text_run_projected_curve(const am_text_run *r, int *steps) {
    if (steps) *steps = r ? static_cast<int>(r->proj_curve.size()) : 0;
    return r && !r->proj_curve.empty() ? r->proj_curve.data() : nullptr;
}

int am_text_run_best(const am_text_run *r, const int64_t **ids, int *len, float *activation, int *step) {
    if (!r) return AM_E_ARG;
    if (r->best_ids.empty()) return AM_E_ARG;
    if (ids) *ids = r->best_ids.data();
    if (len) *len = static_cast<int>(r->best_ids.size());
    if (activation) *activation = r->best_act;
    if (step) *step = r->best_step;
    return AM_OK;
}

int am_text_run_attribution(const am_text_run *r, const float **drop, const int64_t **alt, int *len) {
    if (!r) return AM_E_ARG;
    if (!r->has_attr) return AM_E_UNSUPPORTED;
    if (drop) *drop = r->attr_drop.data();
    if (alt) *alt = r->attr_alt.data();
    if (len) *len = r->T;
    return AM_OK;
}

const char *am_text_run_note(const am_text_run *r) { return r ? r->note.c_str() : ""; }

const float *am_text_run_sweep(const am_text_run *r, int *vocab, int *position) {
    bool ok = r && !r->sweep.empty();
    if (vocab) *vocab = ok ? static_cast<int>(r->sweep.size()) : 0;
    if (position) *position = ok ? r->sweep_pos : -1;
    return ok ? r->sweep.data() : nullptr;
}

}  // extern "C"
