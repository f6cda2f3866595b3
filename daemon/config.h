/* config.h: hakmemd's options: /etc/hakmem/hakmemd.conf and the command
 * line (--set key=value and the specific flags) share one parser.
 *
 * Owns: the one list of options (CONFIG_KEYS: key, type, default, range,
 * doc) from which the struct, the parser, the range checks, the defaults
 * and the printout are all generated; the file syntax; the error messages
 * ("FILE:LINE: what", written into the caller's buffer).
 * Must not: log, exit, or act on an option: the daemon reads the values.
 *
 * File syntax: one `key = value` per line; blank lines; `#` starts a
 * comment at the beginning of a line or after whitespace. A key given
 * twice keeps the last value. Anything else (unknown key, bad value, out
 * of range, missing '=') is an error naming the file and the line, and
 * the daemon refuses to start (on SIGHUP it keeps the running config).
 */
#ifndef HAKMEMD_CONFIG_H
#define HAKMEMD_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include "policy.h"

#define CONFIG_DEFAULT_PATH "/etc/hakmem/hakmemd.conf"
#define CONFIG_STR_MAX 256 /* bytes of a path option, NUL included */
#define CONFIG_NAME_MAX 32 /* bytes of a name option, NUL included */
#define CONFIG_FILE_MAX (1u << 20) /* bytes: a larger configuration file is refused */

/* Bits of `sources`. psi covers PSI triggers and, where that is what
 * exists (v1 memory controller), memory.pressure_level events. */
#define CONFIG_SOURCE_BPF   0x1u
#define CONFIG_SOURCE_PSI   0x2u
#define CONFIG_SOURCE_USAGE 0x4u
#define CONFIG_SOURCE_EVENTS 0x8u /* v2 memory.events */

#define CONFIG_STRINGIFY_(x) #x
#define CONFIG_STRINGIFY(x) CONFIG_STRINGIFY_(x)
#define CONFIG_DEF(macro) CONFIG_STRINGIFY(macro)

/* Types: U32 (decimal, checked against min..max), PATH (an absolute path
 * of at most CONFIG_STR_MAX - 1 bytes; min..max unused), NAME (a user or
 * group name: letters, digits, '_', '-', '.', at most 31 bytes),
 * LEVEL (none, low, medium, critical), LOGLEVEL (err, warning, notice,
 * info, debug: syslog priorities), SOURCES (comma list of bpf, psi, usage,
 * events, or none). Defaults are written as they would be in the file and go
 * through the same parser and checks. */
#define CONFIG_KEYS(X)                                                          \
    X(runtime_dir, PATH, "/run/hakmem", 0, 0,                                   \
      "directory of hakmemd.sock (rendezvous) and control.sock; the shim "      \
      "finds it through HAKMEM_RUNTIME_DIR (same default)")                     \
    X(cgroup_root, PATH, "/sys/fs/cgroup", 0, 0,                                \
      "where the cgroup hierarchies are mounted (v1: <root>/memory; v2: "       \
      "<root>, or <root>/unified on hybrid hosts)")                             \
    X(sources, SOURCES, "bpf,psi,usage,events", 0, 0,                           \
      "pressure sources to start: bpf (reclaim tracepoints), psi (PSI "         \
      "triggers and averages; v1 memory.pressure_level where that is what "     \
      "exists), usage (usage against limit), events (v2 memory.events: "        \
      "high, max, oom_kill), or none; a source that cannot start is reported "  \
      "and skipped")                                                            \
    X(log_level, LOGLEVEL, "info", 0, 0,                                        \
      "least important message logged: err, warning, notice, info, debug")      \
    X(heartbeat_ms, U32, "1000", 50, 60000,                                     \
      "period of the ring heartbeat, ms; shims that hear nothing for a few "    \
      "periods fall back to their own mode")                                    \
    X(max_clients, U32, "4096", 1, 65536,                                       \
      "clients connected at once; each holds one socket fd: hakmemd lowers "    \
      "the limit to what its RLIMIT_NOFILE allows, and says so at start")       \
    X(max_clients_per_uid, U32, "1024", 1, 65536,                               \
      "clients connected at once per user id (SO_PEERCRED); at most a "         \
      "quarter of the clients hakmemd's descriptors allow")                     \
    X(usage_interval_ms, U32, "250", 10, 60000,                                 \
      "longest time between two samples of a cgroup's usage and limits, ms "    \
      "(a cgroup far from every usage threshold)")                              \
    X(usage_min_interval_ms, U32, "10", 1, 60000,                               \
      "shortest time between two samples of a cgroup, ms (one close to a "      \
      "usage threshold); at most usage_interval_ms")                            \
    X(usage_burst_mb_per_s, U32, "1000", 1, 1000000,                            \
      "growth the sampling plans for, MB/s: a cgroup is read again before it "  \
      "could reach its next usage threshold growing this fast (or as fast as "  \
      "it was seen growing, if faster)")                                        \
    X(usage_lead_ms, U32, "100", 0, 10000,                                      \
      "the usage ratio the policy sees is projected this far ahead at the "     \
      "growth measured between the last two samples, ms: a cgroup growing "     \
      "fast reaches a level before its memory does; 0: no projection")         \
    X(usage_low_pct, U32, CONFIG_DEF(POLICY_DEF_USAGE_LOW_PCT), 0, 100,         \
      "working set (usage - inactive file cache) / limit, %, for LOW; 0: off")  \
    X(usage_medium_pct, U32, CONFIG_DEF(POLICY_DEF_USAGE_MEDIUM_PCT), 0, 100,   \
      "working set / limit, %, for MEDIUM; 0: off")                             \
    X(usage_critical_pct, U32, CONFIG_DEF(POLICY_DEF_USAGE_CRITICAL_PCT), 0, 100, \
      "working set / limit, %, for CRITICAL; 0: off")                           \
    X(reclaim_events_low, U32, CONFIG_DEF(POLICY_DEF_RECLAIM_EVENTS_LOW), 0, 1000000, \
      "reclaim entries per second in the cgroup (bpf) for LOW; 0: off")         \
    X(reclaim_events_medium, U32, CONFIG_DEF(POLICY_DEF_RECLAIM_EVENTS_MEDIUM), 0, 1000000, \
      "reclaim entries per second for MEDIUM; 0: off")                          \
    X(reclaim_events_critical, U32, CONFIG_DEF(POLICY_DEF_RECLAIM_EVENTS_CRITICAL), 0, 1000000, \
      "reclaim entries per second for CRITICAL; 0: off")                        \
    X(reclaim_stall_low_ms, U32, CONFIG_DEF(POLICY_DEF_RECLAIM_STALL_LOW_MS), 0, 100000, \
      "ms spent in reclaim per second, all tasks of the cgroup summed (bpf), "  \
      "for LOW; 0: off")                                                        \
    X(reclaim_stall_medium_ms, U32, CONFIG_DEF(POLICY_DEF_RECLAIM_STALL_MEDIUM_MS), 0, 100000, \
      "ms in reclaim per second for MEDIUM; 0: off")                            \
    X(reclaim_stall_critical_ms, U32, CONFIG_DEF(POLICY_DEF_RECLAIM_STALL_CRITICAL_MS), 0, 100000, \
      "ms in reclaim per second for CRITICAL; 0: off")                          \
    X(psi_some_low_pct, U32, CONFIG_DEF(POLICY_DEF_PSI_SOME_LOW_PCT), 0, 100,   \
      "PSI memory some avg10, %, for LOW; 0: off")                              \
    X(psi_some_medium_pct, U32, CONFIG_DEF(POLICY_DEF_PSI_SOME_MEDIUM_PCT), 0, 100, \
      "PSI memory some avg10, %, for MEDIUM; 0: off")                           \
    X(psi_some_critical_pct, U32, CONFIG_DEF(POLICY_DEF_PSI_SOME_CRITICAL_PCT), 0, 100, \
      "PSI memory some avg10, %, for CRITICAL; 0: off")                         \
    X(psi_full_low_pct, U32, CONFIG_DEF(POLICY_DEF_PSI_FULL_LOW_PCT), 0, 100,   \
      "PSI memory full avg10, %, for LOW; 0: off")                              \
    X(psi_full_medium_pct, U32, CONFIG_DEF(POLICY_DEF_PSI_FULL_MEDIUM_PCT), 0, 100, \
      "PSI memory full avg10, %, for MEDIUM; 0: off")                           \
    X(psi_full_critical_pct, U32, CONFIG_DEF(POLICY_DEF_PSI_FULL_CRITICAL_PCT), 0, 100, \
      "PSI memory full avg10, %, for CRITICAL; 0: off")                         \
    X(psi_trigger_stall_us, U32, "37500", 1, 10000000,                          \
      "PSI trigger on a v2 cgroup's memory.pressure: stall, us, within one "    \
      "window that fires it (37.5 ms in 500 ms: 7.5 %, between the LOW and "    \
      "MEDIUM avg10 thresholds)")                                               \
    X(psi_trigger_window_us, U32, "500000", 500000, 10000000,                   \
      "PSI trigger window, us: the shortest tried; where the kernel refuses "   \
      "it (without CAP_SYS_RESOURCE, Linux 6.5 and later, and stable kernels "  \
      "with the change such as Debian 12's 6.1, want a multiple of "            \
      "2 s) the next multiple of 2 s is armed, with the same share of stall")   \
    X(psi_trigger_level, LEVEL, "low", 0, 0,                                    \
      "level a fired PSI trigger means")                                        \
    X(memevents_high_level, LEVEL, "medium", 0, 0,                              \
      "level meant by the v2 memory.events counter 'high' rising (the cgroup "  \
      "went over memory.high and is throttled); none: ignore it")               \
    X(memevents_max_level, LEVEL, "critical", 0, 0,                             \
      "level meant by memory.events 'max' rising (a charge hit memory.max and " \
      "had to reclaim); none: ignore it; 'oom_kill' rising always means "       \
      "critical")                                                               \
    X(vmpressure_window_ms, U32, "1000", 10, 60000,                             \
      "v1 memory.pressure_level debouncing window, ms")                         \
    X(vmpressure_low_events, U32, "8", 0, 1000000,                              \
      "'low' (or worse) events per window for LOW; 0: ignore the level")        \
    X(vmpressure_medium_events, U32, "4", 0, 1000000,                           \
      "'medium' (or worse) events per window for MEDIUM; 0: ignore the level")  \
    X(vmpressure_critical_events, U32, "2", 0, 1000000,                         \
      "'critical' events per window for CRITICAL; 0: ignore the level")         \
    X(calm_critical_ms, U32, CONFIG_DEF(POLICY_DEF_CALM_CRITICAL_MS), 0, 3600000, \
      "calm needed to go from CRITICAL down to MEDIUM, ms")                     \
    X(calm_medium_ms, U32, CONFIG_DEF(POLICY_DEF_CALM_MEDIUM_MS), 0, 3600000,   \
      "calm needed to go from MEDIUM down to LOW, ms")                          \
    X(calm_low_ms, U32, CONFIG_DEF(POLICY_DEF_CALM_LOW_MS), 0, 3600000,         \
      "calm needed to go from LOW down to NONE, ms")                            \
    X(hysteresis_pct, U32, CONFIG_DEF(POLICY_DEF_HYSTERESIS_PCT), 0, 90,        \
      "band below each threshold, %, that a signal must fall under to count "  \
      "as calm")                                                                \
    X(metrics_group, NAME, "hakmem-metrics", 0, 0,                              \
      "group whose members may connect to metrics.sock, the read-only socket "  \
      "(status, clients, metrics; never a change) with connection slots of "   \
      "its own, for the metrics exporter; when the group does not exist, "      \
      "only root may")

#define CONFIG_FIELD_U32(name) uint32_t name;
#define CONFIG_FIELD_PATH(name) char name[CONFIG_STR_MAX];
#define CONFIG_FIELD_NAME(name) char name[CONFIG_NAME_MAX];
#define CONFIG_FIELD_LEVEL(name) enum hakmem_level name;
#define CONFIG_FIELD_LOGLEVEL(name) int name; /* LOG_ERR..LOG_DEBUG */
#define CONFIG_FIELD_SOURCES(name) uint32_t name; /* CONFIG_SOURCE_* */

struct hakmemd_config {
#define CONFIG_X_FIELD(name, type, def, min, max, doc) CONFIG_FIELD_##type(name)
    CONFIG_KEYS(CONFIG_X_FIELD)
#undef CONFIG_X_FIELD
};

/* Fills cfg with the defaults. Returns 0 (a default that fails its own
 * checks is a bug caught by the unit tests: -EINVAL). */
int config_init(struct hakmemd_config *cfg);

/* Sets one option from its text form, as the file would. Returns 0,
 * -EINVAL (unknown key, bad value), -ERANGE (out of range) or
 * -ENAMETOOLONG (string too long), with a message in err ("unknown key
 * 'foo'", no file or line). err may be NULL. */
int config_set(struct hakmemd_config *cfg, const char *key, const char *value,
               char *err, size_t errlen);

/* "key=value" (spaces around '=' allowed), for --set. As config_set;
 * a missing '=' is -EINVAL. */
int config_set_arg(struct hakmemd_config *cfg, const char *arg, char *err, size_t errlen);

/* Resets cfg to the defaults, then applies the file at path (NULL: the
 * default path) and checks the result (config_check). Returns 1 when the
 * file was read, 0 when path is the default path and does not exist (the
 * defaults stand), or a negative errno with "PATH:LINE: what" (or "PATH:
 * what" for errors of the whole file) in err. On error cfg is unchanged,
 * so a failed reload keeps the running configuration. The file must be a
 * regular file of at most CONFIG_FILE_MAX bytes: it is opened without
 * blocking (a FIFO never stalls the daemon) and anything else, /dev/zero
 * say, is refused as "not a regular file" (-EINVAL) or "too large"
 * (-EFBIG) before a byte is read. */
int config_load(const char *path, struct hakmemd_config *cfg, char *err, size_t errlen);

/* Calls fn(key, old value, new value, ctx) for every key whose value
 * differs between a and b, in the order of CONFIG_KEYS; values as the
 * file would write them. Returns how many differ. */
int config_diff(const struct hakmemd_config *a, const struct hakmemd_config *b,
                void (*fn)(const char *key, const char *from, const char *to, void *ctx),
                void *ctx);

/* Checks between options (thresholds rise with the level). Returns 0 or
 * -EINVAL with a message naming the keys. */
int config_check(const struct hakmemd_config *cfg, char *err, size_t errlen);

/* Prints every option as a config file: its doc, default and range as a
 * comment, then `key = value` with cfg's value (cfg NULL: the defaults,
 * for --help). The output loads back to the same configuration. Returns
 * 0, or -EIO when writing failed. */
int config_print(FILE *f, const struct hakmemd_config *cfg);

/* The policy thresholds the options describe. */
void config_policy(const struct hakmemd_config *cfg, struct policy_thresholds *th);

/* "err", "warning", ... for a syslog priority; "?" otherwise. */
const char *config_log_level_name(int level);

#endif /* HAKMEMD_CONFIG_H */
