/* test_env.c: the env box (env.c): typed parsing with range checks, bad
 * values warn once naming the variable and keep the default, unknown
 * HAKMEM_* names warn, other variables are ignored, values print back. */
#include "hk_internal.h"
#include "capture.h"
#include "test_main.h"

static const struct hk_optdef d_bool = { "T_BOOL", HK_OPT_BOOL, 0, 0, 1, NULL, "", 0 };
static const struct hk_optdef d_uint = { "T_UINT", HK_OPT_UINT, 5, 2, 100, NULL, "", 0 };
static const struct hk_optdef d_enum = { "T_ENUM", HK_OPT_ENUM, 0, 0, 0, "FREE|DONTNEED", "", 0 };

START_TEST(test_parse_bool)
{
    uint32_t v = 7;
    const char *yes[] = { "1", "yes", "TRUE", "on" }, *no[] = { "0", "No", "false", "OFF" };
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(hk_opt_parse(&d_bool, yes[i], &v), 0);
        ck_assert_uint_eq(v, 1);
        ck_assert_int_eq(hk_opt_parse(&d_bool, no[i], &v), 0);
        ck_assert_uint_eq(v, 0);
    }
    v = 7;
    ck_assert_int_eq(hk_opt_parse(&d_bool, "2", &v), -1);
    ck_assert_int_eq(hk_opt_parse(&d_bool, "", &v), -1);
    ck_assert_int_eq(hk_opt_parse(&d_bool, "1 ", &v), -1);
    ck_assert_uint_eq(v, 7);
}
END_TEST

START_TEST(test_parse_uint_range)
{
    uint32_t v = 0;
    ck_assert_int_eq(hk_opt_parse(&d_uint, "2", &v), 0);
    ck_assert_uint_eq(v, 2);
    ck_assert_int_eq(hk_opt_parse(&d_uint, "100", &v), 0);
    ck_assert_uint_eq(v, 100);
    ck_assert_int_eq(hk_opt_parse(&d_uint, "1", &v), -1);
    ck_assert_int_eq(hk_opt_parse(&d_uint, "101", &v), -1);
    ck_assert_int_eq(hk_opt_parse(&d_uint, "-3", &v), -1);
    ck_assert_int_eq(hk_opt_parse(&d_uint, "99999999999999", &v), -1);
    ck_assert_int_eq(hk_opt_parse(&d_uint, "12abc", &v), -1);
    ck_assert_uint_eq(v, 100);
}
END_TEST

START_TEST(test_parse_enum)
{
    uint32_t v = 9;
    ck_assert_int_eq(hk_opt_parse(&d_enum, "FREE", &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(hk_opt_parse(&d_enum, "dontneed", &v), 0);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(hk_opt_parse(&d_enum, "DONT", &v), -1);
    ck_assert_int_eq(hk_opt_parse(&d_enum, "FREEX", &v), -1);
    ck_assert_int_eq(hk_opt_parse(&d_enum, "", &v), -1);
    char buf[16];
    uint32_t one = 1, n42 = 42;
    hk_opt_format(&d_enum, &one, buf, sizeof(buf));
    ck_assert_str_eq(buf, "DONTNEED");
    hk_opt_format(&d_uint, &n42, buf, sizeof(buf));
    ck_assert_str_eq(buf, "42");
}
END_TEST

START_TEST(test_parse_path)
{
    static const struct hk_optdef d_path = { "T_PATH", HK_OPT_PATH, 0, 0, 10, "/def", "", 0 };
    char buf[HK_PATH_MAX] = "unchanged";
    ck_assert_int_eq(hk_opt_parse(&d_path, "/run/x", buf), 0);
    ck_assert_str_eq(buf, "/run/x");
    ck_assert_int_eq(hk_opt_parse(&d_path, "relative", buf), -1);
    ck_assert_int_eq(hk_opt_parse(&d_path, "/much/too/long/path", buf), -1);
    ck_assert_str_eq(buf, "/run/x");
    hk_opt_default(&d_path, buf);
    ck_assert_str_eq(buf, "/def");
}
END_TEST

START_TEST(test_load_valid)
{
    struct hk_options o = { 0 };
    char *env[] = { "PATH=/bin", "HAKMEM_SS_OS_STATS=1", "HAKMEM_SS_MEM_LEAN_DECOMMIT=dontneed",
                    "HAKMEM_RUNTIME_DIR=/tmp/hk", "HAKMEM_SS_LEAN_DELAY_MS=50",
                    "HAKMEM_SS_DECAY_MS=300", "HAKMEM_SS_HUGEPAGE=1", NULL };
    struct capture c;
    capture_begin(&c);
    hk_env_load(env, &o);
    ck_assert_str_eq(capture_end(&c), "");
    ck_assert_uint_eq(o.os_stats, 1);
    ck_assert_uint_eq(o.decommit, HK_DECOMMIT_DONTNEED);
    ck_assert_str_eq(o.runtime_dir, "/tmp/hk");
    ck_assert_uint_eq(o.lean_delay_ms, 50);
    ck_assert_uint_eq(o.decay_ms, 300);
    ck_assert_uint_eq(o.ss_hugepage, 1);
}
END_TEST

START_TEST(test_load_bad_value_warns_keeps_default)
{
    struct hk_options o = { .os_stats = 1 };
    char *env[] = { "HAKMEM_SS_OS_STATS=banana", NULL };
    struct capture c;
    capture_begin(&c);
    hk_env_load(env, &o);
    const char *out = capture_end(&c);
    ck_assert_uint_eq(o.os_stats, 0);   /* the default, not the old value */
    ck_assert_ptr_nonnull(strstr(out, "HAKMEM_SS_OS_STATS='banana' is not valid"));
    ck_assert_ptr_nonnull(strstr(out, "using 0"));
    ck_assert_ptr_eq(strstr(strstr(out, "banana") + 1, "banana"), NULL); /* once */
}
END_TEST

START_TEST(test_load_bad_values_each_type)
{
    struct hk_options o = hk_opt;
    char *env[] = { "HAKMEM_SS_MEM_LEAN_DECOMMIT=SOMETIMES", "HAKMEM_SS_LEAN_DELAY_MS=0",
                    "HAKMEM_RUNTIME_DIR=run", NULL };
    struct capture c;
    capture_begin(&c);
    hk_env_load(env, &o);
    const char *out = capture_end(&c);
    ck_assert_uint_eq(o.decommit, HK_DECOMMIT_FREE);
    ck_assert_uint_eq(o.lean_delay_ms, 100);
    ck_assert_str_eq(o.runtime_dir, "/run/hakmem");
    ck_assert_ptr_nonnull(strstr(out, "HAKMEM_SS_MEM_LEAN_DECOMMIT='SOMETIMES' is not valid (expected one of FREE|DONTNEED); using FREE"));
    ck_assert_ptr_nonnull(strstr(out, "HAKMEM_SS_LEAN_DELAY_MS='0' is not valid (expected an integer from 1 to 60000); using 100"));
    ck_assert_ptr_nonnull(strstr(out, "HAKMEM_RUNTIME_DIR='run' is not valid"));
}
END_TEST

START_TEST(test_load_unknown_warns)
{
    struct hk_options o = { 0 };
    char *env[] = { "HAKMEM_SS_OS_STAT=1", "HAKMEMX=1", "MY_HAKMEM_SS_OS_STATS=1", NULL };
    struct capture c;
    capture_begin(&c);
    hk_env_load(env, &o);
    const char *out = capture_end(&c);
    ck_assert_ptr_nonnull(strstr(out, "unknown variable HAKMEM_SS_OS_STAT ignored"));
    ck_assert_ptr_eq(strstr(out, "HAKMEMX"), NULL);
    ck_assert_ptr_eq(strstr(out, "MY_HAKMEM"), NULL);
    ck_assert_uint_eq(o.os_stats, 0);
}
END_TEST

START_TEST(test_config_print)
{
    char path[] = "/tmp/hk_cfgXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    hakmem_config_print(fd);
    char buf[1024] = { 0 };
    ck_assert_int_gt(pread(fd, buf, sizeof(buf) - 1, 0), 0);
    close(fd);
    for (size_t i = 0; i < hk_noptdefs; i++)
        ck_assert_ptr_nonnull(strstr(buf, hk_optdefs[i].name));
}
END_TEST

static Suite *env_suite(void)
{
    Suite *s = suite_create("env");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_parse_bool);
    tcase_add_test(tc, test_parse_uint_range);
    tcase_add_test(tc, test_parse_enum);
    tcase_add_test(tc, test_parse_path);
    tcase_add_test(tc, test_load_valid);
    tcase_add_test(tc, test_load_bad_values_each_type);
    tcase_add_test(tc, test_load_bad_value_warns_keeps_default);
    tcase_add_test(tc, test_load_unknown_warns);
    tcase_add_test(tc, test_config_print);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(env_suite)
