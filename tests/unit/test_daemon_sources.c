/* test_daemon_sources.c: hakmemd's cgroup lookups (daemon/cgroup_util.c),
 * usage source (usage_source.c) and PSI / memory.pressure_level source
 * (psi_source.c) and memory.events source (memevents_source.c): parsing
 * and layouts on fake v1 and v2 trees in a temp
 * dir, the debouncer with an injected clock, and real checks where the
 * host allows (a PSI trigger on /proc/pressure/memory; this process's own
 * memory cgroup), which print SKIP with the reason otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_util.h"
#include "memevents_source.h"
#include "psi_source.h"
#include "vmpressure_source.h"
#include "usage_source.h"
#include "test_main.h"

#define MS UINT64_C(1000000)
#define S (1000 * MS)

/* ---------------------------------------------------------------------
 * fake trees
 */
static char tmp[PATH_MAX];

static void tmp_make(void)
{
    const char *base = getenv("TMPDIR");
    ck_assert_int_lt(snprintf(tmp, sizeof(tmp), "%s/hakmemd-test-XXXXXX",
                              base && *base ? base : "/tmp"), (int)sizeof(tmp));
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void tmp_remove(void)
{
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* mkdir -p tmp/rel */
static void mkdirs(const char *rel)
{
    char p[PATH_MAX];
    ck_assert_int_lt(snprintf(p, sizeof(p), "%s/%s", tmp, rel), (int)sizeof(p));
    for (char *s = p + strlen(tmp) + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    }
    mkdir(p, 0755);
}

/* writes tmp/rel (creating its directory) */
static void put(const char *rel, const char *text)
{
    char p[PATH_MAX], d[PATH_MAX];
    snprintf(d, sizeof(d), "%s", rel);
    char *slash = strrchr(d, '/');
    if (slash) {
        *slash = '\0';
        mkdirs(d);
    }
    ck_assert_int_lt(snprintf(p, sizeof(p), "%s/%s", tmp, rel), (int)sizeof(p));
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static const char *at(const char *rel)
{
    static char p[4][PATH_MAX];
    static int i;
    i = (i + 1) & 3;
    ck_assert_int_lt(snprintf(p[i], sizeof(p[i]), "%s/%s", tmp, rel), (int)sizeof(p[i]));
    return p[i];
}

static uint64_t ino(const char *p)
{
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    return st.st_ino;
}

/* ---------------------------------------------------------------------
 * cgroup_util
 */
static const char hybrid[] = "12:pids:/user.slice\n"
                             "11:cpu,cpuacct:/user.slice\n"
                             "4:memory:/process_api/abc\n"
                             "1:name=systemd:/user.slice/session-1.scope\n"
                             "0::/user.slice/session-1.scope\n";

START_TEST(test_parse_proc_cgroup)
{
    enum cgroup_version v;
    char path[PATH_MAX];

    ck_assert_int_eq(cgroup_parse_proc_cgroup(hybrid, &v, path, sizeof(path)), 0);
    ck_assert_int_eq(v, CGROUP_VERSION_1);
    ck_assert_str_eq(path, "/process_api/abc");

    ck_assert_int_eq(cgroup_parse_proc_cgroup("0::/system.slice/x.service\n", &v, path,
                                              sizeof(path)), 0);
    ck_assert_int_eq(v, CGROUP_VERSION_2);
    ck_assert_str_eq(path, "/system.slice/x.service");

    /* memory inside a list of controllers; a path holding ':' */
    ck_assert_int_eq(cgroup_parse_proc_cgroup("0::/\n5:cpu,memory,io:/a:b\n", &v, path,
                                              sizeof(path)), 0);
    ck_assert_int_eq(v, CGROUP_VERSION_1);
    ck_assert_str_eq(path, "/a:b");

    /* the root, no final newline */
    ck_assert_int_eq(cgroup_parse_proc_cgroup("0::/", &v, path, sizeof(path)), 0);
    ck_assert_str_eq(path, "/");

    /* "memoryx" is not memory; no v2 line either */
    ck_assert_int_eq(cgroup_parse_proc_cgroup("3:memoryx:/a\n2:cpu:/\n", &v, path,
                                              sizeof(path)), -ENOENT);
    ck_assert_int_eq(cgroup_parse_proc_cgroup("", &v, path, sizeof(path)), -ENOENT);
    /* outside our namespace: as written (cgroup_ns_resolve places it) */
    ck_assert_int_eq(cgroup_parse_proc_cgroup("0::/../../other\n", &v, path, sizeof(path)), 0);
    ck_assert_str_eq(path, "/../../other");
    /* a ".." after a name is not the kernel's */
    ck_assert_int_eq(cgroup_parse_proc_cgroup("4:memory:/a/..\n", &v, path, sizeof(path)),
                     -EXDEV);
    /* "..." and "..x" are names, not parents */
    ck_assert_int_eq(cgroup_parse_proc_cgroup("4:memory:/.../..x\n", &v, path, sizeof(path)),
                     0);
    /* malformed */
    ck_assert_int_eq(cgroup_parse_proc_cgroup("4:memory\n", &v, path, sizeof(path)), -EINVAL);
    ck_assert_int_eq(cgroup_parse_proc_cgroup("4:memory:relative\n", &v, path, sizeof(path)),
                     -EINVAL);
    ck_assert_int_eq(cgroup_parse_proc_cgroup(hybrid, &v, path, 8), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_memcg_dir_layouts)
{
    char dir[PATH_MAX];
    tmp_make();

    /* v1 */
    ck_assert_int_eq(cgroup_memcg_dir(tmp, CGROUP_VERSION_1, "/a/b", dir, sizeof(dir)), 0);
    ck_assert_str_eq(dir, at("memory/a/b"));
    ck_assert_int_eq(cgroup_memcg_dir(tmp, CGROUP_VERSION_1, "/", dir, sizeof(dir)), 0);
    ck_assert_str_eq(dir, at("memory"));

    /* v2 with neither layout: nothing to find */
    ck_assert_int_eq(cgroup_memcg_dir(tmp, CGROUP_VERSION_2, "/a", dir, sizeof(dir)), -ENOENT);
    /* hybrid: cgroup2 at <root>/unified */
    put("unified/cgroup.controllers", "\n");
    ck_assert_int_eq(cgroup_memcg_dir(tmp, CGROUP_VERSION_2, "/a", dir, sizeof(dir)), 0);
    ck_assert_str_eq(dir, at("unified/a"));
    /* pure v2: cgroup2 at <root> */
    put("cgroup.controllers", "cpu io memory pids\n");
    ck_assert_int_eq(cgroup_memcg_dir(tmp, CGROUP_VERSION_2, "/a", dir, sizeof(dir)), 0);
    ck_assert_str_eq(dir, at("a"));
    ck_assert_int_eq(cgroup_memcg_dir(tmp, CGROUP_VERSION_2, "/", dir, sizeof(dir)), 0);
    ck_assert_str_eq(dir, tmp);
    ck_assert_int_eq(cgroup_memcg_dir(tmp, CGROUP_VERSION_2, "/a", dir, 10), -ENAMETOOLONG);
    tmp_remove();
}
END_TEST

START_TEST(test_memcg_of_pid_fake_trees)
{
    struct cgroup_memcg m;
    uint64_t key;
    char cg[PATH_MAX];
    tmp_make();
    ck_assert_int_lt(snprintf(cg, sizeof(cg), "%s/cg", tmp), (int)sizeof(cg));

    /* hybrid host: v1 memory wins */
    put("proc/1234/cgroup", hybrid);
    mkdirs("cg/memory/process_api/abc");
    put("cg/unified/cgroup.controllers", "\n");
    ck_assert_int_eq(cgroup_memcg_of_pid(at("proc"), cg, NULL, 1234, &m), 0);
    ck_assert_int_eq(m.version, CGROUP_VERSION_1);
    ck_assert_str_eq(m.path, "/process_api/abc");
    ck_assert_str_eq(m.dir, at("cg/memory/process_api/abc"));
    ck_assert_uint_eq(m.key, ino(m.dir));

    /* pure v2 host */
    put("proc/77/cgroup", "0::/system.slice/db.service\n");
    put("v2/cgroup.controllers", "memory\n");
    mkdirs("v2/system.slice/db.service");
    ck_assert_int_eq(cgroup_memcg_of_pid(at("proc"), at("v2"), NULL, 77, &m), 0);
    ck_assert_int_eq(m.version, CGROUP_VERSION_2);
    ck_assert_str_eq(m.dir, at("v2/system.slice/db.service"));
    ck_assert_uint_eq(m.key, ino(at("v2/system.slice/db.service")));

    /* no such pid, no such cgroup dir, not a dir */
    ck_assert_int_eq(cgroup_memcg_of_pid(at("proc"), cg, NULL, 999, &m), -ESRCH);
    ck_assert_int_eq(cgroup_memcg_of_pid(at("proc"), cg, NULL, 0, &m), -EINVAL);
    put("proc/55/cgroup", "4:memory:/gone\n");
    ck_assert_int_eq(cgroup_memcg_of_pid(at("proc"), cg, NULL, 55, &m), -ENOENT);
    put("cg/memory/file", "x");
    ck_assert_int_eq(cgroup_key_of_dir(at("cg/memory/file"), &key), -ENOTDIR);
    tmp_remove();
}
END_TEST

/* hakmemd in a cgroup namespace of its own with the host's hierarchy
 * mounted (a DaemonSet on cgroup v2): where its namespace root lies, and
 * other cgroups placed from there. */
START_TEST(test_cgroup_namespace)
{
    char root[PATH_MAX], path[PATH_MAX], mnt[PATH_MAX], cg[PATH_MAX], line[2 * PATH_MAX];
    struct cgroup_memcg m;
    struct cgroup_ns ns = { { "", "", "" } };

    /* resolve: identity at the mount's root; climbing from a deeper root */
    static const struct {
        const char *ns_root, *nspath, *path; /* path NULL: -EXDEV */
    } cases[] = {
        { "", "/a/b", "/a/b" },
        { "", "/", "/" },
        { "", "/../a", NULL },
        { "/k/p/c", "/", "/k/p/c" },
        { "/k/p/c", "/sub", "/k/p/c/sub" },
        { "/k/p/c", "/../d", "/k/p/d" },
        { "/k/p/c", "/../../q/d", "/k/q/d" },
        { "/k/p/c", "/../../../init.scope", "/init.scope" },
        { "/k/p/c", "/../../..", "/" },
        { "/k/p/c", "/..", "/k/p" },
        { "/k/p/c", "/../../../../x", NULL },
        { "/k/p/c", "/../..x", "/k/p/..x" }, /* "..x" is a name */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = cgroup_ns_resolve(cases[i].ns_root, cases[i].nspath, path, sizeof(path));
        ck_assert_msg(r == (cases[i].path ? 0 : -EXDEV), "%s in %s: %d", cases[i].nspath,
                      cases[i].ns_root, r);
        if (cases[i].path)
            ck_assert_str_eq(path, cases[i].path);
    }
    ck_assert_int_eq(cgroup_ns_resolve("/k/p/c", "/../d", path, 6), -ENAMETOOLONG);

    /* find: the host's v1 memory hierarchy mounted from a namespace 2
     * levels down; we (pid 4242) are in b/y, at our namespace's root */
    tmp_make();
    ck_assert_int_lt(snprintf(cg, sizeof(cg), "%s/cg", tmp), (int)sizeof(cg));
    put("cg/memory/a/x/cgroup.procs", "5\n");
    put("cg/memory/b/x/cgroup.procs", "42\n424\n");
    put("cg/memory/b/y/cgroup.procs", "12\n4242\n");
    put("cg/memory/b/y/z/cgroup.procs", "4242\n");
    put("cg/memory/c", "a file");
    ck_assert_ptr_nonnull(realpath(at("cg/memory"), mnt));
    snprintf(line, sizeof(line), "22 1 0:20 / /proc rw - proc proc rw\n"
             "34 30 0:31 /../.. %s rw,relatime - cgroup cgroup rw,memory\n", mnt);
    put("proc/4242/mountinfo", line);
    put("proc/4242/cgroup", "4:memory:/\n0::/\n");
    ck_assert_int_eq(cgroup_ns_find(at("proc"), cg, CGROUP_VERSION_1, 4242, root, sizeof(root)),
                     0);
    ck_assert_str_eq(root, "/b/y");
    /* ... also from a cgroup below our namespace's root */
    put("proc/4242/cgroup", "4:memory:/z\n");
    ck_assert_int_eq(cgroup_ns_find(at("proc"), cg, CGROUP_VERSION_1, 4242, root, sizeof(root)),
                     0);
    ck_assert_str_eq(root, "/b/y");
    /* then a shim's cgroup in another pod, and ours */
    snprintf(ns.root[CGROUP_VERSION_1], sizeof(ns.root[1]), "%s", root);
    put("proc/77/cgroup", "4:memory:/../../a/x\n");
    ck_assert_int_eq(cgroup_memcg_of_pid(at("proc"), cg, &ns, 77, &m), 0);
    ck_assert_str_eq(m.path, "/a/x");
    ck_assert_str_eq(m.dir, at("cg/memory/a/x"));
    ck_assert_uint_eq(m.key, ino(at("cg/memory/a/x")));
    put("proc/78/cgroup", "4:memory:/z\n");
    ck_assert_int_eq(cgroup_memcg_of_pid(at("proc"), cg, &ns, 78, &m), 0);
    ck_assert_str_eq(m.path, "/b/y/z");
    /* without the namespace's place: refused, as before */
    ck_assert_int_eq(cgroup_memcg_of_pid(at("proc"), cg, NULL, 77, &m), -EXDEV);
    /* moved out of our namespace since: cannot tell */
    put("proc/4242/cgroup", "4:memory:/../q\n");
    ck_assert_int_eq(cgroup_ns_find(at("proc"), cg, CGROUP_VERSION_1, 4242, root, sizeof(root)),
                     -EXDEV);
    /* not in any cgroup at that depth */
    put("proc/4242/cgroup", "4:memory:/\n");
    put("cg/memory/b/y/cgroup.procs", "12\n");
    ck_assert_int_eq(cgroup_ns_find(at("proc"), cg, CGROUP_VERSION_1, 4242, root, sizeof(root)),
                     -ESRCH);
    /* the mount's root is ours: nothing to place */
    snprintf(line, sizeof(line), "34 30 0:31 / %s rw - cgroup cgroup rw,memory\n", mnt);
    put("proc/4242/mountinfo", line);
    ck_assert_int_eq(cgroup_ns_find(at("proc"), cg, CGROUP_VERSION_1, 4242, root, sizeof(root)),
                     0);
    ck_assert_str_eq(root, "");
    /* a subtree mounted: not supported; no such mount */
    snprintf(line, sizeof(line), "34 30 0:31 /b %s rw - cgroup cgroup rw,memory\n", mnt);
    put("proc/4242/mountinfo", line);
    ck_assert_int_eq(cgroup_ns_find(at("proc"), cg, CGROUP_VERSION_1, 4242, root, sizeof(root)),
                     -EOPNOTSUPP);
    put("proc/4242/mountinfo", "22 1 0:20 / /proc rw - proc proc rw\n");
    ck_assert_int_eq(cgroup_ns_find(at("proc"), cg, CGROUP_VERSION_1, 4242, root, sizeof(root)),
                     -ENOENT);
    tmp_remove();
}
END_TEST

START_TEST(test_real_own_memcg)
{
    struct cgroup_memcg m;
    int r = cgroup_memcg_of_pid(CGROUP_DEFAULT_PROC, CGROUP_DEFAULT_ROOT, NULL, getpid(), &m);
    if (r < 0) {
        fprintf(stderr, "SKIP real memcg lookup: %s\n", strerror(-r));
        return;
    }
    ck_assert_uint_eq(m.key, ino(m.dir));
    struct cgroup_mem mem;
    r = cgroup_read_mem(m.dir, m.version, 0, &mem);
    if (r < 0) {
        fprintf(stderr, "SKIP real usage read of %s: %s\n", m.dir, strerror(-r));
        return;
    }
    ck_assert_uint_gt(mem.usage_bytes, 0);
    struct usage_sample s;
    ck_assert_int_eq(usage_sample_dir(m.dir, CGROUP_VERSION_AUTO, 0, 1, &s), 0);
    fprintf(stderr, "own memcg v%d %s key %llu usage %llu limit %llu permille %u\n",
            (int)m.version, m.dir, (unsigned long long)m.key,
            (unsigned long long)s.mem.usage_bytes, (unsigned long long)s.limit_bytes,
            s.permille);
}
END_TEST

START_TEST(test_parse_limit_and_stat)
{
    uint64_t v;
    ck_assert_int_eq(cgroup_parse_limit("max\n", &v), 0);
    ck_assert_uint_eq(v, CGROUP_UNLIMITED);
    ck_assert_int_eq(cgroup_parse_limit("9223372036854771712\n", &v), 0);
    ck_assert_uint_eq(v, CGROUP_UNLIMITED);
    ck_assert_int_eq(cgroup_parse_limit("67108864\n", &v), 0);
    ck_assert_uint_eq(v, 67108864);
    ck_assert_int_eq(cgroup_parse_limit("0", &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(cgroup_parse_limit("", &v), -EINVAL);
    ck_assert_int_eq(cgroup_parse_limit("maximum\n", &v), -EINVAL);
    ck_assert_int_eq(cgroup_parse_limit("12k\n", &v), -EINVAL);
    ck_assert_int_eq(cgroup_parse_limit("-1\n", &v), -EINVAL);
    ck_assert_int_eq(cgroup_parse_limit("99999999999999999999999\n", &v), -EINVAL);

    static const char stat[] = "cache 40960\n"
                               "inactive_file 12288\n"
                               "inactive_file_x 5\n"
                               "total_inactive_file 20480\n"
                               "bad 12x\n";
    ck_assert_int_eq(cgroup_parse_stat(stat, "inactive_file", &v), 0);
    ck_assert_uint_eq(v, 12288);
    ck_assert_int_eq(cgroup_parse_stat(stat, "total_inactive_file", &v), 0);
    ck_assert_uint_eq(v, 20480);
    ck_assert_int_eq(cgroup_parse_stat(stat, "file", &v), -ENOENT);
    ck_assert_int_eq(cgroup_parse_stat(stat, "bad", &v), -EINVAL);
    ck_assert_int_eq(cgroup_parse_stat("", "cache", &v), -ENOENT);
}
END_TEST

static void fake_v1(const char *rel, const char *usage, const char *limit, const char *stat)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/memory.usage_in_bytes", rel);
    put(p, usage);
    snprintf(p, sizeof(p), "%s/memory.limit_in_bytes", rel);
    put(p, limit);
    if (stat) {
        snprintf(p, sizeof(p), "%s/memory.stat", rel);
        put(p, stat);
    }
}

static void fake_v2(const char *rel, const char *cur, const char *max, const char *high,
                    const char *stat)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/memory.current", rel);
    put(p, cur);
    snprintf(p, sizeof(p), "%s/memory.max", rel);
    put(p, max);
    snprintf(p, sizeof(p), "%s/memory.high", rel);
    put(p, high);
    if (stat) {
        snprintf(p, sizeof(p), "%s/memory.stat", rel);
        put(p, stat);
    }
}

START_TEST(test_read_mem_v1_v2)
{
    struct cgroup_mem m;
    tmp_make();

    fake_v1("v1", "50000000\n", "100000000\n",
            "inactive_file 1\ntotal_inactive_file 10000000\n");
    ck_assert_int_eq(cgroup_read_mem(at("v1"), CGROUP_VERSION_1, 0, &m), 0);
    ck_assert_uint_eq(m.usage_bytes, 50000000);
    ck_assert_uint_eq(m.limit_bytes, 100000000);
    ck_assert_uint_eq(m.high_bytes, CGROUP_UNLIMITED);
    ck_assert_uint_eq(m.inactive_file_bytes, 10000000); /* total_, v1 is hierarchical */
    ck_assert_int_eq(cgroup_read_mem(at("v1"), CGROUP_VERSION_AUTO, 0, &m), 0);
    ck_assert_uint_eq(m.limit_bytes, 100000000);

    fake_v2("v2", "3000\n", "max\n", "2000\n", "anon 1\ninactive_file 500\n");
    ck_assert_int_eq(cgroup_read_mem(at("v2"), CGROUP_VERSION_AUTO, 0, &m), 0);
    ck_assert_uint_eq(m.usage_bytes, 3000);
    ck_assert_uint_eq(m.limit_bytes, CGROUP_UNLIMITED);
    ck_assert_uint_eq(m.high_bytes, 2000);
    ck_assert_uint_eq(m.inactive_file_bytes, 500);

    /* no memory.stat: no inactive file; bad numbers; nothing at all */
    fake_v1("v1b", "10\n", "9223372036854771712\n", NULL);
    ck_assert_int_eq(cgroup_read_mem(at("v1b"), CGROUP_VERSION_AUTO, 0, &m), 0);
    ck_assert_uint_eq(m.inactive_file_bytes, 0);
    ck_assert_uint_eq(m.limit_bytes, CGROUP_UNLIMITED);
    fake_v2("v2b", "x\n", "max\n", "max\n", NULL);
    ck_assert_int_eq(cgroup_read_mem(at("v2b"), CGROUP_VERSION_2, 0, &m), -EINVAL);
    mkdirs("empty");
    ck_assert_int_eq(cgroup_read_mem(at("empty"), CGROUP_VERSION_AUTO, 0, &m), -ENOENT);
    ck_assert_int_eq(cgroup_read_mem(at("empty"), CGROUP_VERSION_1, 0, &m), -ENOENT);
    tmp_remove();
}
END_TEST

START_TEST(test_read_file_limits)
{
    char buf[8];
    tmp_make();
    put("f", "1234567");
    ck_assert_int_eq(cgroup_read_file(at("f"), buf, sizeof(buf)), 7);
    ck_assert_str_eq(buf, "1234567");
    put("g", "12345678");
    ck_assert_int_eq(cgroup_read_file(at("g"), buf, sizeof(buf)), -EFBIG);
    ck_assert_int_eq(cgroup_read_file(at("none"), buf, sizeof(buf)), -ENOENT);
    tmp_remove();
}
END_TEST

/* ---------------------------------------------------------------------
 * usage
 */
START_TEST(test_usage_arithmetic)
{
    struct cgroup_mem m = { .usage_bytes = 900, .limit_bytes = 1000,
                            .high_bytes = CGROUP_UNLIMITED, .inactive_file_bytes = 100 };
    ck_assert_uint_eq(usage_effective_limit(&m), 1000);
    ck_assert_uint_eq(usage_working_set(&m), 800);
    ck_assert_uint_eq(usage_permille(&m), 800);

    m.high_bytes = 850; /* v2: reclaim starts at high */
    ck_assert_uint_eq(usage_effective_limit(&m), 850);
    ck_assert_uint_eq(usage_permille(&m), 941);

    m.inactive_file_bytes = 2000; /* read at another moment: clamp */
    ck_assert_uint_eq(usage_working_set(&m), 0);
    ck_assert_uint_eq(usage_permille(&m), 0);

    m = (struct cgroup_mem){ .usage_bytes = 1 << 30, .limit_bytes = CGROUP_UNLIMITED,
                             .high_bytes = CGROUP_UNLIMITED };
    ck_assert_uint_eq(usage_permille(&m), 0); /* no limit, no ratio */

    m.limit_bytes = 1000; /* far over (v2 can overshoot high): saturates */
    ck_assert_uint_eq(usage_permille(&m), USAGE_PERMILLE_MAX);
    m.limit_bytes = 0;
    ck_assert_uint_eq(usage_permille(&m), USAGE_PERMILLE_MAX);
    m.usage_bytes = 0;
    ck_assert_uint_eq(usage_permille(&m), 0);
    m = (struct cgroup_mem){ .usage_bytes = UINT64_MAX - 1, .limit_bytes = UINT64_MAX - 1,
                             .high_bytes = CGROUP_UNLIMITED };
    ck_assert_uint_eq(usage_permille(&m), 1000); /* no overflow */

    struct usage_sample s;
    m = (struct cgroup_mem){ .usage_bytes = 970, .limit_bytes = 1000,
                             .high_bytes = CGROUP_UNLIMITED };
    usage_compute(&m, 42, &s);
    ck_assert_uint_eq(s.time_ns, 42);
    ck_assert_int_eq(s.error, 0);
    ck_assert_uint_eq(s.permille, 970);
    ck_assert_uint_eq(s.limit_bytes, 1000);
}
END_TEST

/* A schedule in small numbers: thresholds 80/90/97 %, plan for 1000
 * bytes/s, 10 ms..250 ms, project 100 ms ahead. */
static const struct usage_schedule sched = {
    .min_interval_ns = 10 * MS,
    .max_interval_ns = 250 * MS,
    .burst_bytes_per_s = 1000,
    .lead_ns = 100 * MS,
    .th_permille = { 800, 900, 970 },
};

static struct usage_sample sample_at(uint64_t t, uint64_t ws, uint64_t limit)
{
    struct cgroup_mem m = { .usage_bytes = ws, .limit_bytes = limit,
                            .high_bytes = CGROUP_UNLIMITED };
    struct usage_sample s;
    usage_compute(&m, t, &s);
    return s;
}

START_TEST(test_usage_growth_projection_and_schedule)
{
    struct usage_sample a = sample_at(1 * S, 500, 1000);
    struct usage_sample b = sample_at(1 * S + 100 * MS, 600, 1000);
    struct usage_sample none = { 0 };

    /* growth: bytes per second between two good samples, else 0 */
    ck_assert_uint_eq(usage_growth(&a, &b), 1000);
    ck_assert_uint_eq(usage_growth(&b, &a), 0);            /* shrinking */
    ck_assert_uint_eq(usage_growth(&none, &b), 0);         /* no previous */
    struct usage_sample close = sample_at(1 * S + MS / 2, 900, 1000);
    ck_assert_uint_eq(usage_growth(&a, &close), 0);        /* too close to tell */
    struct usage_sample bad = b;
    bad.error = -ENOENT;
    ck_assert_uint_eq(usage_growth(&a, &bad), 0);

    /* projection: 1000 B/s for 100 ms is 100 bytes more: 60 % -> 70 % */
    ck_assert_uint_eq(usage_projected_permille(&b, 1000, 100 * MS), 700);
    ck_assert_uint_eq(usage_projected_permille(&b, 0, 100 * MS), 600);
    ck_assert_uint_eq(usage_projected_permille(&b, UINT64_MAX, UINT64_MAX), USAGE_PERMILLE_MAX);
    struct usage_sample unl = sample_at(S, 600, CGROUP_UNLIMITED);
    ck_assert_uint_eq(usage_projected_permille(&unl, 1000, S), 0);

    /* schedule: time to the next threshold at the planned burst rate */
    ck_assert_uint_eq(usage_next_interval(&sched, &b, 0), 200 * MS); /* 200 B to 80 % */
    struct usage_sample far = sample_at(S, 100, 1000);
    ck_assert_uint_eq(usage_next_interval(&sched, &far, 0), 250 * MS); /* capped */
    struct usage_sample near = sample_at(S, 795, 1000);
    ck_assert_uint_eq(usage_next_interval(&sched, &near, 0), 10 * MS); /* floored */
    struct usage_sample mid = sample_at(S, 850, 1000);
    ck_assert_uint_eq(usage_next_interval(&sched, &mid, 0), 50 * MS); /* 50 B to 90 % */
    /* measured growth faster than planned: sooner */
    ck_assert_uint_eq(usage_next_interval(&sched, &b, 4000), 50 * MS);
    /* above every threshold, no limit, an error: the longest interval */
    struct usage_sample top = sample_at(S, 990, 1000);
    ck_assert_uint_eq(usage_next_interval(&sched, &top, 0), 250 * MS);
    ck_assert_uint_eq(usage_next_interval(&sched, &unl, 0), 250 * MS);
    ck_assert_uint_eq(usage_next_interval(&sched, &bad, 0), 250 * MS);
}
END_TEST

START_TEST(test_usage_source_set)
{
    struct usage_source src;
    tmp_make();
    fake_v1("a", "80\n", "100\n", "total_inactive_file 0\n");
    fake_v2("b", "450\n", "1000\n", "500\n", "inactive_file 50\n");
    usage_source_init(&src);
    ck_assert_int_eq(usage_source_add(&src, 1, at("a"), CGROUP_VERSION_1, 0), 0);
    ck_assert_int_eq(usage_source_add(&src, 2, at("b"), CGROUP_VERSION_AUTO, 0), 0);
    for (uint64_t k = 10; k < 50; k++) /* grow past the first allocation */
        ck_assert_int_eq(usage_source_add(&src, k, at("a"), CGROUP_VERSION_AUTO, 0), 0);
    for (uint64_t k = 10; k < 50; k++)
        ck_assert_int_eq(usage_source_remove(&src, k), 0);
    ck_assert_uint_eq(src.count, 2);

    /* new entries are due at once; a at 80 % is 1 byte from 90 %: the
     * shortest interval; b at 400 of 500 bytes: 50 bytes, 50 ms */
    ck_assert_uint_eq(usage_source_sample_due(&src, &sched, 5 * S), 5 * S + 10 * MS);
    const struct usage_entry *a = usage_source_find(&src, 1);
    const struct usage_entry *b = usage_source_find(&src, 2);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(a->last.permille, 800);
    ck_assert_uint_eq(a->last.time_ns, 5 * S);
    ck_assert_uint_eq(a->next_ns, 5 * S + 10 * MS);
    ck_assert_uint_eq(b->last.permille, 800); /* (450 - 50) / min(1000, 500) */
    ck_assert_uint_eq(b->next_ns, 5 * S + 50 * MS);

    /* nothing due yet: nothing read */
    ck_assert_uint_eq(usage_source_sample_due(&src, &sched, 5 * S + 5 * MS), 5 * S + 10 * MS);
    ck_assert_uint_eq(a->last.time_ns, 5 * S);

    /* a grows 5 bytes in 10 ms (500 B/s): 100 ms ahead it would hold 85 +
     * 50 bytes, 135 % of its limit */
    put("a/memory.usage_in_bytes", "85\n");
    ck_assert_uint_eq(usage_source_sample_due(&src, &sched, 5 * S + 10 * MS), 5 * S + 20 * MS);
    ck_assert_uint_eq(a->last.time_ns, 5 * S + 10 * MS);
    ck_assert_uint_eq(b->last.time_ns, 5 * S);
    ck_assert_uint_eq(a->growth_bytes_per_s, 500);
    ck_assert_uint_eq(a->last.permille, 850);
    ck_assert_uint_eq(a->projected_permille, 1350);

    /* the cgroup goes away: the error is kept, the entry too */
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/memory.usage_in_bytes", at("a"));
    unlink(p);
    usage_source_sample_due(&src, &sched, 6 * S);
    a = usage_source_find(&src, 1);
    ck_assert_int_eq(a->last.error, -ENOENT);
    ck_assert_uint_eq(a->last.permille, 0);
    ck_assert_uint_eq(a->projected_permille, 0);
    ck_assert_uint_eq(a->next_ns, 6 * S + 250 * MS);

    /* re-adding a key points it elsewhere, due at once */
    ck_assert_int_eq(usage_source_add(&src, 1, at("b"), CGROUP_VERSION_2, 0), 0);
    ck_assert_uint_eq(src.count, 2);
    usage_source_sample_due(&src, &sched, 6 * S + MS);
    ck_assert_uint_eq(usage_source_find(&src, 1)->last.permille, 800);
    ck_assert_uint_eq(usage_source_find(&src, 1)->last.time_ns, 6 * S + MS);

    ck_assert_int_eq(usage_source_remove(&src, 2), 0);
    ck_assert_int_eq(usage_source_remove(&src, 2), -ENOENT);
    ck_assert_ptr_null(usage_source_find(&src, 2));
    usage_source_free(&src);
    ck_assert_uint_eq(src.count, 0);
    tmp_remove();
}
END_TEST

/* A child without a limit under a parent with one (a pod and its
 * container): the parent is found, read only while it has a limit, shared
 * by reference, and governs the child's ratio. */
START_TEST(test_usage_ancestors)
{
    struct usage_source src;
    struct cgroup_memcg ctr = { .version = CGROUP_VERSION_1, .path = "/pod/ctr" }, pod, root, up;
    struct cgroup_mem m;
    tmp_make();
    fake_v1("memory/pod/ctr", "100\n", "9223372036854771712\n", "total_inactive_file 0\n");
    fake_v1("memory/pod", "850\n", "1000\n", "total_inactive_file 0\n");
    fake_v1("memory", "5000\n", "9223372036854771712\n", NULL);
    snprintf(ctr.dir, sizeof(ctr.dir), "%s", at("memory/pod/ctr"));
    ctr.key = ino(ctr.dir);

    /* up the hierarchy to its root, and no further */
    ck_assert_int_eq(cgroup_parent_memcg(&ctr, &pod), 0);
    ck_assert_str_eq(pod.path, "/pod");
    ck_assert_str_eq(pod.dir, at("memory/pod"));
    ck_assert_uint_eq(pod.key, ino(at("memory/pod")));
    ck_assert_int_eq(pod.version, CGROUP_VERSION_1);
    ck_assert_int_eq(cgroup_parent_memcg(&pod, &root), 0);
    ck_assert_str_eq(root.path, "/");
    ck_assert_str_eq(root.dir, at("memory"));
    ck_assert_int_eq(cgroup_parent_memcg(&root, &up), -ENOENT);
    /* a dir that does not end in the path: refused */
    struct cgroup_memcg odd = ctr;
    snprintf(odd.path, sizeof(odd.path), "/pod/other");
    ck_assert_int_eq(cgroup_parent_memcg(&odd, &up), -EINVAL);
    /* the parent went away: stat's errno */
    snprintf(odd.path, sizeof(odd.path), "/gone/ctr");
    snprintf(odd.dir, sizeof(odd.dir), "%s", at("memory/gone/ctr"));
    ck_assert_int_eq(cgroup_parent_memcg(&odd, &up), -ENOENT);

    /* without a limit, CGROUP_MEM_IF_LIMITED reads no usage */
    ck_assert_int_eq(cgroup_read_mem(ctr.dir, CGROUP_VERSION_1, CGROUP_MEM_IF_LIMITED, &m), 0);
    ck_assert_uint_eq(m.limit_bytes, CGROUP_UNLIMITED);
    ck_assert_uint_eq(m.usage_bytes, 0);
    ck_assert_int_eq(cgroup_read_mem(ctr.dir, CGROUP_VERSION_1, 0, &m), 0);
    ck_assert_uint_eq(m.usage_bytes, 100);
    ck_assert_int_eq(cgroup_read_mem(pod.dir, CGROUP_VERSION_1, CGROUP_MEM_IF_LIMITED, &m), 0);
    ck_assert_uint_eq(m.usage_bytes, 850);

    /* the child tracked, the parent as its ancestor (and another's) */
    usage_source_init(&src);
    ck_assert_int_eq(usage_source_add(&src, ctr.key, ctr.dir, CGROUP_VERSION_1, 0), 0);
    ck_assert_int_eq(usage_source_add(&src, pod.key, pod.dir, CGROUP_VERSION_1,
                                      CGROUP_MEM_IF_LIMITED), 0);
    ck_assert_int_eq(usage_source_add(&src, pod.key, pod.dir, CGROUP_VERSION_1,
                                      CGROUP_MEM_IF_LIMITED), 0);
    ck_assert_uint_eq(src.count, 2);
    ck_assert_uint_eq(usage_source_find(&src, pod.key)->refs, 2);
    ck_assert_uint_eq(usage_source_find(&src, pod.key)->read_flags, CGROUP_MEM_IF_LIMITED);
    usage_source_sample_due(&src, &sched, 5 * S);

    const struct usage_entry *chain[3] = { usage_source_find(&src, ctr.key),
                                           usage_source_find(&src, pod.key), NULL };
    int gov = 7;
    /* the parent's 85 % governs the unlimited child */
    ck_assert_uint_eq(usage_chain_permille(chain, 3, &gov), 850);
    ck_assert_int_eq(gov, 1);
    ck_assert_uint_eq(usage_chain_permille(chain, 1, &gov), 0); /* the child alone: no limit */
    ck_assert_int_eq(gov, -1);
    /* the child's own limit, tighter: it governs; a tie goes to the nearest */
    put("memory/pod/ctr/memory.limit_in_bytes", "105\n");
    usage_source_sample_due(&src, &sched, 6 * S);
    ck_assert_uint_eq(usage_chain_permille(chain, 3, NULL), 952);
    ck_assert_uint_eq(usage_chain_permille(chain, 3, &gov), 952);
    ck_assert_int_eq(gov, 0);
    put("memory/pod/ctr/memory.limit_in_bytes", "200\n");
    put("memory/pod/memory.usage_in_bytes", "500\n");
    usage_source_sample_due(&src, &sched, 7 * S);
    ck_assert_uint_eq(usage_chain_permille(chain, 3, &gov), 500);
    ck_assert_int_eq(gov, 0);

    /* a full read asked once stays; the last reference removes it */
    ck_assert_int_eq(usage_source_add(&src, pod.key, pod.dir, CGROUP_VERSION_1, 0), 0);
    ck_assert_uint_eq(usage_source_find(&src, pod.key)->read_flags, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_nonnull(usage_source_find(&src, pod.key));
        ck_assert_int_eq(usage_source_remove(&src, pod.key), 0);
    }
    ck_assert_ptr_null(usage_source_find(&src, pod.key));
    ck_assert_int_eq(usage_source_remove(&src, pod.key), -ENOENT);
    usage_source_free(&src);
    tmp_remove();
}
END_TEST

/* ---------------------------------------------------------------------
 * PSI
 */
static const char psi_text[] = "some avg10=0.06 avg60=0.39 avg300=0.29 total=1503347\n"
                               "full avg10=12.50 avg60=0.03 avg300=100.00 total=439813\n";

START_TEST(test_psi_parse)
{
    struct psi_stats s;
    ck_assert_int_eq(psi_parse(psi_text, &s), 0);
    ck_assert_uint_eq(s.some.avg10_cpct, 6);
    ck_assert_uint_eq(s.some.avg60_cpct, 39);
    ck_assert_uint_eq(s.some.avg300_cpct, 29);
    ck_assert_uint_eq(s.some.total_us, 1503347);
    ck_assert(s.has_full);
    ck_assert_uint_eq(s.full.avg10_cpct, 1250);
    ck_assert_uint_eq(s.full.avg300_cpct, 10000);
    ck_assert_uint_eq(s.full.total_us, 439813);

    /* "some" only (old kernels' cpu file); one decimal; no newline */
    ck_assert_int_eq(psi_parse("some avg10=5.2 avg60=0 avg300=1.00 total=0", &s), 0);
    ck_assert(!s.has_full);
    ck_assert_uint_eq(s.some.avg10_cpct, 520);
    ck_assert_uint_eq(s.some.avg60_cpct, 0);

    static const char *const bad[] = {
        "",
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", /* no some */
        "some avg10=0.00 avg60=0.00 avg300=0.00\n",         /* no total */
        "some avg10=0.001 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=x avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=1. avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0 extra\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nsome avg10=0.00 avg60=0.00 "
        "avg300=0.00 total=0\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=99999999999999999999999\n",
        "none avg10=0.00\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(psi_parse(bad[i], &s) == -EINVAL, "accepted: %s", bad[i]);
}
END_TEST

START_TEST(test_psi_files_and_paths)
{
    struct psi_stats s;
    char p[PATH_MAX];
    tmp_make();
    put("proc/pressure/memory", psi_text);
    mkdirs("v2/a");
    put("v2/b/memory.pressure", "some avg10=1.00 avg60=0.00 avg300=0.00 total=5\n");

    ck_assert_int_eq(psi_read(at("proc/pressure/memory"), &s), 0);
    ck_assert_uint_eq(s.full.avg10_cpct, 1250);
    ck_assert_int_eq(psi_read(at("proc/pressure/none"), &s), -ENOENT);

    /* a v2 cgroup with its own file; one without; no cgroup */
    ck_assert_int_eq(psi_pressure_path(at("v2/b"), at("proc/pressure/memory"), p, sizeof(p)), 0);
    ck_assert_str_eq(p, at("v2/b/memory.pressure"));
    ck_assert_int_eq(psi_pressure_path(at("v2/a"), at("proc/pressure/memory"), p, sizeof(p)), 0);
    ck_assert_str_eq(p, at("proc/pressure/memory"));
    ck_assert_int_eq(psi_pressure_path(NULL, NULL, p, sizeof(p)), 0);
    ck_assert_str_eq(p, PSI_SYSTEM_MEMORY_PATH);
    ck_assert_int_eq(psi_pressure_path(NULL, NULL, p, 4), -ENAMETOOLONG);

    /* a trigger "armed" on a plain file: the write lands in the file as
     * the kernel would receive it, NUL included */
    struct psi_trigger t;
    char reason[256] = "";
    ck_assert_int_eq(psi_trigger_open(&t, at("v2/b/memory.pressure"), false, 150000, 2000000,
                                      reason, sizeof(reason)), 0);
    ck_assert_int_ge(psi_trigger_fd(&t), 0);
    psi_trigger_close(&t);
    char buf[64];
    int fd = open(at("v2/b/memory.pressure"), O_RDONLY);
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    ck_assert_int_ge(n, 20);
    ck_assert_int_eq(memcmp(buf, "some 150000 2000000\0", 20), 0);

    ck_assert_int_eq(psi_trigger_open(&t, at("v2/a/memory.pressure"), false, 1, 2, reason,
                                      sizeof(reason)), -ENOENT);
    ck_assert_int_eq(t.fd, -1);
    ck_assert_msg(strstr(reason, "no PSI"), "%s", reason);
    tmp_remove();
}
END_TEST

START_TEST(test_psi_trigger_format_and_revents)
{
    char buf[64];
    ck_assert_int_eq(psi_trigger_format(buf, sizeof(buf), false, 150000, 2000000), 19);
    ck_assert_str_eq(buf, "some 150000 2000000");
    ck_assert_int_eq(psi_trigger_format(buf, sizeof(buf), true, 1, 500000), 13);
    ck_assert_str_eq(buf, "full 1 500000");
    ck_assert_int_eq(psi_trigger_format(buf, 10, false, 150000, 2000000), -ENAMETOOLONG);

    ck_assert_int_eq(psi_trigger_revents(EPOLLPRI), 1);
    ck_assert_int_eq(psi_trigger_revents(0), 0);
    ck_assert_int_eq(psi_trigger_revents(EPOLLIN), 0);
    ck_assert_int_eq(psi_trigger_revents(EPOLLERR | EPOLLPRI), -ENODEV);
    ck_assert_int_eq(psi_trigger_revents(EPOLLHUP), -ENODEV);
}
END_TEST

START_TEST(test_real_psi_trigger)
{
    struct psi_trigger t;
    struct psi_stats s;
    char reason[256] = "";

    int r = psi_trigger_open(&t, PSI_SYSTEM_MEMORY_PATH, false, 150000, 2000000, reason,
                             sizeof(reason));
    if (r < 0) {
        fprintf(stderr, "SKIP real PSI trigger: %s\n", reason);
        return;
    }
    /* the numbers come through the trigger's own fd */
    ck_assert_int_eq(psi_trigger_read(&t, &s), 0);
    ck_assert(s.has_full);
    ck_assert_int_eq(psi_trigger_read(&t, &s), 0);

    /* the fd goes into an epoll set; waiting must work (it may fire once
     * for stall from before it was armed: the kernel reports stall since
     * the cgroup was created) */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLPRI };
    ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, psi_trigger_fd(&t), &ev), 0);
    struct epoll_event out;
    int n = epoll_wait(ep, &out, 1, 0);
    ck_assert_int_ge(n, 0);
    if (n == 1)
        ck_assert_int_ge(psi_trigger_revents(out.events), 0);
    close(ep);
    psi_trigger_close(&t);
    ck_assert_int_eq(t.fd, -1);

    /* a window that is not a multiple of 2 s: taken where we may (6.1
     * cgroups, CAP_SYS_RESOURCE), else (6.5+ unprivileged, as here) the
     * next multiple of 2 s with the same share of stall */
    r = psi_trigger_open(&t, PSI_SYSTEM_MEMORY_PATH, false, 150000, 1000000, reason,
                         sizeof(reason));
    ck_assert_msg(r == 0, "%s", reason);
    ck_assert_msg((t.window_us == 1000000 && t.stall_us == 150000) ||
                      (t.window_us == 2000000 && t.stall_us == 300000),
                  "armed some %u %u", t.stall_us, t.window_us);
    fprintf(stderr, "PSI trigger 'some 150000 1000000': armed as some %u %u\n", t.stall_us,
            t.window_us);
    psi_trigger_close(&t);
    /* 9 s rounds up past the kernel's 10 s maximum: no fallback, a reason */
    r = psi_trigger_open(&t, PSI_SYSTEM_MEMORY_PATH, false, 150000, 9000000, reason,
                         sizeof(reason));
    if (r < 0)
        ck_assert_msg(strstr(reason, "multiple of 2 s"), "%s", reason);
    psi_trigger_close(&t);
}
END_TEST

/* ---------------------------------------------------------------------
 * memory.events
 */
START_TEST(test_memevents_parse_and_rose)
{
    struct memevents m, r;
    /* 6.1: oom_group_kill is there; a newer key is skipped */
    ck_assert_int_eq(memevents_parse("low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\n"
                                     "oom_group_kill 0\nsock_throttled 9\n", &m), 0);
    ck_assert_uint_eq(m.high, 12);
    ck_assert_uint_eq(m.max, 3);
    ck_assert_uint_eq(m.oom, 1);
    ck_assert_uint_eq(m.oom_kill, 1);
    /* older kernels: fewer keys, the others read 0 */
    ck_assert_int_eq(memevents_parse("low 0\nhigh 0\nmax 7\noom 0\n", &m), 0);
    ck_assert_uint_eq(m.max, 7);
    ck_assert_uint_eq(m.oom_kill, 0);
    /* not memory.events; a key without a number */
    ck_assert_int_eq(memevents_parse("some avg10=0.00\n", &m), -EINVAL);
    ck_assert_int_eq(memevents_parse("", &m), -EINVAL);
    ck_assert_int_eq(memevents_parse("low 0\nmax x\n", &m), -EINVAL);
    ck_assert_int_eq(memevents_parse("low 0\nmax 18446744073709551616\n", &m), -EINVAL);

    struct memevents a = { .high = 5, .max = 10, .oom_kill = 2 };
    struct memevents b = { .high = 8, .max = 10, .oom_kill = 1 };
    memevents_rose(&a, &b, &r);
    ck_assert_uint_eq(r.high, 3);
    ck_assert_uint_eq(r.max, 0);
    ck_assert_uint_eq(r.oom_kill, 0); /* went down: a new cgroup, not a rise */
}
END_TEST

START_TEST(test_memevents_fake_file)
{
    struct memevents_source src;
    struct memevents r;
    char reason[256] = "";
    tmp_make();
    put("v2/a/memory.events", "low 0\nhigh 4\nmax 2\noom 0\noom_kill 0\n");
    mkdirs("v1/b");

    /* the first read is the baseline: nothing rose yet */
    ck_assert_int_eq(memevents_open(&src, at("v2/a"), reason, sizeof(reason)), 0);
    ck_assert_int_ge(memevents_fd(&src), 0);
    ck_assert_int_eq(memevents_read(&src, &r), 0);
    ck_assert_uint_eq(r.high + r.max + r.oom_kill, 0);
    put("v2/a/memory.events", "low 0\nhigh 9\nmax 2\noom 1\noom_kill 1\n");
    ck_assert_int_eq(memevents_read(&src, &r), 0);
    ck_assert_uint_eq(r.high, 5);
    ck_assert_uint_eq(r.max, 0);
    ck_assert_uint_eq(r.oom, 1);
    ck_assert_uint_eq(r.oom_kill, 1);
    ck_assert_int_eq(memevents_read(&src, &r), 0);
    ck_assert_uint_eq(r.high + r.oom_kill, 0);
    /* junk in the file: an error, the source stays usable */
    put("v2/a/memory.events", "garbage\n");
    ck_assert_int_eq(memevents_read(&src, &r), -EINVAL);
    memevents_close(&src);
    ck_assert_int_eq(memevents_fd(&src), -1);
    ck_assert_int_eq(memevents_read(&src, &r), -EBADF);

    /* v1 (no such file): refused with a reason */
    ck_assert_int_eq(memevents_open(&src, at("v1/b"), reason, sizeof(reason)), -ENOENT);
    ck_assert_msg(strstr(reason, "not a cgroup v2"), "%s", reason);
    ck_assert_int_eq(memevents_fd(&src), -1);
    tmp_remove();
}
END_TEST

START_TEST(test_real_memevents_own_cgroup)
{
    struct cgroup_memcg cg;
    struct memevents_source src;
    char reason[256] = "";
    if (cgroup_memcg_of_pid(CGROUP_DEFAULT_PROC, CGROUP_DEFAULT_ROOT, NULL, getpid(), &cg) < 0 ||
        cg.version != CGROUP_VERSION_2) {
        fprintf(stderr, "SKIP real memory.events: this process's memory cgroup is not v2\n");
        return;
    }
    if (memevents_open(&src, cg.dir, reason, sizeof(reason)) < 0) {
        /* the root cgroup has no memory.events */
        fprintf(stderr, "SKIP real memory.events: %s\n", reason);
        return;
    }
    /* the kernel's file goes into epoll as the daemon uses it */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLPRI };
    ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, memevents_fd(&src), &ev), 0);
    struct memevents r;
    ck_assert_int_eq(memevents_read(&src, &r), 0);
    close(ep);
    memevents_close(&src);
}
END_TEST

/* ---------------------------------------------------------------------
 * debouncer and memory.pressure_level
 */
static const uint32_t mins[HAKMEM_LEVEL_COUNT] = { 0, 8, 4, 2 };

START_TEST(test_debounce_counts_per_level_per_window)
{
    struct vmp_debounce d;
    const uint64_t t0 = 100 * S;
    vmp_debounce_init(&d, S, mins, t0);
    ck_assert_int_eq(vmp_debounce_level(&d, t0), HAKMEM_LEVEL_NONE);

    /* below the count: nothing */
    vmp_debounce_add(&d, HAKMEM_LEVEL_LOW, 7, t0 + 10 * MS);
    ck_assert_int_eq(vmp_debounce_level(&d, t0 + 10 * MS), HAKMEM_LEVEL_NONE);
    /* the count reached: at once, not at the end of the window */
    vmp_debounce_add(&d, HAKMEM_LEVEL_LOW, 1, t0 + 20 * MS);
    ck_assert_int_eq(vmp_debounce_level(&d, t0 + 20 * MS), HAKMEM_LEVEL_LOW);
    vmp_debounce_add(&d, HAKMEM_LEVEL_CRITICAL, 1, t0 + 30 * MS);
    ck_assert_int_eq(vmp_debounce_level(&d, t0 + 30 * MS), HAKMEM_LEVEL_LOW);
    vmp_debounce_add(&d, HAKMEM_LEVEL_CRITICAL, 1, t0 + 40 * MS);
    ck_assert_int_eq(vmp_debounce_level(&d, t0 + 40 * MS), HAKMEM_LEVEL_CRITICAL);

    /* the next window still remembers the last one */
    ck_assert_int_eq(vmp_debounce_level(&d, t0 + 1500 * MS), HAKMEM_LEVEL_CRITICAL);
    /* medium events now, critical ones gone after two quiet windows */
    vmp_debounce_add(&d, HAKMEM_LEVEL_MEDIUM, 4, t0 + 2500 * MS);
    ck_assert_int_eq(vmp_debounce_level(&d, t0 + 2500 * MS), HAKMEM_LEVEL_MEDIUM);
    ck_assert_int_eq(vmp_debounce_level(&d, t0 + 3999 * MS), HAKMEM_LEVEL_MEDIUM);
    ck_assert_int_eq(vmp_debounce_level(&d, t0 + 4 * S), HAKMEM_LEVEL_NONE);

    /* events spread thin over windows never add up */
    for (int i = 0; i < 100; i++) {
        uint64_t t = t0 + 10 * S + (uint64_t)i * S;
        vmp_debounce_add(&d, HAKMEM_LEVEL_LOW, 7, t);
        ck_assert_int_eq(vmp_debounce_level(&d, t), HAKMEM_LEVEL_NONE);
    }

    /* a jump over many windows forgets everything */
    vmp_debounce_add(&d, HAKMEM_LEVEL_LOW, 1000, t0 + 200 * S);
    ck_assert_int_eq(vmp_debounce_level(&d, t0 + 200 * S), HAKMEM_LEVEL_LOW);
    ck_assert_int_eq(vmp_debounce_level(&d, t0 + 500 * S), HAKMEM_LEVEL_NONE);

    /* a level with min 0 is ignored; bad levels are dropped; counts saturate */
    const uint32_t no_low[HAKMEM_LEVEL_COUNT] = { 0, 0, 4, 2 };
    vmp_debounce_init(&d, S, no_low, t0);
    vmp_debounce_add(&d, HAKMEM_LEVEL_LOW, 1000000, t0);
    vmp_debounce_add(&d, HAKMEM_LEVEL_NONE, 1000000, t0);
    vmp_debounce_add(&d, (enum hakmem_level)9, 1000000, t0);
    ck_assert_int_eq(vmp_debounce_level(&d, t0), HAKMEM_LEVEL_NONE);
    vmp_debounce_add(&d, HAKMEM_LEVEL_MEDIUM, UINT64_MAX, t0);
    vmp_debounce_add(&d, HAKMEM_LEVEL_MEDIUM, UINT64_MAX, t0);
    ck_assert_uint_eq(d.cur[HAKMEM_LEVEL_MEDIUM], UINT64_MAX);
    ck_assert_int_eq(vmp_debounce_level(&d, t0), HAKMEM_LEVEL_MEDIUM);

    /* window 0 is taken as 1 ns; time going back counts in the current window */
    vmp_debounce_init(&d, 0, mins, t0);
    ck_assert_uint_eq(d.window_ns, 1);
    vmp_debounce_init(&d, S, mins, t0);
    vmp_debounce_add(&d, HAKMEM_LEVEL_CRITICAL, 2, t0 - S);
    ck_assert_int_eq(vmp_debounce_level(&d, t0), HAKMEM_LEVEL_CRITICAL);
}
END_TEST

START_TEST(test_vmpressure_format)
{
    char buf[64];
    ck_assert_int_eq(vmpressure_format_control(buf, sizeof(buf), 5, 6, HAKMEM_LEVEL_LOW,
                                               VMPRESSURE_MODE_DEFAULT), 7);
    ck_assert_str_eq(buf, "5 6 low");
    vmpressure_format_control(buf, sizeof(buf), 12, 3, HAKMEM_LEVEL_MEDIUM,
                              VMPRESSURE_MODE_HIERARCHY);
    ck_assert_str_eq(buf, "12 3 medium,hierarchy");
    vmpressure_format_control(buf, sizeof(buf), 7, 8, HAKMEM_LEVEL_CRITICAL,
                              VMPRESSURE_MODE_LOCAL);
    ck_assert_str_eq(buf, "7 8 critical,local");
    ck_assert_int_eq(vmpressure_format_control(buf, sizeof(buf), 7, 8, HAKMEM_LEVEL_NONE,
                                               VMPRESSURE_MODE_LOCAL), -EINVAL);
    ck_assert_int_eq(vmpressure_format_control(buf, sizeof(buf), 7, 8, HAKMEM_LEVEL_LOW,
                                               (enum vmpressure_mode)3), -EINVAL);
    ck_assert_int_eq(vmpressure_format_control(buf, 5, 7, 8, HAKMEM_LEVEL_LOW,
                                               VMPRESSURE_MODE_DEFAULT), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_vmpressure_fake_tree)
{
    struct vmpressure_source s;
    char reason[256] = "";
    tmp_make();
    put("memory/a/memory.pressure_level", "");
    put("memory/a/cgroup.event_control", "");

    ck_assert_int_eq(vmpressure_source_open(&s, at("memory/a"), VMPRESSURE_MODE_HIERARCHY, S,
                                            mins, 0, reason, sizeof(reason)), 0);
    ck_assert_int_ge(vmpressure_source_fd(&s), 0);
    /* three registrations, one per level, each "<eventfd> <level fd> level,mode" */
    char text[256];
    ck_assert_int_gt(cgroup_read_file(at("memory/a/cgroup.event_control"), text, sizeof(text)),
                     0);
    int e1, e2, e3, p1, p2, p3;
    char l1[32], l2[32], l3[32];
    ck_assert_int_eq(sscanf(text, "%d %d %31s\n%d %d %31s\n%d %d %31s", &e1, &p1, l1, &e2, &p2,
                            l2, &e3, &p3, l3), 9);
    ck_assert_str_eq(l1, "low,hierarchy");
    ck_assert_str_eq(l2, "medium,hierarchy");
    ck_assert_str_eq(l3, "critical,hierarchy");
    ck_assert_int_eq(e1, s.efd[HAKMEM_LEVEL_LOW]);
    ck_assert_int_eq(e3, s.efd[HAKMEM_LEVEL_CRITICAL]);
    ck_assert_int_eq(p1, p2);

    /* nothing pending; then what the kernel would signal: 3 criticals
     * reach every listener, a few lows only the low one */
    ck_assert_int_eq(vmpressure_source_consume(&s, 10 * MS), 0);
    uint64_t n = 3;
    ck_assert_int_eq(write(s.efd[HAKMEM_LEVEL_LOW], &n, 8), 8);
    ck_assert_int_eq(write(s.efd[HAKMEM_LEVEL_MEDIUM], &n, 8), 8);
    ck_assert_int_eq(write(s.efd[HAKMEM_LEVEL_CRITICAL], &n, 8), 8);
    struct epoll_event ev;
    ck_assert_int_eq(epoll_wait(vmpressure_source_fd(&s), &ev, 1, 0), 1);
    ck_assert_int_eq(vmpressure_source_consume(&s, 20 * MS), 9);
    ck_assert_int_eq(epoll_wait(vmpressure_source_fd(&s), &ev, 1, 0), 0);
    ck_assert_int_eq(vmpressure_source_level(&s, 20 * MS), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(vmpressure_source_level(&s, 5 * S), HAKMEM_LEVEL_NONE);
    vmpressure_source_close(&s);
    ck_assert_int_eq(s.epfd, -1);

    /* not a v1 memcg: a reason, nothing left open */
    mkdirs("memory/b");
    ck_assert_int_eq(vmpressure_source_open(&s, at("memory/b"), VMPRESSURE_MODE_DEFAULT, S,
                                            mins, 0, reason, sizeof(reason)), -ENOENT);
    ck_assert_msg(strstr(reason, "memory.pressure_level"), "%s", reason);
    ck_assert_int_eq(s.epfd, -1);
    ck_assert_int_eq(s.efd[HAKMEM_LEVEL_LOW], -1);
    tmp_remove();
}
END_TEST

START_TEST(test_real_vmpressure_on_own_memcg)
{
    /* registers listeners on this process's own v1 memcg (no other cgroup
     * is touched; closing the eventfds removes them) */
    struct cgroup_memcg m;
    struct vmpressure_source s;
    char reason[256] = "";
    int r = cgroup_memcg_of_pid(CGROUP_DEFAULT_PROC, CGROUP_DEFAULT_ROOT, NULL, getpid(), &m);
    if (r < 0 || m.version != CGROUP_VERSION_1) {
        fprintf(stderr, "SKIP real memory.pressure_level: no v1 memcg (%s)\n",
                r < 0 ? strerror(-r) : "cgroup v2");
        return;
    }
    r = vmpressure_source_open(&s, m.dir, VMPRESSURE_MODE_HIERARCHY, S, mins, 0, reason,
                               sizeof(reason));
    if (r < 0) {
        fprintf(stderr, "SKIP real memory.pressure_level: %s\n", reason);
        return;
    }
    ck_assert_int_ge(vmpressure_source_consume(&s, MS), 0);
    vmpressure_source_close(&s);
}
END_TEST

static Suite *daemon_sources_suite(void)
{
    Suite *s = suite_create("daemon_sources");
    TCase *cg = tcase_create("cgroup_util");
    tcase_add_test(cg, test_parse_proc_cgroup);
    tcase_add_test(cg, test_memcg_dir_layouts);
    tcase_add_test(cg, test_memcg_of_pid_fake_trees);
    tcase_add_test(cg, test_cgroup_namespace);
    tcase_add_test(cg, test_real_own_memcg);
    tcase_add_test(cg, test_parse_limit_and_stat);
    tcase_add_test(cg, test_read_mem_v1_v2);
    tcase_add_test(cg, test_read_file_limits);
    suite_add_tcase(s, cg);

    TCase *us = tcase_create("usage");
    tcase_add_test(us, test_usage_arithmetic);
    tcase_add_test(us, test_usage_growth_projection_and_schedule);
    tcase_add_test(us, test_usage_source_set);
    tcase_add_test(us, test_usage_ancestors);
    suite_add_tcase(s, us);

    TCase *psi = tcase_create("psi");
    tcase_add_test(psi, test_memevents_parse_and_rose);
    tcase_add_test(psi, test_memevents_fake_file);
    tcase_add_test(psi, test_real_memevents_own_cgroup);
    tcase_add_test(psi, test_psi_parse);
    tcase_add_test(psi, test_psi_files_and_paths);
    tcase_add_test(psi, test_psi_trigger_format_and_revents);
    tcase_add_test(psi, test_real_psi_trigger);
    tcase_add_test(psi, test_debounce_counts_per_level_per_window);
    tcase_add_test(psi, test_vmpressure_format);
    tcase_add_test(psi, test_vmpressure_fake_tree);
    tcase_add_test(psi, test_real_vmpressure_on_own_memcg);
    suite_add_tcase(s, psi);
    return s;
}

TEST_MAIN(daemon_sources_suite)
