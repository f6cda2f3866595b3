/* bench_larson.c — larson-like cross-thread benchmark. Each pair is one
 * producer and one consumer thread joined by a bounded queue of batches:
 * the producer allocates random sizes, fills each block with a pattern byte
 * and hands batches of LARSON_BATCH pointers over; the consumer checks the
 * pattern at both ends and frees the block, so every free is remote. Pairs
 * share nothing. Prints one result line (see bench_common.c); ops counts
 * allocations. Run under LD_PRELOAD; never linked against hakmem. */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 64 pointers per hand-over: the queue lock is taken once per 64 blocks,
 * so the allocator, not the queue, dominates the profile. */
#define LARSON_BATCH 64

struct larson_cfg {
	uint64_t ops;      /* allocations per pair */
	uint64_t seed;
	uint32_t min_size; /* bytes */
	uint32_t max_size; /* bytes, inclusive */
	uint32_t depth;    /* queue capacity in batches */
	unsigned pairs;
};

struct larson_batch {
	uint32_t n;                        /* blocks in use */
	uint32_t size[LARSON_BATCH];       /* bytes */
	uint8_t pat[LARSON_BATCH];         /* fill byte, never 0 */
	unsigned char *p[LARSON_BATCH];
};

/* Bounded FIFO of batches. Invariant: count <= depth; a side sleeps only
 * when it cannot move (full / empty and open) and is woken with hysteresis
 * (when the other side has moved wake_at batches), so the threads trade
 * runs of batches instead of one futex round trip per batch. */
struct larson_queue {
	pthread_mutex_t lock;
	pthread_cond_t not_empty;
	pthread_cond_t not_full;
	uint32_t depth;           /* capacity, batches */
	uint32_t wake_at;         /* batches between sleep and wake-up */
	uint32_t head;            /* next slot to pop */
	uint32_t count;           /* batches queued */
	bool closed;              /* producer is done */
	bool consumer_waiting;
	bool producer_waiting;
	struct larson_batch *slot; /* depth entries */
};

/* Per-thread record, cache-line aligned: only its own thread writes it. */
struct larson_thread {
	pthread_t tid;
	int err;           /* 0, ENOMEM, or EILSEQ on a corrupted block */
	uint64_t start_ns; /* after the barrier */
	uint64_t end_ns;   /* after the last op */
} __attribute__((aligned(64)));

struct larson_pair {
	const struct larson_cfg *cfg;
	pthread_barrier_t *start;
	unsigned idx;
	struct larson_queue q;
	struct larson_thread producer;
	struct larson_thread consumer;
};

static int larson_queue_init(struct larson_queue *q, uint32_t depth)
{
	q->slot = calloc(depth, sizeof(*q->slot));
	if (!q->slot)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	pthread_cond_init(&q->not_full, NULL);
	q->depth = depth;
	q->wake_at = depth / 2 ? depth / 2 : 1;
	return 0;
}

static void larson_queue_destroy(struct larson_queue *q)
{
	pthread_cond_destroy(&q->not_full);
	pthread_cond_destroy(&q->not_empty);
	pthread_mutex_destroy(&q->lock);
	free(q->slot);
}

static void larson_queue_push(struct larson_queue *q, const struct larson_batch *b)
{
	pthread_mutex_lock(&q->lock);
	while (q->count == q->depth) {
		q->producer_waiting = true;
		pthread_cond_wait(&q->not_full, &q->lock);
	}
	q->slot[(q->head + q->count) % q->depth] = *b;
	q->count++;
	if (q->consumer_waiting && q->count >= q->wake_at) {
		q->consumer_waiting = false;
		pthread_cond_signal(&q->not_empty);
	}
	pthread_mutex_unlock(&q->lock);
}

static void larson_queue_close(struct larson_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	q->consumer_waiting = false;
	pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->lock);
}

/* Copies the oldest batch into *b; false once the queue is closed and
 * drained. */
static bool larson_queue_pop(struct larson_queue *q, struct larson_batch *b)
{
	pthread_mutex_lock(&q->lock);
	while (q->count == 0 && !q->closed) {
		q->consumer_waiting = true;
		pthread_cond_wait(&q->not_empty, &q->lock);
	}
	if (q->count == 0) {
		pthread_mutex_unlock(&q->lock);
		return false;
	}
	*b = q->slot[q->head];
	q->head = (q->head + 1) % q->depth;
	q->count--;
	if (q->producer_waiting && q->count <= q->depth - q->wake_at) {
		q->producer_waiting = false;
		pthread_cond_signal(&q->not_full);
	}
	pthread_mutex_unlock(&q->lock);
	return true;
}

static void *larson_producer_main(void *arg)
{
	struct larson_pair *pr = arg;
	const struct larson_cfg *c = pr->cfg;
	const uint32_t span = c->max_size - c->min_size + 1;
	struct larson_thread *t = &pr->producer;
	struct larson_batch b = { .n = 0 };
	struct bench_rng rng;
	uint64_t n;

	bench_rng_seed(&rng, c->seed, pr->idx);
	pthread_barrier_wait(pr->start);
	t->start_ns = bench_now_ns();
	for (n = 0; n < c->ops; n++) {
		uint64_t r = bench_rng_next(&rng);
		uint32_t size = c->min_size + bench_range32((uint32_t)r, span);
		uint8_t pat = (uint8_t)(r >> 56) | 1;
		unsigned char *p = malloc(size);

		if (!p) {
			t->err = ENOMEM;
			break;
		}
		memset(p, pat, size);
		b.p[b.n] = p;
		b.size[b.n] = size;
		b.pat[b.n] = pat;
		if (++b.n == LARSON_BATCH) {
			larson_queue_push(&pr->q, &b);
			b.n = 0;
		}
	}
	if (b.n)
		larson_queue_push(&pr->q, &b);
	larson_queue_close(&pr->q);
	t->end_ns = bench_now_ns();
	return NULL;
}

static void *larson_consumer_main(void *arg)
{
	struct larson_pair *pr = arg;
	struct larson_thread *t = &pr->consumer;
	struct larson_batch b;
	uint32_t i;

	pthread_barrier_wait(pr->start);
	t->start_ns = bench_now_ns();
	while (larson_queue_pop(&pr->q, &b)) {
		for (i = 0; i < b.n; i++) {
			const unsigned char *p = b.p[i];

			if (p[0] != b.pat[i] || p[b.size[i] - 1] != b.pat[i]) {
				/* Report once and keep draining: the other
				 * blocks still have to be freed. */
				if (!t->err)
					fprintf(stderr,
						"bench_larson: pair %u: block %p (%" PRIu32
						" bytes) lost its pattern 0x%02x\n",
						pr->idx, (const void *)p, b.size[i], b.pat[i]);
				t->err = EILSEQ;
			}
			free(b.p[i]);
		}
	}
	t->end_ns = bench_now_ns();
	return NULL;
}

static void larson_usage(FILE *f)
{
	fprintf(f,
		"usage: bench_larson [options]\n"
		"  --pairs P    producer/consumer pairs (default 1)\n"
		"  --ops N      allocations per pair, k/M/G suffixes (default 10M)\n"
		"  --min B      smallest size in bytes (default 16)\n"
		"  --max B      largest size in bytes (default 1024)\n"
		"  --depth D    queue capacity per pair in batches of %d (default 32)\n"
		"  --seed S     PRNG seed (default 1)\n"
		"prints: ops_per_sec=<f> peak_rss_kb=<n> ops=<n> threads=<2P> ws=<D*%d>\n",
		LARSON_BATCH, LARSON_BATCH);
}

static int larson_parse_args(int argc, char **argv, struct larson_cfg *c)
{
	static const struct option opts[] = {
		{ "pairs", required_argument, NULL, 'p' },
		{ "ops", required_argument, NULL, 'o' },
		{ "min", required_argument, NULL, 'm' },
		{ "max", required_argument, NULL, 'M' },
		{ "depth", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int o, r, li = 0;

	while ((o = getopt_long(argc, argv, "h", opts, &li)) != -1) {
		switch (o) {
		case 'p':
			r = bench_parse_u64(optarg, 1, 512, &v);
			c->pairs = (unsigned)v;
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
		case 'd':
			r = bench_parse_u64(optarg, 1, 1u << 20, &v);
			c->depth = (uint32_t)v;
			break;
		case 's':
			r = bench_parse_u64(optarg, 0, UINT64_MAX, &c->seed);
			break;
		case 'h':
			larson_usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
		if (r < 0) {
			fprintf(stderr, "bench_larson: --%s: bad value '%s': %s\n",
				opts[li].name, optarg, strerror(-r));
			return r;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bench_larson: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (c->min_size > c->max_size) {
		fprintf(stderr, "bench_larson: --min %u is above --max %u\n",
			c->min_size, c->max_size);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	/* 10M allocations per pair take about 1.5 s under glibc on the 2-vCPU
	 * machines (6-11 Mops/s with one pair, cross-thread frees contend on
	 * its arena lock); depth 32 keeps up to 2048 blocks (~1 MB) in flight
	 * and lets each side run 16 batches between wake-ups. */
	struct larson_cfg cfg = {
		.ops = 10000000, .seed = 1, .min_size = 16, .max_size = 1024,
		.depth = 32, .pairs = 1,
	};
	pthread_barrier_t start;
	struct larson_pair *pairs;
	uint64_t first = UINT64_MAX, last = 0;
	unsigned i;
	int err = 0, r;

	if (larson_parse_args(argc, argv, &cfg) < 0) {
		larson_usage(stderr);
		return 2;
	}
	pairs = calloc(cfg.pairs, sizeof(*pairs));
	if (!pairs) {
		fprintf(stderr, "bench_larson: out of memory\n");
		return 1;
	}
	for (i = 0; i < cfg.pairs; i++) {
		if (larson_queue_init(&pairs[i].q, cfg.depth) < 0) {
			fprintf(stderr, "bench_larson: out of memory\n");
			return 1;
		}
	}
	pthread_barrier_init(&start, NULL, 2 * cfg.pairs);
	for (i = 0; i < cfg.pairs; i++) {
		struct larson_pair *pr = &pairs[i];

		pr->cfg = &cfg;
		pr->start = &start;
		pr->idx = i;
		r = pthread_create(&pr->consumer.tid, NULL, larson_consumer_main, pr);
		if (!r)
			r = pthread_create(&pr->producer.tid, NULL, larson_producer_main, pr);
		if (r) {
			/* The barrier counts every thread: a missing one would
			 * hang the others, so give up at once. */
			fprintf(stderr, "bench_larson: pthread_create: %s\n", strerror(r));
			return 1;
		}
	}
	for (i = 0; i < cfg.pairs; i++) {
		struct larson_thread *side[2] = { &pairs[i].producer, &pairs[i].consumer };
		unsigned s;

		for (s = 0; s < 2; s++) {
			pthread_join(side[s]->tid, NULL);
			if (side[s]->err)
				err = side[s]->err;
			if (side[s]->start_ns < first)
				first = side[s]->start_ns;
			if (side[s]->end_ns > last)
				last = side[s]->end_ns;
		}
		larson_queue_destroy(&pairs[i].q);
	}
	pthread_barrier_destroy(&start);
	free(pairs);
	if (err) {
		fprintf(stderr, "bench_larson: %s\n", strerror(err));
		return 1;
	}
	bench_print_result(cfg.ops * cfg.pairs, last - first, 2 * cfg.pairs,
			   (uint64_t)cfg.depth * LARSON_BATCH);
	return 0;
}
