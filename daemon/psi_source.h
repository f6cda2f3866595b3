/* psi_source.h: hakmemd's kernel pressure notifications other than BPF:
 *  - PSI: a trigger ("some <stall_us> <window_us>") on a cgroup2
 *    memory.pressure file or on /proc/pressure/memory; its fd goes into
 *    the daemon's epoll, POLLPRI means it fired; and the avg10/avg60/
 *    avg300/total numbers of the same files.
 *  - v1 memory.pressure_level: eventfds registered through
 *    cgroup.event_control for low/medium/critical on a v1 memcg, behind
 *    one epoll fd, with a debouncer (these events come by thousands per
 *    second under pressure).
 *
 * Owns: the fds of these notifications, the file formats, the debouncer
 * (pure, time injected).
 * Must not: log (a source that cannot start returns a negative errno and a
 * reason string; the caller logs it once and runs without), decide levels
 * beyond debouncing (policy.c does), or block: every fd is non-blocking.
 *
 * Trigger windows: see PSI_*_WINDOW_US below; the daemon asks for the
 * shortest and takes what the kernel grants. v1 memcgs have no
 * per-cgroup PSI file, only memory.pressure_level.
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

/* ---------------------------------------------------------------------
 * v1 memory.pressure_level debouncer (pure). A listener registered for
 * level L hears every event of level L or worse, so the counts are "at or
 * above L". The debounced level is the highest L whose count reaches
 * min_events[L] within the current window or the previous one: it rises
 * as soon as the count is reached and falls one to two windows after the
 * events stop. */
struct vmp_debounce {
    uint64_t window_ns;                        /* window length, ns */
    uint32_t min_events[HAKMEM_LEVEL_COUNT];   /* events per window for L; 0: ignore L */
    uint64_t win_start_ns;                     /* start of the current window, ns */
    uint64_t cur[HAKMEM_LEVEL_COUNT];          /* events >= L in the current window */
    uint64_t prev[HAKMEM_LEVEL_COUNT];         /* events >= L in the previous window */
};

/* min_events is indexed by level (NONE ignored). window_ns 0 counts as 1. */
void vmp_debounce_init(struct vmp_debounce *d, uint64_t window_ns,
                       const uint32_t min_events[HAKMEM_LEVEL_COUNT], uint64_t now_ns);
/* Counts n events heard by the listener of level (LOW..CRITICAL) at now_ns. */
void vmp_debounce_add(struct vmp_debounce *d, enum hakmem_level level, uint64_t n,
                      uint64_t now_ns);
/* The debounced level at now_ns (NONE when quiet). */
enum hakmem_level vmp_debounce_level(struct vmp_debounce *d, uint64_t now_ns);

/* ---------------------------------------------------------------------
 * v1 memory.pressure_level source
 */
enum vmpressure_mode {
    VMPRESSURE_MODE_DEFAULT = 0,   /* events go up until a listener handles them */
    VMPRESSURE_MODE_HIERARCHY = 1, /* always hear descendants' events too */
    VMPRESSURE_MODE_LOCAL = 2,     /* only this memcg's own reclaim */
};

struct vmpressure_source {
    int epfd;                    /* epoll over efd[]: readable when events are pending; -1 closed */
    int efd[HAKMEM_LEVEL_COUNT]; /* eventfd per level (LOW..CRITICAL); [NONE] is -1 */
    struct vmp_debounce deb;     /* counts per level per window */
};

/* "<efd> <pfd> low,hierarchy" (the line for cgroup.event_control).
 * Returns the length, -EINVAL (bad level) or -ENAMETOOLONG. */
int vmpressure_format_control(char *buf, size_t len, int efd, int pfd, enum hakmem_level level,
                              enum vmpressure_mode mode);

/* Registers low, medium and critical listeners on the v1 memcg at dir
 * (memory.pressure_level + cgroup.event_control). Returns 0 or a negative
 * errno with a reason; on failure nothing stays open. Removing the memcg
 * ends the events (the kernel signals each eventfd once on the way out:
 * the caller should check that the cgroup still exists). */
int vmpressure_source_open(struct vmpressure_source *s, const char *memcg_dir,
                           enum vmpressure_mode mode, uint64_t window_ns,
                           const uint32_t min_events[HAKMEM_LEVEL_COUNT], uint64_t now_ns,
                           char *reason, size_t reasonlen);

/* The fd for the daemon's epoll (EPOLLIN: call vmpressure_source_consume). */
int vmpressure_source_fd(const struct vmpressure_source *s);

/* Drains the eventfds into the debouncer. Returns the number of events
 * read (0: none pending) or a negative errno. */
int vmpressure_source_consume(struct vmpressure_source *s, uint64_t now_ns);

/* The debounced level at now_ns. */
enum hakmem_level vmpressure_source_level(struct vmpressure_source *s, uint64_t now_ns);

void vmpressure_source_close(struct vmpressure_source *s);

#endif /* HAKMEMD_PSI_SOURCE_H */
