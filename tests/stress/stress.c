/* stress.c: a multi-threaded content check for whatever malloc the process
 * runs with (hakmem under LD_PRELOAD in the meson suite 'stress'; glibc or
 * another allocator when run by hand). It owns no allocator code and links
 * against none: it only calls the libc allocation API.
 *
 * Checks: every block is filled with a pattern derived from (pointer, seed)
 * over its whole usable size and verified before it is freed or resized;
 * alignment of posix_memalign/aligned_alloc/memalign/valloc/pvalloc; calloc
 * returns zeroes; malloc_usable_size >= the size asked for; realloc keeps the
 * prefix (chains that grow and shrink); blocks freed by another thread than
 * the one that allocated them (per-thread mailboxes); the libc error
 * contract (NULL + ENOMEM / EINVAL) on impossible requests; live blocks and
 * calloc after most memory was freed and the process went idle or called
 * malloc_trim (when a releasing allocator decommits); fork while other
 * threads allocate, with the child allocating, freeing inherited blocks,
 * starting a thread and exiting 0.
 *
 * usage: stress [threads [ops-per-thread [seed]]]   (defaults 8 50000 42)
 * With STRESS_EXPECT_MALLOC=substring in the environment it also fails
 * unless the malloc in use comes from an object whose path contains it
 * (proof that LD_PRELOAD took effect); with STRESS_SKIP_FORK=1 it skips the
 * fork section. Exit 0 on success, 1 with a message on stderr on the first
 * mismatch.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../malloc_origin.h"

#define MAX_THREADS 256
#define SLOTS 384                 /* live blocks per thread */
#define MAILBOX_LIMIT 4096        /* blocks queued to one thread, at most */
/* Blocks above this are patterned densely only at head and tail, plus one
 * cache line per page, so that a few 4 MiB blocks do not dominate runtime. */
#define DENSE_LIMIT ((size_t)256 << 10)
#define EDGE ((size_t)64 << 10)
#define FORK_ROUNDS 12
#define CHILD_WAIT_S 30           /* a child slower than this has deadlocked */

enum kind { K_MALLOC, K_CALLOC, K_POSIX_MEMALIGN, K_ALIGNED_ALLOC, K_MEMALIGN,
            K_VALLOC, K_PVALLOC, K_REALLOC_NULL, K_REALLOCARRAY, K_NKINDS };
static const char *const kind_name[K_NKINDS] = {
    "malloc", "calloc", "posix_memalign", "aligned_alloc", "memalign",
    "valloc", "pvalloc", "realloc(NULL)", "reallocarray",
};

/* One live block. The pattern is a function of key, set when the block was
 * last filled; len is the number of bytes patterned (its usable size). */
struct block {
    unsigned char *p;
    size_t req;                   /* bytes asked for */
    size_t len;                   /* bytes patterned: malloc_usable_size */
    uint64_t key;
    int owner;                    /* thread index that allocated it */
};

struct mail {
    struct mail *next;
    struct block b;
};

struct mailbox {
    _Atomic(struct mail *) head;
    atomic_int count;
} __attribute__((aligned(64)));

struct worker {
    pthread_t tid;
    int idx;
    uint64_t rng;
    long ops;
    struct block slot[SLOTS];
    uint64_t n_alloc[K_NKINDS], n_realloc, n_sent, n_received, n_freed;
};

static int nthreads = 8;
static long ops_per_thread = 50000;
static uint64_t seed = 42;
static struct mailbox mailbox[MAX_THREADS];
static struct worker *workers;
static size_t page_size;
static atomic_int stop_churn;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n = snprintf(buf, sizeof buf, "stress: FAIL (seed %" PRIu64 "): ", seed);
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    if (write(2, buf, (size_t)n) < 0)
        _exit(2);
    _exit(1);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rnd(struct worker *w, uint64_t n)
{
    return splitmix(&w->rng) % n;
}

static uint64_t make_key(const void *p, uint64_t s)
{
    uint64_t k = (uint64_t)(uintptr_t)p ^ (s * 0xD6E8FEB86659FD93ull);
    return splitmix(&k);
}

/* The 8-byte word at byte offset off (a multiple of 8) of a block keyed k. */
static inline uint64_t pat_word(uint64_t k, size_t off)
{
    return k ^ ((uint64_t)off * 0x9E3779B97F4A7C15ull);
}

/* Apply fn to every patterned range of a block of len bytes, clipped to
 * its first limit bytes (limit < len: the prefix a realloc must keep). */
typedef void (*range_fn)(unsigned char *p, size_t from, size_t to, uint64_t k,
                         const struct block *b, const char *what);

static void clip(range_fn fn, unsigned char *p, size_t from, size_t to, size_t limit,
                 uint64_t k, const struct block *b, const char *what)
{
    if (to > limit)
        to = limit;
    if (from < to)
        fn(p, from, to, k, b, what);
}

static void for_ranges(unsigned char *p, size_t len, size_t limit, uint64_t k,
                       range_fn fn, const struct block *b, const char *what)
{
    if (len <= DENSE_LIMIT) {
        clip(fn, p, 0, len, limit, k, b, what);
        return;
    }
    size_t shift = (k & 0xfc0) % 4032;   /* where in each page the sample lies */
    clip(fn, p, 0, EDGE, limit, k, b, what);
    for (size_t off = EDGE; off + 64 <= len - EDGE && off + shift < limit; off += 4096)
        clip(fn, p, off + shift, off + shift + 64, limit, k, b, what);
    clip(fn, p, len - EDGE, len, limit, k, b, what);
}

static void fill_range(unsigned char *p, size_t from, size_t to, uint64_t k,
                       const struct block *b, const char *what)
{
    (void)b;
    (void)what;
    size_t off = from & ~(size_t)7;
    for (; off + 8 <= to; off += 8) {
        uint64_t v = pat_word(k, off);
        if (off >= from)
            memcpy(p + off, &v, 8);
    }
    if (off < to) {
        uint64_t v = pat_word(k, off);
        memcpy(p + off, &v, to - off);
    }
}

static void check_range(unsigned char *p, size_t from, size_t to, uint64_t k,
                        const struct block *b, const char *what)
{
    size_t off = from & ~(size_t)7;
    for (; off < to; off += 8) {
        uint64_t v = pat_word(k, off), got = 0;
        size_t n = to - off < 8 ? to - off : 8;
        if (off < from)
            continue;
        memcpy(&got, p + off, n);
        if (n < 8)
            v &= ((uint64_t)1 << (8 * n)) - 1;
        if (got != v) {
            size_t i = 0;
            while (i < n && ((got >> (8 * i)) & 0xff) == ((v >> (8 * i)) & 0xff))
                i++;
            fail("%s: block %p (asked %zu, usable %zu, allocated by thread %d): "
                 "byte %zu is 0x%02x, expected 0x%02x (word 0x%016" PRIx64
                 ", expected 0x%016" PRIx64 ")",
                 what, (void *)b->p, b->req, b->len, b->owner, off + i,
                 (unsigned)((got >> (8 * i)) & 0xff),
                 (unsigned)((v >> (8 * i)) & 0xff), got, v);
        }
    }
}

static void fill_block(struct block *b)
{
    b->key = make_key(b->p, seed);
    for_ranges(b->p, b->len, b->len, b->key, fill_range, b, "fill");
}

static void check_block(const struct block *b, const char *what)
{
    for_ranges(b->p, b->len, b->len, b->key, check_range, b, what);
}

/* After a realloc moved (or kept) old to nb: check that the first n bytes
 * still hold old's pattern, where old had patterned them. */
static void check_prefix(const struct block *nb, const struct block *old, size_t n,
                         const char *what)
{
    struct block tmp = *nb;
    tmp.key = old->key;
    tmp.owner = old->owner;
    for_ranges(nb->p, old->len, n, old->key, check_range, &tmp, what);
}

static size_t pick_size(struct worker *w)
{
    uint64_t r = rnd(w, 1000);
    if (r < 850)
        return 1 + rnd(w, 1024);
    if (r < 995)
        return 1025 + rnd(w, (64 << 10) - 1024);
    return ((size_t)64 << 10) + rnd(w, ((size_t)4 << 20) - (64 << 10) + 1);
}

static size_t pick_align(struct worker *w)
{
    if (rnd(w, 200) == 0)
        return (size_t)2 << 20;
    return (size_t)8 << rnd(w, 14);                 /* 8 .. 65536 */
}

static void check_usable(const struct block *b, const char *fn)
{
    if (b->len < b->req)
        fail("%s: malloc_usable_size(%p) = %zu < %zu asked", fn, (void *)b->p,
             b->len, b->req);
}

/* Allocate into *b with a randomly chosen function, check and pattern it. */
static void alloc_block(struct worker *w, struct block *b)
{
    size_t n = pick_size(w), align = 0;
    enum kind k = K_MALLOC;
    void *p = NULL;
    uint64_t r = rnd(w, 100);

    if (r < 55)
        k = K_MALLOC;
    else if (r < 70)
        k = K_CALLOC;
    else if (r < 77)
        k = K_POSIX_MEMALIGN;
    else if (r < 83)
        k = K_ALIGNED_ALLOC;
    else if (r < 89)
        k = K_MEMALIGN;
    else if (r < 90)
        k = rnd(w, 2) ? K_VALLOC : K_PVALLOC;
    else if (r < 95)
        k = K_REALLOC_NULL;
    else
        k = K_REALLOCARRAY;

    switch (k) {
    case K_MALLOC:
        p = malloc(n);
        break;
    case K_CALLOC: {
        size_t m = 1 + rnd(w, 8);
        n = (n + m - 1) / m;
        p = calloc(m, n);
        n *= m;
        break;
    }
    case K_POSIX_MEMALIGN: {
        align = pick_align(w);
        int e = posix_memalign(&p, align, n);
        if (e)
            fail("posix_memalign(align %zu, %zu) returned %d", align, n, e);
        break;
    }
    case K_ALIGNED_ALLOC:
        align = pick_align(w);
        n = (n + align - 1) & ~(align - 1);          /* C11: a multiple */
        p = aligned_alloc(align, n);
        break;
    case K_MEMALIGN:
        align = pick_align(w);
        p = memalign(align, n);
        break;
    case K_VALLOC:
        align = page_size;
        p = valloc(n);
        break;
    case K_PVALLOC:
        align = page_size;
        p = pvalloc(n);
        n = (n + page_size - 1) & ~(page_size - 1);
        break;
    case K_REALLOC_NULL:
        p = realloc(NULL, n);
        break;
    case K_REALLOCARRAY: {
        size_t m = 1 + rnd(w, 4);
        n = (n + m - 1) / m;
        p = reallocarray(NULL, m, n);
        n *= m;
        break;
    }
    case K_NKINDS:
        break;
    }
    if (!p)
        fail("%s(%zu, align %zu) returned NULL", kind_name[k], n, align);
    if (align && ((uintptr_t)p & (align - 1)))
        fail("%s(%zu, align %zu) returned misaligned %p", kind_name[k], n, align, p);
    if ((uintptr_t)p & 15 && n >= 16)
        fail("%s(%zu) returned %p, not 16-byte aligned", kind_name[k], n, p);
    b->p = p;
    b->req = n;
    b->len = malloc_usable_size(p);
    b->owner = w->idx;
    check_usable(b, kind_name[k]);
    if (k == K_CALLOC) {
        for (size_t i = 0; i < n; i++)
            if (b->p[i])
                fail("calloc(%zu): byte %zu of %p is 0x%02x, not zero", n, i, p, b->p[i]);
    }
    fill_block(b);
    w->n_alloc[k]++;
}

static void free_block(struct worker *w, struct block *b, const char *what)
{
    check_block(b, what);
    free(b->p);
    b->p = NULL;
    w->n_freed++;
}

/* A realloc chain on *b: a few resizes, up or down, each checking that the
 * common prefix survived and repatterning the block at its new place. */
static void realloc_chain(struct worker *w, struct block *b)
{
    int steps = 1 + (int)rnd(w, 6);
    for (int i = 0; i < steps; i++) {
        size_t n;
        uint64_t r = rnd(w, 10);
        if (r < 4)
            n = b->req + 1 + rnd(w, b->req < 8192 ? 2 * b->req + 64 : 8192);
        else if (r < 8)
            n = 1 + rnd(w, b->req);
        else
            n = pick_size(w);
        check_block(b, "before realloc");
        struct block old = *b;
        void *p = realloc(b->p, n);
        if (!p)
            fail("realloc(%p, %zu) returned NULL", (void *)old.p, n);
        b->p = p;
        b->req = n;
        b->len = malloc_usable_size(p);
        check_usable(b, "realloc");
        check_prefix(b, &old, old.req < n ? old.req : n, "realloc prefix");
        fill_block(b);
        w->n_realloc++;
    }
}

static void send_block(struct worker *w, struct block *b)
{
    int to = (int)rnd(w, (uint64_t)nthreads);
    if (to == w->idx || atomic_load_explicit(&mailbox[to].count, memory_order_relaxed)
                            >= MAILBOX_LIMIT) {
        free_block(w, b, "free");
        return;
    }
    struct mail *m = malloc(sizeof *m);
    if (!m)
        fail("malloc(%zu) for a mailbox entry returned NULL", sizeof *m);
    m->b = *b;
    b->p = NULL;
    struct mail *head = atomic_load_explicit(&mailbox[to].head, memory_order_relaxed);
    do
        m->next = head;
    while (!atomic_compare_exchange_weak_explicit(&mailbox[to].head, &head, m,
                                                  memory_order_release,
                                                  memory_order_relaxed));
    atomic_fetch_add_explicit(&mailbox[to].count, 1, memory_order_relaxed);
    w->n_sent++;
}

/* Take everything queued to thread idx; adopt some blocks into free slots
 * of w (w may be NULL: free them all), free the rest. */
static void drain_mailbox(struct worker *w, int idx)
{
    struct mail *m = atomic_exchange_explicit(&mailbox[idx].head, NULL,
                                              memory_order_acquire);
    while (m) {
        struct mail *next = m->next;
        atomic_fetch_sub_explicit(&mailbox[idx].count, 1, memory_order_relaxed);
        check_block(&m->b, "received from another thread");
        if (w) {
            struct block *s = &w->slot[rnd(w, SLOTS)];
            w->n_received++;
            if (!s->p && rnd(w, 2)) {
                *s = m->b;
            } else {
                free(m->b.p);
                w->n_freed++;
            }
        } else {
            free(m->b.p);
        }
        free(m);
        m = next;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (long op = 0; op < w->ops; op++) {
        struct block *b = &w->slot[rnd(w, SLOTS)];
        uint64_t r = rnd(w, 100);
        if (!b->p) {
            alloc_block(w, b);
        } else if (r < 45) {
            free_block(w, b, "free");
            alloc_block(w, b);
        } else if (r < 60) {
            realloc_chain(w, b);
        } else if (r < 80) {
            send_block(w, b);
        } else {
            free_block(w, b, "free");
        }
        if ((op & 15) == 0)
            drain_mailbox(w, w->idx);
    }
    drain_mailbox(w, w->idx);
    return NULL;
}

/* ---- libc error contract, checked once in the main thread ---- */
static void check_errors(void)
{
    /* volatile: the sizes must reach the allocator, not the compiler's
     * object-size warnings or its constant folding. */
    static volatile size_t size_max = SIZE_MAX;
    const size_t huge = size_max, half = size_max / 2 + 1, eighth = size_max / 8;
    void *p;
    errno = 0;
    if ((p = malloc(huge)) || errno != ENOMEM)
        fail("malloc(SIZE_MAX) gave %p errno %d, want NULL ENOMEM", p, errno);
    errno = 0;
    if ((p = malloc(half)) || errno != ENOMEM)
        fail("malloc(SIZE_MAX/2+1) gave %p errno %d, want NULL ENOMEM", p, errno);
    errno = 0;
    if ((p = calloc(eighth, 16)) || errno != ENOMEM)
        fail("calloc overflow gave %p errno %d, want NULL ENOMEM", p, errno);
    errno = 0;
    if ((p = reallocarray(NULL, eighth, 16)) || errno != ENOMEM)
        fail("reallocarray overflow gave %p errno %d, want NULL ENOMEM", p, errno);
    void *q = malloc(100);
    if (!q)
        fail("malloc(100) returned NULL");
    memset(q, 0x5a, 100);
    errno = 0;
    if ((p = realloc(q, huge)) || errno != ENOMEM)
        fail("realloc(p, SIZE_MAX) gave %p errno %d, want NULL ENOMEM", p, errno);
    for (int i = 0; i < 100; i++)
        if (((unsigned char *)q)[i] != 0x5a)
            fail("failed realloc(p, SIZE_MAX) changed byte %d of the old block", i);
    free(q);
    int e = posix_memalign(&p, 24, 10);
    if (e != EINVAL)
        fail("posix_memalign(align 24) returned %d, want EINVAL", e);
    e = posix_memalign(&p, 4, 10);
    if (e != EINVAL)
        fail("posix_memalign(align 4) returned %d, want EINVAL", e);
    e = posix_memalign(&p, 64, huge - 100);
    if (e != ENOMEM)
        fail("posix_memalign(64, SIZE_MAX-100) returned %d, want ENOMEM", e);
    p = malloc(0);
    if (!p)
        fail("malloc(0) returned NULL");
    free(p);
    free(NULL);
    if (malloc_usable_size(NULL) != 0)
        fail("malloc_usable_size(NULL) != 0");
    malloc_trim(0);
    mallopt(M_ARENA_MAX, 4);      /* accepted; the result is the allocator's */
}

/* ---- free nearly everything, go idle, check what is left ----
 * A releasing allocator decommits free memory when it goes idle (after a
 * delay) or on malloc_trim; the 1% of blocks kept live sit in partly used
 * slabs, so decommitting a page under a live block shows up here, and so
 * does a calloc that trusts decommitted (MADV_FREE) pages to read as zero. */
#define IDLE_SMALL 20000          /* blocks of 1..2048 bytes */
#define IDLE_LARGE 200            /* blocks of 32 KiB..256 KiB */
#define IDLE_MS 300               /* above hakmem's 200 ms LEAN delay */

static void alloc_sized(struct worker *w, struct block *b, size_t n, int zero)
{
    void *p = zero ? calloc(1, n) : malloc(n);
    if (!p)
        fail("%s(%zu) returned NULL", zero ? "calloc" : "malloc", n);
    b->p = p;
    b->req = n;
    b->len = malloc_usable_size(p);
    b->owner = w->idx;
    check_usable(b, zero ? "calloc" : "malloc");
    if (zero)
        for (size_t i = 0; i < n; i++)
            if (b->p[i])
                fail("calloc(%zu) after idle: byte %zu of %p is 0x%02x, not zero",
                     n, i, p, b->p[i]);
    fill_block(b);
}

static size_t idle_size(struct worker *w, int i)
{
    if (i < IDLE_LARGE)
        return ((size_t)32 << 10) + rnd(w, (size_t)224 << 10);
    return 1 + rnd(w, 2048);
}

static void idle_section(int round)
{
    const int n = IDLE_SMALL + IDLE_LARGE;
    struct worker *w = calloc(1, sizeof *w);
    struct block *b = calloc((size_t)n, sizeof *b);
    if (!w || !b)
        fail("calloc for the idle section returned NULL");
    w->idx = nthreads + 2;
    w->rng = seed ^ (0x1D1E0000u + (uint64_t)round);
    for (int i = 0; i < n; i++)
        alloc_sized(w, &b[i], idle_size(w, i), 0);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (rnd(w, 100) == 0)
            kept++;
        else
            free_block(w, &b[i], "free before idle");
    }
    if (round == 0) {
        usleep(IDLE_MS * 1000);
        /* a little traffic, for allocators that release on their next call */
        for (int i = 0; i < 64; i++)
            free(malloc(16 + (size_t)i * 8));
        usleep(IDLE_MS * 1000);
    } else {
        malloc_trim(0);
    }
    for (int i = 0; i < n; i++)
        if (b[i].p)
            check_block(&b[i], round == 0 ? "live block after idle"
                                          : "live block after malloc_trim");
    /* the freed memory again, now zeroed by calloc or patterned anew */
    struct block *c = calloc((size_t)n, sizeof *c);
    if (!c)
        fail("calloc for the idle section returned NULL");
    for (int i = 0; i < n; i++)
        alloc_sized(w, &c[i], idle_size(w, i), (int)(i & 1));
    for (int i = 0; i < n; i++) {
        free_block(w, &c[i], "free after idle");
        if (b[i].p)
            free_block(w, &b[i], "free after idle");
    }
    printf("stress: idle round %d (%s): %d of %d blocks kept live, all intact\n",
           round, round == 0 ? "sleep" : "malloc_trim", kept, n);
    free(c);
    free(b);
    free(w);
}

/* ---- fork while other threads allocate ---- */
static void *churn_main(void *arg)
{
    struct worker *w = arg;
    struct block b[64] = {{0}};
    while (!atomic_load_explicit(&stop_churn, memory_order_relaxed)) {
        struct block *s = &b[rnd(w, 64)];
        if (s->p)
            free_block(w, s, "free (churn during fork)");
        else
            alloc_block(w, s);
    }
    for (int i = 0; i < 64; i++)
        if (b[i].p)
            free_block(w, &b[i], "free (churn during fork)");
    return NULL;
}

static void *child_thread_main(void *arg)
{
    struct worker *w = arg;
    struct block b[32] = {{0}};
    for (int i = 0; i < 2000; i++) {
        struct block *s = &b[rnd(w, 32)];
        if (s->p)
            free_block(w, s, "free (thread in child)");
        else
            alloc_block(w, s);
    }
    for (int i = 0; i < 32; i++)
        if (b[i].p)
            free_block(w, &b[i], "free (thread in child)");
    return NULL;
}

/* In the child: free what the parent left live, allocate and free, run a
 * thread, exit 0. */
static void child_main(struct worker *w, struct block *inherited, int ninherited)
{
    for (int i = 0; i < ninherited; i++)
        free_block(w, &inherited[i], "free in child of a block from the parent");
    struct block b[64] = {{0}};
    for (int i = 0; i < 3000; i++) {
        struct block *s = &b[rnd(w, 64)];
        if (s->p && rnd(w, 3) == 0)
            realloc_chain(w, s);
        else if (s->p)
            free_block(w, s, "free in child");
        else
            alloc_block(w, s);
    }
    struct worker tw = *w;
    tw.rng ^= 0x1234;
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread_main, &tw))
        fail("pthread_create in the fork child failed");
    pthread_join(t, NULL);
    for (int i = 0; i < 64; i++)
        if (b[i].p)
            free_block(w, &b[i], "free in child");
    exit(0);
}

static void wait_child(pid_t pid, int round)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                return;
            if (WIFEXITED(st))
                fail("fork round %d: child exited with status %d", round, WEXITSTATUS(st));
            fail("fork round %d: child killed by signal %d (%s)", round, WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
        }
        if (r < 0)
            fail("fork round %d: waitpid: %s", round, strerror(errno));
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > CHILD_WAIT_S) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail("fork round %d: child still running after %d s (deadlock after fork?)",
                 round, CHILD_WAIT_S);
        }
        usleep(2000);
    }
}

static void fork_section(void)
{
    struct worker *cw = calloc(1, sizeof *cw);
    struct worker *mw = calloc(1, sizeof *mw);
    if (!cw || !mw)
        fail("calloc for fork section workers returned NULL");
    cw->idx = nthreads;
    cw->rng = seed ^ 0xC0FFEE;
    mw->idx = nthreads + 1;
    mw->rng = seed ^ 0xF0F0F0;
    pthread_t churn;
    atomic_store(&stop_churn, 0);
    if (pthread_create(&churn, NULL, churn_main, cw))
        fail("pthread_create (churn) failed");
    for (int round = 0; round < FORK_ROUNDS; round++) {
        struct block live[16];
        for (int i = 0; i < 16; i++)
            alloc_block(mw, &live[i]);
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            fail("fork: %s", strerror(errno));
        if (pid == 0) {
            mw->rng ^= (uint64_t)round << 32;
            child_main(mw, live, 16);
        }
        /* The parent's copies must be untouched by whatever the child did. */
        for (int i = 0; i < 16; i++)
            free_block(mw, &live[i], "free in parent after fork");
        wait_child(pid, round);
    }
    atomic_store(&stop_churn, 1);
    pthread_join(churn, NULL);
    free(cw);
    free(mw);
}

static void report_malloc_origin(void)
{
    fflush(stdout);
    if (malloc_origin_check("stress", getenv("STRESS_EXPECT_MALLOC")) != 0)
        fail("malloc is not the one STRESS_EXPECT_MALLOC names");
}

static long parse_arg(const char *s, long lo, long hi, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 0);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr, "stress: bad %s \"%s\" (want %ld..%ld)\n"
                "usage: stress [threads [ops-per-thread [seed]]]\n", what, s, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        nthreads = (int)parse_arg(argv[1], 1, MAX_THREADS - 2, "thread count");
    if (argc > 2)
        ops_per_thread = parse_arg(argv[2], 1, 1000000000L, "ops per thread");
    if (argc > 3)
        seed = (uint64_t)parse_arg(argv[3], 0, 0x7fffffffL, "seed");
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("stress: threads %d, ops per thread %ld, seed %" PRIu64 "\n",
           nthreads, ops_per_thread, seed);
    report_malloc_origin();
    check_errors();

    workers = calloc((size_t)nthreads, sizeof *workers);
    if (!workers)
        fail("calloc(%d workers) returned NULL", nthreads);
    for (int i = 0; i < nthreads; i++) {
        uint64_t s = seed * 1000003u + (uint64_t)i;
        workers[i].idx = i;
        workers[i].rng = splitmix(&s);
        workers[i].ops = ops_per_thread;
    }
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]))
            fail("pthread_create(worker %d) failed", i);
    for (int i = 0; i < nthreads; i++)
        pthread_join(workers[i].tid, NULL);

    /* What is still queued is freed here, by a thread that allocated none
     * of it; what is still in slots is freed by main too. */
    uint64_t tot[K_NKINDS] = {0}, realloc_n = 0, sent = 0, received = 0, freed = 0;
    for (int i = 0; i < nthreads; i++) {
        struct worker *w = &workers[i];
        drain_mailbox(NULL, i);
        for (int s = 0; s < SLOTS; s++)
            if (w->slot[s].p)
                free_block(w, &w->slot[s], "free by main thread");
        for (int k = 0; k < K_NKINDS; k++)
            tot[k] += w->n_alloc[k];
        realloc_n += w->n_realloc;
        sent += w->n_sent;
        received += w->n_received;
        freed += w->n_freed;
    }
    printf("stress: threads done:");
    for (int k = 0; k < K_NKINDS; k++)
        printf(" %s %" PRIu64 ",", kind_name[k], tot[k]);
    printf(" realloc %" PRIu64 ", sent %" PRIu64 ", received %" PRIu64
           ", freed %" PRIu64 "\n", realloc_n, sent, received, freed);
    free(workers);

    idle_section(0);
    idle_section(1);
    /* ThreadSanitizer cannot follow a thread started in the child of a
     * multithreaded fork (the TSan build sets STRESS_SKIP_FORK=1). */
    if (getenv("STRESS_SKIP_FORK")) {
        printf("stress: fork section skipped (STRESS_SKIP_FORK)\n");
    } else {
        fork_section();
        printf("stress: fork section done (%d rounds)\n", FORK_ROUNDS);
    }
    printf("stress: OK\n");
    return 0;
}
