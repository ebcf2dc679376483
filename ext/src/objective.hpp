// objective.hpp — the objective language: parse tree and parser (no libtorch).
//
// Grammar (PyTorch indexing on a layer's output, batch dimension left out):
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '/') unary)*       one side of '*' must be a number
//   unary   := ('-' | '+') unary | primary
//   primary := NUMBER | '(' expr ')' | 'diversity' '(' LAYER ')'
//            | LAYER ('[' index (',' index)* ']')?
//   index   := INT | STRING | [INT] ':' [INT] (':' [INT])?
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
};

struct ObjNode {
    enum Kind { kNum, kTap, kDiversity, kNeg, kAdd, kSub, kMul, kDiv } kind = kNum;
    double num = 0;               // kNum
    std::string layer;            // kTap, kDiversity
    std::vector<ObjIndex> index;  // kTap
    bool indexed = false;         // kTap: brackets were written
    int column = 0;
    std::unique_ptr<ObjNode> a, b;  // operands
};

// Parses src; throws ObjectiveError on a syntax error.
std::unique_ptr<ObjNode> parse_objective(const std::string &src);

// True when the subtree holds no layer reference.
bool objective_is_constant(const ObjNode &n);

// Appends every layer named in the subtree (duplicates removed, in order).
void objective_layers(const ObjNode &n, std::vector<std::string> &out);

// "message\n  src\n  ^ (column c)" with the caret under the offending column.
std::string objective_format_error(const std::string &src, int column, const std::string &msg);

}  // namespace am
