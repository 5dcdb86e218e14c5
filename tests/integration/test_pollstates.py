#!/usr/bin/env python3
"""How a poll ends and what follows, proved at the wire: the reconnect
backoff of a failing instance (1, 2, 4 s ... capped at two intervals, with
+-20% jitter; skipped ticks open no connection and count no poll), the
reasons error_reply (-LOADING), connect_failed and auth (-NOAUTH with no
password configured), /readyz answering 503 until every instance has finished
its first poll, and the JSON promises (derived is null while an instance is
down; every figure of every group is present, null when unavailable, on every
poll)."""
import os
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fakepeer import FakePeer  # noqa: E402
from harness import Agent, RedisServer, Tmp, value, wait_for  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


class CountingPeer(FakePeer):
    """A fake peer that keeps the monotonic time of every accepted
    connection: the connect attempts, as the peer sees them."""

    def __init__(self, mode, **kw):
        self.accepts = []
        super().__init__(mode, **kw)

    def _serve(self, c):
        with self.lock:
            self.accepts.append(time.monotonic())
        super()._serve(c)


class LoadingPeer(FakePeer):
    """Answers INFO with -LOADING, as a server reading its dataset does."""

    def _answer(self, c, cmd):
        if cmd and cmd[0].upper() == "INFO":
            c.sendall(b"-LOADING Redis is loading the dataset in memory\r\n")
            return True
        return super()._answer(c, cmd)


def derived_figures():
    """{group: [json name, ...]} from include/derived.def: what every
    "derived" object must hold."""
    out = {}
    with open(os.path.join(ROOT, "include", "derived.def")) as f:
        for m in re.finditer(r'^D\(\w+, (\w+), "([^"]+)"', f.read(), re.M):
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


class Backoff(unittest.TestCase):
    def test_reconnect_schedule(self):
        """Attempts at a peer that fails every poll: the first retry at the
        next tick, then backoffs of 1, 2, 4 s capped at two intervals,
        each within +-20% (rounded up to the instance's next slot); nothing
        in between. A second, faster group shows the jitter spreading the
        capped retries."""
        tmp = Tmp()
        slow = CountingPeer("reset")                      # interval 2 s: cap 4 s
        fast = [CountingPeer("reset") for _ in range(4)]  # interval 100 ms: cap 200 ms
        insts = [{"name": "slow", "address": "127.0.0.1:%d" % slow.port, "interval": "2s", "timeout": "1s"}]
        insts += [{"name": "fast%d" % i, "address": "127.0.0.1:%d" % p.port, "interval": "100ms",
                   "timeout": "90ms"} for i, p in enumerate(fast)]
        agent = Agent(tmp.path, insts)
        try:
            wait_for(lambda: len(slow.accepts) >= 7, 40, step=0.1, what="7 attempts at the slow peer")
            polls = value(agent.metrics(), "redpulse_polls_total", target="slow")
            with slow.lock:
                at = list(slow.accepts)
            gaps = [b - a for a, b in zip(at, at[1:])]
            iv = 2.0
            # the backoff after the k-th consecutive failure (k from 1)
            backoffs = [0, 1.0, 2.0, 4.0, 4.0, 4.0]  # 2 intervals = 4 s: the cap
            # the peer's clock is a Python thread among others: 0.3 s slack,
            # still far from the neighbouring steps (an uncapped 8 s is 8 s+
            # on the 2 s slots)
            for k, (g, b) in enumerate(zip(gaps, backoffs), start=1):
                lo = max(iv, 0.8 * b) - 0.3            # the first slot at or after the retry time
                hi = max(iv, 1.2 * b) + iv + 0.3       # ... which is at most one interval later
                self.assertTrue(lo <= g <= hi, "gap %d: %.2fs, want %.2f..%.2f (all: %r)" % (k, g, lo, hi, gaps))
            # skipped ticks are really skipped: each attempt is one poll,
            # the ticks in between neither connect nor count as polls
            self.assertIn(polls, (len(at), len(at) - 1, len(at) + 1), (polls, len(at)))
            self.assertEqual(slow.connections, len(at))
            # jitter: the capped retries of the fast group come 160..240 ms
            # after a failure, so at the next slot of the 100 ms grid: 200 ms
            # when the jitter is under 1, 300 ms over it. Without jitter
            # every gap is the same (300 ms, measured: the retry time falls
            # just past a slot).
            capped = []
            for p in fast:
                with p.lock:
                    a = list(p.accepts)
                # the first retry comes at the next tick, every later one is capped
                capped += [y - x for x, y in zip(a[3:], a[4:])]
            self.assertGreaterEqual(len(capped), 40, capped)
            # the peers' clocks are Python threads: judge the bulk, not every sample
            inside = [g for g in capped if 0.15 <= g <= 0.35]
            self.assertGreaterEqual(len(inside), 0.9 * len(capped), capped)
            late = sum(1 for g in inside if g > 0.25) / len(inside)
            self.assertTrue(0.2 <= late <= 0.8, "%.2f of the capped gaps are 300 ms: %r" % (late, sorted(inside)))
            self.assertEqual(agent.stop(), 0)
        finally:
            if agent.proc.poll() is None:
                agent.stop()
            for p in [slow] + fast:
                p.stop()
            tmp.cleanup()


class Reasons(unittest.TestCase):
    def test_error_reply_connect_failed_noauth(self):
        tmp = Tmp()
        loading = LoadingPeer("ok")
        srv = RedisServer(tmp.path, "pw", args=["--requirepass", "only-the-server-knows"])
        agent = Agent(tmp.path, [
            {"name": "loading", "address": "127.0.0.1:%d" % loading.port},
            # TCP to a multicast address: the kernel refuses the connect
            # itself (ENETUNREACH), not the peer
            {"name": "unreachable", "address": "224.0.0.1:6379"},
            {"name": "nopass", "address": "127.0.0.1:%d" % srv.port},
        ], defaults={"interval": "300ms", "timeout": "250ms"})
        try:
            def reason(name, want):
                j = agent.instance(name)
                return j if j["reason"] == want else None
            j = wait_for(lambda: reason("loading", "error_reply"), 5, what="error_reply")
            self.assertFalse(j["up"])
            self.assertIn("LOADING", j["last_error"])
            j = wait_for(lambda: reason("unreachable", "connect_failed"), 5, what="connect_failed")
            self.assertFalse(j["up"])
            j = wait_for(lambda: reason("nopass", "auth"), 5, what="auth")
            self.assertFalse(j["up"])
            self.assertIn("NOAUTH", j["last_error"])
            # an error reply is an answer: the connection stays, polls go on
            wait_for(lambda: len(loading.info_commands()) >= 4, 5, what="more INFO on the loading peer")
            self.assertEqual(loading.connections, 1)
            m = agent.metrics()
            for name, r in (("loading", "error_reply"), ("unreachable", "connect_failed"), ("nopass", "auth")):
                self.assertGreaterEqual(value(m, "redpulse_poll_errors_total", target=name, reason=r), 1, name)
                self.assertEqual(value(m, "redpulse_last_poll_outcome", target=name, reason=r), 1, name)
                self.assertEqual(value(m, "redis_up", target=name), 0, name)
            self.assertEqual(agent.stop(), 0)
            self.assertNotIn("only-the-server-knows", agent.log_text())
        finally:
            if agent.proc.poll() is None:
                agent.stop()
            loading.stop()
            srv.stop()
            tmp.cleanup()


class Readiness(unittest.TestCase):
    def test_readyz_waits_for_every_first_poll(self):
        """One instance answers at once, the other's first poll is held by
        a peer that never answers INFO: /readyz is 503 until that poll ends
        (at its timeout), then 200."""
        tmp = Tmp()
        srv = RedisServer(tmp.path, "fast")
        hang = FakePeer("hang")
        agent = Agent(tmp.path, [
            {"name": "fast", "address": "127.0.0.1:%d" % srv.port},
            {"name": "held", "address": "127.0.0.1:%d" % hang.port, "interval": "5s", "timeout": "3s"},
        ], defaults={"interval": "500ms", "timeout": "400ms"})
        try:
            wait_for(lambda: agent.instance("fast")["up"], 5, what="fast up")
            # the held poll is in progress: its INFO reached the peer
            wait_for(lambda: hang.info_commands(), 6, what="INFO at the hanging peer")
            seen = {"503": 0}
            while True:
                status = agent.get("/readyz")[0]
                held = agent.instance("held")
                if status == 200:
                    # ready only once the held instance has a finished poll
                    self.assertIsNotNone(held["last_poll_timestamp"])
                    self.assertEqual(held["reason"], "timeout")
                    break
                self.assertEqual(status, 503)
                seen["503"] += 1
                if held["last_poll_timestamp"] is not None:
                    # its poll just ended: ready from now on
                    wait_for(lambda: agent.get("/readyz")[0] == 200, 2, what="/readyz 200 after the first poll")
                    break
                time.sleep(0.1)
            self.assertGreaterEqual(seen["503"], 3, "503 while the first poll was held")
            self.assertEqual(agent.get("/readyz")[0], 200)
            self.assertEqual(agent.get("/healthz")[0], 200)
            self.assertEqual(agent.stop(), 0)
        finally:
            if agent.proc.poll() is None:
                agent.stop()
            hang.stop()
            srv.stop()
            tmp.cleanup()


class JsonPromises(unittest.TestCase):
    def test_derived_shape_on_every_poll(self):
        """On every poll: every group of derived.def with every figure
        (null allowed, absent not); while down, derived is null; after the
        server comes back, the same shape again."""
        figures = derived_figures()
        self.assertGreaterEqual(len(figures), 8)
        tmp = Tmp()
        srv = RedisServer(tmp.path, "j")
        agent = Agent(tmp.path, [{"name": "j", "address": "127.0.0.1:%d" % srv.port}],
                      defaults={"interval": "300ms", "timeout": "250ms"})
        seen = {}
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                j = agent.instance("j")
                seen.setdefault(j["last_poll_timestamp"], j)
                time.sleep(0.02)
        th = threading.Thread(target=watch, daemon=True)
        th.start()
        try:
            c = srv.client()
            c.pipeline([("SET", "k%d" % i, "v") for i in range(100)])
            c.close()
            wait_for(lambda: sum(1 for j in list(seen.values()) if j["up"]) >= 4, 10, what="4 polls up")
            srv.kill()
            wait_for(lambda: sum(1 for j in list(seen.values()) if j["last_poll_timestamp"] and not j["up"]) >= 3,
                     10, what="3 polls down")
            srv.start()
            t_back = time.time()
            wait_for(lambda: sum(1 for j in list(seen.values()) if j["up"] and j["last_poll_timestamp"] > t_back) >= 3,
                     15, what="3 polls after the restart")
            stop.set()
            th.join(5)
            ups = downs = 0
            for ts, j in seen.items():
                if ts is None:
                    continue
                if not j["up"]:
                    downs += 1
                    self.assertIsNone(j["derived"], j)
                    continue
                ups += 1
                d = j["derived"]
                self.assertIsInstance(d, dict, j)
                self.assertIn(d["event"], ("first", "ok", "restart", "reset"))
                self.assertIn("interval_seconds", d)
                for group, names in figures.items():
                    self.assertIsInstance(d.get(group), dict, (group, d))
                    missing = [n for n in names if n not in d[group]]
                    self.assertEqual(missing, [], (group, ts))
                    for n in names:
                        v = d[group][n]
                        self.assertTrue(v is None or isinstance(v, (int, float)), (group, n, v))
                # figures always available from one sample are never null
                self.assertIsNotNone(d["memory"]["fragmentation_ratio"])
                self.assertIsNotNone(d["rdb"]["last_bgsave_ok"])
                if d["event"] != "ok":  # a new baseline: no rates
                    self.assertIsNone(d["throughput"]["commands_per_second"])
                else:
                    self.assertIsNotNone(d["throughput"]["commands_per_second"])
            self.assertGreaterEqual(ups, 7)
            self.assertGreaterEqual(downs, 3)
            self.assertEqual(agent.stop(), 0)
        finally:
            stop.set()
            if agent.proc.poll() is None:
                agent.stop()
            srv.stop()
            tmp.cleanup()


if __name__ == "__main__":
    harness.main()
