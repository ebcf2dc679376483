/* A libactmax of another engine API version, for kernel.engine_version: its
 * am_get_api hands out no table for the kernel's version and reports its
 * own, as an engine built from another actmax.h would. It links nothing of
 * the project, so it needs no libtorch. */
#include <stddef.h>
#include <stdint.h>

#define FAKE_API_VERSION 999u

const void *am_get_api(uint32_t version, uint32_t *engine_version);
const char *am_version(void);

const void *am_get_api(uint32_t version, uint32_t *engine_version)
{
    (void)version;
    if (engine_version)
        *engine_version = FAKE_API_VERSION;
    return NULL;
}

const char *am_version(void)
{
    return "9.9.9";
}
