/* acct.h: hakmemd's accounting of what its shims report, as pure
 * functions of the stats pages read and the time passed in: the
 * per-cgroup sums of the shim counters (hakmem_cgroup_*_total, which must
 * never go down, whatever a client does) and the time from a raised level
 * to the client's stats page showing it (hakmem_release_seconds).
 *
 * Must not: read pages, look at clocks, allocate or log (metrics.c does
 * the reading and the bookkeeping; tests/unit/test_daemon_acct.c drives
 * these with made-up pages and times).
 *
 * Sums. A client's counters are its word (SECURITY.md): a process that
 * restarts under the same pid registers anew, a client may write any
 * value, and a forked child starts with its parent's counters in a fresh
 * page. So a cgroup's sum adds only what grew between two sights of one
 * client's page: the first sight of a written page (updated_ns not 0)
 * is a baseline (what the process did
 * before it registered, or its parent did, is not counted again), a
 * counter that went down is a new baseline (never a negative step), and
 * the client's last sight is folded in when it leaves. The sum is then
 * monotonic for as long as hakmemd keeps the cgroup's record.
 *
 * Release times. When hakmemd raises a cgroup's level, each of its
 * clients gets a pending release at that level, from the moment of the
 * publish. It is observed once the client's page shows the level (its
 * last_level at least that level, mode LEAN): the page is written right
 * after the level is applied, decommit included, so its updated_ns is the
 * moment of release, taken within [the last sight that did not show it,
 * now] (a page rewritten since, or a clock a client lies about, cannot
 * move it further). A release not seen within ACCT_RELEASE_GIVE_UP_NS is
 * observed at that point (the +Inf bucket). A level that falls again
 * drops the releases above it. Sights come often at first and then more
 * rarely (acct_release_next), so the error stays a fraction of the time.
 */
#ifndef HAKMEMD_ACCT_H
#define HAKMEMD_ACCT_H

#include <stdbool.h>
#include <stdint.h>
#include "msg.h"

/* The shim counters summed per cgroup, in this order (acct_sum_ids):
 * bytes_decommitted, lean_decommit, lean_retire, mode_switches; all of
 * kind TOTAL. The gauges bytes_committed and bytes_in_use are summed over
 * the clients present, at each scrape, with no state. */
#define ACCT_SUMS 4
extern const unsigned acct_sum_ids[ACCT_SUMS];

/* One client's counters as last seen. */
struct acct_seen {
    bool valid;                 /* a baseline was taken */
    uint64_t v[ACCT_SUMS];
};

/* Adds to total[] what st's counters grew since *seen, and makes them the
 * new baseline (see "Sums" above). Counters absent from the page are left
 * as they were. */
void acct_fold(struct acct_seen *seen, const struct proto_stats *st, uint64_t total[ACCT_SUMS]);

/* hakmem_release_seconds: upper bounds of its buckets, ns (1 ms .. 10 s);
 * a last bucket, +Inf, follows. */
#define ACCT_RELEASE_BUCKETS 13
extern const uint64_t acct_release_bound_ns[ACCT_RELEASE_BUCKETS];
#define ACCT_RELEASE_GIVE_UP_NS UINT64_C(10000000000) /* 10 s: the last finite bound */
#define ACCT_RELEASE_MIN_STEP_NS UINT64_C(1000000)    /* 1 ms between sights at least */

struct acct_hist {
    uint64_t bucket[ACCT_RELEASE_BUCKETS + 1]; /* observations per bucket (not cumulative) */
    uint64_t count;
    uint64_t sum_ns;
};

void acct_hist_observe(struct acct_hist *h, uint64_t ns);

/* A client's pending releases, one per level (LOW..CRITICAL). */
struct acct_release {
    uint64_t since_ns[HAKMEM_LEVEL_COUNT]; /* publish of that level; 0: none pending */
    uint64_t seen_ns;                      /* last sight of the page that did not show
                                              every pending level */
};

/* The cgroup's level went from `from` to `to` at now: a release pending
 * at `to` when it rose, the ones above `to` dropped when it fell. */
void acct_release_level(struct acct_release *r, unsigned from, unsigned to, uint64_t now);
/* A sight of the client's page at now (st NULL: unreadable): each pending
 * level that the page shows, or that waited ACCT_RELEASE_GIVE_UP_NS, is
 * observed into h[level] and no longer pending. */
void acct_release_sight(struct acct_release *r, const struct proto_stats *st, uint64_t now,
                        struct acct_hist h[HAKMEM_LEVEL_COUNT]);
/* When to look again: an eighth of the time the oldest pending release
 * has waited, at least ACCT_RELEASE_MIN_STEP_NS after the last sight; 0
 * when nothing is pending. */
uint64_t acct_release_next(const struct acct_release *r);

#endif
