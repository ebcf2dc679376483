/* The engine (libactmax, libtorch inside) is never linked: the first magic
 * that needs it loads it with dlopen (ext/loader, shared with the Python
 * module), so kernel_info and the built-in magics answer without waiting for
 * libtorch. */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "am_loader.h"
#include "engine.h"
#include "util.h"

#ifndef ACTMAX_ENGINE_LIB
#define ACTMAX_ENGINE_LIB "libactmax.so"
#endif
/* Where `cmake --install` puts the engine, relative to the prefix. */
#ifndef ACTMAX_INSTALL_LIBDIR
#define ACTMAX_INSTALL_LIBDIR "lib"
#endif

static am_loader_engine g_engine;

const mg_engine_api *mg_engine(void)
{
    return g_engine.api;
}

void *mg_engine_handle(void)
{
    return g_engine.handle;
}

int mg_engine_load(char **err)
{
    if (g_engine.api)
        return 0;
    /* $ACTMAX_ENGINE, then next to the executable (an installed kernel: the
     * prefix's lib folder), then the build's path. */
    char here[PATH_MAX] = "";
    ssize_t len = readlink("/proc/self/exe", here, sizeof here - 1);
    char *slash = NULL;
    if (len > 0) {
        here[len] = '\0';
        slash = strrchr(here, '/');
    }
    if (slash)
        *slash = '\0';
    char *beside[3] = {NULL, NULL, NULL};
    const char *rel[] = {"/libactmax.so", "/ext/libactmax.so",
                         "/../" ACTMAX_INSTALL_LIBDIR "/libactmax.so"};
    am_loader_candidate cands[5];
    int n = 0;
    cands[n++] = (am_loader_candidate){getenv("ACTMAX_ENGINE"), false};
    for (int i = 0; slash && i < 3; i++) {
        beside[i] = mg_asprintf("%s%s", here, rel[i]);
        cands[n++] = (am_loader_candidate){beside[i], true};
    }
    cands[n++] = (am_loader_candidate){ACTMAX_ENGINE_LIB, false};
    char msg[8192];
    int rc = am_loader_open(cands, n, "kernel", &g_engine, msg, sizeof msg);
    for (int i = 0; i < 3; i++)
        free(beside[i]);
    if (rc != 0) {
        *err = mg_strdup(msg);
        return -1;
    }
    return 0;
}
