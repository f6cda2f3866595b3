/* test_restart.c: e2e test 4a. hakmemd killed, hung and restarted, with
 * real shim clients (e2e_shimclient under LD_PRELOAD) idle in sleep loops:
 *   A  default HAKMEM_DAEMON_TIMEOUT_MS (5000), gets an operator override
 *   Q  HAKMEM_DAEMON_TIMEOUT_MS=1000, gets an operator override
 *   B  default, no override
 *   C  HAKMEM_SS_MEM_LEAN=1: its own mode is LEAN
 * 1. `lean on` for A's and Q's pids (control socket; root, or -EPERM is
 *    checked instead): both LEAN.
 * 2. SIGSTOP (a hung daemon: heartbeat stops, sockets stay): Q falls back
 *    to FAST after its 1 s timeout, A (5 s) not yet; SIGCONT: Q is LEAN again.
 * 3. SIGKILL, restart: everyone keeps running and reattaches within a few
 *    seconds; the new daemon has no override, so A and Q end FAST (A
 *    before its own timeout could have done it: no stale level), B FAST,
 *    C LEAN; the new ring has another generation.
 * 4. overrides again, SIGKILL, no restart: Q FAST after ~1 s, A still LEAN
 *    at 2.5 s and FAST after its 5 s; a daemon started later gets everyone
 *    back (backoff at most 5 s).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"
#include "e2e_obs.h"
#include "msg.h"

enum { A, Q, B, C, NSHIM };
static const char *const names[NSHIM] = { "A", "Q", "B", "C" };
static struct e2e_shim sh[NSHIM];
static char rt[96];
static bool root;

/* Seconds until every shim is in CLIENTS, or -1 after timeout_s. */
static double wait_all_registered(double timeout_s)
{
    double t0 = e2e_now();
    while (e2e_now() - t0 < timeout_s) {
        struct hakmem_ctl_client *cl;
        size_t n;
        int found = 0;
        if (e2e_ctl_clients(rt, &cl, &n) == 0) {
            for (int s = 0; s < NSHIM; s++)
                for (size_t i = 0; i < n; i++)
                    if (cl[i].pid == (uint32_t)sh[s].pid) {
                        found++;
                        break;
                    }
        }
        free(cl);
        if (found == NSHIM)
            return e2e_now() - t0;
        e2e_sleep_ms(20);
    }
    return -1;
}

static int mode_of(int s)
{
    int m = -1, l;
    e2e_shim_state(&sh[s], &m, &l);
    return m;
}

static void expect_mode(int s, int mode, unsigned timeout_ms, const char *when)
{
    double t = e2e_shim_wait_mode(&sh[s], mode, timeout_ms);
    E2E_CHECK(t >= 0, "%s: %s is %s, expected %s within %u ms", when, names[s],
              proto_mode_name((unsigned)mode_of(s)), proto_mode_name((unsigned)mode), timeout_ms);
}

/* The shims' records in the daemon's CLIENTS: mode, level, override, flags. */
static void expect_records(const char *when, const int *modes, const int *ctl)
{
    for (int s = 0; s < NSHIM; s++) {
        struct hakmem_ctl_client r;
        bool ok = false;
        /* the stats page is refreshed at least once a second */
        for (int i = 0; i < 150; i++) {
            memset(&r, 0, sizeof(r));
            if (e2e_find_client(rt, sh[s].pid, &r) && r.mode == modes[s] && r.override == ctl[s] &&
                (r.flags & HAKMEM_STATS_F_DAEMON) &&
                /* lean on without a level means MEDIUM */
                r.last_level == (ctl[s] == HAKMEM_OVERRIDE_ON ? HAKMEM_LEVEL_MEDIUM : HAKMEM_LEVEL_NONE))
                {
                ok = true;
                break;
            }
            e2e_sleep_ms(20);
        }
        E2E_CHECK(ok, "%s: CLIENTS record of %s (pid %d): mode %s, level %s, override %u, flags %#x; "
                  "expected mode %s, override %d", when, names[s], (int)sh[s].pid,
                  proto_mode_name(r.mode), proto_level_name(r.last_level), r.override, r.flags,
                  proto_mode_name((unsigned)modes[s]), ctl[s]);
        if (s == C)
            E2E_CHECK(r.flags & HAKMEM_STATS_F_LEAN_ENV, "%s: C's record lacks the LEAN_ENV flag", when);
    }
}

static void override(int s, uint32_t mode)
{
    int rc = e2e_ctl_lean(rt, HAKMEM_CTL_TARGET_PID, (uint64_t)sh[s].pid, mode, HAKMEM_LEVEL_NONE);
    E2E_CHECK(rc == 0, "lean %s for %s (pid %d): %s", mode == HAKMEM_OVERRIDE_ON ? "on" : "auto",
              names[s], (int)sh[s].pid, strerror(-rc));
}

static void all_alive(const char *when)
{
    for (int s = 0; s < NSHIM; s++)
        E2E_CHECK(e2e_shim_alive(&sh[s]), "%s: shim client %s died", when, names[s]);
}

int main(int argc, char **argv)
{
    e2e_init(argc, argv, "e2e-restart", 58);
    if (!e2e_shim_path || !e2e_client_path)
        e2e_skip("--shim and --client are needed");
    root = e2e_is_root();
    snprintf(rt, sizeof(rt), "%s/rt", e2e_dir());
    /* a heartbeat well inside Q's 1 s timeout (with the default 1 s
     * period a 1 s timeout flaps: see section 5) */
    const char *args[] = { "--sources", "none", "--set", "heartbeat_ms=250", NULL };
    struct e2e_daemon D;
    e2e_daemon_start_or_fail(&D, rt, args);

    static const char *const env_q[] = { "HAKMEM_DAEMON_TIMEOUT_MS=1000", NULL };
    static const char *const env_c[] = { "HAKMEM_SS_MEM_LEAN=1", NULL };
    e2e_shim_start(&sh[A], rt, NULL);
    e2e_shim_start(&sh[Q], rt, env_q);
    e2e_shim_start(&sh[B], rt, NULL);
    e2e_shim_start(&sh[C], rt, env_c);
    double t = wait_all_registered(5);
    E2E_REQUIRE(t >= 0, "the shim clients did not all register");
    e2e_log("shim clients A %d, Q %d, B %d, C %d registered", (int)sh[A].pid, (int)sh[Q].pid,
            (int)sh[B].pid, (int)sh[C].pid);
    static const int auto4[NSHIM] = { 0, 0, 0, 0 };
    static const int fast_fast_fast_lean[NSHIM] = { HAKMEM_MODE_FAST, HAKMEM_MODE_FAST,
                                                    HAKMEM_MODE_FAST, HAKMEM_MODE_LEAN };
    expect_records("at the start", fast_fast_fast_lean, auto4);
    struct e2e_obs o1;
    E2E_REQUIRE(e2e_obs_open(&o1, rt), "observer did not register");

    /* ---- 1. overrides ---- */
    static const int on2[NSHIM] = { HAKMEM_OVERRIDE_ON, HAKMEM_OVERRIDE_ON, 0, 0 };
    static const int all_lean_but_b[NSHIM] = { HAKMEM_MODE_LEAN, HAKMEM_MODE_LEAN, HAKMEM_MODE_FAST,
                                               HAKMEM_MODE_LEAN };
    if (root) {
        override(A, HAKMEM_OVERRIDE_ON);
        override(Q, HAKMEM_OVERRIDE_ON);
        expect_mode(A, HAKMEM_MODE_LEAN, 2000, "after lean on");
        expect_mode(Q, HAKMEM_MODE_LEAN, 2000, "after lean on");
        expect_records("after lean on", all_lean_but_b, on2);
        e2e_log("1. lean on for A and Q: both LEAN (B FAST, C LEAN)");
    } else {
        int rc = e2e_ctl_lean(rt, HAKMEM_CTL_TARGET_PID, (uint64_t)sh[A].pid, HAKMEM_OVERRIDE_ON, 0);
        E2E_CHECK(rc == -EPERM, "lean on as uid %d: %s (expected EPERM)", (int)geteuid(), strerror(-rc));
        e2e_log("1. not root: lean on is refused (%s); the override parts are skipped", strerror(-rc));
    }

    /* ---- 2. a hung daemon ---- */
    if (root) {
        kill(D.pid, SIGSTOP);
        double t_stop = e2e_now();
        double tq = e2e_shim_wait_mode(&sh[Q], HAKMEM_MODE_FAST, 3500);
        E2E_CHECK(tq >= 0, "daemon stopped: Q (timeout 1 s) still %s after 3.5 s",
                  proto_mode_name((unsigned)mode_of(Q)));
        E2E_CHECK(tq < 0 || tq >= 0.5, "daemon stopped: Q fell back after only %.3f s", tq);
        double rest = t_stop + 3.0 - e2e_now();
        if (rest > 0)
            e2e_sleep_ms((unsigned)(rest * 1000));
        E2E_CHECK(mode_of(A) == HAKMEM_MODE_LEAN, "daemon stopped 3 s: A (timeout 5 s) fell back already");
        E2E_CHECK(mode_of(C) == HAKMEM_MODE_LEAN, "daemon stopped: C left its own LEAN mode");
        E2E_CHECK(mode_of(B) == HAKMEM_MODE_FAST, "daemon stopped: B is not FAST");
        e2e_log("2. SIGSTOP: Q FAST after %.2f s, A still LEAN at 3 s; heartbeat age %.2f s", tq,
                e2e_obs_heartbeat_age(&o1));
        kill(D.pid, SIGCONT);
        double tc = e2e_shim_wait_mode(&sh[Q], HAKMEM_MODE_LEAN, 3000);
        E2E_CHECK(tc >= 0, "daemon continued: Q did not return to LEAN within 3 s");
        E2E_CHECK(mode_of(A) == HAKMEM_MODE_LEAN, "daemon continued: A is not LEAN");
        e2e_log("   SIGCONT: Q LEAN again after %.2f s", tc);
    }

    /* ---- 3. SIGKILL and restart ---- */
    uint64_t gen1 = o1.w.generation;
    E2E_CHECK(e2e_daemon_stop(&D, SIGKILL, 2000) != -1, "SIGKILL did not end hakmemd");
    double t_kill = e2e_now();
    E2E_CHECK(e2e_wait_eof(o1.sock, 1000), "observer: no EOF after SIGKILL");
    E2E_CHECK(e2e_obs_state(&o1) == HAKMEM_RING_STATE_LIVE, "after SIGKILL the ring says state %u",
              e2e_obs_state(&o1));
    e2e_sleep_ms(500);
    all_alive("daemon killed");
    e2e_daemon_start_or_fail(&D, rt, args);
    t = wait_all_registered(8);
    double since_kill = e2e_now() - t_kill;
    E2E_CHECK(t >= 0, "after the restart the shim clients did not all reattach within 8 s");
    e2e_log("3. SIGKILL, restart after 0.5 s: all four reattached %.2f s after the kill", since_kill);
    /* no override in the new daemon: A and Q are FAST again, and A
     * because it reattached, not because its 5 s timeout ran out */
    if (root) {
        double ta = e2e_shim_wait_mode(&sh[A], HAKMEM_MODE_FAST, 3000);
        E2E_CHECK(ta >= 0, "after the restart A stays %s", proto_mode_name((unsigned)mode_of(A)));
        double fa = e2e_now() - t_kill;
        E2E_CHECK(ta < 0 || fa < 3.9, "A returned to FAST only %.2f s after the kill (its timeout, "
                  "not the reattachment)", fa);
        e2e_log("   A FAST %.2f s after the kill (no stale override)", fa);
    }
    expect_mode(Q, HAKMEM_MODE_FAST, 3000, "after the restart");
    expect_records("after the restart", fast_fast_fast_lean, auto4);
    all_alive("after the restart");
    struct e2e_obs o2;
    E2E_REQUIRE(e2e_obs_open(&o2, rt), "observer did not register with the new daemon");
    E2E_CHECK(o2.w.generation != gen1, "the restarted daemon's ring has the same generation");
    e2e_obs_close(&o1);
    e2e_log("   generation %#llx -> %#llx", (unsigned long long)gen1, (unsigned long long)o2.w.generation);
    int unexpected = e2e_log_count(&D, "bad hello") + e2e_log_count(&D, "unexpected data");
    E2E_CHECK(unexpected == 0, "the new daemon complained about reattaching shims (%d lines)", unexpected);

    /* ---- 4. SIGKILL, no restart: the timeouts ---- */
    if (root) {
        override(A, HAKMEM_OVERRIDE_ON);
        override(Q, HAKMEM_OVERRIDE_ON);
        expect_mode(A, HAKMEM_MODE_LEAN, 2000, "lean on (second daemon)");
        expect_mode(Q, HAKMEM_MODE_LEAN, 2000, "lean on (second daemon)");
    }
    E2E_CHECK(e2e_daemon_stop(&D, SIGKILL, 2000) != -1, "SIGKILL did not end hakmemd");
    t_kill = e2e_now();
    if (root) {
        double tq = e2e_shim_wait_mode(&sh[Q], HAKMEM_MODE_FAST, 4000);
        E2E_CHECK(tq >= 0, "daemon gone: Q (timeout 1 s) still %s after 4 s",
                  proto_mode_name((unsigned)mode_of(Q)));
        double rest = t_kill + 2.5 - e2e_now();
        if (rest > 0)
            e2e_sleep_ms((unsigned)(rest * 1000));
        E2E_CHECK(mode_of(A) == HAKMEM_MODE_LEAN, "daemon gone 2.5 s: A (timeout 5 s) fell back already");
        /* the listener notices the EOF within its 1 s poll and checks the
         * timeout between reconnection attempts (backoff 0.1 s doubling to
         * 5 s): A's 5 s come due at the attempt 6.3 s after the EOF */
        double ta = e2e_shim_wait_mode(&sh[A], HAKMEM_MODE_FAST, 6500);
        E2E_CHECK(ta >= 0, "daemon gone: A (timeout 5 s) still %s 9 s after the kill",
                  proto_mode_name((unsigned)mode_of(A)));
        e2e_log("4. SIGKILL, no restart: Q FAST after %.2f s, A FAST after %.2f s", tq,
                e2e_now() - t_kill);
    } else {
        e2e_sleep_ms(3000);
        e2e_log("4. SIGKILL, no restart (nothing to observe without overrides)");
    }
    E2E_CHECK(mode_of(B) == HAKMEM_MODE_FAST && mode_of(C) == HAKMEM_MODE_LEAN,
              "daemon gone: B %s, C %s", proto_mode_name((unsigned)mode_of(B)),
              proto_mode_name((unsigned)mode_of(C)));
    all_alive("daemon gone");
    e2e_daemon_start_or_fail(&D, rt, args);
    double t_start = e2e_now();
    t = wait_all_registered(8);
    E2E_CHECK(t >= 0, "the shim clients did not reattach within 8 s of a new daemon");
    e2e_log("   a new daemon %.1f s after the kill: all reattached %.2f s after it started",
            t_start - t_kill, e2e_now() - t_start);
    expect_records("after the late restart", fast_fast_fast_lean, auto4);

    e2e_obs_close(&o2);
    for (int s = 0; s < NSHIM; s++)
        e2e_shim_stop(&sh[s]);
    int st = e2e_daemon_stop(&D, SIGTERM, 5000);
    E2E_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "hakmemd did not stop cleanly");

    /* ---- 5. a healthy daemon is not "silent" ----
     * The daemon's heartbeat period is configurable (heartbeat_ms, 50 ms to
     * 60 s; the welcome tells the client), the client's silence timeout too
     * (HAKMEM_DAEMON_TIMEOUT_MS, from 500 ms). A client must not take the
     * gap between two heartbeats of a live daemon for silence and drop its
     * level. Heartbeat 3 s, timeout 1 s: every 3 s one of the listener's
     * 1 s wake-ups sees a 2-3 s old heartbeat, so the bug shows at once.
     * (Default heartbeat 1 s and a 1 s timeout: now and then a 1 s drop.) */
    if (root) {
        const char *args_hb[] = { "--sources", "none", "--set", "heartbeat_ms=3000", NULL };
        e2e_daemon_start_or_fail(&D, rt, args_hb);
        static const char *const env_f[] = { "HAKMEM_DAEMON_TIMEOUT_MS=1000", NULL };
        struct e2e_shim f;
        e2e_shim_start(&f, rt, env_f);
        bool reg = false;
        for (int i = 0; i < 300 && !(reg = e2e_find_client(rt, f.pid, NULL)); i++)
            e2e_sleep_ms(10);
        E2E_REQUIRE(reg, "shim client F did not register");
        int rc = e2e_ctl_lean(rt, HAKMEM_CTL_TARGET_PID, (uint64_t)f.pid, HAKMEM_OVERRIDE_ON, 0);
        E2E_CHECK(rc == 0, "lean on for F: %s", strerror(-rc));
        double tl = e2e_shim_wait_mode(&f, HAKMEM_MODE_LEAN, 2000);
        E2E_CHECK(tl >= 0, "F did not become LEAN");
        double t0 = e2e_now(), fast = 0, last = t0;
        int blips = 0, prev = HAKMEM_MODE_LEAN;
        while (e2e_now() - t0 < 4.0) {
            int m = -1, l;
            e2e_shim_state(&f, &m, &l);
            double now = e2e_now();
            if (prev == HAKMEM_MODE_FAST)
                fast += now - last;
            blips += m == HAKMEM_MODE_FAST && prev != HAKMEM_MODE_FAST;
            prev = m;
            last = now;
            e2e_sleep_ms(10);
        }
        E2E_CHECK(blips == 0, "5. HAKMEM_DAEMON_TIMEOUT_MS=1000, a live daemon with heartbeat_ms=3000 "
                  "and an override: %d drops to FAST in 4 s, %.2f s FAST in total", blips, fast);
        e2e_log("5. timeout 1 s below a 3 s heartbeat, daemon alive: %d drops to FAST in 4 s "
                "(%.2f s FAST)", blips, fast);
        e2e_shim_stop(&f);
        st = e2e_daemon_stop(&D, SIGTERM, 5000);
        E2E_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "hakmemd did not stop cleanly");
    }
    e2e_done();
}
