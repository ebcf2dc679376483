/* am_loader.h — a front's way to the engine: find libactmax among candidate
 * paths, dlopen it, and take its function table (am_get_api) after checking
 * that it was built from the same actmax.h. Shared by the kernel and the
 * Python module, so both look in the same way, refuse a half-built engine
 * the same way and name both API versions the same way. */
#ifndef AM_LOADER_H
#define AM_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include "actmax.h"

/* A candidate library path; must_exist: skip it silently when there is no
 * such file (the guesses beside an executable), else a failure to open it
 * is listed in the error. */
typedef struct am_loader_candidate {
    const char *path;
    bool must_exist;
} am_loader_candidate;

typedef struct am_loader_engine {
    void *handle;
    const am_api *api;
    char path[4096]; /* the library opened */
} am_loader_engine;

/* Tries the candidates in order. 0 with *out filled; -1 with a message in
 * err (size n):
 *   - "the engine is not ready yet: <note>; try again then" when a
 *     candidate's PATH.building marker names a build still running (a
 *     half-linked library must not load, and falling back to another engine
 *     would surprise);
 *   - "the engine library could not be loaded; tried: ..." with each path's
 *     dlerror;
 *   - the API mismatch, naming both versions; `front` names the caller in it
 *     ("kernel", "module").
 * The library stays loaded for the life of the process. */
int am_loader_open(const am_loader_candidate *cands, int n_cands, const char *front,
                   am_loader_engine *out, char *err, size_t n);

/* The note of a background job's marker file (its pid on the first line,
 * then one line of text), copied to buf (size n) when that process still
 * runs: 1; 0 when there is no marker or its process is gone. */
int am_loader_background_note(const char *marker, char *buf, size_t n);

#endif
