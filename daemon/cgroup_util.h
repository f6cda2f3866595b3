/* cgroup_util.h: where a process's memory cgroup is and what it holds:
 * /proc/PID/cgroup -> the memory cgroup's directory -> its key (the inode
 * number, which is the kernfs id the BPF side reports, see
 * bpf/hakmem_bpf.h) and its usage and limits.
 *
 * Owns: the v1/v2 layout rules (hybrid hosts: memory controller on v1 at
 * <root>/memory, cgroup2 at <root>/unified; pure v2: cgroup2 at <root>)
 * and the parsing of the memory files.
 * Must not: log, write to any cgroup file, or assume the real /proc and
 * /sys/fs/cgroup: every function takes its root directories so that the
 * unit tests run on fake trees in a temp dir.
 *
 * Errors are negative errno values.
 */
#ifndef HAKMEMD_CGROUP_UTIL_H
#define HAKMEMD_CGROUP_UTIL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CGROUP_DEFAULT_ROOT "/sys/fs/cgroup"
#define CGROUP_DEFAULT_PROC "/proc"

/* Bytes meaning "no limit" in struct cgroup_mem. */
#define CGROUP_UNLIMITED UINT64_MAX
/* v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes (just below
 * 2^63 for 4 KiB pages); anything from 2^62 bytes up is taken as none. */
#define CGROUP_V1_UNLIMITED_MIN (UINT64_C(1) << 62)

enum cgroup_version {
    CGROUP_VERSION_AUTO = 0, /* cgroup_read_mem: look at which files exist */
    CGROUP_VERSION_1 = 1,    /* memory controller on a v1 hierarchy */
    CGROUP_VERSION_2 = 2,    /* cgroup2 (unified) */
};

/* A process's memory cgroup. */
struct cgroup_memcg {
    enum cgroup_version version; /* hierarchy the memory controller is on */
    char path[PATH_MAX];         /* path inside that hierarchy, "/a/b" ("/" for the root) */
    char dir[PATH_MAX];          /* its directory under the cgroup root */
    uint64_t key;                /* inode number of dir: the kernfs id */
};

/* Memory of one cgroup, bytes. */
struct cgroup_mem {
    uint64_t usage_bytes;         /* v1 memory.usage_in_bytes, v2 memory.current */
    uint64_t limit_bytes;         /* v1 memory.limit_in_bytes, v2 memory.max; CGROUP_UNLIMITED */
    uint64_t high_bytes;          /* v2 memory.high (reclaim starts there); CGROUP_UNLIMITED, always on v1 */
    uint64_t inactive_file_bytes; /* memory.stat: v1 total_inactive_file, v2 inactive_file; 0 when absent */
};

/* Finds the memory cgroup in the text of /proc/PID/cgroup: a v1 line
 * "N:ctrl,...,memory,...:/path" wins over the v2 line "0::/path" (hybrid
 * hosts list both; the memory controller is on v1 whenever such a line
 * exists). The path is relative to the reader's cgroup namespace, as the
 * kernel writes it: a cgroup outside that namespace starts with "/.."
 * components ("/../../kubepods/pod/ctr"; cgroup_ns_resolve() places it).
 * A ".." after a name is refused. Returns 0, -ENOENT (neither line),
 * -EXDEV (such a ..), -ENAMETOOLONG, -EINVAL (malformed memory line). */
int cgroup_parse_proc_cgroup(const char *text, enum cgroup_version *version,
                             char *path, size_t pathlen);

/* The directory of a memory cgroup: v1: <root>/memory<path>; v2:
 * <root><path> when <root>/cgroup.controllers exists (cgroup2 mounted at
 * the root), else <root>/unified<path> when that has cgroup.controllers
 * (hybrid). Returns 0, -ENOENT (no cgroup2 mount found), -ENAMETOOLONG. */
int cgroup_memcg_dir(const char *cgroup_root, enum cgroup_version version,
                     const char *path, char *dir, size_t dirlen);

/* The key of a cgroup directory: its inode number. -ENOTDIR, or the
 * errno of stat. (No check of the file system type: tests use fake trees;
 * see memcg_id_of_path() in bpf_source.h for the checking variant.) */
int cgroup_key_of_dir(const char *dir, uint64_t *key);

/* The parent of a memory cgroup in its hierarchy: path and dir lose
 * their last component, key is the parent directory's. Returns 0,
 * -ENOENT when cg is the hierarchy's root (path "/": nothing above it
 * can hold a limit), or the errno of stat (the parent went away). */
int cgroup_parent_memcg(const struct cgroup_memcg *cg, struct cgroup_memcg *parent);

/* Cgroup namespaces. /proc/PID/cgroup gives paths relative to the
 * reader's cgroup namespace root; a daemon in a container of its own
 * (a Kubernetes DaemonSet on cgroup v2, where only privileged containers
 * get the host's namespace) with the host's hierarchy mounted (a hostPath
 * of /sys/fs/cgroup) reads other pods' cgroups as "/../../kubepods/...".
 * Where its namespace root lies in the mounted hierarchy places them.
 * See docs/ARCHITECTURE.md, "cgroup namespaces". */
struct cgroup_ns {
    /* per enum cgroup_version (1, 2): the path of the namespace root below
     * the hierarchy's mount, "/a/b", or "" where they are the same (no
     * namespace of its own, or a hierarchy mounted inside it) */
    char root[3][PATH_MAX];
};

/* Where the cgroup namespace root of pid self (hakmemd) lies in the
 * hierarchy of version mounted under cgroup_root, into ns_root: the
 * mount's root as <proc_root>/<self>/mountinfo shows it is "/" (ours:
 * "" then) or "/.." D times (the host's hierarchy, mounted from outside
 * our namespace): then the directory D levels down that holds self (in
 * cgroup.procs, at self's own path below its namespace root) is the root,
 * found by a walk of those D levels. Returns 0, -EOPNOTSUPP (the mount
 * is a subtree of the hierarchy), -E2BIG (too many cgroups to walk),
 * -ESRCH (self not found there), -ENOENT (no such mount), or another
 * errno. */
int cgroup_ns_find(const char *proc_root, const char *cgroup_root, enum cgroup_version version,
                   pid_t self, char *ns_root, size_t len);

/* The path in the mounted hierarchy of nspath, a path relative to the
 * namespace whose root is ns_root there (cgroup_ns.root): "/../x" under
 * "/a/b" is "/a/x". -EXDEV when it climbs above the mount's root (not
 * mounted here), -ENAMETOOLONG. */
int cgroup_ns_resolve(const char *ns_root, const char *nspath, char *path, size_t len);

/* All of the above for one pid: reads <proc_root>/<pid>/cgroup and places
 * its path with ns (NULL: our namespace root is the mount's root). The
 * path in *out is the one in the mounted hierarchy. */
int cgroup_memcg_of_pid(const char *proc_root, const char *cgroup_root,
                        const struct cgroup_ns *ns, pid_t pid, struct cgroup_memcg *out);

/* Parses a limit: "max" (v2) is CGROUP_UNLIMITED, as is a v1 value of
 * CGROUP_V1_UNLIMITED_MIN or more; otherwise a decimal number of bytes
 * (trailing newline allowed). Returns 0 or -EINVAL. */
int cgroup_parse_limit(const char *text, uint64_t *bytes);

/* A decimal u64 at *pp (no sign, no space); *pp moves past it. 0, or
 * -EINVAL when there is no digit or the number does not fit. */
int cgroup_parse_u64_prefix(const char **pp, uint64_t *out);

/* Finds "key value" in the text of a memory.stat file. Returns 0,
 * -ENOENT or -EINVAL (key present, value not a number). */
int cgroup_parse_stat(const char *text, const char *key, uint64_t *value);

/* cgroup_read_mem flags */
#define CGROUP_MEM_IF_LIMITED 0x1u /* read usage and memory.stat only when a limit
                                      is set (else they stay 0): an ancestor
                                      without a limit costs two small reads */

/* Reads limits, usage and inactive file cache of the memory cgroup at
 * dir. CGROUP_VERSION_AUTO looks for memory.current (v2) or
 * memory.usage_in_bytes (v1). A missing memory.stat leaves
 * inactive_file_bytes 0; a missing usage or limit file is an error
 * (-ENOENT: no memory controller there; the cgroup may have gone). */
int cgroup_read_mem(const char *dir, enum cgroup_version version, unsigned flags,
                    struct cgroup_mem *out);

/* Reads a small text file whole into buf (NUL-terminated). Returns the
 * length, -EFBIG when it does not fit, or the errno of open/read. */
int cgroup_read_file(const char *path, char *buf, size_t buflen);

/* The same through an fd the caller keeps open (pread from offset 0, as
 * kernfs files want to be re-read: that also re-arms their poll
 * notification). Returns the length, -EFBIG, or the errno of pread. */
int cgroup_pread_file(int fd, char *buf, size_t buflen);

#endif /* HAKMEMD_CGROUP_UTIL_H */
