/* vmpressure_source.c: v1 memory.pressure_level eventfds and their
 * debouncer (see vmpressure_source.h). Never logs: failures come back as a
 * negative errno and a reason string.
 */
#include "vmpressure_source.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <string.h>
#include <unistd.h>

#include "reason.h"

/* ---------------------------------------------------------------------
 * Debouncer
 */

void vmp_debounce_init(struct vmp_debounce *d, uint64_t window_ns,
                       const uint32_t min_events[HAKMEM_LEVEL_COUNT], uint64_t now_ns)
{
    *d = (struct vmp_debounce){
        .window_ns = window_ns ? window_ns : 1,
        .win_start_ns = now_ns,
    };
    for (int l = HAKMEM_LEVEL_LOW; l <= HAKMEM_LEVEL_CRITICAL; l++)
        d->min_events[l] = min_events[l];
}

/* Moves the windows forward to the one holding now_ns. */
static void debounce_advance(struct vmp_debounce *d, uint64_t now_ns)
{
    if (now_ns < d->win_start_ns + d->window_ns)
        return; /* same window (or the clock went back: count it here) */
    uint64_t k = (now_ns - d->win_start_ns) / d->window_ns;
    for (int l = 0; l < HAKMEM_LEVEL_COUNT; l++) {
        d->prev[l] = k == 1 ? d->cur[l] : 0;
        d->cur[l] = 0;
    }
    d->win_start_ns += k * d->window_ns;
}

void vmp_debounce_add(struct vmp_debounce *d, enum hakmem_level level, uint64_t n,
                      uint64_t now_ns)
{
    if ((unsigned)level < HAKMEM_LEVEL_LOW || (unsigned)level > HAKMEM_LEVEL_CRITICAL)
        return;
    debounce_advance(d, now_ns);
    d->cur[level] = d->cur[level] > UINT64_MAX - n ? UINT64_MAX : d->cur[level] + n;
}

enum hakmem_level vmp_debounce_level(struct vmp_debounce *d, uint64_t now_ns)
{
    debounce_advance(d, now_ns);
    for (int l = HAKMEM_LEVEL_CRITICAL; l >= HAKMEM_LEVEL_LOW; l--) {
        uint32_t min = d->min_events[l];
        if (min && (d->cur[l] >= min || d->prev[l] >= min))
            return (enum hakmem_level)l;
    }
    return HAKMEM_LEVEL_NONE;
}

/* ---------------------------------------------------------------------
 * v1 memory.pressure_level source
 */

static const char *const vmp_level_names[HAKMEM_LEVEL_COUNT] = {
    [HAKMEM_LEVEL_LOW] = "low",
    [HAKMEM_LEVEL_MEDIUM] = "medium",
    [HAKMEM_LEVEL_CRITICAL] = "critical",
};

int vmpressure_format_control(char *buf, size_t len, int efd, int pfd, enum hakmem_level level,
                              enum vmpressure_mode mode)
{
    static const char *const modes[] = { "", ",hierarchy", ",local" };
    int n;

    if ((unsigned)level < HAKMEM_LEVEL_LOW || (unsigned)level > HAKMEM_LEVEL_CRITICAL ||
        (unsigned)mode > VMPRESSURE_MODE_LOCAL)
        return -EINVAL;
    n = snprintf(buf, len, "%d %d %s%s", efd, pfd, vmp_level_names[level], modes[mode]);
    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    return n;
}

static void vmp_init_closed(struct vmpressure_source *s)
{
    s->epfd = -1;
    for (int l = 0; l < HAKMEM_LEVEL_COUNT; l++)
        s->efd[l] = -1;
}

void vmpressure_source_close(struct vmpressure_source *s)
{
    if (s->epfd >= 0)
        close(s->epfd);
    for (int l = 0; l < HAKMEM_LEVEL_COUNT; l++)
        if (s->efd[l] >= 0)
            close(s->efd[l]);
    vmp_init_closed(s);
}

int vmpressure_source_open(struct vmpressure_source *s, const char *memcg_dir,
                           enum vmpressure_mode mode, uint64_t window_ns,
                           const uint32_t min_events[HAKMEM_LEVEL_COUNT], uint64_t now_ns,
                           char *reason, size_t reasonlen)
{
    char p_level[PATH_MAX], p_ctl[PATH_MAX], line[64];
    int pfd = -1, cfd = -1, r = 0;

    vmp_init_closed(s);
    vmp_debounce_init(&s->deb, window_ns, min_events, now_ns);
    if ((size_t)snprintf(p_level, sizeof(p_level), "%s/memory.pressure_level", memcg_dir) >=
            sizeof(p_level) ||
        (size_t)snprintf(p_ctl, sizeof(p_ctl), "%s/cgroup.event_control", memcg_dir) >=
            sizeof(p_ctl)) {
        reason_set(reason, reasonlen, "%.64s...: path too long", memcg_dir);
        return -ENAMETOOLONG;
    }
    pfd = open(p_level, O_RDONLY | O_CLOEXEC);
    if (pfd < 0) {
        r = -errno;
        reason_set(reason, reasonlen, "%s: %s (not a v1 memory cgroup?)", p_level, strerror(-r));
        goto out;
    }
    cfd = open(p_ctl, O_WRONLY | O_CLOEXEC);
    if (cfd < 0) {
        r = -errno;
        reason_set(reason, reasonlen, "%s: %s", p_ctl, strerror(-r));
        goto out;
    }
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        r = -errno;
        reason_set(reason, reasonlen, "epoll_create1: %s", strerror(-r));
        goto out;
    }
    for (int l = HAKMEM_LEVEL_LOW; l <= HAKMEM_LEVEL_CRITICAL; l++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)l };
        s->efd[l] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (s->efd[l] < 0) {
            r = -errno;
            reason_set(reason, reasonlen, "eventfd: %s", strerror(-r));
            goto out;
        }
        /* one line per write; the kernel strips the newline */
        int n = vmpressure_format_control(line, sizeof(line) - 1, s->efd[l], pfd,
                                          (enum hakmem_level)l, mode);
        if (n < 0) {
            r = n;
            reason_set(reason, reasonlen, "bad level or mode");
            goto out;
        }
        line[n] = '\n';
        if (write(cfd, line, (size_t)n + 1) < 0) {
            line[n] = '\0';
            r = -errno;
            reason_set(reason, reasonlen, "%s: registering '%s' refused: %s", p_ctl, line,
                       strerror(-r));
            goto out;
        }
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->efd[l], &ev) < 0) {
            r = -errno;
            reason_set(reason, reasonlen, "epoll_ctl: %s", strerror(-r));
            goto out;
        }
    }
out:
    /* the registrations hold what they need; these two can go */
    if (pfd >= 0)
        close(pfd);
    if (cfd >= 0)
        close(cfd);
    if (r < 0)
        vmpressure_source_close(s);
    return r;
}

int vmpressure_source_fd(const struct vmpressure_source *s)
{
    return s->epfd;
}

int vmpressure_source_consume(struct vmpressure_source *s, uint64_t now_ns)
{
    uint64_t total = 0;

    for (int l = HAKMEM_LEVEL_LOW; l <= HAKMEM_LEVEL_CRITICAL; l++) {
        uint64_t n;
        if (s->efd[l] < 0)
            continue;
        ssize_t got = read(s->efd[l], &n, sizeof(n));
        if (got < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return -errno;
        }
        if (got != sizeof(n))
            return -EIO;
        vmp_debounce_add(&s->deb, (enum hakmem_level)l, n, now_ns);
        total += n;
    }
    return total > INT32_MAX ? INT32_MAX : (int)total;
}

enum hakmem_level vmpressure_source_level(struct vmpressure_source *s, uint64_t now_ns)
{
    return vmp_debounce_level(&s->deb, now_ns);
}
