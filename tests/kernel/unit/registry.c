/* The unit tests' registry: the magics that need nothing but the
 * interpreter, no engine magic at all, and one test magic, %probe, whose
 * prepare hook and per-interpreter state stand in for the engine's. */
#include "test_registry.h"

#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "util.h"

test_probe_state test_probe;

static int probe_prepare(char **err)
{
    test_probe.prepared++;
    if (test_probe.fail_prepare) {
        *err = mg_strdup("the probe's engine is missing");
        return -1;
    }
    return 0;
}

static void *probe_state_new(void)
{
    test_probe.states_made++;
    return mg_strdup("probe state");
}

static void probe_state_free(void *state)
{
    test_probe.states_freed++;
    free(state);
}

/* Help for the word "probed" under the cursor. */
static char *probe_inspect(void *state, const char *code, size_t len, size_t cursor)
{
    (void)len;
    (void)cursor;
    return strstr(code, "probed") ? mg_asprintf("inspected with %s", (const char *)state) : NULL;
}

static mg_status probe_run(mg_call *c)
{
    mg_sink_printf(c->out, "probe ran with %s\n", (const char *)mg_interp_state(c->interp));
    return MG_OK;
}

static const mg_magic MAGICS[] = {
    MG_CORE_MAGICS,
    {.name = "probe",
     .kinds = MG_LINE,
     .summary = "A magic with a prepare hook (test).",
     .positional = "WORD",
     .positional_doc = "anything",
     .run = probe_run,
     .prepare = probe_prepare},
    MG_DIAGNOSTIC_MAGICS,
    {0},
};

static const mg_registry REGISTRY = {
    .magics = MAGICS,
    .settings = mg_settings_table,
    .state_new = probe_state_new,
    .state_free = probe_state_free,
    .inspect = probe_inspect,
};

const mg_registry *test_registry(void)
{
    return &REGISTRY;
}
