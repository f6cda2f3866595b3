/* metrics.h: what hakmemd keeps for its metrics beyond the state it runs
 * on (metrics.c): per-cgroup records of the shim counters' sums and the
 * level changes, the time its clients take to release
 * (hakmem_release_seconds, from sights of their stats pages on a timer of
 * its own), and the connections its sockets refused. control.c prints
 * them (cmd_metrics); the arithmetic is acct.c's.
 *
 * A cgroup's record outlives the cgroup's tracking by METRICS_LINGER_NS,
 * so that what its last clients did before leaving is still scraped, and
 * a cgroup whose only process restarts keeps one monotonic series.
 */
#ifndef HAKMEMD_METRICS_H
#define HAKMEMD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "acct.h"

/* Kept after the cgroup is no longer tracked: five minutes, several
 * scrapes at any usual interval (15 s to 1 min). */
#define METRICS_LINGER_NS (300 * UINT64_C(1000000000))
/* Records of untracked cgroups kept at most (the oldest go first): a host
 * that runs thousands of short-lived cgroups keeps bounded series. */
#define METRICS_GONE_MAX 1024

/* Why a connection was refused or dropped: the `reason` label of
 * hakmem_rendezvous_rejected_total (hakmemd.sock) and
 * hakmem_control_refused_total (control.sock, metrics.sock). */
#define METRICS_REASONS(X)                                                     \
    X(UID_LIMIT, "uid_limit")       /* -EUSERS: too many for this uid */        \
    X(TOTAL_LIMIT, "total_limit")   /* -ENOSPC: every slot taken */             \
    X(DESCRIPTORS, "descriptors")   /* -EMFILE: out of file descriptors */     \
    X(PERMISSION, "permission")     /* -EACCES: not root nor in metrics_group */ \
    X(UNIDENTIFIED, "unidentified") /* the peer could not be identified */     \
    X(TIMEOUT, "timeout")           /* no hello / request / read in time */    \
    X(MALFORMED, "malformed")       /* a hello that does not check out */      \
    X(VERSION, "version")           /* -EPROTONOSUPPORT: a protocol not served */ \
    X(CGROUP, "cgroup")             /* its memory cgroup not found */          \
    X(MEMORY, "memory")             /* hakmemd out of memory */
enum metrics_reason {
#define METRICS_X_ENUM(id, name) METRICS_##id,
    METRICS_REASONS(METRICS_X_ENUM)
#undef METRICS_X_ENUM
    METRICS_REASON_COUNT
};
/* The reasons each family shows (a bit per enum metrics_reason). */
#define METRICS_RENDEZVOUS_REASONS                                                      \
    (1u << METRICS_UID_LIMIT | 1u << METRICS_TOTAL_LIMIT | 1u << METRICS_DESCRIPTORS | \
     1u << METRICS_TIMEOUT | 1u << METRICS_MALFORMED | 1u << METRICS_VERSION |          \
     1u << METRICS_CGROUP | 1u << METRICS_MEMORY)
#define METRICS_CONTROL_REASONS                                                         \
    (1u << METRICS_UID_LIMIT | 1u << METRICS_TOTAL_LIMIT | 1u << METRICS_DESCRIPTORS | \
     1u << METRICS_PERMISSION | 1u << METRICS_UNIDENTIFIED | 1u << METRICS_TIMEOUT |   \
     1u << METRICS_MEMORY)

/* One memory cgroup's record, tracked now or lately. */
struct cg_acct {
    uint64_t key;
    char *path;                     /* the cgroup's path when tracked (owned) */
    uint64_t gone_ns;               /* when it stopped being tracked; 0: tracked */
    uint64_t total[ACCT_SUMS];      /* sums of the shim counters (acct_sum_ids) */
    uint64_t level_changes;
    /* of the clients present, at the last metrics_fold */
    uint32_t clients[HAKMEM_MODE_COUNT];
    uint64_t committed, in_use;     /* bytes */
};

/* Per client (struct client). */
struct client_acct {
    struct acct_seen seen;
    struct acct_release rel;
    uint32_t hello_mode;            /* enum hakmem_mode of its hello (no page: this one) */
    bool superseded;                /* its pid registered again: the newer one counts */
};

struct metrics {
    uint64_t start_real_ns;         /* CLOCK_REALTIME at start, ns */
    int release_fd;                 /* timerfd (monotonic): the next sight of pages */
    uint64_t release_at_ns;         /* when it is set to fire; 0: not set */
    struct acct_hist release[HAKMEM_LEVEL_COUNT]; /* hakmem_release_seconds{level} */
    struct cg_acct **cg;            /* records, tracked and gone */
    size_t ncg, cap_cg;
    uint64_t rejected[METRICS_REASON_COUNT];         /* hakmemd.sock */
    uint64_t refused[2][METRICS_REASON_COUNT];       /* [0] control.sock, [1] metrics.sock */
};

const char *metrics_reason_name(enum metrics_reason r);
/* The reason for a refusal's negative errno (limits.c, the hello checks). */
enum metrics_reason metrics_reason_of(int status);

#endif
