/* The interpreter through a capturing sink: ordering, checking, errors,
 * settings, help, completion, inspection and history. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "history.h"
#include "magic.h"
#include "test_registry.h"

typedef struct run {
    mg_capture cap;
    mg_status st;
} run;

static run run_cell(mg_interp *it, const char *code)
{
    run r;
    memset(&r, 0, sizeof r);
    mg_sink s = mg_capture_sink(&r.cap);
    r.st = mg_interp_run(it, code, &s);
    return r;
}

static const char *out(const run *r)
{
    return r->cap.out ? r->cap.out : "";
}

static const char *err(const run *r)
{
    return r->cap.err ? r->cap.err : "";
}

void test_interp_lines_in_order(void)
{
    mg_interp *it = mg_interp_new(test_registry());
    run r = run_cell(it, "\n%echo one\n\n   # comment\n%echo two  # trailing\n%echo three\n");
    CHECK_INT(r.st, MG_OK);
    CHECK_STR(out(&r), "one\ntwo\nthree\n");
    mg_capture_free(&r.cap);

    /* A runtime error stops the cell: later lines do not run. */
    r = run_cell(it, "%echo first\n%echo x to=display update=true\n%echo never");
    CHECK_INT(r.st, MG_ERROR);
    CHECK_STR(out(&r), "first\n");
    CHECK_HAS(err(&r), "ValueError: update=true needs display_id");
    CHECK_INT(r.cap.n_errors, 1);
    mg_capture_free(&r.cap);
    mg_interp_free(it);
}

void test_interp_checks_before_running(void)
{
    mg_interp *it = mg_interp_new(test_registry());
    /* A bad key on line 2 is found before line 1 runs. */
    run r = run_cell(it, "%set seed=5\n%sleep secs=1");
    CHECK_INT(r.st, MG_ERROR);
    CHECK_HAS(err(&r),
              "UsageError: %sleep has no key 'secs' (did you mean seconds?); valid keys: seconds");
    CHECK_INT(mg_setting(it, "seed")->i, 0);
    mg_capture_free(&r.cap);
    mg_interp_free(it);
}

void test_interp_errors(void)
{
    mg_interp *it = mg_interp_new(test_registry());
    run r = run_cell(it, "%lsmagc");
    CHECK_HAS(err(&r), "UnknownMagicError: unknown magic %lsmagc; did you mean %lsmagic?");
    CHECK_INT(r.cap.n_errors, 1);
    mg_capture_free(&r.cap);

    r = run_cell(it, "print('hello')");
    CHECK_HAS(err(&r), "UsageError: line 1 is not a magic");
    CHECK_HAS(err(&r), "%help");
    mg_capture_free(&r.cap);

    r = run_cell(it, "%echo ok\n%%echo");
    CHECK_HAS(err(&r), "must be on the first line");
    mg_capture_free(&r.cap);

    r = run_cell(it, "%%lsmagic");
    CHECK_HAS(err(&r), "%%lsmagic is not a cell magic");
    mg_capture_free(&r.cap);

    r = run_cell(it, "%lsmagic extra");
    CHECK_HAS(err(&r), "%lsmagic takes no arguments (got 'extra')");
    mg_capture_free(&r.cap);

    r = run_cell(it, "%sleep 3");
    CHECK_HAS(err(&r), "%sleep takes no bare argument (got '3'); valid keys: seconds");
    mg_capture_free(&r.cap);

    r = run_cell(it, "%sleep seconds=-1");
    CHECK_HAS(err(&r), "seconds=-1 is out of range: expected a number from 0 to 86400");
    mg_capture_free(&r.cap);

    r = run_cell(it, "%echo to=dispaly");
    CHECK_HAS(err(&r), "to=dispaly is not valid: expected one of stdout, stderr, display, result, "
                       "page (did you mean display?)");
    mg_capture_free(&r.cap);

    r = run_cell(it, "%");
    CHECK_HAS(err(&r), "must be followed by a magic name");
    mg_capture_free(&r.cap);

    r = run_cell(it, "%echo 'open");
    CHECK_HAS(err(&r), "UsageError: %echo: unterminated string");
    mg_capture_free(&r.cap);
    mg_interp_free(it);
}

void test_interp_set_and_defaults(void)
{
    mg_interp *it = mg_interp_new(test_registry());
    run r = run_cell(it, "%set seed=7 device=CUDA verbose=yes");
    CHECK_INT(r.st, MG_OK);
    CHECK_INT(mg_setting(it, "seed")->i, 7);
    CHECK_STR(mg_setting(it, "device")->s, "cuda");
    CHECK(mg_setting(it, "verbose")->b);
    mg_capture_free(&r.cap);

    r = run_cell(it, "%set");
    CHECK_HAS(out(&r), "seed=INT");
    CHECK_HAS(out(&r), "[now 7]");
    CHECK_HAS(out(&r), "[now cuda]");
    mg_capture_free(&r.cap);

    /* Errors keep the state. */
    r = run_cell(it, "%set seed=-3");
    CHECK_INT(r.st, MG_ERROR);
    CHECK_HAS(err(&r), "seed=-3 is out of range");
    CHECK_INT(mg_setting(it, "seed")->i, 7);
    mg_capture_free(&r.cap);
    r = run_cell(it, "%set sede=1");
    CHECK_HAS(err(&r),
              "%set has no key 'sede' (did you mean seed?); valid keys: seed, device, verbose");
    mg_capture_free(&r.cap);
    mg_interp_free(it);
}

void test_interp_help(void)
{
    mg_interp *it = mg_interp_new(test_registry());
    const char *forms[] = {"sleep?", "%sleep?", "?sleep", "sleep??", "  %sleep?  # why"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        run r = run_cell(it, forms[i]);
        CHECK_INT(r.st, MG_OK);
        CHECK_HAS(r.cap.page, "%sleep [seconds=FLOAT]");
        CHECK_HAS(r.cap.page,
                  "seconds=FLOAT  how long to wait (default 1; a number from 0 to 86400)");
        mg_capture_free(&r.cap);
    }
    run r = run_cell(it, "%%echo?");
    CHECK_HAS(r.cap.page, "%%echo [TEXT]");
    CHECK_HAS(r.cap.page, "Also usable as %echo");
    mg_capture_free(&r.cap);
    r = run_cell(it, "?");
    CHECK_HAS(r.cap.page, "actmax cells are magics");
    mg_capture_free(&r.cap);
    r = run_cell(it, "slep?");
    CHECK_HAS(err(&r), "did you mean %sleep?");
    mg_capture_free(&r.cap);
    r = run_cell(it, "%help echo");
    CHECK_HAS(out(&r), "%echo [TEXT]");
    CHECK(r.cap.page == NULL);
    mg_capture_free(&r.cap);
    r = run_cell(it, "%help %%echo");
    CHECK_HAS(out(&r), "%%echo [TEXT]");
    mg_capture_free(&r.cap);
    r = run_cell(it, "%help nosuch");
    CHECK_INT(r.st, MG_ERROR);
    CHECK_HAS(err(&r), "UnknownMagicError: unknown magic %nosuch");
    mg_capture_free(&r.cap);
    r = run_cell(it, "%help");
    CHECK_HAS(out(&r), "Line magics:");
    mg_capture_free(&r.cap);
    r = run_cell(it, "%lsmagic");
    CHECK_HAS(out(&r), "%lsmagic");
    CHECK_HAS(out(&r), "Cell magics:\n  %%echo");
    mg_capture_free(&r.cap);
    mg_interp_free(it);
}

void test_interp_cell_magic(void)
{
    mg_interp *it = mg_interp_new(test_registry());
    run r = run_cell(it, "# leading comment\n%%echo\nline %not a magic\n\nlast");
    CHECK_INT(r.st, MG_OK);
    CHECK_STR(out(&r), "line %not a magic\n\nlast\n");
    mg_capture_free(&r.cap);
    r = run_cell(it, "%%echo to=stderr\r\nbody\r\n");
    CHECK_STR(err(&r), "body\r\n");
    mg_capture_free(&r.cap);
    mg_interp_free(it);
}

void test_interp_interrupt(void)
{
    mg_interp *it = mg_interp_new(test_registry());
    run r;
    memset(&r, 0, sizeof r);
    r.cap.stop = true;
    mg_sink s = mg_capture_sink(&r.cap);
    r.st = mg_interp_run(it, "%echo a\n%echo b", &s);
    CHECK_INT(r.st, MG_INTERRUPTED);
    CHECK_HAS(err(&r), "KeyboardInterrupt");
    CHECK_INT(r.cap.n_errors, 1);
    CHECK(r.cap.out == NULL);
    mg_capture_free(&r.cap);
    mg_interp_free(it);
}

static void complete(mg_interp *it, const char *code, size_t cursor, mg_completions *c)
{
    memset(c, 0, sizeof *c);
    mg_interp_complete(it, code, cursor, c);
}

static bool has(const mg_completions *c, const char *s)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i], s) == 0)
            return true;
    return false;
}

void test_complete_names_and_keys(void)
{
    mg_interp *it = mg_interp_new(test_registry());
    mg_completions c;
    complete(it, "%sl", 3, &c);
    CHECK_INT(c.n, 1);
    CHECK_STR(c.v[0], "%sleep");
    CHECK_INT(c.start, 0);
    CHECK_INT(c.end, 3);
    mg_completions_free(&c);

    complete(it, "%", 1, &c);
    CHECK(has(&c, "%lsmagic") && has(&c, "%set") && has(&c, "%echo"));
    mg_completions_free(&c);

    complete(it, "%%", 2, &c);
    CHECK_INT(c.n, 1);
    CHECK_STR(c.v[0], "%%echo");
    mg_completions_free(&c);

    /* A bare word at the start of a line completes to the magic. */
    complete(it, "lsm", 3, &c);
    CHECK_INT(c.n, 1);
    CHECK_STR(c.v[0], "%lsmagic");
    mg_completions_free(&c);

    /* Keys after the name, skipping those already given. */
    complete(it, "%echo hi to=stdout ", 19, &c);
    CHECK(has(&c, "display_id=") && has(&c, "update="));
    CHECK(!has(&c, "to="));
    CHECK_INT(c.start, 19);
    mg_completions_free(&c);
    complete(it, "%sleep se", 9, &c);
    CHECK_INT(c.n, 1);
    CHECK_STR(c.v[0], "seconds=");
    CHECK_INT(c.start, 7);
    CHECK_INT(c.end, 9);
    mg_completions_free(&c);

    /* Enum and bool values. */
    complete(it, "%echo to=d", 10, &c);
    CHECK_INT(c.n, 1);
    CHECK_STR(c.v[0], "display");
    CHECK_INT(c.start, 9);
    mg_completions_free(&c);
    complete(it, "%set verbose=", 13, &c);
    CHECK(has(&c, "true") && has(&c, "false"));
    mg_completions_free(&c);

    /* %set keys are the settings. */
    complete(it, "%set d", 6, &c);
    CHECK_INT(c.n, 1);
    CHECK_STR(c.v[0], "device=");
    mg_completions_free(&c);

    /* The per-magic hook: %help completes magic names. */
    complete(it, "%help sle", 9, &c);
    CHECK(has(&c, "sleep"));
    CHECK_INT(c.start, 6);
    mg_completions_free(&c);

    /* On the second line of a cell; nothing in a comment. */
    complete(it, "%echo a\n%set se", 15, &c);
    CHECK_INT(c.n, 1);
    CHECK_STR(c.v[0], "seed=");
    CHECK_INT(c.start, 13);
    mg_completions_free(&c);
    complete(it, "%set # se", 9, &c);
    CHECK_INT(c.n, 0);
    mg_completions_free(&c);
    mg_interp_free(it);
}

void test_complete_code_points(void)
{
    mg_interp *it = mg_interp_new(test_registry());
    mg_completions c;
    memset(&c, 0, sizeof c);
    /* "%echo ✓é\n%set se": the cursor at the end is code point 16, byte 19. */
    const char *code = "%echo \xe2\x9c\x93\xc3\xa9\n%set se";
    CHECK_INT(strlen(code), 19);
    size_t start = 0, end = 0;
    mg_interp_complete_cp(it, code, 16, &c, &start, &end);
    CHECK_INT(c.n, 1);
    CHECK_STR(c.v[0], "seed=");
    CHECK_INT(start, 14);
    CHECK_INT(end, 16);
    mg_completions_free(&c);
    /* A key after a multi-byte positional on the same line. */
    const char *code2 = "%echo 日本 to=di";
    mg_interp_complete_cp(it, code2, 14, &c, &start, &end);
    CHECK_INT(c.n, 1);
    CHECK_STR(c.v[0], "display");
    CHECK_INT(start, 12);
    CHECK_INT(end, 14);
    mg_completions_free(&c);
    mg_interp_free(it);
}

void test_inspect_and_is_complete(void)
{
    mg_interp *it = mg_interp_new(test_registry());
    char *t = mg_interp_inspect(it, "%sleep seconds=2", 3);
    CHECK_HAS(t, "%sleep [seconds=FLOAT]");
    free(t);
    t = mg_interp_inspect(it, "%sleep seconds=2", 10);
    CHECK_HAS(t, "seconds=FLOAT  how long to wait");
    free(t);
    t = mg_interp_inspect(it, "echo?", 2);
    CHECK_HAS(t, "%echo [TEXT]");
    free(t);
    t = mg_interp_inspect(it, "lsmagic", 7);
    CHECK_HAS(t, "List the magics");
    free(t);
    CHECK(mg_interp_inspect(it, "nothing here", 3) == NULL);
    CHECK(mg_interp_inspect(it, "%nosuch", 3) == NULL);

    CHECK_STR(mg_interp_is_complete(it, ""), "complete");
    CHECK_STR(mg_interp_is_complete(it, "%lsmagic"), "complete");
    CHECK_STR(mg_interp_is_complete(it, "%set seed=1\n%echo x"), "complete");
    CHECK_STR(mg_interp_is_complete(it, "%lsmagc"), "invalid");
    /* Where a console user goes on typing: an open quote or bracket, a
     * trailing backslash (not one inside a comment). */
    CHECK_STR(mg_interp_is_complete(it, "%echo 'open"), "incomplete");
    CHECK_STR(mg_interp_is_complete(it, "%echo fc[1,"), "incomplete");
    CHECK_STR(mg_interp_is_complete(it, "%echo a \\"), "incomplete");
    CHECK_STR(mg_interp_is_complete(it, "%echo a # b \\"), "complete");
    CHECK_STR(mg_interp_is_complete(it, "%echo fc[1,\n2]"), "complete");
    CHECK_STR(mg_interp_is_complete(it, "%echo a \\\nb"), "complete");
    CHECK_STR(mg_interp_is_complete(it, "%echo fc[1)"), "invalid");
    CHECK_STR(mg_interp_is_complete(it, "python code"), "invalid");
    CHECK_STR(mg_interp_is_complete(it, "%%echo"), "incomplete");
    CHECK_STR(mg_interp_is_complete(it, "%%echo\nbody"), "incomplete");
    CHECK_STR(mg_interp_is_complete(it, "%%echo\nbody\n\n"), "complete");
    mg_interp_free(it);
}

void test_history_select(void)
{
    mg_history h = {0};
    mg_history_add(&h, 1, "%set seed=1");
    mg_history_add(&h, 2, "%lsmagic");
    mg_history_add(&h, 3, "%set seed=2");
    mg_history_add(&h, 4, "%lsmagic");
    mg_history_add(&h, 5, "%echo x");
    size_t *idx = NULL;
    size_t n = mg_history_tail(&h, 2, &idx);
    CHECK_INT(n, 2);
    CHECK_INT(h.v[idx[0]].line, 4);
    CHECK_INT(h.v[idx[1]].line, 5);
    free(idx);
    n = mg_history_range(&h, 2, 4, &idx);
    CHECK_INT(n, 2);
    CHECK_INT(h.v[idx[0]].line, 2);
    CHECK_INT(h.v[idx[1]].line, 3);
    free(idx);
    n = mg_history_range(&h, 0, -1, &idx);
    CHECK_INT(n, 5);
    free(idx);
    n = mg_history_search(&h, "%set*", false, 0, &idx);
    CHECK_INT(n, 2);
    CHECK_INT(h.v[idx[0]].line, 1);
    free(idx);
    n = mg_history_search(&h, "*magic", true, 0, &idx);
    CHECK_INT(n, 1);
    CHECK_INT(h.v[idx[0]].line, 4); /* the latest of the duplicates */
    free(idx);
    n = mg_history_search(&h, "*", false, 2, &idx);
    CHECK_INT(n, 2);
    CHECK_INT(h.v[idx[0]].line, 4);
    CHECK_INT(h.v[idx[1]].line, 5);
    free(idx);
    n = mg_history_search(&h, "%set seed=[2-9]", false, 0, &idx);
    CHECK_INT(n, 1);
    CHECK_INT(h.v[idx[0]].line, 3);
    free(idx);
    /* Bounded. */
    for (int i = 0; i < MG_HISTORY_MAX + 10; i++)
        mg_history_add(&h, 10 + i, "%lsmagic");
    CHECK(h.n <= MG_HISTORY_MAX);
    CHECK_INT(h.v[h.n - 1].line, 10 + MG_HISTORY_MAX + 9);
    mg_history_free(&h);
}

void test_interp_registry_hooks(void)
{
    memset(&test_probe, 0, sizeof test_probe);
    mg_interp *it = mg_interp_new(test_registry());
    /* The state is made on first use, not before. */
    CHECK_INT(test_probe.states_made, 0);
    char *t = mg_interp_inspect(it, "%probe probed", 10);
    CHECK(t && strstr(t, "%probe [WORD]")); /* no state yet: the magic's help */
    free(t);

    /* A failing prepare hook: an EngineError, the magic does not run, and
     * the cell stops there. */
    test_probe.fail_prepare = true;
    run r = run_cell(it, "%echo before\n%probe x\n%echo never");
    CHECK_INT(r.st, MG_ERROR);
    CHECK_STR(out(&r), "before\n");
    CHECK_HAS(err(&r), "EngineError: the probe's engine is missing");
    CHECK_INT(test_probe.prepared, 1);
    CHECK_INT(test_probe.states_made, 0);
    mg_capture_free(&r.cap);

    test_probe.fail_prepare = false;
    r = run_cell(it, "%probe x\n%probe y");
    CHECK_INT(r.st, MG_OK);
    CHECK_STR(out(&r), "probe ran with probe state\nprobe ran with probe state\n");
    CHECK_INT(test_probe.prepared, 3); /* before every run */
    CHECK_INT(test_probe.states_made, 1);
    mg_capture_free(&r.cap);

    /* With a state, the registry's inspect hook answers first. */
    t = mg_interp_inspect(it, "%probe probed", 10);
    CHECK_STR(t, "inspected with probe state");
    free(t);
    mg_interp_free(it);
    CHECK_INT(test_probe.states_freed, 1);
}
