// fastops.cpp — faster CPU kernels for the tap graphs of optimization runs.
//
// A run spends nearly all its time in the convolutions before the tapped
// layer, forward and input gradient, one image at a time. libtorch calls
// oneDNN's direct algorithm for them; for 3x3 stride-1 convolutions on
// large feature maps oneDNN's Winograd F(4x4, 3x3) kernels do the same
// product in well under half the time (0.84 against 2.06 ms forward, 0.80
// against 2.01 ms input gradient for 64 channels at 56x56 on one AVX-512
// core). libtorch never asks for them, so this file does, through the op
// actmax::fast(Tensor x, int id) that tap_plan puts in place of such
// convolutions (and of max pooling, see FastMaxPool). Everything falls back
// to libtorch's own kernels where oneDNN is absent (builds against a
// PyTorch wheel), cannot make the primitive (no AVX-512), or where
// Winograd loses (small feature maps).
#include <torch/torch.h>
#include <torch/library.h>

#include <malloc.h>

#include <array>
#include <cstdio>
#include <mutex>

#include "internal.hpp"

#ifdef ACTMAX_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace am {
namespace {

std::mutex registry_mu;
std::map<int64_t, std::weak_ptr<FastOp>> registry;
int64_t next_id = 1;

std::shared_ptr<FastOp> lookup(int64_t id) {
    std::lock_guard<std::mutex> lock(registry_mu);
    auto it = registry.find(id);
    auto op = it == registry.end() ? nullptr : it->second.lock();
    if (!op) throw std::runtime_error("actmax::fast: op " + std::to_string(id) + " no longer exists");
    return op;
}

torch::Tensor fast_dispatch(const torch::Tensor &x, int64_t id) { return lookup(id)->run(x); }

// Max pooling over NCHW runs a scalar loop per channel in libtorch (6 ms
// for 64x112x112 here); over channels-last memory it is vectorized across
// channels, and the two layout changes cost less than the difference
// (1.5 ms in all). Ties, frequent after a ReLU, may send the gradient to a
// different element of the window than the model's own kernel would: an
// equally valid subgradient.
struct FastMaxPool : FastOp {
    std::vector<int64_t> kernel, stride, pad, dil;
    bool ceil = false;
    torch::Tensor run(const torch::Tensor &x) override {
        if (x.dim() != 4 || x.is_cuda()) return torch::max_pool2d(x, kernel, stride, pad, dil, ceil);
        auto y = torch::max_pool2d(x.contiguous(at::MemoryFormat::ChannelsLast), kernel, stride, pad, dil, ceil);
        return y.contiguous();
    }
};

#ifdef ACTMAX_HAVE_DNNL

using dnnl::memory;
using tag = memory::format_tag;

dnnl::engine &cpu_engine() {
    static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    return eng;
}

// A 3x3, stride 1, dilation 1, ungrouped convolution with fixed weights.
struct WinoConv : FastOp, std::enable_shared_from_this<WinoConv> {
    torch::Tensor w, b;  // (Co, C, 3, 3) contiguous, (Co) or undefined
    int64_t pad = 1;

    // Primitives for one input shape (N, H, W); null when libtorch does it.
    struct Prims {
        memory::desc user_src, user_dst;  // NCHW as libtorch holds them
        int64_t H = 0, W = 0, Ho = 0, Wo = 0;
        dnnl::convolution_forward fwd;
        dnnl::convolution_backward_data bwd;
        memory::desc src, dst, gsrc, gdst;  // the layouts the kernels want
        memory wf, wb, bias;                // weights reordered once
    };
    std::mutex mu;
    std::map<std::array<int64_t, 3>, std::shared_ptr<Prims>> cache;

    // Winograd wins where there are many 4x4 output tiles per weight; on
    // 14x14 maps it lost (3.8 against 2.1 ms at 256 channels), at 28x28 it
    // won by 2x.
    static constexpr int64_t kMinTiledPixels = 28 * 28;

    std::shared_ptr<Prims> prims(const std::array<int64_t, 3> &key) {
        std::lock_guard<std::mutex> lock(mu);
        auto it = cache.find(key);
        if (it != cache.end()) return it->second;
        std::shared_ptr<Prims> p;
        int64_t N = key[0], H = key[1], W = key[2], C = w.size(1), Co = w.size(0);
        int64_t Ho = H + 2 * pad - 2, Wo = W + 2 * pad - 2;
        const char *why = "small map";
        if (N * Ho * Wo >= kMinTiledPixels && Ho > 0 && Wo > 0) {
            try {
                p = make(N, C, H, W, Co, Ho, Wo);
            } catch (const dnnl::error &) {
                p = nullptr;  // no Winograd kernel for this CPU or shape
                why = "no oneDNN Winograd kernel";
            }
        }
        if (std::getenv("ACTMAX_DUMP_GRAPH"))
            fprintf(stderr, "actmax::fast %lld: %lldx%lldx%lldx%lld -> %lld channels: %s\n", static_cast<long long>(id),
                    static_cast<long long>(N), static_cast<long long>(C), static_cast<long long>(H),
                    static_cast<long long>(W), static_cast<long long>(Co), p ? "winograd" : why);
        cache[key] = p;
        return p;
    }

    std::shared_ptr<Prims> make(int64_t N, int64_t C, int64_t H, int64_t W, int64_t Co, int64_t Ho, int64_t Wo) {
        auto &eng = cpu_engine();
        auto f32 = memory::data_type::f32;
        memory::dims src{N, C, H, W}, wei{Co, C, 3, 3}, dst{N, Co, Ho, Wo}, bia{Co}, one{1, 1}, pd{pad, pad};
        memory::desc any_src(src, f32, tag::any), any_wei(wei, f32, tag::any), any_dst(dst, f32, tag::any);
        auto p = std::make_shared<Prims>();
        p->user_src = memory::desc(src, f32, tag::nchw);
        p->user_dst = memory::desc(dst, f32, tag::nchw);
        p->H = H, p->W = W, p->Ho = Ho, p->Wo = Wo;
        bool with_bias = b.defined();
        auto fd = with_bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                              dnnl::algorithm::convolution_winograd, any_src, any_wei,
                                                              memory::desc(bia, f32, tag::x), any_dst, one, pd, pd)
                            : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                              dnnl::algorithm::convolution_winograd, any_src, any_wei,
                                                              any_dst, one, pd, pd);
        dnnl::convolution_forward::primitive_desc fpd(fd, eng);
        dnnl::convolution_backward_data::desc bd(dnnl::algorithm::convolution_winograd, any_src, any_wei, any_dst, one,
                                                 pd, pd);
        dnnl::convolution_backward_data::primitive_desc bpd(bd, eng, fpd);
        p->fwd = dnnl::convolution_forward(fpd);
        p->bwd = dnnl::convolution_backward_data(bpd);
        p->src = fpd.src_desc();
        p->dst = fpd.dst_desc();
        p->gsrc = bpd.diff_src_desc();
        p->gdst = bpd.diff_dst_desc();
        dnnl::stream s(eng);
        memory user_w(memory::desc(wei, f32, tag::oihw), eng, w.data_ptr());
        p->wf = memory(fpd.weights_desc(), eng);
        p->wb = memory(bpd.weights_desc(), eng);
        dnnl::reorder(user_w, p->wf).execute(s, user_w, p->wf);
        dnnl::reorder(user_w, p->wb).execute(s, user_w, p->wb);
        if (with_bias) {
            p->bias = memory(fpd.bias_desc(), eng);
            memory user_b(memory::desc(bia, f32, tag::x), eng, b.data_ptr());
            dnnl::reorder(user_b, p->bias).execute(s, user_b, p->bias);
        }
        s.wait();
        return p;
    }

    // One primitive on libtorch's NCHW buffers: the input reordered into
    // the layout the kernel chose, the output reordered back.
    struct Side {
        int arg;
        const memory::desc &user, &want;
        void *data;
    };
    static void exec_nchw(const dnnl::primitive &prim, Side in, Side out, std::unordered_map<int, memory> args) {
        auto &eng = cpu_engine();
        dnnl::stream s(eng);
        memory uin(in.user, eng, in.data), uout(out.user, eng, out.data);
        memory min = uin, mout = uout;
        if (in.want != in.user) {
            min = memory(in.want, eng);
            dnnl::reorder(uin, min).execute(s, uin, min);
        }
        if (out.want != out.user) mout = memory(out.want, eng);
        args[in.arg] = min;
        args[out.arg] = mout;
        prim.execute(s, args);
        if (out.want != out.user) dnnl::reorder(mout, uout).execute(s, mout, uout);
        s.wait();
    }

    // y = conv(x); x, y contiguous NCHW.
    static torch::Tensor forward_raw(const Prims &p, const torch::Tensor &x, const torch::Tensor &y) {
        std::unordered_map<int, memory> args{{DNNL_ARG_WEIGHTS, p.wf}};
        if (p.bias) args[DNNL_ARG_BIAS] = p.bias;
        exec_nchw(p.fwd, {DNNL_ARG_SRC, p.user_src, p.src, x.data_ptr()},
                  {DNNL_ARG_DST, p.user_dst, p.dst, y.data_ptr()}, std::move(args));
        return y;
    }

    // gx = the input gradient for gy; both contiguous NCHW.
    static torch::Tensor backward_raw(const Prims &p, const torch::Tensor &gy, const torch::Tensor &gx) {
        exec_nchw(p.bwd, {DNNL_ARG_DIFF_DST, p.user_dst, p.gdst, gy.data_ptr()},
                  {DNNL_ARG_DIFF_SRC, p.user_src, p.gsrc, gx.data_ptr()}, {{DNNL_ARG_WEIGHTS, p.wb}});
        return gx;
    }

    torch::Tensor run(const torch::Tensor &x) override;
};

struct WinoFn : public torch::autograd::Function<WinoFn> {
    static torch::Tensor forward(torch::autograd::AutogradContext *ctx, torch::Tensor x, int64_t id) {
        auto op = std::static_pointer_cast<WinoConv>(lookup(id));
        auto p = op->prims({x.size(0), x.size(2), x.size(3)});
        if (!p) throw std::logic_error("actmax::fast: no Winograd primitive for this shape");
        ctx->saved_data["id"] = id;
        ctx->saved_data["n"] = x.size(0);
        ctx->saved_data["h"] = x.size(2);
        ctx->saved_data["w"] = x.size(3);
        auto xc = x.contiguous();
        auto y = torch::empty({x.size(0), op->w.size(0), p->Ho, p->Wo}, x.options());
        return WinoConv::forward_raw(*p, xc, y);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                   torch::autograd::variable_list grads) {
        auto op = std::static_pointer_cast<WinoConv>(lookup(ctx->saved_data["id"].toInt()));
        auto gy = grads[0].contiguous();
        auto p = op->prims({ctx->saved_data["n"].toInt(), ctx->saved_data["h"].toInt(), ctx->saved_data["w"].toInt()});
        if (!p) throw std::logic_error("actmax::fast: no Winograd primitive for this shape");
        auto gx = torch::empty({gy.size(0), op->w.size(1), p->H, p->W}, gy.options());
        return {WinoConv::backward_raw(*p, gy, gx), torch::Tensor()};
    }
};

torch::Tensor WinoConv::run(const torch::Tensor &x) {
    bool plain = x.dim() == 4 && x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.size(1) == w.size(1);
    auto p = plain ? prims({x.size(0), x.size(2), x.size(3)}) : nullptr;
    if (!p) return torch::conv2d(x, w, b, /*stride=*/1, pad);
    return WinoFn::apply(x, id);
}

#endif  // ACTMAX_HAVE_DNNL

}  // namespace

void fast_op_register(const std::shared_ptr<FastOp> &op) {
    std::lock_guard<std::mutex> lock(registry_mu);
    for (auto it = registry.begin(); it != registry.end();) it = it->second.expired() ? registry.erase(it) : ++it;
    op->id = next_id++;
    registry[op->id] = op;
}

std::shared_ptr<FastOp> fast_conv(const torch::Tensor &w, const torch::Tensor &b, const std::vector<int64_t> &stride,
                                  const std::vector<int64_t> &pad, const std::vector<int64_t> &dil, int64_t groups) {
#ifdef ACTMAX_HAVE_DNNL
    if (std::getenv("ACTMAX_NO_WINOGRAD")) return nullptr;  // to measure what it brings
    if (!w.device().is_cpu() || w.scalar_type() != torch::kFloat || w.dim() != 4 || groups != 1) return nullptr;
    if (w.size(2) != 3 || w.size(3) != 3 || stride != std::vector<int64_t>{1, 1} || dil != std::vector<int64_t>{1, 1} ||
        pad.size() != 2 || pad[0] != pad[1] || pad[0] > 2)
        return nullptr;
    if (b.defined() && (b.dim() != 1 || b.size(0) != w.size(0))) return nullptr;
    auto op = std::make_shared<WinoConv>();
    op->w = w.detach().contiguous();
    if (b.defined()) op->b = b.detach().contiguous();
    op->pad = pad[0];
    fast_op_register(op);
    return op;
#else
    (void)w, (void)b, (void)stride, (void)pad, (void)dil, (void)groups;
    return nullptr;
#endif
}

void tune_malloc_for_runs() {
#ifdef M_MMAP_THRESHOLD
    static std::once_flag once;
    std::call_once(once, [] {
        if (std::getenv("ACTMAX_NO_MALLOPT")) return;
        mallopt(M_MMAP_THRESHOLD, 256 << 20);
        mallopt(M_TRIM_THRESHOLD, 512 << 20);
    });
#endif
}

std::shared_ptr<FastOp> fast_max_pool(const std::vector<int64_t> &kernel, const std::vector<int64_t> &stride,
                                      const std::vector<int64_t> &pad, const std::vector<int64_t> &dil, bool ceil) {
    if (std::getenv("ACTMAX_NO_FAST_POOL")) return nullptr;
    auto op = std::make_shared<FastMaxPool>();
    op->kernel = kernel;
    op->stride = stride;
    op->pad = pad;
    op->dil = dil;
    op->ceil = ceil;
    fast_op_register(op);
    return op;
}

}  // namespace am

TORCH_LIBRARY(actmax, m) { m.def("fast(Tensor x, int id) -> Tensor", &am::fast_dispatch); }
