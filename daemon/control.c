/* control.c: the control socket (control.sock) for hakmemctl.
 *
 * One request per connection, answered at once with one or more
 * datagrams (HAKMEM_CTL_F_MORE on all but the last), then the connection
 * is closed. The answer is queued and sent as the peer reads it (EPOLLOUT),
 * so a large one (thousands of clients) is never cut short and a slow
 * reader never blocks the loop. Read commands are open to every local user; LEAN (an
 * override) only to root and members of the `hakmem` group, checked with
 * SO_PEERCRED. A peer that does not send its request in time, or does not
 * read its answer, is dropped: nothing here blocks the daemon.
 *
 * STATUS: TEXT datagrams with "name value" lines (version, pid, uptime_s,
 * clients, one "source NAME on|off [reason]" per source, host-wide
 * psi_{some,full}_avg{10,60}, one "cgroup KEY PATH RECLAIM_PER_S" per
 * cgroup), then CGROUPS records (tracked cgroups, then active overrides).
 * CLIENTS: CLIENTS records. METRICS: TEXT, Prometheus exposition format.
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

#define CTL_TIMEOUT_NS 10000000000ull   /* request and answer within 10 s */
#define CTL_ANSWER_MAX (64u << 20)      /* bytes queued for one answer */

int listen_at(const char *dir, const char *name, mode_t mode);
int accept_or_shed(struct daemon *d, int lfd, const char *what);

int control_listen(struct daemon *d)
{
    int fd = listen_at(d->cfg.runtime_dir, "control.sock", 0666);
    if (fd < 0) {
        log_err("cannot listen on %s/control.sock: %s", d->cfg.runtime_dir, strerror(-fd));
        return fd;
    }
    d->ctl_fd = fd;
    d->ctl_tag = (struct ep_tag){ EP_CONTROL, NULL };
    return manager_epoll_add(d, fd, EPOLLIN, &d->ctl_tag);
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
    free(cc);
}

void control_accept(struct daemon *d)
{
    for (;;) {
        int fd = accept_or_shed(d, d->ctl_fd, "control.sock");
        if (fd < 0)
            return;
        if (d->nctlconns >= 64) {       /* hakmemctl opens one at a time */
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
        cc->opened_ns = now_ns();
        cc->tag = (struct ep_tag){ EP_CTLCONN, cc };
        d->ctlconns[d->nctlconns++] = cc;
        if (manager_epoll_add(d, fd, EPOLLIN | EPOLLRDHUP, &cc->tag) < 0)
            ctlconn_free(d, cc);
    }
}

void control_sweep(struct daemon *d, uint64_t now)
{
    for (size_t i = 0; i < d->nctlconns;) {
        if (now - d->ctlconns[i]->opened_ns > CTL_TIMEOUT_NS) {
            ctlconn_free(d, d->ctlconns[i]);
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

static void resp_status(struct ctlconn *cc, uint16_t cmd, int32_t status)
{
    struct hakmem_ctl_resp h;
    proto_ctl_resp_init(&h, cmd, status, HAKMEM_CTL_PAYLOAD_NONE, 0, 0);
    queue_dgram(cc, &h, sizeof(h));
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
    const struct usage_entry *u = d->usage_on ? usage_source_find(&d->usage, c->cg.key) : NULL;
    if (u && u->last.time_ns && u->last.error == 0) {
        rec->usage_bytes = u->last.mem.usage_bytes;
        rec->limit_bytes = u->last.limit_bytes == CGROUP_UNLIMITED ? 0 : u->last.limit_bytes;
    }
    if (c->psi_open) {
        struct psi_stats ps;
        if (psi_trigger_read(&c->psi, &ps) == 0)
            rec->psi_some_avg10 = ps.some.avg10_cpct;
    }
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
    struct psi_stats ps;
    if (psi_read(PSI_SYSTEM_MEMORY_PATH, &ps) == 0) {
        resp_text(r, "psi_some_avg10 %.2f\npsi_some_avg60 %.2f\n", ps.some.avg10_cpct / 100.0,
                  ps.some.avg60_cpct / 100.0);
        resp_text(r, "psi_full_avg10 %.2f\npsi_full_avg60 %.2f\n", ps.full.avg10_cpct / 100.0,
                  ps.full.avg60_cpct / 100.0);
    }
    for (size_t i = 0; i < d->ncgroups; i++) {
        const struct cgroup *c = d->cgroups[i];
        resp_text(r, "cgroup %llu %s %llu\n", (unsigned long long)c->cg.key, c->cg.path,
                  (unsigned long long)reclaim_per_s(c));
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
            rec.ncounters = st.ncounters;
            memcpy(rec.counter, st.counter, sizeof(rec.counter));
        }
        resp_record(r, HAKMEM_CTL_PAYLOAD_CLIENTS, &rec, sizeof(rec));
    }
}

/* May this peer change modes? root, or the hakmem group (primary or
 * supplementary, read from /proc for the peer's pid). */
static bool may_change(struct daemon *d, const struct ucred *cr)
{
    if (cr->uid == 0)
        return true;
    if (!d->have_hakmem_gid)
        return false;
    if (cr->gid == d->hakmem_gid)
        return true;
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)cr->pid);
    if (cgroup_read_file(path, buf, sizeof(buf)) < 0)
        return false;
    const char *g = strstr(buf, "\nGroups:");
    if (!g)
        return false;
    for (g += 8; *g && *g != '\n';) {
        char *end;
        unsigned long v = strtoul(g, &end, 10);
        if (end == g)
            break;
        if ((gid_t)v == d->hakmem_gid)
            return true;
        g = end;
    }
    return false;
}

static int cmd_lean(struct daemon *d, int fd, const struct hakmem_ctl_req *q)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
        return -errno;
    if (!may_change(d, &cr))
        return -EPERM;
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
        log_notice("operator (uid %u): lean %s for every client", (unsigned)cr.uid, names[q->mode]);
        return 0;
    case HAKMEM_CTL_TARGET_PID: {
        struct client *c = client_by_pid(d, (pid_t)q->key);
        if (!c || q->key == 0 || q->key > INT32_MAX)
            return -ENOENT;
        c->ctl_mode = q->mode;
        c->ctl_level = lvl;
        publisher_publish(&d->pub, HAKMEM_KEY_PID((uint32_t)c->pid), level, flags,
                          HAKMEM_REASON_OPERATOR, now);
        log_notice("operator (uid %u): lean %s for pid %d (%s)", (unsigned)cr.uid, names[q->mode],
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
        log_notice("operator (uid %u): lean %s for cgroup %s", (unsigned)cr.uid, names[q->mode],
                   c->cg.path);
        cgroup_evaluate(d, c, now);
        cgroup_put(d, c);               /* gone if it has no client and no override left */
        return 0;
    }
    }
    return -EINVAL;
}

/* Prometheus label value: backslash, quote and newline escaped. */
static const char *label(const char *s)
{
    static char buf[2][512];
    static int which;
    char *o = buf[which ^= 1];
    size_t n = 0;
    for (; *s && n + 3 < sizeof(buf[0]); s++) {
        if (*s == '\\' || *s == '"') {
            o[n++] = '\\';
            o[n++] = *s;
        } else if (*s == '\n') {
            o[n++] = '\\';
            o[n++] = 'n';
        } else {
            o[n++] = *s;
        }
    }
    o[n] = '\0';
    return o;
}

static void metric_head(struct resp *r, const char *name, const char *type, const char *help)
{
    resp_text(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Which stats-page counters are monotonic (Prometheus counters). */
static bool stat_is_counter(unsigned i)
{
    return i == HAKMEM_STAT_LEAN_DECOMMIT || i == HAKMEM_STAT_LEAN_RETIRE ||
           i == HAKMEM_STAT_MADVISE_CALLS || i == HAKMEM_STAT_MMAP_CALLS ||
           i == HAKMEM_STAT_MUNMAP_CALLS || i == HAKMEM_STAT_BYTES_DECOMMITTED ||
           i == HAKMEM_STAT_MODE_SWITCHES;
}

static const char *cgroup_path_of(struct daemon *d, uint64_t key)
{
    struct cgroup *c = cgroup_find(d, key);
    return c ? c->cg.path : "";
}

static void cmd_metrics(struct daemon *d, struct resp *r)
{
    uint64_t now = now_ns();
    metric_head(r, "hakmem_daemon_uptime_seconds", "gauge", "Seconds since hakmemd started.");
    resp_text(r, "hakmem_daemon_uptime_seconds %.3f\n", (now - d->start_ns) / 1e9);
    metric_head(r, "hakmem_clients", "gauge", "Shims registered with hakmemd.");
    resp_text(r, "hakmem_clients %zu\n", registered_clients(d));
    metric_head(r, "hakmem_source_up", "gauge", "Whether a pressure source runs (1) or not (0).");
    resp_text(r, "hakmem_source_up{source=\"bpf\"} %d\n", d->bpf != NULL);
    resp_text(r, "hakmem_source_up{source=\"psi\"} %d\n", d->psi_on);
    resp_text(r, "hakmem_source_up{source=\"usage\"} %d\n", d->usage_on);
    struct psi_stats ps;
    if (psi_read(PSI_SYSTEM_MEMORY_PATH, &ps) == 0) {
        metric_head(r, "hakmem_host_psi_memory_avg10_ratio", "gauge",
                    "Host-wide memory PSI, 10 s average, as a ratio.");
        resp_text(r, "hakmem_host_psi_memory_avg10_ratio{kind=\"some\"} %.4f\n", ps.some.avg10_cpct / 10000.0);
        resp_text(r, "hakmem_host_psi_memory_avg10_ratio{kind=\"full\"} %.4f\n", ps.full.avg10_cpct / 10000.0);
    }

    metric_head(r, "hakmem_cgroup_level", "gauge", "Pressure level published for a cgroup (0 none .. 3 critical).");
    for (size_t i = 0; i < d->ncgroups; i++)
        resp_text(r, "hakmem_cgroup_level{cgroup=\"%s\"} %d\n", label(d->cgroups[i]->cg.path),
                  (int)d->cgroups[i]->last.level);
    metric_head(r, "hakmem_cgroup_clients", "gauge", "Shims registered in a cgroup.");
    for (size_t i = 0; i < d->ncgroups; i++)
        resp_text(r, "hakmem_cgroup_clients{cgroup=\"%s\"} %u\n", label(d->cgroups[i]->cg.path),
                  d->cgroups[i]->nclients);
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
    metric_head(r, "hakmem_cgroup_usage_bytes", "gauge", "Memory usage of a cgroup.");
    for (size_t i = 0; i < d->ncgroups; i++) {
        struct hakmem_ctl_cgroup rec;
        fill_cgroup_record(d, d->cgroups[i], &rec);
        resp_text(r, "hakmem_cgroup_usage_bytes{cgroup=\"%s\"} %llu\n", label(d->cgroups[i]->cg.path),
                  (unsigned long long)rec.usage_bytes);
    }

    for (unsigned s = 0; s < HAKMEM_STAT_COUNT; s++) {
        char name[96];
        bool counter = stat_is_counter(s);
        snprintf(name, sizeof(name), "hakmem_client_%s%s", proto_stat_name(s), counter ? "_total" : "");
        metric_head(r, name, counter ? "counter" : "gauge", "Shim counter (see DESIGN.md), per client.");
        for (size_t i = 0; i < d->nclients; i++) {
            const struct client *c = d->clients[i];
            struct proto_stats st;
            if (!c->welcomed || client_stats(c, &st) != 0 || s >= st.ncounters)
                continue;
            resp_text(r, "%s{pid=\"%d\",comm=\"%s\",cgroup=\"%s\"} %llu\n", name, (int)c->pid,
                      label(c->comm), label(cgroup_path_of(d, c->key)),
                      (unsigned long long)st.counter[s]);
        }
    }
    metric_head(r, "hakmem_client_mode", "gauge", "Shim mode, per client (0 FAST, 1 LEAN).");
    for (size_t i = 0; i < d->nclients; i++) {
        const struct client *c = d->clients[i];
        struct proto_stats st;
        if (c->welcomed && client_stats(c, &st) == 0)
            resp_text(r, "hakmem_client_mode{pid=\"%d\",comm=\"%s\",cgroup=\"%s\"} %u\n", (int)c->pid,
                      label(c->comm), label(cgroup_path_of(d, c->key)), st.mode);
    }
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
        /* answer with the command the peer named, if it named a valid one */
        uint16_t cmd = HAKMEM_CTL_STATUS;
        if (n >= 14) {
            memcpy(&cmd, buf + offsetof(struct hakmem_ctl_req, command), sizeof(cmd));
            if (cmd < 1 || cmd > HAKMEM_CTL_CMD_MAX)
                cmd = HAKMEM_CTL_STATUS;
        }
        resp_status(cc, cmd, rc);
    } else {
        struct resp *r = calloc(1, sizeof(*r));
        if (!r) {
            resp_status(cc, q.command, -ENOMEM);
        } else {
            r->cc = cc;
            r->cmd = q.command;
            switch (q.command) {
            case HAKMEM_CTL_STATUS: cmd_status(d, r); resp_end(r); break;
            case HAKMEM_CTL_CLIENTS: cmd_clients(d, r); resp_end(r); break;
            case HAKMEM_CTL_METRICS: cmd_metrics(d, r); resp_end(r); break;
            case HAKMEM_CTL_LEAN: resp_status(cc, q.command, cmd_lean(d, cc->fd, &q)); break;
            default: resp_status(cc, q.command, -EINVAL);
            }
            if (r->err) {               /* could not queue it all: say so */
                cc->out_len = cc->out_sent = 0;
                resp_status(cc, q.command, r->err);
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
