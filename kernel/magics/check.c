/* %check: grades a run against an exercise of a checks file, a JSON file a
 * teacher extends without touching C (share/actmax/checks.json):
 *
 *   {"checks": [{"name": "sandal-channel",
 *                "task": "what the student is asked to do",
 *                "model": "fashion-cnn", "kind": "image",
 *                "objective": "^conv2\\[[0-9]+\\]$",      POSIX extended regex
 *                "options": {"param": "pixel"},           the run's options must match
 *                "final": {"min": 5, "max": 1e9},         image 0's final activation
 *                "examples": {"label": "Sandal", "k": 9, "split": "test",
 *                             "min_fraction": 0.8},       top-k dataset items by the objective
 *                "beats_examples": true,                  final >= the dataset's best
 *                "retention": {"min": 0.5},               text runs: projected / soft
 *                "hint": "shown when the check fails"}]}
 *
 * Every criterion given must hold; each prints one line with the figure
 * measured and the threshold, then PASS or FAIL with the hint. */
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "image.h"
#include "magics.h"
#include "paths.h"
#include "session.h"
#include "text.h"
#include "util.h"

#ifndef ACTMAX_CHECKS_FILES
#define ACTMAX_CHECKS_FILES ""
#endif

/* ================================================================ the file */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    mg_str t = MG_STR_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        mg_str_addn(&t, buf, n);
    fclose(f);
    return mg_str_steal(&t);
}

/* The files looked for, ':'-separated (malloc'd): the checks of the prefix
 * the kernel runs from when it has some, then the source's and the
 * install's. */
static char *checks_candidates(void)
{
    char *share = mg_prefix_share_dir();
    char *own = share ? mg_asprintf("%s/checks.json", share) : NULL;
    char *list = own && access(own, R_OK) == 0 ? mg_asprintf("%s:%s", own, ACTMAX_CHECKS_FILES)
                                               : mg_strdup(ACTMAX_CHECKS_FILES);
    free(own);
    free(share);
    return list;
}

/* file=, then $ACTMAX_CHECKS, then checks_candidates(). */
static char *checks_path(const mg_call *c)
{
    if (mg_given(c, "file"))
        return mg_strdup(mg_string(c, "file"));
    const char *env = getenv("ACTMAX_CHECKS");
    if (env && env[0])
        return mg_strdup(env);
    char *list = checks_candidates(), *save = NULL, *found = NULL;
    for (char *p = strtok_r(list, ":", &save); p && !found; p = strtok_r(NULL, ":", &save))
        if (access(p, R_OK) == 0)
            found = mg_strdup(p);
    free(list);
    return found;
}

static cJSON *load_checks(const mg_call *c)
{
    char *path = checks_path(c);
    if (!path) {
        char *looked = checks_candidates();
        mg_fail(c, "OSError",
                "no checks file found: give file=PATH or set $ACTMAX_CHECKS (looked in %s)",
                looked);
        free(looked);
        return NULL;
    }
    char *text = read_all(path);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    cJSON *list = root ? cJSON_GetObjectItemCaseSensitive(root, "checks") : NULL;
    if (!text)
        mg_fail(c, "OSError", "cannot read the checks file %s", path);
    else if (!cJSON_IsArray(list))
        mg_fail(c, "FormatError",
                "%s is not a checks file: it needs {\"checks\": [{\"name\": ..., ...}]} (JSON%s)",
                path, root ? "" : " did not parse");
    free(text);
    free(path);
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_of(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

/* `%check` alone: every check with its task. */
static void list_checks(const mg_call *c, const cJSON *list)
{
    const cJSON *ck;
    mg_sink_printf(c->out, "checks (grade the last run with %%check NAME, another with run=N):\n");
    cJSON_ArrayForEach(ck, list)
    {
        const char *name = str_of(ck, "name"), *task = str_of(ck, "task");
        mg_sink_printf(c->out, "  %-24s %s\n", name ? name : "?", task ? task : "");
    }
}

static const cJSON *find_check(const mg_call *c, const cJSON *list, const char *name)
{
    const cJSON *ck;
    size_t n = (size_t)cJSON_GetArraySize(list), k = 0;
    const char **names = mg_xcalloc(n + 1, sizeof *names);
    cJSON_ArrayForEach(ck, list)
    {
        const char *nm = str_of(ck, "name");
        if (nm && strcmp(nm, name) == 0) {
            free(names);
            return ck;
        }
        if (nm)
            names[k++] = nm;
    }
    const char *best = mg_closest(name, names, k);
    mg_str all = MG_STR_INIT;
    for (size_t i = 0; i < k; i++)
        mg_str_addf(&all, "%s%s", i ? ", " : "", names[i]);
    mg_fail(c, "ValueError", "no check named '%s'%s%s%s; the checks are: %s", name,
            best ? "; did you mean " : "", best ? best : "", best ? "?" : "", mg_str_cstr(&all));
    mg_str_free(&all);
    free(names);
    return NULL;
}

/* ================================================================ criteria */

typedef struct grade {
    const mg_call *c;
    int failed;
    int n;
} grade;

static void verdict(grade *g, bool ok, const char *fmt, ...) MG_PRINTF(3, 4);
static void verdict(grade *g, bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mg_str t = MG_STR_INIT;
    mg_str_vaddf(&t, fmt, ap);
    va_end(ap);
    mg_sink_printf(g->c->out, "  [%s] %s\n", ok ? "ok" : "no", mg_str_cstr(&t));
    mg_str_free(&t);
    g->failed += !ok;
    g->n++;
}

/* The run's option values (its JSON) against the check's "options". */
static void check_options(grade *g, const mg_run_rec *r, const cJSON *want)
{
    cJSON *have = cJSON_Parse(r->options_json ? r->options_json : "{}");
    const cJSON *w;
    cJSON_ArrayForEach(w, want)
    {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(have, w->string);
        bool ok = h != NULL;
        if (ok && cJSON_IsNumber(w))
            ok = cJSON_IsNumber(h) &&
                 fabs(h->valuedouble - w->valuedouble) <= 1e-6 * fmax(1.0, fabs(w->valuedouble));
        else if (ok && cJSON_IsBool(w))
            ok = cJSON_IsBool(h) && cJSON_IsTrue(h) == cJSON_IsTrue(w);
        else if (ok && cJSON_IsString(w))
            ok = cJSON_IsString(h) && strcmp(h->valuestring, w->valuestring) == 0;
        char *ws = cJSON_PrintUnformatted(w), *hs = h ? cJSON_PrintUnformatted(h) : NULL;
        verdict(g, ok, "option %s is %s (needs %s)", w->string, hs ? hs : "not set", ws);
        cJSON_free(ws);
        cJSON_free(hs);
    }
    cJSON_Delete(have);
}

static void check_range(grade *g, const char *what, double v, const cJSON *range)
{
    double lo = num_of(range, "min", -INFINITY), hi = num_of(range, "max", INFINITY);
    bool ok = isfinite(v) && v >= lo && v <= hi;
    if (isfinite(lo) && isfinite(hi))
        verdict(g, ok, "%s is %.4g (needs %.4g..%.4g)", what, v, lo, hi);
    else if (isfinite(lo))
        verdict(g, ok, "%s is %.4g (needs >= %.4g)", what, v, lo);
    else
        verdict(g, ok, "%s is %.4g (needs <= %.4g)", what, v, hi);
}

/* The model's dataset ranked by the run's objective, by the engine (the
 * same scan as %examples): the best value, and how many of the top k carry
 * label (when label is not NULL). 0, or -1 with the error shown. */
static int rank_dataset(const mg_call *c, const mg_session *s, const mg_run_rec *r,
                        const char *split, int k, const char *label, float *best, int *hits)
{
    const mg_engine_api *e = mg_engine();
    am_examples_options o;
    e->am_examples_options_default(&o);
    o.objective = r->objective;
    o.split = split;
    o.k = k;
    const char *data = mg_string(c, "data");
    if (data && data[0])
        o.dataset = data;
    am_examples *ex = NULL;
    int rc = e->am_examples_new(s->model, &o, &ex);
    if (rc != AM_OK) {
        mg_fail(c, e->am_status_class(rc), "%s", ex ? e->am_examples_error(ex) : "");
        e->am_examples_free(ex);
        return -1;
    }
    *best = e->am_examples_max(ex);
    *hits = 0;
    am_example it;
    for (int i = 0; label && i < e->am_examples_count(ex); i++)
        if (e->am_examples_get(ex, i, &it) == AM_OK)
            *hits += strcmp(it.label_name, label) == 0;
    e->am_examples_free(ex);
    return 0;
}

/* "examples" and "beats_examples": need the run's model loaded. */
static int check_dataset(grade *g, const mg_session *s, const mg_run_rec *r, const cJSON *ck)
{
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(ck, "examples");
    const cJSON *beats = cJSON_GetObjectItemCaseSensitive(ck, "beats_examples");
    if (!ex && !beats)
        return 0;
    if (!s->model || strcmp(r->model, s->model_name) != 0) {
        mg_fail(g->c, "NoModelError",
                "this check ranks %s's dataset by the run's objective: load it again with "
                "%%model %s",
                r->model, r->model);
        return -1;
    }
    const char *split = ex && str_of(ex, "split") ? str_of(ex, "split") : "test";
    int k = ex ? (int)num_of(ex, "k", 9) : 1;
    const char *label = ex ? str_of(ex, "label") : NULL;
    float best = NAN;
    int hits = 0;
    if (k < 1 || k > 10000 || rank_dataset(g->c, s, r, split, k, label, &best, &hits) != 0) {
        if (k < 1 || k > 10000)
            mg_fail(g->c, "FormatError", "\"examples\": k must be 1..10000, got %d", k);
        return -1;
    }
    /* data=: the messages name the images read rather than a split */
    const char *data = mg_string(g->c, "data");
    if (data && data[0])
        split = data;
    if (ex && label) {
        double need = num_of(ex, "min_fraction", 0.5), got = (double)hits / k;
        verdict(g, got >= need, "top %d %s examples of %s: %d are %s (%.0f%%, needs >= %.0f%%)", k,
                split, r->objective, hits, label, 100 * got, 100 * need);
    }
    if (beats) {
        int steps = 0;
        double fin = NAN, secs = 0;
        r->ops->row(r, &steps, &fin, &secs);
        bool want = cJSON_IsTrue(beats), beat = fin >= best;
        verdict(g, beat == want, "final activation %.4g %s the best %s example's %.4g (needs %s)",
                fin, beat ? "beats" : "is below", split, best,
                want ? "to beat it" : "to stay below it");
    }
    return 0;
}

/* ================================================================ %check */

static int grade_run(grade *g, const mg_session *s, const mg_run_rec *r, const cJSON *ck)
{
    const char *model = str_of(ck, "model"), *kind = str_of(ck, "kind");
    const char *pattern = str_of(ck, "objective");
    if (model)
        verdict(g, strcmp(r->model, model) == 0, "model %s (needs %s)", r->model, model);
    if (kind)
        verdict(g, strcmp(r->ops->kind, kind) == 0, "run kind %s (needs %s)", r->ops->kind, kind);
    if (pattern) {
        regex_t re;
        if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
            mg_fail(g->c, "FormatError", "the check's \"objective\" %s is not a POSIX regex",
                    pattern);
            return -1;
        }
        bool ok = regexec(&re, r->objective, 0, NULL, 0) == 0;
        regfree(&re);
        verdict(g, ok, "objective %s %s the pattern %s", r->objective, ok ? "matches" : "misses",
                pattern);
    }
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(ck, "options");
    if (opts)
        check_options(g, r, opts);
    int steps = 0;
    double final = NAN, secs = 0;
    r->ops->row(r, &steps, &final, &secs);
    const cJSON *fin = cJSON_GetObjectItemCaseSensitive(ck, "final");
    if (fin)
        check_range(g, "final activation", final, fin);
    const cJSON *ret = cJSON_GetObjectItemCaseSensitive(ck, "retention");
    if (ret) {
        double v = r->ops == &mg_text_run_ops ? mg_text_run_retention(r) : NAN;
        check_range(g, "retention (projected / soft)", v, ret);
    }
    /* The dataset is read only when everything cheaper held. */
    return g->failed ? 0 : check_dataset(g, s, r, ck);
}

mg_status mg_magic_check(mg_call *c)
{
    mg_session *s = mg_session_of(c);
    cJSON *root = load_checks(c);
    if (!root)
        return MG_ERROR;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "checks");
    mg_status st = MG_OK;
    const cJSON *ck = NULL;
    mg_run_rec *r = NULL;
    if (!c->positional) {
        list_checks(c, list);
    } else if ((ck = find_check(c, list, c->positional)) != NULL) {
        char *ref = mg_given(c, "run") ? mg_asprintf("%lld", mg_int(c, "run")) : NULL;
        r = mg_session_run_ref(c, s, ref);
        free(ref);
    }
    if (r) {
        const char *task = str_of(ck, "task"), *hint = str_of(ck, "hint");
        mg_sink_printf(c->out, "check %s on run %d (%s)%s%s\n", c->positional, r->id, r->objective,
                       task ? ": " : "", task ? task : "");
        grade g = {.c = c};
        if (grade_run(&g, s, r, ck) != 0) {
            st = MG_ERROR;
        } else if (g.failed) {
            mg_sink_printf(c->out, "FAIL %s: %d of %d criteria not met.%s%s\n", c->positional,
                           g.failed, g.n, hint ? " Hint: " : "", hint ? hint : "");
        } else {
            mg_sink_printf(c->out, "PASS %s: all %d criteria met.\n", c->positional, g.n);
        }
    } else if (c->positional) {
        st = MG_ERROR;
    }
    cJSON_Delete(root);
    return st;
}
