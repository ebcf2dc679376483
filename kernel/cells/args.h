/* Argument text of one magic line, like Python keyword arguments:
 *
 *   %maximize fc["Sneaker"] - 0.5*conv2[3, 1:4] steps=10 label='a b'  # comment
 *
 * Tokens are separated by whitespace outside quotes and brackets. Quotes
 * ('..' and "..") take backslash escapes; brackets ([], (), {}) nest and
 * must balance; '#' outside quotes and brackets starts a comment. Tokens of
 * the form IDENT=VALUE are keyword arguments; the text before the first of
 * them is the bare positional argument (kept as typed, spaces included,
 * unless it is exactly one quoted string, which is unquoted). A bare token
 * after a keyword argument is an error, as in Python. */
#ifndef ACTMAX_ARGS_H
#define ACTMAX_ARGS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct mg_tok {
    size_t start, end; /* byte span in the text */
    size_t eq;         /* offset of the '=' of IDENT=VALUE, or (size_t)-1 */
} mg_tok;

typedef struct mg_toks {
    mg_tok *v;
    size_t n, cap;
    size_t end;      /* where scanning stopped: comment start or text end */
    bool open_quote; /* text ended inside a quote (lenient scan only) */
    int depth;       /* brackets left open at the end */
} mg_toks;

/* Splits text into tokens. Strict: 0, or -1 with *err (malloc'd) naming the
 * problem and its column (1-based, in code points). Lenient (for
 * completion): never fails, stops at the first mismatched bracket, and
 * records an open quote / open brackets in the result. */
int mg_tokenize(const char *text, size_t len, bool lenient, mg_toks *out, char **err);
void mg_toks_free(mg_toks *t);

typedef struct mg_kwarg {
    char *key;
    char *value; /* unquoted and unescaped when the whole value is quoted */
    size_t col;  /* byte offset of the key in the text */
    bool quoted;
} mg_kwarg;

typedef struct mg_args {
    char *positional; /* NULL when there is none */
    size_t pos_col;
    mg_kwarg *kw;
    size_t n_kw;
} mg_args;

int mg_args_parse(const char *text, size_t len, mg_args *out, char **err);
void mg_args_free(mg_args *a);

/* Unescapes the body of a quoted string (without its quotes): \\ \' \" \n
 * \t \r \0; any other backslash pair is kept as typed, like Python. */
char *mg_unescape(const char *s, size_t n);

bool mg_is_ident_start(int c);
bool mg_is_ident_char(int c);

#endif
