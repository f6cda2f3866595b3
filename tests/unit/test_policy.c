/* test_policy.c: the release policy (policy.c): FAST keeps memory warm,
 * LEAN keeps nothing empty; caps stay within the bin size. */
#include "hk_internal.h"
#include "test_main.h"

START_TEST(test_fast_keeps_lean_releases)
{
    struct hk_limits f = *hk_policy_limits(HK_MODE_FAST), l = *hk_policy_limits(HK_MODE_LEAN);
    ck_assert(f.prewarm && !l.prewarm);
    ck_assert(hk_policy_keep_empty_slab(&f, 0, 0));
    ck_assert(!hk_policy_keep_empty_slab(&f, 0, f.empty_slabs_kept));
    ck_assert(!hk_policy_keep_empty_slab(&l, 0, 0));
    ck_assert(!hk_policy_keep_empty_slab(&f, HK_NCLASS, 0));   /* medium: never */
    ck_assert(hk_policy_cache_superslab(&f, 0));
    ck_assert(!hk_policy_cache_superslab(&f, f.ss_cache_max));
    ck_assert(f.purge == 0 && l.purge == 1);   /* LEAN retires at purge rounds */
    ck_assert_uint_le(l.ss_cache_max, f.ss_cache_max);
    ck_assert_uint_eq(hk_policy_large_cache_bytes(&f, 0), f.large_cache_bytes);
    ck_assert_uint_eq(hk_policy_large_cache_bytes(&f, (size_t)1 << 30), (size_t)1 << 30);
    ck_assert_uint_eq(hk_policy_large_cache_bytes(&l, (size_t)1 << 30), 0);
}
END_TEST

START_TEST(test_caps)
{
    struct hk_limits f = *hk_policy_limits(HK_MODE_FAST), l = *hk_policy_limits(HK_MODE_LEAN);
    for (unsigned c = 0; c < HK_NCLASS; c++) {
        ck_assert_uint_le(hk_policy_tc_cap(&f, c), HK_BIN_SLOTS(c));
        ck_assert_uint_le(hk_policy_tc_cap(&l, c), hk_policy_tc_cap(&f, c));
        ck_assert_uint_gt(hk_policy_tc_cap(&f, c), 0);
    }
    /* LEAN bounds the bytes per bin: 32 KiB blocks keep 2, 4 KiB keep 16 */
    ck_assert_uint_eq(hk_policy_tc_cap(&l, HK_NCLASS - 1), 2);
    ck_assert_uint_eq(hk_policy_tc_cap(&l, hk_class_of(4096)), 16);
    ck_assert(hk_policy_prewarm_class(0));
    ck_assert(!hk_policy_prewarm_class(HK_NCLASS - 1));
}
END_TEST

START_TEST(test_decommit_mask_two_rounds)
{
    /* pages 0-3 free now; page 0 already decommitted; pages 1, 2 free at
     * the previous round too: only 1 and 2 go, unless now */
    ck_assert_uint_eq(hk_policy_decommit_mask(0xf, 0x1, 0x0, 0x6, false, false), 0x6);
    ck_assert_uint_eq(hk_policy_decommit_mask(0xf, 0x1, 0x0, 0x6, true, false), 0xe);
    ck_assert_uint_eq(hk_policy_decommit_mask(0x0, 0x0, 0x0, 0xff, true, false), 0);
    ck_assert_uint_eq(hk_policy_decommit_mask(0x3, 0x0, 0x0, 0x0, false, false), 0);
}
END_TEST

START_TEST(test_decommit_mask_eager_upgrades_lazy)
{
    /* pages 0-3 free; 0 and 1 decommitted, 1 lazily (MADV_FREE): eager
     * takes 1 again, with the fresh ones; lazy (not eager) never does */
    ck_assert_uint_eq(hk_policy_decommit_mask(0xf, 0x3, 0x2, 0x0, true, true), 0xe);
    ck_assert_uint_eq(hk_policy_decommit_mask(0xf, 0x3, 0x2, 0x0, true, false), 0xc);
    /* a round (not now): the upgrade does not wait for a second round */
    ck_assert_uint_eq(hk_policy_decommit_mask(0xf, 0x3, 0x2, 0x0, false, true), 0x2);
    /* a page in use is never decommitted, lazy bit or not */
    ck_assert_uint_eq(hk_policy_decommit_mask(0x1, 0x3, 0x2, 0x0, true, true), 0x0);
}
END_TEST

START_TEST(test_purge_delay_adapts)
{
    /* churn: a quarter or more came back -> double, capped at 16x */
    ck_assert_uint_eq(hk_policy_purge_delay(200, 200, 100, 25), 400);
    ck_assert_uint_eq(hk_policy_purge_delay(200, 3200, 100, 100), 3200);
    /* idle: nothing came back -> halve, not below the base */
    ck_assert_uint_eq(hk_policy_purge_delay(200, 800, 100, 0), 400);
    ck_assert_uint_eq(hk_policy_purge_delay(200, 300, 0, 0), 200);
    /* a little came back: keep */
    ck_assert_uint_eq(hk_policy_purge_delay(200, 800, 100, 10), 800);
    /* below the base is not a state */
    ck_assert_uint_eq(hk_policy_purge_delay(200, 50, 0, 0), 200);
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fast_keeps_lean_releases);
    tcase_add_test(tc, test_caps);
    tcase_add_test(tc, test_decommit_mask_two_rounds);
    tcase_add_test(tc, test_decommit_mask_eager_upgrades_lazy);
    tcase_add_test(tc, test_purge_delay_adapts);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(policy_suite)
