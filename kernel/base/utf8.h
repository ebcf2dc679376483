/* Jupyter counts cursor positions in Unicode code points; the kernel works
 * on UTF-8 bytes. These convert between the two. A code point starts at
 * every byte that is not a continuation byte (10xxxxxx), so invalid input
 * still maps to some position and never reads past the end. */
#ifndef ACTMAX_UTF8_H
#define ACTMAX_UTF8_H

#include <stddef.h>

/* Byte offset of code point index cp in s[0..len); clamps to len. */
size_t mg_utf8_cp_to_byte(const char *s, size_t len, size_t cp);
/* Number of code points in s[0..byte); byte is clamped to len, and a byte
 * offset in the middle of a sequence counts the partial code point. */
size_t mg_utf8_byte_to_cp(const char *s, size_t len, size_t byte);

#endif
