/* hakmem_proto.h: the contract between the shim, hakmemd and hakmemctl.
 * Layouts only: fixed-width fields, a magic and a version on every
 * structure, and _Static_assert on every size and offset the other side
 * relies on. Every reader validates sizes and bounds before use and
 * treats the other side as untrusted. Code that reads and writes these
 * layouts lives in ring.c (the ring) and msg.c (messages, stats page);
 * nothing here allocates, logs or makes a system call.
 *
 * All integers are host-endian (both sides run on one host). Times are
 * CLOCK_MONOTONIC nanoseconds. Sizes are bytes.
 *
 * Where things travel
 *   ring        memfd made by hakmemd, mapped read-write by it; every
 *               client gets one read-only fd (SCM_RIGHTS in the welcome)
 *               and maps it PROT_READ. Sealed F_SEAL_SHRINK|F_SEAL_GROW so
 *               a client's mapping can never SIGBUS, then, once hakmemd
 *               has its writable mapping, F_SEAL_FUTURE_WRITE|F_SEAL_SEAL
 *               and mode 0400: the kernel refuses every new way to write
 *               it (reopening /proc/self/fd/N, write(), mmap or mprotect
 *               PROT_WRITE, fallocate), to root in a container as well.
 *   hello       client -> hakmemd on hakmemd.sock (SOCK_SEQPACKET), with
 *               the client's stats memfd (SCM_RIGHTS).
 *   welcome     hakmemd -> client, with the ring fd (SCM_RIGHTS).
 *   stats page  memfd made by the shim (sealed against shrink and grow),
 *               written by the shim, mapped and read by hakmemd.
 *   ctl req/resp hakmemctl <-> hakmemd on control.sock (SOCK_SEQPACKET).
 * One datagram never exceeds HAKMEM_MSG_MAX bytes.
 */
#ifndef HAKMEM_PROTO_H
#define HAKMEM_PROTO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "hakmem.h" /* enum hakmem_level, enum hakmem_mode: one definition, public */

/* Versions. HAKMEM_PROTO_VERSION is the version of the messages (hello,
 * welcome, control) and of the stats page; hakmemd serves shims of
 * versions HAKMEM_PROTO_VERSION_MIN..HAKMEM_PROTO_VERSION (a shim in a
 * long-running container outlives a daemon upgrade) and answers each in
 * its own version. The ring has a layout version of its own, changed
 * only by additions that older readers ignore (fields taken from
 * `reserved`), so that one ring serves every shim version.
 *   1  hakmem 0.1.0
 *   2  the stats page's counters in the order of HAKMEM_COUNTERS
 *      (hakmem.h); CLIENTS records carry a bitmask of the counters
 *      present; a control connection refused before its request was read
 *      gets one datagram of command 0 saying why; the ring header
 *      publishes the current heartbeat period (heartbeat_period_ns);
 *      METRICS requests may set HAKMEM_CTL_REQ_F_PER_PROCESS (an
 *      addition within version 2: a request without it is served as
 *      before, less the per-process series).
 * The version of the software is elsewhere (hakmem_version.h). */
#define HAKMEM_PROTO_VERSION     2
#define HAKMEM_PROTO_VERSION_MIN 1
#define HAKMEM_RING_VERSION      1

/* Readers on a PROT_READ mapping may only load: a 64-bit atomic must be a
 * plain load, never a lock or a compare-exchange that writes. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && _Alignof(_Atomic uint64_t) == 8,
               "_Atomic uint64_t must have the layout of uint64_t");
_Static_assert(sizeof(_Atomic uint32_t) == 4, "_Atomic uint32_t must be 4 bytes");

/* Pressure levels (docs/ARCHITECTURE.md, "Modes and levels"): what a cgroup's shims should do.
 * NONE -> FAST; LOW -> LEAN policy from now on; MEDIUM -> LEAN and
 * decommit free memory now; CRITICAL -> as MEDIUM, eager (DONTNEED)
 * decommit and thread caches trimmed. enum hakmem_level (HAKMEM_LEVEL_*)
 * and the shim's modes, enum hakmem_mode (HAKMEM_MODE_FAST/LEAN), are
 * defined once, in the public hakmem.h (shim/include/), because
 * hakmem_apply_pressure() takes the same values; their wire values are
 * pinned here. */
#define HAKMEM_LEVEL_COUNT 4
#define HAKMEM_MODE_COUNT 2
_Static_assert(HAKMEM_LEVEL_NONE == 0 && HAKMEM_LEVEL_LOW == 1 && HAKMEM_LEVEL_MEDIUM == 2
               && HAKMEM_LEVEL_CRITICAL == 3, "level values are on the wire");
_Static_assert(HAKMEM_MODE_FAST == 0 && HAKMEM_MODE_LEAN == 1, "mode values are on the wire");

/* Why the daemon published a level (informational; shown by hakmemctl). */
#define HAKMEM_REASONS(X)                                                   \
    X(NONE, "none")               /* unspecified */                         \
    X(BPF_RECLAIM, "bpf_reclaim") /* memcg reclaim seen by the BPF source */ \
    X(BPF_OOM, "bpf_oom")         /* memcg OOM victim marked */             \
    X(PSI, "psi")                 /* PSI trigger or pressure_level event */ \
    X(USAGE, "usage")             /* usage close to the limit */            \
    X(CALM, "calm")               /* pressure gone for the calm period */   \
    X(OVERRIDE, "operator")       /* hakmemctl lean on/off/auto */          \
    X(STARTUP, "startup")         /* initial state of a cgroup */           \
    X(SHUTDOWN, "shutdown")       /* daemon stopping: levels reset */ \
    X(MEMORY_EVENTS, "memory_events") /* v2 memory.events: high, max, oom_kill rose */
enum hakmem_reason {
#define HAKMEM_X_ENUM(id, name) HAKMEM_REASON_##id,
    HAKMEM_REASONS(HAKMEM_X_ENUM)
#undef HAKMEM_X_ENUM
    HAKMEM_REASON_COUNT
};

#define HAKMEM_MAGIC4(a, b, c, d) \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define HAKMEM_RING_MAGIC     HAKMEM_MAGIC4('H', 'K', 'R', 'G')
#define HAKMEM_STATS_MAGIC    HAKMEM_MAGIC4('H', 'K', 'S', 'T')
#define HAKMEM_HELLO_MAGIC    HAKMEM_MAGIC4('H', 'K', 'H', 'I')
#define HAKMEM_WELCOME_MAGIC  HAKMEM_MAGIC4('H', 'K', 'W', 'E')
#define HAKMEM_CTL_REQ_MAGIC  HAKMEM_MAGIC4('H', 'K', 'C', 'Q')
#define HAKMEM_CTL_RESP_MAGIC HAKMEM_MAGIC4('H', 'K', 'C', 'R')

/* Largest datagram on either socket. Receivers read into a buffer of this
 * size and treat MSG_TRUNC as "oversized". 4 KiB holds every fixed
 * message many times over and one page of control payload. */
#define HAKMEM_MSG_MAX 4096

/* Every message starts with this. */
struct hakmem_msg_hdr {
    uint32_t magic;   /* HAKMEM_*_MAGIC */
    uint32_t version; /* HAKMEM_PROTO_VERSION */
    uint32_t size;    /* bytes of the whole message, equal to the bytes received */
};
_Static_assert(sizeof(struct hakmem_msg_hdr) == 12, "msg hdr size");

/* ---------------------------------------------------------------------
 * Ring keys: what a ring message or state-table entry is about.
 *   HAKMEM_KEY_ALL      every client (host-wide operator override)
 *   a cgroup id         the memory cgroup's kernfs id, which is the inode
 *                       number of its directory (v1 memory controller on
 *                       hybrid hosts, the cgroup id on pure v2); never has
 *                       the top bit set
 *   HAKMEM_KEY_PID(p)   one process, p in the daemon's pid namespace (the
 *                       welcome tells a client its own pid key)
 * A client follows the entries of its pid key, its cgroup id and
 * HAKMEM_KEY_ALL: the most specific entry with HAKMEM_RING_F_OVERRIDE
 * (pid, cgroup, all) wins; without any override, the cgroup's entry, else
 * a host-wide entry, else NONE. The daemon clears an override by
 * publishing the ring key again without the flag (a pid entry without the flag
 * then says nothing; a cgroup entry carries the cgroup's pressure again).
 * ring_resolve() in ring.c implements this rule.
 */
#define HAKMEM_KEY_ALL     UINT64_C(0)
#define HAKMEM_KEY_PID_BIT (UINT64_C(1) << 63)
#define HAKMEM_KEY_PID(pid) (HAKMEM_KEY_PID_BIT | (uint64_t)(uint32_t)(pid))

/* =====================================================================
 * The ring.
 *
 * Region (one memfd, total_size bytes):
 *   [0, header_size)                              struct hakmem_ring_hdr
 *   [slot_off,  slot_off  + slot_count * slot_size)  slots
 *   [table_off, table_off + table_cap  * entry_size) state table
 * slot_count and table_cap are powers of two. slot_size and entry_size
 * may exceed the structs below (later growth without breaking readers);
 * readers index with the sizes from the header.
 *
 * Messages are numbered 1, 2, 3... ("positions"); message n lives in slot
 * (n - 1) & (slot_count - 1). head is the number of the last message
 * published completely.
 *
 * Slot protocol (single producer, seqlock per slot):
 *   slot.seq == 2n      the slot holds message n, complete
 *   slot.seq == 2n + 1  message n is being written
 *   slot.seq == 0       never written
 * Writer: seq = 2n+1 (relaxed); release fence; payload words (relaxed);
 *         seq = 2n (release).
 * Reader expecting n: s1 = seq (acquire); s1/2 < n or s1 == 2n+1: EMPTY;
 *         s1/2 > n: LAPPED; else copy payload (relaxed), acquire fence,
 *         s2 = seq (relaxed); s2 != s1: LAPPED (overwritten while read,
 *         the copy is torn and dropped).
 *
 * Publish order: state-table entry, slot, head (release), futex word
 * (release increment), then FUTEX_WAKE (shared, not private).
 * Waiting: f = futex word (acquire); read until EMPTY; FUTEX_WAIT(f).
 * Closing: the daemon publishes its last messages, then sets state to
 *         CLOSED and bumps the futex word. A reader that loads state
 *         (acquire) before it drains sees every message published before
 *         the close in that drain; checking state after draining can
 *         miss the last ones.
 * Resync (late join or LAPPED): next = head + 1, then read the table
 * entries of one's keys. Messages carry absolute levels, so a message
 * seen both in the table and again in the slots is harmless.
 *
 * Invariants: the info block never changes after ring_init; only the
 * daemon writes to the region; readers never write to it (they map it
 * PROT_READ) and copy the info block once, then use only their copy.
 * ===================================================================== */

#define HAKMEM_RING_ALIGN     64        /* region start, header, slot and entry alignment */
#define HAKMEM_RING_PAGE      4096      /* total_size is rounded up to this */
/* Bounds a reader enforces. Far above what a daemon needs (a few hundred
 * slots, one entry per cgroup in use), small enough that a reader's
 * probe of the table stays cheap and the region a few MiB. */
#define HAKMEM_RING_MAX_SLOTS 65536     /* slots (4 MiB of 64-byte slots) */
#define HAKMEM_RING_MAX_TABLE 65536     /* entries: cgroups and pid overrides at once */
#define HAKMEM_RING_MAX_ELEM  4096      /* bytes: largest slot_size / entry_size (growth room) */
#define HAKMEM_RING_MAX_SIZE  (UINT64_C(1) << 30) /* bytes: sanity bound on total_size */
#define HAKMEM_RING_MAX_POS   (UINT64_C(1) << 62) /* positions beyond this are corrupt
                                                    (2^62 messages: never reached) */
#define HAKMEM_RING_MIN_PERIOD UINT64_C(1000000)       /* ns: 1 ms, the shortest sane heartbeat period */
#define HAKMEM_RING_MAX_PERIOD UINT64_C(600000000000)  /* ns: 10 min, the longest */

/* ring header state */
#define HAKMEM_RING_STATE_INIT   0      /* being initialised */
#define HAKMEM_RING_STATE_LIVE   1      /* daemon publishing */
#define HAKMEM_RING_STATE_CLOSED 2      /* daemon stopped: reconnect now */

/* Immutable geometry, written once by ring_init before the fd is handed
 * out. No atomics: readers memcpy it once and validate the copy. */
struct hakmem_ring_info {
    uint32_t magic;               /* HAKMEM_RING_MAGIC */
    uint32_t version;             /* HAKMEM_RING_VERSION */
    uint32_t header_size;         /* bytes, >= sizeof(struct hakmem_ring_hdr), multiple of 64 */
    uint32_t slot_count;          /* slots, power of two */
    uint32_t slot_size;           /* bytes per slot, >= sizeof(struct hakmem_ring_slot) */
    uint32_t table_cap;           /* state-table entries, power of two */
    uint32_t entry_size;          /* bytes per entry, >= sizeof(struct hakmem_ring_entry) */
    uint32_t daemon_pid;          /* hakmemd's pid in its own namespace (informational) */
    uint64_t slot_off;            /* bytes from region start to slot 0 */
    uint64_t table_off;           /* bytes from region start to entry 0 */
    uint64_t total_size;          /* bytes of the region (<= the memfd size) */
    uint64_t generation;          /* random per daemon start: tells a restarted daemon */
    uint64_t heartbeat_period_ns; /* ns between heartbeat updates at start (the
                                     header's own field follows reloads) */
    uint64_t created_ns;          /* monotonic ns at ring_init */
    uint64_t reserved[6];         /* zero */
};
_Static_assert(sizeof(struct hakmem_ring_info) == 128, "ring info size");
_Static_assert(offsetof(struct hakmem_ring_info, magic) == 0, "ring info magic");
_Static_assert(offsetof(struct hakmem_ring_info, version) == 4, "ring info version");
_Static_assert(offsetof(struct hakmem_ring_info, header_size) == 8, "ring info header_size");
_Static_assert(offsetof(struct hakmem_ring_info, slot_count) == 12, "ring info slot_count");
_Static_assert(offsetof(struct hakmem_ring_info, slot_size) == 16, "ring info slot_size");
_Static_assert(offsetof(struct hakmem_ring_info, table_cap) == 20, "ring info table_cap");
_Static_assert(offsetof(struct hakmem_ring_info, entry_size) == 24, "ring info entry_size");
_Static_assert(offsetof(struct hakmem_ring_info, daemon_pid) == 28, "ring info daemon_pid");
_Static_assert(offsetof(struct hakmem_ring_info, slot_off) == 32, "ring info slot_off");
_Static_assert(offsetof(struct hakmem_ring_info, table_off) == 40, "ring info table_off");
_Static_assert(offsetof(struct hakmem_ring_info, total_size) == 48, "ring info total_size");
_Static_assert(offsetof(struct hakmem_ring_info, generation) == 56, "ring info generation");
_Static_assert(offsetof(struct hakmem_ring_info, heartbeat_period_ns) == 64, "ring info hb period");
_Static_assert(offsetof(struct hakmem_ring_info, created_ns) == 72, "ring info created_ns");

/* The header: the info block, then one cache line the daemon writes.
 * futex is 4-byte aligned as FUTEX_WAIT requires; it only grows (mod 2^32),
 * by one per publish and on close.
 * heartbeat_period_ns is the period now (a reload may change it), stored
 * before the daemon starts beating at that period; 0 in rings of daemons
 * that do not publish it (then info.heartbeat_period_ns holds). The daemon
 * never beats more slowly than info.heartbeat_period_ns, so that readers
 * that know only the info block stay right. */
struct hakmem_ring_hdr {
    struct hakmem_ring_info info;   /* immutable */
    _Atomic uint32_t futex;         /* wake word: bumped after every publish */
    _Atomic uint32_t state;         /* HAKMEM_RING_STATE_* */
    _Atomic uint64_t head;          /* position of the last complete message */
    _Atomic uint64_t heartbeat_ns;  /* monotonic ns of the daemon's last tick */
    _Atomic uint64_t heartbeat_period_ns; /* ns, the period now; 0: see info */
    uint64_t reserved[12];          /* zero */
};
_Static_assert(sizeof(struct hakmem_ring_hdr) == 256, "ring hdr size");
_Static_assert(offsetof(struct hakmem_ring_hdr, futex) == 128, "ring hdr futex");
_Static_assert(offsetof(struct hakmem_ring_hdr, state) == 132, "ring hdr state");
_Static_assert(offsetof(struct hakmem_ring_hdr, head) == 136, "ring hdr head");
_Static_assert(offsetof(struct hakmem_ring_hdr, heartbeat_ns) == 144, "ring hdr heartbeat");
_Static_assert(offsetof(struct hakmem_ring_hdr, heartbeat_period_ns) == 152, "ring hdr hb period");

/* A level change, as carried in a slot and kept in a state-table entry.
 * Plain struct: the shared copies are three 64-bit atomic words with this
 * exact image (HAKMEM_RING_MSG_WORDS). */
struct hakmem_ring_msg {
    uint64_t ring_key; /* HAKMEM_KEY_ALL, a cgroup id, or HAKMEM_KEY_PID(p) */
    uint64_t ts_ns;    /* monotonic ns of the decision */
    uint8_t level;     /* enum hakmem_level */
    uint8_t flags;     /* HAKMEM_RING_F_* */
    uint16_t reason;   /* enum hakmem_reason */
    uint32_t reserved; /* zero */
};
#define HAKMEM_RING_MSG_WORDS 3
#define HAKMEM_RING_F_OVERRIDE 0x01u /* forced by an operator (hakmemctl lean) */
#define HAKMEM_RING_F_MASK     0x01u
_Static_assert(sizeof(struct hakmem_ring_msg) == HAKMEM_RING_MSG_WORDS * 8, "ring msg size");
_Static_assert(offsetof(struct hakmem_ring_msg, ring_key) == 0, "ring msg ring_key");
_Static_assert(offsetof(struct hakmem_ring_msg, ts_ns) == 8, "ring msg ts");
_Static_assert(offsetof(struct hakmem_ring_msg, level) == 16, "ring msg level");
_Static_assert(offsetof(struct hakmem_ring_msg, flags) == 17, "ring msg flags");
_Static_assert(offsetof(struct hakmem_ring_msg, reason) == 18, "ring msg reason");

/* One slot: a cache line, so the producer writing slot i+1 does not
 * disturb readers of slot i. */
struct hakmem_ring_slot {
    _Atomic uint64_t seq;                          /* see "Slot protocol" */
    _Atomic uint64_t word[HAKMEM_RING_MSG_WORDS];  /* image of struct hakmem_ring_msg */
    uint64_t reserved[4];                          /* zero */
};
_Static_assert(sizeof(struct hakmem_ring_slot) == 64, "ring slot size");
_Static_assert(offsetof(struct hakmem_ring_slot, word) == 8, "ring slot words");

/* State-table entry: the latest message for one key.
 * Open addressing: a key lives at the first entry, probing linearly from
 * hakmem_ring_hash(key) & (table_cap - 1), whose key matches, and no
 * unused entry (seq == 0) precedes it on that path. Keys are never
 * removed (a gone cgroup is published back to NONE).
 * seq counts writes: 0 unused, odd being written, even stable; +2 per
 * write. Same seqlock discipline as the slots. */
struct hakmem_ring_entry {
    _Atomic uint64_t seq;                          /* seqlock, 0 = unused */
    _Atomic uint64_t word[HAKMEM_RING_MSG_WORDS];  /* image of struct hakmem_ring_msg */
    _Atomic uint64_t pos;                          /* position of the message that set it */
    uint64_t reserved[3];                          /* zero */
};
_Static_assert(sizeof(struct hakmem_ring_entry) == 64, "ring entry size");
_Static_assert(offsetof(struct hakmem_ring_entry, word) == 8, "ring entry words");
_Static_assert(offsetof(struct hakmem_ring_entry, pos) == 32, "ring entry pos");

/* The probe start for a key: Fibonacci hashing, top 32 bits. Part of the
 * contract: producer and readers must agree. */
static inline uint32_t hakmem_ring_hash(uint64_t key)
{
    return (uint32_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 32);
}

/* =====================================================================
 * The stats page: written by the shim (one writer at a time: the shim's
 * listener thread, or whoever holds the shim's stats lock), read by the
 * daemon, which treats it as untrusted. A seqlock (seq odd while being
 * written) gives readers consistent snapshots; every field a reader takes
 * under the seqlock is atomic. magic, version, size and pid are written
 * once before the hello.
 * ===================================================================== */

/* The counters: HAKMEM_COUNTERS in hakmem.h is the one list (name, doc);
 * counter[i] of the page is the i-th of that list (HAKMEM_COUNTER_ID).
 * What each one is for a scraper is given here, by name: a counter added
 * to hakmem.h without its HAKMEM_COUNTER_KIND_ line below does not
 * compile.
 *   TOTAL  only grows: a Prometheus counter, hakmem_client_NAME_total
 *   GAUGE  goes up and down: a gauge, hakmem_client_NAME
 *   STATE  mode and level: shown on their own (hakmem_client_mode) */
enum hakmem_counter_id {
#define HAKMEM_X_ENUM(name, doc) HAKMEM_COUNTER_##name,
    HAKMEM_COUNTERS(HAKMEM_X_ENUM)
#undef HAKMEM_X_ENUM
    HAKMEM_COUNTER_COUNT
};
#define HAKMEM_COUNTER_ID(name) HAKMEM_COUNTER_##name
enum hakmem_counter_kind { HAKMEM_KIND_TOTAL, HAKMEM_KIND_GAUGE, HAKMEM_KIND_STATE };
#define HAKMEM_COUNTER_KIND_mmap_calls        HAKMEM_KIND_TOTAL
#define HAKMEM_COUNTER_KIND_munmap_calls      HAKMEM_KIND_TOTAL
#define HAKMEM_COUNTER_KIND_madvise_calls     HAKMEM_KIND_TOTAL
#define HAKMEM_COUNTER_KIND_superslabs_live   HAKMEM_KIND_GAUGE
#define HAKMEM_COUNTER_KIND_superslabs_cached HAKMEM_KIND_GAUGE
#define HAKMEM_COUNTER_KIND_large_live        HAKMEM_KIND_GAUGE
#define HAKMEM_COUNTER_KIND_large_cached      HAKMEM_KIND_GAUGE
#define HAKMEM_COUNTER_KIND_bytes_in_use      HAKMEM_KIND_GAUGE
#define HAKMEM_COUNTER_KIND_bytes_committed   HAKMEM_KIND_GAUGE
#define HAKMEM_COUNTER_KIND_bytes_decommitted HAKMEM_KIND_TOTAL
#define HAKMEM_COUNTER_KIND_lean_decommit     HAKMEM_KIND_TOTAL
#define HAKMEM_COUNTER_KIND_lean_retire       HAKMEM_KIND_TOTAL
#define HAKMEM_COUNTER_KIND_mode_switches     HAKMEM_KIND_TOTAL
#define HAKMEM_COUNTER_KIND_mode              HAKMEM_KIND_STATE
#define HAKMEM_COUNTER_KIND_level             HAKMEM_KIND_STATE
#define HAKMEM_COUNTER_KIND_guard_allocs      HAKMEM_KIND_TOTAL
#define HAKMEM_COUNTER_KIND_lean_decommit_eager HAKMEM_KIND_TOTAL
#define HAKMEM_COUNTER_KIND_tcache_stolen     HAKMEM_KIND_TOTAL
#define HAKMEM_COUNTER_KIND_bytes_lazy        HAKMEM_KIND_GAUGE
#define HAKMEM_COUNTER_KIND_depot_spills      HAKMEM_KIND_TOTAL
#define HAKMEM_COUNTER_KIND(name) HAKMEM_COUNTER_KIND_##name

/* Version 1 pages (hakmem 0.1.0) held these counters, in this order;
 * frozen, for reading the pages of old shims (proto_stats_read). */
#define HAKMEM_STATS_COUNTERS_V1(X)                                              \
    X(lean_decommit) X(lean_retire) X(madvise_calls) X(mmap_calls) X(munmap_calls) \
    X(bytes_decommitted) X(bytes_committed) X(bytes_in_use) X(superslabs_live)      \
    X(superslabs_cached) X(mode_switches)

#define HAKMEM_STATS_MAX_COUNTERS 32     /* room to add counters without moving anything */
#define HAKMEM_STATS_MAX_SIZE     65536  /* bytes: largest stats memfd the daemon maps (the
                                            page is 304 bytes; shims round up to a page) */
_Static_assert(HAKMEM_COUNTER_COUNT <= HAKMEM_STATS_MAX_COUNTERS, "too many counters");

struct hakmem_stats_page {
    uint32_t magic;                 /* HAKMEM_STATS_MAGIC */
    uint32_t version;               /* HAKMEM_PROTO_VERSION (1: counters in v1 order) */
    uint32_t size;                  /* bytes: sizeof(struct hakmem_stats_page) */
    uint32_t pid;                   /* in the shim's pid namespace */
    _Atomic uint64_t seq;           /* seqlock: odd while the shim writes */
    _Atomic uint64_t updated_ns;    /* monotonic ns of the last write */
    _Atomic uint32_t mode;          /* enum hakmem_mode */
    _Atomic uint32_t last_level;    /* enum hakmem_level last applied */
    _Atomic uint32_t ncounters;     /* valid entries in counter[] */
    _Atomic uint32_t flags;         /* HAKMEM_STATS_F_* */
    _Atomic uint64_t counter[HAKMEM_STATS_MAX_COUNTERS]; /* index: enum hakmem_counter_id */
};
#define HAKMEM_STATS_F_LEAN_ENV 0x01u /* HAKMEM_SS_MEM_LEAN=1 chose the start mode */
#define HAKMEM_STATS_F_DAEMON   0x02u /* the mode follows the daemon */
#define HAKMEM_STATS_F_MASK     0x03u
_Static_assert(sizeof(struct hakmem_stats_page) == 304, "stats page size");
_Static_assert(offsetof(struct hakmem_stats_page, pid) == 12, "stats pid");
_Static_assert(offsetof(struct hakmem_stats_page, seq) == 16, "stats seq");
_Static_assert(offsetof(struct hakmem_stats_page, updated_ns) == 24, "stats updated_ns");
_Static_assert(offsetof(struct hakmem_stats_page, mode) == 32, "stats mode");
_Static_assert(offsetof(struct hakmem_stats_page, last_level) == 36, "stats last_level");
_Static_assert(offsetof(struct hakmem_stats_page, ncounters) == 40, "stats ncounters");
_Static_assert(offsetof(struct hakmem_stats_page, counter) == 48, "stats counters");
_Static_assert(offsetof(struct hakmem_stats_page, counter[HAKMEM_COUNTER_ID(mmap_calls)]) == 48,
               "stats mmap_calls");
_Static_assert(offsetof(struct hakmem_stats_page, counter[HAKMEM_COUNTER_ID(level)]) == 160,
               "stats level");

/* =====================================================================
 * Rendezvous (hakmemd.sock, SOCK_SEQPACKET): one hello, one welcome.
 * ===================================================================== */

#define HAKMEM_COMM_LEN 16 /* as TASK_COMM_LEN, NUL-terminated */

struct hakmem_hello {
    uint32_t magic;      /* HAKMEM_HELLO_MAGIC */
    uint32_t version;    /* the shim's, HAKMEM_PROTO_VERSION_MIN..HAKMEM_PROTO_VERSION */
    uint32_t size;       /* bytes: sizeof(struct hakmem_hello) */
    uint32_t flags;      /* HAKMEM_HELLO_F_* */
    uint32_t pid;        /* in the client's namespace; informational, the daemon uses SO_PEERCRED */
    uint32_t stats_size; /* bytes of the stats memfd sent with SCM_RIGHTS; 0 without one */
    uint32_t mode;       /* enum hakmem_mode the shim runs in now */
    uint32_t reserved0;  /* zero */
    char comm[HAKMEM_COMM_LEN]; /* process name, NUL-terminated */
    uint64_t reserved[2];       /* zero */
};
#define HAKMEM_HELLO_F_STATS    0x01u /* a stats memfd is attached */
#define HAKMEM_HELLO_F_LEAN_ENV 0x02u /* HAKMEM_SS_MEM_LEAN=1 */
#define HAKMEM_HELLO_F_MASK     0x03u
_Static_assert(sizeof(struct hakmem_hello) == 64, "hello size");
_Static_assert(offsetof(struct hakmem_hello, flags) == 12, "hello flags");
_Static_assert(offsetof(struct hakmem_hello, pid) == 16, "hello pid");
_Static_assert(offsetof(struct hakmem_hello, stats_size) == 20, "hello stats_size");
_Static_assert(offsetof(struct hakmem_hello, mode) == 24, "hello mode");
_Static_assert(offsetof(struct hakmem_hello, comm) == 32, "hello comm");

struct hakmem_welcome {
    uint32_t magic;               /* HAKMEM_WELCOME_MAGIC */
    uint32_t version;             /* the hello's (a refusal of an unknown version: ours) */
    uint32_t size;                /* bytes: sizeof(struct hakmem_welcome) */
    int32_t status;               /* 0, or negative errno: refused, no fd attached.
                                     -EUSERS: too many clients of this uid;
                                     -ENOSPC: max_clients reached;
                                     -EMFILE: hakmemd is out of descriptors;
                                     -EPROTONOSUPPORT: a version it does not serve */
    uint64_t cgroup_id;          /* the client's memory cgroup id (HAKMEM_KEY_ALL if unknown) */
    uint64_t pid_key;             /* HAKMEM_KEY_PID(the client's pid as the daemon sees it) */
    uint64_t ring_size;           /* bytes to map from the ring fd */
    uint64_t heartbeat_period_ns; /* as in the ring header */
    uint64_t generation;          /* as in the ring header */
    uint32_t flags;               /* zero (none defined) */
    uint32_t reserved;            /* zero */
};
_Static_assert(sizeof(struct hakmem_welcome) == 64, "welcome size");
_Static_assert(offsetof(struct hakmem_welcome, status) == 12, "welcome status");
_Static_assert(offsetof(struct hakmem_welcome, cgroup_id) == 16, "welcome cgroup_id");
_Static_assert(offsetof(struct hakmem_welcome, pid_key) == 24, "welcome pid_key");
_Static_assert(offsetof(struct hakmem_welcome, ring_size) == 32, "welcome ring_size");
_Static_assert(offsetof(struct hakmem_welcome, heartbeat_period_ns) == 40, "welcome hb period");
_Static_assert(offsetof(struct hakmem_welcome, generation) == 48, "welcome generation");

/* =====================================================================
 * Control (control.sock, SOCK_SEQPACKET): one request, then one or more
 * response datagrams; every one but the last has HAKMEM_CTL_F_MORE.
 * ===================================================================== */

enum hakmem_ctl_cmd {
    HAKMEM_CTL_REFUSED = 0, /* responses only: the connection was refused before its
                               request was read; status says why, a TEXT payload in words */
    HAKMEM_CTL_STATUS = 1,  /* per-cgroup levels: records hakmem_ctl_cgroup */
    HAKMEM_CTL_CLIENTS = 2, /* connected clients: records hakmem_ctl_client */
    HAKMEM_CTL_LEAN = 3,    /* set or clear an override: no payload */
    HAKMEM_CTL_METRICS = 4, /* Prometheus text exposition */
};
#define HAKMEM_CTL_CMD_MAX 4

enum hakmem_ctl_target {
    HAKMEM_CTL_TARGET_ALL = 0,    /* every client; key ignored */
    HAKMEM_CTL_TARGET_CGROUP = 1, /* key is a cgroup id */
    HAKMEM_CTL_TARGET_PID = 2,    /* key is a pid in the daemon's namespace */
};
#define HAKMEM_CTL_TARGET_MAX 2

enum hakmem_override {
    HAKMEM_OVERRIDE_AUTO = 0, /* follow pressure (clear the override) */
    HAKMEM_OVERRIDE_ON = 1,   /* force LEAN */
    HAKMEM_OVERRIDE_OFF = 2,  /* force FAST */
};
#define HAKMEM_OVERRIDE_MAX 2

struct hakmem_ctl_req {
    uint32_t magic;    /* HAKMEM_CTL_REQ_MAGIC */
    uint32_t version;  /* HAKMEM_PROTO_VERSION */
    uint32_t size;     /* bytes: sizeof(struct hakmem_ctl_req) */
    uint16_t command;  /* enum hakmem_ctl_cmd */
    uint16_t flags;    /* HAKMEM_CTL_REQ_F_* */
    uint32_t target;   /* enum hakmem_ctl_target: LEAN's target, or a filter for STATUS/CLIENTS */
    uint32_t mode;     /* enum hakmem_override (LEAN) */
    uint64_t key;      /* cgroup id or pid, per target */
    uint32_t level;    /* level forced by MODE_ON; HAKMEM_LEVEL_NONE = daemon default */
    uint32_t reserved; /* zero */
};
/* METRICS: add the per-process series (labels pid, uid, comm, cgroup).
 * Off by default, since pids are unbounded: a request without the flag
 * (every hakmemctl before it) gets the per-cgroup series only. Daemons
 * before it refuse any flag with -EINVAL; any other command with it is
 * refused the same way. */
#define HAKMEM_CTL_REQ_F_PER_PROCESS 0x0001u
#define HAKMEM_CTL_REQ_F_MASK        0x0001u
_Static_assert(sizeof(struct hakmem_ctl_req) == 40, "ctl req size");
_Static_assert(offsetof(struct hakmem_ctl_req, command) == 12, "ctl req command");
_Static_assert(offsetof(struct hakmem_ctl_req, flags) == 14, "ctl req flags");
_Static_assert(offsetof(struct hakmem_ctl_req, target) == 16, "ctl req target");
_Static_assert(offsetof(struct hakmem_ctl_req, mode) == 20, "ctl req mode");
_Static_assert(offsetof(struct hakmem_ctl_req, key) == 24, "ctl req key");
_Static_assert(offsetof(struct hakmem_ctl_req, level) == 32, "ctl req level");

enum hakmem_ctl_payload {
    HAKMEM_CTL_PAYLOAD_NONE = 0,    /* payload_len 0 */
    HAKMEM_CTL_PAYLOAD_TEXT = 1,    /* UTF-8 text, not NUL-terminated */
    HAKMEM_CTL_PAYLOAD_CGROUPS = 2, /* struct hakmem_ctl_cgroup[] */
    HAKMEM_CTL_PAYLOAD_CLIENTS = 3, /* struct hakmem_ctl_client[] */
};
#define HAKMEM_CTL_PAYLOAD_MAX_TYPE 3
#define HAKMEM_CTL_F_MORE 0x0001u /* more response datagrams follow */
#define HAKMEM_CTL_F_MASK 0x0001u

/* Response datagram: this header, then payload_len bytes. */
struct hakmem_ctl_resp {
    uint32_t magic;        /* HAKMEM_CTL_RESP_MAGIC */
    uint32_t version;      /* HAKMEM_PROTO_VERSION */
    uint32_t size;         /* bytes: header + payload */
    int32_t status;        /* 0, or negative errno */
    uint16_t command;      /* the request's command */
    uint16_t flags;        /* HAKMEM_CTL_F_* */
    uint16_t payload_type; /* enum hakmem_ctl_payload */
    uint16_t record_size;  /* bytes per record; 0 for NONE and TEXT */
    uint32_t payload_len;  /* bytes after the header */
    uint32_t reserved;     /* zero */
};
_Static_assert(sizeof(struct hakmem_ctl_resp) == 32, "ctl resp size");
_Static_assert(offsetof(struct hakmem_ctl_resp, status) == 12, "ctl resp status");
_Static_assert(offsetof(struct hakmem_ctl_resp, command) == 16, "ctl resp command");
_Static_assert(offsetof(struct hakmem_ctl_resp, payload_type) == 20, "ctl resp payload_type");
_Static_assert(offsetof(struct hakmem_ctl_resp, payload_len) == 24, "ctl resp payload_len");
#define HAKMEM_CTL_PAYLOAD_MAX (HAKMEM_MSG_MAX - (uint32_t)sizeof(struct hakmem_ctl_resp))

/* STATUS record: one cgroup the daemon tracks. */
struct hakmem_ctl_cgroup {
    uint64_t ring_key;       /* cgroup id (or HAKMEM_KEY_ALL / a pid key for overrides) */
    uint64_t updated_ns;     /* monotonic ns of the last level change */
    uint8_t level;           /* enum hakmem_level published */
    uint8_t flags;           /* HAKMEM_RING_F_* */
    uint16_t reason;         /* enum hakmem_reason */
    uint32_t nclients;       /* clients registered in this cgroup */
    uint64_t reclaim_events; /* reclaim events seen, since daemon start */
    uint64_t reclaim_ns;     /* ns spent in reclaim, since daemon start */
    uint64_t usage_bytes;    /* memory usage at the last sample */
    uint64_t limit_bytes;    /* memory limit; 0 = none or unknown */
    uint32_t psi_some_avg10; /* PSI some avg10 in 1/100 % (0..10000) */
    uint32_t reserved;       /* zero */
};
_Static_assert(sizeof(struct hakmem_ctl_cgroup) == 64, "ctl cgroup record size");
_Static_assert(offsetof(struct hakmem_ctl_cgroup, level) == 16, "ctl cgroup level");
_Static_assert(offsetof(struct hakmem_ctl_cgroup, nclients) == 20, "ctl cgroup nclients");
_Static_assert(offsetof(struct hakmem_ctl_cgroup, psi_some_avg10) == 56, "ctl cgroup psi");

/* CLIENTS record: one connected shim, with its stats page snapshot. */
struct hakmem_ctl_client {
    uint64_t cgroup_id;       /* the client's cgroup id */
    uint64_t connected_ns;     /* monotonic ns of the hello */
    uint64_t stats_updated_ns; /* monotonic ns of the stats snapshot; 0 = none */
    uint32_t pid;              /* in the daemon's namespace (SO_PEERCRED) */
    uint32_t uid;              /* SO_PEERCRED */
    uint8_t mode;              /* enum hakmem_mode from the stats page */
    uint8_t last_level;        /* enum hakmem_level from the stats page */
    uint8_t override;          /* enum hakmem_override override on this pid */
    uint8_t flags;             /* HAKMEM_STATS_F_* */
    uint32_t counters_present; /* bit i: counter[i] is known (older shims report fewer) */
    char comm[HAKMEM_COMM_LEN];                  /* valid UTF-8 without control
                                                    characters, NUL-terminated */
    uint64_t counter[HAKMEM_STATS_MAX_COUNTERS]; /* index: enum hakmem_counter_id */
};
_Static_assert(sizeof(struct hakmem_ctl_client) == 312, "ctl client record size");
_Static_assert(offsetof(struct hakmem_ctl_client, pid) == 24, "ctl client pid");
_Static_assert(offsetof(struct hakmem_ctl_client, mode) == 32, "ctl client mode");
_Static_assert(offsetof(struct hakmem_ctl_client, comm) == 40, "ctl client comm");
_Static_assert(offsetof(struct hakmem_ctl_client, counter) == 56, "ctl client counters");

#endif
