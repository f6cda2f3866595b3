/* helper.c: the shim's helper threads (the purger, the listener). Owns
 * when they start: a box that needs its thread asks for it from anywhere
 * (hk_helper_want, also from inside an allocation slow path), and the
 * thread is created at the next safe point: the end of the outermost
 * guarded section of some thread (hk_safe_point in guard.c) or the
 * constructor, where no shim lock is held and no bin, central list or
 * superslab is half updated. pthread_create allocates (glibc callocs the
 * new thread's TLS vector, and may allocate its stack's guard bookkeeping):
 * those allocations re-enter malloc from here, and are then ordinary
 * ones.
 *
 * Each helper runs with every signal blocked, so that the host program's
 * signals never land on it. It must not do: take a shim lock for long,
 * or wait for an allocating thread.
 */
#include <signal.h>
#include "hk_internal.h"

struct helper {
    const char *name;
    void *(*main)(void *);
    size_t stack;                       /* bytes */
    bool retry;                         /* a failed start may be tried again */
    const char *without;                /* what the shim does without it */
    _Atomic int state;                  /* enum hk_helper_state */
    pthread_t thread;
};

static struct helper hk_helpers[HK_NHELPERS] = {
    [HK_HELPER_PURGER] = { "purge", hk_purger_main, 64 * 1024, false,
                           "LEAN purges from allocation slow paths only" },
    [HK_HELPER_LISTENER] = { "listener", hk_listener_main, 128 * 1024, true,
                             "not following hakmemd for now" },
};

/* Bit h: helper h was asked for and is not started yet. */
_Atomic uint32_t hk_helper_pending;

enum hk_helper_state hk_helper_state(enum hk_helper_id h)
{
    return (enum hk_helper_state)atomic_load_explicit(&hk_helpers[h].state, memory_order_acquire);
}

void hk_helper_want(enum hk_helper_id h)
{
    uint32_t bit = 1u << h;
    if (hk_helper_state(h) != HK_HELPER_OFF ||
        (atomic_load_explicit(&hk_helper_pending, memory_order_relaxed) & bit))
        return;
    atomic_fetch_or_explicit(&hk_helper_pending, bit, memory_order_release);
}

/* Create the thread: joinable (so that it can be waited for), with a small
 * stack and every signal blocked (the mask is inherited from this thread,
 * set around pthread_create). Allocates (see the top of the file). */
static int helper_create(struct helper *hp)
{
    pthread_attr_t attr;
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, hp->stack);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&hp->thread, &attr, hp->main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

/* At a safe point: start what was asked for. */
void hk_helper_run_pending(void)
{
    uint32_t bits = atomic_exchange_explicit(&hk_helper_pending, 0, memory_order_acq_rel);
    for (unsigned h = 0; h < HK_NHELPERS; h++) {
        struct helper *hp = &hk_helpers[h];
        int expected = HK_HELPER_OFF;
        if (!(bits >> h & 1) ||
            !atomic_compare_exchange_strong(&hp->state, &expected, HK_HELPER_STARTING))
            continue;
        int rc = helper_create(hp);
        if (rc != 0)
            hk_log("cannot start the %s thread (error %d): %s", hp->name, rc, hp->without);
        atomic_store_explicit(&hp->state, rc == 0 ? HK_HELPER_RUNNING :
                              hp->retry ? HK_HELPER_OFF : HK_HELPER_FAILED,
                              memory_order_release);
    }
}

/* Threads do not survive fork: in the child every helper is off (a failed
 * one stays failed) and starts again when asked for. */
void hk_helper_after_fork_child(void)
{
    atomic_store(&hk_helper_pending, 0);
    for (unsigned h = 0; h < HK_NHELPERS; h++)
        if (atomic_load(&hk_helpers[h].state) != HK_HELPER_FAILED)
            atomic_store(&hk_helpers[h].state, HK_HELPER_OFF);
}
