/* os.c: the OS box. The only file that calls mmap, munmap, mremap,
 * madvise and process_madvise; every call is counted (mremap counts as an
 * mmap call, process_madvise as a madvise call). Knows
 * nothing of slabs or policy: it maps, unmaps and resizes what it is told.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include "hk_internal.h"

#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

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

/* Map len bytes (a multiple of HK_PAGE) at exactly p, where nothing is
 * mapped yet; false (nothing mapped) when any of it is taken. */
bool hk_os_map_at(void *p, size_t len)
{
    void *q = hk_mmap(p, len, MAP_FIXED_NOREPLACE);
    if (q == p)
        return true;
    if (q != MAP_FAILED)                /* a kernel that took it as a hint */
        hk_munmap(q, len);
    return false;
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
        if (hk_os_map_at(want, len)) {
            atomic_store_explicit(&hk_os_hint, (uintptr_t)want, memory_order_relaxed);
            return want;
        }
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

/* Map len bytes (rounded up to pages) anywhere. NULL with errno ENOMEM
 * when the OS refuses. */
void *hk_os_map(size_t len)
{
    void *p = hk_mmap(NULL, hk_round(len, HK_PAGE), 0);
    if (p != MAP_FAILED)
        return p;
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

/* Is a seccomp filter installed? Then process_madvise, which a filter
 * may answer by killing the process, is not tried (madvise is). Read
 * from /proc at each purge round: a program may install one late. */
static bool hk_seccomp_filtered(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return true;
    buf[n] = 0;
    const char *f = strstr(buf, "\nSeccomp:");
    if (!f)                             /* a kernel without seccomp, or cut */
        return (size_t)n == sizeof(buf) - 1;
    f += strlen("\nSeccomp:");
    while (*f == ' ' || *f == '\t')
        f++;
    return *f != '0';
}

/* A decommit operation (a call that gave back free memory). */
static void count_decommit(bool eager)
{
    HK_CTR_ADD(lean_decommit, 1);
    if (eager)
        HK_CTR_ADD(lean_decommit_eager, 1);
}

/* process_madvise on this process: 1 works, -1 does not (an older kernel,
 * a filter), 0 not tried yet. */
static _Atomic int hk_pmadvise_state;
/* This process's pidfd from hk_os_decommit_begin to hk_os_decommit_end,
 * or -1 (one purge round at a time uses it: decommit.c). */
static int hk_decommit_pidfd = -1;

/* A purge round's madvise calls start: batch them if this process can. */
void hk_os_decommit_begin(void)
{
    if (atomic_load_explicit(&hk_pmadvise_state, memory_order_relaxed) >= 0 &&
        !hk_seccomp_filtered())
        hk_decommit_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0u);
}

void hk_os_decommit_end(void)
{
    if (hk_decommit_pidfd >= 0)
        close(hk_decommit_pidfd);
    hk_decommit_pidfd = -1;
}

/* Give back the n ranges of iov. Batched in one process_madvise where the
 * kernel allows it on this process (Linux 6.13): the kernel then flushes
 * the TLB once for all ranges, instead of once per page per range; on
 * this VM 4654 runs of 10 pages took 4.0 s one madvise each and 0.09 s in
 * batches of 256. Else (outside a round's begin/end, or the kernel
 * refuses) one madvise per range. Returns the bytes given back. */
static size_t hk_madvise_ranges(struct iovec *iov, unsigned n, bool eager)
{
    size_t total = 0;
    unsigned done = 0;
    int st = atomic_load_explicit(&hk_pmadvise_state, memory_order_relaxed);
    if (n > 1 && st >= 0 && hk_decommit_pidfd >= 0) {
        HK_CTR_ADD(madvise_calls, 1);
        long r = syscall(SYS_process_madvise, hk_decommit_pidfd, iov, (size_t)n,
                         eager ? MADV_DONTNEED : MADV_FREE, 0u);
        if (r >= 0) {
            if (st == 0)
                atomic_store_explicit(&hk_pmadvise_state, 1, memory_order_relaxed);
            count_decommit(eager);
            while (done < n && total + iov[done].iov_len <= (size_t)r)
                total += iov[done++].iov_len;   /* the ranges done in full */
        } else if (st == 0) {
            atomic_store_explicit(&hk_pmadvise_state, -1, memory_order_relaxed);
        }
    }
    for (unsigned i = done; i < n; i++) {   /* one by one: the rest, or all */
        if (hk_madvise(iov[i].iov_base, iov[i].iov_len, eager) == 0) {
            total += iov[i].iov_len;
            count_decommit(eager);
        }
    }
    return total;
}

/* The one conversion point for decommit: give back the pages of ss whose
 * bits are set in mask (bit p: page p of the superslab), a range per run
 * of pages (hk_madvise_ranges), MADV_DONTNEED when eager, else MADV_FREE.
 * The caller keeps those pages free meanwhile and counts them
 * (decommit.c). Returns the bytes decommitted. A superslab that asks for
 * huge pages (HAKMEM_SS_HUGEPAGE) stops asking first, once: decommitting
 * pages of a huge page splits it, and khugepaged would otherwise collapse
 * the range again, faulting the given-back pages back in. */
size_t ss_maybe_decommit_superslab(struct hk_ss *ss, const uint64_t mask[HK_SS_PAGES / 64],
                                   bool eager)
{
    struct iovec iov[HK_SS_PAGES / 2];  /* runs are apart: at most half */
    unsigned n = 0, p = 0;
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
        iov[n].iov_base = (char *)ss + (size_t)p * HK_PAGE;
        iov[n].iov_len = (size_t)(q - p) * HK_PAGE;
        n++;
        p = q;
    }
    return n ? hk_madvise_ranges(iov, n, eager) : 0;
}
