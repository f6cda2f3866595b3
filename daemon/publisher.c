/* publisher.c: see publisher.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include "publisher.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010      /* Linux 5.1; older headers lack it */
#endif

int publisher_open(struct publisher *p, uint32_t slots, uint32_t table_cap,
                   uint64_t heartbeat_ns, uint64_t now_ns)
{
    memset(p, 0, sizeof(*p));
    p->memfd = p->ro_fd = -1;
    size_t size = ring_layout_size(slots, table_cap);
    if (size == 0)
        return -EINVAL;
    int rc;
    p->memfd = memfd_create("hakmem-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (p->memfd < 0)
        return -errno;
    if (ftruncate(p->memfd, (off_t)size) != 0 ||
        fcntl(p->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
        goto fail_errno;
    p->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, p->memfd, 0);
    if (p->mem == MAP_FAILED) {
        p->mem = NULL;
        goto fail_errno;
    }
    /* Clients get a descriptor that cannot be mapped writable. */
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", p->memfd);
    p->ro_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (p->ro_fd < 0)
        goto fail_errno;
    p->size = size;
    struct ring_params params = {
        .heartbeat_period_ns = heartbeat_ns,
        .now_ns = now_ns,
        .daemon_pid = (uint32_t)getpid(),
    };
    if (getrandom(&params.generation, sizeof(params.generation), 0) != sizeof(params.generation))
        params.generation = now_ns ^ ((uint64_t)getpid() << 32);
    rc = ring_init(&p->rp, p->mem, size, slots, table_cap, &params);
    if (rc < 0)
        goto fail;
    /* Our mapping is the last writable view there will ever be: no new
     * one (reopening /proc/self/fd/N read-write, mmap or mprotect with
     * PROT_WRITE), no write(), no fallocate, no new seal; and the mode
     * refuses reopening at all to everyone but root. */
    if (fcntl(p->memfd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0 ||
        fchmod(p->memfd, 0400) != 0)
        goto fail_errno;
    return 0;

fail_errno:
    rc = -errno;
fail:
    publisher_close(p);
    return rc;
}

int publisher_publish(struct publisher *p, uint64_t key, int level, uint8_t flags,
                      uint16_t reason, uint64_t now_ns)
{
    int rc = ring_publish(&p->rp, key, (uint8_t)level, flags, now_ns, reason);
    if (rc < 0 && rc != -ENOSPC)
        return rc;
    p->published++;
    ring_wake(&p->rp);
    return rc;
}

void publisher_heartbeat(struct publisher *p, uint64_t now_ns)
{
    ring_heartbeat(&p->rp, now_ns);
}

void publisher_set_heartbeat(struct publisher *p, uint64_t period_ns)
{
    ring_set_heartbeat_period(&p->rp, period_ns);
}

void publisher_close(struct publisher *p)
{
    if (p->mem) {
        ring_close(&p->rp);
        ring_wake(&p->rp);
        munmap(p->mem, p->size);
    }
    if (p->ro_fd >= 0)
        close(p->ro_fd);
    if (p->memfd >= 0)
        close(p->memfd);
    p->mem = NULL;
    p->memfd = p->ro_fd = -1;
}
