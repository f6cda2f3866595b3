/* bench_common.h — helpers shared by the hakmem benchmarks: a per-thread
 * PRNG, the monotonic clock, option parsing, peak RSS, the churn working
 * set, threads started from one barrier, and the one result line.
 * Benchmarks only: nothing here links against hakmem; the allocator
 * under test arrives through LD_PRELOAD, so these helpers must not allocate
 * inside a timed region. */
#pragma once

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* xorshift64*: one multiply per draw, good enough to pick slots and sizes,
 * fully determined by (seed, stream). */
struct bench_rng {
	uint64_t s; /* state, never 0 */
};

static inline uint64_t bench_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Each thread gets its own stream: same seed, different stream, no overlap
 * worth worrying about for a benchmark. */
static inline void bench_rng_seed(struct bench_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull);

	r->s = bench_splitmix64(&x);
	if (r->s == 0)
		r->s = 1;
}

static inline uint64_t bench_rng_next(struct bench_rng *r)
{
	uint64_t x = r->s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Maps 32 random bits onto [0, n) without a division (Lemire). */
static inline uint32_t bench_range32(uint32_t bits, uint32_t n)
{
	return (uint32_t)(((uint64_t)bits * n) >> 32);
}

/* Memory figures of this process in kB; -1 where unknown. */
struct bench_mem {
	long rss_kb;      /* VmRSS, /proc/self/status */
	long hwm_kb;      /* VmHWM (peak VmRSS) */
	long anon_kb;     /* Anonymous, /proc/self/smaps_rollup */
	long lazyfree_kb; /* LazyFree: MADV_FREE pages still counted in VmRSS */
};

/* One command-line option: --name, what it writes where, and its range
 * (for BENCH_OPT_DOUBLE and BENCH_OPT_SECONDS_MS the bounds are in the
 * option's own unit). */
enum bench_opt_kind {
	BENCH_OPT_U64,        /* uint64_t, k/M/G suffixes */
	BENCH_OPT_U32,        /* uint32_t, k/M/G suffixes */
	BENCH_OPT_DOUBLE,     /* double */
	BENCH_OPT_SECONDS_MS, /* seconds as a double, stored as uint64_t ms */
	BENCH_OPT_FLAG,       /* no argument; int set to 1 */
};

struct bench_opt {
	const char *name;
	enum bench_opt_kind kind;
	uint64_t min, max;
	void *dst;
};

/* --min, --max, --seed and --log-sizes, which every benchmark takes:
 * block sizes are drawn from [min_size, max_size] by a seeded stream,
 * uniformly, or with --log-sizes log-uniformly (each octave as likely as
 * any other, as the sizes of real buffers tend to be). */
struct bench_sizes {
	uint64_t seed;
	uint32_t min_size; /* bytes */
	uint32_t max_size; /* bytes, inclusive */
	int log_sizes;     /* 1: log-uniform */
};

#define BENCH_SIZES_DEFAULT { .seed = 1, .min_size = 16, .max_size = 1024 }

/* The size distribution of struct bench_sizes, ready to draw from with
 * bench_size_draw(): uniform when log_steps is 0, else log-uniform in
 * steps of 1/256 octave (0.27 %). */
struct bench_dist {
	uint32_t min;       /* bytes */
	uint32_t max;       /* bytes, inclusive */
	uint32_t span;      /* max - min + 1 */
	uint32_t log_steps; /* 0, or the last step e with min * 2^(e/256) <= max */
};

/* 2^(k/256) * 2^32, k = 0..255; filled by bench_dist_init(). */
extern uint64_t bench_exp2_q32[256];

/* One size of distribution d from 32 random bits. */
static inline uint32_t bench_size_draw(const struct bench_dist *d, uint32_t bits)
{
	uint32_t e;
	uint64_t s;

	if (!d->log_steps)
		return d->min + bench_range32(bits, d->span);
	e = bench_range32(bits, d->log_steps + 1);
	s = ((uint64_t)d->min << (e >> 8)) * bench_exp2_q32[e & 255] >> 32;
	return s > d->max ? d->max : (uint32_t)s;
}

/* What a benchmark tells bench_parse_args() about itself. */
struct bench_prog {
	const char *name;             /* "bench_churn": prefix of every message */
	const struct bench_opt *opts; /* its own options; --min, --max, --seed
				       * and --help are added */
	unsigned nopts;
	void (*usage)(FILE *f);
	struct bench_sizes *sizes;    /* set by --min, --max, --seed; min <= max */
};

#define BENCH_NOPTS(opts) (sizeof(opts) / sizeof((opts)[0]))

/* The churn working set: ws slots, each holding a block of a size drawn
 * from dist. One step frees a random slot and allocates a random size
 * into it, touching the first and last byte (or every page). */
struct bench_churn {
	unsigned char **slot; /* ws entries */
	uint32_t ws;          /* slots */
	struct bench_dist dist;
	int touch_pages;      /* 1: write one byte in every 4 KiB of each new
			       * block, not only its ends (set after init) */
	int own_slot;         /* slot was calloc'ed by bench_churn_init() */
	struct bench_rng rng;
	uint64_t sum;         /* first bytes read back, keeps the writes alive */
};

/* The head of every per-thread record given to bench_run_threads(); the
 * records are cache-line aligned by their owners so that the timestamps
 * written at the end do not share a line with a thread still running. */
struct bench_thread {
	pthread_t tid;
	pthread_barrier_t *start;
	unsigned idx;      /* 0 .. n - 1, set by bench_run_threads() */
	int err;           /* 0 or a positive errno */
	uint64_t start_ns; /* after the barrier */
	uint64_t end_ns;   /* after the last timed op, before the cleanup */
};

/* bench_common.c */
uint64_t bench_now_ns(void);
void bench_sleep_until(uint64_t ns);
int bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
void bench_parse_args(const struct bench_prog *prog, int argc, char **argv);
long bench_read_file(const char *path, char *buf, size_t size);
long bench_kb_field(const char *text, const char *key);
long bench_peak_rss_kb(void);
int bench_mem_sample(struct bench_mem *m, int smaps);
long bench_minflt(void);
void bench_dist_init(struct bench_dist *d, const struct bench_sizes *sz);
int bench_churn_init(struct bench_churn *w, unsigned char **slot, uint32_t ws,
		     const struct bench_sizes *sz, uint64_t stream);
uint64_t bench_churn_step(struct bench_churn *w, uint64_t first, uint64_t count);
void bench_churn_free(struct bench_churn *w);
void bench_thread_start(struct bench_thread *t);
void bench_thread_stop(struct bench_thread *t);
int bench_run_threads(const char *name, void *recs, size_t stride, unsigned n,
		      void *(*fn)(void *), void (*during)(void *), void *ctx, uint64_t *wall_ns);
void bench_print_result(uint64_t ops, uint64_t elapsed_ns, unsigned threads, uint64_t ws);
