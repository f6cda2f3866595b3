/* test_alloc.c: the entry points (alloc.c) through their hk_ names:
 * sizes from 0 to 64 MiB, calloc zeroing on reuse, realloc across small,
 * medium and large, medium blocks without system calls, alignments up to 4 MiB, usable sizes, overflow and
 * out-of-memory (NULL with ENOMEM under a small RLIMIT_AS), foreign and
 * invalid pointers, thread exit returning its cache, large blocks reused
 * in place from merged free extents. */
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include "hk_internal.h"
#include "test_main.h"

static uint64_t ctr(const char *name)
{
    uint64_t v = 0;
    ck_assert_int_eq(hakmem_counter(name, &v), 0);
    return v;
}

static void fill(void *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        ((unsigned char *)p)[i] = (unsigned char)(seed + i * 7);
}

static int check(const void *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (((const unsigned char *)p)[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

START_TEST(test_sizes)
{
    static const size_t sizes[] = { 0, 1, 15, 16, 17, 100, 1000, 1024, 1025, 4096, 32767,
                                    32768, 32769, 100000, 1 << 20, 3 << 20, 64 << 20 };
    void *p[sizeof(sizes) / sizeof(sizes[0])];
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        p[i] = hk_malloc(sizes[i]);
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_uint_eq((uintptr_t)p[i] % 16, 0);
        ck_assert_uint_ge(hk_usable_size(p[i]), sizes[i]);
        fill(p[i], sizes[i], (unsigned)i);
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        ck_assert(check(p[i], sizes[i], (unsigned)i));
        hk_free(p[i]);
    }
    hk_free(NULL);
    ck_assert_uint_eq(hk_usable_size(NULL), 0);
}
END_TEST

START_TEST(test_calloc_zero_on_reuse)
{
    for (size_t n = 16; n <= (1 << 20); n *= 4) {
        void *p = hk_malloc(n);
        memset(p, 0xff, n);
        hk_free(p);
        unsigned char *q = hk_calloc(1, n);
        ck_assert_ptr_nonnull(q);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(q[i] == 0, "calloc(%zu) byte %zu is %u", n, i, q[i]);
        hk_free(q);
    }
    errno = 0;
    ck_assert_ptr_null(hk_calloc(SIZE_MAX / 2, 3));
    ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

START_TEST(test_realloc_chain)
{
    size_t n = 1;
    char *p = hk_realloc(NULL, n);
    fill(p, n, 3);
    while (n < (8 << 20)) {             /* small -> large -> bigger */
        size_t m = n * 3 + 5;
        p = hk_realloc(p, m);
        ck_assert_ptr_nonnull(p);
        ck_assert(check(p, n, 3));
        fill(p, m, 3);
        n = m;
    }
    while (n > 8) {                     /* and back down */
        n /= 5;
        p = hk_realloc(p, n);
        ck_assert_ptr_nonnull(p);
        ck_assert(check(p, n, 3));
    }
    errno = 0;
    ck_assert_ptr_null(hk_realloc(p, SIZE_MAX - 4096));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert(check(p, n, 3));          /* untouched on failure */
    ck_assert_ptr_null(hk_realloc(p, 0)); /* frees */
}
END_TEST

START_TEST(test_alignments)
{
    for (size_t align = 16; align <= (4 << 20); align *= 2) {
        for (size_t n = 1; n < 300000; n = n * 7 + 3) {
            void *p = hk_memalign(align, n);
            ck_assert_ptr_nonnull(p);
            ck_assert_msg((uintptr_t)p % align == 0, "memalign(%zu, %zu) = %p", align, n, p);
            ck_assert_uint_ge(hk_usable_size(p), n);
            fill(p, n, 1);
            ck_assert(check(p, n, 1));
            hk_free(p);
        }
    }
}
END_TEST

START_TEST(test_huge_is_enomem)
{
    errno = 0;
    ck_assert_ptr_null(hk_malloc(SIZE_MAX));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(hk_malloc((size_t)1 << 62));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(hk_memalign(4 << 20, SIZE_MAX / 2));
    ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

START_TEST(test_large_cache_and_counters)
{
    uint64_t live = ctr("large_live");
    void *p = hk_malloc(3000000);
    ck_assert_uint_eq(ctr("large_live"), live + 1);
    hk_free(p);
    ck_assert_uint_eq(ctr("large_live"), live);
    uint64_t maps = ctr("mmap_calls");
    void *q = hk_malloc(2900000);       /* reuses the cached mapping */
    ck_assert_uint_eq(ctr("mmap_calls"), maps);
    hk_free(q);
    ck_assert_int_eq(hakmem_trim(), 1);
    ck_assert_uint_eq(ctr("large_cached"), 0);
    ck_assert_int_eq(hakmem_counter("no_such_counter", NULL), -1);
    ck_assert_int_eq(errno, ENOENT);
    struct hakmem_stats st;
    ck_assert_int_eq(hakmem_stats_get(&st, sizeof(st)), 0);
    ck_assert_uint_eq(st.large_live, live);
    ck_assert_int_eq(hakmem_stats_get(&st, 4), -1);
    /* a caller built with a shorter struct gets the counters it knows */
    memset(&st, 0xff, sizeof(st));
    ck_assert_int_eq(hakmem_stats_get(&st, 2 * sizeof(uint64_t)), 0);
    ck_assert_uint_eq(st.mmap_calls, ctr("mmap_calls"));
    ck_assert_uint_eq(st.superslabs_live, UINT64_MAX);   /* not written */
}
END_TEST

START_TEST(test_stats_print_format)
{
    char path[] = "/tmp/hk_statsXXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    hakmem_stats_print(fd);
    char buf[2048] = { 0 };
    ck_assert_int_gt(pread(fd, buf, sizeof(buf) - 1, 0), 0);
    close(fd);
    int lines = 0;
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"), lines++) {
        char name[64];
        unsigned long long v;
        ck_assert_int_eq(sscanf(l, "%63s %llu", name, &v), 2);
        ck_assert_int_eq(hakmem_counter(name, NULL), 0);
    }
    ck_assert_int_ge(lines, 9);
}
END_TEST

static void *churn_thread(void *arg)
{
    void *p[1000];
    for (int i = 0; i < 1000; i++)
        p[i] = hk_malloc(64 + (size_t)(i % 7) * 100);
    for (int i = 0; i < 1000; i++)
        hk_free(p[i]);
    return arg;
}

START_TEST(test_thread_exit_returns_cache)
{
    void *warm = hk_malloc(64);         /* this thread's cache is set up */
    hk_free(warm);
    uint64_t before = ctr("bytes_in_use");
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, churn_thread, NULL), 0);
    pthread_join(t, NULL);
    ck_assert_uint_eq(ctr("bytes_in_use"), before);
}
END_TEST

/* A working set of one class bigger than a bin (FAST): the bin's
 * overflow stays in the thread (its stash), no batch goes to the class's
 * shared depot once the stash holds the working set. */
enum { WS_OVER_BIN = 300 };

START_TEST(test_overflow_stays_in_thread)
{
    ck_assert_int_eq(hakmem_set_mode(HAKMEM_MODE_FAST), 0);
    struct hk_class *c = &hk_classes[hk_class_of(64)];
    static unsigned char *p[WS_OVER_BIN];
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < WS_OVER_BIN; i++) {
            p[i] = hk_malloc(64);
            ck_assert_ptr_nonnull(p[i]);
            memset(p[i], round + i, 64);
        }
        for (int i = 0; i < WS_OVER_BIN; i++)
            for (int j = 0; j < 64; j++)
                ck_assert_uint_eq(p[i][j], (unsigned char)(round + i));
        uint32_t before = __atomic_load_n(&c->ndepot, __ATOMIC_RELAXED);
        for (int i = 0; i < WS_OVER_BIN; i++)
            hk_free(p[i]);
        uint32_t after = __atomic_load_n(&c->ndepot, __ATOMIC_RELAXED);
        ck_assert_msg(round == 0 || after <= before, "round %d: %u batches went to the depot",
                      round, after - before);
    }
}
END_TEST

/* A double free of a block that waits in the thread's stash. */
START_TEST(test_small_double_free_stash_aborts)
{
    static void *p[WS_OVER_BIN];
    for (int i = 0; i < WS_OVER_BIN; i++)
        p[i] = hk_malloc(64);
    for (int i = 0; i < WS_OVER_BIN; i++)
        hk_free(p[i]);                  /* p[0] in the oldest half: stashed */
    hk_free(p[0]);
}
END_TEST

START_TEST(test_foreign_invalid_aborts)
{
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    hk_free((char *)m + 64);            /* made after start: not an early block */
}
END_TEST

START_TEST(test_foreign_misaligned_aborts)
{
    static char buf[64];
    hk_free(buf + 3);
}
END_TEST

/* An address in ld.so's writable segment, where its early (pre-malloc)
 * allocations live. */
static int find_rtld_data(struct dl_phdr_info *info, size_t size, void *out)
{
    if (!info->dlpi_name || !strstr(info->dlpi_name, "ld-linux"))
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W)) {
            uintptr_t a = info->dlpi_addr + ph->p_vaddr + ph->p_memsz - 64;
            *(void **)out = (void *)(a & ~(uintptr_t)15);
            return 1;
        }
    }
    return 0;
}

START_TEST(test_foreign_early_block_left_alone)
{
    void *p = NULL;
    dl_iterate_phdr(find_rtld_data, &p);
    ck_assert_ptr_nonnull(p);
    unsigned char before[16];
    memcpy(before, p, 16);
    hk_free(p);
    hk_free(p);                         /* still left alone */
    ck_assert_mem_eq(p, before, 16);    /* not written */
    ck_assert_uint_eq(hk_usable_size(p), 0);
    char *q = hk_realloc(p, 16);        /* copied out, old block left */
    ck_assert_ptr_nonnull(q);
    ck_assert_mem_eq(q, p, 16);
    hk_free(q);
}
END_TEST

START_TEST(test_large_double_free_aborts)
{
    void *p = hk_malloc(2 << 20);
    hk_free(p);
    hk_free(p);
}
END_TEST

/* ---- medium blocks (medium.c): above 32 KiB up to 1 MiB ---- */

/* Every medium class and the sizes around its bounds, live together,
 * then large ones up to 4 MiB: contents intact, usable sizes, no
 * overlap (each block's pattern survives the others' writes). */
START_TEST(test_medium_contents)
{
    enum { N = 3 * HK_NMEDIUM + 6 };
    static void *p[N];
    static size_t sz[N];
    size_t k = 0;
    for (unsigned c = HK_NCLASS; c < HK_NALLCLASS; c++) {
        sz[k++] = hk_class_size[c - 1] + 1;
        sz[k++] = (hk_class_size[c - 1] + hk_class_size[c]) / 2;
        sz[k++] = hk_class_size[c];
    }
    for (size_t n = (1 << 20) + 1; k < N; n += (600 << 10))
        sz[k++] = n;
    for (size_t i = 0; i < N; i++) {
        p[i] = hk_malloc(sz[i]);
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_uint_eq((uintptr_t)p[i] % (sz[i] <= HK_MEDIUM_MAX ? 4096 : 16), 0);
        ck_assert_uint_ge(hk_usable_size(p[i]), sz[i]);
        fill(p[i], sz[i], (unsigned)i);
    }
    for (size_t i = 0; i < N; i++) {
        ck_assert_msg(check(p[i], sz[i], (unsigned)i), "block %zu of %zu bytes", i, sz[i]);
        hk_free(p[i]);
    }
}
END_TEST

/* realloc up and down across small, every medium class and large. */
START_TEST(test_medium_realloc_across_classes)
{
    size_t n = 30000;
    char *p = hk_malloc(n);
    fill(p, n, 9);
    for (size_t m = 33000; m < (3 << 20); m = m * 5 / 4) {
        p = hk_realloc(p, m);
        ck_assert_ptr_nonnull(p);
        ck_assert(check(p, n, 9));
        fill(p, m, 9);
        n = m;
    }
    for (size_t m = n * 3 / 5; m > 16000; m = m * 3 / 5) {
        p = hk_realloc(p, m);
        ck_assert_ptr_nonnull(p);
        ck_assert(check(p, m, 9));
        n = m;
    }
    hk_free(p);
}
END_TEST

/* memalign of medium sizes: up to 64 KiB from the medium classes, larger
 * alignments from large blocks. */
START_TEST(test_medium_memalign)
{
    for (size_t align = 4096; align <= (1 << 20); align *= 2)
        for (size_t n = 40000; n <= (1 << 20); n = n * 3 / 2) {
            void *p = hk_memalign(align, n);
            ck_assert_ptr_nonnull(p);
            ck_assert_msg((uintptr_t)p % align == 0, "memalign(%zu, %zu) = %p", align, n, p);
            ck_assert_uint_ge(hk_usable_size(p), n);
            if (align <= HK_UNIT_SIZE)
                ck_assert_uint_lt(hk_unit_cls(hk_seg_of(p), p), HK_NALLCLASS);
            fill(p, n, 5);
            ck_assert(check(p, n, 5));
            hk_free(p);
        }
}
END_TEST

/* Steady churn of varying medium sizes makes no system call once warm
 * (the caches alone: FAST's decay, which may give back what stays free
 * for seconds on a slow machine, is off). */
START_TEST(test_medium_churn_no_syscalls)
{
    enum { LIVE = 32, OPS = 12000 };
    static char *p[LIVE];
    char *env[] = { "HAKMEM_SS_DECAY_MS=0", NULL };
    hk_env_load(env, &hk_opt);
    uint64_t x = 88172645463325252ull;
    for (int round = 0; round < 2; round++) {
        uint64_t maps = ctr("mmap_calls"), unmaps = ctr("munmap_calls"), adv = ctr("madvise_calls");
        for (int i = 0; i < OPS; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            unsigned j = (unsigned)(x % LIVE);
            hk_free(p[j]);
            size_t n = 33 * 1024 + (size_t)(x >> 20) % (HK_MEDIUM_MAX - 33 * 1024);
            p[j] = hk_malloc(n);
            ck_assert_ptr_nonnull(p[j]);
            p[j][0] = p[j][n - 1] = 1;
        }
        if (round == 1) {               /* the first round warmed up */
            ck_assert_uint_eq(ctr("mmap_calls"), maps);
            ck_assert_uint_eq(ctr("munmap_calls"), unmaps);
            ck_assert_uint_eq(ctr("madvise_calls"), adv);
        }
    }
    for (int j = 0; j < LIVE; j++)
        hk_free(p[j]);
}
END_TEST

START_TEST(test_medium_double_free_aborts)
{
    void *p = hk_malloc(100000), *q = hk_malloc(100000);
    hk_free(p);
    hk_free(p);
    hk_free(q);
}
END_TEST

START_TEST(test_medium_interior_free_aborts)
{
    char *p = hk_malloc(300000);
    hk_free(p + 4096);
}
END_TEST

/* Large blocks are carved from free extents, which merge with their free
 * neighbours: once a 42 MiB extent is free, rounds of blocks of mixed
 * sizes (1.1..12 MiB, at most the extent's bytes at once), each freed in
 * a shuffled order, all land inside it, with no mmap, munmap or madvise:
 * the pieces merge back into one extent after every round. Contents and
 * calloc's zeroes hold throughout. (Decay, which may give back what stays
 * free for seconds on a slow machine, is off.) */
START_TEST(test_large_reuse_in_place)
{
    enum { MB = 1 << 20, SEG = 2 << 20, MAXN = 16 };
    char *env[] = { "HAKMEM_SS_DECAY_MS=0", NULL };
    hk_env_load(env, &hk_opt);
    hakmem_trim();                          /* an empty cache */
    char *big = hk_malloc(40 * MB);         /* a 42 MiB extent */
    size_t span = hk_usable_size(big) + (size_t)((uintptr_t)big % SEG);
    ck_assert_uint_gt(span, 40 * MB);
    hk_free(big);
    char *lo = (char *)((uintptr_t)big & ~(uintptr_t)(SEG - 1)), *hi = lo + span;
    uint64_t maps = ctr("mmap_calls"), unmaps = ctr("munmap_calls");
    uint64_t adv = ctr("madvise_calls"), committed = ctr("bytes_committed");
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 40; round++) {
        char *p[MAXN];
        size_t n[MAXN], used = 0;
        int k = 0;
        for (; k < MAXN; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            n[k] = MB + MB / 8 + (size_t)(x >> 20) % (11 * MB);
            size_t ext = (n[k] + 2048 + SEG - 1) & ~(size_t)(SEG - 1);
            if (used + ext > span)
                break;
            used += ext;
            p[k] = k % 3 ? hk_malloc(n[k]) : hk_calloc(1, n[k]);
            ck_assert_ptr_nonnull(p[k]);
            ck_assert_msg(p[k] >= lo && p[k] + n[k] <= hi, "round %d: block %d of %zu bytes at %p,"
                          " outside the free extent %p..%p", round, k, n[k], (void *)p[k],
                          (void *)lo, (void *)hi);
            if (k % 3 == 0)
                for (size_t i = 0; i < n[k]; i += 4096)
                    ck_assert_int_eq(p[k][i], 0);
            fill(p[k], n[k], (unsigned)(round + k));
        }
        for (int i = 0; i < k; i++)
            ck_assert(check(p[i], n[i], (unsigned)(round + i)));
        for (int i = k; i > 1; i--) {       /* a shuffled order */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int j = (int)(x % (unsigned)i);
            char *t = p[j];
            p[j] = p[i - 1];
            p[i - 1] = t;
        }
        for (int i = 0; i < k; i++)
            hk_free(p[i]);
        ck_assert_uint_eq(ctr("large_cached"), 1);     /* merged back into one */
    }
    ck_assert_uint_eq(ctr("mmap_calls"), maps);
    ck_assert_uint_eq(ctr("munmap_calls"), unmaps);
    ck_assert_uint_eq(ctr("madvise_calls"), adv);
    ck_assert_uint_eq(ctr("bytes_committed"), committed);
    hakmem_trim();
    ck_assert_uint_eq(ctr("large_cached"), 0);
}
END_TEST

/* A block bigger than every free extent grows the biggest with fresh
 * pages mapped next to it, so that the extent's pages, faulted in
 * already, serve part of it: calloc's zeroes, read in full, fault in
 * fewer pages than a fresh block's. A block shrunk by realloc gives its
 * tail segments to the cache, and grows back into them with no mmap. */
START_TEST(test_large_extend_and_realloc_in_place)
{
    enum { MB = 1 << 20 };
    hakmem_trim();
    char *a = hk_malloc(20 * MB);
    fill(a, 20 * MB, 1);
    hk_free(a);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    char *c = hk_calloc(1, 30 * MB);
    for (size_t i = 0; i < 30 * MB; i += 4096)
        ck_assert_int_eq(c[i], 0);
    getrusage(RUSAGE_SELF, &r1);
    ck_assert_uint_eq(ctr("large_cached"), 0);         /* the 22 MiB taken in */
    ck_assert_int_lt(r1.ru_minflt - r0.ru_minflt, 30 * MB / 4096 * 3 / 4);
    ck_assert(c + 30 * MB > a && c < a + 20 * MB);     /* overlaps the old extent */
    fill(c, 30 * MB, 2);
    uint64_t maps = ctr("mmap_calls");
    char *d = hk_realloc(c, 5 * MB);        /* 26 MiB of tail cached */
    ck_assert_ptr_eq(d, c);
    ck_assert_uint_eq(ctr("large_cached"), 1);
    ck_assert(check(d, 5 * MB, 2));
    d = hk_realloc(d, 25 * MB);             /* grows back into it */
    ck_assert_ptr_eq(d, c);
    ck_assert_uint_eq(ctr("large_cached"), 1);         /* the rest, split off */
    ck_assert_uint_eq(ctr("mmap_calls"), maps);
    ck_assert(check(d, 5 * MB, 2));
    fill(d, 25 * MB, 3);
    ck_assert(check(d, 25 * MB, 3));
    hk_free(d);
    hakmem_trim();
    ck_assert_uint_eq(ctr("large_cached"), 0);
}
END_TEST

/* A mapping reused from the large cache puts its block at a new offset
 * each time: a stale pointer of an earlier owner never names the block
 * of the current one (17 reuses in a row, unaligned and page aligned). */
START_TEST(test_large_reuse_moves_block)
{
    enum { LARGE = 2 << 20 };   /* above HK_MEDIUM_MAX */
    static const size_t aligns[] = { 0, 4096 };
    for (size_t a = 0; a < 2; a++) {
        void *seen[17];
        hk_free(aligns[a] ? hk_memalign(aligns[a], LARGE) : hk_malloc(LARGE));
        uint64_t maps = ctr("mmap_calls");
        unsigned n = aligns[a] ? 2 : 17;   /* page alignment: two places */
        for (unsigned i = 0; i < n; i++) {
            char *p = aligns[a] ? hk_memalign(aligns[a], LARGE) : hk_malloc(LARGE);
            ck_assert_uint_eq((uintptr_t)p % (aligns[a] ? aligns[a] : 16), 0);
            ck_assert_uint_ge(hk_usable_size(p), LARGE);
            for (unsigned j = 0; j < i; j++)
                ck_assert_ptr_ne(p, seen[j]);
            seen[i] = p;
            fill(p, LARGE, i);
            ck_assert(check(p, LARGE, i));
            hk_free(p);
        }
        ck_assert_uint_eq(ctr("mmap_calls"), maps);     /* all from the cache */
    }
}
END_TEST

START_TEST(test_large_stale_pointer_aborts)
{
    enum { LARGE = 2 << 20 };
    void *p = hk_malloc(LARGE);
    hk_free(p);
    void *q = hk_malloc(LARGE);       /* the same mapping, a new owner */
    ck_assert_ptr_nonnull(q);
    hk_free(p);
}
END_TEST

START_TEST(test_header_pointer_aborts)
{
    char *p = hk_malloc(64);
    hk_free((void *)((uintptr_t)p & ~(uintptr_t)HK_SEG_MASK) + 256); /* superslab header */
}
END_TEST

/* ---- heap integrity of small blocks (alloc.c's fast path, tcache.c) ---- */

START_TEST(test_small_double_free_aborts)
{
    void *p = hk_malloc(64);
    hk_free(p);
    hk_free(p);                         /* in this thread's cache: at once */
}
END_TEST

START_TEST(test_small_double_free_later_aborts)
{
    void *p = hk_malloc(64), *q = hk_malloc(64);
    hk_free(p);
    hk_free(q);
    hk_free(p);
}
END_TEST

START_TEST(test_small_double_free_central_aborts)
{
    enum { N = 3000 };
    static void *b[N];
    void *p = hk_malloc(64);
    hk_free(p);
    for (int i = 0; i < N; i++)        /* p leaves the cache for its slab */
        b[i] = hk_malloc(64);
    for (int i = 0; i < N; i++)
        hk_free(b[i]);
    hakmem_trim();                      /* ... and the depot */
    hk_free(p);
}
END_TEST

static void *free_ptr(void *p)
{
    hk_free(p);
    return NULL;
}

START_TEST(test_small_double_free_other_thread_aborts)
{
    void *p = hk_malloc(64);
    hk_free(p);                         /* in this thread's cache */
    pthread_t t;
    pthread_create(&t, NULL, free_ptr, p);
    pthread_join(t, NULL);
}
END_TEST

START_TEST(test_interior_free_aborts)
{
    char *p = hk_malloc(64);
    hk_free(p + 16);
}
END_TEST

START_TEST(test_slab_tail_free_aborts)
{
    /* a 48-byte class slab holds 1365 blocks; the 16 bytes after the last
     * are no block though 48 divides their offset */
    char *p = hk_malloc(48);
    hk_free((char *)((uintptr_t)p & ~(uintptr_t)(HK_UNIT_SIZE - 1)) + 1365 * 48);
}
END_TEST

START_TEST(test_big_class_interior_free_aborts)
{
    char *p = hk_malloc(10000);         /* a class of four-unit slabs */
    hk_free(p + 4096);
}
END_TEST

START_TEST(test_free_key_in_user_data)
{
    /* a live block whose data hold the free key is freed normally */
    uint64_t *p = hk_malloc(64);
    p[1] = hk_free_key;
    hk_free(p);
    uint64_t *q = hk_malloc(64);
    ck_assert_ptr_eq(q, p);
    ck_assert_uint_eq(q[1], 0);         /* handed out without the key */
    hk_free(q);
    /* and blocks of every path come back reusable */
    for (size_t n = 16; n <= 20000; n = n * 3 / 2) {
        void *a = hk_malloc(n), *b = hk_calloc(1, n), *c = hk_memalign(64, n);
        hk_free(a);
        hk_free(b);
        hk_free(c);
    }
}
END_TEST

START_TEST(test_libc_interface)
{
    void *p = (void *)1;
    ck_assert_int_eq(hk_posix_memalign(&p, 24, 10), EINVAL);
    ck_assert_int_eq(hk_posix_memalign(&p, 0, 10), EINVAL);
    ck_assert_ptr_eq(p, (void *)1);     /* untouched on error */
    ck_assert_int_eq(hk_posix_memalign(&p, 256, 10), 0);
    ck_assert_uint_eq((uintptr_t)p % 256, 0);
    hk_free(p);
    ck_assert_int_eq(hk_posix_memalign(&p, 64, SIZE_MAX / 2), ENOMEM);
    errno = 0;
    ck_assert_ptr_null(hk_aligned_alloc(48, 96));
    ck_assert_int_eq(errno, EINVAL);
    p = hk_memalign_libc(48, 10);       /* glibc rounds up to 64 */
    ck_assert_uint_eq((uintptr_t)p % 64, 0);
    hk_free(p);
    p = hk_valloc(5);
    ck_assert_uint_eq((uintptr_t)p % 4096, 0);
    hk_free(p);
    p = hk_pvalloc(5000);
    ck_assert_uint_eq((uintptr_t)p % 4096, 0);
    ck_assert_uint_ge(hk_usable_size(p), 8192);
    hk_free(p);
    errno = 0;
    ck_assert_ptr_null(hk_reallocarray(NULL, SIZE_MAX / 8, 16));
    ck_assert_int_eq(errno, ENOMEM);
    p = hk_reallocarray(NULL, 10, 10);
    ck_assert_uint_ge(hk_usable_size(p), 100);
    hk_free(p);
    ck_assert_int_eq(hk_mallopt(1, 1), 1);
    ck_assert_int_ge(hk_malloc_trim(0), 0);
}
END_TEST

static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

START_TEST(test_oom_under_rlimit_as)
{
#if defined(__SANITIZE_ADDRESS__)
    return;                             /* ASan reserves terabytes of shadow */
#endif
    struct rlimit rl = { vm_size() + (64 << 20), RLIM_INFINITY };
    rl.rlim_max = rl.rlim_cur;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
    static void *big[1000], *small[400000];
    size_t nb = 0, ns = 0;
    errno = 0;
    while (nb < 1000 && (big[nb] = hk_malloc(1 << 20)) != NULL)
        nb++;
    ck_assert_uint_lt(nb, 1000);
    ck_assert_uint_gt(nb, 10);
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    while (ns < 400000 && (small[ns] = hk_malloc(1000)) != NULL)
        ns++;
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_ptr_null(hk_calloc(1, 5 << 20));
    ck_assert_ptr_null(hk_memalign(1 << 21, 1 << 20));
    while (nb)
        hk_free(big[--nb]);
    while (ns)
        hk_free(small[--ns]);
    void *again = hk_malloc(1 << 20);   /* memory came back */
    ck_assert_ptr_nonnull(again);
    hk_free(again);
}
END_TEST

static void setup(void)
{
    hk_ensure_init();
}

static Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_libc_interface);
    tcase_add_test(tc, test_calloc_zero_on_reuse);
    tcase_add_test(tc, test_realloc_chain);
    tcase_add_test(tc, test_alignments);
    tcase_add_test(tc, test_huge_is_enomem);
    tcase_add_test(tc, test_large_cache_and_counters);
    tcase_add_test(tc, test_large_reuse_moves_block);
    tcase_add_test(tc, test_large_reuse_in_place);
    tcase_add_test(tc, test_large_extend_and_realloc_in_place);
    tcase_add_test(tc, test_stats_print_format);
    tcase_add_test(tc, test_thread_exit_returns_cache);
    tcase_add_test(tc, test_overflow_stays_in_thread);
    tcase_add_test(tc, test_foreign_early_block_left_alone);
    tcase_add_test(tc, test_oom_under_rlimit_as);
    tcase_add_test_raise_signal(tc, test_foreign_invalid_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_foreign_misaligned_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_large_double_free_aborts, SIGABRT);
    tcase_add_test(tc, test_medium_contents);
    tcase_add_test(tc, test_medium_realloc_across_classes);
    tcase_add_test(tc, test_medium_memalign);
    tcase_add_test(tc, test_medium_churn_no_syscalls);
    tcase_add_test_raise_signal(tc, test_medium_double_free_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_medium_interior_free_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_large_stale_pointer_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_header_pointer_aborts, SIGABRT);
    tcase_add_test(tc, test_free_key_in_user_data);
    tcase_add_test_raise_signal(tc, test_small_double_free_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_small_double_free_later_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_small_double_free_stash_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_small_double_free_central_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_small_double_free_other_thread_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_interior_free_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_slab_tail_free_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_big_class_interior_free_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(alloc_suite)
