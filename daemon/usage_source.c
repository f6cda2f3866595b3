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

uint32_t usage_permille(const struct cgroup_mem *m)
{
    uint64_t limit = usage_effective_limit(m);
    uint64_t ws = usage_working_set(m);

    if (limit == CGROUP_UNLIMITED)
        return 0;
    if (limit == 0) /* a limit of 0 bytes: everything is over it */
        return ws ? USAGE_PERMILLE_MAX : 0;
    unsigned __int128 p = (unsigned __int128)ws * 1000 / limit;
    return p > USAGE_PERMILLE_MAX ? USAGE_PERMILLE_MAX : (uint32_t)p;
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

int usage_sample_dir(const char *dir, enum cgroup_version version, uint64_t now_ns,
                     struct usage_sample *s)
{
    struct cgroup_mem m;
    int r = cgroup_read_mem(dir, version, &m);

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
                     enum cgroup_version version)
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
        .dir = copy,
    };
    return 0;
}

int usage_source_remove(struct usage_source *src, uint64_t key)
{
    struct usage_entry *e = find(src, key);

    if (!e)
        return -ENOENT;
    free(e->dir);
    *e = src->entries[--src->count];
    return 0;
}

size_t usage_source_sample(struct usage_source *src, uint64_t now_ns)
{
    size_t ok = 0;

    for (size_t i = 0; i < src->count; i++) {
        struct usage_entry *e = &src->entries[i];
        if (usage_sample_dir(e->dir, e->version, now_ns, &e->last) == 0)
            ok++;
    }
    return ok;
}
