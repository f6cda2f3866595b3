/* e2e_obs.h: a raw client that keeps its registration and maps the ring
 * read-only, to watch what every shim sees (state, heartbeat,
 * generation). Header-only; for the restart tests. */
#ifndef HAKMEM_E2E_OBS_H
#define HAKMEM_E2E_OBS_H

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "e2e.h"
#include "ring.h"

struct e2e_obs {
    int sock;
    void *mem;
    size_t len;
    struct ring ring;
    struct hakmem_welcome w;
};

static inline bool e2e_obs_open(struct e2e_obs *o, const char *rtdir)
{
    memset(o, 0, sizeof(*o));
    o->sock = e2e_connect(rtdir);
    if (o->sock < 0)
        return false;
    int sfd = e2e_stats_memfd(4096, F_SEAL_SHRINK | F_SEAL_GROW);
    struct hakmem_hello h;
    e2e_hello(&h, true, 4096);
    e2e_send(o->sock, &h, sizeof(h), &sfd, 1);
    close(sfd);
    int ring_fd = -1;
    if (e2e_recv_reply(o->sock, 2000, &o->w, &ring_fd) != E2E_WELCOME) {
        close(o->sock);
        o->sock = -1;
        return false;
    }
    o->len = (size_t)o->w.ring_size;
    o->mem = mmap(NULL, o->len, PROT_READ, MAP_SHARED, ring_fd, 0);
    close(ring_fd);
    if (o->mem == MAP_FAILED || ring_validate(&o->ring, o->mem, o->len) != 0) {
        close(o->sock);
        o->sock = -1;
        return false;
    }
    return true;
}

static inline void e2e_obs_close(struct e2e_obs *o)
{
    if (o->mem && o->mem != MAP_FAILED)
        munmap(o->mem, o->len);
    if (o->sock >= 0)
        close(o->sock);
    memset(o, 0, sizeof(*o));
    o->sock = -1;
}

static inline uint32_t e2e_obs_state(const struct e2e_obs *o)
{
    return ring_state_word(&o->ring);
}

static inline double e2e_obs_heartbeat_age(const struct e2e_obs *o)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return (double)ring_heartbeat_age(&o->ring, now) / 1e9;
}

#endif
