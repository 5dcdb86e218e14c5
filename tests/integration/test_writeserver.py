#!/usr/bin/env python3
"""Write-path figures from real servers, not edited captures: replication
lag and full resyncs with a real replica under write load, master_link_up 0
when the replica's master is killed, evictions (allkeys-lru at a small
maxmemory), OOM errors and refused writes (noeviction), and the pre-7.0
CONFIG GET path (one command per setting) against a fake peer that refuses
the multi-argument form. Expected values come from the servers (redis-cli
INFO), not from the agent."""
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fakepeer import FakePeer, bulk  # noqa: E402
from harness import Agent, RedisServer, Tmp, TmpTestCase, split_window, value, wait_for  # noqa: E402
from loadgen import LoadGen  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def cli_info(port, section):
    """INFO as redis-cli prints it: {field: text}."""
    out = subprocess.run([harness.require_tool("redis-cli"), "-p", str(port), "INFO", section],
                         capture_output=True, text=True, check=True, timeout=10).stdout
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line and not line.startswith("#"))


def errorstat(port, err):
    v = cli_info(port, "errorstats").get("errorstat_" + err)
    return int(v.split("count=")[1].split(",")[0]) if v else 0


class Polls:
    """Distinct polls of one instance, from the JSON API."""

    def __init__(self, agent, name):
        self.agent, self.name, self.last = agent, name, None

    def next(self, timeout=5):
        last = self.last

        def fresh():
            j = self.agent.instance(self.name)
            return j if j["last_poll_timestamp"] != last and j["derived"] else None
        j = wait_for(fresh, timeout, step=0.02, what="a new poll of %s" % self.name)
        self.last = j["last_poll_timestamp"]
        return j


class WriteServer(TmpTestCase):
    def server(self, name, args=()):
        s = RedisServer(self.tmp.path, name, args=list(args))
        self.cleanups.append(s.stop)
        return s

    def agent(self, instances, **defaults):
        d = {"interval": "500ms", "timeout": "400ms"}
        d.update(defaults)
        a = Agent(self.tmp.path, instances, defaults=d)

        def stop():
            rc = a.stop()
            assert rc == 0, a.log_text()
        self.cleanups.append(stop)
        return a

    def burst_in_one_interval(self, agent, name, burst):
        """Runs burst() right after a poll, then returns the first poll whose
        interval holds the whole burst."""
        polls = Polls(agent, name)
        polls.next()  # the latest poll, perhaps from before the caller's setup
        polls.next()  # a poll that began after it
        t0 = time.time()
        burst()
        t1 = time.time()
        j = polls.next()
        while j["last_poll_timestamp"] < t1:
            j = polls.next()
        d = j["derived"]
        self.assertEqual(d["event"], "ok")
        self.assertLessEqual(j["last_poll_timestamp"] - d["interval_seconds"], t0 + 0.05, "burst straddles two polls")
        return d

    def test_replica_lag_resync_and_link(self):
        master = self.server("master", ["--repl-diskless-sync-delay", "0"])
        a = self.agent([{"name": "master", "address": "127.0.0.1:%d" % master.port}])
        polls = Polls(a, "master")
        d = polls.next()["derived"]["replication"]
        self.assertEqual(d["replicas"], [])
        self.assertIsNone(d["max_replica_lag_bytes"])
        sync0 = int(cli_info(master.port, "stats")["sync_full"])
        polls.next()
        replica = self.server("replica", ["--replicaof", "127.0.0.1", str(master.port)])
        # every poll from here on: the full resync shows in the interval
        # that held it, and only there
        resyncs = [polls.next()["derived"]["replication"]["full_resyncs_last_interval"] for _ in range(6)]
        wait_for(lambda: cli_info(replica.port, "replication")["master_link_status"] == "up", 10, what="replica linked")
        sync1 = int(cli_info(master.port, "stats")["sync_full"])
        self.assertEqual(sync1 - sync0, 1)
        self.assertEqual(sum(r for r in resyncs if r), sync1 - sync0, resyncs)
        self.assertEqual(sorted(r for r in resyncs if r), [1], resyncs)
        # a second agent watches the replica too
        b = self.agent([{"name": "replica", "address": "127.0.0.1:%d" % replica.port}])
        rpolls = Polls(b, "replica")
        self.assertEqual(rpolls.next()["derived"]["replication"]["master_link_up"], 1)
        # under write load the replica trails (it acknowledges once a second)
        g = LoadGen(master.port, writes_per_sec=4000)
        g.start()
        self.cleanups.append(g.stop)
        lags = []
        for _ in range(8):
            j = polls.next()
            rep = j["derived"]["replication"]
            self.assertEqual(len(rep["replicas"]), 1, rep)
            self.assertEqual(rep["replicas"][0]["port"], str(replica.port))
            self.assertEqual(rep["replicas"][0]["state"], "online")
            lags.append(rep["max_replica_lag_bytes"])
        self.assertTrue(all(v is not None and v >= 0 for v in lags), lags)
        # ~160 kB written per second; an ack at most ~1 s old
        self.assertGreater(max(lags), 1000, lags)
        self.assertLess(max(lags), 4000 * 200 * 3, lags)
        m = a.metrics()
        self.assertGreaterEqual(value(m, "redis_replica_max_lag_bytes", target="master"), 0)
        g.stop()
        # idle again: the replica catches up and the lag goes to 0
        wait_for(lambda: polls.next()["derived"]["replication"]["max_replica_lag_bytes"] == 0, 10,
                 what="lag back to 0")
        # the master dies: the replica's link goes down within a few polls
        master.kill()
        wait_for(lambda: cli_info(replica.port, "replication")["master_link_status"] == "down", 10,
                 what="replica sees its master down")
        j = wait_for(lambda: (lambda j: j if j["derived"]["replication"]["master_link_up"] == 0 else None)(rpolls.next()),
                     5, what="master_link_up 0")
        self.assertTrue(j["up"])

    def test_evictions(self):
        s = self.server("lru", ["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"])
        a = self.agent([{"name": "lru", "address": "127.0.0.1:%d" % s.port}], interval="1s", timeout="500ms")
        c = s.client()
        # past maxmemory: evicting. In batches of 100 kB: a pipeline larger
        # than maxmemory sits in the query buffer, which counts as used
        # memory, and makes every SET evict for as long as Redis allows
        for k in range(30):
            c.pipeline([("SET", "fill:%d" % i, "x" * 1000) for i in range(100 * k, 100 * k + 100)])
        e = {}

        def settled():
            # Redis 7 may go on evicting in a timer after the command that
            # went over maxmemory: wait until the count stops moving
            n = [int(cli_info(s.port, "stats")["evicted_keys"])]

            def still():
                n.append(int(cli_info(s.port, "stats")["evicted_keys"]))
                return n[-1] == n[-2]
            wait_for(still, 5, step=0.1, what="evictions to settle")
            return n[-1]
        settled()

        def burst():
            e[0] = settled()
            for k in range(8):
                c.pipeline([("SET", "burst:%d" % i, "x" * 1000) for i in range(100 * k, 100 * k + 100)])
            e[1] = settled()
        d = self.burst_in_one_interval(a, "lru", burst)
        evicted = e[1] - e[0]
        self.assertGreater(evicted, 400)
        got = d["throughput"]["evicted_keys_per_second"] * d["interval_seconds"]
        # at maxmemory, any command evicts, the INFO of the agent and of
        # redis-cli included: the two windows cannot match to the key
        self.assertLess(abs(got - evicted), max(5, 0.1 * evicted), (got, evicted))
        c.close()

    def test_oom_refused_writes(self):
        s = self.server("oom", ["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"])
        a = self.agent([{"name": "oom", "address": "127.0.0.1:%d" % s.port}], interval="1s", timeout="500ms")
        c = s.client()
        n = 0
        while True:  # fill up to the limit
            try:
                c.cmd("SET", "fill:%d" % n, "x" * 1000)
            except RuntimeError as e:
                self.assertIn("OOM", str(e))
                break
            n += 1
        # the fill's last SET was refused too: a poll that asks for
        # commandstats after it (the scrape has it ask), so that the window
        # of the burst's starts after the fill
        t_fill = time.time()
        polls = Polls(a, "oom")
        a.metrics("/scrape?target=oom")
        j = polls.next()
        while split_window(j)[1] < t_fill:
            j = polls.next()
        refused = {}

        def burst():
            refused["t0"] = time.time()
            o0 = errorstat(s.port, "OOM")
            c.s.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$6\r\nb:%04d\r\n$1000\r\n%s\r\n" % (i, b"x" * 1000)
                                 for i in range(300)))
            replies = [c.f.readline() for _ in range(300)]
            refused["client"] = sum(1 for r in replies if r.startswith(b"-OOM"))
            refused["server"] = errorstat(s.port, "OOM") - o0  # the server's own count, via redis-cli
            refused["t1"] = time.time()
        d = self.burst_in_one_interval(a, "oom", burst)
        self.assertGreater(refused["client"], 250, refused)
        self.assertEqual(refused["server"], refused["client"])
        dt = d["interval_seconds"]
        self.assertAlmostEqual(d["errors"]["oom_errors_per_second"] * dt, refused["server"], delta=0.5)
        self.assertGreater(value(a.metrics(), "redis_oom_errors_per_second", target="oom"), 0)
        # the refused writes come from commandstats (rejected_calls): the
        # first poll that asked for them after the burst (commandstats_interval)
        j = polls.next()
        while split_window(j)[1] < refused["t1"]:
            j = polls.next(timeout=8)
        self.assertLessEqual(split_window(j)[0], refused["t0"] + 0.05, "burst straddles two commandstats")
        self.assertGreaterEqual(split_window(j)[0], t_fill, "the fill's refused SET in the window")
        d = j["derived"]
        self.assertAlmostEqual(d["errors"]["writes_refused_per_second"] * d["commandstats_interval_seconds"],
                               refused["server"], delta=0.5)
        self.assertGreater(value(a.metrics(), "redis_writes_refused_per_second", target="oom"), 0)
        c.close()


class Pre70ConfigPeer(FakePeer):
    """A Redis 6.2 as far as the agent can tell: single-section INFO, and
    CONFIG GET with exactly one parameter (the multi-argument form is
    refused as 6.2 refuses it)."""

    def __init__(self, values):
        self.values = values
        super().__init__("redis6", "info-redis-6.2.0.txt")

    def _answer(self, c, cmd):
        if len(cmd) >= 2 and cmd[0].upper() == "CONFIG" and cmd[1].upper() == "GET":
            if len(cmd) != 3:
                c.sendall(b"-ERR Unknown subcommand or wrong number of arguments for 'get'. Try CONFIG HELP.\r\n")
            else:
                v = self.values.get(cmd[2])
                c.sendall(b"*2\r\n" + bulk(cmd[2]) + bulk(v) if v is not None else b"*0\r\n")
            return True
        return super()._answer(c, cmd)


class Pre70Config(unittest.TestCase):
    def test_one_config_get_per_setting(self):
        with open(os.path.join(ROOT, "include", "cfgparams.def")) as f:
            params = re.findall(r'^P\(\w+, "([^"]+)", (\w+)', f.read(), re.M)
        values = {}
        for i, (name, kind) in enumerate(params):
            values[name] = {"BOOL": "yes" if i % 2 else "no", "NUM": str(1000 + i), "MSEC": str(10 + i)}.get(
                kind, "val-%d" % i)
        values["appendfsync"] = "everysec"
        values["maxmemory-policy"] = "volatile-lfu"
        peer = Pre70ConfigPeer(values)
        tmp = Tmp()
        agent = Agent(tmp.path, [{"name": "old", "address": "127.0.0.1:%d" % peer.port, "config_interval": "1s"}],
                      defaults={"interval": "500ms", "timeout": "400ms"})
        try:
            j = wait_for(lambda: (lambda j: j if (j["derived"] or {}).get("config") else None)(agent.instance("old")),
                         6, what="config values")
            cfg = j["derived"]["config"]
            for name, kind in params:
                want = values[name]
                got = cfg[name]
                if kind == "BOOL":
                    self.assertEqual(got, want == "yes", name)
                elif kind in ("NUM", "MSEC"):
                    self.assertEqual(got, float(want), name)
                else:
                    self.assertEqual(got, want, name)
            m = agent.metrics()
            self.assertEqual(value(m, "redis_config_maxmemory", target="old"), float(values["maxmemory"]))
            info = [dict(l) for (n, l) in m if n == "redis_config_info"][0]
            self.assertEqual(info["maxmemory_policy"], "volatile-lfu")
            with peer.lock:
                cfg_cmds = [c for c in peer.commands if c and c[0].upper() == "CONFIG"]
            # one parameter per command, every parameter asked, never the
            # multi-argument form; and nothing was refused
            self.assertEqual([c for c in cfg_cmds if len(c) != 3], [])
            self.assertEqual({c[2] for c in cfg_cmds}, set(values))
            self.assertEqual(agent.stop(), 0)
            self.assertNotIn("GET refused", agent.log_text())
        finally:
            if agent.proc.poll() is None:
                agent.stop()
            peer.stop()
            tmp.cleanup()


if __name__ == "__main__":
    harness.main()
