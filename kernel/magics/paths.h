/* Where the engine magics find files: built-in models by name, and the
 * held-out text corpus beside them. */
#ifndef ACTMAX_PATHS_H
#define ACTMAX_PATHS_H

/* NAME (a built-in model) or a path -> an existing file (malloc'd), or NULL
 * with *err listing where it looked and the names that exist. */
char *mg_resolve_model(const char *name, char **err);

/* scripts/train-background.sh marks what it is still building with a file
 * holding its process id (line 1) and a sentence for the user (line 2). The
 * sentence (malloc'd) while that process lives, else NULL (no marker, or a
 * stale one). */
char *mg_background_note(const char *marker);

/* The held-out corpus of the built-in text model: $ACTMAX_FORTUNES_HELDOUT,
 * then data/ beside the model's folder, then the prefix's, the build's and
 * the install's share folders; NULL when none is readable. */
char *mg_corpus_path(const char *model_path);

/* share/actmax of the prefix the kernel runs from (<bin>/../share/actmax,
 * as the engine is looked for in <bin>/../lib), resolved and malloc'd; NULL
 * when there is none. An installed kernel reads its models, data and checks
 * there before the build and source folders compiled into it. */
char *mg_prefix_share_dir(void);

#endif
