#!/usr/bin/env python3
"""Alerts end to end against a real Alertmanager (Debian's
prometheus-alertmanager, an HA pair) and a real redis-server: a bgsave that fails because
a directory stands where the dump file goes shows up in Alertmanager's
/api/v2/alerts with our labels within `for` + two poll intervals, making saves
work again resolves it there, a second failure stays active there through the
re-sends, and the writes the server then refuses with MISCONF are an alert of
their own."""
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import _LIVE, Agent, RedisServer, Tmp, free_port, promtool_check, value, wait_for  # noqa: E402

AM = "/usr/bin/prometheus-alertmanager"
INTERVAL = 1.0


class Alertmanager:
    def __init__(self, tmp):
        # a port from free_port() can be taken by someone else before
        # Alertmanager binds it: then it exits, and we try another
        for _ in range(5):
            self.port = free_port()
            d = os.path.join(tmp, "am-%d" % self.port)
            os.makedirs(d)
            cfg = os.path.join(d, "am.yml")
            with open(cfg, "w") as f:
                f.write("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
            self.log = open(os.path.join(d, "am.log"), "w")
            self.proc = subprocess.Popen([AM, "--config.file=" + cfg, "--storage.path=" + d,
                                          "--web.listen-address=127.0.0.1:%d" % self.port,
                                          "--cluster.listen-address="], stdout=self.log, stderr=subprocess.STDOUT)
            _LIVE.append(self.proc)
            if wait_for(lambda: self.proc.poll() is not None or self.ready(), 20, what="alertmanager ready") is True \
                    and self.proc.poll() is None:
                return
            self.log.close()
        raise AssertionError("alertmanager did not start")

    def ready(self):
        try:
            return self.get("/-/ready") is not None
        except OSError:
            return False

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=5) as r:
            return r.read()

    def alerts(self):
        return json.loads(self.get("/api/v2/alerts"))

    def find(self, alertname, target):
        for a in self.alerts():
            if a["labels"].get("alertname") == alertname and a["labels"].get("target") == target:
                return a
        return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@unittest.skipUnless(os.path.exists(AM), "prometheus-alertmanager not installed")
class AlertsAlertmanager(unittest.TestCase):
    def setUp(self):
        self.tmp = Tmp()
        self.addCleanup(self.tmp.cleanup)
        self.am = Alertmanager(self.tmp.path)
        self.addCleanup(self.am.stop)
        self.am2 = Alertmanager(self.tmp.path)  # an HA pair: alerts go to both
        self.addCleanup(self.am2.stop)

    def test_bgsave_failure_and_misconf_reach_alertmanager(self):
        s = RedisServer(self.tmp.path, "bg", ["--save", "3600 1"])
        dump = os.path.join(s.dir, "dump.rdb")
        a = Agent(self.tmp.path, [{"name": "bg", "address": "127.0.0.1:%d" % s.port, "labels": {"env": "test"}}],
                  defaults={"interval": "1s", "timeout": "500ms"},
                  extra={"alerts": {
                      "state_dir": os.path.join(self.tmp.path, "state"),
                      "external_url": "http://redpulse.example:10379/",
                      "receivers": [{"name": "am", "type": "alertmanager", "resend_interval": "2s",
                                     "urls": ["http://127.0.0.1:%d/" % self.am.port,
                                              "http://127.0.0.1:%d" % self.am2.port]}],
                      "rules": [{"name": "RedisBgsaveFailed", "labels": {"team": "db"}}]}})
        try:
            wait_for(lambda: a.instance("bg")["up"], 5, what="first poll")
            c = s.client()
            c.cmd("SET", "k", "v")
            os.mkdir(dump)  # the child's rename(temp, dump.rdb) fails with EISDIR
            c.cmd("BGSAVE")
            wait_for(lambda: c.info("persistence")["rdb_last_bgsave_status"] == "err", 10, what="bgsave to fail")
            t_fail = time.time()
            got = wait_for(lambda: self.am.find("RedisBgsaveFailed", "bg"), 0 + 2 * INTERVAL + 1.0,
                           what="RedisBgsaveFailed in Alertmanager within for + two intervals")
            self.assertLess(time.time() - t_fail, 0 + 2 * INTERVAL + 1.0)
            wait_for(lambda: self.am2.find("RedisBgsaveFailed", "bg"), 1.0, what="the alert in the second Alertmanager")
            lb = got["labels"]
            self.assertEqual(lb["severity"], "critical")
            self.assertEqual(lb["env"], "test")    # the instance's labels
            self.assertEqual(lb["team"], "db")     # the rule's labels
            self.assertIn("background save", got["annotations"]["summary"])
            self.assertEqual(got["status"]["state"], "active")
            self.assertEqual(got["generatorURL"], "http://redpulse.example:10379/api/v1/alerts")
            # endsAt = now + 4 x max(interval, resend): a dead agent's alerts expire by themselves
            ends = got["endsAt"]
            self.assertTrue(ends > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 4)), ends)
            # writes refused with MISCONF: their own alert, with the reason in its name
            for i in range(5):
                with self.assertRaises(RuntimeError) as e:
                    c.cmd("SET", "x%d" % i, "v")
                self.assertIn("MISCONF", str(e.exception))
            mis = wait_for(lambda: self.am.find("RedisWritesRefusedMisconf", "bg"), 3 * INTERVAL + 1.0,
                           what="RedisWritesRefusedMisconf in Alertmanager")
            self.assertIn("MISCONF", mis["annotations"]["summary"])
            # the agent's own view
            api = json.loads(a.get("/api/v1/alerts")[2])
            names = {x["alertname"] for x in api["alerts"] if x["state"] == "firing"}
            self.assertIn("RedisBgsaveFailed", names)
            self.assertIn("RedisBgsaveFailed", json.dumps(a.instance("bg")["alerts"]))
            self.assertIn("RedisBgsaveFailed", a.get("/")[2].decode())
            status, _, body = a.get("/metrics")
            rc, out = promtool_check(body.decode())
            self.assertEqual(out.strip(), "", out)
            m = a.metrics()
            self.assertEqual(value(m, "redpulse_alerts", alertname="RedisBgsaveFailed", target="bg",
                                   alertstate="firing"), 1)
            # /scrape?target= carries the instance's own alerts too (the
            # fleet dashboard's alert panels under the multi-target jobs)
            status, _, body = a.get("/scrape?target=bg")
            rc, out = promtool_check(body.decode())
            self.assertEqual(out.strip(), "", out)
            sm = a.metrics("/scrape?target=bg")
            self.assertEqual(value(sm, "redpulse_alerts", alertname="RedisBgsaveFailed", target="bg",
                                   alertstate="firing"), 1)
            self.assertGreaterEqual(value(m, "redpulse_notifications_total", receiver="am", result="success"), 1)
            # saves work again: the alert resolves in Alertmanager
            os.rmdir(dump)
            c.cmd("BGSAVE")
            wait_for(lambda: c.info("persistence")["rdb_last_bgsave_status"] == "ok", 10, what="bgsave to work")
            wait_for(lambda: self.am.find("RedisBgsaveFailed", "bg") is None, 2 * INTERVAL + 2.0,
                     what="RedisBgsaveFailed resolved in Alertmanager")
            wait_for(lambda: self.am2.find("RedisBgsaveFailed", "bg") is None, 2.0, what="resolved in the second")
            self.assertNotIn("RedisBgsaveFailed",
                             {x["alertname"] for x in json.loads(a.get("/api/v1/alerts")[2])["alerts"]})
            # it fails again within 15 minutes: episode 2 stays active in
            # Alertmanager through the re-sends (every 2 s), which carry the
            # resolved episode 1 as well (sent after it, it read as resolved)
            os.remove(dump)  # the good save's file
            os.mkdir(dump)
            c.cmd("BGSAVE")
            wait_for(lambda: c.info("persistence")["rdb_last_bgsave_status"] == "err", 10, what="bgsave to fail again")
            wait_for(lambda: self.am.find("RedisBgsaveFailed", "bg"), 2 * INTERVAL + 1.0, what="episode 2 in Alertmanager")
            sent = value(a.metrics(), "redpulse_notifications_total", receiver="am", result="success")
            deadline = time.time() + 7.0
            while time.time() < deadline:
                for am in (self.am, self.am2):
                    got = am.find("RedisBgsaveFailed", "bg")
                    self.assertTrue(got and got["status"]["state"] == "active", got)
                time.sleep(0.25)
            self.assertGreaterEqual(value(a.metrics(), "redpulse_notifications_total", receiver="am", result="success"),
                                    sent + 2, "re-sends went out meanwhile")
            c.close()
        finally:
            self.assertEqual(a.stop(), 0)  # clean exit (and no leaks in the sanitizer build)
            s.stop()

    def test_no_good_replicas_against_min_replicas_to_write(self):
        # a master that wants 2 good replicas and has none: 2 missing, and
        # its writes are refused with NOREPLICAS, each its own alert
        s = RedisServer(self.tmp.path, "mr", ["--min-replicas-to-write", "2"])
        a = Agent(self.tmp.path, [{"name": "mr", "address": "127.0.0.1:%d" % s.port}],
                  defaults={"interval": "1s", "timeout": "500ms", "config_interval": "1s"},
                  extra={"alerts": {
                      "state_dir": os.path.join(self.tmp.path, "state"),
                      "receivers": [{"name": "am", "type": "alertmanager", "resend_interval": "2s",
                                     "urls": ["http://127.0.0.1:%d/" % self.am.port]}],
                      "rules": [{"name": "RedisNoGoodReplicas", "for": "0s"}]}})

        def firing(name):
            for x in json.loads(a.get("/api/v1/alerts")[2])["alerts"]:
                if x["alertname"] == name and x["state"] == "firing":
                    return x
            return None

        try:
            got = wait_for(lambda: firing("RedisNoGoodReplicas"), 3 * INTERVAL + 2.0, what="RedisNoGoodReplicas")
            self.assertEqual(got["value"], 2)
            wait_for(lambda: self.am.find("RedisNoGoodReplicas", "mr"), 3 * INTERVAL + 1.0,
                     what="RedisNoGoodReplicas in Alertmanager")
            c = s.client()
            with self.assertRaises(RuntimeError) as e:
                c.cmd("SET", "k", "v")
            self.assertIn("NOREPLICAS", str(e.exception))
            wait_for(lambda: firing("RedisWritesRefusedNoreplicas"), 3 * INTERVAL + 1.0,
                     what="RedisWritesRefusedNoreplicas")
            # the setting off: nothing missing, the alert resolves
            c.cmd("CONFIG", "SET", "min-replicas-to-write", "0")
            wait_for(lambda: firing("RedisNoGoodReplicas") is None, 3 * INTERVAL + 2.0,
                     what="RedisNoGoodReplicas resolved")
            c.cmd("SET", "k", "v")
            c.close()
        finally:
            self.assertEqual(a.stop(), 0)
            s.stop()


if __name__ == "__main__":
    unittest.main()
