// param_api.cpp — the Fourier and pixel image parameterizations, and the
// parameterizations and the diversity term as C calls (am_param_image,
// am_param_magnitude, am_model_diversity): what a run does to its
// parameters, callable on its own so a course can check a student's PyTorch
// against it.
//
// Follows Lucid (github.com/tensorflow/lucid, optvis/param/spatial.py and
// color.py) as run.cpp does.
#include <torch/torch.h>

#include <cstring>

#include "internal.hpp"
#include "objective_eval.hpp"
#include "param.hpp"

using am::Error;

namespace am {

// ============================================================ Fourier and pixels

torch::Tensor color_matrix_t() {
    static const float kSvdSqrt[9] = {0.26f, 0.09f, 0.02f, 0.27f, 0.00f, -0.05f, 0.27f, -0.09f, 0.03f};
    auto mtx = torch::from_blob(const_cast<float *>(kSvdSqrt), {3, 3}, torch::kFloat).clone();
    auto max_norm = mtx.norm(2, {0}).max();
    return (mtx / max_norm).t().contiguous();
}

torch::Tensor fft_scale(int64_t H, int64_t W, float decay) {
    int64_t wf = W / 2 + 1;
    // numpy's fftfreq(H) and rfftfreq(W), spelled out to stay within what
    // every libtorch version offers.
    auto iy = torch::arange(H, torch::kDouble);
    auto fy = torch::where(iy <= (H - 1) / 2, iy, iy - static_cast<double>(H)).div(static_cast<double>(H)).unsqueeze(1);
    auto fx = torch::arange(wf, torch::kDouble).div(static_cast<double>(W)).unsqueeze(0);
    auto freqs = torch::sqrt(fx * fx + fy * fy);
    auto s = 1.0 / torch::pow(torch::clamp_min(freqs, 1.0 / static_cast<double>(std::max(W, H))), decay);
    return s.to(torch::kFloat).reshape({1, 1, H, wf, 1});
}

torch::Tensor fft_render(const torch::Tensor &p, const torch::Tensor &scale, int64_t H, int64_t W,
                         const torch::Tensor &cmat_t) {
    auto spec = torch::view_as_complex(scale * p);
    // Lucid's magic 4: keeps early images from saturating.
    auto t = torch::fft::irfft2(spec, std::vector<int64_t>{H, W}, {-2, -1}, "ortho") / 4.0;
    if (cmat_t.defined()) t = torch::matmul(t.permute({0, 2, 3, 1}), cmat_t).permute({0, 3, 1, 2});
    return torch::sigmoid(t);
}

torch::Tensor pixel_render(const torch::Tensor &p, const torch::Tensor &cmat_t) {
    auto t = p;
    if (cmat_t.defined()) t = torch::matmul(t.permute({0, 2, 3, 1}), cmat_t).permute({0, 3, 1, 2});
    return torch::sigmoid(t);
}

}  // namespace am

// ============================================================ the C calls

namespace {

int fail(char *err, size_t n, int status, const std::string &msg) {
    if (err && n) std::snprintf(err, n, "%s", msg.c_str());
    return status;
}

std::string dims(const int64_t *shape, int ndim) {
    std::string r = "(";
    for (int i = 0; i < ndim; i++) r += (i ? ", " : "") + std::to_string(shape[i]);
    return r + (ndim == 1 ? ",)" : ")");
}

// maco_magnitude reads only the model's dataset and device: a blank model
// stands for "no model" (the 1/f magnitude, on the CPU).
torch::Tensor magnitude(am_model *m, const am_options *o, int64_t C, int64_t H, int64_t W, std::string *note) {
    if (m) return am::maco_magnitude(m, C, H, W, o->decay_power, note);
    am_model blank;
    return am::maco_magnitude(&blank, C, H, W, o->decay_power, note);
}

}  // namespace

extern "C" int am_param_image(am_model *m, const am_options *o, const float *params, const int64_t *shape, int ndim,
                              float *image, char *err, size_t n) {
    if (err && n) err[0] = '\0';
    if (!o || !params || !shape || !image)
        return fail(err, n, AM_E_ARG, "am_param_image needs options, parameters, their shape and an output array");
    if (m && (!m->loaded || m->kind != "image"))
        return fail(err, n, AM_E_UNSUPPORTED, "am_param_image renders images: the model is not a loaded image model");
    const bool fft = o->param == AM_PARAM_FFT, maco = o->param == AM_PARAM_MACO;
    if (!fft && !maco && o->param != AM_PARAM_PIXEL)
        return fail(err, n, AM_E_ARG, "param must be AM_PARAM_FFT (0), AM_PARAM_PIXEL (1) or AM_PARAM_MACO (2)");
    const int want = fft ? 5 : 4;
    const char *layout = fft    ? "(B, C, H, W/2+1, 2): real and imaginary parts of each frequency"
                         : maco ? "(B, C, H, W/2+1): the phase of each frequency"
                                : "(B, C, H, W): one value per pixel";
    if (ndim != want || (fft && shape[4] != 2))
        return fail(err, n, AM_E_ARG,
                    "parameters of shape " + dims(shape, ndim > 0 && ndim <= 8 ? ndim : 0) +
                        ": this parameterization takes " + layout);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 1) return fail(err, n, AM_E_ARG, "parameters of shape " + dims(shape, ndim) + ": empty");
    const int64_t B = shape[0], C = shape[1], H = shape[2];
    int64_t W = shape[3];
    if (fft || maco) {
        const int64_t wf = shape[3];
        int64_t model_w = m && m->input_shape.size() == 3 ? m->input_shape[2] : 0;
        W = o->width > 0 ? o->width : model_w > 0 && model_w / 2 + 1 == wf ? model_w : 2 * (wf - 1);
        if (W < 1 || W / 2 + 1 != wf)
            return fail(err, n, AM_E_ARG,
                        "parameters of shape " + dims(shape, ndim) + " have " + std::to_string(wf) +
                            " frequencies across, which is not W/2+1 for the width " + std::to_string(W) +
                            ": give the image's width (o->width)");
    }
    if (o->height > 0 && o->height != H)
        return fail(err, n, AM_E_ARG,
                    "parameters of shape " + dims(shape, ndim) + " are for height " + std::to_string(H) +
                        ", the options say height " + std::to_string(o->height));
    try {
        torch::NoGradGuard ng;
        std::vector<int64_t> sizes(shape, shape + ndim);
        auto p = torch::from_blob(const_cast<float *>(params), sizes, torch::kFloat);
        torch::Tensor cmat = o->decorrelate && C == 3 ? am::color_matrix_t() : torch::Tensor();
        torch::Tensor img;
        if (fft) {
            img = am::fft_render(p, am::fft_scale(H, W, o->decay_power), H, W, cmat);
        } else if (maco) {
            if (!(o->contrast > 0)) return fail(err, n, AM_E_ARG, "contrast must be > 0");
            std::string note;
            auto mag = magnitude(m, o, C, H, W, &note).to(torch::kCPU);
            img = am::maco_render(p, mag, H, W, cmat, o->contrast);
        } else {
            img = am::pixel_render(p, cmat);
        }
        img = img.contiguous();
        std::memcpy(image, img.data_ptr<float>(), sizeof(float) * static_cast<size_t>(B * C * H * W));
        return AM_OK;
    } catch (const am::Error &e) { return fail(err, n, e.status, e.what()); } catch (const c10::Error &e) {
        return fail(err, n, AM_E_INTERNAL, am::short_what(e.what()));
    } catch (const std::bad_alloc &) {
        return fail(err, n, AM_E_NOMEM, "out of memory");
    } catch (const std::exception &e) { return fail(err, n, AM_E_INTERNAL, e.what()); }
}

extern "C" int am_param_magnitude(am_model *m, const am_options *o, int64_t C, int64_t H, int64_t W, float *mag,
                                  char *note, size_t note_n) {
    if (note && note_n) note[0] = '\0';
    if (!o || !mag) return fail(note, note_n, AM_E_ARG, "am_param_magnitude needs options and an output array");
    if (C < 1 || H < 1 || W < 1 || H > 4096 || W > 4096 || C > 64)
        return fail(note, note_n, AM_E_ARG, "the canvas C x H x W must be 1..64 x 1..4096 x 1..4096");
    if (m && (!m->loaded || m->kind != "image"))
        return fail(note, note_n, AM_E_UNSUPPORTED, "the magnitude is an image model's: this one is not");
    try {
        std::string why;
        auto t = magnitude(m, o, C, H, W, &why).to(torch::kCPU).contiguous();
        std::memcpy(mag, t.data_ptr<float>(), sizeof(float) * static_cast<size_t>(C * H * (W / 2 + 1)));
        if (note && note_n) std::snprintf(note, note_n, "%s", why.c_str());
        return AM_OK;
    } catch (const c10::Error &e) {
        return fail(note, note_n, AM_E_INTERNAL, am::short_what(e.what()));
    } catch (const std::exception &e) { return fail(note, note_n, AM_E_INTERNAL, e.what()); }
}

extern "C" int am_model_diversity(am_model *m, const am_input *input, const char *layer, float *value) {
    if (!m) return AM_E_ARG;
    AM_FENCE_BEGIN
    if (!m->loaded || !m->graph) throw Error(AM_E_ARG, "the model did not load; see am_model_error");
    if (!input || !layer || !value) throw Error(AM_E_ARG, "am_model_diversity needs an input, a layer and a value");
    std::vector<int64_t> shape = am::input_shape(input, "am_model_diversity");
    torch::NoGradGuard ng;
    auto outs = am::input_taps(m, input, shape, {layer});
    *value = am::diversity(outs[0]).to(torch::kCPU, torch::kFloat).item<float>();
    return AM_OK;
    AM_FENCE_END(&m->error)
}
