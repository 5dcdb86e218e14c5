/*
 * outcome.h - how a poll ended. One X-macro list feeds the enum, the strings
 * and the `reason` label of redpulse_poll_errors_total (like libuv's
 * UV_ERRNO_MAP), so a reason can never be misspelt in one place only.
 */
#ifndef REDPULSE_OUTCOME_H
#define REDPULSE_OUTCOME_H

#define OUTCOME_MAP(X)                                                                  \
    X(OK, "ok", "poll succeeded")                                                       \
    X(CONNECT_REFUSED, "connect_refused", "connection refused")                         \
    X(CONNECT_FAILED, "connect_failed", "could not connect")                            \
    X(DNS, "dns", "host name did not resolve")                                          \
    X(TIMEOUT, "timeout", "no complete reply before the deadline")                      \
    X(AUTH, "auth", "authentication refused")                                           \
    X(NO_PERMISSION, "no_permission", "the ACL user may not run INFO")                  \
    X(PROTOCOL, "protocol", "the peer sent something that is not valid RESP")           \
    X(REPLY_TOO_LARGE, "reply_too_large", "the reply exceeded max_reply_bytes")         \
    X(TLS, "tls", "TLS handshake or verification failed")                               \
    X(CLOSED, "closed", "the connection was closed or reset")                           \
    X(ERROR_REPLY, "error_reply", "INFO returned an error (e.g. LOADING)")              \
    X(RESOURCES, "resources", "out of file descriptors or memory")

enum outcome {
#define X(id, str, desc) OUTCOME_##id,
    OUTCOME_MAP(X)
#undef X
        OUTCOME_COUNT
};

/* The label value of an outcome ("timeout"). */
const char *outcome_str(enum outcome o);
/* A short human description of an outcome. */
const char *outcome_desc(enum outcome o);

#endif
