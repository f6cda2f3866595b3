/* ctl_client.c: hakmemctl's side of control.sock (SOCK_SEQPACKET): one
 * request out, then datagrams in until one comes without
 * HAKMEM_CTL_F_MORE, each checked by proto_ctl_resp_check before any field
 * is used, their TEXT payloads concatenated and their records gathered.
 *
 * Owns: the socket, the deadline, the bounds on what the daemon may send.
 * Must not: log, exit, or interpret what the daemon said (the caller
 * turns out->status and the errors into messages and exit codes).
 * The daemon is treated as untrusted: every datagram is bounded by
 * HAKMEM_MSG_MAX, the whole answer by CTL_REPLY_MAX, the time by the
 * caller's timeout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "ctl.h"
#include "msg.h"

int ctl_socket_path(const char *runtime_dir, const char *name, char *buf, size_t len)
{
    struct sockaddr_un sa;
    size_t n = strlen(runtime_dir);

    /* "dir/" + name, without doubling a trailing slash */
    while (n > 1 && runtime_dir[n - 1] == '/')
        n--;
    int w = snprintf(buf, len, "%.*s/%s", (int)n, runtime_dir, name);
    if (w < 0 || (size_t)w >= len || (size_t)w >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    return 0;
}

int ctl_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends n bytes to *buf (size *len), keeping room for a NUL. */
static int append(void **buf, size_t *len, const void *src, size_t n, size_t total)
{
    if (total + n > CTL_REPLY_MAX)
        return -EMSGSIZE;
    void *p = realloc(*buf, *len + n + 1);
    if (!p)
        return -ENOMEM;
    memcpy((char *)p + *len, src, n);
    *len += n;
    ((char *)p)[*len] = '\0';
    *buf = p;
    return 0;
}

/* One datagram into buf; its length, or a negative errno. */
static int recv_one(int fd, unsigned char *buf, size_t cap, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -ETIMEDOUT;

        struct iovec iov = { .iov_base = buf, .iov_len = cap };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == ECONNRESET) {
            /* closed with our request unread: the kernel says so once,
             * before what the daemon queued for us (a refusal) */
            n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
            if (n < 0 && errno == EAGAIN)
                return -ECONNRESET;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        if (n == 0)
            return -ECONNRESET; /* the daemon closed before the last datagram */
        if (mh.msg_flags & MSG_TRUNC)
            return -EMSGSIZE;
        return (int)n;
    }
}

int ctl_exchange(int fd, const struct hakmem_ctl_req *req, int timeout_ms, struct ctl_reply *out)
{
    /* one spare byte so that an oversized datagram shows as MSG_TRUNC */
    static unsigned char buf[HAKMEM_MSG_MAX + 1];
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    size_t total = 0, cg_bytes = 0, cl_bytes = 0;

    memset(out, 0, sizeof(*out));
    int sent = send(fd, req, sizeof(*req), MSG_NOSIGNAL) < 0 ? -errno : 0;
    if (sent < 0 && sent != -EPIPE && sent != -ECONNRESET)
        return sent;
    /* refused and closed before our request: its reason is still there */

    for (;;) {
        struct hakmem_ctl_resp h;
        const unsigned char *payload;
        int rc, n = recv_one(fd, buf, sizeof(buf), deadline);
        if (n < 0)
            return n;
        rc = proto_ctl_resp_check(buf, (size_t)n, &h, &payload);
        if (rc < 0)
            return rc;
        if (h.command == HAKMEM_CTL_REFUSED) {  /* the connection was refused: why, in words */
            out->status = h.status;
            out->refused = true;
            out->datagrams++;
            rc = append((void **)&out->text, &out->text_len, payload, h.payload_len, 0);
            return rc < 0 ? rc : 0;
        }
        if (sent < 0 || h.command != req->command)
            return sent < 0 ? sent : -EBADMSG;
        out->datagrams++;
        if (h.status < 0 && out->status == 0)
            out->status = h.status;

        switch (h.payload_type) {
        case HAKMEM_CTL_PAYLOAD_TEXT:
            rc = append((void **)&out->text, &out->text_len, payload, h.payload_len, total);
            break;
        case HAKMEM_CTL_PAYLOAD_CGROUPS:
            rc = append((void **)&out->cgroups, &cg_bytes, payload, h.payload_len, total);
            out->ncgroups = cg_bytes / sizeof(struct hakmem_ctl_cgroup);
            break;
        case HAKMEM_CTL_PAYLOAD_CLIENTS:
            rc = append((void **)&out->clients, &cl_bytes, payload, h.payload_len, total);
            out->nclients = cl_bytes / sizeof(struct hakmem_ctl_client);
            break;
        default: /* NONE: nothing to keep */
            rc = 0;
            break;
        }
        if (rc < 0)
            return rc;
        total += h.payload_len;
        if (!(h.flags & HAKMEM_CTL_F_MORE))
            break;
    }
    if (!out->text) {
        /* callers may always read text as a (possibly empty) string */
        out->text = calloc(1, 1);
        if (!out->text)
            return -ENOMEM;
    }
    return 0;
}

void ctl_reply_free(struct ctl_reply *r)
{
    free(r->text);
    free(r->cgroups);
    free(r->clients);
    memset(r, 0, sizeof(*r));
}

void ctl_metrics_req(struct hakmem_ctl_req *q, bool per_process)
{
    proto_ctl_req_init(q, HAKMEM_CTL_METRICS);
    if (per_process)
        q->flags |= HAKMEM_CTL_REQ_F_PER_PROCESS;
}

const char *ctl_metrics_refusal(const struct hakmem_ctl_req *q, int32_t status)
{
    if (status == -EINVAL && (q->flags & HAKMEM_CTL_REQ_F_PER_PROCESS))
        return " (a hakmemd older than this hakmemctl does not know --per-process)";
    return "";
}
