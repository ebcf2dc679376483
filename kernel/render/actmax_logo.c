/* actmax-logo: writes the kernelspec logos, `actmax-logo SIZE OUT.png` and
 * `actmax-logo svg OUT.svg`, at build time, so the pictures come from the
 * same drawing code as the kernel. */
#include "render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr,
                "usage: actmax-logo SIZE OUT.png  (SIZE in pixels, 16..512, e.g. 32 or 64)\n"
                "       actmax-logo svg OUT.svg\n");
        return 2;
    }
    if (strcmp(argv[1], "svg") == 0) {
        int st = render_logo_svg(argv[2]);
        render_cleanup();
        if (st != RENDER_OK) {
            fprintf(stderr, "actmax-logo: %s\n", render_last_error());
            return 1;
        }
        return 0;
    }
    char *end;
    long size = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || size < 16 || size > 512) {
        fprintf(stderr, "actmax-logo: SIZE must be a whole number of pixels in 16..512, got '%s'\n",
                argv[1]);
        return 2;
    }
    render_png png;
    int st = render_logo_png((int)size, &png);
    render_cleanup();
    if (st != RENDER_OK) {
        fprintf(stderr, "actmax-logo: %s\n", render_last_error());
        return 1;
    }
    FILE *f = fopen(argv[2], "wb");
    if (!f) {
        perror(argv[2]);
        render_png_clear(&png);
        return 1;
    }
    size_t want = png.size;
    size_t n = fwrite(png.data, 1, want, f);
    int closed = fclose(f);
    render_png_clear(&png);
    if (n != want || closed != 0) {
        fprintf(stderr, "actmax-logo: cannot write %s\n", argv[2]);
        return 1;
    }
    return 0;
}
