/* cgroup_util.c: /proc/PID/cgroup, memory cgroup directories, keys, and
 * the memory files (see cgroup_util.h). Reads only; never logs.
 */
#include "cgroup_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cgroup_read_file(const char *path, char *buf, size_t buflen)
{
    size_t used = 0;
    int r = 0;

    if (buflen == 0)
        return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    for (;;) {
        if (used == buflen - 1) {
            /* full: one more byte would tell whether there is more */
            char c;
            ssize_t n = read(fd, &c, 1);
            if (n > 0)
                r = -EFBIG;
            else if (n < 0)
                r = -errno;
            break;
        }
        ssize_t n = read(fd, buf + used, buflen - 1 - used);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    close(fd);
    if (r < 0)
        return r;
    buf[used] = '\0';
    return (int)used;
}

int cgroup_pread_file(int fd, char *buf, size_t buflen)
{
    ssize_t n;

    if (buflen == 0)
        return -EINVAL;
    /* Kernel text files fill a read up to their end: one read of the
     * whole room either ends short (the file) or fills it (too big: no
     * byte left for the NUL). */
    do
        n = pread(fd, buf, buflen, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if ((size_t)n == buflen)
        return -EFBIG;
    buf[n] = '\0';
    return (int)n;
}

/* Does the comma list ctrls (length n) name "memory"? */
static bool lists_memory(const char *ctrls, size_t n)
{
    const char *p = ctrls, *end = ctrls + n;

    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        size_t len = c ? (size_t)(c - p) : (size_t)(end - p);
        if (len == 6 && memcmp(p, "memory", 6) == 0)
            return true;
        if (!c)
            break;
        p = c + 1;
    }
    return false;
}

/* Rejects a ".." component. */
static bool path_escapes(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        while (i < n && p[i] == '/')
            i++;
        size_t start = i;
        while (i < n && p[i] != '/')
            i++;
        if (i - start == 2 && p[start] == '.' && p[start + 1] == '.')
            return true;
    }
    return false;
}

int cgroup_parse_proc_cgroup(const char *text, enum cgroup_version *version,
                             char *path, size_t pathlen)
{
    const char *v2 = NULL, *v1 = NULL;
    size_t v2len = 0, v1len = 0;
    bool bad_v1 = false;

    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        /* hierarchy-ID:controller-list:cgroup-path; the path may hold ':' */
        const char *c1 = memchr(line, ':', len);
        const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
        if (c2) {
            const char *p = c2 + 1;
            size_t plen = len - (size_t)(p - line);
            if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1) {
                v2 = p;
                v2len = plen;
            } else if (lists_memory(c1 + 1, (size_t)(c2 - c1 - 1))) {
                v1 = p;
                v1len = plen;
            }
        } else if (len > 0 && c1 && lists_memory(c1 + 1, len - (size_t)(c1 + 1 - line))) {
            bad_v1 = true; /* "N:memory" without a path */
        }
        line += len;
        if (*line == '\n')
            line++;
    }

    const char *p = v1 ? v1 : v2;
    size_t plen = v1 ? v1len : v2len;
    if (!p)
        return bad_v1 ? -EINVAL : -ENOENT;
    if (plen == 0 || p[0] != '/')
        return -EINVAL;
    if (path_escapes(p, plen))
        return -EXDEV;
    if (plen >= pathlen)
        return -ENAMETOOLONG;
    memcpy(path, p, plen);
    path[plen] = '\0';
    *version = v1 ? CGROUP_VERSION_1 : CGROUP_VERSION_2;
    return 0;
}

static bool exists(const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat st;

    if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, name) >= sizeof(p))
        return false;
    return stat(p, &st) == 0;
}

int cgroup_memcg_dir(const char *cgroup_root, enum cgroup_version version,
                     const char *path, char *dir, size_t dirlen)
{
    char base[PATH_MAX];

    if (version == CGROUP_VERSION_1) {
        if ((size_t)snprintf(base, sizeof(base), "%s/memory", cgroup_root) >= sizeof(base))
            return -ENAMETOOLONG;
    } else if (exists(cgroup_root, "cgroup.controllers")) {
        if ((size_t)snprintf(base, sizeof(base), "%s", cgroup_root) >= sizeof(base))
            return -ENAMETOOLONG;
    } else {
        if ((size_t)snprintf(base, sizeof(base), "%s/unified", cgroup_root) >= sizeof(base))
            return -ENAMETOOLONG;
        if (!exists(base, "cgroup.controllers"))
            return -ENOENT;
    }
    /* "/" is the hierarchy's root: no trailing slash */
    const char *rest = strcmp(path, "/") == 0 ? "" : path;
    if ((size_t)snprintf(dir, dirlen, "%s%s", base, rest) >= dirlen)
        return -ENAMETOOLONG;
    return 0;
}

int cgroup_key_of_dir(const char *dir, uint64_t *key)
{
    struct stat st;

    if (stat(dir, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    *key = (uint64_t)st.st_ino;
    return 0;
}

int cgroup_memcg_of_pid(const char *proc_root, const char *cgroup_root, pid_t pid,
                        struct cgroup_memcg *out)
{
    char p[PATH_MAX];
    char text[4096];
    int r;

    if (pid <= 0)
        return -EINVAL;
    if ((size_t)snprintf(p, sizeof(p), "%s/%d/cgroup", proc_root, (int)pid) >= sizeof(p))
        return -ENAMETOOLONG;
    r = cgroup_read_file(p, text, sizeof(text));
    if (r < 0)
        return r == -ENOENT ? -ESRCH : r;
    r = cgroup_parse_proc_cgroup(text, &out->version, out->path, sizeof(out->path));
    if (r < 0)
        return r;
    r = cgroup_memcg_dir(cgroup_root, out->version, out->path, out->dir, sizeof(out->dir));
    if (r < 0)
        return r;
    return cgroup_key_of_dir(out->dir, &out->key);
}

/* A decimal u64 at *pp; *pp moves past it. -EINVAL if none or too big. */
int cgroup_parse_u64_prefix(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    uint64_t n = 0;

    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -EINVAL;
        n = n * 10 + d;
    }
    *out = n;
    *pp = p;
    return 0;
}

/* A decimal u64, then optional whitespace, then the end. */
static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t n;
    if (cgroup_parse_u64_prefix(&s, &n) < 0)
        return -EINVAL;
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    if (*s)
        return -EINVAL;
    *out = n;
    return 0;
}

int cgroup_parse_limit(const char *text, uint64_t *bytes)
{
    uint64_t n;

    if (strncmp(text, "max", 3) == 0 && (text[3] == '\0' || text[3] == '\n')) {
        *bytes = CGROUP_UNLIMITED;
        return 0;
    }
    if (parse_u64(text, &n) < 0)
        return -EINVAL;
    *bytes = n >= CGROUP_V1_UNLIMITED_MIN ? CGROUP_UNLIMITED : n;
    return 0;
}

int cgroup_parse_stat(const char *text, const char *key, uint64_t *value)
{
    size_t klen = strlen(key);

    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > klen && memcmp(line, key, klen) == 0 && line[klen] == ' ') {
            char num[32];
            size_t n = len - klen - 1;
            if (n == 0 || n >= sizeof(num))
                return -EINVAL;
            memcpy(num, line + klen + 1, n);
            num[n] = '\0';
            return parse_u64(num, value);
        }
        line += len;
        if (*line == '\n')
            line++;
    }
    return -ENOENT;
}

static int read_u64_file(const char *dir, const char *name, bool limit, uint64_t *out)
{
    char p[PATH_MAX];
    char buf[64];
    int r;

    if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, name) >= sizeof(p))
        return -ENAMETOOLONG;
    r = cgroup_read_file(p, buf, sizeof(buf));
    if (r < 0)
        return r;
    if (limit)
        return cgroup_parse_limit(buf, out);
    return parse_u64(buf, out) < 0 ? -EINVAL : 0;
}

int cgroup_read_mem(const char *dir, enum cgroup_version version, struct cgroup_mem *out)
{
    /* memory.stat is ~1-2 KiB on 6.x (v2 lists ~50 keys); 16 KiB leaves room */
    char stat_buf[16384];
    char p[PATH_MAX];
    struct cgroup_mem m = {
        .limit_bytes = CGROUP_UNLIMITED,
        .high_bytes = CGROUP_UNLIMITED,
    };
    int r;

    if (version == CGROUP_VERSION_AUTO) {
        if (exists(dir, "memory.current"))
            version = CGROUP_VERSION_2;
        else if (exists(dir, "memory.usage_in_bytes"))
            version = CGROUP_VERSION_1;
        else
            return -ENOENT;
    }
    if (version == CGROUP_VERSION_1) {
        r = read_u64_file(dir, "memory.usage_in_bytes", false, &m.usage_bytes);
        if (r == 0)
            r = read_u64_file(dir, "memory.limit_in_bytes", true, &m.limit_bytes);
    } else {
        r = read_u64_file(dir, "memory.current", false, &m.usage_bytes);
        if (r == 0)
            r = read_u64_file(dir, "memory.max", true, &m.limit_bytes);
        if (r == 0)
            r = read_u64_file(dir, "memory.high", true, &m.high_bytes);
    }
    if (r < 0)
        return r;

    if ((size_t)snprintf(p, sizeof(p), "%s/memory.stat", dir) >= sizeof(p))
        return -ENAMETOOLONG;
    r = cgroup_read_file(p, stat_buf, sizeof(stat_buf));
    if (r >= 0) {
        /* v1: usage_in_bytes is hierarchical, so is total_inactive_file */
        r = cgroup_parse_stat(stat_buf,
                              version == CGROUP_VERSION_1 ? "total_inactive_file" : "inactive_file",
                              &m.inactive_file_bytes);
        if (r < 0)
            m.inactive_file_bytes = 0;
    }
    *out = m;
    return 0;
}
