// SPDX-License-Identifier: (MIT OR GPL-2.0)
/* hakmem.bpf.c: reclaim and OOM accounting per memory cgroup, in the kernel.
 *
 * Owns: the maps `stats` (per-memcg counters and the current window),
 * `inflight` (reclaim begin time per task), `watched` (the filter) and the
 * ring buffer `events`, and the programs that fill them:
 *
 *   vmscan:mm_vmscan_direct_reclaim_begin/end  global direct reclaim, charged
 *   vmscan:mm_vmscan_memcg_reclaim_begin/end   memcg limit reclaim, charged
 *       to the memcg of the task that reclaims (its v1 memory cgroup on
 *       hybrid hosts, its cgroup on v2); begin and end are paired per task.
 *   memcg:count_memcg_events                   PGSCAN/PGSTEAL_DIRECT and
 *       _KSWAPD, charged to the memcg whose LRUs were scanned (the memcg
 *       argument), which may be a descendant of the one at its limit.
 *   oom:mark_victim                            charged to the victim's memcg.
 *
 * Each comes twice, from one HAKMEM_TP() line: tp_btf (typed arguments,
 * cheapest) and raw_tp (the same body, arguments read with probe reads);
 * the loader turns one of the two off with bpf_program__set_autoload()
 * after probing. Plain
 * SEC("tracepoint/...") programs are not used: they need tracefs for the
 * event id, and tracefs is not mounted on every host.
 *
 * Kernel >= 5.12 (BPF atomics with fetch/cmpxchg, -mcpu=v3; ring buffer
 * 5.8, tp_btf 5.5). Newer tracepoints are optional, probed by the loader.
 *
 * Must not: wake user space on every event. A memcg wakes the daemon only
 * when its current window crosses a threshold, at most once per
 * min_interval_ns (OOM victims excepted). Must not count memcgs outside
 * `watched` when filter_enabled is set. Must not sleep or loop unbounded:
 * count_memcg_events fires for every memcg vm event (page faults among
 * them), so its program returns after a few compares for the items it does
 * not count (no measurable cost per fault on the test machines).
 */
#include "core_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "hakmem_bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* ---- tunables, set by the loader before load (rodata) ---- */
const volatile __u64 window_ns = HAKMEM_BPF_DEF_WINDOW_NS;
const volatile __u64 min_events = HAKMEM_BPF_DEF_MIN_EVENTS;        /* 0: off */
const volatile __u64 min_stall_ns = HAKMEM_BPF_DEF_MIN_STALL_NS;    /* 0: off */
const volatile __u64 min_scan_pages = HAKMEM_BPF_DEF_MIN_SCAN_PAGES; /* 0: off */
const volatile __u64 min_interval_ns = HAKMEM_BPF_DEF_MIN_INTERVAL_NS;
const volatile __u32 filter_enabled = 0;    /* 1: count only memcgs in `watched` */
const volatile __u32 kswapd_in_window = 0;  /* 1: kswapd scans count toward min_scan_pages */
const volatile __u32 oom_from_vm_events = 0; /* 1: count OOM_KILL items (mark_victim unusable) */

/* ---- counters for the loader (bss) ---- */
__u64 ringbuf_dropped = 0; /* notifications lost: ring buffer full */
__u64 stats_full = 0;      /* events lost: `stats` could not take a new memcg */

/* `stats` is an LRU so that, unfiltered, dead memcgs age out. */
#define MAX_MEMCGS   HAKMEM_BPF_MAX_MEMCGS
#define MAX_INFLIGHT 8192 /* threads inside reclaim at one time */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_MEMCGS);
	__type(key, __u64);   /* memcg id */
	__type(value, __u8);  /* 1 */
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_MEMCGS);
	__type(key, __u64);   /* memcg id */
	__type(value, struct hakmem_memcg_stats);
} stats SEC(".maps");

struct inflight_val {
	__u64 start_ns;
	__u64 memcg_id;
};

/* LRU: a task killed inside reclaim never reaches _end; its entry ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_INFLIGHT);
	__type(key, __u64);   /* tid << 1 | HAKMEM_BPF_RECLAIM_* */
	__type(value, struct inflight_val);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024); /* ~580 events; the daemon drains at once */
} events SEC(".maps");

/* ---- memcg ids ---- */

static __always_inline __u64 kn_id(struct kernfs_node *kn)
{
	if (!kn)
		return 0;
	return BPF_CORE_READ(kn, id);
}

/* The task's memory cgroup: css_set::subsys[memory_cgrp_id]. On hybrid hosts
 * this is the v1 memory hierarchy, which bpf_get_current_cgroup_id() (v2
 * only) cannot see. */
static __always_inline __u64 task_memcg_id(struct task_struct *task)
{
	struct cgroup_subsys_state *css;
	unsigned int idx;

	if (!bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id))
		return 0;
	idx = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	/* index bounded, as clang 14 code must be for the verifier; here it only
	 * forms the address of a probe read, so the verifier never sees it */
	css = BPF_CORE_READ(task, cgroups, subsys[idx & 0xff]);
	if (!css)
		return 0;
	return kn_id(BPF_CORE_READ(css, cgroup, kn));
}

static __always_inline __u64 memcg_id(struct mem_cgroup *memcg)
{
	if (!memcg)
		return 0;
	return kn_id(BPF_CORE_READ(memcg, css.cgroup, kn));
}

static __always_inline bool counted(__u64 id)
{
	if (!id)
		return false;
	if (filter_enabled && !bpf_map_lookup_elem(&watched, &id))
		return false;
	return true;
}

static __always_inline struct hakmem_memcg_stats *get_stats(__u64 id, __u64 now)
{
	struct hakmem_memcg_stats *s, zero = {};

	s = bpf_map_lookup_elem(&stats, &id);
	if (s)
		return s;
	zero.first_event_ns = now;
	zero.win_start_ns = now;
	/* BPF_NOEXIST: another CPU may have just inserted it; use theirs */
	bpf_map_update_elem(&stats, &id, &zero, BPF_NOEXIST);
	s = bpf_map_lookup_elem(&stats, &id);
	if (!s)
		__sync_fetch_and_add(&stats_full, 1);
	return s;
}

/* Opens a new window when the current one has expired. */
static __always_inline void window_roll(struct hakmem_memcg_stats *s, __u64 now)
{
	__u64 start = s->win_start_ns;

	if (now - start < window_ns)
		return;
	/* one CPU resets; an add racing with the reset may be lost */
	if (__sync_val_compare_and_swap(&s->win_start_ns, start, now) != start)
		return;
	s->win_events = 0;
	s->win_stall_ns = 0;
	s->win_scanned = 0;
}

static __always_inline void emit(struct hakmem_memcg_stats *s, __u64 id, __u64 now,
				 __u32 kind, __u32 why)
{
	struct hakmem_bpf_event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&ringbuf_dropped, 1);
		return;
	}
	e->memcg_id = id;
	e->ts_ns = now;
	e->kind = kind;
	e->why = why;
	e->pid = (__u32)bpf_get_current_pid_tgid();
	e->abi_version = HAKMEM_BPF_ABI_VERSION;
	e->win_start_ns = s->win_start_ns;
	e->win_events = s->win_events;
	e->win_stall_ns = s->win_stall_ns;
	e->win_scanned = s->win_scanned;
	e->reclaims = s->direct_reclaims + s->memcg_reclaims;
	e->reclaim_ns = s->reclaim_ns;
	e->pages_scanned = s->pages_scanned;
	e->pages_stolen = s->pages_stolen;
	e->oom_kills = s->oom_kills;
	bpf_ringbuf_submit(e, 0);
	__sync_fetch_and_add(&s->notifications, 1);
}

/* Sends a PRESSURE event if the window has crossed a threshold and the
 * memcg has not been notified within min_interval_ns. */
static __always_inline void maybe_notify(struct hakmem_memcg_stats *s, __u64 id, __u64 now)
{
	__u64 last;
	__u32 why = 0;

	if (min_events && s->win_events >= min_events)
		why |= HAKMEM_BPF_WHY_EVENTS;
	if (min_stall_ns && s->win_stall_ns >= min_stall_ns)
		why |= HAKMEM_BPF_WHY_STALL;
	if (min_scan_pages && s->win_scanned >= min_scan_pages)
		why |= HAKMEM_BPF_WHY_SCAN;
	if (!why)
		return;
	last = s->last_notify_ns;
	if (last && now - last < min_interval_ns)
		return;
	/* one CPU wins the right to notify */
	if (__sync_val_compare_and_swap(&s->last_notify_ns, last, now) != last)
		return;
	emit(s, id, now, HAKMEM_BPF_EV_PRESSURE, why);
}

/* ---- handlers shared by the tp_btf and raw_tp programs ---- */

static __always_inline void on_reclaim_begin(__u32 kind)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct hakmem_memcg_stats *s;
	struct inflight_val v;
	__u64 id, key, now;

	id = task_memcg_id(task);
	if (!counted(id))
		return;
	now = bpf_ktime_get_ns();
	key = ((bpf_get_current_pid_tgid() & 0xffffffffull) << 1) | kind;
	v.start_ns = now;
	v.memcg_id = id;
	bpf_map_update_elem(&inflight, &key, &v, BPF_ANY);

	s = get_stats(id, now);
	if (!s)
		return;
	if (kind == HAKMEM_BPF_RECLAIM_DIRECT)
		__sync_fetch_and_add(&s->direct_reclaims, 1);
	else
		__sync_fetch_and_add(&s->memcg_reclaims, 1);
	s->last_event_ns = now;
	window_roll(s, now);
	__sync_fetch_and_add(&s->win_events, 1);
	maybe_notify(s, id, now);
}

static __always_inline void on_reclaim_end(__u32 kind)
{
	struct hakmem_memcg_stats *s;
	struct inflight_val *v;
	__u64 id, key, now, d;

	key = ((bpf_get_current_pid_tgid() & 0xffffffffull) << 1) | kind;
	v = bpf_map_lookup_elem(&inflight, &key);
	if (!v)
		return; /* began before we attached, or not counted */
	now = bpf_ktime_get_ns();
	d = now - v->start_ns;
	id = v->memcg_id;
	bpf_map_delete_elem(&inflight, &key);

	s = get_stats(id, now);
	if (!s)
		return;
	__sync_fetch_and_add(&s->reclaim_ns, d);
	s->last_event_ns = now;
	window_roll(s, now);
	__sync_fetch_and_add(&s->win_stall_ns, d);
	maybe_notify(s, id, now);
}

static __always_inline void on_oom_victim(__u64 id)
{
	struct hakmem_memcg_stats *s;
	__u64 now;

	if (!counted(id))
		return;
	now = bpf_ktime_get_ns();
	s = get_stats(id, now);
	if (!s)
		return;
	__sync_fetch_and_add(&s->oom_kills, 1);
	s->last_event_ns = now;
	s->last_notify_ns = now; /* OOM bypasses min_interval_ns */
	emit(s, id, now, HAKMEM_BPF_EV_OOM, HAKMEM_BPF_WHY_OOM);
}

/* vm_event_item numbers depend on the kernel config: compare against the
 * relocated values, each guarded (a missing enumerator relocates to 0,
 * which is PGPGIN, and must not match). */
#define ITEM_IS(item, name) \
	(bpf_core_enum_value_exists(enum vm_event_item, name) && \
	 (item) == bpf_core_enum_value(enum vm_event_item, name))

static __always_inline void on_memcg_event(struct mem_cgroup *memcg, int item, __u64 val)
{
	struct hakmem_memcg_stats *s;
	__u64 id, now;
	__u32 what;

	/* the hot path for every other item: five compares and out */
	if (ITEM_IS(item, PGSCAN_DIRECT))
		what = 0;
	else if (ITEM_IS(item, PGSTEAL_DIRECT))
		what = 1;
	else if (ITEM_IS(item, PGSCAN_KSWAPD))
		what = 2;
	else if (ITEM_IS(item, PGSTEAL_KSWAPD))
		what = 3;
	else if (oom_from_vm_events && ITEM_IS(item, OOM_KILL))
		what = 4;
	else
		return;

	id = memcg_id(memcg);
	if (what == 4) {
		on_oom_victim(id);
		return;
	}
	if (!counted(id) || !val)
		return;
	now = bpf_ktime_get_ns();
	s = get_stats(id, now);
	if (!s)
		return;
	s->last_event_ns = now;
	switch (what) {
	case 0:
		__sync_fetch_and_add(&s->pages_scanned, val);
		window_roll(s, now);
		__sync_fetch_and_add(&s->win_scanned, val);
		maybe_notify(s, id, now);
		break;
	case 1:
		__sync_fetch_and_add(&s->pages_stolen, val);
		break;
	case 2:
		__sync_fetch_and_add(&s->kswapd_scanned, val);
		if (kswapd_in_window) {
			window_roll(s, now);
			__sync_fetch_and_add(&s->win_scanned, val);
			maybe_notify(s, id, now);
		}
		break;
	default:
		__sync_fetch_and_add(&s->kswapd_stolen, val);
		break;
	}
}

/* ---- programs ---- */

/* One tracepoint, two programs with the same arguments and the same body:
 * SEC("tp_btf/<tp>") tpb_<name> and SEC("raw_tp/<tp>") raw_<name>, the
 * pair the loader (daemon/bpf_source.c) chooses between. BPF_PROG gives
 * both typed arguments; under raw_tp they are the raw u64 arguments, which
 * the handlers only dereference through BPF_CORE_READ (probe reads). */
#define HAKMEM_TP(tp, name, body, ...)					\
	SEC("tp_btf/" #tp)						\
	int BPF_PROG(tpb_##name, ##__VA_ARGS__)				\
	{								\
		body;							\
		return 0;						\
	}								\
	SEC("raw_tp/" #tp)						\
	int BPF_PROG(raw_##name, ##__VA_ARGS__)				\
	{								\
		body;							\
		return 0;						\
	}

HAKMEM_TP(mm_vmscan_direct_reclaim_begin, direct_begin,
	  on_reclaim_begin(HAKMEM_BPF_RECLAIM_DIRECT), int order, gfp_t gfp_flags)
HAKMEM_TP(mm_vmscan_direct_reclaim_end, direct_end,
	  on_reclaim_end(HAKMEM_BPF_RECLAIM_DIRECT), unsigned long nr_reclaimed)
HAKMEM_TP(mm_vmscan_memcg_reclaim_begin, memcg_begin,
	  on_reclaim_begin(HAKMEM_BPF_RECLAIM_MEMCG), int order, gfp_t gfp_flags)
HAKMEM_TP(mm_vmscan_memcg_reclaim_end, memcg_end,
	  on_reclaim_end(HAKMEM_BPF_RECLAIM_MEMCG), unsigned long nr_reclaimed)
HAKMEM_TP(count_memcg_events, memcg_events,
	  on_memcg_event(memcg, item, val), struct mem_cgroup *memcg, int item, unsigned long val)
/* (task, uid) since v6.9 ("mm: update mark_victim tracepoints fields");
 * the loader turns both mark_victim programs off on older kernels, where
 * the argument was an int pid. */
HAKMEM_TP(mark_victim, mark_victim,
	  on_oom_victim(task_memcg_id(task)), struct task_struct *task, uid_t uid)
