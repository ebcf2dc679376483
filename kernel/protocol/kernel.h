/* The Jupyter kernel: sockets, heartbeat, dispatch and handlers, around an
 * interpreter it is handed (as xeus hands an interpreter to its kernel). */
#ifndef ACTMAX_KERNEL_H
#define ACTMAX_KERNEL_H

#include <stdbool.h>

#include "magic.h"

typedef struct mg_kernel mg_kernel;

/* Runs the kernel for a connection file until shutdown, executing cells
 * with interp (the caller's, freed by the caller); the exit status. */
int mg_kernel_main(const char *connection_file, mg_interp *interp);

/* Serves whatever waits on the control channel (kernel_info, interrupt,
 * shutdown) without blocking; long-running magics reach it through their
 * sink's should_stop / wait. True when the running command should stop. */
bool mg_kernel_poll_control(mg_kernel *k);

#endif
