/* bench_common.h — helpers shared by the hakmem benchmarks: a per-thread
 * PRNG, the monotonic clock, number parsing, peak RSS and the one result
 * line. Benchmarks only: nothing here links against hakmem; the allocator
 * under test arrives through LD_PRELOAD, so these helpers must not allocate
 * inside a timed region. */
#pragma once

#include <stddef.h>
#include <stdint.h>

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

/* bench_common.c */
uint64_t bench_now_ns(void);
int bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
long bench_read_file(const char *path, char *buf, size_t size);
long bench_kb_field(const char *text, const char *key);
long bench_peak_rss_kb(void);
int bench_mem_sample(struct bench_mem *m, int smaps);
void bench_print_result(uint64_t ops, uint64_t elapsed_ns, unsigned threads, uint64_t ws);
