#include "utf8.h"

static int is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

size_t mg_utf8_cp_to_byte(const char *s, size_t len, size_t cp)
{
    size_t i = 0, n = 0;
    while (i < len) {
        if (!is_cont((unsigned char)s[i])) {
            if (n == cp)
                return i;
            n++;
        }
        i++;
    }
    return len;
}

size_t mg_utf8_byte_to_cp(const char *s, size_t len, size_t byte)
{
    if (byte > len)
        byte = len;
    size_t n = 0;
    for (size_t i = 0; i < byte; i++)
        if (!is_cont((unsigned char)s[i]))
            n++;
    return n;
}
