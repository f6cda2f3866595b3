/* acct.c: per-cgroup sums of the shim counters and release times, pure
 * (see acct.h for the rules and why). */
#include <string.h>
#include "acct.h"

const unsigned acct_sum_ids[ACCT_SUMS] = {
    HAKMEM_COUNTER_ID(bytes_decommitted),
    HAKMEM_COUNTER_ID(lean_decommit),
    HAKMEM_COUNTER_ID(lean_retire),
    HAKMEM_COUNTER_ID(mode_switches),
};

/* 1-2.5-5 steps: one bucket per factor of 2 to 2.5, so that the p99
 * against the 100 ms target and a release that takes seconds both read. */
const uint64_t acct_release_bound_ns[ACCT_RELEASE_BUCKETS] = {
    1000000, 2500000, 5000000, 10000000, 25000000, 50000000, 100000000,
    250000000, 500000000, 1000000000, 2500000000u, 5000000000u, ACCT_RELEASE_GIVE_UP_NS,
};

void acct_fold(struct acct_seen *seen, const struct proto_stats *st, uint64_t total[ACCT_SUMS])
{
    if (st->updated_ns == 0)
        return;                         /* a page never written yet: no sight */
    for (unsigned i = 0; i < ACCT_SUMS; i++) {
        unsigned id = acct_sum_ids[i];
        if (!(st->present >> id & 1))
            continue;
        uint64_t cur = st->counter[id];
        if (seen->valid && cur > seen->v[i])
            total[i] += cur - seen->v[i];
        seen->v[i] = cur;               /* a baseline, first or new */
    }
    seen->valid = true;
}

void acct_hist_observe(struct acct_hist *h, uint64_t ns)
{
    unsigned b = 0;
    while (b < ACCT_RELEASE_BUCKETS && ns > acct_release_bound_ns[b])
        b++;
    h->bucket[b]++;
    h->count++;
    h->sum_ns += ns;
}

static bool pending(const struct acct_release *r)
{
    for (unsigned l = HAKMEM_LEVEL_LOW; l < HAKMEM_LEVEL_COUNT; l++)
        if (r->since_ns[l])
            return true;
    return false;
}

void acct_release_level(struct acct_release *r, unsigned from, unsigned to, uint64_t now)
{
    if (to >= HAKMEM_LEVEL_COUNT)
        return;
    if (to > from) {
        if (!pending(r))
            r->seen_ns = now;
        r->since_ns[to] = now ? now : 1;
    } else {
        for (unsigned l = to + 1; l < HAKMEM_LEVEL_COUNT; l++)
            r->since_ns[l] = 0;
    }
}

void acct_release_sight(struct acct_release *r, const struct proto_stats *st, uint64_t now,
                        struct acct_hist h[HAKMEM_LEVEL_COUNT])
{
    bool left = false;
    for (unsigned l = HAKMEM_LEVEL_LOW; l < HAKMEM_LEVEL_COUNT; l++) {
        uint64_t since = r->since_ns[l];
        if (!since)
            continue;
        if (st && st->last_level >= l && st->mode == HAKMEM_MODE_LEAN) {
            /* released at the page's word, within what the sights allow */
            uint64_t lo = r->seen_ns > since ? r->seen_ns : since, at = st->updated_ns;
            at = at < lo ? lo : at > now ? now : at;
            acct_hist_observe(&h[l], at - since);
            r->since_ns[l] = 0;
        } else if (now > since && now - since > ACCT_RELEASE_GIVE_UP_NS) {
            acct_hist_observe(&h[l], now - since);
            r->since_ns[l] = 0;
        } else {
            left = true;
        }
    }
    if (left)
        r->seen_ns = now;
}

uint64_t acct_release_next(const struct acct_release *r)
{
    uint64_t oldest = 0;
    for (unsigned l = HAKMEM_LEVEL_LOW; l < HAKMEM_LEVEL_COUNT; l++)
        if (r->since_ns[l] && (!oldest || r->since_ns[l] < oldest))
            oldest = r->since_ns[l];
    if (!oldest)
        return 0;
    uint64_t waited = r->seen_ns > oldest ? r->seen_ns - oldest : 0;
    uint64_t step = waited / 8 > ACCT_RELEASE_MIN_STEP_NS ? waited / 8 : ACCT_RELEASE_MIN_STEP_NS;
    return r->seen_ns + step;
}
