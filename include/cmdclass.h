/*
 * cmdclass.h - is a command a write, a read, or neither?
 *
 * The server says so itself in the flags of COMMAND INFO ("write",
 * "readonly"); redpulse asks once per connection for each command name it
 * sees in commandstats, and falls back to a built-in table (Redis 7.4's
 * flags) when COMMAND is refused or not yet answered.
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

/* What one connection has learned from the server. */
struct cmdclass_map;

struct cmdclass_map *cmdclass_map_new(void);
void cmdclass_map_free(struct cmdclass_map *m); /* NULL-safe */
/* The server's class of cmd, or CMD_UNKNOWN when not learned (yet). */
enum cmd_class cmdclass_map_get(const struct cmdclass_map *m, const char *cmd);
/* Learned class if known, else the built-in one. */
enum cmd_class cmdclass_classify(const struct cmdclass_map *m, const char *cmd);
/* Records that cmd has been asked about (so it is asked once). */
void cmdclass_map_mark_asked(struct cmdclass_map *m, const char *cmd);
/* True when cmd has been learned or asked about. */
int cmdclass_map_known(const struct cmdclass_map *m, const char *cmd);
/* Learns from a COMMAND INFO reply to names[0..n): each element is nil or
 * [name, arity, flags, ...]. Returns how many were learned; malformed
 * elements are skipped. */
size_t cmdclass_map_learn(struct cmdclass_map *m, const char *const *names, size_t n, const redisReply *r);

#endif
