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
	struct bench_sizes sz;
	uint64_t ops;      /* allocations per pair */
	uint32_t depth;    /* queue capacity in batches */
	uint32_t pairs;
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

struct larson_pair {
	const struct larson_cfg *cfg;
	unsigned idx;
	struct larson_queue q;
};

/* Per-thread record, cache-line aligned: only its own thread writes it.
 * Thread 2i is the producer of pair i, thread 2i + 1 its consumer; bt.err
 * is 0, ENOMEM, or EILSEQ on a corrupted block. */
struct larson_thread {
	struct bench_thread bt;
	struct larson_pair *pair;
} __attribute__((aligned(64)));

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

static void larson_producer(struct larson_thread *t)
{
	struct larson_pair *pr = t->pair;
	const struct larson_cfg *c = pr->cfg;
	struct larson_batch b = { .n = 0 };
	struct bench_dist d;
	struct bench_rng rng;
	uint64_t n;

	bench_dist_init(&d, &c->sz);
	bench_rng_seed(&rng, c->sz.seed, pr->idx);
	bench_thread_start(&t->bt);
	for (n = 0; n < c->ops; n++) {
		uint64_t r = bench_rng_next(&rng);
		uint32_t size = bench_size_draw(&d, (uint32_t)r);
		uint8_t pat = (uint8_t)(r >> 56) | 1;
		unsigned char *p = malloc(size);

		if (!p) {
			t->bt.err = ENOMEM;
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
	bench_thread_stop(&t->bt);
}

static void larson_consumer(struct larson_thread *t)
{
	struct larson_pair *pr = t->pair;
	struct larson_batch b;
	uint32_t i;

	bench_thread_start(&t->bt);
	while (larson_queue_pop(&pr->q, &b)) {
		for (i = 0; i < b.n; i++) {
			const unsigned char *p = b.p[i];

			if (p[0] != b.pat[i] || p[b.size[i] - 1] != b.pat[i]) {
				/* Report once and keep draining: the other
				 * blocks still have to be freed. */
				if (!t->bt.err)
					fprintf(stderr,
						"bench_larson: pair %u: block %p (%" PRIu32
						" bytes) lost its pattern 0x%02x\n",
						pr->idx, (const void *)p, b.size[i], b.pat[i]);
				t->bt.err = EILSEQ;
			}
			free(b.p[i]);
		}
	}
	bench_thread_stop(&t->bt);
}

static void *larson_thread_main(void *arg)
{
	struct larson_thread *t = arg;

	if (t->bt.idx % 2)
		larson_consumer(t);
	else
		larson_producer(t);
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
		"  --log-sizes  log-uniform sizes in [min, max]: each octave as likely\n"
		"prints: ops_per_sec=<f> peak_rss_kb=<n> ops=<n> threads=<2P> ws=<D*%d>\n",
		LARSON_BATCH, LARSON_BATCH);
}

int main(int argc, char **argv)
{
	/* 10M allocations per pair take about 1.5 s under glibc on the 2-vCPU
	 * machines (6-11 Mops/s with one pair, cross-thread frees contend on
	 * its arena lock); depth 32 keeps up to 2048 blocks (~1 MB) in flight
	 * and lets each side run 16 batches between wake-ups. */
	struct larson_cfg cfg = {
		.sz = BENCH_SIZES_DEFAULT, .ops = 10000000, .depth = 32, .pairs = 1,
	};
	const struct bench_opt opts[] = {
		{ "pairs", BENCH_OPT_U32, 1, 512, &cfg.pairs },
		{ "ops", BENCH_OPT_U64, 1, UINT64_MAX, &cfg.ops },
		{ "depth", BENCH_OPT_U32, 1, 1u << 20, &cfg.depth },
	};
	const struct bench_prog prog = {
		"bench_larson", opts, BENCH_NOPTS(opts), larson_usage, &cfg.sz,
	};
	struct larson_pair *pairs;
	struct larson_thread *th;
	uint64_t wall_ns;
	unsigned i;
	int r;

	bench_parse_args(&prog, argc, argv);
	pairs = calloc(cfg.pairs, sizeof(*pairs));
	th = calloc(2 * cfg.pairs, sizeof(*th));
	if (!pairs || !th) {
		fprintf(stderr, "bench_larson: out of memory\n");
		return 1;
	}
	for (i = 0; i < cfg.pairs; i++) {
		if (larson_queue_init(&pairs[i].q, cfg.depth) < 0) {
			fprintf(stderr, "bench_larson: out of memory\n");
			return 1;
		}
		pairs[i].cfg = &cfg;
		pairs[i].idx = i;
		th[2 * i].pair = th[2 * i + 1].pair = &pairs[i];
	}
	r = bench_run_threads(prog.name, th, sizeof(*th), 2 * cfg.pairs, larson_thread_main, NULL,
			      NULL, &wall_ns);
	for (i = 0; i < cfg.pairs; i++)
		larson_queue_destroy(&pairs[i].q);
	free(th);
	free(pairs);
	if (r < 0)
		return 1;
	bench_print_result(cfg.ops * cfg.pairs, wall_ns, 2 * cfg.pairs,
			   (uint64_t)cfg.depth * LARSON_BATCH);
	return 0;
}
