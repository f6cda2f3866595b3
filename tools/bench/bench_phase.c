/* bench_phase.c — the phase workload: how much memory an allocator gives
 * back after a large free, and how fast.
 *
 *  1. setup:  bookkeeping arrays are mmap'ed and touched, a small churn
 *             working set (--churn-ws slots) is allocated and churned once,
 *             then start RSS is read. So the program's own memory and the
 *             light working set are inside "start", and "back to start"
 *             means every freed byte went back.
 *  2. grow:   allocate random sizes in [--min, --max] until --live bytes
 *             are live, writing every byte of every block.
 *  3. free:   free the blocks in a random order: all of them, or all but
 *             --keep-pct percent chosen at random (exactly round(N*pct/100)
 *             blocks stay live until the end).
 *  4. settle: for --settle seconds, every --churn-ms (default: --sample-ms)
 *             --churn-ops random free+malloc pairs in the small working
 *             set, and every --sample-ms one sample of VmRSS, Anonymous
 *             and LazyFree (the last tick always samples).
 *
 * t90 (time to give back 90% of the freed memory), all figures "RSS minus
 * LazyFree" (what the kernel could not drop without reclaim), kB:
 *     freed   = grown - start - kept      (memory the program no longer uses)
 *     goal    = grown - 0.9 * freed
 *     t90_ms  = ms from the end of the frees to the first sample <= goal,
 *               0 if already there at the end of the frees, -1 if never
 *               within --settle.
 * returned_pct = (grown - end) / freed * 100, same figures.
 *
 * Prints one line on stdout (keys below, see phase_usage) and nothing else;
 * --trace adds one "t_ms rss lazyfree anon" line per sample on stderr.
 * Run under LD_PRELOAD; never linked against any allocator. */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct phase_cfg {
	struct bench_sizes sz;
	uint64_t live;      /* bytes to grow to */
	uint64_t settle_ms;
	uint64_t sample_ms;
	uint64_t churn_ws;  /* slots of the light working set */
	uint64_t churn_ops; /* free+malloc pairs per churn tick */
	uint64_t churn_ms;  /* churn period; 0: sample_ms */
	double keep_pct;    /* 0..100 */
	int trace;
};

struct phase_sample {
	uint32_t t_ms;  /* since the end of the frees */
	int32_t rss_kb;
	int32_t lazy_kb;
	int32_t anon_kb;
};

static volatile uint64_t phase_sink;

/* Anonymous memory that is not the allocator's: mmap'ed and touched now,
 * so that it is inside the start RSS. */
static void *phase_map(size_t bytes)
{
	void *p;

	if (bytes == 0)
		bytes = 1;
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, bytes);
	return p;
}

static uint32_t phase_size(struct bench_rng *r, const struct bench_dist *d)
{
	return bench_size_draw(d, (uint32_t)bench_rng_next(r));
}

static void phase_usage(FILE *f)
{
	fprintf(f,
		"usage: bench_phase [options]\n"
		"  --live B        bytes to grow to, k/M/G suffixes (default 200M)\n"
		"  --min B         smallest block (default 16)\n"
		"  --max B         largest block (default 1024)\n"
		"  --keep-pct P    percent of the blocks kept live, chosen at random (default 0)\n"
		"  --settle S      seconds of light churn and sampling after the frees (default 3)\n"
		"  --sample-ms N   sampling and churn period (default 10)\n"
		"  --churn-ws N    slots of the light working set (default 1000)\n"
		"  --churn-ops N   free+malloc pairs per churn period (default 1000)\n"
		"  --churn-ms N    churn period (default: --sample-ms)\n"
		"  --seed S        PRNG seed (default 1)\n"
		"  --log-sizes     log-uniform sizes in [min, max]: each octave as likely\n"
		"  --trace         one 't_ms rss_kb lazyfree_kb anon_kb' line per sample on stderr\n"
		"prints: start_rss_kb= peak_rss_kb= grown_rss_kb= freed_rss_kb= end_rss_kb=\n"
		"        end_lazyfree_kb= end_anon_kb= end_rss_minus_lazyfree_kb= start_lazyfree_kb=\n"
		"        returned_pct= t90_ms= kept_bytes= kept_objs= objs= live_bytes= grow_ms=\n"
		"        free_ms= settle_ms=\n");
}

static long phase_rml(const struct bench_mem *m)
{
	return m->rss_kb - (m->lazyfree_kb > 0 ? m->lazyfree_kb : 0);
}

int main(int argc, char **argv)
{
	struct phase_cfg cfg = {
		.sz = BENCH_SIZES_DEFAULT, .live = 200000000ull, .settle_ms = 3000,
		.sample_ms = 10, .churn_ws = 1000, .churn_ops = 1000, .keep_pct = 0.0,
	};
	const struct bench_opt opts[] = {
		{ "live", BENCH_OPT_U64, 1, 1ull << 40, &cfg.live },
		{ "keep-pct", BENCH_OPT_DOUBLE, 0, 100, &cfg.keep_pct },
		{ "settle", BENCH_OPT_SECONDS_MS, 0, 86400, &cfg.settle_ms },
		{ "sample-ms", BENCH_OPT_U64, 1, 60000, &cfg.sample_ms },
		{ "churn-ws", BENCH_OPT_U64, 1, 1u << 24, &cfg.churn_ws },
		{ "churn-ops", BENCH_OPT_U64, 0, 1ull << 32, &cfg.churn_ops },
		{ "churn-ms", BENCH_OPT_U64, 1, 60000, &cfg.churn_ms },
		{ "trace", BENCH_OPT_FLAG, 0, 0, &cfg.trace },
	};
	const struct bench_prog prog = {
		"bench_phase", opts, BENCH_NOPTS(opts), phase_usage, &cfg.sz,
	};
	struct bench_dist dist;
	struct bench_rng rng;
	struct bench_churn w;
	struct bench_mem m0, mg, mf, me;
	struct phase_sample *smp;
	unsigned char **obj, **slot;
	uint32_t *size, *order;
	uint64_t n_obj = 0, bytes = 0, kept = 0, kept_bytes = 0, sum = 0;
	uint64_t nsmp_max, nsmp = 0, t_grow0, t_grow1, t_free1, t_end;
	long freed_kb, goal_kb, t90 = -1;
	double returned;

	bench_parse_args(&prog, argc, argv);
	bench_dist_init(&dist, &cfg.sz);

	/* Pass 1: how many blocks make --live bytes (same stream as pass 2). */
	bench_rng_seed(&rng, cfg.sz.seed, 0);
	while (bytes < cfg.live) {
		bytes += phase_size(&rng, &dist);
		n_obj++;
	}

	if (cfg.churn_ms == 0)
		cfg.churn_ms = cfg.sample_ms;
	nsmp_max = cfg.settle_ms / cfg.sample_ms + cfg.settle_ms / cfg.churn_ms + 3;
	obj = phase_map(n_obj * sizeof(*obj));
	size = phase_map(n_obj * sizeof(*size));
	order = phase_map(n_obj * sizeof(*order));
	slot = phase_map(cfg.churn_ws * sizeof(*slot));
	smp = phase_map(nsmp_max * sizeof(*smp));
	if (!obj || !size || !order || !slot || !smp) {
		fprintf(stderr, "bench_phase: mmap of the bookkeeping arrays: %s\n", strerror(errno));
		return 1;
	}

	/* Sizes and the free order (Fisher-Yates) are drawn before start: the
	 * first `kept` entries of order[] stay live. */
	bench_rng_seed(&rng, cfg.sz.seed, 0);
	for (uint64_t i = 0; i < n_obj; i++) {
		size[i] = phase_size(&rng, &dist);
		order[i] = (uint32_t)i;
	}
	bench_rng_seed(&rng, cfg.sz.seed, 1);
	for (uint64_t i = n_obj - 1; i > 0; i--) {
		uint64_t j = bench_rng_next(&rng) % (i + 1);
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	kept = (uint64_t)((double)n_obj * cfg.keep_pct / 100.0 + 0.5);
	if (kept > n_obj)
		kept = n_obj;
	for (uint64_t j = 0; j < kept; j++)
		kept_bytes += size[order[j]];

	/* The light working set exists before start and is churned once. */
	if (bench_churn_init(&w, slot, (uint32_t)cfg.churn_ws, &cfg.sz, 2) < 0 ||
	    bench_churn_step(&w, 0, cfg.churn_ops) < cfg.churn_ops) {
		fprintf(stderr, "bench_phase: out of memory in the working set\n");
		return 1;
	}
	bench_mem_sample(&m0, 1);

	/* Grow, writing every byte. */
	t_grow0 = bench_now_ns();
	for (uint64_t i = 0; i < n_obj; i++) {
		unsigned char *p = malloc(size[i]);

		if (!p) {
			fprintf(stderr, "bench_phase: out of memory at block %" PRIu64 " of %" PRIu64 "\n",
				i, n_obj);
			return 1;
		}
		memset(p, (int)(i | 1), size[i]);
		obj[i] = p;
	}
	t_grow1 = bench_now_ns();
	bench_mem_sample(&mg, 1);

	/* Free in random order, all but the first `kept` of order[]. */
	for (uint64_t j = kept; j < n_obj; j++) {
		unsigned char *p = obj[order[j]];

		sum += p[0];
		free(p);
		obj[order[j]] = NULL;
	}
	t_free1 = bench_now_ns();

	freed_kb = phase_rml(&mg) - phase_rml(&m0) - (long)(kept_bytes / 1024);
	goal_kb = phase_rml(&mg) - (long)(0.9 * (double)(freed_kb > 0 ? freed_kb : 0));

	/* Settle: sample at once, then tick every churn period: one churn
	 * tick, and a sample when a sample period has passed (on the sample
	 * grid). A tick missed on a busy machine is skipped, not made up with
	 * ticks back to back. */
	bench_mem_sample(&mf, 1);
	me = mf;
	for (uint64_t k = 0, next_smp = 0;;) {
		uint64_t now, since;

		if (k > 0) {
			bench_sleep_until(t_free1 + k * cfg.churn_ms * 1000000ull);
			if (bench_churn_step(&w, 0, cfg.churn_ops) < cfg.churn_ops) {
				fprintf(stderr, "bench_phase: out of memory while settling\n");
				return 1;
			}
		}
		now = bench_now_ns();
		since = now - t_free1;
		if (k == 0 || since >= next_smp || (since / 1000000ull) + cfg.churn_ms > cfg.settle_ms) {
			if (k > 0)
				bench_mem_sample(&me, 1);
			now = bench_now_ns();
			since = now - t_free1;
			if (nsmp < nsmp_max) {
				smp[nsmp].t_ms = (uint32_t)(since / 1000000ull);
				smp[nsmp].rss_kb = (int32_t)me.rss_kb;
				smp[nsmp].lazy_kb = (int32_t)me.lazyfree_kb;
				smp[nsmp].anon_kb = (int32_t)me.anon_kb;
				nsmp++;
			}
			if (t90 < 0 && (freed_kb <= 0 || phase_rml(&me) <= goal_kb))
				t90 = k == 0 ? 0 : (long)(since / 1000000ull);
			/* the next sample strictly after now */
			next_smp = (since / (cfg.sample_ms * 1000000ull) + 1) * cfg.sample_ms * 1000000ull;
		}
		/* the next tick strictly after now */
		k = since / (cfg.churn_ms * 1000000ull) + 1;
		if (k * cfg.churn_ms > cfg.settle_ms)
			break;
	}
	t_end = bench_now_ns();
	bench_mem_sample(&me, 1); /* for VmHWM; RSS figures are the last sample's */
	me.rss_kb = smp[nsmp - 1].rss_kb;
	me.lazyfree_kb = smp[nsmp - 1].lazy_kb;
	me.anon_kb = smp[nsmp - 1].anon_kb;
	returned = freed_kb > 0 ? 100.0 * (double)(phase_rml(&mg) - phase_rml(&me)) / (double)freed_kb
				: 100.0;

	printf("start_rss_kb=%ld peak_rss_kb=%ld grown_rss_kb=%ld freed_rss_kb=%ld "
	       "end_rss_kb=%ld end_lazyfree_kb=%ld end_anon_kb=%ld end_rss_minus_lazyfree_kb=%ld "
	       "start_lazyfree_kb=%ld returned_pct=%.1f t90_ms=%ld kept_bytes=%" PRIu64
	       " kept_objs=%" PRIu64 " objs=%" PRIu64 " live_bytes=%" PRIu64
	       " grow_ms=%.1f free_ms=%.1f settle_ms=%.1f\n",
	       m0.rss_kb, me.hwm_kb, mg.rss_kb, mf.rss_kb,
	       me.rss_kb, me.lazyfree_kb, me.anon_kb, phase_rml(&me),
	       m0.lazyfree_kb, returned, t90, kept_bytes,
	       kept, n_obj, bytes,
	       (double)(t_grow1 - t_grow0) / 1e6, (double)(t_free1 - t_grow1) / 1e6,
	       (double)(t_end - t_free1) / 1e6);
	fflush(stdout);

	if (cfg.trace) {
		fprintf(stderr, "# t_ms rss_kb lazyfree_kb anon_kb (start %ld/%ld/%ld, grown %ld/%ld/%ld)\n",
			m0.rss_kb, m0.lazyfree_kb, m0.anon_kb, mg.rss_kb, mg.lazyfree_kb, mg.anon_kb);
		for (uint64_t i = 0; i < nsmp; i++)
			fprintf(stderr, "%u %d %d %d\n", smp[i].t_ms, smp[i].rss_kb, smp[i].lazy_kb,
				smp[i].anon_kb);
	}

	for (uint64_t j = 0; j < kept; j++)
		free(obj[order[j]]);
	bench_churn_free(&w);
	phase_sink = sum;
	return 0;
}
