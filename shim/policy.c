/* policy.c: the release policy box. Pure functions of (mode, state) that
 * say what to keep warm and what to give back; superslab.c, decommit.c,
 * large.c and tcache.c ask and the OS box executes. No state, no locks,
 * no syscalls.
 */
#include "hk_internal.h"

/* The limits of each mode: immutable, so that a reader holding a pointer
 * to one (hk_limits()) sees one mode's limits, never a mix. */
static const struct hk_limits hk_limits_of[2] = {
    /* FAST: keep memory warm: caches big enough that steady churn never
     * reaches the OS (a superslab map/unmap costs ~10 us; varying medium
     * sizes empty and refill superslabs all the time: 4 cached cost a mmap
     * per 30 ops of 33 KiB..1 MiB with 32 live). Decay (purge.c,
     * HAKMEM_SS_DECAY_MS) bounds how long they stay. */
    [HK_MODE_FAST] = {
        .tc_cap_small = HK_TC_SLOTS,
        .tc_cap_large = 16,
        .medium_cache_bytes = 1 << 20,
        .empty_slabs_kept = 2,
        .ss_cache_max = 64,
        .large_cache_max = 32,
        .large_cache_bytes = (size_t)64 << 20,
        .prewarm = 1,
        .depot_bytes = 8 << 20,
        .stash_bytes = 256 << 10,
        .purge = 0,
    },
    /* LEAN: small caches, no empty slab kept, free memory decommitted and
     * empty superslabs retired at the purge rounds (they wait on the
     * cache list until then, so that a superslab emptied and refilled
     * within one round costs no syscall). */
    [HK_MODE_LEAN] = {
        .tc_cap_small = 32,
        .tc_cap_large = 16,
        .tc_class_bytes = 64 << 10,
        .medium_cache_bytes = 0,    /* medium frees go straight to their slabs */
        .empty_slabs_kept = 0,
        .ss_cache_max = 4,
        .large_cache_max = 0,
        .large_cache_bytes = 0,
        .prewarm = 0,
        /* the depot's batches in place only, never a mapping (see
         * hk_policy_depot_max): each purge round drains them first */
        .depot_bytes = HK_DEPOT_INLINE * HK_DEPOT_BATCH * HK_MIN_ALIGN,
        .stash_bytes = 0,           /* every flush goes to the depot or the slabs */
        .purge = 1,
    },
};

const struct hk_limits *hk_policy_limits(enum hk_mode mode)
{
    return &hk_limits_of[mode == HK_MODE_LEAN];
}

/* Thread-cache capacity of a class: generous for small blocks, where
 * refills are frequent, smaller for big ones, where each block is memory;
 * LEAN also bounds the bytes a class may hold per thread (a cap of 4
 * for 1..4 KiB blocks cost LEAN 45 % more instructions than FAST on
 * churn of 16..4096 B; 16 blocks within 64 KiB cost 2 %). */
uint32_t hk_policy_tc_cap(const struct hk_limits *l, unsigned cls)
{
    uint32_t size = hk_class_size[cls];
    uint32_t cap = size <= 1024 ? l->tc_cap_small : l->tc_cap_large;
    if (l->tc_class_bytes && cap > l->tc_class_bytes / size)
        cap = l->tc_class_bytes / size > 2 ? l->tc_class_bytes / size : 2;
    return cap > HK_BIN_SLOTS(cls) ? HK_BIN_SLOTS(cls) : cap;
}

/* Classes whose first slab is carved at start in FAST mode: the small
 * sizes nearly every program allocates at once. */
bool hk_policy_prewarm_class(unsigned cls)
{
    return hk_class_size[cls] <= 256;
}

/* A slab of class cls just became empty and its class already keeps
 * nempty empty slabs: keep this one too, or give its units back? A
 * medium slab (up to 1 MiB) always goes back: its units serve every
 * medium class then, and carving one again costs no system call. */
bool hk_policy_keep_empty_slab(const struct hk_limits *l, unsigned cls, uint32_t nempty)
{
    return cls < HK_NCLASS && nempty < l->empty_slabs_kept;
}

/* A superslab just became empty with ncached already cached: cache it
 * (stays mapped) or retire it (unmap)? */
bool hk_policy_cache_superslab(const struct hk_limits *l, uint32_t ncached)
{
    return ncached < l->ss_cache_max;
}

/* The free large bytes to keep (large.c's cache of free extents, kept
 * committed for reuse in place) while live large blocks take live bytes:
 * none in LEAN; in FAST at least large_cache_bytes, and as much as is
 * live. Freed in-place reuse needs holes: blocks of 5..25 MiB, 20 live,
 * placed best fit, must fault fresh pages for 3.7 GB over 2000 turns
 * when 64 MiB are kept, 0.2 GB when as much as is live (a simulation;
 * a fresh page costs ~15-150 us on these machines, a kept one nothing).
 * Decay (hk_large_decay) gives back what stays idle. */
size_t hk_policy_large_cache_bytes(const struct hk_limits *l, size_t live)
{
    if (l->large_cache_max == 0)
        return 0;
    return live > l->large_cache_bytes ? live : l->large_cache_bytes;
}

/* Which of the pages (or units) wholly free now to decommit: those not
 * decommitted yet that were also free at the previous purge round (so
 * memory that churns within one round is never decommitted), or all of
 * them when the decommit must happen now (pressure, trim, mode switch).
 * eager (MADV_DONTNEED): also the decommitted pages that were given back
 * lazily (lazy: MADV_FREE, which the kernel may not have acted on yet). */
uint64_t hk_policy_decommit_mask(uint64_t free_now, uint64_t decommitted, uint64_t lazy,
                                 uint64_t free_seen, bool now, bool eager)
{
    uint64_t cand = free_now & ~decommitted;
    uint64_t m = now ? cand : cand & free_seen;
    if (eager)
        m |= free_now & decommitted & lazy;
    return m;
}

/* The delay before the next purge round, adapted to what the last rounds
 * achieved: when a quarter or more of what was decommitted had to come
 * back (the memory was churning, not idle), wait twice as long, up to 16
 * times the configured delay; when nothing came back, step back toward
 * it. Decommitting memory that is needed again costs a madvise and a page
 * fault per page for nothing. */
uint32_t hk_policy_purge_delay(uint32_t base_ms, uint32_t cur_ms,
                               uint64_t decommitted_pages, uint64_t recommitted_pages)
{
    if (cur_ms < base_ms)
        cur_ms = base_ms;
    uint64_t max = (uint64_t)base_ms * 16;
    if (recommitted_pages > 0 && recommitted_pages * 4 >= decommitted_pages)
        return (uint32_t)((uint64_t)cur_ms * 2 > max ? max : (uint64_t)cur_ms * 2);
    if (recommitted_pages == 0)
        return cur_ms / 2 > base_ms ? cur_ms / 2 : base_ms;
    return cur_ms;
}

/* Batches the depot of class cls may hold: the policy's bytes, within
 * HK_DEPOT_INLINE..HK_DEPOT_MAX; 0 when the mode keeps no depot. 8 MiB
 * (4096 batches of 64 B blocks) keeps mimalloc-bench's xmalloc-test
 * (producers and consumers 100 batches of 4096 blocks apart) off the
 * slabs' bitmaps but for about 2 % of its flushes. */
uint32_t hk_policy_depot_max(const struct hk_limits *l, unsigned cls)
{
    if (!l->depot_bytes || cls >= HK_NCLASS)
        return 0;
    uint32_t max = l->depot_bytes / (HK_DEPOT_BATCH * hk_class_size[cls]);
    return max < HK_DEPOT_INLINE ? HK_DEPOT_INLINE : max > HK_DEPOT_MAX ? HK_DEPOT_MAX : max;
}
