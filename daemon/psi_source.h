/* psi_source.h: PSI, one of hakmemd's kernel pressure notifications:
 *  - PSI: a trigger ("some <stall_us> <window_us>") on a cgroup2
 *    memory.pressure file or on /proc/pressure/memory; its fd goes into
 *    the daemon's epoll, POLLPRI means it fired; and the avg10/avg60/
 *    avg300/total numbers of the same files.
 *
 * Owns: the trigger fds and the pressure file format.
 * Must not: log (a source that cannot start returns a negative errno and a
 * reason string; the caller logs it once and runs without), decide levels
 * beyond debouncing (policy.c does), or block: every fd is non-blocking.
 *
 * Trigger windows: see PSI_*_WINDOW_US below; the daemon asks for the
 * shortest and takes what the kernel grants. v1 memcgs have no
 * per-cgroup PSI file, only memory.pressure_level (vmpressure_source.h).
 */
#ifndef HAKMEMD_PSI_SOURCE_H
#define HAKMEMD_PSI_SOURCE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hakmem_proto.h"

#define PSI_SYSTEM_MEMORY_PATH "/proc/pressure/memory"
/* Trigger windows the kernel accepts: 500 ms to 10 s; since Linux 6.5
 * (and in stable kernels that took the change: Debian 12's 6.1.0-57,
 * measured) a trigger armed without CAP_SYS_RESOURCE, checked on the
 * file's opener, needs a multiple of 2 s; older kernels took any window
 * on a cgroup's memory.pressure. */
#define PSI_MIN_WINDOW_US    500000u
#define PSI_MAX_WINDOW_US    10000000u
#define PSI_UNPRIV_WINDOW_US 2000000u

/* ---------------------------------------------------------------------
 * PSI numbers
 */
struct psi_line {
    uint32_t avg10_cpct;  /* % of the last 10 s, in 1/100 % (523 = 5.23 %) */
    uint32_t avg60_cpct;  /* last 60 s, 1/100 % */
    uint32_t avg300_cpct; /* last 300 s, 1/100 % */
    uint64_t total_us;    /* stall since boot, us */
};

struct psi_stats {
    struct psi_line some; /* at least one task stalled */
    struct psi_line full; /* all non-idle tasks stalled at once */
    bool has_full;        /* the file had a "full" line */
};

/* Parses the text of a pressure file ("some avg10=0.12 avg60=... total=N",
 * then optionally "full ..."). Returns 0 or -EINVAL. */
int psi_parse(const char *text, struct psi_stats *out);

/* Reads and parses a pressure file. Returns 0 or a negative errno. */
int psi_read(const char *path, struct psi_stats *out);

/* The pressure file serving a cgroup: <v2_dir>/memory.pressure when
 * v2_dir is not NULL and has one, else system_path (NULL:
 * PSI_SYSTEM_MEMORY_PATH). Returns 0 or -ENAMETOOLONG. */
int psi_pressure_path(const char *v2_dir, const char *system_path, char *out, size_t len);

/* ---------------------------------------------------------------------
 * PSI trigger
 */
struct psi_trigger {
    int fd;               /* pressure file, O_RDWR|O_NONBLOCK; -1 when closed */
    char path[PATH_MAX];  /* the pressure file */
    bool full;            /* "full" rather than "some" */
    uint32_t stall_us;    /* stall within one window that fires it, us */
    uint32_t window_us;   /* window, us */
};

/* "some 150000 2000000" into buf. Returns the length or -ENAMETOOLONG. */
int psi_trigger_format(char *buf, size_t len, bool full, uint32_t stall_us, uint32_t window_us);

/* Opens path and arms the trigger: the shortest window the kernel and
 * our capabilities allow, starting at window_us: when the kernel refuses
 * a window that is not a multiple of 2 s (EINVAL: unprivileged on 6.5+),
 * the next multiple of 2 s with the same share of stall. t->window_us and
 * t->stall_us say what was armed. On failure returns a negative errno,
 * t->fd is -1, and reason (may be NULL) says why in words. */
int psi_trigger_open(struct psi_trigger *t, const char *path, bool full, uint32_t stall_us,
                     uint32_t window_us, char *reason, size_t reasonlen);

/* The fd for epoll: register EPOLLPRI (fired) ; EPOLLERR means the file
 * went away (its cgroup was removed). Reading it is not needed to re-arm. */
int psi_trigger_fd(const struct psi_trigger *t);

/* What epoll's revents for the trigger fd mean: 1 fired, 0 nothing,
 * -ENODEV the trigger is dead (cgroup removed): close it. Pure. */
int psi_trigger_revents(uint32_t revents);

/* Reads the numbers through the trigger's own fd (pread at 0). */
int psi_trigger_read(const struct psi_trigger *t, struct psi_stats *out);

void psi_trigger_close(struct psi_trigger *t);

#endif /* HAKMEMD_PSI_SOURCE_H */
