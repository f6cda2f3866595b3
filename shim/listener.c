/* listener.c: the daemon's voice inside the process.
 *
 * A thread, started lazily (from the constructor, or asked for by an
 * allocation slow path once hakmemd's socket appears and started at the
 * next safe point, see helper.c),
 * that registers with hakmemd (hello with our stats page, welcome with the
 * read-only ring), waits on the ring's futex word, and applies the level
 * that concerns this process through hk_apply_level(). It keeps the stats
 * page up to date, reconnects with backoff when the daemon goes away or
 * restarts, and goes back to the start mode when the daemon's heartbeat
 * has been silent for HAKMEM_DAEMON_TIMEOUT_MS.
 *
 * Without a daemon it follows systemd's memory-pressure protocol when the
 * service manager provides it ($MEMORY_PRESSURE_WATCH: a PSI trigger on
 * the service's cgroup): an event is MEDIUM, a calm period brings NONE.
 * With a daemon connected, the daemon wins.
 *
 * It never takes an allocator lock itself except through hk_apply_level,
 * and allocation paths never wait for it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "hk_internal.h"
#include "ring.h"

_Static_assert(HAKMEM_LEVEL_CRITICAL == 3 && HAKMEM_LEVEL_COUNT == 4, "levels agree with proto");

#define HK_BACKOFF_MIN_MS   100
#define HK_BACKOFF_MAX_MS   5000
#define HK_SESSION_STABLE_NS 5000000000ull /* a session this long was a good one: after
                                               it, reconnect at once; a shorter one (a
                                               ring that says CLOSED, a daemon that drops
                                               us) counts as a failure and backs off */
#define HK_POLL_MS          1000     /* stats page refresh, liveness checks */
#define HK_WELCOME_MS       2000     /* wait for the welcome */
#define HK_MP_CALM_MS       10000    /* systemd protocol: calm before NONE */
#define HK_START_CHECK_NS   2000000000ull /* slow paths look for the socket */

_Atomic bool hk_lst_restart;
static _Atomic uint64_t hk_lst_next_check;

/* Session state: the listener thread's alone. */
struct session {
    int sock;                           /* hakmemd.sock, -1 when not connected */
    void *ring_mem;
    size_t ring_len;
    struct ring ring;
    struct ring_reader rd;
    uint64_t cgroup_key, pid_key;
    struct hakmem_stats_page *stats;
    size_t stats_len;
    int stats_fd;
};
static struct session hk_sess = { .sock = -1, .stats_fd = -1 };

static int hk_lst_level;                /* last level applied by us */
static int hk_lst_said;                 /* the failure last logged (negative errno); 0 after
                                           a good session, so each cause is said once */
static unsigned hk_lst_short;           /* rings found closed at open, in a row */
static uint64_t hk_lst_contact_ns;      /* last sign of life from the daemon */
static uint64_t hk_lst_timeout_ns;      /* silence that means "gone" (session_run) */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Waits end early when the helpers are parked (helper.c). */
static void sleep_ms(unsigned ms)
{
    hk_helper_poll(-1, 0, (int)ms);
}

static void stats_update(void);

/* Apply a level once, and show it in the stats page at once. */
static void apply(int level)
{
    if (level == hk_lst_level)
        return;
    hk_lst_level = level;
    hk_apply_level(level);
    stats_update();
}

/* ---- the stats page ---- */

static int stats_open(void)
{
    size_t len = (sizeof(struct hakmem_stats_page) + HK_PAGE - 1) & ~(size_t)(HK_PAGE - 1);
    int fd = memfd_create("hakmem-stats", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)len) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    void *p = hk_os_map_shared(fd, len, true);
    if (!p) {
        int e = -errno;
        close(fd);
        return e;
    }
    proto_stats_init(p, len, (uint32_t)getpid());
    hk_sess.stats = p;
    hk_sess.stats_len = len;
    hk_sess.stats_fd = fd;
    return 0;
}

static void stats_update(void)
{
    if (!hk_sess.stats)
        return;
    struct proto_stats s = {
        .pid = (uint32_t)getpid(),
        .mode = (uint32_t)hakmem_get_mode(),
        .last_level = (uint32_t)hk_lst_level,
        .present = (UINT32_C(1) << HAKMEM_COUNTER_COUNT) - 1,
        .flags = (hk_opt.lean ? HAKMEM_STATS_F_LEAN_ENV : 0) |
                 (hk_sess.sock >= 0 ? HAKMEM_STATS_F_DAEMON : 0),
        .updated_ns = now_ns(),
    };
    /* the page's counter i is the i-th of HAKMEM_COUNTERS: one list */
#define HK_PAGE_CTR(name, doc) \
    s.counter[HAKMEM_COUNTER_ID(name)] = atomic_load_explicit(&hk_ctr.name, memory_order_relaxed);
    HAKMEM_COUNTERS(HK_PAGE_CTR)
#undef HK_PAGE_CTR
    proto_stats_write(hk_sess.stats, &s);
}

/* ---- the session with hakmemd ---- */

static void session_close(void)
{
    if (hk_sess.ring_mem)
        hk_os_unmap(hk_sess.ring_mem, hk_sess.ring_len);
    hk_sess.ring_mem = NULL;
    if (hk_sess.sock >= 0)
        close(hk_sess.sock);
    hk_sess.sock = -1;
}

static int send_hello(int sock)
{
    struct hakmem_hello h;
    char comm[HAKMEM_COMM_LEN] = "";
    int cfd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    if (cfd >= 0) {
        ssize_t n = read(cfd, comm, sizeof(comm) - 1);
        close(cfd);
        if (n > 0)
            comm[n - (comm[n - 1] == '\n')] = '\0';
    }
    proto_hello_init(&h, (uint32_t)getpid(),
                     HAKMEM_HELLO_F_STATS | (hk_opt.lean ? HAKMEM_HELLO_F_LEAN_ENV : 0),
                     (uint32_t)hk_sess.stats_len, (uint32_t)hakmem_get_mode(), comm);
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } c;
    struct iovec iov = { &h, sizeof(h) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = c.buf, .msg_controllen = sizeof(c.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &hk_sess.stats_fd, sizeof(int));
    return sendmsg(sock, &m, MSG_NOSIGNAL) == (ssize_t)sizeof(h) ? 0 : -errno;
}

/* Receive the welcome and its ring fd; *ring_fd = -1 when none came. */
static int recv_welcome(int sock, struct hakmem_welcome *w, int *ring_fd)
{
    *ring_fd = -1;
    if (!(hk_helper_poll(sock, POLLIN, HK_WELCOME_MS) & (POLLIN | POLLHUP | POLLERR)))
        return -ETIMEDOUT;              /* or parked */
    unsigned char buf[HAKMEM_MSG_MAX];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } c;
    struct iovec iov = { buf, sizeof(buf) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = c.buf, .msg_controllen = sizeof(c.buf) };
    ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && errno == ECONNRESET)   /* refused with our hello unread: said once, */
        n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT); /* then the refusal */
    if (n < 0)
        return -errno;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len >= CMSG_LEN(sizeof(int)))
            memcpy(ring_fd, CMSG_DATA(cm), sizeof(int));
    if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        return -EMSGSIZE;
    return proto_welcome_check(buf, (size_t)n, w);
}

/* In secure mode (a setuid, setgid or file-capability program: its
 * environment belongs to whoever ran it), hakmemd is only the root-owned
 * socket in the default runtime dir, in a root-owned directory nobody
 * else may write, with a root peer. -EPERM otherwise. */
static int secure_check_path(const char *dir, const char *sockpath)
{
    struct stat d, so;
    if (lstat(dir, &d) != 0 || lstat(sockpath, &so) != 0)
        return -errno;
    if (!S_ISDIR(d.st_mode) || d.st_uid != 0 || (d.st_mode & 022) || !S_ISSOCK(so.st_mode) ||
        so.st_uid != 0)
        return -EPERM;
    return 0;
}

static int secure_check_peer(int sock)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
        return -errno;
    return cr.uid == 0 ? 0 : -EPERM;
}

/* Why a session could not start, for the message (say_failure). */
enum open_failure {
    OPEN_GONE,          /* no daemon, or one going away: normal, said nowhere */
    OPEN_REFUSED,       /* the welcome's status */
    OPEN_BROKEN,        /* a welcome or ring that breaks the protocol */
    OPEN_CLOSED,        /* a ring that is not LIVE */
    OPEN_INSECURE,      /* secure mode: not root's socket */
};

/* Connect, say hello, map the ring. 0, or a negative errno with *why. */
static int session_open(enum open_failure *why)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    hk_fmt(a.sun_path, sizeof(a.sun_path), "%s/hakmemd.sock", hk_opt.runtime_dir);
    int rc = 0, ring_fd = -1;
    *why = OPEN_GONE;
    if (hk_secure && (rc = secure_check_path(hk_opt.runtime_dir, a.sun_path)) < 0) {
        *why = rc == -EPERM ? OPEN_INSECURE : OPEN_GONE;
        return rc;
    }
    int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return -errno;
    struct hakmem_welcome w;
    if (connect(sock, (struct sockaddr *)&a, sizeof(a)) != 0)
        rc = -errno;
    if (rc == 0 && hk_secure && (rc = secure_check_peer(sock)) == -EPERM)
        *why = OPEN_INSECURE;
    if (rc == 0 && !hk_sess.stats)
        rc = stats_open();
    if (rc == 0)
        rc = send_hello(sock);
    if (rc == 0 || rc == -EPIPE || rc == -ECONNRESET) {
        /* refused at once, the daemon may have closed before our hello:
         * its reason is still there to read */
        int wr = recv_welcome(sock, &w, &ring_fd);
        rc = rc == 0 || wr == 0 ? wr : rc;
    }
    if (rc == -EBADMSG || rc == -EINVAL || rc == -EMSGSIZE || rc == -EPROTONOSUPPORT)
        *why = OPEN_BROKEN;             /* the welcome itself did not check out */
    if (rc == 0 && w.status != 0) {
        rc = w.status;
        *why = OPEN_REFUSED;
    }
    uint64_t size = 0;
    if (rc == 0 && (w.version != HAKMEM_PROTO_VERSION || ring_fd < 0))
        rc = -EPROTO;                   /* another version than our hello's, or no ring */
    if (rc == 0)
        rc = proto_memfd_check(ring_fd, sizeof(struct hakmem_ring_hdr), HAKMEM_RING_MAX_SIZE, &size);
    if (rc == 0 && size < w.ring_size)
        rc = -EPROTO;
    if (rc < 0 && *why == OPEN_GONE && ring_fd >= 0)
        *why = OPEN_BROKEN;             /* welcomed, but with no usable ring */
    void *mem = NULL;
    if (rc == 0 && !(mem = hk_os_map_shared(ring_fd, (size_t)w.ring_size, false)))
        rc = -errno;
    if (ring_fd >= 0)
        close(ring_fd);
    if (rc == 0) {
        hk_sess.ring_mem = mem;
        hk_sess.ring_len = (size_t)w.ring_size;
        hk_sess.sock = sock;
        rc = ring_validate(&hk_sess.ring, mem, (size_t)w.ring_size);
        if (rc == 0)
            rc = ring_reader_init(&hk_sess.rd, &hk_sess.ring);
        if (rc == 0 && ring_state_word(&hk_sess.ring) != HAKMEM_RING_STATE_LIVE)
            rc = -ESHUTDOWN;            /* closed (or garbage) already */
        if (rc != 0) {
            session_close();
            *why = rc == -ESHUTDOWN ? OPEN_CLOSED : OPEN_BROKEN;
            return rc;
        }
        hk_sess.cgroup_key = w.cgroup_key;
        hk_sess.pid_key = w.pid_key;
        return rc;
    }
    close(sock);
    return rc;
}

/* The level the ring says applies to us now. */
static int resolve_level(void)
{
    struct hakmem_ring_msg m;
    if (ring_resolve(&hk_sess.ring, hk_sess.cgroup_key, hk_sess.pid_key, &m) != 0 ||
        m.level >= HAKMEM_LEVEL_COUNT)
        return HAKMEM_LEVEL_NONE;
    return m.level;
}

/* Silence that means the daemon is gone: several of the heartbeats it
 * announces now (a reload may change the period), whatever the timeout
 * says, since a daemon that beats slowly is alive. */
static uint64_t session_timeout(void)
{
    uint64_t timeout = (uint64_t)hk_opt.daemon_timeout_ms * 1000000u;
    uint64_t period = ring_heartbeat_period(&hk_sess.ring);
    return timeout < 3 * period ? 3 * period : timeout;
}

/* Follow the ring until the daemon goes away. Every value in the ring is
 * untrusted: a state other than LIVE ends the session (the caller backs
 * off), and every loop here waits on the futex or its poll timeout. */
static void session_run(void)
{
    hk_lst_contact_ns = now_ns();
    hk_lst_timeout_ns = session_timeout();
    apply(resolve_level());
    for (;;) {
        stats_update();
        uint32_t f = ring_futex_value(&hk_sess.ring);
        /* Read the state first: the daemon's last messages come before
         * CLOSED, and are drained below before leaving. */
        bool closed = ring_state_word(&hk_sess.ring) != HAKMEM_RING_STATE_LIVE;
        bool changed = false;
        struct hakmem_ring_msg m;
        int r;
        while ((r = ring_read_next(&hk_sess.rd, &m)) == RING_OK)
            changed |= ring_msg_applies(&m, hk_sess.cgroup_key, hk_sess.pid_key);
        if (r == RING_LAPPED) {
            ring_reader_resync(&hk_sess.rd);
            changed = true;
        }
        uint64_t now = now_ns();
        uint64_t timeout = hk_lst_timeout_ns = session_timeout();
        bool alive = ring_heartbeat_alive(&hk_sess.ring, now, timeout);
        if (alive)
            hk_lst_contact_ns = now;
        if (changed || (alive && hk_lst_level != resolve_level()))
            apply(alive ? resolve_level() : HAKMEM_LEVEL_NONE);
        else if (!alive)
            apply(HAKMEM_LEVEL_NONE);   /* the daemon hangs: start mode */
        if (closed || hk_helper_parking())
            return;
        struct pollfd p = { hk_sess.sock, POLLIN, 0 };
        if (poll(&p, 1, 0) > 0)         /* EOF or anything unexpected */
            return;
        ring_wait(&hk_sess.ring, f, (uint64_t)HK_POLL_MS * 1000000u);
    }
}

/* ---- systemd's memory-pressure protocol ---- */

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static size_t b64decode(const char *in, unsigned char *out, size_t cap)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        int v = b64val(*in);
        if (v < 0)
            return 0;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8 && n < cap) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

static int mp_open(void)
{
    int fd = open(hk_mp_watch, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        hk_log("MEMORY_PRESSURE_WATCH %s: %s; not following it", hk_mp_watch, strerror(errno));
        hk_mp_watch[0] = '\0';
        return -1;
    }
    unsigned char trig[193];
    size_t n = b64decode(hk_mp_write, trig, sizeof(trig) - 1);
    if (n > 0 && trig[n - 1] != '\0')  /* the kernel reads a C string */
        trig[n++] = '\0';
    if (n > 0 && write(fd, trig, n) != (ssize_t)n) {
        hk_log("MEMORY_PRESSURE_WATCH %s: cannot arm the trigger: %s; not following it",
               hk_mp_watch, strerror(errno));
        close(fd);
        hk_mp_watch[0] = '\0';         /* once is enough */
        return -1;
    }
    return fd;
}

/* Wait up to ms for a pressure event on fd, mapping it to levels. */
static void mp_wait(int fd, unsigned ms, uint64_t *last_event)
{
    if (hk_helper_poll(fd, POLLPRI, (int)ms) & POLLPRI) {
        *last_event = now_ns();
        apply(HAKMEM_LEVEL_MEDIUM);
    } else if (hk_lst_level != HAKMEM_LEVEL_NONE &&
               now_ns() - *last_event > (uint64_t)HK_MP_CALM_MS * 1000000u) {
        apply(HAKMEM_LEVEL_NONE);
    }
}

/* ---- the thread ---- */

/* Say why we do not follow hakmemd, once per cause (a refusal repeats at
 * every retry; the log must not). A daemon that is not there, or that is
 * restarting, is normal and says nothing; a ring that is closed at once
 * is said the second time in a row (the first may be a daemon stopping). */
static void say_failure(enum open_failure why, int rc)
{
    if (why != OPEN_CLOSED)
        hk_lst_short = 0;
    if (why == OPEN_GONE || (why == OPEN_CLOSED && ++hk_lst_short < 2))
        return;
    int cause = (int)why << 16 | (-rc & 0xffff);
    if (cause == hk_lst_said)
        return;
    hk_lst_said = cause;
    switch (why) {
    case OPEN_REFUSED:
        if (rc == -EUSERS)
            hk_log("hakmemd refused this process: too many clients for uid %u; retrying now "
                   "and then", (unsigned)geteuid());
        else if (rc == -ENOSPC)
            hk_log("hakmemd refused this process: it serves as many clients as it may "
                   "(max_clients); retrying now and then");
        else if (rc == -EMFILE || rc == -ENFILE)
            hk_log("hakmemd refused this process: hakmemd is out of file descriptors; retrying "
                   "now and then");
        else if (rc == -EPROTONOSUPPORT)
            hk_log("hakmemd does not serve protocol version %d (it is older than this shim); "
                   "not following it until it is upgraded", HAKMEM_PROTO_VERSION);
        else
            hk_log("hakmemd refused this process: %s; retrying now and then", strerror(-rc));
        break;
    case OPEN_BROKEN:
        hk_log("hakmemd broke the protocol (%s); retrying with backoff", strerror(-rc));
        break;
    case OPEN_CLOSED:
        hk_log("hakmemd's ring is closed as soon as it is opened; retrying with backoff");
        break;
    case OPEN_INSECURE:
        hk_log("secure mode: %s/hakmemd.sock is not root's socket in a root-owned directory; "
               "not following it", hk_opt.runtime_dir);
        break;
    case OPEN_GONE:
        break;
    }
}

void *hk_listener_main(void *arg)
{
    unsigned backoff = HK_BACKOFF_MIN_MS;
    int mp_fd = -1;
    uint64_t mp_last = 0;
    for (;;) {
        if (hk_helper_parking()) {      /* helper.c: exit; started again later */
            if (mp_fd >= 0)
                close(mp_fd);
            atomic_store(&hk_lst_next_check, now_ns() + HK_START_CHECK_NS);
            return arg;
        }
        if (hk_opt.daemon) {
            enum open_failure why;
            int rc = session_open(&why);
            if (rc == 0) {
                uint64_t t0 = now_ns();
                session_run();
                session_close();
                if (now_ns() - t0 >= HK_SESSION_STABLE_NS) {
                    hk_lst_said = 0;    /* a good session: say the next failure again */
                    backoff = HK_BACKOFF_MIN_MS;
                    continue;           /* reconnect at once, then back off */
                }
                /* a short session (a daemon restarting, or one that closes
                 * at once): back off, say nothing */
            } else {
                say_failure(why, rc);
            }
        }
        /* No daemon (or one not to follow now). Past the heartbeat
         * timeout, back to the start mode (unless the service manager's
         * pressure protocol says otherwise); the wait below never sleeps
         * past that moment. */
        unsigned wait = backoff;
        if (hk_lst_contact_ns) {
            uint64_t gone = hk_lst_contact_ns + hk_lst_timeout_ns, now = now_ns();
            if (now >= gone) {
                hk_lst_contact_ns = 0;
                apply(HAKMEM_LEVEL_NONE);
            } else if ((gone - now) / 1000000u + 1 < wait) {
                wait = (unsigned)((gone - now) / 1000000u + 1);
            }
        }
        stats_update();
        if (hk_mp_watch[0] && mp_fd < 0)
            mp_fd = mp_open();
        if (mp_fd >= 0)
            mp_wait(mp_fd, wait, &mp_last);
        else
            sleep_ms(wait);
        backoff = backoff * 2 > HK_BACKOFF_MAX_MS ? HK_BACKOFF_MAX_MS : backoff * 2;
    }
    return arg;
}

static bool worth_starting(void)
{
    if (hk_mp_watch[0])
        return true;
    if (!hk_opt.daemon)
        return false;
    char path[HK_PATH_MAX + 16];
    hk_fmt(path, sizeof(path), "%s/hakmemd.sock", hk_opt.runtime_dir);
    struct stat st;
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Parking (helper.c): out of the wait on the ring's futex word (which we
 * cannot write; a wake-up that comes before the wait is repeated). */
void hk_listener_wake(void)
{
    const struct hakmem_ring_hdr *h = hk_sess.ring_mem ? hk_sess.ring.hdr : NULL;
    if (h)
        syscall(SYS_futex, (uint32_t *)(uintptr_t)&h->futex, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Ask for the thread (helper.c starts it at the next safe point) if
 * there is anything to listen to. */
void hk_listener_maybe_start(void)
{
    if (hk_helper_state(HK_HELPER_LISTENER) != HK_HELPER_OFF || !worth_starting())
        return;
    hk_helper_want(HK_HELPER_LISTENER);
    atomic_store_explicit(&hk_lst_restart, false, memory_order_relaxed);
}

/* From an allocation slow path: look for the daemon now and then. */
void hk_listener_poll(void)
{
    if (hk_helper_state(HK_HELPER_LISTENER) != HK_HELPER_OFF)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint64_t next = atomic_load_explicit(&hk_lst_next_check, memory_order_relaxed);
    if (now < next ||
        !atomic_compare_exchange_strong(&hk_lst_next_check, &next, now + HK_START_CHECK_NS))
        return;
    hk_listener_maybe_start();
}

/* The thread did not survive fork: drop the parent's session (the fds are
 * the parent's connection) and start again lazily. */
void hk_listener_after_fork_child(void)
{
    session_close();
    if (hk_sess.stats)
        hk_os_unmap(hk_sess.stats, hk_sess.stats_len);
    hk_sess.stats = NULL;
    if (hk_sess.stats_fd >= 0)
        close(hk_sess.stats_fd);
    hk_sess.stats_fd = -1;
    /* the parent followed hakmemd: so does the child, from its first
     * allocation of any kind on (called before helper.c forgets the
     * parent's threads) */
    atomic_store(&hk_lst_restart, hk_helper_state(HK_HELPER_LISTENER) != HK_HELPER_OFF);
    atomic_store(&hk_lst_next_check, 0);
}
