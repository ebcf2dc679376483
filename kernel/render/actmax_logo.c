/* actmax-logo: writes the kernelspec logo, `actmax-logo SIZE OUT.png`, at
 * build time, so the picture comes from the same drawing code as the kernel. */
#include "render.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr,
                "usage: actmax-logo SIZE OUT.png  (SIZE in pixels, 16..512, e.g. 32 or 64)\n");
        return 2;
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
