/* bench_soak.c — the churn workload of bench_churn run for a fixed time
 * instead of a fixed number of ops, reporting every --report-every seconds.
 * Each thread owns --ws slots; one op frees a random slot and allocates a
 * random size in [--min, --max] into it, touching the first and last byte
 * (the same loop as bench_churn). The main thread only sleeps and reports.
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
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct soak_cfg {
	uint64_t ws;        /* slots per thread */
	uint64_t seed;
	uint64_t duration_s;
	uint64_t every_s;   /* report period */
	uint32_t min_size;
	uint32_t max_size;  /* inclusive */
	unsigned threads;
};

struct soak_thread {
	const struct soak_cfg *cfg;
	pthread_barrier_t *start;
	pthread_t tid;
	unsigned idx;
	int err;
	_Atomic uint64_t ops; /* published every SOAK_PUBLISH ops */
	uint64_t sum;
} __attribute__((aligned(64)));

#define SOAK_PUBLISH 4096

static atomic_int soak_stop;
static volatile uint64_t soak_sink;

typedef int (*soak_counter_fn)(const char *name, uint64_t *value);
static soak_counter_fn soak_counter;

static void *soak_thread_main(void *arg)
{
	struct soak_thread *t = arg;
	const struct soak_cfg *c = t->cfg;
	const uint32_t ws = (uint32_t)c->ws;
	const uint32_t span = c->max_size - c->min_size + 1;
	struct bench_rng rng;
	unsigned char **slot;
	uint64_t sum = 0, n = 0;
	uint32_t i;

	bench_rng_seed(&rng, c->seed, t->idx);
	slot = calloc(ws, sizeof(*slot));
	if (!slot) {
		t->err = ENOMEM;
		pthread_barrier_wait(t->start);
		return NULL;
	}
	for (i = 0; i < ws; i++) {
		uint64_t r = bench_rng_next(&rng);
		size_t size = c->min_size + bench_range32((uint32_t)r, span);
		unsigned char *p = malloc(size);

		if (!p) {
			t->err = ENOMEM;
			break;
		}
		p[0] = (unsigned char)i;
		p[size - 1] = (unsigned char)i;
		slot[i] = p;
	}
	pthread_barrier_wait(t->start);
	while (!t->err && !atomic_load_explicit(&soak_stop, memory_order_relaxed)) {
		for (uint32_t b = 0; b < SOAK_PUBLISH; b++, n++) {
			uint64_t r = bench_rng_next(&rng);
			uint32_t k = bench_range32((uint32_t)(r >> 32), ws);
			size_t size = c->min_size + bench_range32((uint32_t)r, span);
			unsigned char *p;

			sum += slot[k][0];
			free(slot[k]);
			p = malloc(size);
			if (!p) {
				slot[k] = NULL;
				t->err = ENOMEM;
				break;
			}
			p[0] = (unsigned char)n;
			p[size - 1] = (unsigned char)n;
			slot[k] = p;
		}
		atomic_store_explicit(&t->ops, n, memory_order_relaxed);
	}
	for (i = 0; i < ws; i++)
		free(slot[i]);
	free(slot);
	t->sum = sum;
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
		"prints: interval t_s= ops= ops_per_sec= rss_kb= hwm_kb= lazyfree_kb= anon_kb= [os_calls= ...]\n"
		"        soak secs= ops= ops_per_sec= peak_rss_kb= threads= ws= [os_calls= ...]\n");
}

static int soak_parse_args(int argc, char **argv, struct soak_cfg *c)
{
	static const struct option opts[] = {
		{ "duration", required_argument, NULL, 'd' },
		{ "report-every", required_argument, NULL, 'r' },
		{ "ws", required_argument, NULL, 'w' },
		{ "threads", required_argument, NULL, 't' },
		{ "min", required_argument, NULL, 'm' },
		{ "max", required_argument, NULL, 'M' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int o, r, li = 0;

	while ((o = getopt_long(argc, argv, "h", opts, &li)) != -1) {
		switch (o) {
		case 'd':
			r = bench_parse_u64(optarg, 1, 30ull * 86400, &c->duration_s);
			break;
		case 'r':
			r = bench_parse_u64(optarg, 1, 86400, &c->every_s);
			break;
		case 'w':
			r = bench_parse_u64(optarg, 1, 1u << 28, &c->ws);
			break;
		case 't':
			r = bench_parse_u64(optarg, 1, 1024, &v);
			c->threads = (unsigned)v;
			break;
		case 'm':
			r = bench_parse_u64(optarg, 1, 1u << 30, &v);
			c->min_size = (uint32_t)v;
			break;
		case 'M':
			r = bench_parse_u64(optarg, 1, 1u << 30, &v);
			c->max_size = (uint32_t)v;
			break;
		case 's':
			r = bench_parse_u64(optarg, 0, UINT64_MAX, &c->seed);
			break;
		case 'h':
			soak_usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
		if (r < 0) {
			fprintf(stderr, "bench_soak: --%s: bad value '%s': %s\n",
				opts[li].name, optarg, strerror(-r));
			return r;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bench_soak: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (c->min_size > c->max_size) {
		fprintf(stderr, "bench_soak: --min %u is above --max %u\n", c->min_size, c->max_size);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct soak_cfg cfg = {
		.ws = 4000, .seed = 1, .duration_s = 60, .every_s = 10,
		.min_size = 16, .max_size = 1024, .threads = 1,
	};
	pthread_barrier_t start;
	struct soak_thread *th;
	struct bench_mem m;
	char ctrs[128];
	uint64_t t0, prev_t, prev_ops, end_ns, ops, sum = 0;
	unsigned i;
	int err = 0, r;

	if (soak_parse_args(argc, argv, &cfg) < 0) {
		soak_usage(stderr);
		return 2;
	}
	soak_counter = (soak_counter_fn)dlsym(RTLD_DEFAULT, "hakmem_counter");
	th = calloc(cfg.threads, sizeof(*th));
	if (!th) {
		fprintf(stderr, "bench_soak: out of memory\n");
		return 1;
	}
	/* The main thread joins the barrier too: the clock starts once every
	 * working set is filled. */
	pthread_barrier_init(&start, NULL, cfg.threads + 1);
	for (i = 0; i < cfg.threads; i++) {
		th[i].cfg = &cfg;
		th[i].start = &start;
		th[i].idx = i;
		r = pthread_create(&th[i].tid, NULL, soak_thread_main, &th[i]);
		if (r) {
			fprintf(stderr, "bench_soak: pthread_create: %s\n", strerror(r));
			return 1;
		}
	}
	pthread_barrier_wait(&start);
	t0 = prev_t = bench_now_ns();
	prev_ops = 0;
	end_ns = t0 + cfg.duration_s * 1000000000ull;
	for (uint64_t k = 1;; k++) {
		uint64_t next = t0 + k * cfg.every_s * 1000000000ull;
		uint64_t now;
		struct timespec ts;

		if (next > end_ns)
			next = end_ns;
		ts.tv_sec = (time_t)(next / 1000000000ull);
		ts.tv_nsec = (long)(next % 1000000000ull);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		ops = soak_total_ops(th, cfg.threads);
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
	for (i = 0; i < cfg.threads; i++) {
		pthread_join(th[i].tid, NULL);
		if (th[i].err)
			err = th[i].err;
		sum += th[i].sum;
	}
	pthread_barrier_destroy(&start);
	free(th);
	soak_sink = sum;
	if (err) {
		fprintf(stderr, "bench_soak: %s\n", strerror(err));
		return 1;
	}
	soak_counters(ctrs, sizeof(ctrs));
	printf("soak secs=%.3f ops=%" PRIu64 " ops_per_sec=%.1f peak_rss_kb=%ld threads=%u ws=%" PRIu64 "%s\n",
	       (double)(prev_t - t0) / 1e9, prev_ops, (double)prev_ops / ((double)(prev_t - t0) / 1e9),
	       bench_peak_rss_kb(), cfg.threads, cfg.ws, ctrs);
	fflush(stdout);
	return 0;
}
