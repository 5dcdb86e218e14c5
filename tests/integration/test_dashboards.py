#!/usr/bin/env python3
"""The shipped dashboards and rules against a real Prometheus: it scrapes a
real redpulse with both patterns of dashboards/prometheus.yml (and loads the
rules that file names) while redpulse polls three real redis-servers: one
under write load with AOF `appendfsync always` and RDB saves every second,
one whose BGSAVE fails (a directory where its dump file goes) and which
therefore refuses writes (MISCONF), and a replica of the first. Every query
of every panel of both dashboards, with the variables substituted, returns
data (redpulse's own alerts, on the agent's /metrics only, in the job
of pattern 1); every rule evaluates without error; the bgsave-failure and
refused-writes alerts fire, in Prometheus and in the agent. The live /metrics also passes the linter's
metric check. DASHBOARDS_CAPTURE_OUT=PATH saves that /metrics (how
tests/dashboards/metrics-capture.prom is made)."""
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "dashboards"))
from harness import _LIVE, Agent, RedisServer, Tmp, free_port, wait_for  # noqa: E402
from loadgen import LoadGen  # noqa: E402
import lint  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DASH = os.path.join(ROOT, "dashboards")
NAMES = ["primary", "broken", "replica"]
JOBS = ["redpulse", "redis"]
RATE_INTERVAL = "4s"  # Grafana's $__rate_interval for a 1 s scrape: 4 x scrape interval


def panel_queries(path):
    """[(panel title, refId, expr, instant)] of a dashboard."""
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    out = []
    for p in d["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["refId"], t["expr"], bool(t.get("instant"))))
    return out


class RefusedWrites(threading.Thread):
    """Keeps trying to write to a server that refuses (MISCONF)."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.stopping, self.refused = server, threading.Event(), 0

    def run(self):
        c = self.server.client()
        while not self.stopping.wait(0.05):
            try:
                c.cmd("SET", "refused", "1")
            except RuntimeError as e:
                if str(e).startswith("MISCONF"):
                    self.refused += 1
        c.close()


class Dashboards(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        t = cls.tmp.path
        cls.started = time.monotonic()
        cls.primary = RedisServer(t, "primary", args=[
            "--appendonly", "yes", "--appendfsync", "always", "--save", "1 1", "--maxmemory", "200mb",
            "--latency-monitor-threshold", "1", "--enable-debug-command", "yes"])
        cls.broken = RedisServer(t, "broken", args=["--save", "3600 1"])
        cls.replica = RedisServer(t, "replica", args=["--replicaof", "127.0.0.1", str(cls.primary.port)])
        servers = [cls.primary, cls.broken, cls.replica]
        # a directory where the dump file goes: every BGSAVE fails at its rename
        os.makedirs(os.path.join(cls.broken.dir, "dump.rdb"))
        c = cls.broken.client()
        c.cmd("SET", "k", "v")
        c.cmd("BGSAVE")
        wait_for(lambda: c.info("persistence")["rdb_last_bgsave_status"] == "err", 10, what="bgsave to fail")
        c.close()
        cls.load = LoadGen(cls.primary.port, writes_per_sec=2000, reads_per_sec=500)
        cls.load.start()
        cls.refuser = RefusedWrites(cls.broken)
        cls.refuser.start()
        c = cls.primary.client()
        wait_for(lambda: c.info("replication").get("connected_slaves") == "1", 30, what="replica connected")
        rewrites = int(c.info("persistence")["aof_rewrites"])
        try:
            c.cmd("BGREWRITEAOF")  # done now, or scheduled after a running BGSAVE
        except RuntimeError as e:
            assert "already in progress" in str(e), e
        wait_for(lambda: int(c.info("persistence")["aof_rewrites"]) > rewrites
                 and c.info("persistence")["aof_rewrite_in_progress"] == "0", 30, what="an AOF rewrite")
        c.cmd("DEBUG", "SLEEP", "0.01")  # a LATENCY LATEST event for sure (threshold 1 ms)
        c.close()
        cls.agent = Agent(t, [{"name": n, "address": "127.0.0.1:%d" % s.port, "labels": {"env": "test"}}
                              for n, s in zip(NAMES, servers)],
                          defaults={"interval": "1s", "timeout": "500ms", "latency_interval": "1s",
                                    "config_interval": "1s", "latencystats_interval": "1s"})

        with open(os.path.join(DASH, "prometheus.yml")) as f:
            cfg = f.read()
        cfg = cfg.replace("scrape_interval: 15s", "scrape_interval: 1s\n  evaluation_interval: 1s")
        cfg = cfg.replace("REDPULSE", "127.0.0.1:%d" % cls.agent.port)
        cfg = cfg.replace('["INSTANCE_NAMES"]', json.dumps(NAMES))
        # patterns 1 and 2 here; pattern 3 (http_sd_configs) is integration_discovery's
        cfg, n = re.subn(r"\n  # Pattern 3:.*?# end of pattern 3\n", "\n", cfg, flags=re.S)
        assert n == 1, "prometheus.yml has no pattern 3 block"
        assert "rule_files:" in cfg and "rules/redpulse-alerts.yml" in cfg, "prometheus.yml does not load the rules"
        # the shipped rules as they are, with every `for` shortened to a second
        os.makedirs(os.path.join(t, "rules"))
        cls.rule_counts = {}
        for name in ("redpulse-recording.yml", "redpulse-alerts.yml"):
            with open(os.path.join(DASH, "rules", name)) as f:
                text = f.read()
            cls.rule_counts[name] = len(re.findall(r"^\s+- (?:alert|record): ", text, re.M))
            with open(os.path.join(t, "rules", name), "w") as f:
                f.write(re.sub(r"^(\s+for: )\S+$", r"\g<1>1s", text, flags=re.M))
        cls.prom_cfg = os.path.join(t, "prometheus.yml")  # rule_files are relative to it
        with open(cls.prom_cfg, "w") as f:
            f.write(cfg)
        p = subprocess.run(["promtool", "check", "config", cls.prom_cfg], capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        cls.port = free_port()
        cls.prom_log = open(os.path.join(t, "prometheus.log"), "w")
        cls.prom = subprocess.Popen(["prometheus", "--config.file", cls.prom_cfg,
                                     "--storage.tsdb.path", os.path.join(t, "tsdb"),
                                     "--web.listen-address", "127.0.0.1:%d" % cls.port],
                                    stdout=cls.prom_log, stderr=subprocess.STDOUT)
        _LIVE.append(cls.prom)
        wait_for(lambda: cls.api("/-/ready", raw=True) == 200, 30, step=0.2, what="prometheus ready")
        wait_for(lambda: len(cls.query("count by (job, target) (redis_up == 1)")) == 6, 30, step=0.5,
                 what="both jobs scraping the three instances")
        # the recording rules need two scrapes of the counters they rate
        wait_for(lambda: len(cls.query('count by (job) (target_err:redis_refused_writes:rate1m{target="broken"})'))
                 == 2, 30, step=0.5, what="refused writes recorded in both jobs")

    @classmethod
    def tearDownClass(cls):
        cls.prom.terminate()
        cls.prom.wait(20)
        cls.prom_log.close()
        cls.refuser.stopping.set()
        cls.load.stop()
        rc = cls.agent.stop()
        for s in (cls.replica, cls.primary, cls.broken):
            s.stop()
        cls.tmp.cleanup()
        print("integration_dashboards: %.1f s" % (time.monotonic() - cls.started), file=sys.stderr)
        assert rc == 0

    @classmethod
    def api(cls, path, raw=False):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (cls.port, path), timeout=10) as r:
            if raw:
                return r.status
            return json.loads(r.read())

    @classmethod
    def query(cls, expr, instant=True):
        if instant:
            d = cls.api("/api/v1/query?query=" + urllib.parse.quote(expr))
        else:
            now = time.time()
            d = cls.api("/api/v1/query_range?" + urllib.parse.urlencode(
                {"query": expr, "start": now - 30, "end": now, "step": "1"}))
        assert d["status"] == "success", d
        return d["data"]["result"]

    def substitute(self, expr, job, target):
        return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$job", job).replace("$target", target)

    def returns_data(self, expr, instant):
        """Non-empty result, waiting a little for rates over fresh series."""
        try:
            return wait_for(lambda: self.query(expr, instant), 15, step=0.5, what=expr)
        except AssertionError:
            return None

    def test_both_scrape_patterns(self):
        got = {(r["metric"]["job"], r["metric"]["target"]) for r in self.query("count by (job, target) (redis_up)")}
        self.assertEqual(got, {(j, n) for j in JOBS for n in NAMES})
        # pattern 1 copies target into instance; pattern 2 names the instance by its target
        for r in self.query("redis_up"):
            self.assertEqual(r["metric"]["instance"], r["metric"]["target"], r)

    def test_variables(self):
        """The variable queries: label_values(redis_up, job) and label_values(redis_up{job=~"$job"}, target)."""
        jobs = self.api("/api/v1/label/job/values?" + urllib.parse.urlencode({"match[]": "redis_up"}))["data"]
        self.assertEqual(sorted(jobs), sorted(JOBS))
        for job in JOBS:
            sel = 'redis_up{job=~"%s"}' % job
            targets = self.api("/api/v1/label/target/values?" + urllib.parse.urlencode({"match[]": sel}))["data"]
            self.assertEqual(sorted(targets), sorted(NAMES))

    def test_fleet_queries_return_data(self):
        queries = panel_queries(os.path.join(DASH, "redpulse-fleet.json"))
        self.assertGreaterEqual(len(queries), 25)
        everyone = "|".join(NAMES)  # what Grafana sends for several selected values
        # redpulse's own alerts are on the agent's /metrics (pattern 1, job
        # redpulse) and each target's on its /scrape?target= (pattern 2)
        self.assertTrue({("Alerts firing", "A"), ("Firing alerts", "A")} <= {(t, r) for t, r, _, _ in queries})
        for job in JOBS:
            for title, ref, expr, instant in queries:
                q = self.substitute(expr, job, everyone)
                with self.subTest(job=job, panel=title, ref=ref):
                    self.assertTrue(self.returns_data(q, instant), "no data: %s" % q)
        # the broken instance's failed BGSAVE and MISCONF refusals are in the
        # table, and for it only (others may show e.g. RedisSlowFork on a busy
        # machine), under both jobs
        expr = dict(((t, r), e) for t, r, e, _ in queries)[("Firing alerts", "A")]
        for job in JOBS:
            rows = self.query(self.substitute(expr, job, everyone))
            got = {(r["metric"]["alertname"], r["metric"]["target"], r["metric"]["severity"]) for r in rows}
            self.assertLessEqual({("RedisBgsaveFailed", "broken", "critical"),
                                  ("RedisWritesRefusedMisconf", "broken", "critical")}, got, job)
            for name, target, _ in got:
                if name in ("RedisBgsaveFailed", "RedisWritesRefusedMisconf"):
                    self.assertEqual(target, "broken", (job, got))

    def test_write_path_queries_return_data(self):
        """One instance at a time (single-select target): every query has data
        for the loaded primary, except refused writes by error, which only the
        broken instance has; that one must have data there."""
        queries = panel_queries(os.path.join(DASH, "redpulse-write-path.json"))
        self.assertGreaterEqual(len(queries), 40)
        only_broken = {("Refused writes/s by error", "A")}
        for job in JOBS:
            for title, ref, expr, instant in queries:
                target = "broken" if (title, ref) in only_broken else "primary"
                q = self.substitute(expr, job, target)
                with self.subTest(job=job, panel=title, ref=ref, target=target):
                    self.assertTrue(self.returns_data(q, instant), "no data: %s" % q)
        # the broken instance's refused writes carry the reason
        res = self.query(self.substitute(dict(((t, r), e) for t, r, e, _ in queries)
                                         [("Refused writes/s by error", "A")], "redpulse", "broken"))
        self.assertEqual({r["metric"]["err"] for r in res}, {"MISCONF"})
        self.assertGreater(float(res[0]["value"][1]), 0)

    def test_rules_evaluate_without_error(self):
        def evaluated():
            groups = self.api("/api/v1/rules")["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            return rules if all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None
        rules = wait_for(evaluated, 15, step=0.5, what="every rule evaluated")
        self.assertEqual(len(rules), sum(self.rule_counts.values()))
        for r in rules:
            self.assertEqual((r["name"], r["health"], r.get("lastError", "")), (r["name"], "ok", ""))
        # and every recording rule has data, in both jobs
        for r in rules:
            if r["type"] == "recording":
                got = {x["metric"]["job"] for x in self.query(r["name"])}
                self.assertEqual(got, set(JOBS), r["name"])

    def test_bgsave_failure_and_refused_writes_alerts_fire(self):
        def firing():
            alerts = self.api("/api/v1/alerts")["data"]["alerts"]
            got = {(a["labels"]["alertname"], a["labels"]["job"]) for a in alerts
                   if a["state"] == "firing" and a["labels"].get("target") == "broken"}
            want = {(n, j) for n in ("RedisBgsaveFailed", "RedisWritesRefused") for j in JOBS}
            return alerts if want <= got else None
        alerts = wait_for(firing, 30, step=0.5, what="RedisBgsaveFailed and RedisWritesRefused firing for broken")
        for a in alerts:
            if a["labels"]["alertname"] == "RedisWritesRefused" and a["state"] == "firing":
                self.assertEqual(a["labels"]["err"], "MISCONF")
                self.assertIn("broken refuses writes with MISCONF", a["annotations"]["description"])
        # the healthy instances raise neither, and nothing is down
        for a in alerts:
            self.assertNotIn(a["labels"]["alertname"], ("RedisDown", "RedisMasterLinkDown"), a)
            if a["labels"]["alertname"] in ("RedisBgsaveFailed", "RedisWritesRefused"):
                self.assertEqual(a["labels"]["target"], "broken", a)
        self.assertGreater(self.refuser.refused, 0)

    def test_live_metrics_have_every_metric_the_dashboards_name(self):
        # the built-in RedisBgsaveFailed (for 0s) fires at the agent's first
        # poll of the broken instance: the capture holds redpulse_alerts
        firing = b'redpulse_alerts{alertname="RedisBgsaveFailed",target="broken",severity="critical",' \
                 b'alertstate="firing"} 1\n'

        def scraped():
            status, _, body = self.agent.get("/metrics")
            self.assertEqual(status, 200)
            return body if firing in body else None
        body = wait_for(scraped, 15, step=0.5, what="RedisBgsaveFailed firing in the agent's /metrics")
        path = os.environ.get("DASHBOARDS_CAPTURE_OUT") or os.path.join(self.tmp.path, "live.prom")
        with open(path, "wb") as f:
            f.write(body)
        dashboards = [os.path.join(DASH, n) for n in ("redpulse-fleet.json", "redpulse-write-path.json")]
        rules = [os.path.join(DASH, "rules", n) for n in ("redpulse-recording.yml", "redpulse-alerts.yml")]
        self.assertEqual(lint.lint(dashboards, rules, path), [])


if __name__ == "__main__":
    unittest.main()
