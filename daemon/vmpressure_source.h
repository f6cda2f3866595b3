/* vmpressure_source.h: v1 memory.pressure_level, hakmemd's per-cgroup
 * pressure notification where the memory controller is on cgroup v1 (no
 * per-cgroup PSI there): eventfds registered through cgroup.event_control
 * for low, medium and critical, behind one epoll fd, with a debouncer
 * (these events come by thousands per second under pressure).
 *
 * Owns: the eventfds, the control line format, the debouncer (pure, time
 * injected).
 * Must not: log (a source that cannot start returns a negative errno and a
 * reason string; the caller logs it once and runs without), decide levels
 * beyond debouncing (policy.c does), or block: every fd is non-blocking.
 */
#ifndef HAKMEMD_VMPRESSURE_SOURCE_H
#define HAKMEMD_VMPRESSURE_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include "hakmem_proto.h"

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

#endif /* HAKMEMD_VMPRESSURE_SOURCE_H */
