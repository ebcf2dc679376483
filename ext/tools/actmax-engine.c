/* actmax-engine — command-line runner over libactmax's C API, for tests and
 * quick inspection. Writes PGM/PPM images and raw float32 files, and a JSON
 * summary on stdout; no PNG or JSON library needed.
 *
 *   actmax-engine blas
 *   actmax-engine layers MODEL [--input CxHxW] [--device D]
 *   actmax-engine run MODEL OBJECTIVE... [options] [--out PREFIX]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actmax.h"

/* ---------------------------------------------------------------- helpers */

static void usage(FILE *f)
{
    fputs(
        "usage:\n"
        "  actmax-engine blas\n"
        "  actmax-engine layers MODEL [--input CxHxW] [--device cpu|cuda]\n"
        "  actmax-engine run MODEL OBJECTIVE... [--input CxHxW] [--device D] [--steps N] [--lr F]\n"
        "        [--seed N] [--batch N] [--size HxW] [--param fft|pixel] [--optimizer adam|sgd]\n"
        "        [--no-decorrelate] [--no-transforms] [--l1 F] [--l2 F] [--tv F] [--blur F]\n"
        "        [--out PREFIX]   writes PREFIX-K.pgm/.ppm per image and PREFIX.f32 (B,C,H,W)\n",
        f);
}

/* Parses "3x224x224" into dims; returns the count or -1. */
static int parse_dims(const char *s, int64_t *dims, int max)
{
    int n = 0;
    while (*s) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v <= 0 || n >= max)
            return -1;
        dims[n++] = (int64_t)v;
        s = end;
        if (*s == 'x' || *s == 'X')
            s++;
        else if (*s)
            return -1;
    }
    return n;
}

static int need_value(int i, int argc, const char *flag)
{
    if (i + 1 >= argc) {
        fprintf(stderr, "actmax-engine: %s needs a value\n", flag);
        return 0;
    }
    return 1;
}

/* Prints s as a JSON string. */
static void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* One image of the batch as binary PGM (1 channel) or PPM (3 channels). */
static int write_pnm(const char *path, const float *img, int64_t C, int64_t H, int64_t W)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fprintf(f, "%s\n%lld %lld\n255\n", C == 1 ? "P5" : "P6", (long long)W, (long long)H);
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            for (int64_t c = 0; c < (C == 1 ? 1 : 3); c++) {
                float v = img[(c < C ? c : 0) * H * W + y * W + x];
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                fputc((int)(v * 255.0f + 0.5f), f);
            }
    return fclose(f);
}

static int fail_model(am_model *m, int st)
{
    fprintf(stderr, "actmax-engine: %s: %s\n", am_strerror(st), am_model_error(m));
    am_model_free(m);
    return 1;
}

/* ---------------------------------------------------------------- commands */

static int cmd_blas(void)
{
    char buf[1024];
    int opt = 0;
    int st = am_blas_info(buf, sizeof buf, &opt);
    printf("{\"status\": %d, \"blas\": ", st);
    json_str(buf);
    printf(", \"optimized\": %s}\n", opt ? "true" : "false");
    return st == AM_OK && opt ? 0 : 1;
}

static int cmd_layers(am_model *m)
{
    int n = am_model_num_layers(m);
    if (n < 0)
        return fail_model(m, n);
    printf("{\"note\": ");
    json_str(am_model_note(m));
    printf(", \"layers\": [\n");
    for (int i = 0; i < n; i++) {
        am_layer_info info;
        int st = am_model_layer(m, i, &info);
        if (st != AM_OK)
            return fail_model(m, st);
        printf("  {\"name\": ");
        json_str(info.name);
        printf(", \"type\": ");
        json_str(info.type);
        printf(", \"params\": %lld, \"calls\": %d, \"shape\": [", (long long)info.params,
               info.calls);
        for (int d = 0; d < info.ndim; d++)
            printf("%s%lld", d ? ", " : "", (long long)info.shape[d]);
        printf("]}%s\n", i + 1 < n ? "," : "");
    }
    printf("]}\n");
    am_model_free(m);
    return 0;
}

static int cmd_run(am_model *m, am_options *o, const char *out)
{
    am_run *r = NULL;
    int st = am_run_new(m, o, &r);
    if (st != AM_OK) {
        fprintf(stderr, "actmax-engine: %s: %s\n", am_strerror(st), am_run_error(r));
        am_run_free(r);
        am_model_free(m);
        return 1;
    }
    int64_t shape[4];
    const float *img = am_run_images(r, shape);
    int steps = 0, batch = 0;
    const float *curve = am_run_curve(r, &steps);
    const float *fin = am_run_final(r, &batch);
    printf("{\"steps\": %d, \"seconds\": %.4f, \"steps_per_second\": %.3f, \"cancelled\": %s,\n",
           steps, am_run_seconds(r), steps / (am_run_seconds(r) > 0 ? am_run_seconds(r) : 1e-9),
           am_run_cancelled(r) ? "true" : "false");
    printf(" \"shape\": [%lld, %lld, %lld, %lld],\n", (long long)shape[0], (long long)shape[1],
           (long long)shape[2], (long long)shape[3]);
    printf(" \"final\": [");
    for (int b = 0; b < batch; b++)
        printf("%s%.6g", b ? ", " : "", fin[b]);
    printf("],\n \"curve\": [");
    for (int s = 0; s < steps; s++)
        printf("%s%.6g", s ? ", " : "", curve[s]);
    printf("],\n \"terms\": [");
    for (int t = 0; t < am_run_num_terms(r); t++) {
        printf("%s", t ? ", " : "");
        json_str(am_run_term_name(r, t));
    }
    printf("]");
    int rc = 0;
    if (out) {
        char path[4096];
        int64_t per = shape[1] * shape[2] * shape[3];
        snprintf(path, sizeof path, "%s.f32", out);
        FILE *f = fopen(path, "wb");
        if (!f ||
            fwrite(img, sizeof(float), (size_t)(per * shape[0]), f) != (size_t)(per * shape[0]))
            rc = 1;
        if (f && fclose(f) != 0)
            rc = 1;
        printf(",\n \"files\": [");
        json_str(path);
        for (int64_t b = 0; b < shape[0]; b++) {
            snprintf(path, sizeof path, "%s-%lld.%s", out, (long long)b,
                     shape[1] == 1 ? "pgm" : "ppm");
            if (write_pnm(path, img + b * per, shape[1], shape[2], shape[3]) != 0)
                rc = 1;
            printf(", ");
            json_str(path);
        }
        printf("]");
        if (rc)
            fprintf(stderr, "actmax-engine: cannot write output files under '%s': %s\n", out,
                    strerror(errno));
    }
    printf("}\n");
    am_run_free(r);
    am_model_free(m);
    return rc;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "blas"))
        return cmd_blas();
    if (strcmp(cmd, "layers") != 0 && strcmp(cmd, "run") != 0) {
        fprintf(stderr, "actmax-engine: unknown command '%s'; expected blas, layers or run\n", cmd);
        usage(stderr);
        return 2;
    }
    if (argc < 3) {
        fprintf(stderr, "actmax-engine: %s needs a MODEL file\n", cmd);
        return 2;
    }
    const char *model_path = argv[2], *device = "cpu", *out = NULL;
    int64_t input[AM_MAX_DIMS];
    int ninput = 0;
    const char *objectives[256];
    int nobj = 0;
    am_options o;
    am_options_default(&o);
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != '-') {
            if (nobj >= 256) {
                fprintf(stderr, "actmax-engine: at most 256 objectives\n");
                return 2;
            }
            objectives[nobj++] = a;
            continue;
        }
        if (!strcmp(a, "--no-transforms")) {
            o.transforms = 0;
            continue;
        }
        if (!strcmp(a, "--no-decorrelate")) {
            o.decorrelate = 0;
            continue;
        }
        if (!need_value(i, argc, a))
            return 2;
        const char *v = argv[++i];
        char *end = NULL;
        int64_t dims[2];
        if (!strcmp(a, "--input")) {
            ninput = parse_dims(v, input, AM_MAX_DIMS);
            if (ninput < 0) {
                fprintf(stderr, "actmax-engine: --input wants e.g. 3x224x224, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--device"))
            device = v;
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--steps"))
            o.steps = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--batch"))
            o.batch = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--seed"))
            o.seed = strtoull(v, &end, 10);
        else if (!strcmp(a, "--lr"))
            o.lr = strtof(v, &end);
        else if (!strcmp(a, "--l1"))
            o.l1 = strtof(v, &end);
        else if (!strcmp(a, "--l2"))
            o.l2 = strtof(v, &end);
        else if (!strcmp(a, "--tv"))
            o.tv = strtof(v, &end);
        else if (!strcmp(a, "--blur"))
            o.blur = strtof(v, &end);
        else if (!strcmp(a, "--size")) {
            if (parse_dims(v, dims, 2) != 2) {
                fprintf(stderr, "actmax-engine: --size wants HxW, got '%s'\n", v);
                return 2;
            }
            o.height = dims[0];
            o.width = dims[1];
        } else if (!strcmp(a, "--param")) {
            if (!strcmp(v, "fft"))
                o.param = AM_PARAM_FFT;
            else if (!strcmp(v, "pixel"))
                o.param = AM_PARAM_PIXEL;
            else {
                fprintf(stderr, "actmax-engine: --param wants fft or pixel, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--optimizer")) {
            if (!strcmp(v, "adam"))
                o.optimizer = AM_OPT_ADAM;
            else if (!strcmp(v, "sgd"))
                o.optimizer = AM_OPT_SGD;
            else {
                fprintf(stderr, "actmax-engine: --optimizer wants adam or sgd, got '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "actmax-engine: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (end && *end) {
            fprintf(stderr, "actmax-engine: %s wants a number, got '%s'\n", a, v);
            return 2;
        }
    }
    am_model *m = NULL;
    int st = am_model_load(model_path, device, ninput ? input : NULL, ninput, &m);
    if (st != AM_OK)
        return fail_model(m, st);
    if (!strcmp(cmd, "layers"))
        return cmd_layers(m);
    if (nobj == 0) {
        fprintf(stderr, "actmax-engine: run needs at least one OBJECTIVE, e.g. 'layer3[42]'\n");
        am_model_free(m);
        return 2;
    }
    o.objectives = objectives;
    o.n_objectives = nobj;
    return cmd_run(m, &o, out);
}
