/* am_loader.c — see am_loader.h. */
#include "am_loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

int am_loader_background_note(const char *marker, char *buf, size_t n)
{
    FILE *f = fopen(marker, "r");
    if (!f)
        return 0;
    char line[1024] = "";
    long pid = 0;
    int found = 0;
    if (fscanf(f, "%ld\n", &pid) == 1 && pid > 0 && fgets(line, sizeof line, f) &&
        (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
        line[strcspn(line, "\n")] = 0;
        snprintf(buf, n, "%s", line);
        found = 1;
    }
    fclose(f);
    return found;
}

static void append(char *buf, size_t n, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, n - len, fmt, ap);
    va_end(ap);
}

/* The engine's table from handle h, or -1 with err naming both versions
 * when the library was built from another actmax.h (or is no libactmax). */
static int take_table(void *h, const char *path, const char *front, const am_api **api, char *err,
                      size_t n)
{
    typedef const am_api *(*get_api_fn)(uint32_t, uint32_t *);
    typedef const char *(*version_fn)(void);
    void *sym = dlsym(h, "am_get_api");
    if (!sym) {
        snprintf(err, n,
                 "%s has no am_get_api: it is not a libactmax of version %s or later; rebuild the "
                 "engine (ext/) from the same source as this %s, or point $ACTMAX_ENGINE at a "
                 "matching libactmax.so",
                 path, AM_VERSION, front);
        return -1;
    }
    get_api_fn get_api;
    memcpy(&get_api, &sym, sizeof sym);
    uint32_t engine_api = 0;
    const am_api *a = get_api(AM_API_VERSION, &engine_api);
    if (!a || a->size < sizeof(am_api)) {
        const char *engine_version = "unknown";
        void *vsym = dlsym(h, "am_version");
        if (vsym) {
            version_fn vf;
            memcpy(&vf, &vsym, sizeof vsym);
            engine_version = vf();
        }
        snprintf(err, n,
                 "%s is actmax %s with engine API version %u, but this %s (actmax %s) needs engine "
                 "API version %u; rebuild the engine (ext/) from the same source as the %s, or "
                 "point $ACTMAX_ENGINE at a matching libactmax.so",
                 path, engine_version, (unsigned)engine_api, front, AM_VERSION,
                 (unsigned)AM_API_VERSION, front);
        return -1;
    }
    *api = a;
    return 0;
}

int am_loader_open(const am_loader_candidate *cands, int n_cands, const char *front,
                   am_loader_engine *out, char *err, size_t n)
{
    char tried[4096] = "";
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n_cands; i++) {
        const char *path = cands[i].path;
        if (!path || !path[0])
            continue;
        char marker[4200], note[1024];
        snprintf(marker, sizeof marker, "%s.building", path);
        if (am_loader_background_note(marker, note, sizeof note)) {
            snprintf(err, n, "the engine is not ready yet: %s; try again then", note);
            return -1;
        }
        if (cands[i].must_exist && access(path, F_OK) != 0)
            continue;
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *e = dlerror();
            append(tried, sizeof tried, "\n  %s: %s", path, e ? e : "not loadable");
            continue;
        }
        if (take_table(h, path, front, &out->api, err, n) != 0) {
            dlclose(h);
            return -1;
        }
        out->handle = h;
        snprintf(out->path, sizeof out->path, "%s", path);
        return 0;
    }
    snprintf(err, n, "the engine library could not be loaded; tried:%s",
             tried[0] ? tried : " nothing");
    return -1;
}
