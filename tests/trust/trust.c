/* trust.c: scenarios of issue 8 ("a shim you can trust"), one per run,
 * for a program linked normally and run with the shim preloaded (the
 * misuse of blocks is tests/misuse's).
 * hakmem's own functions are found with dlsym, so that the program runs
 * on any malloc.
 *
 *   trust switch LEVEL     a worker caches blocks, a thread that never
 *                          allocated applies LEVEL, the worker goes on
 *   trust single LEVEL     one thread frees a lot, applies LEVEL, goes on
 *   trust fork-critical N  N forks while one thread applies CRITICAL in a
 *                          loop and two keep blocks cached (lock order)
 *   trust sleepers N       N threads cache blocks and sleep; CRITICAL must
 *                          take their caches back; they go on afterwards
 *   trust churn SECONDS SIZE [SOCKET]
 *                          malloc/free blocks of SIZE bytes for SECONDS,
 *                          content-checked; with SOCKET, first bind a unix
 *                          socket there (a hakmemd.sock that refuses, so
 *                          that the listener starts from a slow path)
 *   trust signals SECONDS  a timer's signal handler allocates while the
 *                          main thread churns and applies levels
 *   trust levels L...      grow and free, then apply each level, with a
 *                          marker system call kill(getpid(), 0) before
 *                          each (for strace), printing the counters
 *   trust setns-user|unshare-user [DIR [lean]]
 *                          setns() into a child's user namespace, or
 *                          unshare(CLONE_NEWUSER); with DIR, only once
 *                          DIR/go exists, allocating on until DIR/stop;
 *                          with lean, check that the background purge
 *                          gives memory back afterwards
 *
 * Exit 0 when the scenario ran to its end with every check passed, 1
 * with a message on a failed check.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "trust: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void *hk(const char *name)
{
    void *f = dlsym(RTLD_DEFAULT, name);
    if (!f)
        fail("%s not found: is the shim preloaded?", name);
    return f;
}

#define HAKMEM_LEVEL_NONE_FOR_TEST 0

static int apply_level(int level)
{
    static int (*fn)(int);
    if (!fn)
        fn = (int (*)(int))hk("hakmem_apply_pressure");
    return fn(level);
}

static uint64_t counter(const char *name)
{
    static int (*fn)(const char *, uint64_t *);
    if (!fn)
        fn = (int (*)(const char *, uint64_t *))hk("hakmem_counter");
    uint64_t v = 0;
    if (fn(name, &v) != 0)
        fail("no counter %s", name);
    return v;
}

static void fill(unsigned char *p, size_t n, unsigned tag)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(tag + i);
}

static void check(const unsigned char *p, size_t n, unsigned tag, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(tag + i))
            fail("%s: block %p byte %zu is %u, want %u", what, (void *)p, i, p[i],
                 (unsigned char)(tag + i));
}

/* n live blocks must be pairwise distinct and keep their contents. */
static void check_blocks(unsigned char **b, int n, size_t size, const char *what)
{
    for (int i = 0; i < n; i++) {
        check(b[i], size, (unsigned)i, what);
        for (int j = 0; j < i; j++)
            if (b[i] == b[j])
                fail("%s: blocks %d and %d are the same %p", what, i, j, (void *)b[i]);
    }
}

/* ---- switch: the first level change of a threaded process ---- */

enum { NB = 100 };
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage;
static int the_level;

static void wait_stage(int s)
{
    pthread_mutex_lock(&mu);
    while (stage < s)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void set_stage(int s)
{
    pthread_mutex_lock(&mu);
    stage = s;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void *worker(void *arg)
{
    unsigned char *b[NB];
    for (int i = 0; i < NB; i++) {
        b[i] = malloc(64);
        if (!b[i])
            fail("malloc(64) returned NULL");
        fill(b[i], 64, (unsigned)i);
    }
    for (int i = NB / 2; i < NB; i++)
        free(b[i]);                     /* these sit in the thread cache */
    set_stage(1);
    wait_stage(2);                      /* the level was applied */
    free(b[0]);                         /* the first slow path after it */
    for (int i = 1; i < NB / 2; i++)
        check(b[i], 64, (unsigned)i, "block kept across the switch");
    b[0] = malloc(64);
    fill(b[0], 64, 0);
    for (int i = NB / 2; i < NB; i++) {
        b[i] = malloc(64);
        if (!b[i])
            fail("malloc(64) returned NULL after the switch");
        fill(b[i], 64, (unsigned)i);
    }
    check_blocks(b, NB, 64, "after the switch");
    for (int i = 0; i < NB; i++)
        free(b[i]);
    return arg;
}

/* A thread that has never allocated, as the listener is. */
static void *applier(void *arg)
{
    if (apply_level(the_level) != 0)
        fail("hakmem_apply_pressure(%d): %s", the_level, strerror(errno));
    return arg;
}

static int run_switch(int level)
{
    pthread_t w, a;
    the_level = level;
    if (pthread_create(&w, NULL, worker, NULL))
        fail("pthread_create");
    wait_stage(1);
    if (pthread_create(&a, NULL, applier, NULL))
        fail("pthread_create");
    pthread_join(a, NULL);
    set_stage(2);
    pthread_join(w, NULL);
    printf("trust: switch to level %d: OK\n", level);
    return 0;
}

/* ---- sleepers: CRITICAL takes idle threads' caches back ---- */

static pthread_barrier_t sleep_bar;

static void *sleeper(void *arg)
{
    unsigned char *p[300];
    for (int i = 0; i < 300; i++) {
        p[i] = malloc(48 + (size_t)(i % 5) * 80);
        fill(p[i], 48, (unsigned)i);
    }
    for (int i = 0; i < 300; i++)
        free(p[i]);                     /* into this thread's cache */
    pthread_barrier_wait(&sleep_bar);   /* cached, and asleep */
    pthread_barrier_wait(&sleep_bar);   /* CRITICAL has happened */
    for (int i = 0; i < 300; i++) {
        p[i] = malloc(48 + (size_t)(i % 5) * 80);
        fill(p[i], 48, (unsigned)i);
    }
    check_blocks(p, 300, 48, "a sleeper after CRITICAL");
    for (int i = 0; i < 300; i++)
        free(p[i]);
    return arg;
}

static int run_sleepers(int nthreads)
{
    pthread_t t[64];
    if (nthreads < 1 || nthreads > 64)
        fail("1..64 threads");
    pthread_barrier_init(&sleep_bar, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, sleeper, NULL))
            fail("pthread_create");
    pthread_barrier_wait(&sleep_bar);
    uint64_t stolen = counter("tcache_stolen");
    if (apply_level(3) != 0)
        fail("hakmem_apply_pressure(3): %s", strerror(errno));
    uint64_t got = counter("tcache_stolen") - stolen;
    /* five classes of 60 blocks each, a bin keeps at least 16 of them */
    if (got < (uint64_t)nthreads * 5 * 16)
        fail("CRITICAL took %llu blocks from %d sleeping threads' caches, want >= %d",
             (unsigned long long)got, nthreads, nthreads * 5 * 16);
    pthread_barrier_wait(&sleep_bar);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("trust: CRITICAL took %llu cached blocks from %d sleeping threads: OK\n",
           (unsigned long long)got, nthreads);
    return 0;
}

/* ---- fork-critical: fork while another thread takes caches back ---- */

static void *watchdog(void *arg);

static _Atomic int fc_stop;

static void *fc_cacher(void *arg)
{
    while (!fc_stop) {                  /* keeps blocks in its cache */
        unsigned char *p[100];
        for (int i = 0; i < 100; i++) {
            p[i] = malloc(32 + (size_t)(i % 7) * 100);
            fill(p[i], 32, (unsigned)i);
        }
        for (int i = 0; i < 100; i++) {
            check(p[i], 32, (unsigned)i, "a block kept while caches are taken back");
            free(p[i]);
        }
    }
    return arg;
}

static void *fc_critical(void *arg)
{
    while (!fc_stop)
        apply_level(3);                 /* the thief: hk_tc_lock, then class locks */
    return arg;
}

static int run_fork_critical(int forks)
{
    double secs = 60;
    pthread_t w, c[2], k;
    if (pthread_create(&w, NULL, watchdog, &secs) || pthread_create(&c[0], NULL, fc_cacher, NULL) ||
        pthread_create(&c[1], NULL, fc_cacher, NULL) || pthread_create(&k, NULL, fc_critical, NULL))
        fail("pthread_create");
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();             /* the atfork handlers take every lock */
        if (pid < 0)
            fail("fork: %s", strerror(errno));
        if (pid == 0) {
            void *p = malloc(100);
            free(p);
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("child %d: status %#x", i, st);
    }
    fc_stop = 1;
    pthread_join(k, NULL);
    pthread_join(c[0], NULL);
    pthread_join(c[1], NULL);
    printf("trust: %d forks while CRITICAL took caches back: OK\n", forks);
    return 0;
}

/* ---- single: one thread, a level after a large free ---- */

static int run_single(int level)
{
    enum { N = 4000 };
    static unsigned char *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = malloc(64);
        if (!b[i])
            fail("malloc returned NULL");
        fill(b[i], 64, (unsigned)i);
    }
    for (int i = 100; i < N; i++)
        free(b[i]);
    if (apply_level(level) != 0)
        fail("hakmem_apply_pressure(%d): %s", level, strerror(errno));
    for (int i = 100; i < N; i++) {
        b[i] = malloc(64);
        fill(b[i], 64, (unsigned)i);
    }
    check_blocks(b, 100, 64, "kept blocks");
    for (int i = 0; i < N; i++) {
        check(b[i], 64, (unsigned)i, "after the level");
        free(b[i]);
    }
    printf("trust: single thread, level %d: OK\n", level);
    return 0;
}

/* ---- churn: one size class for a while, content-checked ---- */

static void bind_socket(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(a.sun_path))
        fail("socket path too long");
    strcpy(a.sun_path, path);
    int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    unlink(path);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0)
        fail("bind %s: %s", path, strerror(errno));
    /* not listening: connect() is refused, the listener backs off */
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run_churn(double secs, size_t size, const char *sock)
{
    enum { W = 256 };
    unsigned char *b[W];
    unsigned tag[W];
    /* the first allocation of the process, as nearly as a program can */
    for (int i = 0; i < W; i++) {
        b[i] = malloc(size);
        if (!b[i])
            fail("malloc(%zu) returned NULL", size);
        tag[i] = (unsigned)i;
        fill(b[i], size, tag[i]);
    }
    if (sock)
        bind_socket(sock);
    double end = now_s() + secs;
    unsigned long rounds = 0;
    unsigned seed = 1;
    while (now_s() < end) {
        /* free a half, allocate it again: refills and flushes */
        for (int i = 0; i < W; i += 2) {
            check(b[i], size, tag[i], "churn");
            free(b[i]);
        }
        for (int i = 0; i < W; i += 2) {
            b[i] = malloc(size);
            if (!b[i])
                fail("malloc(%zu) returned NULL", size);
            tag[i] = (seed = seed * 1103515245u + 12345u) >> 8;
            fill(b[i], size, tag[i]);
        }
        for (int i = 1; i < W; i += 2)
            check(b[i], size, tag[i], "churn (kept)");
        rounds++;
    }
    for (int i = 0; i < W; i++) {
        check(b[i], size, tag[i], "churn end");
        for (int j = 0; j < i; j++)
            if (b[i] == b[j])
                fail("blocks %d and %d are the same %p", i, j, (void *)b[i]);
    }
    for (int i = 0; i < W; i++)
        free(b[i]);
    printf("trust: churn of %zu-byte blocks, %lu rounds: OK\n", size, rounds);
    return 0;
}

/* ---- signals: allocation from a signal handler that interrupted the
 * allocator. POSIX does not promise it works; hakmem promises it neither
 * deadlocks nor corrupts (the handler's calls meet the thread's guard).
 * The handler uses a size class main never uses, so that it cannot land
 * in the middle of main's fast path on the same bin (which no allocator
 * survives); it can land anywhere in main's slow paths, which hold the
 * class, superslab, large and mode locks. ---- */

static _Atomic unsigned long handler_runs;
static volatile int handler_bad;

static void on_alarm(int sig)
{
    int saved = errno;
    unsigned char *a = malloc(48), *b = malloc(40000), *c = calloc(1, 48);
    if (!a || !b || !c) {
        handler_bad = 1;
    } else {
        memset(a, 0xa5, 48);
        memset(b, 0x5a, 40000);
        for (int i = 0; i < 48; i++)
            if (c[i])
                handler_bad = 2;
        if (a[47] != 0xa5 || b[39999] != 0x5a)
            handler_bad = 3;
    }
    free(a);
    free(b);
    free(c);
    handler_runs++;
    errno = saved;
}

static void *watchdog(void *arg)
{
    double secs = *(double *)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);     /* the timer is main's */
    struct timespec d = { (time_t)secs + 30, 0 };
    while (nanosleep(&d, &d) != 0)
        ;
    static const char m[] = "trust: FAIL: the scenario hangs (deadlock)\n";
    if (write(2, m, sizeof m - 1) < 0)
        _exit(3);
    _exit(3);
}

static int run_signals(double secs)
{
    pthread_t w;
    if (pthread_create(&w, NULL, watchdog, &secs))
        fail("pthread_create");
    struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { { 0, 1000 }, { 0, 1000 } }; /* every ms */
    setitimer(ITIMER_REAL, &it, NULL);
    enum { W = 64 };
    static const size_t sizes[] = { 64, 200, 1000, 5000, 70000, 300000 };
    unsigned char *b[W] = { 0 };
    size_t len[W] = { 0 };
    unsigned seed = 7;
    unsigned long ops = 0;
    double end = now_s() + secs;
    while (now_s() < end) {
        unsigned i = (seed = seed * 1103515245u + 12345u) >> 8 & (W - 1);
        if (b[i]) {
            check(b[i], len[i], i, "main under signals");
            free(b[i]);
        }
        len[i] = sizes[(seed >> 20) % 6];
        b[i] = malloc(len[i]);
        if (!b[i])
            fail("malloc(%zu) returned NULL", len[i]);
        fill(b[i], len[i], i);
        if (++ops % 256 == 0 && apply_level((int)(seed >> 28) & 3) != 0 && errno != EAGAIN)
            fail("hakmem_apply_pressure: %s", strerror(errno));
    }
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
    for (unsigned i = 0; i < W; i++)
        if (b[i]) {
            check(b[i], len[i], i, "main under signals (end)");
            free(b[i]);
        }
    if (handler_bad)
        fail("the signal handler's blocks were wrong (%d)", handler_bad);
    uint64_t guarded = counter("guard_allocs");
    printf("trust: %lu ops, %lu handler runs, %llu blocks served under the guard: OK\n", ops,
           (unsigned long)handler_runs, (unsigned long long)guarded);
    if (handler_runs == 0)
        fail("the handler never ran");
    return 0;
}

/* ---- levels: what each level releases, seen by strace and counters ---- */

static int run_levels(int argc, char **argv)
{
    enum { N = 30000 };
    static unsigned char *b[N];
    counter("bytes_decommitted");       /* dlsym now: nothing allocates between levels */
    apply_level(HAKMEM_LEVEL_NONE_FOR_TEST);
    for (int i = 0; i < N; i++) {
        b[i] = malloc(16 + (size_t)(i % 64) * 16);
        if (!b[i])
            fail("malloc returned NULL");
        memset(b[i], 0x5a, 16);
    }
    for (int i = 0; i < N; i++)
        if (i % 50)
            free(b[i]);                 /* 2% stay: partly used slabs */
    for (int a = 0; a < argc; a++) {
        int level = atoi(argv[a]);
        kill(getpid(), 0);              /* marker for strace */
        uint64_t dec = counter("bytes_decommitted");
        if (apply_level(level) != 0)
            fail("hakmem_apply_pressure(%d): %s", level, strerror(errno));
        printf("trust: level %d: bytes_decommitted +%llu bytes_lazy %llu\n", level,
               (unsigned long long)(counter("bytes_decommitted") - dec),
               (unsigned long long)counter("bytes_lazy"));
    }
    kill(getpid(), 0);
    for (int i = 0; i < N; i += 50)
        free(b[i]);
    return 0;
}

/* ---- namespaces ---- */

static bool exists_in(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Wait (allocating now and then) until DIR/name exists. */
static void wait_file(const char *dir, const char *name, double secs)
{
    double end = now_s() + secs;
    while (!exists_in(dir, name)) {
        if (now_s() > end)
            fail("%s/%s did not appear within %.0f s", dir, name, secs);
        void *p[64];
        for (int i = 0; i < 64; i++)
            p[i] = malloc(300);
        for (int i = 0; i < 64; i++)
            free(p[i]);
        usleep(10000);
    }
}

/* After the namespace change: the allocator works, and with lean, the
 * background purge (restarted after the change) gives memory back while
 * the process is idle. */
static void after_change(bool lean)
{
    char *s = strdup("still allocating");
    if (!s || strcmp(s, "still allocating") != 0)
        fail("strdup after the namespace change");
    free(s);
    if (!lean)
        return;
    enum { N = 20000 };
    static void *b[N];
    for (int i = 0; i < N; i++)
        if (!(b[i] = malloc(100)))
            fail("malloc returned NULL");
    uint64_t dec = counter("bytes_decommitted"), ret = counter("lean_retire");
    for (int i = 0; i < N; i++)
        free(b[i]);
    for (int i = 0; i < 100; i++) {     /* idle: only the purge thread acts */
        if (counter("bytes_decommitted") > dec || counter("lean_retire") > ret)
            return;
        usleep(100000);
    }
    fail("nothing given back within 10 s idle after the namespace change");
}

/* A child in a new user namespace; returns an fd of its namespace. */
static int child_userns(pid_t *pid, int *hold)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        fail("pipe");
    *pid = fork();
    if (*pid < 0)
        fail("fork");
    if (*pid == 0) {
        close(pfd[1]);
        if (unshare(CLONE_NEWUSER) != 0) {
            perror("child: unshare(CLONE_NEWUSER)");
            _exit(1);
        }
        char c;
        if (read(pfd[0], &c, 1) < 0)
            _exit(1);
        _exit(0);
    }
    close(pfd[0]);
    *hold = pfd[1];
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)*pid);
    for (int i = 0; i < 500; i++) {     /* until the child has unshared */
        char a[64], b[64];
        ssize_t na = readlink(path, a, sizeof a - 1);
        ssize_t nb = readlink("/proc/self/ns/user", b, sizeof b - 1);
        if (na > 0 && nb > 0 && (na != nb || memcmp(a, b, (size_t)na) != 0))
            return open(path, O_RDONLY | O_CLOEXEC);
        usleep(10000);
    }
    fail("the child's user namespace did not appear");
}

/* trust setns-user|unshare-user [DIR [lean]]: with DIR, wait for DIR/go
 * before the change and go on allocating after it until DIR/stop. */
static int run_ns(bool use_setns, int argc, char **argv)
{
    const char *dir = argc > 0 ? argv[0] : NULL;
    bool lean = argc > 1 && strcmp(argv[1], "lean") == 0;
    void *warm[256];
    for (int i = 0; i < 256; i++)      /* helper threads are up by now */
        warm[i] = malloc(64 + (size_t)i * 8);
    for (int i = 0; i < 256; i++)
        free(warm[i]);
    if (dir)
        wait_file(dir, "go", 20);
    int rc, e;
    if (use_setns) {
        pid_t pid;
        int hold;
        int fd = child_userns(&pid, &hold);
        rc = setns(fd, CLONE_NEWUSER);
        e = errno;
        close(fd);
        close(hold);
        waitpid(pid, NULL, 0);
    } else {
        rc = unshare(CLONE_NEWUSER);
        e = errno;
    }
    if (rc != 0)
        fail("%s(CLONE_NEWUSER): %s", use_setns ? "setns" : "unshare", strerror(e));
    after_change(lean);
    if (dir)
        wait_file(dir, "stop", 30);
    printf("trust: %s into a new user namespace: OK\n", use_setns ? "setns" : "unshare");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2)
        fail("usage: trust SCENARIO [ARGS]");
    const char *s = argv[1];
    if (strcmp(s, "switch") == 0 && argc == 3)
        return run_switch(atoi(argv[2]));
    if (strcmp(s, "fork-critical") == 0 && argc == 3)
        return run_fork_critical(atoi(argv[2]));
    if (strcmp(s, "sleepers") == 0 && argc == 3)
        return run_sleepers(atoi(argv[2]));
    if (strcmp(s, "single") == 0 && argc == 3)
        return run_single(atoi(argv[2]));
    if (strcmp(s, "churn") == 0 && argc >= 4)
        return run_churn(atof(argv[2]), (size_t)atol(argv[3]), argc > 4 ? argv[4] : NULL);
    if (strcmp(s, "signals") == 0 && argc == 3)
        return run_signals(atof(argv[2]));
    if (strcmp(s, "levels") == 0)
        return run_levels(argc - 2, argv + 2);
    if (strcmp(s, "setns-user") == 0)
        return run_ns(true, argc - 2, argv + 2);
    if (strcmp(s, "unshare-user") == 0)
        return run_ns(false, argc - 2, argv + 2);
    fprintf(stderr, "trust: unknown scenario %s\n", s);
    return 2;
}
