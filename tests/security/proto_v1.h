/* proto_v1.h: the wire layout of protocol version 1 (hakmem 0.1.0, the
 * layout of main before the security work), frozen here so that
 * sec_attack's old-client speaks exactly what an old shim in a
 * long-running container speaks, whatever proto/ says today. Copied from
 * that version's proto/hakmem_proto.h; never edit. */
#ifndef HAKMEM_SEC_PROTO_V1_H
#define HAKMEM_SEC_PROTO_V1_H

#include <stdint.h>

#define V1_MAGIC4(a, b, c, d) \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define V1_RING_MAGIC    V1_MAGIC4('H', 'K', 'R', 'G')
#define V1_STATS_MAGIC   V1_MAGIC4('H', 'K', 'S', 'T')
#define V1_HELLO_MAGIC   V1_MAGIC4('H', 'K', 'H', 'I')
#define V1_WELCOME_MAGIC V1_MAGIC4('H', 'K', 'W', 'E')

/* v1 stats-page counters, in v1 order (index = position) */
#define V1_STATS_COUNTERS(X) \
    X(lean_decommit) X(lean_retire) X(madvise_calls) X(mmap_calls) X(munmap_calls) \
    X(bytes_decommitted) X(bytes_committed) X(bytes_in_use) X(superslabs_live)      \
    X(superslabs_cached) X(mode_switches)
#define V1_STAT_COUNT 11

struct v1_ring_info {
    uint32_t magic, version, header_size, slot_count, slot_size, table_cap, entry_size, daemon_pid;
    uint64_t slot_off, table_off, total_size, generation, heartbeat_period_ns, created_ns;
    uint64_t reserved[6];
};
_Static_assert(sizeof(struct v1_ring_info) == 128, "v1 ring info");

struct v1_stats_page {
    uint32_t magic, version, size, pid;
    volatile uint64_t seq, updated_ns;
    volatile uint32_t mode, last_level, ncounters, flags;
    volatile uint64_t counter[32];
};
_Static_assert(sizeof(struct v1_stats_page) == 304, "v1 stats page");

struct v1_hello {
    uint32_t magic, version, size, flags, pid, stats_size, mode, reserved0;
    char comm[16];
    uint64_t reserved[2];
};
_Static_assert(sizeof(struct v1_hello) == 64, "v1 hello");

struct v1_welcome {
    uint32_t magic, version, size;
    int32_t status;
    uint64_t cgroup_key, pid_key, ring_size, heartbeat_period_ns, generation;
    uint32_t flags, reserved;
};
_Static_assert(sizeof(struct v1_welcome) == 64, "v1 welcome");

#endif
