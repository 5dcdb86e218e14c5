#!/usr/bin/env python3
"""Proof of the write-tuning advisor with real redis-server processes: each
check trips on a server configured to trip it, under a load that makes it
matter, and stops holding after the CONFIG SET that fixes it (within two
config_intervals); the tuning guide's high-write-throughput configuration
under a pipelined load yields no persistence, memory or client finding; a
default Redis at idle only the documented informational one; `redpulse
--advise` prints the findings and exits 1/2 against tripped servers, 0
against the tuned one. Host facts come from a prepared tree (the servers'
real pids under proc/), so the result does not depend on this machine's
kernel settings."""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakepeer import FakePeer, bulk  # noqa: E402
from harness import BIN, Agent, RedisServer, TmpTestCase, promtool_check, series, value, wait_for  # noqa: E402
from loadgen import LoadGen  # noqa: E402

CONFIG_INTERVAL = 1.0
# lower than the defaults so the loads this shared CI machine can drive
# (appendfsync always is fsync-bound) count as heavy; documented in the README
THRESHOLDS = {"write_commands_per_second": 200, "pipelining_min_commands_per_second": 200,
              "lazyfree_keys_per_second": 200}

# the tuning guide's high-write-throughput configuration (but activedefrag:
# Debian's redis-server, built with the system jemalloc, refuses it). At tens of
# MB/s of AOF growth any size trigger rewrites more often than hourly: the
# guide turns automatic rewrites off and schedules BGREWRITEAOF.
TUNED = ["--appendonly", "yes", "--appendfsync", "everysec", "--no-appendfsync-on-rewrite", "yes", "--save", "",
         "--auto-aof-rewrite-percentage", "0",
         "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru", "--maxmemory-samples", "10",
         "--lazyfree-lazy-eviction", "yes", "--lazyfree-lazy-expire", "yes",
         "--lazyfree-lazy-server-del", "yes", "--lazyfree-lazy-user-del", "yes",
         "--latency-monitor-threshold", "100", "--tcp-keepalive", "300"]
DEFAULT_SAVE = ["--save", "3600 1 300 100 60 10000"]  # redis.conf's default (the harness turns it off)

LIMITS = """Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            %d                 %d                 files
Max locked memory         8388608              8388608              bytes
"""


def put(root, rel, text):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p + ".tmp", "w") as f:
        f.write(text)
    os.rename(p + ".tmp", p)  # the agent never reads half a file


def host_kernel(root, bad):
    """The kernel settings of the tree: Redis' three start-up warnings, or none."""
    put(root, "sys/kernel/mm/transparent_hugepage/enabled", "[always] madvise never\n" if bad else
        "always [madvise] never\n")
    put(root, "proc/sys/vm/overcommit_memory", "0\n" if bad else "1\n")
    put(root, "proc/sys/net/core/somaxconn", "128\n" if bad else "4096\n")


def host_tree(root, servers, low_files=(), bad_kernel=False):
    """A host where every setting is right (THP madvise, overcommit 1,
    somaxconn 4096; or all three wrong) and each server's pid is a local
    redis-server with 65536 open files, or 1024 for those in low_files."""
    host_kernel(root, bad_kernel)
    for s in servers:
        n = 1024 if s in low_files else 65536
        put(root, "proc/%d/comm" % s.proc.pid, "redis-server\n")
        put(root, "proc/%d/limits" % s.proc.pid, LIMITS % (n, n))
    return root


class Bench:
    """redis-benchmark SETs without end (-P pipelining) until stopped."""

    def __init__(self, port, pipeline, clients=4):
        self.p = subprocess.Popen(["redis-benchmark", "-p", str(port), "-t", "set", "-n", "100000000", "-r", "1000",
                                   "-c", str(clients), "-P", str(pipeline), "-q"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(10)


class Churn(threading.Thread):
    """A client that opens a new connection for every command."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stopping, self.done = port, threading.Event(), 0

    def run(self):
        while not self.stopping.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.sendall(b"*3\r\n$3\r\nSET\r\n$5\r\nchurn\r\n$1\r\nx\r\n")
                    s.recv(64)
                self.done += 1
            except OSError:
                pass
            time.sleep(0.001)

    def stop(self):
        self.stopping.set()
        self.join(10)


class Redis6Config(FakePeer):
    """Redis 6.2 as far as the agent can tell: one INFO section per command
    and one parameter per CONFIG GET (no Redis < 7 is installed here, so this
    one fault-free behaviour is played by a fake)."""
    SETTINGS = {"appendonly": "no", "save": "", "latency-monitor-threshold": "0", "tcp-keepalive": "0",
                "maxmemory": "0", "maxmemory-policy": "noeviction", "appendfsync": "everysec"}

    def __init__(self):
        super().__init__("redis6", "info-redis-6.2.0.txt")

    def _answer(self, c, cmd):
        if cmd and cmd[0].upper() == "CONFIG":
            if len(cmd) != 3 or cmd[1].upper() != "GET":
                c.sendall(b"-ERR Unknown subcommand or wrong number of arguments for 'get'\r\n")
            elif cmd[2] in self.SETTINGS:
                c.sendall(b"*2\r\n" + bulk(cmd[2].encode()) + bulk(self.SETTINGS[cmd[2]].encode()))
            else:
                c.sendall(b"*0\r\n")  # a parameter this version does not have
            return True
        return super()._answer(c, cmd)


class Advise(TmpTestCase):
    def server(self, name, args=()):
        s = RedisServer(self.tmp.path, name, args=list(args))
        self.cleanups.append(s.stop)
        return s

    @staticmethod
    def config_set(s, name, value, client=None):
        c = client or s.client()
        try:
            assert c.cmd("CONFIG", "SET", name, value) == "OK"
        finally:
            if not client:
                c.close()

    def agent(self, servers, low_files=(), thresholds=THRESHOLDS, bad_kernel=False):
        root = host_tree(os.path.join(self.tmp.path, "host-%d" % len(self.cleanups)), servers, low_files,
                         bad_kernel)
        insts = [{"name": s.name, "address": "redis://127.0.0.1:%d" % s.port} for s in servers]
        a = Agent(self.tmp.path, insts, defaults={"interval": "500ms", "timeout": "400ms",
                                                  "config_interval": "%ds" % CONFIG_INTERVAL},
                  extra={"advice": {"host_root": root, "host_interval": "1s", "thresholds": thresholds}},
                  log_level="info")

        def stop():  # a clean exit (under ASan: no leak)
            rc = a.stop()
            assert rc == 0, a.log_text()
        self.cleanups.append(stop)
        a.root = root
        return a

    def start(self, thing):
        self.cleanups.append(thing.stop)
        return thing

    @staticmethod
    def findings(agent, name):
        return {f["id"]: f for f in agent.instance(name)["advice"] or []}

    def wait_holds(self, agent, name, check, timeout=15):
        return wait_for(lambda: self.findings(agent, name).get(check), timeout, step=0.1,
                        what="%s to hold on %s" % (check, name))

    def wait_clears(self, agent, name, check, since):
        wait_for(lambda: check not in self.findings(agent, name), 15, step=0.05,
                 what="%s to clear on %s" % (check, name))
        took = time.monotonic() - since
        return took

    def trip_and_fix(self, a, s, check, name, value, severity=None, client=None):
        """check holds on s; after CONFIG SET name value it is gone within
        two config_intervals."""
        f = self.wait_holds(a, s.name, check)
        if severity:
            self.assertEqual(f["severity"], severity)
        t0 = time.monotonic()
        self.config_set(s, name, value, client)
        self.assertLessEqual(self.wait_clears(a, s.name, check, t0), 2 * CONFIG_INTERVAL + 0.5, check)
        return f

    def advise(self, s, agent, seconds=2):
        """The one-shot report, with the agent's advice section (thresholds, host root)."""
        p = subprocess.run([BIN, "--advise", "redis://127.0.0.1:%d" % s.port, "--seconds", str(seconds),
                            "--config", agent.path], capture_output=True, timeout=60)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_persistence_fsync_and_pipelining(self):
        s = self.server("fsync", ["--appendonly", "yes", "--appendfsync", "always", "--latency-monitor-threshold",
                                  "100"])
        s.name = "fsync"
        a = self.agent([s])
        bench = self.start(Bench(s.port, pipeline=1))
        f = self.wait_holds(a, "fsync", "appendfsync_always")
        self.assertEqual(f["severity"], "warning")
        self.assertIn("appendfsync always", f["evidence"])
        self.assertIn("write commands/s", f["evidence"])
        self.assertEqual(f["recommendation"].split(" (")[0], "CONFIG SET appendfsync everysec")
        self.assertIn("1 s", f["tradeoff"])
        p = self.wait_holds(a, "fsync", "no_pipelining")
        self.assertIn("commands per read", p["evidence"])
        self.wait_holds(a, "fsync", "no_maxmemory")

        # the series, the API, the landing page
        status, _, body = a.get("/metrics")
        m = body.decode()
        self.assertEqual(promtool_check(m)[0], 0, promtool_check(m)[1])
        got = {d["check"]: d["severity"] for d, v in series(a.metrics(), "redpulse_advice", target="fsync")}
        self.assertEqual(got.get("appendfsync_always"), "warning")
        status, _, body = a.get("/api/v1/advice")
        doc = json.loads(body)
        self.assertEqual(doc[0]["name"], "fsync")
        self.assertIn("appendfsync_always", [x["id"] for x in doc[0]["advice"]])
        status, _, body = a.get("/")
        self.assertIn(b"appendfsync_always", body)
        self.assertIn(b"CONFIG SET appendfsync everysec", body)

        # the one-shot report against the tripped server: findings, exit 1
        rc, out, err = self.advise(s, a)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("WARNING appendfsync_always", out)
        self.assertIn("CONFIG SET appendfsync everysec", out)

        # the fix: cleared within two config_intervals, and the series goes
        t0 = time.monotonic()
        self.config_set(s, "appendfsync", "everysec")
        took = self.wait_clears(a, "fsync", "appendfsync_always", t0)
        self.assertLessEqual(took, 2 * CONFIG_INTERVAL + 0.5)
        t0 = time.monotonic()
        self.config_set(s, "maxmemory", "512mb")
        self.assertLessEqual(self.wait_clears(a, "fsync", "no_maxmemory", t0), 2 * CONFIG_INTERVAL + 0.5)
        self.assertFalse(series(a.metrics(), "redpulse_advice", target="fsync", check="appendfsync_always"))

        # the AOF grows by the load: at a 64 MB minimum it is rewritten more
        # often than hourly; snapshots on top of it; fsyncs during a rewrite
        f = self.trip_and_fix(a, s, "aof_rewrites_often", "auto-aof-rewrite-percentage", "0", "warning")
        self.assertIn("rewritten every", f["evidence"])
        self.config_set(s, "save", "3600 1")
        self.trip_and_fix(a, s, "rdb_and_aof", "save", "", "info")
        c = s.client()
        self.cleanups.append(c.close)
        c.cmd("BGREWRITEAOF")
        f = self.trip_and_fix(a, s, "fsync_during_rewrite", "no-appendfsync-on-rewrite", "yes", "warning")
        self.assertIn("no-appendfsync-on-rewrite no", f["evidence"])

        # -P 50 instead of -P 1: clients pipeline now, the finding goes
        bench.stop()
        bench = self.start(Bench(s.port, pipeline=50, clients=2))
        self.wait_clears(a, "fsync", "no_pipelining", time.monotonic())
        time.sleep(1.5)  # a few more polls under the pipelined load: it stays away
        self.assertNotIn("no_pipelining", self.findings(a, "fsync"))

    def test_noeviction_near_maxmemory(self):
        s = self.server("noevict", ["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"])
        s.name = "noevict"
        a = self.agent([s])
        c = s.client()
        self.cleanups.append(c.close)
        val = "x" * 1024
        oom = 0
        for i in range(20000):  # fill until the server refuses writes
            try:
                c.cmd("SET", "k%d" % i, val)
            except RuntimeError as e:
                self.assertIn("OOM", str(e))
                oom += 1
                if oom > 20:
                    break
        self.assertGreater(oom, 0)
        writer = self.start(LoadGen(s.port, writes_per_sec=200, prefix="more", keyspace=100000))
        writer.start()
        f = self.wait_holds(a, "noevict", "noeviction_near_full")
        self.assertEqual(f["severity"], "critical")
        self.assertIn("noeviction", f["evidence"])
        self.assertIn("of maxmemory", f["evidence"])
        rc, out, err = self.advise(s, a, seconds=1)
        self.assertEqual(rc, 2, out + err)
        self.assertIn("CRITICAL noeviction_near_full", out)
        t0 = time.monotonic()
        self.config_set(s, "maxmemory-policy", "allkeys-lru")
        self.assertLessEqual(self.wait_clears(a, "noevict", "noeviction_near_full", t0), 2 * CONFIG_INTERVAL + 0.5)

    def test_eviction_settings(self):
        s = self.server("evict", ["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru", "--maxmemory-samples", "5",
                                  "--lazyfree-lazy-eviction", "no"])
        s.name = "evict"
        a = self.agent([s])
        c = s.client()
        self.cleanups.append(c.close)
        for b in range(40):  # fill past maxmemory: from now on every new key evicts one
            c.pipeline([("SET", "fill:%d:%d" % (b, i), "x" * 100) for i in range(1000)])
        writer = self.start(LoadGen(s.port, writes_per_sec=3000, prefix="new", keyspace=10000000))
        writer.start()
        f = self.trip_and_fix(a, s, "maxmemory_samples_low", "maxmemory-samples", "10", "info")
        self.assertIn("evicted keys/s", f["evidence"])
        f = self.trip_and_fix(a, s, "lazyfree_off", "lazyfree-lazy-eviction", "yes", "warning")
        self.assertIn("CONFIG SET lazyfree-lazy-eviction yes", f["recommendation"])
        # volatile-lru with no key that has a TTL: nothing can be evicted
        self.config_set(s, "maxmemory-policy", "volatile-lru")
        f = self.trip_and_fix(a, s, "volatile_without_ttl", "maxmemory-policy", "allkeys-lru", "warning")
        self.assertIn("none expiring", f["evidence"])

    def test_fragmentation_without_defrag(self):
        # real fragmentation: 200,000 values of 200 bytes, then 3 in 4
        # deleted, so the allocator's pages stay resident a quarter full
        s = self.server("frag", ["--activedefrag", "no"])
        s.name = "frag"
        a = self.agent([s])
        c = s.client()
        self.cleanups.append(c.close)
        c.cmd("EVAL", "for i = 0, 199999 do redis.call('SET', 'k:' .. i, string.rep('x', 200)) end", "0")
        c.cmd("EVAL", "for i = 0, 199999 do if i % 4 ~= 0 then redis.call('DEL', 'k:' .. i) end end", "0")
        m = c.info("memory")
        self.assertGreater(float(m["mem_fragmentation_ratio"]), 1.4, m)
        f = self.wait_holds(a, "frag", "fragmentation_no_defrag")
        self.assertEqual(f["severity"], "warning")
        self.assertIn("activedefrag", f["recommendation"])
        # a small dataset is no problem (MEMORY DOCTOR's rule): the finding goes
        t0 = time.monotonic()
        c.cmd("FLUSHALL")
        self.assertLessEqual(self.wait_clears(a, "frag", "fragmentation_no_defrag", t0), 2 * CONFIG_INTERVAL + 0.5)

    def test_client_limits_and_persistence_off(self):
        s = self.server("full", ["--maxclients", "8"])
        s.name = "full"
        a = self.agent([s])
        c = s.client()
        self.cleanups.append(c.close)
        c.cmd("SET", "only", "key")
        held = []
        for _ in range(12):  # the agent's connection, ours, and these: some are turned away
            k = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            held.append(k)
            self.cleanups.append(k.close)
        f = self.wait_holds(a, "full", "rejected_connections")
        self.assertEqual(f["severity"], "critical")
        self.trip_and_fix(a, s, "clients_near_maxclients", "maxclients", "1000", "warning", client=c)
        self.wait_clears(a, "full", "rejected_connections", time.monotonic())  # no new rejections
        f = self.trip_and_fix(a, s, "persistence_off", "appendonly", "yes", "info", client=c)
        self.assertIn("1 keys", f["title"])

    def test_connection_churn_save_policy_and_open_files(self):
        # disable-thp no: the server does not opt out of THP for itself
        s = self.server("churn", ["--save", "1 1", "--latency-monitor-threshold", "100", "--disable-thp", "no"])
        s.name = "churn"
        a = self.agent([s], low_files=[s], bad_kernel=True)
        # the kernel: each of Redis' start-up warnings, gone once the sysctl is done
        for check in ("thp_always", "overcommit_memory", "somaxconn_below_backlog"):
            self.assertEqual(self.wait_holds(a, "churn", check)["severity"], "warning")
        f = self.findings(a, "churn")
        self.assertIn("[always]", f["thp_always"]["evidence"])
        self.assertIn("vm.overcommit_memory = 0", f["overcommit_memory"]["evidence"])
        self.assertIn("sysctl net.core.somaxconn=511", f["somaxconn_below_backlog"]["recommendation"])
        t0 = time.monotonic()
        host_kernel(a.root, bad=False)
        for check in ("thp_always", "overcommit_memory", "somaxconn_below_backlog"):
            self.assertLessEqual(self.wait_clears(a, "churn", check, t0), 2 * CONFIG_INTERVAL + 0.5, check)
        churn = self.start(Churn(s.port))
        churn.start()
        f = self.wait_holds(a, "churn", "no_connection_reuse")
        self.assertIn("new connections/s", f["evidence"])
        self.assertIn("connection pool", f["recommendation"])
        sv = self.wait_holds(a, "churn", "save_forks_often")
        self.assertIn('save "1 1"', sv["evidence"])
        self.assertIn("latest fork", sv["evidence"])
        o = self.wait_holds(a, "churn", "open_files_limit")
        self.assertIn("Max open files 1024", o["evidence"])
        self.assertIn("LimitNOFILE=10032", o["recommendation"])
        # the fixes: a save policy for the load, a maxclients the limit allows
        t0 = time.monotonic()
        self.config_set(s, "save", "900 1")
        self.assertLessEqual(self.wait_clears(a, "churn", "save_forks_often", t0), 2 * CONFIG_INTERVAL + 0.5)
        t0 = time.monotonic()
        self.config_set(s, "maxclients", "900")
        self.assertLessEqual(self.wait_clears(a, "churn", "open_files_limit", t0), 2 * CONFIG_INTERVAL + 0.5)
        # the clients pool their connections: the finding goes
        churn.stop()
        self.wait_clears(a, "churn", "no_connection_reuse", time.monotonic())
        self.assertIn("with host checks", a.log_text())

    def test_tuned_and_default_servers(self):
        tuned = self.server("tuned", TUNED)
        tuned.name = "tuned"
        idle = self.server("idle", DEFAULT_SAVE)
        idle.name = "idle"
        a = self.agent([tuned, idle], thresholds={})  # the documented defaults
        bench = self.start(Bench(tuned.port, pipeline=50, clients=2))
        # the idle default server: exactly the informational latency one
        f = self.wait_holds(a, "idle", "latency_monitor_off")
        self.assertEqual(f["severity"], "info")
        # a few config and poll rounds under load, then nothing anywhere but that
        wait_for(lambda: (a.instance("tuned")["derived"]["throughput"]["write_commands_per_second"] or 0) > 1000, 10,
                 what="the pipelined load")
        time.sleep(3 * CONFIG_INTERVAL)
        j = a.instance("tuned")
        self.assertGreater(j["derived"]["throughput"]["write_commands_per_second"], 1000)
        self.assertEqual(j["advice"], [], j["advice"])
        self.assertEqual(sorted(self.findings(a, "idle")), ["latency_monitor_off"])
        rc, out, err = self.advise(tuned, a)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("No findings.", out)
        bench.stop()
        rc, out, err = self.advise(idle, a, seconds=1)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("INFO latency_monitor_off", out)


    def test_redis6_one_config_get_per_setting(self):
        peer = Redis6Config()
        self.cleanups.append(peer.stop)
        a = Agent(self.tmp.path, [{"name": "r6", "address": "redis://127.0.0.1:%d" % peer.port}],
                  defaults={"interval": "500ms", "timeout": "400ms", "config_interval": "1s"},
                  extra={"advice": {"host_root": self.tmp.path}}, log_level="info")
        self.cleanups.append(a.stop)
        f = self.wait_holds(a, "r6", "tcp_keepalive_off")
        self.assertEqual(f["severity"], "info")
        self.wait_holds(a, "r6", "latency_monitor_off")
        with peer.lock:
            gets = [cmd for cmd in peer.commands if cmd and cmd[0].upper() == "CONFIG"]
        self.assertTrue(gets)
        self.assertEqual([g for g in gets if len(g) != 3], [])  # never several parameters at once
        names = [g[2] for g in gets]
        # every setting the checks need, each asked once per round
        for want in ("appendonly", "appendfsync", "save", "maxmemory", "maxmemory-policy", "maxmemory-samples",
                     "no-appendfsync-on-rewrite", "auto-aof-rewrite-min-size", "auto-aof-rewrite-percentage",
                     "activedefrag", "lazyfree-lazy-eviction", "lazyfree-lazy-expire", "maxclients", "tcp-backlog",
                     "tcp-keepalive", "disable-thp", "latency-monitor-threshold"):
            self.assertIn(want, names)
        per_round = len(set(names))
        self.assertEqual(len(set(names[:per_round])), per_round, names)  # the first round: each once
        # the one-shot report asks the same way, one setting a command, and
        # checks them (the agent stopped first: its own rounds go on otherwise)
        self.assertEqual(a.stop(), 0)
        with peer.lock:
            peer.commands.clear()
        p = subprocess.run([BIN, "--advise", "redis://127.0.0.1:%d" % peer.port, "--seconds", "1", "--host-root",
                            self.tmp.path], capture_output=True, timeout=60)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        self.assertIn("INFO tcp_keepalive_off", out)
        with peer.lock:
            gets = [cmd for cmd in peer.commands if cmd and cmd[0].upper() == "CONFIG"]
        self.assertEqual(sorted(g[2] for g in gets), sorted(set(names)))


class HostilePeer(FakePeer):
    """Peers the one-shot report must survive: a 2 GB bulk string announced,
    a 2^31-element array announced, a reply dripped a byte a second, an
    integer for INFO, an error with terminal escapes and a forged line, an
    error too long for a message, and a server that answers everything with
    "hello"."""
    REPLIES = {"bigbulk": b"$2000000000\r\n", "bigarray": b"*2147483647\r\n", "integer": b":1\r\n",
               "escapes": "-ERR \x1b[31mred\x1b[0m\nforged line \u20ac\r\n".encode(), "hello": b"$5\r\nhello\r\n",
               "long": b"-ERR " + "\u20ac".encode() * 300 + b"\r\n"}

    def __init__(self, mode):
        super().__init__(mode)

    def _answer(self, c, cmd):
        if self.mode == "drip":
            for b in bulk(self.info):
                c.sendall(bytes([b]))
                time.sleep(1)
                if self.stopping:
                    return False
            return True
        c.sendall(self.REPLIES[self.mode])
        if self.mode in ("bigbulk", "bigarray"):
            time.sleep(0.2)
            try:
                while not self.stopping:  # as much as the reader will take
                    c.sendall(b"x" * 65536)
            except OSError:
                pass
            return False
        return True


class AdviseCli(TmpTestCase):
    """`redpulse --advise` against servers and peers that are not on its
    side: it ends, within its deadlines, with exit 3 and a message that
    names the problem, and never claims an all-clear it did not check."""

    def run_cli(self, address, *args, env=None, timeout=30):
        t = time.monotonic()
        p = subprocess.run([BIN, "--advise", address] + list(args), capture_output=True, timeout=timeout,
                           env=env)
        return p.returncode, p.stdout.decode(), p.stderr.decode(), time.monotonic() - t

    def test_words_that_are_not_text_refused(self):
        """The address and the variable name are quoted in its messages:
        one holding a newline (a forged line) or bytes that are not text
        is refused at once, named with '?' for what it holds."""
        for args, said in ((["redis://127.0.0.1:1\nredpulse: all clear"], "address of printable text"),
                           (["redis://127.0.0.1:1\u2028x"], "address of printable text"),
                           (["redis://127.0.0.1:1", "--password-env", "PW\nforged"], "takes a variable name"),
                           (["redis://127.0.0.1:1", "--password-env", ""], "takes a variable name")):
            rc, out, err, t = self.run_cli(*args, timeout=10)
            self.assertEqual(rc, 3, err)
            self.assertIn(said, err)
            self.assertEqual(len(err.strip().split("\n")), 1, err)  # nothing forged: one line
            self.assertLess(t, 5)

    def test_server_timeout_shorter_than_the_measurement(self):
        # the connection sat idle through --seconds: the server closed it,
        # and the next send killed the report with SIGPIPE (exit 141, no word)
        s = RedisServer(self.tmp.path, "t", args=["--timeout", "1"], unix=True)
        self.cleanups.append(s.stop)
        root = host_tree(os.path.join(self.tmp.path, "host"), [s])
        rc, out, err, _ = self.run_cli("unix://" + s.unix, "--seconds", "3", "--host-root", root)
        self.assertIn(rc, (0, 1, 2), out + err)
        self.assertIn("redpulse advice for unix://", out)

    def test_hostile_peers(self):
        modes = {"bigbulk": "reply larger than 1048576 bytes", "bigarray": "reply larger than 1048576 bytes",
                 "integer": "INFO answered with an integer", "escapes": "forged line \u20ac",
                 "hello": "not the INFO of a Redis server", "drip": "no whole reply within 5 s",
                 "long": "INFO refused: ERR \u20ac\u20ac"}
        peers = {m: HostilePeer(m) for m in modes}
        for p in peers.values():
            self.cleanups.append(p.stop)
        procs = {m: (time.monotonic(), subprocess.Popen(
            [BIN, "--advise", "redis://127.0.0.1:%d" % p.port, "--seconds", "1"], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)) for m, p in peers.items()}
        ends = {}

        def wait(m, t, pr):  # each report's own time, not the time until the slowest before it ended
            ends[m] = pr.communicate(timeout=30) + (time.monotonic() - t,)
        waiters = [threading.Thread(target=wait, args=(m, t, pr)) for m, (t, pr) in procs.items()]
        for w in waiters:
            w.start()
        for w in waiters:
            w.join()
        for m, (t, pr) in procs.items():
            out, err, took = ends[m]
            err = err.decode()  # strict: a cut error text ends on a whole character
            self.assertEqual(pr.returncode, 3, (m, out, err))
            if m == "long":
                self.assertIn("\u20ac...", err)
                self.assertNotIn("?", err)
            self.assertIn(modes[m], err, m)
            self.assertNotIn("\x1b", err, m)  # the peer's escapes do not reach the terminal
            self.assertEqual(err.count("\n"), 1, (m, err))  # nor its line breaks: one message, one line
            self.assertLess(took, 8 if m == "drip" else 3, m)  # one deadline for the whole reply: 5 s

    def test_settings_refused_is_no_all_clear(self):
        s = RedisServer(self.tmp.path, "acl", args=DEFAULT_SAVE)
        self.cleanups.append(s.stop)
        root = host_tree(os.path.join(self.tmp.path, "host"), [s])
        c = s.client()
        c.cmd("ACL", "SETUSER", "mon", "on", ">pw", "+info", "+ping", "~*")
        c.close()
        addr = "redis://127.0.0.1:%d" % s.port
        rc, out, err, _ = self.run_cli(addr, "--seconds", "1", "--host-root", root)
        self.assertEqual(rc, 0, out + err)  # all checked: the one informational finding
        self.assertIn("INFO latency_monitor_off", out)
        env = dict(os.environ, PWV="pw")
        rc, out, err, _ = self.run_cli("redis://mon@127.0.0.1:%d" % s.port, "--seconds", "1", "--host-root", root,
                                       "--password-env", "PWV", env=env)
        self.assertEqual(rc, 3, out + err)  # was 0 and "No findings."
        self.assertIn("CONFIG GET NOPERM", err)
        self.assertIn("No findings among the checks that ran", out)
        self.assertNotIn("No findings.", out)

    def test_password_in_the_address_is_not_echoed(self):
        rc, out, err, _ = self.run_cli("redis://u:s3cret@127.0.0.1:1", "--seconds", "1")
        self.assertEqual(rc, 3)
        self.assertNotIn("s3cret", err)
        self.assertIn("redis://u:***@127.0.0.1:1", err)
        self.assertIn("--password-env", err)
        rc, out, err, _ = self.run_cli("u:s3cret@127.0.0.1:1", "--seconds", "1")  # no scheme: echoed before
        self.assertEqual(rc, 3)
        self.assertNotIn("s3cret", err)
        rc, out, err, _ = self.run_cli("redis://h:99999/a@b", "--seconds", "1")  # an '@' past the host is no password
        self.assertEqual(rc, 3)
        self.assertIn('invalid port "99999"', err)

    def test_fifo_under_host_root(self):
        # a FIFO where a kernel file should be: open() blocked for good, in
        # the report and on the agent's loop thread (polls and SIGTERM stopped)
        s = RedisServer(self.tmp.path, "f")
        self.cleanups.append(s.stop)
        root = host_tree(os.path.join(self.tmp.path, "host"), [s])
        os.unlink(os.path.join(root, "proc/sys/net/core/somaxconn"))
        os.mkfifo(os.path.join(root, "proc/sys/net/core/somaxconn"))
        rc, out, err, took = self.run_cli("redis://127.0.0.1:%d" % s.port, "--seconds", "1", "--host-root", root)
        self.assertIn(rc, (0, 1, 2), out + err)
        self.assertLess(took, 10)
        a = Agent(self.tmp.path, [{"name": "f", "address": "redis://127.0.0.1:%d" % s.port}],
                  defaults={"interval": "200ms", "timeout": "150ms", "config_interval": "1s"},
                  extra={"advice": {"host_root": root, "host_interval": "1s"}}, log_level="info")
        try:
            wait_for(lambda: "with host checks" in a.log_text(), 10, what="the host checks")
            before = value(a.metrics(), "redpulse_polls_total")
            time.sleep(1.5)  # the host checks run every second: polls go on past them
            self.assertGreater(value(a.metrics(), "redpulse_polls_total"), before + 3)
        finally:
            t = time.monotonic()
            self.assertEqual(a.stop(), 0)
            self.assertLess(time.monotonic() - t, 10)


if __name__ == "__main__":
    unittest.main()
