/* test_sigterm.c: e2e test 4b. A clean stop and a second daemon.
 * 1. SIGTERM: hakmemd exits 0 within a few seconds, removes its sockets,
 *    marks the ring CLOSED (a raw observer sees it, and its connection
 *    ends); shim clients keep running, drop a pid override at once
 *    (root: A goes back to FAST well before its 5 s timeout), and
 *    reattach when a new daemon comes.
 * 2. A second hakmemd on the same runtime directory refuses to start
 *    (exit 1, "another hakmemd") and leaves the running one intact: its
 *    sockets stay, new clients still register, the old ones stay.
 * 3. (root, with the default sources) a daemon holding BPF programs is
 *    SIGKILLed and restarted: the sources come back and the shims
 *    reattach.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"
#include "e2e_obs.h"
#include "msg.h"

enum { A, B, C, NSHIM };
static const char *const names[NSHIM] = { "A", "B", "C" };
static struct e2e_shim sh[NSHIM];
static char rt[96];

static double wait_all_registered(double timeout_s)
{
    double t0 = e2e_now();
    while (e2e_now() - t0 < timeout_s) {
        int found = 0;
        for (int s = 0; s < NSHIM; s++)
            found += e2e_find_client(rt, sh[s].pid, NULL);
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

static bool exists(const char *name)
{
    char p[160];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", rt, name);
    return lstat(p, &st) == 0;
}

/* STATUS's "source NAME ..." line (without the prefix), or "". */
static const char *source_line(const char *name)
{
    static char text[1 << 16], line[200];
    struct hakmem_ctl_req q;
    proto_ctl_req_init(&q, HAKMEM_CTL_STATUS);
    line[0] = '\0';
    if (e2e_ctl(rt, &q, 3000, NULL, NULL, text, sizeof(text), NULL) != 0)
        return line;
    char want[64];
    snprintf(want, sizeof(want), "source %s ", name);
    const char *p = strstr(text, want);
    if (p) {
        p += strlen(want);
        size_t n = strcspn(p, "\n");
        snprintf(line, sizeof(line), "%.*s", (int)n, p);
    }
    return line;
}

int main(int argc, char **argv)
{
    e2e_init(argc, argv, "e2e-sigterm", 58);
    if (!e2e_shim_path || !e2e_client_path)
        e2e_skip("--shim and --client are needed");
    bool root = e2e_is_root();
    snprintf(rt, sizeof(rt), "%s/rt", e2e_dir());
    const char *args[] = { "--sources", "none", NULL };
    struct e2e_daemon D;
    e2e_daemon_start_or_fail(&D, rt, args);

    static const char *const env_c[] = { "HAKMEM_SS_MEM_LEAN=1", NULL };
    e2e_shim_start(&sh[A], rt, NULL);
    e2e_shim_start(&sh[B], rt, NULL);
    e2e_shim_start(&sh[C], rt, env_c);
    E2E_REQUIRE(wait_all_registered(5) >= 0, "the shim clients did not all register");
    struct e2e_obs o;
    E2E_REQUIRE(e2e_obs_open(&o, rt), "observer did not register");
    if (root) {
        int rc = e2e_ctl_lean(rt, HAKMEM_CTL_TARGET_PID, (uint64_t)sh[A].pid, HAKMEM_OVERRIDE_ON, 0);
        E2E_CHECK(rc == 0, "lean on for A: %s", strerror(-rc));
        E2E_CHECK(e2e_shim_wait_mode(&sh[A], HAKMEM_MODE_LEAN, 2000) >= 0, "A did not become LEAN");
    }

    /* ---- 1. SIGTERM ---- */
    double t_term = e2e_now();
    int st = e2e_daemon_stop(&D, SIGTERM, 3000);
    double dt = e2e_now() - t_term;
    E2E_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "SIGTERM: hakmemd did not exit 0 within 3 s (status %#x)", st);
    E2E_CHECK(!exists("hakmemd.sock") && !exists("control.sock"),
              "SIGTERM: sockets left behind (hakmemd.sock %d, control.sock %d)",
              exists("hakmemd.sock"), exists("control.sock"));
    E2E_CHECK(e2e_obs_state(&o) == HAKMEM_RING_STATE_CLOSED, "SIGTERM: the ring says state %u, not CLOSED",
              e2e_obs_state(&o));
    E2E_CHECK(e2e_wait_eof(o.sock, 1000), "SIGTERM: the observer's connection did not end");
    e2e_obs_close(&o);
    e2e_log("1. SIGTERM: exit 0 in %.3f s, sockets removed, ring CLOSED", dt);
    if (root) {
        double ta = e2e_shim_wait_mode(&sh[A], HAKMEM_MODE_FAST, 1500);
        E2E_CHECK(ta >= 0, "SIGTERM: A is still %s 1.5 s later (the override should end with the "
                  "daemon, not after A's 5 s timeout)", proto_mode_name((unsigned)mode_of(A)));
        e2e_log("   A (override) FAST %.3f s after SIGTERM", e2e_now() - t_term);
    }
    E2E_CHECK(mode_of(B) == HAKMEM_MODE_FAST && mode_of(C) == HAKMEM_MODE_LEAN,
              "SIGTERM: B %s, C %s", proto_mode_name((unsigned)mode_of(B)),
              proto_mode_name((unsigned)mode_of(C)));
    for (int s = 0; s < NSHIM; s++)
        E2E_CHECK(e2e_shim_alive(&sh[s]), "SIGTERM: shim client %s died", names[s]);
    E2E_CHECK(e2e_log_count(&D, "stopping") == 1, "no 'stopping' line in the log");
    e2e_sleep_ms(1000);
    e2e_daemon_start_or_fail(&D, rt, args);
    double t = wait_all_registered(7);
    E2E_CHECK(t >= 0, "after SIGTERM and a new daemon the shims did not reattach within 7 s");
    e2e_log("   a new daemon 1 s later: all reattached after %.2f s", t);
    E2E_CHECK(mode_of(A) == HAKMEM_MODE_FAST && mode_of(B) == HAKMEM_MODE_FAST &&
              mode_of(C) == HAKMEM_MODE_LEAN, "after the restart: A %s, B %s, C %s",
              proto_mode_name((unsigned)mode_of(A)), proto_mode_name((unsigned)mode_of(B)),
              proto_mode_name((unsigned)mode_of(C)));

    /* ---- 2. a second daemon on the same directory ---- */
    {
        struct e2e_daemon D2;
        int rc = e2e_daemon_start(&D2, rt, args);   /* must not come up */
        E2E_CHECK(rc < 0, "a second hakmemd came up on the same runtime directory");
        if (rc == 0)
            e2e_daemon_stop(&D2, SIGKILL, 2000);
        E2E_CHECK(e2e_log_count(&D2, "another hakmemd") == 1, "the second hakmemd did not say why");
        E2E_REQUIRE(e2e_daemon_alive(&D), "the first hakmemd died");
        E2E_CHECK(exists("hakmemd.sock") && exists("control.sock"),
                  "the failed second hakmemd removed the running daemon's sockets (hakmemd.sock %d, "
                  "control.sock %d)", exists("hakmemd.sock"), exists("control.sock"));
        struct hakmem_welcome w;
        int res;
        int g = e2e_register(rt, 2000, &w, &res);
        E2E_CHECK(g >= 0, "after the second hakmemd failed, a new client got %s", e2e_reply_name(res));
        if (g >= 0)
            close(g);
        long n = e2e_ctl_status_clients(rt);
        E2E_CHECK(n == NSHIM, "after the second hakmemd failed, STATUS: clients %ld (expected %d)", n,
                  NSHIM);
        e2e_log("2. second hakmemd: refused; first one's sockets %s", exists("hakmemd.sock") ?
                "intact" : "REMOVED");
    }
    st = e2e_daemon_stop(&D, SIGTERM, 3000);
    E2E_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "hakmemd did not stop cleanly");

    /* ---- 3. SIGKILL with the default sources (BPF) and restart ---- */
    if (root) {
        const char *dflt[] = { NULL };
        e2e_daemon_start_or_fail(&D, rt, dflt);
        char bpf1[200];
        snprintf(bpf1, sizeof(bpf1), "%s", source_line("bpf"));
        E2E_CHECK(wait_all_registered(7) >= 0, "default sources: the shims did not reattach");
        E2E_CHECK(e2e_daemon_stop(&D, SIGKILL, 2000) != -1, "SIGKILL did not end hakmemd");
        e2e_daemon_start_or_fail(&D, rt, dflt);
        char bpf2[200];
        snprintf(bpf2, sizeof(bpf2), "%s", source_line("bpf"));
        E2E_CHECK(strcmp(bpf1, bpf2) == 0, "bpf source after SIGKILL and restart: '%s', before: '%s'",
                  bpf2, bpf1);
        t = wait_all_registered(8);
        E2E_CHECK(t >= 0, "default sources, after SIGKILL: the shims did not reattach within 8 s");
        e2e_log("3. default sources: bpf '%s'; SIGKILL, restart: bpf '%s', psi '%s', usage '%s'; "
                "shims back after %.2f s", bpf1, bpf2, source_line("psi"), source_line("usage"), t);
        for (int s = 0; s < NSHIM; s++)
            E2E_CHECK(e2e_shim_alive(&sh[s]), "shim client %s died", names[s]);
        st = e2e_daemon_stop(&D, SIGTERM, 3000);
        E2E_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "hakmemd did not stop cleanly");
    } else {
        e2e_log("3. not root: the default-sources part is skipped");
    }
    for (int s = 0; s < NSHIM; s++)
        e2e_shim_stop(&sh[s]);
    e2e_done();
}
