/* bench_common.c — clock, number parsing, /proc memory figures and the
 * result line shared by the benchmarks. Reads /proc with open/read into a stack
 * buffer so that reporting does not go through the allocator under test. */
#include "bench_common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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

/* The one machine-readable line compare.py parses; keep the keys stable. */
void bench_print_result(uint64_t ops, uint64_t elapsed_ns, unsigned threads, uint64_t ws)
{
	double secs = (double)(elapsed_ns ? elapsed_ns : 1) / 1e9;

	printf("ops_per_sec=%.1f peak_rss_kb=%ld ops=%" PRIu64 " threads=%u ws=%" PRIu64 "\n",
	       (double)ops / secs, bench_peak_rss_kb(), ops, threads, ws);
	fflush(stdout);
}
