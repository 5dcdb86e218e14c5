#!/usr/bin/env python3
"""Soak: for about a minute, instances flap (a real server killed and
restarted, fake peers cycling through every fault) while HTTP is scraped in
a loop. The agent must not crash, must recover each time, and its memory
must stay flat (RSS growth under 2 MB after warm-up). Under the sanitizer
build LeakSanitizer checks for leaks at exit and RSS is not compared
(ASan's quarantine grows by design)."""
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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
            scrapes = [0]

            def scraper():
                while not stop.is_set():
                    for path in ("/metrics", "/api/v1/instances", "/scrape?target=real"):
                        if agent.get(path)[0] == 200:
                            scrapes[0] += 1
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
            stop.set()
            th.join(10)
            if srv.proc.poll() is not None:
                srv.start()
            for p in peers:
                p.mode = "ok"
            wait_for(lambda: all(i["up"] for i in agent.instance_list()), 15, what="everything recovers")
            self.assertGreater(scrapes[0], 100)
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
    unittest.main()
