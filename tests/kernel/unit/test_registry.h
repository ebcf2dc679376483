/* The registry the interpreter's unit tests run over (registry.c). */
#ifndef ACTMAX_TEST_REGISTRY_H
#define ACTMAX_TEST_REGISTRY_H

#include <stdbool.h>

#include "magic.h"

const mg_registry *test_registry(void);

/* What %probe's hooks saw. */
typedef struct test_probe_state {
    bool fail_prepare; /* the prepare hook fails */
    int prepared;      /* prepare calls */
    int states_made, states_freed;
} test_probe_state;
extern test_probe_state test_probe;

#endif
