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
 * exists). Paths with a ".." component (the cgroup lies outside our cgroup
 * namespace) are refused. Returns 0, -ENOENT (neither line), -EXDEV (..),
 * -ENAMETOOLONG, -EINVAL (malformed memory line). */
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

/* All of the above for one pid: reads <proc_root>/<pid>/cgroup. */
int cgroup_memcg_of_pid(const char *proc_root, const char *cgroup_root, pid_t pid,
                        struct cgroup_memcg *out);

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

/* Reads usage, limits and inactive file cache of the memory cgroup at dir.
 * CGROUP_VERSION_AUTO looks for memory.current (v2) or
 * memory.usage_in_bytes (v1). A missing memory.stat leaves
 * inactive_file_bytes 0; a missing usage or limit file is an error
 * (-ENOENT: no memory controller there; the cgroup may have gone). */
int cgroup_read_mem(const char *dir, enum cgroup_version version, struct cgroup_mem *out);

/* Reads a small text file whole into buf (NUL-terminated). Returns the
 * length, -EFBIG when it does not fit, or the errno of open/read. */
int cgroup_read_file(const char *path, char *buf, size_t buflen);

/* The same through an fd the caller keeps open (pread from offset 0, as
 * kernfs files want to be re-read: that also re-arms their poll
 * notification). Returns the length, -EFBIG, or the errno of pread. */
int cgroup_pread_file(int fd, char *buf, size_t buflen);

#endif /* HAKMEMD_CGROUP_UTIL_H */
