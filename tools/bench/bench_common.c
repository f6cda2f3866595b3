/* bench_common.c — clock, number parsing, VmHWM and the result line shared by
 * bench_churn and bench_larson. Reads /proc with open/read into a stack
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

/* Peak resident set (VmHWM) of this process in kB, or a negative errno. */
long bench_peak_rss_kb(void)
{
	char buf[4096];
	ssize_t n;
	size_t len = 0;
	const char *p;
	int fd;

	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			len = 0;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	p = strstr(buf, "\nVmHWM:");
	if (!p)
		return -ENOENT;
	return strtol(p + strlen("\nVmHWM:"), NULL, 10);
}

/* The one machine-readable line compare.py parses; keep the keys stable. */
void bench_print_result(uint64_t ops, uint64_t elapsed_ns, unsigned threads, uint64_t ws)
{
	double secs = (double)(elapsed_ns ? elapsed_ns : 1) / 1e9;

	printf("ops_per_sec=%.1f peak_rss_kb=%ld ops=%" PRIu64 " threads=%u ws=%" PRIu64 "\n",
	       (double)ops / secs, bench_peak_rss_kb(), ops, threads, ws);
	fflush(stdout);
}
