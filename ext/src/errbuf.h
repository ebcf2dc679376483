/* errbuf.h — how the engine's C files report an error: the message into the
 * caller's buffer (err, size n, may be NULL), the status returned. */
#ifndef ACTMAX_ERRBUF_H
#define ACTMAX_ERRBUF_H

#include <stdarg.h>
#include <stdio.h>

__attribute__((format(printf, 4, 5))) static inline int fail(char *err, size_t n, int status, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return status;
}

#endif
