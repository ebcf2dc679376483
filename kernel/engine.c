/* The engine (libactmax, libtorch inside) is never linked: the first magic
 * that needs it loads it with dlopen, so kernel_info and the built-in magics
 * answer without waiting for libtorch. */
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "magic.h"
#include "util.h"

#ifndef ACTMAX_ENGINE_LIB
#define ACTMAX_ENGINE_LIB "libactmax.so"
#endif

static void *g_engine;

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
                const char *rel[] = {"/libactmax.so", "/../lib/libactmax.so"};
                for (size_t i = 0; i < 2 && !g_engine; i++) {
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
    return 0;
}
