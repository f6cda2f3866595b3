/* tcache.c: thread caches, the slow paths behind alloc.c.
 *
 * Owns each thread's struct hk_tcache: its set-up at the thread's first
 * slow path (caps from the policy, a pthread key so that the cache goes
 * back when the thread exits), refills and flushes in batches against
 * the central lists, and the handling of frees the fast path could not
 * take. A thread whose cache is not ready (being set up, or exited) is
 * served block by block from the central lists.
 */
#include <errno.h>
#include <string.h>
#include "hk_internal.h"

__thread struct hk_tcache hk_tls __attribute__((tls_model("initial-exec")));

static pthread_key_t hk_tkey;
static bool hk_tkey_ok;

static void tcache_exit(void *arg)
{
    struct hk_tcache *tc = arg;
    hk_tcache_flush_all(tc);
    for (unsigned c = 0; c < HK_NCLASS; c++)
        tc->bins[c].cap = 0;
    tc->state = HK_T_DEAD;
}

void hk_tcache_global_init(void)
{
    hk_tkey_ok = pthread_key_create(&hk_tkey, tcache_exit) == 0;
    if (!hk_tkey_ok)
        hk_log("pthread_key_create failed: thread caches will not be returned at thread exit");
}

static void tcache_set_caps(struct hk_tcache *tc)
{
    tc->epoch = atomic_load_explicit(&hk_epoch, memory_order_acquire);
    for (unsigned c = 0; c < HK_NCLASS; c++)
        tc->bins[c].cap = hk_policy_tc_cap(&hk_lim, c);
}

static void tcache_setup(struct hk_tcache *tc)
{
    tc->state = HK_T_INITING;
    /* May allocate (keys past the first 32): served uncached meanwhile. */
    if (hk_tkey_ok)
        pthread_setspecific(hk_tkey, tc);
    tcache_set_caps(tc);
    tc->state = HK_T_READY;
}

void hk_tcache_flush_all(struct hk_tcache *tc)
{
    for (unsigned c = 0; c < HK_NCLASS; c++) {
        struct hk_bin *b = &tc->bins[c];
        if (b->n) {
            hk_central_put(c, b->slot, b->n, "free");
            b->n = 0;
        }
    }
}

/* The thread's cache, ready for use, or NULL when it cannot be used. */
static struct hk_tcache *tcache_get(void)
{
    struct hk_tcache *tc = &hk_tls;
    if (HK_UNLIKELY(tc->state != HK_T_READY)) {
        if (tc->state != HK_T_NEW)
            return NULL;
        tcache_setup(tc);
    }
    return tc;
}

void *hk_malloc_slow(unsigned cls)
{
    hk_ensure_init();
    struct hk_tcache *tc = tcache_get();
    void *p;
    if (!tc) {
        if (hk_central_take(cls, &p, 1) == 1)
            return p;
        errno = ENOMEM;
        return NULL;
    }
    struct hk_bin *b = &tc->bins[cls];
    if (b->n)
        return b->slot[--b->n];
    size_t want = b->cap / 2 ? b->cap / 2 : 1;
    size_t got = hk_central_take(cls, b->slot, want);
    if (got == 0) {
        errno = ENOMEM;
        return NULL;
    }
    /* Hand out the lowest address first: slot[n-1] goes next. */
    for (size_t i = 0, j = got - 1; i < j; i++, j--) {
        void *t = b->slot[i];
        b->slot[i] = b->slot[j];
        b->slot[j] = t;
    }
    b->n = (uint32_t)got;
    return b->slot[--b->n];
}

void hk_free_slow(void *p, struct hk_seg *seg, unsigned cls)
{
    if (cls == HK_CLS_LARGE) {
        hk_large_free((struct hk_large *)seg, p, "free");
        return;
    }
    if (cls >= HK_NCLASS || ((uintptr_t)p & (HK_MIN_ALIGN - 1)))
        hk_fatal("free(): invalid pointer %p", p);
    struct hk_tcache *tc = tcache_get();
    if (!tc || tc->bins[cls].cap == 0) {
        hk_central_put(cls, &p, 1, "free");
        return;
    }
    struct hk_bin *b = &tc->bins[cls];
    if (b->n >= b->cap) {
        /* Flush the older half: the newer blocks are the cache-warm ones. */
        uint32_t half = b->n / 2 ? b->n / 2 : 1;
        hk_central_put(cls, b->slot, half, "free");
        memmove(b->slot, b->slot + half, (b->n - half) * sizeof(void *));
        b->n -= half;
    }
    b->slot[b->n++] = p;
}
