/* tcache.c: thread caches, the slow paths behind alloc.c.
 *
 * Owns each thread's struct hk_tcache: its set-up at the thread's first
 * slow path (its bins' storage, caps from the policy; a pthread key so
 * that the cache goes back when the thread exits, set at the next safe
 * point), refills and flushes in batches against the central lists, and
 * the handling of frees the fast path could not take. A thread whose
 * cache is not ready (being set up, or exited) is served block by block
 * from the central lists.
 *
 * Every slow path runs under the thread's re-entrancy guard (guard.c) and
 * closes the bin it works on (HK_BIN_CLOSED) until it writes the bin's new
 * count, so that an allocation nested in it (libc called from here, a
 * signal handler) neither sees nor changes a half-updated bin. Calls made
 * here that can allocate: none (pthread_setspecific waits for the safe
 * point; the central lists, the purge note and membarrier allocate
 * nothing).
 *
 * Also the medium bin: one more bin per thread for blocks of every medium
 * class (medium.c calls it under the guard; never on the fast path), with
 * the same handshake, so that flushes, epochs and the thief treat it like
 * the others.
 *
 * Also each thread's stash (hk_types.h): where a full bin's older half
 * goes first and an empty bin refills from first, so that a working set
 * bigger than a bin churns within its thread without the class lock.
 *
 * Also the thief: hk_tcache_steal_all takes the blocks of every other
 * thread's cache, asleep or not, without their help (the handshake is
 * described above struct hk_bin).
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "hk_internal.h"

/* The bins of every thread without a ready cache (new, exited, or its
 * storage refused): n and cap 0, so that both fast paths go to the slow
 * path. Shared: the fast paths store busy here (nobody reads it) and
 * nothing else is written. */
static _Alignas(HK_CACHELINE) unsigned char hk_tc_none[HK_TC_BYTES];

/* Small (only the bins' address and the slow paths' state): ld.so copies
 * it for every new thread. */
__thread struct hk_tcache hk_tls __attribute__((tls_model("initial-exec"))) = {
    .bins = hk_tc_none,
};

/* Bins storage: a thread's cache takes one piece at set-up and gives it
 * back at exit, to the next thread that starts, already faulted in (a
 * thread pool or a program that starts threads over and over touches no
 * new page for its caches). Mapped TC_CHUNK pieces at a time, never
 * unmapped: as many pieces as threads ever had caches at once. The link
 * of a free piece follows its bins. hk_tc_lock. */
#define TC_PIECE (((size_t)HK_TC_BYTES + sizeof(void *) + HK_CACHELINE - 1) & ~(size_t)(HK_CACHELINE - 1))
#define TC_CHUNK 16
static unsigned char *hk_tc_free;       /* free pieces */

static unsigned char **piece_link(unsigned char *bins)
{
    return (unsigned char **)(bins + HK_TC_BYTES);
}

static pthread_key_t hk_tkey;
static bool hk_tkey_ok;

/* Every ready cache, so that a mode switch can reach them. */
static pthread_mutex_t hk_tc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hk_tcache *hk_tc_all;

/* hk_tc_lock held. A piece of bins storage whose bins are empty (a fresh
 * mapping, or flushed by the thread that gave it back; its caps are set
 * anew), or NULL when the OS refuses a new chunk. */
static unsigned char *pieces_take(void)
{
    if (!hk_tc_free) {
        unsigned char *c = hk_os_map(TC_PIECE * TC_CHUNK);
        if (!c)
            return NULL;
        for (unsigned i = TC_CHUNK; i-- > 0;) {
            *piece_link(c + i * TC_PIECE) = hk_tc_free;
            hk_tc_free = c + i * TC_PIECE;
        }
    }
    unsigned char *bins = hk_tc_free;
    hk_tc_free = *piece_link(bins);
    return bins;
}

/* hk_tc_lock held. bins: a piece no thread uses any more, every bin empty. */
static void pieces_put(unsigned char *bins)
{
    *piece_link(bins) = hk_tc_free;
    hk_tc_free = bins;
}

/* Close b for a slow-path operation; returns the blocks it holds. A
 * thief at work on it (HK_BIN_STOLEN) is waited for: it holds hk_tc_lock
 * until it is done and leaves n at 0 or at what it found; with the lock
 * held no other thief can start (they come one after another), so n is
 * read and the bin closed under it. */
static uint32_t bin_close(struct hk_bin *b)
{
    hk_bin_busy(b);
    uint32_t n = hk_bin_n(b);
    if (n == HK_BIN_STOLEN) {
        pthread_mutex_lock(&hk_tc_lock);
        n = hk_bin_n(b);
        __atomic_store_n(&b->n, HK_BIN_CLOSED, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&hk_tc_lock);
    } else {
        __atomic_store_n(&b->n, HK_BIN_CLOSED, __ATOMIC_RELAXED);
    }
    atomic_signal_fence(memory_order_seq_cst);
    return n;
}

/* Open b again with n blocks (its slots written before); clears busy. */
static void bin_open(struct hk_bin *b, uint32_t n)
{
    hk_bin_commit(b, n);
}

/* ---- the medium bin: a slot is a medium block (page aligned) with its
 * class in the low bits ---- */
#define MSLOT_CLS_MASK ((uintptr_t)HK_PAGE - 1)
_Static_assert(HK_NALLCLASS <= HK_PAGE, "a medium class fits below the page offset");

static void *mslot_ptr(const void *slot)
{
    return (void *)((uintptr_t)slot & ~MSLOT_CLS_MASK);
}

static unsigned mslot_cls(const void *slot)
{
    return (unsigned)((uintptr_t)slot & MSLOT_CLS_MASK);
}

/* Give the blocks of n medium-bin slots back to their classes. */
static void mslots_put(void *const *slot, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        void *p = mslot_ptr(slot[i]);
        hk_central_put(mslot_cls(slot[i]), &p, 1, "free");
    }
}

/* The medium bin's counts start again when it is found empty (all
 * taken, or a thief took them). */
static void mbin_empty(struct hk_tcache *tc)
{
    if (tc->mbytes) {
        tc->mbytes = 0;
        memset(tc->mcount, 0, sizeof tc->mcount);
    }
}

/* ---- the stash (hk_types.h): blocks of class c read and written only
 * while bin c is closed, by its owner or by a thief ---- */

static struct hk_stash *stash_of(struct hk_tcache *tc)
{
    return __atomic_load_n(&tc->stash, __ATOMIC_RELAXED);
}

static uint32_t stash_n(struct hk_tcache *tc, unsigned cls)
{
    struct hk_stash *st = stash_of(tc);
    return st ? st->n[cls] : 0;
}

/* One drained stash of an exited thread kept mapped for the next
 * thread (programs that start a thread per task: larson's 200 threads
 * mapped, faulted in and unmapped one each). */
static struct hk_stash *_Atomic stash_spare;

static struct hk_stash *stash_map(void)
{
    struct hk_stash *st = atomic_exchange_explicit(&stash_spare, NULL, memory_order_acquire);
    return st ? st : hk_os_map(sizeof *st);
}

/* Keep the n blocks of class cls at ptrs in tc's stash; false when it
 * has no room for them (the mode keeps none, its bytes or slots are
 * full, it could not be mapped): they go to the class then. */
static bool stash_put(struct hk_tcache *tc, unsigned cls, void *const *ptrs, uint32_t n)
{
    struct hk_stash *st = tc->stash;
    uint32_t bytes = n * hk_class_size[cls];
    if (!st) {
        if (!tc->stash_limit || tc->stash_nomap)
            return false;
        st = stash_map();
        if (!st) {
            tc->stash_nomap = 1;        /* asked again at the next epoch */
            return false;
        }
        __atomic_store_n(&tc->stash, st, __ATOMIC_RELAXED);
    }
    if (st->n[cls] + n > HK_STASH_SLOTS ||
        __atomic_load_n(&st->bytes, __ATOMIC_RELAXED) + bytes > tc->stash_limit)
        return false;
    memcpy(&st->slot[cls][st->n[cls]], ptrs, n * sizeof(void *));
    st->n[cls] += n;
    __atomic_fetch_add(&st->bytes, bytes, __ATOMIC_RELAXED);
    return true;
}

/* Up to want blocks of class cls from tc's stash into out, the last
 * stashed first; how many. */
static uint32_t stash_take(struct hk_tcache *tc, unsigned cls, void **out, uint32_t want)
{
    struct hk_stash *st = tc->stash;
    uint32_t n = st ? st->n[cls] : 0;
    uint32_t k = n < want ? n : want;
    if (k == 0)
        return 0;
    st->n[cls] = n - k;
    memcpy(out, &st->slot[cls][n - k], k * sizeof(void *));
    __atomic_fetch_sub(&st->bytes, k * hk_class_size[cls], __ATOMIC_RELAXED);
    return k;
}

/* Give the stash's blocks of class cls back to the class: to its slabs
 * (in one piece, a depot batch only when it is one), where the next
 * refill of any thread finds them, lowest addresses first. (Cut into
 * depot batches, the stashes of exiting threads piled up in the depots
 * of larson's classes, under the batches refills take: 2.6x the RSS.)
 * How many. */
static uint32_t stash_drain(struct hk_tcache *tc, unsigned cls)
{
    struct hk_stash *st = stash_of(tc);
    uint32_t n = st ? st->n[cls] : 0;
    if (n) {
        hk_central_put(cls, st->slot[cls], n, "free");
        st->n[cls] = 0;
        __atomic_fetch_sub(&st->bytes, n * hk_class_size[cls], __ATOMIC_RELAXED);
    }
    return n;
}

/* Let go of tc's stash, drained before (hk_tc_lock held, or tc off the
 * list of caches: no thief or double-free check reads it meanwhile):
 * kept as the spare while the mode keeps stashes, else unmapped with the
 * spare. */
static void stash_unmap(struct hk_tcache *tc)
{
    struct hk_stash *st = tc->stash;
    __atomic_store_n(&tc->stash, NULL, __ATOMIC_RELAXED);
    tc->stash_nomap = 0;
    if (hk_limits()->stash_bytes) {
        struct hk_stash *none = NULL;
        if (st && atomic_compare_exchange_strong_explicit(&stash_spare, &none, st,
                                                          memory_order_release, memory_order_relaxed))
            return;
    } else {
        struct hk_stash *spare = atomic_exchange_explicit(&stash_spare, NULL, memory_order_acquire);
        if (spare)
            hk_os_unmap(spare, sizeof *spare);
    }
    if (st)
        hk_os_unmap(st, sizeof *st);
}

/* Give back every block of tc's bins and stash. */
static void flush_all(struct hk_tcache *tc)
{
    for (unsigned c = 0; c < HK_NCLASS; c++) {
        struct hk_bin *b = hk_tc_bin(tc, c);
        if (hk_bin_n(b) == 0 && stash_n(tc, c) == 0)
            continue;                   /* nothing to give (a thief puts a 0 back as 0) */
        uint32_t n = bin_close(b);
        if (n)
            hk_central_put(c, b->slot, n, "free");
        stash_drain(tc, c);
        bin_open(b, 0);
    }
    uint32_t n = bin_close(hk_tc_mbin(tc));
    mslots_put(hk_tc_mbin(tc)->slot, n);
    tc->mbytes = 1;                     /* whatever it was: count again from 0 */
    mbin_empty(tc);
    bin_open(hk_tc_mbin(tc), 0);
}

static void tcache_exit(void *arg)
{
    struct hk_tcache *tc = arg;
    tc->guard++;
    pthread_mutex_lock(&hk_tc_lock);
    if (tc->prev)
        tc->prev->next = tc->next;
    else if (hk_tc_all == tc)
        hk_tc_all = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    tc->next = tc->prev = NULL;
    for (unsigned c = 0; c < HK_NCLASS; c++)
        hk_bin_set_cap(hk_tc_bin(tc, c), 0);
    hk_bin_set_cap(hk_tc_mbin(tc), 0);
    tc->state = HK_T_DEAD;
    tc->stash_limit = 0;
    pthread_mutex_unlock(&hk_tc_lock);
    flush_all(tc);
    stash_unmap(tc);
    /* No other thread reaches the bins now (off the list); the fast
     * paths of this one (later destructors) go to hk_tc_none before the
     * piece goes to the next thread. */
    unsigned char *bins = tc->bins;
    __atomic_store_n(&tc->bins, hk_tc_none, __ATOMIC_RELAXED);
    atomic_signal_fence(memory_order_seq_cst);
    pthread_mutex_lock(&hk_tc_lock);
    pieces_put(bins);
    pthread_mutex_unlock(&hk_tc_lock);
    hk_guard_leave(tc);
}

/* Make every thread's next free take the slow path, where it sees the
 * new epoch: flushes its cache and takes the new caps. (Its next mallocs
 * still drain what its cache holds.) */
void hk_tcache_force_slow_all(void)
{
    pthread_mutex_lock(&hk_tc_lock);
    for (struct hk_tcache *tc = hk_tc_all; tc; tc = tc->next)
        for (unsigned c = 0; c < HK_NCLASS; c++)
            hk_bin_set_cap(hk_tc_bin(tc, c), 0);
    pthread_mutex_unlock(&hk_tc_lock);
}

/* ---- the thief ---- */

/* An asymmetric memory barrier: every thread of the process passes a full
 * barrier before it returns. 0 when none is available (then nothing is
 * stolen). */
static int hk_membarrier = -1;          /* hk_tc_lock; -1: not asked yet */

static int membarrier_cmd(void)
{
    int cmd = hk_membarrier;
    if (cmd >= 0)
        return cmd;
    cmd = 0;
    long have = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (have > 0 && (have & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
        cmd = MEMBARRIER_CMD_PRIVATE_EXPEDITED;
    else if (have > 0 && (have & MEMBARRIER_CMD_GLOBAL))
        cmd = MEMBARRIER_CMD_GLOBAL;    /* slower (an RCU grace period), same guarantee */
    hk_membarrier = cmd;
    return cmd;
}

/* Take the blocks of tc's bins (another thread's) that its owner is not
 * using (hk_tc_lock held; phase 1 exchanged every n for HK_BIN_STOLEN into
 * tc->steal_n, and every thread has passed a barrier since, unless !take:
 * then only put every n back). Returns the blocks taken. */
static size_t steal_bins(struct hk_tcache *tc, bool take)
{
    size_t taken = 0;
    for (unsigned c = 0; c <= HK_NCLASS; c++) {
        bool medium = c == HK_NCLASS;
        struct hk_bin *b = medium ? hk_tc_mbin(tc) : hk_tc_bin(tc, c);
        uint32_t k = medium ? tc->steal_mn : tc->steal_n[c];
        bool idle = take && k <= (medium ? HK_MBIN_SLOTS : HK_BIN_SLOTS(c)) &&
                    __atomic_load_n(&b->busy, __ATOMIC_RELAXED) == 0 && hk_bin_n(b) == HK_BIN_STOLEN;
        if (idle && (k != 0 || (!medium && stash_n(tc, c)))) {
            /* The owner is outside every operation on b (and on its
             * stash's blocks of c), and any it starts sees HK_BIN_STOLEN
             * and waits for hk_tc_lock (and counts its medium bin's bytes
             * again from n = 0). */
            if (medium)
                mslots_put(b->slot, k);
            else if (k)
                hk_central_put(c, b->slot, k, "free");
            if (!medium)
                taken += stash_drain(tc, c);
            __atomic_store_n(&b->n, 0, __ATOMIC_RELAXED);
            taken += k;
        } else {
            /* Busy, or its owner wrote n meanwhile: leave it as it was. */
            uint32_t want = HK_BIN_STOLEN;
            __atomic_compare_exchange_n(&b->n, &want, k, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED);
        }
    }
    return taken;
}

/* Take back the cached blocks of every other thread, those asleep
 * included (a thread pool's idle workers never reach their next free).
 * Their owners pay nothing on their fast paths but the busy store. */
size_t hk_tcache_steal_all(void)
{
    struct hk_tcache *self = &hk_tls;
    size_t taken = 0;
    pthread_mutex_lock(&hk_tc_lock);
    int cmd = membarrier_cmd();
    bool any = false;
    for (struct hk_tcache *tc = hk_tc_all; cmd && tc; tc = tc->next) {
        if (tc == self)
            continue;
        for (unsigned c = 0; c < HK_NCLASS; c++)
            tc->steal_n[c] = __atomic_exchange_n(&hk_tc_bin(tc, c)->n, HK_BIN_STOLEN, __ATOMIC_SEQ_CST);
        tc->steal_mn = __atomic_exchange_n(&hk_tc_mbin(tc)->n, HK_BIN_STOLEN, __ATOMIC_SEQ_CST);
        any = true;
    }
    if (any) {
        bool fenced = syscall(SYS_membarrier, cmd, 0, 0) == 0;
        if (!fenced)
            hk_log("membarrier failed (errno %d): thread caches are not taken back", errno);
        for (struct hk_tcache *tc = hk_tc_all; tc; tc = tc->next)
            if (tc != self)
                taken += steal_bins(tc, fenced);
    }
    pthread_mutex_unlock(&hk_tc_lock);
    HK_CTR_ADD(tcache_stolen, taken);
    return taken;
}

void hk_tcache_lock_all(void)
{
    pthread_mutex_lock(&hk_tc_lock);
}

void hk_tcache_unlock_all(void)
{
    pthread_mutex_unlock(&hk_tc_lock);
}

/* In the child of fork only the forking thread is left. */
void hk_tcache_after_fork_child(void)
{
    pthread_mutex_init(&hk_tc_lock, NULL);
    hk_membarrier = -1;                 /* register the child's address space */
    hk_tc_all = NULL;
    struct hk_tcache *tc = &hk_tls;
    if (tc->state == HK_T_READY) {
        tc->next = tc->prev = NULL;
        hk_tc_all = tc;
    }
}

void hk_tcache_global_init(void)
{
    hk_tkey_ok = pthread_key_create(&hk_tkey, tcache_exit) == 0;
    if (!hk_tkey_ok)
        hk_log("pthread_key_create failed: thread caches will not be returned at thread exit");
}

/* At a safe point: have the cache given back when the thread exits.
 * pthread_setspecific allocates for keys past the first 32. */
void hk_tcache_register(struct hk_tcache *tc)
{
    tc->needs_key = 0;
    if (hk_tkey_ok)
        pthread_setspecific(hk_tkey, tc);
}

/* hk_tc_lock held. The caps of every class, computed once per mode's
 * limits (a thread's start then copies them: the policy's divisions cost
 * 520 instructions per thread). */
static void tcache_set_caps(struct hk_tcache *tc)
{
    static const struct hk_limits *caps_lim;
    static uint32_t caps[HK_NCLASS];
    tc->epoch = atomic_load_explicit(&hk_epoch, memory_order_acquire);
    const struct hk_limits *lim = hk_limits();
    if (lim != caps_lim) {
        for (unsigned c = 0; c < HK_NCLASS; c++)
            caps[c] = hk_policy_tc_cap(lim, c);
        caps_lim = lim;
    }
    for (unsigned c = 0; c < HK_NCLASS; c++)
        hk_bin_set_cap(hk_tc_bin(tc, c), caps[c]);
    hk_bin_set_cap(hk_tc_mbin(tc), lim->medium_cache_bytes ? HK_MBIN_SLOTS : 0);
    tc->stash_limit = lim->stash_bytes;
    if (!tc->stash_limit)               /* a mode that keeps none (drained before) */
        stash_unmap(tc);
    tc->stash_nomap = 0;
}

static void tcache_setup(struct hk_tcache *tc)
{
    tc->state = HK_T_INITING;
    pthread_mutex_lock(&hk_tc_lock);
    unsigned char *bins = pieces_take();
    if (!bins) {                        /* served from the central lists */
        tc->state = HK_T_DEAD;
        pthread_mutex_unlock(&hk_tc_lock);
        hk_log("no memory for a thread cache: this thread allocates without one");
        return;
    }
    tc->needs_key = 1;
    tc->bins = bins;
    atomic_signal_fence(memory_order_seq_cst);
    tcache_set_caps(tc);
    tc->prev = NULL;
    tc->next = hk_tc_all;
    if (hk_tc_all)
        hk_tc_all->prev = tc;
    hk_tc_all = tc;
    tc->state = HK_T_READY;
    pthread_mutex_unlock(&hk_tc_lock);
}

/* The mode changed since this cache took its caps: give everything back
 * and take the new caps. */
static void tcache_new_epoch(struct hk_tcache *tc)
{
    flush_all(tc);
    pthread_mutex_lock(&hk_tc_lock);
    tcache_set_caps(tc);
    pthread_mutex_unlock(&hk_tc_lock);
}

/* The calling thread gives its cache back (a release now, a level). */
void hk_tcache_flush_mine(void)
{
    struct hk_tcache *tc = &hk_tls;
    if (tc->state == HK_T_READY)
        flush_all(tc);
}

/* The thread's cache, ready for use, or NULL when it cannot be used. */
static struct hk_tcache *tcache_get(struct hk_tcache *tc)
{
    if (HK_UNLIKELY(tc->state != HK_T_READY)) {
        if (tc->state != HK_T_NEW)
            return NULL;
        tcache_setup(tc);
        if (tc->state != HK_T_READY)
            return NULL;
    }
    if (HK_UNLIKELY(tc->epoch != atomic_load_explicit(&hk_epoch, memory_order_acquire)))
        tcache_new_epoch(tc);
    return tc;
}

static void *tcache_malloc(struct hk_tcache *tc, unsigned cls)
{
    void *p;
    if (!tcache_get(tc)) {
        if (hk_central_take(cls, &p, 1) == 1) {
            ((uint64_t *)p)[1] = 0;
            return p;
        }
        errno = ENOMEM;
        return NULL;
    }
    struct hk_bin *b = hk_tc_bin(tc, cls);
    uint32_t n = bin_close(b);
    if (n) {                            /* filled meanwhile (cannot be closed here) */
        p = b->slot[n - 1];
        bin_open(b, n - 1);
        ((uint64_t *)p)[1] = 0;
        return p;
    }
    uint32_t cap = hk_bin_cap(b);
    uint32_t want = cap / 2 ? cap / 2 : 1;
    size_t got = stash_take(tc, cls, b->slot, want);
    if (got == 0)
        got = hk_central_take(cls, b->slot, want);
    if (got == 0) {
        bin_open(b, 0);
        errno = ENOMEM;
        return NULL;
    }
    /* Hand out the lowest address first: slot[n-1] goes next. */
    for (size_t i = 0, j = got - 1; i < j; i++, j--) {
        void *t = b->slot[i];
        b->slot[i] = b->slot[j];
        b->slot[j] = t;
    }
    p = b->slot[got - 1];
    bin_open(b, (uint32_t)got - 1);
    ((uint64_t *)p)[1] = 0;             /* the free key stays behind */
    return p;
}

/* b: the bin whose fast path failed, in the thread's bins or in
 * hk_tc_none (then a signal handler's malloc may have set the cache up
 * since the fast path read tc->bins). */
void *hk_malloc_slow(struct hk_bin *b)
{
    hk_ensure_init();
    struct hk_tcache *tc = &hk_tls;
    size_t none_off = (size_t)((unsigned char *)b - hk_tc_none);
    unsigned cls = hk_bin_off_cls(none_off < HK_TC_BYTES ? none_off
                                  : (size_t)((unsigned char *)b - tc->bins));
    if (tc->guard) {                    /* nested in the shim: see guard.c */
        unsigned size = hk_class_size[cls];
        return hk_guard_alloc(size, size & -size);
    }
    tc->guard = 1;
    void *p = tcache_malloc(tc, cls);
    hk_listener_poll();
    hk_guard_leave(tc);
    return p;
}

/* p, a block of class cls, carries the free key: it is free already (a
 * double free), or its user data happen to hold the key. Look where free
 * blocks are -- every thread's bins and stash (a racy read of other
 * threads', enough to know), the central lists -- and abort if it is
 * there. */
static void check_double_free(void *p, unsigned cls)
{
    bool found = false, medium = cls >= HK_NCLASS;
    pthread_mutex_lock(&hk_tc_lock);    /* no thief meanwhile; the list holds */
    for (struct hk_tcache *t = hk_tc_all; t && !found; t = t->next) {
        const struct hk_bin *b = medium ? hk_tc_mbin(t) : hk_tc_bin(t, cls);
        uint32_t n = hk_bin_n(b);
        uint32_t slots = medium ? HK_MBIN_SLOTS : HK_BIN_SLOTS(cls);
        for (uint32_t i = 0; n <= slots && i < n && !found; i++) {
            void *q = __atomic_load_n(&b->slot[i], __ATOMIC_RELAXED);
            found = (medium ? mslot_ptr(q) : q) == p;
        }
        struct hk_stash *st = medium ? NULL : stash_of(t);
        uint32_t sn = st ? __atomic_load_n(&st->n[cls], __ATOMIC_RELAXED) : 0;
        for (uint32_t i = 0; sn <= HK_STASH_SLOTS && i < sn && !found; i++)
            found = __atomic_load_n(&st->slot[cls][i], __ATOMIC_RELAXED) == p;
    }
    pthread_mutex_unlock(&hk_tc_lock);
    if (found)
        hk_fatal("free(): double free detected in tcache %p", p);
    if (hk_central_has(cls, p))
        hk_fatal("free(): double free detected %p", p);
}

static void tcache_free(struct hk_tcache *tc, void *p, unsigned cls)
{
    uint64_t *w = p;
    if (w[1] == hk_free_key)
        check_double_free(p, cls);
    w[1] = hk_free_key;                 /* free from now on, wherever it goes */
    tc = tcache_get(tc);
    uint32_t cap = tc ? hk_bin_cap(hk_tc_bin(tc, cls)) : 0;
    if (cap == 0) {
        hk_central_put(cls, &p, 1, "free");
        if (tc)                         /* done with the bin: the fast path set busy */
            __atomic_store_n(&hk_tc_bin(tc, cls)->busy, 0, __ATOMIC_RELAXED);
        return;
    }
    struct hk_bin *b = hk_tc_bin(tc, cls);
    uint32_t n = bin_close(b);
    if (n >= cap) {
        /* Flush the older half: the newer blocks are the cache-warm ones. */
        uint32_t half = n / 2 ? n / 2 : 1;
        if (!stash_put(tc, cls, b->slot, half))
            hk_central_put(cls, b->slot, half, "free");
        memmove(b->slot, b->slot + half, (n - half) * sizeof(void *));
        n -= half;
    }
    b->slot[n] = p;
    bin_open(b, n + 1);
}

/* A block of medium class cls from the calling thread's medium bin, or
 * NULL (none of that class, or no cache). Guarded. */
void *hk_tcache_medium_take(unsigned cls)
{
    struct hk_tcache *tc = tcache_get(&hk_tls);
    if (!tc)
        return NULL;
    struct hk_bin *b = hk_tc_mbin(tc);
    uint32_t n = bin_close(b);
    void *p = NULL;
    if (n == 0)
        mbin_empty(tc);
    else if (tc->mcount[cls - HK_NCLASS])
        for (uint32_t i = n; i-- > 0;) {    /* the most recently freed first */
            if (mslot_cls(b->slot[i]) != cls)
                continue;
            p = mslot_ptr(b->slot[i]);
            b->slot[i] = b->slot[--n];
            tc->mcount[cls - HK_NCLASS]--;
            tc->mbytes -= hk_class_size[cls];
            break;
        }
    bin_open(b, n);
    return p;
}

/* p, a block of medium class cls (checked to start a block), is freed:
 * into the calling thread's medium bin, the oldest block going back to
 * its slab while the bin is past its slots or the policy's bytes;
 * straight back when the thread has no medium bin (LEAN, an exiting
 * thread). Guarded. */
void hk_tcache_medium_free(void *p, unsigned cls)
{
    uint64_t *w = p;
    struct hk_tcache *tc = &hk_tls;
    if (w[1] == hk_free_key)
        check_double_free(p, cls);
    tc = tcache_get(tc);
    uint32_t size = hk_class_size[cls], limit = hk_limits()->medium_cache_bytes;
    uint32_t cap = tc ? hk_bin_cap(hk_tc_mbin(tc)) : 0;
    if (cap == 0 || size > limit) {
        hk_central_put(cls, &p, 1, "free");
        return;
    }
    w[1] = hk_free_key;                 /* free from now on, wherever it goes */
    struct hk_bin *b = hk_tc_mbin(tc);
    uint32_t n = bin_close(b);
    if (n == 0)
        mbin_empty(tc);
    while (n && (n >= cap || tc->mbytes + size > limit)) {
        mslots_put(b->slot, 1);         /* slot 0: the oldest but for the moves below */
        unsigned c = mslot_cls(b->slot[0]);
        tc->mcount[c - HK_NCLASS]--;
        tc->mbytes -= hk_class_size[c];
        b->slot[0] = b->slot[--n];
    }
    b->slot[n] = (void *)((uintptr_t)p | cls);
    tc->mcount[cls - HK_NCLASS]++;
    tc->mbytes += size;
    bin_open(b, n + 1);
}

/* What the free fast path did not take (the registry says p is ours): a
 * large, medium or guard block, a block of a class with four-unit slabs, a full or
 * closed bin, a block carrying the free key -- or no block at all. */
void hk_free_slow(void *p)
{
    struct hk_seg *seg = hk_seg_of(p);
    unsigned cls = hk_unit_cls(seg, p);
    struct hk_tcache *tc = &hk_tls;
    if (cls == HK_CLS_GUARD) {          /* lock-free: also under the guard */
        hk_guard_free(seg, p, "free");
        return;
    }
    if (tc->guard) {
        hk_guard_defer(p);              /* checks that p is a block */
        return;
    }
    tc->guard = 1;
    if (cls == HK_CLS_LARGE)
        hk_large_free((struct hk_large *)seg, p, "free");
    else if (cls >= HK_NCLASS && cls < HK_NALLCLASS)
        hk_medium_free(p, cls);         /* checked under its class's lock */
    else if (cls >= HK_NCLASS || !hk_block_valid((struct hk_ss *)seg, p))
        hk_ss_refuse(p, "free");
    else
        tcache_free(tc, p, cls);
    hk_guard_leave(tc);
}
