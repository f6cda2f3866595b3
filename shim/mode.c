/* mode.c: the mode and pressure-level box. The one place where the mode
 * changes (hk_set_mode) and where a pressure level turns into actions
 * (hk_apply_level, which the daemon's listener calls). It sets the limits
 * from the policy, bumps the epoch that thread caches check on their slow
 * paths, and asks decommit.c and large.c to give memory back. The public
 * functions here are guarded sections (guard.c). Calls that can allocate:
 * none (membarrier in the thief, madvise and munmap in the OS box).
 */
#include <errno.h>
#include "hk_internal.h"

static pthread_mutex_t hk_mode_lock = PTHREAD_MUTEX_INITIALIZER;
static enum hk_mode hk_mode_base;       /* chosen at start (HAKMEM_SS_MEM_LEAN) */

static void publish_mode(enum hk_mode m)
{
    atomic_store_explicit(&hk_lim, hk_policy_limits(m), memory_order_release);
    atomic_store_explicit(&hk_ctr.mode, (uint64_t)m, memory_order_relaxed);
}

void hk_mode_init(void)
{
    hk_mode_base = hk_opt.lean ? HK_MODE_LEAN : HK_MODE_FAST;
    publish_mode(hk_mode_base);
}

/* Give back now everything free: the caller's cache (and with others,
 * every other thread's), the large-mapping cache, empty slabs and
 * superslabs, free pages in partly used slabs. eager: with MADV_DONTNEED,
 * also the pages given back lazily before. */
bool hk_release_now(bool eager, bool others)
{
    hk_tcache_flush_mine();
    size_t stolen = others ? hk_tcache_steal_all() : 0;
    bool a = hk_large_decay(true, NULL);
    bool b = hk_ss_purge(true, eager, NULL);
    return a || b || stolen;
}

/* Enter the guard for a public function (it takes the shim's locks);
 * false (errno EAGAIN) when the thread is inside the shim already: a
 * signal handler that interrupted an allocation. */
static bool api_enter(struct hk_tcache *tc)
{
    hk_ensure_init();
    if (tc->guard) {
        errno = EAGAIN;
        return false;
    }
    tc->guard = 1;
    return true;
}

/* The policy of mode m from now on; releases nothing itself. Threads take
 * the new caps at their next slow path (the epoch) and flush their cache
 * at their next free (caps zeroed). True if the mode changed. */
static bool mode_switch(enum hk_mode m)
{
    pthread_mutex_lock(&hk_mode_lock);
    bool changed = atomic_load_explicit(&hk_ctr.mode, memory_order_relaxed) != (uint64_t)m;
    if (changed) {
        publish_mode(m);
        atomic_fetch_add_explicit(&hk_epoch, 1, memory_order_release);
        HK_CTR_ADD(mode_switches, 1);
        hk_tcache_force_slow_all();
    }
    pthread_mutex_unlock(&hk_mode_lock);
    return changed;
}

/* hakmem_set_mode: an explicit switch to LEAN also gives free memory back
 * at once, with the configured strategy (hakmem.h). */
int hk_set_mode(enum hk_mode m)
{
    if (m != HK_MODE_FAST && m != HK_MODE_LEAN) {
        errno = EINVAL;
        return -1;
    }
    struct hk_tcache *tc = &hk_tls;
    if (!api_enter(tc))
        return -1;
    if (mode_switch(m) && m == HK_MODE_LEAN)
        hk_release_now(hk_opt.decommit == HK_DECOMMIT_DONTNEED, false);
    hk_guard_leave(tc);
    return 0;
}

/* The levels, exactly as hakmem.h says. */
int hk_apply_level(int level)
{
    if (level < HAKMEM_LEVEL_NONE || level > HAKMEM_LEVEL_CRITICAL) {
        errno = EINVAL;
        return -1;
    }
    struct hk_tcache *tc = &hk_tls;
    if (!api_enter(tc))
        return -1;
    switch (level) {
    case HAKMEM_LEVEL_NONE:             /* the start mode */
        mode_switch(hk_mode_base);
        break;
    case HAKMEM_LEVEL_LOW:              /* LEAN policy; nothing released now */
        mode_switch(HK_MODE_LEAN);
        break;
    case HAKMEM_LEVEL_MEDIUM:           /* and free memory decommitted now */
        mode_switch(HK_MODE_LEAN);
        hk_release_now(hk_opt.decommit == HK_DECOMMIT_DONTNEED, false);
        break;
    case HAKMEM_LEVEL_CRITICAL:         /* eagerly, every thread's cache too */
        mode_switch(HK_MODE_LEAN);
        hk_tcache_force_slow_all();
        hk_release_now(true, true);
        break;
    }
    atomic_store_explicit(&hk_ctr.level, (uint64_t)level, memory_order_relaxed);
    hk_guard_leave(tc);
    return 0;
}

/* hakmem_trim and malloc_trim: CRITICAL's release without its mode. */
int hk_trim(void)
{
    struct hk_tcache *tc = &hk_tls;
    if (!api_enter(tc))
        return 0;
    bool any = hk_release_now(true, true);
    hk_guard_leave(tc);
    return any;
}

void hk_mode_reinit_locks(void)
{
    pthread_mutex_init(&hk_mode_lock, NULL);
}

int hakmem_set_mode(int mode)
{
    return hk_set_mode(mode == HAKMEM_MODE_LEAN ? HK_MODE_LEAN :
                       mode == HAKMEM_MODE_FAST ? HK_MODE_FAST : (enum hk_mode)-1);
}

int hakmem_get_mode(void)
{
    hk_ensure_init();
    return atomic_load_explicit(&hk_ctr.mode, memory_order_relaxed) == HK_MODE_LEAN ?
           HAKMEM_MODE_LEAN : HAKMEM_MODE_FAST;
}

int hakmem_apply_pressure(int level)
{
    return hk_apply_level(level);
}
