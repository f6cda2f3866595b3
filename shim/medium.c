/* medium.c: blocks of the medium classes (above 32 KiB, up to
 * HK_MEDIUM_MAX). They live in slabs of 8 or 16 units carved from
 * superslabs like small ones, so that buffers of varying sizes cost no
 * system call in steady state, and LEAN decommits their free pages
 * through the same page map. No thread cache: each call takes the
 * class's lock once, which is small beside touching 32 KiB or more, and
 * a cache of such blocks per thread would hold megabytes.
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
    void *p;
    if (hk_central_take(cls, &p, 1) != 1) {
        p = NULL;
        errno = ENOMEM;
    }
    int e = errno;
    hk_listener_poll();
    hk_guard_leave(tc);
    errno = e;
    return p;
}

/* p: in a slab of medium class cls, by its unit's class; the central
 * list checks under its lock that it is a block and not free already
 * (an interior pointer or a double free aborts there). The caller
 * holds the guard. */
void hk_medium_free(void *p, unsigned cls)
{
    hk_central_put(cls, &p, 1, "free");
}
