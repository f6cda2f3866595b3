/* usage_source.h: hakmemd's usage source: usage against limit of the
 * memory cgroups the daemon watches, as an early signal (before reclaim
 * starts, which BPF and PSI report).
 *
 * Owns: the set of watched cgroups (key -> directory), their last sample,
 * and the arithmetic from memory files to a ratio (pure, separate from the
 * reading, which cgroup_util.c does).
 * Must not: log, decide a level (policy.c does, from usage_permille), or
 * keep a file open between samples (a cgroup may be removed at any time).
 *
 * The ratio is of the working set, usage - inactive file cache (what the
 * kubelet and cAdvisor call working_set): a cgroup full of clean page cache
 * sits at its limit without any pressure, and reclaim takes inactive file
 * pages first. The limit is the effective one: min(memory.max,
 * memory.high) on v2 (reclaim and throttling start at high), the limit on
 * v1.
 *
 * Ancestors count as much as the cgroup itself: a pod's limit over its
 * containers, a slice's MemoryMax= over its services, a parent whose
 * limit is below the sum of its children's peaks. The ratio a cgroup's
 * shims follow is the highest over the cgroup and each ancestor up to the
 * hierarchy's root (usage_chain_permille): each ancestor is an entry of
 * its own, sampled on its own schedule once however many tracked cgroups
 * share it, and read in full only while it has a limit
 * (CGROUP_MEM_IF_LIMITED). The caller (manager.c) knows the chains.
 *
 * Sampling adapts to how close each cgroup is to its next usage
 * threshold: a cgroup is read again before it could reach that threshold
 * growing at the planned burst rate (or at its measured growth, when
 * faster), no sooner than the shortest interval and no later than the
 * longest. Far from its limit a cgroup costs a few reads a second; near a
 * threshold it is watched closely, which polling at a fixed period cannot
 * do: at 250 ms, a process that grows 1 GB/s crosses 80 % and reaches the
 * limit between two samples. And the ratio the policy gets is projected
 * lead_ns ahead at the measured growth: a cgroup growing fast reaches a
 * level before its memory does, so its shims can give memory back before
 * the limit.
 */
#ifndef HAKMEMD_USAGE_SOURCE_H
#define HAKMEMD_USAGE_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include "cgroup_util.h"

/* Largest ratio reported, 1/1000: v2 usage can overshoot memory.high. */
#define USAGE_PERMILLE_MAX 10000u

/* Pure arithmetic on one reading. */
uint64_t usage_effective_limit(const struct cgroup_mem *m); /* bytes, CGROUP_UNLIMITED */
uint64_t usage_working_set(const struct cgroup_mem *m);     /* bytes */
/* working set / effective limit in 1/1000, at most USAGE_PERMILLE_MAX;
 * 0 when there is no limit. */
uint32_t usage_permille(const struct cgroup_mem *m);
/* The same for any working set ws against limit (bytes). */
uint32_t usage_ratio_permille(uint64_t ws, uint64_t limit);

struct usage_sample {
    uint64_t time_ns;           /* when it was taken (caller's clock), ns */
    int error;                  /* 0, or the negative errno of the last read */
    struct cgroup_mem mem;      /* as read (valid when error == 0) */
    uint64_t working_set_bytes; /* usage - inactive file, bytes */
    uint64_t limit_bytes;       /* effective limit, bytes; CGROUP_UNLIMITED */
    uint32_t permille;          /* working set / limit, 1/1000; 0: no limit or error */
};

/* Fills s from a reading (pure). */
void usage_compute(const struct cgroup_mem *m, uint64_t now_ns, struct usage_sample *s);

/* How the source samples and projects (config: usage_*). */
struct usage_schedule {
    uint64_t min_interval_ns;   /* shortest time between two samples of a cgroup, ns */
    uint64_t max_interval_ns;   /* longest, ns (far from every threshold) */
    uint64_t burst_bytes_per_s; /* growth planned for: bytes per second */
    uint64_t lead_ns;           /* how far ahead the ratio is projected, ns */
    uint32_t th_permille[3];    /* the policy's usage thresholds, rising; 0: off */
};

/* Working-set growth from prev to last, bytes per second; 0 when it
 * shrank, when either sample failed or is missing, when either has no
 * limit (growth only matters against a limit, and a cgroup read with
 * CGROUP_MEM_IF_LIMITED has no usage while it has none), or when they are
 * less than 1 ms apart (too close to tell). */
uint64_t usage_growth(const struct usage_sample *prev, const struct usage_sample *last);

/* The ratio lead_ns ahead at growth bytes/s: at least s->permille. */
uint32_t usage_projected_permille(const struct usage_sample *s, uint64_t growth,
                                  uint64_t lead_ns);

/* Time until the next sample of a cgroup at s (ns): the time the working
 * set needs, growing at max(burst, growth), to reach the lowest threshold
 * above it, clamped to [min, max]. The longest interval when there is no
 * limit, no threshold above, or s is an error. Pure. */
uint64_t usage_next_interval(const struct usage_schedule *sch, const struct usage_sample *s,
                             uint64_t growth);

struct usage_entry {
    uint64_t key;                /* cgroup key (inode of dir) */
    enum cgroup_version version; /* layout of dir, or AUTO */
    unsigned read_flags;         /* cgroup_read_mem flags (CGROUP_MEM_IF_LIMITED) */
    unsigned refs;               /* usage_source_add()s not yet removed */
    char *dir;                   /* the cgroup's directory (owned) */
    struct usage_sample last;    /* last sample; time_ns 0: never sampled */
    struct usage_sample prev;    /* the sample before it */
    uint64_t growth_bytes_per_s; /* usage_growth(prev, last) */
    uint32_t projected_permille; /* usage_projected_permille(last, growth, lead) */
    uint64_t next_ns;            /* when it is due again, ns; 0: at once */
};

/* The watched set. Not thread-safe; one owner (the event loop). */
struct usage_source {
    struct usage_entry *entries; /* entries[0..count) */
    size_t count;
    size_t cap;
};

void usage_source_init(struct usage_source *src);
void usage_source_free(struct usage_source *src);

/* Watches the cgroup at dir under key, read with read_flags, and takes
 * a reference to it: a cgroup tracked for its shims and also the
 * ancestor of others is one entry. A key already watched gains a
 * reference, gets the new dir and is due at once; it is read in full
 * (CGROUP_MEM_IF_LIMITED dropped) once any of its users asked for that.
 * Returns 0 or -ENOMEM. */
int usage_source_add(struct usage_source *src, uint64_t key, const char *dir,
                     enum cgroup_version version, unsigned read_flags);
/* Drops a reference; the last one removes the entry. Returns 0 or
 * -ENOENT. */
int usage_source_remove(struct usage_source *src, uint64_t key);
/* The entry of key, or NULL. */
const struct usage_entry *usage_source_find(const struct usage_source *src, uint64_t key);

/* Reads every watched cgroup that is due at now_ns (next_ns <= now_ns)
 * and plans its next sample with sch; an entry that cannot be read keeps
 * its error in last.error (-ENOENT: the cgroup is gone; the caller
 * decides whether to drop it). Entries read now have last.time_ns ==
 * now_ns. Returns the earliest next_ns of all entries (UINT64_MAX: none). */
uint64_t usage_source_sample_due(struct usage_source *src, const struct usage_schedule *sch,
                                 uint64_t now_ns);

/* Reads one cgroup: cgroup_read_mem() + usage_compute(). Returns 0 or the
 * negative errno (also stored in s->error). */
int usage_sample_dir(const char *dir, enum cgroup_version version, unsigned read_flags,
                     uint64_t now_ns, struct usage_sample *s);

/* The ratio a cgroup's shims follow: the highest projected_permille over
 * chain[0..n) (the cgroup, then its ancestors nearest first; NULL
 * entries, entries never sampled, in error or without a limit are
 * skipped). *gov (may be NULL) gets the index of the entry that sets it,
 * the nearest on a tie; -1, and 0 returned, when no entry has a limit.
 * Pure. */
uint32_t usage_chain_permille(const struct usage_entry *const *chain, size_t n, int *gov);

#endif /* HAKMEMD_USAGE_SOURCE_H */
