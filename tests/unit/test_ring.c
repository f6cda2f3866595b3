/* test_ring.c: proto/ (ring.c, msg.c): layout and validation (every
 * header field corrupted is refused), publish/read order, empty,
 * wraparound, a lapped reader resyncing from the state table, torn and
 * overwritten slots, state-table lookups and key precedence, producer and
 * consumers in threads and in separate processes (read-only memfd mapping,
 * shared futex wait/wake), the stats page seqlock, and the checks on
 * hello, welcome and control messages and on received memfds. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "ring.h"
#include "test_main.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const struct ring_params params = {
    .generation = 0x1234abcd5678ef00ull, .heartbeat_period_ns = 100000000, .now_ns = 42,
    .daemon_pid = 4242,
};

/* A producer over fresh anonymous memory; *len gets its size. */
static void *make_ring(struct ring_producer *p, uint32_t slots, uint32_t cap, size_t *len)
{
    size_t n = ring_layout_size(slots, cap);
    ck_assert_uint_gt(n, 0);
    void *mem = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(mem, MAP_FAILED);
    ck_assert_int_eq(ring_init(p, mem, n, slots, cap, &params), 0);
    if (len)
        *len = n;
    return mem;
}

/* Message content derived from its position, so that a torn copy shows. */
static uint64_t key_of(uint64_t n) { return n % 13 + 1; }
static uint8_t level_of(uint64_t n) { return (uint8_t)(n % HAKMEM_LEVEL_COUNT); }
static uint16_t reason_of(uint64_t n) { return (uint16_t)(n % HAKMEM_REASON_COUNT); }

static void publish_n(struct ring_producer *p, uint64_t n)
{
    ck_assert_int_eq(ring_publish(p, key_of(n), level_of(n), 0, n, reason_of(n)), 0);
}

static int consistent(const struct hakmem_ring_msg *m)
{
    uint64_t n = m->ts_ns;
    return m->ring_key == key_of(n) && m->level == level_of(n) && m->reason == reason_of(n)
        && m->flags == 0 && m->reserved == 0;
}

/* ---- layout and validation -------------------------------------------- */

START_TEST(test_layout)
{
    ck_assert_uint_eq(ring_layout_size(8, 16), 4096);
    ck_assert_uint_eq(ring_layout_size(256, 1024), 256 + 256 * 64 + 1024 * 64 + 4096 - 256);
    ck_assert_uint_eq(ring_layout_size(1, 1) % HAKMEM_RING_PAGE, 0);
    ck_assert_uint_eq(ring_layout_size(0, 16), 0);
    ck_assert_uint_eq(ring_layout_size(3, 16), 0);
    ck_assert_uint_eq(ring_layout_size(8, 0), 0);
    ck_assert_uint_eq(ring_layout_size(8, 12), 0);
    ck_assert_uint_eq(ring_layout_size(HAKMEM_RING_MAX_SLOTS * 2u, 16), 0);
    ck_assert_uint_eq(ring_layout_size(8, HAKMEM_RING_MAX_TABLE * 2u), 0);

    struct ring_producer p;
    size_t len;
    void *mem = make_ring(&p, 16, 32, &len);
    const struct hakmem_ring_hdr *h = mem;
    ck_assert_uint_eq(h->info.magic, HAKMEM_RING_MAGIC);
    ck_assert_uint_eq(h->info.slot_off, 256);
    ck_assert_uint_eq(h->info.table_off, 256 + 16 * 64);
    ck_assert_uint_eq(h->info.total_size, len);
    ck_assert_uint_eq(ring_state_word(&p.ring), HAKMEM_RING_STATE_LIVE);

    struct ring r;
    ck_assert_int_eq(ring_validate(&r, mem, len), 0);
    ck_assert_uint_eq(r.slot_mask, 15);
    ck_assert_uint_eq(r.table_mask, 31);
    ck_assert_uint_eq(r.generation, params.generation);
    ck_assert_uint_eq(r.heartbeat_period_ns, params.heartbeat_period_ns);
    ck_assert_uint_eq(r.daemon_pid, 4242);
    ck_assert_ptr_eq(r.slots, (unsigned char *)mem + 256);

    /* init refuses bad arguments */
    struct ring_producer q;
    ck_assert_int_eq(ring_init(&q, mem, len - 1, 16, 32, &params), -ENOSPC);
    ck_assert_int_eq(ring_init(&q, (char *)mem + 8, len - 64, 1, 1, &params), -EINVAL);
    ck_assert_int_eq(ring_init(&q, mem, len, 6, 32, &params), -EINVAL);
    struct ring_params bad = params;
    bad.heartbeat_period_ns = 0;
    ck_assert_int_eq(ring_init(&q, mem, len, 16, 32, &bad), -EINVAL);
    munmap(mem, len);
}
END_TEST

enum { F32, F64 };
struct mutation {
    const char *what;
    size_t off;
    int width;
    uint64_t value;
};

START_TEST(test_validate_refuses)
{
    struct ring_producer p;
    size_t len;
    unsigned char *mem = make_ring(&p, 16, 32, &len); /* slots at 256, table at 1280, 4096 total */
    unsigned char *copy = aligned_alloc(4096, len);
    const uint64_t table_off = 256 + 16 * 64;
#define INFO(f) offsetof(struct hakmem_ring_info, f)
    const struct mutation muts[] = {
        { "magic", INFO(magic), F32, HAKMEM_RING_MAGIC ^ 1 },
        { "magic 0", INFO(magic), F32, 0 },
        { "version", INFO(version), F32, HAKMEM_PROTO_VERSION + 1 },
        { "version 0", INFO(version), F32, 0 },
        { "header_size small", INFO(header_size), F32, 128 },
        { "header_size unaligned", INFO(header_size), F32, 257 },
        { "header_size past slots", INFO(header_size), F32, 320 },
        { "header_size huge", INFO(header_size), F32, UINT32_MAX & ~63u },
        { "slot_count 0", INFO(slot_count), F32, 0 },
        { "slot_count 3", INFO(slot_count), F32, 3 },
        { "slot_count overlaps table", INFO(slot_count), F32, 32 },
        { "slot_count huge", INFO(slot_count), F32, 1u << 31 },
        { "slot_size small", INFO(slot_size), F32, 32 },
        { "slot_size unaligned", INFO(slot_size), F32, 65 },
        { "slot_size overlaps table", INFO(slot_size), F32, 128 },
        { "slot_size huge", INFO(slot_size), F32, UINT32_MAX },
        { "table_cap 0", INFO(table_cap), F32, 0 },
        { "table_cap 5", INFO(table_cap), F32, 5 },
        { "table_cap past end", INFO(table_cap), F32, 64 },
        { "table_cap huge", INFO(table_cap), F32, 1u << 31 },
        { "entry_size small", INFO(entry_size), F32, 8 },
        { "entry_size unaligned", INFO(entry_size), F32, 100 },
        { "entry_size past end", INFO(entry_size), F32, 128 },
        { "slot_off 0 (header)", INFO(slot_off), F64, 0 },
        { "slot_off unaligned", INFO(slot_off), F64, 259 },
        { "slot_off overlaps table", INFO(slot_off), F64, 512 },
        { "slot_off past end", INFO(slot_off), F64, 4096 - 64 },
        { "slot_off huge", INFO(slot_off), F64, UINT64_MAX - 7 },
        { "table_off in header", INFO(table_off), F64, 128 },
        { "table_off overlaps slots", INFO(table_off), F64, 256 },
        { "table_off unaligned", INFO(table_off), F64, table_off + 4 },
        { "table_off past end", INFO(table_off), F64, 4096 },
        { "table_off huge", INFO(table_off), F64, UINT64_MAX - 7 },
        { "total_size past mapping", INFO(total_size), F64, 8192 },
        { "total_size short", INFO(total_size), F64, 2048 },
        { "total_size 0", INFO(total_size), F64, 0 },
        { "total_size huge", INFO(total_size), F64, UINT64_MAX },
        { "heartbeat period 0", INFO(heartbeat_period_ns), F64, 0 },
    };
#undef INFO
    struct ring r;
    memcpy(copy, mem, len);
    ck_assert_int_eq(ring_validate(&r, copy, len), 0);
    for (size_t i = 0; i < sizeof(muts) / sizeof(muts[0]); i++) {
        memcpy(copy, mem, len);
        if (muts[i].width == F32) {
            uint32_t v = (uint32_t)muts[i].value;
            memcpy(copy + muts[i].off, &v, 4);
        } else {
            memcpy(copy + muts[i].off, &muts[i].value, 8);
        }
        int rc = ring_validate(&r, copy, len);
        ck_assert_msg(rc < 0, "corrupt %s accepted", muts[i].what);
        if (strncmp(muts[i].what, "version", 7) == 0)
            ck_assert_int_eq(rc, -EPROTONOSUPPORT);
        else
            ck_assert_int_eq(rc, -EBADMSG);
    }
    /* a mapping shorter than the region, or than a header */
    memcpy(copy, mem, len);
    ck_assert_int_eq(ring_validate(&r, copy, len - 1), -EBADMSG);
    ck_assert_int_eq(ring_validate(&r, copy, 255), -EBADMSG);
    ck_assert_int_eq(ring_validate(&r, copy, 0), -EBADMSG);
    ck_assert_int_eq(ring_validate(&r, copy + 8, len - 8), -EINVAL);
    ck_assert_int_eq(ring_validate(&r, NULL, len), -EINVAL);
    /* a larger mapping is fine, and so are larger (future) slots/entries */
    ck_assert_int_eq(ring_validate(&r, copy, len), 0);
    free(copy);
    munmap(mem, len);
}
END_TEST

/* ---- publish and read --------------------------------------------------- */

START_TEST(test_publish_read_order)
{
    struct ring_producer p;
    size_t len;
    void *mem = make_ring(&p, 16, 32, &len);
    struct ring r;
    struct ring_reader rd;
    struct hakmem_ring_msg m;
    ck_assert_int_eq(ring_validate(&r, mem, len), 0);
    ck_assert_int_eq(ring_reader_init(&rd, &r), 0);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_EMPTY);

    uint32_t f0 = ring_futex_value(&r);
    for (uint64_t n = 1; n <= 10; n++)
        publish_n(&p, n);
    ck_assert_uint_eq(ring_futex_value(&r), f0 + 10);
    ck_assert_uint_eq(ring_head(&r), 10);
    for (uint64_t n = 1; n <= 10; n++) {
        ck_assert_int_eq(ring_read_next(&rd, &m), RING_OK);
        ck_assert_uint_eq(m.ts_ns, n);
        ck_assert(consistent(&m));
    }
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_EMPTY);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_EMPTY);

    /* a reader that joins now starts after the history */
    struct ring_reader late;
    ck_assert_int_eq(ring_reader_init(&late, &r), 0);
    ck_assert_int_eq(ring_read_next(&late, &m), RING_EMPTY);
    ck_assert_int_eq(ring_publish(&p, 77, HAKMEM_LEVEL_CRITICAL, HAKMEM_RING_F_OVERRIDE, 99,
                                  HAKMEM_REASON_OVERRIDE), 0);
    ck_assert_int_eq(ring_read_next(&late, &m), RING_OK);
    ck_assert_uint_eq(m.ring_key, 77);
    ck_assert_uint_eq(m.level, HAKMEM_LEVEL_CRITICAL);
    ck_assert_uint_eq(m.flags, HAKMEM_RING_F_OVERRIDE);
    ck_assert_uint_eq(m.reason, HAKMEM_REASON_OVERRIDE);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_OK);
    ck_assert_uint_eq(m.ring_key, 77);

    /* publish refuses what a reader would refuse */
    ck_assert_int_eq(ring_publish(&p, 1, HAKMEM_LEVEL_COUNT, 0, 0, 0), -EINVAL);
    ck_assert_int_eq(ring_publish(&p, 1, 0, 0x80, 0, 0), -EINVAL);
    ck_assert_int_eq(ring_publish(&p, 1, 0, 0, 0, HAKMEM_REASON_COUNT), -EINVAL);
    ck_assert_uint_eq(ring_head(&r), 11);
    munmap(mem, len);
}
END_TEST

START_TEST(test_wraparound)
{
    struct ring_producer p;
    size_t len;
    void *mem = make_ring(&p, 8, 32, &len);
    struct ring_reader rd;
    struct hakmem_ring_msg m;
    ck_assert_int_eq(ring_reader_init(&rd, &p.ring), 0);
    uint64_t n = 0, got = 0;
    /* bursts of 1..8 messages (8 = exactly a full ring, still no lap) */
    for (int burst = 0; burst < 400; burst++) {
        int k = burst % 8 + 1;
        for (int i = 0; i < k; i++)
            publish_n(&p, ++n);
        for (int i = 0; i < k; i++) {
            ck_assert_int_eq(ring_read_next(&rd, &m), RING_OK);
            ck_assert_uint_eq(m.ts_ns, ++got);
            ck_assert(consistent(&m));
        }
        ck_assert_int_eq(ring_read_next(&rd, &m), RING_EMPTY);
    }
    ck_assert_uint_gt(n, 8 * 100);
    ck_assert_uint_eq(rd.lapped, 0);
    munmap(mem, len);
}
END_TEST

START_TEST(test_lapped_resync)
{
    struct ring_producer p;
    size_t len;
    void *mem = make_ring(&p, 8, 64, &len);
    struct ring r;
    struct ring_reader rd;
    struct hakmem_ring_msg m;
    ck_assert_int_eq(ring_validate(&r, mem, len), 0);
    ck_assert_int_eq(ring_reader_init(&rd, &r), 0);

    /* read three, then fall behind by more than a ring */
    for (uint64_t n = 1; n <= 3; n++)
        publish_n(&p, n);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ring_read_next(&rd, &m), RING_OK);
    for (uint64_t n = 4; n <= 40; n++)
        publish_n(&p, n);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_LAPPED);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_LAPPED); /* until it resyncs */
    ck_assert_int_eq(ring_reader_resync(&rd), 0);
    ck_assert_uint_eq(rd.lapped, 1);
    ck_assert_uint_eq(rd.next, 41);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_EMPTY);

    /* the state table holds the latest message per key */
    for (uint64_t k = 1; k <= 13; k++) {
        uint64_t last = 0;
        for (uint64_t n = 1; n <= 40; n++)
            if (key_of(n) == k)
                last = n;
        struct ring_state st;
        ck_assert_int_eq(ring_state_lookup(&r, k, &st), 0);
        ck_assert_uint_eq(st.msg.ring_key, k);
        ck_assert_uint_eq(st.msg.ts_ns, last);
        ck_assert_uint_eq(st.pos, last);
        ck_assert_uint_eq(st.msg.level, level_of(last));
        ck_assert(consistent(&st.msg));
    }

    /* lapped by exactly one message: slot of 41 now holds 49 */
    for (uint64_t n = 41; n <= 49; n++)
        publish_n(&p, n);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_LAPPED);
    ck_assert_int_eq(ring_reader_resync(&rd), 0);
    publish_n(&p, 50);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_OK);
    ck_assert_uint_eq(m.ts_ns, 50);
    munmap(mem, len);
}
END_TEST

/* Slots in the states a reader can meet mid-write, made by hand. */
START_TEST(test_torn_slot)
{
    struct ring_producer p;
    size_t len;
    void *mem = make_ring(&p, 8, 16, &len);
    struct ring_reader rd;
    struct hakmem_ring_msg m;
    ck_assert_int_eq(ring_reader_init(&rd, &p.ring), 0);
    for (uint64_t n = 1; n <= 4; n++)
        publish_n(&p, n);
    struct hakmem_ring_slot *s = (struct hakmem_ring_slot *)(p.slots + 2 * 64); /* message 3 */
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_OK);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_OK);

    /* being written (odd): not yet readable */
    atomic_store(&s->seq, 2 * 3 + 1);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_EMPTY);
    ck_assert_uint_eq(rd.next, 3);
    /* being overwritten by 11 (odd, later): lapped */
    atomic_store(&s->seq, 2 * 11 + 1);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_LAPPED);
    /* overwritten by 11, complete: lapped */
    atomic_store(&s->seq, 2 * 11);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_LAPPED);
    /* still holding an older message (or never written): empty */
    atomic_store(&s->seq, 0);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_EMPTY);
    /* complete but with a level out of range: refused, reader moves on */
    atomic_store(&s->seq, 2 * 3);
    uint64_t w2 = atomic_load(&s->word[2]);
    atomic_store(&s->word[2], (w2 & ~UINT64_C(0xff)) | 9);
    ck_assert_int_eq(ring_read_next(&rd, &m), -EBADMSG);
    ck_assert_uint_eq(rd.next, 4);
    ck_assert_int_eq(ring_read_next(&rd, &m), RING_OK);
    ck_assert_uint_eq(m.ts_ns, 4);
    /* a corrupt position never reads out of bounds */
    rd.next = UINT64_MAX;
    ck_assert_int_eq(ring_read_next(&rd, &m), -EBADMSG);
    rd.next = 0;
    ck_assert_int_eq(ring_read_next(&rd, &m), -EBADMSG);
    atomic_store(&p.hdr->head, UINT64_MAX);
    ck_assert_int_eq(ring_reader_resync(&rd), -EBADMSG);
    munmap(mem, len);
}
END_TEST

/* A producer racing one reader over a two-slot ring: every message the
 * reader accepts must be whole (its fields all derive from one position);
 * copies torn by an overwrite must come back LAPPED instead. */
struct race {
    struct ring_producer *p;
    uint64_t count;
    atomic_int done;
    _Atomic uint64_t reader_next; /* the reader's rd.next */
};

/* Let the reader reach the present (bounded: 5 s). */
static void race_wait_reader(struct race *rc, uint64_t n)
{
    uint64_t t0 = now_ns();
    while (atomic_load(&rc->reader_next) <= n && now_ns() - t0 < 5000000000ull)
        sched_yield();
}

static void *race_producer(void *arg)
{
    struct race *rc = arg;
    for (uint64_t n = 1; n <= rc->count; n++) {
        ring_publish(rc->p, key_of(n), level_of(n), 0, n, reason_of(n));
        /* an uneven pace, so the reader meets slots at every stage */
        for (uint64_t i = n * 7 % 48; i > 0; i--)
            __builtin_ia32_pause();
        /* now and then let the reader catch up and read one message in
         * peace, so that it reads some even when the threads do not run
         * at once (one core, valgrind) */
        if (n % 4096 == 0 || n % 4096 == 1)
            race_wait_reader(rc, n);
    }
    atomic_store(&rc->done, 1);
    return NULL;
}

START_TEST(test_torn_race)
{
    struct ring_producer p;
    size_t len;
    void *mem = make_ring(&p, 2, 16, &len);
    struct race rc = { .p = &p, .count = 500000 };
    struct ring_reader rd;
    struct hakmem_ring_msg m;
    uint64_t ok = 0, lapped = 0, last = 0, idle = 0;
    pthread_t t;
    ck_assert_int_eq(ring_reader_init(&rd, &p.ring), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, race_producer, &rc), 0);
    while (!atomic_load(&rc.done) || rd.next <= rc.count) {
        int r = ring_read_next(&rd, &m);
        atomic_store(&rc.reader_next, rd.next);
        if (r != RING_EMPTY)
            idle = 0;
        if (r == RING_OK) {
            ck_assert_msg(consistent(&m), "torn message accepted at %llu",
                          (unsigned long long)m.ts_ns);
            ck_assert_uint_gt(m.ts_ns, last);
            last = m.ts_ns;
            ok++;
        } else if (r == RING_LAPPED) {
            lapped++;
            ck_assert_int_eq(ring_reader_resync(&rd), 0);
        } else {
            ck_assert_int_eq(r, RING_EMPTY);
            if (atomic_load(&rc.done) && rd.next > ring_head(&p.ring))
                break;
            if (++idle % 256 == 0)
                sched_yield();
        }
    }
    pthread_join(t, NULL);
    ck_assert_uint_gt(ok, 0);
    fprintf(stderr, "torn race: %llu read, %llu lapped of %llu\n", (unsigned long long)ok,
            (unsigned long long)lapped, (unsigned long long)rc.count);
    munmap(mem, len);
}
END_TEST

/* ---- state table --------------------------------------------------------- */

START_TEST(test_state_table)
{
    struct ring_producer p;
    size_t len;
    void *mem = make_ring(&p, 8, 8, &len);
    struct ring_state st;
    const struct ring *r = &p.ring;

    ck_assert_int_eq(ring_state_lookup(r, 5, &st), -ENOENT);
    /* keys that collide on the probe start */
    uint64_t coll[3];
    int nc = 0;
    for (uint64_t k = 100; nc < 3; k++)
        if ((hakmem_ring_hash(k) & 7) == (hakmem_ring_hash(100) & 7))
            coll[nc++] = k;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ring_publish(&p, coll[i], (uint8_t)i, 0, 10 + i, 0), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ring_state_lookup(r, coll[i], &st), 0);
        ck_assert_uint_eq(st.msg.ring_key, coll[i]);
        ck_assert_uint_eq(st.msg.level, i);
        ck_assert_uint_eq(st.pos, (uint64_t)i + 1);
        ck_assert_uint_eq(st.writes, 1);
    }
    /* updates stay in place */
    ck_assert_int_eq(ring_publish(&p, coll[1], HAKMEM_LEVEL_CRITICAL, 0, 20, HAKMEM_REASON_PSI), 0);
    ck_assert_int_eq(ring_publish(&p, coll[1], HAKMEM_LEVEL_NONE, 0, 21, HAKMEM_REASON_CALM), 0);
    ck_assert_int_eq(ring_state_lookup(r, coll[1], &st), 0);
    ck_assert_uint_eq(st.writes, 3);
    ck_assert_uint_eq(st.pos, 5);
    ck_assert_uint_eq(st.msg.level, HAKMEM_LEVEL_NONE);
    ck_assert_uint_eq(st.msg.reason, HAKMEM_REASON_CALM);
    ck_assert_uint_eq(st.msg.ts_ns, 21);
    ck_assert_uint_eq(p.table_used, 3);

    /* the all key and pid keys are ordinary keys */
    ck_assert_int_eq(ring_publish(&p, HAKMEM_KEY_ALL, 1, 0, 30, 0), 0);
    ck_assert_int_eq(ring_publish(&p, HAKMEM_KEY_PID(1234), 2, 0, 31, 0), 0);
    ck_assert_int_eq(ring_state_lookup(r, HAKMEM_KEY_ALL, &st), 0);
    ck_assert_uint_eq(st.msg.level, 1);
    ck_assert_int_eq(ring_state_lookup(r, HAKMEM_KEY_PID(1234), &st), 0);
    ck_assert_uint_eq(st.msg.level, 2);
    ck_assert_int_eq(ring_state_lookup(r, 1234, &st), -ENOENT);

    /* fill the table; the next new key is refused by the table but still
     * goes through the ring */
    for (uint64_t k = 1; p.table_used < 8; k++)
        ck_assert_int_eq(ring_publish(&p, k, 1, 0, 40, 0), 0);
    uint64_t head = ring_head(r);
    ck_assert_int_eq(ring_publish(&p, 999999, 3, 0, 50, 0), -ENOSPC);
    ck_assert_uint_eq(ring_head(r), head + 1);
    ck_assert_int_eq(ring_state_lookup(r, 999999, &st), -ENOENT); /* full table: probes all, bounded */
    ck_assert_int_eq(ring_publish(&p, coll[0], 3, 0, 51, 0), 0);  /* known keys still update */

    /* an entry left mid-write (odd) gives -EAGAIN, not a spin forever */
    struct hakmem_ring_entry *e = (struct hakmem_ring_entry *)p.table;
    uint64_t s = atomic_load(&e->seq);
    atomic_store(&e->seq, s | 1);
    ck_assert_int_eq(ring_state_lookup(r, atomic_load(&e->word[0]), &st), -EAGAIN);
    atomic_store(&e->seq, s);
    ck_assert_int_eq(ring_state_lookup(r, atomic_load(&e->word[0]), &st), 0);
    munmap(mem, len);
}
END_TEST

START_TEST(test_resolve)
{
    struct ring_producer p;
    size_t len;
    void *mem = make_ring(&p, 16, 16, &len);
    const struct ring *r = &p.ring;
    struct hakmem_ring_msg m;
    const uint64_t cg = 4026531835ull, pid = HAKMEM_KEY_PID(777);
    const uint8_t OV = HAKMEM_RING_F_OVERRIDE;

    ck_assert_int_eq(ring_resolve(r, cg, pid, &m), -ENOENT);
    ck_assert_uint_eq(m.level, HAKMEM_LEVEL_NONE);
    ck_assert_int_eq(ring_publish(&p, cg, HAKMEM_LEVEL_MEDIUM, 0, 1, 0), 0);
    ck_assert_int_eq(ring_resolve(r, cg, pid, &m), 0);
    ck_assert_uint_eq(m.level, HAKMEM_LEVEL_MEDIUM);
    ck_assert(ring_msg_applies(&m, cg, pid));
    /* a plain host-wide entry loses to the cgroup's own */
    ck_assert_int_eq(ring_publish(&p, HAKMEM_KEY_ALL, HAKMEM_LEVEL_NONE, 0, 2, 0), 0);
    ck_assert_int_eq(ring_resolve(r, cg, pid, &m), 0);
    ck_assert_uint_eq(m.level, HAKMEM_LEVEL_MEDIUM);
    /* a host-wide override beats it */
    ck_assert_int_eq(ring_publish(&p, HAKMEM_KEY_ALL, HAKMEM_LEVEL_NONE, OV, 3, 0), 0);
    ck_assert_int_eq(ring_resolve(r, cg, pid, &m), 0);
    ck_assert_uint_eq(m.level, HAKMEM_LEVEL_NONE);
    ck_assert_uint_eq(m.ring_key, HAKMEM_KEY_ALL);
    /* a pid override beats the host-wide one */
    ck_assert_int_eq(ring_publish(&p, pid, HAKMEM_LEVEL_CRITICAL, OV, 4, 0), 0);
    ck_assert_int_eq(ring_resolve(r, cg, pid, &m), 0);
    ck_assert_uint_eq(m.level, HAKMEM_LEVEL_CRITICAL);
    /* another process of the cgroup still follows the host-wide override */
    ck_assert_int_eq(ring_resolve(r, cg, HAKMEM_KEY_PID(778), &m), 0);
    ck_assert_uint_eq(m.level, HAKMEM_LEVEL_NONE);
    /* clearing overrides (publish without the flag) gives the cgroup back */
    ck_assert_int_eq(ring_publish(&p, pid, HAKMEM_LEVEL_NONE, 0, 5, 0), 0);
    ck_assert_int_eq(ring_publish(&p, HAKMEM_KEY_ALL, HAKMEM_LEVEL_NONE, 0, 6, 0), 0);
    ck_assert_int_eq(ring_resolve(r, cg, pid, &m), 0);
    ck_assert_uint_eq(m.level, HAKMEM_LEVEL_MEDIUM);
    ck_assert_uint_eq(m.ring_key, cg);  /* no override anywhere: the cgroup's pressure */
    ck_assert_int_eq(ring_resolve(r, cg, 0, &m), 0);
    ck_assert_uint_eq(m.level, HAKMEM_LEVEL_MEDIUM);
    /* a client whose cgroup has no entry follows a plain host-wide one */
    ck_assert_int_eq(ring_resolve(r, cg + 1, HAKMEM_KEY_PID(779), &m), 0);
    ck_assert_uint_eq(m.ring_key, HAKMEM_KEY_ALL);
    /* a cgroup override beats a host-wide override */
    ck_assert_int_eq(ring_publish(&p, HAKMEM_KEY_ALL, HAKMEM_LEVEL_NONE, OV, 7, 0), 0);
    ck_assert_int_eq(ring_publish(&p, cg, HAKMEM_LEVEL_LOW, OV, 8, 0), 0);
    ck_assert_int_eq(ring_resolve(r, cg, pid, &m), 0);
    ck_assert_uint_eq(m.level, HAKMEM_LEVEL_LOW);
    ck_assert_uint_eq(m.ring_key, cg);

    struct hakmem_ring_msg other = { .ring_key = cg + 1 };
    ck_assert(!ring_msg_applies(&other, cg, pid));
    other.ring_key = HAKMEM_KEY_ALL;
    ck_assert(ring_msg_applies(&other, cg, pid));
    munmap(mem, len);
}
END_TEST

/* ---- heartbeat, close, futex --------------------------------------------- */

START_TEST(test_heartbeat_close_wait)
{
    struct ring_producer p;
    size_t len;
    void *mem = make_ring(&p, 8, 8, &len);
    const struct ring *r = &p.ring;
    ck_assert_uint_eq(ring_heartbeat_ns(r), params.now_ns);
    ring_heartbeat(&p, 1000);
    ck_assert_uint_eq(ring_heartbeat_ns(r), 1000);
    ck_assert_uint_eq(ring_heartbeat_age(r, 1500), 500);
    ck_assert_uint_eq(ring_heartbeat_age(r, 900), 0);

    uint32_t f = ring_futex_value(r);
    uint64_t t0 = now_ns();
    ck_assert_int_eq(ring_wait(r, f, 20000000), -ETIMEDOUT);
    ck_assert_uint_ge(now_ns() - t0, 15000000);
    ck_assert_int_eq(ring_wait(r, f + 1, RING_WAIT_FOREVER), 0); /* changed: no sleep */
    ck_assert_int_eq(ring_wake(&p), 0);                          /* nobody waits */

    ring_close(&p);
    ck_assert_uint_eq(ring_state_word(r), HAKMEM_RING_STATE_CLOSED);
    ck_assert_uint_eq(ring_futex_value(r), f + 1);
    munmap(mem, len);
}
END_TEST

/* ---- threads ------------------------------------------------------------- */

#define THR_COUNT 200000
#define THR_READERS 2

struct thr {
    struct ring_producer *p;
    struct ring r;          /* each reader validates its own view */
    void *mem;
    size_t len;
    uint64_t ok, lapped, waits;
    int failed;
};

static void *thr_producer(void *arg)
{
    struct ring_producer *p = arg;
    for (uint64_t n = 1; n <= THR_COUNT; n++) {
        ring_publish(p, key_of(n), level_of(n), 0, n, reason_of(n));
        if (n % 64 == 0) {
            ring_wake(p);
            if (n % 4096 == 0)
                usleep(200);
        }
    }
    ring_wake(p);
    return NULL;
}

/* The listener loop: take the futex word, drain, wait. */
static void *thr_consumer(void *arg)
{
    struct thr *t = arg;
    struct ring_reader rd;
    struct hakmem_ring_msg m;
    uint64_t last = 0;
    if (ring_validate(&t->r, t->mem, t->len) < 0 || ring_reader_init(&rd, &t->r) < 0) {
        t->failed = 1;
        return NULL;
    }
    while (rd.next <= THR_COUNT) {
        uint32_t f = ring_futex_value(&t->r);
        int rc;
        while ((rc = ring_read_next(&rd, &m)) != RING_EMPTY) {
            if (rc == RING_LAPPED) {
                t->lapped++;
                ring_reader_resync(&rd);
                continue;
            }
            if (rc != RING_OK || !consistent(&m) || m.ts_ns <= last) {
                t->failed = 2;
                return NULL;
            }
            last = m.ts_ns;
            t->ok++;
        }
        if (rd.next > THR_COUNT)
            break;
        t->waits++;
        if (ring_wait(&t->r, f, 2000000000ull) == -ETIMEDOUT) {
            t->failed = 3;
            return NULL;
        }
    }
    if (last != THR_COUNT && rd.lapped == 0)
        t->failed = 4;
    return NULL;
}

START_TEST(test_threads)
{
    struct ring_producer p;
    size_t len;
    void *mem = make_ring(&p, 256, 32, &len);
    struct thr t[THR_READERS];
    pthread_t pt, ct[THR_READERS];
    for (int i = 0; i < THR_READERS; i++) {
        t[i] = (struct thr){ .p = &p, .mem = mem, .len = len };
        ck_assert_int_eq(pthread_create(&ct[i], NULL, thr_consumer, &t[i]), 0);
    }
    usleep(10000); /* let the readers start at position 1 */
    ck_assert_int_eq(pthread_create(&pt, NULL, thr_producer, &p), 0);
    pthread_join(pt, NULL);
    for (int i = 0; i < THR_READERS; i++) {
        pthread_join(ct[i], NULL);
        ck_assert_msg(t[i].failed == 0, "reader %d failed (%d)", i, t[i].failed);
        ck_assert_uint_gt(t[i].ok, 0);
        fprintf(stderr, "threads: reader %d: %llu read, %llu lapped, %llu waits\n", i,
                (unsigned long long)t[i].ok, (unsigned long long)t[i].lapped,
                (unsigned long long)t[i].waits);
    }
    /* final state per key, as a resyncing reader would see it */
    for (uint64_t k = 1; k <= 13; k++) {
        struct ring_state st;
        uint64_t last = THR_COUNT - (THR_COUNT - (k - 1)) % 13; /* last n with key_of(n) == k */
        ck_assert_uint_eq(key_of(last), k);
        ck_assert_int_eq(ring_state_lookup(&p.ring, k, &st), 0);
        ck_assert_uint_eq(st.msg.ts_ns, last);
    }
    munmap(mem, len);
}
END_TEST

/* ---- processes: read-only memfd mapping, shared futex --------------------- */

#define PROC_COUNT 20000
#define PROC_BURST 16

/* Child: map the read-only fd, follow the ring until it is closed.
 * Returns an exit code: 0 all good, otherwise which check failed. */
static int proc_child(int ro_fd, int ready_fd)
{
    uint64_t size = 0;
    if (proto_memfd_check(ro_fd, sizeof(struct hakmem_ring_hdr), HAKMEM_RING_MAX_SIZE, &size) < 0)
        return 10;
    if (mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ro_fd, 0) != MAP_FAILED)
        return 11; /* the fd must not allow a writable mapping */
    void *mem = mmap(NULL, size, PROT_READ, MAP_SHARED, ro_fd, 0);
    if (mem == MAP_FAILED)
        return 12;
    struct ring r;
    struct ring_reader rd;
    struct hakmem_ring_msg m;
    if (ring_validate(&r, mem, size) < 0 || r.generation != params.generation)
        return 13;
    if (ring_reader_init(&rd, &r) < 0)
        return 14;
    if (write(ready_fd, "r", 1) != 1)
        return 15;
    uint64_t last = 0, ok = 0, waits = 0;
    for (;;) {
        /* state before draining: once CLOSED is seen, everything published
         * before the close is visible to the drain that follows */
        int closed = ring_state_word(&r) == HAKMEM_RING_STATE_CLOSED;
        uint32_t f = ring_futex_value(&r);
        int rc;
        while ((rc = ring_read_next(&rd, &m)) != RING_EMPTY) {
            if (rc == RING_LAPPED) {
                if (ring_reader_resync(&rd) < 0)
                    return 16;
                continue;
            }
            if (rc != RING_OK || m.ts_ns <= last)
                return 17;
            if (m.ts_ns <= PROC_COUNT && !consistent(&m))
                return 18;
            last = m.ts_ns;
            ok++;
        }
        if (closed)
            break;
        waits++;
        /* 5 s: only a missed wake could take that long */
        if (ring_wait(&r, f, 5000000000ull) == -ETIMEDOUT)
            return 19;
    }
    /* the last message says goodbye; the state table agrees */
    if (last != PROC_COUNT + 1 || m.reason != HAKMEM_REASON_SHUTDOWN)
        return 20;
    struct ring_state st;
    if (ring_state_lookup(&r, 999, &st) < 0 || st.msg.level != HAKMEM_LEVEL_NONE)
        return 21;
    if (ok == 0 || waits == 0)
        return 22;
    return 0;
}

START_TEST(test_processes)
{
    uint32_t slots = 512, cap = 64;
    size_t len = ring_layout_size(slots, cap);
    int fd = memfd_create("hakmem-ring-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
    ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ck_assert_ptr_ne(mem, MAP_FAILED);
    struct ring_producer p;
    ck_assert_int_eq(ring_init(&p, mem, len, slots, cap, &params), 0);

    /* what the daemon hands out: a read-only reopen of the memfd */
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(ro, 0);
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        munmap(mem, len);
        close(fd);
        close(pipefd[0]);
        _exit(proc_child(ro, pipefd[1]));
    }
    close(pipefd[1]);
    char c;
    ck_assert_int_eq(read(pipefd[0], &c, 1), 1);

    uint64_t n = 0;
    while (n < PROC_COUNT) {
        for (int i = 0; i < PROC_BURST && n < PROC_COUNT; i++)
            publish_n(&p, ++n);
        ck_assert_int_ge(ring_wake(&p), 0);
        if (n % (PROC_BURST * 64) == 0)
            usleep(1000); /* let the child fall asleep on the futex */
    }
    /* one message to an idle child: it must be woken, not time out */
    usleep(50000);
    uint64_t t0 = now_ns();
    ck_assert_int_eq(ring_publish(&p, 999, HAKMEM_LEVEL_NONE, 0, PROC_COUNT + 1,
                                  HAKMEM_REASON_SHUTDOWN), 0);
    ring_close(&p);
    ck_assert_int_ge(ring_wake(&p), 0);

    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    fprintf(stderr, "processes: child done %.2f ms after the last wake\n",
            (double)(now_ns() - t0) / 1e6);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child failed: status %#x (exit code names the check)", status);
    close(pipefd[0]);
    close(ro);
    close(fd);
    munmap(mem, len);
}
END_TEST

/* ---- received memfds ------------------------------------------------------ */

START_TEST(test_memfd_check)
{
    uint64_t size = 0;
    int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 4096), 0);
    ck_assert_int_eq(proto_memfd_check(fd, 1, 65536, &size), -EPERM);   /* not sealed */
    ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    ck_assert_int_eq(proto_memfd_check(fd, 1, 65536, &size), -EPERM);   /* can still grow */
    ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW), 0);
    ck_assert_int_eq(proto_memfd_check(fd, 1, 65536, &size), 0);
    ck_assert_uint_eq(size, 4096);
    ck_assert_int_eq(proto_memfd_check(fd, 8192, 65536, &size), -EINVAL);
    ck_assert_int_eq(proto_memfd_check(fd, 1, 1024, &size), -EINVAL);
    int nos = memfd_create("t2", MFD_CLOEXEC); /* sealing not allowed: F_SEAL_SEAL preset */
    ck_assert_int_eq(ftruncate(nos, 4096), 0);
    ck_assert_int_eq(proto_memfd_check(nos, 1, 65536, &size), -EPERM);
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    ck_assert_int_eq(proto_memfd_check(pfd[0], 0, 65536, &size), -EINVAL);
    ck_assert_int_eq(proto_memfd_check(-1, 0, 65536, &size), -EBADF);
    close(pfd[0]);
    close(pfd[1]);
    close(nos);
    close(fd);
}
END_TEST

/* ---- messages ------------------------------------------------------------ */

/* Common checks for a message type: good passes; every truncation, an
 * extra byte (extra_rc), more than HAKMEM_MSG_MAX, a wrong magic or
 * version, a size field that disagrees with the byte count are refused. */
typedef int (*check_fn)(const void *buf, size_t len, void *out);

static void check_framing(const void *good, size_t size, check_fn fn, int extra_rc)
{
    static _Alignas(8) unsigned char buf[HAKMEM_MSG_MAX + 64];
    static _Alignas(8) unsigned char out[HAKMEM_MSG_MAX];
    memset(buf, 0, sizeof(buf));
    memcpy(buf, good, size);
    ck_assert_int_eq(fn(buf, size, out), 0);
    ck_assert_int_eq(memcmp(out, good, size), 0);
    for (size_t n = 0; n < size; n++)
        ck_assert_msg(fn(buf, n, out) == -EBADMSG, "truncated to %zu accepted", n);
    /* one byte more, with the size field saying so too */
    uint32_t sz = (uint32_t)size + 1;
    memcpy(buf + 8, &sz, 4);
    ck_assert_int_eq(fn(buf, size + 1, out), extra_rc);
    ck_assert_int_eq(fn(buf, size, out), -EBADMSG); /* size field != bytes */
    memcpy(buf, good, size);
    ck_assert_int_eq(fn(buf, HAKMEM_MSG_MAX + 1, out), -EMSGSIZE);
    buf[0] ^= 0x20;
    ck_assert_int_eq(fn(buf, size, out), -EBADMSG);
    buf[0] ^= 0x20;
    uint32_t v = HAKMEM_PROTO_VERSION + 1;
    memcpy(buf + 4, &v, 4);
    ck_assert_int_eq(fn(buf, size, out), -EPROTONOSUPPORT);
    memcpy(buf, good, size);
    ck_assert_int_eq(fn(NULL, size, out), -EINVAL);
}

static int hello_fn(const void *b, size_t n, void *o) { return proto_hello_check(b, n, o); }
static int welcome_fn(const void *b, size_t n, void *o) { return proto_welcome_check(b, n, o); }
static int req_fn(const void *b, size_t n, void *o) { return proto_ctl_req_check(b, n, o); }
static int resp_fn(const void *b, size_t n, void *o)
{
    return proto_ctl_resp_check(b, n, o, NULL);
}

START_TEST(test_hello)
{
    struct hakmem_hello h, out;
    proto_hello_init(&h, 321, HAKMEM_HELLO_F_STATS, 4096, HAKMEM_MODE_FAST,
                     "a-very-long-process-name");
    ck_assert_uint_eq(h.size, sizeof(h));
    ck_assert_str_eq(h.comm, "a-very-long-pro");
    check_framing(&h, sizeof(h), hello_fn, -EMSGSIZE);

    struct hakmem_hello b = h;
    b.flags = 0x80;
    ck_assert_int_eq(proto_hello_check(&b, sizeof(b), &out), -EINVAL);
    b = h;
    b.stats_size = 100; /* smaller than the stats page */
    ck_assert_int_eq(proto_hello_check(&b, sizeof(b), &out), -EINVAL);
    b.stats_size = HAKMEM_STATS_MAX_SIZE + 1;
    ck_assert_int_eq(proto_hello_check(&b, sizeof(b), &out), -EINVAL);
    b = h;
    b.flags = 0; /* no stats fd, but a size */
    ck_assert_int_eq(proto_hello_check(&b, sizeof(b), &out), -EINVAL);
    b.stats_size = 0;
    ck_assert_int_eq(proto_hello_check(&b, sizeof(b), &out), 0);
    b = h;
    b.mode = HAKMEM_MODE_COUNT;
    ck_assert_int_eq(proto_hello_check(&b, sizeof(b), &out), -EINVAL);
    b = h;
    memset(b.comm, 'x', sizeof(b.comm)); /* not terminated */
    ck_assert_int_eq(proto_hello_check(&b, sizeof(b), &out), -EINVAL);
}
END_TEST

START_TEST(test_welcome)
{
    struct hakmem_welcome w, out;
    proto_welcome_init(&w, 0);
    w.cgroup_id = 12345;
    w.pid_key = HAKMEM_KEY_PID(99);
    w.ring_size = 1 << 20;
    w.heartbeat_period_ns = 100000000;
    w.generation = 7;
    check_framing(&w, sizeof(w), welcome_fn, -EMSGSIZE);

    struct hakmem_welcome b = w;
    b.ring_size = 100;
    ck_assert_int_eq(proto_welcome_check(&b, sizeof(b), &out), -EINVAL);
    b.ring_size = HAKMEM_RING_MAX_SIZE + 1;
    ck_assert_int_eq(proto_welcome_check(&b, sizeof(b), &out), -EINVAL);
    b = w;
    b.heartbeat_period_ns = 0;
    ck_assert_int_eq(proto_welcome_check(&b, sizeof(b), &out), -EINVAL);
    b = w;
    b.status = 5;
    ck_assert_int_eq(proto_welcome_check(&b, sizeof(b), &out), -EINVAL);
    b.status = -100000;
    ck_assert_int_eq(proto_welcome_check(&b, sizeof(b), &out), -EINVAL);
    b = w;
    b.cgroup_id = HAKMEM_KEY_PID(1);
    ck_assert_int_eq(proto_welcome_check(&b, sizeof(b), &out), -EINVAL);
    b = w;
    b.pid_key = 99;
    ck_assert_int_eq(proto_welcome_check(&b, sizeof(b), &out), -EINVAL);
    b = w;
    b.flags = 1;
    ck_assert_int_eq(proto_welcome_check(&b, sizeof(b), &out), -EINVAL);
    /* a refusal carries only its status */
    proto_welcome_init(&b, -EUSERS);
    ck_assert_int_eq(proto_welcome_check(&b, sizeof(b), &out), 0);
    ck_assert_int_eq(out.status, -EUSERS);
}
END_TEST

START_TEST(test_ctl_req)
{
    struct hakmem_ctl_req q, out;
    proto_ctl_req_init(&q, HAKMEM_CTL_LEAN);
    q.target = HAKMEM_CTL_TARGET_PID;
    q.key = 4321;
    q.mode = HAKMEM_OVERRIDE_ON;
    q.level = HAKMEM_LEVEL_MEDIUM;
    check_framing(&q, sizeof(q), req_fn, -EMSGSIZE);

    struct hakmem_ctl_req b = q;
    b.command = 0;
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), -EINVAL);
    b.command = HAKMEM_CTL_CMD_MAX + 1;
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), -EINVAL);
    b = q;
    b.mode = 3;
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), -EINVAL);
    b = q;
    b.target = 3;
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), -EINVAL);
    b = q;
    b.level = HAKMEM_LEVEL_COUNT;
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), -EINVAL);
    b = q;
    b.key = (uint64_t)INT32_MAX + 1;
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), -EINVAL);
    b.key = 0;
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), -EINVAL);
    b = q;
    b.target = HAKMEM_CTL_TARGET_CGROUP;
    b.key = HAKMEM_KEY_PID(5);
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), -EINVAL);
    b.key = 5;
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), 0);
    /* the per-process flag goes with METRICS only; no other flag exists */
    b = q;
    b.flags = HAKMEM_CTL_REQ_F_PER_PROCESS;
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), -EINVAL);
    proto_ctl_req_init(&b, HAKMEM_CTL_METRICS);
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), 0);
    ck_assert_uint_eq(out.flags, 0);
    b.flags = HAKMEM_CTL_REQ_F_PER_PROCESS;
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), 0);
    ck_assert_uint_eq(out.flags, HAKMEM_CTL_REQ_F_PER_PROCESS);
    b.flags = HAKMEM_CTL_REQ_F_PER_PROCESS | 0x0002u;
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), -EINVAL);
    proto_ctl_req_init(&b, HAKMEM_CTL_STATUS);
    b.flags = HAKMEM_CTL_REQ_F_PER_PROCESS;
    ck_assert_int_eq(proto_ctl_req_check(&b, sizeof(b), &out), -EINVAL);
}
END_TEST

START_TEST(test_ctl_resp)
{
    static _Alignas(8) unsigned char buf[HAKMEM_MSG_MAX + 8];
    struct hakmem_ctl_resp h, out;
    const unsigned char *pl;

    /* no payload */
    proto_ctl_resp_init(&h, HAKMEM_CTL_LEAN, 0, HAKMEM_CTL_PAYLOAD_NONE, 0, 0);
    check_framing(&h, sizeof(h), resp_fn, -EBADMSG); /* unannounced payload */

    /* text */
    const char *text = "hakmem_clients 3\n";
    size_t tl = strlen(text);
    proto_ctl_resp_init(&h, HAKMEM_CTL_METRICS, 0, HAKMEM_CTL_PAYLOAD_TEXT, (uint32_t)tl,
                        HAKMEM_CTL_F_MORE);
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), text, tl);
    ck_assert_int_eq(proto_ctl_resp_check(buf, sizeof(h) + tl, &out, &pl), 0);
    ck_assert_ptr_eq(pl, buf + sizeof(h));
    ck_assert_uint_eq(out.payload_len, tl);
    ck_assert_uint_eq(out.flags, HAKMEM_CTL_F_MORE);
    ck_assert_int_eq(proto_ctl_resp_check(buf, sizeof(h) + tl - 1, &out, &pl), -EBADMSG);

    /* the largest text payload fits HAKMEM_MSG_MAX exactly */
    proto_ctl_resp_init(&h, HAKMEM_CTL_METRICS, 0, HAKMEM_CTL_PAYLOAD_TEXT,
                        HAKMEM_CTL_PAYLOAD_MAX, 0);
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, &h, sizeof(h));
    ck_assert_int_eq(proto_ctl_resp_check(buf, HAKMEM_MSG_MAX, &out, &pl), 0);
    h.size++;
    h.payload_len++;
    memcpy(buf, &h, sizeof(h));
    ck_assert_int_eq(proto_ctl_resp_check(buf, HAKMEM_MSG_MAX + 1, &out, &pl), -EMSGSIZE);

    /* records */
    struct hakmem_ctl_cgroup cg[3] = { { .ring_key = 1 }, { .ring_key = 2 }, { .ring_key = 3 } };
    proto_ctl_resp_init(&h, HAKMEM_CTL_STATUS, 0, HAKMEM_CTL_PAYLOAD_CGROUPS, sizeof(cg), 0);
    ck_assert_uint_eq(h.record_size, sizeof(struct hakmem_ctl_cgroup));
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), cg, sizeof(cg));
    ck_assert_int_eq(proto_ctl_resp_check(buf, sizeof(h) + sizeof(cg), &out, &pl), 0);
    ck_assert_uint_eq(out.payload_len / out.record_size, 3);
    struct hakmem_ctl_resp b = h; /* payload not a whole number of records */
    b.payload_len -= 8;
    b.size -= 8;
    memcpy(buf, &b, sizeof(b));
    ck_assert_int_eq(proto_ctl_resp_check(buf, b.size, &out, &pl), -EINVAL);
    b = h; /* record size lies */
    b.record_size = 32;
    memcpy(buf, &b, sizeof(b));
    ck_assert_int_eq(proto_ctl_resp_check(buf, b.size, &out, &pl), -EINVAL);
    b = h; /* payload_len disagrees with size */
    b.payload_len = 64;
    memcpy(buf, &b, sizeof(b));
    ck_assert_int_eq(proto_ctl_resp_check(buf, b.size, &out, &pl), -EBADMSG);
    b = h;
    b.payload_type = 9;
    memcpy(buf, &b, sizeof(b));
    ck_assert_int_eq(proto_ctl_resp_check(buf, b.size, &out, &pl), -EINVAL);
    b = h;
    b.flags = 0x10;
    memcpy(buf, &b, sizeof(b));
    ck_assert_int_eq(proto_ctl_resp_check(buf, b.size, &out, &pl), -EINVAL);
    b = h;
    b.status = 1;
    memcpy(buf, &b, sizeof(b));
    ck_assert_int_eq(proto_ctl_resp_check(buf, b.size, &out, &pl), -EINVAL);
    proto_ctl_resp_init(&b, HAKMEM_CTL_CLIENTS, 0, HAKMEM_CTL_PAYLOAD_CLIENTS,
                        2 * sizeof(struct hakmem_ctl_client), 0);
    memcpy(buf, &b, sizeof(b));
    ck_assert_int_eq(proto_ctl_resp_check(buf, b.size, &out, &pl), 0);
    proto_ctl_resp_init(&b, HAKMEM_CTL_STATUS, -EPERM, HAKMEM_CTL_PAYLOAD_NONE, 0, 0);
    ck_assert_int_eq(proto_ctl_resp_check(&b, sizeof(b), &out, NULL), 0);
    ck_assert_int_eq(out.status, -EPERM);
    b.payload_len = 0;
    b.payload_type = HAKMEM_CTL_PAYLOAD_NONE;
    b.record_size = 64;
    ck_assert_int_eq(proto_ctl_resp_check(&b, sizeof(b), &out, NULL), -EINVAL);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(proto_level_name(HAKMEM_LEVEL_CRITICAL), "critical");
    ck_assert_str_eq(proto_level_name(9), "?");
    ck_assert_str_eq(proto_mode_name(HAKMEM_MODE_LEAN), "lean");
    ck_assert_str_eq(proto_reason_name(HAKMEM_REASON_BPF_RECLAIM), "bpf_reclaim");
    ck_assert_str_eq(proto_reason_name(HAKMEM_REASON_COUNT), "?");
    /* one list: the public HAKMEM_COUNTERS, in its order */
    ck_assert_str_eq(proto_counter_name(HAKMEM_COUNTER_ID(mmap_calls)), "mmap_calls");
    ck_assert_str_eq(proto_counter_name(HAKMEM_COUNTER_ID(lean_decommit)), "lean_decommit");
    ck_assert_str_eq(proto_counter_name(HAKMEM_COUNTER_ID(level)), "level");
    ck_assert_ptr_null(proto_counter_name(HAKMEM_COUNTER_COUNT));
    ck_assert_int_eq(HAKMEM_COUNTER_COUNT, 20);
    ck_assert_str_eq(proto_counter_name(HAKMEM_COUNTER_ID(bytes_lazy)), "bytes_lazy");
    ck_assert_int_eq(proto_counter_kind(HAKMEM_COUNTER_ID(bytes_lazy)), HAKMEM_KIND_GAUGE);
    ck_assert_int_eq(proto_counter_kind(HAKMEM_COUNTER_ID(madvise_calls)), HAKMEM_KIND_TOTAL);
    ck_assert_int_eq(proto_counter_kind(HAKMEM_COUNTER_ID(bytes_in_use)), HAKMEM_KIND_GAUGE);
    ck_assert_int_eq(proto_counter_kind(HAKMEM_COUNTER_ID(mode)), HAKMEM_KIND_STATE);
    ck_assert_int_eq(proto_counter_kind(HAKMEM_COUNTER_COUNT), -1);
}
END_TEST

START_TEST(test_clean_text)
{
    char out[16];
    ck_assert_str_eq(proto_clean_text(out, sizeof(out), "sshd"), "sshd");
    ck_assert_str_eq(proto_clean_text(out, sizeof(out), "\xff\xfe\xc3(bad\x80"), "??" "?(bad?");
    ck_assert_str_eq(proto_clean_text(out, sizeof(out), "a\nb\x1b[2J\x7f"), "a?b?[2J?");
    ck_assert_str_eq(proto_clean_text(out, sizeof(out), "caf\xc3\xa9 \xc2\x85"), "caf\xc3\xa9 ?");
    ck_assert_str_eq(proto_clean_text(out, 6, "abcdefgh"), "abcde");
    ck_assert_str_eq(proto_clean_text(out, 6, "abcd\xc3\xa9"), "abcd"); /* no half character */
    char in_place[] = "x\xffy\n";
    ck_assert_str_eq(proto_clean_text(in_place, sizeof(in_place), in_place), "x?y?");
}
END_TEST

/* ---- stats page ------------------------------------------------------------ */

START_TEST(test_stats_page)
{
    static _Alignas(4096) unsigned char page[4096];
    struct proto_stats s = { 0 }, out;
    ck_assert_int_eq(proto_stats_init(page, 100, 1), -EINVAL);
    ck_assert_int_eq(proto_stats_init(page, sizeof(page), 555), 0);
    ck_assert_int_eq(proto_stats_read(page, sizeof(page), &out), 0);
    ck_assert_uint_eq(out.pid, 555);
    ck_assert_uint_eq(out.present, (1u << HAKMEM_COUNTER_COUNT) - 1);

    s.mode = HAKMEM_MODE_LEAN;
    s.last_level = HAKMEM_LEVEL_MEDIUM;
    s.present = (1u << HAKMEM_COUNTER_COUNT) - 1;
    s.flags = HAKMEM_STATS_F_DAEMON;
    s.updated_ns = 99;
    for (int i = 0; i < HAKMEM_COUNTER_COUNT; i++)
        s.counter[i] = 1000 + (uint64_t)i;
    proto_stats_write((struct hakmem_stats_page *)page, &s);
    ck_assert_int_eq(proto_stats_read(page, sizeof(page), &out), 0);
    ck_assert_uint_eq(out.mode, HAKMEM_MODE_LEAN);
    ck_assert_uint_eq(out.last_level, HAKMEM_LEVEL_MEDIUM);
    ck_assert_uint_eq(out.updated_ns, 99);
    ck_assert_uint_eq(out.flags, HAKMEM_STATS_F_DAEMON);
    ck_assert_uint_eq(out.counter[HAKMEM_COUNTER_ID(mode_switches)],
                      1000 + HAKMEM_COUNTER_ID(mode_switches));
    ck_assert_uint_eq(out.counter[HAKMEM_COUNTER_COUNT], 0);
    ck_assert_uint_eq(out.present, (1u << HAKMEM_COUNTER_COUNT) - 1);
    /* the fixed offset the daemon relies on */
    uint64_t v;
    memcpy(&v, page + offsetof(struct hakmem_stats_page, counter[HAKMEM_COUNTER_ID(madvise_calls)]), 8);
    ck_assert_uint_eq(v, 1000 + HAKMEM_COUNTER_ID(madvise_calls));

    /* a page of version 1 (an older shim): its counters in the v1 order
     * come out under their names, and only those are present */
    static _Alignas(4096) unsigned char old[4096];
    struct hakmem_stats_page *op = (struct hakmem_stats_page *)old;
    memcpy(old, page, sizeof(old));
    op->version = 1;
    atomic_store(&op->ncounters, 11);
    static const char *const v1[] = { "lean_decommit", "lean_retire", "madvise_calls",
        "mmap_calls", "munmap_calls", "bytes_decommitted", "bytes_committed", "bytes_in_use",
        "superslabs_live", "superslabs_cached", "mode_switches" };
    for (unsigned i = 0; i < 11; i++)
        atomic_store(&op->counter[i], 500 + i);
    ck_assert_int_eq(proto_stats_read(old, sizeof(old), &out), 0);
    uint32_t want = 0;
    for (unsigned i = 0; i < 11; i++) {
        unsigned id = 0;
        while (id < HAKMEM_COUNTER_COUNT && strcmp(proto_counter_name(id), v1[i]) != 0)
            id++;
        ck_assert_uint_lt(id, HAKMEM_COUNTER_COUNT);
        ck_assert_uint_eq(out.counter[id], 500 + i);
        want |= 1u << id;
    }
    ck_assert_uint_eq(out.present, want);
    ck_assert_uint_eq(out.counter[HAKMEM_COUNTER_ID(large_live)], 0);

    static _Alignas(4096) unsigned char bad[4096];
    struct hakmem_stats_page *bp = (struct hakmem_stats_page *)bad;
    memcpy(bad, page, sizeof(bad));
    ck_assert_int_eq(proto_stats_read(bad, sizeof(struct hakmem_stats_page) - 1, &out), -EBADMSG);
    ck_assert_int_eq(proto_stats_read(bad + 4, 4000, &out), -EINVAL);
    bp->magic ^= 1;
    ck_assert_int_eq(proto_stats_read(bad, sizeof(bad), &out), -EBADMSG);
    memcpy(bad, page, sizeof(bad));
    bp->version = 0;
    ck_assert_int_eq(proto_stats_read(bad, sizeof(bad), &out), -EPROTONOSUPPORT);
    memcpy(bad, page, sizeof(bad));
    bp->size = 8192; /* claims more than is mapped */
    ck_assert_int_eq(proto_stats_read(bad, sizeof(bad), &out), -EBADMSG);
    bp->size = 16;
    ck_assert_int_eq(proto_stats_read(bad, sizeof(bad), &out), -EBADMSG);
    memcpy(bad, page, sizeof(bad));
    atomic_store(&bp->ncounters, HAKMEM_STATS_MAX_COUNTERS + 1);
    ck_assert_int_eq(proto_stats_read(bad, sizeof(bad), &out), -EINVAL);
    memcpy(bad, page, sizeof(bad));
    atomic_store(&bp->mode, 7);
    ck_assert_int_eq(proto_stats_read(bad, sizeof(bad), &out), -EINVAL);
    memcpy(bad, page, sizeof(bad));
    atomic_store(&bp->last_level, 4);
    ck_assert_int_eq(proto_stats_read(bad, sizeof(bad), &out), -EINVAL);
    memcpy(bad, page, sizeof(bad));
    atomic_fetch_add(&bp->seq, 1); /* a writer that died mid-write */
    ck_assert_int_eq(proto_stats_read(bad, sizeof(bad), &out), -EAGAIN);
}
END_TEST

struct stats_race {
    struct hakmem_stats_page *pg;
    atomic_int stop;
};
#define STATS_RACE_WRITES 200000

static void *stats_writer(void *arg)
{
    struct stats_race *sr = arg;
    struct proto_stats s = { .present = (1u << HAKMEM_COUNTER_COUNT) - 1 };
    for (uint64_t i = 1; i <= STATS_RACE_WRITES; i++) {
        s.updated_ns = i;
        for (int c = 0; c < HAKMEM_COUNTER_COUNT; c++)
            s.counter[c] = i;
        proto_stats_write(sr->pg, &s);
        for (int k = 0; k < 64; k++) /* a pause, so that readers also get through */
            __builtin_ia32_pause();
        if (i % 1000 == 0)
            sched_yield(); /* between writes: a reader that runs now succeeds */
    }
    atomic_store(&sr->stop, 1);
    return NULL;
}

START_TEST(test_stats_race)
{
    static _Alignas(4096) unsigned char page[4096];
    struct stats_race sr = { .pg = (struct hakmem_stats_page *)page };
    struct proto_stats out;
    pthread_t t;
    ck_assert_int_eq(proto_stats_init(page, sizeof(page), 1), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, stats_writer, &sr), 0);
    uint64_t good = 0, busy = 0, last = 0;
    while (!atomic_load(&sr.stop)) {
        int rc = proto_stats_read(page, sizeof(page), &out);
        if (rc == -EAGAIN) {
            busy++;
            sched_yield();
            continue;
        }
        ck_assert_int_eq(rc, 0);
        for (int c = 0; c < HAKMEM_COUNTER_COUNT; c++)
            ck_assert_uint_eq(out.counter[c], out.updated_ns);
        ck_assert_uint_ge(out.updated_ns, last);
        last = out.updated_ns;
        good++;
    }
    pthread_join(t, NULL);
    ck_assert_int_eq(proto_stats_read(page, sizeof(page), &out), 0);
    ck_assert_uint_eq(out.updated_ns, STATS_RACE_WRITES);
    ck_assert_uint_gt(good, 0);
    fprintf(stderr, "stats race: %llu snapshots, %llu busy, last %llu\n",
            (unsigned long long)good, (unsigned long long)busy, (unsigned long long)last);
}
END_TEST

static Suite *ring_suite(void)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("layout");
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_validate_refuses);
    suite_add_tcase(s, tc);

    tc = tcase_create("ring");
    tcase_add_test(tc, test_publish_read_order);
    tcase_add_test(tc, test_wraparound);
    tcase_add_test(tc, test_lapped_resync);
    tcase_add_test(tc, test_torn_slot);
    tcase_add_test(tc, test_state_table);
    tcase_add_test(tc, test_resolve);
    tcase_add_test(tc, test_heartbeat_close_wait);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrency");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_torn_race);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_processes);
    tcase_add_test(tc, test_stats_race);
    suite_add_tcase(s, tc);

    tc = tcase_create("messages");
    tcase_add_test(tc, test_memfd_check);
    tcase_add_test(tc, test_hello);
    tcase_add_test(tc, test_welcome);
    tcase_add_test(tc, test_ctl_req);
    tcase_add_test(tc, test_ctl_resp);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_clean_text);
    tcase_add_test(tc, test_stats_page);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ring_suite)
