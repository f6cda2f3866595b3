/* init.c: process-wide start-up and the fork and exit hooks.
 * Start-up runs once, at the first allocation (which may come from ld.so
 * before any constructor) or from our constructor, whichever is first.
 * Until it completes nothing is cached per thread; it allocates nothing
 * until the allocator itself is usable.
 */
#include <sched.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include "hk_internal.h"

_Atomic int hk_init_state;
const struct hk_limits *_Atomic hk_lim;

/* The free key: written into the second word of every block a thread
 * cache takes, cleared when the block is handed out, so that a free that
 * finds it there is a double free (or user data that happen to hold it,
 * which the slow path tells apart). Random per process (the kernel's
 * AT_RANDOM bytes), never 0. */
uint64_t hk_free_key;
_Atomic uint32_t hk_epoch;

/* fork holds every shim lock across the fork, under the guard (a signal
 * handler allocating meanwhile must not wait for them), taken in the one
 * lock order of the shim: hk_tc_lock (a thief holds it while it gives
 * blocks to the central lists), the class locks, hk_ss_lock, then the
 * large-block lock (a leaf). */
static void hk_atfork_prepare(void)
{
    hk_tls.guard++;
    hk_tcache_lock_all();
    hk_ss_lock_all();
    hk_large_lock_all();
}

static void hk_atfork_parent(void)
{
    hk_large_unlock_all();
    hk_ss_unlock_all();
    hk_tcache_unlock_all();
    hk_tls.guard--;                     /* no safe point inside fork() */
}

/* The child has one thread: every lock is free again. */
static void hk_atfork_child(void)
{
    /* prepare's locks are this thread's: unlocked, not re-initialized held
     * (the guard stays up until the end) */
    hk_large_unlock_all();
    hk_ss_unlock_all();
    hk_tcache_unlock_all();
    hk_listener_after_fork_child();     /* reads whether the listener ran */
    hk_helper_after_fork_child();
    hk_tcache_after_fork_child();
    hk_purge_after_fork_child();
    hk_large_reinit_locks();
    hk_ss_reinit_locks();
    hk_mode_reinit_locks();
    hk_tls.guard--;
}

void hk_init_slow(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&hk_init_state, &expected, 1)) {
        while (atomic_load_explicit(&hk_init_state, memory_order_acquire) != 2)
            sched_yield();
        return;
    }
    hk_env_init();
    hk_block_check_init(hk_lookup.check, hk_lookup.check4);
    for (unsigned c = 0; c < HK_NCLASS; c++)
        hk_lookup.bin_off[c] = HK_BIN_OFF(c);
    const void *rnd = (const void *)getauxval(AT_RANDOM);     /* 16 bytes, unaligned */
    uint64_t r[2] = { (uint64_t)(uintptr_t)&r * 0x9E3779B97F4A7C15u, 0 };
    if (rnd)
        memcpy(r, rnd, sizeof(r));
    hk_free_key = (r[0] ^ r[1]) | 1;
    hk_ss_reinit_locks();
    hk_mode_init();
    hk_foreign_snapshot();
    hk_tcache_global_init();
    atomic_store_explicit(&hk_init_state, 2, memory_order_release);

    /* From here on malloc works: what follows may allocate (pthread_atfork
     * registers into a list glibc may grow with malloc). The slow path
     * that called us enters its guard only after this returns. */
    if (hk_limits()->prewarm)
        hk_ss_prewarm();
    pthread_atfork(hk_atfork_prepare, hk_atfork_parent, hk_atfork_child);
}

/* A safe point: the listener starts here when hakmemd's socket exists. */
__attribute__((constructor)) static void hk_ctor(void)
{
    hk_ensure_init();
    hk_listener_maybe_start();
    if (hk_tls.guard == 0)
        hk_helper_run_pending();
}

__attribute__((destructor)) static void hk_dtor(void)
{
    if (hk_opt.os_stats)
        hakmem_stats_print(STDERR_FILENO);
}
