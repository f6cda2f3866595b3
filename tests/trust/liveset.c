/* liveset.c: a checker preloaded in front of the allocator under test
 * (LD_PRELOAD="libliveset.so libhakmem.so"). It forwards every allocation
 * call to the next definition and keeps the set of blocks handed out and
 * not yet freed, including those of libc itself (pthread_create's TLS
 * calloc, stdio buffers): a pointer handed out while it is still live is
 * a block given twice, and the process stops at once with exit status
 * LIVESET_EXIT and a message on stderr. It owns no allocator and never
 * calls one: the set is a static open-addressing table, the message is
 * written with write(2).
 *
 * A free of a pointer not in the set (allocated before the checker
 * started, or freed twice) is passed on unchanged: judging it is the
 * allocator's job.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIVESET_EXIT 97
#define TABLE_BITS 22                   /* 4M slots: programs in the tests stay far below */
#define TABLE_SIZE ((size_t)1 << TABLE_BITS)
#define BOOT_SIZE 65536                 /* for dlsym's own allocations while resolving */

#define EXPORT __attribute__((visibility("default")))

static uintptr_t table[TABLE_SIZE];     /* 0: empty */
static size_t nlive;
static atomic_flag table_lock = ATOMIC_FLAG_INIT;

static _Alignas(64) char boot[BOOT_SIZE];
static size_t boot_used;

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void *(*next_reallocarray)(void *, size_t, size_t);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);
static void *(*next_memalign)(size_t, size_t);
static void *(*next_valloc)(size_t);
static void *(*next_pvalloc)(size_t);
static _Atomic int resolved;            /* 0 no, 1 resolving, 2 done */

/* Stop the process, saying why (a stack buffer and write(2): no malloc). */
static void die(const char *why) __attribute__((noreturn));
static void die(const char *why)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "liveset[%d]: %s\n", (int)getpid(), why);
    if (write(2, buf, n > 0 && n < (int)sizeof buf ? (size_t)n : sizeof buf - 1) < 0)
        _exit(LIVESET_EXIT);
    _exit(LIVESET_EXIT);
}

static void resolve(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&resolved, &expected, 1)) {
        while (atomic_load(&resolved) != 2)
            sched_yield();
        return;
    }
    next_malloc = dlsym(RTLD_NEXT, "malloc");
    next_free = dlsym(RTLD_NEXT, "free");
    next_calloc = dlsym(RTLD_NEXT, "calloc");
    next_realloc = dlsym(RTLD_NEXT, "realloc");
    next_reallocarray = dlsym(RTLD_NEXT, "reallocarray");
    next_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    next_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    next_memalign = dlsym(RTLD_NEXT, "memalign");
    next_valloc = dlsym(RTLD_NEXT, "valloc");
    next_pvalloc = dlsym(RTLD_NEXT, "pvalloc");
    if (!next_malloc || !next_free || !next_calloc || !next_realloc)
        die("cannot find the next allocator");
    atomic_store(&resolved, 2);
}

/* True while this thread is inside resolve(): dlsym may allocate. */
static __thread int in_resolve;

static int ready(void)
{
    if (atomic_load_explicit(&resolved, memory_order_acquire) == 2)
        return 1;
    if (in_resolve)
        return 0;
    in_resolve = 1;
    resolve();
    in_resolve = 0;
    return 1;
}

static void *boot_alloc(size_t n)
{
    n = (n + 63) & ~(size_t)63;
    if (n > BOOT_SIZE - boot_used)
        return NULL;
    void *p = boot + boot_used;
    boot_used += n;
    return p;
}

static int is_boot(const void *p)
{
    return (const char *)p >= boot && (const char *)p < boot + BOOT_SIZE;
}

static void lock(void)
{
    unsigned spins = 0;
    while (atomic_flag_test_and_set_explicit(&table_lock, memory_order_acquire))
        if (++spins % 64 == 0)
            sched_yield();
}

static void unlock(void)
{
    atomic_flag_clear_explicit(&table_lock, memory_order_release);
}

static size_t slot_of(uintptr_t p)
{
    return (size_t)((p >> 4) * UINT64_C(0x9E3779B97F4A7C15) >> (64 - TABLE_BITS));
}

/* Record p as live; stop the process if it already is. */
static void note_alloc(void *p, const char *who, size_t n)
{
    if (!p || is_boot(p))
        return;
    uintptr_t k = (uintptr_t)p;
    lock();
    if (nlive + 1 >= TABLE_SIZE / 2) {
        unlock();
        die("too many live blocks: table full");
    }
    size_t i = slot_of(k);
    while (table[i]) {
        if (table[i] == k) {
            unlock();
            char why[160];
            snprintf(why, sizeof why, "%s(%zu) returned %p, which is live (handed out before "
                     "and not freed)", who, n, p);
            die(why);
        }
        i = (i + 1) & (TABLE_SIZE - 1);
    }
    table[i] = k;
    nlive++;
    unlock();
}

/* Forget p (a free or the old block of a realloc). Returns 1 if it was
 * live. Linear probing with backward-shift deletion. */
static int note_free(void *p)
{
    if (!p || is_boot(p))
        return 0;
    uintptr_t k = (uintptr_t)p;
    lock();
    size_t i = slot_of(k);
    while (table[i] && table[i] != k)
        i = (i + 1) & (TABLE_SIZE - 1);
    if (!table[i]) {
        unlock();
        return 0;
    }
    size_t j = i;
    for (;;) {
        j = (j + 1) & (TABLE_SIZE - 1);
        if (!table[j])
            break;
        size_t h = slot_of(table[j]);
        /* move table[j] into the hole at i unless its home lies in (i, j] */
        if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
            table[i] = table[j];
            i = j;
        }
    }
    table[i] = 0;
    nlive--;
    unlock();
    return 1;
}

EXPORT void *malloc(size_t n)
{
    if (!ready())
        return boot_alloc(n);
    void *p = next_malloc(n);
    note_alloc(p, "malloc", n);
    return p;
}

EXPORT void free(void *p)
{
    if (!p || is_boot(p))
        return;
    if (!ready())
        return;
    note_free(p);
    next_free(p);
}

EXPORT void *calloc(size_t a, size_t b)
{
    if (!ready()) {
        size_t n;
        return __builtin_mul_overflow(a, b, &n) ? NULL : boot_alloc(n);   /* static: zeroed */
    }
    void *p = next_calloc(a, b);
    note_alloc(p, "calloc", a * b);
    return p;
}

EXPORT void *realloc(void *old, size_t n)
{
    if (!ready() || is_boot(old)) {
        void *p = ready() ? next_malloc(n) : boot_alloc(n);
        if (p && old) {
            size_t room = (size_t)(boot + BOOT_SIZE - (char *)old);
            memcpy(p, old, n < room ? n : room);
        }
        if (ready())
            note_alloc(p, "realloc", n);
        return p;
    }
    int was = note_free(old);
    void *p = next_realloc(old, n);
    if (p)
        note_alloc(p, "realloc", n);
    else if (was && n)
        note_alloc(old, "realloc (failed, old block kept)", n);
    return p;
}

EXPORT void *reallocarray(void *old, size_t a, size_t b)
{
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, n);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    ready();
    int rc = next_posix_memalign(out, align, n);
    if (rc == 0)
        note_alloc(*out, "posix_memalign", n);
    return rc;
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
    ready();
    void *p = next_aligned_alloc(align, n);
    note_alloc(p, "aligned_alloc", n);
    return p;
}

EXPORT void *memalign(size_t align, size_t n)
{
    ready();
    void *p = next_memalign(align, n);
    note_alloc(p, "memalign", n);
    return p;
}

EXPORT void *valloc(size_t n)
{
    ready();
    void *p = next_valloc(n);
    note_alloc(p, "valloc", n);
    return p;
}

EXPORT void *pvalloc(size_t n)
{
    ready();
    void *p = next_pvalloc(n);
    note_alloc(p, "pvalloc", n);
    return p;
}

/* fork while another thread holds the table: the child needs it free */
static void atfork_prepare(void) { lock(); }
static void atfork_release(void) { unlock(); }

__attribute__((constructor)) static void liveset_init(void)
{
    ready();
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}
