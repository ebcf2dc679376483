/* The kernel's unit tests: the project's harness (tests/common/check.h)
 * and the prototype of every test listed in tests.def. */
#ifndef ACTMAX_KERNEL_CHECK_H
#define ACTMAX_KERNEL_CHECK_H

#include "../../common/check.h"

#define T(name) void test_##name(void);
#include "tests.def"
#undef T

#endif
