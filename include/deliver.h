/*
 * deliver.h - the delivery thread: sends the outboxes of the alert hub to
 * webhooks, Alertmanagers and Slack with libcurl's multi interface (one
 * request in flight per receiver URL, each URL of a receiver at its own
 * pace with its own backoff, so a hanging receiver or Alertmanager delays
 * only itself), retries what can succeed later (network errors, 3xx: not
 * followed, 5xx, 408, 429: capped exponential backoff with jitter, at least
 * Retry-After), gives up on
 * what cannot (other 4xx: logged with the start of the body, counted), and
 * writes the state file whenever the hub is dirty (a failed write is
 * counted and tried again every second; a state_dir deleted meanwhile is
 * made again). Like Alertmanager's
 * notification log, a notification leaves its outbox only once delivered or
 * finally refused.
 */
#ifndef REDPULSE_DELIVER_H
#define REDPULSE_DELIVER_H

#include <stdio.h>

#include "alerts.h"

struct hub;

/* Starts the thread on h. Returns 0, or -1 when it cannot. */
int deliver_start(struct hub *h);
/* Wakes the thread: there is something to send or save. Any thread. */
void deliver_wake(void);
/* Stops the thread: requests in flight and notifications due within 2 s
 * (STOP_GRACE_S) get that long to go out, then a last save of the state
 * file; what is still undelivered stays in the saved outbox. Blocks up to
 * the grace. */
void deliver_stop(struct hub *h);

/* redpulse --test-receiver: sends one test notification to receiver name
 * through the same request building and classification, blocking; prints
 * the status and the start of the answer to out. Returns 0 on 2xx, 1 on an
 * HTTP or network failure, 2 when there is no such receiver. */
int deliver_test_receiver(const struct alerts_cfg *a, const char *name, FILE *out);

#endif
