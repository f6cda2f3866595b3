/* hakmemd.c: main. Arguments and configuration, requirement checks (the
 * runtime dir is root's and nobody else may write it; the soft
 * RLIMIT_NOFILE raised to the hard one), then the event loop (manager.c)
 * inside the sandbox (sandbox.c). Runs in the foreground and logs on
 * stderr (journal-friendly); systemd's Type=notify gets READY=1 once the
 * sockets accept clients. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "log.h"
#include "manager.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: hakmemd [OPTION]...\n"
"Watch memory pressure per cgroup (eBPF reclaim tracepoints, PSI or\n"
"memory.pressure_level, usage against limit) and tell every hakmem shim\n"
"which level applies to it, over a shared-memory ring.\n"
"\n"
"  -c, --config FILE      configuration file (default %s;\n"
"                         a missing default file means the defaults)\n"
"  -r, --runtime-dir DIR  where hakmemd.sock and control.sock live\n"
"                         (default /run/hakmem; shims: HAKMEM_RUNTIME_DIR)\n"
"  -s, --sources LIST     pressure sources: bpf,psi,usage,events or none\n"
"      --set KEY=VALUE    set any configuration key (repeatable)\n"
"  -v, --verbose          log debug messages\n"
"      --no-sandbox       keep capabilities and all system calls\n"
"      --check-sandbox    enter the sandbox, try a forbidden system call,\n"
"                         report whether it was refused, and exit\n"
"      --print-config     print the effective configuration and exit\n"
"  -h, --help             this text, then every configuration key\n"
"  -V, --version          the version\n"
"\n"
"Signals: SIGTERM/SIGINT stop, SIGHUP reloads the configuration file and\n"
"applies every key but runtime_dir, cgroup_root, sources and metrics_group,\n"
"which need a restart (a bad file, or one that changes those, keeps the\n"
"running configuration; --set values win over the file, as at start).\n"
"Exit status: 0 stopped cleanly, 1 runtime error, 2 bad arguments or\n"
"configuration.\n"
"\n"
"Configuration keys (file: `key = value`, one per line):\n\n",
            CONFIG_DEFAULT_PATH);
    config_print(f, NULL);
}

/* The runtime dir holds the sockets every shim trusts: it must be a real
 * directory of ours (root's) that nobody else may write, or another user
 * could replace the sockets. 0, or -EPERM with the reason in why. */
static int runtime_dir_check(const char *dir, char *why, size_t len)
{
    struct stat st;
    if (lstat(dir, &st) != 0) {
        snprintf(why, len, "runtime dir %s: %s", dir, strerror(errno));
        return -errno;
    }
    if (S_ISLNK(st.st_mode)) {
        snprintf(why, len, "runtime dir %s is a symlink: refusing to start (use the real "
                 "directory)", dir);
        return -EPERM;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, len, "runtime dir %s is not a directory", dir);
        return -ENOTDIR;
    }
    if (st.st_uid != geteuid()) {
        snprintf(why, len, "runtime dir %s is owned by uid %u, not by hakmemd's (%u): refusing "
                 "to start (chown %u %s)", dir, (unsigned)st.st_uid, (unsigned)geteuid(),
                 (unsigned)geteuid(), dir);
        return -EPERM;
    }
    if (st.st_mode & 022) {
        snprintf(why, len, "runtime dir %s is writable by others (mode %04o): refusing to start "
                 "(chmod go-w %s)", dir, (unsigned)(st.st_mode & 07777), dir);
        return -EPERM;
    }
    return 0;
}

static int mkdir_p(const char *dir)
{
    char buf[CONFIG_STR_MAX];
    snprintf(buf, sizeof(buf), "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -errno : 0;
}

/* The sandbox's self-test: a forbidden call must fail with EPERM. */
static int check_sandbox(void)
{
    char why[256];
    if (sandbox_enter(why, sizeof(why)) < 0) {
        fprintf(stderr, "hakmemd: %s\n", why);
        return 1;
    }
    errno = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int e1 = errno;
    errno = 0;
    int rc = execl("/bin/true", "true", (char *)NULL);
    int e2 = errno;
    printf("socket(AF_INET): %s\nexecve(/bin/true): %s\n", fd < 0 ? strerror(e1) : "allowed",
           rc < 0 ? strerror(e2) : "allowed");
    return fd < 0 && e1 == EPERM && rc < 0 && e2 == EPERM ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "runtime-dir", required_argument, NULL, 'r' },
        { "sources", required_argument, NULL, 's' },
        { "set", required_argument, NULL, 'S' },
        { "verbose", no_argument, NULL, 'v' },
        { "no-sandbox", no_argument, NULL, 'N' },
        { "check-sandbox", no_argument, NULL, 'C' },
        { "print-config", no_argument, NULL, 'P' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { 0 },
    };
    static struct daemon d;
    const char *config = NULL;
    char *sets[64];
    int nsets = 0, c;
    bool sandbox = true, print = false;
    char err[1024];

    while ((c = getopt_long(argc, argv, "c:r:s:vhV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'r':
        case 's':
        case 'S':
            if (nsets == 64) {
                fprintf(stderr, "hakmemd: too many settings\n");
                return 2;
            }
            if (c == 'S') {
                sets[nsets++] = optarg;
            } else {
                size_t n = strlen(optarg) + 16;
                sets[nsets] = malloc(n);
                snprintf(sets[nsets++], n, "%s=%s", c == 'r' ? "runtime_dir" : "sources", optarg);
            }
            break;
        case 'v': sets[nsets++] = "log_level=debug"; break;
        case 'N': sandbox = false; break;
        case 'C': return check_sandbox();
        case 'P': print = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("hakmemd %s\n", HAKMEM_VERSION_STRING); return 0;
        default:
            fprintf(stderr, "Try 'hakmemd --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hakmemd: unexpected argument '%s'\nTry 'hakmemd --help'.\n", argv[optind]);
        return 2;
    }

    int rc = config_load(config, &d.cfg, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "hakmemd: %s\n", err);
        return 2;
    }
    for (int i = 0; i < nsets; i++) {
        if (config_set_arg(&d.cfg, sets[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "hakmemd: %s: %s\n", sets[i], err);
            return 2;
        }
    }
    if (config_check(&d.cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "hakmemd: %s\n", err);
        return 2;
    }
    if (print) {
        config_print(stdout, &d.cfg);
        return 0;
    }
    if (config)
        snprintf(d.config_path, sizeof(d.config_path), "%s", config);

    d.sets = sets;
    d.nsets = nsets;

    log_set_level(d.cfg.log_level);
    if ((rc = mkdir_p(d.cfg.runtime_dir)) < 0) {
        log_err("cannot create %s: %s", d.cfg.runtime_dir, strerror(-rc));
        return 1;
    }
    if (runtime_dir_check(d.cfg.runtime_dir, err, sizeof(err)) < 0) {
        log_err("%s", err);
        return 1;
    }
    if (geteuid() != 0)
        log_warning("not running as root: the bpf source and other processes' cgroups may be out of reach");
    unsigned long from, to;
    if ((rc = limits_raise_nofile(&from, &to)) < 0)
        log_warning("cannot raise RLIMIT_NOFILE to its hard limit: %s", strerror(-rc));
    else if (to != from)
        log_info("descriptors: soft RLIMIT_NOFILE raised from %lu to %lu (the hard limit)", from, to);
    struct group *g = getgrnam("hakmem");
    if (g) {
        d.hakmem_gid = g->gr_gid;
        d.have_hakmem_gid = true;
    }
    g = getgrnam(d.cfg.metrics_group);
    if (g) {
        d.metrics_gid = g->gr_gid;
        d.have_metrics_gid = true;
    } else {
        log_info("no group %s: metrics.sock is root's only", d.cfg.metrics_group);
    }
    if (getenv("NOTIFY_SOCKET"))
        d.notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    else
        d.notify_fd = -1;

    rc = manager_init(&d);
    if (rc == 0 && sandbox) {
        rc = sandbox_enter(err, sizeof(err));
        if (rc < 0)
            log_err("sandbox: %s", err);
        else
            log_info("sandbox: capabilities dropped, system call allowlist installed");
    }
    if (rc == 0)
        rc = manager_run(&d);
    manager_fini(&d);
    return rc == 0 ? 0 : 1;
}
