/* log.c: see log.h. Formats into a stack buffer and writes once, so lines
 * from different sources never interleave. The rate limit keeps a small
 * table of call sites (by format string); a site that does not fit in it
 * shares the last slot, which only makes its limit stricter. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "log.h"

#define LOG_LINE_MAX 1024
#define LOG_SITES    64

struct log_site {
    const char *fmt;            /* the call site; NULL: free */
    uint64_t start_ns;          /* its interval began */
    unsigned lines;             /* written in the interval */
    unsigned suppressed;        /* not written in the interval */
    int prio;                   /* of the last suppressed line */
    char last[LOG_LINE_MAX];    /* the last suppressed line, without prefix and newline */
};

static int log_level = LOG_INFO;
static struct log_site sites[LOG_SITES];

void log_set_level(int level)
{
    log_level = level;
}

int log_get_level(void)
{
    return log_level;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void write_line(int prio, const char *text)
{
    char buf[LOG_LINE_MAX + 16];
    int n = snprintf(buf, sizeof(buf) - 1, "<%d>%s", prio, text);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(buf) - 1 ? (size_t)n : sizeof(buf) - 2;
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

/* The summary of a site's last interval, if it suppressed anything. */
static void site_close(struct log_site *s)
{
    if (s->suppressed) {
        char line[LOG_LINE_MAX + 96];
        snprintf(line, sizeof(line), "%u similar message%s suppressed in %llu s; the last: %s",
                 s->suppressed, s->suppressed == 1 ? "" : "s",
                 (unsigned long long)(LOG_INTERVAL_NS / 1000000000u), s->last);
        write_line(s->prio, line);
    }
    s->lines = s->suppressed = 0;
}

static struct log_site *site_of(const char *fmt)
{
    struct log_site *free_site = NULL;
    for (size_t i = 0; i < LOG_SITES; i++) {
        if (sites[i].fmt == fmt)
            return &sites[i];
        if (!sites[i].fmt && !free_site)
            free_site = &sites[i];
    }
    if (free_site) {
        free_site->fmt = fmt;
        return free_site;
    }
    return &sites[LOG_SITES - 1];
}

void log_vmsg(int prio, const char *fmt, va_list ap)
{
    bool unlimited = prio & LOG_UNLIMITED;
    prio &= ~LOG_UNLIMITED;
    if (prio > log_level)
        return;
    int saved = errno;
    char text[LOG_LINE_MAX];
    int m = vsnprintf(text, sizeof(text), fmt, ap);
    if (m < 0)
        text[0] = '\0';
    for (char *p = text; *p; p++)       /* one message, one line */
        if (*p == '\n')
            *p = ' ';
    if (unlimited) {
        write_line(prio, text);
        errno = saved;
        return;
    }
    uint64_t now = mono_ns();
    struct log_site *s = site_of(fmt);
    if (now - s->start_ns >= LOG_INTERVAL_NS) {
        site_close(s);
        s->start_ns = now;
    }
    if (s->lines < LOG_BURST) {
        s->lines++;
        write_line(prio, text);
    } else {
        s->suppressed++;
        s->prio = prio;
        memcpy(s->last, text, sizeof(s->last));
    }
    errno = saved;
}

void log_msg(int prio, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(prio, fmt, ap);
    va_end(ap);
}

void log_flush(uint64_t now_ns)
{
    for (size_t i = 0; i < LOG_SITES; i++) {
        struct log_site *s = &sites[i];
        if (s->fmt && s->suppressed && now_ns - s->start_ns >= LOG_INTERVAL_NS) {
            site_close(s);
            s->start_ns = now_ns;
        }
    }
}
