/* misuse.c: the program side of the death tests (suite 'misuse'). Each case
 * corrupts the heap the way a buggy program does (double free, a pointer
 * into the middle of a block, a pointer malloc never returned); the
 * allocator must stop the process as glibc does: SIGABRT (exit status 134)
 * after a message naming the function and the pointer. It calls only the
 * libc API, so the same binary shows what glibc does (run it without the
 * shim) and what hakmem does (LD_PRELOAD, as run_misuse.sh runs it).
 *
 *   misuse --list           the case names, one a line
 *   misuse --expect CASE    "ENV<TAB>REGEX": ENV a VAR=value the case runs
 *                           with (or "-"),
 *                           REGEX (grep -E) the message must match
 *   misuse CASE             run it: prints "misuse: CASE: pointer 0x..."
 *                           (the pointer the message must name), then
 *                           misuses it; if nothing stops it, says so and
 *                           exits 0.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MIB ((size_t)1 << 20)
#define LARGE (2 * MIB)     /* above the medium classes: its own mapping */
#define MEDIUM (200 << 10)  /* a medium class: slabs of a superslab */

static const char *case_name;

/* The pointer about to be misused, on stdout before the abort. */
static void announce(const void *p)
{
    printf("misuse: %s: pointer %p\n", case_name, p);
    fflush(stdout);
}

/* volatile: keep the compiler from seeing (and warning about, or folding)
 * the misuse. */
static void (*volatile free_fn)(void *) = free;
static void *(*volatile realloc_fn)(void *, size_t) = realloc;

/* A block of n bytes in use (written). */
static char *block(size_t n)
{
    char *p = malloc(n);
    if (!p) {
        perror("malloc");
        exit(2);
    }
    memset(p, 1, n);
    return p;
}

static void small_double_free(void)
{
    char *p = block(64);
    free_fn(p);
    announce(p);
    free_fn(p);
}

/* Another block freed between the two frees of p (glibc scans its
 * tcache bin). */
static void small_double_free_later(void)
{
    char *p = block(64), *q = block(64);
    free_fn(p);
    free_fn(q);
    announce(p);
    free_fn(p);
}

/* p went back to its slab (the thread cache overflowed) before the second
 * free. */
static void small_double_free_flushed(void)
{
    enum { N = 2000 };
    static char *b[N];
    char *p = block(64);
    free_fn(p);
    for (int i = 0; i < N; i++)
        b[i] = block(64);
    for (int i = 0; i < N; i++)
        free_fn(b[i]);
    announce(p);
    free_fn(p);
}

static void *free_it(void *p)
{
    free_fn(p);
    return NULL;
}

/* Freed by this thread, then again by another (glibc misses this one: the
 * block is in the first thread's tcache). */
static void small_double_free_thread(void)
{
    char *p = block(64);
    pthread_t t;
    free_fn(p);
    announce(p);
    if (pthread_create(&t, NULL, free_it, p) != 0) {
        perror("pthread_create");
        exit(2);
    }
    pthread_join(t, NULL);
}

static void small_interior(void)
{
    char *p = block(64);
    announce(p + 16);
    free_fn(p + 16);
}

static void large_double_free(void)
{
    char *p = block(LARGE);
    free_fn(p);
    announce(p);
    free_fn(p);
}

/* The second free comes after a new owner got a block of the same size:
 * it must not free the new owner's block. */
static void large_reused_double_free(void)
{
    char *p = block(LARGE);
    free_fn(p);
    char *q = block(LARGE);
    announce(p);
    free_fn(p);
    if (q == p)
        printf("misuse: %s: the new owner's block (%p) was freed\n", case_name, (void *)q);
}

static void large_interior(void)
{
    char *p = block(LARGE);
    announce(p + 16);
    free_fn(p + 16);
}

static void large_realloc_after_free(void)
{
    char *p = block(LARGE);
    free_fn(p);
    announce(p);
    p = realloc_fn(p, 2 * LARGE);
    printf("misuse: %s: realloc returned %p\n", case_name, (void *)p);
}

/* A medium block freed twice: its slab still holds its neighbours
 * (the free bit is set), or went back to its superslab (a free unit). */
static void medium_double_free(void)
{
    char *p = block(MEDIUM), *q = block(MEDIUM);
    free_fn(p);
    announce(p);
    free_fn(p);
    free_fn(q);
}

static void medium_double_free_alone(void)
{
    char *p = block(MEDIUM);
    free_fn(p);
    announce(p);
    free_fn(p);
}

static void medium_interior(void)
{
    char *p = block(MEDIUM);
    announce(p + 4096);
    free_fn(p + 4096);
}

static void foreign_stack(void)
{
    _Alignas(16) char buf[64];
    memset(buf, 1, sizeof(buf));
    announce(buf);
    free_fn(buf);
}

static void foreign_realloc_stack(void)
{
    _Alignas(16) char buf[64];
    memset(buf, 1, sizeof(buf));
    announce(buf);
    void *q = realloc_fn(buf, 128);
    printf("misuse: %s: realloc returned %p\n", case_name, q);
}

static void foreign_static_data(void)
{
    static _Alignas(16) char data[64] = { 1 };  /* .data */
    announce(data);
    free_fn(data);
}

static void foreign_static_bss(void)
{
    static _Alignas(4096) char bss[4 << 12];   /* .bss, pages past the file */
    announce(bss + 8192);
    free_fn(bss + 8192);
}

static void foreign_mmap(void)
{
    char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    announce(m + 4096);
    free_fn(m + 4096);
}

struct mcase {
    const char *name;
    const char *env;
    const char *regex;
    void (*run)(void);
};

#define DOUBLE  "double free"
#define INVALID "invalid pointer"
static const struct mcase cases[] = {
    { "small-double-free", "-", "free\\(\\): " DOUBLE, small_double_free },
    { "small-double-free-later", "-", "free\\(\\): " DOUBLE, small_double_free_later },
    { "small-double-free-flushed", "-", "free\\(\\): " DOUBLE, small_double_free_flushed },
    { "small-double-free-thread", "-", "free\\(\\): " DOUBLE, small_double_free_thread },
    { "small-interior", "-", "free\\(\\): " INVALID, small_interior },
    { "large-double-free", "-", "free\\(\\): " DOUBLE, large_double_free },
    { "large-reused-double-free", "-", "free\\(\\): " DOUBLE, large_reused_double_free },
    /* LEAN keeps no freed mapping: the second free finds either nothing
     * (invalid pointer) or a fresh mapping at the same address */
    { "large-reused-double-free-lean", "HAKMEM_SS_MEM_LEAN=1",
      "free\\(\\): (" DOUBLE "|" INVALID ")", large_reused_double_free },
    { "large-interior", "-", "free\\(\\): " INVALID, large_interior },
    { "large-realloc-after-free", "-", "realloc\\(\\): " DOUBLE, large_realloc_after_free },
    { "medium-double-free", "-", "free\\(\\): " DOUBLE, medium_double_free },
    { "medium-double-free-alone", "-", "free\\(\\): " DOUBLE, medium_double_free_alone },
    { "medium-interior", "-", "free\\(\\): " INVALID, medium_interior },
    { "foreign-stack", "-", "free\\(\\): " INVALID, foreign_stack },
    { "foreign-realloc-stack", "-", "realloc\\(\\): " INVALID, foreign_realloc_stack },
    { "foreign-static-data", "-", "free\\(\\): " INVALID, foreign_static_data },
    { "foreign-static-bss", "-", "free\\(\\): " INVALID, foreign_static_bss },
    { "foreign-mmap", "-", "free\\(\\): " INVALID, foreign_mmap },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static const struct mcase *find(const char *name)
{
    for (size_t i = 0; i < NCASES; i++)
        if (strcmp(cases[i].name, name) == 0)
            return &cases[i];
    fprintf(stderr, "misuse: no case \"%s\" (misuse --list)\n", name);
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < NCASES; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--expect") == 0) {
        const struct mcase *c = find(argv[2]);
        printf("%s\t%s\n", c->env, c->regex);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: misuse --list | --expect CASE | CASE\n");
        return 2;
    }
    const struct mcase *c = find(argv[1]);
    case_name = c->name;
    c->run();
    printf("misuse: %s: not detected\n", case_name);
    return 0;
}
