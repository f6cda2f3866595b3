/* log.h: hakmemd's messages. One line each on stderr with the syslog
 * priority as a "<N>" prefix, which journald turns into the priority
 * (SyslogLevelPrefix=yes, the default); below the configured level they
 * are dropped. Only main, the event loop and the boxes' callers log:
 * helpers return a negative errno and let their caller say it once. */
#ifndef HAKMEMD_LOG_H
#define HAKMEMD_LOG_H

#include <stdarg.h>
#include <syslog.h>

void log_set_level(int level);      /* LOG_ERR .. LOG_DEBUG */
int log_get_level(void);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int prio, const char *fmt, va_list ap);

#define log_err(...)     log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
