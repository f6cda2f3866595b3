/* foreign.c: pointers the registry says are not ours.
 *
 * Before our first malloc runs, ld.so serves its own early allocations
 * from a minimal allocator (in its data segment and in anonymous
 * mappings) and may later pass them to free() or realloc(). At start we
 * record the writable anonymous and ld.so mappings that already exist
 * (read from /proc/self/maps, without allocating): a foreign pointer in
 * one of them is such an early block, and is left alone (free) or copied
 * out of (realloc), unless it lies in a loaded object's static data (the
 * .bss of the program or a library can be anonymous memory too). Any
 * other foreign pointer is a bug in the program: we abort naming the
 * function and the pointer, as glibc does, rather than guess.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include "hk_internal.h"

#define HK_PREINIT_MAX 64

struct hk_range { uintptr_t lo, hi; };
static struct hk_range hk_preinit[HK_PREINIT_MAX];
static unsigned hk_npreinit;
static bool hk_preinit_known;          /* false: /proc was unreadable */

/* One line of /proc/self/maps: keep writable anonymous and ld.so ranges,
 * merging a range that continues the previous one. */
static void note_line(const char *line, size_t n)
{
    struct hk_maps_entry e;
    if (!hk_maps_parse(line, n, &e) || !e.rw || !(e.anon || e.rtld))
        return;
    if (hk_npreinit > 0 && hk_preinit[hk_npreinit - 1].hi == e.lo) {
        hk_preinit[hk_npreinit - 1].hi = e.hi;
        return;
    }
    if (hk_npreinit < HK_PREINIT_MAX)
        hk_preinit[hk_npreinit++] = (struct hk_range){ e.lo, e.hi };
}

void hk_foreign_snapshot(void)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[4096], line[512];
    size_t ln = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] == '\n') {
                note_line(line, ln);
                ln = 0;
            } else if (ln < sizeof(line)) {
                line[ln++] = buf[i];
            }
        }
    }
    close(fd);
    hk_preinit_known = true;
}

/* Bytes from p to the end of the early mapping holding it, or 0. */
size_t hk_foreign_preinit_span(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    for (unsigned i = 0; i < hk_npreinit; i++)
        if (a >= hk_preinit[i].lo && a < hk_preinit[i].hi)
            return hk_preinit[i].hi - a;
    return 0;
}

/* dl_iterate_phdr callback: stop (1) when the address at arg lies in a
 * loadable segment of an object other than ld.so. */
static int in_static_image(struct dl_phdr_info *info, size_t size, void *arg)
{
    uintptr_t a = *(const uintptr_t *)arg;
    uintptr_t rtld = (uintptr_t)getauxval(AT_BASE);
    if ((rtld && info->dlpi_addr == rtld) || (info->dlpi_name && strstr(info->dlpi_name, "/ld-linux")))
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && a >= lo && a - lo < ph->p_memsz)
            return 1;
    }
    return 0;
}

/* Early blocks are 16-aligned and lie in a range the snapshot kept, but
 * not in the static data of the program or a library (whose .bss may
 * extend into an anonymous mapping of its own): anything else is not a
 * block at all. Runs only for pointers that are not ours. */
static bool plausible_early(const void *p)
{
    if (((uintptr_t)p & (HK_MIN_ALIGN - 1)) != 0)
        return false;
    if (!hk_preinit_known)
        return true;                    /* cannot tell: do no harm */
    uintptr_t a = (uintptr_t)p;
    return hk_foreign_preinit_span(p) != 0 && dl_iterate_phdr(in_static_image, &a) == 0;
}

/* Guarded (large.c's table has a lock); under the guard, deferred. */
void hk_free_foreign(void *p, const char *who)
{
    struct hk_tcache *tc = &hk_tls;
    if (tc->guard) {
        hk_guard_defer_foreign(p);
        return;
    }
    tc->guard = 1;
    if (!hk_huge_aligned_find(p, NULL, true) && !plausible_early(p))
        hk_fatal("%s(): invalid pointer %p (not allocated by hakmem)", who, p);
    /* else an early block of ld.so: not ours to reuse; leave it. */
    hk_guard_leave(tc);
}

size_t hk_usable_foreign(void *p)
{
    size_t usable;
    if (hk_huge_aligned_find(p, &usable, false))
        return usable;
    if (!plausible_early(p))
        hk_fatal("malloc_usable_size(): invalid pointer %p (not allocated by hakmem)", p);
    return 0;                           /* size unknown */
}

/* realloc of an early block: its size is unknown, so copy n bytes or up
 * to the end of its mapping, whichever is less; the old block stays. */
void *hk_realloc_foreign(void *p, size_t n)
{
    size_t usable;
    if (hk_huge_aligned_find(p, &usable, false)) {
        void *q = hk_malloc(n);
        if (q) {
            memcpy(q, p, n < usable ? n : usable);
            hk_huge_aligned_find(p, NULL, true);
        }
        return q;
    }
    if (!plausible_early(p) || !hk_preinit_known)
        hk_fatal("realloc(): invalid pointer %p (not allocated by hakmem)", p);
    size_t span = hk_foreign_preinit_span(p);
    void *q = hk_malloc(n);
    if (q)
        memcpy(q, p, n < span ? n : span);
    return q;
}
