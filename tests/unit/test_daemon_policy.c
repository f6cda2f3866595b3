/* test_daemon_policy.c: hakmemd's pressure policy (daemon/policy.c) with
 * an injected clock: fast up, slow down one level per calm period, the
 * hysteresis band, no flapping near a threshold, overrides, OOM. */
#include <errno.h>
#include <stdint.h>

#include "msg.h"
#include "policy.h"
#include "test_main.h"

#define MS UINT64_C(1000000)
#define S (1000 * MS)
#define T0 (1000 * S) /* an arbitrary monotonic start */

struct rig {
    struct policy_thresholds th;
    struct policy_state st;
    struct policy_result res;
    unsigned publishes;
};

static void rig_init(struct rig *r)
{
    policy_thresholds_default(&r->th);
    policy_state_init(&r->st, T0);
    r->publishes = 0;
}

static enum hakmem_level eval(struct rig *r, const struct policy_signals *sig, uint64_t now)
{
    policy_evaluate(&r->th, &r->st, sig, now, &r->res);
    if (r->res.publish)
        r->publishes++;
    return r->res.level;
}

static const struct policy_signals quiet;

START_TEST(test_defaults_rise_with_level)
{
    struct policy_thresholds th;
    policy_thresholds_default(&th);
    for (int l = HAKMEM_LEVEL_LOW; l < HAKMEM_LEVEL_CRITICAL; l++) {
        ck_assert_uint_lt(th.usage_permille[l], th.usage_permille[l + 1]);
        ck_assert_uint_lt(th.reclaim_events_per_s[l], th.reclaim_events_per_s[l + 1]);
        ck_assert_uint_lt(th.reclaim_stall_ns_per_s[l], th.reclaim_stall_ns_per_s[l + 1]);
        ck_assert_uint_lt(th.psi_some_cpct[l], th.psi_some_cpct[l + 1]);
        ck_assert_uint_lt(th.psi_full_cpct[l], th.psi_full_cpct[l + 1]);
    }
    ck_assert_uint_eq(th.usage_permille[HAKMEM_LEVEL_LOW], 800);
    ck_assert_uint_eq(th.usage_permille[HAKMEM_LEVEL_CRITICAL], 970);
    ck_assert_uint_eq(th.psi_some_cpct[HAKMEM_LEVEL_MEDIUM], 2000);
    ck_assert_uint_eq(th.calm_ns[HAKMEM_LEVEL_CRITICAL] + th.calm_ns[HAKMEM_LEVEL_MEDIUM] +
                          th.calm_ns[HAKMEM_LEVEL_LOW],
                      30 * S);
}
END_TEST

START_TEST(test_first_evaluation_publishes_startup)
{
    struct rig r;
    rig_init(&r);
    ck_assert_int_eq(eval(&r, &quiet, T0), HAKMEM_LEVEL_NONE);
    ck_assert(r.res.publish);
    ck_assert_int_eq(r.res.reason, HAKMEM_REASON_STARTUP);
    ck_assert_int_eq(eval(&r, &quiet, T0 + S), HAKMEM_LEVEL_NONE);
    ck_assert(!r.res.publish);
    ck_assert_uint_eq(r.publishes, 1);
}
END_TEST

START_TEST(test_fast_up_at_once)
{
    struct rig r;
    rig_init(&r);
    eval(&r, &quiet, T0);

    /* one evaluation from NONE straight to CRITICAL, no steps */
    struct policy_signals sig = { .reclaim_stall_ns_per_s = 150 * MS };
    ck_assert_int_eq(eval(&r, &sig, T0 + MS), HAKMEM_LEVEL_CRITICAL);
    ck_assert(r.res.publish);
    ck_assert_int_eq(r.res.reason, HAKMEM_REASON_BPF_RECLAIM);
    ck_assert_uint_eq(r.st.rise_ns, T0 + MS);

    /* usage alone: 91 % -> MEDIUM */
    rig_init(&r);
    sig = (struct policy_signals){ .usage_permille = 910 };
    ck_assert_int_eq(eval(&r, &sig, T0), HAKMEM_LEVEL_MEDIUM);
    ck_assert_int_eq(r.res.reason, HAKMEM_REASON_USAGE);

    /* a higher signal while at a level raises further at once */
    sig.reclaim_events_per_s = 1000;
    ck_assert_int_eq(eval(&r, &sig, T0 + 10 * MS), HAKMEM_LEVEL_CRITICAL);
    ck_assert(r.res.publish);
    ck_assert_int_eq(r.res.reason, HAKMEM_REASON_BPF_RECLAIM);
}
END_TEST

START_TEST(test_bpf_notification_defaults_mean_medium)
{
    /* the BPF side notifies at 4 reclaims or 2 ms stall per 100 ms window:
     * at the default thresholds either alone must decommit now (MEDIUM) */
    struct rig r;
    rig_init(&r);
    struct policy_signals sig = { .reclaim_events_per_s = 4 * 10 };
    ck_assert_int_eq(eval(&r, &sig, T0), HAKMEM_LEVEL_MEDIUM);
    rig_init(&r);
    sig = (struct policy_signals){ .reclaim_stall_ns_per_s = 2 * MS * 10 };
    ck_assert_int_eq(eval(&r, &sig, T0), HAKMEM_LEVEL_MEDIUM);
}
END_TEST

START_TEST(test_slow_down_one_level_per_calm_period)
{
    struct rig r;
    rig_init(&r);
    struct policy_signals sig = { .usage_permille = 990 };
    ck_assert_int_eq(eval(&r, &sig, T0), HAKMEM_LEVEL_CRITICAL);
    unsigned p = r.publishes;

    /* quiet from T0 + 100 ms, evaluated every 100 ms: the calm clock runs
     * from T0, the last evaluation whose signals held CRITICAL */
    for (uint64_t t = T0 + 100 * MS; t < T0 + 10 * S; t += 100 * MS)
        ck_assert_int_eq(eval(&r, &quiet, t), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 10 * S - 1), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 10 * S), HAKMEM_LEVEL_MEDIUM);
    ck_assert(r.res.publish);
    ck_assert_int_eq(r.res.reason, HAKMEM_REASON_CALM);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 20 * S - 1), HAKMEM_LEVEL_MEDIUM);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 20 * S), HAKMEM_LEVEL_LOW);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 30 * S - 1), HAKMEM_LEVEL_LOW);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 30 * S), HAKMEM_LEVEL_NONE);
    ck_assert_int_eq(r.res.reason, HAKMEM_REASON_CALM);
    ck_assert_uint_eq(r.publishes, p + 3); /* exactly one publish per step */
    ck_assert_uint_eq(policy_next_deadline(&r.th, &r.st), UINT64_MAX);
}
END_TEST

START_TEST(test_calm_clock_is_the_last_evaluation_holding_the_level)
{
    /* the state's calm_since is the last evaluation where the signals held
     * the level: a single evaluation of pressure at T0 then silence until
     * T0 + 10 s drops at T0 + 10 s, and a late evaluation catches up */
    struct rig r;
    rig_init(&r);
    struct policy_signals sig = { .oom_kill = true };
    eval(&r, &sig, T0);
    ck_assert_uint_eq(policy_next_deadline(&r.th, &r.st), T0 + 10 * S);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 10 * S), HAKMEM_LEVEL_MEDIUM);
    ck_assert_uint_eq(policy_next_deadline(&r.th, &r.st), T0 + 20 * S);

    /* evaluated late: every elapsed step at once, calm kept from T0 */
    rig_init(&r);
    eval(&r, &sig, T0);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 25 * S), HAKMEM_LEVEL_LOW);
    ck_assert_uint_eq(r.st.calm_since_ns, T0 + 20 * S);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 30 * S), HAKMEM_LEVEL_NONE);
}
END_TEST

START_TEST(test_lower_signal_does_not_hold_higher_level)
{
    struct rig r;
    rig_init(&r);
    struct policy_signals crit = { .psi_some_avg10_cpct = 4500 };
    struct policy_signals low = { .psi_some_avg10_cpct = 600 };
    ck_assert_int_eq(eval(&r, &crit, T0), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(r.res.reason, HAKMEM_REASON_PSI);
    /* LOW-grade pressure goes on: CRITICAL and MEDIUM still calm down, LOW stays */
    uint64_t t;
    for (t = T0 + S; t <= T0 + 60 * S; t += S)
        eval(&r, &low, t);
    ck_assert_int_eq(r.res.level, HAKMEM_LEVEL_LOW);
    ck_assert_uint_eq(r.publishes, 3); /* CRITICAL, MEDIUM, LOW */
}
END_TEST

START_TEST(test_pressure_resets_calm)
{
    struct rig r;
    rig_init(&r);
    struct policy_signals med = { .usage_permille = 920 };
    eval(&r, &med, T0);
    /* quiet for 9 s, then MEDIUM pressure again, then quiet: the calm
     * period restarts at the last pressure */
    ck_assert_int_eq(eval(&r, &quiet, T0 + 9 * S), HAKMEM_LEVEL_MEDIUM);
    ck_assert_int_eq(eval(&r, &med, T0 + 9500 * MS), HAKMEM_LEVEL_MEDIUM);
    ck_assert(!r.res.publish);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 19 * S), HAKMEM_LEVEL_MEDIUM);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 19500 * MS), HAKMEM_LEVEL_LOW);
}
END_TEST

START_TEST(test_no_flapping_near_threshold)
{
    struct rig r;
    rig_init(&r);
    eval(&r, &quiet, T0);

    /* usage wobbling around the LOW threshold (79.9 % / 80.1 %) for 2 min */
    uint64_t t = T0;
    for (int i = 0; i < 240; i++, t += 500 * MS) {
        struct policy_signals sig = { .usage_permille = (i & 1) ? 801 : 799 };
        eval(&r, &sig, t);
    }
    ck_assert_int_eq(r.res.level, HAKMEM_LEVEL_LOW);
    ck_assert_uint_eq(r.publishes, 2); /* startup NONE, then LOW once */

    /* wobbling right below the threshold, but inside the hysteresis band
     * (72 %..80 %): never calm, stays LOW */
    for (int i = 0; i < 240; i++, t += 500 * MS) {
        struct policy_signals sig = { .usage_permille = (i & 1) ? 790 : 730 };
        eval(&r, &sig, t);
    }
    ck_assert_int_eq(r.res.level, HAKMEM_LEVEL_LOW);
    ck_assert_uint_eq(r.publishes, 2);

    /* below the band: calm after 10 s */
    struct policy_signals sig = { .usage_permille = 710 };
    uint64_t last_hold = t - 500 * MS;
    while (eval(&r, &sig, t) != HAKMEM_LEVEL_NONE) {
        t += 100 * MS;
        ck_assert_uint_le(t - last_hold, 11 * S);
    }
    ck_assert_uint_eq(t - last_hold, 10 * S);
    ck_assert_uint_eq(r.publishes, 3);

    /* bursts of MEDIUM reclaim every 5 s: MEDIUM is held the whole time */
    rig_init(&r);
    t = T0;
    for (int i = 0; i < 600; i++, t += 100 * MS) {
        struct policy_signals b = { .reclaim_events_per_s = (i % 50 == 0) ? 50 : 0 };
        eval(&r, &b, t);
    }
    ck_assert_int_eq(r.res.level, HAKMEM_LEVEL_MEDIUM);
    ck_assert_uint_eq(r.publishes, 1);
}
END_TEST

START_TEST(test_hysteresis_band)
{
    struct policy_thresholds th;
    policy_thresholds_default(&th);
    struct policy_signals sig = { .usage_permille = 790 };
    ck_assert_int_eq(policy_classify(&th, &sig, false, NULL), HAKMEM_LEVEL_NONE);
    ck_assert_int_eq(policy_classify(&th, &sig, true, NULL), HAKMEM_LEVEL_LOW);
    sig.usage_permille = 720; /* exactly 80 % * 0.9 */
    ck_assert_int_eq(policy_classify(&th, &sig, true, NULL), HAKMEM_LEVEL_LOW);
    sig.usage_permille = 719;
    ck_assert_int_eq(policy_classify(&th, &sig, true, NULL), HAKMEM_LEVEL_NONE);
    th.hysteresis_pct = 0;
    sig.usage_permille = 799;
    ck_assert_int_eq(policy_classify(&th, &sig, true, NULL), HAKMEM_LEVEL_NONE);
    /* huge values do not overflow */
    sig = (struct policy_signals){ .reclaim_stall_ns_per_s = UINT64_MAX };
    ck_assert_int_eq(policy_classify(&th, &sig, true, NULL), HAKMEM_LEVEL_CRITICAL);
}
END_TEST

START_TEST(test_classify_signals_and_ties)
{
    struct policy_thresholds th;
    enum hakmem_reason why;
    policy_thresholds_default(&th);

    struct policy_signals sig = { .psi_full_avg10_cpct = 1000 };
    ck_assert_int_eq(policy_classify(&th, &sig, false, &why), HAKMEM_LEVEL_MEDIUM);
    ck_assert_int_eq(why, HAKMEM_REASON_PSI);

    sig = (struct policy_signals){ .psi_fired = true };
    ck_assert_int_eq(policy_classify(&th, &sig, false, &why), HAKMEM_LEVEL_LOW);
    ck_assert_int_eq(why, HAKMEM_REASON_PSI);

    sig = (struct policy_signals){ .vmpressure = HAKMEM_LEVEL_CRITICAL };
    ck_assert_int_eq(policy_classify(&th, &sig, false, &why), HAKMEM_LEVEL_CRITICAL);

    /* ties: BPF names a level before PSI and usage */
    sig = (struct policy_signals){ .usage_permille = 905, .reclaim_events_per_s = 45,
                                   .psi_some_avg10_cpct = 2100 };
    ck_assert_int_eq(policy_classify(&th, &sig, false, &why), HAKMEM_LEVEL_MEDIUM);
    ck_assert_int_eq(why, HAKMEM_REASON_BPF_RECLAIM);
    /* the highest level wins whatever the order */
    sig.usage_permille = 980;
    ck_assert_int_eq(policy_classify(&th, &sig, false, &why), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(why, HAKMEM_REASON_USAGE);

    /* a threshold of 0 is off */
    th.usage_permille[HAKMEM_LEVEL_CRITICAL] = 0;
    sig = (struct policy_signals){ .usage_permille = 1000 };
    ck_assert_int_eq(policy_classify(&th, &sig, false, NULL), HAKMEM_LEVEL_MEDIUM);

    /* a junk level in a signal is clamped, not trusted */
    sig = (struct policy_signals){ .vmpressure = (enum hakmem_level)77 };
    ck_assert_int_eq(policy_classify(&th, &sig, false, NULL), HAKMEM_LEVEL_CRITICAL);
}
END_TEST

START_TEST(test_oom_means_critical)
{
    struct rig r;
    rig_init(&r);
    eval(&r, &quiet, T0);
    struct policy_signals sig = { .oom_kill = true, .usage_permille = 500 };
    ck_assert_int_eq(eval(&r, &sig, T0 + S), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(r.res.reason, HAKMEM_REASON_BPF_OOM);
    /* the flag is one-shot: 30 s later the cgroup is back to NONE */
    uint64_t t;
    for (t = T0 + 2 * S; t <= T0 + 31 * S; t += S)
        eval(&r, &quiet, t);
    ck_assert_int_eq(r.res.level, HAKMEM_LEVEL_NONE);
}
END_TEST

START_TEST(test_memory_events)
{
    struct policy_thresholds th;
    enum hakmem_reason why;
    policy_thresholds_default(&th);

    /* over memory.high: give back now; at memory.max: everything, eagerly */
    struct policy_signals sig = { .memevents_high = true };
    ck_assert_int_eq(policy_classify(&th, &sig, false, &why), HAKMEM_LEVEL_MEDIUM);
    ck_assert_int_eq(why, HAKMEM_REASON_MEMORY_EVENTS);
    sig = (struct policy_signals){ .memevents_max = true, .usage_permille = 850 };
    ck_assert_int_eq(policy_classify(&th, &sig, false, &why), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(why, HAKMEM_REASON_MEMORY_EVENTS);
    sig = (struct policy_signals){ .memevents_oom_kill = true };
    ck_assert_int_eq(policy_classify(&th, &sig, false, &why), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(why, HAKMEM_REASON_MEMORY_EVENTS);
    /* BPF's OOM names it first when both saw the kill */
    sig.oom_kill = true;
    policy_classify(&th, &sig, false, &why);
    ck_assert_int_eq(why, HAKMEM_REASON_BPF_OOM);

    /* the levels are the configuration's; none ignores the counter */
    th.memevents_high_level = HAKMEM_LEVEL_NONE;
    th.memevents_max_level = HAKMEM_LEVEL_LOW;
    sig = (struct policy_signals){ .memevents_high = true };
    ck_assert_int_eq(policy_classify(&th, &sig, false, NULL), HAKMEM_LEVEL_NONE);
    sig = (struct policy_signals){ .memevents_max = true };
    ck_assert_int_eq(policy_classify(&th, &sig, false, NULL), HAKMEM_LEVEL_LOW);

    /* one-shot, like a PSI trigger: a cgroup that stops hitting its limit
     * steps down after the calm periods */
    struct rig r;
    rig_init(&r);
    eval(&r, &quiet, T0);
    sig = (struct policy_signals){ .memevents_max = true };
    ck_assert_int_eq(eval(&r, &sig, T0 + S), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(r.res.reason, HAKMEM_REASON_MEMORY_EVENTS);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 2 * S), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 12 * S), HAKMEM_LEVEL_MEDIUM);
}
END_TEST

START_TEST(test_psi_averages_set_levels)
{
    /* the psi_* thresholds: some 5/20/40 %, full 2/10/20 % (avg10) */
    struct policy_thresholds th;
    enum hakmem_reason why;
    policy_thresholds_default(&th);
    struct policy_signals sig = { .psi_some_avg10_cpct = 499 };
    ck_assert_int_eq(policy_classify(&th, &sig, false, NULL), HAKMEM_LEVEL_NONE);
    sig.psi_some_avg10_cpct = 500;
    ck_assert_int_eq(policy_classify(&th, &sig, false, &why), HAKMEM_LEVEL_LOW);
    ck_assert_int_eq(why, HAKMEM_REASON_PSI);
    sig.psi_some_avg10_cpct = 4000;
    ck_assert_int_eq(policy_classify(&th, &sig, false, NULL), HAKMEM_LEVEL_CRITICAL);
    sig = (struct policy_signals){ .psi_full_avg10_cpct = 200 };
    ck_assert_int_eq(policy_classify(&th, &sig, false, NULL), HAKMEM_LEVEL_LOW);
    /* hold: 20 % some holds MEDIUM down to 18 % (10 % band) */
    sig = (struct policy_signals){ .psi_some_avg10_cpct = 1800 };
    ck_assert_int_eq(policy_classify(&th, &sig, true, NULL), HAKMEM_LEVEL_MEDIUM);
    sig.psi_some_avg10_cpct = 1799;
    ck_assert_int_eq(policy_classify(&th, &sig, true, NULL), HAKMEM_LEVEL_LOW);
}
END_TEST

START_TEST(test_overrides)
{
    struct rig r;
    rig_init(&r);
    eval(&r, &quiet, T0);

    /* ON: LEAN (LOW) without pressure */
    struct policy_signals on = { .override = POLICY_OVERRIDE_ON };
    ck_assert_int_eq(eval(&r, &on, T0 + S), HAKMEM_LEVEL_LOW);
    ck_assert(r.res.publish);
    ck_assert_int_eq(r.res.reason, HAKMEM_REASON_OPERATOR);
    ck_assert_int_eq(r.st.level, HAKMEM_LEVEL_NONE); /* the policy's own level */
    ck_assert_int_eq(eval(&r, &on, T0 + 2 * S), HAKMEM_LEVEL_LOW);
    ck_assert(!r.res.publish);

    /* ON lets pressure raise the level */
    on.usage_permille = 990;
    ck_assert_int_eq(eval(&r, &on, T0 + 3 * S), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(r.res.reason, HAKMEM_REASON_USAGE);

    /* ON with a level: at least that level */
    struct policy_signals on_med = { .override = POLICY_OVERRIDE_ON,
                                     .override_level = HAKMEM_LEVEL_MEDIUM };
    rig_init(&r);
    ck_assert_int_eq(eval(&r, &on_med, T0), HAKMEM_LEVEL_MEDIUM);

    /* OFF wins over any pressure; the policy keeps its own level */
    rig_init(&r);
    eval(&r, &quiet, T0);
    struct policy_signals off = { .override = POLICY_OVERRIDE_OFF, .oom_kill = true };
    ck_assert_int_eq(eval(&r, &off, T0 + S), HAKMEM_LEVEL_NONE);
    ck_assert(!r.res.publish); /* NONE was published already */
    ck_assert_int_eq(r.st.level, HAKMEM_LEVEL_CRITICAL);

    /* back to AUTO: the current pressure level at once */
    ck_assert_int_eq(eval(&r, &quiet, T0 + 2 * S), HAKMEM_LEVEL_CRITICAL);
    ck_assert(r.res.publish);
    ck_assert_int_eq(r.res.reason, HAKMEM_REASON_OPERATOR);

    /* calm kept running while OFF: AUTO after 30 s of calm finds NONE */
    rig_init(&r);
    struct policy_signals oom = { .oom_kill = true };
    eval(&r, &oom, T0);
    off.oom_kill = false;
    uint64_t t;
    for (t = T0 + S; t <= T0 + 31 * S; t += S)
        ck_assert_int_eq(eval(&r, &off, t), HAKMEM_LEVEL_NONE);
    ck_assert_int_eq(eval(&r, &quiet, t), HAKMEM_LEVEL_NONE);
    ck_assert(!r.res.publish);
}
END_TEST

START_TEST(test_clock_going_back_is_harmless)
{
    struct rig r;
    rig_init(&r);
    struct policy_signals sig = { .usage_permille = 990 };
    eval(&r, &sig, T0 + 5 * S);
    ck_assert_int_eq(eval(&r, &quiet, T0), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 9 * S), HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(eval(&r, &quiet, T0 + 10 * S), HAKMEM_LEVEL_MEDIUM);
}
END_TEST

START_TEST(test_level_names)
{
    unsigned l;
    ck_assert_str_eq(proto_level_name(HAKMEM_LEVEL_MEDIUM), "medium");
    ck_assert_str_eq(proto_level_name(9), "?");
    ck_assert_int_eq(proto_level_parse("CRITICAL", &l), 0);
    ck_assert_int_eq(l, HAKMEM_LEVEL_CRITICAL);
    ck_assert_int_eq(proto_level_parse("1", &l), 0);
    ck_assert_int_eq(l, HAKMEM_LEVEL_LOW);
    ck_assert_int_eq(proto_level_parse("4", &l), -EINVAL);
    ck_assert_int_eq(proto_level_parse("lo", &l), -EINVAL);
    ck_assert_int_eq(proto_level_parse("", &l), -EINVAL);
}
END_TEST

static Suite *daemon_policy_suite(void)
{
    Suite *s = suite_create("daemon_policy");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_defaults_rise_with_level);
    tcase_add_test(tc, test_first_evaluation_publishes_startup);
    tcase_add_test(tc, test_fast_up_at_once);
    tcase_add_test(tc, test_bpf_notification_defaults_mean_medium);
    tcase_add_test(tc, test_slow_down_one_level_per_calm_period);
    tcase_add_test(tc, test_calm_clock_is_the_last_evaluation_holding_the_level);
    tcase_add_test(tc, test_lower_signal_does_not_hold_higher_level);
    tcase_add_test(tc, test_pressure_resets_calm);
    tcase_add_test(tc, test_no_flapping_near_threshold);
    tcase_add_test(tc, test_hysteresis_band);
    tcase_add_test(tc, test_classify_signals_and_ties);
    tcase_add_test(tc, test_oom_means_critical);
    tcase_add_test(tc, test_memory_events);
    tcase_add_test(tc, test_psi_averages_set_levels);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_clock_going_back_is_harmless);
    tcase_add_test(tc, test_level_names);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(daemon_policy_suite)
