#!/usr/bin/env python3
"""Discovery against real servers: a 6-node Redis Cluster found from one
seed (roles, shard labels, a manual failover, a node added, a node killed
and removed after remove_after), a Sentinel watching a master and a replica
(SENTINEL FAILOVER), /api/v1/targets consumed by a real Prometheus through
http_sd_configs, two agents sharing 100 instances by the name hash, and bad
sources (unreachable, not a cluster, not a Sentinel, unknown master) that
each get a metric and a log line while polling goes on; and, from scripted
peers, topologies past the per-source node limit and a Sentinel naming one
master many times."""
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
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import _LIVE, Agent, RedisServer, Tmp, free_port, promtool_check, series, wait_for  # noqa: E402
from fakepeer import bulk, read_command  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
REFRESH = 1.0      # seconds, every source below
REMOVE_AFTER = 3.0


def targets(agent):
    status, _, body = agent.get("/api/v1/targets")
    assert status == 200, (status, body)
    return json.loads(body)


def labels_by_name(agent):
    return {g["labels"]["__param_target"]: g["labels"] for g in targets(agent)}


def fnv1a64(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def server(tmp, name, **kw):
    """A RedisServer that is really ours: with other suites running, a port
    free_port() picked can be taken before redis-server binds it (it then
    exits, or someone else's server answers); try again on new ports."""
    for attempt in range(4):
        args = list(kw.get("args", ()))
        port = free_port()
        if kw.get("cluster"):
            bus = free_port()
            while bus == port:  # the kernel may hand out the same free port twice
                bus = free_port()
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "1000", "--cluster-port", str(bus)]
        try:
            s = RedisServer(tmp, "%s-%d" % (name, attempt), args=args, conf=kw.get("conf"), port=port)
        except AssertionError:
            continue
        if s.proc.poll() is None and int(one(s, "INFO", "server").split("process_id:")[1].split()[0]) == s.proc.pid:
            return s
        s.kill()
    raise AssertionError("could not start redis-server %s" % name)


def cluster_node(tmp, name):
    return server(tmp, name, cluster=True)


def redis_role(node):
    c = node.client()
    try:
        return c.info("replication")["role"]
    finally:
        c.close()


def one(node, *args):
    c = node.client()
    try:
        return c.cmd(*args)
    finally:
        c.close()


class ScriptedPeer:
    """A Cluster seed or a Sentinel that says what answer(cmd) returns (RESP
    bytes): for what a real server cannot be made to say. Every command it
    receives is kept in asked, upper-cased."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.asked = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        f = c.makefile("rb")
        try:
            while True:
                cmd = read_command(f)
                if cmd is None:
                    return
                self.asked.append(" ".join(cmd).upper())
                c.sendall(self.answer(cmd))
        except OSError:
            return
        finally:
            c.close()

    def answer(self, cmd):
        return b"-ERR unknown command\r\n"

    def close(self):
        self.sock.close()


def resp(v):
    """v (lists of strings and numbers) as a RESP reply."""
    if isinstance(v, list):
        return b"*%d\r\n" % len(v) + b"".join(resp(x) for x in v)
    return bulk(str(v))


class NodesSeed(ScriptedPeer):
    """A seed as Redis < 7.0 answers: no CLUSTER SHARDS; CLUSTER NODES is
    what nodes() returns."""

    def __init__(self, nodes):
        self.nodes = nodes
        super().__init__()

    def answer(self, cmd):
        words = [a.upper() for a in cmd]
        if words == ["CLUSTER", "SHARDS"]:
            return b"-ERR Unknown subcommand or wrong number of arguments for 'SHARDS'. Try CLUSTER HELP.\r\n"
        if words == ["CLUSTER", "NODES"]:
            return bulk(self.nodes())
        return super().answer(cmd)


class FakeSentinel(ScriptedPeer):
    """SENTINEL MASTERS lists masters ([(name, port)], on 127.0.0.1, in that
    order, repeats kept); SENTINEL REPLICAS <name> lists replicas[name]
    (ports)."""

    def __init__(self, masters, replicas):
        self.masters, self.replicas = masters, replicas
        super().__init__()

    def answer(self, cmd):
        words = [a.upper() for a in cmd]
        if words == ["SENTINEL", "MASTERS"]:
            return resp([["name", n, "ip", "127.0.0.1", "port", p, "flags", "master"] for n, p in self.masters])
        if words[:2] == ["SENTINEL", "REPLICAS"] and len(cmd) == 3:
            ports = self.replicas.get(cmd[2], [])
            return resp([["ip", "127.0.0.1", "port", p, "flags", "slave"] for p in ports])
        return super().answer(cmd)


class Cluster(unittest.TestCase):
    """Tests run in name order: each builds on the cluster the last left."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        t = cls.tmp.path
        cls.nodes = [cluster_node(t, "n%d" % i) for i in range(6)]
        p = subprocess.run(["redis-cli", "--cluster", "create"] + ["127.0.0.1:%d" % n.port for n in cls.nodes] +
                           ["--cluster-replicas", "1", "--cluster-yes"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        for n in cls.nodes:
            wait_for(lambda: "cluster_state:ok" in one(n, "CLUSTER", "INFO"), 20, step=0.1, what="cluster ok")
        cls.agent = Agent(t, [], extra={"discovery": [{
            "type": "cluster", "name": "main", "seeds": ["127.0.0.1:%d" % cls.nodes[0].port],
            "refresh": "%dms" % (REFRESH * 1000), "remove_after": "%dms" % (REMOVE_AFTER * 1000),
            "timeout": "500ms",
            "defaults": {"interval": "500ms", "timeout": "250ms", "labels": {"env": "test"}}}]})
        cls.prom = None

    @classmethod
    def tearDownClass(cls):
        if cls.prom:
            cls.prom.terminate()
            cls.prom.wait(20)
            cls.prom_log.close()
        rc = cls.agent.stop()
        for n in cls.nodes:
            n.stop()
        cls.tmp.cleanup()
        assert rc == 0

    def name(self, node):
        return "main-127.0.0.1-%d" % node.port

    def expected(self):
        """name -> (role, shard) as the servers themselves say."""
        ids = {n.port: one(n, "CLUSTER", "MYID") for n in self.nodes if n.proc.poll() is None}
        out = {}
        for n in self.nodes:
            if n.proc.poll() is not None:
                continue
            c = n.client()
            info = c.info("replication")
            c.close()
            if info["role"] == "master":
                out[self.name(n)] = ("master", ids[n.port])
            else:
                out[self.name(n)] = ("replica", ids[int(info["master_port"])])
        return out

    def seen(self):
        return {k: (v.get("role"), v.get("shard")) for k, v in labels_by_name(self.agent).items()}

    def test_1_all_six_from_one_seed(self):
        want = self.expected()
        self.assertEqual(sorted(r for r, _ in want.values()), ["master"] * 3 + ["replica"] * 3)
        wait_for(lambda: self.seen() == want, 15, step=0.2, what="the 6 nodes with their roles and shards")
        for labels in labels_by_name(self.agent).values():
            self.assertEqual(labels["cluster"], "main")
            self.assertEqual(labels["env"], "test")

        def all_up():
            m = self.agent.metrics()
            up = {d["target"]: v for d, v in series(m, "redis_up")}
            return up if up == {n: 1.0 for n in want} else None
        wait_for(all_up, 15, step=0.2, what="all 6 polled and up")
        m = self.agent.metrics()
        for n, (role, shard) in want.items():
            info = series(m, "redis_instance_info", target=n)
            self.assertEqual(len(info), 1, info)
            self.assertEqual((info[0][0]["role"], info[0][0]["shard"]), (role, shard))
            self.assertEqual(info[0][0]["redis_mode"], "cluster")
        self.assertEqual(series(m, "redpulse_discovery_instances", source="main")[0][1], 6)
        self.assertGreaterEqual(series(m, "redpulse_discovery_refreshes_total", source="main", result="ok")[0][1], 1)
        ts = series(m, "redpulse_discovery_last_success_timestamp_seconds", source="main")[0][1]
        self.assertLess(abs(time.time() - ts), 10)

    def test_2_prometheus_http_sd(self):
        """Pattern 3 of dashboards/prometheus.yml, as shipped, in a real Prometheus."""
        with open(os.path.join(ROOT, "dashboards", "prometheus.yml")) as f:
            text = f.read()
        job = re.search(r"\n(  # Pattern 3:.*?# end of pattern 3\n)", text, re.S).group(1)
        job = job.replace("REDPULSE", "127.0.0.1:%d" % self.agent.port).replace("refresh_interval: 30s",
                                                                                   "refresh_interval: 1s")
        t = self.tmp.path
        cfg = os.path.join(t, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n\nscrape_configs:\n" + job)
        p = subprocess.run(["promtool", "check", "config", cfg], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        port = free_port()
        cls = type(self)
        cls.prom_log = open(os.path.join(t, "prometheus.log"), "w")
        cls.prom = subprocess.Popen(["prometheus", "--config.file", cfg, "--storage.tsdb.path",
                                     os.path.join(t, "tsdb"), "--web.listen-address", "127.0.0.1:%d" % port],
                                    stdout=cls.prom_log, stderr=subprocess.STDOUT)
        _LIVE.append(cls.prom)

        def api(path):
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
                return json.loads(r.read())
        names = set(labels_by_name(self.agent))
        self.assertEqual(len(names), 6)

        def scraped():
            res = api("/api/v1/query?query=" + urllib.parse.quote('redis_up{job="redis-sd"}'))["data"]["result"]
            got = {r["metric"]["instance"]: r for r in res}
            return got if set(got) == names and all(r["value"][1] == "1" for r in res) else None
        got = wait_for(scraped, 40, step=0.5, what="Prometheus scraping every discovered instance via /scrape")
        for n, r in got.items():
            self.assertEqual(r["metric"]["target"], n)  # the series came from /scrape?target=n
            self.assertIn(r["metric"]["role"], ("master", "replica"))
            self.assertNotIn("exported_role", r["metric"])
        active = api("/api/v1/targets")["data"]["activeTargets"]
        urls = sorted(a["scrapeUrl"] for a in active if a["labels"]["job"] == "redis-sd")
        self.assertEqual(urls, sorted("http://127.0.0.1:%d/scrape?target=%s" % (self.agent.port, n) for n in names))

    def test_3_failover_swaps_roles_without_renaming(self):
        want = self.expected()
        replica = next(n for n in self.nodes if want[self.name(n)][0] == "replica")
        master = next(n for n in self.nodes
                      if want[self.name(n)] == ("master", want[self.name(replica)][1]))
        before = set(labels_by_name(self.agent))
        self.assertEqual(one(replica, "CLUSTER", "FAILOVER"), "OK")
        wait_for(lambda: redis_role(replica) == "master" and redis_role(master) == "slave", 20, step=0.1,
                 what="the failover in Redis")
        t0 = time.monotonic()
        wait_for(lambda: (self.seen()[self.name(replica)][0], self.seen()[self.name(master)][0]) ==
                 ("master", "replica"), 2 * REFRESH + 2, step=0.1, what="roles swapped within two refreshes")
        took = time.monotonic() - t0
        self.assertEqual(set(labels_by_name(self.agent)), before)  # nobody renamed, added or removed
        wait_for(lambda: self.seen() == self.expected(), 10, step=0.2, what="shard labels follow the new master")
        log = self.agent.log_text()
        self.assertIn("%s is now a master" % self.name(replica), log)
        print("roles swapped %.2fs after the failover" % took)

    def test_4_added_node_appears(self):
        new = cluster_node(self.tmp.path, "n6")
        p = subprocess.run(["redis-cli", "--cluster", "add-node", "127.0.0.1:%d" % new.port,
                            "127.0.0.1:%d" % self.nodes[0].port], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.nodes.append(new)
        wait_for(lambda: self.seen().get(self.name(new), (None,))[0] == "master", 20, step=0.2,
                 what="the added node discovered")
        wait_for(lambda: series(self.agent.metrics(), "redis_up", target=self.name(new))[0][1] == 1, 10,
                 step=0.2, what="the added node polled")
        self.assertEqual(len(labels_by_name(self.agent)), 7)

    def test_4b_reload_keeps_what_was_found(self):
        """A reload that changes the source's defaults relabels the instances
        found; none is dropped, renamed or reconnected."""
        before = labels_by_name(self.agent)
        m = self.agent.metrics()
        connects = {d["target"]: v for d, v in series(m, "redpulse_connects_total")}
        self.agent.cfg["discovery"][0]["defaults"]["labels"] = {"env": "staging"}
        with open(self.agent.path, "w") as f:
            json.dump(self.agent.cfg, f)
        self.agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: all(v["env"] == "staging" for v in labels_by_name(self.agent).values()), 10, step=0.1,
                 what="the new label on every instance found")
        after = labels_by_name(self.agent)
        self.assertEqual(set(after), set(before))
        for n in before:
            self.assertEqual(dict(before[n], env="staging"), after[n])
        m = self.agent.metrics()
        self.assertEqual({d["target"]: v for d, v in series(m, "redpulse_connects_total")}, connects)
        self.assertNotIn("removed:", self.agent.log_text())

    def test_4c_cluster_nodes_before_7(self):
        seed = NodesSeed(lambda: one(self.nodes[1], "CLUSTER", "NODES"))
        agent = Agent(self.tmp.path, [], extra={"discovery": [{
            "type": "cluster", "name": "old", "seeds": ["127.0.0.1:%d" % seed.port], "refresh": "1s",
            "timeout": "500ms", "defaults": {"interval": "500ms", "timeout": "250ms"}}]})
        try:
            want = {k.replace("main-", "old-", 1): v for k, v in self.expected().items()}
            wait_for(lambda: {k: (v["role"], v["shard"]) for k, v in labels_by_name(agent).items()} == want,
                     10, step=0.1, what="the cluster found through CLUSTER NODES")
            wait_for(lambda: seed.asked.count("CLUSTER NODES") >= 2, 5, step=0.1, what="a second refresh")
            self.assertEqual(seed.asked.count("CLUSTER SHARDS"), 1)  # asked once per connection
            self.assertIn("has no CLUSTER SHARDS (Redis before 7.0): using CLUSTER NODES", agent.log_text())
        finally:
            self.assertEqual(agent.stop(), 0)
            seed.close()

    def test_5_killed_node_down_then_removed(self):
        want = self.expected()
        # not the seed: with its only seed gone a source keeps its last known set
        victim = next(n for n in self.nodes[1:] if want[self.name(n)][0] == "replica")
        vname = self.name(victim)
        known = series(self.agent.metrics(), "redpulse_discovery_instances", source="main")[0][1]
        self.assertEqual(known, len(want))
        victim.kill()
        t_kill = time.monotonic()
        wait_for(lambda: series(self.agent.metrics(), "redis_up", target=vname)[0][1] == 0, 10, step=0.1,
                 what="the killed node polled as down")

        def flagged():
            m = self.agent.metrics()
            return series(m, "redpulse_discovery_node_flagged", source="main", target=vname, reason="fail")
        wait_for(flagged, 15, step=0.1, what="the cluster flags the killed node fail")
        t_flag = time.monotonic()
        self.assertIn(vname, labels_by_name(self.agent))  # kept, shown down
        wait_for(lambda: vname not in labels_by_name(self.agent), REMOVE_AFTER + 2 * REFRESH + 5, step=0.1,
                 what="the killed node removed after remove_after")
        gone_after = time.monotonic() - t_flag
        # remove_after counts from the last refresh that listed it healthy,
        # at most one refresh before the kill
        self.assertGreaterEqual(time.monotonic() - t_kill, REMOVE_AFTER - REFRESH)
        m = self.agent.metrics()
        self.assertEqual(series(m, "redis_up", target=vname), [])
        self.assertEqual(series(m, "redpulse_discovery_node_flagged", target=vname), [])
        self.assertEqual(series(m, "redpulse_discovery_instances", source="main")[0][1], known - 1)
        self.assertIn("%s (127.0.0.1:%d) removed: fail" % (vname, victim.port), self.agent.log_text())
        print("removed %.2fs after being flagged (remove_after %.0fs)" % (gone_after, REMOVE_AFTER))


class Sentinel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        t = cls.tmp.path
        cls.master = server(t, "m")
        cls.replica = server(t, "r", args=["--replicaof", "127.0.0.1", str(cls.master.port)])
        wait_for(lambda: one(cls.replica, "INFO", "replication").find("master_link_status:up") >= 0, 10,
                 what="replica linked")
        conf = os.path.join(t, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("sentinel monitor mymaster 127.0.0.1 %d 1\n"
                    "sentinel down-after-milliseconds mymaster 1000\n"
                    "sentinel failover-timeout mymaster 5000\n" % cls.master.port)
        cls.sentinel = server(t, "s", args=["--sentinel"], conf=conf)
        wait_for(lambda: len(one(cls.sentinel, "SENTINEL", "REPLICAS", "mymaster")) == 1, 15, step=0.1,
                 what="the Sentinel to see the replica")
        cls.agent = Agent(t, [], extra={"discovery": [{
            "type": "sentinel", "name": "sen", "sentinels": ["127.0.0.1:%d" % cls.sentinel.port],
            "masters": ["mymaster"], "refresh": "%dms" % (REFRESH * 1000), "timeout": "500ms",
            "defaults": {"interval": "500ms", "timeout": "250ms"}}, {
            # the same servers again, by a later source: polled once, as the first source's
            "type": "sentinel", "name": "dup", "sentinels": ["127.0.0.1:%d" % cls.sentinel.port],
            "refresh": "%dms" % (REFRESH * 1000), "timeout": "500ms",
            "defaults": {"interval": "500ms", "timeout": "250ms"}}]})

    @classmethod
    def tearDownClass(cls):
        rc = cls.agent.stop()
        for s in (cls.sentinel, cls.replica, cls.master):
            s.stop()
        cls.tmp.cleanup()
        assert rc == 0

    def roles(self):
        return {k: (v["role"], v["sentinel_master"]) for k, v in labels_by_name(self.agent).items()}

    def test_a_master_and_replica_polled(self):
        m, r = "sen-127.0.0.1-%d" % self.master.port, "sen-127.0.0.1-%d" % self.replica.port
        wait_for(lambda: self.roles() == {m: ("master", "mymaster"), r: ("replica", "mymaster")}, 15, step=0.2,
                 what="both found")
        wait_for(lambda: {d["target"]: v for d, v in series(self.agent.metrics(), "redis_up")} == {m: 1, r: 1},
                 10, step=0.2, what="both polled and up")
        # the later source found them too, and adds nothing
        self.assertEqual(series(self.agent.metrics(), "redpulse_discovery_instances", source="dup")[0][1], 2)
        self.assertEqual(set(labels_by_name(self.agent)), {m, r})

    def test_b_failover_swaps_roles(self):
        m, r = "sen-127.0.0.1-%d" % self.master.port, "sen-127.0.0.1-%d" % self.replica.port
        wait_for(lambda: self.roles().get(r) == ("replica", "mymaster"), 15, step=0.2, what="found")
        self.assertEqual(one(self.sentinel, "SENTINEL", "FAILOVER", "mymaster"), "OK")
        wait_for(lambda: self.roles() == {m: ("replica", "mymaster"), r: ("master", "mymaster")}, 30, step=0.2,
                 what="roles swapped after SENTINEL FAILOVER")
        self.assertEqual(redis_role(self.replica), "master")
        wait_for(lambda: series(self.agent.metrics(), "redis_instance_info", target=r)[0][0]["role"] == "master",
                 5, step=0.2, what="series relabelled")

    def test_c_sentinel_given_as_a_server_is_named(self):
        """A Sentinel's address configured as an instance answers INFO, so it
        is up, with nothing to measure: one warning says what it is."""
        a = Agent(self.tmp.path, [{"name": "oops", "address": "127.0.0.1:%d" % self.sentinel.port,
                                   "interval": "200ms", "timeout": "150ms"}])
        try:
            want = "oops: redis://127.0.0.1:%d is a Sentinel (redis_mode:sentinel), not a Redis server" % \
                self.sentinel.port
            wait_for(lambda: want in a.log_text(), 10, step=0.1, what="the warning")
            polls = a.instance("oops")["polls"]
            wait_for(lambda: a.instance("oops")["polls"] >= polls + 5, 10, step=0.1, what="five polls more")
            self.assertEqual(a.log_text().count(want), 1)
            self.assertEqual(series(a.metrics(), "redis_up", target="oops")[0][1], 1)
        finally:
            self.assertEqual(a.stop(), 0)


class Shards(unittest.TestCase):
    def test_two_agents_split_100_instances(self):
        tmp = Tmp()
        try:
            srv = server(tmp.path, "one")
            names = ["cache-%03d" % i for i in range(100)]
            insts = [{"name": n, "address": "127.0.0.1:%d" % srv.port} for n in names]
            agents = [Agent(tmp.path, insts, defaults={"interval": "2s", "timeout": "1s"},
                            extra={"shard": {"index": k, "count": 2}}) for k in range(2)]
            try:
                got = [set(labels_by_name(a)) for a in agents]
                polled = [{i["name"] for i in a.instance_list()} for a in agents]
                self.assertEqual(got, polled)
                self.assertEqual(got[0] & got[1], set())
                self.assertEqual(got[0] | got[1], set(names))
                for k in range(2):  # the documented hash: FNV-1a 64 of the name, mod count
                    self.assertEqual(got[k], {n for n in names if fnv1a64(n) % 2 == k})
                    self.assertTrue(20 < len(got[k]) < 80, len(got[k]))

                def up(a, k):
                    ups = {d["target"] for d, v in series(a.metrics(), "redis_up") if v == 1}
                    return ups == got[k]
                for k, a in enumerate(agents):
                    wait_for(lambda: up(a, k), 15, step=0.2, what="agent %d polling its shard" % k)
            finally:
                for a in agents:
                    self.assertEqual(a.stop(), 0)
                srv.stop()
        finally:
            tmp.cleanup()


class BadSources(unittest.TestCase):
    def test_not_ready_before_the_first_refresh(self):
        """Until every source has finished a refresh the set of instances is
        not known: /readyz says 503 (and systemd hears no READY=1)."""
        tmp = Tmp()
        silent = socket.socket()  # connects (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        try:
            plain = server(tmp.path, "plain")
            t0 = time.monotonic()
            agent = Agent(tmp.path, [{"name": "static", "address": "127.0.0.1:%d" % plain.port}],
                          defaults={"interval": "500ms", "timeout": "250ms"},
                          extra={"discovery": [{"type": "cluster", "name": "slow", "refresh": "30s",
                                                "timeout": "4s",
                                                "seeds": ["127.0.0.1:%d" % silent.getsockname()[1]]}]})
            try:
                wait_for(lambda: series(agent.metrics(), "redis_up", target="static")[0][1] == 1, 5, step=0.05,
                         what="the static instance polled")
                status, _, body = agent.get("/readyz")
                if time.monotonic() - t0 < 3.5:  # else too loaded to tell; the rest still holds
                    self.assertEqual(status, 503, body)
                    self.assertIn(b"discovery", body)
                wait_for(lambda: agent.get("/readyz")[0] == 200, 10, step=0.1, what="ready after the timeout")
                self.assertGreaterEqual(time.monotonic() - t0, 3.5)
                m = agent.metrics()
                self.assertEqual(series(m, "redpulse_discovery_refreshes_total", source="slow",
                                        result="timeout")[0][1], 1)
            finally:
                self.assertEqual(agent.stop(), 0)
                plain.stop()
        finally:
            silent.close()
            tmp.cleanup()

    def test_each_failure_named_counted_and_harmless(self):
        tmp = Tmp()
        t = tmp.path
        try:
            plain = server(t, "plain")
            conf = os.path.join(t, "sentinel.conf")
            with open(conf, "w") as f:
                f.write("sentinel monitor mymaster 127.0.0.1 %d 1\n" % plain.port)
            sen = server(t, "s", args=["--sentinel"], conf=conf)
            closed = socket.socket()  # bound, not listening: connections are refused, and the port stays ours
            closed.bind(("127.0.0.1", 0))
            dead = closed.getsockname()[1]
            silent = socket.socket()  # connects (the backlog), never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            src = {"refresh": "30s", "timeout": "500ms"}
            agent = Agent(t, [{"name": "static", "address": "127.0.0.1:%d" % plain.port}],
                          defaults={"interval": "500ms", "timeout": "250ms"},
                          extra={"discovery": [
                              dict(src, type="cluster", name="unreach", seeds=["127.0.0.1:%d" % dead]),
                              dict(src, type="cluster", name="plain", seeds=["127.0.0.1:%d" % plain.port]),
                              dict(src, type="sentinel", name="nosuch", masters=["nosuch"],
                                   sentinels=["127.0.0.1:%d" % sen.port]),
                              dict(src, type="sentinel", name="notsen", sentinels=["127.0.0.1:%d" % plain.port]),
                              dict(src, type="cluster", name="silent",
                                   seeds=["127.0.0.1:%d" % silent.getsockname()[1]])]})
            try:
                t0 = time.monotonic()

                def count(m, source, result):
                    return series(m, "redpulse_discovery_refreshes_total", source=source, result=result)[0][1]
                wait_for(lambda: count(agent.metrics(), "unreach", "unreachable") >= 3, 10, step=0.1,
                         what="three attempts at the unreachable seed")
                took = time.monotonic() - t0
                # backoff 1 s, 2 s (+-20%) between them, not every 30 s refresh, nor a busy loop
                self.assertTrue(2.0 < took < 6.0, took)
                m = agent.metrics()
                self.assertGreaterEqual(count(m, "plain", "not_cluster"), 1)
                self.assertGreaterEqual(count(m, "nosuch", "unknown_master"), 1)
                self.assertGreaterEqual(count(m, "notsen", "not_sentinel"), 1)
                self.assertGreaterEqual(count(m, "silent", "timeout"), 1)
                for s in ("unreach", "plain", "nosuch", "notsen", "silent"):
                    self.assertEqual(count(m, s, "ok"), 0)
                    self.assertEqual(series(m, "redpulse_discovery_last_success_timestamp_seconds", source=s)[0][1], 0)
                    self.assertEqual(series(m, "redpulse_discovery_instances", source=s)[0][1], 0)
                log = agent.log_text()
                self.assertRegex(log, r"unreach: refresh from redis://127\.0\.0\.1:%d failed \(unreachable\)" % dead)
                self.assertRegex(log, r"plain: refresh .* failed \(not_cluster\): the seed is not a Redis Cluster node")
                self.assertIn('the Sentinel does not know master "nosuch"', log)
                self.assertRegex(log, r"notsen: refresh .* failed \(not_sentinel\): not a Sentinel")
                self.assertRegex(log, r"silent: refresh .* failed \(timeout\): no complete answer within 500ms")
                # nothing else was held up: the static instance polled on time throughout
                self.assertEqual(set(labels_by_name(agent)), {"static"})
                self.assertEqual(series(m, "redis_up", target="static")[0][1], 1)
                polls = series(m, "redpulse_polls_total", target="static")[0][1]
                self.assertGreaterEqual(polls, took / 0.5 - 2)
                self.assertLess(series(m, "redpulse_poll_delay_seconds_sum")[0][1] / polls, 0.05)
                self.assertEqual(agent.proc.poll(), None)
            finally:
                self.assertEqual(agent.stop(), 0)
                sen.stop()
                plain.stop()
                silent.close()
                closed.close()
        finally:
            tmp.cleanup()


LIMIT = 10000  # DISC_MAX_NODES in include/discover.h: the most nodes one source may list


def refreshes(agent, source, result):
    return series(agent.metrics(), "redpulse_discovery_refreshes_total", source=source, result=result)[0][1]


class Limits(unittest.TestCase):
    """Topologies no real server can be made to list, from scripted peers:
    more nodes than one source may hold, and a Sentinel naming one master
    many times. The nodes that poll are real servers."""

    def setUp(self):
        self.tmp = Tmp()
        self.a = server(self.tmp.path, "a")
        self.b = server(self.tmp.path, "b")
        self.peer = None
        self.agent = None

    def tearDown(self):
        try:
            if self.agent:
                self.assertEqual(self.agent.stop(), 0)
        finally:
            if self.peer:
                self.peer.close()
            self.a.stop()
            self.b.stop()
            self.tmp.cleanup()

    def fake_ports(self, n):
        """n ports on 127.0.0.1, none of them a real server's here."""
        return [p for p in range(1, n + 3) if p not in (self.a.port, self.b.port)][:n]

    def start(self, kind, name, remove_after="0s", interval="500ms"):
        """An agent whose one source asks self.peer; by default a node a
        good refresh no longer lists goes at once."""
        self.agent = Agent(self.tmp.path, [], extra={"discovery": [{
            "type": kind, "name": name, ("seeds" if kind == "cluster" else "sentinels"):
            ["127.0.0.1:%d" % self.peer.port], "refresh": "1s", "timeout": "500ms", "remove_after": remove_after,
            "defaults": {"interval": interval, "timeout": "250ms"}}]})

    def roles(self):
        return {k: v["role"] for k, v in labels_by_name(self.agent).items()}

    def assert_kept(self, source, want):
        """After a refresh over the limit: counted and logged as a bad reply,
        and the source's set as it was (nothing added, flagged or removed)."""
        m = self.agent.metrics()
        self.assertGreaterEqual(refreshes(self.agent, source, "bad_reply"), 1)  # and retried with backoff
        self.assertRegex(self.agent.log_text(), r"%s: refresh from redis://127\.0\.0\.1:%d failed \(bad_reply\): "
                         r"topology lists more than %d nodes" % (source, self.peer.port, LIMIT))
        self.assertEqual(self.roles(), want)
        self.assertEqual(series(m, "redpulse_discovery_instances", source=source)[0][1], len(want))
        self.assertEqual(series(m, "redpulse_discovery_node_flagged"), [])
        self.assertEqual({d["target"]: v for d, v in series(m, "redis_up")}, {n: 1 for n in want})
        self.assertEqual(self.agent.log_text().count("%s: found " % source), len(want))

    def test_cluster_listing_more_than_the_limit(self):
        one_node = "%s 127.0.0.1:%d@1 master - 0 0 1 connected 0-16383\n" % ("a" * 40, self.a.port)
        too_many = "".join("n%d 127.0.0.1:%d@1 master - 0 0 1 connected\n" % (p, p)
                           for p in self.fake_ports(LIMIT + 1))
        text = [one_node]
        self.peer = NodesSeed(lambda: text[0])
        self.start("cluster", "big")
        want = {"big-127.0.0.1-%d" % self.a.port: "master"}
        wait_for(lambda: self.roles() == want, 10, step=0.1, what="the one node found")
        wait_for(lambda: series(self.agent.metrics(), "redis_up")[0][1] == 1, 10, step=0.1, what="it polled")
        text[0] = too_many
        wait_for(lambda: refreshes(self.agent, "big", "bad_reply") >= 1, 10, step=0.1, what="a refresh over the limit")
        self.assert_kept("big", want)
        ok = refreshes(self.agent, "big", "ok")
        text[0] = one_node
        wait_for(lambda: refreshes(self.agent, "big", "ok") > ok, 10, step=0.1, what="a good refresh again")
        self.assertEqual(self.roles(), want)
        self.assertIn("big: refresh works again", self.agent.log_text())

    def test_cluster_new_set_every_refresh(self):
        """A seed listing new nodes every refresh: those no longer listed are
        kept for remove_after only while the source knows at most the limit;
        past it the ones healthy longest ago go first, never a listed one."""
        ports = self.fake_ports(LIMIT + LIMIT // 5)
        sets = [ports[:LIMIT * 6 // 10], ports[LIMIT * 6 // 10:LIMIT * 9 // 10], ports[LIMIT * 9 // 10:]]
        text = [""]
        self.peer = NodesSeed(lambda: text[0])
        self.start("cluster", "rot", remove_after="1h", interval="60s")  # 10,000 unreachable ones, polled thinly
        total = 0
        for ps in sets:
            text[0] = "".join("n%d 127.0.0.1:%d@1 master - 0 0 1 connected\n" % (p, p) for p in ps)
            total = min(total + len(ps), LIMIT)
            wait_for(lambda: len(targets(self.agent)) == total, 15, step=0.1, what="%d nodes known" % total)
        self.assertIn("rot: %d nodes no longer listed removed before remove_after: a source knows at most %d" %
                      (LIMIT // 5, LIMIT), self.agent.log_text())
        names = set(labels_by_name(self.agent))
        self.assertEqual(len(names), LIMIT)
        self.assertTrue(names >= {"rot-127.0.0.1-%d" % p for p in sets[1] + sets[2]})
        body = self.agent.get("/metrics")[2]  # the text, not parsed: 10,000 instances' worth
        self.assertIn(b'redpulse_discovery_refreshes_total{source="rot",result="bad_reply"} 0\n', body)

    def test_sentinel_asks_each_master_once(self):
        """SENTINEL MASTERS naming "m" 300 times: one SENTINEL REPLICAS m a
        refresh, not 300 replies held for it."""
        masters = [("m", self.a.port)] * 300
        self.peer = FakeSentinel(masters, {"m": [self.b.port]})
        self.start("sentinel", "sen")
        want = {"sen-127.0.0.1-%d" % self.a.port: "master", "sen-127.0.0.1-%d" % self.b.port: "replica"}
        wait_for(lambda: self.roles() == want, 10, step=0.1, what="master and replica found")
        wait_for(lambda: refreshes(self.agent, "sen", "ok") >= 2, 10, step=0.1, what="two refreshes")
        self.assertEqual(self.agent.stop(), 0)
        self.agent = None
        rounds, asked = self.peer.asked.count("SENTINEL MASTERS"), self.peer.asked.count("SENTINEL REPLICAS M")
        self.assertGreaterEqual(rounds, 2)
        self.assertIn(asked, (rounds - 1, rounds))  # once a round (the last may have stopped before asking)
        self.assertEqual(len(self.peer.asked), rounds + asked)

    def test_sentinel_gathering_more_than_the_limit(self):
        """The limit counts the nodes of every reply of the round: two masters
        with half the limit of replicas each pass it together."""
        self.peer = FakeSentinel([("m", self.a.port)], {"m": [self.b.port]})
        self.start("sentinel", "sen")
        want = {"sen-127.0.0.1-%d" % self.a.port: "master", "sen-127.0.0.1-%d" % self.b.port: "replica"}
        wait_for(lambda: self.roles() == want, 10, step=0.1, what="master and replica found")
        wait_for(lambda: len(series(self.agent.metrics(), "redis_up")) == 2 and
                 all(v == 1 for _, v in series(self.agent.metrics(), "redis_up")), 10, step=0.1, what="both polled")
        ports = self.fake_ports(LIMIT + 1)  # 2 masters + 10,000 replicas; b listed no more
        self.peer.replicas = {"m": ports[:LIMIT // 2], "m2": ports[LIMIT // 2:LIMIT]}
        self.peer.masters = [("m", self.a.port), ("m2", ports[LIMIT])]
        wait_for(lambda: refreshes(self.agent, "sen", "bad_reply") >= 1, 10, step=0.1, what="a refresh over the limit")
        self.assert_kept("sen", want)


class ShardsSeed(ScriptedPeer):
    """A Redis 7 seed whose CLUSTER SHARDS is shards() (lists of node
    key/value lists, one shard each), answered `times` times a request."""

    def __init__(self, shards, times=1):
        self.shards, self.times = shards, times
        super().__init__()

    def answer(self, cmd):
        if [a.upper() for a in cmd] == ["CLUSTER", "SHARDS"]:
            return resp([["id", sid, "nodes", nodes] for sid, nodes in self.shards()]) * self.times
        return super().answer(cmd)


def shard_node(port, endpoint="127.0.0.1", health="online", role="master", nid="n"):
    return ["id", nid, "port", port, "endpoint", endpoint, "role", role, "health", health]


class HostilePeers(Limits):
    """What a seed or Sentinel chooses to say: a node it lists failed for
    good, label values and addresses of its own making, replies nobody
    asked for, a Sentinel with hundreds of masters."""

    def test_failed_node_not_found_again_and_again(self):
        """A cluster lists a dead node as failed until CLUSTER FORGET: removed
        after remove_after, it was found again at the next refresh, and so
        on (RedisDown resolved and fired anew each time). One refresh that
        does not list it (a seed that forgot it, while the others still list
        it failed) does not forget it either."""
        dead = self.fake_ports(1)[0]
        state = {"flags": "slave,fail", "omit": 0}

        def nodes():
            text = "%s 127.0.0.1:%d@1 master - 0 0 1 connected 0-16383\n" % ("a" * 40, self.a.port)
            if state["omit"] > 0:
                state["omit"] -= 1
                return text
            return text + "%s 127.0.0.1:%d@1 %s %s 0 0 1 connected\n" % ("b" * 40, dead, state["flags"], "a" * 40)
        self.peer = NodesSeed(nodes)
        self.start("cluster", "c", remove_after="1s")
        dname = "c-127.0.0.1-%d" % dead
        wait_for(lambda: "c: %s (127.0.0.1:%d) removed: fail" % (dname, dead) in self.agent.log_text(), 15,
                 step=0.1, what="the failed node removed")
        ok = refreshes(self.agent, "c", "ok")
        wait_for(lambda: refreshes(self.agent, "c", "ok") >= ok + 1, 10, step=0.1, what="a refresh more")
        state["omit"] = 1  # the next refresh does not list it
        wait_for(lambda: state["omit"] == 0, 10, step=0.1, what="a refresh without the node")
        ok = refreshes(self.agent, "c", "ok")
        wait_for(lambda: refreshes(self.agent, "c", "ok") >= ok + 3, 10, step=0.1, what="three refreshes more")
        log = self.agent.log_text()
        self.assertEqual(log.count("c: found %s" % dname), 1, log)
        self.assertNotIn(dname, labels_by_name(self.agent))
        self.assertIn("not added again while the topology lists it failed", log)
        state["flags"] = "slave"  # listed healthy: found again
        wait_for(lambda: dname in labels_by_name(self.agent), 10, step=0.1, what="the node found again")
        self.assertEqual(self.agent.log_text().count("c: found %s" % dname), 2)

    def test_peer_chosen_labels_and_addresses(self):
        """A health word of the peer's went into /metrics as written (a forged
        series; not UTF-8: a scrape Prometheus refuses); a 400-byte shard id
        repeated on every series of its nodes (hundreds of MB of /metrics); an
        endpoint "admin@host" chose the user the source's password goes with.
        Each bad node is left out, in one warning, not one every refresh."""
        forged = 'x"} 1\nredis_up{target="forged"} 1\n#\xff'
        self.peer = ShardsSeed(lambda: [
            ("s1", [shard_node(self.a.port, health=forged)]),
            ("s2", [shard_node(self.b.port, endpoint="admin@127.0.0.1")]),
            ("s" * 400, [shard_node(self.b.port + 1 if self.b.port < 65535 else 1)]),
        ])
        self.start("cluster", "h")
        aname = "h-127.0.0.1-%d" % self.a.port
        wait_for(lambda: series(self.agent.metrics(), "redpulse_discovery_node_flagged", target=aname), 10,
                 step=0.1, what="the node with a health of the peer's flagged")
        ok = refreshes(self.agent, "h", "ok")
        wait_for(lambda: refreshes(self.agent, "h", "ok") >= ok + 2, 10, step=0.1, what="two refreshes more")
        m = self.agent.metrics()
        self.assertEqual(series(m, "redpulse_discovery_node_flagged", target=aname)[0][0]["reason"], "unknown")
        self.assertEqual(series(m, "redis_up", target="forged"), [])
        self.assertEqual(list(labels_by_name(self.agent)), [aname])
        rc, out = promtool_check(self.agent.get("/metrics")[2].decode())
        self.assertEqual(rc, 0, out)
        log = self.agent.log_text()
        self.assertEqual(log.count("h: 2 nodes left out of the topology (the first: CLUSTER SHARDS shard 1 node 0: "
                                   "address \"admin@127.0.0.1\" is not an IP address or host name)"), 1, log)
        self.assertNotIn("AUTH", " ".join(self.peer.asked))

    def test_reply_nobody_asked_for(self):
        """A seed answering each CLUSTER SHARDS twice: the second reply came
        between refreshes and failed the next one (bad_reply, a reconnect
        and a warning every refresh)."""
        self.peer = ShardsSeed(lambda: [("s1", [shard_node(self.a.port)])], times=2)
        self.start("cluster", "twice")
        wait_for(lambda: refreshes(self.agent, "twice", "ok") >= 3, 10, step=0.1, what="three refreshes")
        self.assertEqual(refreshes(self.agent, "twice", "bad_reply"), 0)
        self.assertNotIn("twice: refresh from", self.agent.log_text())

    def test_sentinel_with_900_masters(self):
        """SENTINEL MASTERS of 900 masters with a real Sentinel's 40 fields
        each is past 1 MiB in the reply's reckoning: every refresh failed as
        "unreachable", whatever max_reply_bytes said."""
        class BigSentinel(FakeSentinel):
            def answer(self, cmd):
                if [a.upper() for a in cmd] == ["SENTINEL", "MASTERS"]:
                    pad = [x for k in range(36) for x in ("field-%d" % k, "value")]
                    return resp([["name", n, "ip", "127.0.0.1", "port", p, "flags", "master"] + pad
                                 for n, p in self.masters])
                return super().answer(cmd)
        self.peer = BigSentinel([("m%d" % i, self.a.port) for i in range(900)], {})
        self.start("sentinel", "big")
        wait_for(lambda: refreshes(self.agent, "big", "ok") >= 1, 20, step=0.1, what="a refresh of 900 masters")
        self.assertEqual(self.roles(), {"big-127.0.0.1-%d" % self.a.port: "master"})
        self.assertEqual(refreshes(self.agent, "big", "unreachable"), 0)


if __name__ == "__main__":
    unittest.main()
