#!/usr/bin/env python3
"""Delivery across receiver outages and an agent SIGKILL: a scripted webhook
receiver that refuses connections, answers 503, 429 with Retry-After, hangs
past the timeout, and is down again while the alert resolves; the agent is
killed with SIGKILL and started again on the same state directory. Every
(fingerprint, episode) arrives firing then resolved, in order; retries keep to
the backoff schedule; a healthy receiver sees no extra requests; a receiver
answering 400 is not retried; a tiny queue counts exactly what it dropped."""
import calendar
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Agent, RedisServer, Tmp, series, value, wait_for  # noqa: E402


class Receiver:
    """A webhook receiver on a fixed port that can be down (connection
    refused) or up with a script of answers: ints are statuses, ("429", s)
    adds Retry-After: s, "hang" holds the request past the agent's timeout.
    When the script runs out it answers `default`."""

    def __init__(self, default=200):
        self.default = default
        self.script, self.log, self.srv = [], [], None
        self.lock = threading.Lock()
        # while down, the port stays ours: bound, not listening (connections
        # are refused), so no other process on this busy machine takes it
        self.hold = self._bound(0)
        self.port = self.hold.getsockname()[1]

    @staticmethod
    def _bound(port):
        sk = socket.socket()
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sk.bind(("127.0.0.1", port))
        return sk

    def up(self, script=()):
        with self.lock:
            self.script = list(script)
        rec = self
        self.hold.close()

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with rec.lock:
                    action = rec.script.pop(0) if rec.script else rec.default
                    rec.log.append({"t": time.time(), "action": action, "key": self.headers.get("Idempotency-Key"),
                                    "auth": self.headers.get("Authorization"), "body": json.loads(body)})
                if action == "hang":
                    time.sleep(2.5)
                    return
                status, retry = (action, None) if isinstance(action, int) else (action[0], action[1])
                self.send_response(status)
                if retry is not None:
                    self.send_header("Retry-After", str(retry))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no" if status >= 300 else b"ok")

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def down(self):
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None
            self.hold = self._bound(self.port)

    def close(self):
        self.down()
        self.hold.close()

    def delivered(self):
        """(fingerprint, episode, status) of every alert in 2xx-answered requests, in order."""
        out = []
        with self.lock:
            for r in self.log:
                if r["action"] == 200:
                    for al in r["body"]["alerts"]:
                        ep = int(r["key"].split("-")[1]) if r["key"] and not r["key"].startswith("batch") else None
                        out.append((al["fingerprint"], ep, al["status"]))
        return out


class Blocker:
    """A client parked in BLPOP: blocked_clients is 1 while it lives."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$7\r\nnothere\r\n$1\r\n0\r\n")

    def close(self):
        self.s.close()


class WebhookDelivery(unittest.TestCase):
    def setUp(self):
        self.tmp = Tmp()

    def tearDown(self):
        self.tmp.cleanup()

    def secret(self, name, text):
        """A secret file (token, password) under the test's directory: its path."""
        path = os.path.join(self.tmp.path, name)
        with open(path, "w") as f:
            f.write(text + "\n")
        return path

    def test_outages_and_sigkill_lose_nothing(self):
        s = RedisServer(self.tmp.path, "r")
        flaky, healthy, strict, tiny = (Receiver() for _ in range(4))
        strict.default = 400
        healthy.up()
        strict.up()
        tok = self.secret("token", "s3cret")
        state = os.path.join(self.tmp.path, "state")
        hook = lambda name, r, **kw: dict({"name": name, "type": "webhook", "url": "http://127.0.0.1:%d/h" % r.port,
                                           "timeout": "1s", "max_backoff": "2s"}, **kw)  # noqa: E731
        cfg = {"builtin": False, "state_dir": state,
               "receivers": [hook("flaky", flaky, bearer_token_file=tok), hook("healthy", healthy),
                             hook("strict", strict), hook("tiny", tiny, queue_size=1)],
               "rules": [{"name": "Blocked", "figure": "info.clients.blocked_clients", "op": ">=", "threshold": 1,
                          "annotations": {"summary": "{{ $target }}: {{ $value }} blocked"}}]}
        inst = [{"name": "r", "address": "127.0.0.1:%d" % s.port}]
        defaults = {"interval": "500ms", "timeout": "300ms"}
        a = Agent(self.tmp.path, inst, defaults=defaults, extra={"alerts": cfg})
        a2 = None
        try:
            # episode 1 fires while flaky is down (connection refused)
            b = Blocker(s.port)
            wait_for(lambda: len(healthy.delivered()) == 1, 5, what="firing at the healthy receiver")
            fp = healthy.delivered()[0][0]
            wait_for(lambda: value(a.metrics(), "redpulse_notifications_total", receiver="flaky", result="failed") >= 2,
                     5, what="flaky refused twice")
            # up, but: 503, 503 Retry-After of 31 years, 429 Retry-After 2, a
            # hang past the timeout, then 200
            flaky.up([503, (503, 999999999), (429, 2), "hang"])
            wait_for(lambda: flaky.delivered(), 20, what="firing finally delivered to flaky")
            self.assertEqual(flaky.delivered(), [(fp, 1, "firing")])
            log = list(flaky.log)
            self.assertEqual([r["action"] for r in log], [503, (503, 999999999), (429, 2), "hang", 200])
            self.assertEqual(log[-1]["auth"], "Bearer s3cret")
            self.assertEqual(log[-1]["key"], "%s-1-firing" % fp)
            self.assertEqual(log[-1]["body"]["version"], "4")
            # the schedule: after the 429 the agent waits Retry-After (2 s);
            # one far off is honoured up to max_backoff (2 s), not for good
            self.assertGreaterEqual(log[3]["t"] - log[2]["t"], 1.9)
            self.assertLess(log[2]["t"] - log[1]["t"], 2.6)
            # never sooner than half the capped exponential step (jitter)
            for i in range(1, len(log)):
                self.assertGreaterEqual(log[i]["t"] - log[i - 1]["t"], 0.25)
            # the strict receiver's 400 is final: one request, not retried
            wait_for(lambda: value(a.metrics(), "redpulse_notifications_total", receiver="strict", result="refused") == 1,
                     3, what="strict refused")
            self.assertEqual(len(strict.log), 1)
            # resolve while flaky is down again, then SIGKILL the agent
            flaky.down()
            b.close()
            wait_for(lambda: len(healthy.delivered()) == 2, 5, what="resolved at the healthy receiver")

            def saved_outbox():
                with open(os.path.join(state, "alerts.json")) as f:
                    st = json.load(f)
                return st if (not st["outbox"]["healthy"] and not st["outbox"]["strict"] and st["outbox"]["flaky"]) \
                    else None
            wait_for(saved_outbox, 5, what="state file: healthy delivered, strict refused, flaky pending")
            m = a.metrics()
            self.assertEqual(value(m, "redpulse_notifications_dropped_total", receiver="tiny"), 1)
            self.assertEqual(value(m, "redpulse_notifications_total", receiver="strict", result="refused"), 2)
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait()
            a.logf.close()
            # the same agent again; flaky comes back up
            a2 = Agent(self.tmp.path, inst, defaults=defaults, extra={"alerts": cfg})
            flaky.up()
            wait_for(lambda: len(flaky.delivered()) == 2, 15, what="resolved delivered to flaky after the restart")
            self.assertEqual(flaky.delivered(), [(fp, 1, "firing"), (fp, 1, "resolved")])
            # episode 2 goes everywhere
            b = Blocker(s.port)
            wait_for(lambda: len(flaky.delivered()) == 3, 5, what="episode 2 firing")
            b.close()
            wait_for(lambda: len(flaky.delivered()) == 4, 5, what="episode 2 resolved")
            self.assertEqual(flaky.delivered()[2:], [(fp, 2, "firing"), (fp, 2, "resolved")])
            time.sleep(1.0)  # room for an extra request that must not come
            self.assertEqual(healthy.delivered(), [(fp, 1, "firing"), (fp, 1, "resolved"),
                                                   (fp, 2, "firing"), (fp, 2, "resolved")])
            self.assertEqual(len(healthy.log), 4)
            self.assertEqual(len(strict.log), 4)  # each notification once: 400 is final
            m = a2.metrics()
            self.assertEqual(value(m, "redpulse_notifications_total", receiver="strict", result="refused"), 2)
            # tiny (queue_size 1) was down throughout: of the 4 notifications
            # only the newest is left; 3 dropped, counted 1 before the kill
            # and 2 after (counters start again with the process)
            self.assertEqual(value(m, "redpulse_notification_queue_length", receiver="tiny"), 1)
            self.assertEqual(value(m, "redpulse_notifications_dropped_total", receiver="tiny"), 2)
            # polls stayed on schedule throughout
            self.assertEqual(value(m, "redpulse_poll_delay_seconds_bucket", le="0.25"),
                             value(m, "redpulse_poll_delay_seconds_count"))
        finally:
            for r in (flaky, healthy, strict, tiny):
                r.close()
            if a2:
                self.assertEqual(a2.stop(), 0)
            if a.proc.poll() is None:
                a.stop()
            s.stop()

    def test_batching_repeat_routing_and_test_receiver(self):
        s = RedisServer(self.tmp.path, "r")
        hook, pager = Receiver(), Receiver()
        hook.up()
        pager.up()
        url = lambda r: "http://127.0.0.1:%d/h" % r.port  # noqa: E731
        cfg = {"builtin": False, "state_dir": os.path.join(self.tmp.path, "state"),
               "receivers": [{"name": "hook", "type": "webhook", "url": url(hook), "repeat_interval": "2s"},
                             {"name": "pager", "type": "webhook", "url": url(pager), "repeat_interval": "0s"}],
               "route": [{"match": {"severity": "page"}, "receivers": ["pager"]}, {"receivers": ["hook"]}],
               # two rules that become true on the same poll: one request
               "rules": [{"name": "UpA", "figure": "up", "op": "==", "threshold": 1},
                         {"name": "UpB", "figure": "up", "op": "==", "threshold": 1},
                         {"name": "Paged", "figure": "up", "op": "==", "threshold": 1, "severity": "page"}]}
        a = Agent(self.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % s.port}],
                  defaults={"interval": "500ms", "timeout": "300ms"}, extra={"alerts": cfg})
        try:
            wait_for(lambda: hook.log, 5, what="the first request")
            first = hook.log[0]["body"]
            self.assertEqual(sorted(x["labels"]["alertname"] for x in first["alerts"]), ["UpA", "UpB"])
            self.assertTrue(hook.log[0]["key"].startswith("batch-"))
            self.assertEqual(first["commonLabels"], {"severity": "warning", "target": "r"})
            # routing by severity: the page alert went to pager only
            wait_for(lambda: pager.log, 5, what="the page")
            self.assertEqual([x["labels"]["alertname"] for x in pager.log[0]["body"]["alerts"]], ["Paged"])
            # repeat_interval 2s: told again while firing (and pager, with 0s, never)
            t1 = hook.log[0]["t"]
            wait_for(lambda: len(hook.log) >= 2, 5, what="a repeat")
            self.assertGreaterEqual(hook.log[1]["t"] - t1, 1.9)
            self.assertEqual(sorted(x["labels"]["alertname"] for x in hook.log[1]["body"]["alerts"]), ["UpA", "UpB"])
            self.assertEqual(len(pager.log), 1)
            # --test-receiver: the real path, the answer printed
            out = subprocess.run([BIN, "--test-receiver", "hook", "--config", a.path], capture_output=True,
                                 timeout=30)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertIn(b"HTTP 200, delivered", out.stdout)
            self.assertTrue(any(x["labels"]["alertname"] == "RedpulseTestNotification"
                                for r in hook.log for x in r["body"]["alerts"]))
            self.assertEqual(subprocess.run([BIN, "--test-receiver", "nope", "--config", a.path],
                                            capture_output=True, timeout=30).returncode, 2)
            pager.down()
            out = subprocess.run([BIN, "--test-receiver", "pager", "--config", a.path], capture_output=True,
                                 timeout=30)
            self.assertEqual(out.returncode, 1)
            self.assertIn(b"Couldn't connect", out.stdout)
        finally:
            hook.close()
            pager.close()
            self.assertEqual(a.stop(), 0)  # clean exit (and no leaks in the sanitizer build)
            s.stop()

    def test_redis_down_and_restart_keep_the_alert(self):
        """Missing data is not recovery: while Redis is down a data rule
        neither resolves nor fires again; after a Redis restart it goes on."""
        s = RedisServer(self.tmp.path, "r")
        hook = Receiver()
        hook.up()
        pw = self.secret("pw", "hunter2")
        cfg = {"builtin": False, "state_dir": os.path.join(self.tmp.path, "state"),
               "receivers": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:%d/h" % hook.port,
                              "repeat_interval": "0s", "basic_auth": {"username": "am", "password_file": pw}}],
               "rules": [{"name": "Conn", "figure": "info.clients.connected_clients", "op": ">=", "threshold": 1}]}
        a = Agent(self.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % s.port}],
                  defaults={"interval": "300ms", "timeout": "200ms"}, extra={"alerts": cfg})
        try:
            wait_for(lambda: hook.delivered(), 5, what="Conn firing")
            self.assertEqual(hook.log[0]["auth"], "Basic YW06aHVudGVyMg==")  # am:hunter2
            polls = lambda: a.instance("r")["polls"]  # noqa: E731
            s.kill()
            p0 = wait_for(lambda: (lambda j: j["polls"] if not j["up"] else None)(a.instance("r")), 5,
                          what="the instance down")
            wait_for(lambda: polls() >= p0 + 2, 10, what="more failed polls (with backoff)")
            s.start()
            p1 = wait_for(lambda: (lambda j: j["polls"] if j["up"] else None)(a.instance("r")), 10,
                          what="the instance back")
            wait_for(lambda: polls() >= p1 + 4, 5, what="four polls after the restart")
            self.assertEqual(hook.delivered(), [(hook.delivered()[0][0], 1, "firing")])  # nothing more
            alerts = json.loads(a.get("/api/v1/alerts")[2])["alerts"]
            self.assertEqual([(x["alertname"], x["state"], x["episode"]) for x in alerts], [("Conn", "firing", 1)])
        finally:
            hook.close()
            self.assertEqual(a.stop(), 0)
            s.stop()

    def test_stop_gives_pending_notifications_a_bounded_time(self):
        """SIGTERM with a notification waiting out its retry: it goes out
        before the agent exits, and the exit stays bounded."""
        s = RedisServer(self.tmp.path, "r")
        rec = Receiver()
        state = os.path.join(self.tmp.path, "state")
        cfg = {"builtin": False, "state_dir": state,
               "receivers": [{"name": "late", "type": "webhook", "url": "http://127.0.0.1:%d/h" % rec.port,
                              "timeout": "1s", "max_backoff": "2s"}],
               "rules": [{"name": "Blocked", "figure": "info.clients.blocked_clients", "op": ">=", "threshold": 1}]}
        a = Agent(self.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % s.port}],
                  defaults={"interval": "500ms", "timeout": "300ms"}, extra={"alerts": cfg})
        b = Blocker(s.port)
        try:
            # refused once: the notification waits (at most max_backoff) for its retry
            wait_for(lambda: value(a.metrics(), "redpulse_notifications_total", receiver="late", result="failed") >= 1,
                     10, what="the first attempt refused")
            self.assertEqual(rec.delivered(), [])
            rec.up()
            t0 = time.monotonic()
            self.assertEqual(a.stop(), 0, a.log_text())
            took = time.monotonic() - t0
            self.assertEqual([d[2] for d in rec.delivered()], ["firing"], "delivered during the stop")
            self.assertLess(took, 6.0)  # HTTP drain (2 s) + the delivery grace (2 s), bounded
            with open(os.path.join(state, "alerts.json")) as f:
                self.assertEqual(json.load(f)["outbox"]["late"], [], "nothing left undelivered")
        finally:
            b.close()
            rec.close()
            s.stop()

    def test_rotated_token_file_applies_on_reload(self):
        """A receiver's bearer_token_file rewritten under an unchanged
        alerts section: the reload sends the new token (before, the section's
        text was all a reload compared, so the old token stayed until a
        restart while the reload reported success)."""
        s = RedisServer(self.tmp.path, "r")
        r = Receiver()
        r.up()
        tok = self.secret("token", "first")
        cfg = {"builtin": False, "state_dir": os.path.join(self.tmp.path, "state"),
               "receivers": [{"name": "h", "type": "webhook", "url": "http://127.0.0.1:%d/h" % r.port,
                              "bearer_token_file": tok}],
               "rules": [{"name": "Blocked", "figure": "info.clients.blocked_clients", "op": ">=", "threshold": 1}]}
        inst = [{"name": "r", "address": "127.0.0.1:%d" % s.port}]
        a = Agent(self.tmp.path, inst, defaults={"interval": "300ms", "timeout": "200ms"}, extra={"alerts": cfg})
        try:
            b = Blocker(s.port)
            wait_for(lambda: len(r.delivered()) == 1, 5, what="firing delivered")
            self.assertEqual(r.log[-1]["auth"], "Bearer first")
            self.secret("token", "second")
            a.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "configuration reloaded" in a.log_text(), 5, what="reloaded")
            b.close()
            wait_for(lambda: len(r.delivered()) == 2, 5, what="resolved delivered")
            self.assertEqual(r.delivered()[1][2], "resolved")
            self.assertEqual(r.log[-1]["auth"], "Bearer second")
        finally:
            r.close()
            self.assertEqual(a.stop(), 0)
            s.stop()

    def test_wall_clock_steps_hold_nothing_back(self):
        """The wall clock set back under the agent (NTP at boot, a VM
        resumed; faked with clockshift.c, the machine's clock is left alone):
        a pending alert still fires after its `for`, and a receiver's retry
        after a 503 still comes after its backoff. Both were measured on the
        wall clock and waited an extra hour for each hour it went back."""
        lib = os.environ.get("CLOCKSHIFT_LIB")
        if not lib or not os.path.exists(lib):
            self.skipTest("CLOCKSHIFT_LIB (the build's libclockshift.so) not set")
        s = RedisServer(self.tmp.path, "r")
        r = Receiver()
        r.up([503])
        shift = os.path.join(self.tmp.path, "clockshift")

        def set_shift(seconds):  # whole or not at all: the fake reads it every 20 ms
            with open(shift + ".new", "w") as f:
                f.write(str(seconds))
            os.replace(shift + ".new", shift)
        set_shift(0)
        env = {"LD_PRELOAD": lib, "CLOCKSHIFT_FILE": shift,
               # the sanitizer build: its runtime need not come first
               "ASAN_OPTIONS": ":".join(x for x in (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if x)}
        cfg = {"builtin": False, "state_dir": os.path.join(self.tmp.path, "state"),
               "receivers": [{"name": "h", "type": "webhook", "url": "http://127.0.0.1:%d/h" % r.port,
                              "timeout": "1s", "max_backoff": "2s"}],
               "rules": [{"name": "Blocked", "figure": "info.clients.blocked_clients", "op": ">=", "threshold": 1,
                          "for": "3s"}]}
        inst = [{"name": "r", "address": "127.0.0.1:%d" % s.port}]
        a = Agent(self.tmp.path, inst, defaults={"interval": "300ms", "timeout": "200ms"}, extra={"alerts": cfg},
                  env=env)
        b = None
        try:
            def alert():
                al = json.loads(a.get("/api/v1/alerts")[2])["alerts"]
                return al[0] if al else {}
            b = Blocker(s.port)
            wait_for(lambda: alert().get("state") == "pending", 5, what="pending")
            t = time.monotonic()
            set_shift(-3600)  # an hour back while pending
            # the agent's wall clock moved: the pending alert's since
            # (shown in the clock of now) is an hour earlier
            wait_for(lambda: alert().get("since", "9") < time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(
                time.time() - 3000)), 3, what="the shift in force in the agent")
            wait_for(lambda: r.log, 8, what="the firing alert sent (after its `for` of 3 s)")
            self.assertGreaterEqual(time.monotonic() - t, 1.5)  # not at once either
            self.assertEqual(r.log[0]["action"], 503)
            time.sleep(0.3)  # the 503 is in, and its retry set (after 0.5 s at the earliest)
            set_shift(-7200)  # another hour back while the receiver backs off
            wait_for(lambda: r.delivered(), 6, what="the retry after the 503 (backoff at most 2 s)")
            self.assertEqual(r.delivered()[0][2], "firing")
            # the fake steps every wall clock of the process, time() too (the
            # log's timestamps): the 503 was logged an hour or more back
            stamps = re.findall(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) warn", a.log_text(), re.M)
            self.assertTrue(any(calendar.timegm(time.strptime(x, "%Y-%m-%dT%H:%M:%SZ")) < time.time() - 3000
                                for x in stamps), stamps)
        finally:
            if b:
                b.close()
            r.close()
            self.assertEqual(a.stop(), 0)
            s.stop()

    def test_edited_state_file_cannot_hurt(self):
        """A state file edited by hand: an alert listed twice is taken once
        (before, the second became an alert no instance owned, listed twice
        in /metrics, and a reload to fewer rules read past the rule table);
        a fingerprint that is not 16 hex digits (it goes into a header) makes
        the file malformed."""
        s = RedisServer(self.tmp.path, "r")
        state = os.path.join(self.tmp.path, "state")
        path = os.path.join(state, "alerts.json")
        rules = [{"name": "x%d" % i, "figure": "info.clients.blocked_clients", "op": ">=", "threshold": 9}
                 for i in range(3)] + [{"name": "Conn", "figure": "info.clients.connected_clients", "op": ">=",
                                        "threshold": 1}]
        cfg = {"builtin": False, "state_dir": state, "rules": rules}
        inst = [{"name": "r", "address": "127.0.0.1:%d" % s.port}]
        defaults = {"interval": "300ms", "timeout": "200ms"}
        a = Agent(self.tmp.path, inst, defaults=defaults, extra={"alerts": cfg})
        wait_for(lambda: json.loads(a.get("/api/v1/alerts")[2])["alerts"], 5, what="Conn firing")
        self.assertEqual(a.stop(), 0)
        with open(path) as f:
            st = json.load(f)
        self.assertEqual([x["rule"] for x in st["alerts"]], ["Conn"])
        st["alerts"].append(json.loads(json.dumps(st["alerts"][0])))
        with open(path, "w") as f:
            json.dump(st, f)
        a = Agent(self.tmp.path, inst, defaults=defaults, extra={"alerts": cfg})
        try:
            wait_for(lambda: "listed twice" in a.log_text(), 5, what="the second entry dropped")
            self.assertEqual(len(json.loads(a.get("/api/v1/alerts")[2])["alerts"]), 1)
            self.assertEqual(len(series(a.metrics(), "redpulse_alerts", alertname="Conn")), 1)
            # a reload to fewer rules: the alert of the rule gone is resolved
            new = json.load(open(a.path))
            new["alerts"]["rules"] = [{"name": "Other", "figure": "info.clients.blocked_clients", "op": ">=",
                                       "threshold": 9}]
            with open(a.path, "w") as f:
                json.dump(new, f)
            a.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "configuration reloaded" in a.log_text(), 5, what="reloaded")
            wait_for(lambda: not json.loads(a.get("/api/v1/alerts")[2])["alerts"], 5, what="Conn resolved")
            wait_for(lambda: not [x for x in json.load(open(path))["alerts"]], 5, what="the file without it")
        finally:
            self.assertEqual(a.stop(), 0)  # alive, clean exit (the sanitizer build: no read past the rules)
        # a fingerprint that is not hex: the file is malformed, moved aside
        st["alerts"] = st["alerts"][:1]
        st["alerts"][0]["alert"]["fp"] = 'a","x":1,"\r\nX:yz'
        with open(path, "w") as f:
            json.dump(st, f)
        a = Agent(self.tmp.path, inst, defaults=defaults, extra={"alerts": cfg})
        try:
            wait_for(lambda: "an entry is malformed" in a.log_text(), 5, what="the bad fingerprint refused")
        finally:
            self.assertEqual(a.stop(), 0)
            s.stop()

    def test_corrupt_state_file_is_moved_aside(self):
        s = RedisServer(self.tmp.path, "r")
        state = os.path.join(self.tmp.path, "state")
        os.makedirs(state)
        inst = [{"name": "r", "address": "127.0.0.1:%d" % s.port}]
        for bad in (b'{"version":1,"seq":3,"alerts":[{"instance":"r","ru', b"\x00\xff garbage",
                    b'{"version":1,"seq":0,"alerts":[{"instance":"r"}],"episodes":[],"resolved":[],"outbox":{}}'):
            with open(os.path.join(state, "alerts.json"), "wb") as f:
                f.write(bad)
            a = Agent(self.tmp.path, inst, defaults={"interval": "500ms", "timeout": "300ms"},
                      extra={"alerts": {"state_dir": state}})
            try:
                wait_for(lambda: "moved to" in a.log_text(), 5, what="the corrupt state file logged")
                aside = [f for f in os.listdir(state) if f.startswith("alerts.json.corrupt-")]
                self.assertTrue(aside, os.listdir(state))
                with open(os.path.join(state, aside[0]), "rb") as f:
                    self.assertEqual(f.read(), bad)  # kept for a human to look at
                os.unlink(os.path.join(state, aside[0]))
                # the agent runs, with empty state, and writes a good file
                wait_for(lambda: a.instance("r")["up"], 5, what="polls")
                with open(os.path.join(state, "alerts.json")) as f:
                    self.assertEqual(json.load(f)["alerts"], [])
            finally:
                self.assertEqual(a.stop(), 0)
        s.stop()

    BLOCKED = [{"name": "Blocked", "figure": "info.clients.blocked_clients", "op": ">=", "threshold": 1}]

    @staticmethod
    def saved_rules(path):
        """The rules of the alerts in state file path; None while it is missing."""
        try:
            with open(path) as f:
                return [x["rule"] for x in json.load(f)["alerts"]]
        except FileNotFoundError:
            return None

    def blocked_agent(self, s, state):
        """An agent on server s whose one rule, Blocked, keeps its state in state."""
        cfg = {"builtin": False, "state_dir": state, "rules": self.BLOCKED}
        return Agent(self.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % s.port}],
                     defaults={"interval": "300ms", "timeout": "200ms"}, extra={"alerts": cfg})

    def stop_all(self, a, s, b):
        """Ends a test: the blocker b (if any), the agent a (clean exit), the server s."""
        if b:
            b.close()
        self.assertEqual(a.stop(), 0)
        s.stop()

    def test_unreadable_state_file_is_moved_aside_not_overwritten(self):
        """alerts.json a symlink to a file that is not there: fopen says
        ENOENT as for no file at all, so the agent started empty without a
        word and its first write replaced the symlink (the state it pointed
        to, on a disk not mounted yet, was lost). A state path that exists
        but cannot be read is moved aside as a corrupt one, the reason
        logged."""
        s = RedisServer(self.tmp.path, "r")
        state = os.path.join(self.tmp.path, "state")
        os.makedirs(state)
        path = os.path.join(state, "alerts.json")
        target = os.path.join(self.tmp.path, "not-mounted", "alerts.json")
        os.symlink(target, path)
        a = self.blocked_agent(s, state)
        b = None
        try:
            wait_for(lambda: "moved to" in a.log_text(), 5, what="the dangling symlink moved aside")
            line = [x for x in a.log_text().splitlines() if "moved to" in x][0]
            self.assertIn(path, line)
            self.assertIn("cannot be read: No such file or directory", line)  # the reason, strerror's words
            aside = [f for f in os.listdir(state) if f.startswith("alerts.json.corrupt-")]
            self.assertEqual(len(aside), 1, os.listdir(state))
            self.assertEqual(os.readlink(os.path.join(state, aside[0])), target)  # the symlink itself, kept
            b = Blocker(s.port)
            wait_for(lambda: self.saved_rules(path) == ["Blocked"], 5, what="the alert in the new state file")
            self.assertFalse(os.path.islink(path))
            self.assertTrue(os.path.isfile(path))
        finally:
            self.stop_all(a, s, b)

    def test_state_dir_deleted_at_run_time_is_made_again(self):
        """state_dir deleted while the agent runs (a cleanup job, a tmpfs
        remounted): it was made only at start, so every write failed with
        ENOENT until a restart. The write makes it again and goes on."""
        s = RedisServer(self.tmp.path, "r")
        state = os.path.join(self.tmp.path, "state")
        path = os.path.join(state, "alerts.json")
        a = self.blocked_agent(s, state)
        b = None
        try:
            wait_for(lambda: value(a.metrics(), "redpulse_alert_state_writes_total") >= 1, 5, what="the first write")
            log = a.log_text()
            self.assertNotIn("moved to", log)  # nothing at the path: a first start, silent
            self.assertNotIn("cannot read state file", log)
            shutil.rmtree(state)
            b = Blocker(s.port)
            wait_for(lambda: self.saved_rules(path) == ["Blocked"], 5, what="alerts.json again, with the alert")
            self.assertIn("state_dir %s was gone: made it again" % state, a.log_text())
            self.assertEqual(value(a.metrics(), "redpulse_alert_state_write_failures_total"), 0)
        finally:
            self.stop_all(a, s, b)

    def test_state_write_failures_are_counted_and_recover(self):
        """state_dir replaced by a regular file: every write fails (ENOTDIR),
        is counted and retried every second, warned of once; once the file
        is gone the agent makes the directory again, a write succeeds, the
        failures stop and "resumed" is logged."""
        s = RedisServer(self.tmp.path, "r")
        state = os.path.join(self.tmp.path, "state")
        path = os.path.join(state, "alerts.json")
        a = self.blocked_agent(s, state)
        failures = lambda: value(a.metrics(), "redpulse_alert_state_write_failures_total")  # noqa: E731
        writes = lambda: value(a.metrics(), "redpulse_alert_state_writes_total")  # noqa: E731
        b = None
        try:
            wait_for(lambda: writes() >= 1, 5, what="the first write")
            self.assertEqual(failures(), 0)
            shutil.rmtree(state)
            with open(state, "w") as f:
                f.write("not a directory\n")
            w = writes()
            b = Blocker(s.port)  # Blocked fires: a write that must fail
            wait_for(lambda: failures() >= 3, 10, what="failed writes, retried")
            self.assertEqual(writes(), w)
            log = a.log_text()
            self.assertIn("cannot write state file %s: Not a directory" % path, log)
            self.assertEqual(log.count("cannot write state file"), 1, "rate-limited: one warning, not one a second")
            os.unlink(state)
            wait_for(lambda: self.saved_rules(path) == ["Blocked"], 5, what="the alert written once the file is gone")
            wait_for(lambda: "alert state writes resumed" in a.log_text(), 5, what="resumed logged")
            self.assertGreater(writes(), w)
            f = failures()
            time.sleep(2.5)  # two retry periods and more
            self.assertEqual(failures(), f, "no failure after the good write")
            self.assertEqual(a.log_text().count("alert state writes resumed"), 1)
        finally:
            self.stop_all(a, s, b)


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def notif(fp, seq, t, resolved=False, **kw):
    """One outbox entry of the state file, as the agent writes them."""
    n = {"fp": fp, "seq": seq, "created": t, "episode": 1, "resolved": resolved, "starts_at": t,
         "ends_at": t if resolved else 0, "interval": 1, "labels": {"alertname": "Edited", "n": fp},
         "annotations": {}}
    n.update(kw)
    return n


class StateAndRouting(unittest.TestCase):
    """What a state file edited by hand and receivers that move (a
    restart, a reload, a silence) do to who is told what (review)."""

    def setUp(self):
        self.tmp = Tmp()
        self.redis = RedisServer(self.tmp.path, "r")
        self.state = os.path.join(self.tmp.path, "state")
        self.recv = []

    def tearDown(self):
        for r in self.recv:
            r.close()
        self.redis.stop()
        self.tmp.cleanup()

    def receiver(self):
        r = Receiver()
        r.up()
        self.recv.append(r)
        return r

    @staticmethod
    def hook(name, r, **kw):
        return dict({"name": name, "type": "webhook", "url": "http://127.0.0.1:%d/h" % r.port, "timeout": "1s",
                     "max_backoff": "2s"}, **kw)

    def agent(self, receivers, rules=(), extra=None):
        cfg = {"builtin": False, "state_dir": self.state, "receivers": receivers, "rules": list(rules)}
        cfg.update(extra or {})
        return Agent(self.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % self.redis.port}],
                     defaults={"interval": "200ms", "timeout": "150ms"}, extra={"alerts": cfg}, log_level="info")

    def write_state(self, doc):
        os.makedirs(self.state, exist_ok=True)
        with open(os.path.join(self.state, "alerts.json"), "w") as f:
            json.dump(doc, f)

    def test_edited_outbox_is_delivered_once_with_valid_times(self):
        """seq values that do not rise kept a delivered batch in its queue:
        the same request again at once, forever (about 2,200 a second);
        times far out of range were undefined behaviour and came out as
        "-219246529-65409-22096T08:29:52.-214748"; more entries than
        queue_size were pushed through the queue one by one."""
        now = time.time()
        h = self.receiver()
        odd = [notif("%016x" % 1, 2, now), notif("%016x" % 2, 1, now), notif("%016x" % 3, 0, now),
               notif("%016x" % 4, 0, 1e300, resolved=True, starts_at=-1e300, ends_at=1e300)]
        self.write_state({"version": 1, "seq": 0, "clean": True, "alerts": [], "episodes": [], "resolved": [],
                          "outbox": {"h": odd}})
        a = self.agent([self.hook("h", h)])
        try:
            wait_for(lambda: len(h.delivered()) >= 4, 5, what="the restored outbox")
            time.sleep(1)  # a loop would have sent thousands by now
            with h.lock:
                n_req = len(h.log)
            self.assertLessEqual(n_req, 4)
            self.assertEqual(sorted(fp for fp, _, _ in h.delivered()), ["%016x" % i for i in (1, 2, 3, 4)])
            for r in h.log:
                for al in r["body"]["alerts"]:
                    for k in ("startsAt", "endsAt"):
                        self.assertRegex(al[k], RFC3339)
                        self.assertLessEqual(al[k][:4], time.strftime("%Y"), al)  # never later than now
        finally:
            self.assertEqual(a.stop(), 0)
        self.write_state({"version": 1, "seq": 0, "clean": True, "alerts": [], "episodes": [], "resolved": [],
                          "outbox": {"h": [notif("%016x" % i, i, now) for i in range(1, 2001)]}})
        t = time.monotonic()
        a = self.agent([self.hook("h", h, queue_size=100)])
        try:
            wait_for(lambda: "the 1900 oldest are dropped" in a.log_text(), 5, what="the overflow said")
            self.assertIn("100 undelivered notifications", a.log_text())
            self.assertLess(time.monotonic() - t, 5)
        finally:
            self.assertEqual(a.stop(), 0)

    def test_receiver_added_while_stopped_is_told(self):
        """The state file said nothing of who was told, so a restart took
        every receiver as told: one added while the agent was stopped never
        got the firing, and later got a resolved for an alert it never saw."""
        x, y = self.receiver(), self.receiver()
        rule = {"name": "Conn", "figure": "info.clients.connected_clients", "op": ">=", "threshold": 1}
        a = self.agent([self.hook("x", x)], [rule])
        wait_for(lambda: x.delivered(), 5, what="x told")
        self.assertEqual(a.stop(), 0)
        a = self.agent([self.hook("x", x), self.hook("y", y)], [rule])
        try:
            wait_for(lambda: y.delivered(), 5, what="y told of what fires")
            self.assertEqual([st for _, _, st in y.delivered()], ["firing"])
            time.sleep(0.5)
            self.assertEqual([st for _, _, st in x.delivered()], ["firing"])  # x: not told twice
        finally:
            self.assertEqual(a.stop(), 0)

    def test_no_lone_resolved_for_a_receiver_never_told(self):
        """An alert that ended while the agent was stopped resolves at the
        first poll: the receiver told of it gets the end, one added while
        the agent was stopped gets nothing (it got a resolved for an alert
        it never saw)."""
        x, y = self.receiver(), self.receiver()
        b = Blocker(self.redis.port)
        rule = {"name": "Blocked", "figure": "info.clients.blocked_clients", "op": ">=", "threshold": 1}
        a = self.agent([self.hook("x", x)], [rule])
        wait_for(lambda: x.delivered(), 5, what="x told")
        self.assertEqual(a.stop(), 0)
        b.close()
        a = self.agent([self.hook("x", x), self.hook("y", y)], [rule])
        try:
            wait_for(lambda: [st for _, _, st in x.delivered()] == ["firing", "resolved"], 5, what="x told of the end")
            time.sleep(0.5)
            self.assertEqual(y.delivered(), [])
        finally:
            self.assertEqual(a.stop(), 0)

    def test_resolved_reaches_everyone_told(self):
        """A reload that moved a firing alert from x to y, and a silence
        added after it fired at z: the resolved went only to the routes of
        the moment, unsilenced, so x and z kept a firing alert forever."""
        x, y, z = self.receiver(), self.receiver(), self.receiver()
        b = Blocker(self.redis.port)
        rules = [{"name": "Blocked", "figure": "info.clients.blocked_clients", "op": ">=", "threshold": 1,
                  "receivers": ["x", "z"]}]
        recvs = [self.hook("x", x), self.hook("y", y), self.hook("z", z)]
        a = self.agent(recvs, rules)
        try:
            wait_for(lambda: x.delivered() and z.delivered(), 5, what="x and z told")
            rules[0]["receivers"] = ["y"]
            sil = {"matchers": {"alertname": "Blocked"}, "starts_at": "2020-01-01T00:00:00Z",
                   "ends_at": "2100-01-01T00:00:00Z"}
            cfg = dict(a.cfg, alerts={"builtin": False, "state_dir": self.state, "receivers": recvs,
                                      "rules": rules, "silences": [sil]})
            with open(a.path, "w") as f:
                json.dump(cfg, f)
            a.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "configuration reloaded" in a.log_text(), 5, what="the reload")
            b.close()
            b = None
            wait_for(lambda: [st for _, _, st in x.delivered()] == ["firing", "resolved"] and
                     [st for _, _, st in z.delivered()] == ["firing", "resolved"], 6, what="x and z told of the end")
            self.assertEqual(y.delivered(), [])  # silenced where it goes now: y never saw it fire, nor end
        finally:
            if b:
                b.close()
            self.assertEqual(a.stop(), 0)

    def test_undelivered_at_stop_is_said(self):
        """What the stop's grace did not get out stays in the outbox for the
        next start, and the log says how much (it said nothing)."""
        h = Receiver()  # down: connections refused
        self.recv.append(h)
        rule = {"name": "Conn", "figure": "info.clients.connected_clients", "op": ">=", "threshold": 1}
        a = self.agent([self.hook("h", h)], [rule])
        wait_for(lambda: "retry" in a.log_text(), 5, what="a failed attempt")
        self.assertEqual(a.stop(), 0)
        self.assertIn('receiver "h": 1 undelivered notifications at stop, left in the outbox', a.log_text())
        with open(os.path.join(self.state, "alerts.json")) as f:
            self.assertEqual(len(json.load(f)["outbox"]["h"]), 1)

    def test_repeats_have_keys_of_their_own(self):
        """repeat_interval re-sends reused the first Idempotency-Key: a
        receiver that drops keys it has seen (as the docs advise) dropped
        every repeat."""
        h = self.receiver()
        rule = {"name": "Conn", "figure": "info.clients.connected_clients", "op": ">=", "threshold": 1}
        a = self.agent([self.hook("h", h, repeat_interval="1s")], [rule])
        try:
            wait_for(lambda: len(h.log) >= 3, 8, what="two repeats")
            keys = [r["key"] for r in h.log[:3]]
            self.assertEqual(len(set(keys)), 3, keys)
            self.assertRegex(keys[0], r"^[0-9a-f]{16}-1-firing$")
            self.assertRegex(keys[1], r"^[0-9a-f]{16}-1-firing-repeat-\d+$")
        finally:
            self.assertEqual(a.stop(), 0)


if __name__ == "__main__":
    unittest.main()
