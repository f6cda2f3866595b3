/* hakmem.h: the public API of libhakmem, beside the libc allocation
 * functions it replaces (malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * malloc_usable_size, malloc_trim, mallopt).
 *
 * Link with -lhakmem, or load the library with LD_PRELOAD; the functions
 * below are then available through this header (or dlsym()).
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdint.h>
#include "hakmem_version.h" /* HAKMEM_VERSION_MAJOR, _MINOR, _PATCH, _STRING */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HAKMEM_API __attribute__((visibility("default")))
#else
#define HAKMEM_API
#endif

/* Counters, in the order hakmem_stats_print() prints them. Names are the
 * ones used everywhere (stats output, hakmemctl, metrics). */
#define HAKMEM_COUNTERS(X)                                                   \
    X(mmap_calls,        "mmap(2) calls made by the allocator")              \
    X(munmap_calls,      "munmap(2) calls")                                  \
    X(madvise_calls,     "madvise(2) calls")                                 \
    X(superslabs_live,   "superslabs mapped and holding at least one slab")  \
    X(superslabs_cached, "empty superslabs kept mapped for reuse")           \
    X(large_live,        "large (> 1 MiB) allocations live")                 \
    X(large_cached,      "free large extents kept for reuse in place")      \
    X(bytes_in_use,      "bytes in blocks handed out or in thread caches")  \
    X(bytes_committed,   "bytes mapped and not decommitted")                 \
    X(bytes_decommitted, "bytes given back with madvise, in total")          \
    X(lean_decommit,     "decommit operations (madvise calls on free memory)") \
    X(lean_retire,       "empty superslabs unmapped")                        \
    X(mode_switches,     "switches between FAST and LEAN")                   \
    X(mode,              "current mode: 0 FAST, 1 LEAN")                     \
    X(level,             "last pressure level applied: 0 NONE .. 3 CRITICAL") \
    X(guard_allocs,      "blocks served while the thread was inside the allocator (re-entry from libc or a signal handler), each its own mapping") \
    X(lean_decommit_eager, "decommit operations with MADV_DONTNEED (part of lean_decommit), lazily given pages made certain included") \
    X(tcache_stolen,     "cached blocks taken back from other threads' caches (CRITICAL, trim), asleep threads included") \
    X(bytes_lazy,        "bytes given back with MADV_FREE and not made certain since (the kernel may not have taken them yet)") \
    X(depot_spills,      "batches a thread cache flushed that found its class's depot full and went back to the slabs' bitmaps")

struct hakmem_stats {
#define HAKMEM_FIELD(name, doc) uint64_t name;
    HAKMEM_COUNTERS(HAKMEM_FIELD)
#undef HAKMEM_FIELD
};

/* Fill *out with a snapshot of the counters. size is sizeof(*out) as the
 * caller knows it: a caller built with an older, shorter struct gets the
 * counters it knows (new counters are only ever added at the end).
 * Returns 0, or -1 with errno EINVAL when out is NULL or size is smaller
 * than one counter. */
HAKMEM_API int hakmem_stats_get(struct hakmem_stats *out, size_t size);

/* One counter by name. Returns 0, or -1 with errno ENOENT. */
HAKMEM_API int hakmem_counter(const char *name, uint64_t *value);

/* Print every counter as "name value\n" to fd (what HAKMEM_SS_OS_STATS=1
 * prints at exit). */
HAKMEM_API void hakmem_stats_print(int fd);

/* Print the value of every HAKMEM_* option as "NAME=value\n" to fd. */
HAKMEM_API void hakmem_config_print(int fd);

/* Modes: FAST keeps memory warm; LEAN gives free memory back. */
enum hakmem_mode {
    HAKMEM_MODE_FAST = 0,
    HAKMEM_MODE_LEAN = 1,
};

/* Switch mode, from any thread at any time. Switching to LEAN empties the
 * caches of empty superslabs and large mappings and decommits free memory
 * at once, with the configured strategy (HAKMEM_SS_MEM_LEAN_DECOMMIT);
 * other threads flush their caches at their next free. Returns 0, or -1
 * with errno EINVAL for an unknown mode, or EAGAIN when called from a
 * signal handler that interrupted the allocator. */
HAKMEM_API int hakmem_set_mode(int mode);

/* The current mode (HAKMEM_MODE_*). */
HAKMEM_API int hakmem_get_mode(void);

/* Pressure levels, as hakmemd sends them (the same values on the wire). */
enum hakmem_level {
    HAKMEM_LEVEL_NONE = 0,      /* back to the mode chosen at start */
    HAKMEM_LEVEL_LOW = 1,       /* LEAN policy from now on; nothing is given
                                   back at once (free memory goes after the
                                   LEAN delay) */
    HAKMEM_LEVEL_MEDIUM = 2,    /* LEAN, and free memory decommitted now with
                                   the configured strategy */
    HAKMEM_LEVEL_CRITICAL = 3,  /* as MEDIUM, eagerly (MADV_DONTNEED, also on
                                   pages given back lazily before), and every
                                   thread's cache taken back, idle threads'
                                   included */
};

/* Apply a pressure level (what the daemon's listener calls). Returns 0, or
 * -1 with errno EINVAL for an unknown level, or EAGAIN when called from a
 * signal handler that interrupted the allocator. */
HAKMEM_API int hakmem_apply_pressure(int level);

/* Give back what can be given back now, as a CRITICAL pressure level does
 * but without changing the mode: every thread's cache, cached superslabs
 * and large mappings, empty slabs, and free pages inside partly used slabs
 * (MADV_DONTNEED). Returns 1 if memory was released, else 0 (the contract
 * of malloc_trim, which calls it). */
HAKMEM_API int hakmem_trim(void);

/* unshare(2) and setns(2) with the shim's helper threads parked: what
 * libhakmem exports as unshare and setns, so that programs that change
 * user or mount namespaces (which the kernel refuses to a multithreaded
 * process) keep working under the shim. The threads come back by
 * themselves afterwards. Same contract as the system calls. */
HAKMEM_API int hakmem_unshare(int flags);
HAKMEM_API int hakmem_setns(int fd, int nstype);

#ifdef __cplusplus
}
#endif

#endif
