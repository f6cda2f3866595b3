/* hk_types.h: the shim's data structures and constants.
 *
 * Glossary
 *   superslab   a 2 MiB region aligned on 2 MiB, mapped from the OS in one
 *               piece. Its first unit holds the header (magic, slab table);
 *               the other 31 units are carved into slabs.
 *   unit        64 KiB; a superslab is 32 units.
 *   slab        1, 4, 8 or 16 contiguous units of a superslab, all of one
 *               size class. Its free blocks are a bitmap in the slab
 *               descriptor (never inside the blocks), so free pages of a
 *               slab can be decommitted without losing the free list.
 *   page map    per superslab, one bit per 4 KiB page (512 bits) for the
 *               pages inside slabs: decommitted, lazily so, free at the
 *               last purge.
 *   size class  one of HK_NALLCLASS block sizes: HK_NCLASS small ones,
 *               16 B to 32 KiB, with thread caches; then HK_NMEDIUM medium
 *               ones above 32 KiB to HK_MEDIUM_MAX (1 MiB), served from
 *               the thread's medium bin, else from the central lists
 *               block by block (medium.c).
 *   large       an allocation above HK_MEDIUM_MAX: its own mapping,
 *               aligned on 2 MiB, with a header at its start.
 *   segment     either of the two mappings above; both start with
 *               struct hk_seg so that free() reads one byte to tell them
 *               apart and finds the size class of a small block.
 *   thread cache (tcache) per-thread stacks of free blocks, one per size
 *               class; the only thing the fast path touches.
 *   central     per-class lists of slabs with free blocks, under a lock
 *               per class; the thread caches refill from and flush to it.
 *   registry    a bitmap, one bit per 2 MiB of address space, set for the
 *               start of every segment: "is this pointer ours?" without
 *               reading the pointer's memory.
 *   guard       per-thread re-entrancy depth: raised while the thread is
 *               inside the shim's slow paths; an allocator call that meets
 *               it (from libc called by the shim, or a signal handler) is
 *               served without any lock (guard.c).
 *   safe point  the end of a thread's outermost guarded section: no lock
 *               held, nothing half updated; where helper threads start.
 *
 * This header holds types and constants only; prototypes live in
 * hk_internal.h.
 */
#ifndef HK_TYPES_H
#define HK_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HK_LIKELY(x)   __builtin_expect(!!(x), 1)
#define HK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HK_HIDDEN      __attribute__((visibility("hidden")))
#define HK_CACHELINE   64

/* Segment geometry. 2 MiB matches a huge page and keeps the registry at
 * 8 MiB of (untouched until used) address space for 47 bits. */
#define HK_SEG_SHIFT   21
#define HK_SEG_SIZE    ((size_t)1 << HK_SEG_SHIFT)
#define HK_SEG_MASK    (HK_SEG_SIZE - 1)
#define HK_UNIT_SHIFT  16
#define HK_UNIT_SIZE   ((size_t)1 << HK_UNIT_SHIFT)
#define HK_UNITS       32            /* units per superslab */
#define HK_PAGE        4096
#define HK_ADDR_BITS   47            /* user space; higher is never ours */

/* Size classes: 16..128 step 16, then four per doubling up to 32 KiB
 * (small: thread-cached), and eight per doubling on to 1 MiB (medium). */
#define HK_NCLASS      40
#define HK_SMALL_MAX   32768
#define HK_NMEDIUM     40
#define HK_NALLCLASS   (HK_NCLASS + HK_NMEDIUM)
#define HK_MEDIUM_MAX  ((size_t)1 << 20)
#define HK_LUT_MAX     1024          /* sizes served by the lookup table */
#define HK_MIN_ALIGN   16

/* unit_cls values that are not a size class */
#define HK_CLS_GUARD   0xfd          /* a block served under the guard (guard.c) */
#define HK_CLS_FREE    0xfe          /* unit not in any slab (or header) */
#define HK_CLS_LARGE   0xff          /* the segment is a large allocation */

/* Thread cache geometry. A bin of a class up to HK_LUT_MAX (the first
 * HK_NCLASS_LUT classes) holds at most HK_TC_SLOTS pointers, a bin of a
 * bigger class HK_TC_SLOTS_BIG (no mode caches more of them); the policy
 * sets the live capacity per class and mode. 62 slots and a 16-byte head
 * make a small class's bin exactly 512 bytes. The bins lie one after the
 * other, the medium bin last (HK_BIN_OFF), HK_TC_BYTES in all: 13.4 KiB
 * kept out of TLS (which ld.so would zero, and a fresh thread stack fault
 * in, for every new thread) in storage that threads pass on (tcache.c). */
#define HK_TC_SLOTS     62
#define HK_TC_SLOTS_BIG 16
#define HK_NCLASS_LUT   20          /* classes of at most HK_LUT_MAX bytes */
#define HK_BIN_BYTES(slots) (16 + 8 * (slots))
#define HK_BIN_SLOTS(c) ((c) < HK_NCLASS_LUT ? HK_TC_SLOTS : HK_TC_SLOTS_BIG)
#define HK_BIN_OFF(c) ((c) <= HK_NCLASS_LUT ? (c) * HK_BIN_BYTES(HK_TC_SLOTS) :      \
                       HK_NCLASS_LUT * HK_BIN_BYTES(HK_TC_SLOTS) +                   \
                       ((c) - HK_NCLASS_LUT) * HK_BIN_BYTES(HK_TC_SLOTS_BIG))

#define HK_SEG_MAGIC_SS    0x4853534bu  /* "KSSH" */
#define HK_SEG_MAGIC_LARGE 0x48534c4bu  /* "KLSH" */
#define HK_SEG_MAGIC_GUARD 0x4853474bu  /* "KGSH" */

/* Common head of every segment. unit_cls sits in the first cache line so
 * that free() of a small block touches one line of the header. */
struct hk_seg {
    uint32_t magic;
    uint32_t reserved;
    uint8_t  unit_cls[HK_UNITS];    /* size class per unit, or HK_CLS_* */
};

/* Slab descriptor. One per unit; a slab of span > 1 uses the descriptor
 * of its first unit. Protected by the lock of its size class once the
 * slab is carved; by hk_ss_lock while it is free.
 * Invariant: nfree == popcount(freemap) and a slab is on its class's
 * partial list exactly when nfree > 0. */
struct hk_slab {
    struct hk_slab *next;           /* class partial list */
    struct hk_slab *prev;
    uint32_t nblocks;               /* blocks in the slab */
    uint32_t nfree;                 /* free blocks in freemap */
    uint32_t block;                 /* block size, bytes */
    uint8_t cls;
    uint8_t span;                   /* units; 0 in a non-head unit */
    uint8_t head;                   /* index of the slab's first unit */
    uint8_t unit;                   /* index of this unit */
    uint32_t hint;                  /* first freemap word that may be set */
    uint64_t div_magic;             /* ceil(2^40 / block): offset -> index */
    uint64_t freemap[HK_UNIT_SIZE / HK_MIN_ALIGN / 64]; /* 1 = free */
};

/* Superslab header, at the start of unit 0.
 * Invariant: free_units has a bit for every unit not in a slab (unit 0,
 * the header, is never free); the superslab is empty when
 * free_units == HK_SS_USABLE. */
#define HK_SS_USABLE   (0xfffffffeu)
#define HK_SS_PAGE_WORDS (HK_SEG_SIZE / HK_PAGE / 64)
struct hk_ss {
    struct hk_seg seg;
    struct hk_ss *next;             /* hk_ss_lock: avail or cache list */
    struct hk_ss *prev;
    uint32_t free_units;            /* bit u set: unit u is free */
    uint32_t decommitted_units;     /* free units whose pages are decommitted */
    uint32_t lazy_units;            /* ... with MADV_FREE (a subset) */
    uint32_t fresh_units;           /* ... never touched since mapped (a subset) */
    uint32_t free_seen;             /* free units seen at the last purge */
    _Atomic uint32_t hugepage;      /* 1: asks for huge pages (HAKMEM_SS_HUGEPAGE) */
    uint64_t empty_since;           /* purge round in which it became empty */
    /* The page map of the pages inside slabs (bit p: page p of the
     * superslab), under the lock of the slab's class; zero for pages of
     * free units, whose state is the *_units masks above. */
    uint64_t pg_decommitted[HK_SS_PAGE_WORDS];  /* decommitted */
    uint64_t pg_lazy[HK_SS_PAGE_WORDS];         /* ... with MADV_FREE (a subset) */
    uint64_t pg_free_seen[HK_SS_PAGE_WORDS];    /* wholly free at the last purge */
    uint64_t pg_fresh[HK_SS_PAGE_WORDS];        /* decommitted and never touched since
                                                   mapped: not needed *again* */
    /* The purge round's decommit (decommit.c): pages marked decommitted
     * under their lock and not madvised yet. A block in them is handed
     * out (slab_pop) and the superslab unmapped (hk_ss_retire) only once
     * their bits are clear (atomic: set and cleared by the purge round,
     * read by any); and the round's list of superslabs with such pages
     * (the round's only, under hk_decommit_lock). */
    uint64_t pg_pending[HK_SS_PAGE_WORDS];
    struct hk_ss *dec_next;
    bool dec_listed;
    struct hk_slab slabs[HK_UNITS];
};

/* Large allocation header, at the start of its mapping. The user block
 * starts at base + user_off (in the same 2 MiB chunk as the header, which
 * is what lets free() find it through the registry). user_off moves each
 * time the mapping is reused (large.c), so that the previous owner's
 * pointer no longer names the block. */
enum { HK_LARGE_LIVE = 1, HK_LARGE_CACHED = 2 };
struct hk_large {
    struct hk_seg seg;
    size_t map_len;                 /* bytes mapped, multiple of HK_PAGE */
    size_t user_off;                /* bytes from base to the user block */
    size_t prev_off;                /* user_off of the previous owner; 0: none */
    size_t user_size;               /* bytes requested */
    uint32_t state;                 /* HK_LARGE_* */
    uint32_t cached_round;          /* decay round it was cached in (large.c) */
};

/* One thread-cache bin: a stack of free blocks of one class.
 * The fast paths use a bin while 0 < n <= HK_TC_SLOTS (malloc) and
 * n < cap (free). A slow path working on a bin closes it first (n =
 * HK_BIN_CLOSED, which fails both tests), so that a call nested in it, a
 * signal handler's too, finds the bin unusable and goes to the guard.
 *
 * Another thread may take a bin's blocks without the owner's help (a
 * CRITICAL level, trim; tcache.c): the owner sets busy before it reads n
 * in any operation on the bin and clears it with the same store that
 * writes the new n (head), never with an atomic read-modify-write; the
 * thief exchanges n for HK_BIN_STOLEN, makes every thread pass a memory
 * barrier (membarrier), and takes the blocks only if the bin is not busy
 * and n is still HK_BIN_STOLEN (a Dekker handshake whose owner side costs
 * one plain store). An owner that reads HK_BIN_STOLEN waits for the thief
 * in its slow path. */
#define HK_BIN_CLOSED  0x80000000u
#define HK_BIN_STOLEN  0x80000001u
struct hk_bin {
    union {
        struct {
            uint32_t n;             /* blocks held, or HK_BIN_CLOSED/STOLEN */
            uint32_t busy;          /* 1: the owner is in an operation on it */
        };
        uint64_t head;              /* n and busy, for the owner's one store */
    };
    uint32_t cap;                   /* live capacity, <= its slots; set to 0
                                       by another thread to force this thread's
                                       next free onto the slow path */
    uint32_t unused;
    void *slot[];                   /* HK_BIN_SLOTS of its class, or HK_MBIN_SLOTS */
};
_Static_assert(sizeof(struct hk_bin) == HK_BIN_BYTES(0), "a bin's head is 16 bytes");

enum hk_tstate { HK_T_NEW = 0, HK_T_INITING, HK_T_READY, HK_T_DEAD };

#define HK_DEFER_FOREIGN 8             /* foreign frees deferred by one guarded section */
/* The medium bin (tcache.c): one bin of a thread cache for blocks of
 * every medium class, each slot the block's address with its class in the
 * low bits (medium blocks are page aligned); at most HK_MBIN_SLOTS blocks
 * and the policy's medium_cache_bytes. */
#define HK_MBIN_SLOTS  32
#define HK_MBIN_OFF    HK_BIN_OFF(HK_NCLASS)
#define HK_TC_BYTES    (HK_MBIN_OFF + HK_BIN_BYTES(HK_MBIN_SLOTS))
/* The stash (tcache.c): a thread's own second level behind its bins, so
 * that a bin that overflows and underflows in turn (a working set bigger
 * than a bin) keeps its blocks in its own thread instead of passing them
 * through its class's shared depot. Mapped at the thread's first flush
 * in a mode that keeps one (hk_limits.stash_bytes), outside TLS; the
 * blocks of class c are read and written only while bin c is closed
 * (the bin's handshake covers them: a thief takes them with the bin). */
#define HK_STASH_SLOTS 2048             /* blocks per class at most */
struct hk_stash {
    uint32_t bytes;                 /* of all classes' blocks (atomic: a thief) */
    uint32_t n[HK_NCLASS];          /* blocks of class c */
    void *slot[HK_NCLASS][HK_STASH_SLOTS];
};
struct hk_tcache {
    /* the bins of the small classes at HK_BIN_OFF(class) (hk_tc_bin), then
     * the medium bin at HK_MBIN_OFF (hk_tc_mbin): same handshake as bins.
     * HK_TC_BYTES of storage: the thread's own while its cache is ready,
     * else a shared set of empty bins with no capacity (hk_tc_none), so
     * that both fast paths fail to the slow path without a test of their
     * own. */
    unsigned char *bins;
    uint32_t mbytes;                /* bytes in mbin while its n > 0 */
    uint8_t mcount[HK_NMEDIUM];     /* blocks in mbin per medium class, likewise */
    uint32_t steal_mn;              /* a thief's: what it exchanged from mbin */
    uint32_t state;                 /* enum hk_tstate */
    uint32_t epoch;                 /* hk_epoch when the caps were set */
    struct hk_stash *stash;         /* NULL until the first flush (atomic for a thief) */
    uint32_t stash_limit;           /* bytes the stash may hold now; 0: none */
    uint32_t stash_nomap;           /* 1: mapping the stash failed */
    struct hk_tcache *next;         /* all ready caches, under hk_tc_lock */
    struct hk_tcache *prev;
    uint32_t steal_n[HK_NCLASS];    /* a thief's: what it exchanged (hk_tc_lock) */
    /* the re-entrancy guard (guard.c); the owning thread's alone */
    uint32_t guard;                 /* depth of guarded sections */
    uint8_t in_safe_point;
    uint8_t needs_key;              /* pthread_setspecific not done yet */
    uint32_t ndeferred_foreign;
    void *deferred;                 /* our blocks freed under the guard, linked
                                       through their first word */
    void *deferred_foreign[HK_DEFER_FOREIGN];
};

/* The depot: whole batches of blocks a thread cache flushed, kept as they
 * came (pointer arrays) for the next thread cache that refills: a block
 * freed by one thread and allocated by another crosses in O(1) per batch,
 * without touching its slab's bitmap. Blocks in the depot count as in use
 * for their slabs; purges and LEAN drain it into the slabs. A class keeps
 * HK_DEPOT_INLINE batches in place; past them (FAST) its depot moves to a
 * mapping of its own sized by the policy (hk_policy_depot_max: a producer
 * thread and a consumer thread are thousands of batches apart), which
 * LEAN's drain unmaps. */
#define HK_DEPOT_BATCH  32              /* >= a flush of half a full bin */
#define HK_DEPOT_INLINE 8               /* batches a depot has before it maps */
#define HK_DEPOT_MAX    4096            /* batches per class at most */
struct hk_batch {
    uint32_t n;                     /* blocks */
    uint32_t owner;                 /* depot_owner() of the thread that flushed it */
    void *slot[HK_DEPOT_BATCH];
};

/* Central per-class state. */
struct hk_class {
    pthread_mutex_t lock;
    struct hk_slab *partial;        /* slabs with nfree > 0; empties last */
    struct hk_slab *partial_tail;
    uint32_t nempty;                /* slabs on the list with nfree == nblocks */
    uint32_t ndepot;                /* batches in the depot */
    uint32_t depot_cap;             /* batches depot has room for */
    uint32_t depot_nomap;           /* 1: mapping a bigger depot failed */
    struct hk_batch *depot;         /* NULL: the class's batches in place
                                       (superslab.c), or a mapping */
} __attribute__((aligned(HK_CACHELINE)));

/* Modes (docs/ARCHITECTURE.md, "Modes and levels"). */
enum hk_mode { HK_MODE_FAST = 0, HK_MODE_LEAN = 1 };

/* What the release policy keeps per mode: see policy.c. */
struct hk_limits {
    uint32_t tc_cap_small;          /* tcache capacity, blocks <= 1 KiB */
    uint32_t tc_cap_large;          /* tcache capacity, bigger blocks */
    uint32_t tc_class_bytes;        /* bytes a bin may hold; 0: no bound */
    uint32_t medium_cache_bytes;    /* bytes of medium blocks a thread caches */
    uint32_t empty_slabs_kept;      /* per class, on the partial list */
    uint32_t ss_cache_max;          /* empty superslabs kept mapped */
    uint32_t large_cache_max;       /* free large extents kept */
    size_t   large_cache_bytes;     /* ... and their total size, at least */
    uint32_t prewarm;               /* 1: carve hot-class slabs at start */
    uint32_t depot_bytes;           /* bytes of blocks a class's depot may hold */
    uint32_t stash_bytes;           /* bytes of blocks a thread's stash may hold */
    uint32_t purge;                 /* 1: decommit free pages, retire empty
                                       superslabs (at the purge rounds) */
};

#endif
