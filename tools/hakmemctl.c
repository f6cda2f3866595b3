/* hakmemctl.c: the operator's tool for hakmemd: main, the command line
 * (options, help texts, the command table) and the mapping of every
 * failure to one message and one exit code (enum ctl_exit, documented in
 * --help and hakmemctl(1)). The commands are in ctl_cmd.c (status,
 * clients, metrics, lean) and ctl_watch.c (watch).
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

int ctl_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("hakmemctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'hakmemctl --help'.\n", stderr);
    return CTL_EXIT_USAGE;
}

int ctl_fail(int code, const char *msg)
{
    fprintf(stderr, "hakmemctl: %s\n", msg);
    return code;
}

/* ---- main ---------------------------------------------------------------- */

static const struct command commands[] = {
    { "status", usage_status, ctl_cmd_status, 0 },
    { "clients", usage_clients, ctl_cmd_clients, 0 },
    { "watch", usage_watch, ctl_cmd_watch, 0 },
    { "lean", usage_lean, ctl_cmd_lean, 2 },
    { "metrics", usage_metrics, ctl_cmd_metrics, 0 },
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
                return ctl_usage_error("--timeout: not a number of seconds in (0, 3600]: '%s'", optarg);
            o.timeout_ms = (int)ceil(secs * 1000);
            break;
        case OPT_CGROUP_ROOT:
            o.cgroup_root = optarg;
            break;
        case OPT_SOCKET:
            if (strcmp(optarg, CTL_SOCK_NAME) != 0 && strcmp(optarg, CTL_METRICS_SOCK_NAME) != 0)
                return ctl_usage_error("--socket: %s or %s, not '%s'", CTL_SOCK_NAME,
                                   CTL_METRICS_SOCK_NAME, optarg);
            o.socket = optarg;
            break;
        case OPT_INTERVAL:
            if (!parse_seconds(optarg, 0.1, 86400, &o.interval_s))
                return ctl_usage_error("--interval: not a number of seconds in [0.1, 86400]: '%s'",
                                   optarg);
            o.has_interval = true;
            break;
        case OPT_COUNT: {
            char *end;
            errno = 0;
            o.count = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || o.count < 1)
                return ctl_usage_error("--count: not a positive number: '%s'", optarg);
            o.has_count = true;
            break;
        }
        case OPT_LEVEL:
            if (proto_level_parse(optarg, &o.level) < 0 || o.level == HAKMEM_LEVEL_NONE)
                return ctl_usage_error("--level: low, medium or critical, not '%s'", optarg);
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
            return ctl_finish_stdout();
        case ':':
            return ctl_usage_error("option %s needs an argument", argv[optind - 1]);
        default:
            if (optopt)
                return ctl_usage_error("unknown option -%c", optopt);
            return ctl_usage_error("unknown option %s", argv[optind - 1]);
        }
    }

    int nargs = argc - optind;
    char **args = argv + optind;
    if (nargs == 0) {
        if (help) {
            fputs(usage_main, stdout);
            return ctl_finish_stdout();
        }
        return ctl_usage_error("no command given (status, clients, watch, lean, metrics)");
    }
    if (strcmp(args[0], "help") == 0) {
        if (nargs == 1) {
            fputs(usage_main, stdout);
            return ctl_finish_stdout();
        }
        const struct command *cmd = find_command(args[1]);
        if (!cmd || nargs > 2)
            return ctl_usage_error("help: no such command '%s'", args[1]);
        fputs(cmd->usage, stdout);
        return ctl_finish_stdout();
    }
    const struct command *cmd = find_command(args[0]);
    if (!cmd)
        return ctl_usage_error("unknown command '%s'", args[0]);
    if (help) {
        fputs(cmd->usage, stdout);
        return ctl_finish_stdout();
    }
    if (nargs - 1 != cmd->nargs)
        return ctl_usage_error("%s takes %d argument%s, not %d (see hakmemctl %s --help)", cmd->name,
                           cmd->nargs, cmd->nargs == 1 ? "" : "s", nargs - 1, cmd->name);
    if ((o.has_interval || o.has_count) && cmd->run != ctl_cmd_watch)
        return ctl_usage_error("--interval and --count go with watch only");
    if (o.has_level && cmd->run != ctl_cmd_lean)
        return ctl_usage_error("--level goes with lean only");
    if ((o.listen || o.per_process) && cmd->run != ctl_cmd_metrics)
        return ctl_usage_error("--listen and --per-process go with metrics only");
    if (o.listen && o.json)
        return ctl_usage_error("--listen serves the Prometheus text; --json does not go with it");

    if (!o.runtime_dir) {
        const char *env = getenv("HAKMEM_RUNTIME_DIR");
        o.runtime_dir = env && *env ? env : CTL_DEFAULT_RUNTIME_DIR;
    }
    if (ctl_socket_path(o.runtime_dir, o.socket ? o.socket : CTL_SOCK_NAME, o.sock,
                        sizeof(o.sock)) < 0 ||
        ctl_socket_path(o.runtime_dir, CTL_METRICS_SOCK_NAME, o.msock, sizeof(o.msock)) < 0)
        return ctl_usage_error("runtime directory too long for a socket path: %s", o.runtime_dir);
    signal(SIGPIPE, SIG_IGN);
    return cmd->run(&o, nargs - 1, args + 1);
}
