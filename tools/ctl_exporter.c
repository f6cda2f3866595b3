/* ctl_exporter.c: `hakmemctl metrics --listen ADDR:PORT`, an HTTP/1.1
 * exporter of hakmemd's metrics for Prometheus. It runs as any user: it
 * only ever sends hakmemd the METRICS request, which every local user may
 * send, so no HTTP request can change anything.
 *
 * One thread, one poll loop. Each connection carries one request and is
 * closed after the answer (Connection: close). What a client may hold is
 * bounded: EXP_CONN_MAX connections, EXP_HEAD_MAX bytes of request head
 * received within EXP_HEAD_TIMEOUT_MS, the answer taken within
 * EXP_SEND_TIMEOUT_MS. When every slot is taken, the connection that has
 * been reading its request head the longest makes room for the new one
 * (else the oldest), so clients that trickle their bytes (slowloris)
 * cannot lock out a scraper. Requests for /metrics that are complete in
 * one round of the loop share one exchange with hakmemd, bounded by the
 * --timeout; a fresh connection each time, so a restarted hakmemd is
 * picked up at the next scrape. hakmem_up says whether hakmemd answered,
 * hakmem_scrape_duration_seconds how long it took.
 *
 * Owns: the listening socket, the connections, the HTTP answers.
 * Must not: send hakmemd anything but METRICS; block on a client.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "ctl.h"
#include "msg.h"

#define EXP_CONN_MAX        16    /* connections at once: a scraper or two, a human, spare */
#define EXP_HEAD_MAX        8192  /* bytes of request line and headers (Prometheus sends ~300) */
#define EXP_HEAD_TIMEOUT_MS 5000  /* to send the whole request head */
#define EXP_SEND_TIMEOUT_MS 10000 /* to take the whole answer (Prometheus' default scrape timeout) */
#define EXP_LINGER_MS       1000  /* after the answer: reading what the client still sends */
#define EXP_LINGER_MAX      65536 /* bytes read and thrown away then */
#define EXP_BACKLOG         64

enum conn_state {
    CONN_HEAD,   /* reading the request line and headers */
    CONN_READY,  /* a /metrics request, waiting for this round's exchange with hakmemd */
    CONN_SEND,   /* sending the answer */
    CONN_LINGER, /* answer sent, our side shut: reading until EOF so that the
                  * client gets the answer rather than a reset */
};

struct conn {
    int fd;
    enum conn_state state;
    int64_t opened_ms;   /* monotonic */
    int64_t deadline_ms; /* of the current state */
    bool head_only;      /* a HEAD request */
    size_t head_len;
    char head[EXP_HEAD_MAX];
    char *out;           /* the answer, headers and body */
    size_t out_len, out_sent;
    size_t lingered;     /* bytes thrown away while lingering */
};

struct exporter {
    const struct ctl_exporter_opts *o;
    const char *sock;    /* where the last METRICS request went */
    int lfd;
    struct conn *conn[EXP_CONN_MAX];
    size_t nconn;
    int last_up;         /* -1 before the first scrape, else 0 or 1 */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    fputs("hakmemctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- listening ------------------------------------------------------------ */

/* "HOST:PORT", "[V6]:PORT" or ":PORT" into host (NULL: every address) and
 * port. -EINVAL when it does not parse. */
static int split_listen(const char *arg, char *host, size_t hostlen, char *port, size_t portlen,
                        bool *any)
{
    const char *colon = strrchr(arg, ':'), *h = arg;
    size_t hl;

    if (!colon || !colon[1] || strlen(colon + 1) >= portlen)
        return -EINVAL;
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return -EINVAL;
    hl = (size_t)(colon - arg);
    if (hl >= 2 && arg[0] == '[' && arg[hl - 1] == ']') {
        h++;
        hl -= 2;
    } else if (memchr(arg, ':', hl)) {
        return -EINVAL; /* an IPv6 address needs its brackets */
    }
    if (hl >= hostlen)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    strcpy(port, colon + 1);
    *any = hl == 0;
    return 0;
}

/* A listening, non-blocking TCP socket on arg; its address in bound. */
static int listen_on(const char *arg, char *bound, size_t boundlen, char *err, size_t errlen,
                     bool *usage)
{
    char host[256], port[16];
    bool any;
    *usage = false;
    if (split_listen(arg, host, sizeof(host), port, sizeof(port), &any) < 0
        || strtoul(port, NULL, 10) > 65535) {
        snprintf(err, errlen, "--listen: not ADDR:PORT, [IPV6]:PORT or :PORT: '%s'", arg);
        *usage = true;
        return -EINVAL;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG };
    struct addrinfo *res = NULL;
    /* every address: IPv6 with IPv4 mapped in when the host has IPv6 */
    int gai = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "--listen %s: %s", arg, gai_strerror(gai));
        *usage = gai == EAI_NONAME || gai == EAI_SERVICE;
        return -EINVAL;
    }
    int fd = -1, e = 0;
    struct addrinfo *ai = res;
    if (any) /* prefer the IPv6 wildcard, which takes IPv4 too */
        for (struct addrinfo *p = res; p; p = p->ai_next)
            if (p->ai_family == AF_INET6) {
                ai = p;
                break;
            }
    for (; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6 && any)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, EXP_BACKLOG) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", arg, strerror(e ? e : EADDRNOTAVAIL));
        return -e;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char h[NI_MAXHOST], s[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0
        && getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), s, sizeof(s),
                       NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(bound, boundlen, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, s);
    else
        snprintf(bound, boundlen, "%s", arg);
    return fd;
}

/* ---- connections ------------------------------------------------------------ */

static void conn_close(struct exporter *x, size_t i)
{
    struct conn *c = x->conn[i];
    close(c->fd);
    free(c->out);
    free(c);
    x->conn[i] = x->conn[--x->nconn];
}

/* Room for one more: the connection reading its head the longest goes,
 * else the oldest. */
static void make_room(struct exporter *x)
{
    size_t victim = 0;
    bool head = false;
    for (size_t i = 0; i < x->nconn; i++) {
        struct conn *c = x->conn[i];
        bool h = c->state == CONN_HEAD;
        if ((h && !head) || (h == head && c->opened_ms < x->conn[victim]->opened_ms)) {
            victim = i;
            head = h;
        }
    }
    conn_close(x, victim);
}

static void accept_all(struct exporter *x, int64_t now)
{
    for (;;) {
        int fd = accept4(x->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a connection that went away: nothing to do */
        struct conn *c = malloc(sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        if (x->nconn == EXP_CONN_MAX)
            make_room(x);
        c->fd = fd;
        c->state = CONN_HEAD;
        c->opened_ms = now;
        c->deadline_ms = now + EXP_HEAD_TIMEOUT_MS;
        c->head_only = false;
        c->head_len = 0;
        c->out = NULL;
        c->out_len = c->out_sent = c->lingered = 0;
        x->conn[x->nconn++] = c;
    }
}

/* The answer: status line, headers, and the body unless HEAD. */
static void answer(struct conn *c, int code, const char *reason, const char *type,
                   const char *extra, const char *body, size_t body_len, int64_t now)
{
    char date[64];
    time_t t = time(NULL);
    struct tm tm;
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&t, &tm));
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "%sConnection: close\r\n\r\n",
                      code, reason, date, type, body_len, extra ? extra : "");
    size_t bl = c->head_only ? 0 : body_len;
    c->out = malloc((size_t)hl + bl);
    if (!c->out) {
        c->state = CONN_LINGER; /* nothing to say: close soon */
        c->deadline_ms = now;
        return;
    }
    memcpy(c->out, head, (size_t)hl);
    if (bl)
        memcpy(c->out + hl, body, bl);
    c->out_len = (size_t)hl + bl;
    c->out_sent = 0;
    c->state = CONN_SEND;
    c->deadline_ms = now + EXP_SEND_TIMEOUT_MS;
}

static void answer_error(struct conn *c, int code, const char *reason, const char *extra,
                         const char *msg, int64_t now)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", code, reason, msg);
    answer(c, code, reason, "text/plain; charset=utf-8", extra, body, (size_t)n, now);
}

/* A complete request head in c->head: what to do with it. */
static void route(struct conn *c, int64_t now)
{
    /* request line: METHOD SP TARGET SP HTTP/1.x */
    char *eol = memchr(c->head, '\n', c->head_len);
    size_t ll = (size_t)(eol - c->head);
    if (ll && c->head[ll - 1] == '\r')
        ll--;
    char *line = c->head, *sp1 = memchr(line, ' ', ll);
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - line)) : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || ll - (size_t)(sp2 + 1 - line) != 8
        || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp2[8] < '0' || sp2[8] > '9') {
        answer_error(c, 400, "Bad Request", NULL, "not an HTTP/1.x request line", now);
        return;
    }
    size_t ml = (size_t)(sp1 - line), tl = (size_t)(sp2 - sp1 - 1);
    const char *target = sp1 + 1, *q = memchr(target, '?', tl);
    size_t pl = q ? (size_t)(q - target) : tl;
    bool get = ml == 3 && memcmp(line, "GET", 3) == 0;
    bool head = ml == 4 && memcmp(line, "HEAD", 4) == 0;
    c->head_only = head;
    if (pl != 8 || memcmp(target, "/metrics", 8) != 0) {
        answer_error(c, 404, "Not Found", NULL, "only /metrics is served here", now);
        return;
    }
    if (!get && !head) {
        answer_error(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
                     "/metrics takes GET and HEAD only", now);
        return;
    }
    c->state = CONN_READY;
}

static void on_readable(struct conn *c, int64_t now)
{
    if (c->state == CONN_LINGER) {
        char junk[4096];
        ssize_t n = recv(c->fd, junk, sizeof(junk), 0);
        if (n > 0)
            c->lingered += (size_t)n;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || c->lingered > EXP_LINGER_MAX)
            c->deadline_ms = now; /* done: closed at the sweep */
        return;
    }
    size_t room = sizeof(c->head) - c->head_len;
    ssize_t n = recv(c->fd, c->head + c->head_len, room, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) { /* gone, or an error: nothing to answer */
        c->state = CONN_LINGER;
        c->deadline_ms = now;
        return;
    }
    size_t from = c->head_len >= 3 ? c->head_len - 3 : 0;
    c->head_len += (size_t)n;
    /* the head ends with an empty line (CRLF CRLF, or bare LF LF) */
    for (size_t i = from; i < c->head_len; i++) {
        if (c->head[i] != '\n')
            continue;
        if ((i >= 1 && c->head[i - 1] == '\n') || (i >= 2 && c->head[i - 1] == '\r' && c->head[i - 2] == '\n')) {
            route(c, now);
            return;
        }
    }
    if (c->head_len == sizeof(c->head))
        answer_error(c, 431, "Request Header Fields Too Large", NULL,
                     "the request head is over 8 KiB", now);
}

static void on_writable(struct conn *c, int64_t now)
{
    while (c->out_sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            c->state = CONN_LINGER;
            c->deadline_ms = now;
            return;
        }
        c->out_sent += (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGER;
    c->deadline_ms = now + EXP_LINGER_MS;
}

/* ---- the scrape ------------------------------------------------------------ */

/* hakmemd's metrics, then the exporter's own, as one body (malloc'd). */
static char *scrape(struct exporter *x, size_t *len)
{
    struct hakmem_ctl_req q;
    struct ctl_reply r;
    char why[256] = "";
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);

    ctl_metrics_req(&q, x->o->per_process);
    memset(&r, 0, sizeof(r));
    /* metrics.sock when this user may use it (slots of its own, nobody
     * else's to take), else control.sock, chosen at every scrape: hakmemd
     * may have started, or restarted, since the last one */
    x->sock = x->o->msock && access(x->o->msock, W_OK) == 0 ? x->o->msock : x->o->sock;
    int fd = ctl_connect(x->sock);
    int rc = fd < 0 ? fd : ctl_exchange(fd, &q, x->o->timeout_ms, &r);
    if (fd >= 0)
        close(fd);
    if (rc == 0 && r.status < 0)
        rc = r.status;
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    int up = rc == 0;
    if (!up)
        snprintf(why, sizeof(why), "%s%s%s", fd < 0 ? "cannot connect: " : "", strerror(-rc),
                 ctl_metrics_refusal(&q, rc));
    if (up != x->last_up) {
        if (up)
            say("hakmemd answers on %s", x->sock);
        else
            say("hakmemd does not answer on %s (%s): serving hakmem_up 0", x->sock, why);
        x->last_up = up;
    }

    size_t dl = up ? r.text_len : 0;
    char own[640];
    int ol = snprintf(own, sizeof(own),
                      "# HELP hakmem_up Whether hakmemd answered the exporter's request for this scrape (1) or not (0).\n"
                      "# TYPE hakmem_up gauge\n"
                      "hakmem_up %d\n"
                      "# HELP hakmem_scrape_duration_seconds Time the exporter took to get hakmemd's metrics for this scrape.\n"
                      "# TYPE hakmem_scrape_duration_seconds gauge\n"
                      "hakmem_scrape_duration_seconds %.6f\n",
                      up, secs);
    bool nl = dl && r.text[dl - 1] != '\n';
    char *body = malloc(dl + (nl ? 1 : 0) + (size_t)ol + 1);
    if (body) {
        if (dl)
            memcpy(body, r.text, dl);
        if (nl)
            body[dl++] = '\n';
        memcpy(body + dl, own, (size_t)ol);
        *len = dl + (size_t)ol;
    }
    ctl_reply_free(&r);
    return body;
}

/* Every /metrics request that is ready gets this round's scrape. */
static void serve_ready(struct exporter *x)
{
    char *body = NULL;
    size_t len = 0;
    bool scraped = false;
    for (size_t i = 0; i < x->nconn; i++) {
        struct conn *c = x->conn[i];
        if (c->state != CONN_READY)
            continue;
        if (!scraped) {
            body = scrape(x, &len);
            scraped = true;
        }
        int64_t now = now_ms(); /* after the exchange, which may have taken a while */
        if (body)
            answer(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, body, len, now);
        else
            answer_error(c, 500, "Internal Server Error", NULL, "out of memory", now);
        on_writable(c, now); /* most answers go out at once */
    }
    free(body);
}

/* ---- the loop ------------------------------------------------------------ */

static volatile sig_atomic_t got_stop;

static void on_stop(int sig)
{
    got_stop = sig;
}

int ctl_exporter_run(const struct ctl_exporter_opts *o, char *err, size_t errlen)
{
    struct exporter x = { .o = o, .last_up = -1 };
    char bound[NI_MAXHOST + NI_MAXSERV + 4];
    bool usage;

    x.lfd = listen_on(o->listen, bound, sizeof(bound), err, errlen, &usage);
    if (x.lfd < 0)
        return usage ? CTL_EXIT_USAGE : CTL_EXIT_ERROR;

    /* SIGTERM and SIGINT are let in only inside ppoll, so that none is
     * lost between a look at got_stop and the wait */
    sigset_t block, orig, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &orig);
    waitmask = orig;
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    struct sigaction sa = { .sa_handler = on_stop };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    say("serving http://%s/metrics from %s%s", bound, o->msock ? o->msock : o->sock,
        o->per_process ? ", with the per-process series" : "");
    fflush(stderr);

    struct pollfd pfd[EXP_CONN_MAX + 1];
    int rc = CTL_EXIT_OK;
    while (!got_stop) {
        int64_t now = now_ms(), wait = -1;
        pfd[0] = (struct pollfd){ .fd = x.lfd, .events = POLLIN };
        for (size_t i = 0; i < x.nconn; i++) {
            struct conn *c = x.conn[i];
            pfd[i + 1] = (struct pollfd){ .fd = c->fd,
                                          .events = c->state == CONN_SEND ? POLLOUT : POLLIN };
            int64_t left = c->deadline_ms > now ? c->deadline_ms - now : 0;
            if (wait < 0 || left < wait)
                wait = left;
        }
        size_t npoll = x.nconn + 1;
        struct timespec ts = { .tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000 };
        int n = ppoll(pfd, npoll, wait < 0 ? NULL : &ts, &waitmask);
        if (n < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            rc = CTL_EXIT_ERROR;
            break;
        }
        now = now_ms();
        /* connections first (the array is as polled), then new ones */
        if (n > 0) {
            for (size_t i = npoll - 1; i >= 1; i--) {
                struct conn *c = x.conn[i - 1];
                if (!pfd[i].revents)
                    continue;
                if (c->state == CONN_SEND)
                    on_writable(c, now);
                else if (c->state == CONN_HEAD || c->state == CONN_LINGER)
                    on_readable(c, now);
            }
            if (pfd[0].revents & POLLIN)
                accept_all(&x, now);
        }
        serve_ready(&x);
        /* deadlines: a head not complete in time, an answer not taken in
         * time, a linger over */
        now = now_ms();
        for (size_t i = x.nconn; i-- > 0;) {
            struct conn *c = x.conn[i];
            if (c->deadline_ms > now)
                continue;
            if (c->state == CONN_HEAD && c->head_len) {
                answer_error(c, 408, "Request Timeout", NULL,
                             "the request head did not come within 5 s", now);
                on_writable(c, now);
                if (c->state != CONN_LINGER || c->deadline_ms > now)
                    continue;
            }
            conn_close(&x, i);
        }
    }
    if (got_stop)
        say("stopping (%s)", got_stop == SIGTERM ? "SIGTERM" : "SIGINT");
    while (x.nconn)
        conn_close(&x, x.nconn - 1);
    close(x.lfd);
    sigprocmask(SIG_SETMASK, &orig, NULL);
    return rc;
}
