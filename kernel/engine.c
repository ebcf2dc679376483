/* The engine (libactmax, libtorch inside) is never linked: the first magic
 * that needs it loads it with dlopen, so kernel_info and the built-in magics
 * answer without waiting for libtorch. */
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_api.h"
#include "magic.h"
#include "util.h"

#ifndef ACTMAX_ENGINE_LIB
#define ACTMAX_ENGINE_LIB "libactmax.so"
#endif

static void *g_engine;
static mg_engine_api g_api;
static int g_api_ok;

const mg_engine_api *mg_engine(void)
{
    return g_api_ok ? &g_api : NULL;
}

/* Fills g_api from h; 0, or -1 with *err naming every missing symbol (an
 * older or foreign libactmax). */
static int resolve(void *h, const char *where, char **err)
{
    mg_str missing = MG_STR_INIT;
    void *sym;
#define MG_ENGINE_RESOLVE(f)                                                                       \
    sym = dlsym(h, #f);                                                                            \
    if (!sym)                                                                                      \
        mg_str_addf(&missing, " %s", #f);                                                          \
    memcpy(&g_api.f, &sym, sizeof sym);
    MG_ENGINE_FUNCS(MG_ENGINE_RESOLVE)
#undef MG_ENGINE_RESOLVE
    if (missing.len) {
        *err = mg_asprintf("%s lacks functions of actmax.h:%s; rebuild the engine (ext/) from "
                           "the same source as the kernel, or point $ACTMAX_ENGINE at a matching "
                           "libactmax.so",
                           where, mg_str_cstr(&missing));
        mg_str_free(&missing);
        return -1;
    }
    mg_str_free(&missing);
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

int mg_engine_load(char **err)
{
    if (g_engine)
        return 0;
    mg_str tried = MG_STR_INIT;
    /* $ACTMAX_ENGINE, then next to the executable, then the build's path. */
    const char *env = getenv("ACTMAX_ENGINE");
    if (env && env[0])
        g_engine = try_open(env, &tried);
    if (!g_engine) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = '\0';
            char *slash = strrchr(exe, '/');
            if (slash) {
                *slash = '\0';
                const char *rel[] = {"/libactmax.so", "/ext/libactmax.so", "/../lib/libactmax.so"};
                for (size_t i = 0; i < 3 && !g_engine; i++) {
                    char *p = mg_asprintf("%s%s", exe, rel[i]);
                    if (access(p, F_OK) == 0)
                        g_engine = try_open(p, &tried);
                    free(p);
                }
            }
        }
    }
    if (!g_engine)
        g_engine = try_open(ACTMAX_ENGINE_LIB, &tried);
    if (!g_engine) {
        *err = mg_asprintf("the engine library could not be loaded; tried:%s", mg_str_cstr(&tried));
        mg_str_free(&tried);
        return -1;
    }
    mg_str_free(&tried);
    if (resolve(g_engine, "the engine library", err) != 0) {
        dlclose(g_engine);
        g_engine = NULL;
        return -1;
    }
    g_api_ok = 1;
    return 0;
}
