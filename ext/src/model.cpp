// model.cpp — loading TorchScript models and their metadata (actmax.json),
// the model accessors, and the small helpers every translation unit shares.
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "internal.hpp"
#include "memory.hpp"

extern "C" {
#include "am_json.h"
}

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
                (l.compare(0, colon, "Exception") == 0 || (colon >= 5 && l.compare(colon - 5, 5, "Error") == 0)) &&
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

std::string shape_str(c10::IntArrayRef s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

// ============================================================ metadata

namespace {

// actmax.json, read by ext/data's JSON reader (the one JSON reader of the
// engine). Values are looked up by key; the document owns them.
// A caller's metadata (am_model_load_with) is a second document whose keys
// win over the archive's.
class Meta {
  public:
    Meta() = default;
    Meta(const Meta &) = delete;
    Meta &operator=(const Meta &) = delete;
    ~Meta() {
        am__json_free(file_);
        am__json_free(over_);
    }

    void parse_file(const std::string &text) { file_ = parse(text, "actmax.json"); }
    void parse_override(const char *text) {
        if (text) over_ = parse(text, "metadata");
    }
    bool empty() const { return !file_ && !over_; }
    // Where a key's value comes from, for messages: "metadata" (the
    // caller's) or "actmax.json".
    std::string where(const char *key) const {
        return std::string(over_ && am__json_get(over_, key) ? "metadata" : "actmax.json") + ": \"" + key + "\"";
    }
    const am__json *get(const char *key) const {
        if (const am__json *v = over_ ? am__json_get(over_, key) : nullptr) return v;
        return file_ ? am__json_get(file_, key) : nullptr;
    }

  private:
    static am__json *parse(const std::string &text, const char *what) {
        if (text.empty()) return nullptr;
        am__json *doc = nullptr;
        char err[256];
        if (am__json_parse(text.data(), text.size(), &doc, err, sizeof err) != 0)
            throw Error(AM_E_FORMAT, std::string(what) + ": " + err);
        if (doc->type != AM__JSON_OBJECT) {
            am__json_free(doc);
            throw Error(AM_E_FORMAT, std::string(what) + " must hold a JSON object");
        }
        return doc;
    }
    am__json *file_ = nullptr;
    am__json *over_ = nullptr;
};

bool is_string(const am__json *j) { return j && j->type == AM__JSON_STRING; }
std::string string_of(const am__json *j) { return std::string(j->str, j->len); }

// A number or a list of numbers.
std::vector<double> numbers(const Meta &meta, const char *key) {
    const am__json *j = meta.get(key);
    std::vector<double> r;
    if (!j) return r;
    if (j->type == AM__JSON_NUMBER) {
        r.push_back(j->num);
        return r;
    }
    auto bad = [&] { return Error(AM_E_FORMAT, meta.where(key) + " must be a list of numbers"); };
    if (j->type != AM__JSON_ARRAY) throw bad();
    for (size_t i = 0; i < j->n; i++) {
        if (j->items[i].type != AM__JSON_NUMBER) throw bad();
        r.push_back(j->items[i].num);
    }
    return r;
}

}  // namespace

// The context of a text model whose metadata gives none.
constexpr int64_t kDefaultTextContext = 16;
// Bounds on what metadata (or a caller) may declare, checked before the
// probe forward: a context beyond any trained model's, and an input sample
// of more values than a 8192x8192 RGB image (the probe alone would take
// gigabytes, then fail deep in the allocator).
constexpr int64_t kMaxContext = 1 << 17;
constexpr int64_t kMaxInputElements = 3LL * 8192 * 8192;

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

// "auto" is resolved from what libtorch reports, the one authority on
// whether it can run CUDA here (a device node can exist without a usable
// driver, or libtorch be built without CUDA).
static void set_device(am_model *m, const char *device) {
    std::string dev = device && *device ? device : "cpu";
    if (dev == "auto") dev = torch::cuda::is_available() ? "cuda" : "cpu";
    try {
        m->device = torch::Device(dev);
    } catch (const c10::Error &) {
        throw Error(AM_E_DEVICE, "unknown device '" + dev + "'; expected auto, cpu, cuda or cuda:N");
    }
    if (m->device.is_cuda() && !torch::cuda::is_available())
        throw Error(AM_E_DEVICE, "device '" + dev + "' requested but CUDA is not available here; use cpu");
    m->device_name = dev;
}

// Where the archive comes from: a file, or bytes in memory.
struct Source {
    const char *path = nullptr;
    std::string bytes;  // when path is null
    std::string name() const { return path ? std::string("'") + path + "'" : std::string("the archive in memory"); }
};

// A zip archive with a pickle but no TorchScript code: what torch.save writes.
static bool written_by_torch_save(const Source &src) {
    try {
        std::istringstream in(src.bytes);
        auto reader = src.path ? std::make_unique<caffe2::serialize::PyTorchStreamReader>(src.path)
                               : std::make_unique<caffe2::serialize::PyTorchStreamReader>(&in);
        return reader->hasRecord("data.pkl") && !reader->hasRecord("constants.pkl");
    } catch (const c10::Error &) { return false; }
}

// The module from its archive; extra files asked for in `extra` are filled.
static void read_archive(am_model *m, const Source &src, torch::jit::ExtraFilesMap &extra) {
    if (src.path) {
        const char *path = src.path;
        std::ifstream f(path, std::ios::binary);
        if (!f) throw Error(AM_E_IO, std::string("cannot open model file '") + path + "': " + std::strerror(errno));
        char magic[4] = {0};
        f.read(magic, 4);
        // TorchScript archives are zip files; anything else is rejected with
        // a clear message before libtorch's parser sees it.
        if (f.gcount() < 4 || std::memcmp(magic, "PK\x03\x04", 4) != 0)
            throw Error(AM_E_FORMAT,
                        std::string("'") + path +
                            "' is not a TorchScript file (expected a zip archive written by torch.jit.save)");
    } else if (src.bytes.size() < 4 || std::memcmp(src.bytes.data(), "PK\x03\x04", 4) != 0) {
        throw Error(AM_E_FORMAT,
                    "the bytes given are not a TorchScript archive (expected the zip archive "
                    "torch.jit.save writes, e.g. to an io.BytesIO)");
    }
    try {
        if (src.path) {
            m->module = torch::jit::load(src.path, m->device, extra);
        } else {
            std::istringstream in(src.bytes);
            m->module = torch::jit::load(in, m->device, extra);
        }
    } catch (const c10::Error &e) {
        if (written_by_torch_save(src))
            throw Error(AM_E_FORMAT,
                        src.name() +
                            " was written by torch.save (a state_dict or a pickled module), not "
                            "torch.jit.save: actmax loads TorchScript. Build the model in Python, load the "
                            "weights and save it scripted: model.load_state_dict(torch.load(path)); "
                            "torch.jit.script(model).save(\"model.pt\"), or use models/export.py "
                            "(export.py --module PKG.MOD:BUILD --weights path --input CxHxW --out model.pt)");
        throw Error(AM_E_FORMAT, "cannot load " + src.name() +
                                     " as TorchScript (truncated or corrupt?): " + short_what(e.what(), 1));
    }
}

// The tokenizer extra file named by the metadata, from the archive itself
// (its name is only known once actmax.json is read).
static void read_tokenizer(am_model *m, const Source &src, const std::string &name) {
    std::istringstream in(src.bytes);
    auto reader = src.path ? std::make_unique<caffe2::serialize::PyTorchStreamReader>(src.path)
                           : std::make_unique<caffe2::serialize::PyTorchStreamReader>(&in);
    std::string rec = "extra/" + name;
    if (!reader->hasRecord(rec))
        throw Error(AM_E_FORMAT, "actmax.json names tokenizer '" + name + "' but the file carries no such extra file");
    auto data = reader->getRecord(rec);
    m->tokenizer.assign(static_cast<const char *>(std::get<0>(data).get()), std::get<1>(data));
    m->has_tokenizer = true;
}

// A declared size as an integer; NaN reads as 0 and huge values stop at
// 1e15 (past every bound, and still an int64).
static int64_t as_size(double d) {
    if (!(d == d)) return 0;
    return static_cast<int64_t>(std::max(-1e15, std::min(d, 1e15)));
}

// Kind, labels, dataset, tokenizer, input shape, range, mean and std from
// the metadata; shape (ndim > 0) overrides "input".
static void apply_metadata(am_model *m, const Meta &meta, const Source &src, const int64_t *shape, int ndim) {
    if (auto k = meta.get("kind")) {
        if (!is_string(k) || (string_of(k) != "image" && string_of(k) != "text"))
            throw Error(AM_E_FORMAT, meta.where("kind") + " must be \"image\" or \"text\"");
        m->kind = string_of(k);
    }
    if (auto d = meta.get("dataset"); is_string(d)) {
        m->dataset = string_of(d);
    } else if (d) {
        // {"path": "...", "labels": [...]}: the model's own images, the path
        // relative to the model file
        auto bad = Error(AM_E_FORMAT, meta.where("dataset") +
                                          " must be a name (\"fashion-mnist\") or {\"path\": \"images/\" "
                                          "(a PNG folder, .npy or .pt file), \"labels\": [\"name\", ...]}");
        const am__json *p = am__json_get(d, "path");
        if (d->type != AM__JSON_OBJECT || !is_string(p) || p->len == 0) throw bad;
        std::string path = string_of(p), model = src.path ? src.path : "";
        if (path[0] != '/') {
            size_t slash = model.rfind('/');
            path = (slash == std::string::npos ? std::string(".") : model.substr(0, slash)) + "/" + path;
        }
        m->dataset = path;
        if (const am__json *l = am__json_get(d, "labels")) {
            if (l->type != AM__JSON_ARRAY) throw bad;
            for (size_t i = 0; i < l->n; i++) {
                if (!is_string(&l->items[i])) throw bad;
                m->dataset_labels.push_back(string_of(&l->items[i]));
            }
        }
    }
    if (auto l = meta.get("labels")) {
        auto bad = Error(AM_E_FORMAT, meta.where("labels") + " must be a list of strings");
        if (l->type != AM__JSON_ARRAY) throw bad;
        for (size_t i = 0; i < l->n; i++) {
            if (!is_string(&l->items[i])) throw bad;
            m->labels.push_back(string_of(&l->items[i]));
        }
    }
    if (auto t = meta.get("tokenizer")) {
        if (!is_string(t)) throw Error(AM_E_FORMAT, meta.where("tokenizer") + " must name an extra file");
        read_tokenizer(m, src, string_of(t));
    }

    if (ndim > 0) {
        m->input_shape.assign(shape, shape + ndim);
    } else if (meta.get("input")) {
        for (double d : numbers(meta, "input")) m->input_shape.push_back(as_size(d));
    } else if (m->kind == "text") {
        auto ctx = meta.get("context");
        m->input_shape.push_back(ctx && ctx->type == AM__JSON_NUMBER ? as_size(ctx->num) : kDefaultTextContext);
    } else {
        throw Error(AM_E_ARG,
                    "the model carries no actmax.json metadata, so its input shape is unknown; "
                    "give it, e.g. input=3x224x224");
    }
    for (auto d : m->input_shape)
        if (d <= 0) throw Error(AM_E_ARG, "input shape " + shape_str(m->input_shape) + " has a non-positive size");
    // Declared sizes are bounded before the probe forward allocates them.
    std::string from = ndim > 0            ? std::string("the input shape given")
                       : meta.get("input") ? meta.where("input")
                                           : meta.where("context");
    if (m->kind == "text" && m->input_shape.size() == 1 && m->input_shape[0] > kMaxContext)
        throw Error(AM_E_ARG, from + " declares a context of " + std::to_string(m->input_shape[0]) +
                                  " tokens, over the engine's bound of " + std::to_string(kMaxContext) +
                                  "; declare the context the model was trained with");
    double elems = 1;
    for (auto d : m->input_shape) elems *= static_cast<double>(d);
    if (elems > static_cast<double>(kMaxInputElements))
        throw Error(AM_E_ARG, from + " declares an input of " + shape_str(m->input_shape) + " (" +
                                  std::to_string(static_cast<int64_t>(elems)) +
                                  " values), over the engine's bound of " + std::to_string(kMaxInputElements) +
                                  " values per sample; e.g. input=3x224x224");

    if (meta.get("range")) {
        auto v = numbers(meta, "range");
        if (v.size() != 2 || !(v[0] < v[1]))
            throw Error(AM_E_FORMAT, meta.where("range") + " must be [lo, hi] with lo < hi");
        m->range[0] = static_cast<float>(v[0]);
        m->range[1] = static_cast<float>(v[1]);
    }
    if (m->kind != "image") return;
    if (m->input_shape.size() != 3)
        throw Error(AM_E_ARG, "an image model needs an input shape C x H x W, got " + shape_str(m->input_shape));
    int64_t C = m->input_shape[0];
    auto mean = numbers(meta, "mean");
    auto sd = numbers(meta, "std");
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

// An image input of more values than kEstimateAbove gets its probe
// forward's memory estimated before that forward runs: a bounded input can
// still need gigabytes (a ResNet's first convolution alone, 4 GiB at
// 3x8192x8192), and on Linux too large a forward is not an allocation
// failure but the OOM killer taking the process. The estimate comes from a
// probe at a reduced size (at most kEstimateProbe values, sides of
// kEstimateMinSide or more), scaled by the area ratio. At 3x512x512 a
// ResNet-18's no-grad forward holds about 36 MiB (by this estimate): below
// that, the probe runs unchecked. Tensors made inside an if or a loop body
// are not seen, and every size is scaled as if linear in the area: low for
// attention over patches (scores grow with the area squared, and a scripted
// nn.MultiheadAttention makes them inside if blocks). Text models are not
// estimated, for the same two reasons: their probe at a long context is not
// cheap (a 2-layer GPT 32 wide takes 2.3 GiB at context 8192), but the
// attention scores that dominate it are quadratic in the length and made
// inside if blocks.
constexpr int64_t kEstimateAbove = 3LL * 512 * 512;
constexpr int64_t kEstimateProbe = 3LL * 256 * 256;
constexpr int64_t kEstimateMinSide = 32;

static std::string dims_str(const std::vector<int64_t> &s) {
    std::string r;
    for (size_t i = 0; i < s.size(); i++) r += (i ? "x" : "") + std::to_string(s[i]);
    return r;
}

// Refuses, with AM_E_NOMEM, a probe forward on shape s (1, C, H, W) whose
// estimated peak exceeds what is available, naming an input that would fit.
static void check_probe_memory(am_model *m, const std::vector<int64_t> &s) {
    if (m->kind != "image" || s.size() != 4 || m->graph->inputs().size() != 2) return;
    const int64_t C = s[1], H = s[2], W = s[3];
    if (C * H * W <= kEstimateAbove || memory_available(m->device) < 0) return;
    // The smallest integer factor that brings the sample under
    // kEstimateProbe; one that divides both sides, if as small or up to
    // twice that, keeps the area ratio exact.
    const int64_t kmax = std::min(H, W) / kEstimateMinSide;
    int64_t k = 2;
    while (k <= kmax && C * (H / k) * (W / k) > kEstimateProbe) k++;
    if (k > kmax) return;  // too narrow to reduce: the probe runs as it is
    for (int64_t j = k; j <= std::min(kmax, 2 * k); j++)
        if (H % j == 0 && W % j == 0) {
            k = j;
            break;
        }
    const int64_t h = H / k, w = W / k;
    double peak = 0;
    try {
        peak = forward_peak_bytes(m, m->graph, torch::zeros({1, C, h, w}, torch::TensorOptions().device(m->device)));
    } catch (const std::exception &) {
        // A model that accepts only its exact size (a fixed reshape, an
        // assert on the shape) has no reduced probe: no estimate, and the
        // full probe runs as it would without one.
        return;
    }
    const double area = static_cast<double>(H * W) / static_cast<double>(h * w);
    const double need = peak * area;
    check_memory(m->device, need, "the model's probe forward at " + dims_str(s), [&](double avail) -> std::string {
        // The same area scaling, each side down to a multiple of 8.
        const double f = std::sqrt(avail / need);
        int64_t h2 = static_cast<int64_t>(static_cast<double>(H) * f),
                w2 = static_cast<int64_t>(static_cast<double>(W) * f);
        h2 -= h2 % 8;
        w2 -= w2 % 8;
        if (h2 < 8 || w2 < 8) return "";
        return "input=" + dims_str({C, h2, w2}) + " would fit";
    });
}

// A text model's probe at a long context is estimated first from forwards
// at three shorter ones, T, 2T and 4T: self-attention makes the memory grow
// with the square of the length (a 2-layer, 32-wide GPT took 2.3 GiB at
// 8192), and its scores are often made inside if blocks, which a walk over
// the graph does not see; the allocator's own report does. The peaks fit
// a + bT + cT^2, taken at the declared context.
constexpr int64_t kTextEstimateFrom = 256;

static void check_text_probe_memory(am_model *m, int64_t ctx) {
    const int64_t t1 = kTextEstimateFrom;
    if (ctx <= 4 * t1 || m->graph->inputs().size() != 2 || memory_available(m->device) < 0) return;
    const double T = static_cast<double>(t1);
    double p[3];
    try {
        for (int i = 0; i < 3; i++)
            p[i] = measure_peak(m->device, [&] {
                torch::NoGradGuard ng;
                m->module.forward(
                    {torch::zeros({1, t1 << i}, torch::TensorOptions().dtype(torch::kLong).device(m->device))});
            });
    } catch (const std::exception &) {
        return;  // a model that takes only its full context: the probe runs as it is
    }
    // Through (T, p0), (2T, p1), (4T, p2): the second difference gives c.
    const double c = std::max(0.0, ((p[2] - p[1]) - 2 * (p[1] - p[0])) / (6 * T * T));
    const double b = std::max(0.0, ((p[1] - p[0]) - 3 * c * T * T) / T);
    const double a = std::max(0.0, p[0] - b * T - c * T * T);
    auto at = [&](double len) { return std::max(a + b * len + c * len * len, p[2] * len / (4 * T)); };
    const double need = at(static_cast<double>(ctx));
    check_memory(m->device, need, "the model's probe forward at a context of " + std::to_string(ctx) + " tokens",
                 [&](double avail) -> std::string {
                     int64_t lo = 4 * t1, hi = ctx;  // the longest context that fits, to 64 tokens
                     if (at(static_cast<double>(lo)) > avail) return "";
                     while (hi - lo > 64) {
                         int64_t mid = (lo + hi) / 2;
                         (at(static_cast<double>(mid)) <= avail ? lo : hi) = mid;
                     }
                     lo -= lo % 64;
                     return "a context of " + std::to_string(lo) +
                            " would fit (actmax.json's \"context\", or input=" + std::to_string(lo) + ")";
                 });
}

// Eval mode, frozen parameters, the module tree, forward's inlined graph,
// and one probe forward on the declared shape (its memory estimated first
// for large images).
static void prepare(am_model *m) {
    m->module.eval();
    for (auto p : m->module.parameters()) p.set_requires_grad(false);
    collect_modules(m->module, m);
    m->graph = m->module.get_method("forward").graph()->copy();
    torch::jit::Inline(*m->graph);
    {
        std::vector<int64_t> s{1};
        s.insert(s.end(), m->input_shape.begin(), m->input_shape.end());
        check_probe_memory(m, s);
        if (m->kind == "text" && s.size() == 2) check_text_probe_memory(m, s[1]);
        torch::NoGradGuard ng;
        torch::Tensor x = m->kind == "text"
                              ? torch::zeros(s, torch::TensorOptions().dtype(torch::kLong).device(m->device))
                              : torch::zeros(s, torch::TensorOptions().device(m->device));
        try {
            m->module.forward({x});
        } catch (const std::exception &e) {
            throw Error(AM_E_MODEL, "the model's forward fails on an input of shape " + shape_str(s) + ": " +
                                        short_what(e.what(), 2));
        }
    }
    if (m->graph->inputs().size() != 2)
        throw Error(AM_E_UNSUPPORTED, "forward takes " + std::to_string(m->graph->inputs().size() - 1) +
                                          " inputs; the engine drives models with exactly one");
}

static void load_model(am_model *m, const am_model_load_options &o) {
    Source src;
    if (o.path && *o.path) {
        if (o.data) throw Error(AM_E_ARG, "give the model as a path or as data, not both");
        src.path = o.path;
    } else if (o.data) {
        if (o.len == 0) throw Error(AM_E_ARG, "data is given with len 0; len is the archive's size in bytes");
        src.bytes.assign(static_cast<const char *>(o.data), o.len);
    } else {
        throw Error(AM_E_ARG, "no model path given");
    }
    if (o.input_ndim < 0 || o.input_ndim > AM_MAX_DIMS || (o.input_ndim > 0 && !o.input_shape))
        throw Error(AM_E_ARG, "input shape must have 0.." + std::to_string(AM_MAX_DIMS) + " dims");
    set_device(m, o.device);
    Meta meta;
    meta.parse_override(o.metadata);  // a caller's typo fails before the archive is read
    torch::jit::ExtraFilesMap extra{{"actmax.json", ""}};
    read_archive(m, src, extra);
    m->loaded = true;
    m->metadata = extra["actmax.json"];
    meta.parse_file(m->metadata);
    apply_metadata(m, meta, src, o.input_shape, o.input_ndim);
    prepare(m);
}

InputScale::InputScale(const am_model *m, torch::Device dev) {
    auto fopt = torch::TensorOptions().dtype(torch::kFloat);
    int64_t C = static_cast<int64_t>(m->mean.size());
    mean = torch::tensor(m->mean, fopt).reshape({1, C, 1, 1}).to(dev);
    sd = torch::tensor(m->stdev, fopt).reshape({1, C, 1, 1}).to(dev);
    lo = m->range[0];
    hi = m->range[1];
}

// OpenBLAS keeps its own thread pool, by default one thread per core, beside
// libtorch's intra-op threads. When a process asks libtorch for fewer threads
// (torch.set_num_threads(1), OMP_NUM_THREADS=1), OpenBLAS still splits every
// matrix product over all cores and its idle workers spin in sched_yield:
// half of the process's CPU time went to the system on a quiet 2-core machine
// (bench-engine), and on a loaded one the spinning takes cores from others.
// So the pool follows libtorch's thread count at the start of every run.
void blas_follow_threads() {
    using set_fn = void (*)(int);
    using get_fn = int (*)();
    // libtorch's own libblas.so.3, loaded privately (not in the global
    // scope) when the engine or torch was opened with RTLD_LOCAL.
    static void *blas = [] {
        void *h = dlopen("libblas.so.3", RTLD_NOW | RTLD_NOLOAD);
        return h ? h : RTLD_DEFAULT;
    }();
    static set_fn set = reinterpret_cast<set_fn>(dlsym(blas, "openblas_set_num_threads"));
    static get_fn get = reinterpret_cast<get_fn>(dlsym(blas, "openblas_get_num_threads"));
    if (!set || !get) return;  // another BLAS, or OpenBLAS without the call
    int want = at::get_num_threads();
    if (want >= 1 && get() != want) set(want);
}

}  // namespace am

// ============================================================ C API

using am::Error;

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
    } catch (...) { return AM_E_INTERNAL; }
}

void am_tensor_release(am_tensor *t) {
    if (!t) return;
    std::free(t->data);
    std::memset(t, 0, sizeof *t);
}

int am_model_load(const char *path, const char *device, const int64_t *input_shape, int input_ndim, am_model **out) {
    am_model_load_options o{};
    o.path = path;
    o.device = device;
    o.input_shape = input_shape;
    o.input_ndim = input_ndim;
    return am_model_load_with(&o, out);
}

int am_model_load_with(const am_model_load_options *o, am_model **out) {
    return am::construct(out, [&](am_model *m) {
        if (!o) throw Error(AM_E_ARG, "load options are NULL");
        try {
            am::load_model(m, *o);
        } catch (const c10::Error &e) {
            std::string why = am::short_what(e.what(), 1);
            if (why.rfind("not enough memory", 0) != 0) throw;
            throw Error(AM_E_NOMEM, why + " for the model's probe forward; give a smaller input shape");
        }
    });
}

void am_model_free(am_model *m) { delete m; }

const char *am_model_error(const am_model *m) { return m ? m->error.c_str() : "model handle is NULL"; }
const char *am_model_note(const am_model *m) { return m ? m->note.c_str() : ""; }
const char *am_model_kind(const am_model *m) { return m ? m->kind.c_str() : ""; }
const char *am_model_device(const am_model *m) { return m ? m->device_name.c_str() : ""; }
const char *am_model_dataset(const am_model *m) { return m ? m->dataset.c_str() : ""; }

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
    if (range) {
        range[0] = m->range[0];
        range[1] = m->range[1];
    }
    return AM_OK;
}

int am_model_num_labels(const am_model *m) { return m ? static_cast<int>(m->labels.size()) : AM_E_ARG; }

int64_t am_model_num_params(const am_model *m) {
    if (!m || !m->loaded) return AM_E_ARG;
    try {
        // A tensor shared by two modules (a tied embedding and unembedding)
        // is one set of parameters: count each storage once.
        std::set<const void *> seen;
        int64_t n = 0;
        for (const auto &p : m->module.parameters(/*recurse=*/true))
            if (seen.insert(p.data_ptr()).second) n += p.numel();
        return n;
    } catch (...) { return AM_E_INTERNAL; }
}

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

}  // extern "C"
