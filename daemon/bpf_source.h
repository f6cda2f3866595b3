/* bpf_source.h: the daemon's BPF pressure source (bpf/hakmem.bpf.c): load,
 * attach, filter, read counters, receive threshold notifications.
 *
 * Owns: the lifetime of the BPF object and its ring buffer. bpf_source.c is
 * the only file that includes the generated skeleton (hakmem.skel.h).
 * Must not: decide pressure levels (the policy does, from the events and
 * counters handed out here) or log on its own: every message, libbpf's and
 * ours, goes through the one callback installed with bpf_source_set_log().
 *
 * Errors are negative errno values. Notable ones from bpf_source_open():
 *   -EPERM       no permission to load BPF (not root, no CAP_BPF/PERFMON,
 *                locked down, or fentry-like program types refused);
 *   -EOPNOTSUPP  none of the tracepoints exists, or tp_btf was forced and
 *                cannot load;
 *   -ENOENT      no kernel BTF (/sys/kernel/btf/vmlinux), CO-RE impossible.
 * The caller logs the reason once and runs without this source.
 *
 * Cgroup ids are the inode numbers of memory cgroup directories (see
 * cgroup_id_of_dir() and bpf/hakmem_bpf.h); times are CLOCK_MONOTONIC ns.
 *
 * After bpf_source_open() the source needs only these syscalls: bpf (map
 * lookup/update/delete), epoll_wait (poll) and close; the ring buffer is
 * mapped at open. Capabilities may be dropped after open (map access by fd
 * needs none on 6.x kernels).
 *
 * Not thread-safe: one thread polls; watch/read may be called from that same
 * thread (they are plain map operations and would be safe from another one,
 * but the callback pointers set by poll are not).
 */
#ifndef HAKMEM_BPF_SOURCE_H
#define HAKMEM_BPF_SOURCE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include "hakmem_bpf.h"

struct bpf_source;

/* How programs attach. AUTO: tp_btf where it loads, raw_tp otherwise. */
enum bpf_source_attach {
	BPF_SOURCE_ATTACH_AUTO = 0,
	BPF_SOURCE_ATTACH_TP_BTF = 1,
	BPF_SOURCE_ATTACH_RAW_TP = 2,
};

/* Tunables of the BPF side, fixed at load. Fill with bpf_source_opts_init()
 * and change what you need; a threshold of 0 turns that threshold off. */
struct bpf_source_opts {
	uint64_t window_ns;        /* counting window per memcg (default 100 ms) */
	uint64_t min_events;       /* reclaim entries per window to notify (4) */
	uint64_t min_stall_ns;     /* ns spent in reclaim per window to notify (2 ms) */
	uint64_t min_scan_pages;   /* pages scanned (direct) per window to notify (2048) */
	uint64_t min_interval_ns;  /* least time between notifications of a memcg (250 ms) */
	bool filter;               /* count only memcgs added with bpf_source_watch() */
	bool kswapd_in_window;     /* kswapd's scans count toward min_scan_pages too */
	enum bpf_source_attach attach;
};

/* Programs attached (bpf_source_info.programs). */
#define BPF_SOURCE_PROG_DIRECT      0x01u /* direct reclaim begin/end */
#define BPF_SOURCE_PROG_MEMCG       0x02u /* memcg reclaim begin/end */
#define BPF_SOURCE_PROG_MEMCG_EVENT 0x04u /* count_memcg_events: pages scanned/stolen */
#define BPF_SOURCE_PROG_OOM_VICTIM  0x08u /* mark_victim */
#define BPF_SOURCE_PROG_OOM_EVENT   0x10u /* OOM_KILL via count_memcg_events (old mark_victim) */

struct bpf_source_info {
	enum bpf_source_attach attach; /* what was used: TP_BTF or RAW_TP */
	uint32_t programs;             /* BPF_SOURCE_PROG_* */
	uint64_t ringbuf_dropped;      /* notifications lost, ring buffer full */
	uint64_t stats_full;           /* events lost, per-memcg map full */
	uint64_t malformed;            /* ring records of a wrong size or ABI, skipped */
};

/* Log callback: level is 0 warning, 1 info, 2 debug (libbpf's order). */
enum bpf_source_log_level {
	BPF_SOURCE_LOG_WARN = 0,
	BPF_SOURCE_LOG_INFO = 1,
	BPF_SOURCE_LOG_DEBUG = 2,
};
typedef void (*bpf_source_log_fn)(enum bpf_source_log_level level,
				  const char *fmt, va_list ap);

/* Called for each notification; return 0 to go on, a negative errno to stop
 * (bpf_source_consume then returns it). ev is valid during the call. */
typedef int (*bpf_source_event_fn)(void *ctx, const struct hakmem_bpf_event *ev);

/* Routes libbpf's messages and this file's few (feature choices) to fn;
 * NULL silences both. Process-wide (libbpf has one print hook); call it
 * before bpf_source_open(). Until called, libbpf prints to stderr. */
void bpf_source_set_log(bpf_source_log_fn fn);

void bpf_source_opts_init(struct bpf_source_opts *opts);

/* Probes features, sets the tunables, loads and attaches. opts may be NULL
 * (defaults). On success *out owns everything; free with bpf_source_close. */
int bpf_source_open(struct bpf_source **out, const struct bpf_source_opts *opts);

/* An fd that becomes readable when notifications are pending (an epoll fd:
 * add it to the daemon's own epoll set and call bpf_source_consume()). */
int bpf_source_fd(const struct bpf_source *src);

/* Calls fn for each pending notification without waiting. */
int bpf_source_consume(struct bpf_source *src, bpf_source_event_fn fn, void *ctx);

/* Adds/removes a memcg to/from the filter (only effective with opts.filter);
 * -E2BIG beyond HAKMEM_BPF_MAX_MEMCGS watched. Unwatching leaves the
 * memcg's counters in place; they age out of the LRU. */
int bpf_source_watch(struct bpf_source *src, uint64_t cgroup_id);
int bpf_source_unwatch(struct bpf_source *src, uint64_t cgroup_id);

/* Copies the counters of one memcg; -ENOENT when none were counted yet. */
int bpf_source_read(struct bpf_source *src, uint64_t cgroup_id,
		    struct hakmem_memcg_stats *out);

void bpf_source_get_info(const struct bpf_source *src, struct bpf_source_info *out);

void bpf_source_close(struct bpf_source *src);

#endif /* HAKMEM_BPF_SOURCE_H */
