/* limits.c: hakmemd's descriptor budget and the limits derived from it.
 *
 * Every client holds one socket, every tracked cgroup up to a few
 * descriptors (v1 memory.pressure_level: an epoll and three eventfds), a
 * control connection one. At start hakmemd raises its soft RLIMIT_NOFILE
 * to the hard limit (systemd starts services with a soft limit of 1024),
 * counts what setup left open, and splits the rest: control connections
 * first (their slots are reserved, so that root can always get in), then
 * clients and their cgroups, counted as they come; no uid may hold more
 * than a quarter of the client slots, and the last eighth is root's. The configured max_clients and max_clients_per_uid are
 * upper bounds; the budget may lower them, and says so at start.
 *
 * Control slots come in three pools: OPEN (anyone, at most CTL_PER_UID
 * at once per uid), OPERATOR (root and the group hakmem, in hakmemd's
 * pid namespace: when OPEN is full) and METRICS (metrics.sock: root and
 * metrics_group). A refusal carries its reason in words.
 * Must not: log (callers do, rate-limited), block.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include "manager.h"

#define FD_SLACK        16   /* transient descriptors: /proc and cgroup files read, BPF */
#define CTL_OPEN_MAX    32   /* control connections for anyone */
#define CTL_OPER_MAX    16   /* kept for root and the group hakmem */
#define CTL_METRICS_MAX 8    /* metrics.sock */
#define CTL_PER_UID     4    /* hakmemctl opens one at a time; watch and a script or two */
#define CGROUP_FDS_V1   4    /* memory.pressure_level: epoll + 3 eventfds */
#define CGROUP_FDS_V2   1    /* a PSI trigger */
#define CGROUP_FDS_EV   1    /* v2 memory.events (the events source) */

int limits_raise_nofile(unsigned long *from, unsigned long *to)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    *from = *to = (unsigned long)rl.rlim_cur;
    if (rl.rlim_cur >= rl.rlim_max)
        return 0;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    *to = (unsigned long)rl.rlim_cur;
    return 0;
}

static unsigned count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return 64;                      /* a guess on the safe side */
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        n += e->d_name[0] != '.';
    closedir(dir);
    return n > 0 ? n - 1 : 0;           /* not the directory's own */
}

static unsigned umin(unsigned long a, unsigned long b)
{
    return (unsigned)(a < b ? a : b);
}

/* at_start: read the limit and count what is open (before the sandbox;
 * a reload only applies new max_clients keys to what was found then) */
void limits_compute(struct daemon *d, bool at_start)
{
    struct limits *l = &d->lim;
    if (at_start) {
        struct rlimit rl;
        l->nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long)rl.rlim_cur : 1024;
        l->fd_base = count_open_fds();
    }
    l->cgroup_fds = (!d->psi_on ? 0 : CGROUP_FDS_V1 > CGROUP_FDS_V2 ? CGROUP_FDS_V1 : CGROUP_FDS_V2) +
                    (d->events_on ? CGROUP_FDS_EV : 0);
    unsigned long spare = l->nofile > l->fd_base + FD_SLACK ? l->nofile - l->fd_base - FD_SLACK : 0;
    /* control slots: a quarter of what is left at most, shared in the
     * proportions of the maxima, at least one per pool */
    const unsigned all = CTL_OPEN_MAX + CTL_OPER_MAX + CTL_METRICS_MAX;
    unsigned ctl = umin(spare / 4, all);
    l->ctl_open = CTL_OPEN_MAX * ctl / all > 0 ? CTL_OPEN_MAX * ctl / all : 1;
    l->ctl_oper = CTL_OPER_MAX * ctl / all > 0 ? CTL_OPER_MAX * ctl / all : 1;
    l->ctl_metrics = CTL_METRICS_MAX * ctl / all > 0 ? CTL_METRICS_MAX * ctl / all : 1;
    l->ctl_per_uid = CTL_PER_UID;
    unsigned long ctl_all = (unsigned long)l->ctl_open + l->ctl_oper + l->ctl_metrics;
    /* the rest is for clients (one socket each) and their cgroups, which
     * limits_client_admit counts as they come */
    unsigned long rest = spare > ctl_all ? spare - ctl_all : 0;
    l->client_cap = (unsigned)(rest < UINT32_MAX ? rest : UINT32_MAX);
    l->max_clients = umin(d->cfg.max_clients, l->client_cap);
    unsigned quarter = l->client_cap / 4 > 0 ? l->client_cap / 4 : 1;
    l->max_per_uid = umin(d->cfg.max_clients_per_uid, quarter);
    l->root_reserve = l->client_cap / 8;
}

unsigned limits_fds_in_use(const struct daemon *d)
{
    return d->lim.fd_base + (unsigned)d->nclients + (unsigned)d->nctlconns +
           d->lim.cgroup_fds * (unsigned)d->ncgroups;
}

static size_t clients_of_uid(const struct daemon *d, uid_t uid)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nclients; i++)
        n += d->clients[i]->uid == uid;
    return n;
}

int limits_client_admit(const struct daemon *d, uid_t uid, char *why, size_t len)
{
    const struct limits *l = &d->lim;
    if (d->nclients >= l->max_clients) {
        snprintf(why, len, "too many clients (max_clients %u reached)", l->max_clients);
        return -ENOSPC;
    }
    if (clients_of_uid(d, uid) >= l->max_per_uid) {
        snprintf(why, len, "too many clients for uid %u (limit %u)", (unsigned)uid, l->max_per_uid);
        return -EUSERS;
    }
    /* room for its socket and a cgroup of its own, beside the reserved
     * control slots and, unless it is root's, the root reserve */
    unsigned long need = limits_fds_in_use(d) + 1 + l->cgroup_fds + FD_SLACK +
                         l->ctl_open + l->ctl_oper + l->ctl_metrics - d->nctlconns +
                         (uid != 0 ? l->root_reserve : 0);
    if (need > l->nofile) {
        snprintf(why, len, "out of descriptors (%u of %lu in use%s)", limits_fds_in_use(d),
                 l->nofile, uid != 0 ? "; the rest is kept for root" : "");
        return -EMFILE;
    }
    return 0;
}

int limits_ctl_admit(const struct daemon *d, bool metrics_sock, const struct peer *p,
                     enum ctl_pool *pool, char *why, size_t len)
{
    const struct limits *l = &d->lim;
    unsigned n[CTL_POOLS] = { 0 }, mine = 0;
    for (size_t i = 0; i < d->nctlconns; i++) {
        n[d->ctlconns[i]->pool]++;
        mine += d->ctlconns[i]->pool == CTL_POOL_OPEN && d->ctlconns[i]->peer.uid == p->uid;
    }
    if (metrics_sock) {
        if (!p->metrics && !(p->uid == 0 && p->host)) {
            snprintf(why, len, "metrics.sock is for root and the group %s (uid %u)",
                     d->cfg.metrics_group, (unsigned)p->uid);
            return -EACCES;
        }
        if (n[CTL_POOL_METRICS] >= l->ctl_metrics) {
            snprintf(why, len, "too many connections to metrics.sock (limit %u)", l->ctl_metrics);
            return -ENOSPC;
        }
        *pool = CTL_POOL_METRICS;
        return 0;
    }
    bool oper = p->operator && p->host;
    if (n[CTL_POOL_OPEN] < l->ctl_open && (oper || mine < l->ctl_per_uid)) {
        *pool = CTL_POOL_OPEN;
        return 0;
    }
    if (oper && n[CTL_POOL_OPER] < l->ctl_oper) {
        *pool = CTL_POOL_OPER;
        return 0;
    }
    if (!oper && mine >= l->ctl_per_uid) {
        snprintf(why, len, "too many control connections for uid %u (limit %u at once)",
                 (unsigned)p->uid, l->ctl_per_uid);
        return -EUSERS;
    }
    snprintf(why, len, "too many control connections (limit %u%s)", l->ctl_open,
             oper ? "" : "; more are kept for root and the group hakmem");
    return -ENOSPC;
}
