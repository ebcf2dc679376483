/* The image kind of run (%maximize), and image %examples. */
#ifndef ACTMAX_IMAGE_H
#define ACTMAX_IMAGE_H

#include <stdint.h>

#include "session.h"

extern const mg_run_ops mg_image_run_ops;

/* An image run's result images (B, C, H, W) and the objective of image 0. */
const float *mg_image_run_result(const mg_run_rec *r, int64_t shape[4], float *final0);

/* %examples on an image model (examples.c). */
mg_status mg_image_examples(mg_call *c, mg_session *s);

#endif
