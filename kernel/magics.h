/* Implementations of the magics listed in magic_table.c. */
#ifndef ACTMAX_MAGICS_H
#define ACTMAX_MAGICS_H

#include "magic.h"

am_status am_magic_lsmagic(am_call *c);
am_status am_magic_help_run(am_call *c);
void am_magic_help_complete(const am_complete_ctx *cx, am_completions *out);
am_status am_magic_set(am_call *c);
am_status am_magic_sleep(am_call *c);
am_status am_magic_echo(am_call *c);
am_status am_magic_clear(am_call *c);

#endif
