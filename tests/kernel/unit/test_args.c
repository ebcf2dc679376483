/* The argument parser, UTF-8 offsets and typed values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "check.h"
#include "magic.h"
#include "test_registry.h"
#include "utf8.h"

static int parse(const char *s, mg_args *a, char **err)
{
    *err = NULL;
    return mg_args_parse(s, strlen(s), a, err);
}

void test_utf8_offsets(void)
{
    const char *s = "a\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80z"; /* a é ✓ 😀 z */
    size_t n = strlen(s);
    CHECK_INT(n, 11);
    CHECK_INT(mg_utf8_cp_to_byte(s, n, 0), 0);
    CHECK_INT(mg_utf8_cp_to_byte(s, n, 1), 1);
    CHECK_INT(mg_utf8_cp_to_byte(s, n, 2), 3);
    CHECK_INT(mg_utf8_cp_to_byte(s, n, 3), 6);
    CHECK_INT(mg_utf8_cp_to_byte(s, n, 4), 10);
    CHECK_INT(mg_utf8_cp_to_byte(s, n, 5), 11);
    CHECK_INT(mg_utf8_cp_to_byte(s, n, 99), 11); /* clamped */
    CHECK_INT(mg_utf8_byte_to_cp(s, n, 0), 0);
    CHECK_INT(mg_utf8_byte_to_cp(s, n, 3), 2);
    CHECK_INT(mg_utf8_byte_to_cp(s, n, 10), 4);
    CHECK_INT(mg_utf8_byte_to_cp(s, n, 11), 5);
    CHECK_INT(mg_utf8_byte_to_cp(s, n, 2), 2); /* inside é: counts it */
    CHECK_INT(mg_utf8_byte_to_cp(s, n, 500), 5);
    for (size_t cp = 0; cp <= 5; cp++)
        CHECK_INT(mg_utf8_byte_to_cp(s, n, mg_utf8_cp_to_byte(s, n, cp)), cp);
    /* Invalid bytes still map somewhere, never past the end. */
    const char *bad = "\x80\x80x\xff";
    CHECK_INT(mg_utf8_byte_to_cp(bad, 4, 4), 2);
    CHECK_INT(mg_utf8_cp_to_byte(bad, 4, 1), 3);
}

void test_args_positional_and_keys(void)
{
    mg_args a;
    char *err;
    CHECK_INT(parse("", &a, &err), 0);
    CHECK(a.positional == NULL);
    CHECK_INT(a.n_kw, 0);
    mg_args_free(&a);

    CHECK_INT(parse("  fc[\"Sneaker\"] - 0.5*conv2[3, 1:4] steps=10 lr=0.05", &a, &err), 0);
    CHECK_STR(a.positional, "fc[\"Sneaker\"] - 0.5*conv2[3, 1:4]");
    CHECK_INT(a.pos_col, 2);
    CHECK_INT(a.n_kw, 2);
    CHECK_STR(a.kw[0].key, "steps");
    CHECK_STR(a.kw[0].value, "10");
    CHECK_STR(a.kw[1].key, "lr");
    CHECK_STR(a.kw[1].value, "0.05");
    CHECK(!a.kw[0].quoted);
    mg_args_free(&a);

    CHECK_INT(parse("steps=10", &a, &err), 0);
    CHECK(a.positional == NULL);
    CHECK_INT(a.n_kw, 1);
    mg_args_free(&a);

    /* == and <= are comparisons inside the positional, not keys. */
    CHECK_INT(parse("a==b x<=3 k=v", &a, &err), 0);
    CHECK_STR(a.positional, "a==b x<=3");
    CHECK_INT(a.n_kw, 1);
    mg_args_free(&a);

    /* A key's value may hold brackets with spaces. */
    CHECK_INT(parse("size=[64, 64] label=fc[\"a b\"]", &a, &err), 0);
    CHECK_STR(a.kw[0].value, "[64, 64]");
    CHECK_STR(a.kw[1].value, "fc[\"a b\"]");
    CHECK(!a.kw[1].quoted);
    mg_args_free(&a);

    /* `=` inside brackets is not a key. */
    CHECK_INT(parse("f[a=1] k=2", &a, &err), 0);
    CHECK_STR(a.positional, "f[a=1]");
    mg_args_free(&a);
}

void test_args_quotes_and_escapes(void)
{
    mg_args a;
    char *err;
    CHECK_INT(
        parse("label='a b' path=\"c:\\\\dir\\\\x\" q='it\\'s' n=\"line\\nnext\\tTab\"", &a, &err),
        0);
    CHECK_INT(a.n_kw, 4);
    CHECK_STR(a.kw[0].value, "a b");
    CHECK(a.kw[0].quoted);
    CHECK_STR(a.kw[1].value, "c:\\dir\\x");
    CHECK_STR(a.kw[2].value, "it's");
    CHECK_STR(a.kw[3].value, "line\nnext\tTab");
    mg_args_free(&a);

    /* Unknown escapes stay as typed, like Python. */
    CHECK_INT(parse("p='\\d+' e=\"\"", &a, &err), 0);
    CHECK_STR(a.kw[0].value, "\\d+");
    CHECK_STR(a.kw[1].value, "");
    mg_args_free(&a);

    /* A quoted positional alone is unquoted; inside an expression it is kept. */
    CHECK_INT(parse("\"my model.pt\" k=1", &a, &err), 0);
    CHECK_STR(a.positional, "my model.pt");
    mg_args_free(&a);
    CHECK_INT(parse("\"a\" + \"b\"", &a, &err), 0);
    CHECK_STR(a.positional, "\"a\" + \"b\"");
    mg_args_free(&a);

    /* Quotes hide spaces, '#', brackets and '=' */
    CHECK_INT(parse("t='# [not] a=comment'", &a, &err), 0);
    CHECK_STR(a.kw[0].value, "# [not] a=comment");
    mg_args_free(&a);
}

void test_args_utf8(void)
{
    mg_args a;
    char *err;
    CHECK_INT(parse("fc[\"Säcke ✓\"] label='日本 語' x=é", &a, &err), 0);
    CHECK_STR(a.positional, "fc[\"Säcke ✓\"]");
    CHECK_STR(a.kw[0].value, "日本 語");
    CHECK_STR(a.kw[1].value, "é");
    mg_args_free(&a);
    /* Columns in errors count code points, not bytes. */
    CHECK_INT(parse("é✓ x='oops", &a, &err), -1);
    CHECK_HAS(err, "column 6");
    free(err);
}

void test_args_brackets_and_comments(void)
{
    mg_args a;
    char *err;
    CHECK_INT(parse("conv[1, (2), {3}] k=v  # a comment with k=v and 'quote", &a, &err), 0);
    CHECK_STR(a.positional, "conv[1, (2), {3}]");
    CHECK_INT(a.n_kw, 1);
    CHECK_STR(a.kw[0].value, "v");
    mg_args_free(&a);
    CHECK_INT(parse("# only a comment", &a, &err), 0);
    CHECK(a.positional == NULL);
    CHECK_INT(a.n_kw, 0);
    mg_args_free(&a);
    CHECK_INT(parse("a[\"#\"]#c", &a, &err), 0);
    CHECK_STR(a.positional, "a[\"#\"]");
    mg_args_free(&a);
    CHECK_INT(parse("k=v#c", &a, &err), 0);
    CHECK_STR(a.kw[0].value, "v");
    mg_args_free(&a);
}

void test_args_bad_input(void)
{
    mg_args a;
    char *err;
    CHECK_INT(parse("x='abc", &a, &err), -1);
    CHECK_HAS(err, "unterminated string starting at column 3");
    free(err);
    CHECK_INT(parse("f[1, 2", &a, &err), -1);
    CHECK_HAS(err, "'[' at column 2 is never closed");
    free(err);
    CHECK_INT(parse("f[1)", &a, &err), -1);
    CHECK_HAS(err, "')' at column 4 closes '[' from column 2");
    free(err);
    CHECK_INT(parse("f]", &a, &err), -1);
    CHECK_HAS(err, "unmatched ']' at column 2");
    free(err);
    CHECK_INT(parse("k=1 bare", &a, &err), -1);
    CHECK_HAS(err, "'bare' at column 5");
    free(err);
    CHECK_INT(parse("k=1 k=2", &a, &err), -1);
    CHECK_HAS(err, "key 'k' given twice");
    free(err);
    CHECK_INT(parse("k= 3", &a, &err), -1);
    CHECK_HAS(err, "'k=' at column 1 has no value");
    free(err);
    /* Deep nesting is refused, not overflowed. */
    char deep[200];
    memset(deep, '[', 100);
    deep[100] = '\0';
    CHECK_INT(parse(deep, &a, &err), -1);
    CHECK_HAS(err, "nested deeper");
    free(err);
    /* Lenient scanning (completion) never fails. */
    mg_toks t;
    CHECK_INT(mg_tokenize("x='abc", 6, true, &t, &err), 0);
    CHECK(t.open_quote);
    mg_toks_free(&t);
    CHECK_INT(mg_tokenize(deep, 100, true, &t, &err), 0);
    mg_toks_free(&t);
}

void test_values_typed(void)
{
    const mg_key steps = MG_KEY_INT("steps", "256", 1, 100000, "steps");
    const mg_key lr = MG_KEY_FLOAT("lr", "0.05", 0, INFINITY, "rate");
    const mg_key flag = MG_KEY_BOOL("flag", "false", "flag");
    const mg_key dev = MG_KEY_ENUM("device", "auto", "auto|cpu|cuda", "device");
    mg_value v = {0};
    char *err = NULL;
    CHECK_INT(mg_value_parse(&steps, "12", &v, &err), 0);
    CHECK_INT(v.i, 12);
    CHECK_INT(mg_value_parse(&steps, "0", &v, &err), -1);
    CHECK_HAS(err, "steps=0 is out of range: expected an integer from 1 to 100000");
    free(err);
    CHECK_INT(mg_value_parse(&steps, "1.5", &v, &err), -1);
    CHECK_HAS(err, "steps=1.5 is not valid");
    free(err);
    CHECK_INT(mg_value_parse(&steps, "99999999999999999999999", &v, &err), -1);
    free(err);
    CHECK_INT(mg_value_parse(&lr, "1e-3", &v, &err), 0);
    CHECK(fabs(v.f - 1e-3) < 1e-12);
    CHECK_INT(mg_value_parse(&lr, "-1", &v, &err), -1);
    CHECK_HAS(err, "expected a number >= 0");
    free(err);
    CHECK_INT(mg_value_parse(&lr, "nan", &v, &err), -1);
    free(err);
    CHECK_INT(mg_value_parse(&flag, "Yes", &v, &err), 0);
    CHECK(v.b);
    CHECK_INT(mg_value_parse(&flag, "0", &v, &err), 0);
    CHECK(!v.b);
    CHECK_INT(mg_value_parse(&flag, "maybe", &v, &err), -1);
    CHECK_HAS(err, "expected true or false");
    free(err);
    CHECK_INT(mg_value_parse(&dev, "CPU", &v, &err), 0);
    CHECK_STR(v.s, "cpu");
    CHECK_INT(v.e, 1);
    CHECK_INT(mg_value_parse(&dev, "cdua", &v, &err), -1);
    CHECK_HAS(err,
              "device=cdua is not valid: expected one of auto, cpu, cuda (did you mean cuda?)");
    free(err);
    char *s = mg_value_format(&dev, &v);
    CHECK_STR(s, "cpu");
    free(s);
    mg_value_clear(&v);
}

void test_registry_check(void)
{
    char *err = NULL;
    int rc = mg_registry_check(test_registry(), &err);
    if (rc != 0)
        fprintf(stderr, "registry: %s\n", err);
    CHECK_INT(rc, 0);
    CHECK(mg_magic_find(test_registry(), "lsmagic", MG_LINE) != NULL);
    CHECK(mg_magic_find(test_registry(), "echo", MG_CELL) != NULL);
    CHECK(mg_magic_find(test_registry(), "lsmagic", MG_CELL) == NULL);
}
