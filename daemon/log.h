/* log.h: hakmemd's messages. One line each on stderr with the syslog
 * priority as a "<N>" prefix, which journald turns into the priority
 * (SyslogLevelPrefix=yes, the default); below the configured level they
 * are dropped. Only main, the event loop and the boxes' callers log:
 * helpers return a negative errno and let their caller say it once.
 *
 * Rate limit: every call site (format string) may write LOG_BURST lines
 * per LOG_INTERVAL_NS; what it says beyond that is counted, and once the
 * interval is over one line says how many were suppressed and repeats
 * the last of them: "<4>42 similar messages suppressed in 5 s; the last:
 * client 123: bad hello: Bad message". log_flush() (each tick) writes
 * those lines for sites that fell silent. Peers cannot flood the journal
 * however fast they misbehave. */
#ifndef HAKMEMD_LOG_H
#define HAKMEMD_LOG_H

#include <stdarg.h>
#include <stdint.h>
#include <syslog.h>

#define LOG_BURST       20            /* lines per call site per interval */
#define LOG_UNLIMITED   0x100         /* or'ed into the priority: never rate-limited (what
                                         root asked for, e.g. a reload's list of changes) */
#define LOG_INTERVAL_NS 5000000000ull /* 5 s */

void log_set_level(int level);      /* LOG_ERR .. LOG_DEBUG */
int log_get_level(void);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int prio, const char *fmt, va_list ap);
/* Writes the summaries of call sites whose interval is over (now: monotonic ns). */
void log_flush(uint64_t now_ns);

#define log_err(...)     log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_notice_unlimited(...) log_msg(LOG_NOTICE | LOG_UNLIMITED, __VA_ARGS__)

#endif
