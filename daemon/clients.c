/* clients.c: the rendezvous socket (hakmemd.sock) and the client table.
 *
 * A client connects, sends one hello with its stats memfd, and gets one
 * welcome with the read-only ring fd and its cgroup key; then it keeps the
 * connection open for as long as it lives (its end is how we learn it
 * left). The daemon learns the client's pid, uid and cgroup from
 * SO_PEERCRED and /proc, never from the hello (works across pid and cgroup
 * namespaces). Every peer is untrusted: messages are bounded and checked,
 * memfds must be sealed and of a sane size, a client that says nothing in
 * time or sends anything after the hello is dropped, limits per uid, in
 * total and on descriptors (limits.c) keep one user from taking every
 * slot, and its name is cleaned to printable UTF-8. Hellos of protocol versions
 * HAKMEM_PROTO_VERSION_MIN.. are served, each welcomed in its own
 * version. Nothing here blocks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "log.h"
#include "manager.h"

#define HELLO_TIMEOUT_NS 5000000000ull  /* connected but silent: dropped */
#define HELLO_MAX_FDS 4 /* a hello carries one; more are closed, then refused */

/* Bind a SOCK_SEQPACKET listener at dir/name with the given mode (and
 * group, unless gid is (gid_t)-1), refusing to take over the socket of a
 * live daemon. Returns the fd or a negative errno. */
int listen_at(const char *dir, const char *name, mode_t mode, gid_t gid)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if ((size_t)snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", dir, name) >= sizeof(a.sun_path))
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (lstat(a.sun_path, &st) == 0) {
        int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&a, sizeof(a)) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            close(fd);
            return -EADDRINUSE;
        }
        unlink(a.sun_path);             /* left over by a daemon that died */
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        (gid != (gid_t)-1 && chown(a.sun_path, (uid_t)-1, gid) != 0) ||
        chmod(a.sun_path, mode) != 0 || listen(fd, 128) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int clients_listen(struct daemon *d)
{
    int fd = listen_at(d->cfg.runtime_dir, "hakmemd.sock", 0666, (gid_t)-1);
    if (fd < 0) {
        if (fd == -EADDRINUSE)
            log_err("another hakmemd is serving %s/hakmemd.sock", d->cfg.runtime_dir);
        else
            log_err("cannot listen on %s/hakmemd.sock: %s", d->cfg.runtime_dir, strerror(-fd));
        return fd;
    }
    d->rdv_fd = fd;
    d->rdv_tag = (struct ep_tag){ EP_RENDEZVOUS, NULL };
    return manager_epoll_add(d, fd, EPOLLIN, &d->rdv_tag);
}

static void client_free(struct daemon *d, struct client *c)
{
    if (c->welcomed)
        metrics_client_left(d, c);      /* its page, one last time */
    manager_epoll_del(d, c->fd);
    close(c->fd);
    if (c->stats)
        munmap(c->stats, c->stats_len);
    for (size_t i = 0; i < d->nclients; i++) {
        if (d->clients[i] == c) {
            d->clients[i] = d->clients[--d->nclients];
            break;
        }
    }
    if (c->ctl_mode != HAKMEM_CTL_MODE_AUTO)  /* its override goes with it */
        publisher_publish(&d->pub, HAKMEM_KEY_PID((uint32_t)c->pid), HAKMEM_LEVEL_NONE, 0,
                          HAKMEM_REASON_OPERATOR, now_ns());
    if (c->cgroup) {
        c->cgroup->nclients--;
        cgroup_put(d, c->cgroup);
    }
    if (c->welcomed)
        log_debug("client %d (%s) left", (int)c->pid, c->comm);
    manager_defer_free(d, c, &c->tag, NULL, NULL); /* an event for it may wait in this batch */
}

/* Refuse with a status and no fd, in the hello's version; the client
 * backs off and says why (the status is its only word). */
static void send_refusal_v(int fd, int status, uint32_t version)
{
    struct hakmem_welcome w;
    proto_welcome_init(&w, status);
    if (version >= HAKMEM_PROTO_VERSION_MIN && version <= HAKMEM_PROTO_VERSION)
        w.version = version;
    send(fd, &w, sizeof(w), MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Before closing a refused connection: read what the peer already sent,
 * so that the close does not reset its end before it reads the reason. */
void drain_input(int fd)
{
    unsigned char junk[HAKMEM_MSG_MAX];
    char cm[CMSG_SPACE(sizeof(int) * HELLO_MAX_FDS)];
    for (int i = 0; i < 4; i++) {
        struct iovec iov = { junk, sizeof(junk) };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm,
                            .msg_controllen = sizeof(cm) };
        if (recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
            return;
        for (struct cmsghdr *ch = CMSG_FIRSTHDR(&m); ch; ch = CMSG_NXTHDR(&m, ch))
            if (ch->cmsg_level == SOL_SOCKET && ch->cmsg_type == SCM_RIGHTS)
                for (size_t k = 0; k < (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
                    int f;
                    memcpy(&f, CMSG_DATA(ch) + k * sizeof(int), sizeof(int));
                    close(f);
                }
    }
}

/* A refusal before the hello is read (its version is not known yet: a
 * version of ours that every shim reads). */
static void refuse_client(int fd, int status, const char *why)
{
    (void)why;
    send_refusal_v(fd, status, HAKMEM_PROTO_VERSION_MIN);
    drain_input(fd);
}

/* accept4 on a listener. Out of descriptors, the pending connection is
 * taken with the spare descriptor, told why (refuse) and closed at once
 * (the peer backs off and retries), so that the loop neither spins on a
 * listener that stays readable nor floods the log. */
int accept_or_shed(struct daemon *d, int lfd, const char *what,
                   void (*refuse)(int fd, int status, const char *why), uint64_t *shed)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0 || (errno != EMFILE && errno != ENFILE))
        return fd;
    int e = errno;
    log_warning("%s: out of file descriptors (%s): refusing connections", what, strerror(e));
    if (d->spare_fd >= 0) {
        close(d->spare_fd);
        int drop = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (drop >= 0) {
            refuse(drop, -EMFILE, "hakmemd is out of file descriptors");
            close(drop);
            (*shed)++;
        }
        d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    errno = EAGAIN;
    return -1;
}

void clients_accept(struct daemon *d)
{
    for (unsigned batch = 0; batch < ACCEPT_BATCH; batch++) {
        int fd = accept_or_shed(d, d->rdv_fd, "hakmemd.sock", refuse_client,
                                &d->met.rejected[METRICS_DESCRIPTORS]);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warning("accept on hakmemd.sock: %m");
            return;
        }
        struct ucred cr;
        socklen_t len = sizeof(cr);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
            close(fd);
            continue;
        }
        char why[160];
        int rc = limits_client_admit(d, cr.uid, why, sizeof(why));
        if (rc < 0) {
            d->met.rejected[metrics_reason_of(rc)]++;
            log_warning("client %d (uid %u) refused: %s", (int)cr.pid, (unsigned)cr.uid, why);
            refuse_client(fd, rc, why);
            close(fd);
            continue;
        }
        if (d->nclients == d->cap_clients) {
            size_t cap = d->cap_clients ? d->cap_clients * 2 : 64;
            struct client **n = realloc(d->clients, cap * sizeof(*n));
            if (!n) {
                close(fd);
                continue;
            }
            d->clients = n;
            d->cap_clients = cap;
        }
        struct client *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->pid = cr.pid;
        c->uid = cr.uid;
        c->gid = cr.gid;
        c->connected_ns = now_ns();
        c->tag = (struct ep_tag){ EP_CLIENT, c };
        d->clients[d->nclients++] = c;
        if (manager_epoll_add(d, fd, EPOLLIN | EPOLLRDHUP, &c->tag) < 0)
            client_free(d, c);
    }
}

/* Receive the hello and its stats fd. */
static int recv_hello(struct client *c, struct hakmem_hello *h, int *stats_fd)
{
    unsigned char buf[HAKMEM_MSG_MAX];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * HELLO_MAX_FDS)];
    } cm;
    struct iovec iov = { buf, sizeof(buf) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
    *stats_fd = -1;
    ssize_t n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -errno;
    int extra = 0;
    for (struct cmsghdr *ch = CMSG_FIRSTHDR(&m); ch; ch = CMSG_NXTHDR(&m, ch)) {
        if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfd = (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(ch) + i * sizeof(int), sizeof(int));
            if (*stats_fd < 0)
                *stats_fd = fd;
            else {
                close(fd);              /* one fd is all we take */
                extra++;
            }
        }
    }
    /* from here on the caller owns *stats_fd, whatever is returned */
    if (n == 0)
        return *stats_fd >= 0 ? -EBADMSG : -ECONNRESET;
    /* the kernel truncates the descriptors it cannot install: with room
     * left in our buffer, that means we are out of descriptors */
    if ((m.msg_flags & MSG_CTRUNC) && 1 + extra < HELLO_MAX_FDS)
        return -EMFILE;
    if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        return -EMSGSIZE;
    if (extra)
        return -EBADMSG;
    return proto_hello_check(buf, (size_t)n, h);
}

/* Check and map a stats memfd read-only. */
static int map_stats(struct client *c, int fd, const struct hakmem_hello *h)
{
    uint64_t size;
    int rc = proto_memfd_check(fd, sizeof(struct hakmem_stats_page), HAKMEM_STATS_MAX_SIZE, &size);
    if (rc < 0)
        return rc;
    if (h->stats_size > size)
        return -EINVAL;
    void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    c->stats = p;
    c->stats_len = (size_t)size;
    return 0;
}

static int send_welcome(struct daemon *d, struct client *c, uint32_t version)
{
    struct hakmem_welcome w;
    proto_welcome_init(&w, 0);
    w.version = version;                /* the layout is the same in every version served */
    w.cgroup_key = c->key;
    w.pid_key = HAKMEM_KEY_PID((uint32_t)c->pid);
    w.ring_size = d->pub.size;
    w.heartbeat_period_ns = (uint64_t)d->cfg.heartbeat_ms * 1000000u;
    w.generation = d->pub.rp.ring.generation;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cm;
    struct iovec iov = { &w, sizeof(w) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
    struct cmsghdr *ch = CMSG_FIRSTHDR(&m);
    ch->cmsg_level = SOL_SOCKET;
    ch->cmsg_type = SCM_RIGHTS;
    ch->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(ch), &d->pub.ro_fd, sizeof(int));
    return sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)sizeof(w) ? 0 : -errno;
}

static int handle_hello(struct daemon *d, struct client *c)
{
    struct hakmem_hello h;
    int stats_fd, rc = recv_hello(c, &h, &stats_fd);
    if (rc == -EAGAIN && stats_fd < 0)
        return 0;
    if (rc == 0 && !!(h.flags & HAKMEM_HELLO_F_STATS) != (stats_fd >= 0))
        rc = -EBADMSG;                  /* the flag and the fd go together */
    if (rc == 0 && stats_fd >= 0)
        rc = map_stats(c, stats_fd, &h);
    if (stats_fd >= 0)
        close(stats_fd);
    if (rc == -ECONNRESET)
        return rc;                      /* left before saying anything */
    if (rc < 0) {
        d->met.rejected[metrics_reason_of(rc)]++;
        log_warning("client %d (uid %u): bad hello: %s", (int)c->pid, (unsigned)c->uid,
                    strerror(-rc));
        send_refusal_v(c->fd, rc, rc == -EPROTONOSUPPORT ? HAKMEM_PROTO_VERSION : h.version);
        return rc;
    }
    /* a name of the client's choosing: printable UTF-8 from here on */
    proto_clean_text(c->comm, sizeof(c->comm), h.comm);
    struct cgroup_memcg cg;
    rc = cgroup_memcg_of_pid("/proc", d->cfg.cgroup_root, &d->ns, c->pid, &cg);
    if (rc < 0) {
        d->met.rejected[METRICS_CGROUP]++;
        log_warning("client %d (%s): cannot find its memory cgroup: %s", (int)c->pid, c->comm,
                    rc == -EXDEV ? "it lies outside hakmemd's cgroup namespace and outside the "
                                   "hierarchy mounted under cgroup_root (mount the host's "
                                   "/sys/fs/cgroup there)" : strerror(-rc));
        send_refusal_v(c->fd, rc, h.version);
        return rc;
    }
    c->cgroup = cgroup_get(d, &cg);
    if (!c->cgroup) {
        d->met.rejected[METRICS_MEMORY]++;
        send_refusal_v(c->fd, -ENOMEM, h.version);
        return -ENOMEM;
    }
    c->cgroup->nclients++;
    c->key = cg.key;
    rc = send_welcome(d, c, h.version);
    if (rc < 0)
        return rc;
    c->welcomed = true;
    metrics_client_joined(d, c, h.mode);
    log_info("client %d (%s, uid %u, protocol %u) in %s", (int)c->pid, c->comm, (unsigned)c->uid,
             h.version, cg.path);
    /* its cgroup's level is in the ring's state table already; a new
     * cgroup is evaluated at once so that it has an entry */
    cgroup_evaluate(d, c->cgroup, now_ns());
    return 0;
}

void clients_event(struct daemon *d, struct client *c, uint32_t events)
{
    if (!c->welcomed) {
        if (!(events & EPOLLIN) || handle_hello(d, c) < 0)
            client_free(d, c);
        return;
    }
    if (events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)) {
        client_free(d, c);
        return;
    }
    if (events & EPOLLIN) {             /* nothing is expected after the hello */
        char b;
        ssize_t n = recv(c->fd, &b, 1, MSG_DONTWAIT);
        if (n != 0 && !(n < 0 && errno == EAGAIN))
            log_warning("client %d (%s): unexpected data after the hello; dropped", (int)c->pid, c->comm);
        if (!(n < 0 && errno == EAGAIN))
            client_free(d, c);
    }
}

/* Drop clients that connected and never said hello. */
void clients_sweep(struct daemon *d, uint64_t now)
{
    for (size_t i = 0; i < d->nclients;) {
        struct client *c = d->clients[i];
        if (!c->welcomed && now - c->connected_ns > HELLO_TIMEOUT_NS) {
            log_info("client %d: no hello in time; dropped", (int)c->pid);
            d->met.rejected[METRICS_TIMEOUT]++;
            client_free(d, c);          /* moves the last one into slot i */
            continue;
        }
        i++;
    }
}

void clients_close_all(struct daemon *d)
{
    while (d->nclients)
        client_free(d, d->clients[d->nclients - 1]);
    free(d->clients);
    d->clients = NULL;
}

struct client *client_by_pid(struct daemon *d, pid_t pid)
{
    for (size_t i = 0; i < d->nclients; i++)
        if (d->clients[i]->welcomed && d->clients[i]->pid == pid)
            return d->clients[i];
    return NULL;
}

int client_stats(const struct client *c, struct proto_stats *out)
{
    if (!c->stats)
        return -ENODATA;
    return proto_stats_read(c->stats, c->stats_len, out);
}
