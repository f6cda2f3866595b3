/* manager.h: hakmemd's state and the boxes that share it.
 *
 *   manager.c   the event loop (epoll over signals, a tick timer, the
 *               sockets, the sources), tracked cgroups, the sources' glue
 *               and the calls into the policy; sd_notify.
 *   clients.c   the rendezvous socket: hello/welcome, the client table,
 *               eviction of slow clients.
 *   control.c   the control sockets: control.sock (status, clients, lean,
 *               metrics) and metrics.sock (the same, read-only).
 *   peer.c      who a peer is (SO_PEERCRED, /proc) and what it may change.
 *   limits.c    the descriptor budget: NOFILE, client and control limits.
 *   metrics.c   what the metrics count beyond the state above: per-cgroup
 *               sums of the shim counters, release times, refusals.
 *
 * Single-threaded: everything runs on the event loop's thread, and no
 * handler blocks (every socket is non-blocking and every peer untrusted).
 */
#ifndef HAKMEMD_MANAGER_H
#define HAKMEMD_MANAGER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "bpf_source.h"
#include "cgroup_util.h"
#include "config.h"
#include "hakmem_proto.h"
#include "memevents_source.h"
#include "policy.h"
#include "psi_source.h"
#include "vmpressure_source.h"
#include "publisher.h"
#include "usage_source.h"
#include "metrics.h"

/* What an epoll event is about (epoll_data.ptr points at one of these). */
enum ep_kind { EP_SIGNAL, EP_TIMER, EP_RENDEZVOUS, EP_CONTROL, EP_METRICS, EP_CLIENT,
               EP_CTLCONN, EP_BPF, EP_VMPRESSURE, EP_PSI, EP_MEMEVENTS,
               EP_DEAD };   /* its owner is gone (manager_defer_free): events are ignored */
struct ep_tag {
    enum ep_kind kind;
    void *owner;                        /* client, ctlconn or cgroup */
};

/* An ancestor of a tracked cgroup: its limit bounds the cgroup too. */
struct cgroup_ancestor {
    uint64_t key;                       /* its usage_source entry */
    char *path;                         /* path in the hierarchy (owned) */
};
#define CGROUP_ANCESTORS_MAX 16         /* deeper ones are not watched (a
                                           Kubernetes container is at depth 4,
                                           a systemd user app at 5) */

/* A memory cgroup with at least one client (or an operator override). */
struct cgroup {
    struct ep_tag vmp_tag, psi_tag, mev_tag;
    struct cgroup_memcg cg;             /* dir, path, version, key */
    /* its ancestors below the hierarchy's root, nearest first: usage is
     * measured against the tightest limit of the chain (usage_source.h) */
    struct cgroup_ancestor anc[CGROUP_ANCESTORS_MAX];
    size_t nanc;
    uint32_t nclients;
    struct policy_state st;
    struct policy_result last;          /* as published */
    uint64_t changed_ns;                /* last level change, ns */
    enum policy_override override;      /* hakmemctl lean on this cgroup */
    enum hakmem_level override_level;
    struct cg_acct *acct;               /* its metrics record (metrics_cgroup), or NULL */
    /* bpf */
    bool bpf_watched;
    struct hakmem_memcg_stats prev;     /* counters at the last tick */
    uint64_t prev_ns;
    uint64_t tick_events_per_s;         /* from counter deltas */
    uint64_t tick_stall_ns_per_s;
    uint64_t ev_events_per_s;           /* from the last notification ... */
    uint64_t ev_stall_ns_per_s;
    uint64_t ev_until_ns;               /* ... valid until then */
    bool oom_pending;
    /* v1 memory.pressure_level, or a v2 PSI trigger on the cgroup */
    bool vmp_open, psi_open, psi_fired;
    struct vmpressure_source vmp;
    struct psi_trigger psi;
    /* v2 PSI averages of the cgroup, read at every tick (also where no
     * trigger could be armed: a delegated subtree's file is the user's) */
    struct psi_stats psi_avg;
    bool psi_avg_ok;
    /* v2 memory.events */
    bool mev_open;
    struct memevents_source mev;
    struct memevents mev_rose;          /* rose since the last evaluation */
    struct memevents mev_total;         /* rose since the cgroup was tracked */
};

/* A peer as the kernel describes it (peer.c). */
struct peer {
    pid_t pid;                          /* SO_PEERCRED: in our pid namespace; 0 if outside it */
    uid_t uid;                          /* SO_PEERCRED: effective uid at connect */
    gid_t gid;
    bool host;                          /* in hakmemd's pid namespace (not a container) */
    bool operator;                      /* root, or in the group hakmem */
    bool metrics;                       /* in metrics_group */
};

/* Control connection pools (limits.c). */
enum ctl_pool { CTL_POOL_OPEN, CTL_POOL_OPER, CTL_POOL_METRICS, CTL_POOLS };

/* The descriptor budget and what it allows (limits.c). */
struct limits {
    unsigned long nofile;               /* soft RLIMIT_NOFILE in force */
    unsigned fd_base;                   /* descriptors open once set up */
    unsigned cgroup_fds;                /* a tracked cgroup holds at most this many */
    unsigned client_cap;                /* descriptors left for clients */
    unsigned max_clients;               /* in force: config, lowered by the budget */
    unsigned max_per_uid;               /* in force */
    unsigned root_reserve;              /* client descriptors only uid 0 may take */
    unsigned ctl_open, ctl_oper, ctl_metrics; /* control slots per pool */
    unsigned ctl_per_uid;               /* OPEN slots one uid may hold */
};

struct client {
    struct ep_tag tag;
    int fd;
    pid_t pid;                          /* SO_PEERCRED: our namespace */
    uid_t uid;
    gid_t gid;
    bool welcomed;
    uint64_t connected_ns;
    uint64_t key;                       /* cgroup key; 0 before the welcome */
    struct cgroup *cgroup;
    void *stats;                        /* mapped read-only, or NULL */
    size_t stats_len;
    char comm[HAKMEM_COMM_LEN];
    enum hakmem_ctl_mode ctl_mode;      /* override on this pid */
    enum hakmem_level ctl_level;
    struct client_acct acct;            /* metrics.c */
};

struct ctlconn {
    struct ep_tag tag;
    int fd;
    struct peer peer;
    enum ctl_pool pool;
    bool readonly;                      /* came in on metrics.sock */
    uint64_t opened_ns;
    unsigned char *out;                 /* the answer: [u32 length][datagram]... */
    size_t out_len, out_sent, out_cap;  /* bytes */
    bool answering;                     /* request read, answer being sent */
};

struct daemon {
    struct hakmemd_config cfg;
    char config_path[CONFIG_STR_MAX];
    char *const *sets;                  /* --set KEY=VALUE of the command line, reapplied at reload */
    int nsets;
    uint64_t start_ns;
    int epfd, sigfd, timerfd, rdv_fd, ctl_fd, met_fd, notify_fd, lock_fd;
    struct ep_tag sig_tag, timer_tag, rdv_tag, ctl_tag, met_tag, bpf_tag;
    struct ep_tag release_tag;          /* EP_TIMER too: metrics.c's timer */
    struct limits lim;
    uint64_t heartbeat_ns;              /* beat at least this often: the ring's first period,
                                           which readers of its info block rely on */
    struct publisher pub;
    struct policy_thresholds th;
    /* sources: on, or off with the reason */
    struct bpf_source *bpf;
    char bpf_reason[160];
    bool psi_on;
    char psi_reason[160];
    bool usage_on;
    char usage_reason[160];
    struct usage_source usage;
    struct usage_schedule usage_sched;
    bool events_on;
    char events_reason[160];
    enum cgroup_version memcg_version;  /* the hierarchy of hakmemd's own memory cgroup */
    struct cgroup_ns ns;                /* where hakmemd's cgroup namespace lies */
    uint32_t psi_window_us, psi_stall_us; /* the last trigger armed (0: none yet) */
    uint64_t next_tick_ns, next_usage_ns, next_heartbeat_ns;
    /* tables */
    struct cgroup **cgroups;
    size_t ncgroups, cap_cgroups;
    struct client **clients;
    size_t nclients, cap_clients;
    struct ctlconn **ctlconns;
    size_t nctlconns, cap_ctlconns;
    void **graveyard;                   /* freed after the current epoll batch */
    size_t ngrave, cap_grave;
    /* host-wide override (hakmemctl lean all) */
    enum hakmem_ctl_mode all_mode;
    enum hakmem_level all_level;
    gid_t hakmem_gid, metrics_gid;
    bool have_hakmem_gid, have_metrics_gid;
    bool stop;
    int spare_fd;                       /* held back for EMFILE (accept_or_shed) */
    uint64_t last_emfile_log_ns;
    struct metrics met;                 /* metrics.c */
};

/* manager.c */
uint64_t now_ns(void);
int manager_init(struct daemon *d);
int manager_run(struct daemon *d);
void manager_fini(struct daemon *d);
int manager_epoll_add(struct daemon *d, int fd, uint32_t events, struct ep_tag *tag);
void manager_epoll_del(struct daemon *d, int fd);
/* Free p once the current batch of events is handled; the tags marked
 * EP_DEAD now (tag2 and tag3 may be NULL) make its pending events no-ops. A client,
 * control connection or cgroup is freed this way, never with free(). */
void manager_defer_free(struct daemon *d, void *p, struct ep_tag *tag, struct ep_tag *tag2,
                        struct ep_tag *tag3);
struct cgroup *cgroup_get(struct daemon *d, const struct cgroup_memcg *cg);
struct cgroup *cgroup_find(struct daemon *d, uint64_t key);
void cgroup_put(struct daemon *d, struct cgroup *c);
void cgroup_evaluate(struct daemon *d, struct cgroup *c, uint64_t now);
/* The usage sample that governs c: of c or of the ancestor whose limit is
 * nearest to being reached (usage_chain_permille), with its path in
 * *path (may be NULL). NULL when usage is off or no cgroup of the chain
 * has a limit and a sample. */
const struct usage_entry *cgroup_usage(const struct daemon *d, const struct cgroup *c,
                                       const char **path);
int sd_notify_msg(struct daemon *d, const char *msg);
/* "signal NAME what" lines for STATUS: which signal comes from where on
 * this kernel and hierarchy. Returns the length written (truncated to len). */
size_t manager_signal_lines(const struct daemon *d, char *buf, size_t len);

/* clients.c */
int listen_at(const char *dir, const char *name, mode_t mode, gid_t gid);
/* Connections a listener's event accepts at most; the listener, still
 * readable, comes back in the next epoll_wait after the events already
 * returned, so that a user reconnecting as fast as hakmemd refuses cannot
 * hold the loop on control.sock (or hakmemd.sock) while metrics.sock waits. */
#define ACCEPT_BATCH 32
/* *shed counts the connections refused for want of descriptors. */
int accept_or_shed(struct daemon *d, int lfd, const char *what,
                   void (*refuse)(int fd, int status, const char *why), uint64_t *shed);
void drain_input(int fd);
int clients_listen(struct daemon *d);
void clients_accept(struct daemon *d);
void clients_event(struct daemon *d, struct client *c, uint32_t events);
void clients_sweep(struct daemon *d, uint64_t now);
void clients_close_all(struct daemon *d);
struct client *client_by_pid(struct daemon *d, pid_t pid);
int client_stats(const struct client *c, struct proto_stats *out);

/* control.c */
int control_listen(struct daemon *d);
void control_accept(struct daemon *d, bool metrics_sock);
void control_event(struct daemon *d, struct ctlconn *cc, uint32_t events);
void control_sweep(struct daemon *d, uint64_t now);
void control_close_all(struct daemon *d);

/* peer.c */
int peer_identify(struct daemon *d, int fd, struct peer *p);
/* 0, -ENOENT (no such target), or -EPERM with the reason in why. */
int peer_may_lean(struct daemon *d, const struct peer *p, const struct hakmem_ctl_req *q,
                  char *why, size_t len);

/* limits.c */
int limits_raise_nofile(unsigned long *from, unsigned long *to);
void limits_compute(struct daemon *d, bool at_start);
unsigned limits_fds_in_use(const struct daemon *d);
/* 0, or -ENOSPC / -EUSERS / -EMFILE with the reason in why. */
int limits_client_admit(const struct daemon *d, uid_t uid, char *why, size_t len);
/* 0 with the pool in *pool, or -EUSERS (this uid's share taken), -ENOSPC
 * (the pool full) or -EACCES (metrics.sock, not for this peer), with the
 * reason in why. */
int limits_ctl_admit(const struct daemon *d, bool metrics_sock, const struct peer *p,
                     enum ctl_pool *pool, char *why, size_t len);

/* metrics.c: set up before the sockets, ended after them */
int metrics_init(struct daemon *d);
void metrics_fini(struct daemon *d);
/* c's record, found or made (and tracked again if it was gone); NULL
 * when out of memory. */
struct cg_acct *metrics_cgroup(struct daemon *d, struct cgroup *c);
/* c is no longer tracked: its record lingers (METRICS_LINGER_NS). */
void metrics_cgroup_gone(struct daemon *d, struct cgroup *c, uint64_t now);
/* c's published level changed (cgroup_evaluate): counted, and a raise
 * makes each of its clients' release pending. */
void metrics_level_changed(struct daemon *d, struct cgroup *c, unsigned from, unsigned to,
                           uint64_t now);
/* A client was welcomed (hello_mode: its hello's mode) / is leaving
 * (before its cgroup lets it go). */
void metrics_client_joined(struct daemon *d, struct client *c, uint32_t hello_mode);
void metrics_client_left(struct daemon *d, struct client *c);
/* The release timer fired (an EP_TIMER event on d->release_tag): the
 * pages of clients with a pending release, looked at. */
void metrics_release_timer(struct daemon *d);
/* Before printing: every client's page folded into its cgroup's record,
 * the records of cgroups gone past the linger removed. */
void metrics_fold(struct daemon *d, uint64_t now);

/* sandbox.c */
int sandbox_enter(char *why, size_t len);

#endif
