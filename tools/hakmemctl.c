/* hakmemctl.c: the operator's tool for hakmemd: main, the command line,
 * the five commands (status, clients, watch, lean, metrics) and the
 * mapping of every failure to one message and one exit code (enum
 * ctl_exit, documented in --help and hakmemctl(1)).
 *
 * Owns: options, help texts, exit codes, the watch loop and the terminal
 * while it runs (restored on every way out: q, Ctrl-C, SIGTERM, SIGHUP,
 * Ctrl-Z suspends with the terminal restored).
 * Must not: parse protocol bytes (ctl_client.c and proto/ do), or format
 * tables (ctl_show.c does).
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

#define DEFAULT_TIMEOUT_S  5.0 /* a healthy daemon answers in microseconds */
#define DEFAULT_INTERVAL_S 2.0 /* watch: as often as PSI's 2 s windows move */

struct ctl_opts {
    char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];  /* RUNTIME_DIR/control.sock */
    char msock[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* RUNTIME_DIR/metrics.sock */
    const char *socket;   /* --socket NAME: that one only */
    const char *runtime_dir;
    const char *cgroup_root;
    bool json;
    int timeout_ms;
    double interval_s; /* watch */
    long count;        /* watch: frames, 0 = until q */
    unsigned level;    /* lean on: enum hakmem_level, NONE = daemon default */
    const char *listen; /* metrics: serve over HTTP on ADDR:PORT */
    bool per_process;   /* metrics: ask for the per-process series too */
    /* which command-specific options were given, for the usage check */
    bool has_interval, has_count, has_level;
};

/* ---- help ---------------------------------------------------------------- */

static const char usage_main[] =
    "Usage: hakmemctl [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Shows what hakmemd, the hakmem memory-pressure daemon, sees, and lets an\n"
    "operator force the allocator mode of a cgroup, a process or every client.\n"
    "\n"
    "Commands:\n"
    "  status                 hakmemd's version, uptime, pressure sources (and why\n"
    "                         any is off), host PSI, and per cgroup: level, reason,\n"
    "                         reclaim events per second, usage against limit\n"
    "  clients                connected processes: pid, comm, mode, RSS,\n"
    "                         superslabs live/cached, lean_decommit, lean_retire,\n"
    "                         madvise_calls, bytes_decommitted, mode_switches, cgroup\n"
    "  watch                  status and clients, refreshed like top (q quits)\n"
    "  lean TARGET on|off|auto\n"
    "                         force LEAN (on) or FAST (off) on TARGET, or let it\n"
    "                         follow pressure again (auto); TARGET is a cgroup\n"
    "                         path, a pid or 'all' (root or group hakmem only)\n"
    "  metrics                Prometheus text exposition (hakmem_* metrics), or\n"
    "                         with --listen ADDR:PORT an HTTP exporter of it\n"
    "  help [COMMAND]         this text, or a command's\n"
    "\n"
    "Options (anywhere on the line):\n"
    "  --runtime-dir DIR      directory of control.sock (default: $HAKMEM_RUNTIME_DIR,\n"
    "                         else " CTL_DEFAULT_RUNTIME_DIR ")\n"
    "  --json                 JSON instead of tables (every command)\n"
    "  --timeout SECONDS      how long to wait for hakmemd's answer (default 5)\n"
    "  --cgroup-root DIR      where the cgroup hierarchies are mounted (default\n"
    "                         " CTL_CGROUP_ROOT "), for lean's cgroup paths\n"
    "  --socket NAME          talk through RUNTIME_DIR/NAME only: control.sock (every\n"
    "                         command) or metrics.sock (read-only, for root and the\n"
    "                         metrics group); by default status, clients, watch and\n"
    "                         metrics use metrics.sock when this user may, else\n"
    "                         control.sock\n"
    "  -h, --help             help; after a command, that command's help\n"
    "  -V, --version          hakmemctl's version\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  error: hakmemd refused the request or broke the protocol, or no answer\n"
    "  2  usage error\n"
    "  3  hakmemd is not running: nothing listens on RUNTIME_DIR/control.sock\n"
    "  4  permission denied (lean needs root or the group hakmem)\n"
    "\n"
    "See hakmemctl(1).\n";

static const char usage_status[] =
    "Usage: hakmemctl [--json] status\n"
    "\n"
    "hakmemd's version, pid, uptime and number of clients; each pressure source\n"
    "(bpf, psi, usage, events), on or off with the reason; where each signal\n"
    "comes from on this kernel (reclaim, scanned pages, oom, psi, usage,\n"
    "memory_events: the tracepoint or file, or none and why); host-wide PSI memory some/full\n"
    "avg10/avg60 (%); and one row per cgroup (or override) hakmemd tracks: its\n"
    "level (none, low, medium, critical), the reason for it, whether an operator\n"
    "forced it, clients, reclaim events per second and in total, usage, limit,\n"
    "use% and PSI some avg10.\n"
    "\n"
    "--json prints one object: version, pid, uptime_s, clients, sources\n"
    "{NAME: {on, reason}}, signals {NAME: origin}, psi_some_avg10, psi_some_avg60, psi_full_avg10,\n"
    "psi_full_avg60, cgroups [{key, kind (cgroup, all, pid), path, level,\n"
    "reason, override, nclients, reclaim_per_s, reclaim_events, reclaim_ns,\n"
    "usage_bytes, limit_bytes (null: none), psi_some_avg10, updated_ns}], other.\n"
    "\n"
    "With the bpf source, a line says what its program lost: notifications (its\n"
    "ring buffer full) and events (its per-cgroup table full); in --json\n"
    "bpf_ringbuf_dropped and bpf_cgroup_table_full (null without the source).\n";

static const char usage_clients[] =
    "Usage: hakmemctl [--json] clients\n"
    "\n"
    "One row per process registered with hakmemd: pid (in hakmemd's pid\n"
    "namespace), comm, mode (fast or lean; '!' when forced on that pid), last\n"
    "level applied, RSS (VmRSS from /proc; '-' when this /proc does not show\n"
    "hakmemd's pids), lazyfree (LazyFree from /proc/PID/smaps_rollup: the part of\n"
    "the RSS given back with MADV_FREE, which the kernel takes first under\n"
    "pressure; RSS minus it is what the process still holds; '-' when it may not\n"
    "be read), superslabs live/cached, the counters lean_decommit,\n"
    "lean_retire, madvise_calls, bytes_decommitted, mode_switches, and last the\n"
    "cgroup (its path when hakmemd reports one, else #KEY).\n"
    "\n"
    "--json prints {\"clients\": [{pid, uid, comm, cgroup_key, cgroup_path,\n"
    "stats, mode, last_level, override (auto, on, off), lean_env,\n"
    "follows_daemon, connected_ns, stats_updated_ns, rss_bytes, lazyfree_bytes\n"
    "(null when unknown), counters {NAME: N}}]}.\n";

static const char usage_watch[] =
    "Usage: hakmemctl [--json] watch [--interval SECONDS] [--count N]\n"
    "\n"
    "status and clients, redrawn every interval (default 2 s) like top; q or\n"
    "Ctrl-C leaves, any other key refreshes now. When standard output is not a\n"
    "terminal, one snapshot is printed per interval instead; with --json, one\n"
    "JSON object per line: {time, status: {...}, clients: [...]}.\n"
    "\n"
    "  --interval SECONDS   time between snapshots (0.1 to 86400)\n"
    "  --count N            stop after N snapshots\n"
    "\n"
    "When hakmemd goes away while watching, the error is shown and watch keeps\n"
    "trying; the exit status is that of the last snapshot.\n";

static const char usage_lean[] =
    "Usage: hakmemctl lean TARGET on|off|auto [--level low|medium|critical]\n"
    "\n"
    "Forces the shims of TARGET into LEAN (on) or FAST (off), or clears the\n"
    "override so that they follow pressure again (auto). hakmemd logs it.\n"
    "Needs root or membership in the group hakmem (exit status 4 otherwise).\n"
    "\n"
    "TARGET is one of:\n"
    "  all            every client\n"
    "  PID            one client, by its pid (as hakmemd sees it)\n"
    "  CGROUP         a memory cgroup, as a directory (/sys/fs/cgroup/memory/a/b,\n"
    "                 or /sys/fs/cgroup/a/b on cgroup2), as a path inside the\n"
    "                 hierarchy (/a/b or a/b; write ./123 for a cgroup named by\n"
    "                 digits), or as a line of /proc/PID/cgroup (4:memory:/a/b);\n"
    "                 the v1 memory hierarchy is tried first, then cgroup2\n"
    "\n"
    "  --level LEVEL  the level forced by on: low (LEAN policy), medium (and\n"
    "                 decommit now) or critical (eager decommit, caches\n"
    "                 trimmed); default: medium\n";

static const char usage_metrics[] =
    "Usage: hakmemctl [--json] metrics [--per-process]\n"
    "       hakmemctl metrics --listen ADDR:PORT [--per-process]\n"
    "\n"
    "hakmemd's metrics in the Prometheus text exposition format (metric names\n"
    "hakmem_*), for a node_exporter textfile collector or any scraper, e.g.\n"
    "  hakmemctl metrics > /var/lib/node_exporter/hakmem.prom.$$ &&\n"
    "    mv /var/lib/node_exporter/hakmem.prom.$$ /var/lib/node_exporter/hakmem.prom\n"
    "--json prints {samples: [{name, labels, value}], help: {...}, type: {...}}\n"
    "(values that are not finite as the strings NaN, +Inf, -Inf).\n"
    "\n"
    "  --per-process        ask hakmemd for the per-process series too (labels\n"
    "                       pid, uid, comm, cgroup); it sends none by default,\n"
    "                       since pids are unbounded\n"
    "  --listen ADDR:PORT   serve them over HTTP until SIGTERM or SIGINT: GET and\n"
    "                       HEAD /metrics, 404 for other paths, 405 for other\n"
    "                       methods; as any user (it only reads). Each scrape asks\n"
    "                       hakmemd anew (within --timeout) and adds hakmem_up (1:\n"
    "                       hakmemd answered) and hakmem_scrape_duration_seconds.\n"
    "                       ADDR:PORT is 127.0.0.1:9477, [::1]:9477, or :9477 for\n"
    "                       every address; port 0 picks a free one (logged)\n";

struct command {
    const char *name;
    const char *usage;
    int (*run)(struct ctl_opts *o, int argc, char **argv);
    int nargs; /* positional arguments after the command */
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("hakmemctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'hakmemctl --help'.\n", stderr);
    return CTL_EXIT_USAGE;
}

static int fail(int code, const char *msg)
{
    fprintf(stderr, "hakmemctl: %s\n", msg);
    return code;
}

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

static void view_free(struct ctl_view *v)
{
    ctl_reply_free(&v->status_reply);
    ctl_status_free(&v->status);
    ctl_reply_free(&v->clients_reply);
    memset(v, 0, sizeof(*v));
}

/* STATUS and/or CLIENTS into *v. A clients view asks STATUS as well, for
 * the cgroup paths; that one may fail without failing the view. */
static int fetch_view(const struct ctl_opts *o, bool want_status, bool want_clients,
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
static void warn_malformed(const struct ctl_view *v)
{
    static bool warned;
    if (v->have_status && v->status.nmalformed && !warned) {
        warned = true;
        fprintf(stderr, "hakmemctl: warning: %u malformed line%s in hakmemd's status (first: line %u)\n",
                v->status.nmalformed, v->status.nmalformed == 1 ? "" : "s",
                v->status.first_malformed);
    }
}

static int finish_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno == EPIPE)
            return CTL_EXIT_OK;
        return fail(CTL_EXIT_ERROR, "writing the output failed");
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
    int rc = fetch_view(o, status, clients, &v, err, sizeof(err));
    if (rc != CTL_EXIT_OK) {
        view_free(&v);
        return fail(rc, err);
    }
    warn_malformed(&v);
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
    view_free(&v);
    return finish_stdout();
}

static int cmd_status(struct ctl_opts *o, int argc, char **argv)
{
    return show_view(o, true, false, show_status_text, show_status_json);
}

static int cmd_clients(struct ctl_opts *o, int argc, char **argv)
{
    return show_view(o, false, true, show_clients_text, show_clients_json);
}

static int cmd_metrics(struct ctl_opts *o, int argc, char **argv)
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
            return usage_error("%s", err);
        return rc == CTL_EXIT_OK ? rc : fail(rc, err);
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
        return fail(rc, err);
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
    return finish_stdout();
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

static int cmd_lean(struct ctl_opts *o, int argc, char **argv)
{
    const char *target = argv[0], *mode = argv[1];
    struct hakmem_ctl_req q;
    char dir[PATH_MAX] = "", err[PATH_MAX + 256], what[PATH_MAX + 64];
    uint64_t key = 0;

    proto_ctl_req_init(&q, HAKMEM_CTL_LEAN);
    if (strcmp(mode, "on") == 0)
        q.mode = HAKMEM_CTL_MODE_ON;
    else if (strcmp(mode, "off") == 0)
        q.mode = HAKMEM_CTL_MODE_OFF;
    else if (strcmp(mode, "auto") == 0)
        q.mode = HAKMEM_CTL_MODE_AUTO;
    else
        return usage_error("lean: mode must be on, off or auto, not '%s'", mode);
    if (o->has_level && q.mode != HAKMEM_CTL_MODE_ON)
        return usage_error("lean: --level goes with on only");
    q.level = o->level;

    if (strcmp(target, "all") == 0) {
        q.target = HAKMEM_CTL_TARGET_ALL;
        snprintf(what, sizeof(what), "all clients");
    } else if (all_digits(target)) {
        errno = 0;
        unsigned long long pid = strtoull(target, NULL, 10);
        if (errno || pid == 0 || pid > INT32_MAX)
            return usage_error("lean: no such pid: %s", target);
        q.target = HAKMEM_CTL_TARGET_PID;
        key = pid;
        snprintf(what, sizeof(what), "pid %llu", pid);
    } else {
        int rc = ctl_cgroup_key(o->cgroup_root, target, &key, dir, sizeof(dir));
        if (rc < 0) {
            if (rc == -EINVAL)
                snprintf(err, sizeof(err), "lean: %s: not a memory cgroup path (no '..', and a "
                         "/proc/PID/cgroup line must be the memory controller's)", target);
            else
                snprintf(err, sizeof(err), "lean: no memory cgroup %s under %s (%s)", target,
                         o->cgroup_root, strerror(-rc));
            return fail(CTL_EXIT_ERROR, err);
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
        return fail(rc, err);

    const char *lvl = q.mode != HAKMEM_CTL_MODE_ON ? NULL
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
    return finish_stdout();
}

/* ---- watch --------------------------------------------------------------- */

static volatile sig_atomic_t got_quit, got_tstp, got_winch;

static void on_signal(int sig)
{
    if (sig == SIGTSTP)
        got_tstp = 1;
    else if (sig == SIGWINCH)
        got_winch = 1;
    else
        got_quit = 1;
}

struct term {
    bool screen;           /* stdout is a terminal we draw on */
    bool keys;             /* stdin is a terminal we read keys from */
    bool raw;              /* its settings are changed now */
    struct termios saved;
};

static void term_enter(struct term *t)
{
    if (t->keys && !t->raw && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
        struct termios r = t->saved;
        r.c_lflag &= ~(tcflag_t)(ICANON | ECHO); /* keys one by one, unechoed; ISIG stays */
        r.c_cc[VMIN] = 1;
        r.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &r) == 0)
            t->raw = true;
    }
    if (t->screen) {
        fputs("\033[?1049h\033[?25l", stdout); /* alternate screen, cursor hidden */
        fflush(stdout);
    }
}

static void term_leave(struct term *t)
{
    if (t->screen) {
        fputs("\033[?25h\033[?1049l", stdout);
        fflush(stdout);
    }
    if (t->raw) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
        t->raw = false;
    }
}

static void screen_size(int *rows, int *cols)
{
    struct winsize ws;
    *rows = 24;
    *cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
        *rows = ws.ws_row;
        *cols = ws.ws_col;
    }
}

/* One frame: a view, or the error that came instead. */
static void render_frame(FILE *f, const struct ctl_opts *o, const struct ctl_view *v, int rc,
                         const char *err, int width, bool screen)
{
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));

    fprintf(f, "hakmemctl watch  %s  every %gs%s\n\n", when, o->interval_s,
            screen ? "  (q quits)" : "");
    if (rc != CTL_EXIT_OK) {
        fprintf(f, "%s\n", err);
        return;
    }
    show_status_text(f, v, width);
    fputc('\n', f);
    show_clients_text(f, v, width);
}

/* Draws buf clipped to the screen: at most rows - 1 lines of cols bytes. */
static void draw(const char *buf, size_t len)
{
    int rows, cols, line = 0;
    screen_size(&rows, &cols);
    fputs("\033[H\033[2J", stdout);
    for (size_t pos = 0; pos < len && line < rows - 1; line++) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        fwrite(buf + pos, 1, n < (size_t)cols ? n : (size_t)cols, stdout);
        fputs("\r\n", stdout);
        pos += n + 1;
    }
    fflush(stdout);
}

static void frame_json(const struct ctl_view *v)
{
    struct ctl_json j;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_init(&j, stdout, false);
    json_obj(&j, NULL);
    json_f64(&j, "time", (double)ts.tv_sec + ts.tv_nsec / 1e9);
    json_obj(&j, "status");
    show_status_json(&j, v);
    json_end(&j);
    show_clients_json(&j, v);
    json_end(&j);
    json_done(&j);
    fflush(stdout);
}

/* Waits one interval; false when the user asked to leave. */
static bool wait_interval(struct term *t, double seconds)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (got_quit)
            return false;
        if (got_tstp) {
            got_tstp = 0;
            term_leave(t);
            raise(SIGSTOP);
            term_enter(t);
            return true; /* redraw at once after fg */
        }
        if (got_winch) {
            got_winch = 0;
            return true;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        double left = seconds - (double)(now.tv_sec - start.tv_sec)
                      - (now.tv_nsec - start.tv_nsec) / 1e9;
        if (left <= 0)
            return true;
        struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
        int r = poll(&p, t->raw ? 1 : 0, (int)ceil(left * 1000));
        if (r > 0) {
            char c;
            ssize_t n = read(STDIN_FILENO, &c, 1);
            if (n <= 0)
                t->keys = t->raw = false; /* stdin gone: stop reading it */
            else if (c == 'q' || c == 'Q')
                return false;
            else
                return true; /* any other key: refresh now */
        }
    }
}

static int cmd_watch(struct ctl_opts *o, int argc, char **argv)
{
    struct term t = { .screen = !o->json && isatty(STDOUT_FILENO) };
    t.keys = t.screen && isatty(STDIN_FILENO);
    struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: poll wakes */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (t.screen) {
        sigaction(SIGWINCH, &sa, NULL);
        sigaction(SIGTSTP, &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);

    int last = CTL_EXIT_OK;
    bool entered = false;
    for (long frame = 0; o->count == 0 || frame < o->count; frame++) {
        struct ctl_view v;
        char err[512] = "";
        int rc = fetch_view(o, true, true, &v, err, sizeof(err));
        last = rc;
        if (rc == CTL_EXIT_OK)
            warn_malformed(&v);
        if (frame == 0 && rc != CTL_EXIT_OK) {
            /* nothing to watch: say so plainly, as the other commands do */
            view_free(&v);
            return fail(rc, err);
        }
        if (o->json) {
            if (rc == CTL_EXIT_OK)
                frame_json(&v);
            else
                fprintf(stderr, "hakmemctl: %s\n", err);
        } else if (t.screen) {
            char *buf = NULL;
            size_t len = 0;
            int rows, cols;
            FILE *m = open_memstream(&buf, &len);
            if (!m) {
                view_free(&v);
                if (entered)
                    term_leave(&t);
                return fail(CTL_EXIT_ERROR, "out of memory");
            }
            screen_size(&rows, &cols);
            render_frame(m, o, &v, rc, err, cols, true);
            fclose(m);
            if (!entered) {
                term_enter(&t);
                entered = true;
            }
            draw(buf, len);
            free(buf);
        } else {
            render_frame(stdout, o, &v, rc, err, 0, false);
            fputc('\n', stdout);
            fflush(stdout);
        }
        view_free(&v);
        if (ferror(stdout))
            break; /* reader gone (EPIPE) */
        if (o->count && frame + 1 >= o->count)
            break;
        if (!wait_interval(&t, o->interval_s))
            break;
    }
    if (entered)
        term_leave(&t);
    return last;
}

/* ---- main ---------------------------------------------------------------- */

static const struct command commands[] = {
    { "status", usage_status, cmd_status, 0 },
    { "clients", usage_clients, cmd_clients, 0 },
    { "watch", usage_watch, cmd_watch, 0 },
    { "lean", usage_lean, cmd_lean, 2 },
    { "metrics", usage_metrics, cmd_metrics, 0 },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

enum { OPT_RUNTIME_DIR = 256, OPT_JSON, OPT_TIMEOUT, OPT_CGROUP_ROOT, OPT_INTERVAL, OPT_COUNT,
       OPT_LEVEL, OPT_LISTEN, OPT_PER_PROCESS, OPT_SOCKET };

static bool parse_seconds(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "runtime-dir", required_argument, NULL, OPT_RUNTIME_DIR },
        { "json", no_argument, NULL, OPT_JSON },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "cgroup-root", required_argument, NULL, OPT_CGROUP_ROOT },
        { "interval", required_argument, NULL, OPT_INTERVAL },
        { "count", required_argument, NULL, OPT_COUNT },
        { "level", required_argument, NULL, OPT_LEVEL },
        { "listen", required_argument, NULL, OPT_LISTEN },
        { "per-process", no_argument, NULL, OPT_PER_PROCESS },
        { "socket", required_argument, NULL, OPT_SOCKET },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct ctl_opts o = {
        .cgroup_root = CTL_CGROUP_ROOT,
        .timeout_ms = (int)(DEFAULT_TIMEOUT_S * 1000),
        .interval_s = DEFAULT_INTERVAL_S,
    };
    bool help = false;
    double secs;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_RUNTIME_DIR:
            o.runtime_dir = optarg;
            break;
        case OPT_JSON:
            o.json = true;
            break;
        case OPT_TIMEOUT:
            if (!parse_seconds(optarg, 0.001, 3600, &secs))
                return usage_error("--timeout: not a number of seconds in (0, 3600]: '%s'", optarg);
            o.timeout_ms = (int)ceil(secs * 1000);
            break;
        case OPT_CGROUP_ROOT:
            o.cgroup_root = optarg;
            break;
        case OPT_SOCKET:
            if (strcmp(optarg, CTL_SOCK_NAME) != 0 && strcmp(optarg, CTL_METRICS_SOCK_NAME) != 0)
                return usage_error("--socket: %s or %s, not '%s'", CTL_SOCK_NAME,
                                   CTL_METRICS_SOCK_NAME, optarg);
            o.socket = optarg;
            break;
        case OPT_INTERVAL:
            if (!parse_seconds(optarg, 0.1, 86400, &o.interval_s))
                return usage_error("--interval: not a number of seconds in [0.1, 86400]: '%s'",
                                   optarg);
            o.has_interval = true;
            break;
        case OPT_COUNT: {
            char *end;
            errno = 0;
            o.count = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || o.count < 1)
                return usage_error("--count: not a positive number: '%s'", optarg);
            o.has_count = true;
            break;
        }
        case OPT_LEVEL:
            if (proto_level_parse(optarg, &o.level) < 0 || o.level == HAKMEM_LEVEL_NONE)
                return usage_error("--level: low, medium or critical, not '%s'", optarg);
            o.has_level = true;
            break;
        case OPT_LISTEN:
            o.listen = optarg;
            break;
        case OPT_PER_PROCESS:
            o.per_process = true;
            break;
        case 'h':
            help = true;
            break;
        case 'V':
            printf("hakmemctl %s (protocol %d)\n", HAKMEM_VERSION_STRING, HAKMEM_PROTO_VERSION);
            return finish_stdout();
        case ':':
            return usage_error("option %s needs an argument", argv[optind - 1]);
        default:
            if (optopt)
                return usage_error("unknown option -%c", optopt);
            return usage_error("unknown option %s", argv[optind - 1]);
        }
    }

    int nargs = argc - optind;
    char **args = argv + optind;
    if (nargs == 0) {
        if (help) {
            fputs(usage_main, stdout);
            return finish_stdout();
        }
        return usage_error("no command given (status, clients, watch, lean, metrics)");
    }
    if (strcmp(args[0], "help") == 0) {
        if (nargs == 1) {
            fputs(usage_main, stdout);
            return finish_stdout();
        }
        const struct command *cmd = find_command(args[1]);
        if (!cmd || nargs > 2)
            return usage_error("help: no such command '%s'", args[1]);
        fputs(cmd->usage, stdout);
        return finish_stdout();
    }
    const struct command *cmd = find_command(args[0]);
    if (!cmd)
        return usage_error("unknown command '%s'", args[0]);
    if (help) {
        fputs(cmd->usage, stdout);
        return finish_stdout();
    }
    if (nargs - 1 != cmd->nargs)
        return usage_error("%s takes %d argument%s, not %d (see hakmemctl %s --help)", cmd->name,
                           cmd->nargs, cmd->nargs == 1 ? "" : "s", nargs - 1, cmd->name);
    if ((o.has_interval || o.has_count) && cmd->run != cmd_watch)
        return usage_error("--interval and --count go with watch only");
    if (o.has_level && cmd->run != cmd_lean)
        return usage_error("--level goes with lean only");
    if ((o.listen || o.per_process) && cmd->run != cmd_metrics)
        return usage_error("--listen and --per-process go with metrics only");
    if (o.listen && o.json)
        return usage_error("--listen serves the Prometheus text; --json does not go with it");

    if (!o.runtime_dir) {
        const char *env = getenv("HAKMEM_RUNTIME_DIR");
        o.runtime_dir = env && *env ? env : CTL_DEFAULT_RUNTIME_DIR;
    }
    if (ctl_socket_path(o.runtime_dir, o.socket ? o.socket : CTL_SOCK_NAME, o.sock,
                        sizeof(o.sock)) < 0 ||
        ctl_socket_path(o.runtime_dir, CTL_METRICS_SOCK_NAME, o.msock, sizeof(o.msock)) < 0)
        return usage_error("runtime directory too long for a socket path: %s", o.runtime_dir);
    signal(SIGPIPE, SIG_IGN);
    return cmd->run(&o, nargs - 1, args + 1);
}
