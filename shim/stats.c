/* stats.c: the counters and the public hakmem_* functions that read them.
 * Counters are updated with relaxed atomics from the slow paths only;
 * a snapshot is a set of independent loads, not a consistent cut.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "hk_internal.h"

struct hk_counters hk_ctr;

static const struct {
    const char *name;
    size_t offset;
} hk_ctr_names[] = {
#define HK_CTR_NAME(name, doc) { #name, offsetof(struct hk_counters, name) },
    HAKMEM_COUNTERS(HK_CTR_NAME)
#undef HK_CTR_NAME
};
#define HK_NCTR (sizeof(hk_ctr_names) / sizeof(hk_ctr_names[0]))

static uint64_t ctr_load(size_t i)
{
    _Atomic uint64_t *c = (_Atomic uint64_t *)((char *)&hk_ctr + hk_ctr_names[i].offset);
    return atomic_load_explicit(c, memory_order_relaxed);
}

int hakmem_stats_get(struct hakmem_stats *out, size_t size)
{
    if (!out || size < sizeof(uint64_t)) {
        errno = EINVAL;
        return -1;
    }
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < HK_NCTR && (i + 1) * sizeof(uint64_t) <= size; i++)
        dst[i] = ctr_load(i);
    return 0;
}

int hakmem_counter(const char *name, uint64_t *value)
{
    for (size_t i = 0; name && i < HK_NCTR; i++) {
        if (strcmp(name, hk_ctr_names[i].name) == 0) {
            if (value)
                *value = ctr_load(i);
            return 0;
        }
    }
    errno = ENOENT;
    return -1;
}

void hakmem_stats_print(int fd)
{
    char buf[2048];
    size_t n = 0;
    for (size_t i = 0; i < HK_NCTR; i++)
        n += hk_fmt(buf + n, sizeof(buf) - n, "%s %llu\n", hk_ctr_names[i].name,
                    (unsigned long long)ctr_load(i));
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

int hakmem_trim(void)
{
    return hk_trim();
}
