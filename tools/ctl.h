/* ctl.h: hakmemctl's internal interfaces, grouped under the file that
 * defines them. hakmemctl.c holds main (arguments, help, the command
 * table), ctl_cmd.c the commands that ask once (status, clients, metrics,
 * lean), ctl_watch.c the watch loop; these report failures (one message,
 * one exit code). The files below do one thing each and never log or
 * exit: functions that can fail return a negative errno and the caller
 * reports it once.
 *
 *   ctl_client.c  the control socket: connect, one request, the answer
 *                 reassembled from its datagrams (layouts in proto/)
 *   ctl_status.c  the STATUS text ("name value..." lines) parsed
 *   ctl_sys.c     this host: a cgroup path to its key, a pid's RSS
 *   ctl_json.c    a small streaming JSON writer (valid UTF-8 out)
 *   ctl_show.c    status, clients and metrics as tables or JSON
 *   ctl_exporter.c  `metrics --listen`: hakmemd's metrics over HTTP for
 *                 Prometheus; it runs until stopped, so it is the one
 *                 file that logs (state changes, on stderr)
 */
#ifndef HAKMEMCTL_CTL_H
#define HAKMEMCTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/un.h>
#include "hakmem_proto.h"

/* Exit codes, documented in --help and hakmemctl(1). */
enum ctl_exit {
    CTL_EXIT_OK = 0,          /* done */
    CTL_EXIT_ERROR = 1,       /* hakmemd answered with an error, or broke the protocol */
    CTL_EXIT_USAGE = 2,       /* bad command line */
    CTL_EXIT_NOT_RUNNING = 3, /* nobody listens on control.sock */
    CTL_EXIT_DENIED = 4,      /* not allowed (not root, not in group hakmem) */
};

/* ---- hakmemctl.c ------------------------------------------------------- */

/* The command line, as main parsed it. */
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

/* "hakmemctl: MESSAGE" and the hint to --help on stderr: CTL_EXIT_USAGE. */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "hakmemctl: msg" on stderr: code. */
int ctl_fail(int code, const char *msg);

/* ---- ctl_client.c ------------------------------------------------------ */

#define CTL_DEFAULT_RUNTIME_DIR "/run/hakmem"
#define CTL_SOCK_NAME "control.sock"         /* every command */
#define CTL_METRICS_SOCK_NAME "metrics.sock" /* read commands; root and metrics_group */
/* Bound on one whole answer (all datagrams): far above a host's worth of
 * clients (312 bytes each) and cgroups, small enough that a broken
 * daemon cannot make hakmemctl eat the machine. */
#define CTL_REPLY_MAX (64u << 20) /* bytes */

struct ctl_reply {
    int32_t status;                    /* 0, or the first negative errno the daemon sent */
    bool refused;                      /* the connection was refused before the request
                                          (text: the daemon's reason) */
    uint32_t datagrams;                /* datagrams received */
    char *text;                        /* TEXT payloads concatenated, NUL-terminated (with a
                                          status < 0: the daemon's reason, in words) */
    size_t text_len;                   /* bytes, without the NUL */
    struct hakmem_ctl_cgroup *cgroups; /* CGROUPS records, in order */
    size_t ncgroups;
    struct hakmem_ctl_client *clients; /* CLIENTS records, in order */
    size_t nclients;
};

/* RUNTIME_DIR/NAME into buf. -ENAMETOOLONG past sun_path. */
int ctl_socket_path(const char *runtime_dir, const char *name, char *buf, size_t len);
/* A connected SOCK_SEQPACKET socket (close-on-exec), or the errno of
 * socket/connect: -ENOENT and -ECONNREFUSED mean nobody listens. */
int ctl_connect(const char *path);
/* Sends req and reads the whole answer into *out (zeroed first; free it
 * with ctl_reply_free, also after an error). 0 means the exchange went
 * through: the daemon's verdict is out->status (with out->refused when it
 * refused the connection itself, out->text saying why). Errors: -ETIMEDOUT (no
 * complete answer within timeout_ms), -ECONNRESET (closed before the last
 * datagram), -EMSGSIZE (a datagram over HAKMEM_MSG_MAX, or the answer over
 * CTL_REPLY_MAX), -EBADMSG / -EPROTONOSUPPORT / -EINVAL (a datagram that
 * proto_ctl_resp_check refuses, or one for another command), -ENOMEM, or
 * the errno of send/recv. */
int ctl_exchange(int fd, const struct hakmem_ctl_req *req, int timeout_ms, struct ctl_reply *out);
void ctl_reply_free(struct ctl_reply *r);
/* The METRICS request; per_process asks for the per-process series too
 * (hakmemd decides what it sends: nothing is filtered here). */
void ctl_metrics_req(struct hakmem_ctl_req *q, bool per_process);
/* What to add to the daemon's refusal (status) of METRICS request q: a
 * hakmemd older than the per-process flag refuses it as an invalid
 * argument. "" when there is nothing to add. */
const char *ctl_metrics_refusal(const struct hakmem_ctl_req *q, int32_t status);

/* ---- ctl_status.c ------------------------------------------------------ */

#define CTL_SOURCES_MAX 8
enum ctl_psi { CTL_PSI_SOME_AVG10, CTL_PSI_SOME_AVG60, CTL_PSI_FULL_AVG10, CTL_PSI_FULL_AVG60,
               CTL_PSI_COUNT };

struct ctl_source {
    char name[16];    /* bpf, psi, usage, events */
    bool on;
    char reason[200]; /* why it is off ("" when on or not said) */
};

/* One `signal NAME ORIGIN...` line: where a signal comes from on the
 * daemon's kernel (reclaim, scanned, oom, psi, usage, memory_events). */
#define CTL_SIGNALS_MAX 12
struct ctl_signal {
    char name[24];
    char origin[200]; /* e.g. "bpf tp_btf: direct memcg", "none (why)" */
};

/* One `cgroup KEY PATH RECLAIM_PER_S` line. */
struct ctl_cgline {
    uint64_t key;
    char *path;           /* the memory cgroup's directory */
    double reclaim_per_s; /* reclaim events per second, recent */
};

/* One line the parser does not know, kept for --json ("other"). */
struct ctl_other {
    char *name;
    char *value; /* the rest of the line, "" when none */
};

struct ctl_status {
    char version[64];          /* "" when not said */
    int64_t pid;               /* hakmemd's pid in its namespace; -1 unknown */
    int64_t uptime_s;          /* s; -1 unknown */
    int64_t clients;           /* -1 unknown */
    struct ctl_source source[CTL_SOURCES_MAX];
    size_t nsources;
    struct ctl_signal signal[CTL_SIGNALS_MAX];
    size_t nsignals;
    double psi[CTL_PSI_COUNT]; /* host-wide, percent; NAN unknown */
    int64_t bpf_ringbuf_dropped;   /* BPF notifications lost (ring buffer full); -1 unknown */
    int64_t bpf_cgroup_table_full; /* BPF events lost (per-cgroup table full); -1 unknown */
    struct ctl_cgline *cg;
    size_t ncg;
    struct ctl_other *other;
    size_t nother;
    unsigned nmalformed;       /* lines of a known name that did not parse */
    unsigned first_malformed;  /* line number (1-based) of the first of them */
};

extern const char *const ctl_psi_names[CTL_PSI_COUNT]; /* "psi_some_avg10", ... */

/* Parses the STATUS text (len bytes, need not be NUL-terminated). Lines
 * of a known name that do not parse are counted in nmalformed and
 * skipped. 0 or -ENOMEM; free with ctl_status_free (also on error). */
int ctl_status_parse(const char *text, size_t len, struct ctl_status *st);
const struct ctl_cgline *ctl_status_cgroup(const struct ctl_status *st, uint64_t key);
void ctl_status_free(struct ctl_status *st);

/* ---- ctl_sys.c --------------------------------------------------------- */

#define CTL_CGROUP_ROOT "/sys/fs/cgroup"
#define CTL_PROC_ROOT "/proc"

/* The key of a memory cgroup named by arg, which may be: a directory under
 * cgroup_root (/sys/fs/cgroup/memory/a/b, or on pure v2 /sys/fs/cgroup/a/b),
 * a path inside the hierarchy ("/a/b" or "a/b"), or a line of
 * /proc/PID/cgroup ("4:memory:/a/b", "0::/a/b"). Hierarchy paths go to the
 * v1 memory hierarchy when it has them, else to cgroup2 (at cgroup_root,
 * or cgroup_root/unified on hybrid hosts). dir gets the directory used.
 * Returns 0; -ENOENT (no such cgroup), -EINVAL (a ".." component, or a
 * /proc/PID/cgroup line of another controller), -ENOTDIR, -ENAMETOOLONG,
 * or the errno of stat. */
int ctl_cgroup_id(const char *cgroup_root, const char *arg, uint64_t *key, char *dir,
                   size_t dirlen);
/* VmRSS of pid, bytes, from proc_root/PID/status, only when that process
 * is called comm (so a pid of another namespace, or one reused since,
 * gives no number). 0, -ESRCH (gone or another process), -ENODATA (no
 * VmRSS: a zombie), or the errno of open/read. */
int ctl_proc_rss(const char *proc_root, uint32_t pid, const char *comm, uint64_t *bytes);
/* LazyFree of pid, bytes, from proc_root/PID/smaps_rollup: memory given
 * back with MADV_FREE, still counted in VmRSS (and in its cgroup's usage)
 * until the kernel takes it, which it does first under pressure, without
 * I/O. Same checks as ctl_proc_rss; -EACCES for another user's process
 * unless we may ptrace it. */
int ctl_proc_lazyfree(const char *proc_root, uint32_t pid, const char *comm, uint64_t *bytes);
/* Whether proc_root/PID is a process called comm (Name: in its status). */
bool ctl_proc_is(const char *proc_root, uint32_t pid, const char *comm);

/* ---- ctl_json.c -------------------------------------------------------- */

#define CTL_JSON_DEPTH 16

struct ctl_json {
    FILE *f;
    bool pretty;                       /* newlines and two-space indents */
    int depth;                         /* open containers */
    bool comma[CTL_JSON_DEPTH];        /* a value already written at this depth */
    char kind[CTL_JSON_DEPTH];         /* '{' or '[' opened at this depth */
};

/* key is the member name inside an object and NULL inside an array (or
 * for the top value). Strings are written as valid JSON whatever their
 * bytes: control characters escaped, invalid UTF-8 as U+FFFD. Numbers
 * that are not finite are written as null. */
void json_init(struct ctl_json *j, FILE *f, bool pretty);
void json_obj(struct ctl_json *j, const char *key);
void json_arr(struct ctl_json *j, const char *key);
void json_end(struct ctl_json *j); /* closes the innermost object or array */
void json_str(struct ctl_json *j, const char *key, const char *s);
void json_strn(struct ctl_json *j, const char *key, const char *s, size_t n);
void json_u64(struct ctl_json *j, const char *key, uint64_t v);
void json_i64(struct ctl_json *j, const char *key, int64_t v);
/* v, or null when v < 0 (not known: not said, or an older hakmemd) */
void json_i64_known(struct ctl_json *j, const char *key, int64_t v);
void json_f64(struct ctl_json *j, const char *key, double v);
void json_bool(struct ctl_json *j, const char *key, bool v);
void json_null(struct ctl_json *j, const char *key);
void json_done(struct ctl_json *j); /* after the top value: newline */

/* ---- ctl_show.c -------------------------------------------------------- */

/* What one `status` plus one `clients` exchange brought. */
struct ctl_view {
    struct ctl_reply status_reply;
    struct ctl_status status;
    bool have_status;                 /* status parsed */
    struct ctl_reply clients_reply;
    bool have_clients;
    bool same_pidns;                  /* /proc here shows hakmemd's pids */
    const char *proc_root;
};

const char *override_name(unsigned override); /* auto, on, off; "?" */
void show_status_text(FILE *f, const struct ctl_view *v, int width);
void show_status_json(struct ctl_json *j, const struct ctl_view *v);
void show_clients_text(FILE *f, const struct ctl_view *v, int width);
void show_clients_json(struct ctl_json *j, const struct ctl_view *v);
/* Prometheus text as samples: {"samples": [{"name", "labels", "value"}],
 * "help": {...}, "type": {...}}. Lines that are not samples or # HELP /
 * # TYPE are skipped. */
void show_metrics_json(struct ctl_json *j, const char *text, size_t len);

/* ---- ctl_cmd.c ---------------------------------------------------------- */

/* The commands: argc/argv are the positional arguments; an exit code. */
int ctl_cmd_status(struct ctl_opts *o, int argc, char **argv);
int ctl_cmd_clients(struct ctl_opts *o, int argc, char **argv);
int ctl_cmd_metrics(struct ctl_opts *o, int argc, char **argv);
int ctl_cmd_lean(struct ctl_opts *o, int argc, char **argv);
/* STATUS and/or CLIENTS into *v: an exit code, err saying why when not
 * CTL_EXIT_OK. A clients view asks STATUS as well, for the cgroup paths;
 * that one may fail without failing the view. */
int ctl_fetch_view(const struct ctl_opts *o, bool want_status, bool want_clients,
                   struct ctl_view *v, char *err, size_t errlen);
void ctl_view_free(struct ctl_view *v);
/* A warning on stderr when STATUS had lines that did not parse. */
void ctl_warn_malformed(const struct ctl_view *v);
/* Flushes stdout: CTL_EXIT_OK, or CTL_EXIT_ERROR with a message. */
int ctl_finish_stdout(void);

/* ---- ctl_watch.c -------------------------------------------------------- */

int ctl_cmd_watch(struct ctl_opts *o, int argc, char **argv);

/* ---- ctl_exporter.c ---------------------------------------------------- */

struct ctl_exporter_opts {
    const char *listen;      /* ADDR:PORT, [V6ADDR]:PORT or :PORT (every address) */
    const char *sock;        /* control.sock, or the socket --socket chose */
    const char *msock;       /* metrics.sock, tried first when this user may
                                connect there; NULL with --socket */
    int timeout_ms;          /* one exchange with hakmemd */
    bool per_process;        /* ask for the per-process series too */
};

/* Serves GET and HEAD /metrics on o->listen until SIGTERM or SIGINT.
 * Returns an exit code (enum ctl_exit): CTL_EXIT_OK after a signal,
 * CTL_EXIT_USAGE for an address that does not parse, CTL_EXIT_ERROR when
 * it cannot listen; err then says why. */
int ctl_exporter_run(const struct ctl_exporter_opts *o, char *err, size_t errlen);

#endif /* HAKMEMCTL_CTL_H */
