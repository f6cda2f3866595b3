/* e2e.h: helpers for hakmemd's end-to-end tests (tests/e2e/).
 *
 * Each test is one program. e2e_init() parses the common arguments
 * (--daemon PATH, --shim PATH, --client PATH), makes a private temporary
 * directory and installs the cleanup that runs on every exit path: at
 * exit, on a failed check, and on SIGTERM/SIGINT/SIGHUP/SIGALRM (meson's
 * timeout). Cleanup kills every process a test started (daemons, shim
 * clients, helper children; they also get PR_SET_PDEATHSIG) and removes
 * the directory. Exit status: 0 pass, 1 fail, 77 skip (reason printed).
 *
 * The raw rendezvous client speaks the wire contract (proto/) directly,
 * so that a test can send anything, well-formed or not. The shim client
 * (e2e_shimclient) is a real process under LD_PRELOAD=libhakmem.so that
 * idles and reports its mode in a status file.
 */
#ifndef HAKMEM_E2E_H
#define HAKMEM_E2E_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "hakmem_proto.h"

#define E2E_SKIP 77

/* ---- the test ---- */

extern const char *e2e_daemon_path; /* hakmemd */
extern const char *e2e_shim_path;   /* libhakmem.so (absolute) */
extern const char *e2e_client_path; /* e2e_shimclient */

/* Parses arguments, makes the directory, arms cleanup and a watchdog of
 * watchdog_s seconds (a hung test fails with a message instead of
 * waiting for meson's timeout). */
void e2e_init(int argc, char **argv, const char *name, unsigned watchdog_s);
const char *e2e_dir(void);          /* the test's private directory */
bool e2e_is_root(void);
double e2e_now(void);               /* monotonic seconds */
double e2e_elapsed(void);           /* seconds since e2e_init */
void e2e_sleep_ms(unsigned ms);

void e2e_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void e2e_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void e2e_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the summary and exits 0, or 1 if any e2e_check failed. */
_Noreturn void e2e_done(void);

/* A check that records the failure and goes on (the test fails at the end). */
#define E2E_CHECK(cond, ...)                                        \
    do {                                                            \
        if (!(cond))                                                \
            e2e_check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__); \
    } while (0)
/* A check the rest of the test depends on: fail now. */
#define E2E_REQUIRE(cond, ...)                                      \
    do {                                                            \
        if (!(cond)) {                                              \
            e2e_check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__); \
            e2e_done();                                             \
        }                                                           \
    } while (0)
void e2e_check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int e2e_failures(void);

/* Children: registered processes are killed (SIGKILL) and reaped by the
 * cleanup. e2e_fork() forks a registered child with PR_SET_PDEATHSIG. */
void e2e_track(pid_t pid);
void e2e_untrack(pid_t pid);
pid_t e2e_fork(void);
/* Waits for pid up to timeout_ms; returns its wait status, or -1 on
 * timeout (the child is left running). */
int e2e_wait(pid_t pid, unsigned timeout_ms);
/* Raises RLIMIT_NOFILE's soft limit to want (capped by the hard limit);
 * returns the soft limit now in force. */
unsigned long e2e_raise_nofile(unsigned long want);

/* ---- hakmemd ---- */

struct e2e_daemon {
    pid_t pid;
    char rtdir[128];                    /* its runtime dir */
    char log[192];                      /* its stderr */
};

/* RLIMIT_NOFILE (soft and hard) of the next daemon started; 0: inherited. */
extern unsigned long e2e_daemon_nofile;
/* Starts hakmemd --runtime-dir rtdir [args...] (NULL-terminated; stderr
 * appended to rtdir/../NAME.log, NAME from the runtime dir) and waits up
 * to 10 s until control.sock answers STATUS. Returns 0, or -1 with the
 * daemon reaped when it exited or did not come up (its log is printed). */
int e2e_daemon_start(struct e2e_daemon *d, const char *rtdir, const char *const *args);
/* As e2e_daemon_start, with the test failing when the daemon does not come up. */
void e2e_daemon_start_or_fail(struct e2e_daemon *d, const char *rtdir, const char *const *args);
bool e2e_daemon_alive(struct e2e_daemon *d);
/* Sends sig and waits up to timeout_ms for the exit; returns the wait
 * status or -1 (still running). */
int e2e_daemon_stop(struct e2e_daemon *d, int sig, unsigned timeout_ms);
int e2e_daemon_nfds(const struct e2e_daemon *d);    /* open fds, -1 if unknown */
void e2e_daemon_list_fds(const struct e2e_daemon *d); /* prints them */
/* Open fds once the count has been stable for 50 ms (a baseline). */
int e2e_daemon_nfds_settled(const struct e2e_daemon *d);
/* Lines of the daemon's log containing s. */
int e2e_log_count(const struct e2e_daemon *d, const char *s);
/* Messages of the daemon containing s: the lines, plus for each summary
 * of its rate limit ("N similar messages suppressed in T s; the last:
 * ...s...") the N it stands for. Summaries come once the interval is over
 * (E2E_LOG_INTERVAL_MS) or when the daemon stops. */
int e2e_log_count_msgs(const struct e2e_daemon *d, const char *s);
#define E2E_LOG_INTERVAL_MS 5300        /* LOG_INTERVAL_NS in daemon/log.h, and a tick */
void e2e_log_dump(const struct e2e_daemon *d, int last_lines);
/* CPU time (user + system) the daemon used, seconds. */
double e2e_daemon_cpu(const struct e2e_daemon *d);

/* ---- control socket ---- */

/* Sends q to rtdir/control.sock and reads every response datagram (up to
 * timeout_ms). Returns the status of the last datagram (0 or negative
 * errno), -EPIPE when the answer ended without a final datagram, or
 * -ETIMEDOUT/-ECONNREFUSED/... for transport failures. Payload records of
 * CLIENTS are appended to *clients (malloc'ed, *nclients records) when
 * clients is not NULL; TEXT payload is appended to text (NUL-terminated)
 * when text is not NULL. *ndgrams: datagrams received. */
int e2e_ctl(const char *rtdir, const struct hakmem_ctl_req *q, unsigned timeout_ms,
            struct hakmem_ctl_client **clients, size_t *nclients,
            char *text, size_t textlen, size_t *ndgrams);
/* CLIENTS; returns as e2e_ctl. */
int e2e_ctl_clients(const char *rtdir, struct hakmem_ctl_client **out, size_t *n);
/* STATUS's "clients N" line; -1 on failure. */
long e2e_ctl_status_clients(const char *rtdir);
/* LEAN; returns the response status. */
int e2e_ctl_lean(const char *rtdir, uint32_t target, uint64_t key, uint32_t mode, uint32_t level);
/* The CLIENTS record of pid (copied into *out); false when absent. */
bool e2e_find_client(const char *rtdir, pid_t pid, struct hakmem_ctl_client *out);

/* ---- raw rendezvous client ---- */

/* A blocking SOCK_SEQPACKET connection to rtdir/hakmemd.sock, or -errno. */
int e2e_connect(const char *rtdir);
/* A memfd of size bytes holding an initialised stats page (when size
 * allows), with seals (F_SEAL_*) added. -errno on failure. */
int e2e_stats_memfd(size_t size, unsigned seals);
/* A well-formed hello (stats_size 0 without an fd). */
void e2e_hello(struct hakmem_hello *h, bool with_stats, uint32_t stats_size);
/* sendmsg of len bytes with nfds fds (SCM_RIGHTS); returns sendmsg's result or -errno. */
ssize_t e2e_send(int sock, const void *buf, size_t len, const int *fds, int nfds);

enum e2e_reply {
    E2E_WELCOME,    /* welcome, status 0, ring fd attached */
    E2E_REFUSED,    /* welcome with a negative status, no fd */
    E2E_EOF,        /* the daemon closed the connection without a word */
    E2E_TIMEOUT,    /* nothing within the timeout */
    E2E_BADREPLY,   /* something that is not a valid welcome */
};
const char *e2e_reply_name(int r);
/* Waits up to timeout_ms for the daemon's answer. *w gets the welcome
 * (also for REFUSED); *ring_fd the attached fd or -1 (ring_fd may be NULL:
 * the fd is closed). */
int e2e_recv_reply(int sock, unsigned timeout_ms, struct hakmem_welcome *w, int *ring_fd);
/* Waits up to timeout_ms for the connection's end (EOF or error);
 * true when it ended. Any datagram read meanwhile is discarded. */
bool e2e_wait_eof(int sock, unsigned timeout_ms);
/* A complete, well-formed registration with a fresh stats memfd. Returns
 * the connected socket (kept open: the client stays registered) and
 * fills *w; or -1 with *result set to the reply kind. */
int e2e_register(const char *rtdir, unsigned timeout_ms, struct hakmem_welcome *w, int *result);
/* As e2e_register, reusing the sealed stats memfd stats_fd (-1: none). */
int e2e_register_fd(const char *rtdir, int stats_fd, unsigned timeout_ms,
                    struct hakmem_welcome *w, int *result);

/* ---- real shim clients ---- */

struct e2e_shim {
    pid_t pid;
    char status[192];                   /* its status file */
};
/* Starts e2e_shimclient under LD_PRELOAD with HAKMEM_RUNTIME_DIR=rtdir and
 * the extra NAME=VALUE settings (NULL-terminated, may be NULL). */
void e2e_shim_start(struct e2e_shim *s, const char *rtdir, const char *const *env);
/* Its last reported mode and level (false if none yet). */
bool e2e_shim_state(const struct e2e_shim *s, int *mode, int *level);
/* Waits until its mode is mode (up to timeout_ms); returns seconds waited or -1. */
double e2e_shim_wait_mode(const struct e2e_shim *s, int mode, unsigned timeout_ms);
bool e2e_shim_alive(const struct e2e_shim *s);
void e2e_shim_stop(struct e2e_shim *s);

#endif
