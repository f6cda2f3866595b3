/* bpf_source.c: loader of bpf/hakmem.bpf.c, the only file that includes its
 * skeleton. Probes what the running kernel offers (which tracepoints exist,
 * whether tp_btf programs load, the mark_victim signature), turns the
 * programs it will not use off with bpf_program__set_autoload(), writes the
 * tunables, loads, attaches and hands notifications and counters out.
 *
 * Must not: log except through the callback from bpf_source_set_log(),
 * exit, or keep global state other than that callback. Errors are negative
 * errno values with one cleanup path per function.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "bpf_source.h"
#include "hakmem.skel.h"

struct bpf_source {
	struct hakmem_bpf *skel;
	struct ring_buffer *rb;
	enum bpf_source_attach attach;
	uint32_t programs;
	uint64_t malformed;
	bpf_source_event_fn fn; /* set for the duration of poll/consume */
	void *fn_ctx;
};

/* ---- logging: one hook for libbpf and us ---- */

static bpf_source_log_fn log_fn;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (log_fn)
		log_fn((enum bpf_source_log_level)level, fmt, ap);
	return 0;
}

void bpf_source_set_log(bpf_source_log_fn fn)
{
	log_fn = fn;
	libbpf_set_print(fn ? libbpf_print : NULL);
}

__attribute__((format(printf, 2, 3)))
static void say(enum bpf_source_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!log_fn)
		return;
	va_start(ap, fmt);
	log_fn(level, fmt, ap);
	va_end(ap);
}

void bpf_source_opts_init(struct bpf_source_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->window_ns = HAKMEM_BPF_DEF_WINDOW_NS;
	opts->min_events = HAKMEM_BPF_DEF_MIN_EVENTS;
	opts->min_stall_ns = HAKMEM_BPF_DEF_MIN_STALL_NS;
	opts->min_scan_pages = HAKMEM_BPF_DEF_MIN_SCAN_PAGES;
	opts->min_interval_ns = HAKMEM_BPF_DEF_MIN_INTERVAL_NS;
	opts->attach = BPF_SOURCE_ATTACH_AUTO;
}

/* ---- feature probes, against the running kernel's BTF ---- */

/* The tracepoint's prototype: btf_trace_<tp> is a typedef of a pointer to
 * a FUNC_PROTO whose first parameter is the void * context. NULL when the
 * kernel has no such tracepoint. */
static const struct btf_type *tp_proto(const struct btf *btf, const char *tp)
{
	char name[128];
	const struct btf_type *t;
	int id;

	snprintf(name, sizeof(name), "btf_trace_%s", tp);
	id = btf__find_by_name_kind(btf, name, BTF_KIND_TYPEDEF);
	if (id < 0)
		return NULL;
	t = btf__type_by_id(btf, id);
	t = btf__type_by_id(btf, t->type);          /* typedef -> ptr */
	if (!t || !btf_is_ptr(t))
		return NULL;
	t = btf__type_by_id(btf, t->type);          /* ptr -> func_proto */
	if (!t || !btf_is_func_proto(t))
		return NULL;
	return t;
}

/* True if argument n (0 = the first after the context) is a pointer. */
static bool tp_arg_is_ptr(const struct btf *btf, const struct btf_type *proto, unsigned n)
{
	const struct btf_type *t;

	if (!proto || btf_vlen(proto) < n + 2)
		return false;
	t = btf__type_by_id(btf, btf_params(proto)[n + 1].type);
	while (t && (btf_is_mod(t) || btf_is_typedef(t)))
		t = btf__type_by_id(btf, t->type);
	return t && btf_is_ptr(t);
}

/* Loads "r0 = 0; exit" as a tp_btf program on tp: the way to know, since
 * `bpftool feature probe` misreports tracing programs on some kernels. */
static int probe_tp_btf(const struct btf *btf, const char *tp)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	char name[128];
	int id, fd;

	snprintf(name, sizeof(name), "btf_trace_%s", tp);
	id = btf__find_by_name_kind(btf, name, BTF_KIND_TYPEDEF);
	if (id < 0)
		return id;
	LIBBPF_OPTS(bpf_prog_load_opts, o,
		.expected_attach_type = BPF_TRACE_RAW_TP,
		.attach_btf_id = (__u32)id);
	fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, NULL, "Dual MIT/GPL",
			   insns, sizeof(insns) / sizeof(insns[0]), &o);
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

/* One tracepoint, its two programs and what it feeds. */
struct tp_pair {
	const char *tp;
	struct bpf_program *tpb, *raw;
	uint32_t prog_bit;
	int ptr_arg; /* argument that must be a pointer, -1: none */
};

/* Decides the attach mode and the programs to load; sets autoload. */
static int choose_programs(struct bpf_source *src, const struct bpf_source_opts *opts)
{
	struct hakmem_bpf *skel = src->skel;
	struct tp_pair pairs[] = {
		{ "mm_vmscan_direct_reclaim_begin", skel->progs.tpb_direct_begin,
		  skel->progs.raw_direct_begin, BPF_SOURCE_PROG_DIRECT, -1 },
		{ "mm_vmscan_direct_reclaim_end", skel->progs.tpb_direct_end,
		  skel->progs.raw_direct_end, BPF_SOURCE_PROG_DIRECT, -1 },
		{ "mm_vmscan_memcg_reclaim_begin", skel->progs.tpb_memcg_begin,
		  skel->progs.raw_memcg_begin, BPF_SOURCE_PROG_MEMCG, -1 },
		{ "mm_vmscan_memcg_reclaim_end", skel->progs.tpb_memcg_end,
		  skel->progs.raw_memcg_end, BPF_SOURCE_PROG_MEMCG, -1 },
		/* since v6.x ("memcg: add tracing for memcg stat updates");
		 * older kernels lose pages scanned/stolen, not the rest */
		{ "count_memcg_events", skel->progs.tpb_memcg_events,
		  skel->progs.raw_memcg_events, BPF_SOURCE_PROG_MEMCG_EVENT, 0 },
		/* (task, uid) since v6.9 ("mm: update mark_victim tracepoints
		 * fields"); before, an int pid we cannot map to a memcg */
		{ "mark_victim", skel->progs.tpb_mark_victim,
		  skel->progs.raw_mark_victim, BPF_SOURCE_PROG_OOM_VICTIM, 0 },
	};
	const size_t n = sizeof(pairs) / sizeof(pairs[0]);
	bool have[sizeof(pairs) / sizeof(pairs[0])];
	enum bpf_source_attach mode = opts->attach;
	struct btf *btf;
	uint32_t progs = 0;
	size_t i;
	int err = 0;

	btf = btf__load_vmlinux_btf();
	if (!btf)
		return errno ? -errno : -ENOENT;

	for (i = 0; i < n; i++) {
		const struct btf_type *proto = tp_proto(btf, pairs[i].tp);

		have[i] = proto != NULL;
		if (have[i] && pairs[i].ptr_arg >= 0 &&
		    !tp_arg_is_ptr(btf, proto, (unsigned)pairs[i].ptr_arg))
			have[i] = false;
		if (!have[i])
			say(BPF_SOURCE_LOG_INFO, "hakmem bpf: tracepoint %s %s, not used\n",
			    pairs[i].tp, proto ? "has an unexpected prototype" : "missing");
	}
	/* begin without end (or the reverse) is useless: entries 0-1 and
	 * 2-3 of pairs[] are begin/end couples */
	for (i = 0; i < 4; i += 2)
		if (!have[i] || !have[i + 1])
			have[i] = have[i + 1] = false;

	if (mode != BPF_SOURCE_ATTACH_RAW_TP) {
		int perr = -EOPNOTSUPP;

		for (i = 0; i < n; i++)
			if (have[i]) {
				perr = probe_tp_btf(btf, pairs[i].tp);
				break;
			}
		if (perr == 0) {
			mode = BPF_SOURCE_ATTACH_TP_BTF;
		} else if (mode == BPF_SOURCE_ATTACH_TP_BTF) {
			say(BPF_SOURCE_LOG_WARN, "hakmem bpf: tp_btf does not load: %s\n",
			    strerror(-perr));
			err = perr;
			goto out;
		} else {
			say(BPF_SOURCE_LOG_INFO,
			    "hakmem bpf: tp_btf does not load (%s), using raw_tp\n",
			    strerror(-perr));
			mode = BPF_SOURCE_ATTACH_RAW_TP;
		}
	}

	for (i = 0; i < n; i++) {
		bool use_tpb = have[i] && mode == BPF_SOURCE_ATTACH_TP_BTF;
		bool use_raw = have[i] && mode == BPF_SOURCE_ATTACH_RAW_TP;

		bpf_program__set_autoload(pairs[i].tpb, use_tpb);
		bpf_program__set_autoload(pairs[i].raw, use_raw);
		if (have[i])
			progs |= pairs[i].prog_bit;
	}
	/* no usable mark_victim: count OOM_KILL items of count_memcg_events */
	if (!(progs & BPF_SOURCE_PROG_OOM_VICTIM) && (progs & BPF_SOURCE_PROG_MEMCG_EVENT)) {
		skel->rodata->oom_from_vm_events = 1;
		progs |= BPF_SOURCE_PROG_OOM_EVENT;
	}
	if (!(progs & (BPF_SOURCE_PROG_DIRECT | BPF_SOURCE_PROG_MEMCG |
		       BPF_SOURCE_PROG_MEMCG_EVENT))) {
		say(BPF_SOURCE_LOG_WARN, "hakmem bpf: no reclaim tracepoint to attach to\n");
		err = -EOPNOTSUPP;
		goto out;
	}
	src->attach = mode;
	src->programs = progs;
	say(BPF_SOURCE_LOG_INFO, "hakmem bpf: %s, programs 0x%x\n",
	    mode == BPF_SOURCE_ATTACH_TP_BTF ? "tp_btf" : "raw_tp", progs);
out:
	btf__free(btf);
	return err;
}

/* ---- lifetime ---- */

static int on_sample(void *ctx, void *data, size_t size)
{
	struct bpf_source *src = ctx;
	const struct hakmem_bpf_event *ev = data;

	if (size < sizeof(*ev) || ev->abi_version != HAKMEM_BPF_ABI_VERSION) {
		src->malformed++;
		return 0;
	}
	return src->fn ? src->fn(src->fn_ctx, ev) : 0;
}

int bpf_source_open(struct bpf_source **out, const struct bpf_source_opts *opts)
{
	struct bpf_source_opts defaults;
	struct bpf_source *src;
	int err;

	*out = NULL;
	if (!opts) {
		bpf_source_opts_init(&defaults);
		opts = &defaults;
	}
	if (opts->window_ns == 0)
		return -EINVAL;
	src = calloc(1, sizeof(*src));
	if (!src)
		return -ENOMEM;

	src->skel = hakmem_bpf__open();
	if (!src->skel) {
		err = errno ? -errno : -EINVAL;
		goto fail;
	}
	src->skel->rodata->window_ns = opts->window_ns;
	src->skel->rodata->min_events = opts->min_events;
	src->skel->rodata->min_stall_ns = opts->min_stall_ns;
	src->skel->rodata->min_scan_pages = opts->min_scan_pages;
	src->skel->rodata->min_interval_ns = opts->min_interval_ns;
	src->skel->rodata->filter_enabled = opts->filter;
	src->skel->rodata->kswapd_in_window = opts->kswapd_in_window;

	err = choose_programs(src, opts);
	if (err)
		goto fail;
	err = hakmem_bpf__load(src->skel);
	if (err)
		goto fail;
	err = hakmem_bpf__attach(src->skel);
	if (err)
		goto fail;
	src->rb = ring_buffer__new(bpf_map__fd(src->skel->maps.events), on_sample, src, NULL);
	if (!src->rb) {
		err = errno ? -errno : -ENOMEM;
		goto fail;
	}
	*out = src;
	return 0;
fail:
	bpf_source_close(src);
	return err < 0 ? err : -err;
}

void bpf_source_close(struct bpf_source *src)
{
	if (!src)
		return;
	ring_buffer__free(src->rb);
	hakmem_bpf__destroy(src->skel);
	free(src);
}

/* ---- events ---- */

int bpf_source_fd(const struct bpf_source *src)
{
	return ring_buffer__epoll_fd(src->rb);
}

int bpf_source_consume(struct bpf_source *src, bpf_source_event_fn fn, void *ctx)
{
	int n;

	src->fn = fn;
	src->fn_ctx = ctx;
	n = ring_buffer__consume(src->rb);
	src->fn = NULL;
	src->fn_ctx = NULL;
	return n;
}

/* ---- maps ---- */

int bpf_source_watch(struct bpf_source *src, uint64_t cgroup_id)
{
	__u8 one = 1;

	if (!cgroup_id)
		return -EINVAL;
	return bpf_map__update_elem(src->skel->maps.watched, &cgroup_id, sizeof(cgroup_id),
				    &one, sizeof(one), BPF_ANY);
}

int bpf_source_unwatch(struct bpf_source *src, uint64_t cgroup_id)
{
	return bpf_map__delete_elem(src->skel->maps.watched, &cgroup_id, sizeof(cgroup_id), 0);
}

int bpf_source_read(struct bpf_source *src, uint64_t cgroup_id,
		    struct hakmem_memcg_stats *out)
{
	return bpf_map__lookup_elem(src->skel->maps.stats, &cgroup_id, sizeof(cgroup_id),
				    out, sizeof(*out), 0);
}

void bpf_source_get_info(const struct bpf_source *src, struct bpf_source_info *out)
{
	memset(out, 0, sizeof(*out));
	out->attach = src->attach;
	out->programs = src->programs;
	out->ringbuf_dropped = __atomic_load_n(&src->skel->bss->ringbuf_dropped, __ATOMIC_RELAXED);
	out->stats_full = __atomic_load_n(&src->skel->bss->stats_full, __ATOMIC_RELAXED);
	out->malformed = src->malformed;
}
