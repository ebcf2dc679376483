/* The runner of check.h. */
#include "check.h"

#include <stdbool.h>

int t_failed;

int check_main(const check_test *tests, size_t n, int argc, char **argv)
{
    int failed = 0, ran = 0;
    for (size_t i = 0; i < n; i++) {
        bool wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted = wanted || strcmp(argv[a], tests[i].name) == 0;
        if (!wanted)
            continue;
        t_failed = 0;
        tests[i].fn();
        ran++;
        printf("%s %s\n", t_failed ? "FAIL" : "ok  ", tests[i].name);
        failed += t_failed != 0;
    }
    if (ran == 0) {
        fprintf(stderr, "no test matches; known tests:");
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %s", tests[i].name);
        fputc('\n', stderr);
        return 2;
    }
    printf("%d of %d tests failed\n", failed, ran);
    return failed ? 1 : 0;
}
