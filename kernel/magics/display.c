/* Outputs shared by the engine magics (display.h). */
#include "display.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void mg_shape_text(mg_str *out, const int64_t *shape, int ndim)
{
    mg_str_addc(out, '(');
    for (int i = 0; i < ndim; i++)
        mg_str_addf(out, "%s%lld", i ? ", " : "", (long long)shape[i]);
    mg_str_addc(out, ')');
}

void mg_bundle_png(mg_bundle *b, const render_png *png)
{
    mg_bundle_bytes(b, "image/png", png->data, png->size);
    mg_bundle_meta_num(b, "image/png", "width", png->width);
    mg_bundle_meta_num(b, "image/png", "height", png->height);
}

void mg_show_png(const mg_call *c, const char *text, const render_png *png)
{
    mg_bundle *b = mg_bundle_new();
    mg_bundle_text(b, "text/plain", text);
    mg_bundle_png(b, png);
    mg_sink_display(c->out, b, NULL);
    mg_bundle_free(b);
}

/* PNG of a batch of images (B, C, H, W): one upscaled image, or a grid. */
int mg_images_png(const float *img, const int64_t shape[4], const char *const *captions,
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

mg_status mg_write_png(const mg_call *c, const render_png *png, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(png->data, 1, png->size, f) != png->size) {
        int en = errno;
        if (f)
            fclose(f);
        return mg_fail(c, "OSError",
                       "cannot write %s: %s; give a path in a folder that exists "
                       "and is writable",
                       path, strerror(en));
    }
    if (fclose(f) != 0)
        return mg_fail(c, "OSError", "cannot write %s: %s", path, strerror(errno));
    return MG_OK;
}
