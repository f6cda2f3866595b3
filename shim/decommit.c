/* decommit.c: the purge walk: what a purge round gives back. Walks the
 * class lists and the superslab lists, asks policy.c which free pages
 * and units to decommit (hk_policy_decommit_mask), keeps the page map
 * and unit masks (struct hk_ss) up to date, and has the OS box madvise
 * them; releases empty slabs and retires cached empty superslabs. When
 * rounds run is purge.c's (the purge thread, the delay); the lists and
 * carving are superslab.c's (shared state in superslab.h). See
 * docs/ARCHITECTURE.md.
 *
 * Locks: as superslab.c: a class lock, then hk_ss_lock. Calls made here
 * that can allocate: none.
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

/* Decommit the free units of ss whose bits are set in dec; those also
 * in upg were given back lazily before (an upgrade to eager, see the OS
 * box). Returns the bytes. */
static size_t decommit_units(struct hk_ss *ss, uint32_t dec, uint32_t upg, bool eager)
{
    size_t released = 0;
    for (int pass = 0; pass < 2; pass++) {
        uint32_t bits = pass ? dec & upg : dec & ~upg;
        if (!bits)
            continue;
        uint64_t mask[PG_WORDS] = { 0 };
        for (unsigned u = 0; u < HK_UNITS; u++)
            if (bits >> u & 1)
                bits_set(mask, u * (unsigned)UNIT_PAGES, (u + 1) * (unsigned)UNIT_PAGES);
        released += ss_maybe_decommit_superslab(ss, mask, eager, pass == 1);
    }
    return released;
}

/* Decommit the free pages of a partly used slab (class lock held): the
 * policy's mask word by word of the page map. *waiting: free pages left
 * for a later round. */
static size_t slab_purge(struct hk_slab *s, bool now, bool eager, bool *waiting)
{
    struct hk_ss *ss = ss_of_slab(s);
    unsigned first = slab_first_page(s), npages = slab_npages(s);
    uint64_t free_now[PG_WORDS] = { 0 }, fresh[PG_WORDS] = { 0 }, upg[PG_WORDS] = { 0 };
    bool any = false;
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
        fresh[w] = dec & ~d0;
        upg[w] = dec & d0;
        any |= dec != 0;
    }
    if (!any)
        return 0;
    size_t released = ss_maybe_decommit_superslab(ss, fresh, eager, false) +
                      ss_maybe_decommit_superslab(ss, upg, eager, true);
    int64_t lazy_diff = 0;
    for (unsigned w = first / 64; w * 64 < first + npages; w++) {
        uint64_t dec = fresh[w] | upg[w];
        pg_set(ss->pg_decommitted, w, dec);
        uint64_t l0 = pg_load(ss->pg_lazy, w) & pg_range(w, first, npages);
        uint64_t l1 = eager ? l0 & ~dec : l0 | dec;
        lazy_diff += __builtin_popcountll(l1) - __builtin_popcountll(l0);
        pg_clear(ss->pg_lazy, w, l0 & ~l1);
        pg_set(ss->pg_lazy, w, l1 & ~l0);
    }
    HK_CTR_ADD(bytes_lazy, (uint64_t)(lazy_diff * HK_PAGE));
    return released;
}

/* One purge round: release empty slabs (all of them when now, else as the
 * policy keeps), decommit free pages of partly used slabs and free units
 * of superslabs, retire cached empty superslabs. now: everything free at
 * once (pressure, trim, switch to LEAN); otherwise only what was free at
 * the previous round too. True if any memory went back to the OS. */
bool hk_ss_purge(bool now, bool eager, bool *pending)
{
    size_t released = 0;
    bool waiting = false;               /* free memory left for a later round */
    for (unsigned cls = 0; cls < HK_NALLCLASS; cls++) {
        struct hk_class *c = &hk_classes[cls];
        pthread_mutex_lock(class_lock(c));
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
                released += slab_purge(s, now, eager, &waiting);
            }
            s = next;
        }
        pthread_mutex_unlock(class_lock(c));
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
        released += decommit_units(ss, dec, ss->decommitted_units, eager);
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
    bool any = released > 0 || retire != NULL;
    if (pending)
        *pending = waiting;
    while (retire) {
        struct hk_ss *next = retire->next;
        hk_ss_retire(retire, true);
        retire = next;
    }
    return any;
}
