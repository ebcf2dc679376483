/* objective_py.h — an objective as a Python expression, for the scripts
 * am_run_code writes (code.c), printed from the engine's own parse tree
 * (objective.cpp), so every construct the engine runs is written the way it
 * evaluates it. Internal to the engine. */
#ifndef ACTMAX_OBJECTIVE_PY_H
#define ACTMAX_OBJECTIVE_PY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* src as an expression of A (layer name -> batch-first activation) and b
 * (the image's row): a layer L[i] becomes A["L"][b][i].mean() (the engine
 * averages the dimensions left), a "label" its index among labels,
 * diversity(L) diversity(A["L"]), direction(L[i], v, cossim_pow=p)
 * direction(A["L"][b][i], VECTOR, p) with the vector written out or read by
 * load_vector from the file's absolute path. *expr (malloc'd) is the
 * expression, *layers (malloc'd) the layers it reads, one per line. 0, or
 * AM_E_OBJECTIVE with the message in err (size n). */
int am__objective_python(const char *src, const char *const *labels, int n_labels, char **expr, char **layers,
                         char *err, size_t n);

#ifdef __cplusplus
}
#endif

#endif
