#!/usr/bin/env python3
"""Alerts end to end against a real Alertmanager (Debian's
prometheus-alertmanager, an HA pair) and a real redis-server: a bgsave that fails because
a directory stands where the dump file goes shows up in Alertmanager's
/api/v2/alerts with our labels within `for` + two poll intervals, making saves
work again resolves it there, a second failure stays active there through the
re-sends, and the writes the server then refuses with MISCONF are an alert of
their own."""
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import _LIVE, BIN, Agent, RedisServer, Tmp, free_port, promtool_check, value, wait_for  # noqa: E402

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



class FakeAm:
    """What a real Alertmanager cannot be: a scripted answerer on
    <base>/api/v2/alerts. Each request takes the next action of the script
    (then `default`): an int status; ("503", s) adds Retry-After: s;
    ("307", url) adds Location: url; "hang" holds the request until the test
    ends; "partial" sends 200 with a Content-Length it then falls short of."""

    def __init__(self, script=(), default=200):
        self.script, self.default, self.log = list(script), default, []
        self.lock = threading.Lock()
        self.release = threading.Event()
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake.lock:
                    action = fake.script.pop(0) if fake.script else fake.default
                    fake.log.append({"path": self.path, "action": action, "token": self.headers.get("X-Token"),
                                     "alerts": json.loads(body)})
                if action == "hang":
                    fake.release.wait(60)
                    self.close_connection = True
                    return
                if action == "partial":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                status, extra = (action, None) if isinstance(action, int) else (int(action[0]), action[1])
                self.send_response(status)
                if extra is not None:
                    self.send_header("Retry-After" if status == 503 else "Location", str(extra))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def requests(self):
        with self.lock:
            return list(self.log)

    def close(self):
        self.release.set()
        self.srv.shutdown()
        self.srv.server_close()


def dead_port():
    """A loopback port that refuses connections (bound, not listening) for
    as long as the returned socket is open."""
    sk = socket.socket()
    sk.bind(("127.0.0.1", 0))
    return sk


def am_received(am):
    """Alerts an Alertmanager took in (alertmanager_alerts_received_total, all statuses)."""
    n = 0
    for line in am.get("/metrics").decode().splitlines():
        if line.startswith("alertmanager_alerts_received_total"):
            n += float(line.rsplit(" ", 1)[1])
    return n


@unittest.skipUnless(os.path.exists(AM), "prometheus-alertmanager not installed")
class DeliveryPerUrl(unittest.TestCase):
    """deliver.c's hostile review: the outbox cleared by count, not by seq
    order; each Alertmanager URL at its own pace with its own backoff; 3xx
    retried with its Location logged; a reload that changes a receiver's URL
    or credentials applies at once; a transfer failing after its status line
    logged as the curl error it is. Each test fails on the code before."""

    def setUp(self):
        self.tmp = Tmp()
        self.addCleanup(self.tmp.cleanup)
        self.hold = dead_port()  # an instance that is down: RedisDown fires at its first poll
        self.addCleanup(self.hold.close)

    def agent(self, receiver, rules=({"name": "RedisDown", "for": "0s"},), instances=None, builtin=True):
        a = Agent(self.tmp.path, instances if instances is not None else
                  [{"name": "down", "address": "127.0.0.1:%d" % self.hold.getsockname()[1]}],
                  defaults={"interval": "1s", "timeout": "500ms"},
                  extra={"alerts": {"state_dir": os.path.join(self.tmp.path, "state"), "builtin": builtin,
                                    "receivers": [receiver], "rules": list(rules)}})
        self.addCleanup(lambda: self.assertEqual(a.stop(), 0))
        return a

    def fake(self, *a, **kw):
        f = FakeAm(*a, **kw)
        self.addCleanup(f.close)
        return f

    def reload(self, a, receiver):
        cfg = json.loads(json.dumps(a.cfg))
        cfg["alerts"]["receivers"] = [receiver]
        with open(a.path, "w") as f:
            json.dump(cfg, f)
        done = a.log_text().count("alert settings reloaded")
        a.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: a.log_text().count("alert settings reloaded") > done, 10, what="alerts reloaded")

    def test_restored_outbox_out_of_seq_order_is_cleared(self):
        # a hand-edited state file: seq values not increasing. The batch
        # leaves the outbox by count (it is the head), so it is sent once;
        # cleared by seq it stayed, and was sent again at once, forever
        am = Alertmanager(self.tmp.path)
        self.addCleanup(am.stop)
        state = os.path.join(self.tmp.path, "state")
        os.makedirs(state)
        now = time.time()

        def notif(i, seq):
            return {"fp": "%016x" % (0xabc0 + i), "seq": seq, "created": now, "episode": 1, "resolved": False,
                    "starts_at": now - 60, "ends_at": 0, "interval": 1,
                    "labels": {"alertname": "HandEdited%d" % i, "severity": "warning", "target": "x"},
                    "annotations": {"summary": "edited"}}
        with open(os.path.join(state, "alerts.json"), "w") as f:
            json.dump({"version": 1, "seq": 9, "clean": True, "alerts": [], "episodes": [], "resolved": [],
                       "outbox": {"am": [notif(1, 9), notif(2, 4), notif(3, 7)]}}, f)
        a = self.agent({"name": "am", "type": "alertmanager", "resend_interval": "1h",
                        "urls": ["http://127.0.0.1:%d" % am.port]},
                       rules=(), builtin=False)
        wait_for(lambda: value(a.metrics(), "redpulse_notification_queue_length", receiver="am") == 0, 5,
                 what="the restored outbox delivered and cleared")
        self.assertEqual(sorted(x["labels"]["alertname"] for x in am.alerts()),
                         ["HandEdited1", "HandEdited2", "HandEdited3"])
        time.sleep(0.3)  # was: ~2,200 requests a second
        self.assertEqual(value(a.metrics(), "redpulse_notifications_total", receiver="am", result="success"), 1)
        self.assertEqual(am_received(am), 3)

    def test_each_alertmanager_has_its_own_backoff(self):
        # an HA pair, one of them failing with a long Retry-After: the
        # healthy one is sent every notification at once, and once only
        am = Alertmanager(self.tmp.path)
        self.addCleanup(am.stop)
        bad = self.fake(default=("503", 30))
        s = RedisServer(self.tmp.path, "b")
        self.addCleanup(s.stop)
        hold = self.hold.getsockname()[1]
        a = self.agent({"name": "am", "type": "alertmanager", "resend_interval": "1h", "max_backoff": "1m",
                        "urls": ["http://127.0.0.1:%d" % am.port, bad.url("/bad")]},
                       instances=[{"name": "down", "address": "127.0.0.1:%d" % hold},
                                  {"name": "b", "address": "127.0.0.1:%d" % s.port}])
        wait_for(lambda: am.find("RedisDown", "down"), 5, what="the first alert in the healthy Alertmanager")
        wait_for(lambda: "am (%s): HTTP 503" % bad.url("/bad") in a.log_text(), 5,
                 what="the failure logged with its URL")
        self.assertIn("retry 1 in 30.0s", a.log_text())
        s.kill()  # a second alert while the bad URL waits out its 30 s
        wait_for(lambda: am.find("RedisDown", "b"), 4, what="the second alert in the healthy Alertmanager at once")
        self.assertEqual(len(bad.requests()), 1)  # the failing one waits
        self.assertEqual(am_received(am), 2)      # no duplicates to the healthy one
        # both wait for the bad URL (its place is kept), within queue_size
        self.assertEqual(value(a.metrics(), "redpulse_notification_queue_length", receiver="am"), 2)

    def test_redirect_is_retried_and_its_location_logged(self):
        fake = self.fake([("307", "http://elsewhere.example:9093/api/v2/alerts")], default=200)
        a = self.agent({"name": "am", "type": "alertmanager", "resend_interval": "1h", "urls": [fake.url()]})
        wait_for(lambda: len(fake.requests()) >= 2, 6, what="the 307 retried")
        m = a.metrics()
        self.assertEqual(value(m, "redpulse_notifications_total", receiver="am", result="refused"), 0)
        wait_for(lambda: value(a.metrics(), "redpulse_notification_queue_length", receiver="am") == 0, 3,
                 what="delivered after the redirect")
        log = a.log_text()
        self.assertIn("HTTP 307 redirects to http://elsewhere.example:9093/api/v2/alerts (redirects are not "
                      "followed: fix the URL); retry 1", log)
        self.assertEqual([x["labels"]["alertname"] for x in fake.requests()[1]["alerts"]], ["RedisDown"])
        # --test-receiver takes it the same way
        fake.script = [("307", "http://elsewhere.example:9093/api/v2/alerts")]
        out = subprocess.run([BIN, "--test-receiver", "am", "--config", a.path], capture_output=True, text=True,
                             timeout=20)
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("HTTP 307, failed (would be retried)", out.stdout)
        self.assertIn("redirects to http://elsewhere.example:9093/api/v2/alerts", out.stdout)

    def test_reload_of_url_or_credentials_applies_at_once(self):
        am = Alertmanager(self.tmp.path)
        self.addCleanup(am.stop)
        fake = self.fake(["hang", ("503", 60)])
        rc = {"name": "am", "type": "alertmanager", "resend_interval": "1h", "timeout": "60s", "max_backoff": "5m",
              "urls": [fake.url()], "headers": {"X-Token": "old"}}
        a = self.agent(rc)
        wait_for(lambda: len(fake.requests()) == 1, 5, what="a request hanging")
        # new credentials: the hanging request is cancelled and sent again with them
        self.reload(a, dict(rc, headers={"X-Token": "new"}))
        wait_for(lambda: len(fake.requests()) == 2, 3, what="sent again at once with the new credentials")
        self.assertEqual(fake.requests()[1]["token"], "new")
        wait_for(lambda: "retry 1 in 60.0s" in a.log_text(), 3, what="the 503 and its minute's backoff")
        self.assertIn("am: URLs or credentials changed", a.log_text())
        # a new URL: no carried-over backoff
        self.reload(a, dict(rc, urls=["http://127.0.0.1:%d" % am.port]))
        wait_for(lambda: am.find("RedisDown", "down"), 3, what="the new URL sent to at once")
        self.assertEqual(len(fake.requests()), 2)

    def test_transfer_failing_after_status_line_logs_the_curl_error(self):
        fake = self.fake(["partial"], default=200)
        a = self.agent({"name": "am", "type": "alertmanager", "resend_interval": "1h", "urls": [fake.url()]})
        wait_for(lambda: "; retry 1 in" in a.log_text(), 5, what="the failure logged")
        line = next(x for x in a.log_text().splitlines() if "; retry 1 in" in x)
        self.assertIn("Transferred a partial file", line)
        self.assertIn("after HTTP 200", line)
        self.assertNotIn("HTTP 200 (", line)
        wait_for(lambda: value(a.metrics(), "redpulse_notification_queue_length", receiver="am") == 0, 3,
                 what="retried and delivered")


if __name__ == "__main__":
    unittest.main()
