/* test_sizeclass.c: the size class table and size -> class mapping
 * (sizeclass.c): smallest fitting class, lookup table against the
 * computed path, bounded waste, aligned classes, and the free fast path's
 * block test against plain division for every offset of every class. */
#include "hk_internal.h"
#include "test_main.h"

START_TEST(test_smallest_fit)
{
    /* every size to 32 KiB; medium sizes with an odd stride, and each
     * class's last size and the next */
    for (size_t n = 0, i = HK_NCLASS; n <= HK_MEDIUM_MAX;
         n = n < HK_SMALL_MAX ? n + 1 : i < HK_NALLCLASS && n + 509 > hk_class_size[i] ?
             (n == hk_class_size[i] ? (i++, n + 1) : hk_class_size[i]) : n + 509) {
        unsigned c = hk_class_of(n);
        ck_assert_uint_lt(c, n <= HK_SMALL_MAX ? HK_NCLASS : HK_NALLCLASS);
        ck_assert_uint_ge(c, n <= HK_SMALL_MAX ? 0 : HK_NCLASS);
        ck_assert_uint_ge(hk_class_size[c], n);
        if (c > 0)
            ck_assert_msg(hk_class_size[c - 1] < n || n == 0,
                          "size %zu: class %u is not the smallest", n, c);
    }
}
END_TEST

START_TEST(test_lut_matches_computed)
{
    for (size_t n = 1; n <= HK_LUT_MAX; n++)
        ck_assert_msg(hk_bin_lut[(n + 15) / 16] == HK_BIN_OFF(hk_class_of_slow(n)),
                      "size %zu: lut %u computed %u", n, hk_bin_lut[(n + 15) / 16],
                      hk_class_of_slow(n));
}
END_TEST

START_TEST(test_block_check_exact)
{
    static struct hk_block_check t[256];
    static struct hk_block_check4 t4[256];
    hk_block_check_init(t, t4);
    for (unsigned c = 0; c < 256; c++) {
        if (c < HK_NCLASS && hk_class_span(c) == 4) {
            /* the 18-bit offset in a 256 KiB-aligned four-unit slab */
            ck_assert_uint_eq(t[c].lim, 0);
            uint32_t d = hk_class_size[c], nblocks = 4 * HK_UNIT_SIZE / d;
            for (uint32_t off = 0; off < 4 * HK_UNIT_SIZE; off++) {
                bool want = off % d == 0 && off / d < nblocks;
                bool got = (uint64_t)off * t4[c].mul < t4[c].lim;
                if (got != want)
                    ck_abort_msg("class %u (%u B) offset %u: test says %d", c, d, off, got);
            }
            continue;
        }
        if (c >= HK_NCLASS) {
            /* refused whatever the offset: the slow path judges */
            ck_assert_uint_eq(t[c].lim, 0);
            ck_assert_uint_eq(t4[c].lim, 0);
            continue;
        }
        ck_assert_uint_eq(t4[c].lim, 0);
        uint32_t d = hk_class_size[c], nblocks = HK_UNIT_SIZE / d;
        for (uint32_t off = 0; off < HK_UNIT_SIZE; off++) {
            bool want = off % d == 0 && off / d < nblocks;
            bool got = (uint32_t)(off * t[c].mul) < t[c].lim;
            if (got != want)
                ck_abort_msg("class %u (%u B) offset %u: test says %d", c, d, off, got);
        }
    }
}
END_TEST

START_TEST(test_table_shape)
{
    for (unsigned c = 0; c < HK_NCLASS; c++) {
        ck_assert_uint_eq(hk_class_size[c] % HK_MIN_ALIGN, 0);
        if (c > 0)
            ck_assert_uint_gt(hk_class_size[c], hk_class_size[c - 1]);
        /* at least 8 blocks per slab */
        ck_assert_uint_ge(hk_class_span(c) * HK_UNIT_SIZE / hk_class_size[c], 8);
    }
    ck_assert_uint_eq(hk_class_size[HK_NCLASS - 1], HK_SMALL_MAX);
    for (unsigned c = HK_NCLASS; c < HK_NALLCLASS; c++) {
        unsigned span = hk_class_span(c);
        size_t slab = span * HK_UNIT_SIZE;
        ck_assert_uint_gt(hk_class_size[c], hk_class_size[c - 1]);
        ck_assert_uint_eq(hk_class_size[c] % HK_PAGE, 0);
        /* a slab fits a superslab beside its header unit */
        ck_assert_uint_le(span, HK_UNITS / 2);
        ck_assert_uint_ge(slab / hk_class_size[c], 1);
        /* at most a fifth of a slab left over up to 256 KiB */
        if (hk_class_size[c] <= 262144)
            ck_assert_uint_le((slab % hk_class_size[c]) * 5, slab);
    }
    ck_assert_uint_eq(hk_class_size[HK_NALLCLASS - 1], HK_MEDIUM_MAX);
}
END_TEST

START_TEST(test_waste_bounded)
{
    for (size_t n = 129; n <= HK_MEDIUM_MAX; n += n < HK_SMALL_MAX ? 1 : 509) {
        unsigned c = hk_class_of(n);
        ck_assert_msg((hk_class_size[c] - n) * (n <= HK_SMALL_MAX ? 4 : 8) < n,
                      "size %zu wastes %u bytes", n, hk_class_size[c] - (unsigned)n);
    }
}
END_TEST

START_TEST(test_aligned_class)
{
    for (size_t align = 32; align <= HK_UNIT_SIZE; align *= 2) {
        for (size_t n = 1; n <= HK_MEDIUM_MAX; n += n < HK_SMALL_MAX ? 37 : 4099) {
            int c = hk_class_for_aligned(n, align);
            if (c < 0) {
                ck_assert_uint_gt(n, HK_MEDIUM_MAX - align + 1);
                continue;
            }
            ck_assert_uint_ge(hk_class_size[c], n);
            ck_assert_uint_eq(hk_class_size[c] % align, 0);
        }
    }
    ck_assert_int_eq(hk_class_for_aligned(HK_MEDIUM_MAX + 1, 64), -1);
    /* medium slabs start on any unit: nothing above 64 KiB alignment */
    ck_assert_int_eq(hk_class_for_aligned(4096, 2 * HK_UNIT_SIZE), -1);
}
END_TEST

static Suite *sizeclass_suite(void)
{
    Suite *s = suite_create("sizeclass");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_smallest_fit);
    tcase_add_test(tc, test_lut_matches_computed);
    tcase_add_test(tc, test_table_shape);
    tcase_add_test(tc, test_block_check_exact);
    tcase_add_test(tc, test_waste_bounded);
    tcase_add_test(tc, test_aligned_class);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(sizeclass_suite)
