/* guard.c: the re-entrancy guard.
 *
 * A thread raises its guard (hk_tls.guard, a depth) while it is inside the
 * shim: in an allocation slow path, a public hakmem_* function or a fork
 * handler, that is whenever it may hold a shim lock or have a bin, a
 * central list or a superslab half updated. An allocator call that meets
 * the raised guard comes from inside the shim itself (a libc function the
 * slow path called allocated) or from a signal handler that interrupted
 * it. It must take no lock the thread may hold and touch nothing half
 * updated, so:
 *   - an allocation gets its own mapping from the OS box (lock-free), with
 *     a header that free() recognises (unit class HK_CLS_GUARD); freeing
 *     such a block unmaps it at once, lock-free;
 *   - any other free is deferred: a block of ours goes on the thread's
 *     deferred list (the link in its first word; it was checked to be a
 *     block first), a foreign pointer in a small array, and is freed for
 *     real when the guard comes down.
 * The end of the outermost guarded section is a safe point: the thread
 * frees what it deferred, registers its cache for thread exit, and starts
 * the helper threads that were asked for (helper.c). What runs there may
 * allocate, as an ordinary caller.
 *
 * The fast paths never look at the guard: the slow paths close the bins
 * they work on (tcache.c), so that a nested call finds them empty and full
 * and comes here.
 */
#include <errno.h>
#include <string.h>
#include "hk_internal.h"

#define HK_GUARD_HDR 64                 /* header bytes before the block */

/* A block served while the guard was up: its own mapping, its header at
 * the start. */
struct hk_guard_block {
    struct hk_seg seg;                  /* magic HK_SEG_MAGIC_GUARD, units HK_CLS_GUARD */
    size_t map_len;                     /* bytes mapped */
    size_t user_off;                    /* bytes from the mapping to the block */
    size_t size;                        /* bytes asked for */
};
_Static_assert(sizeof(struct hk_guard_block) <= HK_GUARD_HDR, "guard block header");
_Static_assert(offsetof(struct hk_guard_block, seg) == 0, "segment head first");

void *hk_guard_alloc(size_t n, size_t align)
{
    size_t off = align > HK_GUARD_HDR ? align : HK_GUARD_HDR;
    if (n > SIZE_MAX / 4 || off > SIZE_MAX / 4) {
        errno = ENOMEM;
        return NULL;
    }
    size_t len = (off + n + HK_PAGE - 1) & ~(size_t)(HK_PAGE - 1);
    struct hk_guard_block *g = hk_os_map_aligned(len);
    if (!g)
        return NULL;                    /* errno ENOMEM from the OS box */
    hk_seg_init(&g->seg, HK_SEG_MAGIC_GUARD, HK_CLS_GUARD);
    g->map_len = len;
    g->user_off = off;
    g->size = n;
    HK_CTR_ADD(bytes_committed, len);
    HK_CTR_ADD(bytes_in_use, n);
    HK_CTR_ADD(guard_allocs, 1);
    hk_reg_set((uintptr_t)g);
    return (char *)g + off;             /* fresh pages: zeroed */
}

static struct hk_guard_block *guard_check(struct hk_seg *seg, const void *p, const char *who)
{
    struct hk_guard_block *g = (struct hk_guard_block *)seg;
    if (g->seg.magic != HK_SEG_MAGIC_GUARD || (const char *)g + g->user_off != p)
        hk_fatal("%s(): invalid pointer %p", who, (void *)p);
    return g;
}

void hk_guard_free(struct hk_seg *seg, void *p, const char *who)
{
    struct hk_guard_block *g = guard_check(seg, p, who);
    size_t len = g->map_len;
    HK_CTR_SUB(bytes_committed, len);
    HK_CTR_SUB(bytes_in_use, g->size);
    hk_reg_clear((uintptr_t)g);
    hk_os_unmap(g, len);
}

size_t hk_guard_usable(struct hk_seg *seg, const void *p, const char *who)
{
    struct hk_guard_block *g = guard_check(seg, p, who);
    return g->map_len - g->user_off;
}

size_t hk_guard_size(struct hk_seg *seg, const void *p)
{
    return guard_check(seg, p, "realloc")->size;
}

/* A free that met the guard: p is ours (the registry says so) and a block
 * (checked here, so that a bad pointer still aborts at free time). */
void hk_guard_defer(void *p)
{
    struct hk_tcache *tc = &hk_tls;
    hk_block_size(p, "free");
    *(void **)p = tc->deferred;
    tc->deferred = p;
}

void hk_guard_defer_foreign(void *p)
{
    struct hk_tcache *tc = &hk_tls;
    if (tc->ndeferred_foreign < HK_DEFER_FOREIGN)
        tc->deferred_foreign[tc->ndeferred_foreign++] = p;
    else
        hk_log("free(%p) from inside the allocator (a signal handler?) not done: too many", p);
}

void hk_safe_point(struct hk_tcache *tc)
{
    if (tc->in_safe_point)
        return;                         /* a call from what runs below */
    tc->in_safe_point = 1;
    if (tc->needs_key)
        hk_tcache_register(tc);         /* pthread_setspecific may allocate */
    while (tc->deferred) {
        void *p = tc->deferred;
        tc->deferred = *(void **)p;
        hk_free(p);
    }
    while (tc->ndeferred_foreign)
        hk_free(tc->deferred_foreign[--tc->ndeferred_foreign]);
    if (atomic_load_explicit(&hk_helper_pending, memory_order_relaxed))
        hk_helper_run_pending();        /* pthread_create allocates */
    tc->in_safe_point = 0;
}
