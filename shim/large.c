/* large.c: allocations above HK_MEDIUM_MAX. Each block owns an extent:
 * whole 2 MiB segments, with a struct hk_large header at the start of the
 * first, so that the registry finds it like a superslab (the block starts
 * in that first segment). A freed extent is not unmapped in FAST: it joins
 * the cache of free extents, merged with a free extent just before or
 * after it, and later blocks are carved from there, best fit, the rest
 * split off at a segment boundary. Its pages stay committed and keep their
 * addresses: on these machines a page faulted in afresh, or moved by
 * mremap, costs a hidden fault of ~30-150 us on its first touch; a page
 * kept in place costs nothing. When no free extent is big enough, the
 * biggest grows with fresh pages mapped just after or before it, else a
 * fresh extent is mapped. The policy bounds the free bytes kept (as much
 * as is live, at least large_cache_bytes: hk_policy_large_cache_bytes;
 * past it the oldest free extent gives back its tail); LEAN keeps none.
 * Decay gives back what stays free: an extent still cached after a whole
 * purge round is unmapped (hk_large_decay, from purge.c). realloc grows
 * into a free extent after the block, or with mremap in place.
 *
 * Alignments above 1 MiB cannot keep the header in the user block's
 * 2 MiB chunk; those few blocks are kept in a small table instead
 * (hk_huge_*), consulted only when the registry says "not ours".
 */
#include <errno.h>
#include <string.h>
#include "hk_internal.h"

#define HK_LARGE_HDR   128              /* header bytes before a block */
#define HK_LCACHE_MAX  64               /* free extents; the policy may keep fewer */
#define HK_HUGE_MAX    64               /* live blocks aligned above 1 MiB */
/* Bytes every extent keeps beyond its block so that the block can start
 * at one of at least 17 offsets (a cache line apart): see large_offset. */
#define HK_LARGE_ROTATE 1024

static pthread_mutex_t hk_large_lock = PTHREAD_MUTEX_INITIALIZER;
/* Under hk_large_lock: */
static struct hk_large *hk_lcache[HK_LCACHE_MAX];   /* free extents, oldest first */
static uint32_t hk_lcache_n;
static size_t hk_lcache_bytes;
static uint32_t hk_lcache_round;        /* decay rounds so far */
static size_t hk_large_live_bytes;      /* extent bytes of live blocks */
static _Atomic uint32_t hk_large_turn;  /* offset choice of fresh extents */

_Static_assert(sizeof(struct hk_large) <= HK_LARGE_HDR, "large header size");

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) & ~(to - 1);
}

static void lcache_remove(uint32_t i)
{
    hk_lcache_bytes -= hk_lcache[i]->map_len;
    memmove(&hk_lcache[i], &hk_lcache[i + 1], (hk_lcache_n - i - 1) * sizeof(hk_lcache[0]));
    hk_lcache_n--;
    HK_CTR_SUB(large_cached, 1);
}

/* Cache free extent l as the newest (room checked by the caller). */
static void lcache_append(struct hk_large *l)
{
    l->cached_round = hk_lcache_round;
    hk_lcache[hk_lcache_n++] = l;
    hk_lcache_bytes += l->map_len;
    HK_CTR_ADD(large_cached, 1);
}

static void large_unmap(struct hk_large *l)
{
    hk_reg_clear((uintptr_t)l);
    HK_CTR_SUB(bytes_committed, l->map_len);
    hk_os_unmap(l, l->map_len);
}

/* Write a free extent's header at at, len bytes long, and register it:
 * for fresh extents, tails cut off and heads grown downward alike. */
static struct hk_large *large_head(void *at, size_t len)
{
    struct hk_large *t = at;
    hk_seg_init(&t->seg, HK_SEG_MAGIC_LARGE, HK_CLS_LARGE);
    t->map_len = len;
    t->user_off = t->prev_off = t->user_size = 0;
    t->state = HK_LARGE_CACHED;
    hk_reg_set((uintptr_t)t);
    return t;
}

/* Cut extent l at head (a multiple of HK_SEG_SIZE, below l->map_len):
 * the tail becomes a free extent of its own, with a header, registered,
 * its pages still committed; returned for the caller to cache. Its first
 * block will sit at a fresh extent's offset (user_off 0: see
 * hk_large_alloc). */
static struct hk_large *large_cut(struct hk_large *l, size_t head)
{
    struct hk_large *t = large_head((char *)l + head, l->map_len - head);
    l->map_len = head;
    return t;
}

/* Merge free extent l with the cached free extents just before and after
 * it (their addresses meet); the merged extent, out of the cache. The
 * header of the one that comes second is dropped from the registry. */
static struct hk_large *lcache_merge(struct hk_large *l)
{
    for (uint32_t i = 0; i < hk_lcache_n;) {
        struct hk_large *e = hk_lcache[i];
        if ((char *)e + e->map_len == (char *)l) {
            lcache_remove(i);
            e->map_len += l->map_len;
            hk_reg_clear((uintptr_t)l);
            l = e;
            i = 0;
        } else if ((char *)l + l->map_len == (char *)e) {
            lcache_remove(i);
            l->map_len += e->map_len;
            hk_reg_clear((uintptr_t)e);
            i = 0;
        } else {
            i++;
        }
    }
    return l;
}

/* Cache free extent l (state HK_LARGE_CACHED) merged with its free
 * neighbours if the policy keeps free bytes, making room by giving back
 * the tail of the oldest extent (the whole of it, and of the next oldest,
 * when that is not enough or the count is full); else unmap it. */
static void lcache_put(struct hk_large *l)
{
    struct hk_large *evict[HK_LCACHE_MAX + 1];
    uint32_t nevict = 0;
    char *tail = NULL;                  /* a tail given back, of tail_len */
    size_t tail_len = 0;
    const struct hk_limits *lim = hk_limits();
    pthread_mutex_lock(&hk_large_lock);
    size_t cap = hk_policy_large_cache_bytes(lim, hk_large_live_bytes);
    uint32_t max = lim->large_cache_max < HK_LCACHE_MAX ? lim->large_cache_max : HK_LCACHE_MAX;
    if (cap > 0)
        l = lcache_merge(l);
    if (cap == 0 || l->map_len > cap) {
        evict[nevict++] = l;
    } else {
        while (hk_lcache_n > 0 && (hk_lcache_n >= max || hk_lcache_bytes + l->map_len > cap)) {
            struct hk_large *o = hk_lcache[0];
            size_t over = round_up(hk_lcache_bytes + l->map_len - cap, HK_SEG_SIZE);
            if (hk_lcache_n < max && over < o->map_len) {
                o->map_len -= over;     /* its head stays cached */
                hk_lcache_bytes -= over;
                tail = (char *)o + o->map_len;
                tail_len = over;
                break;
            }
            evict[nevict++] = o;
            lcache_remove(0);
        }
        lcache_append(l);
    }
    pthread_mutex_unlock(&hk_large_lock);
    for (uint32_t i = 0; i < nevict; i++)
        large_unmap(evict[i]);
    if (tail) {                         /* no header lies there */
        HK_CTR_SUB(bytes_committed, tail_len);
        hk_os_unmap(tail, tail_len);
    }
}

/* Take out of the cache (lock held) the smallest free extent of at least
 * min bytes, or the biggest; NULL when none. */
static struct hk_large *lcache_pick(size_t min, bool biggest)
{
    struct hk_large *best = NULL;
    uint32_t bi = 0;
    for (uint32_t i = 0; i < hk_lcache_n; i++) {
        size_t len = hk_lcache[i]->map_len;
        if (len >= min && (!best || (biggest ? len > best->map_len : len < best->map_len))) {
            best = hk_lcache[i];
            bi = i;
        }
    }
    if (best)
        lcache_remove(bi);
    return best;
}

/* Take from the cache (lock held) the smallest free extent of at least
 * need bytes (a multiple of HK_SEG_SIZE), its tail beyond need split off
 * and cached; NULL when none is big enough. */
static struct hk_large *lcache_take(size_t need)
{
    struct hk_large *best = lcache_pick(need, false);
    if (!best)
        return NULL;
    if (best->map_len > need)
        lcache_append(large_cut(best, need));   /* fewer bytes than before */
    return best;
}

/* A fresh extent of need bytes with its header, registered. */
static struct hk_large *large_map(size_t need)
{
    void *m = hk_os_map_aligned(need);
    if (!m)
        return NULL;                    /* errno ENOMEM from the OS box */
    HK_CTR_ADD(bytes_committed, need);
    return large_head(m, need);
}

/* No free extent holds need bytes: grow the biggest with fresh pages
 * mapped right after it, or right before it (a new header there), so that
 * its committed pages serve the head or the tail of the block. NULL when
 * none is cached or the addresses around it are taken. */
static struct hk_large *large_extend(size_t need)
{
    pthread_mutex_lock(&hk_large_lock);
    struct hk_large *e = lcache_pick(0, true);
    pthread_mutex_unlock(&hk_large_lock);
    if (!e)
        return NULL;
    size_t more = need - e->map_len;
    struct hk_large *l = NULL;
    if (hk_os_map_at((char *)e + e->map_len, more)) {
        l = e;
    } else if ((uintptr_t)e > more + ((uintptr_t)1 << 32) && hk_os_map_at((char *)e - more, more)) {
        hk_reg_clear((uintptr_t)e);
        l = large_head((char *)e - more, need);
    } else {
        lcache_put(e);
        return NULL;
    }
    HK_CTR_ADD(bytes_committed, more);
    l->map_len = need;
    return l;
}

/* Where a block of n bytes aligned on align starts in mapping l: one of
 * the offsets off0 + k * step that leave the block inside the mapping,
 * within a page of off0 (two offsets for alignments of a page and more),
 * inside the first 2 MiB (the registry finds the header from there).
 * A mapping reused from the cache takes the offset after its previous
 * owner's, so that owner's pointer (and, until the cycle wraps, those of
 * the owners before) points into the new block, not at it: a second free
 * through it is caught (large_check) instead of freeing the new owner's
 * block. A fresh mapping may sit where an unmapped one was, so it takes
 * the next offset of a process-wide turn. */
static size_t large_offset(const struct hk_large *l, size_t n, size_t align, bool fresh)
{
    size_t off0 = align > HK_LARGE_HDR ? align : HK_LARGE_HDR;
    size_t step = align > HK_CACHELINE ? align : HK_CACHELINE;
    unsigned shift = (unsigned)__builtin_ctzl(step);        /* step is a power of two */
    size_t end = off0 + (step < HK_PAGE ? HK_PAGE : 2 * step);   /* first offset past the cycle */
    if (end > HK_SEG_SIZE)
        end = HK_SEG_SIZE;
    if (end > l->map_len - n + 1)
        end = l->map_len - n + 1;       /* > off0: off0 + n <= map_len */
    size_t k;
    if (fresh)                          /* a division, but this path maps */
        k = atomic_fetch_add_explicit(&hk_large_turn, 1, memory_order_relaxed) %
            (((end - off0 - 1) >> shift) + 1);
    else
        k = l->user_off < off0 ? 0 : ((l->user_off - off0) >> shift) + 1;
    size_t off = off0 + (k << shift);
    return off < end ? off : off0;
}

/* n bytes aligned on align (a power of two, at most HK_SEG_SIZE / 2).
 * zero: the caller needs zeroed memory. NULL with ENOMEM on failure. */
void *hk_large_alloc(size_t n, size_t align, bool zero)
{
    size_t off = align > HK_LARGE_HDR ? align : HK_LARGE_HDR;
    if (n > SIZE_MAX / 2 - off - HK_SEG_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    /* room to move the block (large_offset): a quarter of a page for
     * small alignments, a page for page alignment, none above */
    size_t room = align <= HK_LARGE_ROTATE ? HK_LARGE_ROTATE : align <= HK_PAGE ? HK_PAGE : 0;
    size_t need = round_up(off + n + room, HK_SEG_SIZE);
    pthread_mutex_lock(&hk_large_lock);
    struct hk_large *l = lcache_take(need);
    pthread_mutex_unlock(&hk_large_lock);
    if (!l)
        l = large_extend(need);
    bool fresh = l == NULL;
    if (fresh) {
        l = large_map(need);
        if (!l)
            return NULL;                /* errno ENOMEM from the OS box */
    }
    pthread_mutex_lock(&hk_large_lock);
    hk_large_live_bytes += l->map_len;
    pthread_mutex_unlock(&hk_large_lock);
    l->prev_off = fresh ? 0 : l->user_off;
    /* user_off 0: a new header (large_cut, large_extend), which takes an
     * offset like a fresh extent, as its address may have held blocks */
    l->user_off = large_offset(l, n, align, fresh || l->user_off == 0);
    l->user_size = n;
    l->state = HK_LARGE_LIVE;
    HK_CTR_ADD(large_live, 1);
    HK_CTR_ADD(bytes_in_use, n);
    char *p = (char *)l + l->user_off;
    if (zero && !fresh)
        memset(p, 0, n);
    return p;
}

/* p must be the live block of l. The block of a cached mapping, or the
 * previous owner's block of a reused one, is a double free. */
static void large_check(struct hk_large *l, const void *p, const char *who)
{
    size_t off = (size_t)((const char *)p - (const char *)l);
    if (HK_LIKELY(l->seg.magic == HK_SEG_MAGIC_LARGE && off == l->user_off &&
                  l->state == HK_LARGE_LIVE))
        return;
    if (l->seg.magic == HK_SEG_MAGIC_LARGE &&
        (off == l->user_off || (l->prev_off && off == l->prev_off)))
        hk_fatal("%s(): double free or corruption %p", who, (void *)p);
    hk_fatal("%s(): invalid pointer %p", who, (void *)p);
}

void hk_large_free(struct hk_large *l, void *p, const char *who)
{
    large_check(l, p, who);
    l->state = HK_LARGE_CACHED;
    HK_CTR_SUB(large_live, 1);
    HK_CTR_SUB(bytes_in_use, l->user_size);
    pthread_mutex_lock(&hk_large_lock);
    hk_large_live_bytes -= l->map_len;
    pthread_mutex_unlock(&hk_large_lock);
    lcache_put(l);
}

size_t hk_large_usable(struct hk_large *l, const void *p, const char *who)
{
    large_check(l, p, who);
    return l->map_len - l->user_off;
}

/* Resize in place: shrink by giving back whole segments of the tail (a
 * free extent then: lcache_put) when that frees at least a quarter; grow
 * into the free extent just after the block (the rest of it split off
 * again), or with mremap when the next pages are free. Returns p, or NULL
 * when the caller must move the block. */
void *hk_large_realloc(struct hk_large *l, void *p, size_t n)
{
    large_check(l, p, "realloc");
    if (n > SIZE_MAX / 2)
        return NULL;
    size_t need = round_up(l->user_off + n, HK_SEG_SIZE), old = l->map_len;
    struct hk_large *tail = NULL;
    bool ok = true;
    pthread_mutex_lock(&hk_large_lock);
    if (need < old && old - need >= old / 4) {
        tail = large_cut(l, need);
    } else if (need > old) {
        uint32_t i = 0;
        while (i < hk_lcache_n && (char *)hk_lcache[i] != (char *)l + old)
            i++;
        ok = i < hk_lcache_n && old + hk_lcache[i]->map_len >= need;
        if (ok) {
            struct hk_large *e = hk_lcache[i];
            lcache_remove(i);
            hk_reg_clear((uintptr_t)e);
            l->map_len += e->map_len;
            if (l->map_len > need)
                lcache_append(large_cut(l, need));
        }
    }
    hk_large_live_bytes += l->map_len - old;    /* modulo: may go down */
    pthread_mutex_unlock(&hk_large_lock);
    if (tail)
        lcache_put(tail);               /* state HK_LARGE_CACHED */
    if (!ok) {
        if (!hk_os_grow_inplace(l, old, need))
            return NULL;
        HK_CTR_ADD(bytes_committed, need - old);
        pthread_mutex_lock(&hk_large_lock);
        l->map_len = need;
        hk_large_live_bytes += need - old;
        pthread_mutex_unlock(&hk_large_lock);
    }
    HK_CTR_SUB(bytes_in_use, l->user_size);
    HK_CTR_ADD(bytes_in_use, n);
    l->user_size = n;
    return p;
}

/* A decay round: unmap the mappings cached before the previous round
 * (all of them when now: a trim). True when any was unmapped; *left:
 * some stay cached for a later round. */
bool hk_large_decay(bool now, bool *left)
{
    struct hk_large *old[HK_LCACHE_MAX];
    uint32_t n = 0;
    pthread_mutex_lock(&hk_large_lock);
    hk_lcache_round++;
    for (uint32_t i = hk_lcache_n; i-- > 0;)
        if (now || hk_lcache[i]->cached_round + 1 < hk_lcache_round) {
            old[n++] = hk_lcache[i];
            lcache_remove(i);
        }
    if (left)
        *left = hk_lcache_n > 0;
    pthread_mutex_unlock(&hk_large_lock);
    for (uint32_t i = 0; i < n; i++)
        large_unmap(old[i]);
    return n > 0;
}

/* ---- alignments above HK_SEG_SIZE / 2 (always fresh, so zeroed) ---- */

struct hk_huge {
    void *user;                         /* NULL: slot free */
    void *map;
    size_t map_len;
    size_t size;                        /* bytes requested */
};
static struct hk_huge hk_huge[HK_HUGE_MAX];

void *hk_huge_aligned_alloc(size_t n, size_t align)
{
    if (n > SIZE_MAX / 4 || align > SIZE_MAX / 4) {
        errno = ENOMEM;
        return NULL;
    }
    size_t len = round_up(n + align, HK_PAGE);
    pthread_mutex_lock(&hk_large_lock);
    struct hk_huge *h = NULL;
    for (unsigned i = 0; i < HK_HUGE_MAX && !h; i++)
        if (!hk_huge[i].map)
            h = &hk_huge[i];
    if (h)
        h->map = (void *)1;             /* reserve the slot */
    pthread_mutex_unlock(&hk_large_lock);
    if (!h) {
        hk_log("more than %d live blocks aligned above 1 MiB; refusing", HK_HUGE_MAX);
        errno = ENOMEM;
        return NULL;
    }
    char *map = hk_os_map_aligned(len);
    if (!map) {
        h->map = NULL;
        return NULL;
    }
    HK_CTR_ADD(bytes_committed, len);
    HK_CTR_ADD(bytes_in_use, n);
    HK_CTR_ADD(large_live, 1);
    pthread_mutex_lock(&hk_large_lock);
    h->map_len = len;
    h->size = n;
    h->user = (void *)round_up((uintptr_t)map, align);
    h->map = map;
    void *user = h->user;
    pthread_mutex_unlock(&hk_large_lock);
    return user;
}

/* Is p a block from hk_huge_aligned_alloc? Sets *usable; with release,
 * also frees it. */
bool hk_huge_aligned_find(const void *p, size_t *usable, bool release)
{
    struct hk_huge found = { 0 };
    pthread_mutex_lock(&hk_large_lock);
    for (unsigned i = 0; i < HK_HUGE_MAX; i++) {
        if (hk_huge[i].user == p) {
            found = hk_huge[i];
            if (release)
                hk_huge[i] = (struct hk_huge){ 0 };
            break;
        }
    }
    pthread_mutex_unlock(&hk_large_lock);
    if (!found.user)
        return false;
    if (usable)
        *usable = found.map_len - (size_t)((char *)found.user - (char *)found.map);
    if (release) {
        HK_CTR_SUB(bytes_committed, found.map_len);
        HK_CTR_SUB(bytes_in_use, found.size);
        HK_CTR_SUB(large_live, 1);
        hk_os_unmap(found.map, found.map_len);
    }
    return true;
}

void hk_large_lock_all(void)
{
    pthread_mutex_lock(&hk_large_lock);
}

void hk_large_unlock_all(void)
{
    pthread_mutex_unlock(&hk_large_lock);
}

void hk_large_reinit_locks(void)
{
    pthread_mutex_init(&hk_large_lock, NULL);
}
