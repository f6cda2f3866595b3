/* log.c: messages from the shim to stderr.
 * Formats into a stack buffer and writes with write(2): never allocates,
 * never takes a lock. A per-thread guard stops recursion (a message from
 * inside a message is dropped) and a process-wide budget stops a broken
 * program from flooding stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "hk_internal.h"

/* Enough for any diagnosis; later messages are counted, not printed. */
#define HK_LOG_BUDGET 64

static __thread int hk_in_log __attribute__((tls_model("initial-exec")));
static _Atomic unsigned hk_log_count;

size_t hk_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return 0;
    return (size_t)n < len ? (size_t)n : len - 1;
}

static void hk_write_all(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void hk_vlog(const char *fmt, va_list ap)
{
    char buf[512];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "hakmem[%d]: ", (int)getpid());
    int m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
    if (m > 0)
        n += (size_t)m < sizeof(buf) - n - 1 ? (size_t)m : sizeof(buf) - n - 2;
    buf[n++] = '\n';
    hk_write_all(buf, n);
}

void hk_log(const char *fmt, ...)
{
    if (hk_in_log)
        return;
    unsigned c = atomic_fetch_add_explicit(&hk_log_count, 1, memory_order_relaxed);
    if (c > HK_LOG_BUDGET)
        return;
    int saved = errno;
    hk_in_log = 1;
    if (c == HK_LOG_BUDGET) {
        static const char m[] = "hakmem: too many messages; further ones suppressed\n";
        hk_write_all(m, sizeof(m) - 1);
    } else {
        va_list ap;
        va_start(ap, fmt);
        hk_vlog(fmt, ap);
        va_end(ap);
    }
    hk_in_log = 0;
    errno = saved;
}

/* Detected corruption: say where and stop, as glibc does. */
void hk_fatal(const char *fmt, ...)
{
    if (!hk_in_log) {
        hk_in_log = 1;
        va_list ap;
        va_start(ap, fmt);
        hk_vlog(fmt, ap);
        va_end(ap);
    }
    abort();
}
