/* purge.c: LEAN mode's periodic work. Free memory is decommitted, and
 * empty superslabs retired, once it has stayed free for
 * HAKMEM_SS_LEAN_DELAY_MS: a background thread (like jemalloc's
 * background_thread) runs purge rounds while there is free memory to
 * look at, and sleeps otherwise, so an idle process gives its memory back
 * too. The slow paths only note that memory was freed (hk_purge_note);
 * they never purge themselves unless the thread could not be started.
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

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool eager(void)
{
    return hk_opt.decommit == HK_DECOMMIT_DONTNEED;
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
            hk_helper_poll(-1, 0, (int)delay_ms);       /* the delay; parking ends it */
            parking = hk_helper_parking();
        }
        if (parking) {                  /* the next purger does the round */
            atomic_store_explicit(&hk_purge_dirty, 1, memory_order_release);
            return arg;
        }
        if (!hk_limits()->purge)
            continue;                   /* back in FAST: nothing to age */
        bool pending = false;
        uint64_t back = atomic_exchange_explicit(&hk_recommit_pages, 0, memory_order_relaxed);
        uint64_t gave = atomic_exchange_explicit(&hk_released_pages, 0, memory_order_relaxed);
        delay_ms = hk_policy_purge_delay(hk_opt.lean_delay_ms, delay_ms, gave, back);
        hk_ss_purge(false, eager(), &pending);
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
    uint64_t now = now_ns();
    uint64_t next = atomic_load_explicit(&hk_purge_next, memory_order_relaxed);
    if (now < next || !atomic_compare_exchange_strong(&hk_purge_next, &next,
                                                      now + (uint64_t)hk_opt.lean_delay_ms * 1000000u))
        return;
    hk_ss_purge(false, eager(), NULL);
}

/* Memory was freed on a slow path (no lock held; under the guard: the
 * thread is only asked for here). In LEAN mode, make sure a purge round
 * will look at it. */
void hk_purge_note(void)
{
    if (!hk_limits()->purge)
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
