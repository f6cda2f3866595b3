/* sec_attack.c: what a hostile local user does to hakmemd and its ring,
 * for tests/security (run as an unprivileged user by the test driver),
 * plus the fake daemons and the old-layout client of the root-side cases.
 * Each subcommand prints "key value" lines the driver parses and exits 0
 * when it did what it came to do (an attack: when it succeeded), 1 when
 * it was stopped, 2 on a usage or set-up error.
 *
 *   ring RTDIR ROUTE PAYLOAD HOLD_S   register, take the ring fd, try to
 *        turn it into a way of writing the ring (ROUTE: reopen, mmap,
 *        mprotect, ftruncate, write, fallocate, madvise, seal, procfd) and
 *        write PAYLOAD (override: a host-wide CRITICAL override entry;
 *        closed: state CLOSED; badmagic: magic 0; shrink: size 0), then
 *        stay registered HOLD_S seconds, rewriting the payload every 50 ms
 *   ctl-flood RTDIR SOCK N HOLD_S     N idle connections to RTDIR/SOCK, each
 *                                     opened again as soon as it is refused
 *                                     or dropped
 *   client-flood RTDIR N HOLD_S       N registrations held open
 *   garbage RTDIR N                   N connections that send garbage
 *   name RTDIR HEXCOMM COUNT HOLD_S   COUNT registrations of this process
 *                                     with comm = the bytes of HEXCOMM
 *   fake-daemon DIR MODE HOLD_S       a hakmemd.sock of our own in DIR
 *        (MODE: critical, closed, badmagic, refuse-users, refuse-mfile,
 *        refuse-proto);
 *        DIR/fake.count holds the number of connections served
 *   fork-large HOLD_S                 (under LD_PRELOAD) allocate a little,
 *        wait for the listener, fork; the child makes only large
 *        allocations; prints "child PID" and both hold HOLD_S seconds
 *   old-client RTDIR HOLD_S STATUS    a client of the previous protocol
 *        (version 1: main's layout, frozen in proto_v1.h) that registers,
 *        publishes a stats page of distinctive values and writes the
 *        level it follows into STATUS ("level L generation G")
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "e2e.h"
#include "proto_v1.h"
#include "ring.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void say(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const char *key, const char *fmt, ...)
{
    va_list ap;
    printf("%s ", key);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static const char *err_name(int e)
{
    static char buf[64];
    switch (e) {
    case 0: return "ok";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EBUSY: return "EBUSY";
    case ENOENT: return "ENOENT";
    case EUSERS: return "EUSERS";
    case ENOSPC: return "ENOSPC";
    case EMFILE: return "EMFILE";
    case EAGAIN: return "EAGAIN";
    }
    snprintf(buf, sizeof(buf), "errno%d", e);
    return buf;
}

/* ---- the ring: a registration and its fd ---- */

struct reg {
    int sock, ring_fd;
    struct hakmem_welcome w;
};

static int reg_open(const char *rtdir, struct reg *r, const char *comm, size_t comm_len)
{
    memset(r, 0, sizeof(*r));
    r->ring_fd = -1;
    r->sock = e2e_connect(rtdir);
    if (r->sock < 0)
        return r->sock;
    int sfd = e2e_stats_memfd(4096, F_SEAL_SHRINK | F_SEAL_GROW);
    if (sfd < 0)
        return sfd;
    struct hakmem_hello h;
    e2e_hello(&h, true, 4096);
    if (comm) {
        memset(h.comm, 0, sizeof(h.comm));
        memcpy(h.comm, comm, comm_len < sizeof(h.comm) - 1 ? comm_len : sizeof(h.comm) - 1);
    }
    e2e_send(r->sock, &h, sizeof(h), &sfd, 1);
    close(sfd);
    int res = e2e_recv_reply(r->sock, 3000, &r->w, &r->ring_fd);
    if (res != E2E_WELCOME) {
        close(r->sock);
        r->sock = -1;
        return res == E2E_REFUSED ? r->w.status : -EPROTO;
    }
    return 0;
}

/* A way to write bytes at an offset of the ring, found by a route. */
struct writer {
    const char *how;          /* "mapping", "pwrite", or NULL: none */
    unsigned char *map;       /* writable shared mapping */
    int fd;                   /* for pwrite */
    size_t size;
};

static int w_put(struct writer *w, size_t off, const void *p, size_t n)
{
    if (w->map) {
        memcpy(w->map + off, p, n);
        return 0;
    }
    return pwrite(w->fd, p, n, (off_t)off) == (ssize_t)n ? 0 : -errno;
}

static int reopen_rw(int fd)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return open(path, O_RDWR | O_CLOEXEC);
}

/* Try ROUTE; fill *w when it yields a way to write. Prints each step. */
static void try_route(const char *route, int ring_fd, size_t size, pid_t daemon_pid,
                      struct writer *w)
{
    memset(w, 0, sizeof(*w));
    w->fd = -1;
    w->size = size;
    int rw = -1, e;
    if (!strcmp(route, "reopen")) {
        rw = reopen_rw(ring_fd);
        e = rw < 0 ? errno : 0;
        say("step", "open(/proc/self/fd/%d, O_RDWR) %s", ring_fd, err_name(e));
        if (rw >= 0) {
            void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
            e = m == MAP_FAILED ? errno : 0;
            say("step", "mmap(PROT_WRITE, MAP_SHARED) of the reopened fd %s", err_name(e));
            if (m != MAP_FAILED) {
                w->map = m;
                w->how = "mapping";
            }
        }
    } else if (!strcmp(route, "mmap")) {
        void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ring_fd, 0);
        e = m == MAP_FAILED ? errno : 0;
        say("step", "mmap(PROT_WRITE, MAP_SHARED) of the ring fd %s", err_name(e));
        if (m != MAP_FAILED) {
            w->map = m;
            w->how = "mapping";
        }
    } else if (!strcmp(route, "mprotect")) {
        /* a read-only mapping of the best fd we can get, made writable */
        rw = reopen_rw(ring_fd);
        int fd = rw >= 0 ? rw : ring_fd;
        void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            say("step", "mmap(PROT_READ) %s", err_name(errno));
            return;
        }
        int rc = mprotect(m, size, PROT_READ | PROT_WRITE);
        e = rc < 0 ? errno : 0;
        say("step", "mprotect(PROT_WRITE) of a read-only mapping (%s fd) %s",
            rw >= 0 ? "reopened" : "received", err_name(e));
        if (rc == 0) {
            w->map = m;
            w->how = "mapping";
        }
    } else if (!strcmp(route, "ftruncate")) {
        rw = reopen_rw(ring_fd);
        int fd = rw >= 0 ? rw : ring_fd;
        int rc = ftruncate(fd, 0);
        e = rc < 0 ? errno : 0;
        say("step", "ftruncate(0) (%s fd) %s", rw >= 0 ? "reopened" : "received", err_name(e));
        rc = ftruncate(fd, (off_t)size * 2);
        e = rc < 0 ? errno : 0;
        say("step", "ftruncate(2x) %s", err_name(e));
        if (rc == 0 || e == 0) {
            w->how = "ftruncate";
        }
        return;
    } else if (!strcmp(route, "write")) {
        rw = reopen_rw(ring_fd);
        int fd = rw >= 0 ? rw : ring_fd;
        uint32_t v;
        ssize_t n = pread(fd, &v, sizeof(v), offsetof(struct hakmem_ring_hdr, state));
        n = n == sizeof(v) ? pwrite(fd, &v, sizeof(v), offsetof(struct hakmem_ring_hdr, state)) : -1;
        e = n < 0 ? errno : 0;
        say("step", "pwrite() of the state word (%s fd) %s", rw >= 0 ? "reopened" : "received",
            err_name(e));
        if (n == sizeof(v)) {
            w->fd = fd;
            w->how = "pwrite";
            rw = -1;
        }
    } else if (!strcmp(route, "fallocate")) {
        rw = reopen_rw(ring_fd);
        int fd = rw >= 0 ? rw : ring_fd;
        /* punching the header's reserved tail: harmless if it works, and
         * proof that the whole region could be zeroed */
        int rc = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)size - 4096, 4096);
        e = rc < 0 ? errno : 0;
        say("step", "fallocate(PUNCH_HOLE) (%s fd) %s", rw >= 0 ? "reopened" : "received",
            err_name(e));
        if (rc == 0)
            w->how = "fallocate";
        return;
    } else if (!strcmp(route, "madvise")) {
        rw = reopen_rw(ring_fd);
        int fd = rw >= 0 ? rw : ring_fd;
        void *m = mmap(NULL, size, PROT_READ | (rw >= 0 ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        int rc = m == MAP_FAILED ? -1 : madvise((char *)m + size - 4096, 4096, MADV_REMOVE);
        e = rc < 0 ? errno : 0;
        say("step", "madvise(MADV_REMOVE) %s", err_name(e));
        if (rc == 0)
            w->how = "madvise";
        return;
    } else if (!strcmp(route, "seal")) {
        rw = reopen_rw(ring_fd);
        int fd = rw >= 0 ? rw : ring_fd;
        int rc = fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE);
        e = rc < 0 ? errno : 0;
        say("step", "F_ADD_SEALS(F_SEAL_WRITE) %s", err_name(e));
        if (rc == 0)
            w->how = "seal";
        return;
    } else if (!strcmp(route, "procfd")) {
        /* the daemon's own read-write memfd, through /proc/PID/fd */
        char dir[64], path[320], target[256];
        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)daemon_pid);
        int found = 0;
        for (int fd = 0; fd < 64; fd++) {
            snprintf(path, sizeof(path), "%s/%d", dir, fd);
            ssize_t n = readlink(path, target, sizeof(target) - 1);
            if (n < 0) {
                if (fd == 0)
                    say("step", "readlink(%s/0) %s", dir, err_name(errno));
                if (errno == EACCES || errno == EPERM)
                    break;
                continue;
            }
            target[n] = '\0';
            if (!strstr(target, "hakmem-ring"))
                continue;
            found = 1;
            int f = open(path, O_RDWR | O_CLOEXEC);
            say("step", "open(%s, O_RDWR) %s", path, err_name(f < 0 ? errno : 0));
            if (f >= 0) {
                void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
                if (m != MAP_FAILED) {
                    w->map = m;
                    w->how = "mapping";
                    return;
                }
                say("step", "mmap(PROT_WRITE) %s", err_name(errno));
            }
        }
        if (!found)
            say("step", "no hakmem-ring fd of pid %d reachable", (int)daemon_pid);
        return;
    } else {
        say("error", "unknown route %s", route);
        exit(2);
    }
    if (rw >= 0 && !w->how)
        close(rw);
}

/* Write a host-wide override entry as the producer would (table only:
 * every shim re-reads its entries at each wakeup). */
static int put_override(struct writer *w, const struct ring *r)
{
    uint32_t i = hakmem_ring_hash(HAKMEM_KEY_ALL);
    for (uint32_t k = 0; k <= r->table_mask; k++, i++) {
        size_t off = (size_t)(r->table - (const unsigned char *)r->hdr)
                   + (size_t)(i & r->table_mask) * r->entry_size;
        const struct hakmem_ring_entry *e = (const void *)((const unsigned char *)r->hdr + off);
        uint64_t seq = atomic_load(&e->seq);
        uint64_t key = atomic_load(&e->word[0]);
        if (seq != 0 && key != HAKMEM_KEY_ALL)
            continue;
        struct hakmem_ring_msg m = { .key = HAKMEM_KEY_ALL, .ts_ns = now_ns(),
                                     .level = HAKMEM_LEVEL_CRITICAL, .flags = HAKMEM_RING_F_OVERRIDE,
                                     .reason = HAKMEM_REASON_OPERATOR };
        uint64_t odd = (seq | 1) + 2, even = odd + 1, pos = ring_head(r);
        int rc = w_put(w, off + offsetof(struct hakmem_ring_entry, seq), &odd, 8);
        rc |= w_put(w, off + offsetof(struct hakmem_ring_entry, word), &m, sizeof(m));
        rc |= w_put(w, off + offsetof(struct hakmem_ring_entry, pos), &pos, 8);
        rc |= w_put(w, off + offsetof(struct hakmem_ring_entry, seq), &even, 8);
        return rc;
    }
    return -ENOSPC;
}

static void wake(const struct ring *r, struct writer *w)
{
    uint32_t f = ring_futex_value(r) + 1;
    w_put(w, offsetof(struct hakmem_ring_hdr, futex), &f, 4);
    syscall(SYS_futex, (uint32_t *)(uintptr_t)&r->hdr->futex, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static int put_payload(struct writer *w, const struct ring *r, const char *payload)
{
    int rc;
    if (!strcmp(payload, "override")) {
        rc = put_override(w, r);
    } else if (!strcmp(payload, "closed")) {
        uint32_t s = HAKMEM_RING_STATE_CLOSED;
        rc = w_put(w, offsetof(struct hakmem_ring_hdr, state), &s, 4);
    } else if (!strcmp(payload, "badmagic")) {
        uint32_t z = 0;
        rc = w_put(w, offsetof(struct hakmem_ring_info, magic), &z, 4);
    } else {
        say("error", "unknown payload %s", payload);
        exit(2);
    }
    if (rc == 0)
        wake(r, w);
    return rc;
}

static pid_t daemon_pid_of(const char *rtdir)
{
    struct hakmem_ctl_req q;
    char text[8192];
    proto_ctl_req_init(&q, HAKMEM_CTL_STATUS);
    if (e2e_ctl(rtdir, &q, 3000, NULL, NULL, text, sizeof(text), NULL) != 0)
        return 0;
    const char *p = strstr(text, "pid ");
    return p ? (pid_t)atoi(p + 4) : 0;
}

static int cmd_ring(const char *rtdir, const char *route, const char *payload, double hold)
{
    struct reg rg;
    int rc = reg_open(rtdir, &rg, NULL, 0);
    if (rc < 0) {
        say("error", "registration failed: %s", strerror(-rc));
        return 2;
    }
    size_t size = (size_t)rg.w.ring_size;
    const void *ro = mmap(NULL, size, PROT_READ, MAP_SHARED, rg.ring_fd, 0);
    struct ring r;
    if (ro == MAP_FAILED || ring_validate(&r, ro, size) != 0) {
        say("error", "cannot map or validate the ring");
        return 2;
    }
    struct stat st;
    fstat(rg.ring_fd, &st);
    int seals = fcntl(rg.ring_fd, F_GET_SEALS);
    say("ring_fd", "mode %04o uid %u seals %#x (future_write %s)", (unsigned)(st.st_mode & 07777),
        (unsigned)st.st_uid, (unsigned)seals, seals >= 0 && (seals & F_SEAL_FUTURE_WRITE) ? "yes" : "no");
    struct writer w;
    try_route(route, rg.ring_fd, size, daemon_pid_of(rtdir), &w);
    say("writer", "%s", w.how ? w.how : "none");
    int wrote = 0;
    if (w.map || w.fd >= 0) {
        rc = put_payload(&w, &r, payload);
        say("payload", "%s %s", payload, rc == 0 ? "written" : "failed");
        wrote = rc == 0;
        double end = e2e_now() + hold;
        while (wrote && e2e_now() < end) {
            e2e_sleep_ms(50);
            put_payload(&w, &r, payload);
        }
    } else if (w.how) {
        wrote = 1;  /* ftruncate, fallocate, madvise, seal: the route itself was the damage */
        say("payload", "%s done", w.how);
    }
    double end = e2e_now() + hold;
    while (e2e_now() < end)
        e2e_sleep_ms(50);
    say("result", "%s", wrote ? "attack succeeded" : "attack blocked");
    return wrote ? 0 : 1;
}

/* ---- floods ---- */

static int connect_to(const char *rtdir, const char *name)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", rtdir, name);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS &&
        errno != EAGAIN) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* What the daemon said on a connection: 1 a refusal (its reason copied
 * into reason when still empty), 0 an end without a word, -1 nothing yet. */
static int ctl_outcome(int fd, char *reason, size_t len)
{
    unsigned char buf[HAKMEM_MSG_MAX];
    ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (k < 0 && errno == ECONNRESET)
        k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (k > (ssize_t)sizeof(struct hakmem_ctl_resp)) {
        if (!reason[0]) {
            size_t l = (size_t)k - sizeof(struct hakmem_ctl_resp);
            if (l >= len)
                l = len - 1;
            memcpy(reason, buf + sizeof(struct hakmem_ctl_resp), l);
            reason[l] = '\0';
        }
        return 1;
    }
    if (k == 0 || (k < 0 && errno != EAGAIN))
        return 0;
    return -1;
}

/* N connections, kept at N for HOLD_S seconds: whatever the daemon
 * refuses or drops is opened again at once, as a determined attacker
 * would. */
static int cmd_ctl_flood(const char *rtdir, const char *sock, int n, double hold)
{
    e2e_raise_nofile((unsigned long)n + 64);
    int *fds = calloc((size_t)n, sizeof(int));
    int opened = 0, failed = 0, lasterr = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = connect_to(rtdir, sock);
        if (fds[i] < 0) {
            failed++;
            lasterr = -fds[i];
        } else {
            opened++;
        }
    }
    say("opened", "%d", opened);
    say("connect_failed", "%d %s", failed, failed ? err_name(lasterr) : "");
    char reason[256] = "";
    long refused = 0, closed = 0, reopened = 0;
    double end = e2e_now() + hold;
    do {
        e2e_sleep_ms(50);
        for (int i = 0; i < n; i++) {
            if (fds[i] < 0)
                continue;
            int o = ctl_outcome(fds[i], reason, sizeof(reason));
            if (o < 0)
                continue;
            refused += o == 1;
            closed += o == 0;
            close(fds[i]);
            fds[i] = connect_to(rtdir, sock);
            reopened++;
        }
    } while (e2e_now() < end);
    for (char *p = reason; *p; p++)
        if (*p == '\n')
            *p = ' ';
    say("refused_with_reason", "%ld", refused);
    say("closed_silently", "%ld", closed);
    say("reopened", "%ld", reopened);
    say("reason", "%s", reason[0] ? reason : "-");
    return 0;
}

static int cmd_client_flood(const char *rtdir, int n, double hold)
{
    e2e_raise_nofile((unsigned long)n * 2 + 64);
    int welcomed = 0, other = 0, counts[4096] = { 0 };
    int *socks = calloc((size_t)n, sizeof(int));
    int sfd = e2e_stats_memfd(4096, F_SEAL_SHRINK | F_SEAL_GROW);
    for (int i = 0; i < n; i++) {
        struct hakmem_welcome w;
        int res;
        socks[i] = e2e_register_fd(rtdir, sfd, 3000, &w, &res);
        if (socks[i] >= 0)
            welcomed++;
        else if (res == E2E_REFUSED && w.status < 0 && w.status > -4096)
            counts[-w.status]++;
        else
            other++;
    }
    say("welcomed", "%d", welcomed);
    for (int e = 1; e < 4096; e++)
        if (counts[e])
            say("refused", "%s %d", err_name(e), counts[e]);
    say("other", "%d", other);
    double end = e2e_now() + hold;
    while (e2e_now() < end)
        e2e_sleep_ms(100);
    return 0;
}

static int cmd_garbage(const char *rtdir, int n)
{
    int sent = 0;
    for (int i = 0; i < n; i++) {
        int s = e2e_connect(rtdir);
        if (s < 0)
            continue;
        static const char junk[] = "GET / HTTP/1.0\r\n\r\n";
        if (send(s, junk, sizeof(junk), MSG_NOSIGNAL) > 0)
            sent++;
        close(s);
    }
    say("sent", "%d", sent);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int cmd_name(const char *rtdir, const char *hex, int count, double hold)
{
    char comm[HAKMEM_COMM_LEN] = "";
    size_t n = 0;
    for (const char *p = hex; p[0] && p[1] && n < sizeof(comm) - 1; p += 2) {
        int hi = hexval(p[0]), lo = hexval(p[1]);
        if (hi < 0 || lo < 0)
            return 2;
        comm[n++] = (char)(hi << 4 | lo);
    }
    int ok = 0;
    struct reg rg[8];
    for (int i = 0; i < count && i < 8; i++) {
        int rc = reg_open(rtdir, &rg[i], comm, n);
        say("registration", "%d %s", i + 1, rc == 0 ? "welcomed" : strerror(-rc));
        ok += rc == 0;
    }
    double end = e2e_now() + hold;
    while (e2e_now() < end)
        e2e_sleep_ms(100);
    return ok ? 0 : 1;
}

/* ---- a fake daemon ---- */

static int fake_ring(const char *mode, size_t *size)
{
    *size = ring_layout_size(64, 64);
    int fd = memfd_create("fake-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, (off_t)*size) != 0)
        return -1;
    void *m = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return -1;
    struct ring_producer p;
    struct ring_params prm = { .generation = 42, .heartbeat_period_ns = 1000000000u,
                               .now_ns = now_ns(), .daemon_pid = (uint32_t)getpid() };
    ring_init(&p, m, *size, 64, 64, &prm);
    ring_publish(&p, HAKMEM_KEY_ALL, HAKMEM_LEVEL_CRITICAL, HAKMEM_RING_F_OVERRIDE, now_ns(),
                 HAKMEM_REASON_OPERATOR);
    struct hakmem_ring_hdr *h = m;
    if (!strcmp(mode, "closed"))
        atomic_store(&h->state, HAKMEM_RING_STATE_CLOSED);
    if (!strcmp(mode, "badmagic"))
        h->info.magic = 0;
    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
    /* keep beating from a child, so that the ring looks alive */
    if (fork() == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) {
            ring_heartbeat(&p, now_ns());
            e2e_sleep_ms(100);
        }
    }
    return fd;
}

static int cmd_fake_daemon(const char *dir, const char *mode, double hold)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    char *path = a.sun_path;
    if ((size_t)snprintf(path, sizeof(a.sun_path), "%s/hakmemd.sock", dir) >= sizeof(a.sun_path))
        return 2;
    unlink(path);
    int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 64) != 0) {
        say("error", "cannot listen on %s: %s", path, strerror(errno));
        return 2;
    }
    chmod(path, 0666);
    size_t size = 0;
    int ring = -1;
    int32_t status = 0;
    if (!strcmp(mode, "refuse-users"))
        status = -EUSERS;
    else if (!strcmp(mode, "refuse-mfile"))
        status = -EMFILE;
    else if (!strcmp(mode, "refuse-proto"))
        status = -EPROTONOSUPPORT;
    else if ((ring = fake_ring(mode, &size)) < 0) {
        say("error", "cannot make a ring");
        return 2;
    }
    char cpath[PATH_MAX];
    snprintf(cpath, sizeof(cpath), "%s/fake.count", dir);
    unsigned count = 0;
    int held[1024], nheld = 0;
    double end = e2e_now() + hold;
    say("listening", "%s %s", path, mode);
    while (e2e_now() < end) {
        struct pollfd p = { l, POLLIN, 0 };
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        count++;
        FILE *f = fopen(cpath, "w");
        if (f) {
            fprintf(f, "%u\n", count);
            fclose(f);
        }
        unsigned char buf[HAKMEM_MSG_MAX];
        char cm[CMSG_SPACE(sizeof(int) * 4)];
        struct iovec iov = { buf, sizeof(buf) };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm,
                            .msg_controllen = sizeof(cm) };
        struct pollfd q = { c, POLLIN, 0 };
        if (poll(&q, 1, 1000) <= 0 || recvmsg(c, &m, MSG_CMSG_CLOEXEC) <= 0) {
            close(c);
            continue;
        }
        for (struct cmsghdr *ch = CMSG_FIRSTHDR(&m); ch; ch = CMSG_NXTHDR(&m, ch))
            if (ch->cmsg_type == SCM_RIGHTS)
                for (size_t i = 0; i < (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(ch) + i * sizeof(int), sizeof(int));
                    close(fd);
                }
        struct hakmem_welcome w;
        proto_welcome_init(&w, status);
        uint32_t ver;
        memcpy(&ver, buf + 4, sizeof(ver));
        w.version = ver;                /* answer in the client's version */
        if (status == 0) {
            w.ring_size = size;
            w.heartbeat_period_ns = 1000000000u;
            w.generation = 42;
            w.cgroup_key = 1;
            w.pid_key = HAKMEM_KEY_PID(1);
            e2e_send(c, &w, sizeof(w), &ring, 1);
        } else {
            e2e_send(c, &w, sizeof(w), NULL, 0);
        }
        if (nheld < 1024)
            held[nheld++] = c;
        else
            close(c);
    }
    say("connections", "%u", count);
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    return 0;
}

/* ---- a client of the previous protocol version ---- */

static int cmd_old_client(const char *rtdir, double hold, const char *status_path)
{
    int s = e2e_connect(rtdir);
    if (s < 0) {
        say("error", "connect: %s", strerror(-s));
        return 2;
    }
    size_t plen = 4096;
    int sfd = memfd_create("hakmem-stats", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (sfd < 0 || ftruncate(sfd, (off_t)plen) != 0) {
        say("error", "stats memfd");
        return 2;
    }
    struct v1_stats_page *pg = mmap(NULL, plen, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
    if (pg == MAP_FAILED)
        return 2;
    fcntl(sfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    memset(pg, 0, sizeof(*pg));
    pg->magic = V1_STATS_MAGIC;
    pg->version = 1;
    pg->size = sizeof(*pg);
    pg->pid = (uint32_t)getpid();
    /* counter i of the v1 order gets 1000 + i: the daemon must map them
     * to the right names */
    pg->seq = 1;
    pg->updated_ns = now_ns();
    pg->mode = 1;
    pg->last_level = 0;
    pg->ncounters = V1_STAT_COUNT;
    pg->flags = 0;
    for (unsigned i = 0; i < V1_STAT_COUNT; i++)
        pg->counter[i] = 1000 + i;
    pg->seq = 2;

    struct v1_hello h;
    memset(&h, 0, sizeof(h));
    h.magic = V1_HELLO_MAGIC;
    h.version = 1;
    h.size = sizeof(h);
    h.flags = 0x01;  /* stats attached */
    h.pid = (uint32_t)getpid();
    h.stats_size = (uint32_t)plen;
    h.mode = 1;
    snprintf(h.comm, sizeof(h.comm), "old-shim");
    e2e_send(s, &h, sizeof(h), &sfd, 1);
    close(sfd);

    unsigned char buf[HAKMEM_MSG_MAX];
    char cm[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = { buf, sizeof(buf) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm,
                        .msg_controllen = sizeof(cm) };
    struct pollfd p = { s, POLLIN, 0 };
    ssize_t n = poll(&p, 1, 3000) > 0 ? recvmsg(s, &m, MSG_CMSG_CLOEXEC) : -1;
    int ring_fd = -1;
    for (struct cmsghdr *ch = n > 0 ? CMSG_FIRSTHDR(&m) : NULL; ch; ch = CMSG_NXTHDR(&m, ch))
        if (ch->cmsg_type == SCM_RIGHTS)
            memcpy(&ring_fd, CMSG_DATA(ch), sizeof(int));
    struct v1_welcome w;
    if (n != (ssize_t)sizeof(w)) {
        say("error", "no welcome (%zd bytes)", n);
        return 1;
    }
    memcpy(&w, buf, sizeof(w));
    say("welcome", "magic_ok %d version %u status %d", w.magic == V1_WELCOME_MAGIC, w.version, w.status);
    if (w.magic != V1_WELCOME_MAGIC || w.version != 1 || w.status != 0 || ring_fd < 0)
        return 1;
    void *mem = mmap(NULL, (size_t)w.ring_size, PROT_READ, MAP_SHARED, ring_fd, 0);
    if (mem == MAP_FAILED)
        return 1;
    /* the v1 reader's checks: magic and version 1 */
    const struct v1_ring_info *in = mem;
    say("ring", "magic_ok %d version %u", in->magic == V1_RING_MAGIC, in->version);
    if (in->magic != V1_RING_MAGIC || in->version != 1)
        return 1;
    struct ring r;
    if (ring_validate(&r, mem, (size_t)w.ring_size) != 0) {
        say("error", "the ring does not validate");
        return 1;
    }
    double end = e2e_now() + hold;
    while (e2e_now() < end) {
        struct hakmem_ring_msg msg;
        ring_resolve(&r, w.cgroup_key, w.pid_key, &msg);
        uint64_t age = ring_heartbeat_age(&r, now_ns());
        char line[128];
        int k = snprintf(line, sizeof(line), "level %u alive %d\n", msg.level,
                         age < 3 * in->heartbeat_period_ns);
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof(tmp), "%s.tmp", status_path);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fwrite(line, 1, (size_t)k, f);
            fclose(f);
            rename(tmp, status_path);
        }
        pg->seq = pg->seq + 1;
        pg->updated_ns = now_ns();
        pg->last_level = msg.level;
        pg->seq = pg->seq + 1;
        ring_wait(&r, ring_futex_value(&r), 50000000u);
    }
    return 0;
}

/* ---- fork: a child that only makes large allocations ---- */

static int cmd_fork_large(double hold)
{
    void *small[16];
    for (int i = 0; i < 16; i++)
        small[i] = malloc(64);
    e2e_sleep_ms(1000);                     /* the parent's listener registers */
    pid_t c = fork();
    if (c < 0)
        return 2;
    if (c == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        static char *volatile big;      /* escapes: the compiler keeps the calls */
        double end = e2e_now() + hold;
        while (e2e_now() < end) {
            big = malloc(4 << 20);
            if (big)
                memset(big, 1, 4 << 20);
            free(big);
            e2e_sleep_ms(100);
        }
        _exit(0);
    }
    say("child", "%d", (int)c);
    e2e_sleep_ms((unsigned)(hold * 1000));
    for (int i = 0; i < 16; i++)
        free(small[i]);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 6 && !strcmp(argv[1], "ring"))
        return cmd_ring(argv[2], argv[3], argv[4], atof(argv[5]));
    if (argc >= 6 && !strcmp(argv[1], "ctl-flood"))
        return cmd_ctl_flood(argv[2], argv[3], atoi(argv[4]), atof(argv[5]));
    if (argc >= 5 && !strcmp(argv[1], "client-flood"))
        return cmd_client_flood(argv[2], atoi(argv[3]), atof(argv[4]));
    if (argc >= 4 && !strcmp(argv[1], "garbage"))
        return cmd_garbage(argv[2], atoi(argv[3]));
    if (argc >= 6 && !strcmp(argv[1], "name"))
        return cmd_name(argv[2], argv[3], atoi(argv[4]), atof(argv[5]));
    if (argc >= 5 && !strcmp(argv[1], "fake-daemon"))
        return cmd_fake_daemon(argv[2], argv[3], atof(argv[4]));
    if (argc >= 3 && !strcmp(argv[1], "fork-large"))
        return cmd_fork_large(atof(argv[2]));
    if (argc >= 5 && !strcmp(argv[1], "old-client"))
        return cmd_old_client(argv[2], atof(argv[3]), argv[4]);
    fprintf(stderr, "usage: see the comment at the top of sec_attack.c\n");
    return 2;
}
