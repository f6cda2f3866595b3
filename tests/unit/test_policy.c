/* test_policy.c: the release policy (policy.c): FAST keeps memory warm,
 * LEAN keeps nothing empty; caps stay within the bin size. */
#include "hk_internal.h"
#include "test_main.h"

START_TEST(test_fast_keeps_lean_releases)
{
    struct hk_limits f, l;
    hk_policy_limits(HK_MODE_FAST, &f);
    hk_policy_limits(HK_MODE_LEAN, &l);
    ck_assert(f.prewarm && !l.prewarm);
    ck_assert(hk_policy_keep_empty_slab(&f, 0));
    ck_assert(!hk_policy_keep_empty_slab(&f, f.empty_slabs_kept));
    ck_assert(!hk_policy_keep_empty_slab(&l, 0));
    ck_assert(hk_policy_cache_superslab(&f, 0));
    ck_assert(!hk_policy_cache_superslab(&f, f.ss_cache_max));
    ck_assert(!hk_policy_cache_superslab(&l, 0));
    ck_assert(hk_policy_cache_large(&f, 1 << 20));
    ck_assert(!hk_policy_cache_large(&f, f.large_cache_bytes));
    ck_assert(!hk_policy_cache_large(&l, 1 << 16));
}
END_TEST

START_TEST(test_caps)
{
    struct hk_limits f, l;
    hk_policy_limits(HK_MODE_FAST, &f);
    hk_policy_limits(HK_MODE_LEAN, &l);
    for (unsigned c = 0; c < HK_NCLASS; c++) {
        ck_assert_uint_le(hk_policy_tc_cap(&f, c), HK_TC_SLOTS);
        ck_assert_uint_le(hk_policy_tc_cap(&l, c), hk_policy_tc_cap(&f, c));
        ck_assert_uint_gt(hk_policy_tc_cap(&f, c), 0);
    }
    ck_assert(hk_policy_prewarm_class(0));
    ck_assert(!hk_policy_prewarm_class(HK_NCLASS - 1));
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fast_keeps_lean_releases);
    tcase_add_test(tc, test_caps);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(policy_suite)
