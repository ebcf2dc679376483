/* The Jupyter kernel: sockets, heartbeat, dispatch and handlers. */
#ifndef ACTMAX_KERNEL_H
#define ACTMAX_KERNEL_H

#include <stdbool.h>

typedef struct am_kernel am_kernel;

/* Runs the kernel for a connection file until shutdown; the exit status. */
int am_kernel_main(const char *connection_file);

/* Serves whatever waits on the control channel (kernel_info, interrupt,
 * shutdown) without blocking; long-running magics reach it through their
 * sink's should_stop / wait. True when the running command should stop. */
bool am_kernel_poll_control(am_kernel *k);

/* SIGINT (and interrupt_request) only set this flag. */
bool am_interrupted(void);
void am_clear_interrupt(void);
void am_install_signal_handlers(void);

#endif
