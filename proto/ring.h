/* ring.h: the shared-memory ring, both sides (layout in hakmem_proto.h).
 * The daemon builds and publishes through a struct ring_producer; clients
 * validate a mapped region into a struct ring (their own copy of the
 * geometry) and read through a struct ring_reader. Nothing here
 * allocates, logs, maps or unmaps memory (the caller maps; in the shim,
 * its OS box). Reader functions never write to the region. Functions that
 * can fail return a negative errno.
 * Message validation and the stats page are in msg.h (included here).
 *
 * A client, after the welcome (ring fd checked with proto_memfd_check,
 * mapped PROT_READ):
 *   ring_validate(&r, mem, size); ring_reader_init(&rd, &r);
 *   apply(ring_resolve(&r, cgroup_key, pid_key));
 *   loop:
 *     closed = ring_state_word(&r) == HAKMEM_RING_STATE_CLOSED;
 *     f = ring_futex_value(&r);
 *     while ((rc = ring_read_next(&rd, &m)) != RING_EMPTY):
 *       RING_OK      if ring_msg_applies(&m, ...) -> re-run ring_resolve
 *       RING_LAPPED  ring_reader_resync(&rd) -> re-run ring_resolve
 *       -EBADMSG     skip (the reader moved past it)
 *     if closed (or any state but LIVE): reconnect, with backoff
 *     if !ring_heartbeat_alive(&r, now, timeout): daemon hung, fall back
 *       (timeout: a few ring_heartbeat_period(&r), read again each time)
 *     ring_wait(&r, f, timeout)
 * The daemon: size = ring_layout_size(); memfd, ftruncate, seal
 * F_SEAL_SHRINK|F_SEAL_GROW, mmap read-write, ring_init; a read-only fd
 * for clients by reopening /proc/self/fd/N O_RDONLY (one, shared by all);
 * then seal F_SEAL_FUTURE_WRITE|F_SEAL_SEAL and fchmod 0400, so that no
 * one else can ever write the region; then ring_publish + ring_wake per
 * change, ring_heartbeat per tick (ring_set_heartbeat_period when a
 * reload changes the period), ring_close + ring_wake on exit.
 */
#ifndef HAKMEM_RING_H
#define HAKMEM_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hakmem_proto.h"
#include "msg.h"

/* A validated view of a ring region: pointers into the mapping plus the
 * geometry copied and checked once. Readers use only these copies, never
 * the header's info block again, so a daemon that rewrites its header
 * after validation cannot lead them out of bounds. */
struct ring {
    const struct hakmem_ring_hdr *hdr; /* region start */
    const unsigned char *slots;        /* slot 0 */
    const unsigned char *table;        /* entry 0 */
    size_t size;                       /* bytes mapped */
    uint64_t total_size;               /* bytes of the region (<= size) */
    uint32_t slot_mask;                /* slot_count - 1 */
    uint32_t slot_size;                /* bytes */
    uint32_t table_mask;               /* table_cap - 1 */
    uint32_t entry_size;               /* bytes */
    uint64_t generation;
    uint64_t heartbeat_period_ns;
    uint32_t daemon_pid;
};

/* The daemon's handle: the view plus producer-only state. Single
 * producer: one thread calls the writing functions. */
struct ring_producer {
    struct ring ring;
    struct hakmem_ring_hdr *hdr; /* writable alias of ring.hdr */
    unsigned char *slots;        /* writable alias of ring.slots */
    unsigned char *table;        /* writable alias of ring.table */
    uint64_t head;       /* position of the last message published */
    uint32_t table_used; /* entries in use */
};

struct ring_params {
    uint64_t generation;          /* random per daemon start (getrandom) */
    uint64_t heartbeat_period_ns; /* ns, > 0 */
    uint64_t now_ns;              /* monotonic ns: created_ns and first heartbeat */
    uint32_t daemon_pid;
};

/* A client's read cursor. */
struct ring_reader {
    const struct ring *ring;
    uint64_t next;   /* position to read next */
    uint64_t lapped; /* times this reader was lapped (statistics) */
};

/* A state-table entry as read. */
struct ring_state {
    struct hakmem_ring_msg msg;
    uint64_t pos;    /* position of the message that set it */
    uint64_t writes; /* times the entry was written */
};

/* ring_read_next results (>= 0); errors are negative errno. */
enum ring_result {
    RING_OK = 0,     /* *out holds the next message */
    RING_EMPTY = 1,  /* nothing new: wait on the futex word */
    RING_LAPPED = 2, /* the producer overwrote unread messages: ring_reader_resync, then ring_resolve */
};

#define RING_WAIT_FOREVER UINT64_MAX

/* ring.c: daemon side */
size_t ring_layout_size(uint32_t slots, uint32_t table_cap);
int ring_init(struct ring_producer *p, void *mem, size_t size, uint32_t slots,
              uint32_t table_cap, const struct ring_params *params);
int ring_publish(struct ring_producer *p, uint64_t key, uint8_t level, uint8_t flags,
                 uint64_t ts_ns, uint16_t reason);
void ring_heartbeat(struct ring_producer *p, uint64_t now_ns);
void ring_set_heartbeat_period(struct ring_producer *p, uint64_t period_ns);
void ring_close(struct ring_producer *p);
int ring_wake(struct ring_producer *p);

/* ring.c: reader side (the daemon may use these on p->ring too) */
int ring_validate(struct ring *r, const void *mem, size_t size);
int ring_reader_init(struct ring_reader *rd, const struct ring *r);
int ring_reader_resync(struct ring_reader *rd);
int ring_read_next(struct ring_reader *rd, struct hakmem_ring_msg *out);
int ring_state_lookup(const struct ring *r, uint64_t key, struct ring_state *out);
int ring_resolve(const struct ring *r, uint64_t cgroup_key, uint64_t pid_key,
                 struct hakmem_ring_msg *out);
uint32_t ring_futex_value(const struct ring *r);
int ring_wait(const struct ring *r, uint32_t expected, uint64_t timeout_ns);
uint64_t ring_head(const struct ring *r);
uint64_t ring_heartbeat_ns(const struct ring *r);
uint64_t ring_heartbeat_age(const struct ring *r, uint64_t now_ns);
uint64_t ring_heartbeat_period(const struct ring *r);
bool ring_heartbeat_alive(const struct ring *r, uint64_t now_ns, uint64_t timeout_ns);
uint32_t ring_state_word(const struct ring *r);

/* Does a message concern a client with these keys? (Then re-run
 * ring_resolve: precedence needs all three entries.) */
static inline int ring_msg_applies(const struct hakmem_ring_msg *m, uint64_t cgroup_key,
                                   uint64_t pid_key)
{
    return m->key == HAKMEM_KEY_ALL || m->key == cgroup_key || (pid_key && m->key == pid_key);
}

#endif
