/*
 * log.h - leveled logging to stderr (journald picks it up under systemd).
 *
 * Every line names its subsystem and, where there is one, the target:
 *   text:    "2026-11-29T19:30:00Z warn poller: cache-1: poll failed: timeout"
 *   journal: "<4>poller: cache-1: poll failed: timeout" (journald adds the
 *            time; the syslog priority makes `journalctl -p warning` work)
 *   json:    {"ts":"2026-11-29T19:30:00Z","level":"warn","subsys":"poller","msg":"cache-1: ..."}
 * Secrets are never passed to these functions. Thread-safe.
 */
#ifndef REDPULSE_LOG_H
#define REDPULSE_LOG_H

#include <stdbool.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JOURNAL, LOG_FORMAT_JSON };

/* Sets the most verbose level printed (default LOG_INFO). */
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns 0 or -1. */
int log_parse_level(const char *s, enum log_level *out);
/* Sets the shape of lines (default LOG_FORMAT_TEXT). */
void log_set_format(enum log_format f);
/* Parses "text", "journal", "json"; returns 0 or -1. */
int log_parse_format(const char *s, enum log_format *out);
/* True when stderr is the journal stream systemd connected
 * ($JOURNAL_STREAM names its device and inode). */
bool log_stderr_is_journal(void);
/* Prints one line if lvl is enabled. */
void log_msg(enum log_level lvl, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(sub, ...) log_msg(LOG_ERROR, sub, __VA_ARGS__)
#define log_warn(sub, ...) log_msg(LOG_WARN, sub, __VA_ARGS__)
#define log_info(sub, ...) log_msg(LOG_INFO, sub, __VA_ARGS__)
#define log_debug(sub, ...) log_msg(LOG_DEBUG, sub, __VA_ARGS__)

#endif
