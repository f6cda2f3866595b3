/* ctl_sys.c: what hakmemctl looks up on this host itself: the key of a
 * memory cgroup named on the command line (the inode of its directory,
 * the same number hakmemd uses), and a client's RSS from /proc.
 *
 * Owns: the forms a cgroup may be named in (a directory, a path inside
 * the hierarchy, a /proc/PID/cgroup line) and the rule "v1 memory
 * hierarchy first, cgroup2 otherwise". The layout of the hierarchies
 * themselves (where v1 memory and cgroup2 are mounted) is daemon/
 * cgroup_util.c's, shared so that both sides compute one key.
 * Must not: log, write anything, or take a pid of another pid namespace
 * for one of ours (the comm must match).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cgroup_util.h"
#include "ctl.h"

/* Appends the components of src to dst ("/a/b", or "/" when none),
 * dropping empty and "." components. -EINVAL on "..". */
static int normalise(const char *src, char *dst, size_t len)
{
    size_t n = 0;

    while (*src) {
        while (*src == '/')
            src++;
        const char *end = strchrnul(src, '/');
        size_t c = (size_t)(end - src);
        if (c == 2 && src[0] == '.' && src[1] == '.')
            return -EINVAL;
        if (c > 0 && !(c == 1 && src[0] == '.')) {
            if (n + 1 + c + 1 > len)
                return -ENAMETOOLONG;
            dst[n++] = '/';
            memcpy(dst + n, src, c);
            n += c;
        }
        src = end;
    }
    if (n == 0) {
        if (len < 2)
            return -ENAMETOOLONG;
        dst[n++] = '/';
    }
    dst[n] = '\0';
    return 0;
}

static bool file_exists(const char *dir, const char *name)
{
    char p[PATH_MAX];
    if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, name) >= sizeof(p))
        return false;
    return access(p, F_OK) == 0;
}

/* A path inside the hierarchy ("/a/b"): the v1 memory hierarchy when it
 * holds that cgroup, else cgroup2. */
static int resolve_rel(const char *root, const char *rel, uint64_t *key, char *dir, size_t dirlen)
{
    int rc = cgroup_memcg_dir(root, CGROUP_VERSION_1, rel, dir, dirlen);
    if (rc < 0)
        return rc;
    rc = cgroup_key_of_dir(dir, key);
    if (rc != -ENOENT)
        return rc;
    rc = cgroup_memcg_dir(root, CGROUP_VERSION_2, rel, dir, dirlen);
    if (rc < 0)
        return rc;
    return cgroup_key_of_dir(dir, key);
}

/* "N:controllers:/path" as in /proc/PID/cgroup: the path, or NULL when
 * arg is not such a line. *other: a v1 line without the memory controller. */
static const char *proc_line_path(const char *arg, bool *other)
{
    const char *p = arg;

    *other = false;
    if (*p < '0' || *p > '9')
        return NULL;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p++ != ':')
        return NULL;
    const char *ctrl = p, *colon = strchr(p, ':');
    if (!colon || colon[1] != '/')
        return NULL;
    if (colon > ctrl) {
        /* v1: the controllers, comma-separated, must include memory */
        bool mem = false;
        for (const char *c = ctrl; c < colon;) {
            const char *e = memchr(c, ',', (size_t)(colon - c));
            if (!e)
                e = colon;
            if (e - c == 6 && memcmp(c, "memory", 6) == 0)
                mem = true;
            c = e + 1;
        }
        *other = !mem;
    }
    return colon + 1;
}

int ctl_cgroup_key(const char *cgroup_root, const char *arg, uint64_t *key, char *dir,
                   size_t dirlen)
{
    char root[PATH_MAX], rel[PATH_MAX];
    bool other;
    int rc;

    rc = normalise(cgroup_root, root, sizeof(root));
    if (rc < 0)
        return rc;
    size_t rl = strlen(root);

    const char *line_path = proc_line_path(arg, &other);
    if (line_path) {
        if (other)
            return -EINVAL;
        rc = normalise(line_path, rel, sizeof(rel));
    } else if (arg[0] == '/' && strncmp(arg, root, rl) == 0 && (arg[rl] == '/' || !arg[rl])) {
        /* a directory under the cgroup root */
        if (file_exists(root, "cgroup.controllers")) {
            /* pure cgroup2 at the root: the directory is the cgroup */
            rc = normalise(arg + rl, rel, sizeof(rel));
            if (rc < 0)
                return rc;
            if ((size_t)snprintf(dir, dirlen, "%s%s", root, strcmp(rel, "/") ? rel : "") >= dirlen)
                return -ENAMETOOLONG;
            return cgroup_key_of_dir(dir, key);
        }
        /* v1 or hybrid: drop the hierarchy's mount (memory, unified,
         * cpu...), the rest is the path inside it */
        const char *p = arg + rl;
        while (*p == '/')
            p++;
        if (!*p)
            return -ENOENT; /* the root of all mounts is no cgroup */
        rc = normalise(strchrnul(p, '/'), rel, sizeof(rel));
    } else {
        rc = normalise(arg, rel, sizeof(rel));
    }
    if (rc < 0)
        return rc;
    return resolve_rel(root, rel, key, dir, dirlen);
}

/* Reads proc_root/PID/NAME into buf (NUL-terminated). */
static int read_proc(const char *proc_root, uint32_t pid, const char *name, char *buf, size_t len)
{
    char p[PATH_MAX];
    if ((size_t)snprintf(p, sizeof(p), "%s/%u/%s", proc_root, pid, name) >= sizeof(p))
        return -ENAMETOOLONG;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    size_t n = 0;
    while (n + 1 < len) {
        ssize_t r = read(fd, buf + n, len - 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return e == ESRCH ? -ESRCH : -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return 0;
}

/* The value of "Field:\t..." in a status text, up to the newline. */
static const char *status_field(const char *text, const char *field, size_t *vlen)
{
    size_t fl = strlen(field);
    const char *l = text;
    while (*l) {
        if (strncmp(l, field, fl) == 0 && l[fl] == ':') {
            const char *v = l + fl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            *vlen = strcspn(v, "\n");
            return v;
        }
        const char *nl = strchr(l, '\n');
        if (!nl)
            break;
        l = nl + 1;
    }
    return NULL;
}

static bool name_is(const char *text, const char *comm)
{
    size_t n;
    const char *v = status_field(text, "Name", &n);
    /* comm from the hello holds at most 15 bytes, as Name: does */
    return v && n == strlen(comm) && memcmp(v, comm, n) == 0;
}

bool ctl_proc_is(const char *proc_root, uint32_t pid, const char *comm)
{
    char text[4096];
    return read_proc(proc_root, pid, "status", text, sizeof(text)) == 0 && name_is(text, comm);
}

/* "Field:   N kB" of a /proc text, in bytes. */
static int kb_field(const char *text, const char *field, uint64_t *bytes)
{
    size_t n;
    const char *v = status_field(text, field, &n);
    if (!v)
        return -ENODATA;
    char *end;
    errno = 0;
    unsigned long long kb = strtoull(v, &end, 10);
    if (errno || end == v || strncmp(end, " kB", 3) != 0)
        return -ENODATA;
    *bytes = (uint64_t)kb * 1024;
    return 0;
}

int ctl_proc_rss(const char *proc_root, uint32_t pid, const char *comm, uint64_t *bytes)
{
    char text[8192];
    int rc = read_proc(proc_root, pid, "status", text, sizeof(text));
    if (rc < 0)
        return rc;
    if (!name_is(text, comm))
        return -ESRCH;
    return kb_field(text, "VmRSS", bytes);
}

int ctl_proc_lazyfree(const char *proc_root, uint32_t pid, const char *comm, uint64_t *bytes)
{
    char text[4096];
    /* name first: smaps_rollup says nothing of whose it is */
    if (!ctl_proc_is(proc_root, pid, comm))
        return -ESRCH;
    int rc = read_proc(proc_root, pid, "smaps_rollup", text, sizeof(text));
    if (rc < 0)
        return rc;
    return kb_field(text, "LazyFree", bytes);
}
