#!/usr/bin/env python3
"""Soak: for about a minute, instances flap (a real server killed and
restarted, fake peers cycling through every fault) while HTTP is scraped in
a loop. The agent must not crash, must recover each time, and its memory
must stay flat (RSS growth under 2 MB after warm-up), and HTTP must answer
200 to every scrape throughout, never going 2 s without an answer. Under the sanitizer
build LeakSanitizer checks for leaks at exit and RSS is not compared
(ASan's quarantine grows by design)."""
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fakepeer import FakePeer  # noqa: E402
from harness import Agent, RedisServer, Tmp, wait_for  # noqa: E402

MODES = ["ok", "garbage", "reset", "hang", "huge", "halfclose", "drip", "ok"]
SECONDS = int(os.environ.get("REDPULSE_SOAK_SECONDS", "60"))


class Soak(unittest.TestCase):
    def test_flapping_memory_flat(self):
        tmp = Tmp()
        srv = RedisServer(tmp.path, "flap")
        peers = [FakePeer("ok") for _ in range(6)]
        agent = None
        try:
            insts = [{"name": "real", "address": "127.0.0.1:%d" % srv.port}]
            insts += [{"name": "fake%d" % i, "address": "127.0.0.1:%d" % p.port} for i, p in enumerate(peers)]
            agent = Agent(tmp.path, insts, defaults={"interval": "200ms", "timeout": "150ms"}, log_level="warn")
            stop = threading.Event()
            scrapes = {"ok": 0, "bad": [], "errors": [], "max_gap": 0.0}

            def scraper():
                # HTTP must answer 200 throughout: every answer is counted, an
                # exception is recorded (not lost with the thread), and the
                # longest time between two good answers is kept
                last_ok = time.monotonic()
                while not stop.is_set():
                    for path in ("/metrics", "/api/v1/instances", "/scrape?target=real"):
                        try:
                            status = agent.get(path)[0]
                        except Exception as e:  # noqa: BLE001 - reported by the test below
                            scrapes["errors"].append("%s: %r" % (path, e))
                            continue
                        now = time.monotonic()
                        if status == 200:
                            scrapes["ok"] += 1
                            scrapes["max_gap"] = max(scrapes["max_gap"], now - last_ok)
                            last_ok = now
                        else:
                            scrapes["bad"].append((path, status))
            th = threading.Thread(target=scraper, daemon=True)
            th.start()
            rss = {}
            t0 = time.monotonic()
            tick = 0
            while time.monotonic() - t0 < SECONDS:
                tick += 1
                for i, p in enumerate(peers):
                    p.mode = MODES[(tick + i) % len(MODES)]
                if tick % 3 == 0:
                    srv.kill()
                elif tick % 3 == 1 and srv.proc.poll() is not None:
                    srv.start()
                el = time.monotonic() - t0
                if el > SECONDS / 4 and "warm" not in rss:
                    rss["warm"] = agent.rss_kib()
                time.sleep(1)
                self.assertIsNone(agent.proc.poll(), "redpulse died")
            rss["end"] = agent.rss_kib()
            self.assertTrue(th.is_alive(), "the scraper thread died: %r" % scrapes["errors"][-3:])
            stop.set()
            th.join(15)
            self.assertFalse(th.is_alive(), "the scraper is stuck")
            self.assertEqual(scrapes["errors"], [])
            self.assertEqual(scrapes["bad"], [])
            # a scrape is a copy: even with every fault running, no answer
            # waits on a poll; 2 s allows for a loaded 2-core machine
            self.assertLess(scrapes["max_gap"], 2.0, scrapes["max_gap"])
            self.assertGreater(scrapes["ok"], 3 * SECONDS, scrapes["ok"])
            if srv.proc.poll() is not None:
                srv.start()
            for p in peers:
                p.mode = "ok"
            wait_for(lambda: all(i["up"] for i in agent.instance_list()), 15, what="everything recovers")
            if not os.environ.get("REDPULSE_SANITIZED"):
                self.assertLess(rss["end"] - rss["warm"], 2048, rss)
            rc = agent.stop()
            self.assertEqual(rc, 0, agent.log_text()[-3000:])
            agent = None
        finally:
            if agent:
                agent.stop()
            for p in peers:
                p.stop()
            srv.stop()
            tmp.cleanup()


if __name__ == "__main__":
    harness.main()
