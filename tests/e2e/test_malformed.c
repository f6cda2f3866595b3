/* test_malformed.c: e2e test 1. Malformed hellos on hakmemd.sock: every
 * one is refused (welcome with a negative status and no fd) or dropped,
 * the daemon closes the connection, leaks no fd, stays up, and a
 * well-formed client (raw, and a real shim under LD_PRELOAD) still
 * registers. Runs unprivileged too (hakmemd --sources none).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "e2e.h"
#include "msg.h"

static struct e2e_daemon D;
static int base_fds;
static int keep_sock = -1;              /* a good client registered all along */
static int ncases, nrefused;

#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

/* What a case expects from the daemon. */
enum expect {
    X_REFUSE,       /* a refusal with status `status` (0: any negative), then EOF */
    X_DROP,         /* EOF without a welcome (a refusal is tolerated) */
    X_WELCOME_DROP, /* a welcome, then EOF (something after the hello) */
};

/* Checks the reply to what a case sent, then the daemon's health. */
static void finish(const char *name, int sock, enum expect x, int status)
{
    struct hakmem_welcome w;
    int ring_fd = -1;
    int r = e2e_recv_reply(sock, 2000, &w, &ring_fd);
    if (ring_fd >= 0)
        close(ring_fd);
    ncases++;
    switch (x) {
    case X_REFUSE:
        E2E_CHECK(r == E2E_REFUSED, "%s: expected a refusal, got %s", name, e2e_reply_name(r));
        if (r == E2E_REFUSED && status)
            E2E_CHECK(w.status == status, "%s: refused with %d (%s), expected %d (%s)", name,
                      w.status, strerror(-w.status), status, strerror(-status));
        nrefused += r == E2E_REFUSED;
        break;
    case X_DROP:
        E2E_CHECK(r == E2E_EOF || r == E2E_REFUSED, "%s: expected the connection dropped, got %s",
                  name, e2e_reply_name(r));
        nrefused += r == E2E_REFUSED;
        break;
    case X_WELCOME_DROP:
        E2E_CHECK(r == E2E_WELCOME, "%s: expected a welcome first, got %s", name, e2e_reply_name(r));
        break;
    }
    bool eof = e2e_wait_eof(sock, 2000);
    E2E_CHECK(eof, "%s: the daemon kept the connection open", name);
    close(sock);
    e2e_log("  %-44s -> %s%s%s", name, e2e_reply_name(r),
            r == E2E_REFUSED ? " " : "", r == E2E_REFUSED ? strerror(-w.status) : "");

    /* the daemon is up, closed everything of that client, and serves others */
    E2E_REQUIRE(e2e_daemon_alive(&D), "%s: hakmemd died", name);
    int nfds = -1;
    for (int i = 0; i < 100; i++) {
        nfds = e2e_daemon_nfds(&D);
        if (nfds == base_fds)
            break;
        e2e_sleep_ms(10);
    }
    E2E_CHECK(nfds == base_fds, "%s: hakmemd has %d fds open, %d before (leak)", name, nfds, base_fds);
    if (nfds != base_fds) {
        e2e_daemon_list_fds(&D);
        base_fds = nfds;                /* report each leak once */
    }
    int res;
    int s = e2e_register(D.rtdir, 2000, &w, &res);
    E2E_CHECK(s >= 0, "%s: a good client afterwards got %s", name, e2e_reply_name(res));
    if (s >= 0)
        close(s);
}

/* A real shim under LD_PRELOAD still registers (after each section). */
static void shim_registers(const char *after)
{
    if (!e2e_shim_path || !e2e_client_path)
        return;
    struct e2e_shim sh;
    e2e_shim_start(&sh, D.rtdir, NULL);
    struct hakmem_ctl_client rec;
    bool found = false;
    for (int i = 0; i < 300 && !(found = e2e_find_client(D.rtdir, sh.pid, &rec)); i++)
        e2e_sleep_ms(10);
    E2E_CHECK(found, "after %s: a shim client (pid %d) did not register", after, (int)sh.pid);
    if (found) {
        E2E_CHECK(strcmp(rec.comm, "e2e_shimclient") == 0, "shim client comm '%s'", rec.comm);
        E2E_CHECK(rec.mode == HAKMEM_MODE_FAST, "shim client mode %u", rec.mode);
    }
    e2e_log("  after %s: a shim client under LD_PRELOAD %s", after,
            found ? "registered" : "did NOT register");
    e2e_shim_stop(&sh);
}

static int conn(void)
{
    int s = e2e_connect(D.rtdir);
    if (s < 0)
        e2e_fail("connect: %s", strerror(-s));
    return s;
}

/* Sends raw bytes (with fds) as one datagram and checks the outcome. */
static void send_case(const char *name, const void *buf, size_t len, const int *fds, int nfds,
                      enum expect x, int status)
{
    int s = conn();
    ssize_t n = e2e_send(s, buf, len, fds, nfds);
    if (n != (ssize_t)len)
        e2e_fail("%s: send: %s", name, n < 0 ? strerror((int)-n) : "short");
    finish(name, s, x, status);
}

static void hello_case(const char *name, const struct hakmem_hello *h, const int *fds, int nfds,
                       enum expect x, int status)
{
    send_case(name, h, sizeof(*h), fds, nfds, x, status);
}

static int memfd_or_fail(size_t size, unsigned seals)
{
    int fd = e2e_stats_memfd(size, seals);
    if (fd < 0)
        e2e_fail("memfd: %s", strerror(-fd));
    return fd;
}

/* A stats page the client scribbles on: the daemon only reads it. */
static void hostile_page(const char *name, void (*scribble)(struct hakmem_stats_page *))
{
    int fd = memfd_or_fail(4096, 0);
    struct hakmem_stats_page *pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (pg == MAP_FAILED)
        e2e_fail("mmap: %s", strerror(errno));
    if (fcntl(fd, F_ADD_SEALS, SEALS) != 0)
        e2e_fail("seal: %s", strerror(errno));
    scribble(pg);
    struct hakmem_welcome w;
    int res;
    int s = e2e_register_fd(D.rtdir, fd, 2000, &w, &res);
    close(fd);
    ncases++;
    E2E_CHECK(s >= 0, "%s: a sealed page with bad contents is still a valid hello; got %s", name,
              e2e_reply_name(res));
    /* the daemon reads the page for CLIENTS and METRICS */
    struct hakmem_ctl_client *cl;
    size_t n;
    int rc = e2e_ctl_clients(D.rtdir, &cl, &n);
    E2E_CHECK(rc == 0, "%s: CLIENTS failed: %s", name, strerror(-rc));
    for (size_t i = 0; i < n; i++)
        E2E_CHECK(cl[i].mode < HAKMEM_MODE_COUNT && cl[i].last_level < HAKMEM_LEVEL_COUNT &&
                  !(cl[i].counters_present >> HAKMEM_COUNTER_COUNT) &&
                  !(cl[i].flags & ~HAKMEM_STATS_F_MASK),
                  "%s: CLIENTS passed on out-of-range stats (mode %u level %u counters %#x flags %#x)",
                  name, cl[i].mode, cl[i].last_level, cl[i].counters_present, cl[i].flags);
    bool seen = n >= 2;                 /* the client kept all along, and this one */
    free(cl);
    E2E_CHECK(seen, "%s: not in CLIENTS", name);
    struct hakmem_ctl_req q;
    proto_ctl_req_init(&q, HAKMEM_CTL_METRICS);
    static char text[1 << 17];
    rc = e2e_ctl(D.rtdir, &q, 5000, NULL, NULL, text, sizeof(text), NULL);
    E2E_CHECK(rc == 0, "%s: METRICS failed: %s", name, strerror(-rc));
    E2E_REQUIRE(e2e_daemon_alive(&D), "%s: hakmemd died", name);
    e2e_log("  %-44s -> welcome; CLIENTS and METRICS fine", name);
    if (s >= 0)
        close(s);
    munmap(pg, 4096);
}

static void scribble_magic(struct hakmem_stats_page *pg)
{
    pg->magic = 0xdeadbeef;
    pg->size = 0xffffffff;
}

static void scribble_seq(struct hakmem_stats_page *pg)
{
    atomic_store(&pg->seq, 1);          /* a writer that never finishes */
}

static void scribble_fields(struct hakmem_stats_page *pg)
{
    atomic_store(&pg->mode, 77);
    atomic_store(&pg->last_level, 99);
    atomic_store(&pg->ncounters, 1000);
    atomic_store(&pg->flags, 0xff);
}

static void scribble_size(struct hakmem_stats_page *pg)
{
    pg->size = 1u << 30;                /* claims more than the memfd holds */
}

int main(int argc, char **argv)
{
    e2e_init(argc, argv, "e2e-malformed-hello", 55);
    char rt[160];
    snprintf(rt, sizeof(rt), "%s/rt", e2e_dir());
    const char *args[] = { "--sources", "none", NULL };
    e2e_daemon_start_or_fail(&D, rt, args);

    struct hakmem_welcome w;
    int res;
    keep_sock = e2e_register(rt, 2000, &w, &res);
    E2E_REQUIRE(keep_sock >= 0, "a well-formed hello got %s", e2e_reply_name(res));
    base_fds = e2e_daemon_nfds_settled(&D);
    E2E_REQUIRE(base_fds > 0, "cannot count hakmemd's fds");
    e2e_log("hakmemd %d up, %d fds with one client", (int)D.pid, base_fds);

    struct hakmem_hello good, h;
    e2e_hello(&good, true, 4096);
    int mfd = memfd_or_fail(4096, SEALS);

    e2e_log("malformed messages:");
    h = good;
    h.magic = HAKMEM_WELCOME_MAGIC;
    hello_case("wrong magic", &h, &mfd, 1, X_REFUSE, -EBADMSG);
    h = good;
    h.magic = 0;
    hello_case("zero magic", &h, &mfd, 1, X_REFUSE, -EBADMSG);
    h = good;
    h.version = HAKMEM_PROTO_VERSION + 1;
    hello_case("wrong version", &h, &mfd, 1, X_REFUSE, -EPROTONOSUPPORT);
    h = good;
    h.version = 0;
    hello_case("version 0", &h, &mfd, 1, X_REFUSE, -EPROTONOSUPPORT);
    send_case("truncated to 20 bytes", &good, 20, &mfd, 1, X_REFUSE, -EBADMSG);
    send_case("truncated to 8 bytes (half a header)", &good, 8, &mfd, 1, X_REFUSE, -EBADMSG);
    send_case("one byte", &good, 1, NULL, 0, X_REFUSE, -EBADMSG);
    send_case("empty datagram", &good, 0, NULL, 0, X_DROP, 0);
    send_case("empty datagram with a memfd", &good, 0, &mfd, 1, X_DROP, 0);
    {
        int four[4] = { mfd, mfd, mfd, mfd };
        send_case("empty datagram with 4 fds", &good, 0, four, 4, X_DROP, 0);
    }
    h = good;
    h.size = 63;
    hello_case("size field 63 for 64 bytes", &h, &mfd, 1, X_REFUSE, -EBADMSG);
    h = good;
    h.size = HAKMEM_MSG_MAX;
    hello_case("size field 4096 for 64 bytes", &h, &mfd, 1, X_REFUSE, -EBADMSG);
    h = good;
    h.size = 0;
    hello_case("size field 0", &h, &mfd, 1, X_REFUSE, -EBADMSG);
    {
        static unsigned char big[200000];
        memset(big, 0xa5, sizeof(big));
        struct hakmem_hello *bh = (struct hakmem_hello *)big;
        *bh = good;
        bh->size = 128;
        send_case("128 bytes, size field 128", big, 128, &mfd, 1, X_REFUSE, -EMSGSIZE);
        bh->size = HAKMEM_MSG_MAX;
        send_case("4096 bytes (HAKMEM_MSG_MAX), size 4096", big, HAKMEM_MSG_MAX, &mfd, 1, X_REFUSE,
                  -EMSGSIZE);
        bh->size = HAKMEM_MSG_MAX + 1;
        send_case("4097 bytes (> HAKMEM_MSG_MAX)", big, HAKMEM_MSG_MAX + 1, &mfd, 1, X_REFUSE,
                  -EMSGSIZE);
        bh->size = 65536;
        send_case("65536 bytes", big, 65536, &mfd, 1, X_REFUSE, -EMSGSIZE);
        bh->size = sizeof(big);
        send_case("200000 bytes", big, sizeof(big), NULL, 0, X_REFUSE, -EMSGSIZE);
    }
    h = good;
    h.flags = 0x80 | HAKMEM_HELLO_F_STATS;
    hello_case("unknown flag", &h, &mfd, 1, X_REFUSE, -EINVAL);
    h = good;
    h.mode = 5;
    hello_case("mode 5", &h, &mfd, 1, X_REFUSE, -EINVAL);
    h = good;
    memset(h.comm, 'x', sizeof(h.comm));
    hello_case("comm without NUL", &h, &mfd, 1, X_REFUSE, -EINVAL);
    h = good;
    h.stats_size = 0;
    hello_case("stats flag with stats_size 0", &h, &mfd, 1, X_REFUSE, -EINVAL);
    h = good;
    h.stats_size = HAKMEM_STATS_MAX_SIZE + 4096;
    hello_case("stats_size above HAKMEM_STATS_MAX_SIZE", &h, &mfd, 1, X_REFUSE, -EINVAL);
    h = good;
    h.stats_size = 8192;
    hello_case("stats_size larger than the memfd", &h, &mfd, 1, X_REFUSE, -EINVAL);
    {
        struct hakmem_hello nf;
        e2e_hello(&nf, false, 0);
        nf.stats_size = 4096;
        hello_case("stats_size without the stats flag", &nf, &mfd, 1, X_REFUSE, -EINVAL);
    }

    shim_registers("malformed messages");
    e2e_log("stats fds:");
    hello_case("stats flag, no fd", &good, NULL, 0, X_REFUSE, -EBADMSG);
    {
        int fd = memfd_or_fail(4096, 0);
        hello_case("memfd not sealed", &good, &fd, 1, X_REFUSE, -EPERM);
        close(fd);
        fd = memfd_or_fail(4096, F_SEAL_SHRINK);
        hello_case("memfd sealed against shrink only", &good, &fd, 1, X_REFUSE, -EPERM);
        close(fd);
        fd = memfd_or_fail(4096, F_SEAL_GROW);
        hello_case("memfd sealed against grow only", &good, &fd, 1, X_REFUSE, -EPERM);
        close(fd);
        fd = memfd_create("e2e-noseal", MFD_CLOEXEC);  /* sealing not allowed: F_SEAL_SEAL */
        if (fd < 0 || ftruncate(fd, 4096) != 0)
            e2e_fail("memfd: %s", strerror(errno));
        hello_case("memfd without MFD_ALLOW_SEALING", &good, &fd, 1, X_REFUSE, -EPERM);
        close(fd);
        h = good;
        h.stats_size = sizeof(struct hakmem_stats_page);
        fd = memfd_or_fail(100, SEALS);
        hello_case("sealed memfd of 100 bytes (too small)", &h, &fd, 1, X_REFUSE, -EINVAL);
        close(fd);
        fd = memfd_or_fail(0, SEALS);
        hello_case("sealed memfd of 0 bytes", &h, &fd, 1, X_REFUSE, -EINVAL);
        close(fd);
        fd = memfd_or_fail(1u << 20, SEALS);
        hello_case("sealed memfd of 1 MiB (too large)", &good, &fd, 1, X_REFUSE, -EINVAL);
        close(fd);
        fd = memfd_or_fail(HAKMEM_STATS_MAX_SIZE + 1, SEALS);
        hello_case("sealed memfd of 64 KiB + 1", &good, &fd, 1, X_REFUSE, -EINVAL);
        close(fd);
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            e2e_fail("pipe: %s", strerror(errno));
        hello_case("a pipe", &good, &p[0], 1, X_REFUSE, -EINVAL);
        close(p[0]);
        close(p[1]);
        fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        hello_case("/dev/zero", &good, &fd, 1, X_REFUSE, -EINVAL);
        close(fd);
        fd = open(e2e_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        hello_case("a directory", &good, &fd, 1, X_REFUSE, -EINVAL);
        close(fd);
        char path[256];
        snprintf(path, sizeof(path), "%s/plainfile", e2e_dir());
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, 4096) != 0)
            e2e_fail("%s: %s", path, strerror(errno));
        hello_case("a regular file (not a memfd)", &good, &fd, 1, X_REFUSE, 0);
        close(fd);
        fd = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int shm = fd >= 0 ? openat(fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600) : -1;
        if (fd >= 0)
            close(fd);
        if (shm >= 0 && ftruncate(shm, 4096) == 0)
            hello_case("a tmpfs file (O_TMPFILE in /dev/shm)", &good, &shm, 1, X_REFUSE, -EPERM);
        if (shm >= 0)
            close(shm);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
            e2e_fail("socketpair: %s", strerror(errno));
        hello_case("a socket", &good, &sv[0], 1, X_REFUSE, -EINVAL);
        close(sv[0]);
        close(sv[1]);
        fd = memfd_create("e2e-huge", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
        if (fd >= 0) {
            if (ftruncate(fd, 2u << 20) == 0 && fcntl(fd, F_ADD_SEALS, SEALS) == 0)
                hello_case("a sealed hugetlb memfd of 2 MiB", &good, &fd, 1, X_REFUSE, -EINVAL);
            close(fd);
        }
    }

    shim_registers("bad stats fds");
    e2e_log("several fds:");
    {
        int two[2] = { mfd, memfd_or_fail(4096, SEALS) };
        hello_case("two sealed memfds", &good, two, 2, X_REFUSE, -EBADMSG);
        int same[2] = { mfd, mfd };
        hello_case("the same memfd twice", &good, same, 2, X_REFUSE, -EBADMSG);
        int many[40];
        for (int i = 0; i < 40; i++)
            many[i] = two[i & 1];
        /* more than the daemon's control buffer holds: MSG_CTRUNC, the
         * kernel drops the rest; none may stay open in the daemon */
        hello_case("40 fds (control data truncated)", &good, many, 40, X_REFUSE, 0);
        close(two[1]);
        struct hakmem_hello nf;
        e2e_hello(&nf, false, 0);
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            e2e_fail("pipe: %s", strerror(errno));
        hello_case("no stats flag but two fds", &nf, p, 2, X_REFUSE, -EBADMSG);
        close(p[0]);
        close(p[1]);
    }

    shim_registers("several fds");
    e2e_log("after the hello:");
    {
        int s = conn();
        e2e_send(s, &good, sizeof(good), &mfd, 1);
        struct hakmem_welcome ww;
        int rfd;
        int r = e2e_recv_reply(s, 2000, &ww, &rfd);
        if (rfd >= 0)
            close(rfd);
        E2E_CHECK(r == E2E_WELCOME, "hello before garbage: %s", e2e_reply_name(r));
        static const char junk[] = "garbage after the hello";
        e2e_send(s, junk, sizeof(junk), NULL, 0);
        ncases++;
        E2E_CHECK(e2e_wait_eof(s, 2000), "garbage after the hello: still connected");
        close(s);
        e2e_log("  %-44s -> welcome, then dropped", "garbage after the hello");

        /* the same without waiting for the welcome in between */
        unsigned char zero = 0;
        s = conn();
        e2e_send(s, &good, sizeof(good), &mfd, 1);
        e2e_send(s, &zero, 1, NULL, 0);
        finish("hello + 1 byte, back to back", s, X_WELCOME_DROP, 0);
        s = conn();
        e2e_send(s, &good, sizeof(good), &mfd, 1);
        e2e_send(s, &good, sizeof(good), &mfd, 1);
        finish("two hellos, back to back", s, X_WELCOME_DROP, 0);
        s = conn();
        e2e_send(s, &good, sizeof(good), &mfd, 1);
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            e2e_fail("pipe: %s", strerror(errno));
        e2e_send(s, &zero, 1, p, 2);    /* fds after the hello must be closed too */
        close(p[0]);
        close(p[1]);
        finish("hello, then a byte with two fds", s, X_WELCOME_DROP, 0);
        s = conn();
        e2e_send(s, &good, sizeof(good), &mfd, 1);
        shutdown(s, SHUT_WR);
        finish("hello, then shutdown(SHUT_WR)", s, X_WELCOME_DROP, 0);
        s = conn();
        close(s);
        ncases++;
        e2e_sleep_ms(50);
        E2E_REQUIRE(e2e_daemon_alive(&D), "connect and close: hakmemd died");
    }

    shim_registers("traffic after the hello");
    e2e_log("random datagrams (500, seeded):");
    {
        unsigned seed = 12345;
        static unsigned char buf[HAKMEM_MSG_MAX + 64];
        int refused = 0, dropped = 0, welcomed = 0;
        for (int i = 0; i < 500; i++) {
            size_t len = (size_t)(rand_r(&seed) % 3 == 0 ? rand_r(&seed) % (HAKMEM_MSG_MAX + 64)
                                                           : rand_r(&seed) % 96);
            for (size_t k = 0; k < len; k++)
                buf[k] = (unsigned char)rand_r(&seed);
            if (len >= 12 && rand_r(&seed) % 2) {
                /* a plausible header, so that the checks past it run */
                memcpy(buf, &good, len < sizeof(good) ? len : sizeof(good));
                for (int flips = 1 + rand_r(&seed) % 3; flips > 0; flips--)
                    buf[(size_t)rand_r(&seed) % (len < 64 ? len : 64)] ^= (unsigned char)(1u << (rand_r(&seed) % 8));
            }
            int s = conn();
            int withfd = rand_r(&seed) % 2;
            e2e_send(s, buf, len, withfd ? &mfd : NULL, withfd);
            struct hakmem_welcome ww;
            int rfd;
            int r = e2e_recv_reply(s, 2000, &ww, &rfd);
            if (rfd >= 0)
                close(rfd);
            refused += r == E2E_REFUSED;
            dropped += r == E2E_EOF;
            welcomed += r == E2E_WELCOME;
            E2E_CHECK(r != E2E_TIMEOUT && r != E2E_BADREPLY, "random datagram %d (%zu bytes): %s", i,
                      len, e2e_reply_name(r));
            close(s);
        }
        ncases += 500;
        E2E_REQUIRE(e2e_daemon_alive(&D), "random datagrams: hakmemd died");
        int nfds = -1;
        for (int i = 0; i < 100 && (nfds = e2e_daemon_nfds(&D)) != base_fds; i++)
            e2e_sleep_ms(10);
        E2E_CHECK(nfds == base_fds, "random datagrams: hakmemd has %d fds open, %d before (leak)",
                  nfds, base_fds);
        if (nfds != base_fds)
            base_fds = nfds;
        e2e_log("  500 random datagrams: %d refused, %d dropped, %d welcomed (valid by chance)",
                refused, dropped, welcomed);
        int s = e2e_register(rt, 2000, &w, &res);
        E2E_CHECK(s >= 0, "random datagrams: a good client afterwards got %s", e2e_reply_name(res));
        if (s >= 0)
            close(s);
    }

    shim_registers("random datagrams");
    e2e_log("hostile stats pages (sealed, valid hello, garbage inside):");
    hostile_page("page with a wrong magic and size", scribble_magic);
    hostile_page("page whose seqlock stays odd", scribble_seq);
    hostile_page("page with out-of-range fields", scribble_fields);
    hostile_page("page claiming 1 GiB", scribble_size);

    shim_registers("hostile stats pages");
    e2e_log("lenient cases (reported, not failures):");
    {
        struct hakmem_hello nf;
        e2e_hello(&nf, false, 0);
        int s = conn();
        e2e_send(s, &nf, sizeof(nf), &mfd, 1);
        struct hakmem_welcome ww;
        int rfd;
        int r = e2e_recv_reply(s, 2000, &ww, &rfd);
        if (rfd >= 0)
            close(rfd);
        e2e_log("  %-44s -> %s", "memfd attached, stats flag not set", e2e_reply_name(r));
        close(s);
        E2E_REQUIRE(e2e_daemon_alive(&D), "hakmemd died");
    }

    /* fds back to the baseline, the client kept all along still registered */
    int nfds = -1;
    for (int i = 0; i < 100 && (nfds = e2e_daemon_nfds(&D)) != base_fds; i++)
        e2e_sleep_ms(10);
    E2E_CHECK(nfds == base_fds, "hakmemd has %d fds open at the end, %d at the start", nfds, base_fds);
    if (nfds != base_fds)
        e2e_daemon_list_fds(&D);
    E2E_CHECK(e2e_find_client(rt, getpid(), NULL), "the client registered at the start is gone");
    E2E_CHECK(!e2e_wait_eof(keep_sock, 0), "the daemon dropped the client registered at the start");

    shim_registers("everything");

    close(mfd);
    close(keep_sock);
    int st = e2e_daemon_stop(&D, SIGTERM, 5000);
    E2E_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "hakmemd did not stop cleanly on SIGTERM");
    /* logged or counted by the rate limit (its summaries are out once it stopped) */
    int bad = e2e_log_count_msgs(&D, "bad hello");
    e2e_log("%d cases; %d refusals seen; %d 'bad hello' messages (%d lines) in the daemon's log",
            ncases, nrefused, bad, e2e_log_count(&D, "bad hello"));
    E2E_CHECK(bad >= nrefused, "fewer 'bad hello' log messages (%d) than refusals (%d)", bad, nrefused);
    e2e_done();
}
