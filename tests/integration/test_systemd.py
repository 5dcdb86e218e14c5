#!/usr/bin/env python3
"""The systemd notification protocol, read from a fake $NOTIFY_SOCKET (a
datagram socket this test binds) with WATCHDOG_USEC set: READY=1 only after
the first round of polls, STATUS= with instances up/total, WATCHDOG=1 at
half the interval and none while the poll loop is stalled, RELOADING=1
(with MONOTONIC_USEC=) then READY=1 around SIGHUP, STOPPING=1 and a clean
exit 0 on SIGTERM within a few seconds even with a hung peer and a hung
HTTP client.

The stall is a real one, not a test hook: the configuration file is
replaced by a FIFO, so the reload blocks the loop thread in open(2) until
the test writes the file into it. Meanwhile the HTTP threads still answer,
so the watchdog's silence shows it is fed by the loop itself."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakepeer import FakePeer  # noqa: E402
from harness import BIN, Agent, RedisServer, Tmp, free_port, wait_for  # noqa: E402

WATCHDOG_USEC = 400000  # pings expected every 0.2 s
HANG_TIMEOUT = 0.8      # the hung peer's first poll ends after this


class Listener:
    """Collects (monotonic time, message) from a datagram socket."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.msgs = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.msgs.append((time.monotonic(), data.decode()))

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()

    def find(self, pred, after=0.0):
        return [(t, m) for t, m in list(self.msgs) if t >= after and pred(m)]

    def first(self, text, after=0.0, within=10):
        return wait_for(lambda: (self.find(lambda m: text in m.split("\n"), after) or [None])[0], within,
                        what="%r on the notify socket" % text)

    def watchdogs(self, a, b):
        return [t for t, m in self.find(lambda m: m == "WATCHDOG=1", a) if t <= b]


class Notify(unittest.TestCase):
    def setUp(self):
        self.tmp = Tmp()
        self.redis = RedisServer(self.tmp.path, "r")
        self.hang = FakePeer("hang")
        self.ns = Listener(os.path.join(self.tmp.path, "notify.sock"))

    def tearDown(self):
        self.ns.close()
        self.hang.stop()
        self.redis.stop()
        self.tmp.cleanup()

    def start(self, notify_socket, alerts=None, watchdog_usec=WATCHDOG_USEC):
        self.t0 = time.monotonic()
        insts = [{"name": "r", "address": "127.0.0.1:%d" % self.redis.port},
                 {"name": "hung", "address": "127.0.0.1:%d" % self.hang.port,
                  "timeout": "%dms" % (HANG_TIMEOUT * 1000)}]
        # no built-in rules unless asked: STATUS= is compared to the letter
        return Agent(self.tmp.path, insts, defaults={"interval": "1s", "timeout": "500ms"},
                     extra={"alerts": alerts or {"builtin": False}},
                     env={"NOTIFY_SOCKET": notify_socket, "WATCHDOG_USEC": str(watchdog_usec)}, log_level="info")

    def test_status_counts_firing_alerts(self):
        rule = {"name": "Reachable", "figure": "up", "op": "==", "threshold": 1}
        ag = self.start(os.path.join(self.tmp.path, "notify.sock"), {"builtin": False, "rules": [rule]})
        self.ns.first("STATUS=1/2 instances up, 1 alert firing")
        self.redis.stop()  # no longer up: the alert resolves, STATUS says so within a second or two
        self.ns.first("STATUS=0/2 instances up", time.monotonic())
        self.assertEqual(ag.stop(), 0)

    def test_lifecycle(self):
        ag = self.start(os.path.join(self.tmp.path, "notify.sock"))
        # READY only once every instance has finished a poll: the hung one
        # ends its first poll at its timeout, after HTTP already answers
        t_ready, msg = self.ns.first("READY=1")
        self.assertGreaterEqual(t_ready - self.t0, HANG_TIMEOUT - 0.05)
        self.assertIn("STATUS=1/2 instances up", msg)
        self.assertEqual(self.ns.find(lambda m: "READY=1" in m.split("\n"), 0)[0][0], t_ready)
        for j in ag.instance_list():
            self.assertIsNotNone(j["last_poll_timestamp"], j)

        # WATCHDOG=1 at half WATCHDOG_USEC
        time.sleep(1.5)
        now = time.monotonic()
        w = self.ns.watchdogs(now - 1.4, now)
        gaps = [b - a for a, b in zip(w, w[1:])]
        self.assertGreaterEqual(len(w), 5, w)
        self.assertLess(max(gaps), WATCHDOG_USEC / 1e6 * 0.9, gaps)
        self.assertGreater(sum(gaps) / len(gaps), WATCHDOG_USEC / 1e6 / 2 * 0.6, gaps)

        # STATUS follows the instances
        self.redis.stop()
        self.ns.first("STATUS=0/2 instances up", now)

        # a stalled loop sends no WATCHDOG while HTTP threads run on
        with open(ag.path) as f:
            cfg = f.read()
        os.unlink(ag.path)
        os.mkfifo(ag.path)
        t_hup = time.monotonic()
        ag.proc.send_signal(signal.SIGHUP)
        t_rel, msg = self.ns.first("RELOADING=1", t_hup)
        mono = int(dict(kv.split("=", 1) for kv in msg.split("\n"))["MONOTONIC_USEC"])
        self.assertLess(abs(mono / 1e6 - t_rel), 0.5, "MONOTONIC_USEC is CLOCK_MONOTONIC")
        time.sleep(0.3)  # the loop is now blocked in open() of the FIFO
        t_stall = time.monotonic()
        for _ in range(5):
            self.assertEqual(ag.get("/healthz")[0], 200)
            time.sleep(0.2)
        t_end = time.monotonic()
        self.assertEqual(self.ns.watchdogs(t_stall, t_end), [], "watchdog fed while the loop was stalled")
        self.assertEqual(self.ns.find(lambda m: "READY=1" in m.split("\n"), t_hup), [])
        with open(ag.path, "w") as f:  # unblocks the reload
            f.write(cfg)
        t_r2, msg = self.ns.first("READY=1", t_end)
        self.assertGreater(t_r2, t_rel)
        self.ns.first("WATCHDOG=1", t_r2)
        os.unlink(ag.path)
        with open(ag.path, "w") as f:
            f.write(cfg)

        # STOPPING=1 and exit 0
        t_stop = time.monotonic()
        self.assertEqual(ag.stop(), 0, ag.log_text())
        self.ns.first("STOPPING=1", t_stop, within=1)

    def test_abstract_socket_and_bounded_stop(self):
        name = "redpulse-test-%d" % os.getpid()
        self.ns.close()
        self.ns = Listener("\0" + name)
        ag = self.start("@" + name)
        self.ns.first("READY=1")
        # a hung HTTP client (half a request) and a hung Redis peer in mid-poll
        hung = socket.create_connection(("127.0.0.1", ag.port))
        hung.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        t = time.monotonic()
        ag.proc.send_signal(signal.SIGTERM)
        rc = ag.proc.wait(10)
        took = time.monotonic() - t
        hung.close()
        ag.logf.close()
        self.assertEqual(rc, 0, ag.log_text())
        self.assertLess(took, 5, "stop took %.1fs" % took)
        self.ns.first("STOPPING=1", t, within=1)

    def test_abstract_name_filling_sun_path(self):
        """An abstract name may use all 108 bytes of sun_path (no NUL)."""
        name = ("redpulse-test-%d-" % os.getpid()).ljust(107, "x")
        self.ns.close()
        self.ns = Listener("\0" + name)
        ag = self.start("@" + name)
        self.ns.first("READY=1")
        self.assertEqual(ag.stop(), 0, ag.log_text())
        self.assertNotIn("NOTIFY_SOCKET", ag.log_text())

    def test_notify_socket_path_too_long(self):
        """A path that does not fit sun_path is refused with its length."""
        path = "/" + "x" * 107
        ag = self.start(path)
        self.assertEqual(ag.stop(), 0, ag.log_text())
        self.assertIn("NOTIFY_SOCKET=\"%s\" is 108 bytes: a socket address holds at most 107" % path, ag.log_text())

    def test_ready_not_delivered_is_said(self):
        """READY=1 that systemd never got is a start it waits out: the log
        says so at warning level (it was at debug level only)."""
        path = os.path.join(self.tmp.path, "nobody-listens.sock")
        ag = self.start(path)
        wait_for(lambda: "ready:" in ag.log_text(), 10, what="the first round")
        self.assertEqual(ag.stop(), 0, ag.log_text())
        self.assertRegex(ag.log_text(), r"warn systemd: notification READY=1 not sent to %s: No such file" %
                         re.escape(path))
        self.assertRegex(ag.log_text(), r"warn systemd: notification STOPPING=1 not sent")

    def test_tiny_watchdog_interval(self):
        """WATCHDOG_USEC=1: half of it is no time at all, and a timer of
        zero was never armed again (two pings, then systemd's kill). The
        agent pings as often as it can, every millisecond."""
        ag = self.start(os.path.join(self.tmp.path, "notify.sock"), watchdog_usec=1)
        self.ns.first("READY=1")
        t = time.monotonic()
        time.sleep(0.5)
        self.assertGreater(len(self.ns.watchdogs(t, t + 0.5)), 20)
        self.assertEqual(ag.stop(), 0, ag.log_text())

    def test_sighup_while_stopping(self):
        """A reload asked for while the agent stops is dropped: the process
        still exits 0. Under a flood of SIGHUP, before and during the stop:
        each signal used to be a reload of its own, queued behind the stop
        for tens of seconds, and the signals landing on libmicrohttpd's
        threads woke them into a race with the stop that aborted the process
        (exit -6). The signals are now read on the loop: a burst is one
        reload, and no other thread sees them."""
        ag = self.start(os.path.join(self.tmp.path, "notify.sock"))
        self.ns.first("READY=1")
        sent, end = 0, time.monotonic() + 0.5
        while time.monotonic() < end:
            os.kill(ag.proc.pid, signal.SIGHUP)
            sent += 1
        t = time.monotonic()
        ag.proc.send_signal(signal.SIGTERM)
        while ag.proc.poll() is None:  # as many as can be sent, up to the exit
            try:
                os.kill(ag.proc.pid, signal.SIGHUP)
            except ProcessLookupError:
                break
        rc = ag.proc.wait(20)
        took = time.monotonic() - t
        ag.logf.close()
        text = ag.log_text()
        reloads = text.count("configuration reloaded")
        tail = "\n".join(ln for ln in text.splitlines() if "SIGHUP" not in ln and "reloaded" not in ln)[-3000:]
        self.assertEqual(rc, 0, tail)
        self.assertLess(took, 10, tail)
        self.assertGreaterEqual(reloads, 1, tail)
        self.assertLess(reloads, sent, tail)


class Stop(unittest.TestCase):
    def test_stop_finishes_responses_in_flight(self):
        """A slow reader in the middle of a large /metrics when SIGTERM
        comes still gets the whole body; then the process exits 0."""
        tmp = Tmp()
        redis = RedisServer(tmp.path, "r")
        try:
            insts = [{"name": "i%03d" % k, "address": "127.0.0.1:%d" % redis.port} for k in range(300)]
            ag = Agent(tmp.path, insts, defaults={"interval": "2s", "timeout": "1s"}, log_level="info")
            wait_for(lambda: ag.get("/readyz")[0] == 200, 20, what="ready")
            # a small receive window holds most of the body in the server
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.connect(("127.0.0.1", ag.port))
            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = c.recv(4096)
            ag.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)  # the server is stopping now; then we read on, faster
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                data += d
            c.close()
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))
            self.assertGreater(length, 1 << 20, "a body larger than the socket buffers")
            self.assertEqual(len(body), length)
            self.assertTrue(body.endswith(b"\n"))
            self.assertEqual(ag.proc.wait(10), 0, ag.log_text())
            ag.logf.close()
        finally:
            redis.stop()
            tmp.cleanup()


class Logging(unittest.TestCase):
    """Line shapes: journald (priority prefix, no timestamp) when stderr is
    the stream $JOURNAL_STREAM names, timestamps otherwise, JSON on request;
    a failure that goes on is a warning once."""

    def run_agent(self, args=(), journal=None):
        tmp = Tmp()
        self.addCleanup(tmp.cleanup)
        cfg = os.path.join(tmp.path, "c.json")
        port = free_port()
        with open(cfg, "w") as f:  # nothing listens on the instance's port: it fails every poll
            json.dump({"listen": "127.0.0.1:%d" % port,
                       "instances": [{"name": "down", "address": "127.0.0.1:%d" % free_port(),
                                      "interval": "200ms", "timeout": "100ms"}]}, f)
        log = os.path.join(tmp.path, "log")
        with open(log, "w") as lf:
            env = dict(os.environ)
            env.pop("JOURNAL_STREAM", None)
            if journal == "same":
                st = os.fstat(lf.fileno())
                env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
            elif journal == "other":
                env["JOURNAL_STREAM"] = "1:2"
            p = subprocess.Popen([BIN, "--config", cfg] + list(args), stdout=lf, stderr=subprocess.STDOUT, env=env)
        try:
            # several failed polls, then a clean stop
            def polls():
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                    m = re.search(r'^redpulse_polls_total\{target="down"\} (\d+)', r.read().decode(), re.M)
                return m and int(m.group(1)) >= 6
            wait_for(polls, 15, what="6 failed polls")
        finally:
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(10), 0)
        with open(log) as f:
            return f.read().splitlines()

    def test_journal(self):
        lines = self.run_agent(journal="same")
        self.assertTrue(all(re.match(r"^<[3467]>[a-z]+: ", ln) for ln in lines), lines)
        self.assertIn("<4>poller: down: poll failed (connect_refused): Connection refused", lines)
        self.assertTrue(any(ln.startswith("<6>main: signal 15: stopping") for ln in lines), lines)
        # 6+ failed polls, one warning: the rest are debug (not shown at info)
        self.assertEqual(sum("poll failed" in ln for ln in lines), 1, lines)

    def test_text_when_stderr_is_not_the_journal(self):
        for journal in (None, "other"):
            lines = self.run_agent(journal=journal)
            self.assertTrue(all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (error|warn|info|debug) [a-z]+: ", ln)
                                for ln in lines), lines)

    def test_json(self):
        lines = self.run_agent(["--log-format", "json", "--log-level", "debug"], journal="same")
        objs = [json.loads(ln) for ln in lines]
        self.assertTrue(all(set(o) == {"ts", "level", "subsys", "msg"} for o in objs), objs)
        self.assertIn({"level": "warn", "subsys": "poller",
                       "msg": "down: poll failed (connect_refused): Connection refused"},
                      [{k: o[k] for k in ("level", "subsys", "msg")} for o in objs])
        self.assertGreater(sum(o["msg"].startswith("down: poll failed again") for o in objs), 2)


# An error reply a hostile peer controls: quotes, a newline with a forged
# JSON line after it, control bytes, an escape sequence, bytes that are not
# UTF-8 (invalid lead bytes, an overlong form, a surrogate), and a real é.
HOSTILE = b'ERR say "hi"\n{"level":"error","msg":"forged"}\x01\x1b[31m \xff\xfe \xc0\xaf \xed\xa0\x80 caf\xc3\xa9'


class HostilePeer:
    """Answers every command with +OK, and INFO with the error above (flap:
    every other INFO with a real reply)."""

    def __init__(self, flap=False):
        self.flap = flap
        self.n_info = 0
        from fakepeer import FIXTURES, bulk
        with open(os.path.join(FIXTURES, "info-redis-7.0.15-master.txt"), "rb") as fh:
            self.info = bulk(fh.read())
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        from fakepeer import read_command
        f = c.makefile("rb")
        try:
            while True:
                cmd = read_command(f)
                if cmd is None:
                    return
                if cmd[0].upper() != "INFO":
                    c.sendall(b"+OK\r\n")
                    continue
                self.n_info += 1
                c.sendall(self.info if self.flap and self.n_info % 2 == 0 else b"-" + HOSTILE + b"\r\n")
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.sock.close()


class HostileLogText(unittest.TestCase):
    """Peer-controlled text in log lines: every line is UTF-8 (journald
    shows any other line as "[blob data]"), JSON lines parse, and nothing
    the peer sends forges a line."""

    def run_agent(self, fmt, flap=False, level="debug", n_polls=3):
        tmp = Tmp()
        self.addCleanup(tmp.cleanup)
        peer = HostilePeer(flap)
        self.addCleanup(peer.stop)
        cfg = os.path.join(tmp.path, "c.json")
        port = free_port()
        with open(cfg, "w") as f:
            json.dump({"listen": "127.0.0.1:%d" % port,
                       "instances": [{"name": "hostile", "address": "127.0.0.1:%d" % peer.port,
                                      "interval": "200ms", "timeout": "100ms"}]}, f)
        log = os.path.join(tmp.path, "log")
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        with open(log, "w") as lf:
            p = subprocess.Popen([BIN, "--config", cfg, "--log-level", level, "--log-format", fmt],
                                 stdout=lf, stderr=subprocess.STDOUT, env=env)
        try:
            def polled():
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                    m = re.search(r'^redpulse_polls_total\{target="hostile"\} (\d+)', r.read().decode(), re.M)
                return m and int(m.group(1)) >= n_polls
            wait_for(polled, 30, what="%d polls" % n_polls)
        finally:
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(10), 0)
        with open(log, "rb") as f:
            raw = f.read()
        for ln in raw.split(b"\n"):
            ln.decode("utf-8")  # strict: raises on a byte that is not UTF-8
        return raw.decode().splitlines()

    def test_json(self):
        objs = [json.loads(ln) for ln in self.run_agent("json")]
        self.assertTrue(all(set(o) == {"ts", "level", "subsys", "msg"} for o in objs), objs)
        want = "hostile: poll failed (error_reply): " + HOSTILE.decode("utf-8", "replace")
        self.assertIn(want, [o["msg"] for o in objs])
        self.assertFalse(any(o["msg"] == "forged" for o in objs))

    def test_text(self):
        lines = self.run_agent("text")
        self.assertTrue(all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (error|warn|info|debug) [a-z]+: ", ln)
                            for ln in lines), lines)
        want = ("hostile: poll failed (error_reply): ERR say \"hi\" {\"level\":\"error\",\"msg\":\"forged\"}  [31m"
                " ?? ?? ??? caf\u00e9")
        self.assertTrue(any(ln.endswith(want) for ln in lines), lines)


    def test_flapping_peer_is_not_logged_every_poll(self):
        """A peer failing every other poll: one warning, not one warning and
        one "recovered" line a poll pair for as long as it goes on."""
        lines = self.run_agent("text", flap=True, level="info", n_polls=20)
        # (a poll that times out under load is another kind of failure: warned)
        self.assertEqual(sum("hostile: poll failed (error_reply)" in ln for ln in lines), 1, lines)
        self.assertLessEqual(sum("hostile: recovered" in ln for ln in lines),
                             1 + sum("hostile: poll failed (timeout)" in ln for ln in lines), lines)


if __name__ == "__main__":
    unittest.main()
