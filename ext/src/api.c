/* The engine's function table (am_get_api), its status messages and its
 * version: plain C, generated from the lists in actmax.h so that no function
 * or status is named here by hand. */
#include "actmax.h"

const char *am_strerror(int status) {
    switch (status) {
#define AM_STATUS_TEXT(name, value, text, cls) \
    case value: return text;
        AM_STATUS_MAP(AM_STATUS_TEXT)
#undef AM_STATUS_TEXT
    default: return "unknown status code";
    }
}

const char *am_status_class(int status) {
    switch (status) {
#define AM_STATUS_CLASS(name, value, text, cls) \
    case value: return cls;
        AM_STATUS_MAP(AM_STATUS_CLASS)
#undef AM_STATUS_CLASS
    default: return "EngineError";
    }
}

const char *am_version(void) { return AM_VERSION; }

static const am_api k_api = {.api_version = AM_API_VERSION,
                             .size = sizeof(am_api),
                             .version = AM_VERSION,
#define AM_API_SIZE_INIT(s) .sizeof_##s = sizeof(s),
                             AM_API_STRUCTS(AM_API_SIZE_INIT)
#undef AM_API_SIZE_INIT
#define AM_API_FUNCTION_INIT(f) .f = f,
                                 AM_API_FUNCTIONS(AM_API_FUNCTION_INIT)
#undef AM_API_FUNCTION_INIT
};

const am_api *am_get_api(uint32_t api_version, uint32_t *engine_api_version) {
    if (engine_api_version) *engine_api_version = AM_API_VERSION;
    return api_version == AM_API_VERSION ? &k_api : NULL;
}
