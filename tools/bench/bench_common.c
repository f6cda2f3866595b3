/* bench_common.c — clock, option parsing, /proc memory figures, the churn
 * working set, the thread start and the result line shared by the
 * benchmarks. Reads /proc with open/read into a stack buffer so that
 * reporting does not go through the allocator under test; allocates only
 * outside the timed regions (the churn step itself excepted). */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleeps until CLOCK_MONOTONIC reads ns (absolute, so that a period grid
 * does not drift with the work done between sleeps). */
void bench_sleep_until(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Parses a decimal number with an optional k/M/G suffix (powers of 1000,
 * as in "--ops 20M"). Returns 0 or -EINVAL / -ERANGE. */
int bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	if (end == s)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		mult = 1000ull;
		end++;
		break;
	case 'm': case 'M':
		mult = 1000000ull;
		end++;
		break;
	case 'g': case 'G':
		mult = 1000000000ull;
		end++;
		break;
	default:
		return -EINVAL;
	}
	if (*end != '\0')
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	v *= mult;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static int bench_parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || v != v)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static int bench_parse_opt(const struct bench_opt *o, const char *arg)
{
	uint64_t v;
	double d;
	int r;

	switch (o->kind) {
	case BENCH_OPT_U64:
		return bench_parse_u64(arg, o->min, o->max, o->dst);
	case BENCH_OPT_U32:
		r = bench_parse_u64(arg, o->min, o->max, &v);
		if (!r)
			*(uint32_t *)o->dst = (uint32_t)v;
		return r;
	case BENCH_OPT_DOUBLE:
		return bench_parse_double(arg, (double)o->min, (double)o->max, o->dst);
	case BENCH_OPT_SECONDS_MS:
		r = bench_parse_double(arg, (double)o->min, (double)o->max, &d);
		if (!r)
			*(uint64_t *)o->dst = (uint64_t)(d * 1000.0 + 0.5);
		return r;
	case BENCH_OPT_FLAG:
		*(int *)o->dst = 1;
		return 0;
	}
	return -EINVAL;
}

/* Parses argv into the destinations of prog->opts. --help prints the
 * usage on stdout and exits 0; a bad option, value or argument, or --min
 * above --max, is reported on stderr, followed by the usage, and exits 2. */
void bench_parse_args(const struct bench_prog *prog, int argc, char **argv)
{
	/* val: the option's index in all[] plus BENCH_OPT_VAL, clear of 'h'
	 * and '?'. The program's options come first, then --min, --max and
	 * --seed: getopt_long lists the candidates of an ambiguous
	 * abbreviation in this order. */
	enum { BENCH_OPT_VAL = 256, BENCH_MAX_OPTS = 16, BENCH_SIZE_OPTS = 4 };
	struct bench_sizes *sz = prog->sizes;
	const struct bench_opt size_opts[BENCH_SIZE_OPTS] = {
		{ "min", BENCH_OPT_U32, 1, 1u << 30, &sz->min_size },
		{ "max", BENCH_OPT_U32, 1, 1u << 30, &sz->max_size },
		{ "seed", BENCH_OPT_U64, 0, UINT64_MAX, &sz->seed },
		{ "log-sizes", BENCH_OPT_FLAG, 0, 0, &sz->log_sizes },
	};
	struct bench_opt all[BENCH_MAX_OPTS + BENCH_SIZE_OPTS];
	struct option lo[BENCH_MAX_OPTS + BENCH_SIZE_OPTS + 2];
	unsigned i, n = prog->nopts + BENCH_SIZE_OPTS;
	int o, r;

	if (prog->nopts > BENCH_MAX_OPTS)
		abort();
	memcpy(all, prog->opts, prog->nopts * sizeof(*all));
	memcpy(all + prog->nopts, size_opts, sizeof(size_opts));
	for (i = 0; i < n; i++)
		lo[i] = (struct option){ all[i].name,
					 all[i].kind == BENCH_OPT_FLAG ? no_argument
								       : required_argument,
					 NULL, BENCH_OPT_VAL + (int)i };
	lo[i++] = (struct option){ "help", no_argument, NULL, 'h' };
	lo[i] = (struct option){ NULL, 0, NULL, 0 };

	while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		const struct bench_opt *opt;

		if (o == 'h') {
			prog->usage(stdout);
			exit(0);
		}
		if (o < BENCH_OPT_VAL)
			goto bad; /* getopt_long has said why */
		opt = &all[o - BENCH_OPT_VAL];
		r = bench_parse_opt(opt, optarg);
		if (r < 0) {
			fprintf(stderr, "%s: --%s: bad value '%s': %s\n",
				prog->name, opt->name, optarg, strerror(-r));
			goto bad;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", prog->name, argv[optind]);
		goto bad;
	}
	if (sz->min_size > sz->max_size) {
		fprintf(stderr, "%s: --min %u is above --max %u\n",
			prog->name, sz->min_size, sz->max_size);
		goto bad;
	}
	return;
bad:
	prog->usage(stderr);
	exit(2);
}

/* Reads the whole of a (small) /proc file into buf, NUL-terminated, with
 * open/read only: no allocation, so it is safe next to a timed region or
 * inside a benchmark that measures its own RSS. Returns the length, or a
 * negative errno. A file longer than size - 1 bytes is cut short. */
long bench_read_file(const char *path, char *buf, size_t size)
{
	ssize_t n;
	size_t len = 0;
	int fd;

	if (size == 0)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len < size - 1) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			close(fd);
			buf[0] = '\0';
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return (long)len;
}

/* The number after "key" at the start of a line of text ("VmRSS:",
 * "LazyFree:"), or -ENOENT. */
long bench_kb_field(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (strncmp(p, key, klen) == 0)
			return strtol(p + klen, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -ENOENT;
}

/* Peak resident set (VmHWM) of this process in kB, or a negative errno. */
long bench_peak_rss_kb(void)
{
	char buf[4096];
	long r = bench_read_file("/proc/self/status", buf, sizeof(buf));

	if (r < 0)
		return r;
	return bench_kb_field(buf, "VmHWM:");
}

/* VmRSS and VmHWM from /proc/self/status; with smaps, Anonymous and
 * LazyFree from /proc/self/smaps_rollup too (that one walks the page
 * tables: about a millisecond per few hundred MB, fine every 10 ms).
 * Fields that cannot be read are -1. Returns 0 or a negative errno. */
int bench_mem_sample(struct bench_mem *m, int smaps)
{
	char buf[4096];
	long r;

	m->rss_kb = m->hwm_kb = m->anon_kb = m->lazyfree_kb = -1;
	r = bench_read_file("/proc/self/status", buf, sizeof(buf));
	if (r < 0)
		return (int)r;
	m->rss_kb = bench_kb_field(buf, "VmRSS:");
	m->hwm_kb = bench_kb_field(buf, "VmHWM:");
	if (!smaps)
		return 0;
	r = bench_read_file("/proc/self/smaps_rollup", buf, sizeof(buf));
	if (r < 0)
		return (int)r;
	m->anon_kb = bench_kb_field(buf, "Anonymous:");
	m->lazyfree_kb = bench_kb_field(buf, "LazyFree:");
	return 0;
}

/* Minor page faults of the whole process so far (getrusage), or -1. */
long bench_minflt(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return ru.ru_minflt;
}

uint64_t bench_exp2_q32[256];

/* Sets d up from sz (min <= max, as bench_parse_args() checked). The
 * table is filled by repeated multiplication (no libm): the error after
 * 255 steps is far below the 2^-32 of a table entry's last bit that
 * matters here. */
void bench_dist_init(struct bench_dist *d, const struct bench_sizes *sz)
{
	const double step = 1.0027112750502024854; /* 2^(1/256) */
	double x = 4294967296.0;                     /* 2^32 */
	uint32_t e;

	for (unsigned k = 0; k < 256; k++, x *= step)
		bench_exp2_q32[k] = (uint64_t)(x + 0.5);
	d->min = sz->min_size;
	d->max = sz->max_size;
	d->span = sz->max_size - sz->min_size + 1;
	d->log_steps = 0;
	if (!sz->log_sizes || sz->min_size == sz->max_size)
		return;
	/* the last step that stays within max: at most 30 octaves */
	for (e = 1; e < 30u * 256; e++)
		if ((((uint64_t)d->min << (e >> 8)) * bench_exp2_q32[e & 255] >> 32) > d->max)
			break;
	d->log_steps = e - 1 ? e - 1 : 1;
}

/* Where the churn threads leave their sums, so that the compiler keeps the
 * reads and writes of the blocks. */
static _Atomic uint64_t bench_sink;

/* Fills a working set of ws slots before any clock starts, so that the
 * timed steps measure steady-state churn, not the ramp-up. slot: ws
 * entries from the caller (bench_phase maps its own), or NULL to have them
 * calloc'ed here. The stream (sz->seed, stream) draws the sizes of the
 * fill and of every later step. Returns 0 or -ENOMEM; either way
 * bench_churn_free() releases what was allocated. */
int bench_churn_init(struct bench_churn *w, unsigned char **slot, uint32_t ws,
		     const struct bench_sizes *sz, uint64_t stream)
{
	uint32_t i;

	w->ws = ws;
	bench_dist_init(&w->dist, sz);
	w->touch_pages = 0;
	w->sum = 0;
	w->own_slot = !slot;
	bench_rng_seed(&w->rng, sz->seed, stream);
	w->slot = slot ? slot : calloc(ws, sizeof(*slot));
	if (!w->slot)
		return -ENOMEM;
	for (i = 0; i < ws; i++) {
		uint64_t r = bench_rng_next(&w->rng);
		size_t size = bench_size_draw(&w->dist, (uint32_t)r);
		unsigned char *p = malloc(size);

		if (!p)
			return -ENOMEM;
		p[0] = (unsigned char)i;
		p[size - 1] = (unsigned char)i;
		w->slot[i] = p;
	}
	return 0;
}

/* The loop of bench_churn_step(), inlined three times so that the default
 * case (uniform sizes, ends touched) keeps the instructions it always had:
 * callgrind counts of the allocators are taken on it. */
static inline __attribute__((always_inline)) uint64_t
churn_loop(struct bench_churn *w, uint64_t first, uint64_t count, int log_sizes, int pages)
{
	unsigned char **slot = w->slot;
	const uint32_t ws = w->ws;
	struct bench_dist d = w->dist;
	struct bench_rng rng = w->rng;
	uint64_t sum = w->sum;
	uint64_t n;

	if (!log_sizes)
		d.log_steps = 0;
	for (n = 0; n < count; n++) {
		uint64_t r = bench_rng_next(&rng);
		uint32_t k = bench_range32((uint32_t)(r >> 32), ws);
		size_t size = log_sizes ? bench_size_draw(&d, (uint32_t)r)
					: d.min + bench_range32((uint32_t)r, d.span);
		unsigned char *p;

		sum += slot[k][0];
		free(slot[k]);
		p = malloc(size);
		if (!p) {
			slot[k] = NULL;
			break;
		}
		p[0] = (unsigned char)(first + n);
		if (pages)
			for (size_t off = 4096; off < size; off += 4096)
				p[off] = (unsigned char)(first + n);
		p[size - 1] = (unsigned char)(first + n);
		slot[k] = p;
	}
	w->rng = rng;
	w->sum = sum;
	return n;
}

/* count churn ops: free a random slot, allocate a random size into it and
 * write (first + op number) into its first and last byte (with
 * touch_pages, into one byte of every 4 KiB too). Returns the ops done:
 * count, or fewer when malloc failed (that slot is then NULL). */
uint64_t bench_churn_step(struct bench_churn *w, uint64_t first, uint64_t count)
{
	if (w->touch_pages)
		return churn_loop(w, first, count, w->dist.log_steps != 0, 1);
	if (w->dist.log_steps)
		return churn_loop(w, first, count, 1, 0);
	return churn_loop(w, first, count, 0, 0);
}

/* Frees every block (and the slots, when bench_churn_init() allocated
 * them) and adds the sum to the sink. */
void bench_churn_free(struct bench_churn *w)
{
	if (w->slot) {
		for (uint32_t i = 0; i < w->ws; i++)
			free(w->slot[i]);
		if (w->own_slot)
			free(w->slot);
	}
	w->slot = NULL;
	atomic_fetch_add_explicit(&bench_sink, w->sum, memory_order_relaxed);
}

/* First thing a thread does with its timed work ready: wait for the
 * others, then take its start time. */
void bench_thread_start(struct bench_thread *t)
{
	pthread_barrier_wait(t->start);
	t->start_ns = bench_now_ns();
}

/* After the last timed op, before the cleanup. */
void bench_thread_stop(struct bench_thread *t)
{
	t->end_ns = bench_now_ns();
}

/* Runs fn on each of n records of stride bytes at recs (each starting with
 * a struct bench_thread), all released by one barrier that fn passes with
 * bench_thread_start(). With during, the calling thread is counted in the
 * barrier too and runs during(ctx) once released, before the joins. The
 * error of a thread (the last in index order) or a failed pthread_create
 * is reported as "name: reason" on stderr and gives -1; otherwise 0 with
 * *wall_ns (when not NULL) = the latest end minus the earliest start. */
int bench_run_threads(const char *name, void *recs, size_t stride, unsigned n,
		      void *(*fn)(void *), void (*during)(void *), void *ctx, uint64_t *wall_ns)
{
	pthread_barrier_t start;
	uint64_t first = UINT64_MAX, last = 0;
	unsigned i;
	int err = 0, r;

	pthread_barrier_init(&start, NULL, n + (during != NULL));
	for (i = 0; i < n; i++) {
		struct bench_thread *t = (void *)((char *)recs + (size_t)i * stride);

		t->start = &start;
		t->idx = i;
		r = pthread_create(&t->tid, NULL, fn, t);
		if (r) {
			/* The barrier counts every thread: a missing one would
			 * hang the others, so give up at once. */
			fprintf(stderr, "%s: pthread_create: %s\n", name, strerror(r));
			exit(1);
		}
	}
	if (during) {
		pthread_barrier_wait(&start);
		during(ctx);
	}
	for (i = 0; i < n; i++) {
		struct bench_thread *t = (void *)((char *)recs + (size_t)i * stride);

		pthread_join(t->tid, NULL);
		if (t->err)
			err = t->err;
		if (t->start_ns < first)
			first = t->start_ns;
		if (t->end_ns > last)
			last = t->end_ns;
	}
	pthread_barrier_destroy(&start);
	if (err) {
		fprintf(stderr, "%s: %s\n", name, strerror(err));
		return -1;
	}
	if (wall_ns)
		*wall_ns = last - first;
	return 0;
}

/* The one machine-readable line compare.py parses; keep the keys stable. */
void bench_print_result(uint64_t ops, uint64_t elapsed_ns, unsigned threads, uint64_t ws)
{
	double secs = (double)(elapsed_ns ? elapsed_ns : 1) / 1e9;

	printf("ops_per_sec=%.1f peak_rss_kb=%ld ops=%" PRIu64 " threads=%u ws=%" PRIu64
	       " minflt=%ld\n",
	       (double)ops / secs, bench_peak_rss_kb(), ops, threads, ws, bench_minflt());
	fflush(stdout);
}
