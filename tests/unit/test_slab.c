/* test_slab.c: slab bookkeeping and the central lists (superslab.c):
 * blocks are distinct, aligned, registered and typed; what goes back
 * comes out again; a slab fills and the next is carved; double and
 * invalid frees abort; trim gives every empty slab and superslab back. */
#include <signal.h>
#include "hk_internal.h"
#include "test_main.h"

static uint64_t ctr(const char *name)
{
    uint64_t v = 0;
    ck_assert_int_eq(hakmem_counter(name, &v), 0);
    return v;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void setup(void)
{
    hk_ensure_init();
}

START_TEST(test_take_put_roundtrip)
{
    unsigned cls = 5;                   /* 96 bytes */
    void *a[300], *b[300];
    uint64_t used0 = ctr("bytes_in_use");
    ck_assert_uint_eq(hk_central_take(cls, a, 300), 300);
    ck_assert_uint_eq(ctr("bytes_in_use") - used0, 300 * hk_class_size[cls]);
    qsort(a, 300, sizeof(a[0]), cmp_ptr);
    for (int i = 0; i < 300; i++) {
        ck_assert(hk_reg_test((uintptr_t)a[i]));
        ck_assert_uint_eq(hk_unit_cls(hk_seg_of(a[i]), a[i]), cls);
        ck_assert(hk_block_valid((struct hk_ss *)hk_seg_of(a[i]), a[i]));
        if (i)
            ck_assert_uint_ge((uintptr_t)a[i] - (uintptr_t)a[i - 1], hk_class_size[cls]);
        memset(a[i], 0xab, hk_class_size[cls]);
    }
    hk_central_put(cls, a, 300, "free");
    ck_assert_uint_eq(ctr("bytes_in_use"), used0);
    ck_assert_uint_eq(hk_central_take(cls, b, 300), 300);
    qsort(b, 300, sizeof(b[0]), cmp_ptr);
    ck_assert_mem_eq(a, b, sizeof(a));  /* the same blocks, lowest first */
    hk_central_put(cls, b, 300, "free");
}
END_TEST

START_TEST(test_slab_fills_then_next)
{
    unsigned cls = HK_NCLASS - 1;       /* 32 KiB: 8 blocks per slab */
    void *a[20];
    ck_assert_uint_eq(hk_central_take(cls, a, 20), 20);
    int slabs = 0;
    for (int i = 0; i < 20; i++) {
        struct hk_slab *s = hk_slab_of((struct hk_ss *)hk_seg_of(a[i]), a[i]);
        ck_assert_uint_eq(s->nblocks, 8);
        ck_assert_uint_eq(s->span, 4);
        ck_assert_uint_eq(s->unit % 4, 0);  /* 256 KiB aligned: free()'s block test */
        bool first = true;
        for (int j = 0; j < i; j++)
            if (hk_slab_of((struct hk_ss *)hk_seg_of(a[j]), a[j]) == s)
                first = false;
        slabs += first;
    }
    ck_assert_int_eq(slabs, 3);
    hk_central_put(cls, a, 20, "free");
}
END_TEST

START_TEST(test_double_free_aborts)
{
    void *p;
    ck_assert_uint_eq(hk_central_take(3, &p, 1), 1);
    hk_central_put(3, &p, 1, "free");
    hk_central_put(3, &p, 1, "free");   /* SIGABRT */
}
END_TEST

START_TEST(test_interior_pointer_aborts)
{
    void *p;
    ck_assert_uint_eq(hk_central_take(3, &p, 1), 1);
    void *q = (char *)p + 16;           /* inside a 64-byte block */
    hk_central_put(3, &q, 1, "free");   /* SIGABRT */
}
END_TEST

START_TEST(test_trim_returns_everything)
{
    void *a[2000];
    ck_assert_uint_eq(hk_central_take(10, a, 2000), 2000);
    ck_assert_uint_ge(ctr("superslabs_live"), 1);
    uintptr_t probe = (uintptr_t)a[1999];
    hk_central_put(10, a, 2000, "free");
    hakmem_trim();
    ck_assert_uint_eq(ctr("superslabs_live"), 0);
    ck_assert_uint_eq(ctr("superslabs_cached"), 0);
    ck_assert(!hk_reg_test(probe));
    /* and the allocator still works afterwards */
    ck_assert_uint_eq(hk_central_take(10, a, 10), 10);
    hk_central_put(10, a, 10, "free");
}
END_TEST

START_TEST(test_depot_batches_cross_and_drain)
{
    unsigned cls = 7;                   /* 128 bytes */
    void *a[31], *b[31];
    ck_assert_uint_eq(hk_central_take(cls, a, 31), 31);
    hk_central_put(cls, a, 31, "free"); /* a whole flush: to the depot */
    ck_assert_uint_eq(hk_central_take(cls, b, 31), 31);
    ck_assert_mem_eq(a, b, sizeof(a));  /* the same batch, as it was */
    hk_central_put(cls, b, 31, "free");
    hakmem_trim();                      /* drains the depot into the slabs */
    ck_assert_uint_eq(ctr("superslabs_live"), 0);
}
END_TEST

static Suite *slab_suite(void)
{
    Suite *s = suite_create("slab");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_take_put_roundtrip);
    tcase_add_test(tc, test_slab_fills_then_next);
    tcase_add_test_raise_signal(tc, test_double_free_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_interior_pointer_aborts, SIGABRT);
    tcase_add_test(tc, test_trim_returns_everything);
    tcase_add_test(tc, test_depot_batches_cross_and_drain);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(slab_suite)
