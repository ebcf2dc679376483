// maco.cpp — magnitude-constrained (phase-only) image optimization: the
// dataset magnitude spectrum, the image from its phase, the shrinking random
// crops with noise, and the NAdam update it is run with.
//
// Follows MACO as Xplique and Horama code it (Fel et al., "Unlocking Feature
// Visualization for Deeper Networks with MAgnitude Constrained Optimization",
// NeurIPS 2023) and torch.optim.NAdam (Dozat 2016) for the update.
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <mutex>

#include "param.hpp"

namespace am {

// ============================================================ magnitude

namespace {

// Lucid's 1/f^decay magnitude (C, H, W/2+1), for models without a dataset
// the engine reads: the Fourier parameterization's scale on every channel.
torch::Tensor inverse_f(int64_t C, int64_t H, int64_t W, float decay) {
    return fft_scale(H, W, decay).reshape({1, H, W / 2 + 1}).expand({C, H, W / 2 + 1}).contiguous();
}

// Mean |rfft2| over the training split, the images resized to the canvas
// first. Empty when the dataset cannot be read or its images do not have C
// channels.
torch::Tensor dataset_magnitude(const std::string &name, int64_t C, int64_t H, int64_t W, int64_t *count) {
    am_dataset *ds = nullptr;
    if (am_dataset_open(name.c_str(), "train", nullptr, &ds) != AM_OK || am_dataset_kind(ds) != AM_DATASET_IMAGE) {
        am_dataset_free(ds);
        return {};
    }
    int64_t shape[3] = {0, 0, 0};
    if (am_dataset_item_shape(ds, shape, 3) != 3 || shape[0] != C) {
        am_dataset_free(ds);
        return {};
    }
    torch::NoGradGuard ng;
    auto sum = torch::zeros({C, H, W / 2 + 1}, torch::kDouble);
    int64_t n = 0;
    am_batch b;
    while (am_dataset_next_batch(ds, 2048, &b) == AM_OK && b.count > 0) {
        auto x = torch::from_blob(const_cast<float *>(b.images), {b.count, C, shape[1], shape[2]}, torch::kFloat);
        if (shape[1] != H || shape[2] != W)
            x = torch::nn::functional::interpolate(x, torch::nn::functional::InterpolateFuncOptions()
                                                          .size(std::vector<int64_t>{H, W})
                                                          .mode(torch::kBilinear)
                                                          .align_corners(false));
        auto mag = torch::abs(torch::fft::rfft2(x, std::vector<int64_t>{H, W}, {-2, -1}, "ortho"));
        sum += mag.sum(0).to(torch::kDouble);
        n += b.count;
    }
    am_dataset_free(ds);
    if (n == 0) return {};
    *count = n;
    return (sum / static_cast<double>(n)).to(torch::kFloat);
}

}  // namespace

torch::Tensor maco_magnitude(const am_model *m, int64_t C, int64_t H, int64_t W, float decay, std::string *note) {
    // One pass over a training split takes a second or two: done once per
    // dataset and canvas size in a process, however many runs follow.
    static std::mutex mu;
    static std::map<std::string, std::pair<torch::Tensor, int64_t>> cache;
    if (!m->dataset.empty()) {
        std::string key = m->dataset + "|" + std::to_string(C) + "x" + std::to_string(H) + "x" + std::to_string(W);
        std::lock_guard<std::mutex> lock(mu);
        auto it = cache.find(key);
        if (it == cache.end()) {
            int64_t n = 0;
            auto mag = dataset_magnitude(m->dataset, C, H, W, &n);
            it = cache.emplace(key, std::make_pair(mag, n)).first;
        }
        if (it->second.first.defined()) {
            *note = "MACO magnitude: mean |rfft2| of " + std::to_string(it->second.second) + " " + m->dataset +
                    " train images";
            return it->second.first.unsqueeze(0).to(m->device);
        }
        *note = "MACO magnitude: 1/f (the dataset '" + m->dataset + "' could not be read as " + std::to_string(C) +
                "-channel images)";
    } else {
        *note = "MACO magnitude: 1/f (the model names no dataset)";
    }
    return inverse_f(C, H, W, decay).unsqueeze(0).to(m->device);
}

// ============================================================ image from phase

namespace {

// Zero mean, unit standard deviation per batch item.
torch::Tensor standardize(const torch::Tensor &t) {
    auto flat = t.reshape({t.size(0), -1});
    auto mean = flat.mean(1, /*keepdim=*/true);
    auto sd = flat.std(1, /*unbiased=*/false, /*keepdim=*/true);
    return ((flat - mean) / (sd + 1e-5)).reshape(t.sizes());
}

}  // namespace

torch::Tensor maco_render(const torch::Tensor &phase, const torch::Tensor &mag, int64_t H, int64_t W,
                          const torch::Tensor &cmat_t, float contrast) {
    auto ph = standardize(phase);
    auto spec = torch::polar(mag.expand_as(ph), ph);
    auto img = standardize(torch::fft::irfft2(spec, std::vector<int64_t>{H, W}, {-2, -1}, "ortho"));
    if (cmat_t.defined()) img = torch::matmul(img.permute({0, 2, 3, 1}), cmat_t).permute({0, 3, 1, 2});
    return torch::sigmoid(img * contrast);
}

torch::Tensor maco_phase_of(const torch::Tensor &display, const torch::Tensor &cmat_t) {
    // The magnitude is fixed, so a start image is only approximated: its
    // phase is kept, its spectrum's magnitude replaced.
    auto t = torch::logit(display.clamp(1e-4, 1 - 1e-4));  // the phase ignores the contrast's scale
    if (cmat_t.defined()) t = torch::matmul(t.permute({0, 2, 3, 1}), torch::inverse(cmat_t)).permute({0, 3, 1, 2});
    return torch::angle(torch::fft::rfft2(t, c10::nullopt, {-2, -1}, "ortho"));
}

// ============================================================ crops

double maco_crop_side(int step, int steps, float crop_max, float crop_min) {
    if (steps <= 1) return crop_max;
    double f = static_cast<double>(step - 1) / static_cast<double>(steps - 1);
    return crop_max + (crop_min - crop_max) * f;
}

torch::Tensor maco_views(const torch::Tensor &canvas, int crops, double side, int64_t out_h, int64_t out_w, float noise,
                         std::mt19937_64 &rng) {
    namespace F = torch::nn::functional;
    const int64_t B = canvas.size(0), H = canvas.size(2), W = canvas.size(3);
    std::uniform_real_distribution<double> jitter(0.8, 1.0);
    std::vector<torch::Tensor> views;
    views.reserve(static_cast<size_t>(B * crops));
    for (int64_t b = 0; b < B; b++) {
        auto item = canvas.slice(0, b, b + 1);
        for (int k = 0; k < crops; k++) {
            double s = std::min(1.0, side * jitter(rng));
            int64_t h = std::max<int64_t>(2, std::min<int64_t>(H, std::llround(s * static_cast<double>(H))));
            int64_t w = std::max<int64_t>(2, std::min<int64_t>(W, std::llround(s * static_cast<double>(W))));
            int64_t y0 = static_cast<int64_t>(rng() % static_cast<uint64_t>(H - h + 1));
            int64_t x0 = static_cast<int64_t>(rng() % static_cast<uint64_t>(W - w + 1));
            auto v = item.slice(2, y0, y0 + h).slice(3, x0, x0 + w);
            if (h != out_h || w != out_w)
                v = F::interpolate(v, F::InterpolateFuncOptions()
                                          .size(std::vector<int64_t>{out_h, out_w})
                                          .mode(torch::kBilinear)
                                          .align_corners(false));
            views.push_back(v);
        }
    }
    auto x = torch::cat(views);  // (B * crops, C, out_h, out_w), image-major
    if (noise > 0) {
        // Drawn in a fixed order (uniform, then Gaussian: what GCC did with the
        // two in one expression), so a PyTorch script can draw the same numbers.
        auto uniform = torch::rand_like(x) - 0.5;
        auto gauss = torch::randn_like(x);
        x = x + noise * (gauss + uniform);
    }
    return x;
}

// ============================================================ NAdam

NAdam::NAdam(torch::Tensor param, double lr) : p_(std::move(param)), lr_(lr) {
    m_ = torch::zeros_like(p_);
    v_ = torch::zeros_like(p_);
}

void NAdam::zero_grad() {
    if (p_.grad().defined()) p_.mutable_grad().zero_();
}

void NAdam::step() {
    // torch.optim.NAdam with its defaults, as PyTorch 2 computes it (1.13's
    // single-tensor path counted mu_t twice in the second step; #92699).
    constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8, kMomentumDecay = 4e-3;
    torch::NoGradGuard ng;
    const auto &g = p_.grad();
    if (!g.defined()) return;
    t_ += 1;
    double bias2 = 1.0 - std::pow(kBeta2, static_cast<double>(t_));
    double mu = kBeta1 * (1.0 - 0.5 * std::pow(0.96, static_cast<double>(t_) * kMomentumDecay));
    double mu_next = kBeta1 * (1.0 - 0.5 * std::pow(0.96, static_cast<double>(t_ + 1) * kMomentumDecay));
    mu_product_ *= mu;
    m_.lerp_(g, 1.0 - kBeta1);
    v_.mul_(kBeta2).addcmul_(g, g, 1.0 - kBeta2);
    auto denom = (v_ / bias2).sqrt_().add_(kEps);
    p_.addcdiv_(g, denom, -lr_ * (1.0 - mu) / (1.0 - mu_product_));
    p_.addcdiv_(m_, denom, -lr_ * mu_next / (1.0 - mu_product_ * mu_next));
}

}  // namespace am
