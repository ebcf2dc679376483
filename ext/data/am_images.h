/* am_images.h: image sources behind the "images" dataset (internal to
 * libactmax): a folder of PNG files (class subfolders give labels), a .npy
 * array, or an array in memory (the engine's .pt reader hands one over).
 * Items are decoded a batch at a time, converted to the requested channels.
 *
 * N = items, C/H/W = channels/height/width as delivered, Cs = as stored. */
#ifndef AM_IMAGES_H
#define AM_IMAGES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../include/actmax.h"

#if defined(__GNUC__)
#define AM__HIDDEN __attribute__((visibility("hidden")))
#else
#define AM__HIDDEN
#endif

typedef struct am__images am__images;

enum { AM__ARRAY_F32 = 0, AM__ARRAY_U8 = 1 };

/* A folder of PNG files or a .npy file (path), delivered with the channels,
 * height and width of opts (0: as stored). On failure returns a status, *out
 * is NULL and err holds the message. */
AM__HIDDEN int am__images_open(const char *path, const am_dataset_options *opts, am__images **out,
                               char *err, size_t err_size);

/* An array of N images (Cs, H, W) in memory: float32 in [0, 1] or uint8
 * (scaled by 1/255); labels (N) or NULL. Takes ownership of data and labels
 * (malloc'ed) on success and on failure. what names it in messages. */
AM__HIDDEN int am__images_from_array(const char *what, void *data, int dtype,
                                     const int64_t shape[4], int64_t *labels,
                                     const am_dataset_options *opts, am__images **out, char *err,
                                     size_t err_size);

AM__HIDDEN void am__images_free(am__images *im);
AM__HIDDEN int64_t am__images_size(const am__images *im);
AM__HIDDEN void am__images_shape(const am__images *im, int64_t chw[3]);
AM__HIDDEN int am__images_has_labels(const am__images *im);
AM__HIDDEN int am__images_num_labels(const am__images *im);
AM__HIDDEN const char *am__images_label(const am__images *im, int i);

/* Items [first, first + count) into out (count, C, H, W) in [0, 1] and, when
 * the source has labels, labels (count). */
AM__HIDDEN int am__images_read(am__images *im, int64_t first, int64_t count, float *out,
                               int64_t *labels, char *err, size_t err_size);

/* am_dataset_open's "images" dataset over an array in memory (as
 * am__images_from_array; ownership of data and labels passes on). *out is
 * always set; free with am_dataset_free. */
AM__HIDDEN int am__dataset_open_array(const char *what, void *data, int dtype,
                                      const int64_t shape[4], int64_t *labels,
                                      const am_dataset_options *opts, am_dataset **out);

/* The header of a .npy file (https://numpy.org/doc/stable/reference/
 * generated/numpy.lib.format.html): "\x93NUMPY", version, header length,
 * then a Python dict literal with 'descr', 'fortran_order' and 'shape'.
 * Read from f's start (versions 1 to 3); the data follows at data_offset.
 * Also the reader of direction files (objective_eval.cpp). */
typedef struct {
    char descr[16];
    int fortran;
    int ndim;
    int64_t shape[8];
    long data_offset;
} am__npy_header;

AM__HIDDEN int am__npy_read_header(FILE *f, const char *path, am__npy_header *hd, char *err,
                                   size_t err_size);

#endif
