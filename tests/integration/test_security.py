#!/usr/bin/env python3
"""The HTTP endpoint under attack and in production: TLS with a minimum
version, client certificates verified by the agent, certificate reload on
SIGHUP, bcrypt basic auth (timing, cache, WWW-Authenticate), security
headers, limits against slow clients (slowhttptest), and secrets that never
leak into logs, metrics, JSON, the landing page or the command line."""
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
import unittest
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import crypt  # noqa: E402 - only to make bcrypt hashes independently of redpulse
except ImportError:  # pragma: no cover
    crypt = None
from harness import BIN, Agent, RedisServer, Tmp, free_port, make_tls, parse_prom, wait_for  # noqa: E402


def basic(user, pw):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()}


def bcrypt(pw, rounds=16):
    if crypt:
        return crypt.crypt(pw, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=rounds))
    return subprocess.run([BIN, "--hash-password"], input=pw, capture_output=True, text=True, check=True).stdout.strip()


def stop_class(cls):
    """Stops a test class's agent and Redis, removes its files, checks the
    agent exited cleanly; returns the agent's log."""
    rc = cls.agent.stop()
    cls.redis.stop()
    log = cls.agent.log_text()
    cls.tmp.cleanup()
    assert rc == 0, log[-3000:]
    return log


def peer_cert_serial(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.getpeercert()["serialNumber"]


class TlsEndpoint(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        cls.tls = make_tls(cls.tmp.path)
        cls.redis = RedisServer(cls.tmp.path, "r")
        # the files the agent reads; the test swaps their content for a renewal
        cls.cert = os.path.join(cls.tmp.path, "http.crt")
        cls.key = os.path.join(cls.tmp.path, "http.key")
        shutil.copy(cls.tls["cert"], cls.cert)
        shutil.copy(cls.tls["key"], cls.key)
        os.chmod(cls.key, 0o600)
        ctx = ssl.create_default_context(cafile=cls.tls["ca"])
        ctx.load_cert_chain(cls.tls["client_cert"], cls.tls["client_key"])
        cls.ctx = ctx
        cls.agent = Agent(cls.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % cls.redis.port}],
                          extra={"http": {"tls": {"cert_file": cls.cert, "key_file": cls.key,
                                                  "client_ca_file": cls.tls["ca"], "min_version": "1.2"}}},
                          scheme="https", ssl_context=ctx)

    @classmethod
    def tearDownClass(cls):
        stop_class(cls)

    def test_tls_with_verified_client_cert(self):
        status, headers, body = self.agent.get("/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b"redis_up", body)
        # TLS but no client certificate: refused by the agent
        noclient = ssl.create_default_context(cafile=self.tls["ca"])
        status, _, body = self.agent.get("/metrics", context=noclient)
        self.assertEqual(status, 403)
        # a certificate from another CA
        rogue = ssl.create_default_context(cafile=self.tls["ca"])
        rogue.load_cert_chain(self.tls["rogue_cert"], self.tls["rogue_key"])
        try:
            status, _, _ = self.agent.get("/metrics", context=rogue)
            self.assertEqual(status, 403)
        except (urllib.error.URLError, ssl.SSLError, ConnectionError):
            pass  # refusing the handshake is fine too
        # /healthz stays open for probes (TLS still required)
        self.assertEqual(self.agent.get("/healthz", context=noclient)[0], 200)
        # plain HTTP on the TLS port gets nothing useful
        with socket.create_connection(("127.0.0.1", self.agent.port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(3)
            try:
                data = s.recv(4096)
            except (socket.timeout, ConnectionResetError):
                data = b""
            self.assertNotIn(b"redis_up", data)

    def test_minimum_version(self):
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(self.tls["ca"])
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            old.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            with socket.create_connection(("127.0.0.1", self.agent.port), timeout=5) as raw:
                with old.wrap_socket(raw, server_hostname="127.0.0.1"):
                    pass
        ok = ssl.create_default_context(cafile=self.tls["ca"])
        ok.minimum_version = ok.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", self.agent.port), timeout=5) as raw:
            with ok.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                self.assertEqual(s.version(), "TLSv1.2")

    def test_z_reload_on_sighup(self):
        before = peer_cert_serial(self.agent.port, self.tls["ca"])
        # a broken renewal is refused and the old certificate stays
        with open(self.cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        self.agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "TLS reload:" in self.agent.log_text(), 5, what="reload error logged")
        self.assertEqual(peer_cert_serial(self.agent.port, self.tls["ca"]), before)
        # a good renewal is picked up without a restart
        shutil.copy(self.tls["cert2"], self.cert)
        shutil.copy(self.tls["key2"], self.key)
        self.agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: peer_cert_serial(self.agent.port, self.tls["ca"]) != before, 5, what="new certificate served")
        self.assertIn("TLS certificate reloaded", self.agent.log_text())
        self.assertEqual(self.agent.get("/metrics")[0], 200)
        self.assertIsNone(self.agent.proc.poll())


class BasicAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        cls.redis = RedisServer(cls.tmp.path, "r")
        h = bcrypt("prom-secret-pw", rounds=1024)  # cost 10, as in production: ~50 ms a check
        cls.hash_2y = "$2y$" + h[4:]  # Prometheus/htpasswd spelling of the same hash
        cls.agent = Agent(cls.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % cls.redis.port}],
                          extra={"http": {"basic_auth_users": {"prometheus": cls.hash_2y,
                                                               "other": bcrypt("other-pw"),
                                                               "cache": bcrypt("cache-pw", rounds=1024)}}})

    @classmethod
    def tearDownClass(cls):
        assert "prom-secret-pw" not in stop_class(cls)

    def test_auth(self):
        status, headers, _ = self.agent.get("/metrics")
        self.assertEqual(status, 401)
        self.assertIn('Basic realm="redpulse"', headers.get("WWW-Authenticate", ""))
        self.assertEqual(self.agent.get("/metrics", headers=basic("prometheus", "wrong"))[0], 401)
        self.assertEqual(self.agent.get("/metrics", headers=basic("nobody", "prom-secret-pw"))[0], 401)
        self.assertEqual(self.agent.get("/metrics", headers={"Authorization": "Basic !!!"})[0], 401)
        self.assertEqual(self.agent.get("/metrics", headers={"Authorization": "Bearer x"})[0], 401)
        status, _, body = self.agent.get("/metrics", headers=basic("prometheus", "prom-secret-pw"))
        self.assertEqual(status, 200)
        self.assertIn(b"redis_up", body)
        self.assertEqual(self.agent.get("/api/v1/instances", headers=basic("other", "other-pw"))[0], 200)
        self.assertEqual(self.agent.get("/healthz")[0], 200)  # probes need no password
        self.assertEqual(self.agent.get("/")[0], 401)

    def test_timing_says_nothing_and_cache(self):
        def t(user, pw):
            t0 = time.monotonic()
            self.agent.get("/api/v1/instances", headers=basic(user, pw))
            return time.monotonic() - t0
        known = [t("prometheus", "wrong-%d" % i) for i in range(5)]
        unknown = [t("nobody-%d" % i, "wrong") for i in range(5)]
        mk, mu = statistics.median(known), statistics.median(unknown)
        # both run one bcrypt of the same cost
        self.assertLess(abs(mk - mu), 0.5 * max(mk, mu) + 0.002, (known, unknown))

        def counters():
            status, _, body = self.agent.get("/metrics", headers=basic("prometheus", "prom-secret-pw"))
            self.assertEqual(status, 200)
            m = parse_prom(body.decode())
            return (m[("redpulse_http_bcrypt_checks_total", ())],
                    m[("redpulse_http_auth_checks_total", (("result", "ok"),))],
                    m[("redpulse_http_auth_checks_total", (("result", "denied"),))])
        b0, ok0, no0 = counters()
        t("nobody-x", "wrong")
        t("cache", "wrong")
        b1, ok1, no1 = counters()
        self.assertEqual(b1 - b0, 2)  # an unknown user costs a bcrypt like a known one
        self.assertEqual(no1 - no0, 2)
        first = t("cache", "cache-pw")  # only this test logs in as "cache"
        b2, ok2, _ = counters()
        self.assertEqual(b2 - b1, 1)
        again = [t("cache", "cache-pw") for _ in range(5)]
        b3, ok3, _ = counters()
        self.assertEqual(b3 - b2, 0, "a good login is remembered: no bcrypt")  # the counter reads are cached too
        self.assertEqual(ok3 - ok2, 5 + 1)
        self.assertLess(statistics.median(again), first)

    def test_hash_password_cli(self):
        p = subprocess.run([BIN, "--hash-password"], input="s3cret\n", capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 0)
        h = p.stdout.strip()
        self.assertTrue(h.startswith("$2b$10$") and len(h) == 60, h)
        if crypt:
            self.assertEqual(crypt.crypt("s3cret", h), h)


class HttpLimits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        cls.redis = RedisServer(cls.tmp.path, "r")
        cls.agent = Agent(cls.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % cls.redis.port}],
                          extra={"http": {"max_connections": 128, "max_connections_per_ip": 16,
                                          "idle_timeout": "3s", "connection_memory_limit": 16384}},
                          log_level="info")

    @classmethod
    def tearDownClass(cls):
        stop_class(cls)

    def raw(self, data, src="127.0.0.1"):
        with socket.create_connection(("127.0.0.1", self.agent.port), timeout=5, source_address=(src, 0)) as s:
            s.sendall(data)
            out = b""
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    out += d
            except socket.timeout:
                pass
            return out

    def test_headers_and_bad_requests(self):
        status, headers, _ = self.agent.get("/metrics")
        self.assertEqual(status, 200)
        for h, v in (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "deny")):
            self.assertEqual(headers.get(h), v)
        self.assertIn("default-src 'none'", headers.get("Content-Security-Policy", ""))
        self.assertEqual(self.agent.get("/")[1].get("X-Frame-Options"), "deny")
        self.assertTrue(self.raw(b"GET /metrics\r\n\r\n").startswith(b"HTTP/1.1 400"))  # no version
        self.assertTrue(self.raw(b"GET / HTTP/9.9\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 505"))
        self.assertNotIn(b"200 OK", self.raw(b"GARBAGE\r\n\r\n"))  # closed without an answer
        self.assertTrue(self.raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
                        .startswith(b"HTTP/1.1 431"))
        self.assertTrue(self.raw(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
                        .startswith(b"HTTP/1.1 405"))
        self.assertTrue(self.raw(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .startswith(b"HTTP/1.1 404"))

    def scrape_from_other_address(self):
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.agent.port), timeout=5, source_address=("127.0.0.2", 0)) as s:
            s.sendall(b"GET /scrape?target=r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        return time.monotonic() - t0, out

    def attack(self, args, seconds=12):
        if not shutil.which("slowhttptest"):
            self.skipTest("slowhttptest is not installed")
        cmd = ["slowhttptest", "-u", "http://127.0.0.1:%d/metrics" % self.agent.port, "-l", str(seconds)] + args
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(4)  # let it open its connections
            worst = 0
            for _ in range(5):
                dt, out = self.scrape_from_other_address()
                self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:100])
                self.assertIn(b"redis_up", out)
                worst = max(worst, dt)
                time.sleep(0.5)
            self.assertLess(worst, 1.0)
        finally:
            p.kill()
            p.wait()
        self.assertIsNone(self.agent.proc.poll(), "redpulse died under attack")

    def test_slowloris(self):
        self.attack(["-H", "-c", "400", "-r", "200", "-i", "2", "-s", "8192", "-t", "GET", "-x", "24", "-p", "3"])

    def test_slow_read(self):
        self.attack(["-X", "-c", "400", "-r", "200", "-w", "16", "-y", "32", "-n", "5", "-z", "8", "-k", "3", "-p", "3"])


class Secrets(unittest.TestCase):
    def test_secrets_never_leak(self):
        tmp = Tmp()
        try:
            tls = make_tls(tmp.path)
            pw_file_secret, env_secret, inline_secret = "pw-from-FILE-7f3a", "pw-from-ENV-91bc", "pw-INLINE-55d2"
            users = []
            servers = []
            for name, pw in (("file", pw_file_secret), ("env", env_secret), ("inline", inline_secret)):
                servers.append(RedisServer(tmp.path, name, args=["--user", "mon", "on", ">" + pw, "-@all", "+info",
                                                                 "+client|setname", "+config|get", "+command"]))
            loose = os.path.join(tmp.path, "loose.pw")
            with open(loose, "w") as f:
                f.write(pw_file_secret + "\n")
            os.chmod(loose, 0o644)
            tsrv = RedisServer(tmp.path, "tls", tls=tls, args=["--requirepass", env_secret])
            servers.append(tsrv)
            a = Agent(tmp.path, [
                {"name": "file", "address": "redis://mon@127.0.0.1:%d" % servers[0].port, "password_file": loose},
                {"name": "env", "address": "127.0.0.1:%d" % servers[1].port, "username": "mon", "password_env": "RP_SECRET"},
                {"name": "inline", "address": "127.0.0.1:%d" % servers[2].port, "username": "mon", "password": inline_secret},
                {"name": "tls", "address": "rediss://127.0.0.1:%d" % tsrv.port, "password_env": "RP_SECRET",
                 "tls": {"ca_file": tls["ca"]}},
                {"name": "wrongpw", "address": "127.0.0.1:%d" % servers[0].port, "username": "mon",
                 "password_env": "RP_SECRET"},
            ], defaults={"interval": "500ms", "timeout": "400ms"}, env={"RP_SECRET": env_secret}, log_level="debug")
            wait_for(lambda: all(a.instance(n)["up"] for n in ("file", "env", "inline", "tls")), 10, what="all up")
            wait_for(lambda: a.instance("wrongpw")["reason"] == "auth", 5, what="wrong password fails")
            texts = [a.get(p)[2].decode() for p in ("/", "/metrics", "/api/v1/instances")]
            texts += [a.get("/api/v1/instances/" + n)[2].decode() for n in ("file", "env", "inline", "tls", "wrongpw")]
            with open("/proc/%d/cmdline" % a.proc.pid, "rb") as f:
                texts.append(f.read().decode(errors="replace"))
            with open("/proc/%d/environ" % a.proc.pid, "rb") as f:
                environ = f.read().decode(errors="replace")
            rc = a.stop()
            self.assertEqual(rc, 0)
            log = a.log_text()
            texts.append(log)
            for secret in (pw_file_secret, env_secret, inline_secret):
                for t in texts:
                    self.assertNotIn(secret, t)
            self.assertIn("world-readable", log)
            self.assertIn("inline \"password\"", log)
            self.assertIn("RP_SECRET", environ)  # the variable was there; it just never came out
            for s in servers:
                s.stop()
        finally:
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
