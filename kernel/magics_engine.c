/* The engine magics: %model, %layers, %maximize, %examples, %runs, %show,
 * %save, %device, %seed. They call libactmax through the dlsym'ed table of
 * engine_api.h and turn its plain float arrays into MIME bundles with
 * kernel/render (PNG, grids, plots, progress HTML, tables).
 *
 * Legend for shapes: B = batch, C = channels, H = height, W = width,
 * S = steps, N = dataset items, K = examples kept. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <cjson/cJSON.h>
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_api.h"
#include "live.h"
#include "magics.h"
#include "render.h"
#include "session.h"
#include "util.h"

#ifdef MG_HAVE_DATA
#include "am_data.h"
#endif

#ifndef ACTMAX_MODELS_DIR
#define ACTMAX_MODELS_DIR ""
#endif
#ifndef ACTMAX_INSTALL_MODELS_DIR
#define ACTMAX_INSTALL_MODELS_DIR "/usr/local/share/actmax/models"
#endif

/* ================================================================ state */

typedef struct mg_run_rec {
    int id;            /* 1-based, as %show and %save name it */
    char *objective;   /* as typed (diversity term excluded) */
    char *engine_obj;  /* what the engine ran */
    char *options;     /* key=value summary */
    am_run *run;       /* images (B, C, H, W), curves (S), terms: owned; NULL for text */
    mg_text_rec *text; /* a %tokens run (magics_tokens.c): owned; NULL for images */
    int *thresholds;   /* (n_thresholds) */
    int n_thresholds;
    int live_updates;  /* display messages sent while it ran */
} mg_run_rec;

struct mg_session {
    am_model *model;
    char *model_name;
    char *model_path;
    int n_layers;
    am_layer_info *layers; /* (n_layers); strings owned by model */
    mg_run_rec *runs;      /* (n_runs) */
    int n_runs, cap_runs;
};

mg_session *mg_session_new(void)
{
    return mg_xcalloc(1, sizeof(mg_session));
}

static void drop_model(mg_session *s)
{
    const mg_engine_api *e = mg_engine();
    if (s->model && e)
        e->am_model_free(s->model);
    s->model = NULL;
    free(s->model_name);
    free(s->model_path);
    free(s->layers);
    s->model_name = s->model_path = NULL;
    s->layers = NULL;
    s->n_layers = 0;
}

void mg_session_free(mg_session *s)
{
    if (!s)
        return;
    const mg_engine_api *e = mg_engine();
    for (int i = 0; i < s->n_runs; i++) {
        mg_run_rec *r = &s->runs[i];
        if (e)
            e->am_run_free(r->run);
        mg_text_rec_free(r->text);
        free(r->objective);
        free(r->engine_obj);
        free(r->options);
        free(r->thresholds);
    }
    free(s->runs);
    drop_model(s);
    free(s);
}

static mg_session *session_of(const mg_call *c)
{
    return mg_interp_session(c->interp);
}

static mg_status need_model(const mg_call *c, mg_session *s)
{
    if (s->model)
        return MG_OK;
    return mg_fail(c, "NoModelError",
                   "%%%s needs a model: load one first, e.g. `%%model fashion-cnn` "
                   "(built-in) or `%%model path/to/model.pt input=3x224x224`",
                   c->magic->name);
}

/* ================================================================ helpers */

static bool is_layer_char(int ch)
{
    return isalnum(ch) || ch == '_' || ch == '.' || ch == '#' || ch == ':';
}

static const am_layer_info *find_layer(const mg_session *s, const char *name, size_t n)
{
    for (int i = 0; i < s->n_layers; i++)
        if (strlen(s->layers[i].name) == n && strncmp(s->layers[i].name, name, n) == 0)
            return &s->layers[i];
    return NULL;
}

static void shape_text(mg_str *out, const int64_t *shape, int ndim)
{
    mg_str_addc(out, '(');
    for (int i = 0; i < ndim; i++)
        mg_str_addf(out, "%s%lld", i ? ", " : "", (long long)shape[i]);
    mg_str_addc(out, ')');
}

static void bundle_png(mg_bundle *b, const render_png *png)
{
    mg_bundle_bytes(b, "image/png", png->data, png->size);
    mg_bundle_meta_num(b, "image/png", "width", png->width);
    mg_bundle_meta_num(b, "image/png", "height", png->height);
}

/* PNG of a batch of images (B, C, H, W): one upscaled image, or a grid. */
static int images_png(const float *img, const int64_t shape[4], const char *const *captions,
                      const char *title, int min_px, render_png *out)
{
    int b = (int)shape[0], ch = (int)shape[1], h = (int)shape[2], w = (int)shape[3];
    if (b == 1 && !captions && !title)
        return render_png_encode(img, ch, h, w, min_px, out);
    render_grid_opts go = {0};
    go.min_cell_px = b == 1 ? min_px : 128;
    go.title = title;
    return render_grid_png(img, b, ch, h, w, captions, &go, out);
}

void mg_send_table(const mg_call *c, const render_table *t)
{
    char *html = NULL, *text = NULL;
    render_table_html(t, &html);
    render_table_text(t, &text);
    mg_bundle *b = mg_bundle_new();
    mg_bundle_text(b, "text/plain", text ? text : "");
    if (html)
        mg_bundle_text(b, "text/html", html);
    mg_sink_display(c->out, b, NULL);
    mg_bundle_free(b);
    render_free(html);
    render_free(text);
}

/* ================================================================ %model */

static char *expand_home(const char *p)
{
    if (p[0] == '~' && p[1] == '/') {
        const char *home = getenv("HOME");
        return mg_asprintf("%s%s", home ? home : "", p + 1);
    }
    return mg_strdup(p);
}

/* The folders searched for built-in names, in order. */
static void model_dirs(char ***dirs, size_t *n)
{
    size_t cap = 8;
    *dirs = mg_xcalloc(cap, sizeof(char *));
    *n = 0;
    const char *env = getenv("ACTMAX_MODEL_PATH");
    if (env && env[0]) {
        char *copy = mg_strdup(env), *save = NULL;
        for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
            if (*n + 4 >= cap)
                *dirs = mg_xrealloc(*dirs, (cap *= 2) * sizeof(char *));
            (*dirs)[(*n)++] = expand_home(t);
        }
        free(copy);
    }
    (*dirs)[(*n)++] = expand_home("~/.local/share/actmax/models");
    if (ACTMAX_MODELS_DIR[0])
        (*dirs)[(*n)++] = mg_strdup(ACTMAX_MODELS_DIR);
    (*dirs)[(*n)++] = mg_strdup(ACTMAX_INSTALL_MODELS_DIR);
}

static bool looks_like_path(const char *name)
{
    size_t n = strlen(name);
    return strchr(name, '/') || (n > 3 && strcmp(name + n - 3, ".pt") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".pth") == 0);
}

/* NAME -> an existing file, or NULL with *err listing where it looked. */
static char *resolve_model(const char *name, char **err)
{
    *err = NULL;
    if (looks_like_path(name)) {
        char *p = expand_home(name);
        if (access(p, R_OK) == 0)
            return p;
        *err = mg_asprintf("model file %s cannot be read (%s); give an existing TorchScript "
                           "file or a built-in name such as fashion-cnn",
                           p, strerror(errno));
        free(p);
        return NULL;
    }
    char **dirs;
    size_t n;
    model_dirs(&dirs, &n);
    char *found = NULL;
    for (size_t i = 0; i < n && !found; i++) {
        char *p = mg_asprintf("%s/%s.pt", dirs[i], name);
        if (access(p, R_OK) == 0)
            found = p;
        else
            free(p);
    }
    /* scripts/run.sh trains the language models in the background and marks
     * each with NAME.training (the trainer's pid, then a sentence saying
     * when it should be ready); a marker whose process is gone is stale. */
    for (size_t i = 0; i < n && !found && !*err; i++) {
        char *p = mg_asprintf("%s/%s.training", dirs[i], name);
        FILE *f = fopen(p, "r");
        free(p);
        if (!f)
            continue;
        char line[1024] = "";
        long pid = 0;
        if (fscanf(f, "%ld\n", &pid) == 1 && pid > 0 && fgets(line, sizeof line, f) &&
            (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
            line[strcspn(line, "\n")] = 0;
            *err = mg_asprintf("model '%s' is not ready yet: %s. Run this cell again then; "
                               "the other models work meanwhile",
                               name, line);
        }
        fclose(f);
    }
    if (!found && !*err) {
        /* Offer the names that do exist, closest first. */
        mg_str where = MG_STR_INIT, known = MG_STR_INIT;
        char *names[64];
        size_t nn = 0;
        for (size_t i = 0; i < n; i++) {
            mg_str_addf(&where, "%s%s", i ? ", " : "", dirs[i]);
            DIR *d = opendir(dirs[i]);
            struct dirent *de;
            while (d && (de = readdir(d)) && nn < 64) {
                size_t l = strlen(de->d_name);
                if (l > 3 && strcmp(de->d_name + l - 3, ".pt") == 0) {
                    bool dup = false;
                    for (size_t k = 0; k < nn; k++)
                        dup |= strncmp(names[k], de->d_name, l - 3) == 0 && !names[k][l - 3];
                    if (!dup)
                        names[nn++] = mg_strndup(de->d_name, l - 3);
                }
            }
            if (d)
                closedir(d);
        }
        for (size_t k = 0; k < nn; k++)
            mg_str_addf(&known, "%s%s", k ? ", " : "", names[k]);
        const char *best = mg_closest(name, (const char *const *)names, nn);
        *err = mg_asprintf("no model named '%s' (looked for %s.pt in %s).%s%s%s Available: %s; "
                           "or give a file path",
                           name, name, mg_str_cstr(&where), best ? " Did you mean " : "",
                           best ? best : "", best ? "?" : "", nn ? mg_str_cstr(&known) : "none");
        for (size_t k = 0; k < nn; k++)
            free(names[k]);
        mg_str_free(&where);
        mg_str_free(&known);
    }
    for (size_t i = 0; i < n; i++)
        free(dirs[i]);
    free(dirs);
    return found;
}

/* "3x224x224" or "1,28,28" -> dims; the count, or -1. */
static int parse_shape(const char *text, int64_t *shape, int max)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v <= 0 || v > 1000000 || n >= max)
            return -1;
        shape[n++] = v;
        p = end;
        if (*p == 'x' || *p == 'X' || *p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return n;
}

/* "auto" means CUDA when the machine shows an NVIDIA device, else the CPU. */
static const char *device_choice(const char *dev)
{
    if (strcmp(dev, "auto") != 0)
        return dev;
    return access("/dev/nvidia0", F_OK) == 0 ? "cuda" : "cpu";
}

static int load_layers(mg_session *s, char **err)
{
    const mg_engine_api *e = mg_engine();
    int n = e->am_model_num_layers(s->model);
    if (n < 0) {
        *err = mg_asprintf("listing the layers failed: %s", e->am_model_error(s->model));
        return -1;
    }
    s->layers = mg_xcalloc(n ? (size_t)n : 1, sizeof *s->layers);
    for (int i = 0; i < n; i++)
        e->am_model_layer(s->model, i, &s->layers[i]);
    s->n_layers = n;
    return 0;
}

static int64_t total_params(const mg_session *s)
{
    /* Top-level modules own everything; nested paths would count twice. */
    int64_t sum = 0;
    for (int i = 0; i < s->n_layers; i++)
        if (!strchr(s->layers[i].name, '.'))
            sum += s->layers[i].params;
    return sum;
}

static void model_summary(const mg_call *c, const mg_session *s)
{
    const mg_engine_api *e = mg_engine();
    am_model *m = s->model;
    int64_t in[AM_MAX_DIMS];
    int nd = e->am_model_input_shape(m, in, AM_MAX_DIMS);
    mg_str shape = MG_STR_INIT, labels = MG_STR_INIT;
    shape_text(&shape, in, nd > 0 ? nd : 0);
    int nl = e->am_model_num_labels(m);
    for (int i = 0; i < nl; i++)
        mg_str_addf(&labels, "%s%s", i ? ", " : "", e->am_model_label(m, i));
    char *layers = mg_asprintf("%d", s->n_layers);
    char *params = mg_asprintf("%lld", (long long)total_params(s));
    const char *note = e->am_model_note(m);
    const char *rows[][2] = {
        {"model", s->model_name},
        {"file", s->model_path},
        {"kind", e->am_model_kind(m)},
        {"input", mg_str_cstr(&shape)},
        {"layers", layers},
        {"parameters", params},
        {"labels", nl ? mg_str_cstr(&labels) : "(none)"},
        {"dataset", e->am_model_dataset(m)[0] ? e->am_model_dataset(m) : "(none)"},
        {"device", e->am_model_device(m)},
        {"note", note && note[0] ? note : "metadata complete; no defaults taken"},
    };
    const char *cells[20];
    for (int i = 0; i < 10; i++) {
        cells[2 * i] = rows[i][0];
        cells[2 * i + 1] = rows[i][1];
    }
    render_table t = {.n_cols = 2, .n_rows = 10, .cells = cells};
    mg_send_table(c, &t);
    free(layers);
    free(params);
    mg_str_free(&shape);
    mg_str_free(&labels);
}

mg_status mg_magic_model(mg_call *c)
{
    mg_session *s = session_of(c);
    if (!c->positional) {
        if (!s->model)
            return need_model(c, s);
        model_summary(c, s);
        return MG_OK;
    }
    const mg_engine_api *e = mg_engine();
    int64_t shape[AM_MAX_DIMS];
    int nd = 0;
    if (mg_given(c, "input")) {
        nd = parse_shape(mg_string(c, "input"), shape, AM_MAX_DIMS);
        if (nd <= 0)
            return mg_fail(c, "ValueError",
                           "input=%s is not a shape: write the input without the batch "
                           "dimension as CxHxW, e.g. input=3x224x224 (or T for text)",
                           mg_string(c, "input"));
    }
    char *err = NULL;
    char *path = resolve_model(c->positional, &err);
    if (!path) {
        mg_status st = mg_fail(c, "ModelNotFoundError", "%s", err);
        free(err);
        return st;
    }
    const char *dev = device_choice(mg_enum(c, "device"));
    am_model *m = NULL;
    int rc = e->am_model_load(path, dev, nd ? shape : NULL, nd, &m);
    if (rc != AM_OK) {
        /* The previous model stays: a failed load changes nothing. */
        mg_status st = mg_fail(c, "ModelError", "%s could not be loaded (%s): %s%s", path,
                               e->am_strerror(rc), m ? e->am_model_error(m) : "",
                               s->model ? "\nThe previous model is still loaded." : "");
        e->am_model_free(m);
        free(path);
        return st;
    }
    mg_session fresh = {0};
    fresh.model = m;
    if (load_layers(&fresh, &err) != 0) {
        mg_status st = mg_fail(c, "ModelError", "%s: %s", path, err);
        free(err);
        e->am_model_free(m);
        free(path);
        return st;
    }
    drop_model(s);
    s->model = m;
    s->layers = fresh.layers;
    s->n_layers = fresh.n_layers;
    s->model_name = mg_strdup(c->positional);
    s->model_path = path;
    model_summary(c, s);
    return MG_OK;
}

/* ================================================================ %layers */

static bool layer_matches(const char *name, const char *pat)
{
    if (!pat || !pat[0])
        return true;
    if (strpbrk(pat, "*?["))
        return fnmatch(pat, name, 0) == 0;
    return strstr(name, pat) != NULL;
}

mg_status mg_magic_layers(mg_call *c)
{
    mg_session *s = session_of(c);
    if (need_model(c, s) != MG_OK)
        return MG_ERROR;
    const char *pat = c->positional;
    int n = 0;
    for (int i = 0; i < s->n_layers; i++)
        n += layer_matches(s->layers[i].name, pat);
    if (n == 0) {
        const char **names = mg_xcalloc((size_t)s->n_layers + 1, sizeof *names);
        for (int i = 0; i < s->n_layers; i++)
            names[i] = s->layers[i].name;
        const char *best = mg_closest(pat, names, (size_t)s->n_layers);
        mg_status st = mg_fail(c, "LayerError",
                               "no layer of %s matches '%s'%s%s%s; %%layers alone lists all %d",
                               s->model_name, pat, best ? " (closest: " : "", best ? best : "",
                               best ? ")" : "", s->n_layers);
        free(names);
        return st;
    }
    char **cells = mg_xcalloc((size_t)n * 5, sizeof *cells);
    int r = 0;
    for (int i = 0; i < s->n_layers; i++) {
        const am_layer_info *L = &s->layers[i];
        if (!layer_matches(L->name, pat))
            continue;
        mg_str sh = MG_STR_INIT;
        if (L->ndim)
            shape_text(&sh, L->shape, L->ndim);
        else
            mg_str_add(&sh, "-");
        cells[r * 5 + 0] = mg_strdup(L->name);
        cells[r * 5 + 1] = mg_strdup(L->type);
        cells[r * 5 + 2] = mg_str_steal(&sh);
        cells[r * 5 + 3] = mg_asprintf("%lld", (long long)L->params);
        cells[r * 5 + 4] = mg_asprintf("%d", L->calls);
        r++;
    }
    const char *header[] = {"layer", "type", "output (batch first)", "params", "calls"};
    char *cap = mg_asprintf("%s: %d of %d layers", s->model_name, n, s->n_layers);
    render_table t = {.n_cols = 5, .n_rows = n, .header = header,
                      .cells = (const char *const *)cells, .caption = cap};
    mg_send_table(c, &t);
    for (int i = 0; i < n * 5; i++)
        free(cells[i]);
    free(cells);
    free(cap);
    return MG_OK;
}

char *mg_session_inspect(mg_session *s, const char *code, size_t len, size_t cursor)
{
    if (!s || !s->model)
        return NULL;
    size_t a = cursor, b = cursor;
    while (a > 0 && is_layer_char((unsigned char)code[a - 1]))
        a--;
    while (b < len && is_layer_char((unsigned char)code[b]))
        b++;
    const am_layer_info *L = find_layer(s, code + a, b - a);
    if (!L)
        return NULL;
    mg_str t = MG_STR_INIT;
    mg_str_addf(&t, "%s  (%s)\noutput: ", L->name, L->type);
    shape_text(&t, L->shape, L->ndim);
    mg_str_addf(&t, "  batch first\nparameters: %lld\ncalls per forward: %d\n",
                (long long)L->params, L->calls);
    if (L->ndim >= 2)
        mg_str_addf(&t, "objective: %s[c] with c in 0..%lld\n", L->name,
                    (long long)L->shape[1] - 1);
    return mg_str_steal(&t);
}

/* Completion of layer paths in an objective, and labels inside ["..."]. */
void mg_magic_objective_complete(const mg_complete_ctx *cx, mg_completions *out)
{
    if (!cx->in_positional || cx->key)
        return;
    mg_session *s = mg_interp_session(cx->interp);
    if (!s->model)
        return;
    const mg_engine_api *e = mg_engine();
    size_t ws = cx->cursor;
    /* Inside a quoted label: the text since the opening quote after '[' or ','. */
    size_t q = ws;
    while (q > 0 && cx->args[q - 1] != '"' && cx->args[q - 1] != '\'' && cx->args[q - 1] != '[' &&
           cx->args[q - 1] != ']')
        q--;
    if (q > 1 && (cx->args[q - 1] == '"' || cx->args[q - 1] == '\'')) {
        size_t k = q - 1;
        while (k > 0 && cx->args[k - 1] == ' ')
            k--;
        if (k > 0 && (cx->args[k - 1] == '[' || cx->args[k - 1] == ',') && e) {
            char quote = cx->args[q - 1];
            size_t plen = ws - q;
            for (int i = 0; i < e->am_model_num_labels(s->model); i++) {
                const char *lab = e->am_model_label(s->model, i);
                if (strncmp(lab, cx->args + q, plen) == 0) {
                    char *cand = mg_asprintf("%s%c]", lab, quote);
                    mg_completions_add(out, cand);
                    free(cand);
                }
            }
            mg_completions_from(out, cx, q);
            return;
        }
    }
    while (ws > 0 && is_layer_char((unsigned char)cx->args[ws - 1]))
        ws--;
    size_t plen = cx->cursor - ws;
    for (int i = 0; i < s->n_layers; i++)
        if (strncmp(s->layers[i].name, cx->args + ws, plen) == 0)
            mg_completions_add(out, s->layers[i].name);
    mg_completions_from(out, cx, ws);
}

/* ================================================================ images in */

/* Decodes a PNG (libpng's simplified API) to (C, H, W) floats in [0, 1],
 * C = 1 or 3 as asked, resized with nearest neighbour to h x w. NULL with
 * *err when the file is missing or not a readable PNG. */
static float *read_png(const char *path, int c, int h, int w, char **err)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path)) {
        *err = mg_asprintf("init=%s cannot be used as the initial image: %s; give a readable "
                           "PNG file, or init=noise",
                           path, im.message[0] ? im.message : "unreadable");
        png_image_free(&im);
        return NULL;
    }
    im.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    if (im.width > 16384 || im.height > 16384) {
        *err = mg_asprintf("init=%s is %ux%u pixels; the largest accepted is 16384x16384", path,
                           im.width, im.height);
        png_image_free(&im);
        return NULL;
    }
    size_t stride = PNG_IMAGE_ROW_STRIDE(im);
    unsigned char *buf = mg_xmalloc(PNG_IMAGE_BUFFER_SIZE(im, stride));
    if (!png_image_finish_read(&im, NULL, buf, (png_int_32)stride, NULL)) {
        *err = mg_asprintf("init=%s is not a valid PNG (%s); give a readable PNG file, or "
                           "init=noise",
                           path, im.message);
        free(buf);
        png_image_free(&im);
        return NULL;
    }
    float *out = mg_xmalloc((size_t)c * (size_t)h * (size_t)w * sizeof(float)); /* (C, H, W) */
    for (int y = 0; y < h; y++) {
        unsigned sy = (unsigned)((long long)y * im.height / h);
        for (int x = 0; x < w; x++) {
            unsigned sx = (unsigned)((long long)x * im.width / w);
            for (int k = 0; k < c; k++)
                out[((size_t)k * h + y) * w + x] = buf[sy * stride + sx * (unsigned)c + k] / 255.0f;
        }
    }
    free(buf);
    return out;
}

/* ================================================================ live display */

/* %maximize's live display: the progress bar with the latest image. */
typedef struct live {
    mg_live d;
    const char *label;
    render_png img;        /* latest image received */
    int last_step, steps;
    double last_obj;
} live;

static void live_send(live *L, int step, double obj)
{
    mg_live_progress(&L->d, step, L->steps, obj, L->label, &L->img);
}

static int live_progress(void *user, const am_progress *p)
{
    live *L = user;
    L->last_step = p->step;
    L->last_obj = p->objective;
    if (p->image) {
        int64_t one[4] = {p->image_shape[0], p->image_shape[1], p->image_shape[2],
                          p->image_shape[3]};
        render_png_clear(&L->img);
        if (one[0] > 1) {
            render_grid_opts go = {.min_cell_px = 64, .gutter_px = 4};
            render_grid_png(p->image, (int)one[0], (int)one[1], (int)one[2], (int)one[3], NULL,
                            &go, &L->img);
        } else {
            render_png_encode(p->image, (int)one[1], (int)one[2], (int)one[3], 128, &L->img);
        }
    }
    if (mg_live_interrupted(&L->d))
        return 1;
    if (mg_live_due(&L->d))
        live_send(L, p->step, p->objective);
    return 0;
}

/* ================================================================ results */

static int parse_run_ref(const mg_call *c, mg_session *s, mg_run_rec **out)
{
    const char *ref = c->positional;
    if (s->n_runs == 0) {
        mg_fail(c, "NoRunError", "no runs yet in this session: run %%maximize OBJECTIVE (images) "
                "or %%tokens OBJECTIVE (text) first");
        return -1;
    }
    if (!ref || strcmp(ref, "last") == 0) {
        *out = &s->runs[s->n_runs - 1];
        return 0;
    }
    char *end;
    long v = strtol(ref, &end, 10);
    if (*end || end == ref || v < 1 || v > s->n_runs) {
        mg_fail(c, "ValueError", "run '%s' does not exist: give `last` or a run number 1..%d (see %%runs)",
                ref, s->n_runs);
        return -1;
    }
    *out = &s->runs[v - 1];
    return 0;
}

static char **final_captions(const mg_run_rec *r, int b)
{
    const mg_engine_api *e = mg_engine();
    int nb = 0;
    const float *fin = e->am_run_final(r->run, &nb);
    char **caps = mg_xcalloc((size_t)b, sizeof *caps);
    for (int i = 0; i < b; i++)
        caps[i] = mg_asprintf("#%d  %.4g", i, fin && i < nb ? fin[i] : NAN);
    return caps;
}

static int run_image_png(const mg_run_rec *r, render_png *png)
{
    const mg_engine_api *e = mg_engine();
    int64_t shape[4];
    const float *img = e->am_run_images(r->run, shape);
    if (!img)
        return RENDER_EINVAL;
    if (shape[0] == 1)
        return images_png(img, shape, NULL, NULL, RENDER_MIN_PX, png);
    char **caps = final_captions(r, (int)shape[0]);
    int rc = images_png(img, shape, (const char *const *)caps, NULL, RENDER_MIN_PX, png);
    for (int i = 0; i < shape[0]; i++)
        free(caps[i]);
    free(caps);
    return rc;
}

static int run_plot_png(const mg_run_rec *r, render_png *png)
{
    const mg_engine_api *e = mg_engine();
    int steps = 0;
    const float *curve = e->am_run_curve(r->run, &steps);
    int nt = e->am_run_num_terms(r->run);
    /* The total, then each term when there is more than one. */
    int ns = 1 + (nt > 1 ? nt : 0);
    render_series *ser = mg_xcalloc((size_t)ns, sizeof *ser);
    float *xs = mg_xmalloc((size_t)(steps ? steps : 1) * sizeof(float)); /* (S) */
    for (int i = 0; i < steps; i++)
        xs[i] = (float)(i + 1);
    ser[0] = (render_series){"objective", xs, curve, steps};
    for (int i = 0; i + 1 < ns; i++)
        ser[i + 1] = (render_series){e->am_run_term_name(r->run, i), xs,
                                     e->am_run_term_curve(r->run, i), e->am_run_steps(r->run)};
    float *vl = mg_xcalloc((size_t)r->n_thresholds + 1, sizeof *vl);
    char **vlab = mg_xcalloc((size_t)r->n_thresholds + 1, sizeof *vlab);
    for (int i = 0; i < r->n_thresholds; i++) {
        vl[i] = (float)r->thresholds[i];
        vlab[i] = mg_asprintf("step %d", r->thresholds[i]);
    }
    char *title = mg_asprintf("run %d: %s", r->id, r->objective);
    render_plot_opts po = {.width = 640, .height = 360, .title = title, .xlabel = "step",
                           .ylabel = "objective", .vlines = vl,
                           .vline_labels = (const char *const *)vlab,
                           .n_vlines = r->n_thresholds};
    int rc = render_plot_png(ser, ns, &po, png);
    for (int i = 0; i < r->n_thresholds; i++)
        free(vlab[i]);
    free(vlab);
    free(vl);
    free(title);
    free(xs);
    free(ser);
    return rc;
}

static char *run_summary_text(const mg_run_rec *r)
{
    const mg_engine_api *e = mg_engine();
    int nb = 0;
    const float *fin = e->am_run_final(r->run, &nb);
    int64_t shape[4] = {0};
    e->am_run_images(r->run, shape);
    double secs = e->am_run_seconds(r->run);
    int steps = e->am_run_steps(r->run);
    mg_str t = MG_STR_INIT;
    mg_str_addf(&t, "run %d: %s%s\n", r->id, r->objective,
                e->am_run_cancelled(r->run) ? "  (interrupted: best result so far)" : "");
    mg_str_addf(&t, "final activation:");
    for (int i = 0; i < nb && i < 16; i++)
        mg_str_addf(&t, " %.4g", fin[i]);
    mg_str_addf(&t, "\nsteps %d, %.2f s (%.1f steps/s), image %lldx%lldx%lld x%lld\n", steps,
                secs, secs > 0 ? steps / secs : 0.0, (long long)shape[1], (long long)shape[2],
                (long long)shape[3], (long long)shape[0]);
    if (r->options && r->options[0])
        mg_str_addf(&t, "options: %s\n", r->options);
    return mg_str_steal(&t);
}

static char *run_summary_json(const mg_run_rec *r)
{
    const mg_engine_api *e = mg_engine();
    int nb = 0;
    const float *fin = e->am_run_final(r->run, &nb);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "run", r->id);
    cJSON_AddStringToObject(o, "objective", r->objective);
    cJSON_AddStringToObject(o, "engine_objective", r->engine_obj);
    cJSON_AddStringToObject(o, "options", r->options ? r->options : "");
    cJSON_AddNumberToObject(o, "steps", e->am_run_steps(r->run));
    cJSON_AddNumberToObject(o, "seconds", e->am_run_seconds(r->run));
    cJSON_AddBoolToObject(o, "cancelled", e->am_run_cancelled(r->run));
    cJSON_AddNumberToObject(o, "live_updates", r->live_updates);
    cJSON *f = cJSON_AddArrayToObject(o, "final");
    for (int i = 0; i < nb; i++)
        cJSON_AddItemToArray(f, cJSON_CreateNumber(isfinite(fin[i]) ? fin[i] : 0.0));
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = mg_strdup(txt ? txt : "{}");
    cJSON_free(txt);
    return out;
}

/* The snapshots at the thresholds, then the result: image 0 of the batch
 * at each, as one row showing how the image formed. */
static void show_snapshots(const mg_call *c, const mg_run_rec *r)
{
    const mg_engine_api *e = mg_engine();
    int ns = e->am_run_num_snapshots(r->run);
    if (ns <= 0)
        return;
    int64_t shape[4];
    const float *fin = e->am_run_images(r->run, shape);
    if (!fin)
        return;
    size_t per = (size_t)(shape[1] * shape[2] * shape[3]);
    float *pix = mg_xmalloc((size_t)(ns + 1) * per * sizeof(float)); /* (ns + 1, C, H, W) */
    char **caps = mg_xcalloc((size_t)ns + 1, sizeof *caps);
    int n = 0;
    for (int k = 0; k < ns; k++) {
        int step = 0;
        int64_t sshape[4];
        const float *img = e->am_run_snapshot(r->run, k, &step, sshape);
        if (!img || sshape[1] != shape[1] || sshape[2] != shape[2] || sshape[3] != shape[3])
            continue;
        memcpy(pix + (size_t)n * per, img, per * sizeof(float));
        caps[n++] = mg_asprintf("step %d", step);
    }
    memcpy(pix + (size_t)n * per, fin, per * sizeof(float));
    caps[n++] = mg_asprintf("final (step %d)", e->am_run_steps(r->run));
    render_grid_opts go = {.min_cell_px = 128, .columns = n};
    render_png png = {0};
    if (render_grid_png(pix, n, (int)shape[1], (int)shape[2], (int)shape[3],
                        (const char *const *)caps, &go, &png) == RENDER_OK) {
        mg_bundle *b = mg_bundle_new();
        char *text = mg_asprintf("<snapshots of run %d at %d steps>", r->id, n - 1);
        mg_bundle_text(b, "text/plain", text);
        bundle_png(b, &png);
        mg_sink_display(c->out, b, NULL);
        mg_bundle_free(b);
        free(text);
    }
    render_png_clear(&png);
    for (int i = 0; i < n; i++)
        free(caps[i]);
    free(caps);
    free(pix);
}

static void show_run(const mg_call *c, const mg_run_rec *r)
{
    if (r->text) {
        mg_text_rec_show(c, r->text, r->id, r->objective, r->options);
        return;
    }
    render_png png = {0};
    mg_bundle *b = mg_bundle_new();
    char *text = run_summary_text(r);
    mg_bundle_text(b, "text/plain", text);
    if (run_image_png(r, &png) == RENDER_OK)
        bundle_png(b, &png);
    else
        mg_sink_printf(c->out, "(image not rendered: %s)\n", render_last_error());
    char *json = run_summary_json(r);
    mg_bundle_json(b, "application/json", json);
    /* The notebook shows the PNG of this bundle, not its text: the key
     * figures go out as a line of text too. */
    {
        const mg_engine_api *e = mg_engine();
        int nb = 0;
        const float *fin = e->am_run_final(r->run, &nb);
        double secs = e->am_run_seconds(r->run);
        mg_sink_printf(c->out, "run %d: %s = %.4g%s after %d steps in %.2f s%s\n", r->id,
                       r->objective, nb ? fin[0] : NAN, nb > 1 ? " (image 0)" : "",
                       e->am_run_steps(r->run), secs,
                       e->am_run_cancelled(r->run) ? ", interrupted: best result so far" : "");
    }
    mg_sink_display(c->out, b, NULL);
    mg_bundle_free(b);
    render_png_clear(&png);
    free(json);

    show_snapshots(c, r);

    b = mg_bundle_new();
    char *ptext = mg_asprintf("<plot: objective over %d steps>", mg_engine()->am_run_steps(r->run));
    mg_bundle_text(b, "text/plain", ptext);
    if (run_plot_png(r, &png) == RENDER_OK) {
        bundle_png(b, &png);
        mg_sink_display(c->out, b, NULL);
    }
    mg_bundle_free(b);
    render_png_clear(&png);
    free(ptext);
    free(text);
}

/* ================================================================ %maximize */

/* "16,32,64" -> ascending steps within 1..steps; count or -1 with *err. */
static int parse_thresholds(const char *text, int steps, int **out, char **err)
{
    int n = 0, cap = 8;
    *out = mg_xcalloc((size_t)cap, sizeof(int));
    const char *p = text;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > steps || (n && v <= (*out)[n - 1])) {
            *err = mg_asprintf("thresholds=%s: give ascending steps between 1 and steps=%d "
                               "separated by commas, e.g. thresholds=16,64,%d",
                               text, steps, steps);
            free(*out);
            *out = NULL;
            return -1;
        }
        if (n == cap)
            *out = mg_xrealloc(*out, (size_t)(cap *= 2) * sizeof(int));
        (*out)[n++] = (int)v;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return n;
}

/* The first layer named in an objective, for the diversity term. */
static char *first_layer(const char *obj)
{
    const char *p = obj;
    while (*p && !(isalpha((unsigned char)*p) || *p == '_'))
        p++;
    const char *q = p;
    while (*q && is_layer_char((unsigned char)*q))
        q++;
    return q > p ? mg_strndup(p, (size_t)(q - p)) : NULL;
}

static void add_run(mg_session *s, mg_run_rec *r)
{
    if (s->n_runs == s->cap_runs) {
        s->cap_runs = s->cap_runs ? 2 * s->cap_runs : 8;
        s->runs = mg_xrealloc(s->runs, (size_t)s->cap_runs * sizeof *s->runs);
    }
    r->id = s->n_runs + 1;
    s->runs[s->n_runs++] = *r;
}

mg_status mg_magic_maximize(mg_call *c)
{
    mg_session *s = session_of(c);
    if (need_model(c, s) != MG_OK)
        return MG_ERROR;
    const mg_engine_api *e = mg_engine();
    if (!c->positional || !c->positional[0])
        return mg_fail(c, "ValueError", "%%maximize needs an objective, e.g. %%maximize conv2[5]");
    am_options o;
    e->am_options_default(&o);
    mg_run_rec rec = {0};
    rec.objective = mg_strdup(c->positional);
    double div = mg_float(c, "diversity");
    if (div != 0) {
        char *layer = first_layer(c->positional);
        rec.engine_obj = mg_asprintf("(%s) + %.9g*diversity(%s)", c->positional, div,
                                     layer ? layer : "output");
        free(layer);
    } else {
        rec.engine_obj = mg_strdup(c->positional);
    }
    const char *objs[1] = {rec.engine_obj};
    o.objectives = objs;
    o.n_objectives = 1;
    o.batch = (int)mg_int(c, "batch");
    o.steps = (int)mg_int(c, "steps");
    o.lr = (float)mg_float(c, "lr");
    o.optimizer = strcmp(mg_enum(c, "optimizer"), "sgd") == 0 ? AM_OPT_SGD : AM_OPT_ADAM;
    o.momentum = (float)mg_float(c, "momentum");
    o.seed = (uint64_t)mg_int(c, "seed");
    o.param = strcmp(mg_enum(c, "param"), "pixel") == 0 ? AM_PARAM_PIXEL : AM_PARAM_FFT;
    o.decorrelate = mg_bool(c, "decorrelate");
    o.decay_power = (float)mg_float(c, "decay_power");
    o.transforms = mg_bool(c, "transforms");
    o.pad = (int)mg_int(c, "pad");
    o.jitter = (int)mg_int(c, "jitter");
    o.scale_min = (float)mg_float(c, "scale_min");
    o.scale_max = (float)mg_float(c, "scale_max");
    o.rotate_deg = (float)mg_float(c, "rotate");
    o.l1 = (float)mg_float(c, "l1");
    o.l2 = (float)mg_float(c, "l2");
    o.tv = (float)mg_float(c, "tv");
    o.blur = (float)mg_float(c, "blur");
    o.init_std = (float)mg_float(c, "init_std");
    if (o.scale_min > o.scale_max) {
        mg_status st = mg_fail(c, "ValueError", "scale_min=%g is above scale_max=%g: give scale_min <= scale_max",
                               o.scale_min, o.scale_max);
        free(rec.objective);
        free(rec.engine_obj);
        return st;
    }
    int64_t in[AM_MAX_DIMS];
    int nd = e->am_model_input_shape(s->model, in, AM_MAX_DIMS);
    if (strcmp(e->am_model_kind(s->model), "image") != 0 || nd != 3) {
        free(rec.objective);
        free(rec.engine_obj);
        return mg_fail(c, "UnsupportedError",
                       "%%maximize optimizes images; %s is a %s model: optimize a prompt with "
                       "%%tokens OBJECTIVE, e.g. %%tokens blocks.2.mlp.act[-1, 123] len=8",
                       s->model_name, e->am_model_kind(s->model));
    }
    o.height = o.width = 0;
    if (mg_given(c, "size"))
        o.height = o.width = mg_int(c, "size");
    int64_t H = o.height ? o.height : in[1], W = o.width ? o.width : in[2];
    char *err = NULL;
    float *init = NULL; /* (B, C, H, W) */
    const char *init_arg = mg_string(c, "init");
    if (init_arg[0] && strcmp(init_arg, "noise") != 0) {
        float *one = read_png(init_arg, (int)in[0], (int)H, (int)W, &err);
        if (!one) {
            mg_status st = mg_fail(c, "ImageError", "%s", err);
            free(err);
            free(rec.objective);
            free(rec.engine_obj);
            return st;
        }
        size_t per = (size_t)in[0] * (size_t)H * (size_t)W;
        init = mg_xmalloc(per * (size_t)o.batch * sizeof(float));
        for (int b = 0; b < o.batch; b++)
            memcpy(init + per * (size_t)b, one, per * sizeof(float));
        free(one);
        o.init = AM_INIT_IMAGE;
        o.init_image = init;
    }
    if (mg_string(c, "thresholds")[0]) {
        int n = parse_thresholds(mg_string(c, "thresholds"), o.steps, &rec.thresholds, &err);
        if (n < 0) {
            mg_status st = mg_fail(c, "ValueError", "%s", err);
            free(err);
            free(init);
            free(rec.objective);
            free(rec.engine_obj);
            return st;
        }
        rec.n_thresholds = n;
        o.thresholds = rec.thresholds;
        o.n_thresholds = n;
    }
    live L = {0};
    mg_live_init(&L.d, c, "run");
    L.label = rec.objective;
    L.steps = o.steps;
    L.last_obj = NAN;
    o.progress = live_progress;
    o.progress_user = &L;
    int every = (int)mg_int(c, "image_every");
    o.image_every = every ? every : (o.steps >= 64 ? o.steps / 16 : 4);
    live_send(&L, 0, NAN);

    am_run *run = NULL;
    int rc = e->am_run_new(s->model, &o, &run);
    free(init);
    if (rc != AM_OK) {
        mg_live_send(&L.d, "run failed before its first step",
                     "<i>run failed before its first step</i>");
        mg_status st = mg_fail(c, "ObjectiveError", "%s: %s", e->am_strerror(rc),
                               run ? e->am_run_error(run) : "");
        e->am_run_free(run);
        render_png_clear(&L.img);
        free(rec.objective);
        free(rec.engine_obj);
        free(rec.thresholds);
        return st;
    }
    /* The last state always reaches the display, throttle or not. */
    render_png_clear(&L.img);
    rec.run = run;
    {
        /* Small in the live display: the full-size result follows it. */
        int64_t shape[4];
        const float *img = e->am_run_images(run, shape);
        if (img)
            images_png(img, shape, NULL, NULL, 128, &L.img);
    }
    live_send(&L, L.last_step, L.last_obj);
    render_png_clear(&L.img);
    rec.live_updates = L.d.updates;
    rec.options = mg_asprintf("steps=%d lr=%g batch=%d seed=%llu optimizer=%s param=%s "
                              "transforms=%s diversity=%g",
                              o.steps, o.lr, o.batch, (unsigned long long)o.seed,
                              mg_enum(c, "optimizer"), mg_enum(c, "param"),
                              o.transforms ? "on" : "off", div);
    add_run(s, &rec);
    show_run(c, &s->runs[s->n_runs - 1]);
    if (mg_bool(c, "verbose"))
        mg_sink_printf(c->out, "live display updates sent: %d\n", L.d.updates);
    if (e->am_run_cancelled(run) || L.d.stopped)
        return MG_INTERRUPTED;
    return MG_OK;
}

/* ================================================================ %tokens */

mg_status mg_magic_tokens(mg_call *c)
{
    mg_session *s = session_of(c);
    if (need_model(c, s) != MG_OK)
        return MG_ERROR;
    mg_run_rec rec = {0};
    mg_status st = mg_tokens_run(c, s->model, s->model_name, &rec.text, &rec.options);
    if (!rec.text)
        return st;
    rec.objective = mg_strdup(c->positional);
    rec.engine_obj = mg_strdup(c->positional);
    rec.live_updates = mg_text_rec_live_updates(rec.text);
    add_run(s, &rec);
    show_run(c, &s->runs[s->n_runs - 1]);
    return st;
}

/* ================================================================ %runs %show %save */

mg_status mg_magic_runs(mg_call *c)
{
    mg_session *s = session_of(c);
    const mg_engine_api *e = mg_engine();
    if (s->n_runs == 0) {
        mg_sink_printf(c->out, "no runs yet in this session\n");
        return MG_OK;
    }
    char **cells = mg_xcalloc((size_t)s->n_runs * 6, sizeof *cells);
    for (int i = 0; i < s->n_runs; i++) {
        mg_run_rec *r = &s->runs[i];
        int nb = 0;
        const float *fin = NULL;
        if (r->text) {
            cells[i * 6 + 0] = mg_asprintf("%d", r->id);
            cells[i * 6 + 1] = mg_strdup(r->objective);
            cells[i * 6 + 2] = mg_asprintf("%d", mg_text_rec_steps(r->text));
            cells[i * 6 + 3] = mg_asprintf("%.4g", mg_text_rec_final(r->text));
            cells[i * 6 + 4] = mg_asprintf("%.2f", mg_text_rec_seconds(r->text));
            cells[i * 6 + 5] = mg_strdup(r->options);
            continue;
        }
        fin = e->am_run_final(r->run, &nb);
        cells[i * 6 + 0] = mg_asprintf("%d", r->id);
        cells[i * 6 + 1] = mg_strdup(r->objective);
        cells[i * 6 + 2] = mg_asprintf("%d", e->am_run_steps(r->run));
        cells[i * 6 + 3] = mg_asprintf("%.4g", nb ? fin[0] : NAN);
        cells[i * 6 + 4] = mg_asprintf("%.2f", e->am_run_seconds(r->run));
        cells[i * 6 + 5] = mg_strdup(r->options);
    }
    const char *header[] = {"run", "objective", "steps", "final", "seconds", "options"};
    render_table t = {.n_cols = 6, .n_rows = s->n_runs, .header = header,
                      .cells = (const char *const *)cells};
    mg_send_table(c, &t);
    for (int i = 0; i < s->n_runs * 6; i++)
        free(cells[i]);
    free(cells);
    return MG_OK;
}

mg_status mg_magic_show(mg_call *c)
{
    mg_run_rec *r;
    if (parse_run_ref(c, session_of(c), &r) != 0)
        return MG_ERROR;
    show_run(c, r);
    return MG_OK;
}

mg_status mg_magic_save(mg_call *c)
{
    mg_run_rec *r;
    if (parse_run_ref(c, session_of(c), &r) != 0)
        return MG_ERROR;
    const char *path = mg_string(c, "path");
    if (!path[0])
        return mg_fail(c, "ValueError", "%%save needs path=FILE.png, e.g. %%save last path=run.png");
    bool plot = strcmp(mg_enum(c, "what"), "plot") == 0;
    if (r->text && !plot) {
        /* A text run has no image: its result is the prompt, saved as the
         * bytes it decodes to. */
        const char *prompt = mg_text_rec_prompt(r->text);
        FILE *f = fopen(path, "wb");
        size_t n = strlen(prompt);
        if (!f || fwrite(prompt, 1, n, f) != n || fclose(f) != 0) {
            int en = errno;
            return mg_fail(c, "OSError", "cannot write %s: %s; give a path in a folder that "
                           "exists and is writable", path, strerror(en));
        }
        mg_sink_printf(c->out, "saved run %d prompt (%zu bytes of text) to %s\n", r->id, n, path);
        return MG_OK;
    }
    render_png png = {0};
    int rc = plot ? (r->text ? mg_text_rec_plot_png(r->text, r->id, r->objective, &png)
                             : run_plot_png(r, &png))
                  : run_image_png(r, &png);
    if (rc != RENDER_OK)
        return mg_fail(c, "RenderError", "%s", render_last_error());
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(png.data, 1, png.size, f) != png.size) {
        int en = errno;
        if (f)
            fclose(f);
        render_png_clear(&png);
        return mg_fail(c, "OSError", "cannot write %s: %s; give a path in a folder that exists "
                       "and is writable", path, strerror(en));
    }
    if (fclose(f) != 0) {
        render_png_clear(&png);
        return mg_fail(c, "OSError", "cannot write %s: %s", path, strerror(errno));
    }
    mg_sink_printf(c->out, "saved run %d %s (%dx%d PNG) to %s\n", r->id, plot ? "plot" : "image",
                   png.width, png.height, path);
    render_png_clear(&png);
    return MG_OK;
}

/* ================================================================ %device %seed */

static mg_status setting_magic(mg_call *c, const char *name)
{
    if (c->positional) {
        char *err = NULL;
        if (mg_setting_set(c->interp, name, c->positional, &err) != 0) {
            mg_status st = mg_fail(c, "ValueError", "%s", err);
            free(err);
            return st;
        }
    }
    const mg_value *v = mg_setting(c->interp, name);
    size_t idx = 0;
    const mg_key *k = mg_keys_find(mg_settings_table, name, &idx);
    char *txt = mg_value_format(k, v);
    mg_sink_printf(c->out, "%s = %s%s\n", name, txt,
                   strcmp(name, "device") == 0 && strcmp(txt, "auto") == 0
                       ? (access("/dev/nvidia0", F_OK) == 0 ? " (cuda here)" : " (cpu here)")
                       : "");
    free(txt);
    return MG_OK;
}

mg_status mg_magic_device(mg_call *c)
{
    return setting_magic(c, "device");
}

mg_status mg_magic_seed(mg_call *c)
{
    return setting_magic(c, "seed");
}

/* ================================================================ %examples */

#ifdef MG_HAVE_DATA
typedef struct top_item {
    float value;
    int64_t index;
    int64_t label;
} top_item;

static void top_insert(top_item *top, int *n, int k, top_item it)
{
    if (*n == k && it.value <= top[k - 1].value)
        return;
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && top[i - 1].value < it.value) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = it;
}
#endif

mg_status mg_magic_examples(mg_call *c)
{
    mg_session *s = session_of(c);
    if (need_model(c, s) != MG_OK)
        return MG_ERROR;
    if (!c->positional)
        return mg_fail(c, "ValueError", "%%examples needs an objective, e.g. %%examples conv2[5] k=16");
    if (strcmp(mg_engine()->am_model_kind(s->model), "text") == 0) {
        /* The latest prompt of the same objective goes beside the corpus. */
        const mg_run_rec *cmp = NULL;
        for (int i = s->n_runs - 1; i >= 0 && !cmp; i--)
            if (s->runs[i].text && strcmp(s->runs[i].objective, c->positional) == 0)
                cmp = &s->runs[i];
        return mg_tokens_examples(c, s->model, s->model_name, s->model_path,
                                  cmp ? mg_text_rec_prompt(cmp->text) : NULL,
                                  cmp ? mg_text_rec_final(cmp->text) : NAN, cmp ? cmp->id : 0);
    }
#ifndef MG_HAVE_DATA
    return mg_fail(c, "UnsupportedError",
                   "this kernel was built without the dataset readers (ext/data)");
#else
    const mg_engine_api *e = mg_engine();
    const char *dsname = e->am_model_dataset(s->model);
    if (strcmp(dsname, "fashion-mnist") != 0) {
        return mg_fail(c, "UnsupportedError", "%%examples reads the model's dataset; %s names "
                       "'%s', and only fashion-mnist images are supported",
                       s->model_name, dsname[0] ? dsname : "none");
    }
    am_dataset *ds = NULL;
    int rc = am_dataset_open(dsname, mg_enum(c, "split"), NULL, &ds);
    if (rc != 0) {
        mg_status st = mg_fail(c, "DatasetError", "%s: %s", e->am_strerror(rc),
                               ds ? am_dataset_error(ds) : "");
        am_dataset_free(ds);
        return st;
    }
    const float *mean = NULL, *sd = NULL;
    int nmean = 0;
    float range[2];
    e->am_model_normalization(s->model, &mean, &sd, &nmean, range);
    int k = (int)mg_int(c, "k");
    int64_t limit = mg_int(c, "limit");
    top_item *top = mg_xcalloc((size_t)k, sizeof *top);
    int ntop = 0;
    am_batch bt;
    float *x = NULL;     /* (B, C, H, W) normalized */
    size_t xcap = 0;
    float *vals = NULL;  /* (B) the objective of each item */
    size_t vcap = 0;
    int64_t seen = 0;
    mg_status st = MG_OK;
    double t0 = render_clock_monotonic(NULL);
    /* A live display, as for %maximize, over the items read. */
    int64_t total = am_dataset_size(ds);
    if (limit && limit < total)
        total = limit;
    live prog = {0};
    mg_live_init(&prog.d, c, "examples");
    prog.d.t0 = t0;
    prog.label = c->positional;
    prog.steps = (int)total;
    while ((!limit || seen < limit) &&
           am_dataset_next_batch(ds, limit && limit - seen < 256 ? limit - seen : 256, &bt) == 0 &&
           bt.count > 0) {
        if (mg_live_interrupted(&prog.d)) {
            st = MG_INTERRUPTED;
            break;
        }
        int64_t shp[4];
        am_dataset_item_shape(ds, shp + 1, 3);
        shp[0] = bt.count;
        size_t per = (size_t)(shp[1] * shp[2] * shp[3]), n = per * (size_t)bt.count;
        if (n > xcap)
            x = mg_xrealloc(x, (xcap = n) * sizeof(float));
        if ((size_t)bt.count > vcap)
            vals = mg_xrealloc(vals, (vcap = (size_t)bt.count) * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            int ch = (int)((i % per) / (size_t)(shp[2] * shp[3]));
            float m = nmean ? mean[ch % nmean] : 0, d = nmean ? sd[ch % nmean] : 1;
            x[i] = (bt.images[i] - m) / d;
        }
        am_input in = {.kind = AM_INPUT_FLOAT, .data = x, .ndim = 4};
        memcpy(in.shape, shp, sizeof shp);
        /* The engine evaluates the objective as a run would (the whole
         * language but diversity), per item. A bad objective fails on the
         * first batch, before anything is shown. */
        rc = e->am_model_objective(s->model, &in, c->positional, vals);
        if (rc != AM_OK) {
            const char *ename = rc == AM_E_LAYER       ? "LayerError"
                                : rc == AM_E_OBJECTIVE ? "ObjectiveError"
                                                       : "EngineError";
            if (rc == AM_E_LAYER || rc == AM_E_OBJECTIVE)
                st = mg_fail(c, ename, "%s", e->am_model_error(s->model));
            else
                st = mg_fail(c, ename, "%s: %s", e->am_strerror(rc), e->am_model_error(s->model));
            break;
        }
        for (int64_t b = 0; b < bt.count; b++) {
            top_item ti = {vals[b], bt.first + b, bt.labels[b]};
            top_insert(top, &ntop, k, ti);
        }
        seen += bt.count;
        if (mg_live_due(&prog.d))
            live_send(&prog, (int)seen, ntop ? top[0].value : NAN);
    }
    double secs = render_clock_monotonic(NULL) - t0;
    if (prog.d.shown)
        live_send(&prog, (int)(seen < total ? seen : total), ntop ? top[0].value : NAN);
    free(x);
    free(vals);
    /* Interrupted: the top k of the images read so far. */
    if ((st == MG_OK || st == MG_INTERRUPTED) && ntop > 0) {
        int64_t ishape[3];
        am_dataset_item_shape(ds, ishape, 3);
        size_t per = (size_t)(ishape[0] * ishape[1] * ishape[2]);
        /* The most recent run of the same objective goes first, to compare. */
        const mg_run_rec *cmp = NULL;
        for (int i = s->n_runs - 1; i >= 0 && !cmp; i--)
            if (!s->runs[i].text && strcmp(s->runs[i].objective, c->positional) == 0)
                cmp = &s->runs[i];
        int64_t rshape[4] = {0};
        const float *rimg = cmp ? e->am_run_images(cmp->run, rshape) : NULL;
        bool with_run = rimg && rshape[1] == ishape[0] && rshape[2] == ishape[1] &&
                        rshape[3] == ishape[2];
        int cells = ntop + (with_run ? 1 : 0);
        float *grid = mg_xmalloc((size_t)cells * per * sizeof(float)); /* (K, C, H, W) */
        char **caps = mg_xcalloc((size_t)cells, sizeof *caps);
        int g = 0;
        if (with_run) {
            int nb = 0;
            const float *fin = e->am_run_final(cmp->run, &nb);
            memcpy(grid, rimg, per * sizeof(float));
            caps[g++] = mg_asprintf("optimized (run %d) %.3g", cmp->id, nb ? fin[0] : NAN);
        }
        for (int i = 0; i < ntop; i++, g++) {
            am_batch one;
            am_dataset_item(ds, top[i].index, &one);
            memcpy(grid + (size_t)g * per, one.images, per * sizeof(float));
            const char *lab = am_dataset_label(ds, (int)top[i].label);
            caps[g] = mg_asprintf("%s %.3g", lab ? lab : "?", top[i].value);
        }
        char *title = mg_asprintf("top %d of %lld %s images for %s%s", ntop, (long long)seen,
                                  mg_enum(c, "split"), c->positional,
                                  st == MG_INTERRUPTED ? " (interrupted: the images read so far)" : "");
        int64_t gshape[4] = {cells, ishape[0], ishape[1], ishape[2]};
        render_png png = {0};
        render_grid_opts go = {.min_cell_px = 96, .title = title};
        mg_str text = MG_STR_INIT;
        mg_str_addf(&text, "%s (%.2f s)\n", title, secs);
        for (int i = 0; i < ntop; i++) {
            const char *lab = am_dataset_label(ds, (int)top[i].label);
            mg_str_addf(&text, "  #%lld %-12s %.6g\n", (long long)top[i].index, lab ? lab : "?",
                        top[i].value);
        }
        mg_bundle *b = mg_bundle_new();
        mg_bundle_text(b, "text/plain", mg_str_cstr(&text));
        if (render_grid_png(grid, cells, (int)gshape[1], (int)gshape[2], (int)gshape[3],
                            (const char *const *)caps, &go, &png) == RENDER_OK)
            bundle_png(b, &png);
        mg_sink_display(c->out, b, NULL);
        mg_bundle_free(b);
        render_png_clear(&png);
        mg_str_free(&text);
        free(title);
        for (int i = 0; i < cells; i++)
            free(caps[i]);
        free(caps);
        free(grid);
    }
    free(top);
    am_dataset_free(ds);
    if (mg_bool(c, "verbose"))
        mg_sink_printf(c->out, "live display updates sent: %d\n", prog.d.updates);
    return st;
#endif
}
