/* ctl_show.c: what hakmemctl prints: the status and the clients as
 * tables for people or as JSON members for machines, and the Prometheus
 * text turned into JSON samples.
 *
 * Owns: column choice and widths, the units shown (bytes as K/M/G with
 * base 1024 in tables, exact bytes in JSON), and the JSON member names,
 * which are the daemon's own words: the STATUS line names, the counter
 * names of HAKMEM_COUNTERS (proto_counter_name), levels, modes and reasons as
 * proto_*_name spells them.
 * Must not: talk to the daemon or exit; it only formats a ctl_view.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ctl.h"
#include "msg.h"

static const char *const override_names[] = { "auto", "on", "off" };

const char *override_name(unsigned override)
{
    return override <= HAKMEM_OVERRIDE_MAX ? override_names[override] : "?";
}

/* ---- small formatters ---------------------------------------------------- */

/* Bytes for a table: 512, 1.5K, 12.3M, 4.0G (base 1024). */
static const char *fmt_bytes(char *buf, size_t len, uint64_t b)
{
    static const char units[] = "KMGTPE";
    if (b < 1024) {
        snprintf(buf, len, "%" PRIu64, b);
        return buf;
    }
    double v = (double)b / 1024;
    int u = 0;
    while (v >= 1024 && units[u + 1]) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, v < 10 ? "%.1f%c" : "%.0f%c", v, units[u]);
    return buf;
}

/* A count the daemon may not have said (-1): "?". */
static const char *fmt_count(char *buf, size_t len, int64_t n)
{
    if (n < 0)
        snprintf(buf, len, "?");
    else
        snprintf(buf, len, "%" PRId64, n);
    return buf;
}

static const char *fmt_uptime(char *buf, size_t len, int64_t s)
{
    if (s < 0)
        snprintf(buf, len, "?");
    else if (s >= 86400)
        snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h%02" PRId64 "m", s / 86400, s / 3600 % 24,
                 s / 60 % 60);
    else if (s >= 3600)
        snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m%02" PRId64 "s", s / 3600, s / 60 % 60, s % 60);
    else if (s >= 60)
        snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else
        snprintf(buf, len, "%" PRId64 "s", s);
    return buf;
}

/* The tail of s in at most w columns ("...tail" when cut): cgroup
 * paths differ at their end. */
static const char *fit_tail(char *buf, size_t len, const char *s, int w)
{
    size_t n = strlen(s);
    if (w < 4 || n <= (size_t)w)
        snprintf(buf, len, "%s", s);
    else {
        const char *tail = s + n - (size_t)(w - 3);
        while (((unsigned char)*tail & 0xc0) == 0x80) /* not inside a UTF-8 character */
            tail++;
        snprintf(buf, len, "...%s", tail);
    }
    return buf;
}

/* Keys of STATUS records that are not cgroups (overrides). */
static const char *key_kind(uint64_t key)
{
    if (key == HAKMEM_KEY_ALL)
        return "all";
    if (key & HAKMEM_KEY_PID_BIT)
        return "pid";
    return "cgroup";
}

/* What to call a key in a table: its path when the status text named it. */
static const char *key_label(char *buf, size_t len, const struct ctl_view *v, uint64_t key)
{
    const struct ctl_cgline *c = v->have_status ? ctl_status_cgroup(&v->status, key) : NULL;
    if (key == HAKMEM_KEY_ALL)
        snprintf(buf, len, "(all)");
    else if (key & HAKMEM_KEY_PID_BIT)
        snprintf(buf, len, "(pid %" PRIu64 ")", key & ~HAKMEM_KEY_PID_BIT);
    else if (c)
        proto_clean_text(buf, len, c->path);
    else
        snprintf(buf, len, "#%" PRIu64, key);
    return buf;
}

/* Width of the name column: the longest label, within what the screen
 * leaves (width 0: no screen limit). */
static int label_width(int longest, int others, int width)
{
    int w = longest;
    if (width > 0 && w > width - others)
        w = width - others;
    if (w > 64 && width <= 0)
        w = 64;
    if (w < 12)
        w = 12;
    return w;
}

/* ---- status -------------------------------------------------------------- */

/* Rows of the cgroup table: the records, then status lines without one. */
static bool cgline_has_record(const struct ctl_view *v, uint64_t key)
{
    for (size_t i = 0; i < v->status_reply.ncgroups; i++)
        if (v->status_reply.cgroups[i].ring_key == key)
            return true;
    return false;
}

void show_status_text(FILE *f, const struct ctl_view *v, int width)
{
    const struct ctl_status *st = &v->status;
    char b1[32], b2[32], lbl[4096], cut[4096];

    fprintf(f, "hakmemd %s, pid %" PRId64 ", up %s, %" PRId64 " client%s\n",
            st->version[0] ? proto_clean_text(lbl, sizeof(lbl), st->version) : "?", st->pid, fmt_uptime(b1, sizeof(b1), st->uptime_s),
            st->clients, st->clients == 1 ? "" : "s");
    fputs("sources:", f);
    for (size_t i = 0; i < st->nsources; i++) {
        const struct ctl_source *s = &st->source[i];
        fprintf(f, "%s %s %s", i ? "," : "", proto_clean_text(lbl, sizeof(lbl), s->name),
                s->on ? "on" : "off");
        if (!s->on && s->reason[0])
            fprintf(f, " (%s)", proto_clean_text(lbl, sizeof(lbl), s->reason));
    }
    fputs(st->nsources ? "\n" : " ?\n", f);
    if (st->nsignals)
        fputs("signals:\n", f);
    for (size_t i = 0; i < st->nsignals; i++)
        fprintf(f, "  %-14s %s\n", proto_clean_text(cut, sizeof(cut), st->signal[i].name),
                proto_clean_text(lbl, sizeof(lbl), st->signal[i].origin));
    fputs("host PSI memory (avg10/avg60):", f);
    for (int i = 0; i < CTL_PSI_COUNT; i += 2) {
        fprintf(f, " %s ", i == 0 ? "some" : "full");
        for (int k = i; k < i + 2; k++) {
            if (isnan(st->psi[k]))
                fputs("?", f);
            else
                fprintf(f, "%.2f%%", st->psi[k]);
            fputs(k == i ? "/" : (i == 0 ? "," : "\n"), f);
        }
    }
    if (st->bpf_ringbuf_dropped >= 0 || st->bpf_cgroup_table_full >= 0)
        fprintf(f, "bpf lost: %s notifications (ring buffer full), %s events (cgroup table full)\n",
                fmt_count(b1, sizeof(b1), st->bpf_ringbuf_dropped),
                fmt_count(b2, sizeof(b2), st->bpf_cgroup_table_full));

    size_t nrec = v->status_reply.ncgroups;
    int longest = 6;
    for (size_t i = 0; i < nrec; i++) {
        int n = (int)strlen(key_label(lbl, sizeof(lbl), v, v->status_reply.cgroups[i].ring_key));
        longest = n > longest ? n : longest;
    }
    for (size_t i = 0; i < st->ncg; i++) {
        int n = (int)strlen(st->cg[i].path);
        longest = n > longest ? n : longest;
    }
    /* the other columns take 86 characters */
    int w = label_width(longest, 86, width);

    fprintf(f, "\n%-*s %-8s %-11s %-6s %7s %9s %10s %7s %7s %5s %6s\n", w, "cgroup", "level",
            "reason", "forced", "clients", "reclaim/s", "reclaims", "usage", "limit", "use%",
            "psi10");
    if (nrec == 0 && st->ncg == 0)
        fputs("(no cgroup tracked)\n", f);
    for (size_t i = 0; i < nrec; i++) {
        const struct hakmem_ctl_cgroup *c = &v->status_reply.cgroups[i];
        const struct ctl_cgline *cl = ctl_status_cgroup(st, c->ring_key);
        char rate[32], pct[16];
        if (cl)
            snprintf(rate, sizeof(rate), "%.1f", cl->reclaim_per_s);
        else
            snprintf(rate, sizeof(rate), "-");
        if (c->limit_bytes)
            snprintf(pct, sizeof(pct), "%.0f", 100.0 * (double)c->usage_bytes / (double)c->limit_bytes);
        else
            snprintf(pct, sizeof(pct), "-");
        fprintf(f, "%-*s %-8s %-11s %-6s %7" PRIu32 " %9s %10" PRIu64 " %7s %7s %5s %6.2f\n", w,
                fit_tail(cut, sizeof(cut), key_label(lbl, sizeof(lbl), v, c->ring_key), w),
                proto_level_name(c->level), proto_reason_name(c->reason),
                (c->flags & HAKMEM_RING_F_OVERRIDE) ? "yes" : "-", c->nclients, rate,
                c->reclaim_events, c->usage_bytes ? fmt_bytes(b1, sizeof(b1), c->usage_bytes) : "-",
                c->limit_bytes ? fmt_bytes(b2, sizeof(b2), c->limit_bytes) : "-", pct,
                c->psi_some_avg10 / 100.0);
    }
    for (size_t i = 0; i < st->ncg; i++) {
        if (cgline_has_record(v, st->cg[i].key))
            continue;
        fprintf(f, "%-*s %-8s %-11s %-6s %7s %9.1f %10s %7s %7s %5s %6s\n", w,
                fit_tail(cut, sizeof(cut), proto_clean_text(lbl, sizeof(lbl), st->cg[i].path), w), "-", "-", "-", "-",
                st->cg[i].reclaim_per_s, "-", "-", "-", "-", "-");
    }
}

static void json_cgroup_record(struct ctl_json *j, const struct ctl_view *v,
                               const struct hakmem_ctl_cgroup *c, const struct ctl_cgline *cl)
{
    json_obj(j, NULL);
    json_u64(j, "key", c ? c->ring_key : cl->key);
    uint64_t key = c ? c->ring_key : cl->key;
    json_str(j, "kind", key_kind(key));
    if (key & HAKMEM_KEY_PID_BIT)
        json_u64(j, "pid", key & ~HAKMEM_KEY_PID_BIT);
    json_str(j, "path", cl ? cl->path : NULL);
    if (cl)
        json_f64(j, "reclaim_per_s", cl->reclaim_per_s);
    else
        json_null(j, "reclaim_per_s");
    if (c) {
        json_str(j, "level", proto_level_name(c->level));
        json_str(j, "reason", proto_reason_name(c->reason));
        json_bool(j, "override", c->flags & HAKMEM_RING_F_OVERRIDE);
        json_u64(j, "nclients", c->nclients);
        json_u64(j, "reclaim_events", c->reclaim_events);
        json_u64(j, "reclaim_ns", c->reclaim_ns);
        json_u64(j, "usage_bytes", c->usage_bytes);
        if (c->limit_bytes)
            json_u64(j, "limit_bytes", c->limit_bytes);
        else
            json_null(j, "limit_bytes");
        json_f64(j, "psi_some_avg10", c->psi_some_avg10 / 100.0);
        json_u64(j, "updated_ns", c->updated_ns);
    }
    json_end(j);
}

void show_status_json(struct ctl_json *j, const struct ctl_view *v)
{
    const struct ctl_status *st = &v->status;

    json_str(j, "version", st->version[0] ? st->version : NULL);
    json_i64_known(j, "pid", st->pid);
    json_i64_known(j, "uptime_s", st->uptime_s);
    json_i64_known(j, "clients", st->clients);
    json_obj(j, "sources");
    for (size_t i = 0; i < st->nsources; i++) {
        json_obj(j, st->source[i].name);
        json_bool(j, "on", st->source[i].on);
        json_str(j, "reason", st->source[i].on || !st->source[i].reason[0] ? NULL
                                                                          : st->source[i].reason);
        json_end(j);
    }
    json_end(j);
    json_obj(j, "signals");
    for (size_t i = 0; i < st->nsignals; i++)
        json_str(j, st->signal[i].name, st->signal[i].origin);
    json_end(j);
    for (int i = 0; i < CTL_PSI_COUNT; i++)
        json_f64(j, ctl_psi_names[i], st->psi[i]);
    /* null: not said (the BPF source is off, or an older hakmemd) */
    json_i64_known(j, "bpf_ringbuf_dropped", st->bpf_ringbuf_dropped);
    json_i64_known(j, "bpf_cgroup_table_full", st->bpf_cgroup_table_full);
    json_arr(j, "cgroups");
    for (size_t i = 0; i < v->status_reply.ncgroups; i++) {
        const struct hakmem_ctl_cgroup *c = &v->status_reply.cgroups[i];
        json_cgroup_record(j, v, c, ctl_status_cgroup(st, c->ring_key));
    }
    for (size_t i = 0; i < st->ncg; i++)
        if (!cgline_has_record(v, st->cg[i].key))
            json_cgroup_record(j, v, NULL, &st->cg[i]);
    json_end(j);
    json_obj(j, "other");
    for (size_t i = 0; i < st->nother; i++)
        json_str(j, st->other[i].name, st->other[i].value);
    json_end(j);
}

/* ---- clients ------------------------------------------------------------- */

/* comm from a record: at most HAKMEM_COMM_LEN - 1 bytes, NUL-terminated
 * here whatever the daemon sent. */
static void client_comm(const struct hakmem_ctl_client *c, char out[HAKMEM_COMM_LEN])
{
    memcpy(out, c->comm, HAKMEM_COMM_LEN);
    out[HAKMEM_COMM_LEN - 1] = '\0';
}

/* A counter of a record (enum hakmem_counter_id), or false when the
 * record does not carry it (an older shim reports fewer). */
static bool client_counter(const struct hakmem_ctl_client *c, unsigned id, uint64_t *v)
{
    if (c->stats_updated_ns == 0 || id >= HAKMEM_STATS_MAX_COUNTERS || !(c->counters_present >> id & 1))
        return false;
    *v = c->counter[id];
    return true;
}

static bool client_rss(const struct ctl_view *v, const struct hakmem_ctl_client *c, uint64_t *rss)
{
    char comm[HAKMEM_COMM_LEN];
    client_comm(c, comm);
    return v->same_pidns && ctl_proc_rss(v->proc_root, c->pid, comm, rss) == 0;
}

/* The part of the RSS given back lazily (MADV_FREE): shown next to it so
 * that a reader sees why RSS stays up after a release. */
static bool client_lazyfree(const struct ctl_view *v, const struct hakmem_ctl_client *c,
                            uint64_t *lazy)
{
    char comm[HAKMEM_COMM_LEN];
    client_comm(c, comm);
    return v->same_pidns && ctl_proc_lazyfree(v->proc_root, c->pid, comm, lazy) == 0;
}

void show_clients_text(FILE *f, const struct ctl_view *v, int width)
{
    const struct ctl_reply *r = &v->clients_reply;
    static const unsigned cols[] = {
        HAKMEM_COUNTER_ID(lean_decommit), HAKMEM_COUNTER_ID(lean_retire),
        HAKMEM_COUNTER_ID(madvise_calls), HAKMEM_COUNTER_ID(bytes_decommitted),
        HAKMEM_COUNTER_ID(mode_switches),
    };
    char lbl[4096], cut[4096], b[32];

    /* the cgroup comes last: paths are long, the numbers stay aligned and
     * a narrow screen cuts only the path (keeping its end). The uid tells
     * whose a process is: names are the processes' own choice. */
    fprintf(f, "%7s %6s %-15s %-5s %-8s %7s %8s %11s", "pid", "uid", "comm", "mode", "level", "rss",
            "lazyfree", "superslabs");
    for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++)
        fprintf(f, " %*s", (int)strlen(proto_counter_name(cols[k])), proto_counter_name(cols[k]));
    fputs(" cgroup\n", f);
    if (r->nclients == 0)
        fputs("(no client connected)\n", f);
    /* the columns before the cgroup take 148 characters */
    int w = width > 0 ? width - 149 : 0;

    for (size_t i = 0; i < r->nclients; i++) {
        const struct hakmem_ctl_client *c = &r->clients[i];
        char comm[HAKMEM_COMM_LEN], pcomm[4 * HAKMEM_COMM_LEN], ss[48], mode[16];
        uint64_t rss, lazy, live, cached;
        char b2[32];

        client_comm(c, comm);
        proto_clean_text(pcomm, sizeof(pcomm), comm);
        if (client_counter(c, HAKMEM_COUNTER_ID(superslabs_live), &live)
            && client_counter(c, HAKMEM_COUNTER_ID(superslabs_cached), &cached))
            snprintf(ss, sizeof(ss), "%" PRIu64 "/%" PRIu64, live, cached);
        else
            snprintf(ss, sizeof(ss), "-");
        snprintf(mode, sizeof(mode), "%s%s", c->stats_updated_ns ? proto_mode_name(c->mode) : "-",
                 c->override != HAKMEM_OVERRIDE_AUTO ? "!" : "");
        fprintf(f, "%7" PRIu32 " %6" PRIu32 " %-15s %-5s %-8s %7s %8s %11s", c->pid, c->uid, pcomm,
                mode,
                c->stats_updated_ns ? proto_level_name(c->last_level) : "-",
                client_rss(v, c, &rss) ? fmt_bytes(b, sizeof(b), rss) : "-",
                client_lazyfree(v, c, &lazy) ? fmt_bytes(b2, sizeof(b2), lazy) : "-", ss);
        for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++) {
            int cw = (int)strlen(proto_counter_name(cols[k]));
            uint64_t x;
            if (!client_counter(c, cols[k], &x))
                fprintf(f, " %*s", cw, "-");
            else if (cols[k] == HAKMEM_COUNTER_ID(bytes_decommitted))
                fprintf(f, " %*s", cw, fmt_bytes(b, sizeof(b), x));
            else
                fprintf(f, " %*" PRIu64, cw, x);
        }
        const char *label = key_label(lbl, sizeof(lbl), v, c->cgroup_id);
        fprintf(f, " %s\n", w >= 12 ? fit_tail(cut, sizeof(cut), label, w) : label);
    }
    bool forced = false;
    for (size_t i = 0; i < r->nclients; i++)
        forced |= r->clients[i].override != HAKMEM_OVERRIDE_AUTO;
    if (forced)
        fputs("(mode!: forced by hakmemctl lean on this pid)\n", f);
}

void show_clients_json(struct ctl_json *j, const struct ctl_view *v)
{
    const struct ctl_reply *r = &v->clients_reply;

    json_arr(j, "clients");
    for (size_t i = 0; i < r->nclients; i++) {
        const struct hakmem_ctl_client *c = &r->clients[i];
        const struct ctl_cgline *cl =
            v->have_status ? ctl_status_cgroup(&v->status, c->cgroup_id) : NULL;
        char comm[HAKMEM_COMM_LEN];
        uint64_t rss;

        client_comm(c, comm);
        json_obj(j, NULL);
        json_u64(j, "pid", c->pid);
        json_u64(j, "uid", c->uid);
        json_str(j, "comm", comm);
        json_u64(j, "cgroup_key", c->cgroup_id);
        json_str(j, "cgroup_path", cl ? cl->path : NULL);
        json_bool(j, "stats", c->stats_updated_ns != 0);
        if (c->stats_updated_ns) {
            json_str(j, "mode", proto_mode_name(c->mode));
            json_str(j, "last_level", proto_level_name(c->last_level));
        } else {
            json_null(j, "mode");
            json_null(j, "last_level");
        }
        json_str(j, "override", override_name(c->override));
        json_bool(j, "lean_env", c->flags & HAKMEM_STATS_F_LEAN_ENV);
        json_bool(j, "follows_daemon", c->flags & HAKMEM_STATS_F_DAEMON);
        json_u64(j, "connected_ns", c->connected_ns);
        json_u64(j, "stats_updated_ns", c->stats_updated_ns);
        if (client_rss(v, c, &rss))
            json_u64(j, "rss_bytes", rss);
        else
            json_null(j, "rss_bytes");
        if (client_lazyfree(v, c, &rss))
            json_u64(j, "lazyfree_bytes", rss);
        else
            json_null(j, "lazyfree_bytes");
        json_obj(j, "counters");
        for (unsigned k = 0; k < HAKMEM_COUNTER_COUNT; k++) {
            uint64_t x;                 /* mode and level are shown above */
            if (proto_counter_kind(k) != HAKMEM_KIND_STATE && client_counter(c, k, &x))
                json_u64(j, proto_counter_name(k), x);
        }
        json_end(j);
        json_end(j);
    }
    json_end(j);
}

/* ---- metrics ------------------------------------------------------------- */

/* The end of the label set "{l="v",...}" that starts at line[i] (i itself
 * when there is none), or 0 when it is malformed. */
static size_t labels_end(const char *line, size_t n, size_t i)
{
    if (i >= n || line[i] != '{')
        return i;
    i++;
    while (i < n && line[i] != '}') {
        while (i < n && line[i] != '=')
            i++;
        if (++i >= n || line[i] != '"')
            return 0;
        for (i++; i < n && line[i] != '"'; i++)
            if (line[i] == '\\')
                i++;
        if (i++ >= n)
            return 0;
        if (i < n && line[i] == ',')
            i++;
    }
    return i < n ? i + 1 : 0;
}

/* One sample line "name{l="v",...} value [timestamp]" as JSON; false
 * when the line is not one (then nothing was written). */
static bool metric_sample(struct ctl_json *j, const char *line, size_t n)
{
    size_t i = 0, name_end;
    char lname[256], lval[1024];

    while (i < n && (line[i] == '_' || line[i] == ':' || (line[i] >= 'a' && line[i] <= 'z')
                     || (line[i] >= 'A' && line[i] <= 'Z') || (i > 0 && line[i] >= '0' && line[i] <= '9')))
        i++;
    name_end = i;
    if (name_end == 0)
        return false;

    /* check the label set before writing anything */
    size_t labels = i;
    i = labels_end(line, n, i);
    if (i == 0)
        return false;
    while (i < n && line[i] == ' ')
        i++;
    size_t vstart = i;
    while (i < n && line[i] != ' ')
        i++;
    if (vstart == i)
        return false;

    char value[64];
    size_t vl = i - vstart < sizeof(value) - 1 ? i - vstart : sizeof(value) - 1;
    memcpy(value, line + vstart, vl);
    value[vl] = '\0';
    char *end;
    double d = strtod(value, &end);
    if (*end)
        return false;

    json_obj(j, NULL);
    json_strn(j, "name", line, name_end);
    json_obj(j, "labels");
    if (labels < n && line[labels] == '{') {
        size_t k = labels + 1;
        while (k < n && line[k] != '}') {
            size_t ns = k;
            while (line[k] != '=')
                k++;
            snprintf(lname, sizeof(lname), "%.*s", (int)(k - ns), line + ns);
            k += 2; /* =" */
            size_t o = 0;
            for (; line[k] != '"'; k++) {
                char ch = line[k];
                if (ch == '\\') {
                    ch = line[++k];
                    ch = ch == 'n' ? '\n' : ch;
                }
                if (o < sizeof(lval) - 1)
                    lval[o++] = ch;
            }
            lval[o] = '\0';
            k++;
            if (line[k] == ',')
                k++;
            json_str(j, lname, lval);
        }
    }
    json_end(j);
    if (isfinite(d))
        json_f64(j, "value", d);
    else
        json_str(j, "value", value); /* NaN, +Inf, -Inf: not JSON numbers */
    json_end(j);
    return true;
}

void show_metrics_json(struct ctl_json *j, const char *text, size_t len)
{
    /* three passes over the text: samples, then HELP, then TYPE */
    static const char *const sections[] = { NULL, "# HELP ", "# TYPE " };
    static const char *const keys[] = { "samples", "help", "type" };

    for (int s = 0; s < 3; s++) {
        if (s == 0)
            json_arr(j, keys[s]);
        else
            json_obj(j, keys[s]);
        size_t pos = 0;
        while (pos < len) {
            const char *line = text + pos;
            const char *nl = memchr(line, '\n', len - pos);
            size_t n = nl ? (size_t)(nl - line) : len - pos;
            pos += n + 1;
            if (s == 0) {
                if (n && line[0] != '#')
                    metric_sample(j, line, n);
                continue;
            }
            size_t pl = strlen(sections[s]);
            if (n <= pl || memcmp(line, sections[s], pl) != 0)
                continue;
            const char *name = line + pl, *sp = memchr(name, ' ', n - pl);
            if (!sp)
                continue;
            char key[256];
            snprintf(key, sizeof(key), "%.*s", (int)(sp - name), name);
            json_strn(j, key, sp + 1, (size_t)(line + n - (sp + 1)));
        }
        json_end(j);
    }
}
