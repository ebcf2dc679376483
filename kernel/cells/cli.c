#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "magic.h"
#include "signals.h"
#include "util.h"

static void cli_stream(void *ctx, const char *name, const char *text)
{
    (void)ctx;
    FILE *f = strcmp(name, "stderr") == 0 ? stderr : stdout;
    fputs(text, f);
    fflush(f);
}

static const char *extension(const char *mime)
{
    static const struct {
        const char *mime, *ext;
    } map[] = {{"image/png", "png"},  {"image/jpeg", "jpg"},   {"image/svg+xml", "svg"},
               {"text/html", "html"}, {"text/markdown", "md"}, {"application/json", "json"},
               {"text/latex", "tex"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].mime, mime) == 0)
            return map[i].ext;
    return "bin";
}

static void write_bundle(mg_cli_sink *c, const mg_bundle *b)
{
    const mg_bundle_item *plain = mg_bundle_find(b, "text/plain");
    if (plain) {
        fputs((const char *)plain->data, stdout);
        if (plain->len == 0 || plain->data[plain->len - 1] != '\n')
            fputc('\n', stdout);
        fflush(stdout);
    }
    if (!c->out_dir)
        return;
    for (size_t i = 0; i < mg_bundle_count(b); i++) {
        const mg_bundle_item *it = mg_bundle_item_at(b, i);
        if (strcmp(it->mime, "text/plain") == 0)
            continue;
        mkdir(c->out_dir, 0777);
        char *path = mg_asprintf("%s/out-%03d.%s", c->out_dir, ++c->n_files, extension(it->mime));
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(it->data, 1, it->len, f) != it->len)
            fprintf(stderr, "actmax: cannot write %s: %s\n", path, strerror(errno));
        else
            fprintf(stderr, "actmax: wrote %s\n", path);
        if (f)
            fclose(f);
        free(path);
    }
}

static void cli_display(void *ctx, const mg_bundle *b, const char *display_id, bool update)
{
    /* A display that is updated in place is live progress: on a terminal
     * and in the output folder only its final state matters, which the
     * command shows again as its result. */
    if (display_id && strncmp(display_id, MG_LIVE_PREFIX, strlen(MG_LIVE_PREFIX)) == 0)
        return;
    (void)update;
    write_bundle(ctx, b);
}

static void cli_result(void *ctx, const mg_bundle *b)
{
    write_bundle(ctx, b);
}

static void cli_error(void *ctx, const char *ename, const char *evalue, const char *const *tb,
                      size_t n)
{
    mg_cli_sink *c = ctx;
    c->n_errors++;
    if (n == 0) {
        fprintf(stderr, "%s: %s\n", ename, evalue);
        return;
    }
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s\n", tb[i]);
}

static void cli_clear(void *ctx, bool wait)
{
    (void)ctx;
    (void)wait;
}

static void cli_page(void *ctx, const char *text)
{
    (void)ctx;
    fputs(text, stdout);
    if (text[0] && text[strlen(text) - 1] != '\n')
        fputc('\n', stdout);
    fflush(stdout);
}

static bool cli_should_stop(void *ctx)
{
    (void)ctx;
    return mg_interrupted();
}

static bool cli_wait(void *ctx, double seconds)
{
    (void)ctx;
    while (seconds > 0 && !mg_interrupted()) {
        double step = seconds < 0.05 ? seconds : 0.05;
        struct timespec ts = {(time_t)step, (long)((step - (double)(time_t)step) * 1e9)};
        nanosleep(&ts, NULL); /* EINTR from SIGINT just ends the step */
        seconds -= step;
    }
    return mg_interrupted();
}

static const mg_sink_ops CLI_OPS = {cli_stream, cli_display, cli_result,      cli_error,
                                    cli_clear,  cli_page,    cli_should_stop, cli_wait};

mg_sink mg_cli_sink_make(mg_cli_sink *c)
{
    mg_sink s = {&CLI_OPS, c};
    return s;
}

/* A shell's single quotes keep `\n` as two characters, so the one-liner
 * `actmax -c '%model fashion-cnn\n%maximize conv2[5]'` reaches us with a
 * backslash. A run of `\n`s (spaces between allowed) becomes line breaks
 * where what follows starts a line of a cell: a magic (`%`), a comment
 * (`#`), help (`name?`) or the end of the text. Anywhere else `\n` stays as
 * typed, so a cell body's text is not rewritten. */
static bool starts_a_line(const char *q)
{
    if (*q == '%' || *q == '#' || *q == '\0')
        return true;
    if (!(isalpha((unsigned char)*q) || *q == '_'))
        return false;
    while (isalnum((unsigned char)*q) || *q == '_')
        q++;
    return *q == '?';
}

static char *split_escaped_lines(const char *code)
{
    char *out = mg_strdup(code);
    char *w = out;
    for (const char *p = code; *p; p++) {
        if (p[0] == '\\' && p[1] == 'n') {
            int breaks = 0;
            const char *q = p;
            for (;;) {
                if (q[0] == '\\' && q[1] == 'n') {
                    breaks++;
                    q += 2;
                } else if (*q == ' ' || *q == '\t') {
                    q++;
                } else {
                    break;
                }
            }
            if (starts_a_line(q)) {
                while (breaks--)
                    *w++ = '\n';
                p = q - 1;
                continue;
            }
        }
        *w++ = *p;
    }
    *w = '\0';
    return out;
}

int mg_cli_run(mg_interp *it, const char *code, const char *out_dir)
{
    mg_install_signal_handlers();
    mg_cli_sink c = {out_dir, 0, 0};
    mg_sink sink = mg_cli_sink_make(&c);
    char *lines = split_escaped_lines(code);
    mg_status st = mg_interp_run(it, lines, &sink);
    free(lines);
    return st == MG_OK ? 0 : st == MG_INTERRUPTED ? 130 : 1;
}
