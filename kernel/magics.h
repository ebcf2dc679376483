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

#endif
