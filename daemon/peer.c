/* peer.c: who is at the other end of a socket, and what it may change.
 *
 * Identity comes from the kernel: SO_PEERCRED (pid in our namespace,
 * effective uid and gid at connect time) and the peer's /proc/PID/status
 * (supplementary groups, and NSpid, which has one entry exactly when the
 * peer is in hakmemd's own pid namespace). Nothing a peer sends is used.
 * /proc/PID/ns/ (the namespace links) would say more but needs ptrace access, which hakmemd
 * gives up in its sandbox; NSpid and /proc/PID/cgroup are world-readable.
 *
 * The rule (see SECURITY.md): reading is open to every local user. A
 * change (hakmemctl lean) needs root or the group hakmem; a peer in
 * another pid namespace (a container, whose root is uid 0 here unless it
 * has a user namespace of its own) may change only cgroups inside its own
 * memory cgroup, and the clients in them, never every client.
 * Must not: block, log, or trust anything but the kernel's answers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "manager.h"

/* Is gid among the "Groups:" of a /proc/PID/status text? */
static bool status_has_group(const char *status, gid_t gid)
{
    const char *g = strstr(status, "\nGroups:");
    if (!g)
        return false;
    for (g += 8; *g && *g != '\n';) {
        char *end;
        unsigned long v = strtoul(g, &end, 10);
        if (end == g)
            break;
        if ((gid_t)v == gid)
            return true;
        g = end;
    }
    return false;
}

/* Entries of the "NSpid:" line: 1 in hakmemd's own pid namespace. */
static int status_nspid_depth(const char *status)
{
    const char *l = strstr(status, "\nNSpid:");
    if (!l)
        return 1;                       /* kernels before 4.1: no pid namespaces to tell */
    int n = 0;
    for (l += 7; *l && *l != '\n';) {
        while (*l == ' ' || *l == '\t')
            l++;
        if (*l < '0' || *l > '9')
            break;
        n++;
        while (*l >= '0' && *l <= '9')
            l++;
    }
    return n;
}

int peer_identify(struct daemon *d, int fd, struct peer *p)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    memset(p, 0, sizeof(*p));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
        return -errno;
    p->pid = cr.pid;
    p->uid = cr.uid;
    p->gid = cr.gid;
    char path[64], status[4096];
    bool have = false;
    if (cr.pid > 0) {
        snprintf(path, sizeof(path), "/proc/%d/status", (int)cr.pid);
        have = cgroup_read_file(path, status, sizeof(status)) >= 0;
    }
    /* a pid of 0: the peer is outside our pid namespace's view altogether */
    p->host = have && status_nspid_depth(status) == 1;
    bool in_hakmem = d->have_hakmem_gid &&
                     (cr.gid == d->hakmem_gid || (have && status_has_group(status, d->hakmem_gid)));
    p->operator = cr.uid == 0 || in_hakmem;
    p->metrics = d->have_metrics_gid &&
                 (cr.gid == d->metrics_gid || (have && status_has_group(status, d->metrics_gid)));
    return 0;
}

/* Is path the same cgroup as top, or below it? */
static bool cgroup_within(const char *path, const char *top)
{
    size_t n = strlen(top);
    if (strcmp(top, "/") == 0)
        return true;
    return strncmp(path, top, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int peer_may_lean(struct daemon *d, const struct peer *p, const struct hakmem_ctl_req *q,
                  char *why, size_t len)
{
    if (!p->operator) {
        snprintf(why, len, "changing modes needs root or the group hakmem (uid %u)", (unsigned)p->uid);
        return -EPERM;
    }
    if (p->host)
        return 0;
    /* a container's root (or a member of hakmem in one): its own subtree only */
    struct cgroup_memcg own;
    int rc = p->pid > 0 ? cgroup_memcg_of_pid("/proc", d->cfg.cgroup_root, &d->ns, p->pid, &own) : -ESRCH;
    if (rc < 0) {
        snprintf(why, len, "a process in a container (another pid namespace) "
                 "may change only its own memory cgroup, and hakmemd cannot find that of pid %d "
                 "(%s)", (int)p->pid, strerror(-rc));
        return -EPERM;
    }
    if (strcmp(own.path, "/") == 0) {
        snprintf(why, len, "a process in a container (another pid namespace) "
                 "may change only cgroups inside its own memory cgroup, and its own is the "
                 "host's root");
        return -EPERM;
    }
    const char *target = NULL;
    if (q->target == HAKMEM_CTL_TARGET_ALL) {
        snprintf(why, len, "a process in a container (another pid namespace) "
                 "may not change every client; only cgroups inside its own (%s)", own.path);
        return -EPERM;
    } else if (q->target == HAKMEM_CTL_TARGET_CGROUP) {
        struct cgroup *c = cgroup_find(d, q->key);
        if (!c)
            return -ENOENT;
        target = c->cg.path;
    } else {
        struct client *c = client_by_pid(d, (pid_t)q->key);
        if (!c)
            return -ENOENT;
        target = c->cgroup ? c->cgroup->cg.path : "/";
    }
    if (!cgroup_within(target, own.path)) {
        snprintf(why, len, "a process in a container (another pid namespace) "
                 "may change only cgroups inside its own (%s), and %s is not", own.path, target);
        return -EPERM;
    }
    return 0;
}
