/* A minimal test harness: each test is a void function; a failed check
 * prints the expression, both values and file:line, marks the test failed
 * and returns from it. */
#ifndef ACTMAX_CHECK_H
#define ACTMAX_CHECK_H

#include <stdio.h>
#include <string.h>

extern int t_failed;

/* Prototypes of every test (defined across the test_*.c files). */
#define T(name) void test_##name(void);
#include "tests.def"
#undef T

#define CHECK(expr)                                                                             \
    do {                                                                                        \
        if (!(expr)) {                                                                          \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #expr);            \
            t_failed = 1;                                                                       \
            return;                                                                             \
        }                                                                                       \
    } while (0)

#define CHECK_INT(a, b)                                                                         \
    do {                                                                                        \
        long long a_ = (long long)(a), b_ = (long long)(b);                                     \
        if (a_ != b_) {                                                                         \
            fprintf(stderr, "%s:%d: CHECK_INT(%s, %s) failed: %lld != %lld\n", __FILE__,        \
                    __LINE__, #a, #b, a_, b_);                                                  \
            t_failed = 1;                                                                       \
            return;                                                                             \
        }                                                                                       \
    } while (0)

#define CHECK_STR(a, b)                                                                         \
    do {                                                                                        \
        const char *a_ = (a), *b_ = (b);                                                        \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                \
            fprintf(stderr, "%s:%d: CHECK_STR(%s, %s) failed:\n  got      \"%s\"\n  expected \"%s\"\n", \
                    __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");        \
            t_failed = 1;                                                                       \
            return;                                                                             \
        }                                                                                       \
    } while (0)

/* haystack contains needle */
#define CHECK_HAS(hay, needle)                                                                  \
    do {                                                                                        \
        const char *h_ = (hay), *n_ = (needle);                                                 \
        if (!h_ || !strstr(h_, n_)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK_HAS(%s, %s) failed:\n  text   \"%s\"\n  lacks  \"%s\"\n", \
                    __FILE__, __LINE__, #hay, #needle, h_ ? h_ : "(null)", n_);                 \
            t_failed = 1;                                                                       \
            return;                                                                             \
        }                                                                                       \
    } while (0)

#endif
