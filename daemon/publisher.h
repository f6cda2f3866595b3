/* publisher.h: the ring's producer side. Owns the ring memfd (sealed
 * against shrink and grow; mapped read-write here only, then sealed
 * against every future write and made mode 0400, so that the kernel
 * refuses any other writer, root in a container included), the read-only
 * fd every client receives, publishing levels (with the futex wake) and
 * the heartbeat. Single-threaded: the event loop calls it. */
#ifndef HAKMEMD_PUBLISHER_H
#define HAKMEMD_PUBLISHER_H

#include <stddef.h>
#include <stdint.h>
#include "ring.h"

struct publisher {
    int memfd;                  /* read-write, ours */
    int ro_fd;                  /* read-only reopen, sent to clients */
    void *mem;
    size_t size;                /* bytes mapped and sent as ring_size */
    struct ring_producer rp;
    uint64_t published;         /* messages published */
};

/* slots and table_cap: powers of two. heartbeat_ns: period. */
int publisher_open(struct publisher *p, uint32_t slots, uint32_t table_cap,
                   uint64_t heartbeat_ns, uint64_t now_ns);
int publisher_publish(struct publisher *p, uint64_t key, int level, uint8_t flags,
                      uint16_t reason, uint64_t now_ns);
void publisher_heartbeat(struct publisher *p, uint64_t now_ns);
/* The heartbeat period from now on, where clients read it (a reload). */
void publisher_set_heartbeat(struct publisher *p, uint64_t period_ns);
/* Marks the ring CLOSED (clients reconnect), wakes them, frees it. */
void publisher_close(struct publisher *p);

#endif
