/*
 * collect.h - the slower-cadence collections: CONFIG GET of the settings
 * that govern the write path (cfgparams.def) and LATENCY LATEST. Building
 * the commands and reading the replies; pure, no I/O (the poller sends).
 */
#ifndef REDPULSE_COLLECT_H
#define REDPULSE_COLLECT_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

enum cfg_param {
#define P(id, name, kind, metric, help) CFGP_##id,
#include "cfgparams.def"
#undef P
    CFGP_COUNT
};

enum cfg_kind { CFG_NUM, CFG_MSEC, CFG_BOOL, CFG_STR };

/* Values from the last CONFIG GET; NULL where the server did not answer. */
struct config_values {
    char *v[CFGP_COUNT];
    double num[CFGP_COUNT]; /* cfg_value_num() of each v, set with it */
    bool have; /* at least one reply arrived */
};

#define LATENCY_MAX_EVENTS 32
struct latency_event {
    char name[48];
    double timestamp;  /* Unix seconds of the latest spike */
    double latest_s, max_s;
};

struct latency_values {
    struct latency_event ev[LATENCY_MAX_EVENTS];
    size_t n;
    size_t dropped; /* entries of the last reply left out (see collect_latency_reply) */
    bool have;
};

const char *cfg_param_name(enum cfg_param p);
enum cfg_kind cfg_param_kind(enum cfg_param p);
/* A setting as a number (yes/no -> 1/0, ms -> s), NaN when absent or not numeric. */
double cfg_value_num(const struct config_values *c, enum cfg_param p);

/* Fills argv with "<command> GET p1 p2 ..." (every parameter) for servers
 * that take several (Redis >= 7.0); returns argc. argv needs CFGP_COUNT + 2. */
int collect_config_argv(const char *command, const char **argv);
/* Same, one parameter per command for older servers: argv needs 3. */
int collect_config_argv_one(const char *command, enum cfg_param p, const char **argv);
/* Merges a CONFIG GET reply (flat name/value array, or a RESP3 map) into c.
 * Returns the number of known parameters read, or -1 when r is not an
 * array. */
int collect_config_reply(struct config_values *c, const redisReply *r);
void config_values_clear(struct config_values *c);

/* True when an error reply to a collection's command is a permanent
 * refusal, one asking again on the same connection cannot change: the ACL
 * forbids it (NOPERM) or the server does not know the command or
 * subcommand (renamed, disabled, too old). Anything else (BUSY, LOADING,
 * MASTERDOWN, ...) is transient. err is the reply's text. */
bool collect_refusal_permanent(const char *err);

/* Replaces l with a LATENCY LATEST reply ([event, time, latest ms, max ms]
 * per element). Elements of another shape are skipped, and so are events
 * whose name is not valid UTF-8, holds a NUL or control character or is
 * longer than a name holds (47 bytes), a name's repeats after its first,
 * and the events past the first LATENCY_MAX_EVENTS (a real server knows
 * about twenty): every event kept has a distinct name, exactly as the
 * server wrote it, and l->dropped counts the elements skipped. Returns the
 * number of events, or -1 when malformed. */
int collect_latency_reply(struct latency_values *l, const redisReply *r);

#endif
