#!/usr/bin/env python3
"""Drop-in compatibility with a real Prometheus: scraped with both patterns
of dashboards/prometheus.yml, every query of Grafana dashboard 763 returns
data, every metric the awesome-prometheus-alerts Redis rules use exists,
the rules load, and RedisDown goes pending for a killed instance."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import _LIVE, Agent, RedisServer, Tmp, free_port, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
COMPAT = os.path.join(HERE, "..", "fixtures", "compat")
NAMES = ["cache-a", "cache-b"]


def dashboard_exprs():
    with open(os.path.join(COMPAT, "grafana-dashboard-763-redis-exporter.json")) as f:
        d = json.load(f)
    out = []

    def walk(p):
        for x in p.get("panels", []):
            for t in x.get("targets", []):
                if t.get("expr"):
                    out.append(t["expr"])
            walk(x)
    walk(d)
    return out


class PrometheusCompat(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_tool("prometheus")
        harness.require_tool("promtool")
        cls.tmp = Tmp()
        t = cls.tmp.path
        cls.servers = [RedisServer(t, n) for n in NAMES]
        for s in cls.servers:
            c = s.client()
            c.cmd("CONFIG", "SET", "maxmemory", "100000000")
            c.pipeline([("SET", "key%d" % i, "v", "EX", "1000") for i in range(20)] + [("SET", "plain", "1")])
            c.cmd("GET", "key1")
            c.cmd("GET", "missing")
            c.close()
        cls.agent = Agent(t, [{"name": n, "address": "127.0.0.1:%d" % s.port, "labels": {"namespace": "prod"}}
                              for n, s in zip(NAMES, cls.servers)],
                          defaults={"interval": "500ms", "timeout": "250ms"})
        with open(os.path.join(ROOT, "dashboards", "prometheus.yml")) as f:
            cfg = f.read()
        # pattern 3 (http_sd_configs) is proven by test_discovery
        cfg = re.sub(r"\n  # Pattern 3:.*?# end of pattern 3\n", "\n", cfg, flags=re.S)
        cfg = cfg.replace("scrape_interval: 15s", "scrape_interval: 1s\n  evaluation_interval: 1s")
        cfg = cfg.replace("REDPULSE", "127.0.0.1:%d" % cls.agent.port)
        cfg = cfg.replace('["INSTANCE_NAMES"]', json.dumps(NAMES))
        rules = os.path.join(t, "rules.yml")
        shutil.copy(os.path.join(COMPAT, "awesome-prometheus-alerts-redis.yml"), rules)
        cfg = cfg.split("\nrule_files:")[0]  # this test loads the awesome-prometheus-alerts rules instead
        cfg += "\nrule_files:\n  - %s\n" % rules
        cls.prom_cfg = os.path.join(t, "prometheus.yml")
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
        # enough samples for rate()/irate() over every scrape pattern
        wait_for(lambda: len(cls.query('count by (job, instance) (redis_up)')) == 4, 30, step=0.5,
                 what="both jobs scraping both instances")
        time.sleep(4)

    @classmethod
    def tearDownClass(cls):
        cls.prom.terminate()
        cls.prom.wait(20)
        cls.prom_log.close()
        rc = cls.agent.stop()
        for s in cls.servers:
            s.stop()
        cls.tmp.cleanup()
        assert rc == 0

    @classmethod
    def api(cls, path, raw=False):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (cls.port, path), timeout=10) as r:
            if raw:
                return r.status
            return json.loads(r.read())

    @classmethod
    def query(cls, expr):
        d = cls.api("/api/v1/query?query=" + urllib.parse.quote(expr))
        assert d["status"] == "success", d
        return d["data"]["result"]

    def test_both_patterns_key_on_instance(self):
        got = {(r["metric"]["job"], r["metric"]["instance"]) for r in self.query("count by (job, instance) (redis_up)")}
        self.assertEqual(got, {(j, n) for j in ("redis", "redpulse") for n in NAMES})
        up = self.query('redis_up{job="redis"}')
        self.assertEqual(sorted(float(r["value"][1]) for r in up), [1.0, 1.0])

    def test_dashboard_763_queries_return_data(self):
        exprs = dashboard_exprs()
        self.assertEqual(len(exprs), 19)
        for job in ("redis", "redpulse"):
            for e in exprs:
                q = (e.replace("$namespace", "prod").replace("$instance", "cache-.*")
                     .replace("$__interval", "15s"))
                # restrict every selector to one job so each pattern is proven on its own
                q = re.sub(r"\{", '{job="%s",' % job, q)
                res = self.query(q)
                self.assertTrue(res, "no data for %s (job %s)" % (q, job))

    def test_alert_rules_metrics_exist_and_load(self):
        p = subprocess.run(["promtool", "check", "rules", os.path.join(COMPAT, "awesome-prometheus-alerts-redis.yml")],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(os.path.join(COMPAT, "awesome-prometheus-alerts-redis.yml")) as f:
            text = f.read()
        exprs = re.findall(r"expr: '(.*)'", text)
        self.assertGreaterEqual(len(exprs), 12)
        metrics = set()
        for e in exprs:
            metrics.update(re.findall(r"\b(redis_[a-z_]+)\b", e))
        self.assertGreaterEqual(len(metrics), 9)
        for m in sorted(metrics):
            for job in ("redis", "redpulse"):
                self.assertTrue(self.query('count(%s{job="%s"})' % (m, job)), "%s missing in job %s" % (m, job))
        groups = self.api("/api/v1/rules")["data"]["groups"]
        self.assertEqual(sum(len(g["rules"]) for g in groups), len(exprs))
        for g in groups:
            for r in g["rules"]:
                self.assertEqual(r["health"], "ok", r)

    def test_z_redis_down_alert(self):
        self.servers[1].kill()

        def pending():
            alerts = self.api("/api/v1/alerts")["data"]["alerts"]
            got = [a for a in alerts if a["labels"]["alertname"] == "RedisDown"
                   and a["labels"].get("instance") == "cache-b"]
            return got if len(got) == 2 else None
        got = wait_for(pending, 20, step=0.5, what="RedisDown for cache-b")
        self.assertIn(got[0]["state"], ("pending", "firing"))
        self.assertEqual({a["labels"]["job"] for a in got}, {"redis", "redpulse"})


if __name__ == "__main__":
    harness.main()
