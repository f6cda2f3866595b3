/* test_maps.c: the /proc/self/maps line parser (maps.c): the kernel's
 * forms (anonymous, file, ld.so, [heap], no newline), and lines it must
 * refuse (no dash, lo >= hi, too many digits, cut short). The fuzz target
 * tests/fuzz/fuzz_maps.c covers the rest. */
#include <string.h>
#include "hk_internal.h"
#include "test_main.h"

static bool parse(const char *line, struct hk_maps_entry *e)
{
    memset(e, 0xa5, sizeof(*e));
    return hk_maps_parse(line, strlen(line), e);
}

START_TEST(test_forms)
{
    struct hk_maps_entry e;
    ck_assert(parse("7f12a4000000-7f12a4021000 rw-p 00000000 00:00 0 \n", &e));
    ck_assert_uint_eq(e.lo, 0x7f12a4000000u);
    ck_assert_uint_eq(e.hi, 0x7f12a4021000u);
    ck_assert(e.rw && e.anon && !e.rtld);

    ck_assert(parse("7f12a4000000-7f12a4021000 rw-p 00000000 00:00 0", &e));
    ck_assert(e.rw && e.anon);

    ck_assert(parse("7ffff7ffd000-7ffff7fff000 rw-p 00037000 fe:01 1835    "
                    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n", &e));
    ck_assert(e.rw && !e.anon && e.rtld);

    ck_assert(parse("55d0c6a4f000-55d0c6a70000 rw-p 00000000 00:00 0          [heap]\n", &e));
    ck_assert(e.rw && !e.anon && !e.rtld);

    ck_assert(parse("7f0000000000-7f0000001000 r--p 00000000 fe:01 99 /usr/lib/libc.so.6\n", &e));
    ck_assert(!e.rw && !e.anon && !e.rtld);

    ck_assert(parse("0-1 rw-p 0 0:0 0", &e));
    ck_assert_uint_eq(e.lo, 0);
    ck_assert_uint_eq(e.hi, 1);
}
END_TEST

START_TEST(test_refused)
{
    struct hk_maps_entry e;
    ck_assert(!parse("", &e));
    ck_assert(!parse("\n", &e));
    ck_assert(!parse("7f12a4000000 rw-p 00000000 00:00 0\n", &e));
    ck_assert(!parse("7f12a4021000-7f12a4000000 rw-p 00000000 00:00 0\n", &e));
    ck_assert(!parse("1000-1000 rw-p 00000000 00:00 0\n", &e));
    ck_assert(!parse("-1000 rw-p 0 0:0 0\n", &e));
    ck_assert(!parse("1000- rw-p 0 0:0 0\n", &e));
    ck_assert(!parse("10000000000000000-20000000000000000 rw-p 0 0:0 0\n", &e));
    ck_assert(!parse("1000-2000 rw\n", &e));
    ck_assert(!parse("1000-2000", &e));
    ck_assert(!parse("1000-2000xrw-p 0 0:0 0", &e));
    /* a line cut at any length is parsed only within its bytes */
    const char *full = "7f12a4000000-7f12a4021000 rw-p 00000000 00:00 0 /x/ld-linux.so\n";
    for (size_t n = 0; n <= strlen(full); n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, full, n);
        bool ok = hk_maps_parse(copy, n, &e);
        ck_assert(!ok || e.lo < e.hi);
        free(copy);
    }
}
END_TEST

static Suite *maps_suite(void)
{
    Suite *s = suite_create("maps");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_forms);
    tcase_add_test(tc, test_refused);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(maps_suite)
