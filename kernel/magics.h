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

#endif
