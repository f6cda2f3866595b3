/* hk_internal.h: prototypes shared by the shim's files, grouped under the
 * file that defines them, plus the few inline helpers the fast path needs
 * (size class lookup, registry test). Nothing here allocates.
 */
#ifndef HK_INTERNAL_H
#define HK_INTERNAL_H

#include <stdbool.h>
#include <stdarg.h>
#include <time.h>
#include "hk_types.h"
#include "hakmem.h"

/* ---- sizeclass.c ---- */
extern const uint32_t hk_class_size[HK_NALLCLASS] HK_HIDDEN;
struct hk_block_check { uint32_t mul, lim; };   /* see sizeclass.c */
struct hk_block_check4 { uint64_t mul, lim; };  /* the same for four-unit slabs */
HK_HIDDEN void hk_block_check_init(struct hk_block_check t[256],
                                   struct hk_block_check4 t4[256]);
extern const uint16_t hk_bin_lut[HK_LUT_MAX / HK_MIN_ALIGN + 1] HK_HIDDEN;
HK_HIDDEN unsigned hk_class_of_slow(size_t n);
HK_HIDDEN unsigned hk_class_span(unsigned cls);
HK_HIDDEN int hk_class_for_aligned(size_t n, size_t align);

/* Size class of n bytes, n <= HK_MEDIUM_MAX. */
static inline unsigned hk_class_of(size_t n)
{
    if (HK_LIKELY(n <= HK_LUT_MAX))
        return hk_bin_lut[(n + HK_MIN_ALIGN - 1) / HK_MIN_ALIGN] / HK_BIN_BYTES(HK_TC_SLOTS);
    return hk_class_of_slow(n);
}

/* ---- registry.c ---- */
#define HK_REG_WORDS ((size_t)1 << (HK_ADDR_BITS - HK_SEG_SHIFT - 6))
/* What free() looks up before it touches anything: the block test per
 * unit class (sizeclass.c, filled at start) and the registry. One object,
 * so that the fast path reaches both from one base address. */
struct hk_lookup {
    _Atomic uint64_t regmap[HK_REG_WORDS];
    struct hk_block_check check[256];
    uint16_t bin_off[256];          /* HK_BIN_OFF(class), filled at start */
    struct hk_block_check4 check4[256];
};
extern struct hk_lookup hk_lookup HK_HIDDEN;
HK_HIDDEN void hk_reg_set(uintptr_t seg);
HK_HIDDEN void hk_reg_clear(uintptr_t seg);

/* Write the header every segment starts with (struct hk_seg): its kind and
 * the class of each unit (for a large or guard block, one class for all). */
static inline void hk_seg_init(struct hk_seg *seg, uint32_t magic, uint8_t cls)
{
    seg->magic = magic;
    for (unsigned u = 0; u < HK_UNITS; u++)
        seg->unit_cls[u] = cls;
}

/* True when the 2 MiB chunk holding a starts a hakmem segment. Reads the
 * bitmap only, never the memory at a. */
static inline bool hk_reg_test(uintptr_t a)
{
    uintptr_t idx = a >> HK_SEG_SHIFT;
    if (HK_UNLIKELY(idx >= ((uintptr_t)1 << (HK_ADDR_BITS - HK_SEG_SHIFT))))
        return false;
    uint64_t w = atomic_load_explicit(&hk_lookup.regmap[idx >> 6], memory_order_relaxed);
    return (w >> (idx & 63)) & 1;
}

static inline struct hk_seg *hk_seg_of(const void *p)
{
    return (struct hk_seg *)((uintptr_t)p & ~(uintptr_t)HK_SEG_MASK);
}

static inline unsigned hk_unit_cls(const struct hk_seg *seg, const void *p)
{
    return seg->unit_cls[((uintptr_t)p >> HK_UNIT_SHIFT) & (HK_UNITS - 1)];
}

/* CLOCK_MONOTONIC in ns. */
static inline uint64_t hk_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- log.c ---- */
HK_HIDDEN void hk_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
HK_HIDDEN void hk_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn, cold));
HK_HIDDEN size_t hk_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- env.c ---- */
enum hk_opt_type { HK_OPT_BOOL, HK_OPT_UINT, HK_OPT_ENUM, HK_OPT_PATH };
struct hk_optdef {
    const char *name;               /* the environment variable */
    enum hk_opt_type type;
    uint32_t def, min, max;         /* default and range (UINT); PATH: max length */
    const char *choices;            /* ENUM: "A|B|C", value = index; PATH: default */
    const char *doc;
    size_t offset;                  /* into struct hk_options */
};
#define HK_PATH_MAX 96              /* a runtime dir plus a socket name fits sun_path */
/* Every HAKMEM_* variable: name, field, type, default, min, max, choices, doc */
#define HK_OPTIONS(X)                                                        \
    X(HAKMEM_SS_MEM_LEAN, lean, HK_OPT_BOOL, 0, 0, 1, NULL,                  \
      "1: start in LEAN mode")                                               \
    X(HAKMEM_SS_MEM_LEAN_DECOMMIT, decommit, HK_OPT_ENUM, 0, 0, 1,           \
      "FREE|DONTNEED", "how LEAN decommits: MADV_FREE (lazy) or MADV_DONTNEED (eager)") \
    X(HAKMEM_SS_LEAN_DELAY_MS, lean_delay_ms, HK_OPT_UINT, 100, 1, 60000, NULL, \
      "LEAN: free memory is decommitted once it has stayed free this long (ms)") \
    X(HAKMEM_SS_DECAY_MS, decay_ms, HK_OPT_UINT, 10000, 0, 3600000, NULL,      \
      "FAST: free memory goes back to the kernel once it has stayed free this long (ms); 0: never") \
    X(HAKMEM_SS_HUGEPAGE, ss_hugepage, HK_OPT_BOOL, 0, 0, 1, NULL,            \
      "1: superslabs mapped in FAST ask for transparent huge pages (MADV_HUGEPAGE) until first decommitted") \
    X(HAKMEM_SS_OS_STATS, os_stats, HK_OPT_BOOL, 0, 0, 1, NULL,              \
      "1: print OS and lean counters on stderr at exit")                     \
    X(HAKMEM_DAEMON, daemon, HK_OPT_BOOL, 1, 0, 1, NULL,                     \
      "1: register with hakmemd when its socket exists and follow its levels") \
    X(HAKMEM_RUNTIME_DIR, runtime_dir, HK_OPT_PATH, 0, 0, HK_PATH_MAX - 1,   \
      "/run/hakmem", "directory of hakmemd.sock")                            \
    X(HAKMEM_DAEMON_TIMEOUT_MS, daemon_timeout_ms, HK_OPT_UINT, 5000, 500, 600000, NULL, \
      "back to the start mode when the daemon's heartbeat is silent this long (ms)")
#define HK_OPT_FIELD_HK_OPT_BOOL(f) uint32_t f;
#define HK_OPT_FIELD_HK_OPT_UINT(f) uint32_t f;
#define HK_OPT_FIELD_HK_OPT_ENUM(f) uint32_t f;
#define HK_OPT_FIELD_HK_OPT_PATH(f) char f[HK_PATH_MAX];
enum { HK_DECOMMIT_FREE = 0, HK_DECOMMIT_DONTNEED = 1 };

struct hk_options {
#define HK_OPT_FIELD(name, field, type, def, min, max, choices, doc) HK_OPT_FIELD_##type(field)
    HK_OPTIONS(HK_OPT_FIELD)
#undef HK_OPT_FIELD
};
extern struct hk_options hk_opt HK_HIDDEN;
extern const struct hk_optdef hk_optdefs[] HK_HIDDEN;
extern const size_t hk_noptdefs HK_HIDDEN;
HK_HIDDEN int hk_opt_parse(const struct hk_optdef *d, const char *s, void *out);
HK_HIDDEN void hk_opt_default(const struct hk_optdef *d, void *out);
HK_HIDDEN void hk_env_load(char *const *envp, struct hk_options *o);
HK_HIDDEN void hk_env_init(void);
/* Secure mode (getauxval(AT_SECURE): a setuid, setgid or file-capability
 * program): the environment is ignored, as glibc ignores MALLOC_*, and
 * the listener follows only a root-owned hakmemd at the default path. */
extern bool hk_secure HK_HIDDEN;
/* systemd's memory-pressure protocol (docs/PRESSURE.md), read with the
 * rest of the environment: the file to watch and the trigger to write
 * (base64), empty when the service manager did not set them. */
extern char hk_mp_watch[HK_PATH_MAX * 2] HK_HIDDEN;
extern char hk_mp_write[256] HK_HIDDEN;
HK_HIDDEN size_t hk_opt_format(const struct hk_optdef *d, const void *v, char *buf, size_t len);

/* ---- os.c (the only caller of mmap/munmap/madvise/mremap) ---- */
HK_HIDDEN void *hk_os_map_aligned(size_t len);
HK_HIDDEN void *hk_os_map(size_t len);
HK_HIDDEN void hk_os_unmap(void *p, size_t len);
HK_HIDDEN bool hk_os_grow_inplace(void *p, size_t old_len, size_t new_len);
HK_HIDDEN bool hk_os_map_at(void *p, size_t len);
HK_HIDDEN void *hk_os_map_shared(int fd, size_t len, bool writable);
HK_HIDDEN void hk_os_hugepage(void *p, size_t len, bool on);
#define HK_SS_PAGES (HK_SEG_SIZE / HK_PAGE)
HK_HIDDEN size_t ss_maybe_decommit_superslab(struct hk_ss *ss,
    const uint64_t mask[HK_SS_PAGES / 64], bool eager);
HK_HIDDEN void hk_os_decommit_begin(void);
HK_HIDDEN void hk_os_decommit_end(void);

/* ---- stats.c ---- */
struct hk_counters {
#define HK_CTR_FIELD(name, doc) _Atomic uint64_t name;
    HAKMEM_COUNTERS(HK_CTR_FIELD)
#undef HK_CTR_FIELD
};
extern struct hk_counters hk_ctr HK_HIDDEN;
#define HK_CTR_ADD(name, v) \
    atomic_fetch_add_explicit(&hk_ctr.name, (uint64_t)(v), memory_order_relaxed)
#define HK_CTR_SUB(name, v) \
    atomic_fetch_sub_explicit(&hk_ctr.name, (uint64_t)(v), memory_order_relaxed)

/* ---- policy.c (pure) ---- */
HK_HIDDEN const struct hk_limits *hk_policy_limits(enum hk_mode mode);
HK_HIDDEN uint32_t hk_policy_tc_cap(const struct hk_limits *l, unsigned cls);
HK_HIDDEN uint32_t hk_policy_depot_max(const struct hk_limits *l, unsigned cls);
HK_HIDDEN bool hk_policy_prewarm_class(unsigned cls);
HK_HIDDEN bool hk_policy_keep_empty_slab(const struct hk_limits *l, unsigned cls,
                                         uint32_t nempty);
HK_HIDDEN bool hk_policy_cache_superslab(const struct hk_limits *l, uint32_t ncached);
HK_HIDDEN size_t hk_policy_large_cache_bytes(const struct hk_limits *l, size_t live);
HK_HIDDEN uint64_t hk_policy_decommit_mask(uint64_t free_now, uint64_t decommitted,
                                           uint64_t lazy, uint64_t free_seen, bool now,
                                           bool eager);
HK_HIDDEN uint32_t hk_policy_purge_delay(uint32_t base_ms, uint32_t cur_ms,
                                         uint64_t decommitted_pages, uint64_t recommitted_pages);

/* ---- superslab.c ---- */
extern struct hk_class hk_classes[HK_NALLCLASS] HK_HIDDEN;
HK_HIDDEN size_t hk_central_take(unsigned cls, void **out, size_t want);
HK_HIDDEN void hk_central_put(unsigned cls, void *const *ptrs, size_t n, const char *who);
HK_HIDDEN struct hk_slab *hk_slab_of(struct hk_ss *ss, const void *p);
HK_HIDDEN bool hk_block_valid(struct hk_ss *ss, const void *p);
HK_HIDDEN void hk_ss_refuse(const void *p, const char *who) __attribute__((noreturn, cold));
HK_HIDDEN bool hk_central_has(unsigned cls, const void *p);
HK_HIDDEN void hk_ss_prewarm(void);
extern _Atomic uint64_t hk_recommit_pages HK_HIDDEN;
extern _Atomic uint64_t hk_released_pages HK_HIDDEN;
HK_HIDDEN void hk_ss_lock_all(void);
HK_HIDDEN void hk_ss_unlock_all(void);
HK_HIDDEN void hk_ss_reinit_locks(void);

/* ---- decommit.c (the purge walk: what a purge round gives back) ---- */
HK_HIDDEN bool hk_ss_purge(bool now, bool eager, bool *pending);

/* ---- purge.c (the periodic work: the background purge thread) ---- */
HK_HIDDEN void hk_purge_note(void);
HK_HIDDEN void *hk_purger_main(void *arg);
HK_HIDDEN void hk_purger_wake(void);
HK_HIDDEN void hk_purge_after_fork_child(void);

/* ---- medium.c (blocks of the medium classes: the thread's medium bin,
 * then the central lists) ---- */
HK_HIDDEN void *hk_medium_alloc(unsigned cls);
HK_HIDDEN void hk_medium_free(void *p, unsigned cls);

/* ---- large.c ---- */
HK_HIDDEN void *hk_large_alloc(size_t n, size_t align, bool zero);
HK_HIDDEN void hk_large_free(struct hk_large *l, void *p, const char *who);
HK_HIDDEN void *hk_large_realloc(struct hk_large *l, void *p, size_t n);
HK_HIDDEN size_t hk_large_usable(struct hk_large *l, const void *p, const char *who);
HK_HIDDEN bool hk_large_decay(bool now, bool *left);
HK_HIDDEN void *hk_huge_aligned_alloc(size_t n, size_t align);
HK_HIDDEN bool hk_huge_aligned_find(const void *p, size_t *usable, bool release);
HK_HIDDEN void hk_large_lock_all(void);
HK_HIDDEN void hk_large_unlock_all(void);
HK_HIDDEN void hk_large_reinit_locks(void);

/* ---- tcache.c (thread caches: the slow paths of alloc.c) ---- */
extern __thread struct hk_tcache hk_tls
    __attribute__((tls_model("initial-exec"))) HK_HIDDEN;

/* The calling thread's bin at byte offset off of its cache, as a plain
 * pointer: every access below goes through it (one address computation,
 * no %fs-relative recomputation after a compiler barrier). */
static inline struct hk_bin *hk_bin_at(size_t off)
{
    struct hk_bin *b = (struct hk_bin *)(hk_tls.bins + off);
    __asm__("" : "+r"(b));
    return b;
}

/* Any thread cache's bin of class cls, and its medium bin: for the slow
 * paths (free's fast path reads the same offset from hk_lookup.bin_off,
 * beside the block test). */
static inline struct hk_bin *hk_tc_bin(struct hk_tcache *tc, unsigned cls)
{
    return (struct hk_bin *)(tc->bins + HK_BIN_OFF(cls));
}

static inline struct hk_bin *hk_tc_mbin(struct hk_tcache *tc)
{
    return (struct hk_bin *)(tc->bins + HK_MBIN_OFF);
}

/* The class of the bin at byte offset off (not the medium bin's). */
static inline unsigned hk_bin_off_cls(size_t off)
{
    if (off < HK_BIN_OFF(HK_NCLASS_LUT))
        return (unsigned)(off / HK_BIN_BYTES(HK_TC_SLOTS));
    return HK_NCLASS_LUT + (unsigned)((off - HK_BIN_OFF(HK_NCLASS_LUT)) / HK_BIN_BYTES(HK_TC_SLOTS_BIG));
}

/* The owner's side of the handshake with a thief (hk_types.h), shared by
 * the fast and the slow paths: busy is written before n is read (the asm
 * orders the two for the compiler; the thief's membarrier does it for the
 * CPU), then one store of the new n that also clears busy, after the
 * slots were read or written (release: a compiler barrier only on x86). */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "struct hk_bin's head puts n in its low half"
#endif
static inline void hk_bin_busy(struct hk_bin *b)
{
    __atomic_store_n(&b->busy, 1, __ATOMIC_RELAXED);
    __asm__ volatile("" : "+m"(b->head));
}

static inline uint32_t hk_bin_n(const struct hk_bin *b)
{
    return __atomic_load_n(&b->n, __ATOMIC_RELAXED);
}

static inline void hk_bin_commit(struct hk_bin *b, uint64_t n)
{
    __atomic_store_n(&b->head, n, __ATOMIC_RELEASE);
}

/* cap: another thread may zero it (hk_tcache_force_slow_all, a thread's
 * exit); relaxed both ways, the same plain mov on x86. */
static inline uint32_t hk_bin_cap(const struct hk_bin *b)
{
    return __atomic_load_n(&b->cap, __ATOMIC_RELAXED);
}

/* n < cap, for free's fast path: on x86 one compare with the cap in
 * memory (the relaxed load above is a mov of its own that the compiler
 * does not fold; a plain mov either way). */
static inline bool hk_bin_below_cap(const struct hk_bin *b, uint32_t n)
{
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
    bool below;
    __asm__("cmpl %[cap], %[n]" : "=@ccb"(below) : [n] "r"(n), [cap] "m"(b->cap));
    return below;
#else
    return n < hk_bin_cap(b);
#endif
}

static inline void hk_bin_set_cap(struct hk_bin *b, uint32_t cap)
{
    __atomic_store_n(&b->cap, cap, __ATOMIC_RELAXED);
}

HK_HIDDEN void *hk_malloc_slow(struct hk_bin *b);
HK_HIDDEN void hk_free_slow(void *p);
HK_HIDDEN void hk_tcache_flush_mine(void);
HK_HIDDEN void *hk_tcache_medium_take(unsigned cls);
HK_HIDDEN void hk_tcache_medium_free(void *p, unsigned cls);
HK_HIDDEN void hk_tcache_global_init(void);
HK_HIDDEN void hk_tcache_register(struct hk_tcache *tc);
HK_HIDDEN void hk_tcache_force_slow_all(void);
HK_HIDDEN size_t hk_tcache_steal_all(void);
HK_HIDDEN void hk_tcache_lock_all(void);
HK_HIDDEN void hk_tcache_unlock_all(void);
HK_HIDDEN void hk_tcache_after_fork_child(void);

/* ---- guard.c (the re-entrancy guard, deferred frees, the safe point) ---- */
HK_HIDDEN void *hk_guard_alloc(size_t n, size_t align);
HK_HIDDEN void hk_guard_free(struct hk_seg *seg, void *p, const char *who);
HK_HIDDEN size_t hk_guard_usable(struct hk_seg *seg, const void *p, const char *who);
HK_HIDDEN size_t hk_guard_size(struct hk_seg *seg, const void *p);
HK_HIDDEN void hk_guard_defer(void *p);
HK_HIDDEN void hk_guard_defer_foreign(void *p);
HK_HIDDEN void hk_safe_point(struct hk_tcache *tc);

/* ---- helper.c (the helper threads: started at safe points) ---- */
enum hk_helper_id { HK_HELPER_PURGER, HK_HELPER_LISTENER, HK_NHELPERS };
enum hk_helper_state { HK_HELPER_OFF, HK_HELPER_STARTING, HK_HELPER_RUNNING, HK_HELPER_FAILED };
extern _Atomic uint32_t hk_helper_pending HK_HIDDEN;
HK_HIDDEN enum hk_helper_state hk_helper_state(enum hk_helper_id h);
HK_HIDDEN void hk_helper_want(enum hk_helper_id h);
HK_HIDDEN void hk_helper_run_pending(void);
HK_HIDDEN void hk_helper_after_fork_child(void);
HK_HIDDEN bool hk_helper_park(void);
HK_HIDDEN void hk_helper_unpark(void);
HK_HIDDEN bool hk_helper_parking(void);
HK_HIDDEN short hk_helper_poll(int fd, short events, int ms);

/* Leave a guarded section (entered with tc->guard++ or tc->guard = 1 when
 * it was 0); the outermost one ends at a safe point. */
static inline void hk_guard_leave(struct hk_tcache *tc)
{
    if (--tc->guard == 0 &&
        HK_UNLIKELY(tc->deferred || tc->ndeferred_foreign || tc->needs_key ||
                    atomic_load_explicit(&hk_helper_pending, memory_order_relaxed)))
        hk_safe_point(tc);
}

/* ---- mode.c (modes and pressure levels: the one place they change) ---- */
HK_HIDDEN void hk_mode_init(void);
HK_HIDDEN int hk_set_mode(enum hk_mode m);
HK_HIDDEN int hk_apply_level(int level);
HK_HIDDEN int hk_trim(void);
HK_HIDDEN bool hk_release_now(bool eager, bool others);
HK_HIDDEN void hk_mode_reinit_locks(void);

/* ---- maps.c (pure) ---- */
struct hk_maps_entry {
    uintptr_t lo, hi;               /* the mapping, [lo, hi) */
    bool rw;                        /* readable and writable */
    bool anon;                      /* no path: anonymous memory */
    bool rtld;                      /* a mapping of ld.so (ld-linux*) */
};
HK_HIDDEN bool hk_maps_parse(const char *line, size_t n, struct hk_maps_entry *e);

/* ---- foreign.c (the DSO guard's second half) ---- */
HK_HIDDEN void hk_foreign_snapshot(void);
HK_HIDDEN size_t hk_foreign_preinit_span(const void *p);
HK_HIDDEN void hk_free_foreign(void *p, const char *who);
HK_HIDDEN size_t hk_usable_foreign(void *p);
HK_HIDDEN void *hk_realloc_foreign(void *p, size_t n);

/* ---- mempressure.c (systemd's memory-pressure protocol) ---- */
/* Opens $MEMORY_PRESSURE_WATCH and arms its trigger: the fd, or -1 (said
 * once; the protocol is then given up). */
HK_HIDDEN int hk_mp_open(void);
/* Waits up to ms for an event on fd: the level to apply now (MEDIUM on an
 * event, NONE after a calm period, else level, the current one). */
HK_HIDDEN int hk_mp_wait(int fd, unsigned ms, uint64_t *last_event, int level);

/* ---- listener.c (the daemon's voice in the process) ---- */
HK_HIDDEN void *hk_listener_main(void *arg);
HK_HIDDEN void hk_listener_wake(void);
HK_HIDDEN void hk_listener_maybe_start(void);
HK_HIDDEN void hk_listener_poll(void);
HK_HIDDEN void hk_listener_after_fork_child(void);
/* Set in a forked child whose parent followed hakmemd, until the child's
 * listener runs: paths that do not poll otherwise (large blocks) test it,
 * so that a child registers whatever it allocates first. */
extern _Atomic bool hk_lst_restart HK_HIDDEN;
static inline void hk_listener_restart_if_forked(void)
{
    if (HK_UNLIKELY(atomic_load_explicit(&hk_lst_restart, memory_order_relaxed)))
        hk_listener_poll();
}

/* ---- init.c ---- */
extern _Atomic int hk_init_state HK_HIDDEN;  /* 0 none, 1 running, 2 done */
extern uint64_t hk_free_key HK_HIDDEN;
/* The current mode's limits (policy.c's immutable tables), swapped by
 * hk_set_mode: a reader loads the pointer once per operation. */
extern const struct hk_limits *_Atomic hk_lim HK_HIDDEN;
static inline const struct hk_limits *hk_limits(void)
{
    return atomic_load_explicit(&hk_lim, memory_order_acquire);
}
extern _Atomic uint32_t hk_epoch HK_HIDDEN;
HK_HIDDEN void hk_init_slow(void);

static inline void hk_ensure_init(void)
{
    if (HK_UNLIKELY(atomic_load_explicit(&hk_init_state, memory_order_acquire) != 2))
        hk_init_slow();
}

/* ---- alloc.c (the entry points) ---- */
HK_HIDDEN size_t hk_block_size(void *p, const char *who);
HK_HIDDEN void *hk_malloc(size_t n);
HK_HIDDEN void hk_free(void *p);
HK_HIDDEN void *hk_calloc(size_t nmemb, size_t size);
HK_HIDDEN void *hk_realloc(void *p, size_t n);
HK_HIDDEN void *hk_memalign(size_t align, size_t n);
HK_HIDDEN size_t hk_usable_size(void *p);
HK_HIDDEN void *hk_reallocarray(void *p, size_t nmemb, size_t size);
HK_HIDDEN int hk_posix_memalign(void **out, size_t align, size_t n);
HK_HIDDEN void *hk_aligned_alloc(size_t align, size_t n);
HK_HIDDEN void *hk_memalign_libc(size_t align, size_t n);
HK_HIDDEN void *hk_valloc(size_t n);
HK_HIDDEN void *hk_pvalloc(size_t n);
HK_HIDDEN int hk_malloc_trim(size_t pad);
HK_HIDDEN int hk_mallopt(int param, int value);

#endif
