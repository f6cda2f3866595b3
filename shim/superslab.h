/* superslab.h: the superslab box's internals, shared by its two files:
 * superslab.c (carving slabs, the central lists) and decommit.c (the
 * purge walk that gives free pages back). The page map helpers, the
 * list and lock helpers both need, and the superslab lists' state.
 * Nothing outside these two files includes it. See docs/ARCHITECTURE.md.
 */
#ifndef HK_SUPERSLAB_H
#define HK_SUPERSLAB_H

#include <sched.h>
#include "hk_internal.h"

/* The lock of class c: its own for small classes; medium classes share
 * one per doubling (eight classes), so that a fork, which holds every
 * lock (hk_ss_lock_all), holds 45 class locks and not 80 (ThreadSanitizer
 * tracks at most 64 held locks). No path holds two class locks at once. */
#define MEDIUM_PER_LOCK 8
static inline pthread_mutex_t *class_lock(struct hk_class *c)
{
    size_t cls = (size_t)(c - hk_classes);
    if (cls >= HK_NCLASS)
        cls = HK_NCLASS + (cls - HK_NCLASS) / MEDIUM_PER_LOCK * MEDIUM_PER_LOCK;
    return &hk_classes[cls].lock;
}

static inline void ss_unlink(struct hk_ss **head, struct hk_ss *ss)
{
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        *head = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    ss->next = ss->prev = NULL;
}

static inline void slab_unlink(struct hk_class *c, struct hk_slab *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->partial = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        c->partial_tail = s->prev;
    s->next = s->prev = NULL;
}

static inline struct hk_ss *ss_of_slab(const struct hk_slab *s)
{
    return (struct hk_ss *)((uintptr_t)s & ~(uintptr_t)HK_SEG_MASK);
}

/* bytes_lazy follows the lazy page bits: pages given back with MADV_FREE
 * and not made certain (MADV_DONTNEED), reused, or unmapped since. */
static inline void lazy_pages_gone(uint64_t pages)
{
    if (pages)
        HK_CTR_SUB(bytes_lazy, pages * HK_PAGE);
}

#define UNIT_PAGES (HK_UNIT_SIZE / HK_PAGE)
#define PG_WORDS HK_SS_PAGE_WORDS

/* ---- the page map (struct hk_ss): one word may hold pages of slabs of
 * different classes, under different locks, so every change is an
 * atomic and/or on the word; a slab's own bits change under its class's
 * lock only. ---- */

static inline uint64_t pg_load(const uint64_t *map, unsigned w)
{
    return __atomic_load_n(&map[w], __ATOMIC_RELAXED);
}

static inline void pg_set(uint64_t *map, unsigned w, uint64_t bits)
{
    if (bits)
        __atomic_fetch_or(&map[w], bits, __ATOMIC_RELAXED);
}

static inline void pg_clear(uint64_t *map, unsigned w, uint64_t bits)
{
    if (bits)
        __atomic_fetch_and(&map[w], ~bits, __ATOMIC_RELAXED);
}

/* The bits of word w for pages [first, first + n). */
static inline uint64_t pg_range(unsigned w, unsigned first, unsigned n)
{
    unsigned lo = w * 64, hi = lo + 64;
    unsigned a = first > lo ? first : lo, b = first + n < hi ? first + n : hi;
    if (a >= b)
        return 0;
    uint64_t m = b - a == 64 ? ~(uint64_t)0 : (((uint64_t)1 << (b - a)) - 1);
    return m << (a - lo);
}

/* Set the bits of pages [from, to) in a local map. */
static inline void bits_set(uint64_t *map, unsigned from, unsigned to)
{
    for (unsigned w = from / 64; w * 64 < to; w++)
        map[w] |= pg_range(w, from, to - from);
}

/* First page (of the superslab) and pages of slab s; its words. */
static inline unsigned slab_first_page(const struct hk_slab *s)
{
    return s->unit * (unsigned)UNIT_PAGES;
}

static inline unsigned slab_npages(const struct hk_slab *s)
{
    return s->span * (unsigned)UNIT_PAGES;
}

/* Wait until the pages (bits) of word w of ss are no longer being
 * decommitted by a purge round (decommit.c). Every path that hands out a
 * block calls this for the block's pages before the memory can be
 * touched. The round madvises them holding no lock, and never waits for
 * the lock of a class it has walked, so waiting here with a class lock
 * held cannot deadlock. */
static inline void ss_pages_wait(const struct hk_ss *ss, unsigned w, uint64_t bits)
{
    while (__atomic_load_n(&ss->pg_pending[w], __ATOMIC_ACQUIRE) & bits)
        sched_yield();
}

/* Has ss pages a purge round is giving back (not to be unmapped)? */
static inline bool ss_pending(const struct hk_ss *ss)
{
    for (unsigned w = 0; w < PG_WORDS; w++)
        if (__atomic_load_n(&ss->pg_pending[w], __ATOMIC_ACQUIRE))
            return true;
    return false;
}

/* Does class cls own its lock (rather than share another's)? */
static inline bool owns_lock(unsigned cls)
{
    return cls < HK_NCLASS || (cls - HK_NCLASS) % MEDIUM_PER_LOCK == 0;
}

/* ---- superslab.c: state and functions the purge walk shares ---- */

/* hk_ss_lock guards superslab unit masks and these lists (order: a
 * class lock, then hk_ss_lock). */
extern pthread_mutex_t hk_ss_lock HK_HIDDEN;
extern struct hk_ss *hk_ss_avail HK_HIDDEN;     /* superslabs with a free unit */
extern struct hk_ss *hk_ss_cache HK_HIDDEN;     /* empty ones; head = most recent */
extern uint32_t hk_ss_ncached HK_HIDDEN;
extern uint64_t hk_purge_round HK_HIDDEN;       /* purge rounds so far */

HK_HIDDEN void hk_slab_release(struct hk_slab *s);

/* ---- decommit.c ---- */
/* Held for a whole purge round, taken before any class lock: rounds do
 * not overlap, and a fork (hk_ss_lock_all) never sees one half done. */
extern pthread_mutex_t hk_decommit_lock HK_HIDDEN;
HK_HIDDEN void hk_ss_retire(struct hk_ss *ss, bool lean);
HK_HIDDEN void hk_depot_drain_locked(struct hk_class *c, unsigned cls);

#endif
