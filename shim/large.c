/* large.c: allocations above HK_MEDIUM_MAX. Each is its own mapping,
 * aligned on 2 MiB with a struct hk_large header at its start, so that
 * the registry finds it like a superslab. FAST mode keeps freed mappings
 * for reuse (the policy says how many and how many bytes), taken back by
 * size (the smallest that fits; a tail of more than half the request is
 * unmapped first; when none fits, the biggest that fit are moved into a
 * new mapping, so that their pages need not be faulted in again), and
 * unmapped by decay: a mapping still cached after a whole purge round
 * goes (hk_large_decay, from purge.c). realloc grows in place when the
 * address space after the mapping is free.
 *
 * Alignments above 1 MiB cannot keep the header in the user block's
 * 2 MiB chunk; those few blocks are kept in a small table instead
 * (hk_huge_*), consulted only when the registry says "not ours".
 */
#include <errno.h>
#include <string.h>
#include "hk_internal.h"

#define HK_LARGE_HDR   128              /* header bytes before a block */
#define HK_LCACHE_MAX  32               /* slots; the policy may use fewer */
#define HK_HUGE_MAX    64               /* live blocks aligned above 1 MiB */
/* Bytes every mapping keeps beyond its block so that the block can start
 * at one of at least 17 offsets (a cache line apart): see large_offset. */
#define HK_LARGE_ROTATE 1024

static pthread_mutex_t hk_large_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hk_large *hk_lcache[HK_LCACHE_MAX];   /* oldest first */
static uint32_t hk_lcache_n;
static size_t hk_lcache_bytes;
static uint32_t hk_lcache_round;        /* decay rounds so far */
static _Atomic uint32_t hk_large_turn;  /* offset choice of fresh mappings */

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

static void large_unmap(struct hk_large *l)
{
    hk_reg_clear((uintptr_t)l);
    HK_CTR_SUB(bytes_committed, l->map_len);
    hk_os_unmap(l, l->map_len);
}

static void lcache_put(struct hk_large *l);

/* Split mapping l at head (a multiple of HK_SEG_SIZE, below l->map_len):
 * the tail becomes a mapping of its own, with a header and its pages
 * still faulted in, and goes to the cache. Its first block will sit at a
 * fresh mapping's offset (user_off 0: see hk_large_alloc). */
static void large_split(struct hk_large *l, size_t head)
{
    struct hk_large *t = (struct hk_large *)((char *)l + head);
    hk_seg_init(&t->seg, HK_SEG_MAGIC_LARGE, HK_CLS_LARGE);
    t->map_len = l->map_len - head;
    t->user_off = t->prev_off = t->user_size = 0;
    t->state = HK_LARGE_CACHED;
    l->map_len = head;
    hk_reg_set((uintptr_t)t);
    lcache_put(t);
}

/* Take from the cache the mapping of min..max bytes that is the smallest
 * (or, with biggest, the biggest); NULL when none is. */
static struct hk_large *lcache_pick(size_t min, size_t max, bool biggest)
{
    struct hk_large *best = NULL;
    uint32_t bi = 0;
    pthread_mutex_lock(&hk_large_lock);
    for (uint32_t i = 0; i < hk_lcache_n; i++) {
        size_t len = hk_lcache[i]->map_len;
        if (len >= min && len <= max &&
            (!best || (biggest ? len > best->map_len : len < best->map_len))) {
            best = hk_lcache[i];
            bi = i;
        }
    }
    if (best)
        lcache_remove(bi);
    pthread_mutex_unlock(&hk_large_lock);
    return best;
}

/* A cached mapping of at least need bytes, the smallest first. One more
 * than half as big again as need gives up its tail, so that a small
 * request does not pin a big mapping: split off at the next 2 MiB
 * boundary into a cached mapping of its own (large_split), or unmapped
 * when shorter than that. Either way the head, whose pages are faulted
 * in already, serves the request without page faults (on these machines
 * a fault costs ~15 us a page: 60 ms for a 16 MiB block). */
static struct hk_large *lcache_take(size_t need)
{
    struct hk_large *best = lcache_pick(need, SIZE_MAX, false);
    if (best && best->map_len - need > need / 2) {
        size_t head = round_up(need, HK_SEG_SIZE);
        if (head < best->map_len) {
            large_split(best, head);
        } else if (hk_os_shrink(best, best->map_len, need)) {
            HK_CTR_SUB(bytes_committed, best->map_len - need);
            best->map_len = need;
        }
    }
    return best;
}

/* A fresh mapping of need bytes with its header, registered. */
static struct hk_large *large_map(size_t need)
{
    struct hk_large *l = hk_os_map_aligned(need);
    if (!l)
        return NULL;                    /* errno ENOMEM from the OS box */
    hk_seg_init(&l->seg, HK_SEG_MAGIC_LARGE, HK_CLS_LARGE);
    l->map_len = need;
    HK_CTR_ADD(bytes_committed, need);
    hk_reg_set((uintptr_t)l);
    return l;
}

/* Fill the fresh mapping l from the cache, which holds nothing as big:
 * the biggest cached mappings that still fit are moved (mremap) one after
 * another into it, so that their pages, faulted in already, serve the new
 * block and only the rest is new. The first brings its header (user_off:
 * the previous owner's pointer stays a detected double free, pointing at
 * nothing of ours now). A mapping that cannot move (made of pieces moved
 * before: mremap moves one kernel mapping at a time) goes back to the
 * cache. True when l's head came from the cache. */
static bool large_fill(struct hk_large *l)
{
    size_t need = l->map_len, off = 0;
    struct hk_large *m;
    while (need - off >= HK_SEG_SIZE && (m = lcache_pick(0, need - off, true))) {
        size_t len = m->map_len;
        hk_reg_clear((uintptr_t)m);
        if (!hk_os_move(m, len, (char *)l + off)) {
            hk_reg_set((uintptr_t)m);
            lcache_put(m);
            break;
        }
        HK_CTR_SUB(bytes_committed, len);
        off += len;
    }
    if (off == 0)
        return false;
    l->map_len = need;                  /* the header came with the first */
    return true;
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
    size_t need = round_up(off + n + room, HK_PAGE);
    struct hk_large *l = lcache_take(need);
    bool fresh = l == NULL;
    if (fresh) {
        /* none big enough: a fresh mapping, filled from the cache */
        l = large_map(need);
        if (!l)
            return NULL;                /* errno ENOMEM from the OS box */
        fresh = !large_fill(l);
    }
    l->prev_off = fresh ? 0 : l->user_off;
    /* user_off 0: a tail split off (large_split), which takes an offset
     * like a fresh mapping, as its address may have held other blocks */
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

    lcache_put(l);
}

/* Cache mapping l (state HK_LARGE_CACHED) if the policy keeps it,
 * evicting the oldest to make room; else unmap it. */
static void lcache_put(struct hk_large *l)
{
    struct hk_large *evict[HK_LCACHE_MAX];
    uint32_t nevict = 0;
    const struct hk_limits *lim = hk_limits();
    bool keep = hk_policy_cache_large(lim, l->map_len);
    if (keep) {
        pthread_mutex_lock(&hk_large_lock);
        uint32_t max = lim->large_cache_max < HK_LCACHE_MAX ? lim->large_cache_max : HK_LCACHE_MAX;
        while (hk_lcache_n > 0 && (hk_lcache_n >= max ||
               hk_lcache_bytes + l->map_len > lim->large_cache_bytes)) {
            evict[nevict++] = hk_lcache[0];
            lcache_remove(0);
        }
        l->cached_round = hk_lcache_round;
        hk_lcache[hk_lcache_n++] = l;
        hk_lcache_bytes += l->map_len;
        HK_CTR_ADD(large_cached, 1);
        pthread_mutex_unlock(&hk_large_lock);
    }
    for (uint32_t i = 0; i < nevict; i++)
        large_unmap(evict[i]);
    if (!keep)
        large_unmap(l);
}

size_t hk_large_usable(struct hk_large *l, const void *p, const char *who)
{
    large_check(l, p, who);
    return l->map_len - l->user_off;
}

/* Resize in place: shrink by unmapping the tail (when that frees at least
 * a quarter), grow with mremap when the next pages are free. Returns p, or
 * NULL when the caller must move the block. */
void *hk_large_realloc(struct hk_large *l, void *p, size_t n)
{
    large_check(l, p, "realloc");
    if (n > SIZE_MAX / 2)
        return NULL;
    size_t need = round_up(l->user_off + n, HK_PAGE);
    if (need <= l->map_len) {
        size_t spare = l->map_len - need;
        if (spare >= l->map_len / 4 && spare >= 16 * HK_PAGE && hk_os_shrink(l, l->map_len, need)) {
            HK_CTR_SUB(bytes_committed, spare);
            l->map_len = need;
        }
    } else if (hk_os_grow_inplace(l, l->map_len, need)) {
        HK_CTR_ADD(bytes_committed, need - l->map_len);
        l->map_len = need;
    } else {
        return NULL;
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
