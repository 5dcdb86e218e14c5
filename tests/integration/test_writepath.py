#!/usr/bin/env python3
"""Proof of the derived write-path figures against ground truth: a load
generator that measures itself, the server process' own /proc/PID/stat, real
bgsave failures, AOF with appendfsync always, restarts and CONFIG RESETSTAT
under load, CONFIG GET and LATENCY LATEST, command classification."""
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (Agent, RedisServer, Resp, TmpTestCase, assert_rate_near, promtool_check, split_window,  # noqa: E402
                     value, wait_for)
from loadgen import LoadGen  # noqa: E402

def redis_cli_info(port, section):
    """INFO as redis-cli prints it, {field: text}: the server's own answer,
    read by a client that is not ours."""
    out = subprocess.run([harness.require_tool("redis-cli"), "-p", str(port), "INFO", section], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line and not line.startswith("#"))


class Polls:
    """Collects every distinct poll of one instance from the JSON API."""

    def __init__(self, agent, name):
        self.agent, self.name, self.seen = agent, name, []

    def next(self, timeout=5):
        last = self.seen[-1]["last_poll_timestamp"] if self.seen else None

        def fresh():
            j = self.agent.instance(self.name)
            return j if j["last_poll_timestamp"] != last and j["up"] else None
        j = wait_for(fresh, timeout, step=0.02, what="a new poll of %s" % self.name)
        self.seen.append(j)
        return j


class WritePath(TmpTestCase):
    def server(self, name, args=()):
        s = RedisServer(self.tmp.path, name, args=list(args))
        self.cleanups.append(s.stop)
        return s

    def agent(self, instances, env=None, **defaults):
        d = {"interval": "1s", "timeout": "500ms"}
        d.update(defaults)
        a = Agent(self.tmp.path, instances, defaults=d, env=env)

        def stop():
            rc = a.stop()
            assert rc == 0, a.log_text()
        self.cleanups.append(stop)
        return a

    def load(self, port, **kw):
        g = LoadGen(port, **kw)
        g.start()
        self.cleanups.append(g.stop)
        return g

    def test_write_rate_matches_generator(self):
        s = self.server("w")
        a = self.agent([{"name": "w", "address": "127.0.0.1:%d" % s.port}])
        g = self.load(s.port, writes_per_sec=5000)
        polls = Polls(a, "w")
        polls.next()
        polls.next()  # a full interval under load
        for _ in range(3):
            j = polls.next()
            d = j["derived"]
            self.assertEqual(d["event"], "ok")
            truth = g.rate(*split_window(j))
            got = d["throughput"]["write_commands_per_second"]
            self.assertGreater(truth, 4000)
            assert_rate_near(self, g, j, got)
            self.assertEqual(d["throughput"]["commands"]["set"]["class"], "write")
            self.assertLess(d["throughput"]["read_commands_per_second"], 1)
        m = a.metrics("/scrape?target=w")
        self.assertGreater(value(m, "redis_write_commands_per_second", target="w"), 4000)
        self.assertGreater(value(m, "redis_command_calls_per_second", target="w", cmd="set", **{"class": "write"}), 4000)
        rc, out = promtool_check(a.get("/scrape?target=w")[2].decode())
        self.assertEqual((rc, out), (0, ""))

    def test_read_write_split(self):
        s = self.server("rw")
        a = self.agent([{"name": "rw", "address": "127.0.0.1:%d" % s.port}])
        g = self.load(s.port, writes_per_sec=3000, reads_per_sec=2000)
        polls = Polls(a, "rw")
        polls.next()
        polls.next()
        for _ in range(2):
            j = polls.next()
            d = j["derived"]
            for kind, key in (("w", "write_commands_per_second"), ("r", "read_commands_per_second")):
                assert_rate_near(self, g, j, d["throughput"][key], kind)
            hits = d["throughput"]["keyspace_hit_ratio"]
            self.assertGreater(hits, 0.95)  # GETs of keys the SETs wrote

    def test_cpu_tracks_proc_stat(self):
        """The CPU ratios against the server's own count (/proc). The cpu
        section rides with commandstats (commandstats_interval), so a fresh
        poll's ratios are over the time since the previous fresh one
        (split_window) and the polls in between keep them."""
        s = self.server("cpu")
        # windows of 4 s: the server's CPU is read when the test sees a poll
        # (20 ms steps and an HTTP read after it), not when INFO ran
        a = self.agent([{"name": "cpu", "address": "127.0.0.1:%d" % s.port, "commandstats_interval": "4s"}],
                       interval="500ms", timeout="400ms")
        # unpipelined clients make Redis work per command: a real CPU load
        bench = subprocess.Popen([harness.require_tool("redis-benchmark"), "-p", str(s.port), "-t", "set,get", "-n", "100000000",
                                  "-c", "8", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.cleanups.append(lambda: (bench.kill(), bench.wait()))
        polls = Polls(a, "cpu")
        seen = {}  # a poll's time -> the server's CPU seconds when the poll was seen
        checked = stale = 0
        last_fresh = None
        end = time.monotonic() + 20
        while (checked < 2 or stale < 3) and time.monotonic() < end:
            j = polls.next()
            seen[j["last_poll_timestamp"]] = harness.cpu_seconds(s.proc.pid)
            d = j["derived"]
            if d["event"] != "ok" or d["cpu"]["total_ratio"] is None:
                continue
            if d["commandstats_age_seconds"] == 0:
                last_fresh = j
                t0, t1 = split_window(j)
                start = [t for t in seen if abs(t - t0) < 0.01]
                if not start or t1 - t0 < 3:
                    continue  # the window began before the first poll seen here, or a first short one
                truth = (seen[t1] - seen[start[0]]) / (t1 - t0)
                self.assertGreater(truth, 0.2, "the load should cost Redis real CPU")
                self.assertLess(abs(d["cpu"]["total_ratio"] - truth), 0.05, (d["cpu"], truth, t1 - t0))
                self.assertIsNotNone(d["cpu"]["main_thread_ratio"])
                checked += 1
            elif last_fresh is not None and abs(split_window(j)[1] - last_fresh["last_poll_timestamp"]) < 0.01:
                self.assertEqual(d["cpu"], last_fresh["derived"]["cpu"])  # kept, not 0 over this poll
                stale += 1
        self.assertGreaterEqual(checked, 2)
        self.assertGreaterEqual(stale, 3)

    def test_bgsave_failure_and_misconf(self):
        s = self.server("bg", ["--save", "3600 1", "--enable-protected-configs", "yes"])
        a = self.agent([{"name": "bg", "address": "127.0.0.1:%d" % s.port}])
        polls = Polls(a, "bg")
        j = polls.next()
        # the expected value comes from the server, through redis-cli
        status = redis_cli_info(s.port, "persistence").get("rdb_last_bgsave_status")
        self.assertEqual(status, "ok")
        self.assertEqual(j["derived"]["rdb"]["last_bgsave_ok"], 1)
        c = s.client()
        c.cmd("SET", "k", "v")
        c.cmd("CONFIG", "SET", "dir", "/proc")
        c.cmd("BGSAVE")
        wait_for(lambda: c.info("persistence")["rdb_last_bgsave_status"] == "err", 5, what="bgsave to fail")
        t_fail = time.time()
        j = wait_for(lambda: (lambda j: j if j["derived"]["rdb"]["last_bgsave_ok"] == 0 else None)(a.instance("bg")),
                     2.0, what="bgsave health 0")
        self.assertLessEqual(j["last_poll_timestamp"] - t_fail, 1.1)  # within one poll
        self.assertEqual(value(a.metrics(), "redis_rdb_last_bgsave_status", target="bg"), 0)
        # that scrape has the next poll ask for commandstats: the writes come
        # after it, and the next ones come with the cadence (5 s) after that
        polls.seen = [a.instance("bg")]
        j = polls.next()
        while j["derived"]["commandstats_age_seconds"] != 0:
            j = polls.next()
        t_start = time.time()
        refused = 0
        for i in range(20):
            try:
                c.cmd("SET", "x%d" % i, "v")
            except RuntimeError as e:
                self.assertIn("MISCONF", str(e))
                refused += 1
        self.assertEqual(refused, 20)
        t_writes = time.time()
        polls.seen = [a.instance("bg")]
        j = polls.next()
        while j["last_poll_timestamp"] - j["derived"]["interval_seconds"] > t_writes:
            j = polls.next()  # not expected; keeps the window honest if a poll raced the writes
        d = j["derived"]["errors"]
        self.assertAlmostEqual(d["misconf_errors_per_second"] * j["derived"]["interval_seconds"], 20, delta=0.5)
        # the refused writes come from commandstats: the first poll that
        # asks for them after the writes (commandstats_interval, 5 s)
        while split_window(j)[1] < t_writes:
            j = polls.next()
        self.assertLessEqual(j["last_poll_timestamp"] - t_writes, 6.5)
        self.assertLessEqual(split_window(j)[0], t_start, "the writes straddle two commandstats")
        d = j["derived"]
        self.assertAlmostEqual(d["errors"]["writes_refused_per_second"] * d["commandstats_interval_seconds"], 20,
                               delta=0.5)
        self.assertGreater(value(a.metrics(), "redis_writes_refused_per_second", target="bg"), 0)
        c.close()

    def test_aof_always_and_rewrite_in_progress(self):
        s = self.server("aof", ["--appendonly", "yes", "--appendfsync", "always"])
        a = self.agent([{"name": "aof", "address": "127.0.0.1:%d" % s.port}], interval="500ms", timeout="400ms")
        g = self.load(s.port, writes_per_sec=2000)
        polls = Polls(a, "aof")
        polls.next()
        j = polls.next()
        self.assertEqual(j["derived"]["aof"]["enabled"], 1)
        self.assertEqual(j["derived"]["aof"]["healthy"], 1)
        j = polls.next()
        self.assertGreater(j["derived"]["aof"]["growth_bytes_per_second"], 2000 * 20)  # >= 20 B per SET
        self.assertEqual(j["derived"]["aof"]["last_write_ok"], 1)
        self.assertEqual(j["derived"]["config"]["appendfsync"], "always")
        self.assertEqual(j["derived"]["config"]["appendonly"], True)
        # a slow rewrite so a poll sees it in progress: ~3000 keys x 1 ms
        c = s.client()
        c.pipeline([("SET", "pad:%d" % i, "x") for i in range(3000)])
        c.cmd("CONFIG", "SET", "rdb-key-save-delay", "1000")
        c.cmd("BGREWRITEAOF")
        j = wait_for(lambda: (lambda j: j if j["derived"]["aof"]["rewrite_in_progress"] == 1 else None)(a.instance("aof")),
                     5, what="AOF rewrite in progress")
        self.assertEqual(value(a.metrics(), "redis_aof_rewrite_in_progress", target="aof"), 1)
        c.cmd("CONFIG", "SET", "rdb-key-save-delay", "0")
        j = wait_for(lambda: (lambda j: j if j["derived"]["aof"]["rewrite_in_progress"] == 0 else None)(a.instance("aof")),
                     20, what="AOF rewrite done")
        self.assertGreater(j["derived"]["fork"]["latest_fork_seconds"], 0)
        self.assertGreater(j["derived"]["fork"]["latest_fork_seconds_per_rss_gigabyte"], 0)
        self.assertIsNotNone(j["derived"]["fork"]["aof_last_cow_rss_ratio"])
        self.assertEqual(j["derived"]["aof"]["last_rewrite_ok"], 1)
        c.close()
        g.stop()

    # every rate figure the restart/reset test follows, with its ceiling
    # under the test's load (4000 SETs/s of ~40 bytes, a few errors): a
    # counter that went down and was not caught gives a negative or a huge
    # value, far outside these
    RATES = {("throughput", "commands_per_second"): 2 * 4000,
             ("throughput", "write_commands_per_second"): 2 * 4000,
             ("throughput", "net_input_bytes_per_second"): 2 * 4000 * 100,
             ("throughput", "net_output_bytes_per_second"): 2 * 4000 * 100,
             ("errors", "error_replies_per_second"): 2 * 200,
             ("cpu", "total_ratio"): 2.0,
             ("cpu", "user_ratio"): 2.0,
             ("cpu", "sys_ratio"): 2.0,
             ("aof", "growth_bytes_per_second"): 2 * 4000 * 100,
             ("rdb", "changes_per_second"): 2 * 4000}

    def test_restart_and_resetstat_never_spike(self):
        """A restart and a CONFIG RESETSTAT under load: every rate figure
        (commands, network, errors, CPU, AOF, RDB) is checked on polls
        before and after each event, none goes negative or spikes, the poll
        that starts the new baseline has no rates, and they all come back."""
        aof = ["--appendonly", "yes", "--appendfsync", "everysec"]
        s1 = self.server("restart", aof)
        s2 = self.server("reset", aof)
        a = self.agent([{"name": "restart", "address": "127.0.0.1:%d" % s1.port},
                        {"name": "reset", "address": "127.0.0.1:%d" % s2.port}], interval="500ms", timeout="400ms")
        rate = 4000
        self.load(s1.port, writes_per_sec=rate, prefix="a")
        self.load(s2.port, writes_per_sec=rate, prefix="b")
        # an error generator: ~100 error replies/s, so the error counters
        # are well above zero when the restart and the reset bring them down
        errs = [c.client() for c in (s1, s2)]
        seen = {"restart": {}, "reset": {}}
        event_t = {}
        end = time.monotonic() + 10
        t_start = time.monotonic()
        next_err = 0
        while time.monotonic() < end:
            for n in seen:
                j = a.instance(n)
                if j["derived"]:
                    seen[n][j["last_poll_timestamp"]] = j["derived"]
            el = time.monotonic() - t_start
            if el > next_err:
                next_err = el + 0.1
                for c in errs:
                    c.s.sendall(b"*1\r\n$9\r\nNOSUCHCMD\r\n" * 10)
                    for _ in range(10):
                        self.assertTrue(c.f.readline().startswith(b"-ERR unknown command"))
            if el > 3.5 and "restart" not in event_t:
                event_t["restart"] = time.time()
                s1.kill()
                s1.start()
                errs[0].close()
                errs[0] = s1.client()
            if el > 4.5 and "reset" not in event_t:
                c = s2.client()
                event_t["reset"] = time.time()
                c.cmd("CONFIG", "RESETSTAT")
                c.close()
            time.sleep(0.03)
        for c in errs:
            c.close()
        for n, polls in seen.items():
            self.assertGreater(len(polls), 10, n)
            t_ev = event_t[n]
            checked = {k: [0, 0] for k in self.RATES}  # non-null values before, after the event
            for ts, d in polls.items():
                for (g, key), ceiling in self.RATES.items():
                    v = d[g][key]
                    if d["event"] != "ok":
                        self.assertIsNone(v, (n, g, key, d["event"]))  # a new baseline has no rates
                        continue
                    if v is None:
                        continue
                    self.assertGreaterEqual(v, 0, (n, g, key, v))
                    self.assertLessEqual(v, ceiling, (n, g, key, v))
                    checked[(g, key)][ts > t_ev] += 1
                for cmd in d["throughput"]["commands"].values():
                    if cmd["calls_per_second"] is not None:
                        self.assertGreaterEqual(cmd["calls_per_second"], 0)
                        self.assertLessEqual(cmd["calls_per_second"], 2 * rate)
            # checked on at least 4 polls before and 4 after: the figures
            # were there to check, and they came back after the event
            few = {k: v for k, v in checked.items() if v[0] < 4 or v[1] < 4}
            self.assertEqual(few, {}, (n, "non-null values (before, after) the event"))
            ok_after = [d for ts, d in sorted(polls.items()) if ts > t_ev and d["event"] == "ok"]
            self.assertGreater(ok_after[-1]["errors"]["error_replies_per_second"], 10, n)  # errors still counted
        events = {n: [d["event"] for d in polls.values()] for n, polls in seen.items()}
        self.assertIn("restart", events["restart"])
        self.assertIn("reset", events["reset"])
        j = a.instance("restart")
        self.assertGreaterEqual(j["restarts_detected"], 1)
        self.assertGreaterEqual(a.instance("reset")["counter_resets_detected"], 1)
        m = a.metrics()
        self.assertGreaterEqual(value(m, "redpulse_restarts_detected_total", target="restart"), 1)
        self.assertGreaterEqual(value(m, "redpulse_stat_resets_detected_total", target="reset"), 1)
        self.assertIn("restart: server restarted", a.log_text())

    def test_config_get_cadence_rename_and_refusal(self):
        s = self.server("cfg", ["--maxmemory", "77000000", "--maxmemory-policy", "allkeys-lru"])
        # rename-command is only accepted in a configuration file
        renamed = os.path.join(self.tmp.path, "renamed.conf")
        with open(renamed, "w") as f:
            f.write("rename-command CONFIG SECRETCONFIG\n")
        s2 = RedisServer(self.tmp.path, "renamed", conf=renamed)
        self.cleanups.append(s2.stop)
        a = self.agent([{"name": "cfg", "address": "127.0.0.1:%d" % s.port, "config_interval": "2s"},
                        {"name": "renamed", "address": "127.0.0.1:%d" % s2.port, "config_command": "SECRETCONFIG"}],
                       interval="500ms", timeout="400ms")
        wait_for(lambda: a.instance("cfg")["derived"] and a.instance("cfg")["derived"]["config"], 5, what="config values")
        j = a.instance("cfg")
        cfg = j["derived"]["config"]
        self.assertEqual(cfg["maxmemory"], 77000000)
        self.assertEqual(cfg["maxmemory-policy"], "allkeys-lru")
        m = a.metrics()
        self.assertEqual(value(m, "redis_config_maxmemory", target="cfg"), 77000000)
        info = [l for (n, l), v in m.items() if n == "redis_config_info" and dict(l)["target"] == "cfg"]
        self.assertEqual(dict(info[0])["maxmemory_policy"], "allkeys-lru")
        # cadence: about one CONFIG GET per 2 s, while INFO runs every 0.5 s
        c = s.client()
        calls = lambda: int(c.info("commandstats").get("cmdstat_config|get", "calls=0").split("calls=")[1].split(",")[0])  # noqa: E731
        c0 = calls()
        time.sleep(6.2)
        n_cfg = calls() - c0
        c.close()
        self.assertTrue(2 <= n_cfg <= 4, n_cfg)
        # a renamed CONFIG works when configured
        wait_for(lambda: (a.instance("renamed")["derived"] or {}).get("config"), 5, what="renamed CONFIG")
        # an ACL user without +config: CONFIG GET is switched off quietly, polls go on
        s4 = self.server("acl2", ["--user", "mon", "on", ">pw", "-@all", "+info", "+client|setname", "+command"])
        b = self.agent([{"name": "noconfig", "address": "127.0.0.1:%d" % s4.port, "username": "mon",
                         "password_env": "RP_PW"}], env={"RP_PW": "pw"}, interval="500ms", timeout="400ms")
        polls = Polls(b, "noconfig")
        for _ in range(4):
            j = polls.next()
            self.assertTrue(j["up"])
        self.assertIsNone(j["derived"]["config"])
        log = b.log_text()
        self.assertEqual(log.count("CONFIG GET refused"), 1, log)

    def test_latencystats_cadence(self):
        """latencystats rides with INFO every latencystats_interval only; the
        figures stay in every scrape and the JSON in between."""
        s = self.server("lst")
        a = self.agent([{"name": "lst", "address": "127.0.0.1:%d" % s.port, "latencystats_interval": "2s"}],
                       interval="200ms", timeout="150ms")
        polls = Polls(a, "lst")
        polls.next()
        mon = Resp(s.port)
        mon.s.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self.assertEqual(mon.f.readline().strip(), b"+OK")
        infos = []
        end = time.monotonic() + 5
        seen = 0
        while time.monotonic() < end:
            line = mon.f.readline().decode()
            if '"INFO"' in line or '"info"' in line:
                infos.append(line)
            if len(polls.seen) < 12 and time.monotonic() > end - 4:
                j = polls.next()
                self.assertIn("latencystats", j["sections"])
                self.assertIn("latency_percentiles_usec_client|setname", j["sections"]["latencystats"])
                m = a.metrics()
                self.assertGreater(value(m, "redis_latency_percentiles_seconds", target="lst", cmd="client|setname",
                                         quantile="0.99"), 0)
                seen += 1
        mon.s.close()
        self.assertGreaterEqual(len(infos), 15, infos)  # one INFO every 200 ms
        with_lat = [l for l in infos if '"latencystats"' in l]
        self.assertTrue(2 <= len(with_lat) <= 4, (len(with_lat), len(infos)))  # one every 2 s
        self.assertGreaterEqual(seen, 5)
        # a command new to the server shows up in the percentiles at the next latencystats
        c = s.client()
        c.cmd("HSET", "h", "f", "v")
        c.close()
        wait_for(lambda: [1 for (n, l) in a.metrics() if n == "redis_latency_percentiles_seconds"
                          and ("cmd", "hset") in l], 4, what="hset percentiles")

    def test_commandstats_cadence(self):
        """commandstats ride with INFO every commandstats_interval only: the
        write/read split is computed over the time between two of them and
        kept for the polls in between, the total rate every poll; a scrape
        has them asked for at the next poll. "0s" asks with every poll."""
        s = self.server("cst")
        s2 = self.server("cst0")
        s3 = self.server("cst1h")
        a = self.agent([{"name": "cst", "address": "127.0.0.1:%d" % s.port, "commandstats_interval": "1s"},
                        {"name": "cst0", "address": "127.0.0.1:%d" % s2.port, "commandstats_interval": "0s"},
                        {"name": "cst1h", "address": "127.0.0.1:%d" % s3.port, "commandstats_interval": "1h"}],
                       interval="250ms", timeout="200ms")
        g = self.load(s.port, writes_per_sec=3000)
        polls = Polls(a, "cst")
        polls.next()
        mons = []
        for srv in (s, s2):
            mon = Resp(srv.port)
            mon.s.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
            self.assertEqual(mon.f.readline().strip(), b"+OK")
            infos = []

            def read(mon=mon, infos=infos):
                for line in iter(mon.f.readline, b""):
                    if b'] "INFO" ' in line:  # not COMMAND INFO
                        infos.append(line.decode())
            th = threading.Thread(target=read, daemon=True)
            th.start()
            mons.append((mon, infos, th))
        end = time.monotonic() + 5
        fresh = stale = 0
        last_fresh = None
        while time.monotonic() < end:
            j = polls.next()
            d = j["derived"]
            if d["event"] != "ok" or d["commandstats_interval_seconds"] is None:
                continue
            got = d["throughput"]["write_commands_per_second"]
            # the total rate is every poll's own
            truth_all = g.rate(j["last_poll_timestamp"] - d["interval_seconds"], j["last_poll_timestamp"])
            self.assertLess(abs(d["throughput"]["commands_per_second"] - truth_all) / truth_all, 0.1)
            if d["commandstats_age_seconds"] == 0:
                # the second poll asks again (no split yet, or a reconnect),
                # then one a second
                iv = d["commandstats_interval_seconds"]
                self.assertLess(iv, 1.5)
                fresh += iv > 0.75
                assert_rate_near(self, g, j, got)
                last_fresh = j
            elif last_fresh is not None and abs(split_window(j)[1] - last_fresh["last_poll_timestamp"]) < 0.05:
                # the figures of the last poll that asked (not one missed in between)
                stale += 1
                self.assertGreater(d["commandstats_age_seconds"], 0.1)
                f = last_fresh["derived"]["throughput"]
                self.assertEqual(got, f["write_commands_per_second"])
                self.assertEqual(d["throughput"]["commands"]["set"], f["commands"]["set"])
        # a scrape: the next poll asks for commandstats, whatever the cadence,
        # so the next scrape has newer ones
        for _ in range(3):
            before = value(a.metrics("/scrape?target=cst"), "redis_commands_total", target="cst", cmd="set")
            j = polls.next()
            if j["derived"]["commandstats_age_seconds"] != 0:
                j = polls.next()  # that one was in flight at the scrape
            self.assertEqual(j["derived"]["commandstats_age_seconds"], 0)
            m = a.metrics()
            self.assertGreater(value(m, "redis_commands_total", target="cst", cmd="set"), before)
            self.assertGreater(value(m, "redis_write_commands_per_second", target="cst"), 1000)
            polls.next()
        # a /scrape?target= has only its own instance ask; /metrics has all
        slow = Polls(a, "cst1h")
        for url, fresh_after in (("/scrape?target=cst", False), ("/scrape?target=cst1h", True), ("/metrics", True),
                                 (None, False)):
            slow.next()
            if url:
                a.metrics(url)
            two = [slow.next()["derived"] for _ in range(2)]  # the first may have been in flight at the scrape
            self.assertEqual(any(d["commandstats_age_seconds"] == 0 for d in two), fresh_after, (url, two))
        for mon, _, th in mons:
            mon.s.shutdown(socket.SHUT_RDWR)
            th.join(5)
            mon.s.close()
        self.assertGreaterEqual(fresh, 3)
        self.assertGreaterEqual(stale, 8)
        (_, infos, _), (_, infos0, _) = mons
        self.assertGreaterEqual(len(infos), 25, infos)  # one INFO every 250 ms, 8 s and more
        with_cs = [l for l in infos if '"commandstats"' in l]
        # one a second, and one after each scrape: about a third of them
        self.assertTrue(6 <= len(with_cs) <= len(infos) // 2, (len(with_cs), len(infos)))
        # cpu and server ride with commandstats, and only with them
        for l in infos:
            self.assertEqual(('"cpu"' in l, '"server"' in l), ('"commandstats"' in l,) * 2, l)
        self.assertGreaterEqual(len(infos0), 25, infos0)
        # "0s": every poll, and cpu and server with it
        self.assertEqual([l for l in infos0 if not all(x in l for x in ('"commandstats"', '"cpu"', '"server"'))], [],
                         infos0)

    def test_commandstats_asked_again_after_a_failed_poll(self):
        """A poll that asked for commandstats and failed (-BUSY: the
        connection stays) leaves its turn to the next poll: the scrape that
        made it ask is answered by the first poll that succeeds."""
        s = self.server("busy", ["--busy-reply-threshold", "100"])
        a = self.agent([{"name": "busy", "address": "127.0.0.1:%d" % s.port, "commandstats_interval": "1h"}],
                       interval="300ms", timeout="250ms")
        polls = Polls(a, "busy")
        for _ in range(3):
            j = polls.next()
        self.assertGreater(j["derived"]["commandstats_age_seconds"], 0)  # 1h: not asked again
        c = s.client()
        c.s.sendall(b"*3\r\n$4\r\nEVAL\r\n$17\r\nwhile true do end\r\n$1\r\n0\r\n")
        time.sleep(0.15)  # past the threshold: the server answers -BUSY
        a.metrics("/scrape?target=busy")  # the next poll asks for commandstats
        wait_for(lambda: "BUSY" in (a.instance("busy")["last_error"] or ""), 3, what="a poll failing with BUSY")
        k = s.client()
        k.cmd("SCRIPT", "KILL")
        k.close()
        self.assertTrue(c.f.readline().startswith(b"-"))  # the script's own error reply
        c.close()
        polls.seen = [a.instance("busy")]
        j = polls.next()
        while not j["up"] or j["derived"]["event"] != "ok":
            j = polls.next()
        self.assertEqual(j["derived"]["commandstats_age_seconds"], 0, j["derived"])

    def test_latency_latest(self):
        s = self.server("lat", ["--enable-debug-command", "yes", "--latency-monitor-threshold", "10"])
        a = self.agent([{"name": "lat", "address": "127.0.0.1:%d" % s.port, "latency_interval": "1s"}],
                       interval="500ms", timeout="400ms")
        c = s.client()
        c.cmd("DEBUG", "SLEEP", "0.05")
        c.close()
        m = wait_for(lambda: (lambda m: m if [1 for (n, l) in m if n == "redis_latency_spike_duration_seconds"] else None)(a.metrics()),
                     5, what="latency spike")
        v = value(m, "redis_latency_spike_duration_seconds", target="lat", event_name="command")
        self.assertGreaterEqual(v, 0.05)
        self.assertLess(v, 0.5)
        self.assertAlmostEqual(value(m, "redis_latency_spike_last", target="lat", event_name="command"), time.time(), delta=10)
        j = a.instance("lat")
        self.assertGreaterEqual(j["derived"]["latency"]["command"]["max_seconds"], 0.05)

    def test_command_flags_learned_once_and_fallback(self):
        s = self.server("flags")
        a = self.agent([{"name": "flags", "address": "127.0.0.1:%d" % s.port}], interval="500ms", timeout="400ms")
        c = s.client()
        c.cmd("SET", "a", "1")
        c.cmd("GET", "a")
        c.cmd("HSET", "h", "f", "v")
        polls = Polls(a, "flags")
        n_command = lambda: int(c.info("commandstats").get("cmdstat_command|info", "calls=0")  # noqa: E731
                                .split("calls=")[1].split(",")[0])
        for _ in range(5):
            polls.next()
        n1 = n_command()
        for _ in range(4):
            polls.next()
        # asked only for names not asked before on this connection: a couple
        # of times at the start (new names appear), then never again
        self.assertTrue(1 <= n1 <= 3, n1)
        self.assertEqual(n_command(), n1)
        cmds = polls.seen[-1]["derived"]["throughput"]["commands"]
        self.assertEqual(cmds["hset"]["class"], "write")
        self.assertEqual(cmds["get"]["class"], "read")
        self.assertEqual(cmds["info"]["class"], "other")
        c.close()
        # without +command: the built-in table, no failure
        s2 = self.server("nocmd", ["--user", "mon", "on", ">pw", "-@all", "+info", "+client|setname"])
        b = self.agent([{"name": "nocmd", "address": "127.0.0.1:%d" % s2.port, "username": "mon",
                         "password_env": "RP_PW", "config_interval": "0s"}], env={"RP_PW": "pw"},
                       interval="500ms", timeout="400ms")
        c2 = s2.client()
        c2.pipeline([("SET", "k%d" % i, "v") for i in range(30)] + [("GET", "k1")])
        polls = Polls(b, "nocmd")
        for _ in range(4):
            j = polls.next()
        self.assertTrue(j["up"])
        self.assertEqual(j["derived"]["throughput"]["commands"]["set"]["class"], "write")  # built-in table
        self.assertEqual(j["derived"]["throughput"]["commands"]["get"]["class"], "read")
        self.assertEqual(b.log_text().count("COMMAND INFO refused"), 1)
        c2.close()

    def test_builtin_table_matches_server(self):
        """The fallback table agrees with the installed server's COMMAND flags."""
        s = self.server("cmds")
        c = s.client()
        flags = {}

        def add(e):
            fl = e[2]
            flags[e[0]] = "write" if "write" in fl else "read" if "readonly" in fl else "other"
            for sub in (e[9] if len(e) > 9 and e[9] else []):
                add(sub)
        for e in c.cmd("COMMAND"):
            add(e)
        c.close()
        probe = os.environ.get("CMDCLASS_PROBE") or os.path.join(os.path.dirname(__file__), "..", "..", "build",
                                                                  "tests", "cmdclass_probe")
        out = subprocess.run([probe], input="\n".join(sorted(flags)), capture_output=True, text=True, check=True).stdout
        got = dict(line.split() for line in out.splitlines())
        wrong = {n: (flags[n], got[n]) for n in flags if flags[n] != got[n]}
        self.assertEqual(wrong, {})
        self.assertGreater(len(flags), 200)


if __name__ == "__main__":
    harness.main()
