/* The Jupyter kernel: sockets, heartbeat, dispatch and handlers. */
#ifndef ACTMAX_KERNEL_H
#define ACTMAX_KERNEL_H

#include <stdbool.h>

typedef struct mg_kernel mg_kernel;

/* Runs the kernel for a connection file until shutdown; the exit status. */
int mg_kernel_main(const char *connection_file);

/* Serves whatever waits on the control channel (kernel_info, interrupt,
 * shutdown) without blocking; long-running magics reach it through their
 * sink's should_stop / wait. True when the running command should stop. */
bool mg_kernel_poll_control(mg_kernel *k);

/* SIGINT (and interrupt_request) only set this flag. */
bool mg_interrupted(void);
void mg_clear_interrupt(void);
void mg_install_signal_handlers(void);

#endif
