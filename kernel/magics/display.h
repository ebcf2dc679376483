/* Outputs shared by the engine magics of every kind of run: tables as one
 * display (HTML with its text/plain twin), PNGs in a bundle, a batch of
 * images as one picture, shapes as text. */
#ifndef ACTMAX_DISPLAY_H
#define ACTMAX_DISPLAY_H

#include <stdint.h>

#include "magic.h"
#include "render.h"
#include "util.h"

void mg_send_table(const mg_call *c, const render_table *t);
void mg_bundle_png(mg_bundle *b, const render_png *png);
/* One display: png with text as its text/plain twin. */
void mg_show_png(const mg_call *c, const char *text, const render_png *png);
/* PNG of a batch of images (B, C, H, W): one upscaled image, or a grid. */
int mg_images_png(const float *img, const int64_t shape[4], const char *const *captions,
                  const char *title, int min_px, render_png *out);
/* "(1, 16, 14, 14)" */
void mg_shape_text(mg_str *out, const int64_t *shape, int ndim);
/* Writes png to path; the failure is reported through c. */
mg_status mg_write_png(const mg_call *c, const render_png *png, const char *path);

#endif
