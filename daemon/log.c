/* log.c: see log.h. Formats into a stack buffer and writes once, so lines
 * from different sources never interleave. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "log.h"

static int log_level = LOG_INFO;

void log_set_level(int level)
{
    log_level = level;
}

int log_get_level(void)
{
    return log_level;
}

void log_vmsg(int prio, const char *fmt, va_list ap)
{
    if (prio > log_level)
        return;
    int saved = errno;
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "<%d>", prio);
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + ((size_t)m < sizeof(buf) - (size_t)n - 1 ? (size_t)m : sizeof(buf) - (size_t)n - 2);
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
    errno = saved;
}

void log_msg(int prio, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(prio, fmt, ap);
    va_end(ap);
}
