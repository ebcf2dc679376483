/* Where the engine magics find files: built-in models by name, and the
 * held-out text corpus beside them. */
#ifndef ACTMAX_PATHS_H
#define ACTMAX_PATHS_H

/* NAME (a built-in model) or a path -> an existing file (malloc'd), or NULL
 * with *err listing where it looked and the names that exist. */
char *mg_resolve_model(const char *name, char **err);

/* The held-out corpus of the built-in text model: $ACTMAX_FORTUNES_HELDOUT,
 * then data/ beside the model's folder, then the build and install share
 * folders; NULL when none is readable. */
char *mg_corpus_path(const char *model_path);

#endif
