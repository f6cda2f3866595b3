/* mode.c: the mode and pressure-level box. The one place where the mode
 * changes (hk_set_mode) and where a pressure level turns into actions
 * (hk_apply_level, which the daemon's listener calls). It sets the limits
 * from the policy, bumps the epoch that thread caches check on their slow
 * paths, and asks superslab.c and large.c to give memory back.
 */
#include <errno.h>
#include "hk_internal.h"

static pthread_mutex_t hk_mode_lock = PTHREAD_MUTEX_INITIALIZER;
static enum hk_mode hk_mode_base;       /* chosen at start (HAKMEM_SS_MEM_LEAN) */

static void publish_mode(enum hk_mode m)
{
    hk_policy_limits(m, &hk_lim);
    atomic_store_explicit(&hk_ctr.mode, (uint64_t)m, memory_order_relaxed);
}

void hk_mode_init(void)
{
    hk_mode_base = hk_opt.lean ? HK_MODE_LEAN : HK_MODE_FAST;
    publish_mode(hk_mode_base);
}

/* Give back now everything free: the caller's cache, the large-mapping
 * cache, empty slabs and superslabs, free pages in partly used slabs. */
bool hk_release_now(bool eager)
{
    if (hk_tls.state == HK_T_READY)
        hk_tcache_flush_all(&hk_tls);
    bool a = hk_large_trim();
    bool b = hk_ss_purge(true, eager, NULL);
    return a || b;
}

int hk_set_mode(enum hk_mode m)
{
    if (m != HK_MODE_FAST && m != HK_MODE_LEAN) {
        errno = EINVAL;
        return -1;
    }
    hk_ensure_init();
    pthread_mutex_lock(&hk_mode_lock);
    bool changed = atomic_load_explicit(&hk_ctr.mode, memory_order_relaxed) != (uint64_t)m;
    if (changed) {
        publish_mode(m);
        atomic_fetch_add_explicit(&hk_epoch, 1, memory_order_release);
        HK_CTR_ADD(mode_switches, 1);
        hk_tcache_force_slow_all();
    }
    pthread_mutex_unlock(&hk_mode_lock);
    if (changed && m == HK_MODE_LEAN)
        hk_release_now(hk_opt.decommit == HK_DECOMMIT_DONTNEED);
    return 0;
}

int hk_apply_level(int level)
{
    switch (level) {
    case HAKMEM_LEVEL_NONE:
        hk_set_mode(hk_mode_base);
        break;
    case HAKMEM_LEVEL_LOW:
        hk_set_mode(HK_MODE_LEAN);
        break;
    case HAKMEM_LEVEL_MEDIUM:
        hk_set_mode(HK_MODE_LEAN);
        hk_release_now(hk_opt.decommit == HK_DECOMMIT_DONTNEED);
        break;
    case HAKMEM_LEVEL_CRITICAL:
        hk_set_mode(HK_MODE_LEAN);
        hk_tcache_force_slow_all();     /* others flush at their next free */
        hk_release_now(true);
        break;
    default:
        errno = EINVAL;
        return -1;
    }
    atomic_store_explicit(&hk_ctr.level, (uint64_t)level, memory_order_relaxed);
    return 0;
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
    hk_ensure_init();
    return hk_apply_level(level);
}
