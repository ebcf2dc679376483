// examples.cpp — the top-k dataset items of an objective and its
// distribution over the dataset (am_examples), for images and text through
// one set of accumulators: images come from an ext/data dataset in batches,
// scaled exactly as runs scale theirs (the model's value range, then
// mean/std); text is a streamed token corpus read in overlapping windows so
// every token is scored once with its natural preceding context.
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "internal.hpp"
#include "objective_eval.hpp"

using am::Error;

namespace am {

// One example as kept (top-k or band): what am_example points into.
struct ExItem {
    int64_t index = 0;
    float value = 0.f;
    int64_t label = -1;
    std::string label_name;
    std::vector<float> image;     // (C*H*W) in the model's value range
    std::vector<int64_t> tokens;  // (T)
    std::vector<float> acts;      // (T)
    int peak = 0, scored = 0;
};

}  // namespace am

struct am_examples {
    std::string error;
    int kind = AM_DATASET_IMAGE;
    int64_t scanned = 0;
    bool cancelled = false;
    std::vector<int64_t> shape;   // one item: (C, H, W) or (T)
    std::vector<am::ExItem> top;  // best first
    // the distribution of every scored value
    float vmax = std::numeric_limits<float>::quiet_NaN();
    int64_t positive = 0;
    bool sampled = false;
    std::vector<int64_t> hist;
    float hlo = 0.f, hhi = 0.f;
    std::vector<std::vector<am::ExItem>> bands;
    std::vector<float> band_lo, band_hi;
    std::vector<float> class_means;   // empty: unlabelled
    int64_t window = 0, context = 0;  // text
    int64_t forwards = 0;             // model forwards the scan ran
    bool from_cache = false;          // values read from the activation cache
};

namespace am {
namespace {

// Defaults: k as many as a grid shows at a glance; items per forward, as
// many as keep a small model's matrix products efficient without holding
// large activations; the text window, a few sentences of context, half of
// it guaranteed to every token (so a token costs two positions' forward).
constexpr int kDefaultK = 10;
constexpr int kMaxK = 100000;
constexpr int64_t kDefaultBatch = 256;
constexpr int64_t kDefaultWindow = 64;
constexpr int kDefaultBins = 50;
constexpr int kMaxBins = 10000;
constexpr int kDefaultPerBand = 3;
// Values kept for exact quantiles and histogram: 16 MiB of floats, a few
// million tokens; beyond, a uniform sample of as many.
constexpr size_t kKeepValues = size_t(1) << 22;
// Scored tokens (each with its window) sampled for text band examples.
constexpr size_t kBandSample = 4096;
// Tokens asked of the reader at a time.
constexpr int64_t kReadTokens = 1 << 16;

// ---------------------------------------------------------------- activation cache

// A layer's activations over a dataset, kept on disk so the next objective
// on the same layer reads them instead of running the model: per item
// (image) or per scored token (text, in stream order), float32, after a
// small header. Used when the objective is one layer reference (indexing
// only); written by a complete scan of at most kCacheMaxBytes.
// $ACTMAX_ACT_CACHE names the folder ("off": no cache); default
// ~/.cache/actmax/acts.
constexpr int64_t kCacheMaxBytes = int64_t(1) << 30;
// The folder holds at most this much; the least recently used files go.
constexpr int64_t kCacheFolderBytes = int64_t(2) << 30;
// Version 2: SentencePiece entries over 1 MiB were tokenized differently by
// version 1 (a space at each 1 MiB cut); its files are not read.
constexpr char kCacheMagic[8] = {'A', 'M', 'A', 'C', 'T', 'S', '2', '\n'};

struct Fnv {
    uint64_t h = 1469598103934665603ull;
    void add(const void *p, size_t n) {
        auto *b = static_cast<const unsigned char *>(p);
        for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    }
    void add(const std::string &s) { add(s.data(), s.size() + 1); }
    void add(int64_t v) { add(&v, sizeof v); }
};

std::string cache_dir() {
    const char *e = std::getenv("ACTMAX_ACT_CACHE");
    if (e && std::strcmp(e, "off") == 0) return "";
    if (e && *e) return e;
    const char *home = std::getenv("HOME");
    return home && *home ? std::string(home) + "/.cache/actmax/acts" : "";
}

void mkdirs(const std::string &dir) {
    for (size_t i = 1; i <= dir.size(); i++)
        if (i == dir.size() || dir[i] == '/') ::mkdir(dir.substr(0, i).c_str(), 0755);
}

// Every parameter and buffer, and the metadata: which model's activations.
uint64_t model_hash(am_model *m) {
    Fnv f;
    f.add(m->metadata);
    auto add_tensor = [&](const torch::Tensor &t0) {
        auto t = t0.detach().to(torch::kCPU).contiguous();
        for (auto d : t.sizes()) f.add(static_cast<int64_t>(d));
        // Words rather than bytes: the weights dominate and need no more.
        auto *w = static_cast<const uint64_t *>(t.data_ptr());
        size_t nb = t.numel() * t.element_size(), nw = nb / 8;
        for (size_t i = 0; i < nw; i++) f.h = (f.h ^ w[i]) * 1099511628211ull;
        f.add(static_cast<const char *>(t.data_ptr()) + nw * 8, nb - nw * 8);
    };
    for (const auto &p : m->module.named_parameters(true)) add_tensor(p.value);
    for (const auto &b : m->module.named_buffers(true))
        if (b.value.defined()) add_tensor(b.value);
    return f.h;
}

struct ActCache {
    std::string path, tmp;
    // reading
    void *map = nullptr;
    size_t map_len = 0;
    const float *data = nullptr;
    int64_t n = 0, per = 1;
    std::vector<int64_t> item;
    // writing
    FILE *w = nullptr;
    int64_t written = 0;
    bool failed = false;

    ActCache() = default;
    ActCache(const ActCache &) = delete;
    ActCache &operator=(const ActCache &) = delete;
    ~ActCache() {
        if (map) ::munmap(map, map_len);
        abandon();
    }
    bool hit() const { return data != nullptr; }
    bool writing() const { return w != nullptr; }

    // The file for this model, layer and dataset; opens it when complete.
    void open(am_model *m, const std::string &layer, const std::string &dataset, const std::string &what) {
        std::string dir = cache_dir();
        if (dir.empty()) return;
        Fnv key;
        key.add(what);
        std::string safe;
        for (char c : layer) safe += std::isalnum(static_cast<unsigned char>(c)) || c == '.' ? c : '_';
        char name[64];
        std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(model_hash(m)));
        char kh[32];
        std::snprintf(kh, sizeof kh, "%016llx", static_cast<unsigned long long>(key.h));
        path = dir + "/" + name + "-" + safe + "-" + dataset + "-" + kh + ".f32";
        int fd = ::open(path.c_str(), O_RDONLY);
        if (fd < 0) return;
        struct stat st {};
        if (::fstat(fd, &st) == 0 && st.st_size > 24) {
            void *p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
            if (p != MAP_FAILED) {
                map = p;
                map_len = static_cast<size_t>(st.st_size);
            }
        }
        ::close(fd);
        if (!map) return;
        auto *h = static_cast<const int64_t *>(map);
        int64_t nd = h[2];
        if (std::memcmp(map, kCacheMagic, 8) != 0 || h[1] <= 0 || nd < 0 || nd > 8 ||
            map_len < static_cast<size_t>(8 * (3 + nd)))
            return;
        item.assign(h + 3, h + 3 + nd);
        per = 1;
        for (auto d : item) per *= d;
        n = h[1];
        size_t head = static_cast<size_t>(8 * (3 + nd));
        if (per <= 0 || map_len != head + static_cast<size_t>(n * per) * 4) return;
        data = reinterpret_cast<const float *>(static_cast<const char *>(map) + head);
        ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // recently used: evicted last
    }

    // Starts writing (after a miss): the per-item shape is known at the
    // first batch.
    void begin(const std::vector<int64_t> &shape) {
        if (path.empty() || hit() || w || failed) return;
        mkdirs(path.substr(0, path.rfind('/')));
        tmp = path + ".tmp" + std::to_string(::getpid());
        w = std::fopen(tmp.c_str(), "wb");
        if (!w) {
            failed = true;
            return;
        }
        int64_t head[3] = {0, -1, static_cast<int64_t>(shape.size())};
        std::memcpy(head, kCacheMagic, 8);
        item = shape;
        per = 1;
        for (auto d : shape) per *= d;
        if (std::fwrite(head, 8, 3, w) != 3 || std::fwrite(shape.data(), 8, shape.size(), w) != shape.size()) abandon();
    }

    // rows: (r, item...) float32 on the CPU, contiguous.
    void append(const float *rows, int64_t r) {
        if (!w) return;
        written += r;
        if ((written * per) * 4 > kCacheMaxBytes ||
            std::fwrite(rows, 4, static_cast<size_t>(r * per), w) != static_cast<size_t>(r * per))
            abandon();
    }

    void commit() {
        if (!w) return;
        bool ok = written > 0 && std::fseek(w, 8, SEEK_SET) == 0 && std::fwrite(&written, 8, 1, w) == 1;
        ok = std::fclose(w) == 0 && ok;
        w = nullptr;
        if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0)
            std::remove(tmp.c_str());
        else
            evict();
    }

    // Keeps the folder under kCacheFolderBytes, oldest use first (a hit
    // touches its file), never the file just written.
    void evict() const {
        std::string dir = path.substr(0, path.rfind('/'));
        DIR *d = ::opendir(dir.c_str());
        if (!d) return;
        std::vector<std::pair<int64_t, std::string>> files;  // (mtime, path)
        int64_t total = 0;
        while (dirent *e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name.size() < 4 || name.compare(name.size() - 4, 4, ".f32") != 0) continue;
            std::string f = dir + "/" + name;
            struct stat st {};
            if (::stat(f.c_str(), &st) != 0) continue;
            total += st.st_size;
            if (f != path) files.emplace_back(st.st_mtim.tv_sec, f);
        }
        ::closedir(d);
        std::sort(files.begin(), files.end());
        int64_t cap = kCacheFolderBytes;
        if (const char *e = std::getenv("ACTMAX_ACT_CACHE_BYTES"))  // for tests
            if (std::atoll(e) > 0) cap = std::atoll(e);
        for (auto &[t, f] : files) {
            if (total <= cap) break;
            struct stat st {};
            if (::stat(f.c_str(), &st) == 0 && std::remove(f.c_str()) == 0) total -= st.st_size;
        }
    }

    void abandon() {
        if (!w) return;
        std::fclose(w);
        w = nullptr;
        failed = true;
        std::remove(tmp.c_str());
    }
};

// What a cached file depends on besides model and layer: the dataset's
// file (name, size, time) and how it is read.
std::string dataset_key(const std::string &name, const char *split, const char *path, int64_t window, int64_t context,
                        int64_t limit) {
    std::string k = "v1|" + name + "|" + (split ? split : "") + "|" + (path ? path : "");
    struct stat st {};
    std::string file = path ? path : "";
    if (name == "fashion-mnist" && !path) file = "";
    if (!file.empty() && ::stat(file.c_str(), &st) == 0)
        k += "|" + std::to_string(st.st_size) + "|" + std::to_string(st.st_mtim.tv_sec) + "." +
             std::to_string(st.st_mtim.tv_nsec);
    k += "|" + std::to_string(window) + "|" + std::to_string(context) + "|" + std::to_string(limit);
    return k;
}

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

// The objective on a batch of model inputs: (B) values, or (text) (B, T):
// the value with each position in turn standing in for the first index.
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

    Acts forward(const torch::Tensor &x) const {
        std::vector<torch::Tensor> outs;
        try {
            outs = tap_run(m, *plan, x);
        } catch (const std::exception &e) {
            throw Error(AM_E_MODEL,
                        "forward failed on input of shape " + shape_str(x.sizes()) + ": " + short_what(e.what(), 2));
        }
        Acts acts;
        for (size_t i = 0; i < layers.size(); i++) acts[layers[i]] = outs[i];
        return acts;
    }

    // The objective is one layer reference: its value is a function of that
    // layer's activations alone, so they can be cached.
    bool cacheable() const { return root->kind == ObjNode::kTap && layers.size() == 1; }

    // The objective on given activations of the one layer: (B) values, or
    // with pos >= 0 the value at that position.
    std::vector<float> on_layer(const torch::Tensor &layer, int64_t pos = -1) const {
        Acts acts;
        acts[layers[0]] = layer;
        EvalCtx ctx{m, &acts, {}, pos};
        auto v = with_caret(src, [&] { return eval_node(*root, -1, ctx); });
        v = v.to(torch::kCPU, torch::kFloat).expand({layer.size(0)}).contiguous();
        return std::vector<float>(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
    }

    std::vector<float> values(const torch::Tensor &x, Acts *keep = nullptr) const {
        Acts acts = forward(x);
        if (keep) *keep = acts;
        EvalCtx ctx{m, &acts, {}};
        auto v = with_caret(src, [&] { return eval_node(*root, -1, ctx); });
        v = v.to(torch::kCPU, torch::kFloat).expand({x.size(0)}).contiguous();
        return std::vector<float>(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
    }

    // (B, T) windows: the objective at every position, row-major (B, T),
    // from one forward.
    std::vector<float> positions(const torch::Tensor &x, Acts *keep = nullptr) const {
        Acts acts = forward(x);
        if (keep) *keep = acts;
        const int64_t B = x.size(0), T = x.size(1);
        std::vector<torch::Tensor> cols;
        for (int64_t t = 0; t < T; t++) {
            EvalCtx ctx{m, &acts, {}, t};
            auto v = with_caret(src, [&] { return eval_node(*root, -1, ctx); });
            cols.push_back(v.to(torch::kFloat).expand({B}));
        }
        auto all = torch::stack(cols, 1).to(torch::kCPU).contiguous();  // (B, T)
        return std::vector<float>(all.data_ptr<float>(), all.data_ptr<float>() + all.numel());
    }
};

// Every scored value: exact count, maximum and firing count; the values
// themselves up to kKeepValues, then a uniform sample (Algorithm R).
struct Dist {
    int64_t n = 0, positive = 0;
    float lo = std::numeric_limits<float>::infinity(), hi = -std::numeric_limits<float>::infinity();
    std::vector<float> kept;
    bool sampled = false;
    std::mt19937_64 rng{0x5eed};

    void add(float v) {
        n++;
        if (v > 0) positive++;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        if (kept.size() < kKeepValues) {
            kept.push_back(v);
        } else {
            sampled = true;
            uint64_t j = rng() % static_cast<uint64_t>(n);
            if (j < kKeepValues) kept[j] = v;
        }
    }
};

// numpy.percentile(values, p) (linear) of sorted values.
double percentile(const std::vector<float> &sorted, double p) {
    if (sorted.empty()) return std::numeric_limits<double>::quiet_NaN();
    double h = (static_cast<double>(sorted.size()) - 1) * p / 100.0;
    size_t i = static_cast<size_t>(std::floor(h));
    if (i + 1 >= sorted.size()) return sorted.back();
    double a = sorted[i], b = sorted[i + 1], t = h - static_cast<double>(i);
    return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

// numpy.histogram(values, bins, range=(lo, hi)) in double, counts scaled
// from a sample to the n values scored.
void histogram(const Dist &d, int bins, am_examples *ex) {
    ex->hist.assign(static_cast<size_t>(bins), 0);
    if (d.n == 0) return;
    double lo = d.lo, hi = d.hi;
    if (lo == hi) lo -= 0.5, hi += 0.5;
    ex->hlo = static_cast<float>(lo);
    ex->hhi = static_cast<float>(hi);
    std::vector<double> edges(static_cast<size_t>(bins) + 1);
    double step = (hi - lo) / bins;
    for (int i = 0; i <= bins; i++) edges[static_cast<size_t>(i)] = lo + step * i;
    edges.back() = hi;
    double norm = bins / (hi - lo);
    for (float fv : d.kept) {
        double v = fv;
        if (!(v >= lo && v <= hi)) continue;  // NaN
        auto i = static_cast<int64_t>((v - lo) * norm);
        if (i >= bins) i = bins - 1;
        if (v < edges[static_cast<size_t>(i)])
            i--;
        else if (i != bins - 1 && v >= edges[static_cast<size_t>(i) + 1])
            i++;
        ex->hist[static_cast<size_t>(i)]++;
    }
    if (d.sampled) {
        double scale = static_cast<double>(d.n) / static_cast<double>(d.kept.size());
        for (auto &c : ex->hist) c = std::llround(static_cast<double>(c) * scale);
    }
}

struct Common {
    int k = kDefaultK;
    int64_t chunk = kDefaultBatch;
    int bins = kDefaultBins;
    int per_band = kDefaultPerBand;
    std::vector<double> edges;  // band percentiles, (quantiles + 1) or empty
};

Common check_common(const am_examples_options *o) {
    if (!o) throw Error(AM_E_ARG, "options are NULL; fill them with am_examples_options_default first");
    Common c;
    c.k = o->k ? o->k : kDefaultK;
    if (c.k < 1 || c.k > kMaxK)
        throw Error(AM_E_ARG, "k must be 1.." + std::to_string(kMaxK) + ", got " + std::to_string(c.k));
    c.chunk = o->batch ? o->batch : kDefaultBatch;
    if (c.chunk < 1) throw Error(AM_E_ARG, "batch must be >= 1");
    if (o->limit < 0) throw Error(AM_E_ARG, "limit must be >= 0 (0: every item)");
    c.bins = o->bins ? o->bins : kDefaultBins;
    if (c.bins < 1 || c.bins > kMaxBins)
        throw Error(AM_E_ARG, "bins must be 1.." + std::to_string(kMaxBins) + ", got " + std::to_string(c.bins));
    if (o->quantiles < 0 || o->quantiles > 100)
        throw Error(AM_E_ARG, "quantiles (bands) must be 0..100, got " + std::to_string(o->quantiles));
    c.per_band = o->per_band ? o->per_band : kDefaultPerBand;
    if (c.per_band < 1 || c.per_band > 100)
        throw Error(AM_E_ARG, "per_band must be 1..100, got " + std::to_string(c.per_band));
    for (int i = 0; o->quantiles && i <= o->quantiles; i++) {
        double p = o->band_percentiles ? o->band_percentiles[i] : 100.0 * i / o->quantiles;
        if (!(p >= 0 && p <= 100) || (i && p <= c.edges.back()))
            throw Error(AM_E_ARG, "band_percentiles must be " + std::to_string(o->quantiles + 1) +
                                      " increasing percentiles in [0, 100], e.g. 0, 25, 50, 75, 90, 99, 100; "
                                      "element " +
                                      std::to_string(i) + " is " + std::to_string(p));
        c.edges.push_back(p);
    }
    return c;
}

// The band edges' values, and per band the positions in `cand` (sorted by
// value, ascending) of its examples: per_band spread evenly by rank over
// the candidates in [lo, hi) (the last band: [lo, hi]).
std::vector<std::vector<size_t>> pick_bands(const Common &c, const Dist &d, const std::vector<float> &cand,
                                            am_examples *ex) {
    std::vector<std::vector<size_t>> picks;
    if (c.edges.empty() || d.n == 0) return picks;
    std::vector<float> sorted = d.kept;
    std::sort(sorted.begin(), sorted.end());
    size_t nb = c.edges.size() - 1;
    for (size_t b = 0; b < nb; b++) {
        float lo = static_cast<float>(percentile(sorted, c.edges[b]));
        float hi = static_cast<float>(percentile(sorted, c.edges[b + 1]));
        ex->band_lo.push_back(lo);
        ex->band_hi.push_back(hi);
        auto first = std::lower_bound(cand.begin(), cand.end(), lo);
        auto last = b + 1 == nb ? std::upper_bound(cand.begin(), cand.end(), hi)
                                : std::lower_bound(cand.begin(), cand.end(), hi);
        size_t a = static_cast<size_t>(first - cand.begin()), n = last > first ? static_cast<size_t>(last - first) : 0;
        std::vector<size_t> pick;
        size_t want = std::min<size_t>(static_cast<size_t>(c.per_band), n);
        for (size_t j = 0; j < want; j++) pick.push_back(a + (2 * j + 1) * n / (2 * want));
        picks.push_back(std::move(pick));
    }
    return picks;
}

// Best first, ties to the lower index.
bool better(const ExItem &a, const ExItem &b) { return a.value > b.value || (a.value == b.value && a.index < b.index); }

// Top-k as a heap whose front is the worst kept.
struct TopK {
    size_t k;
    std::vector<ExItem> heap;
    bool wants(float v, int64_t index) const {
        if (heap.size() < k) return true;
        const ExItem &w = heap.front();
        return v > w.value || (v == w.value && index < w.index);
    }
    void push(ExItem &&it) {
        heap.push_back(std::move(it));
        std::push_heap(heap.begin(), heap.end(), better);
        if (heap.size() > k) {
            std::pop_heap(heap.begin(), heap.end(), better);
            heap.pop_back();
        }
    }
    std::vector<ExItem> sorted() {
        std::sort(heap.begin(), heap.end(), better);
        return std::move(heap);
    }
};

void finish(const Common &c, const Dist &d, am_examples *ex) {
    ex->scanned = d.n;
    ex->positive = d.positive;
    ex->sampled = d.sampled;
    if (d.n) ex->vmax = d.hi;
    histogram(d, c.bins, ex);
}

int progress(const am_examples_options &o, int64_t scanned, int64_t total, float best) {
    return o.progress ? o.progress(o.progress_user, scanned, total, best) : 0;
}

void image_examples(am_model *m, const am_examples_options *o, const std::string &name, am_examples *ex) {
    Common c = check_common(o);
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

    // Every item's value is kept (an image dataset is tens of thousands of
    // items): the top-k, the bands and the class means all come from it.
    int64_t total = am_dataset_size(ds.p);
    if (o->limit > 0 && o->limit < total) total = o->limit;
    const int nlabels = std::max(0, am_dataset_num_labels(ds.p));
    std::vector<double> sums(static_cast<size_t>(nlabels), 0.0);
    std::vector<int64_t> counts(static_cast<size_t>(nlabels), 0);
    std::vector<std::pair<float, int64_t>> all;
    Dist d;
    ActCache cache;
    if (sc.cacheable())
        cache.open(m, sc.layers[0], name, dataset_key(name, o->split ? o->split : "test", o->path, 0, 0, total));
    if (cache.hit() && cache.n != total) cache.data = nullptr;  // another size: scan again
    ex->from_cache = cache.hit();
    torch::NoGradGuard ng;
    while (static_cast<int64_t>(all.size()) < total) {
        am_batch b{};
        st = am_dataset_next_batch(ds.p, std::min(c.chunk, total - static_cast<int64_t>(all.size())), &b);
        if (st != AM_OK) ds.fail(st);
        if (b.count == 0) break;
        std::vector<float> v;
        if (cache.hit()) {
            std::vector<int64_t> rows{b.count};
            rows.insert(rows.end(), cache.item.begin(), cache.item.end());
            v = sc.on_layer(
                torch::from_blob(const_cast<float *>(cache.data + b.first * cache.per), rows, torch::kFloat));
        } else {
            bshape[0] = b.count;
            auto x = torch::from_blob(const_cast<float *>(b.images), bshape, torch::kFloat).to(m->device);
            Acts acts;
            v = sc.values(scale(x), cache.path.empty() ? nullptr : &acts);
            ex->forwards++;
            if (!cache.path.empty()) {
                auto t = acts.at(sc.layers[0]).to(torch::kCPU, torch::kFloat).contiguous();
                cache.begin(std::vector<int64_t>(t.sizes().begin() + 1, t.sizes().end()));
                cache.append(t.data_ptr<float>(), t.size(0));
            }
        }
        for (int64_t i = 0; i < b.count; i++) {
            float val = v[static_cast<size_t>(i)];
            d.add(val);
            all.emplace_back(val, b.first + i);
            int64_t l = b.labels ? b.labels[i] : -1;
            if (l >= 0 && l < nlabels) sums[static_cast<size_t>(l)] += val, counts[static_cast<size_t>(l)]++;
        }
        if (progress(*o, static_cast<int64_t>(all.size()), total, d.hi)) {
            ex->cancelled = true;
            break;
        }
    }
    if (!ex->cancelled && static_cast<int64_t>(all.size()) == total) cache.commit();
    finish(c, d, ex);
    for (int l = 0; l < nlabels; l++)
        ex->class_means.push_back(counts[static_cast<size_t>(l)] ? static_cast<float>(sums[static_cast<size_t>(l)] /
                                                                                      counts[static_cast<size_t>(l)])
                                                                 : std::numeric_limits<float>::quiet_NaN());

    auto fetch = [&](float value, int64_t index) {
        am_batch b{};
        int rc = am_dataset_item(ds.p, index, &b);
        if (rc != AM_OK || b.count != 1) ds.fail(rc);
        auto x = torch::from_blob(const_cast<float *>(b.images), item, torch::kFloat);
        auto v = scale.value_range(x).contiguous();
        ExItem it;
        it.index = index;
        it.value = value;
        it.image.assign(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
        it.label = b.labels ? b.labels[0] : -1;
        const char *ln = it.label >= 0 ? am_dataset_label(ds.p, static_cast<int>(it.label)) : nullptr;
        it.label_name = ln ? ln : "";
        return it;
    };
    auto by_value = [](const auto &x, const auto &y) {
        return x.first > y.first || (x.first == y.first && x.second < y.second);
    };
    size_t kk = std::min(all.size(), static_cast<size_t>(c.k));
    std::vector<std::pair<float, int64_t>> order = all;
    std::partial_sort(order.begin(), order.begin() + static_cast<long>(kk), order.end(), by_value);
    for (size_t i = 0; i < kk; i++) ex->top.push_back(fetch(order[i].first, order[i].second));

    if (!c.edges.empty()) {
        std::sort(all.begin(), all.end(), [](const auto &x, const auto &y) {
            return x.first < y.first || (x.first == y.first && x.second < y.second);
        });
        std::vector<float> cand;
        for (auto &p : all) cand.push_back(p.first);
        for (auto &pick : pick_bands(c, d, cand, ex)) {
            ex->bands.emplace_back();
            for (size_t j : pick) ex->bands.back().push_back(fetch(all[j].first, all[j].second));
        }
    }
}

// ---------------------------------------------------------------- text

// A window to score: its start in the token stream, its tokens, and the
// first of its positions that is scored.
struct Window {
    int64_t start;
    int scored;
    std::vector<int64_t> tokens;
};

// The corpus as overlapping windows: window W every W - C tokens, the first
// scoring all its positions, the others their last W - C, the last window
// ending at the stream's end; tokens are read from the streamed dataset as
// the windows need them (at most `limit` tokens when limit > 0).
struct WindowStream {
    am_dataset *ds = nullptr;
    int64_t W = 1, stride = 1, limit = 0;
    std::vector<int64_t> buf;  // tokens base..base + buf.size() of the stream
    int64_t base = 0, next_start = 0, scored_to = 0;
    int64_t bytes_read = 0, bytes_total = 0;
    bool ended = false;

    int64_t read_to() const { return base + static_cast<int64_t>(buf.size()); }

    void fill(int64_t upto) {
        while (!ended && read_to() < upto) {
            int64_t want = kReadTokens;
            if (limit > 0) want = std::min(want, limit - read_to());
            const int64_t *t = nullptr;
            int64_t n = 0;
            if (want > 0) {
                int st = am_dataset_next_tokens(ds, want, &t, &n, &bytes_read, &bytes_total);
                if (st != AM_OK) throw Error(st, std::string("corpus: ") + am_dataset_error(ds));
            }
            if (n == 0)
                ended = true;
            else
                buf.insert(buf.end(), t, t + n);
            if (limit > 0 && read_to() >= limit) ended = true;
        }
    }

    // The next window, false when every token has been scored.
    bool next(Window &w) {
        int64_t start = next_start;
        fill(start + W);
        int64_t end = read_to();
        if (end >= start + W) {
            end = start + W;
            next_start = start + stride;
        } else {  // the stream ended: one last window ending there
            if (scored_to >= end) return false;
            start = std::max<int64_t>(0, end - W);
            next_start = end;
        }
        if (start > base) {  // no later window starts before this one
            buf.erase(buf.begin(), buf.begin() + (start - base));
            base = start;
        }
        w.start = start;
        w.scored = static_cast<int>(scored_to - start);
        w.tokens.assign(buf.begin(), buf.begin() + (end - start));
        scored_to = end;
        return true;
    }

    // Tokens the whole scan will score: exact once the stream ended, else
    // estimated from the bytes read.
    int64_t total_estimate() const {
        if (limit > 0) return limit;
        if (ended || bytes_read <= 0 || bytes_total <= 0) return ended ? read_to() : 0;
        double est =
            static_cast<double>(read_to()) * static_cast<double>(bytes_total) / static_cast<double>(bytes_read);
        return std::max<int64_t>(static_cast<int64_t>(est), read_to() + 1);
    }
};

void text_examples(am_model *m, const am_examples_options *o, const std::string &name, am_examples *ex) {
    if (m->kind != "text")
        throw Error(AM_E_UNSUPPORTED, "text examples need a text model; this one is '" + m->kind + "'");
    if (m->input_shape.size() != 1) throw Error(AM_E_MODEL, "a text model's input shape must be [T] (its context)");
    Common c = check_common(o);
    const int64_t context = m->input_shape[0];
    const int64_t W = o->window ? o->window : std::min<int64_t>(kDefaultWindow, context);
    if (W < 1 || W > context)
        throw Error(AM_E_ARG, "window must be 1.." + std::to_string(context) + " (the model's context), got " +
                                  std::to_string(W));
    if (o->stride < 0 || o->stride > W)
        throw Error(AM_E_ARG, "stride must be 1.." + std::to_string(W) +
                                  " (the window), or 0 for window - context; got " + std::to_string(o->stride));
    if (o->context < 0 || o->context >= W)
        throw Error(AM_E_ARG, "context must be 0.." + std::to_string(W - 1) +
                                  " (fewer than the window's tokens), or 0 for half the window; got " +
                                  std::to_string(o->context));
    if (o->stride && o->context && o->stride != W - o->context)
        throw Error(AM_E_ARG, "stride " + std::to_string(o->stride) + " and context " + std::to_string(o->context) +
                                  " disagree: with window " + std::to_string(W) +
                                  ", stride = window - context; give one");
    const int64_t stride = o->stride ? o->stride : W - (o->context ? o->context : W / 2);
    if (!o->path) throw Error(AM_E_ARG, "path to the corpus is required (e.g. share/actmax/data/fortunes-heldout.txt)");
    Tokenizer tok;
    load_tokenizer(m, tok);
    Scorer sc;
    sc.parse(m, o->objective, "blocks.2.mlp.act[-1, 123]");
    Dataset ds;
    am_dataset_options dopt{};
    dopt.path = o->path;
    dopt.tokenizer = tok.t;
    dopt.window = 1;  // tokens are read as a stream; windows are cut here
    int st = am_dataset_open(name.c_str(), o->split ? o->split : "heldout", &dopt, &ds.p);
    if (st != AM_OK) throw Error(st, std::string("corpus: ") + am_dataset_error(ds.p));
    if (am_dataset_kind(ds.p) != AM_DATASET_TEXT)
        throw Error(AM_E_ARG, "the dataset is not text; use \"fortunes\" or \"text\"");
    ex->kind = AM_DATASET_TEXT;
    ex->shape = {W};
    ex->window = W;
    ex->context = W - stride;

    ActCache cache;
    if (sc.cacheable())
        cache.open(m, sc.layers[0], name,
                   dataset_key(name, o->split ? o->split : "heldout", o->path, W, W - stride, o->limit));
    ex->from_cache = cache.hit();
    WindowStream ws;
    ws.ds = ds.p;
    ws.W = W;
    ws.stride = stride;
    ws.limit = o->limit;
    Dist d;
    TopK top{static_cast<size_t>(c.k), {}};
    // Band candidates: a uniform sample of scored tokens, each with its window.
    std::vector<ExItem> sample;
    std::mt19937_64 rng{0xba2d};
    const bool bands = !c.edges.empty();
    torch::NoGradGuard ng;
    std::vector<Window> batch;
    bool more = true;
    while (more) {
        batch.clear();
        Window w;
        // A window shorter than W is the whole of a corpus shorter than
        // the window, so it is alone in its batch.
        while (static_cast<int64_t>(batch.size()) < c.chunk && (more = ws.next(w))) batch.push_back(std::move(w));
        if (batch.empty()) break;
        // Read as far as the next window needs, so a stream that ends there
        // is known to have ended and the total reported is exact.
        ws.fill(ws.next_start + W);
        const int64_t B = static_cast<int64_t>(batch.size()), T = static_cast<int64_t>(batch[0].tokens.size());
        std::vector<float> vals;
        if (cache.hit()) {
            // The cached rows are the scored tokens in stream order, each with
            // its natural context: every position of a window is one.
            std::vector<int64_t> rows;
            for (auto &b : batch)
                for (int64_t t = 0; t < T; t++) rows.push_back(b.start + t);
            if (rows.back() >= cache.n)
                throw Error(AM_E_INTERNAL, "activation cache " + cache.path + " is shorter than the corpus; delete it");
            std::vector<int64_t> shape{cache.n, 1};
            shape.insert(shape.end(), cache.item.begin(), cache.item.end());
            auto all = torch::from_blob(const_cast<float *>(cache.data), shape, torch::kFloat);
            vals = sc.on_layer(all.index_select(0, torch::tensor(rows, torch::kLong)), 0);
        } else {
            std::vector<int64_t> ids;
            ids.reserve(static_cast<size_t>(B * T));
            for (auto &b : batch) ids.insert(ids.end(), b.tokens.begin(), b.tokens.end());
            auto x = torch::from_blob(ids.data(), {B, T}, torch::kLong).clone().to(m->device);
            Acts acts;
            vals = sc.positions(x, cache.path.empty() ? nullptr : &acts);
            ex->forwards++;
            if (!cache.path.empty()) {
                auto t = acts.at(sc.layers[0]).to(torch::kCPU, torch::kFloat).contiguous();  // (B, T, ...)
                if (t.dim() >= 2 && t.size(0) == B && t.size(1) == T) {
                    cache.begin(std::vector<int64_t>(t.sizes().begin() + 2, t.sizes().end()));
                    int64_t per = t.numel() / (B * T);
                    for (int64_t i = 0; i < B; i++) {
                        int64_t s0 = batch[static_cast<size_t>(i)].scored;
                        cache.append(t.data_ptr<float>() + (i * T + s0) * per, T - s0);
                    }
                } else {
                    cache.abandon();  // not a (B, T, ...) layer
                }
            }
        }
        for (int64_t i = 0; i < B; i++) {
            const Window &bw = batch[static_cast<size_t>(i)];
            const float *v = vals.data() + i * T;
            int peak = bw.scored;
            for (int p = bw.scored; p < T; p++) {
                d.add(v[p]);
                if (v[p] > v[peak]) peak = p;
                if (!bands) continue;
                size_t slot = sample.size();
                if (slot >= kBandSample) {
                    slot = static_cast<size_t>(rng() % static_cast<uint64_t>(d.n));
                    if (slot >= kBandSample) continue;
                } else {
                    sample.emplace_back();
                }
                ExItem &it = sample[slot];
                it.index = bw.start;
                it.value = v[p];
                it.peak = p;
                it.scored = bw.scored;
                it.tokens = bw.tokens;
                it.acts.assign(v, v + T);
            }
            if (top.wants(v[peak], bw.start)) {
                ExItem it;
                it.index = bw.start;
                it.value = v[peak];
                it.peak = peak;
                it.scored = bw.scored;
                it.tokens = bw.tokens;
                it.acts.assign(v, v + T);
                top.push(std::move(it));
            }
        }
        if (progress(*o, d.n, std::max(ws.total_estimate(), d.n), d.hi)) {
            ex->cancelled = true;
            break;
        }
    }
    if (d.n == 0) throw Error(AM_E_ARG, std::string("the corpus ") + o->path + " holds no tokens");
    if (!ex->cancelled) cache.commit();
    finish(c, d, ex);
    ex->top = top.sorted();
    if (bands) {
        std::sort(sample.begin(), sample.end(), [](const ExItem &a, const ExItem &b) {
            return a.value < b.value || (a.value == b.value && a.index + a.peak < b.index + b.peak);
        });
        std::vector<float> cand;
        for (auto &s : sample) cand.push_back(s.value);
        for (auto &pick : pick_bands(c, d, cand, ex)) {
            ex->bands.emplace_back();
            for (size_t j : pick) ex->bands.back().push_back(sample[j]);
        }
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

void fill(const am_examples *e, const ExItem &it, am_example *out) {
    std::memset(out, 0, sizeof *out);
    out->index = it.index;
    out->value = it.value;
    out->label = it.label;
    out->label_name = it.label_name.c_str();
    if (e->kind == AM_DATASET_IMAGE) {
        out->image = it.image.data();
        for (int d = 0; d < 3; d++) out->shape[d] = e->shape[static_cast<size_t>(d)];
    } else {
        out->tokens = it.tokens.data();
        out->acts = it.acts.data();
        out->len = static_cast<int>(it.tokens.size());
        out->peak = it.peak;
        out->scored = it.scored;
    }
}

}  // namespace
}  // namespace am

extern "C" {

void am_examples_options_default(am_examples_options *o) {
    if (!o) return;
    std::memset(o, 0, sizeof *o);
    o->k = am::kDefaultK;
    o->batch = static_cast<int>(am::kDefaultBatch);
    o->bins = am::kDefaultBins;
    o->per_band = am::kDefaultPerBand;
}

int am_examples_new(am_model *m, const am_examples_options *o, am_examples **out) {
    return am::construct(out, [&](am_examples *ex) {
        am::blas_follow_threads();
        am::examples_impl(m, o, ex);
    });
}

void am_examples_free(am_examples *e) { delete e; }
const char *am_examples_error(const am_examples *e) { return e ? e->error.c_str() : "examples handle is NULL"; }
int am_examples_kind(const am_examples *e) { return e ? e->kind : AM_E_ARG; }
int64_t am_examples_scanned(const am_examples *e) { return e ? e->scanned : static_cast<int64_t>(AM_E_ARG); }
int am_examples_cancelled(const am_examples *e) { return e ? (e->cancelled ? 1 : 0) : AM_E_ARG; }
int am_examples_count(const am_examples *e) { return e ? static_cast<int>(e->top.size()) : AM_E_ARG; }
float am_examples_max(const am_examples *e) { return e ? e->vmax : std::numeric_limits<float>::quiet_NaN(); }

int am_examples_get(const am_examples *e, int i, am_example *out) {
    if (!e || !out || i < 0 || static_cast<size_t>(i) >= e->top.size()) return AM_E_ARG;
    am::fill(e, e->top[static_cast<size_t>(i)], out);
    return AM_OK;
}

int am_examples_text_window(const am_examples *e, int64_t *window, int64_t *context) {
    if (!e) return AM_E_ARG;
    if (e->kind != AM_DATASET_TEXT) return AM_E_UNSUPPORTED;
    if (window) *window = e->window;
    if (context) *context = e->context;
    return AM_OK;
}

int64_t am_examples_forwards(const am_examples *e) { return e ? (e->forwards) : static_cast<int64_t>(AM_E_ARG); }

int am_examples_histogram(const am_examples *e, const int64_t **counts, int *bins, float *lo, float *hi) {
    if (!e || e->scanned <= 0 || e->hist.empty()) return AM_E_ARG;
    if (counts) *counts = e->hist.data();
    if (bins) *bins = static_cast<int>(e->hist.size());
    if (lo) *lo = e->hlo;
    if (hi) *hi = e->hhi;
    return AM_OK;
}

int am_examples_sampled(const am_examples *e) { return e ? (e->sampled ? 1 : 0) : AM_E_ARG; }

double am_examples_firing_rate(const am_examples *e) {
    if (!e || e->scanned <= 0) return std::numeric_limits<double>::quiet_NaN();
    return static_cast<double>(e->positive) / static_cast<double>(e->scanned);
}

int am_examples_num_bands(const am_examples *e) { return e ? static_cast<int>(e->bands.size()) : AM_E_ARG; }

int am_examples_band_get(const am_examples *e, int band, int i, am_example *out, float *band_lo, float *band_hi) {
    if (!e || band < 0 || static_cast<size_t>(band) >= e->bands.size()) return AM_E_ARG;
    size_t b = static_cast<size_t>(band);
    if (band_lo) *band_lo = e->band_lo[b];
    if (band_hi) *band_hi = e->band_hi[b];
    if (!out || i < 0 || static_cast<size_t>(i) >= e->bands[b].size()) return AM_E_ARG;
    am::fill(e, e->bands[b][static_cast<size_t>(i)], out);
    return AM_OK;
}

int am_examples_class_means(const am_examples *e, const float **means, int *n) {
    if (!e) return AM_E_ARG;
    if (e->class_means.empty()) return AM_E_UNSUPPORTED;
    if (means) *means = e->class_means.data();
    if (n) *n = static_cast<int>(e->class_means.size());
    return AM_OK;
}

}  // extern "C"
