/* The engine session of one interpreter: the loaded model, its layer list,
 * and every run of the session. Runs are a tagged kind: each kind (image.c,
 * text.c) gives one table of operations, and everything here (%runs, %show,
 * %save) goes through it, so adding a kind of run is one new file and one
 * entry where the kind's magic is registered. */
#ifndef ACTMAX_SESSION_H
#define ACTMAX_SESSION_H

#include <stddef.h>

#include "engine.h"
#include "magic.h"
#include "render.h"

typedef struct mg_run_rec mg_run_rec;

/* What a kind of run does. */
typedef struct mg_run_ops {
    const char *kind; /* "image", "text" */
    /* The result in full: picture or prompt, summary, tables, curve. */
    void (*show)(const mg_call *c, const mg_run_rec *r);
    /* The objective over the steps as a PNG; a RENDER_* status. */
    int (*plot_png)(const mg_run_rec *r, render_png *png);
    /* One row of %runs. */
    void (*row)(const mg_run_rec *r, int *steps, double *final, double *seconds);
    /* %save to a file of the kind's own formats (save_exts, e.g. "png"):
     * the result (image or prompt) to path. */
    mg_status (*save)(const mg_call *c, const mg_run_rec *r, const char *path);
    const char *save_exts; /* space-separated extensions save writes */
    void (*free)(void *data);
    /* The result as an array for .npy/.pt: images (B, C, H, W) float32 or
     * token ids (1, T) int64; returns ndim (<= AM_MAX_DIMS) or -1. */
    int (*array)(const mg_run_rec *r, const void **data, int *dtype, int64_t *shape);
    /* The curves over the steps for .csv/.json: up to max named curves of
     * *steps values each (the total first); returns how many. */
    int (*curves)(const mg_run_rec *r, const char **names, const float **curves, int max,
                  int *steps);
} mg_run_ops;

struct mg_run_rec {
    const mg_run_ops *ops;
    void *data;         /* the kind's own record: owned */
    int id;             /* 1-based, as %show and %save name it */
    char *objective;    /* as typed */
    char *model;        /* the model's name when it ran */
    char *model_path;   /* and its file, so two models of one name stay apart */
    char *options;      /* key=value summary: every option the run used */
    char *options_json; /* the same as a JSON object, typed values */
    char *code;         /* image runs: the run as a PyTorch script (am_run_code), or NULL */
    int live_updates;   /* display messages sent while it ran */
};

typedef struct mg_session {
    am_model *model;
    char *model_name;
    char *model_path;
    int n_layers;
    am_layer_info *layers; /* (n_layers); strings owned by model */
    mg_run_rec *runs;      /* (n_runs) */
    int n_runs, cap_runs;
} mg_session;

/* The registry's state hooks (magics/table.c). */
void *mg_session_new(void);
void mg_session_free(void *session);
/* Layer information (malloc'd text) when the word under cursor (bytes into
 * code) is a layer of the loaded model, else NULL. */
char *mg_session_inspect(void *session, const char *code, size_t len, size_t cursor);

mg_session *mg_session_of(const mg_call *c);
/* MG_OK when a model is loaded, else the error saying how to load one. */
mg_status mg_session_need_model(const mg_call *c, const mg_session *s);
/* Replaces the model (and its layers) with m, named name, from path (taken). */
void mg_session_set_model(mg_session *s, am_model *m, am_layer_info *layers, int n_layers,
                          const char *name, char *path);

/* Fills r->options and r->options_json with every key of c's magic as
 * resolved for this call (typed, %set defaults and defaults included),
 * except the names in skip (NULL-terminated: display-only keys). */
void mg_session_record_options(const mg_call *c, mg_run_rec *r, const char *const *skip);

/* Finds a run: `last` (or no argument) or a number; NULL with the error
 * shown. */
mg_run_rec *mg_session_run_ref(const mg_call *c, mg_session *s, const char *ref);

/* Keeps a finished run (fields taken; its id is assigned) and returns it. */
mg_run_rec *mg_session_add_run(mg_session *s, const mg_run_rec *r);
/* The latest run of kind ops with this objective text on the model loaded
 * now (a run of another model is no measure for this one), or NULL. */
const mg_run_rec *mg_session_latest(const mg_session *s, const mg_run_ops *ops,
                                    const char *objective);

/* Layer lookup, and the characters of a layer path. */
const am_layer_info *mg_session_layer(const mg_session *s, const char *name, size_t n);
int mg_is_layer_char(int ch);

#endif
