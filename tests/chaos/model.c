/* model.c: a model-based property test of the malloc API, for whatever
 * malloc the process runs with (hakmem preloaded in the tests). A model
 * keeps every live block (address, size asked, alignment, fill seed); a
 * seeded generator draws operations -- malloc, calloc, realloc (grow,
 * shrink, to and from NULL), memalign, posix_memalign, aligned_alloc,
 * valloc, free, malloc_usable_size, malloc_trim -- interleaved with
 * pressure levels and mode switches (hakmem_apply_pressure,
 * hakmem_set_mode, found with dlsym), and checks after each one what the
 * model says must hold: alignment, usable size >= size, calloc zeroes,
 * realloc keeps the prefix, every live block keeps its contents, and no
 * two live blocks overlap (checked every 1024 operations on the sorted
 * blocks).
 *
 * usage: model SEED [OPS]   (OPS default 50000)
 * One thread, so a seed replays the same operations: a failure prints
 * "model: FAIL seed S op N: ..." and exits 1; rerun with that seed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 2048

struct blk {
    unsigned char *p;
    size_t size;                        /* bytes asked (and patterned) */
    size_t align;                       /* asked for, 0 for malloc's */
    uint64_t seed;                      /* pattern */
};

static struct blk live[SLOTS];
static uint64_t the_seed, rng, op;
static int (*apply_level)(int);
static int (*set_mode)(int);

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "model: FAIL seed %" PRIu64 " op %" PRIu64 ": ", the_seed, op);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

static uint64_t next(void)
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Sizes: mostly small, some medium and large, a few huge. */
static size_t draw_size(void)
{
    uint64_t r = next();
    unsigned k = (unsigned)(r % 1000);
    r >>= 10;
    if (k < 700)
        return (size_t)(r % 1025);                      /* 0 .. 1 KiB */
    if (k < 920)
        return 1025 + (size_t)(r % (32 * 1024));        /* .. 33 KiB */
    if (k < 997)
        return 33 * 1024 + (size_t)(r % (1024 * 1024)); /* .. 1 MiB */
    return (1 << 20) + (size_t)(r % (3 << 20));         /* .. 4 MiB */
}

/* Pattern of byte i of a block with seed s. Blocks above 64 KiB are
 * patterned at their head, their tail and one byte per 4 KiB page. */
static unsigned char pat(uint64_t s, size_t i)
{
    return (unsigned char)((s >> (i % 7)) + i * 131);
}

#define DENSE 65536

static void each_byte(const struct blk *b, void (*fn)(const struct blk *, size_t))
{
    if (b->size <= DENSE) {
        for (size_t i = 0; i < b->size; i++)
            fn(b, i);
        return;
    }
    for (size_t i = 0; i < 4096; i++) {
        fn(b, i);
        fn(b, b->size - 1 - i);
    }
    for (size_t i = 4096; i < b->size - 4096; i += 4096)
        fn(b, i + (b->seed % 4096));
}

static void put_byte(const struct blk *b, size_t i)
{
    b->p[i] = pat(b->seed, i);
}

static void chk_byte(const struct blk *b, size_t i)
{
    if (b->p[i] != pat(b->seed, i))
        fail("block %p (%zu bytes, align %zu) byte %zu is %u, want %u", (void *)b->p, b->size,
             b->align, i, b->p[i], pat(b->seed, i));
}

static void zero_byte(const struct blk *b, size_t i)
{
    if (b->p[i])
        fail("calloc block %p (%zu bytes) byte %zu is %u", (void *)b->p, b->size, i, b->p[i]);
}

static void fill(struct blk *b)
{
    b->seed = next();
    each_byte(b, put_byte);
}

static void verify(const struct blk *b)
{
    each_byte(b, chk_byte);
}

static void got(struct blk *b, void *p, size_t size, size_t align, const char *how)
{
    if (!p && size == 0)
        return;                         /* malloc(0) may be NULL (not hakmem's) */
    if (!p)
        fail("%s(%zu, align %zu) returned NULL: %s", how, size, align, strerror(errno));
    size_t a = align ? align : 16;
    if ((uintptr_t)p % a)
        fail("%s(%zu) returned %p, not aligned on %zu", how, size, p, a);
    size_t u = malloc_usable_size(p);
    if (u < size)
        fail("%s(%zu) returned %p with usable size %zu", how, size, p, u);
    b->p = p;
    b->size = size;
    b->align = align;
}

static int by_addr(const void *x, const void *y)
{
    const struct blk *a = x, *b = y;
    return a->p < b->p ? -1 : a->p > b->p;
}

static void no_overlap(void)
{
    static struct blk s[SLOTS];
    size_t n = 0;
    for (size_t i = 0; i < SLOTS; i++)
        if (live[i].p)
            s[n++] = live[i];
    qsort(s, n, sizeof(s[0]), by_addr);
    for (size_t i = 1; i < n; i++)
        if (s[i - 1].p + (s[i - 1].size ? s[i - 1].size : 1) > s[i].p)
            fail("blocks %p (%zu bytes) and %p overlap", (void *)s[i - 1].p, s[i - 1].size,
                 (void *)s[i].p);
}

static size_t draw_align(void)
{
    static const size_t aligns[] = { 16, 32, 64, 128, 256, 4096, 65536, 1 << 21 };
    unsigned k = (unsigned)(next() % 64);
    return aligns[k < 60 ? k % 5 : 5 + (k - 60) % 3];
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: model SEED [OPS]\n");
        return 2;
    }
    the_seed = strtoull(argv[1], NULL, 0);
    uint64_t ops = argc > 2 ? strtoull(argv[2], NULL, 0) : 50000;
    rng = the_seed;
    apply_level = (int (*)(int))dlsym(RTLD_DEFAULT, "hakmem_apply_pressure");
    set_mode = (int (*)(int))dlsym(RTLD_DEFAULT, "hakmem_set_mode");
    uint64_t changes = 0;

    for (op = 0; op < ops; op++) {
        struct blk *b = &live[next() % SLOTS];
        unsigned k = (unsigned)(next() % 1000);
        if (k < 5) {                                    /* pressure */
            unsigned l = (unsigned)(next() % 6);
            if (apply_level && l < 4)
                apply_level((int)l);
            else if (set_mode)
                set_mode((int)(l & 1));
            changes += apply_level != NULL;
            continue;
        }
        if (k < 6) {
            malloc_trim(0);
            continue;
        }
        if (b->p && k < 400) {                          /* free */
            verify(b);
            free(b->p);
            b->p = NULL;
            continue;
        }
        if (b->p && k < 650) {                          /* realloc */
            verify(b);
            size_t n = next() % 4 ? draw_size() : b->size / 2;
            struct blk old = *b;
            void *q = realloc(b->p, n);
            if (n == 0) {                               /* glibc: frees, NULL */
                b->p = NULL;
                continue;
            }
            got(b, q, n, 0, "realloc");
            /* the prefix moved along: every patterned byte below n */
            size_t keep = old.size < n ? old.size : n;
            struct blk pre = { b->p, old.size <= DENSE ? keep : (keep < 4096 ? keep : 4096), 0,
                               old.seed };
            verify(&pre);
            fill(b);
            continue;
        }
        if (b->p) {                                     /* check and keep */
            verify(b);
            if (malloc_usable_size(b->p) < b->size)
                fail("usable size of %p dropped below %zu", (void *)b->p, b->size);
            continue;
        }
        size_t n = draw_size();
        if (k < 500) {
            got(b, malloc(n), n, 0, "malloc");
        } else if (k < 650) {
            size_t m = 1 + next() % 8;
            got(b, calloc(m, n / m + 1), m * (n / m + 1), 0, "calloc");
            each_byte(b, zero_byte);
        } else if (k < 750) {
            size_t a = draw_align();
            got(b, memalign(a, n), n, a, "memalign");
        } else if (k < 850) {
            size_t a = draw_align();
            void *p = NULL;
            int rc = posix_memalign(&p, a, n);
            if (rc != 0)
                fail("posix_memalign(%zu, %zu): %s", a, n, strerror(rc));
            got(b, p, n, a, "posix_memalign");
        } else if (k < 950) {
            size_t a = draw_align();
            got(b, aligned_alloc(a, n), n, a, "aligned_alloc");
        } else {
            got(b, valloc(n), n, 4096, "valloc");
        }
        if (b->p)
            fill(b);
        if (op % 1024 == 0)
            no_overlap();
    }
    no_overlap();
    for (size_t i = 0; i < SLOTS; i++)
        if (live[i].p) {
            verify(&live[i]);
            free(live[i].p);
        }
    printf("model: seed %" PRIu64 ", %" PRIu64 " operations, %" PRIu64 " level or mode changes: OK\n",
           the_seed, ops, changes);
    return 0;
}
