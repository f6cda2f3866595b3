/* ring.c: the shared-memory ring (layout and protocol in hakmem_proto.h).
 * Owns: building the region (daemon), publishing with the per-slot and
 * per-entry seqlocks, the heartbeat and the futex word; validating a
 * mapped region and reading it (clients).
 * Must not: allocate, log, map memory, or write to the region from any
 * reader function (clients map it PROT_READ: plain atomic loads only, no
 * read-modify-write). Every bound a reader uses comes from its validated
 * copy in struct ring, and every loop over shared data is bounded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "ring.h"

/* Seqlock read attempts before giving up with -EAGAIN. A write is a few
 * stores, so 64 failed attempts mean a stuck or hostile writer rather
 * than bad luck; a reader must not spin forever on a shared page. */
#define RING_READ_RETRIES 64

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static inline int is_pow2(uint64_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static inline uint64_t round_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

/* ---- geometry ---------------------------------------------------------- */

size_t ring_layout_size(uint32_t slots, uint32_t table_cap)
{
    if (!is_pow2(slots) || slots > HAKMEM_RING_MAX_SLOTS)
        return 0;
    if (!is_pow2(table_cap) || table_cap > HAKMEM_RING_MAX_TABLE)
        return 0;
    uint64_t n = sizeof(struct hakmem_ring_hdr)
               + (uint64_t)slots * sizeof(struct hakmem_ring_slot)
               + (uint64_t)table_cap * sizeof(struct hakmem_ring_entry);
    return (size_t)round_up(n, HAKMEM_RING_PAGE);
}

static inline const struct hakmem_ring_slot *slot_at(const struct ring *r, uint64_t pos)
{
    return (const struct hakmem_ring_slot *)(r->slots
        + (size_t)((pos - 1) & r->slot_mask) * r->slot_size);
}

static inline const struct hakmem_ring_entry *entry_at(const struct ring *r, uint32_t i)
{
    return (const struct hakmem_ring_entry *)(r->table + (size_t)(i & r->table_mask) * r->entry_size);
}

/* [off, off + len) inside [lo, hi)? No overflow for len <= 2^32 * 2^12. */
static inline int span_ok(uint64_t off, uint64_t len, uint64_t lo, uint64_t hi)
{
    return off >= lo && off <= hi && len <= hi - off;
}

int ring_validate(struct ring *r, const void *mem, size_t size)
{
    struct hakmem_ring_info in;

    if (!r || !mem)
        return -EINVAL;
    if ((uintptr_t)mem % HAKMEM_RING_ALIGN)
        return -EINVAL;
    if (size < sizeof(struct hakmem_ring_hdr))
        return -EBADMSG;
    /* One copy of the info block; from here on only the copy is used. */
    memcpy(&in, mem, sizeof(in));
    if (in.magic != HAKMEM_RING_MAGIC)
        return -EBADMSG;
    if (in.version != HAKMEM_RING_VERSION)
        return -EPROTONOSUPPORT;
    if (in.header_size < sizeof(struct hakmem_ring_hdr) || in.header_size % HAKMEM_RING_ALIGN)
        return -EBADMSG;
    if (!is_pow2(in.slot_count) || in.slot_count > HAKMEM_RING_MAX_SLOTS)
        return -EBADMSG;
    if (in.slot_size < sizeof(struct hakmem_ring_slot) || in.slot_size > HAKMEM_RING_MAX_ELEM
        || in.slot_size % 8)
        return -EBADMSG;
    if (!is_pow2(in.table_cap) || in.table_cap > HAKMEM_RING_MAX_TABLE)
        return -EBADMSG;
    if (in.entry_size < sizeof(struct hakmem_ring_entry) || in.entry_size > HAKMEM_RING_MAX_ELEM
        || in.entry_size % 8)
        return -EBADMSG;
    if (in.total_size > size || in.total_size > HAKMEM_RING_MAX_SIZE
        || in.total_size < in.header_size)
        return -EBADMSG;
    if (in.slot_off % 8 || in.table_off % 8)
        return -EBADMSG;
    uint64_t slots_len = (uint64_t)in.slot_count * in.slot_size;
    uint64_t table_len = (uint64_t)in.table_cap * in.entry_size;
    if (!span_ok(in.slot_off, slots_len, in.header_size, in.total_size))
        return -EBADMSG;
    if (!span_ok(in.table_off, table_len, in.header_size, in.total_size))
        return -EBADMSG;
    /* The two arrays must not overlap. */
    if (in.slot_off < in.table_off ? in.slot_off + slots_len > in.table_off
                                   : in.table_off + table_len > in.slot_off)
        return -EBADMSG;
    if (in.heartbeat_period_ns == 0)
        return -EBADMSG;

    const unsigned char *base = mem;
    r->hdr = mem;
    r->slots = base + in.slot_off;
    r->table = base + in.table_off;
    r->size = size;
    r->total_size = in.total_size;
    r->slot_mask = in.slot_count - 1;
    r->slot_size = in.slot_size;
    r->table_mask = in.table_cap - 1;
    r->entry_size = in.entry_size;
    r->generation = in.generation;
    r->heartbeat_period_ns = in.heartbeat_period_ns;
    r->daemon_pid = in.daemon_pid;
    return 0;
}

/* ---- producer ---------------------------------------------------------- */

int ring_init(struct ring_producer *p, void *mem, size_t size, uint32_t slots,
              uint32_t table_cap, const struct ring_params *params)
{
    size_t need = ring_layout_size(slots, table_cap);

    if (!p || !mem || !params || need == 0 || params->heartbeat_period_ns == 0)
        return -EINVAL;
    if ((uintptr_t)mem % HAKMEM_RING_ALIGN)
        return -EINVAL;
    if (size < need)
        return -ENOSPC;

    memset(mem, 0, need);
    struct hakmem_ring_hdr *h = mem;
    struct hakmem_ring_info *in = &h->info;
    in->magic = HAKMEM_RING_MAGIC;
    in->version = HAKMEM_RING_VERSION;
    in->header_size = sizeof(struct hakmem_ring_hdr);
    in->slot_count = slots;
    in->slot_size = sizeof(struct hakmem_ring_slot);
    in->table_cap = table_cap;
    in->entry_size = sizeof(struct hakmem_ring_entry);
    in->daemon_pid = params->daemon_pid;
    in->slot_off = sizeof(struct hakmem_ring_hdr);
    in->table_off = in->slot_off + (uint64_t)slots * sizeof(struct hakmem_ring_slot);
    in->total_size = need;
    in->generation = params->generation;
    in->heartbeat_period_ns = params->heartbeat_period_ns;
    in->created_ns = params->now_ns;
    atomic_store_explicit(&h->heartbeat_ns, params->now_ns, memory_order_relaxed);
    atomic_store_explicit(&h->heartbeat_period_ns, params->heartbeat_period_ns, memory_order_relaxed);
    atomic_store_explicit(&h->head, 0, memory_order_relaxed);
    atomic_store_explicit(&h->futex, 0, memory_order_relaxed);
    atomic_store_explicit(&h->state, HAKMEM_RING_STATE_LIVE, memory_order_release);

    int rc = ring_validate(&p->ring, mem, size);
    if (rc < 0)
        return rc;
    p->hdr = h;
    p->slots = (unsigned char *)mem + in->slot_off;
    p->table = (unsigned char *)mem + in->table_off;
    p->head = 0;
    p->table_used = 0;
    return 0;
}

/* Seqlock write of the message words (and pos, for entries): seq is odd
 * while the words change, then final (even). */
static void write_words(_Atomic uint64_t *seq, uint64_t odd, uint64_t final, _Atomic uint64_t *word,
                        const uint64_t w[HAKMEM_RING_MSG_WORDS], _Atomic uint64_t *pos, uint64_t n)
{
    atomic_store_explicit(seq, odd, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < HAKMEM_RING_MSG_WORDS; i++)
        atomic_store_explicit(&word[i], w[i], memory_order_relaxed);
    if (pos)
        atomic_store_explicit(pos, n, memory_order_relaxed);
    atomic_store_explicit(seq, final, memory_order_release);
}

/* Find key's entry, or the unused entry where it goes; NULL if full. */
static struct hakmem_ring_entry *table_slot(struct ring_producer *p, uint64_t key)
{
    const struct ring *r = &p->ring;
    uint32_t i = hakmem_ring_hash(key);

    for (uint32_t k = 0; k <= r->table_mask; k++, i++) {
        struct hakmem_ring_entry *e = (struct hakmem_ring_entry *)
            (p->table + (size_t)(i & r->table_mask) * r->entry_size);
        /* Only this thread writes: relaxed loads see its own stores. */
        if (atomic_load_explicit(&e->seq, memory_order_relaxed) == 0
            || atomic_load_explicit(&e->word[0], memory_order_relaxed) == key)
            return e;
    }
    return NULL;
}

/* Publish "key is at level" (single producer). 0; -EINVAL (a field a
 * reader would refuse; nothing written); -EOVERFLOW (positions used up);
 * -ENOSPC: the state table is full and key is new, so the message went
 * out on the ring only and a reader that resyncs will not see it. */
int ring_publish(struct ring_producer *p, uint64_t key, uint8_t level, uint8_t flags,
                 uint64_t ts_ns, uint16_t reason)
{
    if (level >= HAKMEM_LEVEL_COUNT || (flags & ~HAKMEM_RING_F_MASK) || reason >= HAKMEM_REASON_COUNT)
        return -EINVAL;
    if (p->head + 1 >= HAKMEM_RING_MAX_POS)
        return -EOVERFLOW;

    struct hakmem_ring_msg m = { .key = key, .ts_ns = ts_ns, .level = level,
                                 .flags = flags, .reason = reason };
    uint64_t w[HAKMEM_RING_MSG_WORDS];
    memcpy(w, &m, sizeof(w));
    uint64_t n = p->head + 1;
    int rc = 0;

    /* 1. the state table: a lapped reader resyncs from it */
    struct hakmem_ring_entry *e = table_slot(p, key);
    if (e) {
        uint64_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);
        if (s == 0)
            p->table_used++;
        write_words(&e->seq, s + 1, s + 2, e->word, w, &e->pos, n);
    } else {
        rc = -ENOSPC;
    }

    /* 2. the slot */
    struct hakmem_ring_slot *sl = (struct hakmem_ring_slot *)
        (p->slots + (size_t)((n - 1) & p->ring.slot_mask) * p->ring.slot_size);
    write_words(&sl->seq, (n << 1) | 1, n << 1, sl->word, w, NULL, 0);

    /* 3. head, 4. the futex word (the wake syscall is ring_wake) */
    atomic_store_explicit(&p->hdr->head, n, memory_order_release);
    atomic_fetch_add_explicit(&p->hdr->futex, 1, memory_order_release);
    p->head = n;
    return rc;
}

void ring_heartbeat(struct ring_producer *p, uint64_t now_ns)
{
    atomic_store_explicit(&p->hdr->heartbeat_ns, now_ns, memory_order_release);
}

/* The period readers should expect from now on (a reload changed it).
 * Stored before the next heartbeat, so that a reader never sees a slower
 * beat before the longer period. */
void ring_set_heartbeat_period(struct ring_producer *p, uint64_t period_ns)
{
    atomic_store_explicit(&p->hdr->heartbeat_period_ns, period_ns, memory_order_release);
}

/* Mark the ring closed and bump the futex word; call ring_wake after. */
void ring_close(struct ring_producer *p)
{
    atomic_store_explicit(&p->hdr->state, HAKMEM_RING_STATE_CLOSED, memory_order_release);
    atomic_fetch_add_explicit(&p->hdr->futex, 1, memory_order_release);
}

/* Wake every waiter, in every process (shared futex: no FUTEX_PRIVATE_FLAG). */
int ring_wake(struct ring_producer *p)
{
    long n = syscall(SYS_futex, &p->hdr->futex, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    return n < 0 ? -errno : (int)n;
}

/* ---- readers ----------------------------------------------------------- */

uint32_t ring_futex_value(const struct ring *r)
{
    return atomic_load_explicit(&r->hdr->futex, memory_order_acquire);
}

uint64_t ring_head(const struct ring *r)
{
    return atomic_load_explicit(&r->hdr->head, memory_order_acquire);
}

uint64_t ring_heartbeat_ns(const struct ring *r)
{
    return atomic_load_explicit(&r->hdr->heartbeat_ns, memory_order_acquire);
}

/* ns since the daemon's last tick; 0 when the tick is in the future. */
uint64_t ring_heartbeat_age(const struct ring *r, uint64_t now_ns)
{
    uint64_t hb = ring_heartbeat_ns(r);
    return now_ns > hb ? now_ns - hb : 0;
}

/* The heartbeat period now: the header's field when it holds a sane
 * value, else the one validated at start (rings of older daemons leave
 * the field 0). */
uint64_t ring_heartbeat_period(const struct ring *r)
{
    uint64_t p = atomic_load_explicit(&r->hdr->heartbeat_period_ns, memory_order_acquire);
    return p >= HAKMEM_RING_MIN_PERIOD && p <= HAKMEM_RING_MAX_PERIOD ? p : r->heartbeat_period_ns;
}

/* Has the daemon beaten within timeout_ns of now? A heartbeat from more
 * than a period in the future is no sign of life (the region is corrupt). */
bool ring_heartbeat_alive(const struct ring *r, uint64_t now_ns, uint64_t timeout_ns)
{
    uint64_t hb = ring_heartbeat_ns(r);
    if (hb > now_ns)
        return hb - now_ns <= ring_heartbeat_period(r);
    return now_ns - hb < timeout_ns;
}

uint32_t ring_state_word(const struct ring *r)
{
    return atomic_load_explicit(&r->hdr->state, memory_order_acquire);
}

/* Shared FUTEX_WAIT on the (read-only) mapping while the word equals
 * expected. 0: woken or the word had changed; -ETIMEDOUT; -EINTR. */
int ring_wait(const struct ring *r, uint32_t expected, uint64_t timeout_ns)
{
    struct timespec ts, *tp = NULL;

    if (timeout_ns != RING_WAIT_FOREVER) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
        ts.tv_nsec = (long)(timeout_ns % 1000000000u);
        tp = &ts;
    }
    /* The kernel only reads the word: the const cast is sound. */
    long rc = syscall(SYS_futex, (uint32_t *)(uintptr_t)&r->hdr->futex, FUTEX_WAIT,
                      expected, tp, NULL, 0);
    if (rc == 0 || errno == EAGAIN)
        return 0;
    return -errno;
}

static int position_from_head(const struct ring *r, uint64_t *next)
{
    uint64_t h = ring_head(r);
    if (h >= HAKMEM_RING_MAX_POS)
        return -EBADMSG;
    *next = h + 1;
    return 0;
}

/* Start at the next message to be published: a new reader learns the
 * present from ring_resolve, not from history. */
int ring_reader_init(struct ring_reader *rd, const struct ring *r)
{
    rd->ring = r;
    rd->lapped = 0;
    return position_from_head(r, &rd->next);
}

/* After RING_LAPPED: skip to the present; then read the state table. */
int ring_reader_resync(struct ring_reader *rd)
{
    rd->lapped++;
    return position_from_head(rd->ring, &rd->next);
}

static int msg_ok(const struct hakmem_ring_msg *m)
{
    return m->level < HAKMEM_LEVEL_COUNT && !(m->flags & ~HAKMEM_RING_F_MASK);
}

/* RING_OK with *out, RING_EMPTY, RING_LAPPED, or -EBADMSG for a message
 * that is complete but invalid (the reader moves past it). */
int ring_read_next(struct ring_reader *rd, struct hakmem_ring_msg *out)
{
    const struct ring *r = rd->ring;
    uint64_t n = rd->next;
    uint64_t w[HAKMEM_RING_MSG_WORDS];

    if (n == 0 || n >= HAKMEM_RING_MAX_POS)
        return -EBADMSG;
    const struct hakmem_ring_slot *s = slot_at(r, n);
    uint64_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
    if ((s1 >> 1) < n || s1 == ((n << 1) | 1))
        return RING_EMPTY;
    if (s1 != n << 1)
        return RING_LAPPED;
    for (int i = 0; i < HAKMEM_RING_MSG_WORDS; i++)
        w[i] = atomic_load_explicit(&s->word[i], memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&s->seq, memory_order_relaxed) != s1)
        return RING_LAPPED; /* torn: message n was overwritten while we copied */
    rd->next = n + 1;
    memcpy(out, w, sizeof(*out));
    return msg_ok(out) ? RING_OK : -EBADMSG;
}

/* Seqlock read of one entry. Returns 0 with *seq (0 = unused), or -EAGAIN. */
static int entry_read(const struct hakmem_ring_entry *e, uint64_t w[HAKMEM_RING_MSG_WORDS],
                      uint64_t *pos, uint64_t *seq)
{
    for (int t = 0; t < RING_READ_RETRIES; t++) {
        uint64_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
        if (s1 == 0) {
            *seq = 0;
            return 0;
        }
        if (s1 & 1) {
            cpu_relax();
            continue;
        }
        for (int i = 0; i < HAKMEM_RING_MSG_WORDS; i++)
            w[i] = atomic_load_explicit(&e->word[i], memory_order_relaxed);
        *pos = atomic_load_explicit(&e->pos, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->seq, memory_order_relaxed) == s1) {
            *seq = s1;
            return 0;
        }
        cpu_relax();
    }
    return -EAGAIN;
}

/* 0 with *out; -ENOENT (no entry for key); -EAGAIN (entry kept changing);
 * -EBADMSG (the entry is invalid). At most table_cap entries are probed. */
int ring_state_lookup(const struct ring *r, uint64_t key, struct ring_state *out)
{
    uint32_t i = hakmem_ring_hash(key);
    uint64_t w[HAKMEM_RING_MSG_WORDS], pos = 0, seq = 0;

    for (uint32_t k = 0; k <= r->table_mask; k++, i++) {
        int rc = entry_read(entry_at(r, i), w, &pos, &seq);
        if (rc < 0)
            return rc;
        if (seq == 0)
            return -ENOENT;
        if (w[0] != key)
            continue;
        memcpy(&out->msg, w, sizeof(out->msg));
        out->pos = pos;
        out->writes = seq >> 1;
        return msg_ok(&out->msg) ? 0 : -EBADMSG;
    }
    return -ENOENT;
}

/* The level a client with these keys should follow (rule in
 * hakmem_proto.h, "Keys"). 0 with *out; -ENOENT with *out = NONE when no
 * entry concerns the client; other lookup errors are passed on. */
int ring_resolve(const struct ring *r, uint64_t cgroup_key, uint64_t pid_key,
                 struct hakmem_ring_msg *out)
{
    uint64_t keys[3];
    int nkeys = 0, cg = -1, all;
    struct ring_state st;
    struct hakmem_ring_msg found[3];
    bool have[3] = { false, false, false };

    if (pid_key)
        keys[nkeys++] = pid_key;
    if (cgroup_key != HAKMEM_KEY_ALL && cgroup_key != pid_key)
        keys[cg = nkeys++] = cgroup_key;
    keys[all = nkeys++] = HAKMEM_KEY_ALL;

    for (int i = 0; i < nkeys; i++) {
        int rc = ring_state_lookup(r, keys[i], &st);
        if (rc == -ENOENT)
            continue;
        if (rc < 0)
            return rc;
        found[i] = st.msg;
        have[i] = true;
        if (st.msg.flags & HAKMEM_RING_F_OVERRIDE) {  /* most specific override */
            *out = st.msg;
            return 0;
        }
    }
    /* No override: the cgroup's pressure, else a host-wide level. A pid
     * entry without the flag is a cleared override and says nothing. */
    if (cg >= 0 && have[cg]) {
        *out = found[cg];
        return 0;
    }
    if (have[all]) {
        *out = found[all];
        return 0;
    }
    memset(out, 0, sizeof(*out));
    out->key = cgroup_key;
    out->level = HAKMEM_LEVEL_NONE;
    return -ENOENT;
}
