/* control.c: the control sockets for hakmemctl.
 *
 *   control.sock  mode 0666: every command. Read commands are open to
 *                 every local user; LEAN (an override) to root and the
 *                 group hakmem, and from a container only for its own
 *                 cgroups (peer.c).
 *   metrics.sock  mode 0660, group metrics_group: STATUS, CLIENTS and
 *                 METRICS only (LEAN is refused, even to root), with
 *                 connection slots of its own: the path of the metrics
 *                 exporter, which nobody outside the group can reach,
 *                 starve, or use to change anything.
 * One request per connection, answered at once with one or more
 * datagrams (HAKMEM_CTL_F_MORE on all but the last), then the connection
 * is closed. The answer is queued and sent as the peer reads it (EPOLLOUT),
 * so a large one (thousands of clients) is never cut short and a slow
 * reader never blocks the loop. Connections are admitted by pool and uid
 * (limits.c); a refused one gets one datagram that says why (command
 * HAKMEM_CTL_REFUSED, a TEXT reason). A peer that does not send its
 * request within CTL_REQUEST_NS, or does not read its whole answer within
 * CTL_ANSWER_NS, is dropped: nothing here blocks the daemon. An error
 * answer carries its reason as TEXT too.
 *
 * What each answer holds: control_fmt.c (STATUS, CLIENTS) and
 * metrics_fmt.c (METRICS), through resp_text/resp_record (control_fmt.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "array.h"
#include "log.h"
#include "control_fmt.h"
#include "manager.h"

#define CTL_REQUEST_NS 1000000000ull    /* the request within 1 s of connecting (hakmemctl
                                           sends it at once): idle connections go fast */
#define CTL_ANSWER_NS  10000000000ull   /* the whole answer read within 10 s */
#define CTL_ANSWER_MAX (64u << 20)      /* bytes queued for one answer */

int control_listen(struct daemon *d)
{
    int fd = listen_at(d->cfg.runtime_dir, "control.sock", 0666, (gid_t)-1);
    if (fd < 0) {
        log_err("cannot listen on %s/control.sock: %s", d->cfg.runtime_dir, strerror(-fd));
        return fd;
    }
    d->ctl_fd = fd;
    d->ctl_tag = (struct ep_tag){ EP_CONTROL, NULL };
    int rc = manager_epoll_add(d, fd, EPOLLIN, &d->ctl_tag);
    if (rc < 0)
        return rc;
    /* metrics.sock: the kernel lets only root and metrics_group connect */
    fd = listen_at(d->cfg.runtime_dir, "metrics.sock", d->have_metrics_gid ? 0660 : 0600,
                   d->have_metrics_gid ? d->metrics_gid : (gid_t)-1);
    if (fd == -EPERM && d->have_metrics_gid) {
        /* no CAP_CHOWN and not a member of the group: root's only */
        log_warning("metrics.sock: cannot give it to the group %s (%s); root's only",
                    d->cfg.metrics_group, strerror(-fd));
        fd = listen_at(d->cfg.runtime_dir, "metrics.sock", 0600, (gid_t)-1);
    }
    if (fd < 0) {
        log_err("cannot listen on %s/metrics.sock: %s", d->cfg.runtime_dir, strerror(-fd));
        return fd;
    }
    d->met_fd = fd;
    d->met_tag = (struct ep_tag){ EP_METRICS, NULL };
    return manager_epoll_add(d, fd, EPOLLIN, &d->met_tag);
}

static void ctlconn_free(struct daemon *d, struct ctlconn *cc)
{
    manager_epoll_del(d, cc->fd);
    close(cc->fd);
    free(cc->out);
    for (size_t i = 0; i < d->nctlconns; i++) {
        if (d->ctlconns[i] == cc) {
            d->ctlconns[i] = d->ctlconns[--d->nctlconns];
            break;
        }
    }
    manager_defer_free(d, cc, &cc->tag, NULL, NULL);
}

/* One datagram that says why, then the end of the connection. A request
 * already sent is read first, so that closing does not reset the peer's
 * end before it reads the reason. */
static void refuse_ctl(int fd, int status, const char *why)
{
    unsigned char buf[sizeof(struct hakmem_ctl_resp) + 256];
    size_t n = strlen(why);
    if (n > 256)
        n = 256;
    struct hakmem_ctl_resp h;
    proto_ctl_resp_init(&h, HAKMEM_CTL_REFUSED, status, HAKMEM_CTL_PAYLOAD_TEXT, (uint32_t)n, 0);
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), why, n);
    send(fd, buf, sizeof(h) + n, MSG_DONTWAIT | MSG_NOSIGNAL);
    drain_input(fd);
}

void control_accept(struct daemon *d, bool metrics_sock)
{
    const char *what = metrics_sock ? "metrics.sock" : "control.sock";
    for (unsigned batch = 0; batch < ACCEPT_BATCH; batch++) {
        uint64_t *refused = d->met.refused[metrics_sock];
        int fd = accept_or_shed(d, metrics_sock ? d->met_fd : d->ctl_fd, what, refuse_ctl,
                                &refused[METRICS_DESCRIPTORS]);
        if (fd < 0)
            return;
        struct peer peer;
        enum ctl_pool pool;
        char why[200];
        int rc = peer_identify(d, fd, &peer);
        if (rc == 0) {
            rc = limits_ctl_admit(d, metrics_sock, &peer, &pool, why, sizeof(why));
            if (rc < 0)
                refused[metrics_reason_of(rc)]++;
        } else {
            snprintf(why, sizeof(why), "cannot identify the peer: %s", strerror(-rc));
            refused[METRICS_UNIDENTIFIED]++;
        }
        if (rc < 0) {
            log_warning("%s: connection of pid %d (uid %u) refused: %s", what, (int)peer.pid,
                        (unsigned)peer.uid, why);
            refuse_ctl(fd, rc, why);
            close(fd);
            continue;
        }
        struct ctlconn *cc = NULL;
        if (array_reserve(&d->ctlconns, &d->cap_ctlconns, d->nctlconns + 1, sizeof(*d->ctlconns),
                          8) < 0
            || !(cc = calloc(1, sizeof(*cc)))) {
            close(fd);
            continue;
        }
        cc->fd = fd;
        cc->peer = peer;
        cc->pool = pool;
        cc->readonly = metrics_sock;
        cc->opened_ns = now_ns();
        cc->tag = (struct ep_tag){ EP_CTLCONN, cc };
        d->ctlconns[d->nctlconns++] = cc;
        if (manager_epoll_add(d, fd, EPOLLIN | EPOLLRDHUP, &cc->tag) < 0)
            ctlconn_free(d, cc);
    }
}

/* Drop connections that are silent past CTL_REQUEST_NS, or still being
 * answered past CTL_ANSWER_NS. */
void control_sweep(struct daemon *d, uint64_t now)
{
    for (size_t i = 0; i < d->nctlconns;) {
        struct ctlconn *cc = d->ctlconns[i];
        if (now - cc->opened_ns > (cc->answering ? CTL_ANSWER_NS : CTL_REQUEST_NS)) {
            d->met.refused[cc->readonly][METRICS_TIMEOUT]++;
            ctlconn_free(d, cc);        /* moves the last one into slot i */
            continue;
        }
        i++;
    }
}

void control_close_all(struct daemon *d)
{
    while (d->nctlconns)
        ctlconn_free(d, d->ctlconns[d->nctlconns - 1]);
    free(d->ctlconns);
    d->ctlconns = NULL;
}

/* ---- the answer: datagrams built one at a time, the last one held back
 * until we know whether more follow, queued on the connection ---- */

struct resp {
    struct ctlconn *cc;
    uint16_t cmd;
    int err;                            /* out of memory or too big: stop */
    bool pending;
    uint16_t type;
    uint32_t len;
    unsigned char buf[HAKMEM_MSG_MAX];
};

/* Queue one datagram of n bytes. */
static int queue_dgram(struct ctlconn *cc, const void *p, uint32_t n)
{
    size_t need = cc->out_len + sizeof(n) + n;
    if (need > CTL_ANSWER_MAX)
        return -EMSGSIZE;
    if (array_reserve(&cc->out, &cc->out_cap, need, 1, 16384) < 0)
        return -ENOMEM;
    memcpy(cc->out + cc->out_len, &n, sizeof(n));
    memcpy(cc->out + cc->out_len + sizeof(n), p, n);
    cc->out_len = need;
    return 0;
}

static void resp_send(struct resp *r, bool more)
{
    struct hakmem_ctl_resp h;
    proto_ctl_resp_init(&h, r->cmd, 0, r->type, r->len, more ? HAKMEM_CTL_F_MORE : 0);
    memcpy(r->buf, &h, sizeof(h));
    if (!r->err)
        r->err = queue_dgram(r->cc, r->buf, (uint32_t)(sizeof(h) + r->len));
    r->pending = false;
    r->len = 0;
}

/* Room for n more bytes of payload of this type, flushing if needed. */
static unsigned char *resp_room(struct resp *r, uint16_t type, uint32_t n)
{
    if (r->pending && (r->type != type || r->len + n > HAKMEM_CTL_PAYLOAD_MAX))
        resp_send(r, true);
    if (!r->pending) {
        r->pending = true;
        r->type = type;
        r->len = 0;
    }
    unsigned char *p = r->buf + sizeof(struct hakmem_ctl_resp) + r->len;
    r->len += n;
    return p;
}

/* One line of text; a line longer than a datagram's payload is cut, but
 * always ends with its newline. */
void resp_text(struct resp *r, const char *fmt, ...)
{
    char line[HAKMEM_CTL_PAYLOAD_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    memcpy(resp_room(r, HAKMEM_CTL_PAYLOAD_TEXT, (uint32_t)n), line, (size_t)n);
}

void resp_record(struct resp *r, uint16_t type, const void *rec, uint32_t size)
{
    memcpy(resp_room(r, type, size), rec, size);
}

static void resp_end(struct resp *r)
{
    if (!r->pending)
        resp_room(r, HAKMEM_CTL_PAYLOAD_NONE, 0);
    resp_send(r, false);
}

/* Send what the peer can take now. 1: all sent; 0: wait for EPOLLOUT;
 * negative errno: give up. */
static int ctl_flush(struct ctlconn *cc)
{
    while (cc->out_sent < cc->out_len) {
        uint32_t n;
        memcpy(&n, cc->out + cc->out_sent, sizeof(n));
        ssize_t w = send(cc->fd, cc->out + cc->out_sent + sizeof(n), n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN ? 0 : -errno;
        cc->out_sent += sizeof(n) + n;
    }
    return 1;
}

/* One datagram with a status and, when why is not empty, its reason as
 * TEXT; version: the request's (an older one is answered in its own
 * layout, which the header has kept). */
static void resp_status(struct ctlconn *cc, uint16_t cmd, int32_t status, const char *why,
                        uint32_t version)
{
    unsigned char buf[sizeof(struct hakmem_ctl_resp) + 512];
    size_t n = why ? strlen(why) : 0;   /* why: a NUL-terminated reason */
    if (n > 512)
        n = 512;
    struct hakmem_ctl_resp h;
    proto_ctl_resp_init(&h, cmd, status, n ? HAKMEM_CTL_PAYLOAD_TEXT : HAKMEM_CTL_PAYLOAD_NONE,
                        (uint32_t)n, 0);
    h.version = version;
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), why, n);
    queue_dgram(cc, buf, (uint32_t)(sizeof(h) + n));
}

/* ---- the one command that changes something ---- */

/* LEAN: 0, or a negative errno with the reason in why. */
static int cmd_lean(struct daemon *d, const struct ctlconn *cc, const struct hakmem_ctl_req *q,
                    char *why, size_t len)
{
    if (cc->readonly) {
        snprintf(why, len, "metrics.sock is read-only: changes go through control.sock");
        return -EPERM;
    }
    int rc = peer_may_lean(d, &cc->peer, q, why, len);
    if (rc < 0)
        return rc;
    const struct peer *cr = &cc->peer;
    /* lean on without a level: MEDIUM, what an operator typing it expects
     * (LEAN and the free memory given back now) */
    enum hakmem_level lvl = q->level ? (enum hakmem_level)q->level : HAKMEM_LEVEL_MEDIUM;
    int level = q->mode == HAKMEM_OVERRIDE_ON ? (int)lvl : HAKMEM_LEVEL_NONE;
    uint8_t flags = q->mode == HAKMEM_OVERRIDE_AUTO ? 0 : HAKMEM_RING_F_OVERRIDE;
    uint64_t now = now_ns();
    static const char *const names[] = { "auto", "on", "off" };
    switch (q->target) {
    case HAKMEM_CTL_TARGET_ALL:
        d->host_override = q->mode;
        d->host_override_level = lvl;
        publisher_publish(&d->pub, HAKMEM_KEY_ALL, level, flags, HAKMEM_REASON_OVERRIDE, now);
        log_notice("operator (uid %u): lean %s for every client", (unsigned)cr->uid, names[q->mode]);
        return 0;
    case HAKMEM_CTL_TARGET_PID: {
        struct client *c = client_by_pid(d, (pid_t)q->key);
        if (!c || q->key == 0 || q->key > INT32_MAX)
            return -ENOENT;
        c->override = q->mode;
        c->override_level = lvl;
        publisher_publish(&d->pub, HAKMEM_KEY_PID((uint32_t)c->pid), level, flags,
                          HAKMEM_REASON_OVERRIDE, now);
        log_notice("operator (uid %u%s): lean %s for pid %d (%s)", (unsigned)cr->uid,
                   cr->host ? "" : ", in a container", names[q->mode],
                   (int)c->pid, c->comm);
        return 0;
    }
    case HAKMEM_CTL_TARGET_CGROUP: {
        struct cgroup *c = cgroup_find(d, q->key);
        if (!c)
            return -ENOENT;
        c->override = q->mode == HAKMEM_OVERRIDE_ON ? HAKMEM_OVERRIDE_ON :
                      q->mode == HAKMEM_OVERRIDE_OFF ? HAKMEM_OVERRIDE_OFF : HAKMEM_OVERRIDE_AUTO;
        c->override_level = lvl;
        c->st.published_valid = false;  /* publish even at the same level: the flag changed */
        log_notice("operator (uid %u%s): lean %s for cgroup %s", (unsigned)cr->uid,
                   cr->host ? "" : ", in a container", names[q->mode], c->cg.path);
        cgroup_evaluate(d, c, now);
        cgroup_put(d, c);               /* gone if it has no client and no override left */
        return 0;
    }
    }
    return -EINVAL;
}

void control_event(struct daemon *d, struct ctlconn *cc, uint32_t events)
{
    if (cc->answering) {                /* EPOLLOUT: the peer reads on */
        int rc = events & (EPOLLHUP | EPOLLERR) ? -EPIPE : ctl_flush(cc);
        if (rc != 0)
            ctlconn_free(d, cc);
        return;
    }
    unsigned char buf[HAKMEM_MSG_MAX];
    ssize_t n = recv(cc->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && errno == EAGAIN && !(events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)))
        return;
    struct hakmem_ctl_req q;
    int rc = n <= 0 ? -EBADMSG : n > (ssize_t)sizeof(buf) ? -EMSGSIZE :
             proto_ctl_req_check(buf, (size_t)n, &q);
    cc->answering = true;
    if (rc < 0) {
        if (n <= 0) {
            ctlconn_free(d, cc);
            return;
        }
        /* answer with the command the peer named, if it named a valid
         * one, in its version if it is an older one of ours */
        uint16_t cmd = HAKMEM_CTL_STATUS;
        uint32_t version = HAKMEM_PROTO_VERSION;
        char why[160] = "";
        if (n >= 14) {
            memcpy(&cmd, buf + offsetof(struct hakmem_ctl_req, command), sizeof(cmd));
            if (cmd < 1 || cmd > HAKMEM_CTL_CMD_MAX)
                cmd = HAKMEM_CTL_STATUS;
        }
        if (rc == -EPROTONOSUPPORT && n >= 8) {
            memcpy(&version, buf + offsetof(struct hakmem_ctl_req, version), sizeof(version));
            snprintf(why, sizeof(why), "hakmemd speaks control protocol %d, this client %u: use "
                     "the hakmemctl of hakmemd's release", HAKMEM_PROTO_VERSION, version);
            if (version < HAKMEM_PROTO_VERSION_MIN || version > HAKMEM_PROTO_VERSION)
                version = HAKMEM_PROTO_VERSION;
        }
        resp_status(cc, cmd, rc, why, version);
    } else {
        struct resp *r = calloc(1, sizeof(*r));
        if (!r) {
            resp_status(cc, q.command, -ENOMEM, NULL, HAKMEM_PROTO_VERSION);
        } else {
            r->cc = cc;
            r->cmd = q.command;
            char why[512] = "";
            switch (q.command) {
            case HAKMEM_CTL_STATUS: control_fmt_status(d, r); resp_end(r); break;
            case HAKMEM_CTL_CLIENTS: control_fmt_clients(d, r); resp_end(r); break;
            case HAKMEM_CTL_METRICS:
                metrics_fmt(d, r, q.flags & HAKMEM_CTL_REQ_F_PER_PROCESS);
                resp_end(r);
                break;
            case HAKMEM_CTL_LEAN:
                rc = cmd_lean(d, cc, &q, why, sizeof(why));
                if (rc == -EPERM)
                    log_warning("control: lean refused to pid %d (uid %u): %s", (int)cc->peer.pid,
                                (unsigned)cc->peer.uid, why);
                resp_status(cc, q.command, rc, why, HAKMEM_PROTO_VERSION);
                break;
            default: resp_status(cc, q.command, -EINVAL, NULL, HAKMEM_PROTO_VERSION);
            }
            if (r->err) {               /* could not queue it all: say so */
                cc->out_len = cc->out_sent = 0;
                resp_status(cc, q.command, r->err, "the answer is too large", HAKMEM_PROTO_VERSION);
            }
            free(r);
        }
    }
    rc = ctl_flush(cc);
    if (rc == 0) {
        struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = &cc->tag };
        if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, cc->fd, &ev) == 0)
            return;
    }
    ctlconn_free(d, cc);
}
