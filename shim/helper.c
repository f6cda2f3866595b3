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
 *
 * Parking: some system calls refuse a multithreaded caller (unshare and
 * setns into a user namespace, setns into a mount namespace). Around them
 * (ns.c) every helper is parked: asked to stop (a flag, an eventfd its
 * waits poll, its own wake-up), joined, and waited for until the kernel
 * has removed it from the thread group. While parked nothing starts;
 * afterwards each comes back when its box next asks for it. A helper's
 * waits go through hk_helper_poll, and its loops look at
 * hk_helper_parking(); any future helper (a decay thread) does the same.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "hk_internal.h"

struct helper {
    const char *name;
    void *(*main)(void *);
    void (*wake)(void);                 /* nudge it out of a wait it cannot poll */
    size_t stack;                       /* bytes */
    bool retry;                         /* a failed start may be tried again */
    const char *without;                /* what the shim does without it */
    _Atomic int state;                  /* enum hk_helper_state */
    _Atomic pid_t tid;                  /* the kernel's id of the running thread */
    pthread_t thread;
};

static struct helper hk_helpers[HK_NHELPERS] = {
    [HK_HELPER_PURGER] = { "purge", hk_purger_main, hk_purger_wake, 64 * 1024, false,
                           "LEAN purges from allocation slow paths only" },
    [HK_HELPER_LISTENER] = { "listener", hk_listener_main, hk_listener_wake, 128 * 1024, true,
                             "not following hakmemd for now" },
};

/* Parking (hk_park_lock): how many callers want the helpers parked, and an
 * eventfd that is readable while they do (created with the first helper;
 * -1 before, or if eventfd failed: the waits then end by their timeout). */
static pthread_mutex_t hk_park_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int hk_parked;
static _Atomic int hk_park_fd = -1;     /* set once (a helper's safe point may not
                                           take hk_park_lock: the parker holds it
                                           while it waits for the helpers) */

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

static void *helper_entry(void *arg)
{
    struct helper *hp = arg;
    atomic_store(&hp->tid, (pid_t)syscall(SYS_gettid));
    return hp->main(NULL);
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
    atomic_store(&hp->tid, 0);
    int rc = pthread_create(&hp->thread, &attr, helper_entry, hp);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

/* At a safe point: start what was asked for (while parked: later). */
void hk_helper_run_pending(void)
{
    uint32_t bits = atomic_exchange_explicit(&hk_helper_pending, 0, memory_order_acq_rel);
    if (atomic_load(&hk_park_fd) < 0 && bits) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), none = -1;
        if (fd >= 0 && !atomic_compare_exchange_strong(&hk_park_fd, &none, fd))
            close(fd);                  /* another thread was first */
    }
    for (unsigned h = 0; h < HK_NHELPERS; h++) {
        if ((bits >> h & 1) && hk_helper_parking()) {
            atomic_fetch_or_explicit(&hk_helper_pending, 1u << h, memory_order_relaxed);
            continue;
        }
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

/* ---- parking ---- */

bool hk_helper_parking(void)
{
    return atomic_load_explicit(&hk_parked, memory_order_relaxed) != 0;
}

/* A helper's wait: for events on fd (-1: none, a sleep) for at most ms,
 * ended early when parking starts. Returns fd's revents, 0 on a timeout,
 * an error or parking. */
short hk_helper_poll(int fd, short events, int ms)
{
    struct pollfd p[2] = { { fd, events, 0 }, { atomic_load(&hk_park_fd), POLLIN, 0 } };
    if (poll(p, 2, ms) <= 0 || (p[1].revents & POLLIN))
        return 0;
    return p[0].revents;
}

static uint64_t ns_after(uint64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + ns;
}

/* Wait until hp's thread has exited and left the thread group (a joined
 * thread may still be in it for a moment: the kernel checks the group).
 * False when it does not stop within 5 s. */
static bool helper_stop(struct helper *hp)
{
    for (int i = 0; i < 1000; i++) {
        int fd = atomic_load(&hk_park_fd);
        uint64_t one = 1;               /* the eventfd may be newer than the park */
        ssize_t w = fd >= 0 ? write(fd, &one, sizeof(one)) : 0;
        (void)w;                        /* nothing to do about a failure */
        if (hp->wake)
            hp->wake();                 /* again each time: a wake-up may come early */
        uint64_t t = ns_after(5000000);
        struct timespec ts = { (time_t)(t / 1000000000u), (long)(t % 1000000000u) };
        int rc = pthread_timedjoin_np(hp->thread, NULL, &ts);
        if (rc == 0)
            break;
        if (rc != ETIMEDOUT || i == 999) {
            hk_log("the %s thread did not stop (error %d)", hp->name, rc);
            return false;
        }
    }
    pid_t tid = atomic_load(&hp->tid);
    struct timespec d = { 0, 100000 };
    for (int i = 0; tid > 0 && i < 10000 && syscall(SYS_tgkill, getpid(), tid, 0) == 0; i++)
        nanosleep(&d, NULL);
    atomic_store_explicit(&hp->state, HK_HELPER_OFF, memory_order_release);
    return true;
}

/* Stop every helper and keep them stopped until hk_helper_unpark. Returns
 * false if one would not stop (the caller's system call may then fail as
 * it would have). */
bool hk_helper_park(void)
{
    bool ok = true;
    pthread_mutex_lock(&hk_park_lock);
    atomic_fetch_add(&hk_parked, 1);    /* helper_stop makes the eventfd readable */
    for (unsigned h = 0; h < HK_NHELPERS; h++) {
        struct helper *hp = &hk_helpers[h];
        while (atomic_load(&hp->state) == HK_HELPER_STARTING)
            sched_yield();              /* being created at a safe point */
        if (atomic_load(&hp->state) == HK_HELPER_RUNNING)
            ok &= helper_stop(hp);
    }
    pthread_mutex_unlock(&hk_park_lock);
    return ok;
}

void hk_helper_unpark(void)
{
    pthread_mutex_lock(&hk_park_lock);
    int fd = atomic_load(&hk_park_fd);
    if (atomic_fetch_sub(&hk_parked, 1) == 1 && fd >= 0) {
        uint64_t v;                     /* resets the count; fails if it was 0 */
        ssize_t r = read(fd, &v, sizeof(v));
        (void)r;
    }
    pthread_mutex_unlock(&hk_park_lock);
}

/* Threads do not survive fork: in the child every helper is off (a failed
 * one stays failed) and starts again when asked for; the eventfd is the
 * parent's too, so the child makes its own. */
void hk_helper_after_fork_child(void)
{
    pthread_mutex_init(&hk_park_lock, NULL);
    atomic_store(&hk_parked, 0);
    int fd = atomic_exchange(&hk_park_fd, -1);
    if (fd >= 0)
        close(fd);
    atomic_store(&hk_helper_pending, 0);
    for (unsigned h = 0; h < HK_NHELPERS; h++)
        if (atomic_load(&hk_helpers[h].state) != HK_HELPER_FAILED)
            atomic_store(&hk_helpers[h].state, HK_HELPER_OFF);
}
