/* threads.c: what a short-lived thread costs beyond glibc's malloc.
 *
 * ROUNDS rounds of THREADS threads started together and joined, each
 * allocating one small block and freeing one another thread left (the
 * pattern of mimalloc-bench's mleak): more threads than glibc keeps
 * stacks cached for, so most start on a fresh stack mapping and every
 * page a thread's start touches there is a page fault.
 *
 * Run with the shim preloaded (STRESS_EXPECT_MALLOC names it), it runs
 * itself twice -- as it is and without LD_PRELOAD -- and fails unless
 *   - the shim's threads take at most 0.5 more minor faults each than
 *     glibc's (a thread cache in initial-exec TLS, zeroed on every fresh
 *     stack, took 1.8 more);
 *   - after the first round, no thread start or exit made a mmap, munmap
 *     or madvise of the shim's (thread caches are passed on), and
 *   - the bytes in use beyond the blocks left in the array (what glibc
 *     keeps for its cached stacks) are the same as after the first round.
 * Usage: threads [rounds [threads]]. Exit 0 on success, 1 with a message
 * on stderr. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../malloc_origin.h"

#define MAX_THREADS 64
#define SLOTS 1000

static void *volatile slot[SLOTS];
static unsigned seed = 12345;

typedef int (*counter_fn)(const char *, uint64_t *);

static void *leak(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg % SLOTS;
    void *p = calloc(16, sizeof(void *));
    if (!p) {
        fprintf(stderr, "threads: FAIL: calloc returned NULL\n");
        exit(1);
    }
    free(__atomic_exchange_n(&slot[i], p, __ATOMIC_ACQ_REL));
    return NULL;
}

static void run_round(int nthreads)
{
    pthread_t t[MAX_THREADS];
    for (int i = 0; i < nthreads; i++) {
        seed = seed * 1103515245u + 12345u;
        if (pthread_create(&t[i], NULL, leak, (void *)(uintptr_t)(seed >> 8)) != 0) {
            fprintf(stderr, "threads: FAIL: pthread_create\n");
            exit(1);
        }
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
}

static long minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static uint64_t ctr(counter_fn f, const char *name)
{
    uint64_t v = 0;
    if (f && f(name, &v) != 0) {
        fprintf(stderr, "threads: FAIL: no counter %s\n", name);
        exit(1);
    }
    return v;
}

/* Bytes in use beyond the blocks in slot (16 words each): what glibc
 * keeps for its cached thread stacks (their dtv), and any leak. */
static uint64_t residue(counter_fn hk, int (*trim)(void))
{
    trim();                             /* every cached block back to its slab */
    uint64_t live = 0;
    for (int i = 0; i < SLOTS; i++)
        live += slot[i] ? 16 * sizeof(void *) : 0;
    return ctr(hk, "bytes_in_use") - live;
}

/* The measuring child: prints the minor faults per thread after the
 * first round (which warms up what is kept), and checks the shim's
 * counters when it runs on the shim. */
static int measure(int rounds, int nthreads)
{
    counter_fn hk = (counter_fn)dlsym(RTLD_DEFAULT, "hakmem_counter");
    int (*trim)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "hakmem_trim");
    run_round(nthreads);
    uint64_t in_use = hk ? residue(hk, trim) : 0;
    uint64_t maps = ctr(hk, "mmap_calls"), unmaps = ctr(hk, "munmap_calls");
    uint64_t advs = ctr(hk, "madvise_calls");
    long f0 = minflt();
    for (int r = 1; r < rounds; r++)
        run_round(nthreads);
    long f1 = minflt();
    if (hk) {
        if (ctr(hk, "mmap_calls") != maps || ctr(hk, "munmap_calls") != unmaps ||
            ctr(hk, "madvise_calls") != advs) {
            fprintf(stderr, "threads: FAIL: thread starts and exits made system calls of the "
                    "shim's: mmap %llu, munmap %llu, madvise %llu\n",
                    (unsigned long long)(ctr(hk, "mmap_calls") - maps),
                    (unsigned long long)(ctr(hk, "munmap_calls") - unmaps),
                    (unsigned long long)(ctr(hk, "madvise_calls") - advs));
            return 1;
        }
        uint64_t now = residue(hk, trim);
        if (now != in_use) {
            fprintf(stderr, "threads: FAIL: %llu bytes in use beyond the live blocks, %llu "
                    "after the first round\n", (unsigned long long)now,
                    (unsigned long long)in_use);
            return 1;
        }
    }
    printf("%.3f\n", (double)(f1 - f0) / ((double)(rounds - 1) * nthreads));
    return 0;
}

/* Run this program in measuring mode, with or without LD_PRELOAD; the
 * faults per thread it printed. */
static double run_child(const char *self, const char *rounds, const char *nthreads, bool preload)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        if (!preload)
            unsetenv("LD_PRELOAD");
        execl(self, self, "measure", rounds, nthreads, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char buf[64] = { 0 };
    ssize_t n = read(fd[0], buf, sizeof buf - 1);
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    if (n <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "threads: FAIL: the measuring run %s LD_PRELOAD failed\n",
                preload ? "with" : "without");
        exit(1);
    }
    return strtod(buf, NULL);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "measure") == 0) {
        int rounds = atoi(argv[2]), nthreads = atoi(argv[3]);
        if (rounds < 2 || nthreads < 1 || nthreads > MAX_THREADS)
            return 2;
        return measure(rounds, nthreads);
    }
    const char *rounds = argc > 1 ? argv[1] : "60";
    const char *nthreads = argc > 2 ? argv[2] : "10";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (malloc_origin_check("threads", getenv("STRESS_EXPECT_MALLOC")) != 0)
        return 1;
    double shim = run_child("/proc/self/exe", rounds, nthreads, true);
    double glibc = run_child("/proc/self/exe", rounds, nthreads, false);
    printf("threads: minor faults per thread: %.3f as run, %.3f on glibc\n", shim, glibc);
    if (shim > glibc + 0.5) {
        fprintf(stderr, "threads: FAIL: a thread costs %.3f more page faults than on glibc "
                "(at most 0.5)\n", shim - glibc);
        return 1;
    }
    return 0;
}
