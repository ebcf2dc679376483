/* Runner for the kernel's C unit tests: `kernel_unit [NAME...]`. */
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

int t_failed;

static const struct {
    const char *name;
    void (*fn)(void);
} TESTS[] = {
#define T(name) {#name, test_##name},
#include "tests.def"
#undef T
};

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 2;
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {
        bool wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted = wanted || strcmp(argv[a], TESTS[i].name) == 0;
        if (!wanted)
            continue;
        t_failed = 0;
        TESTS[i].fn();
        ran++;
        printf("%s %s\n", t_failed ? "FAIL" : "ok  ", TESTS[i].name);
        failed += t_failed;
    }
    printf("%d of %d tests failed\n", failed, ran);
    return failed ? 1 : (ran ? 0 : 2);
}
