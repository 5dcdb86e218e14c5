#!/usr/bin/env python3
"""The agent against real redis-server processes: a plain TCP instance, an
ACL user with a password file, a unix socket, TLS, plus instances the tests
kill and pause. Values served must equal what the servers report."""
import gzip
import json
import os
import subprocess
import sys
import time
import unittest
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (BIN, Agent, RedisServer, Resp, Tmp, make_tls, promtool_check,  # noqa: E402
                     series, value, wait_for)

INTERVAL = 1.0
TIMEOUT = 0.5


class AgentSuite(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        t = cls.tmp.path
        cls.tls = make_tls(t)
        cls.plain = RedisServer(t, "plain")
        cls.acl = RedisServer(t, "acl", args=["--user", "monitor", "on", ">s3cret-pw", "-@all", "+info", "+ping", "+client|setname"])
        cls.unix = RedisServer(t, "unix", args=["--port", "0"], unix=True)
        cls.tlss = RedisServer(t, "tls", tls=cls.tls)
        cls.victim = RedisServer(t, "victim")
        cls.paused = RedisServer(t, "paused")
        pw = os.path.join(t, "monitor.pw")
        with open(pw, "w") as f:
            f.write("s3cret-pw\n")
        os.chmod(pw, 0o600)
        cls.agent = Agent(t, [
            {"name": "plain", "address": "redis://127.0.0.1:%d" % cls.plain.port},
            {"name": "acl", "address": "127.0.0.1:%d" % cls.acl.port, "username": "monitor",
             "password_file": pw, "labels": {"namespace": "prod"}},
            {"name": "unix+sock", "address": "unix://" + cls.unix.unix},
            {"name": "tls", "address": "rediss://127.0.0.1:%d" % cls.tlss.port,
             "tls": {"ca_file": cls.tls["ca"]}},
            {"name": "victim", "address": "redis://127.0.0.1:%d" % cls.victim.port},
            {"name": "paused", "address": "redis://127.0.0.1:%d" % cls.paused.port},
        ], defaults={"interval": "%dms" % (INTERVAL * 1000), "timeout": "%dms" % (TIMEOUT * 1000),
                     "labels": {"env": "test"}})
        # "unix+sock": a '+' in a name is reached as %2B, as Prometheus sends it
        cls.names = ["plain", "acl", "unix+sock", "tls", "victim", "paused"]
        wait_for(lambda: cls.agent.get("/readyz")[0] == 200, 10, what="/readyz")

    @classmethod
    def tearDownClass(cls):
        rc = cls.agent.stop()
        for s in (cls.plain, cls.acl, cls.unix, cls.tlss, cls.victim, cls.paused):
            s.stop()
        log = cls.agent.log_text()
        cls.tmp.cleanup()
        assert rc == 0, "redpulse exited %d on SIGTERM\n%s" % (rc, log)
        assert "s3cret-pw" not in log, "password in the log"

    def wait_up(self, name, up=1, timeout=10):
        return wait_for(lambda: value(self.agent.metrics(), "redis_up", target=name) == up, timeout,
                        what="%s up=%d" % (name, up))

    def test_01_all_up_with_labels(self):
        m = self.agent.metrics()
        for n in self.names:
            self.assertEqual(value(m, "redis_up", target=n), 1, n)
        self.assertEqual(series(m, "redis_up", target="acl")[0][0],
                         {"target": "acl", "env": "test", "namespace": "prod"})
        for (name, labels), _ in m.items():
            self.assertNotIn("instance", dict(labels), name)
        self.assertEqual(value(m, "redpulse_instances"), 6)
        self.assertGreaterEqual(value(m, "redpulse_open_connections"), 6)

    def test_02_values_equal_info(self):
        """Stable fields equal INFO exactly; counters are sandwiched between
        INFO read before and after the scrape."""
        for name, srv in (("plain", self.plain), ("acl", self.acl), ("unix+sock", self.unix), ("tls", self.tlss)):
            c = srv.client()
            c.cmd("CONFIG", "SET", "maxmemory", "123456789")
            c.pipeline([("SET", "k%d" % i, "v") for i in range(50)] + [("EXPIRE", "k1", "1000")])
            c.cmd("SELECT", "3")
            c.cmd("SET", "other", "1")
            time.sleep(INTERVAL * 1.5)
            before = c.info()
            t_before = time.time()
            # the scrape must hold a poll that happened after `before`
            wait_for(lambda: value(self.agent.metrics("/scrape?target=" + quote(name, safe="")),
                                   "redpulse_last_poll_timestamp_seconds", target=name) > t_before,
                     3 * INTERVAL, what="a poll after the first INFO")
            m = self.agent.metrics("/scrape?target=" + quote(name, safe=""))
            j = self.agent.instance(name)
            after = c.info()
            c.close()
            t = {"target": name}
            self.assertEqual(value(m, "redis_memory_max_bytes", **t), 123456789)
            self.assertEqual(value(m, "redis_process_id", **t), int(before["process_id"]))
            self.assertEqual(value(m, "redis_config_maxclients", **t), int(before["maxclients"]))
            self.assertEqual(value(m, "redis_total_system_memory_bytes", **t), int(before["total_system_memory"]))
            self.assertEqual(value(m, "redis_db_keys", db="db0", **t), 50)
            self.assertEqual(value(m, "redis_db_keys_expiring", db="db0", **t), 1)
            self.assertEqual(value(m, "redis_db_keys", db="db3", **t), 1)
            self.assertEqual(value(m, "redis_rdb_last_bgsave_status", **t), 1)
            self.assertEqual(value(m, "redis_cluster_enabled", **t), 0)
            info = series(m, "redis_instance_info", **t)[0][0]
            self.assertEqual(info["run_id"], before["run_id"])
            self.assertEqual(info["redis_version"], before["redis_version"])
            self.assertEqual(info["role"], "master")
            self.assertEqual(info["tcp_port"], before["tcp_port"])
            for field, metric in (("total_connections_received", "redis_connections_received_total"),
                                  ("total_commands_processed", "redis_commands_processed_total"),
                                  ("total_net_input_bytes", "redis_net_input_bytes_total")):
                v = value(m, metric, **t)
                self.assertLessEqual(v, int(after[field]), (name, field))
                self.assertGreaterEqual(v, int(before[field]), (name, field))
            # per-command counters are real: our 50 SETs are in there
            self.assertGreaterEqual(value(m, "redis_commands_total", cmd="set", **t), 51)
            self.assertGreaterEqual(value(m, "redis_commands_total", cmd="info", **t), 1)
            # JSON: same numbers, numbers as numbers, statuses as strings
            self.assertTrue(j["up"])
            self.assertEqual(j["version"], before["redis_version"])
            self.assertEqual(j["role"], "master")
            self.assertEqual(j["sections"]["memory"]["maxmemory"], 123456789)
            self.assertEqual(j["sections"]["server"]["run_id"], before["run_id"])
            self.assertEqual(j["sections"]["persistence"]["rdb_last_bgsave_status"], "ok")
            self.assertEqual(j["sections"]["keyspace"]["db0"]["keys"], 50)
            self.assertIsInstance(j["sections"]["stats"]["total_commands_processed"], int)
            self.assertLessEqual(j["sections"]["stats"]["total_commands_processed"],
                                 int(after["total_commands_processed"]))

    def test_03_promtool_clean(self):
        for path in ["/metrics"] + ["/scrape?target=" + quote(n, safe="") for n in self.names]:
            status, headers, body = self.agent.get(path)
            self.assertEqual(status, 200, path)
            self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
            rc, out = promtool_check(body.decode())
            self.assertEqual((rc, out), (0, ""), path)

    def test_04_scrape_only_configured(self):
        for n in self.names:
            m = self.agent.metrics("/scrape?target=" + quote(n, safe=""))
            targets = {dict(l).get("target") for (name, l) in m}
            self.assertEqual(targets, {n})
        for bad in ("nope", "127.0.0.1:6379", "redis://127.0.0.1:%d" % self.plain.port, "plain%00", "plain%00x",
                    "../plain", "PLAIN", "plain%20"):
            status, _, _ = self.agent.get("/scrape?target=" + bad)
            self.assertEqual(status, 404, bad)
        self.assertEqual(self.agent.get("/scrape")[0], 400)
        self.assertEqual(self.agent.get("/api/v1/instances/nope")[0], 404)
        self.assertEqual(self.agent.get("/api/v1/instances/plain%00")[0], 404)
        self.assertEqual(self.agent.get("/api/v1/instances/pl%61in")[0], 200)
        self.assertEqual(self.agent.get("/nothing-here")[0], 404)

    def test_05_http_surface(self):
        status, headers, body = self.agent.get("/metrics", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("Content-Encoding"), "gzip")
        self.assertIn(b"redis_up{", gzip.decompress(body))
        status, headers, body = self.agent.get("/metrics", method="POST")
        self.assertEqual(status, 405)
        self.assertIn("GET", headers.get("Allow", ""))
        self.assertEqual(self.agent.get("/metrics", method="DELETE")[0], 405)
        status, headers, body = self.agent.get("/metrics", method="HEAD")
        self.assertEqual((status, body), (200, b""))
        status, headers, body = self.agent.get("/")
        self.assertEqual(status, 200)
        self.assertIn(b"/scrape?target=plain\"", body)
        # the landing page's links percent-encode the name: a '+' as is
        # would be read as a space
        self.assertIn(b'href="/scrape?target=unix%2Bsock"', body)
        self.assertEqual(self.agent.get("/scrape?target=unix+sock")[0], 404)
        self.assertEqual(headers.get("X-Content-Type-Options"), "nosniff")
        status, _, body = self.agent.get("/api/v1/instances")
        arr = json.loads(body)
        self.assertEqual([i["name"] for i in arr], self.names)
        for i in arr:
            self.assertNotIn("password", json.dumps(i))
        self.assertEqual(self.agent.get("/healthz")[0], 200)
        self.assertEqual(self.agent.get("/readyz")[0], 200)
        for path in ("/", "/metrics", "/api/v1/instances"):
            self.assertNotIn(b"s3cret-pw", self.agent.get(path)[2])

    def test_06_kill_restart(self):
        self.wait_up("victim")
        port = self.victim.port
        self.victim.kill()
        t0 = time.monotonic()
        self.wait_up("victim", 0, timeout=2 * INTERVAL + 0.5)
        j = self.agent.instance("victim")
        self.assertFalse(j["up"])
        self.assertIn(j["reason"], ("connect_refused", "closed"))
        self.assertIsNotNone(j["last_error"])
        # everyone else keeps being polled on time while the victim is down
        before = {n: value(self.agent.metrics(), "redpulse_last_poll_timestamp_seconds", target=n)
                  for n in ("plain", "acl", "unix+sock", "tls")}
        time.sleep(3 * INTERVAL)
        m = self.agent.metrics()
        for n, ts in before.items():
            self.assertGreaterEqual(value(m, "redpulse_last_poll_timestamp_seconds", target=n) - ts,
                                    2 * INTERVAL, n)
            self.assertEqual(value(m, "redis_up", target=n), 1, n)
        self.assertEqual(value(m, "redis_up", target="victim"), 0)
        self.assertGreaterEqual(value(m, "redpulse_poll_errors_total", target="victim", reason="connect_refused"), 2)
        self.victim.port = port
        self.victim.start()
        self.wait_up("victim", 1, timeout=12)
        log = self.agent.log_text()
        self.assertIn("victim: poll failed (connect_refused)", log)
        self.assertIn("victim: recovered", log)
        self.assertLess(time.monotonic() - t0, 30)

    def test_07_client_pause_times_out(self):
        """Polls of a paused server end at their deadline, not when the
        pause ends: every timed-out poll seen during a 4.5 s pause lasted
        about the timeout (median within 0.25 s, none near the pause)."""
        self.wait_up("paused")
        c = self.paused.client()
        c.cmd("CLIENT", "PAUSE", "4500", "ALL")
        t_end = time.monotonic() + 4.5
        try:
            durations = {}
            while time.monotonic() < t_end:
                j = self.agent.instance("paused")
                if j["reason"] == "timeout":
                    durations[j["last_poll_timestamp"]] = j["last_poll_duration_seconds"]
                time.sleep(0.05)
            ds = sorted(durations.values())
            self.assertGreaterEqual(len(ds), 2, ds)
            self.assertLess(ds[len(ds) // 2], TIMEOUT + 0.25, ds)
            self.assertLess(ds[-1], TIMEOUT + 0.75, ds)
            self.assertGreaterEqual(ds[0], TIMEOUT - 0.01, ds)
            m = self.agent.metrics()
            self.assertEqual(value(m, "redis_up", target="plain"), 1)
        finally:
            c.close()
        self.wait_up("paused", 1, timeout=10)


class SingleAgentCases(unittest.TestCase):
    def setUp(self):
        self.tmp = Tmp()

    def tearDown(self):
        self.tmp.cleanup()

    def test_wrong_password_reason_auth(self):
        srv = RedisServer(self.tmp.path, "acl", args=["--user", "monitor", "on", ">right", "-@all", "+info"])
        try:
            agent = Agent(self.tmp.path, [
                {"name": "bad", "address": "127.0.0.1:%d" % srv.port, "username": "monitor",
                 "password_env": "RP_TEST_PW"}], defaults={"interval": "1s", "timeout": "500ms"},
                env={"RP_TEST_PW": "wrong-one"})
            j = wait_for(lambda: (lambda j: j if j["reason"] == "auth" else None)(agent.instance("bad")), 5,
                         what="reason auth")
            self.assertFalse(j["up"])
            self.assertIn("WRONGPASS", j["last_error"])
            self.assertNotIn("wrong-one", json.dumps(j))
            self.assertEqual(agent.stop(), 0)
            self.assertNotIn("wrong-one", agent.log_text())
        finally:
            srv.stop()

    def test_acl_without_info_is_no_permission(self):
        srv = RedisServer(self.tmp.path, "acl", args=["--user", "mon", "on", ">pw", "-@all", "+ping"])
        try:
            agent = Agent(self.tmp.path, [
                {"name": "noinfo", "address": "127.0.0.1:%d" % srv.port, "username": "mon",
                 "password_env": "RP_TEST_PW"}], defaults={"interval": "1s", "timeout": "500ms"},
                env={"RP_TEST_PW": "pw"})
            wait_for(lambda: agent.instance("noinfo")["reason"] == "no_permission", 5, what="no_permission")
            self.assertEqual(agent.stop(), 0)
        finally:
            srv.stop()

    def test_tls_wrong_ca_and_plain_server(self):
        tls = make_tls(self.tmp.path)
        tsrv = RedisServer(self.tmp.path, "tls", tls=tls)
        psrv = RedisServer(self.tmp.path, "plain")
        try:
            agent = Agent(self.tmp.path, [
                {"name": "wrongca", "address": "rediss://127.0.0.1:%d" % tsrv.port, "tls": {"ca_file": tls["other_ca"]}},
                {"name": "notls", "address": "rediss://127.0.0.1:%d" % psrv.port, "tls": {"ca_file": tls["ca"]}},
                {"name": "skip", "address": "rediss://127.0.0.1:%d" % tsrv.port, "tls": {"insecure_skip_verify": True}},
            ], defaults={"interval": "1s", "timeout": "500ms"})
            wait_for(lambda: agent.instance("wrongca")["reason"] == "tls", 5, what="tls failure (wrong CA)")
            self.assertIn("certificate verify failed", agent.instance("wrongca")["last_error"])
            wait_for(lambda: agent.instance("notls")["reason"] in ("tls", "timeout"), 5, what="tls failure (plain server)")
            self.assertEqual(agent.instance("notls")["reason"], "tls")
            wait_for(lambda: agent.instance("skip")["up"], 5, what="insecure_skip_verify works")
            self.assertEqual(agent.stop(), 0)
            self.assertIn("insecure_skip_verify is on", agent.log_text())
        finally:
            tsrv.stop()
            psrv.stop()

    def test_bad_config_exits_2(self):
        bad = os.path.join(self.tmp.path, "bad.json")
        with open(bad, "w") as f:
            f.write('{\n  "instances": [\n    {"name": "a", "address": "http://x:1"},\n'
                    '    {"name": "a", "address": "h:1", "interval": "fast"}\n  ],\n  "colour": 1\n}\n')
        for flag in ("--config", "--check-config"):
            p = subprocess.run([BIN, flag, bad], capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, flag)
            self.assertIn('instances[0].address (line 3, column 30): unknown scheme "http"', p.stderr)
            self.assertIn('instances[1].interval (line 4, column 49): bad duration "fast"', p.stderr)
            self.assertIn('instances[1].name (line 4, column 14): duplicate instance name "a"', p.stderr)
            self.assertIn('colour (line 6, column 3): unknown key "colour"', p.stderr)
            self.assertIn("4 errors in " + bad, p.stderr)
        good = os.path.join(self.tmp.path, "good.json")
        with open(good, "w") as f:
            json.dump({"instances": [{"name": "a", "address": "h:1"}]}, f)
        p = subprocess.run([BIN, "--check-config", good], capture_output=True, text=True, timeout=10)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "configuration OK (1 instance)"))
        p = subprocess.run([BIN, "--config", "/nonexistent.json"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("/nonexistent.json: cannot open", p.stderr)
        # a path or word of the command line cannot forge a line of the log
        for argv, shown in ((["--config", "/nonexistent\nerror main: forged"], "/nonexistent?error main: forged"),
                            (["--log-level", "x\nforged"], '"x?forged"'), (["x\nforged"], '"x?forged"'),
                            (["--reload", "1\nforged"], '"1?forged"')):
            p = subprocess.run([BIN] + argv, capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, argv)
            self.assertIn(shown, p.stderr, argv)
            self.assertFalse([ln for ln in p.stderr.splitlines() if ln.startswith(("error", "forged"))], p.stderr)
        p = subprocess.run([BIN, "--bogus"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([BIN, "--log-level", "loud"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=10)
        self.assertTrue(p.stdout.startswith("redpulse "))
        p = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10)
        self.assertIn("--check-config", p.stdout)

    def test_listen_in_use_fails_cleanly(self):
        srv = RedisServer(self.tmp.path, "plain")
        try:
            cfg = os.path.join(self.tmp.path, "c.json")
            with open(cfg, "w") as f:
                json.dump({"listen": "127.0.0.1:%d" % srv.port, "instances": [{"name": "a", "address": "h:1"}]}, f)
            p = subprocess.run([BIN, "--config", cfg], capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 1)
            self.assertIn("cannot listen on 127.0.0.1:%d" % srv.port, p.stderr)
            # nor can a second redpulse share a running one's port (no
            # SO_REUSEPORT: the kernel would split the scrapes between them)
            first = Agent(self.tmp.path, [{"name": "a", "address": "127.0.0.1:%d" % srv.port}])
            with open(cfg, "w") as f:
                json.dump({"listen": "127.0.0.1:%d" % first.port, "instances": [{"name": "b", "address": "h:1"}]}, f)
            p = subprocess.run([BIN, "--config", cfg], capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("cannot listen on 127.0.0.1:%d" % first.port, p.stderr)
            self.assertEqual(first.stop(), 0)
        finally:
            srv.stop()

    def test_polls_spread_and_one_command_per_poll(self):
        """Steady state: one INFO per poll, no new connections, and the
        instances' polls do not fire together."""
        srv = RedisServer(self.tmp.path, "plain")
        try:
            insts = [{"name": "i%d" % k, "address": "127.0.0.1:%d" % srv.port} for k in range(4)]
            agent = Agent(self.tmp.path, insts, defaults={"interval": "1s", "timeout": "500ms"})
            wait_for(lambda: agent.get("/readyz")[0] == 200, 5, what="ready")
            # the first polls also ask COMMAND INFO for new command names and
            # CONFIG GET (then once a minute): let that settle
            time.sleep(4.5)
            c = srv.client()
            info0 = c.info()
            time.sleep(3.0)
            info1 = c.info()
            c.close()
            conns = int(info1["total_connections_received"]) - int(info0["total_connections_received"])
            self.assertEqual(conns, 0)
            calls = lambda i: int(i["cmdstat_info"].split("calls=")[1].split(",")[0])  # noqa: E731
            other = int(info1["total_commands_processed"]) - int(info0["total_commands_processed"])
            n_info = calls(info1) - calls(info0) - 1  # minus our own second INFO
            self.assertEqual(other - 1, n_info, "only INFO commands in steady state")
            self.assertTrue(10 <= n_info <= 14, n_info)  # 4 instances x 3 s at 1/s
            m = agent.metrics()
            ts = sorted(value(m, "redpulse_last_poll_timestamp_seconds", target="i%d" % k) for k in range(4))
            gaps = [(b - a) % 1.0 for a, b in zip(ts, ts[1:])]
            for g in gaps:
                self.assertGreater(g, 0.1, ts)
            self.assertEqual(agent.stop(), 0)
        finally:
            srv.stop()


    def test_rendered_when_read(self):
        """A poll is rendered when /metrics (or the JSON API) first reads
        it, at most once: a dozen polls between two reads are one render,
        and what a read serves is the last poll, not the one rendered at
        the read before. Failed polls and the first good one after them are
        rendered at once."""
        srv = RedisServer(self.tmp.path, "lazy")
        try:
            agent = Agent(self.tmp.path, [{"name": "l", "address": "127.0.0.1:%d" % srv.port}],
                          defaults={"interval": "100ms", "timeout": "90ms"})
            wait_for(lambda: agent.get("/readyz")[0] == 200, 5, what="ready")
            renders = lambda m: value(m, "redpulse_renders_total")  # noqa: E731
            failed = lambda m: sum(v for _, v in series(m, "redpulse_poll_errors_total", target="l"))  # noqa: E731
            m0 = agent.metrics()
            c = srv.client()
            for k in range(7):
                c.cmd("SET", "k%d" % k, "v")
            c.close()
            time.sleep(1.5)
            m = agent.metrics()
            now = time.time()
            polls = value(m, "redpulse_polls_total", target="l")
            self.assertGreaterEqual(polls - value(m0, "redpulse_polls_total", target="l"), 6, "polls between the reads")
            f0 = failed(m) - failed(m0)
            if f0 == 0:
                self.assertEqual(renders(m) - renders(m0), 1, "polls between two reads: one render")
            else:  # a poll that failed by chance: rendered at once, and the one after it
                self.assertLessEqual(renders(m) - renders(m0), f0 + 2)
            self.assertLess(now - value(m, "redpulse_last_poll_timestamp_seconds", target="l"), 0.6,
                            "the last poll is served, not the one of the read before")
            self.assertEqual(value(m, "redis_db_keys", target="l", db="db0"), 7)
            time.sleep(1.5)
            j = agent.instance("l")  # the JSON API reads through the same render
            self.assertTrue(j["up"])
            self.assertGreaterEqual(j["polls"], polls + 6)
            self.assertLess(time.time() - j["last_poll_timestamp"], 0.6)
            # failed polls are rendered at once, and so is the first good one
            # after them (up back to 1 without a reader); the polls after
            # it wait for the read: one render more
            m1 = agent.metrics()
            c = srv.client()
            c.cmd("CLIENT", "PAUSE", "400", "ALL")
            c.close()
            time.sleep(1.5)
            m2 = agent.metrics()
            f = failed(m2) - failed(m1)
            self.assertGreaterEqual(f, 1, "polls failed while the server was paused")
            self.assertEqual(value(m2, "redis_up", target="l"), 1)
            self.assertEqual(renders(m2) - renders(m1), f + 2, "failed polls, the recovery, the read")
            self.assertEqual(agent.stop(), 0)
        finally:
            srv.stop()

    def test_waiting_renders_keep_their_own_lists(self):
        """Every poll is parsed into one buffer the poller reuses; a poll
        waiting for its render is parsed again from its own text when read.
        Two instances with different commands, errors and replicas, polled
        many times between reads: each read serves each instance's own
        lists, never the other's (nor the other's names for its figures)."""
        a = RedisServer(self.tmp.path, "lists-a")
        b = RedisServer(self.tmp.path, "lists-b")
        rep = RedisServer(self.tmp.path, "lists-rep", args=["--replicaof", "127.0.0.1", str(a.port)])
        try:
            ca, cb = a.client(), b.client()
            for k in range(5):
                ca.cmd("SET", "k%d" % k, "v")
                cb.cmd("HSET", "h", "f%d" % k, "v")
                cb.cmd("LPUSH", "l", "x")
            self.assertRaises(RuntimeError, ca.cmd, "NOSUCHCOMMAND")  # errorstat_ERR on a only
            self.assertRaises(RuntimeError, cb.cmd, "INCR", "h")  # errorstat_WRONGTYPE on b only
            wait_for(lambda: "slave0:" in ca.cmd("INFO", "replication"), 10, what="replica attached")
            agent = Agent(self.tmp.path, [{"name": "a", "address": "127.0.0.1:%d" % a.port},
                                          {"name": "b", "address": "127.0.0.1:%d" % b.port}],
                          defaults={"interval": "100ms", "timeout": "90ms"})
            wait_for(lambda: agent.get("/readyz")[0] == 200, 5, what="ready")
            for _ in range(3):
                for k in range(5):  # calls between every two polls: the per-command rates are there
                    ca.cmd("SET", "k%d" % k, "w")
                    cb.cmd("LPUSH", "l", "y")
                time.sleep(0.8)
                m = agent.metrics()
                cmds = lambda t, name: {d["cmd"] for d, _ in series(m, name, target=t)}  # noqa: E731
                for name in ("redis_commands_total", "redis_command_calls_per_second"):
                    self.assertIn("set", cmds("a", name), name)
                    self.assertNotIn("hset", cmds("a", name), name)
                    self.assertNotIn("lpush", cmds("a", name), name)
                    self.assertIn("lpush", cmds("b", name), name)
                    self.assertNotIn("set", cmds("b", name), name)
                errs = lambda t: {d["err"] for d, _ in series(m, "redis_errors_total", target=t)}  # noqa: E731
                self.assertEqual(errs("a"), {"ERR"})
                self.assertEqual(errs("b"), {"WRONGTYPE"})
                for name in ("redis_connected_slave_lag_seconds", "redis_connected_slave_lag_bytes"):
                    self.assertEqual(len(series(m, name, target="a")), 1, name)
                    self.assertEqual(series(m, name, target="b"), [], name)
                eps = lambda t: {d["err"] for d, _ in series(m, "redis_errors_per_second", target=t)}  # noqa: E731
                self.assertEqual(eps("a"), {"ERR"})
                self.assertEqual(eps("b"), {"WRONGTYPE"})
                self.assertEqual(value(m, "redis_connected_slaves", target="a"), 1)
                self.assertEqual(value(m, "redis_connected_slaves", target="b"), 0)
            self.assertEqual(agent.stop(), 0)
            ca.close()
            cb.close()
        finally:
            rep.stop()
            b.stop()
            a.stop()

if __name__ == "__main__":
    harness.main()
