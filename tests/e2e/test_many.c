/* test_many.c: e2e test 3. Many clients and the client limits.
 *   1000 clients one after another (connect, hello, welcome, leave);
 *   1000 clients at once (4 threads x 250, all kept connected): the
 *   daemon counts them (STATUS, CLIENTS), other clients (a real shim
 *   registered before, a good client and a shim starting during the
 *   burst) are unaffected, a control client that never reads a large
 *   answer blocks nothing, and everything is released when they leave;
 *   limits: --set max_clients=50 --set max_clients_per_uid=20: refusals
 *   carry -EUSERS (the uid's limit) or -ENOSPC (the total); other uids (forked children that setuid, as root;
 *   skipped unprivileged) still get in until the total is reached;
 *   fd exhaustion: a daemon whose RLIMIT_NOFILE is below its client
 *   limit neither spins nor floods its log, and recovers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"
#include "msg.h"

#define NCLIENTS 1000
#define NTHREADS 4

static char rt[80];
static int stats_fd = -1;               /* one sealed stats memfd shared by all raw clients */

static size_t count_clients(const char *dir, int *rc_out)
{
    struct hakmem_ctl_client *cl;
    size_t n;
    int rc = e2e_ctl_clients(dir, &cl, &n);
    free(cl);
    if (rc_out)
        *rc_out = rc;
    return n;
}

/* ---- 1000 at once ---- */

struct burst {
    int first, count;
    int *socks;
    int welcomed, other;
    double t_done;
};

static void *burst_thread(void *arg)
{
    struct burst *b = arg;
    struct hakmem_hello h;
    e2e_hello(&h, true, 4096);
    for (int i = 0; i < b->count; i++) {
        int s = e2e_connect(rt);
        b->socks[b->first + i] = s;
        if (s >= 0)
            e2e_send(s, &h, sizeof(h), &stats_fd, 1);
    }
    for (int i = 0; i < b->count; i++) {
        int s = b->socks[b->first + i];
        struct hakmem_welcome w;
        int r = s >= 0 ? e2e_recv_reply(s, 10000, &w, NULL) : E2E_EOF;
        if (r == E2E_WELCOME) {
            b->welcomed++;
        } else {
            b->other++;
            if (s >= 0)
                close(s);
            b->socks[b->first + i] = -1;
        }
    }
    b->t_done = e2e_now();
    return NULL;
}

static void many(void)
{
    struct e2e_daemon D;
    const char *args[] = { "--sources", "none", NULL };
    e2e_daemon_start_or_fail(&D, rt, args);
    int base_fds = e2e_daemon_nfds_settled(&D);

    struct e2e_shim before;
    e2e_shim_start(&before, rt, NULL);
    bool ok = false;
    for (int i = 0; i < 300 && !(ok = e2e_find_client(rt, before.pid, NULL)); i++)
        e2e_sleep_ms(10);
    E2E_REQUIRE(ok, "shim client %d did not register", (int)before.pid);

    /* one after another */
    double t0 = e2e_now();
    int seq_ok = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        struct hakmem_welcome w;
        int res;
        int s = e2e_register_fd(rt, stats_fd, 2000, &w, &res);
        if (s >= 0) {
            seq_ok++;
            close(s);
        } else if (seq_ok == i) {
            E2E_CHECK(0, "sequential client %d: %s (status %d)", i, e2e_reply_name(res), w.status);
        }
    }
    double dt = e2e_now() - t0;
    E2E_CHECK(seq_ok == NCLIENTS, "%d of %d sequential clients welcomed", seq_ok, NCLIENTS);
    e2e_log("%d sequential clients: %d welcomed in %.2f s (%.0f us each)", NCLIENTS, seq_ok, dt,
            dt / NCLIENTS * 1e6);
    E2E_REQUIRE(e2e_daemon_alive(&D), "hakmemd died");
    long st = -1;
    for (int i = 0; i < 200 && (st = e2e_ctl_status_clients(rt)) != 1; i++)
        e2e_sleep_ms(10);
    E2E_CHECK(st == 1, "after the sequential clients STATUS says clients %ld, expected 1", st);

    /* all at once */
    static int socks[NCLIENTS];
    struct burst b[NTHREADS];
    pthread_t th[NTHREADS];
    t0 = e2e_now();
    for (int i = 0; i < NTHREADS; i++) {
        b[i] = (struct burst){ .first = i * (NCLIENTS / NTHREADS), .count = NCLIENTS / NTHREADS,
                               .socks = socks };
        pthread_create(&th[i], NULL, burst_thread, &b[i]);
    }
    /* meanwhile: a good client and a shim starting now */
    e2e_sleep_ms(5);
    double tg = e2e_now();
    struct hakmem_welcome w;
    int res;
    int good = e2e_register(rt, 3000, &w, &res);
    double lat = e2e_now() - tg;
    E2E_CHECK(good >= 0, "a good client during the burst got %s", e2e_reply_name(res));
    e2e_log("good client during the burst: %s in %.1f ms", e2e_reply_name(res), lat * 1000);
    struct e2e_shim during;
    e2e_shim_start(&during, rt, NULL);
    int welcomed = 0, other = 0;
    double t_last = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        welcomed += b[i].welcomed;
        other += b[i].other;
        t_last = b[i].t_done > t_last ? b[i].t_done : t_last;
    }
    E2E_CHECK(welcomed == NCLIENTS, "%d of %d concurrent clients welcomed (%d not)", welcomed,
              NCLIENTS, other);
    e2e_log("%d concurrent clients (%d threads): %d welcomed in %.2f s", NCLIENTS, NTHREADS,
            welcomed, t_last - t0);
    ok = false;
    for (int i = 0; i < 300 && !(ok = e2e_find_client(rt, during.pid, NULL)); i++)
        e2e_sleep_ms(10);
    E2E_CHECK(ok, "the shim client started during the burst did not register");
    E2E_REQUIRE(e2e_daemon_alive(&D), "hakmemd died");

    /* counted */
    size_t want = (size_t)welcomed + 2 + (good >= 0);
    st = e2e_ctl_status_clients(rt);
    E2E_CHECK(st == (long)want, "STATUS says clients %ld, expected %zu", st, want);
    int rc;
    size_t n = count_clients(rt, &rc);
    E2E_CHECK(rc == 0, "CLIENTS with %zu clients failed: %s (got %zu records)", want,
              rc == -EPIPE ? "the answer ended without its last datagram" : strerror(-rc), n);
    E2E_CHECK(n == want, "CLIENTS lists %zu clients, expected %zu", n, want);
    e2e_log("STATUS: clients %ld; CLIENTS: %zu records (%s)", st, n, rc == 0 ? "complete" : "INCOMPLETE");
    {
        /* the same, 5 times: is a complete answer a matter of luck? */
        int complete = 0;
        char why[256] = "";
        for (int i = 0; i < 5; i++) {
            size_t k = count_clients(rt, &rc);
            complete += rc == 0;
            if (rc != 0)
                snprintf(why, sizeof(why), "%s, %zu records", strerror(-rc), k);
        }
        E2E_CHECK(complete == 5, "only %d of 5 CLIENTS answers with %zu clients were complete (%s)",
                  complete, want, why);
    }
    struct hakmem_ctl_client rec;
    memset(&rec, 0, sizeof(rec));
    if (rc == 0)
        E2E_CHECK(e2e_find_client(rt, before.pid, &rec) && rec.mode == HAKMEM_MODE_FAST &&
                  (rec.flags & HAKMEM_STATS_F_DAEMON),
                  "the shim client registered before is gone or changed (mode %u flags %#x)",
                  rec.mode, rec.flags);
    else
        e2e_log("(the shim client registered before cannot be looked up: CLIENTS is incomplete)");
    int mode, level;
    E2E_CHECK(e2e_shim_alive(&before) && e2e_shim_state(&before, &mode, &level) &&
              mode == HAKMEM_MODE_FAST && level == 0,
              "the shim client registered before: alive %d, mode %d, level %d",
              e2e_shim_alive(&before), mode, level);

    /* a control client that never reads a large answer */
    {
        struct hakmem_ctl_req q;
        proto_ctl_req_init(&q, HAKMEM_CTL_CLIENTS);
        int lazy[8];
        for (int i = 0; i < 8; i++) {
            /* the request by hand, and walk away without reading */
            int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
            struct sockaddr_un a = { .sun_family = AF_UNIX };
            snprintf(a.sun_path, sizeof(a.sun_path), "%s/control.sock", rt);
            lazy[i] = -1;
            if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
                send(s, &q, sizeof(q), MSG_NOSIGNAL) == (ssize_t)sizeof(q))
                lazy[i] = s;
            else
                close(s);
        }
        double ts = e2e_now();
        long st2 = e2e_ctl_status_clients(rt);
        double dts = e2e_now() - ts;
        E2E_CHECK(st2 == (long)want && dts < 1.0, "STATUS beside 8 non-reading CLIENTS requests: "
                  "clients %ld in %.3f s", st2, dts);
        e2e_log("8 control clients that never read a %zu-record answer; STATUS meanwhile in %.1f ms",
                want, dts * 1000);
        for (int i = 0; i < 8; i++)
            if (lazy[i] >= 0)
                close(lazy[i]);
    }

    /* they leave */
    for (int i = 0; i < NCLIENTS; i++)
        if (socks[i] >= 0)
            close(socks[i]);
    if (good >= 0)
        close(good);
    st = -1;
    t0 = e2e_now();
    for (int i = 0; i < 500 && (st = e2e_ctl_status_clients(rt)) != 2; i++)
        e2e_sleep_ms(10);
    E2E_CHECK(st == 2, "after the burst left STATUS says clients %ld, expected 2", st);
    e2e_log("%d clients gone from STATUS in %.2f s", NCLIENTS, e2e_now() - t0);
    e2e_shim_stop(&before);
    e2e_shim_stop(&during);
    int nfds = -1;
    for (int i = 0; i < 300 && (nfds = e2e_daemon_nfds(&D)) != base_fds; i++)
        e2e_sleep_ms(10);
    E2E_CHECK(nfds == base_fds, "hakmemd has %d fds open, %d at the start", nfds, base_fds);
    int s = e2e_daemon_stop(&D, SIGTERM, 5000);
    E2E_CHECK(s != -1 && WIFEXITED(s) && WEXITSTATUS(s) == 0, "hakmemd did not stop cleanly");
}

/* ---- limits ---- */

struct tally {
    int welcomed, eusers, enospc, other;  /* -EUSERS: the uid's limit; -ENOSPC: the total */
};

/* Tries n registrations, keeping the welcomed ones open in socks. */
static struct tally try_register(int n, int *socks, int *nsocks)
{
    struct tally t = { 0 };
    for (int i = 0; i < n; i++) {
        struct hakmem_welcome w;
        int res;
        int s = e2e_register_fd(rt, stats_fd, 2000, &w, &res);
        if (s >= 0) {
            t.welcomed++;
            socks[(*nsocks)++] = s;
        } else if (res == E2E_REFUSED && w.status == -EUSERS) {
            t.eusers++;
        } else if (res == E2E_REFUSED && w.status == -ENOSPC) {
            t.enospc++;
        } else {
            t.other++;
        }
    }
    return t;
}

/* A child that becomes uid, tries n registrations, reports, and holds
 * them until the parent closes its end of hold. */
static pid_t as_uid(uid_t uid, int n, int report_w, int hold_r, int close_a, int close_b)
{
    pid_t p = e2e_fork();
    if (p)
        return p;
    close(close_a);
    close(close_b);
    /* not the parent's client sockets: their end must be the parent's alone */
    for (int fd = 3; fd < 4096; fd++)
        if (fd != report_w && fd != hold_r && fd != stats_fd)
            close(fd);
    struct tally t = { 0, 0, 0, -1 };
    if (setgroups(0, NULL) == 0 && setgid(uid) == 0 && setuid(uid) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* cleared by the uid change */
        static int socks[256];
        int ns = 0;
        t = try_register(n, socks, &ns);
    }
    ssize_t wr = write(report_w, &t, sizeof(t));
    (void)wr;
    char c;
    while (read(hold_r, &c, 1) > 0)
        ;
    _exit(0);
}

static void limits(void)
{
    struct e2e_daemon D;
    const char *args[] = { "--sources", "none", "--set", "max_clients=50", "--set",
                           "max_clients_per_uid=20", NULL };
    e2e_daemon_start_or_fail(&D, rt, args);
    static int socks[256];
    int ns = 0;
    uid_t me = geteuid();

    struct tally t = try_register(25, socks, &ns);
    E2E_CHECK(t.welcomed == 20 && t.eusers == 5 && t.enospc == 0 && t.other == 0,
              "uid %u, 25 tries with max_clients_per_uid=20: %d welcomed, %d -EUSERS, %d other",
              (unsigned)me, t.welcomed, t.eusers, t.other);
    e2e_log("uid %u: 25 tries -> %d welcomed, %d refused with -EUSERS", (unsigned)me, t.welcomed, t.eusers);

    int expect_total = 20;
    pid_t kids[2] = { 0, 0 };
    int hold[2] = { -1, -1 };
    if (e2e_is_root()) {
        int rep[2];
        if (pipe2(rep, O_CLOEXEC) != 0 || pipe2(hold, O_CLOEXEC) != 0)
            e2e_fail("pipe: %s", strerror(errno));
        /* uid 1001: its own 20; then uid 1002: only 10 left in total */
        kids[0] = as_uid(1001, 25, rep[1], hold[0], rep[0], hold[1]);
        struct tally k1, k2;
        if (read(rep[0], &k1, sizeof(k1)) != sizeof(k1))
            e2e_fail("child for uid 1001 did not report");
        kids[1] = as_uid(1002, 25, rep[1], hold[0], rep[0], hold[1]);
        if (read(rep[0], &k2, sizeof(k2)) != sizeof(k2))
            e2e_fail("child for uid 1002 did not report");
        close(rep[0]);
        close(rep[1]);
        close(hold[0]);
        E2E_CHECK(k1.other != -1 && k2.other != -1, "the children could not setuid");
        E2E_CHECK(k1.welcomed == 20 && k1.eusers == 5 && k1.enospc == 0 && k1.other == 0,
                  "uid 1001, 25 tries: %d welcomed, %d -EUSERS, %d other", k1.welcomed, k1.eusers, k1.other);
        E2E_CHECK(k2.welcomed == 10 && k2.enospc == 15 && k2.eusers == 0 && k2.other == 0,
                  "uid 1002, 25 tries with 40 of 50 taken: %d welcomed, %d -ENOSPC, %d -EUSERS, "
                  "%d other", k2.welcomed, k2.enospc, k2.eusers, k2.other);
        e2e_log("uid 1001: 25 tries -> %d welcomed, %d -EUSERS; uid 1002: 25 tries -> %d welcomed, "
                "%d -ENOSPC (total limit)", k1.welcomed, k1.eusers, k2.welcomed, k2.enospc);
        expect_total = 50;

        struct hakmem_ctl_client *cl;
        size_t n;
        int rc = e2e_ctl_clients(rt, &cl, &n);
        int by[3] = { 0, 0, 0 };
        for (size_t i = 0; rc == 0 && i < n; i++)
            by[cl[i].uid == 1001 ? 1 : cl[i].uid == 1002 ? 2 : 0] += 1;
        free(cl);
        E2E_CHECK(rc == 0 && n == 50 && by[0] == 20 && by[1] == 20 && by[2] == 10,
                  "CLIENTS: %zu records (rc %d), by uid: %d me, %d 1001, %d 1002", n, rc, by[0],
                  by[1], by[2]);
    } else {
        e2e_log("not root: the part with other uids (setuid children) is skipped");
    }

    /* leaving frees the slots: 5 of ours go, 5 (and no more) come back */
    for (int i = 0; i < 5; i++)
        close(socks[--ns]);
    long st = -1;
    for (int i = 0; i < 200 && (st = e2e_ctl_status_clients(rt)) != expect_total - 5; i++)
        e2e_sleep_ms(10);
    E2E_CHECK(st == expect_total - 5, "STATUS says clients %ld, expected %d", st, expect_total - 5);
    t = try_register(6, socks, &ns);
    /* root's children filled the total; alone, we hit our uid's limit */
    E2E_CHECK(t.welcomed == 5 && (e2e_is_root() ? t.enospc : t.eusers) == 1 && t.other == 0,
              "after 5 left, 6 tries: %d welcomed, %d -EUSERS, %d -ENOSPC, %d other", t.welcomed,
              t.eusers, t.enospc, t.other);
    e2e_sleep_ms(E2E_LOG_INTERVAL_MS);  /* the rate limit's summaries */
    int refusals = e2e_log_count_msgs(&D, "refused: too many clients");
    int want = 5 + 1 + (e2e_is_root() ? 5 + 15 : 0);
    E2E_CHECK(refusals == want, "%d 'too many clients' log messages, expected %d", refusals, want);

    /* a shim is refused politely and keeps running */
    if (e2e_shim_path && e2e_client_path) {
        struct e2e_shim sh;
        e2e_shim_start(&sh, rt, NULL);
        e2e_sleep_ms(300);
        E2E_CHECK(e2e_shim_alive(&sh), "a refused shim client died");
        E2E_CHECK(!e2e_find_client(rt, sh.pid, NULL), "a shim client got in beyond the limits");
        e2e_shim_stop(&sh);
    }

    if (hold[1] >= 0)
        close(hold[1]);
    for (int i = 0; i < 2; i++)
        if (kids[i] > 0)
            E2E_CHECK(e2e_wait(kids[i], 5000) != -1, "child %d did not exit", (int)kids[i]);
    while (ns > 0)
        close(socks[--ns]);
    E2E_REQUIRE(e2e_daemon_alive(&D), "hakmemd died");
    int s = e2e_daemon_stop(&D, SIGTERM, 5000);
    E2E_CHECK(s != -1 && WIFEXITED(s) && WEXITSTATUS(s) == 0, "hakmemd did not stop cleanly");
}

/* ---- fd exhaustion ---- */

static void exhaustion(void)
{
    struct e2e_daemon D;
    const char *args[] = { "--sources", "none", NULL };
    e2e_daemon_nofile = 64;
    e2e_daemon_start_or_fail(&D, rt, args);
    e2e_daemon_nofile = 0;
    int lines0 = e2e_log_count(&D, "");
    enum { N = 100 };
    int s[N];
    for (int i = 0; i < N; i++)
        s[i] = e2e_connect(rt);
    e2e_sleep_ms(200);
    double c0 = e2e_daemon_cpu(&D);
    e2e_sleep_ms(1000);
    double cpu = e2e_daemon_cpu(&D) - c0;
    int lines = e2e_log_count(&D, "") - lines0;
    e2e_log("hakmemd with RLIMIT_NOFILE 64 and %d silent connections: %.2f s of CPU in 1 s, "
            "%d log lines", N, cpu, lines);
    E2E_CHECK(cpu < 0.2, "out of fds, hakmemd spins: %.2f s of CPU in 1 s", cpu);
    E2E_CHECK(lines < 100, "out of fds, hakmemd floods its log: %d lines", lines);
    E2E_REQUIRE(e2e_daemon_alive(&D), "hakmemd died out of fds");
    for (int i = 0; i < N; i++)
        if (s[i] >= 0)
            close(s[i]);
    /* it recovers once they are gone */
    struct hakmem_welcome w;
    int res = -1, g = -1;
    double t0 = e2e_now();
    while (g < 0 && e2e_now() - t0 < 3) {
        g = e2e_register(rt, 1000, &w, &res);
        if (g < 0)
            e2e_sleep_ms(50);
    }
    E2E_CHECK(g >= 0, "after the silent connections left, a good client got %s", e2e_reply_name(res));
    e2e_log("recovered: a good client registered %.2f s after the silent ones left", e2e_now() - t0);
    if (g >= 0)
        close(g);
    int st = e2e_daemon_stop(&D, SIGTERM, 5000);
    E2E_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "hakmemd did not stop cleanly");
}

int main(int argc, char **argv)
{
    e2e_init(argc, argv, "e2e-many-clients", 58);
    unsigned long nofile = e2e_raise_nofile(20000);
    if (nofile < 2 * NCLIENTS + 200)
        e2e_skip("RLIMIT_NOFILE is %lu; %d clients at once need about %d", nofile, NCLIENTS,
                 2 * NCLIENTS + 200);
    snprintf(rt, sizeof(rt), "%s/rt", e2e_dir());
    stats_fd = e2e_stats_memfd(4096, F_SEAL_SHRINK | F_SEAL_GROW);
    E2E_REQUIRE(stats_fd >= 0, "memfd");
    many();
    limits();
    exhaustion();
    e2e_done();
}
