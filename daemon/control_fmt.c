/* control_fmt.c: what STATUS and CLIENTS answer: the STATUS text lines
 * (version, sources, signals, host PSI, one line per cgroup) and records
 * (tracked cgroups, then active overrides), and one CLIENTS record per
 * registered shim. The layouts are in proto/hakmem_proto.h; control.c
 * owns the sockets and queues what is written here (control_fmt.h).
 *
 * STATUS: TEXT datagrams with "name value" lines (version, pid, uptime_s,
 * clients, one "source NAME on|off [reason]" per source, "signal NAME
 * origin" lines (manager_signal_lines: where each signal comes from on
 * this kernel), host-wide psi_{some,full}_avg{10,60}, one "cgroup KEY
 * PATH RECLAIM_PER_S" per cgroup), then CGROUPS records (tracked cgroups,
 * then active overrides). With the BPF source, STATUS also says what its
 * program lost (bpf_ringbuf_dropped N, bpf_cgroup_table_full N, before
 * the cgroups). CLIENTS: CLIENTS records.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bpf_source.h"
#include "control_fmt.h"
#include "manager.h"

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

void control_cgroup_record(struct daemon *d, const struct cgroup *c, struct hakmem_ctl_cgroup *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->ring_key = c->cg.cgroup_id;
    rec->updated_ns = c->changed_ns;
    rec->level = (uint8_t)c->last.level;
    rec->flags = c->override != HAKMEM_OVERRIDE_AUTO ? HAKMEM_RING_F_OVERRIDE : 0;
    rec->reason = (uint16_t)c->last.reason;
    rec->nclients = c->nclients;
    rec->reclaim_events = c->prev.direct_reclaims + c->prev.memcg_reclaims;
    rec->reclaim_ns = c->prev.reclaim_ns;
    /* the usage against the limit that governs: maybe an ancestor's */
    const struct usage_entry *u = cgroup_usage(d, c, NULL);
    if (!u && d->usage_on)
        u = usage_source_find(&d->usage, c->cg.cgroup_id); /* no limit: its own usage */
    if (u && u->last.time_ns && u->last.error == 0) {
        rec->usage_bytes = u->last.mem.usage_bytes;
        rec->limit_bytes = u->last.limit_bytes == CGROUP_UNLIMITED ? 0 : u->last.limit_bytes;
    }
    if (c->psi_avg_ok)
        rec->psi_some_avg10 = c->psi_avg.some.avg10_cpct;
}

/* Clients that said hello (not the connections still being checked). */
size_t control_registered_clients(const struct daemon *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nclients; i++)
        n += d->clients[i]->welcomed;
    return n;
}

void control_fmt_status(struct daemon *d, struct resp *r)
{
    uint64_t now = now_ns();
    resp_text(r, "version %s\n", HAKMEM_VERSION_STRING);
    resp_text(r, "pid %d\n", (int)getpid());
    resp_text(r, "uptime_s %llu\n", (unsigned long long)((now - d->start_ns) / 1000000000u));
    resp_text(r, "clients %zu\n", control_registered_clients(d));
    resp_text(r, "source bpf %s\n", source_line(d->bpf != NULL, d->bpf_reason));
    resp_text(r, "source psi %s\n", source_line(d->psi_on, d->psi_reason));
    resp_text(r, "source vmpressure %s\n", source_line(d->vmpressure_on, d->vmpressure_reason));
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
        resp_text(r, "cgroup %llu %s %llu\n", (unsigned long long)c->cg.cgroup_id, path,
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
        resp_text(r, "limit %llu %s\n", (unsigned long long)c->cg.cgroup_id, path);
    }
    struct hakmem_ctl_cgroup rec;
    for (size_t i = 0; i < d->ncgroups; i++) {
        control_cgroup_record(d, d->cgroups[i], &rec);
        resp_record(r, HAKMEM_CTL_PAYLOAD_CGROUPS, &rec, sizeof(rec));
    }
    if (d->host_override != HAKMEM_OVERRIDE_AUTO) {
        memset(&rec, 0, sizeof(rec));
        rec.ring_key = HAKMEM_KEY_ALL;
        rec.flags = HAKMEM_RING_F_OVERRIDE;
        rec.reason = HAKMEM_REASON_OVERRIDE;
        rec.level = d->host_override == HAKMEM_OVERRIDE_ON ? (uint8_t)d->host_override_level : HAKMEM_LEVEL_NONE;
        rec.nclients = (uint32_t)d->nclients;
        resp_record(r, HAKMEM_CTL_PAYLOAD_CGROUPS, &rec, sizeof(rec));
    }
    for (size_t i = 0; i < d->nclients; i++) {
        const struct client *c = d->clients[i];
        if (c->override == HAKMEM_OVERRIDE_AUTO)
            continue;
        memset(&rec, 0, sizeof(rec));
        rec.ring_key = HAKMEM_KEY_PID((uint32_t)c->pid);
        rec.flags = HAKMEM_RING_F_OVERRIDE;
        rec.reason = HAKMEM_REASON_OVERRIDE;
        rec.level = c->override == HAKMEM_OVERRIDE_ON ? (uint8_t)c->override_level : HAKMEM_LEVEL_NONE;
        rec.nclients = 1;
        resp_record(r, HAKMEM_CTL_PAYLOAD_CGROUPS, &rec, sizeof(rec));
    }
}

void control_fmt_clients(struct daemon *d, struct resp *r)
{
    for (size_t i = 0; i < d->nclients; i++) {
        const struct client *c = d->clients[i];
        if (!c->welcomed)
            continue;
        struct hakmem_ctl_client rec;
        memset(&rec, 0, sizeof(rec));
        rec.cgroup_id = c->cgroup_id;
        rec.connected_ns = c->connected_ns;
        rec.pid = (uint32_t)c->pid;
        rec.uid = (uint32_t)c->uid;
        rec.override = (uint8_t)c->override;
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
