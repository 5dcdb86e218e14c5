/*
 * cmdclass.h - is a command a write, a read, or neither?
 *
 * The server says so itself in the flags of COMMAND INFO ("write",
 * "readonly"); redpulse asks once per connection for each command name it
 * sees in commandstats, and falls back to a built-in table (Redis 7.4's
 * flags) when COMMAND is refused or not yet answered, and for the names past
 * the first CMDCLASS_MAP_MAX of a connection.
 */
#ifndef REDPULSE_CMDCLASS_H
#define REDPULSE_CMDCLASS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

enum cmd_class { CMD_UNKNOWN = 0, CMD_WRITE, CMD_READ, CMD_OTHER };

/* "write", "read", "other" (CMD_UNKNOWN prints as "other"). */
const char *cmdclass_str(enum cmd_class c);
/* The built-in classification of a command name as INFO commandstats writes
 * it (lower case, "container|sub" for subcommands). Never CMD_UNKNOWN. */
enum cmd_class cmdclass_builtin(const char *cmd);

/* The most command names one connection's map holds. Redis 7.0 has 240
 * commands and 126 subcommands, Redis 8 with its modules and Valkey a few
 * hundred more: 4096 is far above any real server, and bounds what a peer
 * reporting new names in every INFO costs (the map lives as long as the
 * connection; it grew by ~140 KB/s at a 100 ms interval without a bound). */
#define CMDCLASS_MAP_MAX 4096

/* What one connection has learned from the server. */
struct cmdclass_map;

struct cmdclass_map *cmdclass_map_new(void);
void cmdclass_map_free(struct cmdclass_map *m); /* NULL-safe */
/* The server's class of cmd, or CMD_UNKNOWN when not learned (yet). */
enum cmd_class cmdclass_map_get(const struct cmdclass_map *m, const char *cmd);
/* Learned class if known, else the built-in one. */
enum cmd_class cmdclass_classify(const struct cmdclass_map *m, const char *cmd);
/* Records that cmd has been asked about (so it is asked once). Returns 0, or
 * -1 when cmd is new and the map already holds CMDCLASS_MAP_MAX names: it
 * is not recorded, and should not be asked about. */
int cmdclass_map_mark_asked(struct cmdclass_map *m, const char *cmd);
/* True when cmd has been learned or asked about. */
int cmdclass_map_known(const struct cmdclass_map *m, const char *cmd);
/* Learns from a COMMAND INFO reply to names[0..n): each element is nil or
 * [name, arity, flags, ...]. Returns how many were learned; malformed
 * elements, and names not in the map when it is full, are skipped. */
size_t cmdclass_map_learn(struct cmdclass_map *m, const char *const *names, size_t n, const redisReply *r);

#endif
