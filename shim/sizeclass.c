/* sizeclass.c: the size class table and the size -> class mapping.
 * Pure functions and constant tables; no state. Classes: 16..128 in steps
 * of 16, then four per doubling up to 32 KiB (small: at most 25%
 * internal waste above 128 B, as in jemalloc's spacing), then eight per
 * doubling to 1 MiB (medium: at most 12.5%; they cost no thread-cache
 * bin, and a medium block's waste is pages).
 */
#include "hk_internal.h"

const uint32_t hk_class_size[HK_NALLCLASS] = {
    16, 32, 48, 64, 80, 96, 112, 128,
    160, 192, 224, 256,
    320, 384, 448, 512,
    640, 768, 896, 1024,
    1280, 1536, 1792, 2048,
    2560, 3072, 3584, 4096,
    5120, 6144, 7168, 8192,
    10240, 12288, 14336, 16384,
    20480, 24576, 28672, 32768,
    /* medium: eight per doubling */
    36864, 40960, 45056, 49152, 53248, 57344, 61440, 65536,
    73728, 81920, 90112, 98304, 106496, 114688, 122880, 131072,
    147456, 163840, 180224, 196608, 212992, 229376, 245760, 262144,
    294912, 327680, 360448, 393216, 425984, 458752, 491520, 524288,
    589824, 655360, 720896, 786432, 851968, 917504, 983040, 1048576,
};

/* The bin of every size up to HK_LUT_MAX, indexed by ceil(size / 16): the
 * byte offset of its class's bin in a thread cache's bins (HK_BIN_OFF: class *
 * 512 for these), so that malloc's fast path adds it to the thread cache's
 * address without a multiply (hk_class_of divides it back). */
#define B(c) HK_BIN_OFF(c)
_Static_assert(HK_MBIN_OFF <= UINT16_MAX, "an offset fits 16 bits");
_Static_assert(HK_NCLASS_LUT == 20 && HK_LUT_MAX == 1024, "the table below ends at class 19, 1 KiB");
const uint16_t hk_bin_lut[HK_LUT_MAX / HK_MIN_ALIGN + 1] = {
    /* 0, 16 .. 128 */
    B(0), B(0), B(1), B(2), B(3), B(4), B(5), B(6), B(7),
    /* 144 .. 256: 160 192 224 256 */
    B(8), B(8), B(9), B(9), B(10), B(10), B(11), B(11),
    /* 272 .. 512: 320 x3, 384 x4, 448 x4, 512 x4 ... 272,288,304,320 */
    B(12), B(12), B(12), B(12), B(13), B(13), B(13), B(13),
    B(14), B(14), B(14), B(14), B(15), B(15), B(15), B(15),
    /* 528 .. 1024: 640 768 896 1024, 8 each */
    B(16), B(16), B(16), B(16), B(16), B(16), B(16), B(16),
    B(17), B(17), B(17), B(17), B(17), B(17), B(17), B(17),
    B(18), B(18), B(18), B(18), B(18), B(18), B(18), B(18),
    B(19), B(19), B(19), B(19), B(19), B(19), B(19), B(19),
};
#undef B

/* Class of n bytes for 128 < n <= HK_MEDIUM_MAX, computed: the top bit
 * picks the doubling, the next two bits the quarter within it (the next
 * three the eighth, for medium sizes). */
unsigned hk_class_of_slow(size_t n)
{
    if (n <= 128)
        return n == 0 ? 0 : (unsigned)((n + 15) / 16 - 1);
    size_t x = n - 1;
    unsigned b = 63u - (unsigned)__builtin_clzl(x);
    if (n > HK_SMALL_MAX)
        return HK_NCLASS + (b - 15) * 8 + (unsigned)((x >> (b - 3)) & 7);
    return 8 + (b - 7) * 4 + (unsigned)((x >> (b - 2)) & 3);
}

/* The free fast path's block test, per unit class (the segment header's
 * byte, so every value 0..255 has an entry): off = p & 0xffff, the offset
 * in a one-unit slab, starts a block of class cls exactly when
 * (uint32_t)(off * mul) < lim. mul = ceil(2^32 / size) turns a multiple
 * k * size into k * e (e = mul * size - 2^32 < size) and anything else into
 * a value >= mul (Lemire et al., "Faster remainder by direct computation",
 * 2019: exact for 16-bit offsets); lim = nblocks * e also refuses the
 * unused tail of a slab whose size does not divide 64 KiB (for powers of
 * two, e = 0 and lim = mul). Left zero (always refused: the slow path
 * judges): classes of four-unit slabs (t4 has theirs, zero for every
 * other unit class), free units, large and guard segments. tests/unit/test_sizeclass.c checks every offset of every
 * class. */
void hk_block_check_init(struct hk_block_check t[256], struct hk_block_check4 t4[256])
{
    _Static_assert(HK_UNIT_SIZE == 65536, "16-bit offsets");
    for (unsigned c = 0; c < HK_NCLASS; c++) {
        uint32_t d = hk_class_size[c];
        if (hk_class_span(c) == 1) {
            uint32_t mul = (uint32_t)((((uint64_t)1 << 32) + d - 1) / d);
            uint32_t e = (uint32_t)((uint64_t)mul * d - ((uint64_t)1 << 32));
            t[c].mul = mul;
            t[c].lim = e ? (uint32_t)(HK_UNIT_SIZE / d) * e : mul;
        } else {
            /* The same with 64-bit arithmetic for the 18-bit offset in a
             * four-unit slab, which starts 256 KiB aligned (superslab.c). */
            uint64_t mul = UINT64_MAX / d + 1;          /* ceil(2^64 / d) */
            uint64_t e = mul * d;                       /* mod 2^64: 0 for powers of 2 */
            t4[c].mul = mul;
            t4[c].lim = e ? (uint64_t)(4 * HK_UNIT_SIZE / d) * e : mul;
        }
    }
}

/* Units per slab: at least 8 blocks per slab, 16 for classes <= 4 KiB;
 * medium slabs of 512 KiB (4 to 14 blocks up to 128 KiB) and 1 MiB (1 to
 * 7 blocks): at most a fifth of a slab is left over up to 256 KiB; the
 * tail past the last block is never touched, so it costs address space,
 * not memory. */
unsigned hk_class_span(unsigned cls)
{
    uint32_t size = hk_class_size[cls];
    return size <= 4096 ? 1 : size <= HK_SMALL_MAX ? 4 : size <= 131072 ? 8 : 16;
}

/* Smallest class whose blocks are all aligned on align (a power of two)
 * and hold n bytes: a slab starts on a 64 KiB boundary, so a block size
 * that is a multiple of align keeps every block aligned. -1 if none
 * (larger alignments go to large blocks). */
int hk_class_for_aligned(size_t n, size_t align)
{
    if (n > HK_MEDIUM_MAX || align > HK_UNIT_SIZE)
        return -1;
    for (unsigned c = hk_class_of(n ? n : 1); c < HK_NALLCLASS; c++)
        if ((hk_class_size[c] & (align - 1)) == 0)
            return (int)c;
    return -1;
}
