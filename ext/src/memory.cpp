// memory.cpp — memory estimates before work starts: what is available, what
// one sample's forward holds (from a probe), and the refusal with what
// would fit. A run that would not fit is refused with numbers instead of
// growing until the allocator fails or the OOM killer takes the process.
#include "memory.hpp"

#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>
#include <torch/csrc/jit/api/function_impl.h>

#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

namespace am {

namespace {

// "8G", "512M", "1000000": bytes; -1 when s does not read as a size.
double parse_size(const std::string &s) {
    char *end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || !(v > 0)) return -1;
    std::string unit(end);
    if (unit.empty() || unit == "B") return v;
    char u = static_cast<char>(std::toupper(static_cast<unsigned char>(unit[0])));
    if (u == 'K') return v * 1024;
    if (u == 'M') return v * 1024 * 1024;
    if (u == 'G') return v * 1024 * 1024 * 1024;
    return -1;
}

double meminfo_available() {
    std::ifstream f("/proc/meminfo");
    std::string key;
    double kb = 0;
    std::string unit;
    while (f >> key >> kb) {
        std::getline(f, unit);
        if (key == "MemAvailable:") return kb * 1024;
    }
    return -1;
}

// cgroup v2: what the group may still take before its OOM killer acts.
double cgroup_available() {
    std::ifstream mx("/sys/fs/cgroup/memory.max"), cur("/sys/fs/cgroup/memory.current");
    std::string lim;
    double used = 0;
    if (!(mx >> lim) || lim == "max" || !(cur >> used)) return -1;
    double l = std::strtod(lim.c_str(), nullptr);
    return l > used ? l - used : 0;
}

// The CUDA driver's free memory on device `index`, from libcuda.so.1
// loaded at run time: the engine links no CUDA library (Debian's libtorch
// has none), and a CUDA libtorch has loaded the driver already. The device's
// primary context is the one libtorch uses, retained so the query neither
// creates another context nor disturbs the caller's current one.
// $ACTMAX_LIBCUDA names another library with the same functions. -1 when
// there is no driver or it fails.
double cuda_free(int index) {
    using Init = int (*)(unsigned);
    using DeviceGet = int (*)(int *, int);
    using Retain = int (*)(void **, int);
    using Release = int (*)(int);
    using Push = int (*)(void *);
    using Pop = int (*)(void **);
    using MemGetInfo = int (*)(size_t *, size_t *);
    const char *name = std::getenv("ACTMAX_LIBCUDA");
    if (!name || !*name) name = "libcuda.so.1";
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);  // kept open, like the driver itself
    if (!h) return -1;
    auto sym = [&](const char *a, const char *b) {
        void *f = dlsym(h, a);
        return f ? f : dlsym(h, b);
    };
    auto init = reinterpret_cast<Init>(sym("cuInit", "cuInit"));
    auto get = reinterpret_cast<DeviceGet>(sym("cuDeviceGet", "cuDeviceGet"));
    auto retain = reinterpret_cast<Retain>(sym("cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRetain"));
    auto release = reinterpret_cast<Release>(sym("cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"));
    auto push = reinterpret_cast<Push>(sym("cuCtxPushCurrent_v2", "cuCtxPushCurrent"));
    auto pop = reinterpret_cast<Pop>(sym("cuCtxPopCurrent_v2", "cuCtxPopCurrent"));
    auto info = reinterpret_cast<MemGetInfo>(sym("cuMemGetInfo_v2", "cuMemGetInfo"));
    if (!init || !get || !retain || !release || !push || !pop || !info) return -1;
    int dev = 0;
    void *ctx = nullptr;
    if (init(0) != 0 || get(&dev, index) != 0 || retain(&ctx, dev) != 0) return -1;
    size_t free_b = 0, total_b = 0;
    bool ok = false;
    if (push(ctx) == 0) {
        ok = info(&free_b, &total_b) == 0;
        void *prev = nullptr;
        pop(&prev);
    }
    release(dev);
    return ok ? static_cast<double>(free_b) : -1;
}

// libtorch keeps what a run freed in its cache, where the driver counts it
// as used: the largest estimate that passed on each device in this process
// is added back to the driver's free memory, so a run as large as an
// earlier one is not refused for memory the earlier one left cached.
std::mutex g_cached_mu;
std::map<int, double> g_cached;

int cuda_index(const torch::Device &dev) { return dev.has_index() ? dev.index() : 0; }

}  // namespace

double memory_available(const torch::Device &dev) {
    double avail = -1;
    auto lower = [&](double v) {
        if (v >= 0 && (avail < 0 || v < avail)) avail = v;
    };
    if (dev.is_cpu()) {
        lower(meminfo_available());
        lower(cgroup_available());
    } else if (dev.is_cuda()) {
        double f = cuda_free(cuda_index(dev));
        if (f >= 0) {
            std::lock_guard<std::mutex> lock(g_cached_mu);
            lower(f + g_cached[cuda_index(dev)]);
        }
    }
    if (const char *e = std::getenv("ACTMAX_MEMORY_LIMIT")) lower(parse_size(e));
    return avail;
}

std::string bytes_str(double b) {
    char buf[32];
    const double kGiB = 1024.0 * 1024 * 1024, kMiB = 1024.0 * 1024;
    if (b >= kGiB)
        std::snprintf(buf, sizeof buf, "%.1f GiB", b / kGiB);
    else
        std::snprintf(buf, sizeof buf, "%.0f MiB", std::ceil(b / kMiB));
    return buf;
}

namespace {

// Tensors, lists and tuples of them: the values a probe returns.
bool holds_tensors(const c10::TypePtr &t) {
    if (t->kind() == c10::TypeKind::TensorType) return true;
    if (auto l = t->cast<c10::ListType>()) return holds_tensors(l->getElementType());
    if (auto o = t->cast<c10::OptionalType>()) return holds_tensors(o->getElementType());
    if (auto tu = t->cast<c10::TupleType>())
        for (const auto &e : tu->elements())
            if (holds_tensors(e)) return true;
    return false;
}

void tensors_of(const c10::IValue &v, std::vector<torch::Tensor> &out) {
    if (v.isTensor()) {
        out.push_back(v.toTensor());
    } else if (v.isList()) {
        for (const c10::IValue &e : v.toListRef()) tensors_of(e, out);
    } else if (v.isTuple()) {
        for (const c10::IValue &e : v.toTupleRef().elements()) tensors_of(e, out);
    }
}

// Runs g (inputs self, x; edited in place) without gradient on input with
// each of vals, values of its top-level block, made an output; returns
// their results in order.
std::vector<c10::IValue> run_returning(am_model *m, const std::shared_ptr<torch::jit::Graph> &g,
                                       const std::vector<torch::jit::Value *> &vals, const torch::Tensor &input) {
    torch::jit::Node *tup = g->createTuple(vals);
    tup->insertBefore(g->return_node());
    while (!g->outputs().empty()) g->eraseOutput(0);
    g->registerOutput(tup->output());
    torch::jit::GraphFunction fn("actmax_probe", g, nullptr);
    std::vector<c10::IValue> stack{m->module._ivalue(), input};
    {
        torch::NoGradGuard ng;
        fn.run(stack);
    }
    auto elems = stack.at(0).toTuple()->elements();
    return std::vector<c10::IValue>(elems.begin(), elems.end());
}

// Storages of the model's parameters and buffers.
std::set<const void *> module_storages(am_model *m) {
    std::set<const void *> r;
    for (const auto &p : m->module.parameters()) r.insert(p.storage().data());
    for (const auto &b : m->module.buffers())
        if (b.defined() && b.has_storage()) r.insert(b.storage().data());
    return r;
}

}  // namespace

ProbeBytes probe_bytes(am_model *m, const TapPlan &plan, const torch::Tensor &input) {
    // The plan's graph (already cut after its deepest tap) with every tensor
    // it makes as an output, so all of them are alive at the end of the probe.
    auto g = plan.fn->graph()->copy();
    std::vector<torch::jit::Value *> vals;
    for (torch::jit::Node *n : g->block()->nodes())
        for (torch::jit::Value *v : n->outputs())
            if (v->type()->kind() == c10::TypeKind::TensorType) vals.push_back(v);
    auto results = run_returning(m, g, vals, input);
    ProbeBytes r;
    std::set<const void *> seen;  // views and in-place results share storage
    for (auto &e : results) {
        if (!e.isTensor()) continue;
        const auto &t = e.toTensor();
        if (!t.defined() || !t.has_storage()) continue;
        const void *key = t.storage().data();
        if (!seen.insert(key).second) continue;
        double b = static_cast<double>(t.storage().nbytes());
        // Parameters and buffers (getattr chains) are in memory already.
        bool param = false;
        for (const auto &p : m->module.parameters())
            if (p.storage().data() == key) {
                param = true;
                break;
            }
        if (param) continue;
        r.sum += b;
        r.max = std::max(r.max, b);
    }
    return r;
}

double forward_peak_bytes(am_model *m, const std::shared_ptr<torch::jit::Graph> &g0, const torch::Tensor &input) {
    auto g = g0->copy();
    // Top-level nodes numbered from 1; 0 is the input's definition and
    // n + 1 the return.
    std::map<const torch::jit::Node *, size_t> index;
    size_t n = 0;
    for (torch::jit::Node *node : g->block()->nodes()) index[node] = ++n;
    index[g->return_node()] = n + 1;
    auto at = [&](torch::jit::Node *node) {
        while (node->owningBlock() != g->block()) node = node->owningBlock()->owningNode();
        return index.at(node);
    };
    struct Span {
        size_t first, last;
    };
    auto span = [&](torch::jit::Value *v, size_t first) {
        Span s{first, first};
        for (const torch::jit::Use &u : v->uses()) s.last = std::max(s.last, at(u.user));
        return s;
    };
    // Spans first: the run may leave the graph as its executor wants it.
    std::vector<torch::jit::Value *> vals;
    std::vector<Span> spans;
    for (torch::jit::Node *node : g->block()->nodes()) {
        // Constants and attributes (parameters, buffers) are held already.
        if (node->kind() == c10::prim::Constant || node->kind() == c10::prim::GetAttr) continue;
        for (torch::jit::Value *v : node->outputs())
            if (holds_tensors(v->type())) {
                vals.push_back(v);
                spans.push_back(span(v, index.at(node)));
            }
    }
    auto results = run_returning(m, g, vals, input);

    // Per storage: its bytes and the union of the spans of the values
    // holding it (a view keeps its base alive, a list its elements).
    struct Life {
        double bytes;
        Span span;
    };
    std::map<const void *, Life> lives;
    auto add = [&](const torch::Tensor &t, Span s) {
        if (!t.defined() || !t.has_storage() || !t.storage().data()) return;
        Life l{static_cast<double>(t.storage().nbytes()), s};
        auto [it, fresh] = lives.emplace(t.storage().data(), l);
        if (!fresh) {
            it->second.span.first = std::min(it->second.span.first, s.first);
            it->second.span.last = std::max(it->second.span.last, s.last);
        }
    };
    add(input, Span{0, n + 1});  // the caller holds it throughout
    for (size_t i = 0; i < vals.size(); i++) {
        std::vector<torch::Tensor> ts;
        tensors_of(results[i], ts);
        for (const auto &t : ts) add(t, spans[i]);
    }
    for (const void *held : module_storages(m)) lives.erase(held);

    // Live bytes after each node: a sweep over the spans' ends.
    std::vector<double> delta(n + 3, 0.0);
    for (const auto &kv : lives) {
        delta[kv.second.span.first] += kv.second.bytes;
        delta[kv.second.span.last + 1] -= kv.second.bytes;
    }
    double live = 0, peak = 0;
    for (double d : delta) peak = std::max(peak, live += d);
    return peak;
}

namespace {

// Counts what the allocators report while it is the thread's profiler state.
// reportMemoryUsage's totals are int64_t in libtorch 1.x and size_t in 2.x:
// both overloads are declared, and the one the header names overrides.
struct PeakCounter final : c10::MemoryReportingInfoBase {
    c10::DeviceType type;
    int64_t current = 0, peak = 0;
    explicit PeakCounter(c10::DeviceType t) : type(t) {}
    void add(int64_t bytes, c10::Device d) {
        if (d.type() != type) return;
        current += bytes;
        peak = std::max(peak, current);
    }
    void reportMemoryUsage(void *, int64_t bytes, int64_t, int64_t, c10::Device d) { add(bytes, d); }
    void reportMemoryUsage(void *, int64_t bytes, size_t, size_t, c10::Device d) { add(bytes, d); }
    bool memoryProfilingEnabled() const override { return true; }
};

}  // namespace

double measure_peak(const torch::Device &dev, const std::function<void()> &f) {
    auto counter = std::make_shared<PeakCounter>(dev.type());
    {
        c10::DebugInfoGuard guard(c10::DebugInfoKind::PROFILER_STATE, counter);
        f();
    }
    return static_cast<double>(counter->peak);
}

bool allocation_failure(const std::string &what) {
    return what.find("can't allocate memory") != std::string::npos ||
           what.find("CUDA out of memory") != std::string::npos ||
           what.find("DefaultCPUAllocator") != std::string::npos;
}

void check_memory(const torch::Device &dev, double need, const std::string &what,
                  const std::function<std::string(double)> &fits) {
    double avail = memory_available(dev);
    if (avail < 0 || need <= avail) {
        if (dev.is_cuda()) {
            std::lock_guard<std::mutex> lock(g_cached_mu);
            double &c = g_cached[cuda_index(dev)];
            c = std::max(c, need);
        }
        return;
    }
    std::string msg = what + " needs about " + bytes_str(need) + ", " + bytes_str(avail) + " available";
    std::string f = fits ? fits(avail) : "";
    throw Error(AM_E_NOMEM, msg + (f.empty() ? "" : "; " + f));
}

}  // namespace am

extern "C" int am_memory_available(const char *device, double *bytes) {
    if (!bytes) return AM_E_ARG;
    *bytes = -1;
    try {
        torch::Device dev(device && *device ? std::string(device) : std::string("cpu"));
        if (!dev.is_cpu() && !dev.is_cuda()) return AM_E_ARG;
        *bytes = am::memory_available(dev);
        return AM_OK;
    } catch (const std::exception &) {
        return AM_E_ARG;  // not a device name libtorch reads
    } catch (...) { return AM_E_INTERNAL; }
}
