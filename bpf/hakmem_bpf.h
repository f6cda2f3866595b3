/* hakmem_bpf.h: the contract between bpf/hakmem.bpf.c and its user-space
 * loader (daemon/bpf_source.c): the ring-buffer event, the per-memcg stats
 * record, the enums and the defaults of the load-time tunables.
 *
 * Must not: use anything but fixed-width types (both sides compile it: the
 * BPF side with clang -target bpf and core_types.h, user space with
 * <linux/types.h>), hold code, or change a layout without bumping
 * HAKMEM_BPF_ABI_VERSION (the loader and the object are built together, but
 * a stale object in a build dir must not be misread).
 *
 * Memcg ids: the kernfs node id of the memory cgroup's directory, i.e. the
 * inode number stat(2) reports for it (v1: /sys/fs/cgroup/memory/...; v2:
 * the cgroup directory, where it is also the cgroup id). Times are
 * bpf_ktime_get_ns(), i.e. CLOCK_MONOTONIC in ns.
 */
#ifndef HAKMEM_BPF_H
#define HAKMEM_BPF_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define HAKMEM_BPF_ABI_VERSION 1

/* Event kinds (hakmem_bpf_event.kind). */
enum hakmem_bpf_kind {
	HAKMEM_BPF_EV_PRESSURE = 1, /* a window crossed a threshold */
	HAKMEM_BPF_EV_OOM = 2,      /* a task of the memcg was chosen as an OOM victim */
};

/* Why an event was sent (hakmem_bpf_event.why, a bit set). */
#define HAKMEM_BPF_WHY_EVENTS 0x1u /* win_events >= min_events */
#define HAKMEM_BPF_WHY_STALL  0x2u /* win_stall_ns >= min_stall_ns */
#define HAKMEM_BPF_WHY_SCAN   0x4u /* win_scanned >= min_scan_pages */
#define HAKMEM_BPF_WHY_OOM    0x8u /* an OOM victim */

/* Defaults of the tunables (struct bpf_source_opts documents each).
 * The daemon's reaction target is 100 ms from pressure onset to decommit:
 * a 100 ms window with a low event count notifies within a few ms of the
 * first reclaims; 250 ms between notifications keeps a cgroup stuck at its
 * limit to 4 wakeups a second, enough for the policy's hysteresis to see
 * that the pressure goes on. */
#define HAKMEM_BPF_DEF_WINDOW_NS       100000000ull /* 100 ms */
#define HAKMEM_BPF_DEF_MIN_EVENTS      4ull         /* reclaim entries per window */
#define HAKMEM_BPF_DEF_MIN_STALL_NS    2000000ull   /* 2 ms in reclaim per window */
#define HAKMEM_BPF_DEF_MIN_SCAN_PAGES  2048ull      /* 8 MiB scanned per window */
#define HAKMEM_BPF_DEF_MIN_INTERVAL_NS 250000000ull /* 250 ms */

/* Capacity of the maps `watched` and `stats` (memcgs). A host runs a few
 * hundred memcgs at most; the rest is room for churn. bpf_source_watch()
 * fails with -E2BIG beyond it; `stats` is an LRU and forgets the least
 * recently active memcg instead. */
#define HAKMEM_BPF_MAX_MEMCGS 4096

/* Kinds of reclaim tracked per task between begin and end. */
#define HAKMEM_BPF_RECLAIM_DIRECT 0u /* vmscan:mm_vmscan_direct_reclaim_* */
#define HAKMEM_BPF_RECLAIM_MEMCG  1u /* vmscan:mm_vmscan_memcg_reclaim_* */

/* Per-memcg record, map `stats` (key: __u64 cgroup id). Updated by BPF with
 * atomic adds from any CPU; a reader may see a record mid-update (each
 * field is consistent on its own, fields not with each other). The window
 * fields are reset by whichever CPU first sees the window expire; an add
 * racing with that reset may be lost (a few events, never a wrong id). */
struct hakmem_memcg_stats {
	__u64 direct_reclaims;  /* direct reclaim entries by tasks of this memcg */
	__u64 memcg_reclaims;   /* memcg limit reclaim entries by tasks of this memcg */
	__u64 reclaim_ns;       /* time in both, ns, summed over tasks (completed ones) */
	__u64 pages_scanned;    /* PGSCAN_DIRECT on this memcg's LRUs, pages */
	__u64 pages_stolen;     /* PGSTEAL_DIRECT on this memcg's LRUs, pages */
	__u64 kswapd_scanned;   /* PGSCAN_KSWAPD on this memcg's LRUs, pages */
	__u64 kswapd_stolen;    /* PGSTEAL_KSWAPD on this memcg's LRUs, pages */
	__u64 oom_kills;        /* OOM victims in this memcg */
	__u64 first_event_ns;   /* time of the first counted event */
	__u64 last_event_ns;    /* time of the last counted event */
	__u64 notifications;    /* ring-buffer events sent for this memcg */
	__u64 win_start_ns;     /* start of the current window */
	__u64 win_events;       /* reclaim entries in the window */
	__u64 win_stall_ns;     /* reclaim time completed in the window, ns */
	__u64 win_scanned;      /* pages scanned in the window */
	__u64 last_notify_ns;   /* time of the last notification, 0: never */
};

/* Ring-buffer record, map `events`. Sent only when a window crosses a
 * threshold (at most one per min_interval_ns per memcg) or on OOM. */
struct hakmem_bpf_event {
	__u64 cgroup_id;       /* see the top of this file */
	__u64 ts_ns;          /* when the threshold was crossed */
	__u32 kind;           /* enum hakmem_bpf_kind */
	__u32 why;            /* HAKMEM_BPF_WHY_* */
	__u32 pid;            /* thread that crossed it (kernel tid) */
	__u32 abi_version;    /* HAKMEM_BPF_ABI_VERSION */
	__u64 win_start_ns;   /* the window that crossed it ... */
	__u64 win_events;
	__u64 win_stall_ns;
	__u64 win_scanned;    /* ... pages */
	__u64 reclaims;       /* totals since the memcg was first seen: */
	__u64 reclaim_ns;     /*   direct + memcg reclaim entries, time in ns, */
	__u64 pages_scanned;  /*   pages scanned and stolen (direct), */
	__u64 pages_stolen;
	__u64 oom_kills;      /*   OOM victims */
};

_Static_assert(sizeof(struct hakmem_memcg_stats) == 16 * 8, "stats layout");
_Static_assert(sizeof(struct hakmem_bpf_event) == 13 * 8, "event layout");
_Static_assert(__builtin_offsetof(struct hakmem_bpf_event, kind) == 16, "event layout");
_Static_assert(__builtin_offsetof(struct hakmem_bpf_event, win_start_ns) == 32, "event layout");

#endif /* HAKMEM_BPF_H */
