/* msg.h: building and checking the socket messages and the stats page
 * (layouts in hakmem_proto.h). Checkers take the bytes as received and
 * their count, refuse anything inconsistent and return an aligned copy;
 * they never trust a size field over the byte count. Nothing here
 * allocates or logs; functions that can fail return a negative errno:
 *   -EMSGSIZE          more bytes than the message may have
 *   -EBADMSG           truncated, wrong magic, size field != bytes received
 *   -EPROTONOSUPPORT   a protocol version not served (hellos, welcomes and
 *                      stats pages: HAKMEM_PROTO_VERSION_MIN and later;
 *                      control messages: HAKMEM_PROTO_VERSION only)
 *   -EINVAL            a field out of range
 */
#ifndef HAKMEM_MSG_H
#define HAKMEM_MSG_H

#include <stddef.h>
#include <stdint.h>
#include "hakmem_proto.h"

/* A stats page snapshot, as the shim writes it and the daemon reads it
 * (whatever the page's version: counters by the ids of this version). */
struct proto_stats {
    uint32_t pid;
    uint32_t mode;        /* enum hakmem_mode */
    uint32_t last_level;  /* enum hakmem_level */
    uint32_t present;     /* bit i: counter[i] is known; a writer sets bits 0..n-1 */
    uint32_t flags;       /* HAKMEM_STATS_F_* */
    uint64_t updated_ns;  /* monotonic ns */
    uint64_t counter[HAKMEM_STATS_MAX_COUNTERS]; /* index: enum hakmem_counter_id */
};

/* msg.c: names (the same strings everywhere: output, metrics, docs) */
const char *proto_level_name(unsigned level);
/* A level's name (case-insensitive) or number 0..3 into *out.
 * Returns 0, or -EINVAL. */
int proto_level_parse(const char *s, unsigned *out);
const char *proto_mode_name(unsigned mode);
const char *proto_reason_name(unsigned reason);
const char *proto_counter_name(unsigned id);   /* NULL past the last */
int proto_counter_kind(unsigned id);           /* enum hakmem_counter_kind, -1 past the last */

/* msg.c: text from the other side. Names and paths are chosen by other
 * users (a process renames itself, a delegated cgroup has any name):
 * proto_clean_text copies src into dst (len bytes with the NUL) as valid
 * UTF-8 without control characters (C0, DEL, C1): every other byte
 * becomes '?'; dst may be src. Returns dst. proto_utf8_len: length of the
 * valid UTF-8 sequence at s (n > 0 bytes left), 0 if invalid. */
char *proto_clean_text(char *dst, size_t len, const char *src);
size_t proto_utf8_len(const unsigned char *s, size_t n);

/* msg.c: rendezvous */
void proto_hello_init(struct hakmem_hello *h, uint32_t pid, uint32_t flags, uint32_t stats_size,
                      uint32_t mode, const char *comm);
int proto_hello_check(const void *buf, size_t len, struct hakmem_hello *out);
void proto_welcome_init(struct hakmem_welcome *w, int32_t status);
int proto_welcome_check(const void *buf, size_t len, struct hakmem_welcome *out);

/* msg.c: control */
void proto_ctl_req_init(struct hakmem_ctl_req *q, uint16_t command);
int proto_ctl_req_check(const void *buf, size_t len, struct hakmem_ctl_req *out);
void proto_ctl_resp_init(struct hakmem_ctl_resp *h, uint16_t command, int32_t status,
                         uint16_t payload_type, uint32_t payload_len, uint16_t flags);
int proto_ctl_resp_check(const void *buf, size_t len, struct hakmem_ctl_resp *out,
                         const unsigned char **payload);

/* msg.c: stats page (one writer; readers copy under the seqlock) */
int proto_stats_init(void *mem, size_t size, uint32_t pid);
void proto_stats_write(struct hakmem_stats_page *pg, const struct proto_stats *s);
int proto_stats_read(const void *mem, size_t size, struct proto_stats *out);

/* msg.c: a received memfd (ring or stats page) is a regular file sealed
 * against shrinking and growing, of a size in [min, max] */
int proto_memfd_check(int fd, uint64_t min, uint64_t max, uint64_t *size);

#endif
