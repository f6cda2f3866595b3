/* test_slow.c: e2e test 2. Slow and malicious clients on hakmemd.sock:
 * 200 connections that never say anything neither delay a good client
 * (raw or a real shim) nor stay: they are dropped about 5 s after they
 * connected; half a message is refused at once; a client may connect
 * and send its hello 4 s later (in time) but not 6 s later; clients
 * that never read their welcome are registered and block nothing.
 * Runs unprivileged too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"
#include "msg.h"

#define NSILENT 200
#define NNOREAD 50
#define HELLO_TIMEOUT_S 5.0             /* clients.c: HELLO_TIMEOUT_NS */

static size_t count_welcomed(const char *rt)
{
    struct hakmem_ctl_client *cl;
    size_t n;
    int rc = e2e_ctl_clients(rt, &cl, &n);
    free(cl);
    return rc == 0 ? n : (size_t)-1;
}

int main(int argc, char **argv)
{
    e2e_init(argc, argv, "e2e-slow-clients", 55);
    e2e_raise_nofile(4096);
    char rt[160];
    snprintf(rt, sizeof(rt), "%s/rt", e2e_dir());
    struct e2e_daemon D;
    const char *args[] = { "--sources", "none", NULL };
    e2e_daemon_start_or_fail(&D, rt, args);
    int base_fds = e2e_daemon_nfds_settled(&D);

    /* a real client registered before the flood */
    struct e2e_shim before;
    e2e_shim_start(&before, rt, NULL);
    bool ok = false;
    for (int i = 0; i < 300 && !(ok = e2e_find_client(rt, before.pid, NULL)); i++)
        e2e_sleep_ms(10);
    E2E_REQUIRE(ok, "shim client %d did not register", (int)before.pid);

    /* the slowloris ones: connect now, speak later */
    int late4 = e2e_connect(rt), late6 = e2e_connect(rt);
    double t_late = e2e_now();
    E2E_REQUIRE(late4 >= 0 && late6 >= 0, "connect failed");

    /* 200 silent connections */
    int silent[NSILENT];
    double t_conn[NSILENT], t_drop[NSILENT];
    for (int i = 0; i < NSILENT; i++) {
        silent[i] = e2e_connect(rt);
        t_conn[i] = e2e_now();
        t_drop[i] = 0;
        E2E_REQUIRE(silent[i] >= 0, "silent connection %d: %s", i, strerror(-silent[i]));
    }
    e2e_log("%d silent connections open (%.0f ms)", NSILENT, (t_conn[NSILENT - 1] - t_conn[0]) * 1000);

    /* a good client is not delayed by them */
    struct hakmem_welcome w;
    int res;
    double t0 = e2e_now();
    int good = e2e_register(rt, 2000, &w, &res);
    double lat = e2e_now() - t0;
    E2E_CHECK(good >= 0, "a good client among %d silent ones got %s", NSILENT, e2e_reply_name(res));
    E2E_CHECK(lat < 0.5, "a good client waited %.3f s for its welcome", lat);
    e2e_log("good client registered in %.1f ms", lat * 1000);

    /* a real shim client starting now registers too */
    struct e2e_shim during;
    t0 = e2e_now();
    e2e_shim_start(&during, rt, NULL);
    ok = false;
    for (int i = 0; i < 300 && !(ok = e2e_find_client(rt, during.pid, NULL)); i++)
        e2e_sleep_ms(10);
    E2E_CHECK(ok, "shim client %d started among the silent ones did not register", (int)during.pid);
    e2e_log("shim client registered in %.0f ms (process start included)", (e2e_now() - t0) * 1000);

    /* half a message: refused at once, not after the hello timeout */
    {
        struct hakmem_hello h;
        e2e_hello(&h, false, 0);
        int s = e2e_connect(rt);
        t0 = e2e_now();
        e2e_send(s, &h, sizeof(h) / 2, NULL, 0);
        int r = e2e_recv_reply(s, 3000, &w, NULL);
        double dt = e2e_now() - t0;
        E2E_CHECK(r == E2E_REFUSED && w.status == -EBADMSG, "half a hello: %s (status %d)",
                  e2e_reply_name(r), w.status);
        E2E_CHECK(dt < 0.5, "half a hello answered after %.3f s", dt);
        E2E_CHECK(e2e_wait_eof(s, 1000), "half a hello: connection kept");
        close(s);
        e2e_log("half a hello: %s (%s) in %.1f ms", e2e_reply_name(r), strerror(-w.status), dt * 1000);
        /* the first 12 bytes only: a header that announces 64 */
        s = e2e_connect(rt);
        e2e_send(s, &h, sizeof(struct hakmem_msg_hdr), NULL, 0);
        r = e2e_recv_reply(s, 3000, &w, NULL);
        E2E_CHECK(r == E2E_REFUSED && w.status == -EBADMSG, "a header alone: %s (status %d)",
                  e2e_reply_name(r), w.status);
        close(s);
    }

    /* clients that send their hello and never read the welcome */
    int noread[NNOREAD];
    int sfd = e2e_stats_memfd(4096, F_SEAL_SHRINK | F_SEAL_GROW);
    E2E_REQUIRE(sfd >= 0, "memfd");
    for (int i = 0; i < NNOREAD; i++) {
        struct hakmem_hello h;
        e2e_hello(&h, true, 4096);
        noread[i] = e2e_connect(rt);
        E2E_REQUIRE(noread[i] >= 0, "connect");
        e2e_send(noread[i], &h, sizeof(h), &sfd, 1);
    }
    /* they are registered (the welcome waits in their queue) */
    size_t want = 1 + 1 + 1 + NNOREAD;  /* before, during, good, the non-readers */
    size_t n = 0;
    for (int i = 0; i < 200 && (n = count_welcomed(rt)) != want; i++)
        e2e_sleep_ms(10);
    E2E_CHECK(n == want, "CLIENTS lists %zu clients, expected %zu", n, want);
    t0 = e2e_now();
    int good2 = e2e_register(rt, 2000, &w, &res);
    E2E_CHECK(good2 >= 0 && e2e_now() - t0 < 0.5, "a good client after %d non-readers: %s in %.3f s",
              NNOREAD, e2e_reply_name(res), e2e_now() - t0);
    if (good2 >= 0)
        close(good2);
    long st = e2e_ctl_status_clients(rt);
    e2e_log("STATUS says clients %ld (%zu registered + silent connections)", st, n);

    /* the slowloris that speaks at 4 s is in time */
    double wait4 = t_late + 4.0 - e2e_now();
    if (wait4 > 0)
        e2e_sleep_ms((unsigned)(wait4 * 1000));
    {
        struct hakmem_hello h;
        e2e_hello(&h, true, 4096);
        e2e_send(late4, &h, sizeof(h), &sfd, 1);
        int r = e2e_recv_reply(late4, 2000, &w, NULL);
        E2E_CHECK(r == E2E_WELCOME, "hello 4 s after connecting: %s", e2e_reply_name(r));
        e2e_log("hello 4 s after connecting: %s", e2e_reply_name(r));
    }

    /* the silent ones are dropped ~5 s after they connected */
    int left = NSILENT;
    double end = t_conn[NSILENT - 1] + HELLO_TIMEOUT_S + 3.0;
    struct pollfd pf[NSILENT];
    while (left > 0 && e2e_now() < end) {
        int k = 0;
        int idx[NSILENT];
        for (int i = 0; i < NSILENT; i++) {
            if (t_drop[i] == 0) {
                pf[k] = (struct pollfd){ silent[i], POLLIN, 0 };
                idx[k++] = i;
            }
        }
        int pr = poll(pf, (nfds_t)k, 50);
        if (pr <= 0)
            continue;
        double now = e2e_now();
        for (int j = 0; j < k; j++) {
            if (!pf[j].revents)
                continue;
            char b[HAKMEM_MSG_MAX];
            ssize_t r = recv(silent[idx[j]], b, sizeof(b), MSG_DONTWAIT);
            E2E_CHECK(r <= 0, "silent connection %d got %zd bytes", idx[j], r);
            if (r <= 0 && !(r < 0 && errno == EAGAIN)) {
                t_drop[idx[j]] = now;
                left--;
            }
        }
    }
    double dmin = 1e9, dmax = 0;
    for (int i = 0; i < NSILENT; i++) {
        if (t_drop[i] == 0)
            continue;
        double d = t_drop[i] - t_conn[i];
        dmin = d < dmin ? d : dmin;
        dmax = d > dmax ? d : dmax;
    }
    E2E_CHECK(left == 0, "%d of %d silent connections were not dropped within %.0f s", left, NSILENT,
              HELLO_TIMEOUT_S + 3.0);
    E2E_CHECK(dmin >= HELLO_TIMEOUT_S - 0.05, "a silent connection was dropped after only %.3f s", dmin);
    E2E_CHECK(dmax <= HELLO_TIMEOUT_S + 1.5, "a silent connection was dropped only after %.3f s", dmax);
    e2e_log("silent connections dropped %.3f..%.3f s after connecting", dmin, dmax);
    for (int i = 0; i < NSILENT; i++)
        close(silent[i]);

    /* the slowloris that speaks at 6 s is gone */
    double wait6 = t_late + 6.0 - e2e_now();
    if (wait6 > 0)
        e2e_sleep_ms((unsigned)(wait6 * 1000));
    {
        struct hakmem_hello h;
        e2e_hello(&h, true, 4096);
        e2e_send(late6, &h, sizeof(h), &sfd, 1);     /* EPIPE expected */
        int r = e2e_recv_reply(late6, 1000, &w, NULL);
        E2E_CHECK(r == E2E_EOF, "hello 6 s after connecting: %s (expected: dropped)", e2e_reply_name(r));
        e2e_log("hello 6 s after connecting: %s", e2e_reply_name(r));
        close(late6);
    }

    /* registered ones are not swept; the daemon is fine */
    E2E_REQUIRE(e2e_daemon_alive(&D), "hakmemd died");
    E2E_CHECK(e2e_find_client(rt, before.pid, NULL), "the shim client registered before is gone");
    E2E_CHECK(e2e_find_client(rt, during.pid, NULL), "the shim client registered during is gone");
    E2E_CHECK(!e2e_wait_eof(good, 0), "the good client was dropped");
    for (int i = 0; i < NNOREAD; i++)
        E2E_CHECK(!e2e_wait_eof(noread[i], 0), "non-reader %d was dropped", i);
    want = 2 + 1 + NNOREAD + 1;         /* shims, good, non-readers, late4 */
    n = count_welcomed(rt);
    st = e2e_ctl_status_clients(rt);
    E2E_CHECK(n == want, "CLIENTS lists %zu, expected %zu", n, want);
    E2E_CHECK(st == (long)want, "STATUS says clients %ld, expected %zu", st, want);

    /* everyone leaves: fds back to the start */
    for (int i = 0; i < NNOREAD; i++)
        close(noread[i]);
    close(good);
    close(late4);
    close(sfd);
    e2e_shim_stop(&before);
    e2e_shim_stop(&during);
    int nfds = -1;
    for (int i = 0; i < 200 && (nfds = e2e_daemon_nfds(&D)) != base_fds; i++)
        e2e_sleep_ms(10);
    E2E_CHECK(nfds == base_fds, "hakmemd has %d fds open, %d at the start", nfds, base_fds);
    E2E_CHECK(e2e_ctl_status_clients(rt) == 0, "clients left in STATUS");
    int stt = e2e_daemon_stop(&D, SIGTERM, 5000);
    E2E_CHECK(stt != -1 && WIFEXITED(stt) && WEXITSTATUS(stt) == 0, "hakmemd did not stop cleanly");
    /* every drop is logged, or counted by the log's rate limit (whose
     * summaries are all out once the daemon has stopped) */
    int drops = e2e_log_count_msgs(&D, "no hello in time");
    int lines = e2e_log_count(&D, "no hello in time");
    E2E_CHECK(drops == NSILENT + 1, "%d 'no hello in time' messages in the log, expected %d", drops,
              NSILENT + 1);
    E2E_CHECK(lines < NSILENT / 2, "%d 'no hello in time' lines: the log is not rate-limited", lines);
    e2e_log("%d drops: %d log lines, the rest counted in summaries", drops, lines);
    e2e_done();
}
