/* bench_soak.c — the churn workload of bench_churn run for a fixed time
 * instead of a fixed number of ops, reporting every --report-every seconds.
 * Each thread owns --ws slots; one op frees a random slot and allocates a
 * random size in [--min, --max] into it, touching the first and last byte
 * (bench_churn_step, as in bench_churn). The main thread only sleeps and reports.
 *
 * stdout, one line per interval, then one summary line (its ops are the
 * ops counted up to the last interval line, over that time):
 *   interval t_s= ops= ops_per_sec= rss_kb= hwm_kb= lazyfree_kb= anon_kb= [os_calls= lean_decommit= lean_retire=]
 *   soak secs= ops= ops_per_sec= peak_rss_kb= threads= ws= [os_calls= ...]
 * ops and ops_per_sec of an interval line are for that interval; os_calls
 * and the lean counters are totals since the start of the process.
 *
 * Still a plain malloc program: it is never linked against hakmem. When the
 * preloaded library happens to export hakmem_counter() (found with dlsym),
 * the counters are added to each line, so that OS calls per op can be taken
 * over any stretch of the run, not only over the whole process. */
#define _GNU_SOURCE
#include "bench_common.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

struct soak_cfg {
	struct bench_sizes sz;
	uint64_t ws;        /* slots per thread */
	uint64_t duration_s;
	uint64_t every_s;   /* report period */
	uint32_t threads;
};

struct soak_thread {
	struct bench_thread bt;
	const struct soak_cfg *cfg;
	_Atomic uint64_t ops; /* published every SOAK_PUBLISH ops */
} __attribute__((aligned(64)));

/* What the reporting loop of the main thread needs and leaves behind for
 * the summary line. */
struct soak_run {
	const struct soak_cfg *cfg;
	struct soak_thread *th;
	uint64_t t0;       /* ns, when the barrier let everyone go */
	uint64_t last_t;   /* ns, at the last interval line */
	uint64_t last_ops; /* ops counted at the last interval line */
};

#define SOAK_PUBLISH 4096

static atomic_int soak_stop;

typedef int (*soak_counter_fn)(const char *name, uint64_t *value);
static soak_counter_fn soak_counter;

static void *soak_thread_main(void *arg)
{
	struct soak_thread *t = arg;
	const struct soak_cfg *c = t->cfg;
	struct bench_churn w;
	uint64_t n = 0, done;

	if (bench_churn_init(&w, NULL, (uint32_t)c->ws, &c->sz, t->bt.idx) < 0)
		t->bt.err = ENOMEM;
	bench_thread_start(&t->bt);
	while (!t->bt.err && !atomic_load_explicit(&soak_stop, memory_order_relaxed)) {
		done = bench_churn_step(&w, n, SOAK_PUBLISH);
		n += done;
		if (done < SOAK_PUBLISH)
			t->bt.err = ENOMEM;
		atomic_store_explicit(&t->ops, n, memory_order_relaxed);
	}
	bench_churn_free(&w);
	return NULL;
}

/* " os_calls=N lean_decommit=N lean_retire=N" when hakmem is preloaded. */
static void soak_counters(char *buf, size_t len)
{
	uint64_t mm = 0, mu = 0, ma = 0, ld = 0, lr = 0;

	buf[0] = '\0';
	if (!soak_counter)
		return;
	if (soak_counter("mmap_calls", &mm) || soak_counter("munmap_calls", &mu) ||
	    soak_counter("madvise_calls", &ma) || soak_counter("lean_decommit", &ld) ||
	    soak_counter("lean_retire", &lr))
		return;
	snprintf(buf, len, " os_calls=%" PRIu64 " lean_decommit=%" PRIu64 " lean_retire=%" PRIu64,
		 mm + mu + ma, ld, lr);
}

static uint64_t soak_total_ops(struct soak_thread *th, unsigned n)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < n; i++)
		s += atomic_load_explicit(&th[i].ops, memory_order_relaxed);
	return s;
}

static void soak_usage(FILE *f)
{
	fprintf(f,
		"usage: bench_soak [options]\n"
		"  --duration S      seconds to run (default 60)\n"
		"  --report-every S  seconds between interval lines (default 10)\n"
		"  --ws N            slots per thread (default 4000)\n"
		"  --threads T       independent threads (default 1)\n"
		"  --min B           smallest size in bytes (default 16)\n"
		"  --max B           largest size in bytes (default 1024)\n"
		"  --seed S          PRNG seed (default 1)\n"
		"  --log-sizes       log-uniform sizes in [min, max]: each octave as likely\n"
		"prints: interval t_s= ops= ops_per_sec= rss_kb= hwm_kb= lazyfree_kb= anon_kb= [os_calls= ...]\n"
		"        soak secs= ops= ops_per_sec= peak_rss_kb= threads= ws= [os_calls= ...]\n");
}

/* The main thread, from the barrier on: one interval line every
 * --report-every seconds until --duration, then the threads are stopped. */
static void soak_report(void *arg)
{
	struct soak_run *run = arg;
	const struct soak_cfg *cfg = run->cfg;
	struct bench_mem m;
	char ctrs[128];
	uint64_t t0, prev_t, prev_ops, end_ns, ops;

	t0 = prev_t = bench_now_ns();
	prev_ops = 0;
	end_ns = t0 + cfg->duration_s * 1000000000ull;
	for (uint64_t k = 1;; k++) {
		uint64_t next = t0 + k * cfg->every_s * 1000000000ull;
		uint64_t now;

		if (next > end_ns)
			next = end_ns;
		bench_sleep_until(next);
		ops = soak_total_ops(run->th, cfg->threads);
		now = bench_now_ns();
		bench_mem_sample(&m, 1);
		soak_counters(ctrs, sizeof(ctrs));
		printf("interval t_s=%.3f ops=%" PRIu64 " ops_per_sec=%.1f rss_kb=%ld hwm_kb=%ld "
		       "lazyfree_kb=%ld anon_kb=%ld%s\n",
		       (double)(now - t0) / 1e9, ops - prev_ops,
		       (double)(ops - prev_ops) / ((double)(now - prev_t) / 1e9),
		       m.rss_kb, m.hwm_kb, m.lazyfree_kb, m.anon_kb, ctrs);
		fflush(stdout);
		prev_ops = ops;
		prev_t = now;
		if (next >= end_ns)
			break;
	}
	atomic_store(&soak_stop, 1);
	run->t0 = t0;
	run->last_t = prev_t;
	run->last_ops = prev_ops;
}

int main(int argc, char **argv)
{
	struct soak_cfg cfg = {
		.sz = BENCH_SIZES_DEFAULT, .ws = 4000, .duration_s = 60, .every_s = 10,
		.threads = 1,
	};
	const struct bench_opt opts[] = {
		{ "duration", BENCH_OPT_U64, 1, 30ull * 86400, &cfg.duration_s },
		{ "report-every", BENCH_OPT_U64, 1, 86400, &cfg.every_s },
		{ "ws", BENCH_OPT_U64, 1, 1u << 28, &cfg.ws },
		{ "threads", BENCH_OPT_U32, 1, 1024, &cfg.threads },
	};
	const struct bench_prog prog = {
		"bench_soak", opts, BENCH_NOPTS(opts), soak_usage, &cfg.sz,
	};
	struct soak_run run = { .cfg = &cfg };
	char ctrs[128];
	unsigned i;
	int r;

	bench_parse_args(&prog, argc, argv);
	soak_counter = (soak_counter_fn)dlsym(RTLD_DEFAULT, "hakmem_counter");
	run.th = calloc(cfg.threads, sizeof(*run.th));
	if (!run.th) {
		fprintf(stderr, "bench_soak: out of memory\n");
		return 1;
	}
	for (i = 0; i < cfg.threads; i++)
		run.th[i].cfg = &cfg;
	/* The main thread joins the barrier too (soak_report): the clock
	 * starts once every working set is filled. */
	r = bench_run_threads(prog.name, run.th, sizeof(*run.th), cfg.threads, soak_thread_main,
			      soak_report, &run, NULL);
	free(run.th);
	if (r < 0)
		return 1;
	soak_counters(ctrs, sizeof(ctrs));
	printf("soak secs=%.3f ops=%" PRIu64 " ops_per_sec=%.1f peak_rss_kb=%ld threads=%u ws=%" PRIu64 "%s\n",
	       (double)(run.last_t - run.t0) / 1e9, run.last_ops,
	       (double)run.last_ops / ((double)(run.last_t - run.t0) / 1e9),
	       bench_peak_rss_kb(), cfg.threads, cfg.ws, ctrs);
	fflush(stdout);
	return 0;
}
