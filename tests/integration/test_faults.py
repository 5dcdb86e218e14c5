#!/usr/bin/env python3
"""Faults on the Redis side: each ends its poll within the timeout with
redis_up 0 and the right reason, while a healthy real instance polled by
the same agent keeps its schedule; the agent recovers when the fault ends."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fakepeer import FakePeer  # noqa: E402
from harness import Agent, RedisServer, Tmp, free_port, promtool_check, value, wait_for  # noqa: E402

INTERVAL = 1.0
TIMEOUT = 0.5


class Faults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        cls.healthy = RedisServer(cls.tmp.path, "healthy")
        cls.peers = {m: FakePeer(m) for m in ("garbage", "drip", "reset", "huge", "hang", "halfclose", "redis6", "ok")}
        cls.peers["redis6"] = FakePeer("redis6", "info-redis-6.2.0.txt")
        cls.refused_port = free_port()
        insts = [{"name": "healthy", "address": "127.0.0.1:%d" % cls.healthy.port}]
        insts += [{"name": m, "address": "127.0.0.1:%d" % p.port} for m, p in cls.peers.items()]
        insts.append({"name": "refused", "address": "127.0.0.1:%d" % cls.refused_port})
        insts.append({"name": "nodns", "address": "no-such-host.invalid:6379", "interval": "5s", "timeout": "4900ms"})
        insts.append({"name": "nosock", "address": "unix://" + os.path.join(cls.tmp.path, "missing.sock")})
        cls.agent = Agent(cls.tmp.path, insts, defaults={"interval": "1s", "timeout": "500ms"})

    @classmethod
    def tearDownClass(cls):
        for p in cls.peers.values():
            p.stop()
        rc = cls.agent.stop()
        cls.healthy.stop()
        log = cls.agent.log_text()
        cls.tmp.cleanup()
        assert rc == 0, log

    def reason(self, name, want, within):
        def check():
            j = self.agent.instance(name)
            return j if j["reason"] == want else None
        j = wait_for(check, within, what="%s reason %s" % (name, want))
        self.assertFalse(j["up"])
        return j

    def test_fault_reasons(self):
        deadline = TIMEOUT + INTERVAL + 0.5  # timeout plus one interval (+ scheduling slack)
        for name, want in (("garbage", "protocol"), ("reset", "closed"), ("huge", "reply_too_large"),
                           ("halfclose", "closed"),
                           ("hang", "timeout"), ("drip", "timeout"), ("refused", "connect_refused"),
                           ("nosock", "connect_refused")):
            self.reason(name, want, deadline + INTERVAL)
        # every poll ends by its deadline: the durations of the polls seen
        # over a few seconds, judged by their median (within 0.25 s of the
        # timeout) and their maximum (never into the next interval), so one
        # poll delayed by a loaded machine does not decide
        durations = {n: {} for n in ("garbage", "reset", "huge", "halfclose", "hang", "drip", "refused", "nosock")}
        end = time.monotonic() + 4
        while time.monotonic() < end:
            for j in self.agent.instance_list():
                if j["name"] in durations and j["last_poll_timestamp"]:
                    durations[j["name"]][j["last_poll_timestamp"]] = j["last_poll_duration_seconds"]
            time.sleep(0.05)
        for name, d in durations.items():
            ds = sorted(d.values())
            self.assertGreaterEqual(len(ds), 1, name)
            self.assertLess(ds[len(ds) // 2], TIMEOUT + 0.25, (name, ds))
            self.assertLess(ds[-1], TIMEOUT + 0.75, (name, ds))
        self.reason("nodns", "dns", 10)
        m = self.agent.metrics()
        for name in ("garbage", "reset", "huge", "hang", "drip", "refused"):
            self.assertEqual(value(m, "redis_up", target=name), 0, name)
        rc, out = promtool_check(self.agent.get("/metrics")[2].decode())
        self.assertEqual((rc, out), (0, ""))

    def test_healthy_keeps_its_schedule(self):
        """While every fault above runs, the healthy instance keeps its
        schedule: as many polls as intervals, each started on time by the
        agent's own measure (redpulse_poll_lateness_seconds), and the polls
        of all instances late by more than 10% of the interval rare in
        the agent's histogram redpulse_poll_delay_seconds. Percentiles and
        counts, not every sample: this runs next to eight Python peers and
        a 20 ms scraper on two shared cores."""
        def hist():
            m = self.agent.metrics()
            return (value(m, "redpulse_poll_delay_seconds_bucket", le="0.1"),
                    value(m, "redpulse_poll_delay_seconds_count"))
        m0 = self.agent.metrics()
        polls0 = value(m0, "redpulse_polls_total", target="healthy")
        h0 = hist()
        t0 = time.monotonic()
        stamps, late = [], []
        last = None
        while time.monotonic() - t0 < 8:
            m = self.agent.metrics("/scrape?target=healthy")
            ts = value(m, "redpulse_last_poll_timestamp_seconds", target="healthy")
            if ts != last:
                stamps.append(ts)
                late.append(value(m, "redpulse_poll_lateness_seconds", target="healthy"))
                last = ts
            time.sleep(0.02)
        dt = time.monotonic() - t0
        polls = value(self.agent.metrics(), "redpulse_polls_total", target="healthy") - polls0
        h1 = hist()
        # counts: one poll per interval, none skipped, none doubled
        self.assertLessEqual(abs(polls - dt / INTERVAL), 1.5, (polls, dt))
        # times: the median gap within 10% of the interval, most gaps too
        gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
        self.assertGreaterEqual(len(gaps), 5, stamps)
        self.assertLess(abs(gaps[len(gaps) // 2] - INTERVAL), 0.1 * INTERVAL, gaps)
        within = [g for g in gaps if abs(g - INTERVAL) < 0.1 * INTERVAL]
        self.assertGreaterEqual(len(within), 0.75 * len(gaps), gaps)
        # the agent's own clock: polls of the healthy instance start on time
        late.sort()
        self.assertLess(late[len(late) // 2], 0.05 * INTERVAL, late)
        # ... and of all instances: at least 90% late by no more than 100 ms
        on_time, total = h1[0] - h0[0], h1[1] - h0[1]
        self.assertGreater(total, 10)
        self.assertGreaterEqual(on_time, 0.9 * total, (on_time, total))
        self.assertEqual(value(self.agent.metrics(), "redis_up", target="healthy"), 1)

    def test_redis6_single_section_fallback(self):
        wait_for(lambda: self.agent.instance("redis6")["up"], 5, what="redis6 up")
        j = self.agent.instance("redis6")
        self.assertEqual(j["version"], "6.2.0")
        infos = self.peers["redis6"].info_commands()
        self.assertGreater(len(infos[0]), 2)  # first try: several sections
        self.assertEqual([c for c in infos[1:] if len(c) != 2], [])  # then "INFO all" only
        self.assertTrue(all(c[1] == "all" for c in infos[1:]))
        self.assertIn('redis6: server takes one INFO section; using "INFO all"', self.agent.log_text())
        self.assertEqual(self.peers["redis6"].connections, 1)

    def test_recovers_when_fault_ends(self):
        self.reason("hang", "timeout", 3)
        self.peers["hang"].mode = "ok"
        wait_for(lambda: self.agent.instance("hang")["up"], 12, what="hang recovers")
        self.reason("garbage", "protocol", 3)
        self.peers["garbage"].mode = "ok"
        wait_for(lambda: self.agent.instance("garbage")["up"], 12, what="garbage recovers")

    def test_backoff_spaces_reconnects(self):
        """A peer that keeps failing is not hammered: after the first retry,
        reconnects back off."""
        p = self.peers["reset"]
        c0 = p.connections
        time.sleep(6)
        c1 = p.connections
        self.assertLessEqual(c1 - c0, 4, "reconnected %d times in 6s at a 1s interval" % (c1 - c0))
        self.assertGreaterEqual(c1 - c0, 1)


class FdExhaustion(unittest.TestCase):
    def test_low_ulimit(self):
        """More instances than descriptors: the surplus fail with reason
        resources, the rest are polled, HTTP keeps answering, no crash."""
        import resource
        tmp = Tmp()
        srv = RedisServer(tmp.path, "r")
        try:
            def low():
                resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))
            insts = [{"name": "i%02d" % k, "address": "127.0.0.1:%d" % srv.port} for k in range(60)]
            agent = Agent(tmp.path, insts, defaults={"interval": "1s", "timeout": "500ms"},
                          extra={"http": {"max_connections": 16}}, preexec_fn=low)
            # budget: 96 - (32 + 16 + libmicrohttpd's 3 per thread x 2 + 4) = 38 connections for 60 instances
            def counted():
                m = agent.metrics()
                up = sum(v for (n, l), v in m.items() if n == "redis_up")
                res = sum(1 for (n, l), v in m.items()
                          if n == "redpulse_last_poll_outcome" and dict(l)["reason"] == "resources")
                return (up, res) if up + res == 60 and res > 0 else None
            up, res = wait_for(counted, 10, what="polls settle under the fd limit")
            self.assertEqual(up, 38)
            self.assertEqual(res, 22)
            self.assertIn("file descriptor limit 96 allows 38 Redis connections for 60 instances", agent.log_text())
            for _ in range(20):
                self.assertEqual(agent.get("/metrics")[0], 200)
            self.assertEqual(agent.stop(), 0)
        finally:
            srv.stop()
            tmp.cleanup()


if __name__ == "__main__":
    harness.main()
