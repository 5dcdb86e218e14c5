/*
 * alerts_builtin.c - the built-in rule set: the write-path conditions the
 * public rule sets miss. Parsed by the same code as configured rules, so a
 * configured rule of the same name overrides any key of one of these
 * (threshold, for, severity, enabled ...). docs/alerts.md documents each:
 * default, reason, and the Redis setting it protects.
 */
#include "alerts.h"

#define RULEK(name, fig, op, thr, forv, keep, sev, summary)                                                     \
    "{\"name\":\"" name "\",\"figure\":\"" fig "\",\"op\":\"" op "\",\"threshold\":" thr ",\"for\":\"" forv \
    "\",\"keep_firing_for\":\"" keep "\",\"severity\":\"" sev "\",\"annotations\":{\"summary\":\"" summary "\"}}"
#define RULE(name, fig, op, thr, forv, sev, summary) RULEK(name, fig, op, thr, forv, "0s", sev, summary)
/* Rules on events that come and go from one poll to the next (refused
 * writes, delayed fsyncs, evictions, rejected connections) keep firing for
 * 5 minutes after the last one, so a burst is one alert, not one per poll. */

const char alerts_builtin_json[] =
    "["
    RULE("RedisDown", "up", "==", "0", "30s", "critical", "{{ $target }} is down: the agent cannot poll it")
    "," RULEK("RedisWritesRefusedMisconf", "derived.errors.misconf_errors_per_second", ">", "0", "0s", "5m", "critical",
             "{{ $target }} refuses writes with MISCONF ({{ $value }}/s): the last background save failed "
             "and stop-writes-on-bgsave-error is on")
    "," RULEK("RedisWritesRefusedOOM", "derived.errors.oom_errors_per_second", ">", "0", "0s", "5m", "critical",
             "{{ $target }} refuses writes with OOM ({{ $value }}/s): used memory reached maxmemory")
    "," RULEK("RedisWritesRefusedReadonly", "errorstat.READONLY", ">", "0", "0s", "5m", "warning",
             "{{ $target }} refuses writes with READONLY ({{ $value }}/s): clients write to a replica")
    "," RULEK("RedisWritesRefusedNoreplicas", "errorstat.NOREPLICAS", ">", "0", "0s", "5m", "critical",
             "{{ $target }} refuses writes with NOREPLICAS ({{ $value }}/s): fewer good replicas than "
             "min-replicas-to-write")
    "," RULEK("RedisWritesRejected", "derived.errors.writes_refused_per_second", ">", "0", "1m", "5m", "warning",
             "{{ $target }} rejects write calls ({{ $value }}/s)")
    "," RULE("RedisBgsaveFailed", "info.persistence.rdb_last_bgsave_status", "==", "0", "0s", "critical",
             "{{ $target }}: the last background save (BGSAVE) failed")
    "," RULE("RedisAofWriteFailed", "derived.aof.last_write_ok", "==", "0", "0s", "critical",
             "{{ $target }}: the last write to the AOF failed")
    "," RULE("RedisAofRewriteFailed", "derived.aof.last_rewrite_ok", "==", "0", "0s", "warning",
             "{{ $target }}: the last AOF rewrite failed")
    "," RULEK("RedisAofFsyncDelayed", "derived.aof.delayed_fsyncs_last_interval", ">", "0", "0s", "5m", "warning",
             "{{ $target }}: {{ $value }} AOF fsyncs delayed by a slow disk in the last interval")
    "," RULE("RedisPersistenceOff", "computed.persistence_off", "==", "1", "5m", "warning",
             "{{ $target }} is a master holding keys with neither AOF nor save points")
    "," RULE("RedisUnsavedWrites", "computed.save_overdue_seconds", ">", "300", "0s", "warning",
             "{{ $target }}: changes have waited {{ $value }}s longer than the save policy allows")
    "," RULE("RedisMemoryHigh", "computed.used_memory_ratio_evicting", ">", "0.9", "5m", "warning",
             "{{ $target }} uses {{ $value }} of maxmemory (keys get evicted)")
    "," RULE("RedisMemoryHighNoeviction", "computed.used_memory_ratio_noeviction", ">", "0.9", "2m", "critical",
             "{{ $target }} uses {{ $value }} of maxmemory under noeviction: writes will fail with OOM")
    "," RULEK("RedisKeysEvicted", "derived.throughput.evicted_keys_per_second", ">", "0", "5m", "5m", "warning",
             "{{ $target }} evicts {{ $value }} keys/s")
    "," RULE("RedisFragmentation", "derived.memory.fragmentation_problem", "==", "1", "30m", "warning",
             "{{ $target }}: memory fragmentation is high by MEMORY DOCTOR's rule")
    "," RULE("RedisMainThreadBusy", "derived.cpu.main_thread_ratio", ">", "0.9", "5m", "warning",
             "{{ $target }}: the main thread uses {{ $value }} of a core")
    "," RULE("RedisSlowFork", "computed.fork_seconds_per_gigabyte_over_10ms", ">", "0.1", "0s", "warning",
             "{{ $target }}: the latest fork took {{ $value }}s per GB of RSS")
    "," RULE("RedisReplicaLag", "derived.replication.max_replica_lag_bytes", ">", "10485760", "1m", "warning",
             "{{ $target }}: a replica lags {{ $value }} bytes behind")
    "," RULE("RedisMasterLinkDown", "computed.master_link_down", "==", "1", "1m", "critical",
             "{{ $target }}: the link to its master is down")
    "," RULE("RedisNoGoodReplicas", "computed.good_replicas_missing", ">", "0", "1m", "critical",
             "{{ $target }}: {{ $value }} fewer good replicas than min-replicas-to-write: writes are refused")
    "," RULEK("RedisRejectedConnections", "increase(info.stats.rejected_connections)", ">", "0", "0s", "5m", "warning",
             "{{ $target }} rejected {{ $value }} connections (maxclients) in the last interval")
    ",{\"name\":\"RedisWriteThroughputDrop\",\"figure\":\"derived.throughput.write_commands_per_second\","
    "\"drop_below\":0.5,\"baseline\":\"1h\",\"for\":\"5m\",\"severity\":\"warning\","
    "\"annotations\":{\"summary\":\"{{ $target }}: write commands fell to {{ $value }}/s, under half of their "
    "baseline\"}}"
    "]";
