/* The actmax magics: the functions the registry (table.c) lists, and the
 * registry itself, handed to the interpreter by main.c. */
#ifndef ACTMAX_MAGICS_H
#define ACTMAX_MAGICS_H

#include "magic.h"

/* Every magic of actmax: the core and diagnostic ones of cells/builtin.h
 * and the engine magics below. */
const mg_registry *mg_actmax_registry(void);

/* model.c */
mg_status mg_magic_model(mg_call *c);
mg_status mg_magic_layers(mg_call *c);
mg_status mg_magic_device(mg_call *c);
mg_status mg_magic_seed(mg_call *c);
void mg_magic_objective_complete(const mg_complete_ctx *cx, mg_completions *out);

/* image.c, text.c */
mg_status mg_magic_maximize(mg_call *c);
mg_status mg_magic_tokens(mg_call *c);

/* tokenize.c */
mg_status mg_magic_tokenize(mg_call *c);

/* examples.c */
mg_status mg_magic_examples(mg_call *c);

/* neuron.c */
mg_status mg_magic_neuron(mg_call *c);

/* session.c: over the runs of every kind */
mg_status mg_magic_runs(mg_call *c);
mg_status mg_magic_show(mg_call *c);
mg_status mg_magic_save(mg_call *c);
mg_status mg_magic_check(mg_call *c);

#endif
