/* control_fmt.h: the answers of the control sockets, written into a
 * struct resp that control.c owns and sends (datagrams of at most
 * HAKMEM_CTL_PAYLOAD_MAX payload bytes, queued as the peer reads).
 *   control.c      the sockets, the requests, the answer's datagrams
 *   control_fmt.c  STATUS and CLIENTS
 *   metrics_fmt.c  METRICS (Prometheus text)
 */
#ifndef HAKMEMD_CONTROL_FMT_H
#define HAKMEMD_CONTROL_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hakmem_proto.h"

struct daemon;
struct cgroup;
struct resp;

/* control.c: one line of text (cut to a datagram's payload, always
 * ending with its newline); one record of a payload type. */
void resp_text(struct resp *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void resp_record(struct resp *r, uint16_t type, const void *rec, uint32_t size);

/* control_fmt.c */
void control_fmt_status(struct daemon *d, struct resp *r);
void control_fmt_clients(struct daemon *d, struct resp *r);
/* Clients that said hello (not the connections still being checked). */
size_t control_registered_clients(const struct daemon *d);
/* The STATUS record of a tracked cgroup. */
void control_cgroup_record(struct daemon *d, const struct cgroup *c, struct hakmem_ctl_cgroup *rec);

/* metrics_fmt.c: per_process adds the per-client series. */
void metrics_fmt(struct daemon *d, struct resp *r, bool per_process);

#endif /* HAKMEMD_CONTROL_FMT_H */
