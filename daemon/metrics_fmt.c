/* metrics_fmt.c: the METRICS answer, Prometheus exposition text: the
 * daemon's own series, per-cgroup series (the sums metrics.c and acct.c
 * keep), and per-process ones on request. Label sets are bounded (docs/
 * ARCHITECTURE.md, "Metrics"); tests/deploy/metricnames.py reads the
 * family names in this file. control.c owns the sockets (control_fmt.h).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bpf_source.h"
#include "control_fmt.h"
#include "manager.h"

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

static const char *cgroup_path_of(struct daemon *d, uint64_t cgroup_id)
{
    struct cgroup *c = cgroup_find(d, cgroup_id);
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

void metrics_fmt(struct daemon *d, struct resp *r, bool per_process)
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
    resp_text(r, "hakmem_clients %zu\n", control_registered_clients(d));
    metric_head(r, "hakmem_source_up", "gauge", "Whether a pressure source runs (1) or not (0).");
    resp_text(r, "hakmem_source_up{source=\"bpf\"} %d\n", d->bpf != NULL);
    resp_text(r, "hakmem_source_up{source=\"psi\"} %d\n", d->psi_on);
    resp_text(r, "hakmem_source_up{source=\"vmpressure\"} %d\n", d->vmpressure_on);
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
        control_cgroup_record(d, d->cgroups[i], &rec[i]);
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
                      label(cgroup_path_of(d, c->cgroup_id)), (unsigned long long)st.counter[s]);
        }
    }
    metric_head(r, "hakmem_client_mode", "gauge", "Shim mode, per client (0 FAST, 1 LEAN).");
    for (size_t i = 0; i < nsc; i++) {
        const struct client *c = sc[i];
        struct proto_stats st;
        if (client_stats(c, &st) == 0)
            resp_text(r, "hakmem_client_mode{pid=\"%d\",uid=\"%u\",comm=\"%s\",cgroup=\"%s\"} %u\n",
                      (int)c->pid, (unsigned)c->uid, label(c->comm),
                      label(cgroup_path_of(d, c->cgroup_id)), st.mode);
    }
    free(sc);
}
