/* The one harness of the project's C unit tests (libuv's style): each test
 * is a void function in a list; a failed check prints the expression, both
 * values and file:line, marks the test failed and returns from it; the
 * runner (check.c) runs the list, or the tests named on its command line,
 * and its exit status carries the verdict. */
#ifndef ACTMAX_CHECK_H
#define ACTMAX_CHECK_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Set by a failed check; the runner clears it before each test. */
extern int t_failed;

typedef struct check_test {
    const char *name;
    void (*fn)(void);
} check_test;

/* Runs tests (all, or those named in argv[1..]); prints "ok"/"FAIL" and the
 * name of each, and a summary. 0 when all passed, 1 when one failed, 2 when
 * no test matched the names given. */
int check_main(const check_test *tests, size_t n, int argc, char **argv);

/* Fails the test with a message (printf arguments). */
#define CHECK_FAIL(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        t_failed = 1;                                                                              \
        return;                                                                                    \
    } while (0)

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (!(expr))                                                                               \
            CHECK_FAIL("CHECK(%s) failed", #expr);                                                 \
    } while (0)

/* a == b as integers */
#define CHECK_INT(a, b) CHECK_CMP(a, ==, b)

/* a op b as integers, e.g. CHECK_CMP(n, >=, 3) */
#define CHECK_CMP(a, op, b)                                                                        \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (!(a_ op b_))                                                                           \
            CHECK_FAIL("CHECK(%s %s %s) failed: %lld vs %lld", #a, #op, #b, a_, b_);               \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            CHECK_FAIL("CHECK_STR(%s, %s) failed:\n  got      \"%s\"\n  expected \"%s\"", #a, #b,  \
                       a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                    \
    } while (0)

/* hay contains needle */
#define CHECK_HAS(hay, needle)                                                                     \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            CHECK_FAIL("CHECK_HAS(%s, %s) failed:\n  text   \"%s\"\n  lacks  \"%s\"", #hay,        \
                       #needle, h_ ? h_ : "(null)", n_);                                           \
    } while (0)

#endif
