/* Runner for the kernel's C unit tests: `kernel_unit [NAME...]`. */
#include <sodium.h>

#include "check.h"

static const check_test TESTS[] = {
#define T(name) {#name, test_##name},
#include "tests.def"
#undef T
};

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 2;
    return check_main(TESTS, sizeof TESTS / sizeof TESTS[0], argc, argv);
}
