/* am_tokenizer_piece.h: encoding a piece of a longer text, for the
 * streamed text reader (am_dataset.c), which tokenizes a long entry in
 * pieces cut before a line. Internal to ext/data. */
#ifndef AM_TOKENIZER_PIECE_H
#define AM_TOKENIZER_PIECE_H

#include "am_data.h"

/* am_tokenizer_encode, except that when `continues` the text continues text
 * encoded before, so nothing is prepended at its start (the space of
 * SentencePiece-style tokenizers: a Prepend normalizer or Metaspace's
 * prepend_scheme). */
int am__tokenizer_encode_piece(am_tokenizer *t, const char *text, size_t len, int continues,
                               int64_t **ids, size_t *n);

#endif
