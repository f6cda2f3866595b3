/* clients.c: the rendezvous socket (hakmemd.sock) and the client table.
 *
 * A client connects, sends one hello with its stats memfd, and gets one
 * welcome with the read-only ring fd and its cgroup key; then it keeps the
 * connection open for as long as it lives (its end is how we learn it
 * left). The daemon learns the client's pid, uid and cgroup from
 * SO_PEERCRED and /proc, never from the hello (works across pid and cgroup
 * namespaces). Every peer is untrusted: messages are bounded and checked,
 * memfds must be sealed and of a sane size, a client that says nothing in
 * time or sends anything after the hello is dropped, and limits per uid and
 * in total keep one user from taking every slot. Nothing here blocks.
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

/* Bind a SOCK_SEQPACKET listener at dir/name, refusing to take over the
 * socket of a live daemon. Returns the fd or a negative errno. */
int listen_at(const char *dir, const char *name, mode_t mode);
int listen_at(const char *dir, const char *name, mode_t mode)
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
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || chmod(a.sun_path, mode) != 0 ||
        listen(fd, 128) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int clients_listen(struct daemon *d)
{
    int fd = listen_at(d->cfg.runtime_dir, "hakmemd.sock", 0666);
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
    free(c);
}

static size_t clients_of_uid(struct daemon *d, uid_t uid)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nclients; i++)
        n += d->clients[i]->uid == uid;
    return n;
}

/* Refuse with a status and no fd; the client backs off. */
static void send_refusal(int fd, int status)
{
    struct hakmem_welcome w;
    proto_welcome_init(&w, status);
    send(fd, &w, sizeof(w), MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* accept4 on a listener. Out of descriptors, the pending connection is
 * taken with the spare descriptor and closed at once (the peer backs off
 * and retries), so that the loop neither spins on a listener that stays
 * readable nor floods the log. */
int accept_or_shed(struct daemon *d, int lfd, const char *what);
int accept_or_shed(struct daemon *d, int lfd, const char *what)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0 || (errno != EMFILE && errno != ENFILE))
        return fd;
    uint64_t now = now_ns();
    if (now - d->last_emfile_log_ns > 60000000000ull) {
        log_warning("%s: out of file descriptors (%s): dropping connections", what, strerror(errno));
        d->last_emfile_log_ns = now;
    }
    if (d->spare_fd >= 0) {
        close(d->spare_fd);
        int drop = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (drop >= 0)
            close(drop);
        d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    errno = EAGAIN;
    return -1;
}

void clients_accept(struct daemon *d)
{
    for (;;) {
        int fd = accept_or_shed(d, d->rdv_fd, "hakmemd.sock");
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
        if (d->nclients >= d->cfg.max_clients ||
            clients_of_uid(d, cr.uid) >= d->cfg.max_clients_per_uid) {
            log_warning("client %d (uid %u) refused: too many clients", (int)cr.pid, (unsigned)cr.uid);
            send_refusal(fd, -EUSERS);
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
        char buf[CMSG_SPACE(sizeof(int) * 4)];
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

static int send_welcome(struct daemon *d, struct client *c)
{
    struct hakmem_welcome w;
    proto_welcome_init(&w, 0);
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
        log_warning("client %d: bad hello: %s", (int)c->pid, strerror(-rc));
        send_refusal(c->fd, rc);
        return rc;
    }
    memcpy(c->comm, h.comm, sizeof(c->comm));
    c->comm[sizeof(c->comm) - 1] = '\0';
    struct cgroup_memcg cg;
    rc = cgroup_memcg_of_pid("/proc", d->cfg.cgroup_root, c->pid, &cg);
    if (rc < 0) {
        log_warning("client %d (%s): cannot find its memory cgroup: %s", (int)c->pid, c->comm,
                    strerror(-rc));
        send_refusal(c->fd, rc);
        return rc;
    }
    c->cgroup = cgroup_get(d, &cg);
    if (!c->cgroup) {
        send_refusal(c->fd, -ENOMEM);
        return -ENOMEM;
    }
    c->cgroup->nclients++;
    c->key = cg.key;
    rc = send_welcome(d, c);
    if (rc < 0)
        return rc;
    c->welcomed = true;
    log_info("client %d (%s, uid %u) in %s", (int)c->pid, c->comm, (unsigned)c->uid, cg.path);
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
