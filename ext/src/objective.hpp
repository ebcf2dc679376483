// objective.hpp — the objective language: parse tree and parser (no libtorch).
//
// Grammar (PyTorch indexing on a layer's output, batch dimension left out):
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '/') unary)*       one side of '*' must be a number
//   unary   := ('-' | '+') unary | primary
//   primary := NUMBER | '(' expr ')' | 'diversity' '(' LAYER ')'
//            | LAYER ('[' index (',' index)* ']')?
//            | 'direction' '(' LAYER ('[' index (',' index)* ']')? ',' VECTOR
//                          (',' 'cossim_pow' '=' NUMBER)? ')'
//   index   := INT | STRING | [INT] ':' [INT] (':' [INT])?
//   VECTOR  := '[' NUMBER (',' NUMBER)* ']' | STRING | PATH     (a .npy or .pt file)
//   LAYER   := [A-Za-z_][A-Za-z0-9_.#:]*
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace am {

// A failure that points at a column of the source text (0-based).
struct ObjectiveError : std::runtime_error {
    int column;
    ObjectiveError(int col, const std::string &msg) : std::runtime_error(msg), column(col) {}
};

struct ObjIndex {
    enum Kind { kInt, kSlice, kLabel } kind = kInt;
    int64_t value = 0;  // kInt
    bool has_start = false, has_stop = false;
    int64_t start = 0, stop = 0, step = 1;  // kSlice
    std::string label;                      // kLabel
    int column = 0;
    int end_column = 0;  // one past the index's last character
};

struct ObjNode {
    enum Kind { kNum, kTap, kDiversity, kDirection, kNeg, kAdd, kSub, kMul, kDiv } kind = kNum;
    double num = 0;               // kNum
    std::string layer;            // kTap, kDiversity, kDirection
    std::vector<ObjIndex> index;  // kTap, kDirection
    bool indexed = false;         // kTap, kDirection: brackets were written
    // kDirection: the vector, written out or read from vec_path (a .npy or
    // .pt file, read when the objective is prepared for evaluation), and
    // Lucid's cosine power (0: the plain dot product).
    std::vector<double> vec;
    std::string vec_path;
    int vec_column = 0;
    double cossim_pow = 0;
    int column = 0;
    std::unique_ptr<ObjNode> a, b;  // operands
};

// Parses src; throws ObjectiveError on a syntax error.
std::unique_ptr<ObjNode> parse_objective(const std::string &src);

// True when the subtree holds no layer reference.
bool objective_is_constant(const ObjNode &n);

// Appends every layer named in the subtree (duplicates removed, in order).
void objective_layers(const ObjNode &n, std::vector<std::string> &out);

// Every layer index of the subtree that is a slice (kTap and kDirection).
void objective_slices(const ObjNode &n, std::vector<const ObjIndex *> &out);

// "message\n  src\n  ^ (column c)" with the caret under the offending column.
std::string objective_format_error(const std::string &src, int column, const std::string &msg);

}  // namespace am
