/* superslab.c: superslabs, their slabs, and the central per-class lists.
 *
 * Owns: carving slabs out of superslabs, the free-block bitmaps, the
 * per-class partial lists (hk_classes), the list of superslabs with free
 * units and the cache of empty ones. Asks policy.c what to keep; calls
 * the OS box to map and unmap. Never called on the fast path: thread
 * caches come here in batches. Giving free pages back (the purge walk)
 * is decommit.c's; what both share is in superslab.h. See
 * docs/ARCHITECTURE.md.
 *
 * Locks: a class's lock guards its partial list and the descriptors of
 * its slabs; hk_ss_lock guards superslab unit masks and lists. Order:
 * (hk_tc_lock, a thief's,) class lock, then hk_ss_lock; a purge round
 * takes hk_decommit_lock before them all, and blocks in pages it is
 * giving back are handed out once it is done (ss_pages_wait). Callers are
 * guarded (guard.c). Calls made here that can allocate: none (the OS box,
 * pthread mutexes, the purge note: it only asks for the purger, which
 * starts at a safe point).
 */
#include <string.h>
#include "superslab.h"

_Static_assert(sizeof(struct hk_ss) <= HK_UNIT_SIZE, "superslab header fits unit 0");
_Static_assert(offsetof(struct hk_ss, seg) == 0, "segment head first");
_Static_assert(offsetof(struct hk_large, seg) == 0, "segment head first");
_Static_assert(HK_CLS_FREE >= HK_NCLASS && HK_CLS_LARGE >= HK_NCLASS, "markers");

struct hk_class hk_classes[HK_NALLCLASS];

/* Each class's first HK_DEPOT_INLINE batches, apart from struct hk_class:
 * the class array is written at start (its locks), these pages only by a
 * class that flushes, so a small program keeps ~170 KiB of them untouched. */
static struct hk_batch depot_inline[HK_NALLCLASS][HK_DEPOT_INLINE];

/* The superslab lists (superslab.h says what each holds). */
pthread_mutex_t hk_ss_lock = PTHREAD_MUTEX_INITIALIZER;
struct hk_ss *hk_ss_avail;
struct hk_ss *hk_ss_cache;
uint32_t hk_ss_ncached;
uint64_t hk_purge_round;

/* ---- intrusive lists ---- */

static void ss_push(struct hk_ss **head, struct hk_ss *ss)
{
    ss->prev = NULL;
    ss->next = *head;
    if (*head)
        (*head)->prev = ss;
    *head = ss;
}

static void slab_push_head(struct hk_class *c, struct hk_slab *s)
{
    s->prev = NULL;
    s->next = c->partial;
    if (c->partial)
        c->partial->prev = s;
    else
        c->partial_tail = s;
    c->partial = s;
}

static void slab_push_tail(struct hk_class *c, struct hk_slab *s)
{
    s->next = NULL;
    s->prev = c->partial_tail;
    if (c->partial_tail)
        c->partial_tail->next = s;
    else
        c->partial = s;
    c->partial_tail = s;
}

/* ---- geometry ---- */

static char *slab_base(const struct hk_slab *s)
{
    return (char *)ss_of_slab(s) + ((size_t)s->unit << HK_UNIT_SHIFT);
}

struct hk_slab *hk_slab_of(struct hk_ss *ss, const void *p)
{
    unsigned u = ((uintptr_t)p >> HK_UNIT_SHIFT) & (HK_UNITS - 1);
    return &ss->slabs[ss->slabs[u].head];
}

static uint32_t slab_words(const struct hk_slab *s)
{
    return (s->nblocks + 63) / 64;
}

/* Index of the block at p, or UINT32_MAX when p is not a block start. */
static uint32_t slab_index(const struct hk_slab *s, const void *p)
{
    uint64_t off = (uint64_t)((const char *)p - slab_base(s));
    uint64_t idx = (off * s->div_magic) >> 40;
    if (idx >= s->nblocks || idx * s->block != off)
        return UINT32_MAX;
    return (uint32_t)idx;
}

/* p is in a superslab and starts no block of a slab: a unit that no slab
 * holds (past the header) held a block that was freed, and its slab went
 * back (a medium block's slab goes back as soon as it is empty): a double
 * free, or a pointer into memory freed before; anything else is not a
 * block at all. */
void hk_ss_refuse(const void *p, const char *who)
{
    unsigned u = ((uintptr_t)p >> HK_UNIT_SHIFT) & (HK_UNITS - 1);
    if (u != 0 && hk_unit_cls(hk_seg_of(p), p) == HK_CLS_FREE)
        hk_fatal("%s(): double free or corruption %p", who, (void *)p);
    hk_fatal("%s(): invalid pointer %p", who, (void *)p);
}

bool hk_block_valid(struct hk_ss *ss, const void *p)
{
    return slab_index(hk_slab_of(ss, p), p) != UINT32_MAX;
}

/* ---- superslabs (hk_ss_lock held unless said) ---- */

/* First unit of a run of span free units in mask, or -1. A run starts at
 * a multiple of span, so that a slab of four units is 256 KiB aligned:
 * free() then tells its block starts from the address alone (sizeclass.c,
 * hk_block_check_init); for medium slabs (8 or 16 units) the alignment
 * keeps the superslab in buddy-like halves and quarters, so that a
 * 16-unit run stays possible where small slabs went first (low units). */
static int find_run(uint32_t mask, unsigned span)
{
    uint32_t m = mask;
    for (unsigned i = 1; i < span; i++)
        m &= mask >> i;
    static const uint32_t starts[17] = { [1] = ~0u, [4] = 0x11111111u, [8] = 0x01010101u,
                                         [16] = 0x00010001u };
    m &= starts[span];
    return m ? __builtin_ctz(m) : -1;
}

/* A new superslab, mapped and registered. Called without locks. */
static struct hk_ss *ss_map(void)
{
    struct hk_ss *ss = hk_os_map_aligned(HK_SEG_SIZE);
    if (!ss)
        return NULL;
    bool lean = hk_limits()->purge;
    if (hk_opt.ss_hugepage && !lean)    /* before the first touch faults a page in */
        hk_os_hugepage(ss, HK_SEG_SIZE, true);
    atomic_store_explicit(&ss->hugepage, hk_opt.ss_hugepage && !lean, memory_order_relaxed);
    hk_seg_init(&ss->seg, HK_SEG_MAGIC_SS, HK_CLS_FREE);
    ss->free_units = HK_SS_USABLE;
    for (unsigned u = 0; u < HK_UNITS; u++)
        ss->slabs[u].unit = (uint8_t)u;
    if (lean) {
        /* LEAN: its pages count as committed as blocks are handed out
         * from them (slab_carve, slab_pop), not all at once; and never
         * as needed again (the purge's adaptive delay): only pages the
         * purge gave back are. */
        ss->decommitted_units = ss->fresh_units = HK_SS_USABLE;
        HK_CTR_ADD(bytes_committed, HK_UNIT_SIZE);
    } else {
        HK_CTR_ADD(bytes_committed, HK_SEG_SIZE);
    }
    hk_reg_set((uintptr_t)ss);
    return ss;
}

/* Unmap an empty superslab. lean: the release policy retired it (LEAN,
 * pressure, trim), as opposed to FAST's cache overflowing; only those
 * count as lean_retire. */
void hk_ss_retire(struct hk_ss *ss, bool lean)
{
    while (ss_pending(ss))             /* never, see hk_slab_release */
        sched_yield();
    hk_reg_clear((uintptr_t)ss);
    lazy_pages_gone((uint64_t)__builtin_popcount(ss->lazy_units) * UNIT_PAGES);
    HK_CTR_SUB(bytes_committed, HK_SEG_SIZE -
               (size_t)__builtin_popcount(ss->decommitted_units) * HK_UNIT_SIZE);
    if (lean) {                         /* what was still committed */
        HK_CTR_ADD(lean_retire, 1);
        atomic_fetch_add_explicit(&hk_released_pages,
                                  HK_SS_PAGES - (uint64_t)__builtin_popcount(ss->decommitted_units) *
                                  UNIT_PAGES, memory_order_relaxed);
    }
    hk_os_unmap(ss, HK_SEG_SIZE);
}

/* For the purge's adaptive delay: pages given back by the release policy
 * (decommitted or retired), and pages needed again since (a decommitted
 * page touched, or a superslab mapped while LEAN retires them). */
_Atomic uint64_t hk_released_pages;
_Atomic uint64_t hk_recommit_pages;


/* Take span free units for a slab of class cls. Returns the slab (its
 * descriptor initialised, every block free) or NULL when out of memory. */
static struct hk_slab *slab_carve(unsigned cls)
{
    unsigned span = hk_class_span(cls);
    struct hk_ss *ss, *fresh = NULL;
    int u = -1;

    pthread_mutex_lock(&hk_ss_lock);
    for (;;) {
        for (ss = hk_ss_avail; ss; ss = ss->next)
            if ((u = find_run(ss->free_units, span)) >= 0)
                break;
        if (ss)
            break;
        if (fresh) {                    /* mapped below, now usable */
            ss = fresh;
            fresh = NULL;
        } else if (hk_ss_cache) {
            ss = hk_ss_cache;           /* the most recently emptied */
            ss_unlink(&hk_ss_cache, ss);
            hk_ss_ncached--;
            HK_CTR_SUB(superslabs_cached, 1);
        } else {
            pthread_mutex_unlock(&hk_ss_lock);
            fresh = ss_map();
            pthread_mutex_lock(&hk_ss_lock);
            if (!fresh) {
                pthread_mutex_unlock(&hk_ss_lock);
                return NULL;
            }
            continue;                   /* another thread may have freed units */
        }
        ss_push(&hk_ss_avail, ss);
    }
    if (ss->free_units == HK_SS_USABLE)
        HK_CTR_ADD(superslabs_live, 1);
    uint32_t bits = (((uint32_t)1 << span) - 1) << u;
    ss->free_units &= ~bits;
    ss->free_seen &= ~bits;
    /* Decommitted units come back page by page, on touch: the slab's
     * page map takes them over below, so that slab_pop counts only the
     * pages of blocks handed out (committed again, needed again). */
    uint32_t dec_units = ss->decommitted_units & bits, lazy_units = ss->lazy_units & bits;
    uint32_t fresh_units = ss->fresh_units & bits;
    ss->decommitted_units &= ~bits;
    ss->lazy_units &= ~bits;
    ss->fresh_units &= ~bits;
    if (ss->free_units == 0)
        ss_unlink(&hk_ss_avail, ss);
    pthread_mutex_unlock(&hk_ss_lock);

    if (fresh) {                        /* raced: keep it for later */
        pthread_mutex_lock(&hk_ss_lock);
        ss_push(&hk_ss_cache, fresh);
        hk_ss_ncached++;
        HK_CTR_ADD(superslabs_cached, 1);
        pthread_mutex_unlock(&hk_ss_lock);
    }

    struct hk_slab *s = &ss->slabs[u];
    uint32_t block = hk_class_size[cls];
    s->block = block;
    s->cls = (uint8_t)cls;
    s->span = (uint8_t)span;
    s->nblocks = (uint32_t)((span * HK_UNIT_SIZE) / block);
    s->nfree = s->nblocks;
    s->hint = 0;
    s->div_magic = (((uint64_t)1 << 40) + block - 1) / block;
    s->next = s->prev = NULL;
    uint32_t words = slab_words(s);
    memset(s->freemap, 0xff, (size_t)words * 8);
    if (s->nblocks % 64)
        s->freemap[words - 1] = ((uint64_t)1 << (s->nblocks % 64)) - 1;
    for (unsigned i = 0; i < span; i++) {
        ss->slabs[u + i].head = (uint8_t)u;
        ss->seg.unit_cls[u + i] = (uint8_t)cls;
    }
    for (unsigned v = (unsigned)u; v < (unsigned)u + span; v++) {   /* class lock held */
        unsigned first = v * (unsigned)UNIT_PAGES, w = first / 64;
        uint64_t r = pg_range(w, first, (unsigned)UNIT_PAGES);
        if (dec_units >> v & 1)
            pg_set(ss->pg_decommitted, w, r);
        if (lazy_units >> v & 1)
            pg_set(ss->pg_lazy, w, r);
        if (fresh_units >> v & 1)
            pg_set(ss->pg_fresh, w, r);
    }
    return s;
}

/* Give the units of an empty slab back to its superslab; an empty
 * superslab is cached or retired as the policy says. */
void hk_slab_release(struct hk_slab *s)
{
    struct hk_ss *ss = ss_of_slab(s);
    unsigned u = s->unit, span = s->span;
    memset(&ss->seg.unit_cls[u], HK_CLS_FREE, span);
    /* A unit whose pages are all decommitted alike (all lazily or none)
     * goes back decommitted (never touched since a purge, or since it was
     * mapped in LEAN); the others are dirty as a whole until the next
     * purge. */
    uint64_t back = 0, lazy = 0;
    uint32_t dec_units = 0, lazy_units = 0, fresh_units = 0;
    for (unsigned v = u; v < u + span; v++) {
        unsigned first = v * (unsigned)UNIT_PAGES, w = first / 64;
        uint64_t r = pg_range(w, first, (unsigned)UNIT_PAGES);
        uint64_t d = pg_load(ss->pg_decommitted, w) & r, l = pg_load(ss->pg_lazy, w) & r;
        if (d == r && (l == 0 || l == r)) {
            dec_units |= (uint32_t)1 << v;
            lazy_units |= l ? (uint32_t)1 << v : 0;
            fresh_units |= (pg_load(ss->pg_fresh, w) & r) == r ? (uint32_t)1 << v : 0;
        } else {
            back += (uint64_t)__builtin_popcountll(d);
            lazy += (uint64_t)__builtin_popcountll(l);
        }
        pg_clear(ss->pg_decommitted, w, r);
        pg_clear(ss->pg_lazy, w, r);
        pg_clear(ss->pg_free_seen, w, r);
        pg_clear(ss->pg_fresh, w, r);
    }
    s->span = 0;
    HK_CTR_ADD(bytes_committed, back * HK_PAGE);
    lazy_pages_gone(lazy);

    pthread_mutex_lock(&hk_ss_lock);
    if (ss->free_units == 0)
        ss_push(&hk_ss_avail, ss);
    ss->free_units |= (((uint32_t)1 << span) - 1) << u;
    ss->decommitted_units |= dec_units;
    ss->lazy_units |= lazy_units;
    ss->fresh_units |= fresh_units;
    struct hk_ss *retire = NULL;
    const struct hk_limits *lim = hk_limits();
    if (ss->free_units == HK_SS_USABLE) {
        ss_unlink(&hk_ss_avail, ss);
        HK_CTR_SUB(superslabs_live, 1);
        /* Cache it (most recent first); past the policy's limit, the
         * least recently emptied one goes. */
        ss->empty_since = hk_purge_round;
        ss_push(&hk_ss_cache, ss);
        hk_ss_ncached++;
        HK_CTR_ADD(superslabs_cached, 1);
        if (!hk_policy_cache_superslab(lim, hk_ss_ncached - 1)) {
            struct hk_ss *lru = hk_ss_cache;
            while (lru->next)
                lru = lru->next;
            /* One whose pages a purge round is giving back stays cached:
             * the round retires cached ones after its madvise calls. */
            if (!ss_pending(lru)) {
                ss_unlink(&hk_ss_cache, lru);
                hk_ss_ncached--;
                HK_CTR_SUB(superslabs_cached, 1);
                retire = lru;
            }
        }
    }
    pthread_mutex_unlock(&hk_ss_lock);
    if (retire)
        hk_ss_retire(retire, lim->purge);
}

/* ---- central lists ---- */

/* Pop up to want free blocks of s into out (lowest addresses first). */
static size_t slab_pop(struct hk_slab *s, void **out, size_t want)
{
    char *base = slab_base(s);
    uint32_t words = slab_words(s), w = s->hint;
    size_t n = 0;
    unsigned first = slab_first_page(s);
    uint64_t touched[PG_WORDS] = { 0 }; /* pages of the blocks handed out */
    while (n < want && w < words) {
        uint64_t bits = s->freemap[w];
        while (bits && n < want) {
            unsigned b = (unsigned)__builtin_ctzll(bits);
            bits &= bits - 1;
            size_t off = ((size_t)w * 64 + b) * s->block;
            out[n++] = base + off;
            bits_set(touched, first + (unsigned)(off / HK_PAGE),
                     first + (unsigned)((off + s->block - 1) / HK_PAGE) + 1);
        }
        s->freemap[w] = bits;
        if (!bits)
            w++;
    }
    s->hint = w;
    s->nfree -= (uint32_t)n;
    struct hk_ss *ss = ss_of_slab(s);
    uint64_t back = 0, again = 0, lazy = 0;
    for (unsigned i = first / 64; i * 64 < first + slab_npages(s); i++) {
        if (!touched[i])
            continue;
        ss_pages_wait(ss, i, touched[i]);
        pg_clear(ss->pg_free_seen, i, touched[i]);
        uint64_t d = pg_load(ss->pg_decommitted, i) & touched[i];
        if (!d)
            continue;                   /* they come back on first touch */
        uint64_t l = pg_load(ss->pg_lazy, i) & d, f = pg_load(ss->pg_fresh, i) & d;
        back += (uint64_t)__builtin_popcountll(d);
        again += (uint64_t)__builtin_popcountll(d & ~f);
        lazy += (uint64_t)__builtin_popcountll(l);
        pg_clear(ss->pg_decommitted, i, d);
        pg_clear(ss->pg_lazy, i, l);
        pg_clear(ss->pg_fresh, i, f);
    }
    if (back) {
        HK_CTR_ADD(bytes_committed, back * HK_PAGE);
        if (again)
            atomic_fetch_add_explicit(&hk_recommit_pages, again, memory_order_relaxed);
        lazy_pages_gone(lazy);
    }
    return n;
}

/* The batches of c's depot (class lock held), and how many it has room
 * for: the ones in place until it moved to a mapping (depot_grow). */
static struct hk_batch *depot_of(struct hk_class *c)
{
    return c->depot ? c->depot : depot_inline[c - hk_classes];
}

static uint32_t depot_cap(const struct hk_class *c)
{
    return c->depot ? c->depot_cap : HK_DEPOT_INLINE;
}

/* Who flushed a depot batch: a tag of the calling thread (its cache's
 * address). */
static uint32_t depot_owner(void)
{
    return (uint32_t)((uintptr_t)&hk_tls >> 6);
}

/* How deep a refill looks into the depot for a batch its own thread
 * flushed. */
#define DEPOT_OWN_SCAN 4

/* Take a batch of at most want blocks off c's depot (class lock held):
 * the newest this thread flushed among the top DEPOT_OWN_SCAN, else the
 * newest. Blocks go back to the thread that freed them where they can:
 * threads that free their own blocks (glibc's bench-malloc-thread) then
 * never get blocks that share cache lines with another thread's live
 * ones; a producer/consumer pair still crosses in batches. */
static size_t depot_take_locked(struct hk_class *c, void **out, size_t want)
{
    struct hk_batch *d = depot_of(c);
    uint32_t top = c->ndepot - 1, me = depot_owner();
    for (uint32_t k = 0; k < DEPOT_OWN_SCAN && k <= top; k++) {
        if (d[top - k].owner == me && d[top - k].n <= want) {
            if (k) {
                struct hk_batch t = d[top - k];
                d[top - k] = d[top];
                d[top] = t;
            }
            break;
        }
    }
    if (d[top].n > want)
        return 0;
    c->ndepot--;
    memcpy(out, d[top].slot, d[top].n * sizeof(void *));
    return d[top].n;
}

size_t hk_central_take(unsigned cls, void **out, size_t want)
{
    struct hk_class *c = &hk_classes[cls];
    size_t got = 0;

    pthread_mutex_lock(class_lock(c));
    if (c->ndepot)
        got = depot_take_locked(c, out, want);
    while (got < want) {
        struct hk_slab *s = c->partial;
        if (!s) {
            s = slab_carve(cls);
            if (!s)
                break;
            slab_push_head(c, s);
            c->nempty++;
        }
        if (s->nfree == s->nblocks)
            c->nempty--;
        got += slab_pop(s, out + got, want - got);
        if (s->nfree == 0)
            slab_unlink(c, s);
    }
    pthread_mutex_unlock(class_lock(c));
    HK_CTR_ADD(bytes_in_use, got * hk_class_size[cls]);
    hk_purge_note();
    return got;
}

/* Return n blocks to their slabs' bitmaps (class lock held). */
static void put_blocks_locked(struct hk_class *c, unsigned cls, void *const *ptrs, size_t n,
                              const char *who)
{
    for (size_t i = 0; i < n; i++) {
        void *p = ptrs[i];
        struct hk_ss *ss = (struct hk_ss *)hk_seg_of(p);
        struct hk_slab *s = hk_slab_of(ss, p);
        uint32_t idx = slab_index(s, p);
        if (idx == UINT32_MAX || s->cls != cls) {
            pthread_mutex_unlock(class_lock(c));
            hk_fatal("%s(): invalid pointer %p", who, p);
        }
        uint64_t bit = (uint64_t)1 << (idx & 63);
        if (s->freemap[idx / 64] & bit) {
            pthread_mutex_unlock(class_lock(c));
            hk_fatal("%s(): double free or corruption %p", who, p);
        }
        s->freemap[idx / 64] |= bit;
        if (idx / 64 < s->hint)
            s->hint = idx / 64;
        if (s->nfree++ == 0)
            slab_push_head(c, s);
        if (s->nfree == s->nblocks) {
            if (hk_policy_keep_empty_slab(hk_limits(), cls, c->nempty)) {
                slab_unlink(c, s);
                slab_push_tail(c, s);
                c->nempty++;
            } else {
                slab_unlink(c, s);
                hk_slab_release(s);
            }
        }
    }
}

/* Empty the depot into the slabs (class lock held). A mode that keeps
 * no depot (LEAN) unmaps its mapping too. */
void hk_depot_drain_locked(struct hk_class *c, unsigned cls)
{
    while (c->ndepot) {
        const struct hk_batch *b = &depot_of(c)[--c->ndepot];
        put_blocks_locked(c, cls, b->slot, b->n, "free");
    }
    if (c->depot && !hk_policy_depot_max(hk_limits(), cls)) {
        hk_os_unmap(c->depot, (size_t)c->depot_cap * sizeof(struct hk_batch));
        c->depot = NULL;
        c->depot_cap = 0;
    }
    c->depot_nomap = 0;
}

/* The depot of c is full and the policy allows max batches: move it to
 * a mapping of max batches. Drops the class lock while it maps (the
 * depot may change meanwhile); false when the OS refused (not asked
 * again until a drain). */
static bool depot_grow(struct hk_class *c, uint32_t max)
{
    size_t len = (size_t)max * sizeof(struct hk_batch);
    pthread_mutex_unlock(class_lock(c));
    struct hk_batch *m = hk_os_map_aligned(len);
    pthread_mutex_lock(class_lock(c));
    if (!m) {
        c->depot_nomap = 1;
        return false;
    }
    if (depot_cap(c) >= max) {          /* another thread grew it meanwhile */
        hk_os_unmap(m, len);
        return true;
    }
    memcpy(m, depot_of(c), c->ndepot * sizeof(struct hk_batch));
    struct hk_batch *old = c->depot;
    size_t old_len = (size_t)c->depot_cap * sizeof(struct hk_batch);
    c->depot = m;
    c->depot_cap = max;
    if (old)                            /* a smaller mapping (a policy change) */
        hk_os_unmap(old, old_len);
    return true;
}

/* Return n blocks of class cls. who names the libc function for the
 * message when a pointer is not a live block. A flush of a thread cache's
 * batch goes to the depot while it has room (FAST); anything else goes
 * back to the slabs, where invalid and double frees are caught. */
void hk_central_put(unsigned cls, void *const *ptrs, size_t n, const char *who)
{
    struct hk_class *c = &hk_classes[cls];
    bool batch = n >= HK_DEPOT_BATCH / 2 && n <= HK_DEPOT_BATCH;

    pthread_mutex_lock(class_lock(c));
    uint32_t max = batch ? hk_policy_depot_max(hk_limits(), cls) : 0;
    if (c->ndepot >= depot_cap(c) && max > depot_cap(c) && !c->depot_nomap)
        depot_grow(c, max);
    bool spill = max && c->ndepot >= (max < depot_cap(c) ? max : depot_cap(c));
    if (max && !spill) {
        struct hk_batch *b = &depot_of(c)[c->ndepot++];
        memcpy(b->slot, ptrs, n * sizeof(void *));
        b->n = (uint32_t)n;
        b->owner = depot_owner();
    } else {
        put_blocks_locked(c, cls, ptrs, n, who);
    }
    pthread_mutex_unlock(class_lock(c));
    if (spill)
        HK_CTR_ADD(depot_spills, 1);
    HK_CTR_SUB(bytes_in_use, n * hk_class_size[cls]);
    hk_purge_note();
}

/* Is p, a block of class cls, free in the central lists (its bit set in
 * its slab's bitmap, or in a depot batch)? For the double-free check. */
bool hk_central_has(unsigned cls, const void *p)
{
    struct hk_class *c = &hk_classes[cls];
    struct hk_slab *s = hk_slab_of((struct hk_ss *)hk_seg_of(p), p);
    bool found = false;
    pthread_mutex_lock(class_lock(c));
    uint32_t idx = s->cls == cls && s->span ? slab_index(s, p) : UINT32_MAX;
    if (idx != UINT32_MAX)
        found = s->freemap[idx / 64] >> (idx % 64) & 1;
    for (uint32_t i = 0; !found && i < c->ndepot; i++)
        for (uint32_t j = 0; !found && j < depot_of(c)[i].n; j++)
            found = depot_of(c)[i].slot[j] == p;
    pthread_mutex_unlock(class_lock(c));
    return found;
}

/* FAST mode start: carve the first slab of each hot class, so that the
 * first allocations of a program do not each wait for a refill from the
 * OS. Touches slab descriptors only, not block memory. */
void hk_ss_prewarm(void)
{
    for (unsigned cls = 0; cls < HK_NCLASS; cls++) {
        if (!hk_policy_prewarm_class(cls))
            continue;
        struct hk_class *c = &hk_classes[cls];
        pthread_mutex_lock(class_lock(c));
        if (!c->partial) {
            struct hk_slab *s = slab_carve(cls);
            if (s) {
                slab_push_tail(c, s);
                c->nempty++;
            }
        }
        pthread_mutex_unlock(class_lock(c));
    }
}

void hk_ss_lock_all(void)
{
    pthread_mutex_lock(&hk_decommit_lock);
    for (unsigned cls = 0; cls < HK_NALLCLASS; cls++)
        if (owns_lock(cls))
            pthread_mutex_lock(&hk_classes[cls].lock);
    pthread_mutex_lock(&hk_ss_lock);
}

void hk_ss_unlock_all(void)
{
    pthread_mutex_unlock(&hk_ss_lock);
    for (unsigned cls = HK_NALLCLASS; cls-- > 0;)
        if (owns_lock(cls))
            pthread_mutex_unlock(&hk_classes[cls].lock);
    pthread_mutex_unlock(&hk_decommit_lock);
}

/* The class locks spin a while before they sleep (glibc's adaptive
 * mutex): a producer and a consumer thread meet at a class's depot every
 * 31 blocks, for the copy of one batch; sleeping there cost a futex wait
 * and wake each time. */
void hk_ss_reinit_locks(void)
{
    pthread_mutex_init(&hk_decommit_lock, NULL);
    pthread_mutex_init(&hk_ss_lock, NULL);
    pthread_mutexattr_t spin;
    bool adaptive = pthread_mutexattr_init(&spin) == 0 &&
                    pthread_mutexattr_settype(&spin, PTHREAD_MUTEX_ADAPTIVE_NP) == 0;
    for (unsigned cls = 0; cls < HK_NALLCLASS; cls++)
        pthread_mutex_init(&hk_classes[cls].lock, adaptive ? &spin : NULL);
    if (adaptive)
        pthread_mutexattr_destroy(&spin);
}
