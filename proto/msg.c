/* msg.c: hello/welcome, control request/response, the stats page, and
 * the check on received memfds (layouts in hakmem_proto.h).
 * Owns: filling messages with the right magic, version and size;
 * checking received bytes against their count before any field is used;
 * the stats page seqlock (writer and reader).
 * Must not: allocate, log, or trust a size field over the byte count.
 * The stats page is shared with an untrusted peer: readers copy it under
 * the seqlock and check the copy, with a bounded number of attempts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "msg.h"

/* Stats seqlock read attempts before -EAGAIN (see RING_READ_RETRIES). A
 * shim killed in the middle of a write leaves seq odd for good: its page
 * then reads -EAGAIN until the client is dropped. */
#define STATS_READ_RETRIES 64

#define ERRNO_MAX 4095 /* statuses are 0 or -1..-4095 */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* ---- names ------------------------------------------------------------- */

static const char *const level_names[HAKMEM_LEVEL_COUNT] = { "none", "low", "medium", "critical" };
static const char *const mode_names[HAKMEM_MODE_COUNT] = { "fast", "lean" };
static const char *const reason_names[HAKMEM_REASON_COUNT] = {
#define X(id, name) name,
    HAKMEM_REASONS(X)
#undef X
};
static const char *const counter_names[HAKMEM_COUNTER_COUNT] = {
#define X(name, doc) #name,
    HAKMEM_COUNTERS(X)
#undef X
};
static const unsigned char counter_kinds[HAKMEM_COUNTER_COUNT] = {
#define X(name, doc) HAKMEM_COUNTER_KIND(name),
    HAKMEM_COUNTERS(X)
#undef X
};
/* Where the counters of a version 1 page go (its order, frozen in
 * HAKMEM_STATS_COUNTERS_V1): a name missing from HAKMEM_COUNTERS does not
 * compile. */
static const unsigned char v1_counter_ids[] = {
#define X(name) HAKMEM_COUNTER_ID(name),
    HAKMEM_STATS_COUNTERS_V1(X)
#undef X
};
#define V1_NCOUNTERS (sizeof(v1_counter_ids) / sizeof(v1_counter_ids[0]))

const char *proto_level_name(unsigned level)
{
    return level < HAKMEM_LEVEL_COUNT ? level_names[level] : "?";
}

int proto_level_parse(const char *s, unsigned *out)
{
    for (unsigned l = 0; l < HAKMEM_LEVEL_COUNT; l++) {
        if (strcasecmp(s, level_names[l]) == 0 || (s[0] == (char)('0' + l) && s[1] == '\0')) {
            *out = l;
            return 0;
        }
    }
    return -EINVAL;
}

const char *proto_mode_name(unsigned mode)
{
    return mode < HAKMEM_MODE_COUNT ? mode_names[mode] : "?";
}

const char *proto_reason_name(unsigned reason)
{
    return reason < HAKMEM_REASON_COUNT ? reason_names[reason] : "?";
}

const char *proto_counter_name(unsigned id)
{
    return id < HAKMEM_COUNTER_COUNT ? counter_names[id] : NULL;
}

int proto_counter_kind(unsigned id)
{
    return id < HAKMEM_COUNTER_COUNT ? counter_kinds[id] : -1;
}

/* ---- text from the other side ------------------------------------------ */

size_t proto_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

char *proto_clean_text(char *dst, size_t len, const char *src)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t n = strlen(src), o = 0;

    if (len == 0)
        return dst;
    for (size_t i = 0; i < n && o + 1 < len;) {
        size_t l = proto_utf8_len(s + i, n - i);
        bool c1 = l == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0;
        if (l == 0 || c1 || (l == 1 && (s[i] < 0x20 || s[i] == 0x7f))) {
            dst[o++] = '?';
            i += l ? l : 1;
        } else if (o + l < len) {
            memmove(dst + o, s + i, l);   /* o <= i: in place works */
            o += l;
            i += l;
        } else {
            break;
        }
    }
    dst[o] = '\0';
    return dst;
}

/* ---- common ------------------------------------------------------------ */

/* The bytes of a message of type magic, between want and max bytes, of a
 * version from min_version to HAKMEM_PROTO_VERSION. */
static int msg_check(const void *buf, size_t len, uint32_t magic, size_t want, size_t max,
                     uint32_t min_version)
{
    struct hakmem_msg_hdr h;

    if (!buf)
        return -EINVAL;
    if (len > HAKMEM_MSG_MAX)
        return -EMSGSIZE;
    if (len < sizeof(h))
        return -EBADMSG;
    memcpy(&h, buf, sizeof(h));
    if (h.magic != magic)
        return -EBADMSG;
    if (h.version < min_version || h.version > HAKMEM_PROTO_VERSION)
        return -EPROTONOSUPPORT;
    if (h.size != len)
        return -EBADMSG;
    if (len < want)
        return -EBADMSG;
    if (len > max)
        return -EMSGSIZE;
    return 0;
}

static int status_ok(int32_t status)
{
    return status <= 0 && status >= -ERRNO_MAX;
}

/* ---- rendezvous -------------------------------------------------------- */

void proto_hello_init(struct hakmem_hello *h, uint32_t pid, uint32_t flags, uint32_t stats_size,
                      uint32_t mode, const char *comm)
{
    memset(h, 0, sizeof(*h));
    h->magic = HAKMEM_HELLO_MAGIC;
    h->version = HAKMEM_PROTO_VERSION;
    h->size = sizeof(*h);
    h->flags = flags;
    h->pid = pid;
    h->stats_size = stats_size;
    h->mode = mode;
    if (comm) {
        size_t n = strnlen(comm, HAKMEM_COMM_LEN - 1);
        memcpy(h->comm, comm, n);
    }
}

int proto_hello_check(const void *buf, size_t len, struct hakmem_hello *out)
{
    struct hakmem_hello h;
    int rc = msg_check(buf, len, HAKMEM_HELLO_MAGIC, sizeof(h), sizeof(h), HAKMEM_PROTO_VERSION_MIN);
    if (rc < 0)
        return rc;
    memcpy(&h, buf, sizeof(h));
    if (h.flags & ~HAKMEM_HELLO_F_MASK)
        return -EINVAL;
    if (h.flags & HAKMEM_HELLO_F_STATS) {
        if (h.stats_size < sizeof(struct hakmem_stats_page) || h.stats_size > HAKMEM_STATS_MAX_SIZE)
            return -EINVAL;
    } else if (h.stats_size != 0) {
        return -EINVAL;
    }
    if (h.mode >= HAKMEM_MODE_COUNT)
        return -EINVAL;
    if (!memchr(h.comm, '\0', sizeof(h.comm)))
        return -EINVAL;
    *out = h;
    return 0;
}

void proto_welcome_init(struct hakmem_welcome *w, int32_t status)
{
    memset(w, 0, sizeof(*w));
    w->magic = HAKMEM_WELCOME_MAGIC;
    w->version = HAKMEM_PROTO_VERSION;
    w->size = sizeof(*w);
    w->status = status;
}

int proto_welcome_check(const void *buf, size_t len, struct hakmem_welcome *out)
{
    struct hakmem_welcome w;
    int rc = msg_check(buf, len, HAKMEM_WELCOME_MAGIC, sizeof(w), sizeof(w), HAKMEM_PROTO_VERSION_MIN);
    if (rc < 0)
        return rc;
    memcpy(&w, buf, sizeof(w));
    if (!status_ok(w.status) || w.flags != 0)
        return -EINVAL;
    if (w.status == 0) {
        if (w.ring_size < sizeof(struct hakmem_ring_hdr) || w.ring_size > HAKMEM_RING_MAX_SIZE)
            return -EINVAL;
        if (w.heartbeat_period_ns == 0)
            return -EINVAL;
        if (w.cgroup_key & HAKMEM_KEY_PID_BIT)
            return -EINVAL;
        if (w.pid_key && !(w.pid_key & HAKMEM_KEY_PID_BIT))
            return -EINVAL;
    }
    *out = w;
    return 0;
}

/* ---- control ----------------------------------------------------------- */

void proto_ctl_req_init(struct hakmem_ctl_req *q, uint16_t command)
{
    memset(q, 0, sizeof(*q));
    q->magic = HAKMEM_CTL_REQ_MAGIC;
    q->version = HAKMEM_PROTO_VERSION;
    q->size = sizeof(*q);
    q->command = command;
}

int proto_ctl_req_check(const void *buf, size_t len, struct hakmem_ctl_req *out)
{
    struct hakmem_ctl_req q;
    int rc = msg_check(buf, len, HAKMEM_CTL_REQ_MAGIC, sizeof(q), sizeof(q), HAKMEM_PROTO_VERSION);
    if (rc < 0)
        return rc;
    memcpy(&q, buf, sizeof(q));
    if (q.command < HAKMEM_CTL_STATUS || q.command > HAKMEM_CTL_CMD_MAX)
        return -EINVAL;
    if ((q.flags & ~HAKMEM_CTL_REQ_F_MASK)
        || ((q.flags & HAKMEM_CTL_REQ_F_PER_PROCESS) && q.command != HAKMEM_CTL_METRICS))
        return -EINVAL;
    if (q.target > HAKMEM_CTL_TARGET_MAX || q.mode > HAKMEM_CTL_MODE_MAX)
        return -EINVAL;
    if (q.level >= HAKMEM_LEVEL_COUNT)
        return -EINVAL;
    if (q.target == HAKMEM_CTL_TARGET_PID && (q.key == 0 || q.key > INT32_MAX))
        return -EINVAL;
    if (q.target == HAKMEM_CTL_TARGET_CGROUP && (q.key == 0 || (q.key & HAKMEM_KEY_PID_BIT)))
        return -EINVAL;
    *out = q;
    return 0;
}

void proto_ctl_resp_init(struct hakmem_ctl_resp *h, uint16_t command, int32_t status,
                         uint16_t payload_type, uint32_t payload_len, uint16_t flags)
{
    memset(h, 0, sizeof(*h));
    h->magic = HAKMEM_CTL_RESP_MAGIC;
    h->version = HAKMEM_PROTO_VERSION;
    h->size = (uint32_t)sizeof(*h) + payload_len;
    h->status = status;
    h->command = command;
    h->flags = flags;
    h->payload_type = payload_type;
    h->payload_len = payload_len;
    if (payload_type == HAKMEM_CTL_PAYLOAD_CGROUPS)
        h->record_size = sizeof(struct hakmem_ctl_cgroup);
    else if (payload_type == HAKMEM_CTL_PAYLOAD_CLIENTS)
        h->record_size = sizeof(struct hakmem_ctl_client);
}

int proto_ctl_resp_check(const void *buf, size_t len, struct hakmem_ctl_resp *out,
                         const unsigned char **payload)
{
    struct hakmem_ctl_resp h;
    int rc = msg_check(buf, len, HAKMEM_CTL_RESP_MAGIC, sizeof(h), HAKMEM_MSG_MAX,
                       HAKMEM_PROTO_VERSION);
    if (rc < 0)
        return rc;
    memcpy(&h, buf, sizeof(h));
    if (h.payload_len != len - sizeof(h))
        return -EBADMSG;
    if (!status_ok(h.status) || (h.flags & ~HAKMEM_CTL_F_MASK))
        return -EINVAL;
    if (h.command == HAKMEM_CTL_REFUSED) {
        /* a refusal: an error, the last datagram, words at most */
        if (h.status == 0 || (h.flags & HAKMEM_CTL_F_MORE) ||
            (h.payload_type != HAKMEM_CTL_PAYLOAD_NONE && h.payload_type != HAKMEM_CTL_PAYLOAD_TEXT))
            return -EINVAL;
    } else if (h.command < HAKMEM_CTL_STATUS || h.command > HAKMEM_CTL_CMD_MAX) {
        return -EINVAL;
    }
    switch (h.payload_type) {
    case HAKMEM_CTL_PAYLOAD_NONE:
        if (h.payload_len != 0 || h.record_size != 0)
            return -EINVAL;
        break;
    case HAKMEM_CTL_PAYLOAD_TEXT:
        if (h.record_size != 0)
            return -EINVAL;
        break;
    case HAKMEM_CTL_PAYLOAD_CGROUPS:
        if (h.record_size != sizeof(struct hakmem_ctl_cgroup) || h.payload_len % h.record_size)
            return -EINVAL;
        break;
    case HAKMEM_CTL_PAYLOAD_CLIENTS:
        if (h.record_size != sizeof(struct hakmem_ctl_client) || h.payload_len % h.record_size)
            return -EINVAL;
        break;
    default:
        return -EINVAL;
    }
    *out = h;
    if (payload)
        *payload = (const unsigned char *)buf + sizeof(h);
    return 0;
}

/* ---- stats page -------------------------------------------------------- */

int proto_stats_init(void *mem, size_t size, uint32_t pid)
{
    if (!mem || (uintptr_t)mem % 8 || size < sizeof(struct hakmem_stats_page))
        return -EINVAL;
    struct hakmem_stats_page *pg = mem;
    memset(pg, 0, sizeof(*pg));
    pg->magic = HAKMEM_STATS_MAGIC;
    pg->version = HAKMEM_PROTO_VERSION;
    pg->size = sizeof(*pg);
    pg->pid = pid;
    atomic_store_explicit(&pg->ncounters, HAKMEM_COUNTER_COUNT, memory_order_release);
    return 0;
}

/* Counters 0..n-1 of s (its present bits from bit 0 on: a page of this
 * version holds a prefix of HAKMEM_COUNTERS). */
void proto_stats_write(struct hakmem_stats_page *pg, const struct proto_stats *s)
{
    uint64_t seq = atomic_load_explicit(&pg->seq, memory_order_relaxed);
    uint32_t n = 0;
    while (n < HAKMEM_STATS_MAX_COUNTERS && (s->present >> n & 1))
        n++;

    atomic_store_explicit(&pg->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&pg->updated_ns, s->updated_ns, memory_order_relaxed);
    atomic_store_explicit(&pg->mode, s->mode, memory_order_relaxed);
    atomic_store_explicit(&pg->last_level, s->last_level, memory_order_relaxed);
    atomic_store_explicit(&pg->ncounters, n, memory_order_relaxed);
    atomic_store_explicit(&pg->flags, s->flags, memory_order_relaxed);
    for (uint32_t i = 0; i < HAKMEM_STATS_MAX_COUNTERS; i++)
        atomic_store_explicit(&pg->counter[i], i < n ? s->counter[i] : 0, memory_order_relaxed);
    atomic_store_explicit(&pg->seq, seq + 2, memory_order_release);
}

/* A checked snapshot's counters, as ids of this version: version 1 pages
 * list theirs in the frozen v1 order. */
static void stats_place(uint32_t version, uint32_t n, const uint64_t in[HAKMEM_STATS_MAX_COUNTERS],
                        struct proto_stats *out)
{
    memset(out->counter, 0, sizeof(out->counter));
    out->present = 0;
    for (uint32_t i = 0; i < n; i++) {
        unsigned id = i;
        if (version == 1) {
            if (i >= V1_NCOUNTERS)
                break;
            id = v1_counter_ids[i];
        } else if (i >= HAKMEM_COUNTER_COUNT) {
            break;                      /* a newer shim's: not known here */
        }
        out->counter[id] = in[i];
        out->present |= UINT32_C(1) << id;
    }
}

/* 0 with a consistent, checked *out; -EBADMSG, -EPROTONOSUPPORT,
 * -EINVAL (fields out of range), or -EAGAIN (no stable snapshot). */
int proto_stats_read(const void *mem, size_t size, struct proto_stats *out)
{
    struct hakmem_msg_hdr h;
    uint32_t pid;

    if (!mem || (uintptr_t)mem % 8)
        return -EINVAL;
    if (size < sizeof(struct hakmem_stats_page))
        return -EBADMSG;
    memcpy(&h, mem, sizeof(h));
    memcpy(&pid, (const unsigned char *)mem + offsetof(struct hakmem_stats_page, pid), sizeof(pid));
    if (h.magic != HAKMEM_STATS_MAGIC)
        return -EBADMSG;
    if (h.version < HAKMEM_PROTO_VERSION_MIN || h.version > HAKMEM_PROTO_VERSION)
        return -EPROTONOSUPPORT;
    if (h.size < sizeof(struct hakmem_stats_page) || h.size > size)
        return -EBADMSG;

    const struct hakmem_stats_page *pg = mem;
    struct proto_stats s;
    uint64_t c[HAKMEM_STATS_MAX_COUNTERS];
    for (int t = 0; t < STATS_READ_RETRIES; t++) {
        uint64_t s1 = atomic_load_explicit(&pg->seq, memory_order_acquire);
        if (s1 & 1) {
            cpu_relax();
            continue;
        }
        s.pid = pid;
        s.updated_ns = atomic_load_explicit(&pg->updated_ns, memory_order_relaxed);
        s.mode = atomic_load_explicit(&pg->mode, memory_order_relaxed);
        s.last_level = atomic_load_explicit(&pg->last_level, memory_order_relaxed);
        uint32_t n = atomic_load_explicit(&pg->ncounters, memory_order_relaxed);
        s.flags = atomic_load_explicit(&pg->flags, memory_order_relaxed);
        for (uint32_t i = 0; i < HAKMEM_STATS_MAX_COUNTERS; i++)
            c[i] = atomic_load_explicit(&pg->counter[i], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&pg->seq, memory_order_relaxed) != s1) {
            cpu_relax();
            continue;
        }
        if (s.mode >= HAKMEM_MODE_COUNT || s.last_level >= HAKMEM_LEVEL_COUNT
            || n > HAKMEM_STATS_MAX_COUNTERS || (s.flags & ~HAKMEM_STATS_F_MASK))
            return -EINVAL;
        stats_place(h.version, n, c, &s);
        *out = s;
        return 0;
    }
    return -EAGAIN;
}

/* ---- received memfds --------------------------------------------------- */

int proto_memfd_check(int fd, uint64_t min, uint64_t max, uint64_t *size)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if (st.st_size < 0 || (uint64_t)st.st_size < min || (uint64_t)st.st_size > max)
        return -EINVAL;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0)
        return -errno;
    if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        return -EPERM;
    if (size)
        *size = (uint64_t)st.st_size;
    return 0;
}
