/* Implementations of the magics listed in magic_table.c. */
#ifndef ACTMAX_MAGICS_H
#define ACTMAX_MAGICS_H

#include "magic.h"

mg_status mg_magic_lsmagic(mg_call *c);
mg_status mg_magic_help_run(mg_call *c);
void mg_magic_help_complete(const mg_complete_ctx *cx, mg_completions *out);
mg_status mg_magic_set(mg_call *c);
mg_status mg_magic_sleep(mg_call *c);
mg_status mg_magic_echo(mg_call *c);
mg_status mg_magic_clear(mg_call *c);

/* magics_engine.c */
mg_status mg_magic_model(mg_call *c);
mg_status mg_magic_layers(mg_call *c);
mg_status mg_magic_maximize(mg_call *c);
mg_status mg_magic_examples(mg_call *c);
mg_status mg_magic_runs(mg_call *c);
mg_status mg_magic_show(mg_call *c);
mg_status mg_magic_save(mg_call *c);
mg_status mg_magic_device(mg_call *c);
mg_status mg_magic_seed(mg_call *c);
void mg_magic_objective_complete(const mg_complete_ctx *cx, mg_completions *out);
mg_status mg_magic_tokens(mg_call *c);

/* magics_engine.c: a table as one display, HTML with its text/plain twin. */
struct render_table;
void mg_send_table(const mg_call *c, const struct render_table *t);

/* magics_tokens.c: text runs, kept by magics_engine.c beside image runs. */
typedef struct mg_text_rec mg_text_rec;
struct am_model;
struct render_png;
/* Runs %tokens on model; on success *out is the new run and *options its
 * key=value summary (malloc'd). */
mg_status mg_tokens_run(mg_call *c, struct am_model *model, const char *model_name,
                        mg_text_rec **out, char **options);
void mg_text_rec_free(mg_text_rec *r);
void mg_text_rec_show(const mg_call *c, const mg_text_rec *r, int id, const char *objective,
                      const char *options);
int mg_text_rec_steps(const mg_text_rec *r);
float mg_text_rec_final(const mg_text_rec *r); /* the discrete prompt's activation */
double mg_text_rec_seconds(const mg_text_rec *r);
const char *mg_text_rec_prompt(const mg_text_rec *r); /* decoded bytes, NUL-terminated */
int mg_text_rec_live_updates(const mg_text_rec *r);
int mg_text_rec_plot_png(const mg_text_rec *r, int id, const char *objective,
                         struct render_png *png);
/* %examples on a text model; opt_prompt (may be NULL) is the latest %tokens
 * result of the same objective, shown beside the corpus maximum. */
mg_status mg_tokens_examples(mg_call *c, struct am_model *model, const char *model_name,
                             const char *model_path, const char *opt_prompt, float opt_value, int opt_run);

#endif
