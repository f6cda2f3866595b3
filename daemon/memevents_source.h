/* memevents_source.h: hakmemd's memory.events source (cgroup v2): the
 * kernel's own count of how often a cgroup went over memory.high, hit
 * memory.max, ran out of memory and had a task OOM-killed.
 *
 * memory.events is a kernfs file the kernel notifies on every change
 * (at most every 20 ms per file): an fd opened on it reports EPOLLPRI
 * (with EPOLLERR) in epoll until it is read again. So the daemon waits on
 * it like on a PSI trigger, reads the counters when it fires and hands
 * what rose since the last read to the policy. No capability and no write
 * is needed: the file is world-readable, also in delegated subtrees.
 *
 * Owns: the fd, the file format, the counters of the last read.
 * Must not: log (errors come back as a negative errno and a reason),
 * decide levels (policy.c does) or block (reads are of a kernel file).
 * v1 has no memory.events: there the BPF source reports OOM kills and
 * memory.failcnt is not pollable.
 */
#ifndef HAKMEMD_MEMEVENTS_SOURCE_H
#define HAKMEMD_MEMEVENTS_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The counters of memory.events (hierarchical: the cgroup and its
 * descendants), events since the cgroup was created. */
struct memevents {
    uint64_t low;            /* reclaimed below memory.low (protection breached) */
    uint64_t high;           /* over memory.high: throttled and reclaimed */
    uint64_t max;            /* at memory.max: a charge had to reclaim or fail */
    uint64_t oom;            /* memory.max reached and reclaim could not help */
    uint64_t oom_kill;       /* tasks killed by the OOM killer */
    uint64_t oom_group_kill; /* whole-cgroup OOM kills (memory.oom.group), 5.19+ */
};

/* Parses the text of memory.events. Keys it does not know are skipped,
 * keys that are missing read as 0 (older kernels have fewer). Returns 0,
 * or -EINVAL when a known key has no number or "low" and "max" are both
 * absent (not a memory.events file). */
int memevents_parse(const char *text, struct memevents *out);

/* b - a, counter by counter (0 where b is not above a: a cgroup removed
 * and made again under the same name starts from 0). */
void memevents_rose(const struct memevents *a, const struct memevents *b,
                    struct memevents *out);

struct memevents_source {
    int fd;                /* <dir>/memory.events, O_RDONLY; -1 when closed */
    struct memevents last; /* counters at the last read */
};

/* Opens <dir>/memory.events and reads it once (the baseline: what
 * happened before the daemon looked does not count). Returns 0 or a
 * negative errno with a reason (-ENOENT: not a v2 memory cgroup). */
int memevents_open(struct memevents_source *s, const char *dir, char *reason, size_t len);

/* The fd for epoll: register EPOLLPRI; it fires when a counter changed. */
int memevents_fd(const struct memevents_source *s);

/* Reads the counters (which also re-arms the notification) and puts what
 * rose since the last read into *rose. Returns 0, -ENODEV when the cgroup
 * is gone (close the source), or another negative errno. */
int memevents_read(struct memevents_source *s, struct memevents *rose);

void memevents_close(struct memevents_source *s);

#endif /* HAKMEMD_MEMEVENTS_SOURCE_H */
