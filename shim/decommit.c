/* decommit.c: the purge walk: what a purge round gives back. Walks the
 * class lists and the superslab lists, asks policy.c which free pages
 * and units to decommit (hk_policy_decommit_mask), keeps the page map
 * and unit masks (struct hk_ss) up to date, and has the OS box madvise
 * them; releases empty slabs and retires cached empty superslabs. When
 * rounds run is purge.c's (the purge thread, the delay); the lists and
 * carving are superslab.c's (shared state in superslab.h). See
 * docs/ARCHITECTURE.md.
 *
 * Locks: hk_decommit_lock (a round at a time), then as superslab.c: a
 * class lock, then hk_ss_lock; the madvise calls are made holding none
 * but hk_decommit_lock. Calls made here that can allocate: none.
 */
#include "superslab.h"

/* Are blocks first..last of s all free? Word by word of the freemap. */
static bool blocks_free(const struct hk_slab *s, uint64_t first, uint64_t last)
{
    for (uint64_t w = first / 64; w <= last / 64; w++) {
        unsigned lo = w == first / 64 ? (unsigned)(first % 64) : 0;
        unsigned hi = w == last / 64 ? (unsigned)(last % 64) : 63;
        uint64_t want = (hi - lo == 63 ? ~(uint64_t)0 : (((uint64_t)1 << (hi - lo + 1)) - 1)) << lo;
        if ((s->freemap[w] & want) != want)
            return false;
    }
    return true;
}

/* Pages of s wholly free (every block overlapping them free), set in m
 * (bit p: page p of the superslab). Pages past the last block count as
 * free. */
static void slab_free_pages(const struct hk_slab *s, uint64_t m[PG_WORDS])
{
    unsigned npages = slab_npages(s), page0 = slab_first_page(s);
    for (unsigned p = 0; p < npages; p++) {
        uint64_t first = (uint64_t)p * HK_PAGE / s->block;
        uint64_t last = ((uint64_t)p * HK_PAGE + HK_PAGE - 1) / s->block;
        if (last >= s->nblocks)
            last = s->nblocks - 1;
        if (first >= s->nblocks || blocks_free(s, first, last))
            m[(page0 + p) / 64] |= (uint64_t)1 << ((page0 + p) % 64);
    }
}

/* ---- the round's decommit: marked under the locks, madvised after ----
 *
 * A round marks the pages it gives back decommitted under the lock that
 * guards them (a class lock for a slab's pages, hk_ss_lock for free
 * units), counts them there, and sets them in the superslab's pg_pending;
 * once the walk is done it madvises every superslab's pending pages,
 * holding no lock: adjacent pages of neighbouring slabs and units, of
 * any class, go in one call. Until their pending bits are clear, a block
 * in them is not handed out (slab_pop waits, ss_pages_wait) and the
 * superslab is not unmapped (slab_release leaves it cached; the round
 * retires cached superslabs after its madvise). */

pthread_mutex_t hk_decommit_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hk_ss *round_list;        /* hk_decommit_lock: superslabs with pending pages */
static bool round_eager;                /* hk_decommit_lock: the round's madvise */

/* Pages going back (lock held): counted now, so that a slab released
 * before the madvise counts them back exactly once. Pages given back
 * lazily before and made certain now (upgrade) count only as madvise
 * calls. */
static void decommit_count(uint64_t pages)
{
    if (!pages)
        return;
    HK_CTR_ADD(bytes_decommitted, pages * HK_PAGE);
    HK_CTR_SUB(bytes_committed, pages * HK_PAGE);
    atomic_fetch_add_explicit(&hk_released_pages, pages, memory_order_relaxed);
}

/* Pages bits of word w of ss go back in this round's madvise. */
static void decommit_mark(struct hk_ss *ss, unsigned w, uint64_t bits)
{
    if (!bits)
        return;
    __atomic_fetch_or(&ss->pg_pending[w], bits, __ATOMIC_RELAXED);
    if (!ss->dec_listed) {
        ss->dec_listed = true;
        ss->dec_next = round_list;
        round_list = ss;
    }
}

/* The madvise of every pending page, a call per run (no lock held). */
static void decommit_flush(void)
{
    if (!round_list)
        return;
    hk_os_decommit_begin();
    while (round_list) {
        struct hk_ss *ss = round_list;
        round_list = ss->dec_next;      /* before the clear: ss may go then */
        ss->dec_listed = false;
        uint64_t mask[PG_WORDS];
        for (unsigned w = 0; w < PG_WORDS; w++)
            mask[w] = __atomic_load_n(&ss->pg_pending[w], __ATOMIC_RELAXED);
        ss_maybe_decommit_superslab(ss, mask, round_eager);
        for (unsigned w = 0; w < PG_WORDS; w++)
            __atomic_fetch_and(&ss->pg_pending[w], ~mask[w], __ATOMIC_RELEASE);
    }
    hk_os_decommit_end();
}

/* Decommit the free units of ss whose bits are set in dec (hk_ss_lock
 * held); those also decommitted before were given back lazily (an
 * upgrade to eager, not counted again). */
static void decommit_units(struct hk_ss *ss, uint32_t dec)
{
    uint64_t mask[PG_WORDS] = { 0 };
    for (unsigned u = 0; u < HK_UNITS; u++)
        if (dec >> u & 1)
            bits_set(mask, u * (unsigned)UNIT_PAGES, (u + 1) * (unsigned)UNIT_PAGES);
    for (unsigned w = 0; w < PG_WORDS; w++)
        decommit_mark(ss, w, mask[w]);
    decommit_count((uint64_t)__builtin_popcount(dec & ~ss->decommitted_units) * UNIT_PAGES);
}

/* Decommit the free pages of a partly used slab (class lock held): the
 * policy's mask word by word of the page map. *waiting: free pages left
 * for a later round. True if any page goes back. */
static bool slab_purge(struct hk_slab *s, bool now, bool eager, bool *waiting)
{
    struct hk_ss *ss = ss_of_slab(s);
    unsigned first = slab_first_page(s), npages = slab_npages(s);
    uint64_t free_now[PG_WORDS] = { 0 };
    uint64_t fresh = 0;
    int64_t lazy_diff = 0;
    slab_free_pages(s, free_now);
    for (unsigned w = first / 64; w * 64 < first + npages; w++) {
        uint64_t r = pg_range(w, first, npages);
        uint64_t d0 = pg_load(ss->pg_decommitted, w) & r, l0 = pg_load(ss->pg_lazy, w) & r;
        uint64_t dec = hk_policy_decommit_mask(free_now[w], d0, l0,
                                               pg_load(ss->pg_free_seen, w) & r, now, eager);
        uint64_t seen = free_now[w] & ~d0 & ~dec;
        pg_clear(ss->pg_free_seen, w, r & ~seen);
        pg_set(ss->pg_free_seen, w, seen);
        *waiting |= seen != 0;
        if (!dec)
            continue;
        decommit_mark(ss, w, dec);
        fresh += (uint64_t)__builtin_popcountll(dec & ~d0);
        pg_set(ss->pg_decommitted, w, dec);
        uint64_t l1 = eager ? l0 & ~dec : l0 | dec;
        lazy_diff += __builtin_popcountll(l1) - __builtin_popcountll(l0);
        pg_clear(ss->pg_lazy, w, l0 & ~l1);
        pg_set(ss->pg_lazy, w, l1 & ~l0);
    }
    HK_CTR_ADD(bytes_lazy, (uint64_t)(lazy_diff * HK_PAGE));
    decommit_count(fresh);
    return fresh > 0;
}

/* The partial list of class cls (its lock held): release empty slabs,
 * mark the free pages of the others. */
static bool class_purge(unsigned cls, bool now, bool eager, bool *waiting)
{
    struct hk_class *c = &hk_classes[cls];
    bool any = false;
    hk_depot_drain_locked(c, cls);
    struct hk_slab *s = c->partial;
    while (s) {
        struct hk_slab *next = s->next;
        if (s->nfree == s->nblocks &&
            (now || !hk_policy_keep_empty_slab(hk_limits(), cls, c->nempty - 1))) {
            slab_unlink(c, s);
            c->nempty--;
            hk_slab_release(s);
        } else if (s->nfree) {
            any |= slab_purge(s, now, eager, waiting);
        }
        s = next;
    }
    return any;
}

/* One purge round: release empty slabs (all of them when now, else as the
 * policy keeps), decommit free pages of partly used slabs and free units
 * of superslabs, retire cached empty superslabs. now: everything free at
 * once (pressure, trim, switch to LEAN); otherwise only what was free at
 * the previous round too. True if any memory went back to the OS. */
bool hk_ss_purge(bool now, bool eager, bool *pending)
{
    bool released = false;
    bool waiting = false;               /* free memory left for a later round */
    pthread_mutex_lock(&hk_decommit_lock);
    round_eager = eager;
    /* One lock at a time, each taken once per round (classes that share
     * a lock are walked together): a thread that waits for pending pages
     * holding a class lock never holds one the round still needs. */
    for (unsigned g = 0; g < HK_NALLCLASS; g++) {
        if (!owns_lock(g))
            continue;
        pthread_mutex_lock(class_lock(&hk_classes[g]));
        for (unsigned cls = g; cls < HK_NALLCLASS && (cls == g || !owns_lock(cls)); cls++)
            released |= class_purge(cls, now, eager, &waiting);
        pthread_mutex_unlock(class_lock(&hk_classes[g]));
    }

    struct hk_ss *retire = NULL;
    pthread_mutex_lock(&hk_ss_lock);
    hk_purge_round++;
    for (struct hk_ss *ss = hk_ss_avail; ss; ss = ss->next) {
        uint32_t dec = (uint32_t)hk_policy_decommit_mask(ss->free_units, ss->decommitted_units,
                                                         ss->lazy_units, ss->free_seen, now, eager);
        ss->free_seen = ss->free_units & ~ss->decommitted_units & ~dec;
        waiting |= ss->free_seen != 0;
        if (!dec)
            continue;
        released |= (dec & ~ss->decommitted_units) != 0;
        decommit_units(ss, dec);
        ss->decommitted_units |= dec;
        uint32_t lazy = eager ? ss->lazy_units & ~dec : ss->lazy_units | dec;
        HK_CTR_ADD(bytes_lazy, ((uint64_t)__builtin_popcount(lazy) -
                                (uint64_t)__builtin_popcount(ss->lazy_units)) * HK_UNIT_SIZE);
        ss->lazy_units = lazy;
    }
    for (struct hk_ss *ss = hk_ss_cache, *next; ss; ss = next) {
        next = ss->next;
        if (now || ss->empty_since + 1 < hk_purge_round) {
            ss_unlink(&hk_ss_cache, ss);
            hk_ss_ncached--;
            HK_CTR_SUB(superslabs_cached, 1);
            ss->next = retire;
            retire = ss;
        } else {
            waiting = true;
        }
    }
    pthread_mutex_unlock(&hk_ss_lock);
    decommit_flush();
    bool any = released || retire != NULL;
    if (pending)
        *pending = waiting;
    while (retire) {
        struct hk_ss *next = retire->next;
        hk_ss_retire(retire, true);
        retire = next;
    }
    pthread_mutex_unlock(&hk_decommit_lock);
    return any;
}
