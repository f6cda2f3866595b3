/* psi_source.c: PSI triggers and numbers (see psi_source.h). Never logs:
 * failures come back as a negative errno and a reason string.
 */
#include "psi_source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_util.h"
#include "reason.h"

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
        reason_set(reason, reasonlen, "%.64s...: path too long", path);
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
            reason_set(reason, reasonlen,
                       "%s: no such file: the kernel has no PSI (CONFIG_PSI off or psi=0 "
                       "on the command line) or the cgroup is gone", path);
        else
            reason_set(reason, reasonlen, "%s: cannot open for writing: %s", path, strerror(-r));
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
            reason_set(reason, reasonlen,
                       "%s: trigger '%s' refused (EINVAL): the window must be 500 ms..10 s "
                       "and, without CAP_SYS_RESOURCE on Linux 6.5 and later, a multiple "
                       "of 2 s; the stall at most the window", path, spec);
        else if (r == -EOPNOTSUPP)
            reason_set(reason, reasonlen, "%s: trigger '%s' refused: PSI is disabled (psi=0)",
                       path, spec);
        else if (r == -EPERM || r == -EACCES)
            reason_set(reason, reasonlen, "%s: trigger '%s' refused: no permission (%s)", path,
                       spec, strerror(-r));
        else
            reason_set(reason, reasonlen, "%s: trigger '%s' refused: %s", path, spec,
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
