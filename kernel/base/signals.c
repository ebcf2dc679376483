/* Signal flags (signals.h). */
#include "signals.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t g_interrupt;
static volatile sig_atomic_t g_terminate;

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupt = 1;
}

static void on_sigterm(int sig)
{
    (void)sig;
    g_terminate = 1;
}

void mg_install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls return EINTR and retry */
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_sigterm;
    sigaction(SIGTERM, &sa, NULL);
}

bool mg_interrupted(void)
{
    return g_interrupt != 0;
}

void mg_clear_interrupt(void)
{
    g_interrupt = 0;
}

void mg_request_interrupt(void)
{
    g_interrupt = 1;
}

bool mg_terminated(void)
{
    return g_terminate != 0;
}
