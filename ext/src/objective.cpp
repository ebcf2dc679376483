// objective.cpp — recursive-descent parser for the objective language.
// Kept free of libtorch so it compiles in a blink and is testable alone.
#include "objective.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "actmax.h"
#include "objective_py.h"

namespace am {

namespace {

// Bounds that keep the parse tree shallow: the parser, the evaluator, the
// tree's destructor and the walks over it recurse, and an objective of
// 10,000 signs or 100,000 terms would overflow the stack. Far above what a
// person writes (a slice sums many units in one term).
constexpr int kMaxNesting = 64;     // parentheses and unary signs, one inside the other
constexpr int kMaxOperators = 512;  // + - * / in the whole objective

struct Parser {
    const std::string &s;
    size_t p = 0;
    int depth = 0;
    int operators = 0;

    // One level of nesting for the lifetime of the object.
    struct Nest {
        Parser &ps;
        Nest(Parser &parser, int column) : ps(parser) {
            if (++ps.depth > kMaxNesting)
                throw ObjectiveError(column, "nested more than " + std::to_string(kMaxNesting) +
                                                 " deep (parentheses and signs); write it flatter");
        }
        ~Nest() { ps.depth--; }
        Nest(const Nest &) = delete;
        Nest &operator=(const Nest &) = delete;
    };
    void count_operator(int column) {
        if (++operators > kMaxOperators)
            throw ObjectiveError(column, "more than " + std::to_string(kMaxOperators) +
                                             " operators; sum units with a slice instead, e.g. conv2[0:64]");
    }

    explicit Parser(const std::string &src) : s(src) {}

    void skip() {
        while (p < s.size() && std::isspace(static_cast<unsigned char>(s[p]))) p++;
    }
    int col() const { return static_cast<int>(p); }
    bool at_end() {
        skip();
        return p >= s.size();
    }
    bool peek(char c) {
        skip();
        return p < s.size() && s[p] == c;
    }
    bool accept(char c) {
        if (peek(c)) {
            p++;
            return true;
        }
        return false;
    }
    [[noreturn]] void fail(const std::string &expected) {
        skip();
        std::string found = p < s.size() ? std::string("'") + s[p] + "'" : "end of input";
        throw ObjectiveError(col(), "expected " + expected + ", found " + found);
    }
    void expect(char c, const std::string &what) {
        if (!accept(c)) fail(what);
    }

    static bool layer_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
    static bool layer_char(char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '#' || c == ':';
    }

    bool number_ahead() {
        skip();
        if (p >= s.size()) return false;
        char c = s[p];
        return std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '.' && p + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[p + 1])));
    }

    double number() {
        skip();
        const char *begin = s.c_str() + p;
        char *end = nullptr;
        double v = std::strtod(begin, &end);
        if (end == begin) fail("a number");
        if (!std::isfinite(v))
            throw ObjectiveError(col(), "the number " + std::string(begin, static_cast<size_t>(end - begin)) +
                                            " is out of range (the largest is about 1.8e308)");
        p += static_cast<size_t>(end - begin);
        return v;
    }

    // A signed integer inside brackets.
    bool integer(int64_t *v) {
        skip();
        size_t q = p;
        bool neg = false;
        if (q < s.size() && (s[q] == '-' || s[q] == '+')) {
            neg = s[q] == '-';
            q++;
        }
        while (q < s.size() && std::isspace(static_cast<unsigned char>(s[q]))) q++;
        if (q >= s.size() || !std::isdigit(static_cast<unsigned char>(s[q]))) return false;
        int64_t x = 0;
        while (q < s.size() && std::isdigit(static_cast<unsigned char>(s[q]))) {
            x = x * 10 + (s[q] - '0');
            if (x > (int64_t(1) << 40)) throw ObjectiveError(static_cast<int>(p), "index too large");
            q++;
        }
        if (q < s.size() && (s[q] == '.' || s[q] == 'e' || s[q] == 'E'))
            throw ObjectiveError(static_cast<int>(q), "expected an integer index, not a fractional number");
        p = q;
        *v = neg ? -x : x;
        return true;
    }

    std::string layer_name() {
        skip();
        if (p >= s.size() || !layer_start(s[p])) fail("a layer name (like layer3.1.conv2)");
        size_t b = p;
        while (p < s.size() && layer_char(s[p])) p++;
        return s.substr(b, p - b);
    }

    ObjIndex index_item() {
        ObjIndex ix;
        skip();
        ix.column = col();
        if (peek('"') || peek('\'')) {
            char q = s[p++];
            size_t b = p;
            while (p < s.size() && s[p] != q) p++;
            if (p >= s.size())
                throw ObjectiveError(ix.column, std::string("unterminated label string, expected a closing ") + q);
            ix.kind = ObjIndex::kLabel;
            ix.label = s.substr(b, p - b);
            p++;
            ix.end_column = col();
            return ix;
        }
        int64_t v = 0;
        bool have_first = integer(&v);
        if (!peek(':')) {
            if (!have_first) fail("an integer, a slice like 2:5 or ':', or a label in quotes");
            ix.kind = ObjIndex::kInt;
            ix.value = v;
            ix.end_column = col();
            return ix;
        }
        ix.kind = ObjIndex::kSlice;
        if (have_first) {
            ix.has_start = true;
            ix.start = v;
        }
        accept(':');
        if (integer(&v)) {
            ix.has_stop = true;
            ix.stop = v;
        }
        if (accept(':')) {
            int step_col = col();
            if (integer(&v)) {
                if (v <= 0) throw ObjectiveError(step_col, "slice step must be positive");
                ix.step = v;
            }
        }
        ix.end_column = col();
        return ix;
    }

    // '[' index (',' index)* ']' after a layer name, when written.
    void indices(ObjNode &n) {
        if (!accept('[')) return;
        n.indexed = true;
        if (peek(']')) fail("an index inside the brackets");
        n.index.push_back(index_item());
        while (accept(',')) n.index.push_back(index_item());
        expect(']', "',' or ']' after an index");
    }

    // A number with an optional sign (the vector of direction()).
    double signed_number() {
        skip();
        bool neg = false;
        if (p < s.size() && (s[p] == '-' || s[p] == '+')) {
            neg = s[p] == '-';
            p++;
        }
        if (!number_ahead()) fail("a number");
        double v = number();
        return neg ? -v : v;
    }

    // direction(LAYER[...], VECTOR [, cossim_pow=NUMBER]) after "direction(".
    void direction(ObjNode &n) {
        n.kind = ObjNode::kDirection;
        n.layer = layer_name();
        indices(n);
        expect(',', "',' and the direction (a list [v0, v1, ...] or a .npy/.pt file) after the layer");
        skip();
        n.vec_column = col();
        if (accept('[')) {
            if (peek(']')) fail("a number in the direction's list");
            n.vec.push_back(signed_number());
            while (accept(',')) n.vec.push_back(signed_number());
            expect(']', "',' or ']' in the direction's list");
        } else if (peek('"') || peek('\'')) {
            char q = s[p++];
            size_t b = p;
            while (p < s.size() && s[p] != q) p++;
            if (p >= s.size())
                throw ObjectiveError(n.vec_column, std::string("unterminated file name, expected a closing ") + q);
            n.vec_path = s.substr(b, p - b);
            p++;
        } else {
            size_t b = p;
            while (p < s.size() && s[p] != ',' && s[p] != ')' && !std::isspace(static_cast<unsigned char>(s[p]))) p++;
            n.vec_path = s.substr(b, p - b);
        }
        if (n.vec.empty() && n.vec_path.empty()) fail("the direction: a list [v0, v1, ...] or a .npy/.pt file");
        if (accept(',')) {
            skip();
            int kc = col();
            std::string key = layer_start(p < s.size() ? s[p] : '\0') ? layer_name() : "";
            if (key != "cossim_pow") {
                p = static_cast<size_t>(kc);
                fail("cossim_pow=NUMBER (the only option of direction())");
            }
            expect('=', "'=' after cossim_pow");
            skip();
            int vc = col();
            n.cossim_pow = signed_number();
            if (n.cossim_pow < 0) throw ObjectiveError(vc, "cossim_pow must be >= 0 (Lucid uses 0 to 4)");
        }
        expect(')', "')' to close direction(...)");
    }

    std::unique_ptr<ObjNode> primary() {
        skip();
        auto n = std::make_unique<ObjNode>();
        n->column = col();
        if (number_ahead()) {
            n->kind = ObjNode::kNum;
            n->num = number();
            return n;
        }
        if (accept('(')) {
            Nest nest(*this, n->column);
            auto e = expr();
            expect(')', "')' to close the parenthesis");
            return e;
        }
        if (p >= s.size() || !layer_start(s[p]))
            fail("a layer name, a number, '(', diversity(layer) or direction(layer, vector)");
        std::string name = layer_name();
        if (name == "direction" && peek('(')) {
            accept('(');
            direction(*n);
            return n;
        }
        if (name == "diversity" && peek('(')) {
            accept('(');
            n->kind = ObjNode::kDiversity;
            n->layer = layer_name();
            expect(')', "')' after the layer of diversity(...)");
            return n;
        }
        n->kind = ObjNode::kTap;
        n->layer = name;
        indices(*n);
        return n;
    }

    std::unique_ptr<ObjNode> unary() {
        skip();
        int c = col();
        if (accept('-')) {
            Nest nest(*this, c);
            auto n = std::make_unique<ObjNode>();
            n->kind = ObjNode::kNeg;
            n->column = c;
            n->a = unary();
            return n;
        }
        if (accept('+')) {
            Nest nest(*this, c);
            return unary();
        }
        return primary();
    }

    std::unique_ptr<ObjNode> term() {
        auto left = unary();
        for (;;) {
            skip();
            int c = col();
            ObjNode::Kind k;
            if (accept('*'))
                k = ObjNode::kMul;
            else if (accept('/'))
                k = ObjNode::kDiv;
            else
                return left;
            count_operator(c);
            auto right = unary();
            // Products of two layer terms are not linear combinations; the
            // language only scales terms, as Lucid's objective algebra does.
            if (k == ObjNode::kMul && !objective_is_constant(*left) && !objective_is_constant(*right))
                throw ObjectiveError(c,
                                     "'*' needs a number on one side (terms can only be scaled, e.g. 0.5*layer3[17])");
            if (k == ObjNode::kDiv && !objective_is_constant(*right))
                throw ObjectiveError(c, "'/' needs a number on the right (e.g. layer3[17]/2)");
            auto n = std::make_unique<ObjNode>();
            n->kind = k;
            n->column = c;
            n->a = std::move(left);
            n->b = std::move(right);
            left = std::move(n);
        }
    }

    std::unique_ptr<ObjNode> expr() {
        auto left = term();
        for (;;) {
            skip();
            int c = col();
            ObjNode::Kind k;
            if (accept('+'))
                k = ObjNode::kAdd;
            else if (accept('-'))
                k = ObjNode::kSub;
            else
                return left;
            count_operator(c);
            auto n = std::make_unique<ObjNode>();
            n->kind = k;
            n->column = c;
            n->a = std::move(left);
            n->b = term();
            left = std::move(n);
        }
    }
};

}  // namespace

std::unique_ptr<ObjNode> parse_objective(const std::string &src) {
    Parser ps(src);
    if (ps.at_end()) throw ObjectiveError(0, "empty objective; expected e.g. layer3[42] or fc[\"Sneaker\"]");
    auto n = ps.expr();
    if (!ps.at_end()) ps.fail("an operator (+ - * /) or end of objective");
    if (objective_is_constant(*n)) throw ObjectiveError(0, "the objective names no layer; expected e.g. layer3[42]");
    return n;
}

bool objective_is_constant(const ObjNode &n) {
    if (n.kind == ObjNode::kTap || n.kind == ObjNode::kDiversity || n.kind == ObjNode::kDirection) return false;
    if (n.a && !objective_is_constant(*n.a)) return false;
    if (n.b && !objective_is_constant(*n.b)) return false;
    return true;
}

void objective_layers(const ObjNode &n, std::vector<std::string> &out) {
    if (n.kind == ObjNode::kTap || n.kind == ObjNode::kDiversity || n.kind == ObjNode::kDirection) {
        if (std::find(out.begin(), out.end(), n.layer) == out.end()) out.push_back(n.layer);
    }
    if (n.a) objective_layers(*n.a, out);
    if (n.b) objective_layers(*n.b, out);
}

void objective_slices(const ObjNode &n, std::vector<const ObjIndex *> &out) {
    if (n.kind == ObjNode::kTap || n.kind == ObjNode::kDirection)
        for (const auto &ix : n.index)
            if (ix.kind == ObjIndex::kSlice) out.push_back(&ix);
    if (n.a) objective_slices(*n.a, out);
    if (n.b) objective_slices(*n.b, out);
}

std::string objective_format_error(const std::string &src, int column, const std::string &msg) {
    if (column < 0) column = 0;
    if (static_cast<size_t>(column) > src.size()) column = static_cast<int>(src.size());
    // A long objective is shown around the column only: an error is one
    // screen line, not the whole text again.
    constexpr size_t kSide = 40;
    size_t col = static_cast<size_t>(column);
    size_t from = col > kSide ? col - kSide : 0;
    size_t to = std::min(src.size(), col + kSide);
    // Whole UTF-8 characters only: move the cuts off continuation bytes.
    while (from > 0 && (static_cast<unsigned char>(src[from]) & 0xC0) == 0x80) from--;
    while (to < src.size() && (static_cast<unsigned char>(src[to]) & 0xC0) == 0x80) to++;
    std::string shown = (from > 0 ? "..." : "") + src.substr(from, to - from) + (to < src.size() ? "..." : "");
    size_t caret = col - from + (from > 0 ? 3 : 0);
    return msg + " at column " + std::to_string(column + 1) + "\n  " + shown + "\n  " + std::string(caret, ' ') + "^";
}

}  // namespace am

// ============================================================ as Python

namespace am {
namespace {

// The shortest decimal that reads back as v.
std::string py_number(double v) {
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        std::snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    std::string s = buf;
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // a float, as the engine computes
    return s;
}

struct PyWriter {
    const char *const *labels;
    int n_labels;
    std::vector<std::string> layers;

    std::string indices(const ObjNode &n) {
        if (!n.indexed) return "";
        std::string s = "[";
        for (size_t i = 0; i < n.index.size(); i++) {
            const ObjIndex &ix = n.index[i];
            if (i) s += ", ";
            if (ix.kind == ObjIndex::kInt) {
                s += std::to_string(ix.value);
            } else if (ix.kind == ObjIndex::kLabel) {
                int found = -1;
                for (int k = 0; k < n_labels && found < 0; k++)
                    if (labels[k] && ix.label == labels[k]) found = k;
                if (found < 0) throw ObjectiveError(ix.column, "unknown label \"" + ix.label + "\"");
                s += std::to_string(found);
            } else {
                if (ix.has_start) s += std::to_string(ix.start);
                s += ":";
                if (ix.has_stop) s += std::to_string(ix.stop);
                if (ix.step != 1) s += ":" + std::to_string(ix.step);
            }
        }
        return s + "]";
    }

    std::string tap(const ObjNode &n) {
        if (std::find(layers.begin(), layers.end(), n.layer) == layers.end()) layers.push_back(n.layer);
        return "A[\"" + n.layer + "\"]";
    }

    // Binding strength: sums 1, products 2, signs 3, the rest 4.
    static int prec(const ObjNode &n) {
        switch (n.kind) {
        case ObjNode::kAdd:
        case ObjNode::kSub: return 1;
        case ObjNode::kMul:
        case ObjNode::kDiv: return 2;
        case ObjNode::kNeg: return 3;
        default: return 4;
        }
    }

    // Parentheses wherever Python would group otherwise, and on a right
    // operand of equal strength, so the order of evaluation is the engine's.
    std::string sub(const ObjNode &n, int need) {
        std::string e = write(n);
        return prec(n) < need ? "(" + e + ")" : e;
    }

    std::string write(const ObjNode &n) {
        switch (n.kind) {
        case ObjNode::kNum: return py_number(n.num);
        case ObjNode::kTap: return tap(n) + "[b]" + indices(n) + ".mean()";
        case ObjNode::kDiversity: return "diversity(" + tap(n) + ")";
        case ObjNode::kDirection: {
            std::string v;
            if (!n.vec_path.empty()) {
                char full[4096];
                std::string path = realpath(n.vec_path.c_str(), full) ? std::string(full) : n.vec_path;
                std::string q;
                for (char c : path) q += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
                v = "load_vector(\"" + q + "\")";
            } else {
                v = "torch.tensor([";
                for (size_t i = 0; i < n.vec.size(); i++) v += (i ? ", " : "") + py_number(n.vec[i]);
                v += "], dtype=torch.float64)";
            }
            std::string s = "direction(" + tap(n) + "[b]" + indices(n) + ", " + v;
            if (n.cossim_pow != 0) s += ", " + py_number(n.cossim_pow);
            return s + ")";
        }
        case ObjNode::kNeg: return "-" + sub(*n.a, 3);
        default: break;
        }
        const int p = prec(n);
        const char *op = n.kind == ObjNode::kAdd   ? " + "
                         : n.kind == ObjNode::kSub ? " - "
                         : n.kind == ObjNode::kMul ? " * "
                                                   : " / ";
        return sub(*n.a, p) + op + sub(*n.b, p + 1);
    }
};

char *dup_c(const std::string &s) {
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (p) std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
}

}  // namespace

}  // namespace am

extern "C" int am__objective_python(const char *src, const char *const *labels, int n_labels, char **expr,
                                    char **layers, char *err, size_t n) {
    *expr = *layers = nullptr;
    std::string text = src ? src : "";
    try {
        auto root = am::parse_objective(text);
        am::PyWriter w{labels, n_labels, {}};
        std::string e = w.write(*root), ls;
        for (const auto &l : w.layers) ls += l + "\n";
        *expr = am::dup_c(e);
        *layers = am::dup_c(ls);
        if (!*expr || !*layers) {
            std::free(*expr);
            std::free(*layers);
            *expr = *layers = nullptr;
            if (err && n) std::snprintf(err, n, "out of memory writing the objective");
            return AM_E_NOMEM;
        }
        return 0;
    } catch (const am::ObjectiveError &e) {
        if (err && n) std::snprintf(err, n, "%s", am::objective_format_error(text, e.column, e.what()).c_str());
        return AM_E_OBJECTIVE;
    }
}
