/* cgroup_util.c: /proc/PID/cgroup, memory cgroup directories, keys, and
 * the memory files (see cgroup_util.h). Reads only; never logs.
 */
#define _GNU_SOURCE
#include "cgroup_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
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

static bool is_dotdot(const char *p, size_t n)
{
    return n == 2 && p[0] == '.' && p[1] == '.';
}

/* A ".." after a name: never in what the kernel writes (it climbs first,
 * "/../../a/b", when the cgroup lies outside the reader's namespace). */
static bool path_malformed(const char *p, size_t n)
{
    size_t i = 0;
    bool named = false;

    while (i < n) {
        while (i < n && p[i] == '/')
            i++;
        size_t start = i;
        while (i < n && p[i] != '/')
            i++;
        if (i == start)
            break;
        if (!is_dotdot(p + start, i - start))
            named = true;
        else if (named)
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
    if (path_malformed(p, plen))
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

int cgroup_parent_memcg(const struct cgroup_memcg *cg, struct cgroup_memcg *parent)
{
    const char *slash = strrchr(cg->path, '/');
    size_t plen = strlen(cg->path), dlen = strlen(cg->dir);

    if (!slash || strcmp(cg->path, "/") == 0)
        return -ENOENT;
    /* the last component, with its slash, ends both path and dir */
    size_t cut = plen - (size_t)(slash - cg->path);
    if (cut > dlen || strcmp(cg->dir + dlen - cut, slash) != 0)
        return -EINVAL;
    parent->version = cg->version;
    if (slash == cg->path) {
        strcpy(parent->path, "/");
    } else {
        memcpy(parent->path, cg->path, plen - cut);
        parent->path[plen - cut] = '\0';
    }
    memcpy(parent->dir, cg->dir, dlen - cut);
    parent->dir[dlen - cut] = '\0';
    return cgroup_key_of_dir(parent->dir, &parent->key);
}

/* The number of components of path ("/a/b": 2, "/": 0). */
static size_t depth_of(const char *path)
{
    size_t n = 0;
    for (const char *q = path; *q; q++)
        if (*q == '/' && q[1] && q[1] != '/')
            n++;
    return n;
}

int cgroup_ns_resolve(const char *ns_root, const char *nspath, char *path, size_t len)
{
    const char *rest = nspath, *end = ns_root;
    size_t up = 0, depth = depth_of(ns_root);

    /* climb: the "/.." components at the start */
    while (rest[0] == '/' && rest[1] == '.' && rest[2] == '.' && (rest[3] == '/' || !rest[3])) {
        up++;
        rest += 3;
    }
    if (up > depth)
        return -EXDEV;
    /* the first depth - up components of ns_root, then the rest */
    for (size_t i = 0; i < depth - up; i++) {
        end++;
        end += strcspn(end, "/");
    }
    if (strcmp(rest, "/") == 0)
        rest = "";
    if (end == ns_root && !*rest)
        rest = "/";
    if ((size_t)snprintf(path, len, "%.*s%s", (int)(end - ns_root), ns_root, rest) >= len)
        return -ENAMETOOLONG;
    return 0;
}

/* Does the cgroup.procs of dir list pid? */
static bool procs_list(const char *dir, pid_t pid)
{
    char p[PATH_MAX];
    int n;
    bool found = false;

    if ((size_t)snprintf(p, sizeof(p), "%s/cgroup.procs", dir) >= sizeof(p))
        return false;
    FILE *f = fopen(p, "re");
    if (!f)
        return false;
    while (!found && fscanf(f, "%d", &n) == 1)
        found = n == (int)pid;
    fclose(f);
    return found;
}

/* Depth-first below dir (rel: its path below the mount, "" at the mount)
 * for the directory `left` levels down whose subpath sub lists pid in
 * its cgroup.procs; the first found goes to out. *budget bounds the
 * directories opened. */
static int find_ns_root(const char *dir, const char *rel, unsigned left, const char *sub,
                        pid_t pid, unsigned *budget, char *out, size_t len)
{
    char p[PATH_MAX];

    if (left == 0) {
        if ((size_t)snprintf(p, sizeof(p), "%s%s", dir, sub) >= sizeof(p) || !procs_list(p, pid))
            return -ENOENT;
        return (size_t)snprintf(out, len, "%s", rel) >= len ? -ENAMETOOLONG : 0;
    }
    if (*budget == 0)
        return -E2BIG;
    (*budget)--;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int r = -ENOENT;
    struct dirent *e;
    while (r == -ENOENT && (e = readdir(d))) {
        char rp[PATH_MAX];
        if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= sizeof(p) ||
            (size_t)snprintf(rp, sizeof(rp), "%s/%s", rel, e->d_name) >= sizeof(rp))
            continue;
        r = find_ns_root(p, rp, left - 1, sub, pid, budget, out, len);
    }
    closedir(d);
    return r;
}

/* The root field of the mount at mnt in <proc_root>/<pid>/mountinfo (the
 * last such mount: the one on top). */
static int mount_root_of(const char *proc_root, pid_t pid, const char *mnt, char *root,
                         size_t len)
{
    char p[PATH_MAX], line[2 * PATH_MAX + 256];
    int r = -ENOENT;

    if ((size_t)snprintf(p, sizeof(p), "%s/%d/mountinfo", proc_root, (int)pid) >= sizeof(p))
        return -ENAMETOOLONG;
    FILE *f = fopen(p, "re");
    if (!f)
        return -errno;
    /* ID PARENT MAJ:MIN ROOT MOUNTPOINT ... (octal escapes in paths: a
     * mount point with a space does not match, and is not ours) */
    while (fgets(line, sizeof(line), f)) {
        char *save = NULL, *field[5];
        int n = 0;
        for (char *t = strtok_r(line, " ", &save); t && n < 5; t = strtok_r(NULL, " ", &save))
            field[n++] = t;
        if (n == 5 && strcmp(field[4], mnt) == 0)
            r = (size_t)snprintf(root, len, "%s", field[3]) >= len ? -ENAMETOOLONG : 0;
    }
    fclose(f);
    return r;
}

int cgroup_ns_find(const char *proc_root, const char *cgroup_root, enum cgroup_version version,
                   pid_t self, char *ns_root, size_t len)
{
    char mnt[PATH_MAX], real[PATH_MAX], root[PATH_MAX], text[4096], sub[PATH_MAX], p[PATH_MAX];
    enum cgroup_version v;
    int r;

    ns_root[0] = '\0';
    r = cgroup_memcg_dir(cgroup_root, version, "/", mnt, sizeof(mnt));
    if (r < 0)
        return r;
    if (!realpath(mnt, real))
        return -errno;
    r = mount_root_of(proc_root, self, real, root, sizeof(root));
    if (r < 0)
        return r;
    if (strcmp(root, "/") == 0)
        return 0;                       /* the mount's root is our namespace's */
    /* "/.." D times: the mount's root is D levels above our namespace's */
    size_t up = 0;
    const char *q = root;
    while (q[0] == '/' && q[1] == '.' && q[2] == '.' && (q[3] == '/' || !q[3])) {
        up++;
        q += 3;
    }
    if (*q)
        return -EOPNOTSUPP;             /* a bind mount of a subtree: not a host's hierarchy */
    /* where we are below our namespace's root */
    if ((size_t)snprintf(p, sizeof(p), "%s/%d/cgroup", proc_root, (int)self) >= sizeof(p))
        return -ENAMETOOLONG;
    r = cgroup_read_file(p, text, sizeof(text));
    if (r < 0)
        return r;
    r = cgroup_parse_proc_cgroup(text, &v, sub, sizeof(sub));
    if (r < 0)
        return r;
    if (v != version || strncmp(sub, "/..", 3) == 0)
        return -EXDEV;                  /* moved out of our namespace since */
    if (strcmp(sub, "/") == 0)
        sub[0] = '\0';
    unsigned budget = 100000;           /* directories opened: a busy node has thousands */
    r = find_ns_root(real, "", (unsigned)up, sub, self, &budget, ns_root, len);
    return r == -ENOENT ? -ESRCH : r;
}

int cgroup_memcg_of_pid(const char *proc_root, const char *cgroup_root,
                        const struct cgroup_ns *ns, pid_t pid, struct cgroup_memcg *out)
{
    char p[PATH_MAX];
    char text[4096];
    char nspath[PATH_MAX];
    int r;

    if (pid <= 0)
        return -EINVAL;
    if ((size_t)snprintf(p, sizeof(p), "%s/%d/cgroup", proc_root, (int)pid) >= sizeof(p))
        return -ENAMETOOLONG;
    r = cgroup_read_file(p, text, sizeof(text));
    if (r < 0)
        return r == -ENOENT ? -ESRCH : r;
    r = cgroup_parse_proc_cgroup(text, &out->version, nspath, sizeof(nspath));
    if (r < 0)
        return r;
    r = cgroup_ns_resolve(ns ? ns->root[out->version] : "", nspath, out->path, sizeof(out->path));
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

int cgroup_read_mem(const char *dir, enum cgroup_version version, unsigned flags,
                    struct cgroup_mem *out)
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
        r = read_u64_file(dir, "memory.limit_in_bytes", true, &m.limit_bytes);
    } else {
        r = read_u64_file(dir, "memory.max", true, &m.limit_bytes);
        if (r == 0)
            r = read_u64_file(dir, "memory.high", true, &m.high_bytes);
    }
    if (r < 0)
        return r;
    if ((flags & CGROUP_MEM_IF_LIMITED) && m.limit_bytes == CGROUP_UNLIMITED &&
        m.high_bytes == CGROUP_UNLIMITED) {
        *out = m;
        return 0;
    }
    r = read_u64_file(dir, version == CGROUP_VERSION_1 ? "memory.usage_in_bytes" : "memory.current",
                      false, &m.usage_bytes);
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
