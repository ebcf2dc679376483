/* am_data.h: the byte-level BPE tokenizer and the dataset readers behind the
 * built-in models (fashion-cnn, tiny-lm) and %examples. C11; depends on libc
 * and zlib only, so it builds without libtorch.
 *
 * The declarations live in the engine's one public header, actmax.h (section
 * "tokenizer and datasets"), because libactmax.so exports these functions
 * too; this name stays so code built against actmax_data alone keeps
 * compiling.
 */
#ifndef AM_DATA_H
#define AM_DATA_H

#include "../include/actmax.h"

#endif
