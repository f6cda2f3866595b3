/* test_registry.c: the ownership bitmap (registry.c): set, test, clear,
 * neighbours untouched, addresses beyond 47 bits never ours. */
#include "hk_internal.h"
#include "test_main.h"

START_TEST(test_set_test_clear)
{
    uintptr_t a = (uintptr_t)0x7f1234400000ull;    /* 2 MiB aligned */
    ck_assert(!hk_reg_test(a));
    hk_reg_set(a);
    ck_assert(hk_reg_test(a));
    ck_assert(hk_reg_test(a + 1));
    ck_assert(hk_reg_test(a + HK_SEG_SIZE - 1));
    ck_assert(!hk_reg_test(a + HK_SEG_SIZE));
    ck_assert(!hk_reg_test(a - 1));
    hk_reg_clear(a);
    ck_assert(!hk_reg_test(a));
}
END_TEST

START_TEST(test_word_neighbours)
{
    /* 64 chunks share a word: setting one leaves the others clear */
    uintptr_t base = (uintptr_t)0x100000000000ull;
    for (unsigned i = 0; i < 64; i += 3)
        hk_reg_set(base + i * HK_SEG_SIZE);
    for (unsigned i = 0; i < 64; i++)
        ck_assert_int_eq(hk_reg_test(base + i * HK_SEG_SIZE + 12345), i % 3 == 0);
    for (unsigned i = 0; i < 64; i += 3)
        hk_reg_clear(base + i * HK_SEG_SIZE);
    for (unsigned i = 0; i < 64; i++)
        ck_assert(!hk_reg_test(base + i * HK_SEG_SIZE));
}
END_TEST

START_TEST(test_out_of_range)
{
    ck_assert(!hk_reg_test(0));
    ck_assert(!hk_reg_test((uintptr_t)1 << 47));
    ck_assert(!hk_reg_test(UINTPTR_MAX));
    ck_assert(!hk_reg_test((uintptr_t)0xffff800000000000ull));
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_set_test_clear);
    tcase_add_test(tc, test_word_neighbours);
    tcase_add_test(tc, test_out_of_range);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(registry_suite)
