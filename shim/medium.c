/* medium.c: blocks of the medium classes (above 32 KiB, up to
 * HK_MEDIUM_MAX). They live in slabs of 8 or 16 units carved from
 * superslabs like small ones, so that buffers of varying sizes cost no
 * system call in steady state, and LEAN decommits their free pages
 * through the same page map. A thread keeps a few freed ones in its
 * medium bin (tcache.c: up to HK_MBIN_SLOTS blocks and the policy's
 * medium_cache_bytes, none in LEAN), so that a program that frees and
 * allocates buffers of a few sizes takes no lock; the others go through
 * the class's lock one block at a time.
 *
 * Both calls are slow paths under the re-entrancy guard (guard.c).
 * Calls made here that can allocate: none (the central lists).
 */
#include <errno.h>
#include "hk_internal.h"

void *hk_medium_alloc(unsigned cls)
{
    hk_ensure_init();
    struct hk_tcache *tc = &hk_tls;
    uint32_t size = hk_class_size[cls];
    if (tc->guard)                      /* nested in the shim: see guard.c */
        return hk_guard_alloc(size, size & -size);
    tc->guard = 1;
    void *p = hk_tcache_medium_take(cls);
    if (p || hk_central_take(cls, &p, 1) == 1) {
        ((uint64_t *)p)[1] = 0;         /* the free key stays behind */
    } else {
        p = NULL;
        errno = ENOMEM;
    }
    int e = errno;
    hk_listener_poll();
    hk_guard_leave(tc);
    errno = e;
    return p;
}

/* p: in a slab of medium class cls, by its unit's class. An interior
 * pointer aborts here; a double free in the medium bins (the free key
 * found, init.c) or under the class's lock in the central list. The
 * caller holds the guard. */
void hk_medium_free(void *p, unsigned cls)
{
    if (!hk_block_valid((struct hk_ss *)hk_seg_of(p), p))
        hk_ss_refuse(p, "free");
    hk_tcache_medium_free(p, cls);
}
