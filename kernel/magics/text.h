/* The text kind of run (%tokens), %examples on a text model, and the
 * token helpers both show with. */
#ifndef ACTMAX_TEXT_H
#define ACTMAX_TEXT_H

#include <stdint.h>

#include "session.h"
#include "util.h"

extern const mg_run_ops mg_text_run_ops;

/* A text run's prompt (decoded bytes, NUL-terminated) and its activation. */
const char *mg_text_run_prompt(const mg_run_rec *r);
float mg_text_run_final(const mg_run_rec *r);
/* The projected prompt's activation over the soft one (NaN for gcg, sweep). */
float mg_text_run_retention(const mg_run_rec *r);

/* %examples on a text model (text_examples.c). */
mg_status mg_text_examples(mg_call *c, mg_session *s);

/* The model's tokenizer, parsed from the file it carries; NULL with *err. */
am_tokenizer *mg_model_tokenizer(am_model *m, char **err);
/* A token's bytes as table text: whitespace made visible (· for space, ↵
 * for newline, → for tab) so that " the" and "the" differ on screen. */
char *mg_token_label(const am_tokenizer *tok, int64_t id);
/* The prompt as text, escaped where not UTF-8 (never breaks the output). */
char *mg_ids_text(am_tokenizer *tok, const int64_t *ids, int n);
/* The prompt on one line of text/plain: \n, \t, \r and " escaped as in C. */
char *mg_one_line(const char *text);
/* Coloured token spans, Neuroscope style: background from the heat colour
 * of each token's activation, the value in the title attribute. */
void mg_colored_spans(mg_str *html, am_tokenizer *tok, const int64_t *ids, const float *acts, int n,
                      float lo, float hi);
/* The colour range of v (n values), never empty. */
void mg_heat_range(const float *v, int n, float *lo, float *hi);

#endif
