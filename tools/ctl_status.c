/* ctl_status.c: the STATUS text hakmemd sends, one "name value..." per
 * line:
 *   version V | pid N | uptime_s N | clients N
 *   source NAME on | source NAME off REASON TEXT
 *   signal NAME ORIGIN TEXT
 *   psi_some_avg10 F | psi_some_avg60 F | psi_full_avg10 F | psi_full_avg60 F
 *   cgroup KEY PATH RECLAIM_PER_S        (PATH may hold spaces)
 *   bpf_ringbuf_dropped N | bpf_cgroup_table_full N   (with the BPF source)
 *   limit KEY PATH                       (the cgroup whose limit governs KEY:
 *                                         itself or an ancestor; kept as is)
 * Lines of other names are kept as they are (a newer daemon may say
 * more); a known line that does not parse is counted, not fatal.
 *
 * Owns: that grammar. Must not: log, or trust a length or a number
 * without checking it (the text comes from another process).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ctl.h"

const char *const ctl_psi_names[CTL_PSI_COUNT] = {
    "psi_some_avg10", "psi_some_avg60", "psi_full_avg10", "psi_full_avg60",
};

/* A whole decimal number, no sign, nothing after it. */
static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end)
        return -EINVAL;
    *v = x;
    return 0;
}

static int parse_i64(const char *s, int64_t *v)
{
    uint64_t x;
    if (parse_u64(s, &x) < 0 || x > INT64_MAX)
        return -EINVAL;
    *v = (int64_t)x;
    return 0;
}

/* A finite float, nothing after it. */
static int parse_f64(const char *s, double *v)
{
    char *end;
    if (!*s)
        return -EINVAL;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || *end || !isfinite(x))
        return -EINVAL;
    *v = x;
    return 0;
}

static int add_other(struct ctl_status *st, const char *name, const char *value)
{
    struct ctl_other *o = realloc(st->other, (st->nother + 1) * sizeof(*o));
    if (!o)
        return -ENOMEM;
    st->other = o;
    o[st->nother].name = strdup(name);
    o[st->nother].value = strdup(value);
    if (!o[st->nother].name || !o[st->nother].value) {
        free(o[st->nother].name);
        free(o[st->nother].value);
        return -ENOMEM;
    }
    st->nother++;
    return 0;
}

/* "NAME on" or "NAME off REASON..." */
static int parse_source(struct ctl_status *st, char *rest)
{
    char *sp = strchr(rest, ' ');
    if (!sp || st->nsources >= CTL_SOURCES_MAX)
        return -EINVAL;
    *sp = '\0';
    char *state = sp + 1, *reason = strchr(state, ' ');
    if (reason)
        *reason++ = '\0';
    if (!*rest || strlen(rest) >= sizeof(st->source[0].name))
        return -EINVAL;

    struct ctl_source *s = &st->source[st->nsources];
    memset(s, 0, sizeof(*s));
    if (strcmp(state, "on") == 0)
        s->on = true;
    else if (strcmp(state, "off") != 0)
        return -EINVAL;
    strcpy(s->name, rest);
    if (reason)
        snprintf(s->reason, sizeof(s->reason), "%s", reason);
    st->nsources++;
    return 0;
}

/* "NAME ORIGIN..." */
static int parse_signal(struct ctl_status *st, char *rest)
{
    char *sp = strchr(rest, ' ');
    if (!sp || st->nsignals >= CTL_SIGNALS_MAX)
        return -EINVAL;
    *sp = '\0';
    if (!*rest || strlen(rest) >= sizeof(st->signal[0].name) || !sp[1])
        return -EINVAL;
    struct ctl_signal *g = &st->signal[st->nsignals++];
    strcpy(g->name, rest);
    snprintf(g->origin, sizeof(g->origin), "%s", sp + 1);
    return 0;
}

/* "KEY PATH RECLAIM_PER_S": the path is all between the first and the
 * last space. */
static int parse_cgroup(struct ctl_status *st, char *rest)
{
    char *sp1 = strchr(rest, ' '), *sp2 = strrchr(rest, ' ');
    uint64_t key;
    double rate;

    if (!sp1 || sp2 == sp1)
        return -EINVAL;
    *sp1 = '\0';
    *sp2 = '\0';
    if (parse_u64(rest, &key) < 0 || parse_f64(sp2 + 1, &rate) < 0 || !sp1[1])
        return -EINVAL;
    struct ctl_cgline *c = realloc(st->cg, (st->ncg + 1) * sizeof(*c));
    if (!c)
        return -ENOMEM;
    st->cg = c;
    c[st->ncg].path = strdup(sp1 + 1);
    if (!c[st->ncg].path)
        return -ENOMEM;
    c[st->ncg].key = key;
    c[st->ncg].reclaim_per_s = rate;
    st->ncg++;
    return 0;
}

/* One line, NUL-terminated, no newline. -EINVAL: malformed. */
static int parse_line(struct ctl_status *st, char *line)
{
    char *rest = strchr(line, ' ');
    if (rest)
        *rest++ = '\0';
    else
        rest = line + strlen(line);

    if (strcmp(line, "version") == 0) {
        if (!*rest || strlen(rest) >= sizeof(st->version))
            return -EINVAL;
        strcpy(st->version, rest);
        return 0;
    }
    if (strcmp(line, "pid") == 0)
        return parse_i64(rest, &st->pid);
    if (strcmp(line, "uptime_s") == 0)
        return parse_i64(rest, &st->uptime_s);
    if (strcmp(line, "clients") == 0)
        return parse_i64(rest, &st->clients);
    if (strcmp(line, "bpf_ringbuf_dropped") == 0)
        return parse_i64(rest, &st->bpf_ringbuf_dropped);
    if (strcmp(line, "bpf_cgroup_table_full") == 0)
        return parse_i64(rest, &st->bpf_cgroup_table_full);
    if (strcmp(line, "source") == 0)
        return parse_source(st, rest);
    if (strcmp(line, "signal") == 0)
        return parse_signal(st, rest);
    if (strcmp(line, "cgroup") == 0)
        return parse_cgroup(st, rest);
    for (int i = 0; i < CTL_PSI_COUNT; i++)
        if (strcmp(line, ctl_psi_names[i]) == 0)
            return parse_f64(rest, &st->psi[i]);
    return add_other(st, line, rest);
}

int ctl_status_parse(const char *text, size_t len, struct ctl_status *st)
{
    memset(st, 0, sizeof(*st));
    st->pid = st->uptime_s = st->clients = st->bpf_ringbuf_dropped = st->bpf_cgroup_table_full = -1;
    for (int i = 0; i < CTL_PSI_COUNT; i++)
        st->psi[i] = NAN;

    unsigned lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        lineno++;
        if (n > 0 && memchr(text + pos, '\0', n) == NULL) {
            char *line = strndup(text + pos, n);
            if (!line)
                return -ENOMEM;
            int rc = parse_line(st, line);
            free(line);
            if (rc == -ENOMEM)
                return rc;
            if (rc < 0 && st->nmalformed++ == 0)
                st->first_malformed = lineno;
        } else if (n > 0) {
            if (st->nmalformed++ == 0)
                st->first_malformed = lineno;
        }
        pos += n + 1;
    }
    return 0;
}

const struct ctl_cgline *ctl_status_cgroup(const struct ctl_status *st, uint64_t key)
{
    for (size_t i = 0; i < st->ncg; i++)
        if (st->cg[i].key == key)
            return &st->cg[i];
    return NULL;
}

void ctl_status_free(struct ctl_status *st)
{
    for (size_t i = 0; i < st->ncg; i++)
        free(st->cg[i].path);
    for (size_t i = 0; i < st->nother; i++) {
        free(st->other[i].name);
        free(st->other[i].value);
    }
    free(st->cg);
    free(st->other);
    memset(st, 0, sizeof(*st));
}
