/* policy.c: hakmemd's per-cgroup pressure state machine (rules in
 * policy.h). Pure: no I/O, no clock, no logging, no allocation; every
 * function is a plain computation over its arguments.
 */
#include "policy.h"

#include <errno.h>
#include <stddef.h>
#include <strings.h>

#define NS_PER_MS UINT64_C(1000000)

void policy_thresholds_default(struct policy_thresholds *th)
{
    *th = (struct policy_thresholds){
        .usage_permille = {
            [HAKMEM_LEVEL_LOW] = POLICY_DEF_USAGE_LOW_PCT * 10,
            [HAKMEM_LEVEL_MEDIUM] = POLICY_DEF_USAGE_MEDIUM_PCT * 10,
            [HAKMEM_LEVEL_CRITICAL] = POLICY_DEF_USAGE_CRITICAL_PCT * 10,
        },
        .reclaim_events_per_s = {
            [HAKMEM_LEVEL_LOW] = POLICY_DEF_RECLAIM_EVENTS_LOW,
            [HAKMEM_LEVEL_MEDIUM] = POLICY_DEF_RECLAIM_EVENTS_MEDIUM,
            [HAKMEM_LEVEL_CRITICAL] = POLICY_DEF_RECLAIM_EVENTS_CRITICAL,
        },
        .reclaim_stall_ns_per_s = {
            [HAKMEM_LEVEL_LOW] = POLICY_DEF_RECLAIM_STALL_LOW_MS * NS_PER_MS,
            [HAKMEM_LEVEL_MEDIUM] = POLICY_DEF_RECLAIM_STALL_MEDIUM_MS * NS_PER_MS,
            [HAKMEM_LEVEL_CRITICAL] = POLICY_DEF_RECLAIM_STALL_CRITICAL_MS * NS_PER_MS,
        },
        .psi_some_cpct = {
            [HAKMEM_LEVEL_LOW] = POLICY_DEF_PSI_SOME_LOW_PCT * 100,
            [HAKMEM_LEVEL_MEDIUM] = POLICY_DEF_PSI_SOME_MEDIUM_PCT * 100,
            [HAKMEM_LEVEL_CRITICAL] = POLICY_DEF_PSI_SOME_CRITICAL_PCT * 100,
        },
        .psi_full_cpct = {
            [HAKMEM_LEVEL_LOW] = POLICY_DEF_PSI_FULL_LOW_PCT * 100,
            [HAKMEM_LEVEL_MEDIUM] = POLICY_DEF_PSI_FULL_MEDIUM_PCT * 100,
            [HAKMEM_LEVEL_CRITICAL] = POLICY_DEF_PSI_FULL_CRITICAL_PCT * 100,
        },
        .psi_trigger_level = POLICY_DEF_PSI_TRIGGER_LEVEL,
        .memevents_high_level = POLICY_DEF_MEMEVENTS_HIGH_LEVEL,
        .memevents_max_level = POLICY_DEF_MEMEVENTS_MAX_LEVEL,
        .calm_ns = {
            [HAKMEM_LEVEL_LOW] = POLICY_DEF_CALM_LOW_MS * NS_PER_MS,
            [HAKMEM_LEVEL_MEDIUM] = POLICY_DEF_CALM_MEDIUM_MS * NS_PER_MS,
            [HAKMEM_LEVEL_CRITICAL] = POLICY_DEF_CALM_CRITICAL_MS * NS_PER_MS,
        },
        .hysteresis_pct = POLICY_DEF_HYSTERESIS_PCT,
    };
}

static enum hakmem_level clamp_level(enum hakmem_level l)
{
    return (unsigned)l > HAKMEM_LEVEL_CRITICAL ? HAKMEM_LEVEL_CRITICAL : l;
}

/* value reaches threshold (hold: threshold lowered by band_pct %)?
 * Compared as value * 100 >= threshold * (100 - band) without overflow:
 * both sides fit in 128 bits. A threshold of 0 is off. */
static bool reaches(uint64_t value, uint64_t threshold, bool hold, uint32_t band_pct)
{
    if (threshold == 0)
        return false;
    if (!hold)
        return value >= threshold;
    if (band_pct > 99)
        band_pct = 99;
    return (unsigned __int128)value * 100 >=
           (unsigned __int128)threshold * (100 - band_pct);
}

struct pick {
    enum hakmem_level level;
    enum hakmem_reason why;
};

static void consider(struct pick *p, enum hakmem_level level, enum hakmem_reason why)
{
    level = clamp_level(level);
    if (level > p->level) {
        p->level = level;
        p->why = why;
    }
}

/* The highest level L whose threshold value reaches; NONE when none. */
static enum hakmem_level rate_level(uint64_t value, const uint64_t th[HAKMEM_LEVEL_COUNT],
                                    bool hold, uint32_t band)
{
    for (int l = HAKMEM_LEVEL_CRITICAL; l >= HAKMEM_LEVEL_LOW; l--)
        if (reaches(value, th[l], hold, band))
            return (enum hakmem_level)l;
    return HAKMEM_LEVEL_NONE;
}

static enum hakmem_level ratio_level(uint32_t value, const uint32_t th[HAKMEM_LEVEL_COUNT],
                                     bool hold, uint32_t band)
{
    for (int l = HAKMEM_LEVEL_CRITICAL; l >= HAKMEM_LEVEL_LOW; l--)
        if (reaches(value, th[l], hold, band))
            return (enum hakmem_level)l;
    return HAKMEM_LEVEL_NONE;
}

enum hakmem_level policy_classify(const struct policy_thresholds *th,
                                  const struct policy_signals *sig, bool hold,
                                  enum hakmem_reason *why)
{
    uint32_t band = th->hysteresis_pct;
    struct pick p = { HAKMEM_LEVEL_NONE, HAKMEM_REASON_NONE };

    /* Order decides ties: the first signal to reach a level names it. */
    if (sig->oom_kill)
        consider(&p, HAKMEM_LEVEL_CRITICAL, HAKMEM_REASON_BPF_OOM);
    consider(&p, rate_level(sig->reclaim_stall_ns_per_s, th->reclaim_stall_ns_per_s, hold, band),
             HAKMEM_REASON_BPF_RECLAIM);
    consider(&p, rate_level(sig->reclaim_events_per_s, th->reclaim_events_per_s, hold, band),
             HAKMEM_REASON_BPF_RECLAIM);
    if (sig->memevents_oom_kill)
        consider(&p, HAKMEM_LEVEL_CRITICAL, HAKMEM_REASON_MEMORY_EVENTS);
    if (sig->memevents_max)
        consider(&p, th->memevents_max_level, HAKMEM_REASON_MEMORY_EVENTS);
    if (sig->memevents_high)
        consider(&p, th->memevents_high_level, HAKMEM_REASON_MEMORY_EVENTS);
    consider(&p, ratio_level(sig->psi_some_avg10_cpct, th->psi_some_cpct, hold, band),
             HAKMEM_REASON_PSI);
    consider(&p, ratio_level(sig->psi_full_avg10_cpct, th->psi_full_cpct, hold, band),
             HAKMEM_REASON_PSI);
    if (sig->psi_fired)
        consider(&p, th->psi_trigger_level, HAKMEM_REASON_PSI);
    consider(&p, sig->vmpressure, HAKMEM_REASON_PSI);
    consider(&p, ratio_level(sig->usage_permille, th->usage_permille, hold, band),
             HAKMEM_REASON_USAGE);

    if (why)
        *why = p.why;
    return p.level;
}

void policy_state_init(struct policy_state *st, uint64_t now_ns)
{
    *st = (struct policy_state){
        .level = HAKMEM_LEVEL_NONE,
        .reason = HAKMEM_REASON_STARTUP,
        .rise_ns = 0,
        .calm_since_ns = now_ns,
        .published = HAKMEM_LEVEL_NONE,
        .published_valid = false,
    };
}

static enum hakmem_level apply_override(const struct policy_signals *sig,
                                        enum hakmem_level level)
{
    enum hakmem_level floor;

    switch (sig->override) {
    case POLICY_OVERRIDE_OFF:
        return HAKMEM_LEVEL_NONE;
    case POLICY_OVERRIDE_ON:
        floor = clamp_level(sig->override_level);
        if (floor == HAKMEM_LEVEL_NONE)
            floor = HAKMEM_LEVEL_LOW;
        return level > floor ? level : floor;
    case POLICY_OVERRIDE_AUTO:
    default:
        return level;
    }
}

void policy_evaluate(const struct policy_thresholds *th, struct policy_state *st,
                     const struct policy_signals *sig, uint64_t now_ns,
                     struct policy_result *out)
{
    enum hakmem_reason why;
    enum hakmem_level enter = policy_classify(th, sig, false, &why);
    enum hakmem_level hold = policy_classify(th, sig, true, NULL);
    enum hakmem_level before = st->level;

    /* A clock that went backwards (it should not) counts as no time passed. */
    if (now_ns < st->calm_since_ns)
        st->calm_since_ns = now_ns;

    if (enter > st->level) {
        /* fast up */
        st->level = enter;
        st->reason = why;
        st->rise_ns = now_ns;
        st->calm_since_ns = now_ns;
    } else if (hold >= st->level) {
        /* still under the current level's pressure: not calm */
        st->calm_since_ns = now_ns;
    } else {
        /* slow down: one step per calm period; a late evaluation catches
         * up on the steps whose periods have all elapsed */
        while (st->level > HAKMEM_LEVEL_NONE && hold < st->level &&
               now_ns - st->calm_since_ns >= th->calm_ns[st->level]) {
            st->calm_since_ns += th->calm_ns[st->level];
            st->level--;
            st->reason = HAKMEM_REASON_CALM;
        }
        if (hold >= st->level)
            st->calm_since_ns = now_ns;
    }

    enum hakmem_level eff = apply_override(sig, st->level);
    out->level = eff;
    out->publish = !st->published_valid || eff != st->published;
    if (!st->published_valid && eff == HAKMEM_LEVEL_NONE &&
        sig->override == POLICY_OVERRIDE_AUTO)
        out->reason = HAKMEM_REASON_STARTUP;
    else if (eff != st->level || (out->publish && st->level == before))
        /* the override decides, or only the override changed */
        out->reason = HAKMEM_REASON_OPERATOR;
    else
        out->reason = st->reason;

    if (out->publish) {
        st->published = eff;
        st->published_valid = true;
    }
}

uint64_t policy_next_deadline(const struct policy_thresholds *th,
                              const struct policy_state *st)
{
    if (st->level == HAKMEM_LEVEL_NONE)
        return UINT64_MAX;
    uint64_t calm = th->calm_ns[clamp_level(st->level)];
    if (st->calm_since_ns > UINT64_MAX - calm)
        return UINT64_MAX;
    return st->calm_since_ns + calm;
}
