/* psi_source.c: PSI triggers and numbers, v1 memory.pressure_level
 * eventfds and their debouncer (see psi_source.h). Never logs: failures
 * come back as a negative errno and a reason string.
 */
#include "psi_source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_util.h"

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void set_reason(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (!buf || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------
 * PSI numbers
 */

/* "12.34" -> 1234 (1/100); at most two decimals. Advances *pp. */
static int parse_cpct(const char **pp, uint32_t *out)
{
    const char *p = *pp;
    uint64_t whole = 0, frac = 0;
    int digits = 0;

    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (uint64_t)(*p - '0');
        if (whole > 100000)
            return -EINVAL;
    }
    if (*p == '.') {
        p++;
        for (; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits >= 2)
                return -EINVAL;
            frac = frac * 10 + (uint64_t)(*p - '0');
        }
        if (digits == 0)
            return -EINVAL;
        if (digits == 1)
            frac *= 10;
    }
    *out = (uint32_t)(whole * 100 + frac);
    *pp = p;
    return 0;
}

static int expect(const char **pp, const char *word)
{
    size_t n = strlen(word);

    if (strncmp(*pp, word, n) != 0)
        return -EINVAL;
    *pp += n;
    return 0;
}

/* " avg10=A avg60=B avg300=C total=T" up to the end of the line. */
static int parse_line(const char **pp, struct psi_line *l)
{
    const char *p = *pp;

    if (expect(&p, " avg10=") < 0 || parse_cpct(&p, &l->avg10_cpct) < 0 ||
        expect(&p, " avg60=") < 0 || parse_cpct(&p, &l->avg60_cpct) < 0 ||
        expect(&p, " avg300=") < 0 || parse_cpct(&p, &l->avg300_cpct) < 0 ||
        expect(&p, " total=") < 0 || cgroup_parse_u64_prefix(&p, &l->total_us) < 0)
        return -EINVAL;
    if (*p == '\n')
        p++;
    else if (*p != '\0')
        return -EINVAL;
    *pp = p;
    return 0;
}

int psi_parse(const char *text, struct psi_stats *out)
{
    struct psi_stats s = { 0 };
    const char *p = text;
    bool has_some = false;

    while (*p) {
        if (strncmp(p, "some", 4) == 0 && !has_some) {
            p += 4;
            if (parse_line(&p, &s.some) < 0)
                return -EINVAL;
            has_some = true;
        } else if (strncmp(p, "full", 4) == 0 && !s.has_full) {
            p += 4;
            if (parse_line(&p, &s.full) < 0)
                return -EINVAL;
            s.has_full = true;
        } else {
            return -EINVAL;
        }
    }
    if (!has_some)
        return -EINVAL;
    *out = s;
    return 0;
}

int psi_read(const char *path, struct psi_stats *out)
{
    char buf[512];
    int r = cgroup_read_file(path, buf, sizeof(buf));

    if (r < 0)
        return r;
    return psi_parse(buf, out);
}

int psi_pressure_path(const char *v2_dir, const char *system_path, char *out, size_t len)
{
    struct stat st;

    if (v2_dir) {
        char p[PATH_MAX];
        if ((size_t)snprintf(p, sizeof(p), "%s/memory.pressure", v2_dir) < sizeof(p) &&
            stat(p, &st) == 0) {
            if (strlen(p) >= len)
                return -ENAMETOOLONG;
            strcpy(out, p);
            return 0;
        }
    }
    if (!system_path)
        system_path = PSI_SYSTEM_MEMORY_PATH;
    if (strlen(system_path) >= len)
        return -ENAMETOOLONG;
    strcpy(out, system_path);
    return 0;
}

/* ---------------------------------------------------------------------
 * PSI trigger
 */

int psi_trigger_format(char *buf, size_t len, bool full, uint32_t stall_us, uint32_t window_us)
{
    int n = snprintf(buf, len, "%s %u %u", full ? "full" : "some", stall_us, window_us);

    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    return n;
}

int psi_trigger_open(struct psi_trigger *t, const char *path, bool full, uint32_t stall_us,
                     uint32_t window_us, char *reason, size_t reasonlen)
{
    char spec[64];
    int r, n;

    t->fd = -1;
    t->full = full;
    t->stall_us = stall_us;
    t->window_us = window_us;
    if (strlen(path) >= sizeof(t->path)) {
        set_reason(reason, reasonlen, "%.64s...: path too long", path);
        return -ENAMETOOLONG;
    }
    strcpy(t->path, path);
    n = psi_trigger_format(spec, sizeof(spec), full, stall_us, window_us);
    if (n < 0)
        return n;

    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        if (r == -ENOENT)
            set_reason(reason, reasonlen,
                       "%s: no such file: the kernel has no PSI (CONFIG_PSI off or psi=0 "
                       "on the command line) or the cgroup is gone", path);
        else
            set_reason(reason, reasonlen, "%s: cannot open for writing: %s", path, strerror(-r));
        return r;
    }
    /* the kernel wants the terminating NUL too (Documentation/accounting/psi.rst) */
    r = write(fd, spec, (size_t)n + 1) < 0 ? -errno : 0;
    uint32_t rounded = (window_us + PSI_UNPRIV_WINDOW_US - 1) / PSI_UNPRIV_WINDOW_US *
                       PSI_UNPRIV_WINDOW_US;
    if (r == -EINVAL && rounded != window_us && rounded <= PSI_MAX_WINDOW_US) {
        /* Linux >= 6.5 wants unprivileged windows in multiples of 2 s:
         * the next one up, with the same share of stall. */
        uint32_t stall = (uint32_t)((uint64_t)stall_us * rounded / window_us);
        int m = psi_trigger_format(spec, sizeof(spec), full, stall, rounded);
        if (m > 0 && write(fd, spec, (size_t)m + 1) >= 0) {
            t->stall_us = stall;
            t->window_us = rounded;
            r = 0;
        }
    }
    if (r < 0) {
        if (r == -EINVAL)
            set_reason(reason, reasonlen,
                       "%s: trigger '%s' refused (EINVAL): the window must be 500 ms..10 s "
                       "and, without CAP_SYS_RESOURCE on Linux 6.5 and later, a multiple "
                       "of 2 s; the stall at most the window", path, spec);
        else if (r == -EOPNOTSUPP)
            set_reason(reason, reasonlen, "%s: trigger '%s' refused: PSI is disabled (psi=0)",
                       path, spec);
        else if (r == -EPERM || r == -EACCES)
            set_reason(reason, reasonlen, "%s: trigger '%s' refused: no permission (%s)", path,
                       spec, strerror(-r));
        else
            set_reason(reason, reasonlen, "%s: trigger '%s' refused: %s", path, spec,
                       strerror(-r));
        close(fd);
        return r;
    }
    t->fd = fd;
    return 0;
}

int psi_trigger_fd(const struct psi_trigger *t)
{
    return t->fd;
}

int psi_trigger_revents(uint32_t revents)
{
    if (revents & (EPOLLERR | EPOLLHUP))
        return -ENODEV;
    return (revents & EPOLLPRI) ? 1 : 0;
}

int psi_trigger_read(const struct psi_trigger *t, struct psi_stats *out)
{
    char buf[512];

    if (t->fd < 0)
        return -EBADF;
    int n = cgroup_pread_file(t->fd, buf, sizeof(buf));
    if (n < 0)
        return n;
    return psi_parse(buf, out);
}

void psi_trigger_close(struct psi_trigger *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

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
        set_reason(reason, reasonlen, "%.64s...: path too long", memcg_dir);
        return -ENAMETOOLONG;
    }
    pfd = open(p_level, O_RDONLY | O_CLOEXEC);
    if (pfd < 0) {
        r = -errno;
        set_reason(reason, reasonlen, "%s: %s (not a v1 memory cgroup?)", p_level, strerror(-r));
        goto out;
    }
    cfd = open(p_ctl, O_WRONLY | O_CLOEXEC);
    if (cfd < 0) {
        r = -errno;
        set_reason(reason, reasonlen, "%s: %s", p_ctl, strerror(-r));
        goto out;
    }
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        r = -errno;
        set_reason(reason, reasonlen, "epoll_create1: %s", strerror(-r));
        goto out;
    }
    for (int l = HAKMEM_LEVEL_LOW; l <= HAKMEM_LEVEL_CRITICAL; l++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)l };
        s->efd[l] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (s->efd[l] < 0) {
            r = -errno;
            set_reason(reason, reasonlen, "eventfd: %s", strerror(-r));
            goto out;
        }
        /* one line per write; the kernel strips the newline */
        int n = vmpressure_format_control(line, sizeof(line) - 1, s->efd[l], pfd,
                                          (enum hakmem_level)l, mode);
        if (n < 0) {
            r = n;
            set_reason(reason, reasonlen, "bad level or mode");
            goto out;
        }
        line[n] = '\n';
        if (write(cfd, line, (size_t)n + 1) < 0) {
            line[n] = '\0';
            r = -errno;
            set_reason(reason, reasonlen, "%s: registering '%s' refused: %s", p_ctl, line,
                       strerror(-r));
            goto out;
        }
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->efd[l], &ev) < 0) {
            r = -errno;
            set_reason(reason, reasonlen, "epoll_ctl: %s", strerror(-r));
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
