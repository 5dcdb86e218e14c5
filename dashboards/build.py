#!/usr/bin/env python3
"""Writes the two Grafana dashboards (redpulse-fleet.json and
redpulse-write-path.json) next to this file. The JSON files are what users
import; this script is how they are written, so every panel follows the same
rules (datasource variable, job/target matchers, $__rate_interval, units,
descriptions). `build.py --check` fails when the committed JSON differs from
what it would write. Run it after editing, then tests/dashboards/lint.py."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"
FLEET_UID = "redpulse-fleet"
WRITE_UID = "redpulse-write-path"


def sel(*extra):
    """The label matchers every selector carries, plus `extra`."""
    return "{" + ",".join(['job=~"$job"', 'target=~"$target"'] + list(extra)) + "}"


def rate(metric, *extra, fn="rate"):
    return "%s(%s%s[%s])" % (fn, metric, sel(*extra), RI)


def tgt(ref, expr, legend="", instant=False, fmt=None):
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto",
         "range": not instant, "instant": instant}
    if fmt:
        t["format"] = fmt
    return t


OK_MAP = [{"type": "value", "options": {
    "0": {"text": "FAILED", "color": "red", "index": 0},
    "1": {"text": "ok", "color": "green", "index": 1}}}]
UP_MAP = [{"type": "value", "options": {
    "0": {"text": "DOWN", "color": "red", "index": 0},
    "1": {"text": "up", "color": "green", "index": 1}}}]
ONOFF_MAP = [{"type": "value", "options": {
    "0": {"text": "off", "color": "text", "index": 0},
    "1": {"text": "on", "color": "blue", "index": 1}}}]


def override_ref(ref, **props):
    """Field properties for the series of one query (refId)."""
    return {"matcher": {"id": "byFrameRefID", "options": ref},
            "properties": [{"id": k, "value": v} for k, v in props.items()]}


def override_name(name, **props):
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": k, "value": v} for k, v in props.items()]}


class Layout:
    """Places panels left to right in rows of 24 units."""

    def __init__(self):
        self.x = self.y = 0
        self.row_h = 0
        self.next_id = 1
        self.panels = []

    def row(self, title):
        self.newline()
        self.panels.append({"type": "row", "title": title, "id": self._id(), "collapsed": False,
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.y += 1

    def newline(self):
        if self.x:
            self.y += self.row_h
        self.x = 0
        self.row_h = 0

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def add(self, p, w, h):
        if self.x + w > 24:
            self.newline()
        p["id"] = self._id()
        p["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(p)


def panel(kind, title, desc, targets, unit, overrides=(), mappings=None, thresholds=None, options=None,
          custom=None, transformations=None, decimals=None, min_=None, links=None):
    defaults = {"unit": unit}
    if mappings:
        defaults["mappings"] = mappings
    if thresholds:
        defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
    if custom:
        defaults["custom"] = custom
    if decimals is not None:
        defaults["decimals"] = decimals
    if min_ is not None:
        defaults["min"] = min_
    if links:
        defaults["links"] = links
    # transparent, repeatDirection, options and transformations are
    # Grafana's defaults, written out because @grafana/schema requires them
    return {"type": kind, "title": title, "description": desc, "datasource": DS, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": list(overrides)}, "options": options or {},
            "transformations": transformations or [], "transparent": False, "repeatDirection": "h"}


def ts(title, desc, targets, unit, **kw):
    kw.setdefault("custom", {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                             "spanNulls": False})
    kw.setdefault("options", {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                              "tooltip": {"mode": "multi", "sort": "desc"}})
    return panel("timeseries", title, desc, targets, unit, **kw)


def stat(title, desc, targets, unit, **kw):
    kw.setdefault("options", {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                              "colorMode": "value", "graphMode": "area", "textMode": "auto", "justifyMode": "auto",
                              "orientation": "auto"})
    return panel("stat", title, desc, targets, unit, **kw)


def bars(title, desc, targets, unit, **kw):
    kw.setdefault("options", {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                              "displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True})
    return panel("bargauge", title, desc, targets, unit, **kw)


def table(title, desc, targets, unit, hide=(), rename=None, **kw):
    excl = {k: True for k in ["Time", "__name__", "instance"] + list(hide)}
    kw.setdefault("transformations", [{"id": "merge", "options": {}},
                                      {"id": "organize", "options": {"excludeByName": excl,
                                                                     "renameByName": rename or {}}}])
    kw.setdefault("options", {"showHeader": True, "footer": {"show": False}})
    return panel("table", title, desc, targets, unit, **kw)


def variables(multi_target):
    q_job = "label_values(redis_up, job)"
    q_target = 'label_values(redis_up{job=~"$job"}, target)'
    target_all = {"allValue": ".+"} if multi_target else {}
    return [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "hide": 0, "refresh": 1, "regex": "", "options": []},
        {"name": "job", "label": "Job", "type": "query", "datasource": DS, "query": q_job, "definition": q_job,
         "refresh": 2, "multi": True, "includeAll": True, "allValue": ".+", "hide": 0,
         "sort": 1, "regex": "", "options": []},
        {"name": "target", "label": "Instance (target)", "type": "query", "datasource": DS, "query": q_target,
         "definition": q_target, "refresh": 2, "multi": multi_target, "includeAll": multi_target,
         "hide": 0, "sort": 1, "regex": "", "options": [], **target_all},
        # the instance's own configured labels (env, namespace ...): any of
        # them can filter every query of the dashboard
        {"name": "filters", "label": "Labels", "type": "adhoc", "datasource": DS, "filters": [], "hide": 0},
    ]


def dashboard(uid, title, desc, panels, multi_target):
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["redpulse", "redis"],
        "editable": False,
        "graphTooltip": 1,
        "style": "dark",
        "schemaVersion": 36,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "refresh": "30s",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard", "showIn": 0}]},
        # to the other redpulse dashboard, keeping time range and variables
        "links": [{"title": "redpulse", "type": "dashboards", "tags": ["redpulse"], "asDropdown": False,
                   "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "", "url": ""}],
        "templating": {"list": variables(multi_target)},
        "panels": panels,
    }


WRITE_LINK = [{"title": "Write path of ${__data.fields.target}",
               "url": "/d/%s/redpulse-write-path?${__url_time_range}&${datasource:queryparam}&${job:queryparam}"
                      "&var-target=${__data.fields.target}" % WRITE_UID}]


def fleet():
    L = Layout()
    L.row("Overview")
    L.add(stat("Instances up", "Redis instances whose last poll by redpulse succeeded. Bad: fewer than you run; "
               "look at 'Instances down' and the agent's log for the reason (redpulse_poll_errors_total).",
               [tgt("A", "sum(max by (target) (redis_up%s))" % sel())], "short",
               thresholds=[{"color": "blue", "value": None}]), 4, 4)
    L.add(stat("Instances down", "Instances redpulse cannot poll (redis_up 0). Bad: anything above 0; the reason is "
               "in redpulse_last_poll_outcome (connect_refused, timeout, auth ...). Fix the server or the address.",
               [tgt("A", "sum(1 - max by (target) (redis_up%s))" % sel())], "short",
               thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]), 4, 4)
    L.add(stat("Failed background saves", "Instances whose last BGSAVE failed. Bad: above 0; with "
               "stop-writes-on-bgsave-error on they refuse every write (MISCONF). Check disk space and "
               "permissions of the RDB directory in the Redis log.",
               [tgt("A", "sum(1 - redis_rdb_last_bgsave_status%s)" % sel())], "short",
               thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]), 4, 4)
    L.add(stat("Refused writes/s", "Write commands refused per second over all selected instances (rejected "
               "write calls). Bad: above 0 means clients lose writes; see 'Refused writes/s by reason'.",
               [tgt("A", "sum(avg_over_time(redis_writes_refused_per_second%s[%s]))" % (sel(), RI))], "ops",
               thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 0.001}]), 4, 4)
    L.add(stat("Commands/s, all instances", "Commands per second over all selected instances. Bad: a sudden drop with no drop "
               "in client traffic (a stalled server) or a jump you did not plan for.",
               [tgt("A", "sum(%s)" % rate("redis_commands_processed_total"))], "ops",
               thresholds=[{"color": "blue", "value": None}]), 4, 4)
    L.add(stat("Write commands/s, all instances", "Write commands per second over all selected instances (the server's own "
               "COMMAND flags). Bad: above what your disks sustain with your appendfsync policy; watch "
               "delayed fsyncs on the write-path dashboard.",
               [tgt("A", "sum(target:redis_write_commands:rate1m%s)" % sel())], "ops",
               thresholds=[{"color": "blue", "value": None}]), 4, 4)

    L.add(table("Instances", "One row per instance: role, version, uptime, whether redpulse can poll it and how its "
                "last poll ended. Bad: DOWN (the last poll says why: connect_refused, timeout, auth ...), or an "
                "uptime that keeps restarting (a crash loop). Click a target for its write path.",
                [tgt("A", "redis_uptime_in_seconds%s * on (job, target) group_left (role, redis_version) "
                          "redis_instance_info%s" % (sel(), sel()), instant=True, fmt="table"),
                 tgt("B", "redis_up%s" % sel(), instant=True, fmt="table"),
                 tgt("C", "redpulse_last_poll_outcome%s" % sel(), instant=True, fmt="table")],
                "short", hide=["Value #C"], rename={"Value #A": "uptime", "Value #B": "up", "reason": "last poll"},
                overrides=[override_name("Value #A", unit="s"),
                           override_name("Value #B", unit="short", mappings=UP_MAP,
                                         custom={"displayMode": "color-background"}),
                           override_name("target", links=WRITE_LINK)]), 24, 7)

    firing = "redpulse_alerts%s == 1" % sel('alertstate="firing"')
    L.add(stat("Alerts firing", "redpulse's own alerts firing now over the selected instances (its built-in "
               "write-path rules and yours, as the agent evaluates them every poll). Bad: above 0; the "
               "'Firing alerts' table says which. No data means none firing: the agent's own /metrics (pattern 1 "
               "of prometheus.yml) carries every instance's alerts, /scrape?target= its target's.",
               [tgt("A", "sum(%s)" % firing)], "short",
               thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]), 6, 7)
    L.add(table("Firing alerts", "One row per alert redpulse fires now: rule, instance, severity. Bad: any row; "
                "act on critical first, the rule's description in docs/alerts.md (or the agent's "
                "/api/v1/alerts) names the cause and the setting to check, e.g. RedisBgsaveFailed: disk space "
                "and permissions of the RDB directory.",
                [tgt("A", firing, instant=True, fmt="table")],
                "short", hide=["Value", "alertstate"],
                overrides=[override_name("severity", custom={"displayMode": "color-text"}, mappings=[
                    {"type": "value", "options": {
                        "critical": {"text": "critical", "color": "red", "index": 0},
                        "warning": {"text": "warning", "color": "orange", "index": 1},
                        "info": {"text": "info", "color": "blue", "index": 2}}}]),
                           override_name("target", links=WRITE_LINK)]), 18, 7)

    L.row("Throughput and errors")
    L.add(ts("Commands/s", "Commands processed per second per instance. Bad: a drop to zero while clients are "
             "connected (a blocked main thread: slow fork, big KEYS/DEL) or a plateau at the main thread's limit.",
             [tgt("A", "sum by (job, target) (%s)" % rate("redis_commands_processed_total"), "{{target}}")],
             "ops"), 12, 8)
    L.add(ts("Write commands/s", "Write commands per second per instance (from the server's COMMAND flags). Bad: "
             "more than the persistence settings can absorb; with appendfsync always each write waits for "
             "a disk flush.",
             [tgt("A", "sum by (job, target) (target:redis_write_commands:rate1m%s)" % sel(), "{{target}}")],
             "ops"), 12, 8)
    L.add(ts("Refused writes/s by reason", "Error replies that refuse writes, by error prefix: MISCONF (a failed "
             "save with stop-writes-on-bgsave-error), OOM (maxmemory reached), READONLY (a replica), NOREPLICAS "
             "(min-replicas-to-write). Bad: anything above 0; fix the cause named by the prefix.",
             [tgt("A", "sum by (job, target, err) (target_err:redis_refused_writes:rate1m%s)" % sel(),
                  "{{target}} {{err}}"),
              tgt("B", "sum by (job, target) (avg_over_time(redis_writes_refused_per_second%s[%s]))" % (sel(), RI),
                  "{{target}} rejected write calls")], "ops"), 12, 8)
    L.add(ts("Average command latency", "Server-side time per command, all commands. Bad: growing under the "
             "same load (slow commands, swapping, a busy disk with appendfsync always); find the command on "
             "the write-path dashboard.",
             [tgt("A", "sum by (job, target) (%s) / (sum by (job, target) (%s) > 0)"
                  % (rate("redis_commands_duration_seconds_total"), rate("redis_commands_total")), "{{target}}")],
             "s"), 12, 8)
    L.add(ts("Evictions and rejected connections", "Keys evicted at maxmemory and connections refused at "
             "maxclients, per second. Bad: evictions you did not design for (raise maxmemory or shard); any "
             "rejected connection (raise maxclients or fix a connection leak).",
             [tgt("A", "sum by (job, target) (%s)" % rate("redis_evicted_keys_total"), "{{target}} evicted"),
              tgt("B", "sum by (job, target) (%s)" % rate("redis_rejected_connections_total"),
                  "{{target}} rejected connections")], "ops"), 24, 8)

    L.row("Memory")
    L.add(ts("Memory used / maxmemory", "used_memory as a share of maxmemory, only for instances with a "
             "maxmemory set. Bad: near 100%: writes start to evict or fail with OOM, per maxmemory-policy.",
             [tgt("A", "target:redis_memory_used:ratio%s" % sel(), "{{target}}")], "percentunit", min_=0), 8, 8)
    L.add(ts("Fragmentation ratio", "RSS divided by used_memory. Bad: above 1.4 together with a large "
             "'Fragmentation bytes' (MEMORY DOCTOR's rule); a high ratio on a few MB is noise. Enable "
             "activedefrag or restart the instance in a quiet hour.",
             [tgt("A", "redis_mem_fragmentation_ratio%s" % sel(), "{{target}}")], "none", decimals=2), 8, 8)
    L.add(ts("Fragmentation bytes", "RSS minus used_memory: memory the allocator holds but the data does not "
             "use. Bad: hundreds of MB or more next to a ratio above 1.4; it also makes forks heavier.",
             [tgt("A", "redis_mem_fragmentation_bytes%s" % sel(), "{{target}}")], "bytes"), 8, 8)

    L.row("Persistence")
    L.add(table("Persistence health", "Per instance: last BGSAVE, last AOF write and last AOF rewrite status, "
                "seconds since the last successful save and changes since it. Bad: any FAILED (check disk "
                "space and the Redis log), or a save age far above your save interval with changes piling up.",
                [tgt("A", "redis_rdb_last_bgsave_status%s" % sel(), instant=True, fmt="table"),
                 tgt("B", "redis_aof_enabled%s" % sel(), instant=True, fmt="table"),
                 tgt("C", "redis_aof_last_write_status%s" % sel(), instant=True, fmt="table"),
                 tgt("D", "redis_aof_last_bgrewrite_status%s" % sel(), instant=True, fmt="table"),
                 tgt("E", "redis_rdb_seconds_since_last_save%s" % sel(), instant=True, fmt="table"),
                 tgt("F", "redis_rdb_changes_since_last_save%s" % sel(), instant=True, fmt="table")],
                "short",
                rename={"Value #A": "last bgsave", "Value #B": "AOF", "Value #C": "last AOF write",
                        "Value #D": "last AOF rewrite", "Value #E": "since last save",
                        "Value #F": "changes since save"},
                overrides=[override_name("Value #A", mappings=OK_MAP, custom={"displayMode": "color-background"}),
                           override_name("Value #B", mappings=ONOFF_MAP),
                           override_name("Value #C", mappings=OK_MAP, custom={"displayMode": "color-background"}),
                           override_name("Value #D", mappings=OK_MAP, custom={"displayMode": "color-background"}),
                           override_name("Value #E", unit="s"),
                           override_name("Value #F", unit="short"),
                           override_name("target", links=WRITE_LINK)]), 24, 7)

    L.row("Replication, CPU and forks")
    L.add(ts("Replication lag", "Bytes each replica is behind its master's offset. Bad: growing, or more than "
             "the replication backlog (a reconnect then needs a full resync): check the replica's network and "
             "CPU, or raise repl-backlog-size.",
             [tgt("A", "max by (job, target, slave_ip, slave_port) (redis_connected_slave_lag_bytes%s)" % sel(),
                  "{{target}} -> {{slave_ip}}:{{slave_port}}")], "bytes"), 8, 8)
    L.add(stat("Replica link to master", "For replicas: whether the link to the master is up. Bad: DOWN; the "
               "replica serves stale data and will need a resync. Check the master's reachability and auth.",
               [tgt("A", "redis_master_link_up%s" % sel(), "{{target}}")], "short", mappings=UP_MAP,
               thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}]), 4, 8)
    L.add(bars("Top 10 main-thread CPU", "Share of one core used by each instance's main thread (commands run "
               "there). Bad: near 100%: the instance cannot take more load; shard or move heavy commands off.",
               [tgt("A", "topk(10, target:redis_cpu_main_thread_seconds:rate1m%s)" % sel(), "{{target}}", instant=True)],
               "percentunit", min_=0,
               thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.7},
                           {"color": "red", "value": 0.9}]), 6, 8)
    L.add(bars("Top 10 slowest forks", "Duration of each instance's latest fork (BGSAVE, AOF rewrite, full "
               "sync); the main thread is blocked for all of it. Bad: more than ~20 ms per GB of RSS: "
               "transparent huge pages or a slow VM; see fork time per GB on the write-path dashboard.",
               [tgt("A", "topk(10, redis_latest_fork_seconds%s)" % sel(), "{{target}}", instant=True)], "s",
               thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.1},
                           {"color": "red", "value": 0.5}]), 6, 8)
    return dashboard(FLEET_UID, "redpulse / Fleet",
                     "Every Redis instance polled by redpulse at a glance: who is down, who refuses writes, "
                     "whose saves fail, memory, replication, CPU and forks.", L.panels, True)


def write_path():
    L = Layout()
    L.row("Rate: write load")
    L.add(ts("Write commands/s against all commands/s", "All commands and write commands per second. Bad: "
             "writes approaching what the disk sustains under your appendfsync policy (watch delayed fsyncs "
             "below), or a drop to zero while clients still send (a blocked main thread).",
             [tgt("A", "sum by (job, target) (%s)" % rate("redis_commands_processed_total"), "all"),
              tgt("B", "sum by (job, target) (target:redis_write_commands:rate1m%s)" % sel(), "write")],
             "ops"), 12, 8)
    L.add(ts("Calls/s per write command", "Calls per second of each write command. Bad: an unexpected command "
             "dominating (a client in a loop), or big multi-key writes that each cost a long fsync.",
             [tgt("A", "sum by (cmd) (target_cmd:redis_write_commands:rate1m%s)" % sel(), "{{cmd}}")], "ops"),
          12, 8)

    L.row("Errors: refused and failed writes")
    L.add(ts("Refused writes/s by error", "Error replies that refuse writes, by prefix (MISCONF: a failed save "
             "with stop-writes-on-bgsave-error; OOM: maxmemory; READONLY: a replica; NOREPLICAS: "
             "min-replicas-to-write), and rejected write calls. Bad: anything above 0; the prefix names the fix.",
             [tgt("A", "sum by (err) (target_err:redis_refused_writes:rate1m%s)" % sel(), "{{err}}"),
              tgt("B", "sum by (job, target) (avg_over_time(redis_writes_refused_per_second%s[%s]))" % (sel(), RI),
                  "rejected write calls")], "ops"), 12, 8)
    L.add(ts("Rejected and failed calls/s", "Calls rejected before execution (wrong arguments, ACL, OOM, "
             "MISCONF) and calls that failed while executing, per command. Bad: above 0 for a write command "
             "means lost writes; compare with the error prefixes on the left.",
             [tgt("A", "sum by (cmd) (%s)" % rate("redis_commands_rejected_calls_total"), "rejected {{cmd}}"),
              tgt("B", "sum by (job, target) (%s)" % rate("redis_commands_failed_calls_total"), "failed (all commands)")],
             "ops"), 12, 8)

    L.row("Duration: time per write")
    L.add(ts("Average time per write call", "Server-side microseconds per call of each write command (the "
             "network and the wait for a fsync with appendfsync always are not in it). Bad: rising under the "
             "same load: bigger values, slower data structures, or a main thread starved of CPU.",
             [tgt("A", "sum by (cmd) (target_cmd:redis_write_commands_duration_seconds:rate1m%s) / "
                       "(sum by (cmd) (target_cmd:redis_write_commands:rate1m%s) > 0)" % (sel(), sel()),
                  "{{cmd}}")], "s"), 12, 8)
    L.add(ts("Server latency percentiles of write commands", "p99 and p99.9 per write command as the server "
             "computes them (INFO latencystats, cumulative since start or CONFIG RESETSTAT). Bad: a p99.9 far "
             "above p99 (stalls: forks, fsync, big keys); look at LATENCY spikes and fork time below.",
             [tgt("A", 'redis_latency_percentiles_seconds%s and on (job, target, cmd) '
                       'redis_command_calls_per_second%s' % (sel('quantile=~"0.99|0.999"'), sel('class="write"')),
                  "{{cmd}} p{{quantile}}")], "s"), 12, 8)

    L.row("AOF")
    L.add(stat("AOF status", "AOF on or off, last write, last rewrite status, and a rewrite in progress. Bad: "
               "FAILED on a write (the disk is full or failing: Redis refuses writes until it recovers) or on "
               "a rewrite (check disk space and the Redis log).",
               [tgt("A", "redis_aof_enabled%s" % sel(), "AOF"),
                tgt("B", "redis_aof_last_write_status%s" % sel(), "last write"),
                tgt("C", "redis_aof_last_bgrewrite_status%s" % sel(), "last rewrite"),
                tgt("D", "redis_aof_rewrite_in_progress%s" % sel(), "rewriting")], "short",
               overrides=[override_ref("A", mappings=ONOFF_MAP), override_ref("B", mappings=OK_MAP),
                          override_ref("C", mappings=OK_MAP), override_ref("D", mappings=ONOFF_MAP)],
               options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "none", "textMode": "value_and_name",
                        "justifyMode": "auto", "orientation": "horizontal"}), 6, 8)
    L.add(ts("Delayed and pending fsyncs", "Fsyncs delayed because the previous one took over 2 s (appendfsync "
             "everysec: a write waited for the disk), and fsyncs queued to the background thread. Bad: any "
             "delayed fsync; move the AOF to a faster disk, or set no-appendfsync-on-rewrite.",
             [tgt("A", "sum by (job, target) (%s)" % rate("redis_aof_delayed_fsync_total", fn="increase"),
                  "delayed fsyncs"),
              tgt("B", "redis_aof_pending_bio_fsync%s" % sel(), "pending background fsync")], "short"), 9, 8)
    L.add(ts("AOF buffer", "Bytes in the AOF buffer waiting to be written. Bad: growing steadily: the disk "
             "does not keep up with the write rate.",
             [tgt("A", "redis_aof_buffer_length%s" % sel(), "aof_buffer_length"),
              tgt("B", "redis_mem_aof_buffer_bytes%s" % sel(), "memory of AOF buffers")], "bytes"), 9, 8)
    L.add(ts("AOF size and growth", "Current AOF size, its size at the last rewrite, and growth per second "
             "(right axis). Bad: growth that outruns auto-aof-rewrite-percentage, or a size near the free disk.",
             [tgt("A", "redis_aof_current_size_bytes%s" % sel(), "current size"),
              tgt("B", "redis_aof_base_size_bytes%s" % sel(), "size at last rewrite"),
              tgt("C", "avg_over_time(redis_aof_growth_bytes_per_second%s[%s])" % (sel(), RI), "growth/s")],
             "bytes", overrides=[override_ref("C", unit="Bps", custom={"axisPlacement": "right"})]), 8, 8)
    L.add(ts("AOF rewrites", "Rewrites started and the duration of the last and the current one. Bad: rewrites "
             "back to back (auto-aof-rewrite-percentage too low) or lasting minutes (disk too slow, dataset "
             "too big for one instance).",
             [tgt("A", "sum by (job, target) (%s)" % rate("redis_aof_rewrites_total", fn="increase"), "rewrites"),
              tgt("B", "redis_aof_last_rewrite_duration_seconds%s" % sel(), "last duration"),
              tgt("C", "clamp_min(redis_aof_current_rewrite_duration_seconds%s, 0)" % sel(), "current duration")],
             "s", overrides=[override_ref("A", unit="short", custom={"axisPlacement": "right"})]), 8, 8)
    L.add(ts("LATENCY LATEST spikes", "Latest and longest spike per event from LATENCY LATEST (aof-fsync-always, "
             "aof-write, fork, command ...), where the instance's latency_interval collects it. Bad: aof-* "
             "spikes (slow disk) or fork spikes (large RSS, transparent huge pages).",
             [tgt("A", "redis_latency_spike_duration_seconds%s" % sel(), "{{event_name}} latest"),
              tgt("B", "redis_latency_spike_max_duration_seconds%s" % sel(), "{{event_name}} max")], "s"), 8, 8)

    L.row("RDB and fork")
    L.add(ts("Age of the last save against changes since it", "Seconds since the last successful save (left) "
             "and writes not yet in a snapshot (right). Bad: the age keeps growing while changes pile up: saves "
             "fail or the save points never trigger; that is the data a crash loses.",
             [tgt("A", "redis_rdb_seconds_since_last_save%s" % sel(), "since last save"),
              tgt("B", "redis_rdb_changes_since_last_save%s" % sel(), "changes since save")], "s",
             overrides=[override_ref("B", unit="short", custom={"axisPlacement": "right"})]), 8, 8)
    L.add(ts("BGSAVE", "Whether a BGSAVE runs, and the duration of the last and the current one. Bad: saves "
             "that take longer than the interval between them (always saving: constant fork and copy-on-write "
             "cost).",
             [tgt("A", "redis_rdb_bgsave_in_progress%s" % sel(), "in progress"),
              tgt("B", "redis_rdb_last_bgsave_duration_seconds%s" % sel(), "last duration"),
              tgt("C", "clamp_min(redis_rdb_current_bgsave_duration_seconds%s, 0)" % sel(), "current duration")],
             "s", overrides=[override_ref("A", unit="short", mappings=ONOFF_MAP,
                                          custom={"axisPlacement": "right"})]), 8, 8)
    L.add(ts("Fork time and fork time per GB", "Duration of the latest fork and that time per GB of RSS; the "
             "main thread is blocked for all of it. Bad: above ~20 ms per GB: disable transparent huge pages, "
             "or move off a hypervisor with slow page-table copies.",
             [tgt("A", "redis_latest_fork_seconds%s" % sel(), "latest fork"),
              tgt("B", "redis_latest_fork_seconds_per_rss_gigabyte%s" % sel(), "per GB of RSS")], "s"), 8, 8)
    L.add(ts("Copy-on-write share of RSS", "Memory copied while the last RDB save and the last AOF rewrite "
             "child ran, as a share of RSS. Bad: above ~30%: a write-heavy load during saves; the host needs "
             "that much memory free or the OOM killer comes.",
             [tgt("A", "redis_rdb_last_cow_rss_ratio%s" % sel(), "RDB child"),
              tgt("B", "redis_aof_last_cow_rss_ratio%s" % sel(), "AOF rewrite child")], "percentunit",
             min_=0), 8, 8)

    L.row("Saturation")
    L.add(ts("CPU: main thread and children", "Share of one core used by the main thread (commands), the "
             "whole server and finished fork children. Bad: main thread near 100% (the instance is saturated: "
             "shard it); heavy children CPU means saves and rewrites run all the time.",
             [tgt("A", "%s + %s" % (rate("redis_cpu_user_main_thread_seconds_total"),
                                    rate("redis_cpu_sys_main_thread_seconds_total")), "main thread"),
              tgt("B", "%s + %s" % (rate("redis_cpu_user_seconds_total"), rate("redis_cpu_sys_seconds_total")),
                  "server"),
              tgt("C", "%s + %s" % (rate("redis_cpu_user_children_seconds_total"),
                                    rate("redis_cpu_sys_children_seconds_total")), "children")],
             "percentunit", min_=0), 8, 8)
    L.add(ts("Memory: used, RSS, peak and max", "used_memory, resident set size, the peak, and maxmemory where "
             "set. Bad: used near max (evictions or OOM errors), or RSS far above used (fragmentation).",
             [tgt("A", "redis_memory_used_bytes%s" % sel(), "used"),
              tgt("B", "redis_memory_used_rss_bytes%s" % sel(), "RSS"),
              tgt("C", "redis_memory_used_peak_bytes%s" % sel(), "peak"),
              tgt("D", "redis_memory_max_bytes%s > 0" % sel(), "maxmemory")], "bytes"), 8, 8)
    L.add(ts("Client output buffers", "The largest client output buffer seen recently, and the memory of "
             "replica and normal client buffers. Bad: near client-output-buffer-limit (replica 256mb by "
             "default): the client is disconnected and a replica resyncs; fix the slow reader or raise the "
             "limit. Redis 7.2+ also counts the disconnections (not in 7.0's INFO, so not drawn here).",
             [tgt("A", "redis_client_recent_max_output_buffer_bytes%s" % sel(), "largest output buffer"),
              tgt("B", "redis_mem_clients_slaves%s" % sel(), "replica buffers"),
              tgt("C", "redis_mem_clients_normal%s" % sel(), "normal client buffers")], "bytes"), 8, 8)
    L.add(ts("Replication lag", "Bytes each replica of this instance is behind. Bad: growing, or more than "
             "repl-backlog-size: a reconnect then needs a full resync (a fork and a full copy).",
             [tgt("A", "redis_connected_slave_lag_bytes%s" % sel(), "{{slave_ip}}:{{slave_port}}"),
              tgt("B", "redis_replication_backlog_bytes%s" % sel(), "backlog size")], "bytes"), 12, 8)
    L.add(ts("Evicted keys and rejected connections", "Keys evicted at maxmemory and connections refused at "
             "maxclients, per second. Bad: evictions you did not plan for, any rejected connection.",
             [tgt("A", "sum by (job, target) (%s)" % rate("redis_evicted_keys_total"), "evicted keys"),
              tgt("B", "sum by (job, target) (%s)" % rate("redis_rejected_connections_total"),
                  "rejected connections")], "ops"), 12, 8)
    return dashboard(WRITE_UID, "redpulse / Write path",
                     "One Redis instance's write path, RED then USE: write rate, refused and failed writes, time "
                     "per write, AOF, RDB and fork cost, CPU, memory and replication.", L.panels, False)


def main():
    out = {"redpulse-fleet.json": fleet(), "redpulse-write-path.json": write_path()}
    check = "--check" in sys.argv[1:]
    bad = 0
    for name, d in out.items():
        text = json.dumps(d, indent=2, ensure_ascii=False) + "\n"
        path = os.path.join(HERE, name)
        if check:
            with open(path, encoding="utf-8") as f:
                if f.read() != text:
                    print("%s differs from what dashboards/build.py writes" % name)
                    bad = 1
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    return bad


if __name__ == "__main__":
    sys.exit(main())
