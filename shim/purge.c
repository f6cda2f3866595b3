/* purge.c: the periodic work of both modes. Free memory is decommitted,
 * and empty superslabs and cached large mappings unmapped, once it has
 * stayed free for HAKMEM_SS_LEAN_DELAY_MS in LEAN and HAKMEM_SS_DECAY_MS
 * in FAST (FAST's decay, like jemalloc's dirty_decay_ms): a background
 * thread (like jemalloc's background_thread) runs purge rounds while there
 * is free memory to look at, and sleeps otherwise, so an idle process
 * gives its memory back too. A round gives back what was free at the
 * previous round too, so rounds come every half delay in FAST. The slow
 * paths only note that memory was freed (hk_purge_note); they never purge
 * themselves unless the thread could not be started. FAST asks for the
 * thread only once more than HK_DECAY_MIN_FREE bytes are free, so that a
 * small program never gets one.
 *
 * The delay grows while decommitted memory keeps coming back (churn) and
 * returns to HAKMEM_SS_LEAN_DELAY_MS when it stops (policy.c). After each
 * round, threads give their caches back at their next free, so that the
 * blocks they hold do not pin pages that are otherwise free.
 *
 * The thread is asked for at the first note in LEAN mode and starts at
 * the next safe point (helper.c), and again in a forked child when needed;
 * it exits when parked (helper.c). Calls that can allocate: none (its own
 * waits are poll and a condition variable).
 */
#include <time.h>
#include "hk_internal.h"

static pthread_mutex_t hk_purge_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hk_purge_cond = PTHREAD_COND_INITIALIZER;
static _Atomic int hk_purge_dirty;      /* memory freed since the last round */
static bool hk_purger_waiting;          /* hk_purge_lock: asleep on the cond */
static _Atomic uint64_t hk_purge_next;  /* inline fallback: next round, ns */

/* FAST's decay gives back with MADV_DONTNEED: what stayed free this long
 * is not wanted soon, and MADV_FREE'd pages still count in RSS. */
static bool eager(void)
{
    return !hk_limits()->purge || hk_opt.decommit == HK_DECOMMIT_DONTNEED;
}

/* FAST: free bytes (committed, not in use) below which decay does not
 * bother: a few superslabs' worth, less than one thread stack. */
#define HK_DECAY_MIN_FREE ((uint64_t)8 << 20)

static bool decay_wanted(void)
{
    if (hk_opt.decay_ms == 0)
        return false;
    uint64_t committed = atomic_load_explicit(&hk_ctr.bytes_committed, memory_order_relaxed);
    uint64_t used = atomic_load_explicit(&hk_ctr.bytes_in_use, memory_order_relaxed);
    return committed > used + HK_DECAY_MIN_FREE;
}

/* Milliseconds between rounds in the current mode. */
static uint32_t round_ms(uint32_t lean_delay_ms)
{
    if (hk_limits()->purge)
        return lean_delay_ms;
    return hk_opt.decay_ms / 2 ? hk_opt.decay_ms / 2 : 1;
}

void *hk_purger_main(void *arg)
{
    uint32_t delay_ms = hk_opt.lean_delay_ms;  /* adapted per round (policy.c) */
    for (;;) {
        bool parking = false;
        pthread_mutex_lock(&hk_purge_lock);
        while (!(parking = hk_helper_parking()) &&
               !atomic_exchange_explicit(&hk_purge_dirty, 0, memory_order_acq_rel)) {
            hk_purger_waiting = true;
            pthread_cond_wait(&hk_purge_cond, &hk_purge_lock);
            hk_purger_waiting = false;
        }
        pthread_mutex_unlock(&hk_purge_lock);
        if (!parking) {
            hk_helper_poll(-1, 0, (int)round_ms(delay_ms));  /* parking ends it */
            parking = hk_helper_parking();
        }
        if (parking) {                  /* the next purger does the round */
            atomic_store_explicit(&hk_purge_dirty, 1, memory_order_release);
            return arg;
        }
        bool pending = false;
        if (!hk_limits()->purge) {            /* FAST: decay */
            atomic_store_explicit(&hk_recommit_pages, 0, memory_order_relaxed);
            atomic_store_explicit(&hk_released_pages, 0, memory_order_relaxed);
            if (hk_opt.decay_ms == 0)
                continue;
            hk_ss_purge(false, true, &pending);
            bool left = false;
            hk_large_decay(false, &left);
            pending |= left;
            if (pending)
                atomic_store_explicit(&hk_purge_dirty, 1, memory_order_release);
            continue;
        }
        uint64_t back = atomic_exchange_explicit(&hk_recommit_pages, 0, memory_order_relaxed);
        uint64_t gave = atomic_exchange_explicit(&hk_released_pages, 0, memory_order_relaxed);
        delay_ms = hk_policy_purge_delay(hk_opt.lean_delay_ms, delay_ms, gave, back);
        hk_ss_purge(false, eager(), &pending);
        bool left = false;
        hk_large_decay(false, &left);
        pending |= left;
        /* Blocks parked in thread caches pin their pages: have every
         * thread hand its cache back at its next free (new epoch), and
         * refill from the lowest free addresses. */
        atomic_fetch_add_explicit(&hk_epoch, 1, memory_order_release);
        hk_tcache_force_slow_all();
        if (pending)                    /* candidates seen: a second round */
            atomic_store_explicit(&hk_purge_dirty, 1, memory_order_release);
    }
    return arg;
}

/* Parking (helper.c): out of the wait on the condition. */
void hk_purger_wake(void)
{
    pthread_mutex_lock(&hk_purge_lock);
    pthread_cond_broadcast(&hk_purge_cond);
    pthread_mutex_unlock(&hk_purge_lock);
}

/* Without the thread: a round from this slow path, at most once per delay. */
static void purge_inline(void)
{
    uint64_t now = hk_now_ns();
    uint64_t next = atomic_load_explicit(&hk_purge_next, memory_order_relaxed);
    if (now < next || !atomic_compare_exchange_strong(&hk_purge_next, &next,
                                                      now + (uint64_t)round_ms(hk_opt.lean_delay_ms) * 1000000u))
        return;
    hk_ss_purge(false, eager(), NULL);
    hk_large_decay(false, NULL);
}

/* Memory was freed on a slow path (no lock held; under the guard: the
 * thread is only asked for here). In LEAN mode, and in FAST when enough
 * is free for decay to matter, make sure a purge round will look at it. */
void hk_purge_note(void)
{
    if (!hk_limits()->purge &&
        (atomic_load_explicit(&hk_purge_dirty, memory_order_relaxed) || !decay_wanted()))
        return;
    enum hk_helper_state st = hk_helper_state(HK_HELPER_PURGER);
    if (st == HK_HELPER_OFF)
        hk_helper_want(HK_HELPER_PURGER);
    if (atomic_load_explicit(&hk_purge_dirty, memory_order_relaxed))
        return;                         /* a round is due already */
    atomic_store_explicit(&hk_purge_dirty, 1, memory_order_release);
    switch (st) {
    case HK_HELPER_OFF:
    case HK_HELPER_STARTING:
        break;                          /* it looks at the flag when it starts */
    case HK_HELPER_RUNNING:
        pthread_mutex_lock(&hk_purge_lock);
        if (hk_purger_waiting)
            pthread_cond_signal(&hk_purge_cond);
        pthread_mutex_unlock(&hk_purge_lock);
        break;
    case HK_HELPER_FAILED:
        purge_inline();
        break;
    }
}

/* Threads do not survive fork: the child starts its own when needed
 * (helper.c). */
void hk_purge_after_fork_child(void)
{
    pthread_mutex_init(&hk_purge_lock, NULL);
    pthread_cond_init(&hk_purge_cond, NULL);
    hk_purger_waiting = false;
}
