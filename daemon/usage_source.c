/* usage_source.c: the watched set and the usage arithmetic (see
 * usage_source.h). File reading is cgroup_util.c's; nothing here logs.
 */
#include "usage_source.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint64_t usage_effective_limit(const struct cgroup_mem *m)
{
    return m->high_bytes < m->limit_bytes ? m->high_bytes : m->limit_bytes;
}

uint64_t usage_working_set(const struct cgroup_mem *m)
{
    /* the two files are read at slightly different times: clamp at 0 */
    return m->usage_bytes > m->inactive_file_bytes ? m->usage_bytes - m->inactive_file_bytes : 0;
}

uint32_t usage_ratio_permille(uint64_t ws, uint64_t limit)
{
    if (limit == CGROUP_UNLIMITED)
        return 0;
    if (limit == 0) /* a limit of 0 bytes: everything is over it */
        return ws ? USAGE_PERMILLE_MAX : 0;
    unsigned __int128 p = (unsigned __int128)ws * 1000 / limit;
    return p > USAGE_PERMILLE_MAX ? USAGE_PERMILLE_MAX : (uint32_t)p;
}

uint32_t usage_permille(const struct cgroup_mem *m)
{
    return usage_ratio_permille(usage_working_set(m), usage_effective_limit(m));
}

void usage_compute(const struct cgroup_mem *m, uint64_t now_ns, struct usage_sample *s)
{
    s->time_ns = now_ns;
    s->error = 0;
    s->mem = *m;
    s->working_set_bytes = usage_working_set(m);
    s->limit_bytes = usage_effective_limit(m);
    s->permille = usage_permille(m);
}

#define NS_PER_S UINT64_C(1000000000)

uint64_t usage_growth(const struct usage_sample *prev, const struct usage_sample *last)
{
    if (!prev->time_ns || !last->time_ns || prev->error || last->error ||
        prev->limit_bytes == CGROUP_UNLIMITED || last->limit_bytes == CGROUP_UNLIMITED ||
        last->time_ns < prev->time_ns + 1000000 ||
        last->working_set_bytes <= prev->working_set_bytes)
        return 0;
    unsigned __int128 g = (unsigned __int128)(last->working_set_bytes - prev->working_set_bytes) *
                          NS_PER_S / (last->time_ns - prev->time_ns);
    return g > UINT64_MAX ? UINT64_MAX : (uint64_t)g;
}

uint32_t usage_projected_permille(const struct usage_sample *s, uint64_t growth,
                                  uint64_t lead_ns)
{
    if (s->error || !growth)
        return s->permille;
    unsigned __int128 ws = (unsigned __int128)growth * lead_ns / NS_PER_S + s->working_set_bytes;
    uint32_t p = usage_ratio_permille(ws > UINT64_MAX ? UINT64_MAX : (uint64_t)ws, s->limit_bytes);
    return p > s->permille ? p : s->permille;
}

uint64_t usage_next_interval(const struct usage_schedule *sch, const struct usage_sample *s,
                             uint64_t growth)
{
    uint64_t rate = growth > sch->burst_bytes_per_s ? growth : sch->burst_bytes_per_s;
    uint64_t lo = sch->min_interval_ns, hi = sch->max_interval_ns;

    if (lo > hi)
        lo = hi;
    if (s->error || s->limit_bytes == CGROUP_UNLIMITED || rate == 0)
        return hi;
    for (size_t i = 0; i < 3; i++) {
        uint32_t th = sch->th_permille[i];
        if (!th || s->permille >= th)
            continue;
        /* bytes from the working set to this threshold */
        unsigned __int128 at = (unsigned __int128)s->limit_bytes * th / 1000;
        unsigned __int128 head = at > s->working_set_bytes ? at - s->working_set_bytes : 0;
        unsigned __int128 t = head * NS_PER_S / rate;
        return t < lo ? lo : t > hi ? hi : (uint64_t)t;
    }
    return hi;
}

int usage_sample_dir(const char *dir, enum cgroup_version version, unsigned read_flags,
                     uint64_t now_ns, struct usage_sample *s)
{
    struct cgroup_mem m;
    int r = cgroup_read_mem(dir, version, read_flags, &m);

    if (r < 0) {
        memset(s, 0, sizeof(*s));
        s->time_ns = now_ns;
        s->error = r;
        s->limit_bytes = CGROUP_UNLIMITED;
        return r;
    }
    usage_compute(&m, now_ns, s);
    return 0;
}

void usage_source_init(struct usage_source *src)
{
    *src = (struct usage_source){ 0 };
}

void usage_source_free(struct usage_source *src)
{
    for (size_t i = 0; i < src->count; i++)
        free(src->entries[i].dir);
    free(src->entries);
    usage_source_init(src);
}

static struct usage_entry *find(const struct usage_source *src, uint64_t key)
{
    for (size_t i = 0; i < src->count; i++)
        if (src->entries[i].key == key)
            return &src->entries[i];
    return NULL;
}

const struct usage_entry *usage_source_find(const struct usage_source *src, uint64_t key)
{
    return find(src, key);
}

int usage_source_add(struct usage_source *src, uint64_t key, const char *dir,
                     enum cgroup_version version, unsigned read_flags)
{
    char *copy = strdup(dir);
    struct usage_entry *e;

    if (!copy)
        return -ENOMEM;
    e = find(src, key);
    if (e) {
        free(e->dir);
        e->dir = copy;
        e->version = version;
        e->read_flags &= read_flags;
        e->refs++;
        e->next_ns = 0;
        return 0;
    }
    if (src->count == src->cap) {
        size_t cap = src->cap ? src->cap * 2 : 16;
        struct usage_entry *v = realloc(src->entries, cap * sizeof(*v));
        if (!v) {
            free(copy);
            return -ENOMEM;
        }
        src->entries = v;
        src->cap = cap;
    }
    src->entries[src->count++] = (struct usage_entry){
        .key = key,
        .version = version,
        .read_flags = read_flags,
        .refs = 1,
        .dir = copy,
    };
    return 0;
}

int usage_source_remove(struct usage_source *src, uint64_t key)
{
    struct usage_entry *e = find(src, key);

    if (!e)
        return -ENOENT;
    if (--e->refs > 0)
        return 0;
    free(e->dir);
    *e = src->entries[--src->count];
    return 0;
}

uint64_t usage_source_sample_due(struct usage_source *src, const struct usage_schedule *sch,
                                 uint64_t now_ns)
{
    uint64_t earliest = UINT64_MAX;

    for (size_t i = 0; i < src->count; i++) {
        struct usage_entry *e = &src->entries[i];
        if (e->next_ns <= now_ns) {
            e->prev = e->last;
            usage_sample_dir(e->dir, e->version, e->read_flags, now_ns, &e->last);
            e->growth_bytes_per_s = usage_growth(&e->prev, &e->last);
            e->projected_permille =
                usage_projected_permille(&e->last, e->growth_bytes_per_s, sch->lead_ns);
            e->next_ns = now_ns + usage_next_interval(sch, &e->last, e->growth_bytes_per_s);
        }
        if (e->next_ns < earliest)
            earliest = e->next_ns;
    }
    return earliest;
}

uint32_t usage_chain_permille(const struct usage_entry *const *chain, size_t n, int *gov)
{
    uint32_t best = 0;
    int at = -1;

    for (size_t i = 0; i < n; i++) {
        const struct usage_entry *e = chain[i];
        if (!e || !e->last.time_ns || e->last.error || e->last.limit_bytes == CGROUP_UNLIMITED)
            continue;
        if (at < 0 || e->projected_permille > best) {
            best = e->projected_permille;
            at = (int)i;
        }
    }
    if (gov)
        *gov = at;
    return best;
}
