/* e2e.c: see e2e.h. */
#define _GNU_SOURCE
#include "e2e.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "msg.h"

const char *e2e_daemon_path;
const char *e2e_shim_path;
const char *e2e_client_path;

unsigned long e2e_daemon_nofile;

static char g_dir[128];
static const char *g_name = "e2e";
static double g_t0;
static int g_failures;
static pid_t g_owner;                   /* only the test process cleans up */
#define MAX_TRACKED 256
static volatile pid_t g_pids[MAX_TRACKED];
static int g_ndaemons;

/* ---- time, output ---- */

double e2e_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double e2e_elapsed(void)
{
    return e2e_now() - g_t0;
}

void e2e_sleep_ms(unsigned ms)
{
    struct timespec d = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
}

static void vout(const char *tag, const char *fmt, va_list ap)
{
    char buf[2048];
    int n = snprintf(buf, sizeof(buf), "[%7.3f] %s", e2e_elapsed(), tag);
    if (n < 0)
        return;
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(buf) - 2)
        len = sizeof(buf) - 2;
    buf[len++] = '\n';
    fwrite(buf, 1, len, stdout);
    fflush(stdout);
}

void e2e_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vout("", fmt, ap);
    va_end(ap);
}

void e2e_check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    g_failures++;
    e2e_log("FAIL %s:%d: %s (%s)", file, line, msg, cond);
}

int e2e_failures(void)
{
    return g_failures;
}

/* ---- cleanup ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void cleanup(void)
{
    if (getpid() != g_owner)
        return;
    for (int i = 0; i < MAX_TRACKED; i++) {
        pid_t p = g_pids[i];
        if (p > 0) {
            kill(p, SIGCONT);           /* a stopped daemon must die too */
            kill(p, SIGKILL);
        }
    }
    for (int i = 0; i < MAX_TRACKED; i++) {
        pid_t p = g_pids[i];
        if (p > 0) {
            waitpid(p, NULL, 0);
            g_pids[i] = 0;
        }
    }
    if (g_dir[0] && !getenv("E2E_KEEP")) {
        nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        g_dir[0] = '\0';
    }
}

/* Directories of earlier runs that were SIGKILLed (their owner is gone):
 * their processes died with them (PR_SET_PDEATHSIG), the files did not. */
static void reap_stale_dirs(void)
{
    DIR *d = opendir("/tmp");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "hke2e.", 6) != 0)
            continue;
        char path[300], buf[32];
        struct stat st;
        snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
        if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
            continue;
        snprintf(path, sizeof(path), "/tmp/%s/owner.pid", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        pid_t p = (pid_t)atoi(buf);
        if (p > 0 && kill(p, 0) != 0 && errno == ESRCH) {
            snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
            nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        }
    }
    closedir(d);
}

static void on_fatal_signal(int sig)
{
    if (getpid() != g_owner)
        _exit(128 + sig);
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "[%7.3f] FAIL %s: %s (timeout or interrupted); cleaning up\n",
                     e2e_elapsed(), g_name, strsignal(sig));
    if (n > 0) {
        ssize_t w = write(STDOUT_FILENO, msg, (size_t)n);
        (void)w;
    }
    cleanup();                          /* not async-signal-safe throughout; good enough here */
    _exit(1);
}

_Noreturn void e2e_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vout("FAIL ", fmt, ap);
    va_end(ap);
    exit(1);
}

_Noreturn void e2e_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vout("SKIP ", fmt, ap);
    va_end(ap);
    exit(E2E_SKIP);
}

_Noreturn void e2e_done(void)
{
    if (g_failures) {
        e2e_log("%s: %d check(s) failed (%.1f s)", g_name, g_failures, e2e_elapsed());
        exit(1);
    }
    e2e_log("%s: all checks passed (%.1f s)", g_name, e2e_elapsed());
    exit(0);
}

void e2e_track(pid_t pid)
{
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (g_pids[i] == 0) {
            g_pids[i] = pid;
            return;
        }
    }
    e2e_fail("too many child processes");
}

void e2e_untrack(pid_t pid)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (g_pids[i] == pid)
            g_pids[i] = 0;
}

pid_t e2e_fork(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t p = fork();
    if (p < 0)
        e2e_fail("fork: %s", strerror(errno));
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        alarm(0);
        return 0;
    }
    e2e_track(p);
    return p;
}

int e2e_wait(pid_t pid, unsigned timeout_ms)
{
    double end = e2e_now() + timeout_ms / 1000.0;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            e2e_untrack(pid);
            return st;
        }
        if (r < 0 && errno == ECHILD) {
            e2e_untrack(pid);
            return 0;
        }
        if (e2e_now() >= end)
            return -1;
        e2e_sleep_ms(5);
    }
}

unsigned long e2e_raise_nofile(unsigned long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (unsigned long)rl.rlim_cur;
}

bool e2e_is_root(void)
{
    return geteuid() == 0;
}

const char *e2e_dir(void)
{
    return g_dir;
}

static const char *abspath(const char *p)
{
    if (!p || p[0] == '/')
        return p;
    char *r = realpath(p, NULL);
    return r ? r : p;
}

void e2e_init(int argc, char **argv, const char *name, unsigned watchdog_s)
{
    static const struct option opts[] = {
        { "daemon", required_argument, NULL, 'd' },
        { "shim", required_argument, NULL, 's' },
        { "client", required_argument, NULL, 'c' },
        { 0 },
    };
    int c;
    g_name = name;
    g_t0 = e2e_now();
    g_owner = getpid();
    setvbuf(stdout, NULL, _IOLBF, 0);
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': e2e_daemon_path = abspath(optarg); break;
        case 's': e2e_shim_path = abspath(optarg); break;
        case 'c': e2e_client_path = abspath(optarg); break;
        default:
            fprintf(stderr, "usage: %s --daemon HAKMEMD [--shim LIBHAKMEM --client E2E_SHIMCLIENT]\n",
                    argv[0]);
            exit(2);
        }
    }
    if (!e2e_daemon_path || access(e2e_daemon_path, X_OK) != 0)
        e2e_skip("hakmemd not built or not given (--daemon)");

    reap_stale_dirs();
    snprintf(g_dir, sizeof(g_dir), "/tmp/hke2e.XXXXXX");
    if (!mkdtemp(g_dir)) {
        g_dir[0] = '\0';
        e2e_fail("mkdtemp: %s", strerror(errno));
    }
    /* other uids (test 3 runs some clients as another user) must reach
     * the sockets: the directory is traversable, not listable */
    chmod(g_dir, 0711);
    char owner[160];
    snprintf(owner, sizeof(owner), "%s/owner.pid", g_dir);
    FILE *of = fopen(owner, "w");
    if (of) {
        fprintf(of, "%d\n", (int)getpid());
        fclose(of);
    }
    atexit(cleanup);
    struct sigaction sa = { .sa_handler = on_fatal_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (watchdog_s)
        alarm(watchdog_s);
    e2e_log("%s: directory %s, uid %d", name, g_dir, (int)geteuid());
}

/* ---- hakmemd ---- */

static void read_file_tail(const char *path, int last_lines)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *lines[400] = { 0 };
    int n = 0;
    char buf[1024];
    while (fgets(buf, sizeof(buf), f)) {
        free(lines[n % 400]);
        lines[n % 400] = strdup(buf);
        n++;
    }
    fclose(f);
    int from = n > last_lines ? n - last_lines : 0;
    if (n - from > 400)
        from = n - 400;
    for (int i = from; i < n; i++)
        printf("    | %s", lines[i % 400]);
    for (int i = 0; i < 400; i++)
        free(lines[i]);
    fflush(stdout);
}

void e2e_log_dump(const struct e2e_daemon *d, int last_lines)
{
    e2e_log("last lines of %s:", d->log);
    read_file_tail(d->log, last_lines);
}

/* Lines containing s; with msgs, a summary of the rate limit counts for
 * the messages it stands for. */
static int log_count(const struct e2e_daemon *d, const char *s, bool msgs)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return 0;
    int n = 0;
    char buf[2048];
    while (fgets(buf, sizeof(buf), f)) {
        if (!strstr(buf, s))
            continue;
        unsigned k;
        const char *p = strchr(buf, '>');
        if (msgs && p && sscanf(p + 1, "%u similar message", &k) == 1 && strstr(buf, " suppressed in "))
            n += (int)k;
        else
            n++;
    }
    fclose(f);
    return n;
}

int e2e_log_count(const struct e2e_daemon *d, const char *s)
{
    return log_count(d, s, false);
}

int e2e_log_count_msgs(const struct e2e_daemon *d, const char *s)
{
    return log_count(d, s, true);
}

int e2e_daemon_start(struct e2e_daemon *d, const char *rtdir, const char *const *args)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->rtdir, sizeof(d->rtdir), "%s", rtdir);
    snprintf(d->log, sizeof(d->log), "%s/hakmemd.%d.log", g_dir, ++g_ndaemons);
    const char *argv[80];
    int n = 0;
    argv[n++] = e2e_daemon_path;
    argv[n++] = "--runtime-dir";
    argv[n++] = rtdir;
    for (int i = 0; args && args[i] && n < 78; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char cmd[512] = "";
    for (int i = 0; i < n; i++) {
        strncat(cmd, argv[i], sizeof(cmd) - strlen(cmd) - 2);
        strcat(cmd, " ");
    }
    int logfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0)
        e2e_fail("open %s: %s", d->log, strerror(errno));
    pid_t p = e2e_fork();
    if (p == 0) {
        dup2(logfd, STDERR_FILENO);
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, STDIN_FILENO);
            dup2(nul, STDOUT_FILENO);
        }
        unsetenv("NOTIFY_SOCKET");
        close_range(3, ~0u, 0);         /* nothing of ours (or our parent's) leaks in */
        if (e2e_daemon_nofile) {
            struct rlimit rl = { e2e_daemon_nofile, e2e_daemon_nofile };
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(logfd);
    d->pid = p;
    e2e_log("started hakmemd pid %d: %s", (int)p, cmd);
    double end = e2e_now() + 10;
    while (e2e_now() < end) {
        int st;
        if (waitpid(p, &st, WNOHANG) == p) {
            e2e_untrack(p);
            e2e_log("hakmemd %d exited at start (status 0x%x)", (int)p, st);
            e2e_log_dump(d, 20);
            d->pid = 0;
            return -1;
        }
        struct hakmem_ctl_req q;
        proto_ctl_req_init(&q, HAKMEM_CTL_STATUS);
        char text[4096];
        if (e2e_ctl(rtdir, &q, 1000, NULL, NULL, text, sizeof(text), NULL) == 0 &&
            strstr(text, "pid ")) {
            char want[32];
            snprintf(want, sizeof(want), "pid %d\n", (int)p);
            if (strstr(text, want))
                return 0;
        }
        e2e_sleep_ms(20);
    }
    e2e_log("hakmemd %d did not answer on %s/control.sock within 10 s", (int)p, rtdir);
    e2e_log_dump(d, 20);
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    e2e_untrack(p);
    d->pid = 0;
    return -1;
}

void e2e_daemon_start_or_fail(struct e2e_daemon *d, const char *rtdir, const char *const *args)
{
    if (e2e_daemon_start(d, rtdir, args) < 0)
        e2e_fail("hakmemd did not start");
}

bool e2e_daemon_alive(struct e2e_daemon *d)
{
    if (d->pid <= 0)
        return false;
    int st;
    pid_t r = waitpid(d->pid, &st, WNOHANG);
    if (r == d->pid) {
        e2e_untrack(d->pid);
        e2e_log("hakmemd %d is gone: %s %d", (int)d->pid,
                WIFSIGNALED(st) ? "killed by signal" : "exit status",
                WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        d->pid = 0;
        return false;
    }
    return true;
}

int e2e_daemon_stop(struct e2e_daemon *d, int sig, unsigned timeout_ms)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    int st = e2e_wait(d->pid, timeout_ms);
    if (st != -1)
        d->pid = 0;
    return st;
}

int e2e_daemon_nfds(const struct e2e_daemon *d)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)d->pid);
    DIR *dir = opendir(path);
    if (!dir)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

int e2e_daemon_nfds_settled(const struct e2e_daemon *d)
{
    int last = e2e_daemon_nfds(d), same = 0;
    for (int i = 0; i < 200 && same < 5; i++) {
        e2e_sleep_ms(10);
        int n = e2e_daemon_nfds(d);
        same = n == last ? same + 1 : 0;
        last = n;
    }
    return last;
}

void e2e_daemon_list_fds(const struct e2e_daemon *d)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)d->pid);
    DIR *dir = opendir(path);
    if (!dir)
        return;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char p[340], t[256];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        ssize_t n = readlink(p, t, sizeof(t) - 1);
        t[n < 0 ? 0 : n] = '\0';
        e2e_log("    hakmemd fd %s -> %s", e->d_name, t);
    }
    closedir(dir);
}

double e2e_daemon_cpu(const struct e2e_daemon *d)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)d->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* fields after ')': 3 state ... 14 utime 15 stime */
    unsigned long ut = 0, stime = 0;
    int field = 2;
    for (char *t = strtok(p + 1, " "); t; t = strtok(NULL, " ")) {
        field++;
        if (field == 14)
            ut = strtoul(t, NULL, 10);
        if (field == 15) {
            stime = strtoul(t, NULL, 10);
            break;
        }
    }
    return (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- control socket ---- */

static int connect_to(const char *rtdir, const char *name, int flags)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if ((size_t)snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", rtdir, name) >= sizeof(a.sun_path))
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | flags, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int e2e_ctl(const char *rtdir, const struct hakmem_ctl_req *q, unsigned timeout_ms,
            struct hakmem_ctl_client **clients, size_t *nclients,
            char *text, size_t textlen, size_t *ndgrams)
{
    size_t tlen = 0;
    if (text && textlen)
        text[0] = '\0';
    if (ndgrams)
        *ndgrams = 0;
    if (clients) {
        *clients = NULL;
        *nclients = 0;
    }
    int fd = connect_to(rtdir, "control.sock", 0);
    if (fd < 0)
        return fd;
    if (send(fd, q, sizeof(*q), MSG_NOSIGNAL) != (ssize_t)sizeof(*q)) {
        int e = -errno;
        close(fd);
        return e;
    }
    double end = e2e_now() + timeout_ms / 1000.0;
    int rc = -EPIPE;
    static unsigned char buf[HAKMEM_MSG_MAX + 1];
    for (;;) {
        int left = (int)((end - e2e_now()) * 1000);
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        struct pollfd p = { fd, POLLIN, 0 };
        int pr = poll(&p, 1, left);
        if (pr <= 0) {
            rc = pr == 0 ? -ETIMEDOUT : -errno;
            break;
        }
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EAGAIN)
            continue;
        if (n <= 0) {
            rc = n == 0 ? -EPIPE : -errno;  /* ended without a final datagram */
            break;
        }
        if (ndgrams)
            (*ndgrams)++;
        struct hakmem_ctl_resp h;
        const unsigned char *pl;
        int c = proto_ctl_resp_check(buf, (size_t)n, &h, &pl);
        if (c < 0) {
            rc = -EBADMSG;
            break;
        }
        if (h.payload_type == HAKMEM_CTL_PAYLOAD_CLIENTS && clients) {
            size_t k = h.payload_len / sizeof(struct hakmem_ctl_client);
            struct hakmem_ctl_client *nc = realloc(*clients, (*nclients + k) * sizeof(*nc));
            if (!nc)
                e2e_fail("out of memory");
            memcpy(nc + *nclients, pl, k * sizeof(*nc));
            *clients = nc;
            *nclients += k;
        }
        if (h.payload_type == HAKMEM_CTL_PAYLOAD_TEXT && text && tlen + h.payload_len < textlen) {
            memcpy(text + tlen, pl, h.payload_len);
            tlen += h.payload_len;
            text[tlen] = '\0';
        }
        if (!(h.flags & HAKMEM_CTL_F_MORE)) {
            rc = h.status;
            break;
        }
    }
    close(fd);
    return rc;
}

int e2e_ctl_clients(const char *rtdir, struct hakmem_ctl_client **out, size_t *n)
{
    struct hakmem_ctl_req q;
    proto_ctl_req_init(&q, HAKMEM_CTL_CLIENTS);
    return e2e_ctl(rtdir, &q, 5000, out, n, NULL, 0, NULL);
}

long e2e_ctl_status_clients(const char *rtdir)
{
    struct hakmem_ctl_req q;
    proto_ctl_req_init(&q, HAKMEM_CTL_STATUS);
    static char text[1 << 16];
    if (e2e_ctl(rtdir, &q, 5000, NULL, NULL, text, sizeof(text), NULL) != 0)
        return -1;
    const char *p = strstr(text, "\nclients ");
    return p ? strtol(p + 9, NULL, 10) : -1;
}

int e2e_ctl_lean(const char *rtdir, uint32_t target, uint64_t key, uint32_t mode, uint32_t level)
{
    struct hakmem_ctl_req q;
    proto_ctl_req_init(&q, HAKMEM_CTL_LEAN);
    q.target = target;
    q.key = key;
    q.mode = mode;
    q.level = level;
    return e2e_ctl(rtdir, &q, 5000, NULL, NULL, NULL, 0, NULL);
}

bool e2e_find_client(const char *rtdir, pid_t pid, struct hakmem_ctl_client *out)
{
    struct hakmem_ctl_client *cl;
    size_t n;
    bool found = false;
    if (e2e_ctl_clients(rtdir, &cl, &n) != 0) {
        free(cl);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (cl[i].pid == (uint32_t)pid) {
            if (out)
                *out = cl[i];
            found = true;
            break;
        }
    }
    free(cl);
    return found;
}

/* ---- raw rendezvous client ---- */

int e2e_connect(const char *rtdir)
{
    return connect_to(rtdir, "hakmemd.sock", 0);
}

int e2e_stats_memfd(size_t size, unsigned seals)
{
    int fd = memfd_create("e2e-stats", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (size >= sizeof(struct hakmem_stats_page)) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            proto_stats_init(p, size, (uint32_t)getpid());
            munmap(p, size);
        }
    }
    if (seals && fcntl(fd, F_ADD_SEALS, seals) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

void e2e_hello(struct hakmem_hello *h, bool with_stats, uint32_t stats_size)
{
    proto_hello_init(h, (uint32_t)getpid(), with_stats ? HAKMEM_HELLO_F_STATS : 0,
                     with_stats ? stats_size : 0, HAKMEM_MODE_FAST, "e2e-raw");
}

ssize_t e2e_send(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 64)];
    } cm;
    struct iovec iov = { (void *)buf, len };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > 0) {
        if (nfds > 64)
            return -EINVAL;
        memset(&cm, 0, sizeof(cm));
        m.msg_control = cm.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *ch = CMSG_FIRSTHDR(&m);
        ch->cmsg_level = SOL_SOCKET;
        ch->cmsg_type = SCM_RIGHTS;
        ch->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(ch), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL);
    return n < 0 ? -errno : n;
}

const char *e2e_reply_name(int r)
{
    switch (r) {
    case E2E_WELCOME: return "welcome";
    case E2E_REFUSED: return "refused";
    case E2E_EOF: return "closed";
    case E2E_TIMEOUT: return "no answer";
    case E2E_BADREPLY: return "bad reply";
    }
    return "?";
}

int e2e_recv_reply(int sock, unsigned timeout_ms, struct hakmem_welcome *w, int *ring_fd)
{
    if (ring_fd)
        *ring_fd = -1;
    memset(w, 0, sizeof(*w));
    struct pollfd p = { sock, POLLIN, 0 };
    int pr = poll(&p, 1, (int)timeout_ms);
    if (pr == 0)
        return E2E_TIMEOUT;
    if (pr < 0)
        return E2E_BADREPLY;
    unsigned char buf[HAKMEM_MSG_MAX];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 8)];
    } cm;
    struct iovec iov = { buf, sizeof(buf) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
    ssize_t n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == ECONNRESET) {
        /* The daemon closed its end with our hello unread (a refusal at
         * accept): the kernel reports ECONNRESET once, before the
         * datagrams still queued for us. Read on. */
        m.msg_controllen = sizeof(cm.buf);
        n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EAGAIN)
            return E2E_EOF;
    }
    if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
        return E2E_EOF;
    if (n < 0)
        return E2E_BADREPLY;
    int nfd = 0, fd = -1;
    for (struct cmsghdr *ch = CMSG_FIRSTHDR(&m); ch; ch = CMSG_NXTHDR(&m, ch)) {
        if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int f;
            memcpy(&f, CMSG_DATA(ch) + i * sizeof(int), sizeof(int));
            if (fd < 0)
                fd = f;
            else
                close(f);
            nfd++;
        }
    }
    int rc = proto_welcome_check(buf, (size_t)n, w);
    int r;
    if (rc < 0 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || nfd > 1)
        r = E2E_BADREPLY;
    else if (w->status == 0)
        r = fd >= 0 ? E2E_WELCOME : E2E_BADREPLY;
    else
        r = fd < 0 ? E2E_REFUSED : E2E_BADREPLY;
    if (ring_fd && r == E2E_WELCOME)
        *ring_fd = fd;
    else if (fd >= 0)
        close(fd);
    return r;
}

bool e2e_wait_eof(int sock, unsigned timeout_ms)
{
    double end = e2e_now() + timeout_ms / 1000.0;
    for (;;) {
        int left = (int)((end - e2e_now()) * 1000);
        if (left < 0)
            left = 0;
        struct pollfd p = { sock, POLLIN, 0 };
        int pr = poll(&p, 1, left);
        if (pr == 0)
            return false;
        if (pr < 0 && errno != EINTR)
            return true;
        char b[HAKMEM_MSG_MAX];
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int) * 8)];
        } cm;
        struct iovec iov = { b, sizeof(b) };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
        ssize_t n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return true;
        for (struct cmsghdr *ch = CMSG_FIRSTHDR(&m); ch; ch = CMSG_NXTHDR(&m, ch)) {
            if (ch->cmsg_level == SOL_SOCKET && ch->cmsg_type == SCM_RIGHTS) {
                size_t k = (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                    int f;
                    memcpy(&f, CMSG_DATA(ch) + i * sizeof(int), sizeof(int));
                    close(f);
                }
            }
        }
    }
}

int e2e_register_fd(const char *rtdir, int stats_fd, unsigned timeout_ms,
                    struct hakmem_welcome *w, int *result)
{
    int s = e2e_connect(rtdir);
    if (s < 0) {
        if (result)
            *result = E2E_EOF;
        return -1;
    }
    struct hakmem_hello h;
    uint64_t size = 0;
    if (stats_fd >= 0) {
        struct stat st;
        fstat(stats_fd, &st);
        size = (uint64_t)st.st_size;
    }
    e2e_hello(&h, stats_fd >= 0, (uint32_t)size);
    e2e_send(s, &h, sizeof(h), stats_fd >= 0 ? &stats_fd : NULL, stats_fd >= 0);
    int ring_fd;
    int r = e2e_recv_reply(s, timeout_ms, w, &ring_fd);
    if (result)
        *result = r;
    if (r != E2E_WELCOME) {
        close(s);
        return -1;
    }
    close(ring_fd);
    return s;
}

int e2e_register(const char *rtdir, unsigned timeout_ms, struct hakmem_welcome *w, int *result)
{
    int fd = e2e_stats_memfd(4096, F_SEAL_SHRINK | F_SEAL_GROW);
    if (fd < 0)
        e2e_fail("stats memfd: %s", strerror(-fd));
    int s = e2e_register_fd(rtdir, fd, timeout_ms, w, result);
    close(fd);
    return s;
}

/* ---- real shim clients ---- */

void e2e_shim_start(struct e2e_shim *s, const char *rtdir, const char *const *env)
{
    static int seq;
    if (!e2e_shim_path || !e2e_client_path)
        e2e_fail("--shim and --client are needed");
    memset(s, 0, sizeof(*s));
    snprintf(s->status, sizeof(s->status), "%s/shim.%d.status", g_dir, ++seq);
    pid_t p = e2e_fork();
    if (p == 0) {
        setenv("LD_PRELOAD", e2e_shim_path, 1);
        setenv("HAKMEM_RUNTIME_DIR", rtdir, 1);
        unsetenv("HAKMEM_DAEMON_TIMEOUT_MS");
        unsetenv("HAKMEM_SS_MEM_LEAN");
        unsetenv("HAKMEM_DAEMON");
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0)
            dup2(nul, STDIN_FILENO);
        execl(e2e_client_path, "e2e_shimclient", s->status, (char *)NULL);
        _exit(127);
    }
    s->pid = p;
    /* it reports once the shim is loaded */
    double end = e2e_now() + 5;
    int mode, level;
    while (!e2e_shim_state(s, &mode, &level)) {
        if (!e2e_shim_alive(s))
            e2e_fail("shim client %d exited at start", (int)p);
        if (e2e_now() > end)
            e2e_fail("shim client %d wrote no status within 5 s", (int)p);
        e2e_sleep_ms(10);
    }
}

bool e2e_shim_state(const struct e2e_shim *s, int *mode, int *level)
{
    char buf[64];
    int fd = open(s->status, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return sscanf(buf, "mode %d level %d", mode, level) == 2;
}

double e2e_shim_wait_mode(const struct e2e_shim *s, int mode, unsigned timeout_ms)
{
    double t0 = e2e_now(), end = t0 + timeout_ms / 1000.0;
    for (;;) {
        int m, l;
        if (e2e_shim_state(s, &m, &l) && m == mode)
            return e2e_now() - t0;
        if (e2e_now() > end)
            return -1;
        e2e_sleep_ms(5);
    }
}

bool e2e_shim_alive(const struct e2e_shim *s)
{
    if (s->pid <= 0)
        return false;
    int st;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == s->pid || (r < 0 && errno == ECHILD)) {
        e2e_untrack(s->pid);
        return false;
    }
    return true;
}

void e2e_shim_stop(struct e2e_shim *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    if (e2e_wait(s->pid, 2000) == -1) {
        kill(s->pid, SIGKILL);
        e2e_wait(s->pid, 2000);
    }
    s->pid = 0;
}
