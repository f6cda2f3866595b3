/* metrics.c: the bookkeeping behind hakmemd's metrics that its running
 * state does not hold (see metrics.h): cgroup records, the folding of
 * client pages into them, the release timer, refusal reasons.
 *
 * Owns: the records (struct cg_acct) and the timerfd of release sights.
 * Must not: decide anything for the policy or the clients, or print
 * (control.c does); every page it reads is a client's word (acct.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include "log.h"
#include "manager.h"

static const char *const reason_names[] = {
#define METRICS_X_NAME(id, name) name,
    METRICS_REASONS(METRICS_X_NAME)
#undef METRICS_X_NAME
};

const char *metrics_reason_name(enum metrics_reason r)
{
    return (unsigned)r < METRICS_REASON_COUNT ? reason_names[r] : "?";
}

enum metrics_reason metrics_reason_of(int status)
{
    switch (-status) {
    case EUSERS: return METRICS_UID_LIMIT;
    case ENOSPC: return METRICS_TOTAL_LIMIT;
    case EMFILE:
    case ENFILE: return METRICS_DESCRIPTORS;
    case EACCES:
    case EPERM: return METRICS_PERMISSION;
    case EPROTONOSUPPORT: return METRICS_VERSION;
    case ENOMEM: return METRICS_MEMORY;
    default: return METRICS_MALFORMED;
    }
}

int metrics_init(struct daemon *d)
{
    struct metrics *m = &d->met;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->start_real_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    m->release_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (m->release_fd < 0)
        return -errno;
    d->release_tag = (struct ep_tag){ EP_TIMER, NULL };
    return manager_epoll_add(d, m->release_fd, EPOLLIN, &d->release_tag);
}

static void record_free(struct cg_acct *a)
{
    free(a->path);
    free(a);
}

void metrics_fini(struct daemon *d)
{
    struct metrics *m = &d->met;
    if (m->release_fd >= 0)
        close(m->release_fd);
    m->release_fd = -1;
    for (size_t i = 0; i < m->ncg; i++)
        record_free(m->cg[i]);
    free(m->cg);
    m->cg = NULL;
    m->ncg = m->cap_cg = 0;
}

/* ---- records ---- */

static void record_remove(struct metrics *m, size_t i)
{
    record_free(m->cg[i]);
    m->cg[i] = m->cg[--m->ncg];
}

/* Records gone past the linger, and beyond METRICS_GONE_MAX the oldest
 * gone ones, removed. */
static void records_sweep(struct metrics *m, uint64_t now)
{
    size_t gone = 0;
    for (size_t i = 0; i < m->ncg;) {
        struct cg_acct *a = m->cg[i];
        if (a->gone_ns && now - a->gone_ns > METRICS_LINGER_NS) {
            record_remove(m, i);
            continue;
        }
        gone += a->gone_ns != 0;
        i++;
    }
    while (gone > METRICS_GONE_MAX) {
        size_t oldest = m->ncg;
        for (size_t i = 0; i < m->ncg; i++)
            if (m->cg[i]->gone_ns && (oldest == m->ncg || m->cg[i]->gone_ns < m->cg[oldest]->gone_ns))
                oldest = i;
        record_remove(m, oldest);
        gone--;
    }
}

static struct cg_acct *record_find(struct metrics *m, uint64_t key)
{
    for (size_t i = 0; i < m->ncg; i++)
        if (m->cg[i]->key == key)
            return m->cg[i];
    return NULL;
}

struct cg_acct *metrics_cgroup(struct daemon *d, struct cgroup *c)
{
    struct metrics *m = &d->met;
    if (c->acct)
        return c->acct;
    struct cg_acct *a = record_find(m, c->cg.key);
    if (a && strcmp(a->path, c->cg.path) != 0) {
        /* the key (an inode) went to another cgroup: a new series */
        for (size_t i = 0; i < m->ncg; i++)
            if (m->cg[i] == a) {
                record_remove(m, i);
                break;
            }
        a = NULL;
    }
    if (!a) {
        if (m->ncg == m->cap_cg) {
            records_sweep(m, now_ns());
            size_t cap = m->cap_cg ? m->cap_cg * 2 : 16;
            struct cg_acct **n = realloc(m->cg, cap * sizeof(*n));
            if (!n)
                return NULL;
            m->cg = n;
            m->cap_cg = cap;
        }
        a = calloc(1, sizeof(*a));
        if (!a || !(a->path = strdup(c->cg.path))) {
            free(a);
            return NULL;
        }
        a->key = c->cg.key;
        m->cg[m->ncg++] = a;
    }
    a->gone_ns = 0;
    c->acct = a;
    return a;
}

void metrics_cgroup_gone(struct daemon *d, struct cgroup *c, uint64_t now)
{
    struct cg_acct *a = c->acct ? c->acct : record_find(&d->met, c->cg.key);
    if (a)
        a->gone_ns = now ? now : 1;
    c->acct = NULL;
}

/* ---- clients ---- */

/* What the client's page says, folded into its cgroup's record. 0, or
 * the page could not be read (then nothing changed). */
static int client_fold(struct daemon *d, struct client *c, struct proto_stats *st)
{
    if (!c->welcomed || !c->cgroup || c->acct.superseded || client_stats(c, st) != 0)
        return -ENODATA;
    struct cg_acct *a = metrics_cgroup(d, c->cgroup);
    if (a)
        acct_fold(&c->acct.seen, st, a->total);
    return 0;
}

void metrics_client_joined(struct daemon *d, struct client *c, uint32_t hello_mode)
{
    struct proto_stats st;
    c->acct.hello_mode = hello_mode < HAKMEM_MODE_COUNT ? hello_mode : HAKMEM_MODE_FAST;
    /* the same pid registered before and its end is not seen yet: a shim
     * that reconnected (the same page), or a process gone: its last
     * counts are folded, and from now on the new registration counts */
    for (size_t i = 0; i < d->nclients; i++) {
        struct client *o = d->clients[i];
        if (o != c && o->welcomed && o->pid == c->pid && !o->acct.superseded) {
            client_fold(d, o, &st);
            o->acct.superseded = true;
            memset(&o->acct.rel, 0, sizeof(o->acct.rel));
        }
    }
    client_fold(d, c, &st);             /* the baseline, if the page was ever written */
}

void metrics_client_left(struct daemon *d, struct client *c)
{
    struct proto_stats st;
    client_fold(d, c, &st);
    c->acct.superseded = true;          /* nothing more from it */
}

void metrics_fold(struct daemon *d, uint64_t now)
{
    struct metrics *m = &d->met;
    records_sweep(m, now);
    for (size_t i = 0; i < d->ncgroups; i++)
        metrics_cgroup(d, d->cgroups[i]);  /* every tracked cgroup has its series */
    for (size_t i = 0; i < m->ncg; i++) {
        struct cg_acct *a = m->cg[i];
        memset(a->clients, 0, sizeof(a->clients));
        a->committed = a->in_use = 0;
    }
    for (size_t i = 0; i < d->nclients; i++) {
        struct client *c = d->clients[i];
        struct proto_stats st;
        if (!c->welcomed || !c->cgroup || c->acct.superseded)
            continue;
        struct cg_acct *a = metrics_cgroup(d, c->cgroup);
        if (!a)
            continue;
        if (client_fold(d, c, &st) == 0) {
            a->clients[st.mode]++;
            if (st.present >> HAKMEM_COUNTER_ID(bytes_committed) & 1)
                a->committed += st.counter[HAKMEM_COUNTER_ID(bytes_committed)];
            if (st.present >> HAKMEM_COUNTER_ID(bytes_in_use) & 1)
                a->in_use += st.counter[HAKMEM_COUNTER_ID(bytes_in_use)];
        } else {
            a->clients[c->acct.hello_mode]++;
        }
    }
}

/* ---- release times ---- */

/* The timer set for the earliest pending sight (or unset). */
static void release_arm(struct daemon *d)
{
    struct metrics *m = &d->met;
    uint64_t next = 0;
    for (size_t i = 0; i < d->nclients; i++) {
        uint64_t t = acct_release_next(&d->clients[i]->acct.rel);
        if (t && (!next || t < next))
            next = t;
    }
    if (next == m->release_at_ns)
        return;
    struct itimerspec its = { .it_value = { (time_t)(next / 1000000000u), (long)(next % 1000000000u) } };
    if (timerfd_settime(m->release_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        m->release_at_ns = next;
}

void metrics_level_changed(struct daemon *d, struct cgroup *c, unsigned from, unsigned to,
                           uint64_t now)
{
    struct cg_acct *a = metrics_cgroup(d, c);
    if (a)
        a->level_changes++;
    for (size_t i = 0; i < d->nclients; i++) {
        struct client *cl = d->clients[i];
        struct proto_stats st;
        if (cl->cgroup != c)
            continue;
        client_fold(d, cl, &st);        /* what came before the change is not its release */
        /* a client held by an operator's override does not follow the
         * cgroup: nothing to wait for */
        if (to > from && (!cl->welcomed || !cl->stats || cl->acct.superseded
                          || cl->ctl_mode != HAKMEM_CTL_MODE_AUTO
                          || d->all_mode != HAKMEM_CTL_MODE_AUTO))
            continue;
        acct_release_level(&cl->acct.rel, from, to, now);
    }
    release_arm(d);
}

void metrics_release_timer(struct daemon *d)
{
    struct metrics *m = &d->met;
    uint64_t expirations;
    if (read(m->release_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        return;
    m->release_at_ns = 0;
    uint64_t now = now_ns();
    for (size_t i = 0; i < d->nclients; i++) {
        struct client *c = d->clients[i];
        uint64_t t = acct_release_next(&c->acct.rel);
        if (!t || t > now)
            continue;
        struct proto_stats st;
        bool ok = client_fold(d, c, &st) == 0;
        acct_release_sight(&c->acct.rel, ok ? &st : NULL, now, m->release);
    }
    release_arm(d);
}
