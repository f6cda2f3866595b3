/* reason.h: the reason string a source fills when it cannot start (the
 * caller logs it once and runs without the source). Sources never log.
 */
#ifndef HAKMEMD_REASON_H
#define HAKMEMD_REASON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline void reason_set(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (!buf || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

#endif /* HAKMEMD_REASON_H */
