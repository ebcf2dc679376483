// run.cpp — image optimization: objectives evaluated on taps,
// parameterizations (pixel, Fourier with 1/f scaling, colour decorrelation),
// transformation robustness, regularizers, the optimizer loop, results.
//
// Follows Lucid (github.com/tensorflow/lucid, optvis/param and transform)
// and its PyTorch port Lucent, so results look like what their users expect.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>

#include "internal.hpp"
#include "memory.hpp"
#include "objective.hpp"
#include "objective_eval.hpp"
#include "param.hpp"

using am::Error;

struct am_run {
    std::string error;
    bool cancelled = false;
    int steps_done = 0;
    int64_t shape[4] = {0, 0, 0, 0};        // B, C, H, W
    std::vector<float> images;              // (B, C, H, W)
    std::vector<float> curve;               // (S)
    std::vector<std::string> term_names;    // (nterms)
    std::vector<std::vector<float>> terms;  // (nterms, S)
    std::vector<float> final_act;           // (B)
    std::vector<int> snap_steps;            // (nsnap)
    std::vector<std::vector<float>> snaps;  // (nsnap, B*C*H*W)
    double seconds = 0;
    std::vector<float> activation;        // (B) objective alone, diversity() taken as 0
    std::vector<float> transparency;      // (B*C*H*W) summed |d loss / d image| (MACO runs)
    std::vector<float> transparency_map;  // (B*C*H*W) the same as a grey image in [0, 1]
    std::string diversity_layer;          // "" when no diversity term
    std::string note;                     // choices the run made by itself
};

namespace am {
namespace {

// Lucid's standard transforms are given for 224x224 inputs: pad 12 px,
// jitter 8 px, scales in 11 steps, and the angle list with zero 5 more
// times (so about a third of the steps are unrotated). Other sizes scale
// the pixel amounts, with a floor so small images still move.
constexpr double kTransformRefSize = 224.0;
constexpr double kPadAtRef = 12.0, kPadMin = 1.0;
constexpr double kJitterAtRef = 8.0, kJitterMin = 2.0;
constexpr int kScaleSteps = 11;
constexpr int kExtraZeroAngles = 5;

// ============================================================ objectives

struct Objective {
    std::string src;
    std::unique_ptr<ObjNode> root;
};

// ============================================================ image parameterization

struct Image {
    int param = AM_PARAM_FFT;
    bool decorrelate = true;
    int64_t B = 1, C = 3, H = 1, W = 1;
    torch::Tensor p;       // pixel: (B, C, H, W); fft: (B, C, H, W/2+1, 2)
    torch::Tensor scale;   // fft: (1, 1, H, W/2+1, 1)
    torch::Tensor cmat_t;  // (3, 3) transposed colour matrix

    void make_scale(float decay, torch::Device dev) { scale = fft_scale(H, W, decay).to(dev); }

    // Display image (B, C, H, W) in [0, 1] (param_api.cpp, also am_param_image).
    torch::Tensor render() const {
        auto cm = decorrelate ? cmat_t : torch::Tensor();
        return param == AM_PARAM_FFT ? fft_render(p, scale, H, W, cm) : pixel_render(p, cm);
    }

    // Inverse of render for a start image (DeepDream-style init).
    torch::Tensor invert(const torch::Tensor &display) const {
        auto t = torch::logit(display.clamp(1e-4, 1 - 1e-4));
        if (decorrelate) t = torch::matmul(t.permute({0, 2, 3, 1}), torch::inverse(cmat_t)).permute({0, 3, 1, 2});
        if (param == AM_PARAM_PIXEL) return t;
        auto spec = torch::fft::rfft2(t * 4.0, std::vector<int64_t>{H, W}, {-2, -1}, "ortho");
        return torch::view_as_real(spec) / scale;
    }
};

// ============================================================ transforms

struct Transforms {
    bool on = true;
    int pad = 12, jitter = 8;
    std::vector<double> scales;
    std::vector<int> angles;
    int64_t H = 0, W = 0;  // output size the network sees

    torch::Tensor jitter_crop(const torch::Tensor &x, int d, std::mt19937_64 &rng) const {
        if (d <= 1) return x;
        int64_t dx = static_cast<int64_t>(rng() % static_cast<uint64_t>(d));
        int64_t dy = static_cast<int64_t>(rng() % static_cast<uint64_t>(d));
        int64_t h = x.size(2) - d, w = x.size(3) - d;
        if (h < 1 || w < 1) return x;
        return x.slice(2, dy, dy + h).slice(3, dx, dx + w);
    }

    // Lucid's standard_transforms: pad, jitter, random scale, random rotate,
    // jitter again (half); then back to H x W for fixed-size models.
    torch::Tensor apply(torch::Tensor x, std::mt19937_64 &rng) const {
        namespace F = torch::nn::functional;
        if (on) {
            if (pad > 0) x = torch::constant_pad_nd(x, {pad, pad, pad, pad}, 0.5);
            x = jitter_crop(x, jitter, rng);
            if (!scales.empty()) {
                double s = scales[rng() % scales.size()];
                if (s != 1.0) {
                    auto h = static_cast<int64_t>(std::ceil(s * static_cast<double>(x.size(2))));
                    auto w = static_cast<int64_t>(std::ceil(s * static_cast<double>(x.size(3))));
                    x = F::interpolate(x, F::InterpolateFuncOptions()
                                              .size(std::vector<int64_t>{h, w})
                                              .mode(torch::kBilinear)
                                              .align_corners(true));
                }
            }
            if (!angles.empty()) {
                int a = angles[rng() % angles.size()];
                if (a != 0) {
                    double r = a * M_PI / 180.0;
                    auto theta = torch::tensor({std::cos(r), -std::sin(r), 0.0, std::sin(r), std::cos(r), 0.0},
                                               torch::TensorOptions().dtype(x.scalar_type()))
                                     .reshape({1, 2, 3})
                                     .expand({x.size(0), 2, 3})
                                     .to(x.device());
                    auto grid = torch::affine_grid_generator(theta, x.sizes(), /*align_corners=*/false);
                    x = torch::grid_sampler(x, grid, /*interpolation_mode=*/0, /*padding_mode=*/0,
                                            /*align_corners=*/false);
                }
            }
            x = jitter_crop(x, jitter / 2, rng);
        }
        if (x.size(2) != H || x.size(3) != W)
            x = F::interpolate(x, F::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{H, W})
                                      .mode(torch::kBilinear)
                                      .align_corners(false));
        return x;
    }
};

std::vector<float> to_vec(const torch::Tensor &t) {
    auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// ============================================================ the run

void check_options(const am_model *m, const am_options *o) {
    if (m->kind != "image")
        throw Error(AM_E_UNSUPPORTED, "image optimization needs an image model; this one is '" + m->kind + "'");
    if (!o->objectives || o->n_objectives < 1) throw Error(AM_E_ARG, "no objective given (n_objectives must be >= 1)");
    for (int i = 0; i < o->n_objectives; i++)
        if (!o->objectives[i]) throw Error(AM_E_ARG, "objective " + std::to_string(i) + " is NULL");
    if (o->batch < 1 || o->batch > 1024)
        throw Error(AM_E_ARG, "batch must be 1..1024, got " + std::to_string(o->batch));
    if (o->n_objectives > 1 && o->batch > 1 && o->batch != o->n_objectives)
        throw Error(AM_E_ARG, "batch (" + std::to_string(o->batch) + ") must equal the number of objectives (" +
                                  std::to_string(o->n_objectives) + ") or be 1");
    if (o->steps < 1 || o->steps > 1000000)
        throw Error(AM_E_ARG, "steps must be 1..1000000, got " + std::to_string(o->steps));
    if (!(o->lr >= 0) || !std::isfinite(o->lr))
        throw Error(AM_E_ARG, "lr must be a positive number (0: the parameterization's default)");
    if (o->optimizer < AM_OPT_AUTO || o->optimizer > AM_OPT_NADAM)
        throw Error(AM_E_ARG,
                    "optimizer must be AM_OPT_AUTO (-1), AM_OPT_ADAM (0), AM_OPT_SGD (1) or AM_OPT_NADAM (2)");
    if (o->param != AM_PARAM_FFT && o->param != AM_PARAM_PIXEL && o->param != AM_PARAM_MACO)
        throw Error(AM_E_ARG, "param must be AM_PARAM_FFT (0), AM_PARAM_PIXEL (1) or AM_PARAM_MACO (2)");
    if (o->param == AM_PARAM_MACO) {
        if (o->crops < 1 || o->crops > 256)
            throw Error(AM_E_ARG, "crops must be 1..256, got " + std::to_string(o->crops));
        if (!(o->crop_min > 0) || !(o->crop_max <= 1) || o->crop_min > o->crop_max)
            throw Error(AM_E_ARG, "MACO crop sides need 0 < crop_min <= crop_max <= 1 (fractions of the canvas side)");
        if (!(o->noise >= 0) || !std::isfinite(o->noise)) throw Error(AM_E_ARG, "noise must be >= 0");
        if (!(o->contrast > 0) || !std::isfinite(o->contrast)) throw Error(AM_E_ARG, "contrast must be > 0");
    }
    if (!(o->accent >= 0) || !std::isfinite(o->accent)) throw Error(AM_E_ARG, "accent must be >= 0");
    if (o->accent > 0 && o->init != AM_INIT_IMAGE)
        throw Error(AM_E_ARG, "accent keeps the image close to a start image: set init = AM_INIT_IMAGE and init_image");
    if (!(o->diversity >= 0) || !std::isfinite(o->diversity)) throw Error(AM_E_ARG, "diversity must be >= 0");
    if (o->diversity > 0 && (o->n_objectives > 1 ? o->n_objectives : o->batch) < 2)
        throw Error(AM_E_ARG, "diversity compares the images of a batch with each other: it needs batch >= 2");
    if (o->height < 0 || o->width < 0 || o->height > 4096 || o->width > 4096)
        throw Error(AM_E_ARG, "height and width must be 1..4096 (0 = the model's input size)");
    if (o->init != AM_INIT_NOISE && o->init != AM_INIT_IMAGE)
        throw Error(AM_E_ARG, "init must be AM_INIT_NOISE (0) or AM_INIT_IMAGE (1)");
    if (o->init == AM_INIT_IMAGE && !o->init_image)
        throw Error(AM_E_ARG, "init is AM_INIT_IMAGE but init_image is NULL");
    if (o->scale_min <= 0 || o->scale_max < o->scale_min) throw Error(AM_E_ARG, "need 0 < scale_min <= scale_max");
    if (o->l1 < 0 || o->l2 < 0 || o->tv < 0 || o->blur < 0) throw Error(AM_E_ARG, "regularizer weights must be >= 0");
    if (o->n_thresholds < 0 || (o->n_thresholds > 0 && !o->thresholds))
        throw Error(AM_E_ARG, "thresholds: n_thresholds > 0 needs an array");
    if (!(o->init_std >= 0)) throw Error(AM_E_ARG, "init_std must be >= 0");
}

// The first diversity(...) term of an objective, or null.
const ObjNode *diversity_term(const ObjNode &n) {
    if (n.kind == ObjNode::kDiversity) return &n;
    for (const ObjNode *c : {n.a.get(), n.b.get()})
        if (c)
            if (const ObjNode *d = diversity_term(*c)) return d;
    return nullptr;
}

// An objective as a label (term names, live displays): long ones cut, so a
// megabyte of text is not sent again with every update.
std::string objective_label(const std::string &src) {
    constexpr size_t kMax = 80;
    if (src.size() <= kMax) return src;
    size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(src[cut]) & 0xC0) == 0x80) cut--;
    return src.substr(0, cut) + "... (" + std::to_string(src.size()) + " characters)";
}

// The run's peak memory, from one probe of the model at batch 1: each
// view the model sees per step holds every activation up to the deepest
// tapped layer, kept for backward, and about as much again in gradients
// while backward runs; the image side holds the parameterization, its
// optimizer state and gradient, and the rendered and transformed copies.
constexpr double kAutogradFactor = 2.5;
constexpr double kImageCopies = 12;

void check_run_memory(am_model *m, const am_options *o, const std::vector<std::string> &layers, int64_t B, int64_t K,
                      int64_t H, int64_t W) {
    if (memory_available(m->device) < 0) return;
    const int64_t C = m->input_shape[0], Hin = m->input_shape[1], Win = m->input_shape[2];
    ProbeBytes pb;
    try {
        auto x = torch::zeros({1, C, Hin, Win}, torch::TensorOptions().device(m->device));
        pb = probe_bytes(m, *tap_plan(m, Base::kForward, layers), x);
    } catch (const std::exception &) {
        return;  // the estimate is advice; the run reports its own failure
    }
    const bool maco = o->param == AM_PARAM_MACO;
    // Per image of the batch: its views' activations and its own copies.
    double views = maco ? static_cast<double>(K) : static_cast<double>(H * W) / static_cast<double>(Hin * Win);
    double per_image = kAutogradFactor * pb.sum * views + kImageCopies * 4.0 * static_cast<double>(C * H * W);
    double need = per_image * static_cast<double>(B);
    check_memory(m->device, need,
                 "this run (batch " + std::to_string(B) + " at " + std::to_string(H) + "x" + std::to_string(W) + ")",
                 [&](double avail) -> std::string {
                     int64_t b = static_cast<int64_t>(avail / per_image);
                     if (b >= 1) return "batch=" + std::to_string(b) + " would fit";
                     if (maco) return "";
                     // Both sides scale the per-image cost by area.
                     int64_t side =
                         static_cast<int64_t>(std::sqrt(avail / per_image) * static_cast<double>(std::min(H, W)));
                     side -= side % 8;
                     return side >= 8 ? "batch=1 at size=" + std::to_string(side) + " would fit" : "";
                 });
}

void run_impl(am_model *m, const am_options *o, am_run *r) {
    check_options(m, o);
    if (m->device.is_cpu()) tune_malloc_for_runs();
    int64_t B = o->n_objectives > 1 ? o->n_objectives : o->batch;
    int64_t C = m->input_shape[0];
    int64_t H = o->height ? o->height : m->input_shape[1];
    int64_t W = o->width ? o->width : m->input_shape[2];

    // Parse every objective before any work, so syntax errors come first.
    std::vector<Objective> objs;
    std::vector<std::string> layers;
    for (int i = 0; i < o->n_objectives; i++) {
        Objective ob;
        ob.src = o->objectives[i];
        ob.root = parse_with_caret(ob.src);
        objective_layers(*ob.root, layers);
        if (const ObjNode *d = diversity_term(*ob.root); d && B < 2)
            throw Error(AM_E_OBJECTIVE, objective_format_error(ob.src, d->column,
                                                               "diversity(" + d->layer +
                                                                   ") compares the images of a batch with "
                                                                   "each other: it needs batch=2 or more, got batch=" +
                                                                   std::to_string(B)));
        objs.push_back(std::move(ob));
    }
    // The diversity term's layer: named, or the first the objective reads.
    size_t div_index = 0;
    if (o->diversity > 0) {
        std::string dl = o->diversity_layer ? o->diversity_layer : "";
        if (dl.empty()) {
            std::vector<std::string> first;
            objective_layers(*objs[0].root, first);
            if (first.empty())
                throw Error(AM_E_ARG, "the objective reads no layer: name the diversity layer (diversity_layer)");
            dl = first[0];
        }
        auto it = std::find(layers.begin(), layers.end(), dl);
        div_index = static_cast<size_t>(it - layers.begin());
        if (it == layers.end()) layers.push_back(dl);
        r->diversity_layer = dl;
    }
    tap_plan(m, Base::kForward, layers);  // unknown layers fail here, before any work
    // MACO: the model sees K crops of each image at its own input size.
    const bool maco = o->param == AM_PARAM_MACO;
    const int64_t K = maco ? o->crops : 1;
    const int64_t Hin = m->input_shape[1], Win = m->input_shape[2];
    auto plan = maco ? tap_plan(m, Base::kForward, layers, /*fast=*/true, {B * K, C, Hin, Win})
                     : tap_plan(m, Base::kForward, layers, /*fast=*/true, {B, C, H, W});
    auto final_plan = maco ? tap_plan(m, Base::kForward, layers, /*fast=*/true, {B, C, Hin, Win}) : plan;
    check_run_memory(m, o, layers, B, K, H, W);

    torch::manual_seed(o->seed);
    std::mt19937_64 rng(o->seed);
    auto dev = m->device;
    auto fopt = torch::TensorOptions().dtype(torch::kFloat);

    Image img;
    img.param = o->param;
    img.decorrelate = o->decorrelate && C == 3;
    img.B = B;
    img.C = C;
    img.H = H;
    img.W = W;
    img.cmat_t = color_matrix_t().to(dev);
    torch::Tensor mag, cmat;  // MACO: (1, C, H, W/2+1) magnitude; colour matrix or undefined
    if (img.param == AM_PARAM_FFT) {
        img.make_scale(o->decay_power, dev);
        img.p = (torch::randn({B, C, H, W / 2 + 1, 2}, fopt) * o->init_std).to(dev);
    } else if (img.param == AM_PARAM_PIXEL) {
        img.p = (torch::randn({B, C, H, W}, fopt) * o->init_std).to(dev);
    } else {
        mag = maco_magnitude(m, C, H, W, o->decay_power, &r->note);
        if (img.decorrelate) cmat = img.cmat_t;
        img.p = torch::randn({B, C, H, W / 2 + 1}, fopt).to(dev);
    }
    torch::Tensor seed_img;  // (B, C, H, W) the start image, for accent
    if (o->init == AM_INIT_IMAGE) {
        auto start = torch::from_blob(const_cast<float *>(o->init_image), {B, C, H, W}, fopt).clone().to(dev);
        if (!torch::isfinite(start).all().item<bool>())
            throw Error(AM_E_ARG, "init_image holds NaN or infinite values");
        seed_img = start.clamp(0, 1);
        img.p = (maco ? maco_phase_of(seed_img, cmat) : img.invert(seed_img)).contiguous();
    }
    img.p.requires_grad_(true);
    auto render = [&]() { return maco ? maco_render(img.p, mag, H, W, cmat, o->contrast) : img.render(); };

    Transforms tf;
    tf.on = o->transforms != 0;
    double s224 = static_cast<double>(std::min(H, W)) / kTransformRefSize;
    tf.pad = o->pad >= 0 ? o->pad : static_cast<int>(std::lround(std::max(kPadMin, kPadAtRef * s224)));
    tf.jitter = o->jitter >= 0 ? o->jitter : static_cast<int>(std::lround(std::max(kJitterMin, kJitterAtRef * s224)));
    for (int i = 0; i < kScaleSteps; i++)
        tf.scales.push_back(o->scale_min + (o->scale_max - o->scale_min) * i / (kScaleSteps - 1.0));
    int rot = static_cast<int>(std::lround(o->rotate_deg));
    if (rot > 0) {
        // Lucent's list: every integer angle once, and zero five more times.
        for (int a = -rot; a <= rot; a++) tf.angles.push_back(a);
        for (int k = 0; k < kExtraZeroAngles; k++) tf.angles.push_back(0);
    }
    tf.H = H;
    tf.W = W;

    const InputScale to_model(m, dev);

    const int optimizer = o->optimizer != AM_OPT_AUTO ? o->optimizer : maco ? AM_OPT_NADAM : AM_OPT_ADAM;
    // As float, like the field: a default run equals one given lr = 0.05 bit for bit.
    const double lr = o->lr > 0 ? o->lr : maco ? 1.0f : 0.05f;
    std::unique_ptr<torch::optim::Optimizer> opt;
    std::unique_ptr<NAdam> nadam;
    if (optimizer == AM_OPT_ADAM)
        opt = std::make_unique<torch::optim::Adam>(std::vector<torch::Tensor>{img.p}, torch::optim::AdamOptions(lr));
    else if (optimizer == AM_OPT_SGD)
        opt = std::make_unique<torch::optim::SGD>(std::vector<torch::Tensor>{img.p},
                                                  torch::optim::SGDOptions(lr).momentum(o->momentum));
    else
        nadam = std::make_unique<NAdam>(img.p, lr);

    // Term names: one per batch element, then the active regularizers.
    for (int64_t b = 0; b < B; b++)
        r->term_names.push_back("obj" + std::to_string(b) + ": " +
                                objective_label(objs[static_cast<size_t>(objs.size() > 1 ? b : 0)].src));
    struct Reg {
        const char *name;
        float w;
    };
    std::vector<Reg> regs;
    if (o->l1 > 0) regs.push_back({"l1", o->l1});
    if (o->l2 > 0) regs.push_back({"l2", o->l2});
    if (o->tv > 0) regs.push_back({"tv", o->tv});
    if (o->blur > 0) regs.push_back({"blur", o->blur});
    if (o->diversity > 0) r->term_names.push_back("diversity (" + r->diversity_layer + ")");
    if (o->accent > 0) r->term_names.push_back("accent");
    for (auto &g : regs) r->term_names.push_back(g.name);
    r->terms.assign(r->term_names.size(), {});
    std::vector<const char *> name_ptrs;
    for (auto &s : r->term_names) name_ptrs.push_back(s.c_str());

    // Objective per image (B); with k views per image (rows b*k .. b*k+k-1),
    // the mean over its views. no_diversity: every diversity() counts 0.
    auto evaluate = [&](const std::vector<torch::Tensor> &outs, int64_t k, bool no_diversity) {
        Acts acts;
        for (size_t i = 0; i < layers.size(); i++) acts[layers[i]] = outs[i];
        EvalCtx ctx{m, &acts, {}};
        if (no_diversity)
            for (auto &l : layers) ctx.diversity_cache[l] = torch::zeros({}, fopt.device(dev));
        std::vector<torch::Tensor> vals;
        for (int64_t i = 0; i < B * k; i++) {
            const auto &ob = objs[static_cast<size_t>(objs.size() > 1 ? i / k : 0)];
            vals.push_back(with_caret(ob.src, [&] { return eval_node(*ob.root, i, ctx); }).to(dev));
        }
        auto v = torch::stack(vals);
        return k > 1 ? v.reshape({B, k}).mean(1) : v;  // (B)
    };

    std::vector<int> thresholds(o->thresholds, o->thresholds + o->n_thresholds);
    size_t next_thr = 0;
    double best = -INFINITY;
    torch::Tensor best_img;
    auto t0 = std::chrono::steady_clock::now();
    torch::Tensor last_display;
    torch::Tensor transparency;  // (B, C, H, W)
    for (int step = 1; step <= o->steps; step++) {
        if (nadam)
            nadam->zero_grad();
        else
            opt->zero_grad();
        auto display = render();
        if (maco) display.retain_grad();  // only MACO shows a transparency map
        const double side = maco ? maco_crop_side(step, o->steps, o->crop_max, o->crop_min) : 1.0;
        auto x = maco ? to_model(maco_views(display, static_cast<int>(K), side, Hin, Win, o->noise, rng))
                      : to_model(tf.apply(display, rng));
        std::vector<torch::Tensor> outs;
        try {
            outs = tap_run(m, *plan, x);
        } catch (const Error &) { throw; } catch (const std::exception &e) {
            throw Error(AM_E_MODEL,
                        "forward failed on an image of shape " + shape_of(x) + ": " + short_what(e.what(), 2));
        }
        auto per = evaluate(outs, K, false);
        auto total = per.sum();
        std::vector<torch::Tensor> all{per};
        auto loss = -total;
        if (o->diversity > 0) {
            // An image's crops together stand for it: their maps side by side.
            auto act = outs[div_index];
            if (K > 1 && act.dim() >= 2)
                act = act.reshape({B, K, act.size(1), -1}).permute({0, 2, 1, 3}).reshape({B, act.size(1), -1});
            auto dv = diversity(act) * o->diversity;
            loss = loss - dv;
            all.push_back(dv.reshape({1}));
        }
        if (o->accent > 0) {
            auto pen = (display - seed_img).pow(2).mean() * o->accent;
            loss = loss + pen;
            all.push_back(pen.reshape({1}));
        }
        if (!regs.empty()) {
            auto d = display - 0.5;
            for (auto &g : regs) {
                torch::Tensor pen;
                if (std::strcmp(g.name, "l1") == 0)
                    pen = d.abs().mean();
                else if (std::strcmp(g.name, "l2") == 0)
                    pen = (d * d).mean();
                else if (std::strcmp(g.name, "tv") == 0)
                    pen = (display.slice(2, 1) - display.slice(2, 0, H - 1)).abs().mean() +
                          (display.slice(3, 1) - display.slice(3, 0, W - 1)).abs().mean();
                else {
                    auto bl = torch::avg_pool2d(display, 3, 1, 1, /*ceil_mode=*/false, /*count_include_pad=*/false);
                    pen = (display - bl).pow(2).mean();
                }
                pen = pen * g.w;
                loss = loss + pen;
                all.push_back(pen.reshape({1}));
            }
        }
        loss.backward();
        if (nadam)
            nadam->step();
        else
            opt->step();
        if (maco && display.grad().defined()) {
            auto g = display.grad().detach().abs();
            if (transparency.defined())
                transparency.add_(g);
            else
                transparency = g;
        }

        auto vals = to_vec(torch::cat(all));
        double tot = 0;
        for (int64_t b = 0; b < B; b++) tot += vals[static_cast<size_t>(b)];
        // A run whose objective overflowed has no result to show as ok.
        if (!std::isfinite(tot))
            throw Error(AM_E_OBJECTIVE, std::string("the objective became ") + (std::isnan(tot) ? "NaN" : "infinite") +
                                            " at step " + std::to_string(step) +
                                            ": lower lr= or the objective's weights");
        r->curve.push_back(static_cast<float>(tot));
        for (size_t k = 0; k < vals.size(); k++) r->terms[k].push_back(vals[k]);
        r->steps_done = step;
        if (tot > best) {
            best = tot;
            best_img = display.detach().clone();
        }
        bool need_img = step == o->steps || (next_thr < thresholds.size() && thresholds[next_thr] == step) ||
                        (o->progress && o->image_every > 0 && step % o->image_every == 0);
        torch::Tensor now;
        if (need_img) {
            torch::NoGradGuard ng;
            now = render();
            last_display = now;
        }
        while (next_thr < thresholds.size() && thresholds[next_thr] <= step) {
            if (thresholds[next_thr] == step) {
                r->snap_steps.push_back(step);
                r->snaps.push_back(to_vec(now));
            }
            next_thr++;
        }
        if (o->progress) {
            am_progress p;
            std::memset(&p, 0, sizeof p);
            p.step = step;
            p.steps = o->steps;
            p.objective = static_cast<float>(tot);
            p.nterms = static_cast<int>(vals.size());
            p.term_names = name_ptrs.data();
            p.terms = vals.data();
            p.crop = static_cast<float>(side);
            std::vector<float> pix;
            if (o->image_every > 0 && step % o->image_every == 0) {
                pix = to_vec(now);
                p.image = pix.data();
                p.image_shape[0] = B;
                p.image_shape[1] = C;
                p.image_shape[2] = H;
                p.image_shape[3] = W;
            }
            if (o->progress(o->progress_user, &p) != 0) {
                r->cancelled = true;
                break;
            }
        }
    }
    r->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    torch::Tensor result = r->cancelled || !last_display.defined() ? best_img : last_display;
    r->shape[0] = B;
    r->shape[1] = C;
    r->shape[2] = H;
    r->shape[3] = W;
    r->images = to_vec(result);
    if (transparency.defined()) {
        r->transparency = to_vec(transparency);
        // As shown beside the image: the channel mean over each image's
        // largest value, square-rooted so faint regions stay visible.
        auto grey = transparency.mean(1, true);
        auto mx = std::get<0>(grey.flatten(1).max(1)).reshape({-1, 1, 1, 1});
        auto map = torch::where(mx > 0, (grey / mx.clamp_min(1e-30)).sqrt(), torch::zeros_like(grey));
        r->transparency_map = to_vec(map.expand_as(transparency).contiguous());
    }
    {
        torch::NoGradGuard ng;
        auto x = result;
        if (maco && (H != Hin || W != Win))
            x = torch::nn::functional::interpolate(x, torch::nn::functional::InterpolateFuncOptions()
                                                          .size(std::vector<int64_t>{Hin, Win})
                                                          .mode(torch::kBilinear)
                                                          .align_corners(false));
        auto outs = tap_run(m, *final_plan, to_model(x));
        r->final_act = to_vec(evaluate(outs, 1, false));
        r->activation = to_vec(evaluate(outs, 1, true));
    }
}

}  // namespace
}  // namespace am

extern "C" {

void am_options_default(am_options *o) {
    if (!o) return;
    std::memset(o, 0, sizeof *o);
    o->batch = 1;
    o->steps = 256;
    o->lr = 0.0f;
    o->optimizer = AM_OPT_AUTO;
    o->param = AM_PARAM_FFT;
    o->decorrelate = 1;
    o->decay_power = 1.0f;
    o->transforms = 1;
    o->pad = -1;
    o->jitter = -1;
    o->scale_min = 0.9f;
    o->scale_max = 1.1f;
    o->rotate_deg = 10.0f;
    o->init = AM_INIT_NOISE;
    o->init_std = 0.01f;
    o->crops = 6;
    o->crop_max = 1.0f;
    o->crop_min = 1.0f;  // bench-quality: shrinking crops lowered every metric (docs/engine.md)
    o->noise = 0.03f;
    o->contrast = 3.0f;
}

int am_run_new(am_model *m, const am_options *o, am_run **out) {
    return am::construct(out, [&](am_run *r) {
        if (!m || !m->loaded || !m->graph) throw Error(AM_E_ARG, "model handle is NULL or did not load");
        if (!o) throw Error(AM_E_ARG, "options are NULL; fill them with am_options_default first");
        try {
            am::blas_follow_threads();
            am::run_impl(m, o, r);
        } catch (const c10::Error &e) {
            // libtorch's allocator failure, in one plain sentence.
            if (!am::allocation_failure(e.what())) throw;
            int64_t B = o->n_objectives > 1 ? o->n_objectives : o->batch;
            throw Error(AM_E_NOMEM, "not enough memory for this run (batch " + std::to_string(B) + " at " +
                                        std::to_string(o->height ? o->height : m->input_shape[1]) + "x" +
                                        std::to_string(o->width ? o->width : m->input_shape[2]) +
                                        "): try a smaller size or batch");
        }
    });
}

void am_run_free(am_run *r) { delete r; }
const char *am_run_error(const am_run *r) { return r ? r->error.c_str() : "run handle is NULL"; }
int am_run_cancelled(const am_run *r) { return r ? (r->cancelled ? 1 : 0) : AM_E_ARG; }
int am_run_steps(const am_run *r) { return r ? r->steps_done : AM_E_ARG; }

const float *am_run_images(const am_run *r, int64_t shape[4]) {
    if (!r || r->images.empty()) return nullptr;
    if (shape) std::memcpy(shape, r->shape, sizeof r->shape);
    return r->images.data();
}

const float *am_run_curve(const am_run *r, int *steps) {
    if (steps) *steps = r ? static_cast<int>(r->curve.size()) : 0;
    return r && !r->curve.empty() ? r->curve.data() : nullptr;
}

int am_run_num_terms(const am_run *r) { return r ? static_cast<int>(r->term_names.size()) : AM_E_ARG; }

const char *am_run_term_name(const am_run *r, int i) {
    if (!r || i < 0 || static_cast<size_t>(i) >= r->term_names.size()) return nullptr;
    return r->term_names[static_cast<size_t>(i)].c_str();
}

const float *am_run_term_curve(const am_run *r, int i) {
    if (!r || i < 0 || static_cast<size_t>(i) >= r->terms.size() || r->terms[static_cast<size_t>(i)].empty())
        return nullptr;
    return r->terms[static_cast<size_t>(i)].data();
}

const float *am_run_final(const am_run *r, int *batch) {
    if (batch) *batch = r ? static_cast<int>(r->final_act.size()) : 0;
    return r && !r->final_act.empty() ? r->final_act.data() : nullptr;
}

int am_run_num_snapshots(const am_run *r) { return r ? static_cast<int>(r->snaps.size()) : AM_E_ARG; }

const float *am_run_snapshot(const am_run *r, int k, int *step, int64_t shape[4]) {
    if (!r || k < 0 || static_cast<size_t>(k) >= r->snaps.size()) return nullptr;
    if (step) *step = r->snap_steps[static_cast<size_t>(k)];
    if (shape) std::memcpy(shape, r->shape, sizeof r->shape);
    return r->snaps[static_cast<size_t>(k)].data();
}

double am_run_seconds(const am_run *r) { return r ? r->seconds : 0.0; }

const float *am_run_activation(const am_run *r, int *batch) {
    if (batch) *batch = r ? static_cast<int>(r->activation.size()) : 0;
    return r && !r->activation.empty() ? r->activation.data() : nullptr;
}

const float *am_run_transparency(const am_run *r, int64_t shape[4]) {
    if (!r || r->transparency.empty()) return nullptr;
    if (shape) std::memcpy(shape, r->shape, sizeof r->shape);
    return r->transparency.data();
}

const float *am_run_transparency_map(const am_run *r, int64_t shape[4]) {
    if (!r || r->transparency_map.empty()) return nullptr;
    if (shape) std::memcpy(shape, r->shape, sizeof r->shape);
    return r->transparency_map.data();
}

const char *am_run_diversity_layer(const am_run *r) { return r ? r->diversity_layer.c_str() : ""; }
const char *am_run_note(const am_run *r) { return r ? r->note.c_str() : ""; }

}  // extern "C"
