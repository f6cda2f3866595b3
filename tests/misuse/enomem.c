/* enomem.c: requests no machine can grant get NULL and ENOMEM (suite
 * 'misuse'), as glibc gives them: malloc(30 GiB), calloc(100, 1 GiB),
 * malloc(64 TiB), posix_memalign(&p, 4096, 2^40) and the like, on a host
 * with less memory than that. Run with hakmem preloaded, linked, and on
 * glibc (the control: a failure there is a bug in the test).
 *
 * "Impossible" is the kernel's: under vm.overcommit_memory=0 a private
 * writable mapping larger than RAM + swap is refused, under 2 one beyond
 * the commit limit; under 1 the kernel grants any size that fits in the
 * address space, so the test skips (exit 77). Sizes below RAM + swap are
 * raised above it, so that the test means the same on a bigger host.
 *
 * With ENOMEM_EXPECT_MALLOC=substring it fails unless malloc comes from
 * an object whose path contains it. Exit 0 pass, 1 fail, 77 skip.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../malloc_origin.h"

#define GIB ((size_t)1 << 30)

static int failed;

static size_t meminfo_kb(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    size_t v = 0, n = strlen(key);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            v = strtoull(line + n + 1, NULL, 10);
            break;
        }
    if (f)
        fclose(f);
    return v;
}

static int overcommit_mode(void)
{
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    int m = 0;
    if (!f || fscanf(f, "%d", &m) != 1)
        m = 0;
    if (f)
        fclose(f);
    return m;
}

/* want NULL + ENOMEM (or, for posix_memalign, rc ENOMEM) */
static void expect(const char *what, void *p, int err)
{
    if (p || err != ENOMEM) {
        printf("enomem: FAIL: %s gave %p, errno %d (%s); want NULL, ENOMEM\n",
               what, p, err, strerror(err));
        failed = 1;
        free(p);
    } else {
        printf("enomem: %s: NULL, ENOMEM\n", what);
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (malloc_origin_check("enomem", getenv("ENOMEM_EXPECT_MALLOC")) != 0)
        return 1;
    int mode = overcommit_mode();
    if (mode == 1) {
        printf("SKIP: vm.overcommit_memory=1: the kernel grants any size (glibc gets it too)\n");
        return 77;
    }
    size_t avail = (meminfo_kb("MemTotal") + meminfo_kb("SwapTotal")) * 1024;
    if (mode == 2 && meminfo_kb("CommitLimit") * 1024 > avail)
        avail = meminfo_kb("CommitLimit") * 1024;
    /* sizes no host of this kind can grant: at least the figures */
    size_t big = 30 * GIB, huge = 100;
    while (big <= avail + GIB)
        big *= 2;
    while (huge * GIB <= avail + GIB)
        huge *= 2;
    size_t vast = (size_t)64 << 40, tib = (size_t)1 << 40;
    printf("enomem: overcommit mode %d, RAM + swap %zu MiB; sizes %zu GiB, %zu x 1 GiB\n",
           mode, avail >> 20, big / GIB, huge);

    char what[96];
    void *p;
    errno = 0;
    p = malloc(big);
    snprintf(what, sizeof(what), "malloc(%zu GiB)", big / GIB);
    expect(what, p, errno);

    errno = 0;
    p = calloc(huge, GIB);
    snprintf(what, sizeof(what), "calloc(%zu, 1 GiB)", huge);
    expect(what, p, errno);

    errno = 0;
    p = malloc(vast);
    expect("malloc(64 TiB)", p, errno);

    p = NULL;
    int rc = posix_memalign(&p, 4096, tib);
    expect("posix_memalign(&p, 4096, 2^40)", p, rc);

    errno = 0;
    p = aligned_alloc(4 << 20, big);    /* an alignment above 1 MiB */
    snprintf(what, sizeof(what), "aligned_alloc(4 MiB, %zu GiB)", big / GIB);
    expect(what, p, errno);

    errno = 0;
    p = memalign(64, big);
    snprintf(what, sizeof(what), "memalign(64, %zu GiB)", big / GIB);
    expect(what, p, errno);

    /* a failed realloc leaves the old block as it was */
    char *q = malloc(100000);
    memset(q, 0x5a, 100000);
    errno = 0;
    p = realloc(q, big);
    snprintf(what, sizeof(what), "realloc(100000 B block, %zu GiB)", big / GIB);
    bool moved = p != NULL;             /* then q is gone: p replaced it */
    expect(what, p, errno);
    for (size_t i = 0; !moved && i < 100000; i++)
        if ((unsigned char)q[i] != 0x5a) {
            printf("enomem: FAIL: the failed realloc changed byte %zu of the old block\n", i);
            failed = 1;
            break;
        }
    if (!moved)
        free(q);

    errno = 0;
    p = reallocarray(NULL, huge, GIB);
    snprintf(what, sizeof(what), "reallocarray(NULL, %zu, 1 GiB)", huge);
    expect(what, p, errno);

    /* and the allocator still works */
    q = malloc(1 << 20);
    if (!q) {
        printf("enomem: FAIL: malloc(1 MiB) after the refusals returned NULL\n");
        return 1;
    }
    memset(q, 1, 1 << 20);
    free(q);
    printf("enomem: %s\n", failed ? "FAIL" : "OK");
    return failed;
}
