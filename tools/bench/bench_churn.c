/* bench_churn.c — mixed churn benchmark. Each thread owns a working set of
 * WS slots; one op frees a random slot and allocates a random size in
 * [min, max] into it, touching the first and last byte. Threads share
 * nothing. Prints one result line (see bench_common.c) and nothing else on
 * stdout. Run under LD_PRELOAD; never linked against hakmem. */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct churn_cfg {
	uint64_t ws;       /* slots per thread */
	uint64_t ops;      /* timed ops per thread */
	uint64_t seed;
	uint32_t min_size; /* bytes */
	uint32_t max_size; /* bytes, inclusive */
	unsigned threads;
};

/* One per thread, cache-line aligned so the timestamps written at the end
 * do not share a line with a neighbour that is still running. */
struct churn_thread {
	const struct churn_cfg *cfg;
	pthread_barrier_t *start;
	pthread_t tid;
	unsigned idx;
	int err;           /* 0 or a positive errno */
	uint64_t start_ns; /* after the barrier */
	uint64_t end_ns;   /* after the last timed op, before the cleanup */
	uint64_t sum;      /* first bytes read back, keeps the writes alive */
} __attribute__((aligned(64)));

static volatile uint64_t churn_sink;

static void *churn_thread_main(void *arg)
{
	struct churn_thread *t = arg;
	const struct churn_cfg *c = t->cfg;
	const uint32_t ws = (uint32_t)c->ws;
	const uint32_t span = c->max_size - c->min_size + 1;
	struct bench_rng rng;
	unsigned char **slot;
	uint64_t sum = 0;
	uint64_t n;
	uint32_t i;

	bench_rng_seed(&rng, c->seed, t->idx);
	slot = calloc(ws, sizeof(*slot));
	if (!slot) {
		t->err = ENOMEM;
		pthread_barrier_wait(t->start);
		return NULL;
	}
	/* Fill the working set before the clock starts: the timed loop then
	 * measures steady-state churn, not the ramp-up. */
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
	t->start_ns = bench_now_ns();
	for (n = 0; n < c->ops && !t->err; n++) {
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
	t->end_ns = bench_now_ns();

	for (i = 0; i < ws; i++)
		free(slot[i]);
	free(slot);
	t->sum = sum;
	return NULL;
}

static void churn_usage(FILE *f)
{
	fprintf(f,
		"usage: bench_churn [options]\n"
		"  --ws N       slots per thread (default 400)\n"
		"  --threads T  independent threads (default 1)\n"
		"  --ops N      timed ops per thread, k/M/G suffixes (default 40M)\n"
		"  --min B      smallest size in bytes (default 16)\n"
		"  --max B      largest size in bytes (default 1024)\n"
		"  --seed S     PRNG seed (default 1)\n"
		"prints: ops_per_sec=<f> peak_rss_kb=<n> ops=<n> threads=<n> ws=<n>\n");
}

static int churn_parse_args(int argc, char **argv, struct churn_cfg *c)
{
	static const struct option opts[] = {
		{ "ws", required_argument, NULL, 'w' },
		{ "threads", required_argument, NULL, 't' },
		{ "ops", required_argument, NULL, 'o' },
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
		case 'w':
			r = bench_parse_u64(optarg, 1, 1u << 28, &c->ws);
			break;
		case 't':
			r = bench_parse_u64(optarg, 1, 1024, &v);
			c->threads = (unsigned)v;
			break;
		case 'o':
			r = bench_parse_u64(optarg, 1, UINT64_MAX, &c->ops);
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
			churn_usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
		if (r < 0) {
			fprintf(stderr, "bench_churn: --%s: bad value '%s': %s\n",
				opts[li].name, optarg, strerror(-r));
			return r;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bench_churn: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (c->min_size > c->max_size) {
		fprintf(stderr, "bench_churn: --min %u is above --max %u\n",
			c->min_size, c->max_size);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	/* 40M ops per thread take 0.6 to 1.3 s under glibc on the 2-vCPU
	 * machines (45-65 Mops/s at WS=400 1T, ~31 Mops/s per thread at
	 * WS=4000 2T); mimalloc takes about half of that. */
	struct churn_cfg cfg = {
		.ws = 400, .ops = 40000000, .seed = 1,
		.min_size = 16, .max_size = 1024, .threads = 1,
	};
	pthread_barrier_t start;
	struct churn_thread *th;
	uint64_t first = UINT64_MAX, last = 0, sum = 0;
	unsigned i;
	int err = 0, r;

	if (churn_parse_args(argc, argv, &cfg) < 0) {
		churn_usage(stderr);
		return 2;
	}
	th = calloc(cfg.threads, sizeof(*th));
	if (!th) {
		fprintf(stderr, "bench_churn: out of memory\n");
		return 1;
	}
	pthread_barrier_init(&start, NULL, cfg.threads);
	for (i = 0; i < cfg.threads; i++) {
		th[i].cfg = &cfg;
		th[i].start = &start;
		th[i].idx = i;
		r = pthread_create(&th[i].tid, NULL, churn_thread_main, &th[i]);
		if (r) {
			/* The barrier counts every thread: a missing one would
			 * hang the others, so give up at once. */
			fprintf(stderr, "bench_churn: pthread_create: %s\n", strerror(r));
			return 1;
		}
	}
	for (i = 0; i < cfg.threads; i++) {
		pthread_join(th[i].tid, NULL);
		if (th[i].err)
			err = th[i].err;
		if (th[i].start_ns < first)
			first = th[i].start_ns;
		if (th[i].end_ns > last)
			last = th[i].end_ns;
		sum += th[i].sum;
	}
	pthread_barrier_destroy(&start);
	free(th);
	churn_sink = sum;
	if (err) {
		fprintf(stderr, "bench_churn: %s\n", strerror(err));
		return 1;
	}
	bench_print_result(cfg.ops * cfg.threads, last - first, cfg.threads, cfg.ws);
	return 0;
}
