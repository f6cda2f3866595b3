/* alloc.c: the entry points. Holds the fast paths only: a thread-cache
 * pop for malloc, a registry test and a thread-cache push for free.
 * Everything else (refill, flush, large blocks, foreign pointers, set-up)
 * is a call into the slow paths of tcache.c, large.c and foreign.c.
 *
 * The fast path makes no syscall, takes no lock, reads no option and
 * logs nothing. The libc names are aliases of the hk_ functions, defined
 * at the end unless HK_NO_LIBC_NAMES (the unit-test build, which runs
 * beside the sanitizers' own malloc).
 */
#include <errno.h>
#include <string.h>
#include "hk_internal.h"

/* Out of line: keeps the fast paths free of its stack frame. Guarded
 * (guard.c): large.c takes its lock. */
__attribute__((noinline, cold)) static void *hk_malloc_large(size_t n, size_t align, bool zero)
{
    hk_ensure_init();
    struct hk_tcache *tc = &hk_tls;
    if (tc->guard)
        return hk_guard_alloc(n, align);
    tc->guard = 1;
    hk_listener_restart_if_forked();    /* a child that only maps large blocks registers too */
    void *p = align > HK_SEG_SIZE / 2 ? hk_huge_aligned_alloc(n, align)
                                      : hk_large_alloc(n, align, zero);
    int e = errno;
    hk_guard_leave(tc);
    errno = e;
    return p;
}

/* A bin is usable by malloc while 0 < n <= HK_TC_SLOTS: one compare
 * (HK_BIN_CLOSED and HK_BIN_STOLEN fail it, see hk_types.h). busy stays
 * set when the slow path takes over; it clears it. The block leaves
 * without the free key (see init.c). */
static inline void *hk_malloc_bin(struct hk_bin *b)
{
    hk_bin_busy(b);
    size_t n = hk_bin_n(b);
    if (HK_LIKELY(n - 1 < HK_TC_SLOTS)) {
        uint64_t *p = b->slot[n - 1];
        hk_bin_commit(b, n - 1);
        p[1] = 0;
        return p;
    }
    return hk_malloc_slow(b);
}

/* Also before start-up (hk_lookup.bin_off is filled then). */
static inline void *hk_malloc_cls(unsigned cls)
{
    return hk_malloc_bin(hk_bin_at(HK_BIN_OFF(cls)));
}

/* 1 KiB < n: the computed class, or a large block. Out of line so that
 * the fast path below needs no stack frame. */
__attribute__((noinline)) static void *hk_malloc_big(size_t n)
{
    if (n <= HK_SMALL_MAX)
        return hk_malloc_cls(hk_class_of_slow(n));
    if (n <= HK_MEDIUM_MAX)
        return hk_medium_alloc(hk_class_of_slow(n));
    return hk_malloc_large(n, 0, false);
}

void *hk_malloc(size_t n)
{
    if (HK_LIKELY(n <= HK_LUT_MAX))
        return hk_malloc_bin(hk_bin_at(hk_bin_lut[(n + HK_MIN_ALIGN - 1) / HK_MIN_ALIGN]));
    return hk_malloc_big(n);
}

/* The push of free's fast paths: p is a block that does not carry the
 * free key, off its class's bin (hk_lookup.bin_off); false when the bin
 * has no room (or is closed or being stolen). */
static inline bool hk_free_push(uint64_t *w, size_t off, uint64_t key)
{
    struct hk_bin *b = hk_bin_at(off);
    hk_bin_busy(b);
    size_t n = hk_bin_n(b);
    if (HK_LIKELY(hk_bin_below_cap(b, (uint32_t)n))) {     /* another thread may zero it */
        w[1] = key;
        b->slot[n] = w;
        hk_bin_commit(b, n + 1);
        return true;
    }
    return false;
}

/* A block of a class with four-unit slabs (> 4 KiB), which the fast
 * path's 16-bit test refuses: the same test on the offset in the 256
 * KiB-aligned slab (hk_block_check4; zero, so false, for every other unit
 * class). */
static inline bool hk_block_check_mid(uintptr_t a, size_t cls)
{
    const struct hk_block_check4 *k = &hk_lookup.check4[cls];
    return (a & (4 * HK_UNIT_SIZE - 1)) * k->mul < k->lim;
}

/* The fast path's checks, folded: p starts a block (hk_block_check for
 * one-unit slabs, then hk_block_check_mid: refuse interior pointers, the
 * header, free units, large and guard segments, which the slow path
 * judges), the block does not carry the free key (a double free, see
 * init.c), and the bin has room. */
void hk_free(void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (HK_LIKELY(hk_reg_test(a))) {
        struct hk_seg *seg = hk_seg_of(p);
        size_t cls = hk_unit_cls(seg, p);
        const struct hk_block_check *k = &hk_lookup.check[cls];
        size_t off = hk_lookup.bin_off[cls];
        uint64_t *w = p, key = hk_free_key;
        if ((HK_LIKELY((uint32_t)((uint32_t)(a & 0xffff) * k->mul) < k->lim) ||
             hk_block_check_mid(a, cls)) &&
            HK_LIKELY(w[1] != key) && HK_LIKELY(hk_free_push(w, off, key)))
            return;
        hk_free_slow(p);
        return;
    }
    if (p)
        hk_free_foreign(p, "free");
}

/* Small block size or large usable size of our pointer p (the registry
 * says it is ours); aborts naming who when p is not a block. Takes no
 * lock. */
size_t hk_block_size(void *p, const char *who)
{
    struct hk_seg *seg = hk_seg_of(p);
    unsigned cls = hk_unit_cls(seg, p);
    if (cls < HK_NALLCLASS) {
        if (!hk_block_valid((struct hk_ss *)seg, p))
            hk_fatal("%s(): invalid pointer %p", who, p);
        return hk_class_size[cls];
    }
    if (cls == HK_CLS_LARGE)
        return hk_large_usable((struct hk_large *)seg, p, who);
    if (cls == HK_CLS_GUARD)
        return hk_guard_usable(seg, p, who);
    hk_ss_refuse(p, who);
}

void *hk_calloc(size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    if (n > HK_MEDIUM_MAX)
        return hk_malloc_large(n, 0, true);
    void *p = hk_malloc(n);
    if (p)
        memset(p, 0, n);
    return p;
}

void *hk_realloc(void *p, size_t n)
{
    if (!p)
        return hk_malloc(n);
    if (n == 0) {                       /* glibc: frees, returns NULL */
        hk_free(p);
        return NULL;
    }
    if (!hk_reg_test((uintptr_t)p))
        return hk_realloc_foreign(p, n);

    struct hk_seg *seg = hk_seg_of(p);
    unsigned cls = hk_unit_cls(seg, p);
    size_t old;
    if (cls < HK_NALLCLASS) {
        old = hk_block_size(p, "realloc");
        if (n <= old && (n > old / 2 || old <= 32))
            return p;                   /* shrinking by less than half */
    } else if (cls == HK_CLS_LARGE) {
        struct hk_large *l = (struct hk_large *)seg;
        if (n > HK_SMALL_MAX / 2 && hk_large_realloc(l, p, n))
            return p;
        old = l->user_size;
    } else if (cls == HK_CLS_GUARD) {
        old = hk_guard_size(seg, p);
    } else {
        hk_fatal("realloc(): invalid pointer %p", p);
    }
    void *q = hk_malloc(n);
    if (!q)
        return NULL;                    /* p untouched, errno ENOMEM */
    memcpy(q, p, old < n ? old : n);
    hk_free(p);
    return q;
}

static bool is_pow2(size_t a)
{
    return a && !(a & (a - 1));
}

/* align: a power of two. */
void *hk_memalign(size_t align, size_t n)
{
    if (align <= HK_MIN_ALIGN)
        return hk_malloc(n);
    int cls = hk_class_for_aligned(n, align);
    if (cls >= HK_NCLASS)
        return hk_medium_alloc((unsigned)cls);
    if (cls >= 0)
        return hk_malloc_cls((unsigned)cls);
    return hk_malloc_large(n, align, false);
}

size_t hk_usable_size(void *p)
{
    if (!p)
        return 0;
    if (!hk_reg_test((uintptr_t)p))
        return hk_usable_foreign(p);
    return hk_block_size(p, "malloc_usable_size");
}

/* ---- the rest of the libc interface ---- */

void *hk_reallocarray(void *p, size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return hk_realloc(p, n);
}

int hk_posix_memalign(void **out, size_t align, size_t n)
{
    if (!is_pow2(align) || align % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = hk_memalign(align, n);
    if (!p) {
        int e = errno;
        errno = saved;
        return e ? e : ENOMEM;
    }
    *out = p;
    errno = saved;
    return 0;
}

void *hk_aligned_alloc(size_t align, size_t n)
{
    if (!is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return hk_memalign(align, n);
}

/* glibc's memalign rounds an alignment that is not a power of two up. */
void *hk_memalign_libc(size_t align, size_t n)
{
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    while (!is_pow2(align))
        align = align ? (align | (align - 1)) + 1 : 1;
    return hk_memalign(align, n);
}

void *hk_valloc(size_t n)
{
    return hk_memalign(HK_PAGE, n);
}

void *hk_pvalloc(size_t n)
{
    size_t r = n ? (n + HK_PAGE - 1) & ~(size_t)(HK_PAGE - 1) : HK_PAGE;
    if (r < n) {
        errno = ENOMEM;
        return NULL;
    }
    return hk_memalign(HK_PAGE, r);
}

int hk_malloc_trim(size_t pad)
{
    return hakmem_trim();
}

/* Accepted for compatibility; none of glibc's knobs applies here. */
int hk_mallopt(int param, int value)
{
    return 1;
}

#ifndef HK_NO_LIBC_NAMES
#define HK_ALIAS(name, target) \
    extern __typeof(target) name __attribute__((alias(#target), visibility("default")))
HK_ALIAS(malloc, hk_malloc);
HK_ALIAS(free, hk_free);
HK_ALIAS(calloc, hk_calloc);
HK_ALIAS(realloc, hk_realloc);
HK_ALIAS(reallocarray, hk_reallocarray);
HK_ALIAS(posix_memalign, hk_posix_memalign);
HK_ALIAS(aligned_alloc, hk_aligned_alloc);
HK_ALIAS(memalign, hk_memalign_libc);
HK_ALIAS(valloc, hk_valloc);
HK_ALIAS(pvalloc, hk_pvalloc);
HK_ALIAS(malloc_usable_size, hk_usable_size);
HK_ALIAS(malloc_trim, hk_malloc_trim);
HK_ALIAS(mallopt, hk_mallopt);
/* glibc's own names for the same functions, which some programs call */
HK_ALIAS(__libc_malloc, hk_malloc);
HK_ALIAS(__libc_free, hk_free);
HK_ALIAS(__libc_calloc, hk_calloc);
HK_ALIAS(__libc_realloc, hk_realloc);
HK_ALIAS(__libc_memalign, hk_memalign_libc);
HK_ALIAS(cfree, hk_free);
#endif
