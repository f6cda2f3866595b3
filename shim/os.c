/* os.c: the OS box. The only file that calls mmap, munmap, mremap and
 * madvise; every call is counted (mremap counts as an mmap call). Knows
 * nothing of slabs or policy: it maps, unmaps and resizes what it is told.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>
#include "hk_internal.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* Segments grow down from the last aligned mapping: mapping at a hint
 * just below it is one syscall and is aligned by construction; only when
 * the hint is taken do we over-map and trim (three calls). */
static _Atomic uintptr_t hk_os_hint;

/* Every mapping holds memory handed to the program (superslabs, large
 * blocks), so none is MAP_NORESERVE: the kernel charges it to the commit
 * count, and under the default heuristic overcommit (vm.overcommit_memory
 * 0) refuses one larger than RAM + swap, under 2 one beyond the commit
 * limit. That is how malloc(30 GiB) on a smaller host gets ENOMEM, as with
 * glibc. Pages given back with madvise stay charged; only munmap returns
 * the charge. */
static void *hk_mmap(void *addr, size_t len, int extra)
{
    HK_CTR_ADD(mmap_calls, 1);
    return mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
}

static void hk_munmap(void *p, size_t len)
{
    HK_CTR_ADD(munmap_calls, 1);
    if (munmap(p, len) != 0)
        hk_log("munmap(%p, %zu) failed: errno %d", p, len, errno);
}

static size_t hk_round(size_t n, size_t to)
{
    return (n + to - 1) & ~(to - 1);
}

/* Map len bytes (rounded up to pages) at a 2 MiB boundary. NULL with
 * errno ENOMEM when the OS refuses. */
void *hk_os_map_aligned(size_t len)
{
    len = hk_round(len, HK_PAGE);
    size_t span = hk_round(len, HK_SEG_SIZE);
    if (len == 0 || span < len)
        goto nomem;

    uintptr_t hint = atomic_load_explicit(&hk_os_hint, memory_order_relaxed);
    if (hint > span + ((uintptr_t)1 << 32)) {
        void *want = (void *)(hint - span);
        void *p = hk_mmap(want, len, MAP_FIXED_NOREPLACE);
        if (p == want) {
            atomic_store_explicit(&hk_os_hint, (uintptr_t)p, memory_order_relaxed);
            return p;
        }
        if (p != MAP_FAILED)            /* a kernel that took it as a hint */
            hk_munmap(p, len);
    }

    size_t over = len + HK_SEG_SIZE;
    if (over < len)
        goto nomem;
    char *raw = hk_mmap(NULL, over, 0);
    if (raw == MAP_FAILED)
        goto nomem;
    uintptr_t a = hk_round((uintptr_t)raw, HK_SEG_SIZE);
    size_t head = a - (uintptr_t)raw;
    size_t tail = over - head - len;
    if (head)
        hk_munmap(raw, head);
    if (tail)
        hk_munmap((char *)a + len, tail);
    atomic_store_explicit(&hk_os_hint, a, memory_order_relaxed);
    return (void *)a;

nomem:
    errno = ENOMEM;
    return NULL;
}

void hk_os_unmap(void *p, size_t len)
{
    hk_munmap(p, hk_round(len, HK_PAGE));
}

/* Map a shared file (the daemon's ring, our stats page). NULL on failure,
 * errno set. */
void *hk_os_map_shared(int fd, size_t len, bool writable)
{
    HK_CTR_ADD(mmap_calls, 1);
    void *p = mmap(NULL, len, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Grow the mapping at p in place (never moves: segments must stay where
 * the registry says they are). */
bool hk_os_grow_inplace(void *p, size_t old_len, size_t new_len)
{
    HK_CTR_ADD(mmap_calls, 1);
    return mremap(p, old_len, new_len, 0) == p;
}

/* Give back the tail of a mapping beyond new_len. */
bool hk_os_shrink(void *p, size_t old_len, size_t new_len)
{
    if (new_len >= old_len)
        return false;
    hk_munmap((char *)p + new_len, old_len - new_len);
    return true;
}

/* Ask for transparent huge pages on [p, p+len) (on), or no more (off:
 * neither at fault time nor by khugepaged's collapsing). Advisory: a
 * kernel without THP refuses and nothing changes. */
void hk_os_hugepage(void *p, size_t len, bool on)
{
    HK_CTR_ADD(madvise_calls, 1);
    (void)madvise(p, len, on ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
}

static int hk_madvise(void *p, size_t len, bool eager)
{
    HK_CTR_ADD(madvise_calls, 1);
    if (!eager && madvise(p, len, MADV_FREE) == 0)
        return 0;
    if (!eager)                         /* a kernel without MADV_FREE */
        HK_CTR_ADD(madvise_calls, 1);
    return madvise(p, len, MADV_DONTNEED);
}

/* The one conversion point for decommit: give back the pages of ss whose
 * bits are set in mask (bit p: page p of the superslab), one madvise per
 * run of pages, MADV_DONTNEED when eager, else MADV_FREE. upgrade: the
 * pages were given back lazily (MADV_FREE) before and are made certain now
 * (eager): counted as madvise calls and decommits, not as bytes given back
 * again. The caller holds whatever lock keeps those pages free. Returns
 * the bytes decommitted. A superslab that asks for huge pages
 * (HAKMEM_SS_HUGEPAGE) stops asking first, once: decommitting pages of a
 * huge page splits it, and khugepaged would otherwise collapse the range
 * again, faulting the given-back pages back in. */
size_t ss_maybe_decommit_superslab(struct hk_ss *ss, const uint64_t mask[HK_SS_PAGES / 64],
                                   bool eager, bool upgrade)
{
    size_t total = 0;
    unsigned p = 0;
    if (atomic_load_explicit(&ss->hugepage, memory_order_relaxed) &&
        atomic_exchange_explicit(&ss->hugepage, 0, memory_order_relaxed))
        hk_os_hugepage(ss, HK_SEG_SIZE, false);
    while (p < HK_SS_PAGES) {
        uint64_t w = mask[p / 64] >> (p % 64);
        if (!w) {
            p = (p / 64 + 1) * 64;
            continue;
        }
        p += (unsigned)__builtin_ctzll(w);
        unsigned q = p;
        while (q < HK_SS_PAGES && (mask[q / 64] >> (q % 64)) & 1)
            q++;
        size_t len = (size_t)(q - p) * HK_PAGE;
        if (hk_madvise((char *)ss + (size_t)p * HK_PAGE, len, eager) == 0) {
            total += len;
            HK_CTR_ADD(lean_decommit, 1);
            if (eager)
                HK_CTR_ADD(lean_decommit_eager, 1);
        }
        p = q;
    }
    if (upgrade)
        return total;
    HK_CTR_ADD(bytes_decommitted, total);
    HK_CTR_SUB(bytes_committed, total);
    atomic_fetch_add_explicit(&hk_released_pages, total / HK_PAGE, memory_order_relaxed);
    return total;
}
