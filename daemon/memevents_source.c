/* memevents_source.c: memory.events, read and watched (see
 * memevents_source.h). Never logs.
 */
#include "memevents_source.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cgroup_util.h"

int memevents_parse(const char *text, struct memevents *out)
{
    static const struct {
        const char *key;
        size_t off;
    } keys[] = {
        { "low", offsetof(struct memevents, low) },
        { "high", offsetof(struct memevents, high) },
        { "max", offsetof(struct memevents, max) },
        { "oom", offsetof(struct memevents, oom) },
        { "oom_kill", offsetof(struct memevents, oom_kill) },
        { "oom_group_kill", offsetof(struct memevents, oom_group_kill) },
    };
    struct memevents m = { 0 };
    bool seen_low = false, seen_max = false;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        uint64_t v;
        int r = cgroup_parse_stat(text, keys[i].key, &v);
        if (r == -ENOENT)
            continue;
        if (r < 0)
            return r;
        memcpy((char *)&m + keys[i].off, &v, sizeof(v));
        seen_low |= i == 0;
        seen_max |= i == 2;
    }
    if (!seen_low && !seen_max)
        return -EINVAL;
    *out = m;
    return 0;
}

static uint64_t rose(uint64_t a, uint64_t b)
{
    return b > a ? b - a : 0;
}

void memevents_rose(const struct memevents *a, const struct memevents *b, struct memevents *out)
{
    *out = (struct memevents){
        .low = rose(a->low, b->low),
        .high = rose(a->high, b->high),
        .max = rose(a->max, b->max),
        .oom = rose(a->oom, b->oom),
        .oom_kill = rose(a->oom_kill, b->oom_kill),
        .oom_group_kill = rose(a->oom_group_kill, b->oom_group_kill),
    };
}

/* memory.events is 6 short lines; 512 bytes leave room for new keys */
#define MEMEVENTS_TEXT_MAX 512

static int read_counters(int fd, struct memevents *m)
{
    char buf[MEMEVENTS_TEXT_MAX];
    int n = cgroup_pread_file(fd, buf, sizeof(buf));

    if (n < 0)
        return n;
    return memevents_parse(buf, m);
}

int memevents_open(struct memevents_source *s, const char *dir, char *reason, size_t len)
{
    char path[PATH_MAX];
    int r;

    s->fd = -1;
    if ((size_t)snprintf(path, sizeof(path), "%s/memory.events", dir) >= sizeof(path)) {
        snprintf(reason, len, "%.64s...: path too long", dir);
        return -ENAMETOOLONG;
    }
    s->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (s->fd < 0) {
        r = -errno;
        snprintf(reason, len, "%s: %s%s", path, strerror(-r),
                 r == -ENOENT ? " (not a cgroup v2 memory cgroup)" : "");
        return r;
    }
    r = read_counters(s->fd, &s->last);
    if (r < 0) {
        snprintf(reason, len, "%s: cannot read: %s", path, strerror(-r));
        memevents_close(s);
        return r;
    }
    return 0;
}

int memevents_fd(const struct memevents_source *s)
{
    return s->fd;
}

int memevents_read(struct memevents_source *s, struct memevents *out)
{
    struct memevents now;
    int r;

    if (s->fd < 0)
        return -EBADF;
    r = read_counters(s->fd, &now);
    if (r < 0)
        return r;
    memevents_rose(&s->last, &now, out);
    s->last = now;
    return 0;
}

void memevents_close(struct memevents_source *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}
