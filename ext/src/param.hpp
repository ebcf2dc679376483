// param.hpp — the image parameterizations: Fourier 1/f and pixels
// (param_api.cpp, which also exposes them as am_param_image), the
// phase-only (MACO) one and the NAdam update (maco.cpp); used by image runs
// (run.cpp).
#pragma once
#include <random>
#include <string>

#include "internal.hpp"

namespace am {

// Lucid's colour correlation (square root of the ImageNet colour
// covariance), normalized by its largest column norm, transposed: (3, 3).
torch::Tensor color_matrix_t();

// Lucid's rfft2d_freqs and 1/f^decay scaling, (1, 1, H, W/2+1, 1) on the
// CPU: lower frequencies get larger steps so the image is not dominated by
// high-frequency noise.
torch::Tensor fft_scale(int64_t H, int64_t W, float decay);

// Display image (B, C, H, W) in [0, 1] from Fourier parameters
// (B, C, H, W/2+1, 2): sigmoid(recorrelate(irfft2(scale * p) / 4)).
// cmat_t: the transposed colour matrix, undefined for no recorrelation.
torch::Tensor fft_render(const torch::Tensor &p, const torch::Tensor &scale, int64_t H, int64_t W,
                         const torch::Tensor &cmat_t);

// Display image from pixel parameters (B, C, H, W): sigmoid(recorrelate(p)).
torch::Tensor pixel_render(const torch::Tensor &p, const torch::Tensor &cmat_t);

// The fixed magnitude (1, C, H, W/2+1) on the model's device: the mean
// |rfft2| of the model's training images when its dataset can be read with C
// channels (computed once per process and canvas size), else 1/f^decay.
// *note says which.
torch::Tensor maco_magnitude(const am_model *m, int64_t C, int64_t H, int64_t W, float decay, std::string *note);

// Display image (B, C, H, W) in [0, 1] from the phase (B, C, H, W/2+1):
// sigmoid(contrast * recorrelate(standardize(irfft2(mag * e^(i standardize(phase)))))).
// cmat_t: the transposed colour matrix, undefined for no recorrelation.
torch::Tensor maco_render(const torch::Tensor &phase, const torch::Tensor &mag, int64_t H, int64_t W,
                          const torch::Tensor &cmat_t, float contrast);

// A start phase (B, C, H, W/2+1) for a display image (B, C, H, W).
torch::Tensor maco_phase_of(const torch::Tensor &display, const torch::Tensor &cmat_t);

// Crop side (fraction of the canvas side) at step (1-based) of steps:
// linear from crop_max to crop_min.
double maco_crop_side(int step, int steps, float crop_max, float crop_min);

// crops random crops per image of canvas (B, C, H, W), each of side in
// [0.8 side, side] of the canvas, resized to out_h x out_w, plus noise *
// (gaussian + uniform(-0.5, 0.5)): (B * crops, C, out_h, out_w), the crops
// of image b at rows b * crops ... b * crops + crops - 1.
torch::Tensor maco_views(const torch::Tensor &canvas, int crops, double side, int64_t out_h, int64_t out_w, float noise,
                         std::mt19937_64 &rng);

// torch.optim.NAdam with its defaults (betas 0.9, 0.999, eps 1e-8,
// momentum_decay 4e-3), on one tensor; libtorch's C++ API has no NAdam.
class NAdam {
  public:
    NAdam(torch::Tensor param, double lr);
    void zero_grad();
    void step();

  private:
    torch::Tensor p_, m_, v_;  // parameter, first and second moments (all like p_)
    double lr_;
    int64_t t_ = 0;
    double mu_product_ = 1.0;
};

}  // namespace am
