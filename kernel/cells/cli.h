/* Running magics outside Jupyter: `actmax -c 'MAGICS'` and `actmax run FILE`.
 * The command-line sink prints streams and text/plain outputs, writes other
 * outputs (images, HTML) as numbered files into an output folder when one
 * is given, and prints errors to stderr. */
#ifndef ACTMAX_CLI_H
#define ACTMAX_CLI_H

#include "magic.h"
#include "sink.h"

typedef struct mg_cli_sink {
    const char *out_dir; /* NULL: non-text outputs are skipped */
    int n_files;
    int n_errors;
} mg_cli_sink;

mg_sink mg_cli_sink_make(mg_cli_sink *c);

/* Runs code with it; exit status 0 (ok), 1 (error), 130 (interrupted). */
int mg_cli_run(mg_interp *it, const char *code, const char *out_dir);

#endif
