/* reason.h: the words that say why something failed, for a caller to
 * log or print once: a source that cannot start (the daemon runs without
 * it), a configuration value refused. The boxes that fill them never log.
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
