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
 * STATUS: TEXT datagrams with "name value" lines (version, pid, uptime_s,
 * clients, one "source NAME on|off [reason]" per source, "signal NAME
 * origin" lines (manager_signal_lines: where each signal comes from on
 * this kernel), host-wide
 * psi_{some,full}_avg{10,60}, one "cgroup KEY PATH RECLAIM_PER_S" per
 * cgroup), then CGROUPS records (tracked cgroups, then active overrides).
 * With the BPF source, STATUS also says what its program lost
 * (bpf_ringbuf_dropped N, bpf_cgroup_table_full N, before the cgroups).
 * CLIENTS: CLIENTS records. METRICS: TEXT, Prometheus exposition format:
 * per-cgroup series, and per-process ones when the request has
 * HAKMEM_CTL_REQ_F_PER_PROCESS (what is counted beyond the daemon's own
 * state comes from metrics.c).
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
#include "bpf_source.h"
#include "log.h"
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
        if (d->nctlconns == d->cap_ctlconns) {
            size_t cap = d->cap_ctlconns ? d->cap_ctlconns * 2 : 8;
            struct ctlconn **n = realloc(d->ctlconns, cap * sizeof(*n));
            if (!n) {
                close(fd);
                continue;
            }
            d->ctlconns = n;
            d->cap_ctlconns = cap;
        }
        struct ctlconn *cc = calloc(1, sizeof(*cc));
        if (!cc) {
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
    if (need > cc->out_cap) {
        size_t cap = cc->out_cap ? cc->out_cap * 2 : 16384;
        while (cap < need)
            cap *= 2;
        unsigned char *o = realloc(cc->out, cap);
        if (!o)
            return -ENOMEM;
        cc->out = o;
        cc->out_cap = cap;
    }
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
static void resp_text(struct resp *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void resp_text(struct resp *r, const char *fmt, ...)
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

static void resp_record(struct resp *r, uint16_t type, const void *rec, uint32_t size)
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
    size_t n = why ? strnlen(why, 512) : 0;
    struct hakmem_ctl_resp h;
    proto_ctl_resp_init(&h, cmd, status, n ? HAKMEM_CTL_PAYLOAD_TEXT : HAKMEM_CTL_PAYLOAD_NONE,
                        (uint32_t)n, 0);
    h.version = version;
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), why, n);
    queue_dgram(cc, buf, (uint32_t)(sizeof(h) + n));
}

/* ---- commands ---- */

static const char *source_line(bool on, const char *reason)
{
    static char buf[200];
    snprintf(buf, sizeof(buf), on ? "on" : "off %s", reason);
    return buf;
}

static uint64_t reclaim_per_s(const struct cgroup *c)
{
    uint64_t r = c->tick_events_per_s;
    return c->ev_events_per_s > r && now_ns() < c->ev_until_ns ? c->ev_events_per_s : r;
}

static void fill_cgroup_record(struct daemon *d, const struct cgroup *c, struct hakmem_ctl_cgroup *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->key = c->cg.key;
    rec->updated_ns = c->changed_ns;
    rec->level = (uint8_t)c->last.level;
    rec->flags = c->override != POLICY_OVERRIDE_AUTO ? HAKMEM_RING_F_OVERRIDE : 0;
    rec->reason = (uint16_t)c->last.reason;
    rec->nclients = c->nclients;
    rec->reclaim_events = c->prev.direct_reclaims + c->prev.memcg_reclaims;
    rec->reclaim_ns = c->prev.reclaim_ns;
    /* the usage against the limit that governs: maybe an ancestor's */
    const struct usage_entry *u = cgroup_usage(d, c, NULL);
    if (!u && d->usage_on)
        u = usage_source_find(&d->usage, c->cg.key); /* no limit: its own usage */
    if (u && u->last.time_ns && u->last.error == 0) {
        rec->usage_bytes = u->last.mem.usage_bytes;
        rec->limit_bytes = u->last.limit_bytes == CGROUP_UNLIMITED ? 0 : u->last.limit_bytes;
    }
    if (c->psi_avg_ok)
        rec->psi_some_avg10 = c->psi_avg.some.avg10_cpct;
}

/* Clients that said hello (not the connections still being checked). */
static size_t registered_clients(const struct daemon *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nclients; i++)
        n += d->clients[i]->welcomed;
    return n;
}

static void cmd_status(struct daemon *d, struct resp *r)
{
    uint64_t now = now_ns();
    resp_text(r, "version %s\n", HAKMEM_VERSION_STRING);
    resp_text(r, "pid %d\n", (int)getpid());
    resp_text(r, "uptime_s %llu\n", (unsigned long long)((now - d->start_ns) / 1000000000u));
    resp_text(r, "clients %zu\n", registered_clients(d));
    resp_text(r, "source bpf %s\n", source_line(d->bpf != NULL, d->bpf_reason));
    resp_text(r, "source psi %s\n", source_line(d->psi_on, d->psi_reason));
    resp_text(r, "source usage %s\n", source_line(d->usage_on, d->usage_reason));
    resp_text(r, "source events %s\n", source_line(d->events_on, d->events_reason));
    char sig[1024];
    manager_signal_lines(d, sig, sizeof(sig));
    resp_text(r, "%s", sig);
    struct psi_stats ps;
    if (psi_read(PSI_SYSTEM_MEMORY_PATH, &ps) == 0) {
        resp_text(r, "psi_some_avg10 %.2f\npsi_some_avg60 %.2f\n", ps.some.avg10_cpct / 100.0,
                  ps.some.avg60_cpct / 100.0);
        resp_text(r, "psi_full_avg10 %.2f\npsi_full_avg60 %.2f\n", ps.full.avg10_cpct / 100.0,
                  ps.full.avg60_cpct / 100.0);
    }
    if (d->bpf) {                       /* what the BPF program lost (hakmem_bpf_*_total) */
        struct bpf_source_info bi;
        bpf_source_get_info(d->bpf, &bi);
        resp_text(r, "bpf_ringbuf_dropped %llu\nbpf_cgroup_table_full %llu\n",
                  (unsigned long long)bi.ringbuf_dropped, (unsigned long long)bi.stats_full);
    }
    for (size_t i = 0; i < d->ncgroups; i++) {
        const struct cgroup *c = d->cgroups[i];
        char path[PATH_MAX];     /* a name a user chose: one printable line */
        proto_clean_text(path, sizeof(path), c->cg.path);
        resp_text(r, "cgroup %llu %s %llu\n", (unsigned long long)c->cg.key, path,
                  (unsigned long long)reclaim_per_s(c));
    }
    /* whose limit governs each cgroup: its own or an ancestor's */
    for (size_t i = 0; i < d->ncgroups; i++) {
        const struct cgroup *c = d->cgroups[i];
        const char *gov;
        char path[PATH_MAX];
        if (!cgroup_usage(d, c, &gov))
            continue;
        proto_clean_text(path, sizeof(path), gov);
        resp_text(r, "limit %llu %s\n", (unsigned long long)c->cg.key, path);
    }
    struct hakmem_ctl_cgroup rec;
    for (size_t i = 0; i < d->ncgroups; i++) {
        fill_cgroup_record(d, d->cgroups[i], &rec);
        resp_record(r, HAKMEM_CTL_PAYLOAD_CGROUPS, &rec, sizeof(rec));
    }
    if (d->all_mode != HAKMEM_CTL_MODE_AUTO) {
        memset(&rec, 0, sizeof(rec));
        rec.key = HAKMEM_KEY_ALL;
        rec.flags = HAKMEM_RING_F_OVERRIDE;
        rec.reason = HAKMEM_REASON_OPERATOR;
        rec.level = d->all_mode == HAKMEM_CTL_MODE_ON ? (uint8_t)d->all_level : HAKMEM_LEVEL_NONE;
        rec.nclients = (uint32_t)d->nclients;
        resp_record(r, HAKMEM_CTL_PAYLOAD_CGROUPS, &rec, sizeof(rec));
    }
    for (size_t i = 0; i < d->nclients; i++) {
        const struct client *c = d->clients[i];
        if (c->ctl_mode == HAKMEM_CTL_MODE_AUTO)
            continue;
        memset(&rec, 0, sizeof(rec));
        rec.key = HAKMEM_KEY_PID((uint32_t)c->pid);
        rec.flags = HAKMEM_RING_F_OVERRIDE;
        rec.reason = HAKMEM_REASON_OPERATOR;
        rec.level = c->ctl_mode == HAKMEM_CTL_MODE_ON ? (uint8_t)c->ctl_level : HAKMEM_LEVEL_NONE;
        rec.nclients = 1;
        resp_record(r, HAKMEM_CTL_PAYLOAD_CGROUPS, &rec, sizeof(rec));
    }
}

static void cmd_clients(struct daemon *d, struct resp *r)
{
    for (size_t i = 0; i < d->nclients; i++) {
        const struct client *c = d->clients[i];
        if (!c->welcomed)
            continue;
        struct hakmem_ctl_client rec;
        memset(&rec, 0, sizeof(rec));
        rec.cgroup_key = c->key;
        rec.connected_ns = c->connected_ns;
        rec.pid = (uint32_t)c->pid;
        rec.uid = (uint32_t)c->uid;
        rec.ctl_mode = (uint8_t)c->ctl_mode;
        memcpy(rec.comm, c->comm, sizeof(rec.comm));
        struct proto_stats st;
        if (client_stats(c, &st) == 0) {
            rec.stats_updated_ns = st.updated_ns;
            rec.mode = (uint8_t)st.mode;
            rec.last_level = (uint8_t)st.last_level;
            rec.flags = (uint8_t)st.flags;
            rec.counters_present = st.present;
            memcpy(rec.counter, st.counter, sizeof(rec.counter));
        }
        resp_record(r, HAKMEM_CTL_PAYLOAD_CLIENTS, &rec, sizeof(rec));
    }
}

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
    int level = q->mode == HAKMEM_CTL_MODE_ON ? (int)lvl : HAKMEM_LEVEL_NONE;
    uint8_t flags = q->mode == HAKMEM_CTL_MODE_AUTO ? 0 : HAKMEM_RING_F_OVERRIDE;
    uint64_t now = now_ns();
    static const char *const names[] = { "auto", "on", "off" };
    switch (q->target) {
    case HAKMEM_CTL_TARGET_ALL:
        d->all_mode = q->mode;
        d->all_level = lvl;
        publisher_publish(&d->pub, HAKMEM_KEY_ALL, level, flags, HAKMEM_REASON_OPERATOR, now);
        log_notice("operator (uid %u): lean %s for every client", (unsigned)cr->uid, names[q->mode]);
        return 0;
    case HAKMEM_CTL_TARGET_PID: {
        struct client *c = client_by_pid(d, (pid_t)q->key);
        if (!c || q->key == 0 || q->key > INT32_MAX)
            return -ENOENT;
        c->ctl_mode = q->mode;
        c->ctl_level = lvl;
        publisher_publish(&d->pub, HAKMEM_KEY_PID((uint32_t)c->pid), level, flags,
                          HAKMEM_REASON_OPERATOR, now);
        log_notice("operator (uid %u%s): lean %s for pid %d (%s)", (unsigned)cr->uid,
                   cr->host ? "" : ", in a container", names[q->mode],
                   (int)c->pid, c->comm);
        return 0;
    }
    case HAKMEM_CTL_TARGET_CGROUP: {
        struct cgroup *c = cgroup_find(d, q->key);
        if (!c)
            return -ENOENT;
        c->override = q->mode == HAKMEM_CTL_MODE_ON ? POLICY_OVERRIDE_ON :
                      q->mode == HAKMEM_CTL_MODE_OFF ? POLICY_OVERRIDE_OFF : POLICY_OVERRIDE_AUTO;
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

/* A Prometheus label value: the text made printable UTF-8 (names come
 * from clients and from whoever named a cgroup), then backslash and quote
 * escaped (no newline is left to escape). */
static const char *label(const char *s)
{
    static char buf[2][2 * PATH_MAX];
    static int which;
    char clean[PATH_MAX];
    char *o = buf[which ^= 1];
    size_t n = 0;
    proto_clean_text(clean, sizeof(clean), s);
    for (const char *p = clean; *p && n + 3 < sizeof(buf[0]); p++) {
        if (*p == '\\' || *p == '"')
            o[n++] = '\\';
        o[n++] = *p;
    }
    o[n] = '\0';
    return o;
}

static void metric_head(struct resp *r, const char *name, const char *type, const char *help)
{
    resp_text(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *cgroup_path_of(struct daemon *d, uint64_t key)
{
    struct cgroup *c = cgroup_find(d, key);
    return c ? c->cg.path : "";
}

static int by_pid_newest_first(const void *a, const void *b)
{
    const struct client *x = *(const struct client *const *)a, *y = *(const struct client *const *)b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    return x->connected_ns > y->connected_ns ? -1 : x->connected_ns < y->connected_ns;
}

/* The registered clients that get series: one per process, the newest
 * registration of a pid that registered more than once (a shim that
 * reconnects before its old connection's end is seen, or a process that
 * does it on purpose). Sorted by pid. *n: how many; NULL when out of
 * memory (then no per-client series). */
static const struct client **series_clients(struct daemon *d, size_t *n)
{
    const struct client **v = malloc((d->nclients + 1) * sizeof(*v));
    size_t k = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < d->nclients; i++)
        if (d->clients[i]->welcomed)
            v[k++] = d->clients[i];
    qsort(v, k, sizeof(*v), by_pid_newest_first);
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        if (m == 0 || v[m - 1]->pid != v[i]->pid)
            v[m++] = v[i];
    *n = m;
    return v;
}

#define LEVEL_CHANGES HAKMEM_COUNTER_COUNT /* record_samples: the level changes */

/* The per-cgroup sums (counters), one family per summed shim counter
 * (acct_sum_ids); tests/deploy/metricnames.py reads the names here. */
static const struct {
    const char *name;
    unsigned counter_id;
    const char *help;
} sum_families[ACCT_SUMS] = {
    { "hakmem_cgroup_bytes_decommitted_total", HAKMEM_COUNTER_ID(bytes_decommitted),
      "Bytes the shims of a cgroup decommitted while registered." },
    { "hakmem_cgroup_lean_decommit_total", HAKMEM_COUNTER_ID(lean_decommit),
      "Decommit operations of the shims of a cgroup while registered." },
    { "hakmem_cgroup_lean_retire_total", HAKMEM_COUNTER_ID(lean_retire),
      "Empty superslabs the shims of a cgroup retired while registered." },
    { "hakmem_cgroup_mode_switches_total", HAKMEM_COUNTER_ID(mode_switches),
      "Mode switches (FAST and LEAN) of the shims of a cgroup while registered." },
};

/* The samples "NAME{cgroup="..."} VALUE" of every cgroup record, tracked
 * or lingering: one cgroup sum (a counter id of acct_sum_ids), or
 * LEVEL_CHANGES. */
static void record_samples(struct resp *r, struct daemon *d, const char *name, unsigned counter_id)
{
    unsigned i = 0;
    while (i < ACCT_SUMS && acct_sum_ids[i] != counter_id)
        i++;
    for (size_t k = 0; k < d->met.ncg; k++) {
        const struct cg_acct *a = d->met.cg[k];
        uint64_t v = i < ACCT_SUMS ? a->total[i] : a->level_changes;
        resp_text(r, "%s{cgroup=\"%s\"} %llu\n", name, label(a->path), (unsigned long long)v);
    }
}

/* The samples of a per-cgroup gauge of the clients present (bytes). */
static void present_samples(struct resp *r, struct daemon *d, const char *name, bool committed)
{
    for (size_t k = 0; k < d->ncgroups; k++) {
        const struct cg_acct *a = d->cgroups[k]->acct;
        if (a)
            resp_text(r, "%s{cgroup=\"%s\"} %llu\n", name, label(a->path),
                      (unsigned long long)(committed ? a->committed : a->in_use));
    }
}

/* One reason label per reason the family shows (mask), with its count. */
static void reason_samples(struct resp *r, const char *name, const char *labels, unsigned mask,
                           const uint64_t *count)
{
    for (unsigned i = 0; i < METRICS_REASON_COUNT; i++)
        if (mask >> i & 1)
            resp_text(r, "%s{%sreason=\"%s\"} %llu\n", name, labels,
                      metrics_reason_name((enum metrics_reason)i), (unsigned long long)count[i]);
}

static void release_samples(struct resp *r, const struct acct_hist *h, const char *level)
{
    uint64_t cum = 0;
    for (unsigned b = 0; b <= ACCT_RELEASE_BUCKETS; b++) {
        cum += h->bucket[b];
        if (b < ACCT_RELEASE_BUCKETS)
            resp_text(r, "hakmem_release_seconds_bucket{level=\"%s\",le=\"%g\"} %llu\n", level,
                      acct_release_bound_ns[b] / 1e9, (unsigned long long)cum);
        else
            resp_text(r, "hakmem_release_seconds_bucket{level=\"%s\",le=\"+Inf\"} %llu\n", level,
                      (unsigned long long)cum);
    }
    resp_text(r, "hakmem_release_seconds_sum{level=\"%s\"} %.6f\n", level, h->sum_ns / 1e9);
    resp_text(r, "hakmem_release_seconds_count{level=\"%s\"} %llu\n", level,
              (unsigned long long)h->count);
}

static void per_process_metrics(struct daemon *d, struct resp *r);

static void cmd_metrics(struct daemon *d, struct resp *r, bool per_process)
{
    uint64_t now = now_ns();
    struct metrics *m = &d->met;
    metrics_fold(d, now);
    metric_head(r, "hakmem_build_info", "gauge",
                "hakmemd's version and the protocol version it speaks (HAKMEM_PROTO_VERSION).");
    resp_text(r, "hakmem_build_info{version=\"%s\",proto=\"%d\"} 1\n", label(HAKMEM_VERSION_STRING),
              HAKMEM_PROTO_VERSION);
    metric_head(r, "hakmem_daemon_start_time_seconds", "gauge",
                "When hakmemd started, in seconds since the Unix epoch.");
    resp_text(r, "hakmem_daemon_start_time_seconds %.3f\n", m->start_real_ns / 1e9);
    metric_head(r, "hakmem_clients", "gauge", "Shims registered with hakmemd.");
    resp_text(r, "hakmem_clients %zu\n", registered_clients(d));
    metric_head(r, "hakmem_source_up", "gauge", "Whether a pressure source runs (1) or not (0).");
    resp_text(r, "hakmem_source_up{source=\"bpf\"} %d\n", d->bpf != NULL);
    resp_text(r, "hakmem_source_up{source=\"psi\"} %d\n", d->psi_on);
    resp_text(r, "hakmem_source_up{source=\"usage\"} %d\n", d->usage_on);
    resp_text(r, "hakmem_source_up{source=\"events\"} %d\n", d->events_on);
    struct psi_stats ps;
    if (psi_read(PSI_SYSTEM_MEMORY_PATH, &ps) == 0) {
        metric_head(r, "hakmem_host_psi_memory_avg10_ratio", "gauge",
                    "Host-wide memory PSI, 10 s average, as a ratio.");
        resp_text(r, "hakmem_host_psi_memory_avg10_ratio{kind=\"some\"} %.4f\n", ps.some.avg10_cpct / 10000.0);
        resp_text(r, "hakmem_host_psi_memory_avg10_ratio{kind=\"full\"} %.4f\n", ps.full.avg10_cpct / 10000.0);
        metric_head(r, "hakmem_host_psi_memory_stall_seconds_total", "counter",
                    "Host-wide memory stall since boot (the total= of /proc/pressure/memory).");
        resp_text(r, "hakmem_host_psi_memory_stall_seconds_total{kind=\"some\"} %.6f\n",
                  ps.some.total_us / 1e6);
        resp_text(r, "hakmem_host_psi_memory_stall_seconds_total{kind=\"full\"} %.6f\n",
                  ps.full.total_us / 1e6);
    }

    /* the BPF program's own counters: no sample while the source is off */
    struct bpf_source_info bi;
    if (d->bpf)
        bpf_source_get_info(d->bpf, &bi);
    metric_head(r, "hakmem_bpf_ringbuf_dropped_total", "counter",
                "Reclaim notifications the BPF program lost because its ring buffer was full.");
    if (d->bpf)
        resp_text(r, "hakmem_bpf_ringbuf_dropped_total %llu\n", (unsigned long long)bi.ringbuf_dropped);
    metric_head(r, "hakmem_bpf_cgroup_table_full_total", "counter",
                "Reclaim events the BPF program could not count because its per-cgroup table was full.");
    if (d->bpf)
        resp_text(r, "hakmem_bpf_cgroup_table_full_total %llu\n", (unsigned long long)bi.stats_full);
    metric_head(r, "hakmem_rendezvous_rejected_total", "counter",
                "Shim registrations hakmemd.sock refused or dropped, by reason.");
    reason_samples(r, "hakmem_rendezvous_rejected_total", "", METRICS_RENDEZVOUS_REASONS, m->rejected);
    metric_head(r, "hakmem_control_refused_total", "counter",
                "Connections control.sock and metrics.sock refused or dropped, by reason.");
    reason_samples(r, "hakmem_control_refused_total", "socket=\"control\",", METRICS_CONTROL_REASONS,
                   m->refused[0]);
    reason_samples(r, "hakmem_control_refused_total", "socket=\"metrics\",", METRICS_CONTROL_REASONS,
                   m->refused[1]);
    metric_head(r, "hakmem_release_seconds", "histogram",
                "From a raised level's publish to the client's stats page showing it (and its "
                "decommit done), per client.");
    for (unsigned l = HAKMEM_LEVEL_LOW; l < HAKMEM_LEVEL_COUNT; l++)
        release_samples(r, &m->release[l], proto_level_name(l));

    metric_head(r, "hakmem_cgroup_level", "gauge", "Pressure level published for a cgroup (0 none .. 3 critical).");
    for (size_t i = 0; i < d->ncgroups; i++)
        resp_text(r, "hakmem_cgroup_level{cgroup=\"%s\"} %d\n", label(d->cgroups[i]->cg.path),
                  (int)d->cgroups[i]->last.level);
    metric_head(r, "hakmem_cgroup_level_changes_total", "counter",
                "Changes of the level published for a cgroup.");
    record_samples(r, d, "hakmem_cgroup_level_changes_total", LEVEL_CHANGES);
    metric_head(r, "hakmem_cgroup_clients", "gauge", "Shims registered in a cgroup, by the mode they run in.");
    for (size_t i = 0; i < d->ncgroups; i++) {
        const struct cg_acct *a = d->cgroups[i]->acct;
        for (unsigned mode = 0; a && mode < HAKMEM_MODE_COUNT; mode++)
            resp_text(r, "hakmem_cgroup_clients{cgroup=\"%s\",mode=\"%s\"} %u\n", label(a->path),
                      proto_mode_name(mode), a->clients[mode]);
    }
    metric_head(r, "hakmem_cgroup_reclaim_events_total", "counter",
                "Reclaim entries seen in a cgroup by the BPF source.");
    for (size_t i = 0; i < d->ncgroups; i++)
        resp_text(r, "hakmem_cgroup_reclaim_events_total{cgroup=\"%s\"} %llu\n",
                  label(d->cgroups[i]->cg.path),
                  (unsigned long long)(d->cgroups[i]->prev.direct_reclaims + d->cgroups[i]->prev.memcg_reclaims));
    metric_head(r, "hakmem_cgroup_reclaim_seconds_total", "counter", "Time spent in reclaim in a cgroup.");
    for (size_t i = 0; i < d->ncgroups; i++)
        resp_text(r, "hakmem_cgroup_reclaim_seconds_total{cgroup=\"%s\"} %.6f\n",
                  label(d->cgroups[i]->cg.path), d->cgroups[i]->prev.reclaim_ns / 1e9);
    metric_head(r, "hakmem_cgroup_memory_events_total", "counter",
                "Rises of a cgroup's memory.events (v2) counters since hakmemd began watching "
                "it, by the kernel's key.");
    for (size_t i = 0; i < d->ncgroups; i++) {
        const struct cgroup *c = d->cgroups[i];
        if (!c->mev_open)
            continue;                   /* v1, the events source off, or the file gone */
        const struct { const char *key; uint64_t n; } ev[] = {
            { "low", c->mev_total.low }, { "high", c->mev_total.high }, { "max", c->mev_total.max },
            { "oom", c->mev_total.oom }, { "oom_kill", c->mev_total.oom_kill },
            { "oom_group_kill", c->mev_total.oom_group_kill },
        };
        for (size_t k = 0; k < sizeof(ev) / sizeof(ev[0]); k++)
            resp_text(r, "hakmem_cgroup_memory_events_total{cgroup=\"%s\",event=\"%s\"} %llu\n",
                      label(c->cg.path), ev[k].key, (unsigned long long)ev[k].n);
    }
    struct hakmem_ctl_cgroup *rec = calloc(d->ncgroups + 1, sizeof(*rec));
    for (size_t i = 0; rec && i < d->ncgroups; i++)
        fill_cgroup_record(d, d->cgroups[i], &rec[i]);
    metric_head(r, "hakmem_cgroup_usage_bytes", "gauge", "Memory usage of a cgroup.");
    for (size_t i = 0; rec && i < d->ncgroups; i++)
        resp_text(r, "hakmem_cgroup_usage_bytes{cgroup=\"%s\"} %llu\n", label(d->cgroups[i]->cg.path),
                  (unsigned long long)rec[i].usage_bytes);
    metric_head(r, "hakmem_cgroup_limit_bytes", "gauge",
                "The memory limit hakmemd compares a cgroup's usage with (none: no sample).");
    for (size_t i = 0; rec && i < d->ncgroups; i++)
        if (rec[i].limit_bytes)
            resp_text(r, "hakmem_cgroup_limit_bytes{cgroup=\"%s\"} %llu\n",
                      label(d->cgroups[i]->cg.path), (unsigned long long)rec[i].limit_bytes);
    free(rec);

    /* sums of the shim counters per cgroup: monotonic (acct.h), departed
     * clients included */
    for (size_t i = 0; i < sizeof(sum_families) / sizeof(sum_families[0]); i++) {
        metric_head(r, sum_families[i].name, "counter", sum_families[i].help);
        record_samples(r, d, sum_families[i].name, sum_families[i].counter_id);
    }
    metric_head(r, "hakmem_cgroup_bytes_committed", "gauge",
                "Bytes mapped and not decommitted by the shims of a cgroup now.");
    present_samples(r, d, "hakmem_cgroup_bytes_committed", true);
    metric_head(r, "hakmem_cgroup_bytes_in_use", "gauge",
                "Bytes handed out (or held in thread caches) by the shims of a cgroup now.");
    present_samples(r, d, "hakmem_cgroup_bytes_in_use", false);

    if (per_process)
        per_process_metrics(d, r);
}

/* The per-process series (HAKMEM_CTL_REQ_F_PER_PROCESS): one per process
 * (series_clients), named by pid, uid, comm (the client's choice: the uid
 * tells a user's "sshd" from root's) and cgroup. */
static void per_process_metrics(struct daemon *d, struct resp *r)
{
    size_t nsc = 0;
    const struct client **sc = series_clients(d, &nsc);
    for (unsigned s = 0; s < HAKMEM_COUNTER_COUNT; s++) {
        int kind = proto_counter_kind(s);
        if (kind == HAKMEM_KIND_STATE)
            continue;                   /* mode and level: hakmem_client_mode below */
        char name[96];
        bool total = kind == HAKMEM_KIND_TOTAL;
        snprintf(name, sizeof(name), "hakmem_client_%s%s", proto_counter_name(s), total ? "_total" : "");
        metric_head(r, name, total ? "counter" : "gauge",
                    "Shim counter (see hakmem.h, HAKMEM_COUNTERS), per client.");
        for (size_t i = 0; i < nsc; i++) {
            const struct client *c = sc[i];
            struct proto_stats st;
            if (client_stats(c, &st) != 0 || !(st.present >> s & 1))
                continue;
            resp_text(r, "%s{pid=\"%d\",uid=\"%u\",comm=\"%s\",cgroup=\"%s\"} %llu\n", name,
                      (int)c->pid, (unsigned)c->uid, label(c->comm),
                      label(cgroup_path_of(d, c->key)), (unsigned long long)st.counter[s]);
        }
    }
    metric_head(r, "hakmem_client_mode", "gauge", "Shim mode, per client (0 FAST, 1 LEAN).");
    for (size_t i = 0; i < nsc; i++) {
        const struct client *c = sc[i];
        struct proto_stats st;
        if (client_stats(c, &st) == 0)
            resp_text(r, "hakmem_client_mode{pid=\"%d\",uid=\"%u\",comm=\"%s\",cgroup=\"%s\"} %u\n",
                      (int)c->pid, (unsigned)c->uid, label(c->comm),
                      label(cgroup_path_of(d, c->key)), st.mode);
    }
    free(sc);
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
            case HAKMEM_CTL_STATUS: cmd_status(d, r); resp_end(r); break;
            case HAKMEM_CTL_CLIENTS: cmd_clients(d, r); resp_end(r); break;
            case HAKMEM_CTL_METRICS:
                cmd_metrics(d, r, q.flags & HAKMEM_CTL_REQ_F_PER_PROCESS);
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
