/*
 * sdnotify.h - the systemd notification protocol without libsystemd: one
 * datagram per message to the AF_UNIX socket named by $NOTIFY_SOCKET (a path,
 * or an abstract name written "@name"), as sd_notify(3) describes. Without
 * $NOTIFY_SOCKET every call is a no-op, so the daemon runs the same anywhere.
 */
#ifndef REDPULSE_SDNOTIFY_H
#define REDPULSE_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Reads $NOTIFY_SOCKET and $WATCHDOG_USEC (honouring $WATCHDOG_PID) and
 * opens the datagram socket. Returns 0, or -1 after logging when the
 * variable is set but unusable (then later calls do nothing). */
int sdnotify_init(void);
/* True when $NOTIFY_SOCKET was set and usable. */
bool sdnotify_enabled(void);
/* The watchdog interval systemd asked for, in microseconds; 0: none. */
uint64_t sdnotify_watchdog_usec(void);
/* Sends one message ("READY=1", "STATUS=...", several lines joined by
 * '\n'). Never blocks; a failure is logged at debug level. */
void sdnotify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "RELOADING=1" with the MONOTONIC_USEC= systemd wants beside it. */
void sdnotify_reloading(void);
/* Closes the socket. */
void sdnotify_close(void);

#endif
