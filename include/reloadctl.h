/*
 * reloadctl.h - a reload that can be waited for, without HTTP. The daemon
 * publishes where its reloads are in a small file, $RUNTIME_DIRECTORY/
 * reload-status (replaced whole by a rename, never half-written): its pid, a
 * sequence number bumped when a reload starts, whether one is running, and
 * the outcome and errors of the last one. `redpulse --reload PID` reads it,
 * sends SIGHUP and waits for the outcome of a reload that started after it
 * was invoked, so systemd's ExecReload= fails when the reload does.
 */
#ifndef REDPULSE_RELOADCTL_H
#define REDPULSE_RELOADCTL_H

#include <stdint.h>

enum reloadctl_result {
    RELOADCTL_OK,      /* everything applied */
    RELOADCTL_PARTIAL, /* applied, except what the errors name (HTTP settings, certificate) */
    RELOADCTL_FAILED,  /* nothing applied: the previous configuration runs on */
};

/* Daemon side, on the loop thread only. reloadctl_open() reads
 * $RUNTIME_DIRECTORY (its first entry) and publishes the start-up load as
 * sequence 0, outcome ok; without the variable nothing is ever written.
 * hash: of the running configuration. A file that cannot be written is
 * logged as a warning, never fatal. */
void reloadctl_open(uint64_t hash);
/* A reload starts (call before the file is read): bumps the sequence. */
void reloadctl_begin(void);
/* It ended: result, the hash of the configuration now running, and the
 * errors one a line (NULL or "" for none), as the log has them. */
void reloadctl_end(enum reloadctl_result r, uint64_t hash, const char *errors);
/* On stop: removes the file. */
void reloadctl_close(void);

/* Client side (`redpulse --reload PID`): waits for PID's status file in
 * $RUNTIME_DIRECTORY (PID is not signalled without one), sends SIGHUP, and
 * waits, woken by inotify, for the reload it caused to end, at most
 * timeout_s seconds in all. Prints the outcome (errors on stderr). Returns
 * the exit code: 0 applied, 1 failed or partly applied, 2 bad arguments or
 * no $RUNTIME_DIRECTORY, 3 no answer in time or the process is gone. */
int reloadctl_client(const char *pid_arg, const char *timeout_arg);

#endif
