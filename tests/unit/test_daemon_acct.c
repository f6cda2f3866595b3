/* test_daemon_acct.c: hakmemd's accounting of shim reports
 * (daemon/acct.c) with made-up pages and an injected clock: per-cgroup
 * sums that never go down whatever a client's page does, the release
 * histogram's buckets, and release times taken from the page within what
 * the sights allow. */
#include <stdint.h>
#include <string.h>

#include "acct.h"
#include "test_main.h"

#define MS UINT64_C(1000000)
#define S (1000 * MS)
#define T0 (1000 * S)

enum { DEC, LDEC, RET, SW }; /* the sums, in acct_sum_ids order */

/* A written page with the four summed counters. */
static struct proto_stats page(uint64_t dec, uint64_t ldec, uint64_t ret, uint64_t sw)
{
    struct proto_stats st;
    memset(&st, 0, sizeof(st));
    st.updated_ns = T0;
    st.present = (UINT32_C(1) << HAKMEM_COUNTER_COUNT) - 1;
    st.counter[HAKMEM_COUNTER_ID(bytes_decommitted)] = dec;
    st.counter[HAKMEM_COUNTER_ID(lean_decommit)] = ldec;
    st.counter[HAKMEM_COUNTER_ID(lean_retire)] = ret;
    st.counter[HAKMEM_COUNTER_ID(mode_switches)] = sw;
    return st;
}

START_TEST(test_sum_ids)
{
    ck_assert_uint_eq(acct_sum_ids[DEC], HAKMEM_COUNTER_ID(bytes_decommitted));
    ck_assert_uint_eq(acct_sum_ids[SW], HAKMEM_COUNTER_ID(mode_switches));
    for (unsigned i = 0; i < ACCT_SUMS; i++)
        ck_assert_int_eq(proto_counter_kind(acct_sum_ids[i]), HAKMEM_KIND_TOTAL);
}
END_TEST

START_TEST(test_fold_first_sight_is_a_baseline)
{
    struct acct_seen seen = { 0 };
    uint64_t total[ACCT_SUMS] = { 0 };
    /* a forked child's first page carries its parent's counts: not its own */
    struct proto_stats st = page(1 << 20, 7, 3, 2);
    acct_fold(&seen, &st, total);
    ck_assert(seen.valid);
    ck_assert_uint_eq(total[DEC], 0);
    st = page((1 << 20) + 4096, 8, 3, 3);
    acct_fold(&seen, &st, total);
    ck_assert_uint_eq(total[DEC], 4096);
    ck_assert_uint_eq(total[LDEC], 1);
    ck_assert_uint_eq(total[RET], 0);
    ck_assert_uint_eq(total[SW], 1);
}
END_TEST

START_TEST(test_fold_unwritten_page_is_no_sight)
{
    struct acct_seen seen = { 0 };
    uint64_t total[ACCT_SUMS] = { 0 };
    struct proto_stats st = page(0, 0, 0, 0);
    st.updated_ns = 0;                  /* the shim has not written it yet */
    acct_fold(&seen, &st, total);
    ck_assert(!seen.valid);
    st = page(8192, 1, 0, 1);
    acct_fold(&seen, &st, total);       /* the baseline */
    st = page(8192 + 100, 2, 0, 1);
    acct_fold(&seen, &st, total);
    ck_assert_uint_eq(total[DEC], 100);
    ck_assert_uint_eq(total[LDEC], 1);
}
END_TEST

START_TEST(test_fold_never_goes_down)
{
    struct acct_seen seen = { 0 };
    uint64_t total[ACCT_SUMS] = { 0 };
    struct proto_stats st = page(1000, 10, 10, 10);
    acct_fold(&seen, &st, total);
    st = page(5000, 20, 10, 10);
    acct_fold(&seen, &st, total);
    ck_assert_uint_eq(total[DEC], 4000);
    /* the client reset its counters (or lies): a new baseline, no step */
    st = page(0, 0, 0, 0);
    acct_fold(&seen, &st, total);
    ck_assert_uint_eq(total[DEC], 4000);
    ck_assert_uint_eq(total[LDEC], 10);
    st = page(300, 1, 0, 0);
    acct_fold(&seen, &st, total);
    ck_assert_uint_eq(total[DEC], 4300);
    ck_assert_uint_eq(total[LDEC], 11);
    /* a wrap-around of a lying client's counter is a baseline too */
    st = page(UINT64_MAX, 1, 0, 0);
    acct_fold(&seen, &st, total);
    uint64_t big = total[DEC];
    st = page(5, 1, 0, 0);
    acct_fold(&seen, &st, total);
    ck_assert_uint_eq(total[DEC], big);
}
END_TEST

START_TEST(test_fold_absent_counter)
{
    struct acct_seen seen = { 0 };
    uint64_t total[ACCT_SUMS] = { 0 };
    struct proto_stats st = page(100, 1, 1, 1);
    acct_fold(&seen, &st, total);
    st = page(900, 2, 1, 1);
    st.present &= ~(UINT32_C(1) << HAKMEM_COUNTER_ID(bytes_decommitted));
    acct_fold(&seen, &st, total);       /* not reported: left as it was */
    ck_assert_uint_eq(total[DEC], 0);
    ck_assert_uint_eq(total[LDEC], 1);
    st = page(1000, 2, 1, 1);
    acct_fold(&seen, &st, total);
    ck_assert_uint_eq(total[DEC], 900);
}
END_TEST

START_TEST(test_hist_buckets)
{
    struct acct_hist h;
    memset(&h, 0, sizeof(h));
    ck_assert_uint_eq(acct_release_bound_ns[0], 1 * MS);
    ck_assert_uint_eq(acct_release_bound_ns[ACCT_RELEASE_BUCKETS - 1], 10 * S);
    for (unsigned b = 1; b < ACCT_RELEASE_BUCKETS; b++)
        ck_assert_uint_gt(acct_release_bound_ns[b], acct_release_bound_ns[b - 1]);
    acct_hist_observe(&h, 0);
    acct_hist_observe(&h, 1 * MS);      /* le is "less or equal" */
    acct_hist_observe(&h, 1 * MS + 1);
    acct_hist_observe(&h, 70 * MS);
    acct_hist_observe(&h, 10 * S);
    acct_hist_observe(&h, 10 * S + 1);
    ck_assert_uint_eq(h.bucket[0], 2);
    ck_assert_uint_eq(h.bucket[1], 1);
    ck_assert_uint_eq(h.bucket[6], 1);  /* (50 ms, 100 ms] */
    ck_assert_uint_eq(h.bucket[ACCT_RELEASE_BUCKETS - 1], 1);
    ck_assert_uint_eq(h.bucket[ACCT_RELEASE_BUCKETS], 1); /* +Inf */
    ck_assert_uint_eq(h.count, 6);
    ck_assert_uint_eq(h.sum_ns, 0 + 1 * MS + 1 * MS + 1 + 70 * MS + 10 * S + 10 * S + 1);
}
END_TEST

static struct proto_stats shows(unsigned level, uint64_t updated_ns)
{
    struct proto_stats st = page(0, 0, 0, 0);
    st.mode = level ? HAKMEM_MODE_LEAN : HAKMEM_MODE_FAST;
    st.last_level = level;
    st.updated_ns = updated_ns;
    return st;
}

START_TEST(test_release_from_the_page)
{
    struct acct_release r;
    struct acct_hist h[HAKMEM_LEVEL_COUNT];
    memset(&r, 0, sizeof(r));
    memset(h, 0, sizeof(h));
    ck_assert_uint_eq(acct_release_next(&r), 0);
    acct_release_level(&r, HAKMEM_LEVEL_NONE, HAKMEM_LEVEL_MEDIUM, T0);
    /* looked at 1 ms later: not there yet */
    ck_assert_uint_eq(acct_release_next(&r), T0 + 1 * MS);
    struct proto_stats st = shows(HAKMEM_LEVEL_NONE, T0 - 5 * S);
    acct_release_sight(&r, &st, T0 + 1 * MS, h);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_MEDIUM].count, 0);
    /* released at T0 + 7 ms by the page's word, seen at T0 + 9 ms */
    st = shows(HAKMEM_LEVEL_MEDIUM, T0 + 7 * MS);
    acct_release_sight(&r, &st, T0 + 9 * MS, h);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_MEDIUM].count, 1);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_MEDIUM].sum_ns, 7 * MS);
    ck_assert_uint_eq(acct_release_next(&r), 0);
    /* a page that shows a higher level releases a lower one too */
    acct_release_level(&r, HAKMEM_LEVEL_NONE, HAKMEM_LEVEL_LOW, T0 + 10 * S);
    st = shows(HAKMEM_LEVEL_CRITICAL, T0 + 10 * S + 2 * MS);
    acct_release_sight(&r, &st, T0 + 10 * S + 3 * MS, h);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_LOW].count, 1);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_LOW].sum_ns, 2 * MS);
}
END_TEST

START_TEST(test_release_within_the_sights)
{
    struct acct_release r;
    struct acct_hist h[HAKMEM_LEVEL_COUNT];
    memset(&r, 0, sizeof(r));
    memset(h, 0, sizeof(h));
    /* a page from the future (a lying client) counts as now */
    acct_release_level(&r, HAKMEM_LEVEL_NONE, HAKMEM_LEVEL_LOW, T0);
    struct proto_stats st = shows(HAKMEM_LEVEL_LOW, T0 + 100 * S);
    acct_release_sight(&r, &st, T0 + 4 * MS, h);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_LOW].sum_ns, 4 * MS);
    /* a page dated before the last sight that did not show it counts
     * from that sight */
    memset(h, 0, sizeof(h));
    acct_release_level(&r, HAKMEM_LEVEL_LOW, HAKMEM_LEVEL_CRITICAL, T0 + 1 * S);
    st = shows(HAKMEM_LEVEL_LOW, T0);
    acct_release_sight(&r, &st, T0 + 1 * S + 20 * MS, h);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_CRITICAL].count, 0);
    st = shows(HAKMEM_LEVEL_CRITICAL, T0 + 1 * S + 1 * MS);
    acct_release_sight(&r, &st, T0 + 1 * S + 25 * MS, h);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_CRITICAL].count, 1);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_CRITICAL].sum_ns, 20 * MS);
    /* LEAN is part of it: a page at the level in FAST mode is not done */
    acct_release_level(&r, HAKMEM_LEVEL_NONE, HAKMEM_LEVEL_MEDIUM, T0 + 2 * S);
    st = shows(HAKMEM_LEVEL_MEDIUM, T0 + 2 * S + 1 * MS);
    st.mode = HAKMEM_MODE_FAST;
    acct_release_sight(&r, &st, T0 + 2 * S + 2 * MS, h);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_MEDIUM].count, 0);
    /* an unreadable page is no sight of the level */
    acct_release_sight(&r, NULL, T0 + 2 * S + 3 * MS, h);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_MEDIUM].count, 0);
}
END_TEST

START_TEST(test_release_gives_up_and_falls)
{
    struct acct_release r;
    struct acct_hist h[HAKMEM_LEVEL_COUNT];
    memset(&r, 0, sizeof(r));
    memset(h, 0, sizeof(h));
    acct_release_level(&r, HAKMEM_LEVEL_NONE, HAKMEM_LEVEL_MEDIUM, T0);
    struct proto_stats st = shows(HAKMEM_LEVEL_NONE, T0);
    acct_release_sight(&r, &st, T0 + 10 * S, h);      /* 10 s is still within */
    ck_assert_uint_eq(h[HAKMEM_LEVEL_MEDIUM].count, 0);
    acct_release_sight(&r, &st, T0 + 11 * S, h);      /* past it: +Inf */
    ck_assert_uint_eq(h[HAKMEM_LEVEL_MEDIUM].count, 1);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_MEDIUM].bucket[ACCT_RELEASE_BUCKETS], 1);
    ck_assert_uint_eq(acct_release_next(&r), 0);
    /* a level that falls before the page shows it: nothing to wait for */
    acct_release_level(&r, HAKMEM_LEVEL_NONE, HAKMEM_LEVEL_LOW, T0 + 20 * S);
    acct_release_level(&r, HAKMEM_LEVEL_LOW, HAKMEM_LEVEL_CRITICAL, T0 + 20 * S + 1 * MS);
    acct_release_level(&r, HAKMEM_LEVEL_CRITICAL, HAKMEM_LEVEL_LOW, T0 + 20 * S + 2 * MS);
    ck_assert_uint_ne(acct_release_next(&r), 0);      /* LOW still pending */
    acct_release_level(&r, HAKMEM_LEVEL_LOW, HAKMEM_LEVEL_NONE, T0 + 20 * S + 3 * MS);
    ck_assert_uint_eq(acct_release_next(&r), 0);
}
END_TEST

START_TEST(test_release_sights_thin_out)
{
    struct acct_release r;
    struct acct_hist h[HAKMEM_LEVEL_COUNT];
    memset(&r, 0, sizeof(r));
    memset(h, 0, sizeof(h));
    acct_release_level(&r, HAKMEM_LEVEL_NONE, HAKMEM_LEVEL_LOW, T0);
    struct proto_stats st = shows(HAKMEM_LEVEL_NONE, T0);
    unsigned sights = 0;
    uint64_t t;
    while ((t = acct_release_next(&r)) != 0) {
        /* every step at least 1 ms, at most an eighth of the wait (the
         * error of a release time stays within that) */
        uint64_t waited = r.seen_ns - T0, step = t - r.seen_ns;
        ck_assert_uint_ge(step, ACCT_RELEASE_MIN_STEP_NS);
        ck_assert(step == ACCT_RELEASE_MIN_STEP_NS || step <= waited / 8);
        acct_release_sight(&r, &st, t, h);
        sights++;
    }
    /* 10 s of waiting in a few dozen sights, then the +Inf bucket */
    ck_assert_uint_lt(sights, 100);
    ck_assert_uint_eq(h[HAKMEM_LEVEL_LOW].bucket[ACCT_RELEASE_BUCKETS], 1);
}
END_TEST

static Suite *acct_suite(void)
{
    Suite *s = suite_create("daemon_acct");
    TCase *tc = tcase_create("acct");
    tcase_add_test(tc, test_sum_ids);
    tcase_add_test(tc, test_fold_first_sight_is_a_baseline);
    tcase_add_test(tc, test_fold_unwritten_page_is_no_sight);
    tcase_add_test(tc, test_fold_never_goes_down);
    tcase_add_test(tc, test_fold_absent_counter);
    tcase_add_test(tc, test_hist_buckets);
    tcase_add_test(tc, test_release_from_the_page);
    tcase_add_test(tc, test_release_within_the_sights);
    tcase_add_test(tc, test_release_gives_up_and_falls);
    tcase_add_test(tc, test_release_sights_thin_out);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(acct_suite)
