/*
 * service.h - the running daemon: loads the configuration generation,
 * starts the HTTP server and the poller, and handles the service manager's
 * side of life: SIGHUP reloads the whole configuration (keeping the running
 * one on any error), SIGTERM/SIGINT stop in bounded time, and systemd hears
 * READY=1, STATUS=, WATCHDOG=1 (from the poll loop itself), RELOADING=1 and
 * STOPPING=1 when $NOTIFY_SOCKET is set. With $RUNTIME_DIRECTORY set, each
 * reload's state and outcome are published there (reloadctl.h).
 */
#ifndef REDPULSE_SERVICE_H
#define REDPULSE_SERVICE_H

#include <stdbool.h>

/* Runs until SIGTERM or SIGINT. config_path NULL: the built-in
 * configuration (SIGHUP then only reloads the HTTP certificate).
 * level_fixed: the log level came from the command line and the file's
 * log_level is ignored. Returns the process exit code: 0 after a signal, 1
 * when startup failed, 2 when the configuration is invalid. */
int service_run(const char *config_path, bool level_fixed);

#endif
