/* manager.c: hakmemd's event loop and the glue between sources, policy
 * and publisher (see manager.h for the boxes).
 *
 * Per tracked cgroup the loop gathers the signals (BPF notifications at
 * once, BPF counters; v1 memory.pressure_level, or on v2 a PSI trigger,
 * the PSI averages and memory.events; usage against limit, sampled as
 * often as the cgroup's distance to its next threshold asks, see
 * usage_source.h), asks policy_evaluate() for the level and publishes
 * changes on the ring. Every event (a BPF notification, a trigger, a
 * memory.events change, a fresh usage sample) is evaluated the moment it
 * arrives: that is the path that meets the 100 ms target. The timer is
 * one-shot, armed for the earliest of the tick (calm deadlines, BPF
 * counters, PSI averages), the heartbeat and the next usage sample.
 * Host-wide PSI is shown by status and metrics but decides nothing: on
 * hybrid hosts it is the whole machine's, and pressure in one cgroup must
 * not switch the shims of another.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "bpf_source.h"
#include "log.h"
#include "manager.h"

#define TICK_NS        100000000ull     /* 100 ms: calm deadlines, counters */
#define RING_SLOTS     4096
#define RING_TABLE     8192

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int manager_epoll_add(struct daemon *d, int fd, uint32_t events, struct ep_tag *tag)
{
    struct epoll_event ev = { .events = events, .data.ptr = tag };
    return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

void manager_epoll_del(struct daemon *d, int fd)
{
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, fd, NULL);
}

void manager_defer_free(struct daemon *d, void *p, struct ep_tag *tag, struct ep_tag *tag2,
                        struct ep_tag *tag3)
{
    struct ep_tag *tags[] = { tag, tag2, tag3 };
    for (size_t i = 0; i < 3; i++)
        if (tags[i])
            tags[i]->kind = EP_DEAD;
    if (d->ngrave == d->cap_grave) {
        size_t cap = d->cap_grave ? d->cap_grave * 2 : 16;
        void **n = realloc(d->graveyard, cap * sizeof(*n));
        if (!n)
            return;                     /* a leak, never a use after free */
        d->graveyard = n;
        d->cap_grave = cap;
    }
    d->graveyard[d->ngrave++] = p;
}

static void bury(struct daemon *d)
{
    for (size_t i = 0; i < d->ngrave; i++)
        free(d->graveyard[i]);
    d->ngrave = 0;
}

/* ---- sd_notify (no libsystemd): one datagram to $NOTIFY_SOCKET ---- */

int sd_notify_msg(struct daemon *d, const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path || (path[0] != '/' && path[0] != '@'))
        return 0;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    size_t n = strlen(path);
    if (n >= sizeof(a.sun_path))
        return -ENAMETOOLONG;
    memcpy(a.sun_path, path, n);
    if (a.sun_path[0] == '@')
        a.sun_path[0] = '\0';
    if (d->notify_fd < 0)
        d->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (d->notify_fd < 0)
        return -errno;
    if (sendto(d->notify_fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&a,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
        return -errno;
    return 0;
}

static void arm_timer(struct daemon *d);

/* ---- cgroups ---- */

struct cgroup *cgroup_find(struct daemon *d, uint64_t key)
{
    for (size_t i = 0; i < d->ncgroups; i++)
        if (d->cgroups[i]->cg.key == key)
            return d->cgroups[i];
    return NULL;
}

/* The per-cgroup pressure events (v1 memory.pressure_level, v2 PSI
 * trigger), with the configuration in force (a reload reopens them). */
static void cgroup_pressure_open(struct daemon *d, struct cgroup *c, uint64_t now)
{
    char why[160];
    int rc;
    if (!d->psi_on)
        return;
    if (c->cg.version == CGROUP_VERSION_1) {
        uint32_t min[HAKMEM_LEVEL_COUNT] = { 0, d->cfg.vmpressure_low_events,
                                             d->cfg.vmpressure_medium_events,
                                             d->cfg.vmpressure_critical_events };
        rc = vmpressure_source_open(&c->vmp, c->cg.dir, VMPRESSURE_MODE_HIERARCHY,
                                    (uint64_t)d->cfg.vmpressure_window_ms * 1000000u, min, now,
                                    why, sizeof(why));
        if (rc == 0) {
            c->vmp_tag = (struct ep_tag){ EP_VMPRESSURE, c };
            if (manager_epoll_add(d, vmpressure_source_fd(&c->vmp), EPOLLIN, &c->vmp_tag) == 0)
                c->vmp_open = true;
            else
                vmpressure_source_close(&c->vmp);
        } else {
            log_info("cgroup %s: no memory.pressure_level events: %s", c->cg.path, why);
        }
    } else {
        /* the cgroup's own memory.pressure; a delegated subtree's file
         * belongs to its user: no trigger there (root without
         * CAP_DAC_OVERRIDE may not write it), the averages still come */
        char path[PATH_MAX];
        if (psi_pressure_path(c->cg.dir, NULL, path, sizeof(path)) < 0)
            return;
        rc = psi_trigger_open(&c->psi, path, false, d->cfg.psi_trigger_stall_us,
                              d->cfg.psi_trigger_window_us, why, sizeof(why));
        if (rc == 0) {
            c->psi_tag = (struct ep_tag){ EP_PSI, c };
            if (manager_epoll_add(d, psi_trigger_fd(&c->psi), EPOLLPRI, &c->psi_tag) == 0) {
                c->psi_open = true;
                d->psi_window_us = c->psi.window_us;
                d->psi_stall_us = c->psi.stall_us;
            } else {
                psi_trigger_close(&c->psi);
            }
        } else {
            log_info("cgroup %s: no PSI trigger (%s); its PSI averages are read instead%s",
                     c->cg.path, why,
                     rc == -EACCES || rc == -EPERM ? ": the file is not root's (a delegated "
                                                     "subtree belongs to its user)" : "");
        }
    }
}

/* v2 memory.events of c (the events source). */
static void cgroup_events_open(struct daemon *d, struct cgroup *c)
{
    char why[160];
    if (!d->events_on || c->cg.version != CGROUP_VERSION_2)
        return;
    int rc = memevents_open(&c->mev, c->cg.dir, why, sizeof(why));
    if (rc < 0) {
        log_info("cgroup %s: memory.events not watched: %s", c->cg.path, why);
        return;
    }
    c->mev_tag = (struct ep_tag){ EP_MEMEVENTS, c };
    if (manager_epoll_add(d, memevents_fd(&c->mev), EPOLLPRI, &c->mev_tag) == 0)
        c->mev_open = true;
    else
        memevents_close(&c->mev);
}

static void cgroup_sources_open(struct daemon *d, struct cgroup *c, uint64_t now)
{
    if (d->bpf) {
        int rc = bpf_source_watch(d->bpf, c->cg.key);
        c->bpf_watched = rc == 0;
        if (rc < 0)
            log_warning("cgroup %s: cannot watch it with BPF: %s", c->cg.path, strerror(-rc));
    }
    cgroup_pressure_open(d, c, now);
}

static void cgroup_psi_close(struct daemon *d, struct cgroup *c)
{
    if (c->psi_open) {
        manager_epoll_del(d, psi_trigger_fd(&c->psi));
        psi_trigger_close(&c->psi);
        c->psi_open = false;
    }
}

/* Close what cgroup_pressure_open opened. */
static void cgroup_sources_close(struct daemon *d, struct cgroup *c)
{
    if (c->vmp_open) {
        manager_epoll_del(d, vmpressure_source_fd(&c->vmp));
        vmpressure_source_close(&c->vmp);
        c->vmp_open = false;
    }
    cgroup_psi_close(d, c);
}

static void cgroup_events_close(struct daemon *d, struct cgroup *c)
{
    if (c->mev_open) {
        manager_epoll_del(d, memevents_fd(&c->mev));
        memevents_close(&c->mev);
        c->mev_open = false;
    }
}

/* The ancestors of c below the hierarchy's root (which holds no limit),
 * each watched by the usage source: a pod's or a slice's limit bounds its
 * children as much as their own. */
static void cgroup_ancestors_open(struct daemon *d, struct cgroup *c)
{
    static struct cgroup_memcg at, up; /* 8 KiB each; single-threaded */
    at = c->cg;
    while (c->nanc < CGROUP_ANCESTORS_MAX && cgroup_parent_memcg(&at, &up) == 0 &&
           strcmp(up.path, "/") != 0) {
        char *path = strdup(up.path);
        if (!path || usage_source_add(&d->usage, up.key, up.dir, up.version,
                                      CGROUP_MEM_IF_LIMITED) < 0) {
            free(path);
            log_warning("cgroup %s: out of memory; the limits above %s are not watched",
                        c->cg.path, at.path);
            return;
        }
        c->anc[c->nanc++] = (struct cgroup_ancestor){ up.key, path };
        at = up;
    }
}

static void cgroup_ancestors_close(struct daemon *d, struct cgroup *c)
{
    for (size_t i = 0; i < c->nanc; i++) {
        usage_source_remove(&d->usage, c->anc[i].key);
        free(c->anc[i].path);
    }
    c->nanc = 0;
}

const struct usage_entry *cgroup_usage(const struct daemon *d, const struct cgroup *c,
                                       const char **path)
{
    const struct usage_entry *chain[1 + CGROUP_ANCESTORS_MAX];
    int gov;
    if (!d->usage_on)
        return NULL;
    chain[0] = usage_source_find(&d->usage, c->cg.key);
    for (size_t i = 0; i < c->nanc; i++)
        chain[1 + i] = usage_source_find(&d->usage, c->anc[i].key);
    usage_chain_permille(chain, 1 + c->nanc, &gov);
    if (gov < 0)
        return NULL;
    if (path)
        *path = gov == 0 ? c->cg.path : c->anc[gov - 1].path;
    return chain[gov];
}

/* Whether a cgroup of c's chain was sampled at now. */
static bool cgroup_usage_fresh(const struct daemon *d, const struct cgroup *c, uint64_t now)
{
    const struct usage_entry *u = usage_source_find(&d->usage, c->cg.key);
    if (u && u->last.time_ns == now)
        return true;
    for (size_t i = 0; i < c->nanc; i++)
        if ((u = usage_source_find(&d->usage, c->anc[i].key)) && u->last.time_ns == now)
            return true;
    return false;
}

/* The tracked cgroup for cg, created on first use. NULL when out of memory. */
struct cgroup *cgroup_get(struct daemon *d, const struct cgroup_memcg *cg)
{
    struct cgroup *c = cgroup_find(d, cg->key);
    if (c)
        return c;
    if (d->ncgroups == d->cap_cgroups) {
        size_t cap = d->cap_cgroups ? d->cap_cgroups * 2 : 16;
        struct cgroup **n = realloc(d->cgroups, cap * sizeof(*n));
        if (!n)
            return NULL;
        d->cgroups = n;
        d->cap_cgroups = cap;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    uint64_t now = now_ns();
    c->cg = *cg;
    policy_state_init(&c->st, now);
    c->changed_ns = now;
    d->cgroups[d->ncgroups++] = c;
    cgroup_sources_open(d, c, now);
    cgroup_events_open(d, c);
    if (d->usage_on && usage_source_add(&d->usage, c->cg.key, c->cg.dir, c->cg.version, 0) == 0) {
        cgroup_ancestors_open(d, c);
        d->next_usage_ns = now; /* its first sample at once */
        arm_timer(d);
    }
    log_info("tracking cgroup %s (key %llu)", c->cg.path, (unsigned long long)c->cg.key);
    return c;
}

/* Drop a cgroup that has no client and no override left. */
void cgroup_put(struct daemon *d, struct cgroup *c)
{
    if (c->nclients > 0 || c->override != POLICY_OVERRIDE_AUTO)
        return;
    if (c->bpf_watched)
        bpf_source_unwatch(d->bpf, c->cg.key);
    cgroup_sources_close(d, c);
    cgroup_events_close(d, c);
    if (d->usage_on) {
        usage_source_remove(&d->usage, c->cg.key);
        cgroup_ancestors_close(d, c);
    }
    /* Its shims are gone; a later client starts from NONE again. */
    publisher_publish(&d->pub, c->cg.key, HAKMEM_LEVEL_NONE, 0, HAKMEM_REASON_CALM, now_ns());
    metrics_cgroup_gone(d, c, now_ns());
    for (size_t i = 0; i < d->ncgroups; i++) {
        if (d->cgroups[i] == c) {
            d->cgroups[i] = d->cgroups[--d->ncgroups];
            break;
        }
    }
    log_info("no longer tracking cgroup %s", c->cg.path);
    manager_defer_free(d, c, &c->vmp_tag, &c->psi_tag, &c->mev_tag);
}

/* Signals of c as of now, for the policy. */
static void cgroup_signals(struct daemon *d, struct cgroup *c, uint64_t now,
                           struct policy_signals *s)
{
    memset(s, 0, sizeof(*s));
    s->reclaim_events_per_s = c->tick_events_per_s;
    s->reclaim_stall_ns_per_s = c->tick_stall_ns_per_s;
    if (now < c->ev_until_ns) {
        if (c->ev_events_per_s > s->reclaim_events_per_s)
            s->reclaim_events_per_s = c->ev_events_per_s;
        if (c->ev_stall_ns_per_s > s->reclaim_stall_ns_per_s)
            s->reclaim_stall_ns_per_s = c->ev_stall_ns_per_s;
    }
    s->oom_kill = c->oom_pending;
    s->psi_fired = c->psi_fired;
    if (c->psi_avg_ok) {
        s->psi_some_avg10_cpct = c->psi_avg.some.avg10_cpct;
        s->psi_full_avg10_cpct = c->psi_avg.has_full ? c->psi_avg.full.avg10_cpct : 0;
    }
    s->memevents_high = c->mev_rose.high > 0;
    s->memevents_max = c->mev_rose.max > 0;
    s->memevents_oom_kill = c->mev_rose.oom_kill + c->mev_rose.oom_group_kill > 0;
    s->vmpressure = c->vmp_open ? vmpressure_source_level(&c->vmp, now) : HAKMEM_LEVEL_NONE;
    const struct usage_entry *u = cgroup_usage(d, c, NULL);
    if (u)
        s->usage_permille = u->projected_permille; /* >= last.permille */
    s->override = c->override;
    s->override_level = c->override_level;
}

void cgroup_evaluate(struct daemon *d, struct cgroup *c, uint64_t now)
{
    struct policy_signals s;
    struct policy_result r;
    cgroup_signals(d, c, now, &s);
    policy_evaluate(&d->th, &c->st, &s, now, &r);
    c->oom_pending = false;
    c->psi_fired = false;
    c->mev_rose = (struct memevents){ 0 };
    if (!r.publish)
        return;
    uint8_t flags = c->override != POLICY_OVERRIDE_AUTO ? HAKMEM_RING_F_OVERRIDE : 0;
    int rc = publisher_publish(&d->pub, c->cg.key, r.level, flags, (uint16_t)r.reason, now);
    if (rc < 0)
        log_warning("cgroup %s: cannot publish level %s: %s", c->cg.path,
                    proto_level_name(r.level), strerror(-rc));
    int prio = r.level != c->last.level || r.reason == HAKMEM_REASON_OPERATOR ? LOG_NOTICE : LOG_DEBUG;
    log_msg(prio, "cgroup %s: level %s -> %s (%s)", c->cg.path, proto_level_name(c->last.level),
            proto_level_name(r.level), proto_reason_name(r.reason));
    if (r.level != c->last.level) {
        c->changed_ns = now;
        metrics_level_changed(d, c, (unsigned)c->last.level, (unsigned)r.level, now);
    }
    c->last = r;
}

/* ---- sources ---- */

static void bpf_log(enum bpf_source_log_level level, const char *fmt, va_list ap)
{
    if (level == BPF_SOURCE_LOG_DEBUG)  /* libbpf's relocation chatter */
        return;
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    log_msg(level == BPF_SOURCE_LOG_WARN ? LOG_WARNING : LOG_DEBUG, "bpf: %s", buf);
}

static int on_bpf_event(void *ctx, const struct hakmem_bpf_event *ev)
{
    struct daemon *d = ctx;
    struct cgroup *c = cgroup_find(d, ev->memcg_id);
    if (!c)
        return 0;
    uint64_t now = now_ns();
    if (ev->kind == HAKMEM_BPF_EV_OOM) {
        c->oom_pending = true;
    } else {
        uint64_t win = HAKMEM_BPF_DEF_WINDOW_NS;
        c->ev_events_per_s = ev->win_events * 1000000000u / win;
        c->ev_stall_ns_per_s = ev->win_stall_ns * 1000000000u / win;
        /* a notification stands for its window and the quiet interval
         * after it, during which the BPF side stays silent */
        c->ev_until_ns = now + win + HAKMEM_BPF_DEF_MIN_INTERVAL_NS;
        /* A window that scanned 8 MiB directly is reclaim at the limit
         * even when few tasks entered it: count it as MEDIUM's rate. */
        uint64_t medium = d->th.reclaim_events_per_s[HAKMEM_LEVEL_MEDIUM];
        if (ev->win_scanned >= HAKMEM_BPF_DEF_MIN_SCAN_PAGES && c->ev_events_per_s < medium)
            c->ev_events_per_s = medium;
    }
    log_debug("bpf: cgroup %s: %s (events %llu, stall %llu ns, scanned %llu in the window "
              "opened at %llu ns; sent at %llu ns, received %llu ns later)",
              c->cg.path, ev->kind == HAKMEM_BPF_EV_OOM ? "oom" : "reclaim",
              (unsigned long long)ev->win_events, (unsigned long long)ev->win_stall_ns,
              (unsigned long long)ev->win_scanned, (unsigned long long)ev->win_start_ns,
              (unsigned long long)ev->ts_ns, (unsigned long long)(now - ev->ts_ns));
    cgroup_evaluate(d, c, now);
    return 0;
}

/* Counter deltas since the last tick, as rates. */
static void bpf_tick(struct daemon *d, struct cgroup *c, uint64_t now)
{
    struct hakmem_memcg_stats st;
    if (!d->bpf || !c->bpf_watched || bpf_source_read(d->bpf, c->cg.key, &st) != 0) {
        c->tick_events_per_s = c->tick_stall_ns_per_s = 0;
        return;
    }
    if (c->prev_ns && now > c->prev_ns) {
        uint64_t dt = now - c->prev_ns;
        uint64_t ev = (st.direct_reclaims + st.memcg_reclaims) -
                      (c->prev.direct_reclaims + c->prev.memcg_reclaims);
        c->tick_events_per_s = ev * 1000000000u / dt;
        c->tick_stall_ns_per_s = (st.reclaim_ns - c->prev.reclaim_ns) * 1000000000u / dt;
        if (st.oom_kills > c->prev.oom_kills)
            c->oom_pending = true;
    }
    c->prev = st;
    c->prev_ns = now;
}

static void sources_open(struct daemon *d)
{
    uint32_t want = d->cfg.sources;
    snprintf(d->bpf_reason, sizeof(d->bpf_reason), "not selected (sources)");
    snprintf(d->psi_reason, sizeof(d->psi_reason), "not selected (sources)");
    snprintf(d->usage_reason, sizeof(d->usage_reason), "not selected (sources)");
    if (want & CONFIG_SOURCE_BPF) {
        struct bpf_source_opts o;
        bpf_source_set_log(bpf_log);
        bpf_source_opts_init(&o);
        o.filter = true;
        /* Wake on the first reclaim of a calm cgroup: one entry in a
         * window is the LOW rate (10/s), and LOW switches the cgroup's
         * shims to LEAN, which decommits their free memory at once. The
         * BPF side's own minimum interval still bounds the wakeups. */
        o.min_events = 1;
        int rc = bpf_source_open(&d->bpf, &o);
        if (rc == 0) {
            d->bpf_tag = (struct ep_tag){ EP_BPF, NULL };
            rc = manager_epoll_add(d, bpf_source_fd(d->bpf), EPOLLIN, &d->bpf_tag);
            if (rc < 0) {
                bpf_source_close(d->bpf);
                d->bpf = NULL;
            }
        }
        if (rc < 0) {
            snprintf(d->bpf_reason, sizeof(d->bpf_reason), "%s", strerror(-rc));
            log_warning("source bpf: cannot start (%s); running without it", strerror(-rc));
        } else {
            d->bpf_reason[0] = '\0';
            log_info("source bpf: reclaim tracepoints attached");
        }
    }
    if (want & CONFIG_SOURCE_PSI) {
        struct psi_stats ps;
        int rc = psi_read(PSI_SYSTEM_MEMORY_PATH, &ps);
        d->psi_on = true;               /* per cgroup: pressure_level (v1) or PSI (v2) */
        d->psi_reason[0] = '\0';
        if (rc < 0)
            log_info("source psi: no host-wide PSI (%s); per-cgroup events only", strerror(-rc));
        else
            log_info("source psi: per-cgroup memory.pressure_level (v1) or PSI triggers (v2)");
    }
    if (want & CONFIG_SOURCE_USAGE) {
        usage_source_init(&d->usage);
        d->usage_on = true;
        d->usage_reason[0] = '\0';
        log_info("source usage: every %u..%u ms (planned for %u MB/s), projected %u ms ahead",
                 d->cfg.usage_min_interval_ms, d->cfg.usage_interval_ms,
                 d->cfg.usage_burst_mb_per_s, d->cfg.usage_lead_ms);
    }
    snprintf(d->events_reason, sizeof(d->events_reason), "not selected (sources)");
    if (want & CONFIG_SOURCE_EVENTS) {
        if (d->memcg_version == CGROUP_VERSION_2) {
            d->events_on = true;
            d->events_reason[0] = '\0';
            log_info("source events: memory.events of each cgroup (v2)");
        } else {
            snprintf(d->events_reason, sizeof(d->events_reason),
                     "no memory.events: the memory controller is on cgroup v1");
            log_info("source events: off (%s)", d->events_reason);
        }
    }
}

/* ---- what STATUS says about the signals ---- */

#define SIGNAL_LINE(...)                                                        \
    do {                                                                        \
        int n_ = snprintf(buf + used, used < len ? len - used : 0, __VA_ARGS__); \
        if (n_ > 0)                                                             \
            used += (size_t)n_;                                                 \
    } while (0)

size_t manager_signal_lines(const struct daemon *d, char *buf, size_t len)
{
    size_t used = 0;
    bool v2 = d->memcg_version == CGROUP_VERSION_2;
    struct bpf_source_info bi = { 0 };

    if (len)
        buf[0] = '\0';
    if (d->bpf)
        bpf_source_get_info(d->bpf, &bi);
    if (!d->bpf)
        SIGNAL_LINE("signal reclaim none (bpf off)\n");
    else
        SIGNAL_LINE("signal reclaim bpf %s:%s%s\n",
                    bi.attach == BPF_SOURCE_ATTACH_TP_BTF ? "tp_btf" : "raw_tp",
                    bi.programs & BPF_SOURCE_PROG_DIRECT ? " direct" : "",
                    bi.programs & BPF_SOURCE_PROG_MEMCG ? " memcg" : "");
    if (!d->bpf)
        SIGNAL_LINE("signal scanned none (bpf off)\n");
    else if (bi.programs & BPF_SOURCE_PROG_MEMCG_EVENT)
        SIGNAL_LINE("signal scanned bpf count_memcg_events\n");
    else
        SIGNAL_LINE("signal scanned none (the kernel has no count_memcg_events tracepoint)\n");
    /* OOM kills: every origin that works here */
    const char *bpf_oom = !d->bpf ? "" :
                          bi.programs & BPF_SOURCE_PROG_OOM_VICTIM ? " bpf:mark_victim" :
                          bi.programs & BPF_SOURCE_PROG_OOM_EVENT ? " bpf:count_memcg_events" : "";
    const char *ev_oom = d->events_on ? " memory.events:oom_kill" : "";
    if (*bpf_oom || *ev_oom)
        SIGNAL_LINE("signal oom%s%s\n", bpf_oom, ev_oom);
    else
        SIGNAL_LINE("signal oom none (%s)\n",
                    d->bpf ? "mark_victim takes no task before Linux 6.9, and no memory.events"
                           : "bpf off, and no memory.events");
    if (!d->psi_on)
        SIGNAL_LINE("signal psi none (psi off)\n");
    else if (!v2)
        SIGNAL_LINE("signal psi memory.pressure_level (v1: no per-cgroup PSI)\n");
    else if (d->psi_window_us)
        SIGNAL_LINE("signal psi memory.pressure trigger some %.1f ms in %u ms, avg10\n",
                    d->psi_stall_us / 1000.0, d->psi_window_us / 1000);
    else
        SIGNAL_LINE("signal psi memory.pressure avg10 (no trigger armed yet)\n");
    if (!d->usage_on)
        SIGNAL_LINE("signal usage none (usage off)\n");
    else
        SIGNAL_LINE("signal usage %s every %u..%u ms, projected %u ms ahead\n",
                    v2 ? "memory.current/min(memory.max,memory.high)"
                       : "memory.usage_in_bytes/memory.limit_in_bytes",
                    d->cfg.usage_min_interval_ms, d->cfg.usage_interval_ms, d->cfg.usage_lead_ms);
    if (d->events_on)
        SIGNAL_LINE("signal memory_events high max oom_kill\n");
    else
        SIGNAL_LINE("signal memory_events none (%s)\n", d->events_reason);
    return used < len ? used : (len ? len - 1 : 0);
}

/* memory.events changed: what rose goes to the policy at once. */
static void on_memevents(struct daemon *d, struct cgroup *c)
{
    struct memevents r;
    int rc = memevents_read(&c->mev, &r);
    if (rc < 0) {
        log_info("cgroup %s: memory.events: %s; no longer watched", c->cg.path, strerror(-rc));
        cgroup_events_close(d, c);
        return;
    }
    struct memevents *acc[] = { &c->mev_rose, &c->mev_total };
    for (size_t i = 0; i < 2; i++) {
        acc[i]->low += r.low;
        acc[i]->high += r.high;
        acc[i]->max += r.max;
        acc[i]->oom += r.oom;
        acc[i]->oom_kill += r.oom_kill;
        acc[i]->oom_group_kill += r.oom_group_kill;
    }
    if (r.high || r.max || r.oom || r.oom_kill || r.oom_group_kill)
        log_debug("cgroup %s: memory.events rose: high +%llu, max +%llu, oom +%llu, "
                  "oom_kill +%llu", c->cg.path, (unsigned long long)r.high,
                  (unsigned long long)r.max, (unsigned long long)r.oom,
                  (unsigned long long)(r.oom_kill + r.oom_group_kill));
    cgroup_evaluate(d, c, now_ns());
}

/* ---- the loop ---- */

/* The PSI averages of a v2 cgroup: through its trigger's fd when it has
 * one, else from the file (the root cgroup's are the host's). */
static void psi_avg_read(struct daemon *d, struct cgroup *c)
{
    char path[PATH_MAX];
    c->psi_avg_ok = false;
    if (!d->psi_on || c->cg.version != CGROUP_VERSION_2)
        return;
    if (c->psi_open)
        c->psi_avg_ok = psi_trigger_read(&c->psi, &c->psi_avg) == 0;
    else if (psi_pressure_path(c->cg.dir, NULL, path, sizeof(path)) == 0)
        c->psi_avg_ok = psi_read(path, &c->psi_avg) == 0;
}

/* One-shot timer at the earliest of the tick, the heartbeat and the next
 * usage sample. */
static void arm_timer(struct daemon *d)
{
    uint64_t t = d->next_tick_ns;
    if (d->next_heartbeat_ns < t)
        t = d->next_heartbeat_ns;
    if (d->usage_on && d->next_usage_ns < t)
        t = d->next_usage_ns;
    if (t == 0)
        t = 1; /* 0 would disarm it */
    struct itimerspec its = { .it_value = { (time_t)(t / 1000000000u), (long)(t % 1000000000u) } };
    if (timerfd_settime(d->timerfd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        log_err("timerfd_settime: %m");
}

static void on_tick(struct daemon *d)
{
    uint64_t expirations;
    if (read(d->timerfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        return;
    uint64_t now = now_ns();
    bool tick = now >= d->next_tick_ns;
    if (now >= d->next_heartbeat_ns) {
        /* never slower than the ring's first period: shims that read only
         * the ring's info block expect that one */
        uint64_t period = (uint64_t)d->cfg.heartbeat_ms * 1000000u;
        publisher_heartbeat(&d->pub, now);
        d->next_heartbeat_ns = now + (period < d->heartbeat_ns ? period : d->heartbeat_ns);
    }
    bool sampled = false;
    if (d->usage_on && now >= d->next_usage_ns) {
        d->next_usage_ns = usage_source_sample_due(&d->usage, &d->usage_sched, now);
        sampled = true;
    }
    for (size_t i = 0; i < d->ncgroups; i++) {
        struct cgroup *c = d->cgroups[i];
        if (tick) {
            bpf_tick(d, c, now);
            psi_avg_read(d, c);
        }
        /* a fresh sample (of c or an ancestor) is an event: evaluate it
         * now, not at the tick */
        if (tick || (sampled && cgroup_usage_fresh(d, c, now)))
            cgroup_evaluate(d, c, now);
    }
    if (tick) {
        clients_sweep(d, now);
        control_sweep(d, now);
        log_flush(now);
        d->next_tick_ns = now + TICK_NS;
    }
    arm_timer(d);
}

/* What every reloadable key does, applied: the log level, the policy's
 * thresholds, the heartbeat period (published in the ring, where shims
 * read it), the client limits. Keys read where they are used
 * (usage_interval_ms, max_clients...) need nothing more; the per-cgroup
 * pressure sources are reopened by reload() when their keys change. */
static void apply_config(struct daemon *d)
{
    log_set_level(d->cfg.log_level);
    config_policy(&d->cfg, &d->th);
    const uint64_t ms = 1000000;
    d->usage_sched = (struct usage_schedule){
        .min_interval_ns = d->cfg.usage_min_interval_ms * ms,
        .max_interval_ns = d->cfg.usage_interval_ms * ms,
        .burst_bytes_per_s = (uint64_t)d->cfg.usage_burst_mb_per_s << 20,
        .lead_ns = d->cfg.usage_lead_ms * ms,
        .th_permille = { d->th.usage_permille[HAKMEM_LEVEL_LOW],
                         d->th.usage_permille[HAKMEM_LEVEL_MEDIUM],
                         d->th.usage_permille[HAKMEM_LEVEL_CRITICAL] },
    };
    if (d->pub.mem) {
        publisher_set_heartbeat(&d->pub, (uint64_t)d->cfg.heartbeat_ms * 1000000u);
        d->next_heartbeat_ns = 0;       /* beat now, at the new period */
        arm_timer(d);
        limits_compute(d, false);
    }
}

/* Keys fixed at start: changing them means a restart. */
static bool restart_only(const char *key)
{
    static const char *const keys[] = { "runtime_dir", "cgroup_root", "sources", "metrics_group" };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

struct reload_diff {
    char fixed[160];                    /* restart-only keys that differ */
    bool reopen;                        /* a per-cgroup pressure source's key changed */
};

static void note_fixed(const char *key, const char *from, const char *to, void *ctx)
{
    struct reload_diff *r = ctx;
    if (restart_only(key)) {
        size_t n = strlen(r->fixed);
        snprintf(r->fixed + n, sizeof(r->fixed) - n, "%s%s (%s -> %s)", n ? ", " : "", key, from, to);
    }
}

static void note_change(const char *key, const char *from, const char *to, void *ctx)
{
    struct reload_diff *r = ctx;
    if (strncmp(key, "psi_trigger_", 12) == 0 || strncmp(key, "vmpressure_", 11) == 0)
        r->reopen = true;
    log_notice_unlimited("reload: %s %s -> %s", key, from, to);
}

/* SIGHUP: the file again, then the command line's --set (which wins, as
 * at start). All or nothing: a file that does not load, or that changes a
 * key fixed at start, leaves the running configuration as it is. */
static void reload(struct daemon *d)
{
    char err[512];
    struct hakmemd_config cfg;
    struct reload_diff r = { "", false };
    sd_notify_msg(d, "RELOADING=1");
    int rc = config_load(d->config_path[0] ? d->config_path : NULL, &cfg, err, sizeof(err));
    for (int i = 0; rc >= 0 && i < d->nsets; i++) {
        char msg[400];
        rc = config_set_arg(&cfg, d->sets[i], msg, sizeof(msg));
        if (rc < 0)
            snprintf(err, sizeof(err), "%s: %s", d->sets[i], msg);
    }
    if (rc >= 0)
        rc = config_check(&cfg, err, sizeof(err));
    if (rc < 0) {
        log_err("reload: %s; keeping the running configuration", err);
    } else if (config_diff(&d->cfg, &cfg, note_fixed, &r), r.fixed[0]) {
        log_err("reload: %s cannot change without a restart of hakmemd; keeping the running "
                "configuration (nothing applied)", r.fixed);
    } else {
        int n = config_diff(&d->cfg, &cfg, note_change, &r);
        d->cfg = cfg;
        apply_config(d);
        if (r.reopen) {
            uint64_t now = now_ns();
            for (size_t i = 0; i < d->ncgroups; i++) {
                cgroup_sources_close(d, d->cgroups[i]);
                cgroup_pressure_open(d, d->cgroups[i], now);
            }
        }
        log_notice("configuration reloaded (%d key%s changed)", n, n == 1 ? "" : "s");
    }
    sd_notify_msg(d, "READY=1");
}

static void on_signal(struct daemon *d)
{
    struct signalfd_siginfo si;
    while (read(d->sigfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            reload(d);
        } else {
            log_notice("signal %s: stopping", strsignal((int)si.ssi_signo));
            d->stop = true;
        }
    }
}

/* One hakmemd per runtime dir: a lock held for the daemon's life, taken
 * before anything else (BPF above all) is set up. */
static int take_lock(struct daemon *d)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/hakmemd.lock", d->cfg.runtime_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_err("cannot open %s: %m", path);
        return -errno;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        close(fd);
        if (e == EWOULDBLOCK) {
            log_err("another hakmemd%s%s%s is serving %s", buf[0] ? " (pid " : "", buf,
                    buf[0] ? ")" : "", d->cfg.runtime_dir);
            return -EADDRINUSE;
        }
        log_err("cannot lock %s: %s", path, strerror(e));
        return -e;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        log_warning("cannot write my pid into %s: %m", path);
    d->lock_fd = fd;
    return 0;
}

/* Where hakmemd's cgroup namespace lies in each mounted hierarchy: in a
 * container of its own with the host's /sys/fs/cgroup mounted, shims'
 * cgroups read "/../.." from here and are placed from it. */
static void ns_find(struct daemon *d)
{
    for (int v = CGROUP_VERSION_1; v <= CGROUP_VERSION_2; v++) {
        char *root = d->ns.root[v];
        int rc = cgroup_ns_find(CGROUP_DEFAULT_PROC, d->cfg.cgroup_root, (enum cgroup_version)v,
                                getpid(), root, sizeof(d->ns.root[v]));
        if (rc == 0 && root[0])
            log_notice("cgroup namespace: hakmemd's own is %s in the v%d hierarchy mounted under "
                       "%s; cgroups outside it are placed from there", root, v,
                       d->cfg.cgroup_root);
        else if (rc < 0 && rc != -ENOENT)
            log_warning("cgroup namespace: cannot tell where hakmemd's own lies in the v%d "
                        "hierarchy mounted under %s (%s); shims in cgroups outside it will be "
                        "refused", v, d->cfg.cgroup_root, strerror(-rc));
        if (rc < 0)
            root[0] = '\0';
    }
}

int manager_init(struct daemon *d)
{
    d->epfd = d->sigfd = d->timerfd = d->rdv_fd = d->ctl_fd = d->met_fd = d->lock_fd = -1;
    d->pub.memfd = d->pub.ro_fd = d->met.release_fd = -1;
    d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    d->start_ns = now_ns();
    apply_config(d);
    int rc = take_lock(d);
    if (rc < 0)
        return rc;

    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->epfd < 0)
        return -errno;
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGHUP);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    signal(SIGPIPE, SIG_IGN);
    d->sigfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
    if (d->sigfd < 0)
        return -errno;
    d->sig_tag = (struct ep_tag){ EP_SIGNAL, NULL };
    rc = manager_epoll_add(d, d->sigfd, EPOLLIN, &d->sig_tag);
    if (rc < 0)
        return rc;

    d->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (d->timerfd < 0)
        return -errno;
    d->next_tick_ns = d->next_heartbeat_ns = d->next_usage_ns = now_ns() + TICK_NS;
    arm_timer(d);
    d->timer_tag = (struct ep_tag){ EP_TIMER, NULL };
    if ((rc = manager_epoll_add(d, d->timerfd, EPOLLIN, &d->timer_tag)) < 0)
        return rc;
    if ((rc = metrics_init(d)) < 0)
        return rc;

    d->heartbeat_ns = (uint64_t)d->cfg.heartbeat_ms * 1000000u;
    rc = publisher_open(&d->pub, RING_SLOTS, RING_TABLE, d->heartbeat_ns, now_ns());
    if (rc < 0) {
        log_err("cannot create the ring: %s", strerror(-rc));
        return rc;
    }
    ns_find(d);
    /* the hierarchy hakmemd's own memory cgroup is on: what the host runs */
    struct cgroup_memcg self;
    d->memcg_version = cgroup_memcg_of_pid(CGROUP_DEFAULT_PROC, d->cfg.cgroup_root, &d->ns,
                                           getpid(), &self) == 0 ? self.version
                                                                 : CGROUP_VERSION_AUTO;
    if ((rc = clients_listen(d)) < 0 || (rc = control_listen(d)) < 0)
        return rc;
    sources_open(d);
    limits_compute(d, true);
    const struct limits *l = &d->lim;
    log_info("descriptors: %lu, %u in use; up to %u clients (%u per uid, the last %u for root), "
             "%u+%u+%u control connections (open, operators, metrics.sock)", l->nofile, l->fd_base,
             l->max_clients, l->max_per_uid, l->root_reserve, l->ctl_open, l->ctl_oper,
             l->ctl_metrics);
    if (l->max_clients < d->cfg.max_clients || l->max_per_uid < d->cfg.max_clients_per_uid)
        log_warning("descriptors: RLIMIT_NOFILE %lu allows %u clients (%u per uid), fewer than "
                    "max_clients %u (%u per uid); raise LimitNOFILE=", l->nofile, l->max_clients,
                    l->max_per_uid, d->cfg.max_clients, d->cfg.max_clients_per_uid);
    return 0;
}

int manager_run(struct daemon *d)
{
    struct epoll_event evs[64];
    sd_notify_msg(d, "READY=1\nSTATUS=following memory pressure");
    log_notice("ready: %s/hakmemd.sock", d->cfg.runtime_dir);
    while (!d->stop) {
        int n = epoll_wait(d->epfd, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_err("epoll_wait: %m");
            return -errno;
        }
        for (int i = 0; i < n && !d->stop; i++) {
            struct ep_tag *t = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            switch (t->kind) {
            case EP_SIGNAL: on_signal(d); break;
            case EP_TIMER:              /* the tick, or metrics.c's release timer */
                if (t == &d->release_tag)
                    metrics_release_timer(d);
                else
                    on_tick(d);
                break;
            case EP_RENDEZVOUS: clients_accept(d); break;
            case EP_CONTROL: control_accept(d, false); break;
            case EP_METRICS: control_accept(d, true); break;
            case EP_DEAD: break;
            case EP_CLIENT: clients_event(d, t->owner, e); break;
            case EP_CTLCONN: control_event(d, t->owner, e); break;
            case EP_BPF:
                bpf_source_consume(d->bpf, on_bpf_event, d);
                break;
            case EP_VMPRESSURE: {
                struct cgroup *c = t->owner;
                uint64_t now = now_ns();
                vmpressure_source_consume(&c->vmp, now);
                cgroup_evaluate(d, c, now);
                break;
            }
            case EP_PSI: {
                struct cgroup *c = t->owner;
                if (psi_trigger_revents(e) < 0) {
                    log_info("cgroup %s: PSI trigger gone (cgroup removed?)", c->cg.path);
                    cgroup_psi_close(d, c);
                    break;
                }
                c->psi_fired = true;
                cgroup_evaluate(d, c, now_ns());
                break;
            }
            case EP_MEMEVENTS:
                on_memevents(d, t->owner);
                break;
            }
        }
        bury(d);
    }
    sd_notify_msg(d, "STOPPING=1");
    return 0;
}

void manager_fini(struct daemon *d)
{
    clients_close_all(d);
    control_close_all(d);
    while (d->ncgroups) {
        struct cgroup *c = d->cgroups[d->ncgroups - 1];
        c->nclients = 0;
        c->override = POLICY_OVERRIDE_AUTO;
        cgroup_put(d, c);
    }
    free(d->cgroups);
    metrics_fini(d);
    bury(d);
    free(d->graveyard);
    publisher_close(&d->pub);
    if (d->bpf)
        bpf_source_close(d->bpf);
    if (d->usage_on)
        usage_source_free(&d->usage);
    /* only the sockets this daemon bound: a second daemon that failed to
     * start must not take away the first one's */
    char path[PATH_MAX];
    if (d->rdv_fd >= 0) {
        snprintf(path, sizeof(path), "%s/hakmemd.sock", d->cfg.runtime_dir);
        unlink(path);
    }
    if (d->ctl_fd >= 0) {
        snprintf(path, sizeof(path), "%s/control.sock", d->cfg.runtime_dir);
        unlink(path);
    }
    if (d->met_fd >= 0) {
        snprintf(path, sizeof(path), "%s/metrics.sock", d->cfg.runtime_dir);
        unlink(path);
    }
    log_flush(UINT64_MAX);              /* what the rate limit counted is not lost */
    /* the lock file stays: removing it would race with a daemon starting */
    int fds[] = { d->sigfd, d->timerfd, d->rdv_fd, d->ctl_fd, d->met_fd, d->notify_fd, d->epfd,
                  d->spare_fd, d->lock_fd };
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
}
