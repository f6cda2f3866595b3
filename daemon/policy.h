/* policy.h: hakmemd's pressure policy: from the signals of one cgroup to
 * the level its shims must follow (docs/ARCHITECTURE.md, "Modes and levels").
 *
 * Owns: the per-cgroup state machine (fast up, slow down with a calm
 * period and a hysteresis band, operator overrides) and the default
 * thresholds with the reasons for their values.
 * Must not: read files, look at clocks, log or allocate. Time comes in as
 * CLOCK_MONOTONIC nanoseconds; signals come in already measured (by the
 * sources) and converted to rates by the caller. That keeps every rule
 * here unit-testable with an injected clock (tests/unit/test_daemon_policy.c).
 *
 * Rules (policy_evaluate):
 *  1. Classify: the "enter" level of the signals is the highest level whose
 *     threshold at least one signal reaches (a threshold of 0 is off).
 *     OOM kill -> CRITICAL; a fired PSI trigger -> psi_trigger_level; the
 *     debounced v1 memory.pressure_level maps onto the same-named level;
 *     v2 memory.events: high rose -> memevents_high_level, max rose ->
 *     memevents_max_level, oom_kill rose -> CRITICAL.
 *  2. Fast up: enter > level -> level = enter at once (no delay, no steps).
 *  3. Slow down: the "hold" level is the same classification with every
 *     rate/ratio threshold lowered by hysteresis_pct. While hold >= level,
 *     the cgroup is not calm: calm_since = now. Once hold < level has
 *     lasted calm_ns[level], level drops by ONE, and the calm clock of the
 *     new level starts at that moment; so CRITICAL reaches NONE after
 *     calm_ns[CRITICAL] + calm_ns[MEDIUM] + calm_ns[LOW] of calm.
 *     A signal wobbling around a threshold therefore changes the level at
 *     most once per calm period (no flapping), and must fall clearly below
 *     it (the hysteresis band) before the calm clock even starts.
 *  4. Override (operator, hakmemctl lean): OFF -> NONE; ON -> at least
 *     override_level (LOW, i.e. LEAN, when none is given) and pressure may
 *     raise it further; AUTO -> the policy's level. The policy's own level
 *     keeps running underneath, so leaving an override lands on the
 *     current pressure level at once.
 *  5. Publish when the resulting level differs from the last published
 *     one, and at the first evaluation of a cgroup (its initial state).
 */
#ifndef HAKMEMD_POLICY_H
#define HAKMEMD_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include "hakmem_proto.h"

/* ---------------------------------------------------------------------
 * Default thresholds. Plain decimal literals on purpose: config.c turns
 * them into the config table's default strings (one source of truth).
 *
 * Usage (working set = usage - inactive file cache, over the effective
 * limit, see usage_source.h): LOW at 80 % starts LEAN while 20 % of
 * headroom is left (LEAN costs <= 10 % throughput, docs/ARCHITECTURE.md), MEDIUM at
 * 90 % gives free memory back before the kernel has to reclaim, CRITICAL
 * at 97 % means the next burst reclaims directly or hits the OOM killer
 * (128 MB over a 64 MB limit is killed in ~0.6 s here), so trim everything.
 */
#define POLICY_DEF_USAGE_LOW_PCT      80
#define POLICY_DEF_USAGE_MEDIUM_PCT   90
#define POLICY_DEF_USAGE_CRITICAL_PCT 97

/* Reclaim entries per second in the cgroup (BPF: direct + memcg limit
 * reclaim). MEDIUM equals the BPF side's notification threshold
 * (HAKMEM_BPF_DEF_MIN_EVENTS = 4 per 100 ms window = 40/s): a notification
 * at the defaults is by itself enough to decommit now, which is what the
 * 100 ms onset-to-decommit target needs. LOW (10/s) is any sustained
 * reclaim; CRITICAL (400/s) is tasks queueing on the limit. */
#define POLICY_DEF_RECLAIM_EVENTS_LOW      10
#define POLICY_DEF_RECLAIM_EVENTS_MEDIUM   40
#define POLICY_DEF_RECLAIM_EVENTS_CRITICAL 400

/* Time in reclaim, ms per second, summed over the cgroup's tasks (BPF).
 * MEDIUM equals the BPF notification threshold (HAKMEM_BPF_DEF_MIN_STALL_NS
 * = 2 ms per 100 ms = 20 ms/s), for the same reason as above. CRITICAL at
 * 100 ms/s: a tenth of a task-second lost to reclaim every second; with
 * anonymous memory at the limit and no swap, OOM is less than a second away. */
#define POLICY_DEF_RECLAIM_STALL_LOW_MS      5
#define POLICY_DEF_RECLAIM_STALL_MEDIUM_MS   20
#define POLICY_DEF_RECLAIM_STALL_CRITICAL_MS 100

/* PSI avg10, percent. "some" 5 % is light but real contention; 20 % is a
 * workload visibly slowed; 40 % is heavy thrashing. "full" (every task
 * stalled at once) is much worse per point: 2/10/20 % (systemd-oomd kills
 * at 60 % full over 30 s by default; we act long before). avg10 is a 10 s
 * average, so it lags: it is a slow confirmation, BPF is the fast path. */
#define POLICY_DEF_PSI_SOME_LOW_PCT      5
#define POLICY_DEF_PSI_SOME_MEDIUM_PCT   20
#define POLICY_DEF_PSI_SOME_CRITICAL_PCT 40
#define POLICY_DEF_PSI_FULL_LOW_PCT      2
#define POLICY_DEF_PSI_FULL_MEDIUM_PCT   10
#define POLICY_DEF_PSI_FULL_CRITICAL_PCT 20

/* A fired PSI trigger (default "some 37500 500000", i.e. 7.5 % stall over
 * 500 ms, or over 2 s where the kernel wants that: between the LOW and
 * MEDIUM avg10 thresholds) means LOW. */
#define POLICY_DEF_PSI_TRIGGER_LEVEL HAKMEM_LEVEL_LOW

/* memory.events (v2). "high" rose: the cgroup went over memory.high and
 * the kernel throttles its allocations while it reclaims (Kubernetes
 * MemoryQoS sets memory.high below the limit for this): give free memory
 * back now, MEDIUM. "max" rose: a charge met memory.max and had to
 * reclaim; the next one may fail into the OOM killer: everything back,
 * eagerly, CRITICAL. */
#define POLICY_DEF_MEMEVENTS_HIGH_LEVEL HAKMEM_LEVEL_MEDIUM
#define POLICY_DEF_MEMEVENTS_MAX_LEVEL  HAKMEM_LEVEL_CRITICAL

/* Calm periods, ms, per step down. 10 s spans five 2 s PSI trigger windows
 * (the finest this platform allows), the whole avg10 horizon and forty BPF
 * notification intervals (250 ms): pressure that is still there re-arms the
 * level long before the period ends. Three steps make 30 s from CRITICAL
 * to NONE, short next to the minutes a cgroup typically spends at its
 * limit, long next to one reclaim burst. */
#define POLICY_DEF_CALM_CRITICAL_MS 10000
#define POLICY_DEF_CALM_MEDIUM_MS   10000
#define POLICY_DEF_CALM_LOW_MS      10000

/* Hysteresis band, percent of each threshold: to count as calm, a signal
 * must fall below threshold * (100 - 10) / 100 (usage 80 % -> 72 %). A
 * cgroup sitting right at a threshold thus never starts its calm clock. */
#define POLICY_DEF_HYSTERESIS_PCT 10

/* Thresholds, indexed by level (LOW, MEDIUM, CRITICAL; index NONE is
 * unused and 0). 0 turns a threshold off. The thresholds of one signal
 * must not fall as the level rises (config_check() enforces it for
 * loaded configurations). */
struct policy_thresholds {
    uint32_t usage_permille[HAKMEM_LEVEL_COUNT];       /* working set / limit, 1/1000 */
    uint64_t reclaim_events_per_s[HAKMEM_LEVEL_COUNT]; /* reclaim entries per s */
    uint64_t reclaim_stall_ns_per_s[HAKMEM_LEVEL_COUNT]; /* ns in reclaim per s */
    uint32_t psi_some_cpct[HAKMEM_LEVEL_COUNT];        /* PSI some avg10, 1/100 % */
    uint32_t psi_full_cpct[HAKMEM_LEVEL_COUNT];        /* PSI full avg10, 1/100 % */
    enum hakmem_level psi_trigger_level; /* level a fired PSI trigger means */
    enum hakmem_level memevents_high_level; /* level memory.events "high" rising means */
    enum hakmem_level memevents_max_level;  /* level memory.events "max" rising means */
    uint64_t calm_ns[HAKMEM_LEVEL_COUNT]; /* calm needed to leave level L for L-1, ns */
    uint32_t hysteresis_pct;              /* band below each threshold, % (0..99) */
};

void policy_thresholds_default(struct policy_thresholds *th);

enum policy_override {
    POLICY_OVERRIDE_AUTO = 0, /* follow pressure */
    POLICY_OVERRIDE_ON = 1,   /* LEAN: at least override_level */
    POLICY_OVERRIDE_OFF = 2,  /* FAST: NONE whatever the pressure */
};

/* What the sources saw for one cgroup, at one evaluation. Rates describe
 * the recent past (the caller's job: from a BPF notification, count /
 * window_ns of that window, not / the elapsed part of it; from polled
 * counters, delta / interval), and go back to 0 once no fresh data shows
 * pressure: a stale rate would keep the cgroup from ever calming down.
 * The one-shot flags (psi_fired, oom_kill, memevents_*) mean "since the
 * last evaluation". */
struct policy_signals {
    uint64_t reclaim_events_per_s;   /* BPF: reclaim entries per s */
    uint64_t reclaim_stall_ns_per_s; /* BPF: ns in reclaim per s, all tasks summed */
    uint32_t psi_some_avg10_cpct;    /* PSI some avg10, 1/100 % (523 = 5.23 %) */
    uint32_t psi_full_avg10_cpct;    /* PSI full avg10, 1/100 % */
    bool psi_fired;                  /* a PSI trigger fired (POLLPRI) */
    enum hakmem_level vmpressure;    /* debounced v1 memory.pressure_level, NONE if quiet */
    uint32_t usage_permille;         /* working set / limit, 1/1000; 0: no limit or unknown */
    bool oom_kill;                   /* an OOM kill in the cgroup (BPF) */
    bool memevents_high;             /* v2 memory.events: "high" rose */
    bool memevents_max;              /* v2 memory.events: "max" rose */
    bool memevents_oom_kill;         /* v2 memory.events: "oom_kill" rose */
    enum policy_override override;   /* operator's choice */
    enum hakmem_level override_level; /* ON: the minimum level; NONE means LOW */
};

/* Per-cgroup state. Invariants: level and published are valid levels;
 * rise_ns <= calm_since_ns <= the last now passed in (clock monotonic). */
struct policy_state {
    enum hakmem_level level;     /* the policy's level, before the override */
    enum hakmem_reason reason;   /* why level is what it is (signal, CALM, STARTUP) */
    uint64_t rise_ns;            /* time of the last rise, ns; 0: never rose */
    uint64_t calm_since_ns;      /* last time the signals held level (or it was entered), ns */
    enum hakmem_level published; /* last level returned with publish = true */
    bool published_valid;        /* false until the first evaluation */
};

struct policy_result {
    enum hakmem_level level;   /* level to publish for the cgroup (after the override) */
    enum hakmem_reason reason; /* why: the signal that raised it, CALM, OPERATOR, STARTUP */
    bool publish;              /* level differs from the last published one (or first) */
};

void policy_state_init(struct policy_state *st, uint64_t now_ns);

/* One evaluation at now_ns: updates st, fills out. Pure. */
void policy_evaluate(const struct policy_thresholds *th, struct policy_state *st,
                     const struct policy_signals *sig, uint64_t now_ns,
                     struct policy_result *out);

/* The level the signals alone call for. hold = false: the entering
 * thresholds; true: thresholds lowered by the hysteresis band. *why (may
 * be NULL) gets the signal that decided it (ties: OOM, BPF, memory.events,
 * PSI, usage). */
enum hakmem_level policy_classify(const struct policy_thresholds *th,
                                  const struct policy_signals *sig, bool hold,
                                  enum hakmem_reason *why);

/* Earliest time at which policy_evaluate could lower the level if the
 * signals stay calm (for the event loop's timer), ns; UINT64_MAX when the
 * level is NONE. */
uint64_t policy_next_deadline(const struct policy_thresholds *th,
                              const struct policy_state *st);

#endif /* HAKMEMD_POLICY_H */
