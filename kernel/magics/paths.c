/* Where the engine magics find files (paths.h). */
#include "paths.h"

#include <dirent.h>
#include <stdio.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "am_loader.h"
#include "util.h"

#ifndef ACTMAX_MODELS_DIR
#define ACTMAX_MODELS_DIR ""
#endif
#ifndef ACTMAX_INSTALL_MODELS_DIR
#define ACTMAX_INSTALL_MODELS_DIR "/usr/local/share/actmax/models"
#endif

static char *expand_home(const char *p)
{
    if (p[0] == '~' && p[1] == '/') {
        const char *home = getenv("HOME");
        return mg_asprintf("%s%s", home ? home : "", p + 1);
    }
    return mg_strdup(p);
}

char *mg_prefix_share_dir(void)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return NULL;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    char *guess = mg_asprintf("%s/../share/actmax", exe), resolved[PATH_MAX];
    char *out = realpath(guess, resolved) ? mg_strdup(resolved) : NULL;
    free(guess);
    return out;
}

static bool same_dir(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/* The folders searched for built-in names, in order. */
static void model_dirs(char ***dirs, size_t *n)
{
    size_t cap = 8;
    *dirs = mg_xcalloc(cap, sizeof(char *));
    *n = 0;
    const char *env = getenv("ACTMAX_MODEL_PATH");
    if (env && env[0]) {
        char *copy = mg_strdup(env), *save = NULL;
        for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
            if (*n + 4 >= cap)
                *dirs = mg_xrealloc(*dirs, (cap *= 2) * sizeof(char *));
            (*dirs)[(*n)++] = expand_home(t);
        }
        free(copy);
    }
    (*dirs)[(*n)++] = expand_home("~/.local/share/actmax/models");
    /* An installed kernel's own models come before the build tree's, which
     * its compiled-in paths still name (and only when there are some, so
     * that a build tree's kernel lists what it did). */
    char *share = mg_prefix_share_dir();
    char *own = share ? mg_asprintf("%s/models", share) : NULL;
    free(share);
    if (own && access(own, X_OK) != 0) {
        free(own);
        own = NULL;
    }
    if (own && !same_dir(own, (*dirs)[*n - 1]))
        (*dirs)[(*n)++] = mg_strdup(own);
    if (ACTMAX_MODELS_DIR[0])
        (*dirs)[(*n)++] = mg_strdup(ACTMAX_MODELS_DIR);
    if (!own || !same_dir(own, ACTMAX_INSTALL_MODELS_DIR))
        (*dirs)[(*n)++] = mg_strdup(ACTMAX_INSTALL_MODELS_DIR);
    free(own);
}

static bool looks_like_path(const char *name)
{
    size_t n = strlen(name);
    return strchr(name, '/') || (n > 3 && strcmp(name + n - 3, ".pt") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".pth") == 0);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ext/loader reads the marker, as it does for the Python module. */
char *mg_background_note(const char *marker)
{
    char note[1024];
    return am_loader_background_note(marker, note, sizeof note) ? mg_strdup(note) : NULL;
}

/* scripts/run.sh builds the engine and trains the models in the background
 * and marks each model with NAME.training; the message, or NULL (malloc'd). */
static char *training_note(const char *name, char **dirs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *p = mg_asprintf("%s/%s.training", dirs[i], name);
        char *line = mg_background_note(p);
        free(p);
        if (line) {
            char *note = mg_asprintf("model '%s' is not ready yet: %s. Run this cell again then; "
                                     "the models already built work meanwhile",
                                     name, line);
            free(line);
            return note;
        }
    }
    return NULL;
}

char *mg_resolve_model(const char *name, char **err)
{
    *err = NULL;
    if (looks_like_path(name)) {
        char *p = expand_home(name);
        if (access(p, R_OK) == 0)
            return p;
        *err = mg_asprintf("model file %s cannot be read (%s); give an existing TorchScript "
                           "file or a built-in name such as fashion-cnn",
                           p, strerror(errno));
        free(p);
        return NULL;
    }
    char **dirs;
    size_t n;
    model_dirs(&dirs, &n);
    char *found = NULL;
    for (size_t i = 0; i < n && !found; i++) {
        char *p = mg_asprintf("%s/%s.pt", dirs[i], name);
        if (access(p, R_OK) == 0)
            found = p;
        else
            free(p);
    }
    if (!found)
        *err = training_note(name, dirs, n);
    if (!found && !*err) {
        /* Offer the names that do exist, closest first. */
        mg_str where = MG_STR_INIT, known = MG_STR_INIT;
        char *names[64];
        size_t nn = 0;
        for (size_t i = 0; i < n; i++) {
            mg_str_addf(&where, "%s%s", i ? ", " : "", dirs[i]);
            size_t first = nn; /* this folder's names, sorted: readdir's order is the disk's */
            DIR *d = opendir(dirs[i]);
            struct dirent *de;
            while (d && (de = readdir(d)) && nn < 64) {
                size_t l = strlen(de->d_name);
                if (l > 3 && strcmp(de->d_name + l - 3, ".pt") == 0) {
                    bool dup = false;
                    for (size_t k = 0; k < nn; k++)
                        dup |= strncmp(names[k], de->d_name, l - 3) == 0 && !names[k][l - 3];
                    if (!dup)
                        names[nn++] = mg_strndup(de->d_name, l - 3);
                }
            }
            if (d)
                closedir(d);
            qsort(names + first, nn - first, sizeof names[0], cmp_names);
        }
        for (size_t k = 0; k < nn; k++)
            mg_str_addf(&known, "%s%s", k ? ", " : "", names[k]);
        const char *best = mg_closest(name, (const char *const *)names, nn);
        *err = mg_asprintf("no model named '%s' (looked for %s.pt in %s).%s%s%s Available: %s; "
                           "or give a file path",
                           name, name, mg_str_cstr(&where), best ? " Did you mean " : "",
                           best ? best : "", best ? "?" : "", nn ? mg_str_cstr(&known) : "none");
        for (size_t k = 0; k < nn; k++)
            free(names[k]);
        mg_str_free(&where);
        mg_str_free(&known);
    }
    for (size_t i = 0; i < n; i++)
        free(dirs[i]);
    free(dirs);
    return found;
}

/* The held-out corpus: $ACTMAX_FORTUNES_HELDOUT, then data/ beside the
 * model's folder (share/actmax/models -> share/actmax/data, wherever the
 * model was found), then the prefix's, the build's and the install's share
 * folders. */
char *mg_corpus_path(const char *model_path)
{
    const char *env = getenv("ACTMAX_FORTUNES_HELDOUT");
    if (env && env[0])
        return mg_strdup(env);
    const char *slash = model_path ? strrchr(model_path, '/') : NULL;
    if (slash) {
        char *p =
            mg_asprintf("%.*s/../data/fortunes-heldout.txt", (int)(slash - model_path), model_path);
        if (access(p, R_OK) == 0)
            return p;
        free(p);
    }
    char *share = mg_prefix_share_dir();
    const char *dirs[] = {share ? share : "", ACTMAX_MODELS_DIR "/..",
                          ACTMAX_INSTALL_MODELS_DIR "/.."};
    char *found = NULL;
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs && !found; i++) {
        char *p = mg_asprintf("%s/data/fortunes-heldout.txt", dirs[i]);
        if (dirs[i][0] && access(p, R_OK) == 0)
            found = p;
        else
            free(p);
    }
    free(share);
    return found;
}
