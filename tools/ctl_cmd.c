/* ctl_cmd.c: hakmemctl's commands that ask hakmemd once: status,
 * clients, metrics (or `metrics --listen`, the exporter) and lean; and
 * the exchange they share (one request, the refusals and errors mapped
 * to an exit code and one message).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "ctl.h"
#include "msg.h"

/* ---- talking to hakmemd -------------------------------------------------- */

/* One request on the socket at path; the answer in *r. Returns an exit
 * code, with the message for anything but CTL_EXIT_OK in err;
 * *connected says whether the connection was made. A daemon status other
 * than 0 is left in r->status for the caller (CTL_EXIT_OK is returned). */
static int call_on(const struct ctl_opts *o, const char *path, const struct hakmem_ctl_req *q,
                   struct ctl_reply *r, char *err, size_t errlen, bool *connected)
{
    memset(r, 0, sizeof(*r));
    *connected = false;
    int fd = ctl_connect(path);
    if (fd < 0) {
        int e = -fd;
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR || e == ENOTSOCK) {
            snprintf(err, errlen, "hakmemd is not running: cannot connect to %s (%s)", path,
                     strerror(e));
            return CTL_EXIT_NOT_RUNNING;
        }
        snprintf(err, errlen, "%scannot connect to %s (%s)",
                 e == EACCES || e == EPERM ? "permission denied: " : "", path, strerror(e));
        return e == EACCES || e == EPERM ? CTL_EXIT_DENIED : CTL_EXIT_ERROR;
    }
    *connected = true;
    int rc = ctl_exchange(fd, q, o->timeout_ms, r);
    close(fd);
    switch (rc) {
    case 0:
        return CTL_EXIT_OK;
    case -ETIMEDOUT:
        snprintf(err, errlen, "hakmemd did not answer within %.1f s (%s)", o->timeout_ms / 1000.0,
                 path);
        break;
    case -ECONNRESET:
    case -EPIPE:
        if (r->datagrams == 0)
            snprintf(err, errlen, "hakmemd closed the connection without an answer (%s)", path);
        else
            snprintf(err, errlen, "hakmemd closed the connection before the end of its answer");
        break;
    case -EPROTONOSUPPORT:
        snprintf(err, errlen, "hakmemd speaks another protocol version (hakmemctl speaks %d)",
                 HAKMEM_PROTO_VERSION);
        break;
    case -EBADMSG:
    case -EINVAL:
    case -EMSGSIZE:
        snprintf(err, errlen, "hakmemd sent a malformed answer (%s)", strerror(-rc));
        break;
    default:
        snprintf(err, errlen, "talking to hakmemd on %s failed: %s", path, strerror(-rc));
        break;
    }
    ctl_reply_free(r);
    return CTL_EXIT_ERROR;
}

/* One request: reads go to metrics.sock when this user may connect there
 * (its slots are the metrics group's and root's, out of anyone else's
 * reach), and come back to control.sock when that does not work out;
 * changes always go to control.sock. --socket picks one. */
static int call(const struct ctl_opts *o, const struct hakmem_ctl_req *q, struct ctl_reply *r,
                char *err, size_t errlen)
{
    bool connected;
    if (o->socket)
        return call_on(o, o->sock, q, r, err, errlen, &connected);
    if (q->command != HAKMEM_CTL_LEAN && access(o->msock, W_OK) == 0) {
        int rc = call_on(o, o->msock, q, r, err, errlen, &connected);
        if (connected && !(rc == CTL_EXIT_OK && r->refused))
            return rc;
        if (rc == CTL_EXIT_OK)
            ctl_reply_free(r);
    }
    return call_on(o, o->sock, q, r, err, errlen, &connected);
}

/* A daemon status other than 0, as a message (the daemon's reason when
 * it gave one) and an exit code. */
static int daemon_refused(const struct ctl_reply *r, char *err, size_t errlen)
{
    int e = -r->status;
    const char *why = r->text && r->text[0] ? r->text : NULL;
    if (e == EPERM || e == EACCES) {
        if (why)
            snprintf(err, errlen, "permission denied: %s", why);
        else
            snprintf(err, errlen, "permission denied: hakmemd refused (%s); this needs root or "
                     "membership in the group hakmem", strerror(e));
        return CTL_EXIT_DENIED;
    }
    snprintf(err, errlen, "hakmemd refused the %s: %s", r->refused ? "connection" : "request",
             why ? why : strerror(e));
    return CTL_EXIT_ERROR;
}

void ctl_view_free(struct ctl_view *v)
{
    ctl_reply_free(&v->status_reply);
    ctl_status_free(&v->status);
    ctl_reply_free(&v->clients_reply);
    memset(v, 0, sizeof(*v));
}

/* STATUS and/or CLIENTS into *v. A clients view asks STATUS as well, for
 * the cgroup paths; that one may fail without failing the view. */
int ctl_fetch_view(const struct ctl_opts *o, bool want_status, bool want_clients,
                      struct ctl_view *v, char *err, size_t errlen)
{
    struct hakmem_ctl_req q;
    char ignored[512];
    int rc;

    memset(v, 0, sizeof(*v));
    v->proc_root = CTL_PROC_ROOT;
    if (want_clients) {
        proto_ctl_req_init(&q, HAKMEM_CTL_CLIENTS);
        rc = call(o, &q, &v->clients_reply, err, errlen);
        if (rc != CTL_EXIT_OK)
            return rc;
        if (v->clients_reply.status < 0)
            return daemon_refused(&v->clients_reply, err, errlen);
        v->have_clients = true;
    }

    proto_ctl_req_init(&q, HAKMEM_CTL_STATUS);
    rc = call(o, &q, &v->status_reply, want_status ? err : ignored,
              want_status ? errlen : sizeof(ignored));
    if (rc == CTL_EXIT_OK && v->status_reply.status < 0)
        rc = daemon_refused(&v->status_reply, want_status ? err : ignored,
                            want_status ? errlen : sizeof(ignored));
    if (rc != CTL_EXIT_OK)
        return want_status ? rc : CTL_EXIT_OK;
    rc = ctl_status_parse(v->status_reply.text, v->status_reply.text_len, &v->status);
    if (rc < 0) {
        snprintf(err, errlen, "reading hakmemd's status: %s", strerror(-rc));
        return CTL_EXIT_ERROR;
    }
    v->have_status = true;
    /* pids in the answers are hakmemd's: /proc shows them only when it
     * shows hakmemd itself under its pid */
    v->same_pidns = v->status.pid > 0 && v->status.pid <= INT32_MAX
                    && ctl_proc_is(v->proc_root, (uint32_t)v->status.pid, "hakmemd");
    return CTL_EXIT_OK;
}

/* Once per run: the daemon said lines we could not read. */
void ctl_warn_malformed(const struct ctl_view *v)
{
    static bool warned;
    if (v->have_status && v->status.nmalformed && !warned) {
        warned = true;
        fprintf(stderr, "hakmemctl: warning: %u malformed line%s in hakmemd's status (first: line %u)\n",
                v->status.nmalformed, v->status.nmalformed == 1 ? "" : "s",
                v->status.first_malformed);
    }
}

int ctl_finish_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno == EPIPE)
            return CTL_EXIT_OK;
        return ctl_fail(CTL_EXIT_ERROR, "writing the output failed");
    }
    return CTL_EXIT_OK;
}

/* ---- status, clients, metrics -------------------------------------------- */

/* Fetch the daemon's view (status and/or clients) and show it. */
static int show_view(struct ctl_opts *o, bool status, bool clients,
                     void (*text)(FILE *, const struct ctl_view *, int),
                     void (*json)(struct ctl_json *, const struct ctl_view *))
{
    struct ctl_view v;
    char err[512];
    int rc = ctl_fetch_view(o, status, clients, &v, err, sizeof(err));
    if (rc != CTL_EXIT_OK) {
        ctl_view_free(&v);
        return ctl_fail(rc, err);
    }
    ctl_warn_malformed(&v);
    if (o->json) {
        struct ctl_json j;
        json_init(&j, stdout, true);
        json_obj(&j, NULL);
        json(&j, &v);
        json_end(&j);
        json_done(&j);
    } else {
        text(stdout, &v, 0);
    }
    ctl_view_free(&v);
    return ctl_finish_stdout();
}

int ctl_cmd_status(struct ctl_opts *o, int argc, char **argv)
{
    return show_view(o, true, false, show_status_text, show_status_json);
}

int ctl_cmd_clients(struct ctl_opts *o, int argc, char **argv)
{
    return show_view(o, false, true, show_clients_text, show_clients_json);
}

int ctl_cmd_metrics(struct ctl_opts *o, int argc, char **argv)
{
    struct hakmem_ctl_req q;
    struct ctl_reply r;
    char err[512];

    if (o->listen) {
        struct ctl_exporter_opts x = { .listen = o->listen, .sock = o->sock,
                                       .msock = o->socket ? NULL : o->msock,
                                       .timeout_ms = o->timeout_ms, .per_process = o->per_process };
        int rc = ctl_exporter_run(&x, err, sizeof(err));
        if (rc == CTL_EXIT_USAGE)
            return ctl_usage_error("%s", err);
        return rc == CTL_EXIT_OK ? rc : ctl_fail(rc, err);
    }
    ctl_metrics_req(&q, o->per_process);
    int rc = call(o, &q, &r, err, sizeof(err));
    if (rc == CTL_EXIT_OK && r.status < 0) {
        rc = daemon_refused(&r, err, sizeof(err));
        size_t n = strlen(err);
        snprintf(err + n, sizeof(err) - n, "%s", ctl_metrics_refusal(&q, r.status));
    }
    if (rc != CTL_EXIT_OK) {
        ctl_reply_free(&r);
        return ctl_fail(rc, err);
    }
    if (o->json) {
        struct ctl_json j;
        json_init(&j, stdout, true);
        json_obj(&j, NULL);
        show_metrics_json(&j, r.text, r.text_len);
        json_end(&j);
        json_done(&j);
    } else {
        fwrite(r.text, 1, r.text_len, stdout);
        if (r.text_len && r.text[r.text_len - 1] != '\n')
            fputc('\n', stdout);
    }
    ctl_reply_free(&r);
    return ctl_finish_stdout();
}

/* ---- lean ---------------------------------------------------------------- */

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

int ctl_cmd_lean(struct ctl_opts *o, int argc, char **argv)
{
    const char *target = argv[0], *mode = argv[1];
    struct hakmem_ctl_req q;
    char dir[PATH_MAX] = "", err[PATH_MAX + 256], what[PATH_MAX + 64];
    uint64_t key = 0;

    proto_ctl_req_init(&q, HAKMEM_CTL_LEAN);
    if (strcmp(mode, "on") == 0)
        q.mode = HAKMEM_OVERRIDE_ON;
    else if (strcmp(mode, "off") == 0)
        q.mode = HAKMEM_OVERRIDE_OFF;
    else if (strcmp(mode, "auto") == 0)
        q.mode = HAKMEM_OVERRIDE_AUTO;
    else
        return ctl_usage_error("lean: mode must be on, off or auto, not '%s'", mode);
    if (o->has_level && q.mode != HAKMEM_OVERRIDE_ON)
        return ctl_usage_error("lean: --level goes with on only");
    q.level = o->level;

    if (strcmp(target, "all") == 0) {
        q.target = HAKMEM_CTL_TARGET_ALL;
        snprintf(what, sizeof(what), "all clients");
    } else if (all_digits(target)) {
        errno = 0;
        unsigned long long pid = strtoull(target, NULL, 10);
        if (errno || pid == 0 || pid > INT32_MAX)
            return ctl_usage_error("lean: no such pid: %s", target);
        q.target = HAKMEM_CTL_TARGET_PID;
        key = pid;
        snprintf(what, sizeof(what), "pid %llu", pid);
    } else {
        int rc = ctl_cgroup_id(o->cgroup_root, target, &key, dir, sizeof(dir));
        if (rc < 0) {
            if (rc == -EINVAL)
                snprintf(err, sizeof(err), "lean: %s: not a memory cgroup path (no '..', and a "
                         "/proc/PID/cgroup line must be the memory controller's)", target);
            else
                snprintf(err, sizeof(err), "lean: no memory cgroup %s under %s (%s)", target,
                         o->cgroup_root, strerror(-rc));
            return ctl_fail(CTL_EXIT_ERROR, err);
        }
        q.target = HAKMEM_CTL_TARGET_CGROUP;
        snprintf(what, sizeof(what), "cgroup %s (key %" PRIu64 ")", dir, key);
    }
    q.key = key;

    struct ctl_reply r;
    int rc = call(o, &q, &r, err, sizeof(err));
    int32_t st = r.status;
    if (rc == CTL_EXIT_OK && st == -ENOENT && !r.refused) {
        snprintf(err, sizeof(err), "hakmemd knows no %s", what);
        rc = CTL_EXIT_ERROR;
    } else if (rc == CTL_EXIT_OK && st < 0) {
        rc = daemon_refused(&r, err, sizeof(err));
    }
    ctl_reply_free(&r);
    if (rc != CTL_EXIT_OK)
        return ctl_fail(rc, err);

    const char *lvl = q.mode != HAKMEM_OVERRIDE_ON ? NULL
                      : q.level ? proto_level_name(q.level) : "default";
    if (o->json) {
        struct ctl_json j;
        json_init(&j, stdout, true);
        json_obj(&j, NULL);
        json_str(&j, "target", q.target == HAKMEM_CTL_TARGET_ALL ? "all"
                               : q.target == HAKMEM_CTL_TARGET_PID ? "pid" : "cgroup");
        if (q.target == HAKMEM_CTL_TARGET_ALL)
            json_null(&j, "key");
        else
            json_u64(&j, "key", key);
        json_str(&j, "path", dir[0] ? dir : NULL);
        json_str(&j, "mode", mode);
        json_str(&j, "level", lvl);
        json_end(&j);
        json_done(&j);
    } else {
        printf("%s: lean %s%s%s%s\n", what, mode, lvl ? " (level " : "", lvl ? lvl : "",
               lvl ? ")" : "");
    }
    return ctl_finish_stdout();
}
