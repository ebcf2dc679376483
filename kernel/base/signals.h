/* SIGINT and SIGTERM only set flags; whoever runs a long command polls
 * them (the kernel's sink, the command line's sink). */
#ifndef ACTMAX_SIGNALS_H
#define ACTMAX_SIGNALS_H

#include <stdbool.h>

void mg_install_signal_handlers(void);

/* SIGINT or an interrupt_request since the last mg_clear_interrupt. */
bool mg_interrupted(void);
void mg_clear_interrupt(void);
/* What an interrupt_request does: the same as SIGINT. */
void mg_request_interrupt(void);

/* SIGTERM arrived: the kernel exits after the current request. */
bool mg_terminated(void);

#endif
