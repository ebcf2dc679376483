/* The engine (libactmax, libtorch inside) is never linked: the first magic
 * that needs it loads it with dlopen, so kernel_info and the built-in magics
 * answer without waiting for libtorch. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "paths.h"
#include "util.h"

#ifndef ACTMAX_ENGINE_LIB
#define ACTMAX_ENGINE_LIB "libactmax.so"
#endif

static void *g_engine;
static const am_api *g_api;

const mg_engine_api *mg_engine(void)
{
    return g_api;
}

/* Takes the engine's table; 0, or -1 with *err naming both API versions when
 * the library was built from another actmax.h (or is no libactmax at all). */
static int resolve(void *h, const char *where, char **err)
{
    typedef const am_api *(*get_api_fn)(uint32_t, uint32_t *);
    typedef const char *(*version_fn)(void);
    void *sym = dlsym(h, "am_get_api");
    if (!sym) {
        *err = mg_asprintf("%s has no am_get_api: it is not a libactmax of version %s or later; "
                           "rebuild the engine (ext/) from the same source as the kernel, or point "
                           "$ACTMAX_ENGINE at a matching libactmax.so",
                           where, AM_VERSION);
        return -1;
    }
    get_api_fn get_api;
    memcpy(&get_api, &sym, sizeof sym);
    uint32_t engine_api = 0;
    const am_api *api = get_api(AM_API_VERSION, &engine_api);
    if (!api || api->size < sizeof(am_api)) {
        const char *engine_version = "unknown";
        void *vsym = dlsym(h, "am_version");
        if (vsym) {
            version_fn vf;
            memcpy(&vf, &vsym, sizeof vsym);
            engine_version = vf();
        }
        *err = mg_asprintf(
            "%s is actmax %s with engine API version %u, but this kernel (actmax %s) "
            "needs engine API version %u; rebuild the engine (ext/) from the same "
            "source as the kernel, or point $ACTMAX_ENGINE at a matching libactmax.so",
            where, engine_version, (unsigned)engine_api, AM_VERSION, (unsigned)AM_API_VERSION);
        return -1;
    }
    g_api = api;
    return 0;
}

void *mg_engine_handle(void)
{
    return g_engine;
}

static void *try_open(const char *path, mg_str *tried)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        mg_str_addf(tried, "\n  %s: %s", path, e ? e : "not loadable");
    }
    return h;
}

/* A candidate path: 1 loaded, 0 not there (or not loadable: *tried says
 * why), -1 when scripts/train-background.sh is still building it (*err says
 * so and about when it will be ready: a half-linked library must not load,
 * and falling back to another engine would surprise). */
static int try_candidate(const char *path, bool must_exist, mg_str *tried, char **err)
{
    char *marker = mg_asprintf("%s.building", path);
    char *note = mg_background_note(marker);
    free(marker);
    if (note) {
        *err = mg_asprintf("the engine is not ready yet: %s. Run this cell again then", note);
        free(note);
        return -1;
    }
    if (must_exist && access(path, F_OK) != 0)
        return 0;
    g_engine = try_open(path, tried);
    return g_engine != NULL;
}

int mg_engine_load(char **err)
{
    if (g_engine)
        return 0;
    mg_str tried = MG_STR_INIT;
    /* $ACTMAX_ENGINE, then next to the executable, then the build's path. */
    char *cands[5];
    bool must_exist[5];
    int n = 0;
    const char *env = getenv("ACTMAX_ENGINE");
    if (env && env[0]) {
        cands[n] = mg_strdup(env);
        must_exist[n++] = false;
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = NULL;
    if (len > 0) {
        exe[len] = '\0';
        slash = strrchr(exe, '/');
    }
    if (slash) {
        *slash = '\0';
        const char *rel[] = {"/libactmax.so", "/ext/libactmax.so", "/../lib/libactmax.so"};
        for (size_t i = 0; i < 3; i++) {
            cands[n] = mg_asprintf("%s%s", exe, rel[i]);
            must_exist[n++] = true;
        }
    }
    cands[n] = mg_strdup(ACTMAX_ENGINE_LIB);
    must_exist[n++] = false;
    int got = 0;
    for (int i = 0; i < n && got == 0; i++)
        got = try_candidate(cands[i], must_exist[i], &tried, err);
    for (int i = 0; i < n; i++)
        free(cands[i]);
    if (got <= 0) {
        if (got == 0)
            *err = mg_asprintf("the engine library could not be loaded; tried:%s",
                               mg_str_cstr(&tried));
        mg_str_free(&tried);
        return -1;
    }
    mg_str_free(&tried);
    if (resolve(g_engine, "the engine library", err) != 0) {
        dlclose(g_engine);
        g_engine = NULL;
        return -1;
    }
    return 0;
}
