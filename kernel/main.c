/* actmax: the Jupyter kernel, and the same magics from the command line.
 * main builds the interpreter over the actmax magics and hands it to the
 * front asked for: the kernel (kernel/protocol) or the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actmax_version.h"
#include "cli.h"
#include "kernel.h"
#include "magics.h"
#include "render.h"
#include "util.h"

static void usage(FILE *f)
{
    fputs("usage: actmax kernel -f CONNECTION_FILE   run the Jupyter kernel\n"
          "       actmax -c 'MAGICS' [-o DIR]         run magics, print the outputs\n"
          "       actmax run FILE [-o DIR]            run a file of magics\n"
          "       actmax --version\n"
          "       actmax --magics-md                  the magics' key tables, as Markdown\n"
          "With -o, outputs other than text (images, HTML) are written into DIR.\n",
          f);
}

static char *read_file(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return NULL;
    mg_str s = MG_STR_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        mg_str_addn(&s, buf, n);
    if (f != stdin)
        fclose(f);
    const char *nul = s.len ? memchr(s.p, 0, s.len) : NULL;
    if (nul) {
        /* Run as a C string, the file would end there without a word. */
        size_t line = 1;
        for (const char *c = s.p; c < nul; c++)
            line += *c == '\n';
        fprintf(stderr,
                "actmax: %s holds a NUL byte on line %zu; a file of magics is text: "
                "remove it\n",
                path, line);
        mg_str_free(&s);
        exit(1);
    }
    return mg_str_steal(&s);
}

int main(int argc, char **argv)
{
    /* cairo's font caches, so that LeakSanitizer sees a clean exit. */
    atexit(render_cleanup);
    if (argc >= 2 && strcmp(argv[1], "kernel") == 0) {
        const char *conn = NULL;
        for (int i = 2; i < argc; i++) {
            if ((strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--connection-file") == 0) &&
                i + 1 < argc)
                conn = argv[++i];
            else if (strncmp(argv[i], "--connection-file=", 18) == 0)
                conn = argv[i] + 18;
        }
        if (!conn) {
            usage(stderr);
            return 2;
        }
        mg_interp *it = mg_interp_new(mg_actmax_registry());
        int rc = mg_kernel_main(conn, it);
        mg_interp_free(it);
        return rc;
    }
    if (argc >= 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("actmax %s\n", AM_VERSION);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "--magics-md") == 0) {
        /* The tables are only as good as the registry: check it first. */
        char *bad = NULL;
        if (mg_registry_check(mg_actmax_registry(), &bad) != 0) {
            fprintf(stderr, "actmax: magic table: %s\n", bad);
            free(bad);
            return 1;
        }
        char *md = mg_registry_markdown(mg_actmax_registry());
        fputs(md, stdout);
        free(md);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    const char *code = NULL, *file = NULL, *out_dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            code = argv[++i];
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            out_dir = argv[++i];
        else if (strcmp(argv[i], "run") == 0 && i + 1 < argc && !file)
            file = argv[++i];
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!code == !file) {
        usage(stderr);
        return 2;
    }
    char *text = code ? mg_strdup(code) : read_file(file);
    if (!text) {
        fprintf(stderr, "actmax: cannot read %s\n", file);
        return 2;
    }
    mg_interp *it = mg_interp_new(mg_actmax_registry());
    int rc = mg_cli_run(it, text, out_dir);
    mg_interp_free(it);
    free(text);
    return rc;
}
