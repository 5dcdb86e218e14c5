#!/usr/bin/env python3
"""The HTTP endpoint under attack and in production: TLS with a minimum
version refused by the agent itself (raw ClientHellos), client certificates
verified by the agent, certificate and client-CA reload on SIGHUP, bcrypt
basic auth (unknown users cost a bcrypt, at most two at once and 503 past
the queue, failed logins limited per address, the login cache and its
expiry, all proved with the agent's counters), every security header,
exposure warnings, limits against slow clients (slowhttptest), and secrets
that never leak into logs, metrics, JSON, the landing page or the command
line."""
import base64
import http.client
import json
import os
import gzip
import re
import select
import shutil
import signal
import socket
import ssl
import statistics
import struct
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


def read(path):
    with open(path) as f:
        return f.read()


def peer_cert_serial(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.getpeercert()["serialNumber"]


def client_hello(version):
    """A well-formed ClientHello offering only `version` (0x0301 TLS 1.0 ...
    0x0303 TLS 1.2; no supported_versions extension, so never TLS 1.3), with
    the usual suites and extensions: a client library cannot refuse to send
    it, so what comes back is the server's own decision."""
    suites = b"".join(struct.pack(">H", x) for x in (0xc02f, 0xc030, 0xc013, 0xc014, 0x009c, 0x002f, 0x0035))
    groups = struct.pack(">HHH", 4, 0x001d, 0x0017)
    algs = struct.pack(">HHHH", 6, 0x0804, 0x0401, 0x0201)
    ext = (struct.pack(">HH", 0x000a, len(groups)) + groups + struct.pack(">HH", 0x000b, 2) + b"\x01\x00" +
           struct.pack(">HH", 0x000d, len(algs)) + algs)
    body = (struct.pack(">H", version) + os.urandom(32) + b"\x00" + struct.pack(">H", len(suites)) + suites +
            b"\x01\x00" + struct.pack(">H", len(ext)) + ext)
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


def server_answer(port, data, timeout=5):
    """Sends data and reads until the server closes: (bytes, closed). closed
    is False when the server kept the connection open and silent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    return out, True
                out += d
                if out[:1] == b"\x16":  # a ServerHello: the handshake goes on
                    return out, False
        except ConnectionResetError:
            return out, True
        except socket.timeout:
            return out, False


def http_get(port, path, src="127.0.0.1", headers=None, context=None):
    """One GET from source address src on a new connection: (status, headers, body)."""
    if context:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=20, source_address=(src, 0), context=context)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(src, 0))
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


class TlsEndpoint(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        cls.tls = make_tls(cls.tmp.path)
        cls.redis = RedisServer(cls.tmp.path, "r")
        # the files the agent reads; the test swaps their content for a renewal
        cls.cert = os.path.join(cls.tmp.path, "http.crt")
        cls.key = os.path.join(cls.tmp.path, "http.key")
        cls.client_ca = os.path.join(cls.tmp.path, "client-ca.crt")
        shutil.copy(cls.tls["cert"], cls.cert)
        shutil.copy(cls.tls["key"], cls.key)
        shutil.copy(cls.tls["ca"], cls.client_ca)
        os.chmod(cls.key, 0o600)
        ctx = ssl.create_default_context(cafile=cls.tls["ca"])
        ctx.load_cert_chain(cls.tls["client_cert"], cls.tls["client_key"])
        cls.ctx = ctx
        cls.rogue = ssl.create_default_context(cafile=cls.tls["ca"])
        cls.rogue.load_cert_chain(cls.tls["rogue_cert"], cls.tls["rogue_key"])
        cls.agent = Agent(cls.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % cls.redis.port}],
                          extra={"http": {"tls": {"cert_file": cls.cert, "key_file": cls.key,
                                                  "client_ca_file": cls.client_ca, "min_version": "1.2"}}},
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
        # a certificate from another CA: the handshake succeeds (the client
        # proved it holds the key) and the agent itself answers 403
        status, _, body = self.agent.get("/metrics", context=self.rogue)
        self.assertEqual(status, 403, body)
        self.assertIn(b"client certificate", body)
        # /healthz stays open for probes (TLS still required)
        self.assertEqual(self.agent.get("/healthz", context=noclient)[0], 200)
        # plain HTTP on the TLS port: not TLS, so the agent closes the
        # connection without a byte (libmicrohttpd sends no alert)
        data, closed = server_answer(self.agent.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual((data, closed), (b"", True))

    def test_minimum_version(self):
        # the same hello with TLS 1.2 gets a ServerHello: the hello is good
        data, closed = server_answer(self.agent.port, client_hello(0x0303))
        self.assertEqual(data[:1], b"\x16", data[:16])
        self.assertEqual(data[5:6], b"\x02", "a ServerHello")
        self.assertEqual(data[9:11], b"\x03\x03", "TLS 1.2 chosen")
        # offering only TLS 1.0 or 1.1: the agent ends the handshake
        # (closes without a ServerHello), the client did not refuse anything
        for v in (0x0301, 0x0302):
            data, closed = server_answer(self.agent.port, client_hello(v))
            self.assertEqual((data, closed), (b"", True), hex(v))
        ok = ssl.create_default_context(cafile=self.tls["ca"])
        ok.minimum_version = ok.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", self.agent.port), timeout=5) as raw:
            with ok.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                self.assertEqual(s.version(), "TLSv1.2")

    def test_minimum_version_13(self):
        a = Agent(self.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % self.redis.port}],
                  extra={"http": {"tls": {"cert_file": self.cert, "key_file": self.key, "min_version": "1.3"}}},
                  scheme="https", ssl_context=ssl.create_default_context(cafile=self.tls["ca"]))
        try:
            data, closed = server_answer(a.port, client_hello(0x0303))
            self.assertEqual((data, closed), (b"", True), "TLS 1.2 refused by the agent")
            # and a library client limited to 1.2 sees the same: the server
            # ended the handshake
            old = ssl.create_default_context(cafile=self.tls["ca"])
            old.maximum_version = ssl.TLSVersion.TLSv1_2
            with self.assertRaises((ssl.SSLError, ConnectionError)) as cm:
                with socket.create_connection(("127.0.0.1", a.port), timeout=5) as raw:
                    with old.wrap_socket(raw, server_hostname="127.0.0.1"):
                        pass
            self.assertNotIn("NO_PROTOCOLS_AVAILABLE", str(cm.exception))
            new = ssl.create_default_context(cafile=self.tls["ca"])
            with socket.create_connection(("127.0.0.1", a.port), timeout=5) as raw:
                with new.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    self.assertEqual(s.version(), "TLSv1.3")
        finally:
            self.assertEqual(a.stop(), 0)

    def test_y_reloads_that_renew_nothing_keep_nothing(self):
        """A SIGHUP keeps the replaced certificate, key and client CA until
        the server stops; one that renews nothing (most reloads) must not
        add a generation: it held ~30 KiB each, 300 reloads ~9 MB."""
        done = lambda: len(re.findall(r"TLS certificate reloaded|TLS files unchanged", self.agent.log_text()))
        n0 = done()
        rss0 = self.agent.rss_kib()
        for i in range(1, 301):
            self.agent.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: done() >= n0 + i, 10, step=0.002, what="reload %d" % i)
        self.assertEqual(self.agent.get("/metrics")[0], 200)
        if not os.environ.get("REDPULSE_SANITIZED"):  # ASan's quarantine holds what is freed
            self.assertLess(self.agent.rss_kib() - rss0, 3 * 1024)

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
        # the client CA too: a broken one is refused whole, the old CA stays
        with open(self.client_ca, "w") as f:
            f.write("not a certificate\n")
        n_err = self.agent.log_text().count("TLS reload:")
        self.agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.agent.log_text().count("TLS reload:") > n_err, 5, what="bad CA reload logged")
        self.assertEqual(self.agent.get("/metrics")[0], 200)
        self.assertEqual(self.agent.get("/metrics", context=self.rogue)[0], 403)
        # a new CA: its client certificates are accepted, the old CA's refused
        shutil.copy(self.tls["other_ca"], self.client_ca)
        self.agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.agent.get("/metrics", context=self.rogue)[0] == 200, 5, what="new client CA in use")
        self.assertEqual(self.agent.get("/metrics")[0], 403)
        self.assertIn("TLS certificate reloaded (and the client CA)", self.agent.log_text())
        self.assertIsNone(self.agent.proc.poll())


def read_all(sock):
    """What sock receives until the peer closes."""
    out = b""
    while True:
        d = sock.recv(65536)
        if not d:
            return out
        out += d


def at_once(port, src, path, headers):
    """One GET of path from src per element of headers (dicts), all sent
    before any answer is read, each on a connection of its own: the raw
    answers, in order."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(src, 0)) for _ in headers]
    try:
        for s, h in zip(socks, headers):
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n" %
                       (path, "".join("%s: %s\r\n" % kv for kv in h.items()))).encode())
        return [read_all(s) for s in socks]
    finally:
        for s in socks:
            s.close()


def auth_counters(port, src, user, pw):
    status, _, body = http_get(port, "/metrics", src=src, headers=basic(user, pw))
    assert status == 200, (status, body)
    m = parse_prom(body.decode())
    out = {r: m[("redpulse_http_auth_checks_total", (("result", r),))] for r in ("ok", "denied", "busy", "limited")}
    out["bcrypt"] = m[("redpulse_http_bcrypt_checks_total", ())]
    return out


class BasicAuth(unittest.TestCase):
    """Each test logs in from its own loopback addresses: failed logins are
    budgeted per client address."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        cls.redis = RedisServer(cls.tmp.path, "r")
        h = bcrypt("prom-secret-pw", rounds=1024)  # cost 10, as in production: ~50 ms a check
        cls.hash_2y = "$2y$" + h[4:]  # Prometheus/htpasswd spelling of the same hash
        cls.agent = Agent(cls.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % cls.redis.port}],
                          extra={"http": {"basic_auth_users": {"prometheus": cls.hash_2y,
                                                               "other": bcrypt("other-pw"),
                                                               "cache": bcrypt("cache-pw", rounds=1024),
                                                               "fleet": bcrypt("fleet-pw", rounds=1024)}}})

    @classmethod
    def tearDownClass(cls):
        assert "prom-secret-pw" not in stop_class(cls)

    def counters(self):
        # from an address of its own, with a login cached after the first
        return auth_counters(self.agent.port, "127.0.1.1", "prometheus", "prom-secret-pw")

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

    def test_unknown_user_costs_a_bcrypt_and_cache(self):
        def login(user, pw, src="127.0.2.1"):
            return http_get(self.agent.port, "/api/v1/instances", src=src, headers=basic(user, pw))[0]
        c0 = self.counters()
        self.assertEqual(login("nobody-x", "wrong"), 401)
        self.assertEqual(login("cache", "wrong"), 401)
        c1 = self.counters()
        # an unknown user costs a bcrypt like a known one, so a refusal's
        # time says nothing about which users exist
        self.assertEqual(c1["bcrypt"] - c0["bcrypt"], 2)
        self.assertEqual(c1["denied"] - c0["denied"], 2)
        self.assertEqual(login("cache", "cache-pw"), 200)  # only this test logs in as "cache"
        c2 = self.counters()
        self.assertEqual(c2["bcrypt"] - c1["bcrypt"], 1)
        for _ in range(5):
            self.assertEqual(login("cache", "cache-pw"), 200)
        c3 = self.counters()
        self.assertEqual(c3["bcrypt"] - c2["bcrypt"], 0, "a good login is remembered: no bcrypt")
        self.assertEqual(c3["ok"] - c2["ok"], 5 + 1)  # the counter read is a cached login too

    def test_failed_logins_limited_per_address(self):
        c0 = self.counters()
        src = "127.0.3.1"
        t0 = time.monotonic()
        got = [http_get(self.agent.port, "/metrics", src=src, headers=basic("prometheus", "wrong-%d" % i))
               for i in range(14)]
        took = time.monotonic() - t0
        statuses = [g[0] for g in got]
        # the budget (10) plus one refilled every 6 s while these ran (a
        # loaded machine makes 14 bcrypt checks slow)
        self.assertGreaterEqual(statuses.count(401), 10, statuses)
        self.assertLessEqual(statuses.count(401), 10 + 1 + int(took / 6), (statuses, took))
        self.assertEqual(statuses.count(429), 14 - statuses.count(401), statuses)
        self.assertEqual(statuses[-1], 429)
        self.assertEqual(got[-1][1].get("Retry-After"), "6")
        c1 = self.counters()
        self.assertEqual(c1["limited"] - c0["limited"], statuses.count(429))
        self.assertEqual(c1["bcrypt"] - c0["bcrypt"], statuses.count(401), "a limited login costs no bcrypt")
        # a good login remembered from before still works from that address;
        # other addresses are not limited
        self.assertEqual(http_get(self.agent.port, "/metrics", src=src, headers=basic("prometheus", "prom-secret-pw"))[0], 200)
        self.assertEqual(http_get(self.agent.port, "/metrics", src="127.0.3.2", headers=basic("prometheus", "wrong"))[0], 401)

    def test_at_most_two_bcrypt_checks_at_once(self):
        # two password-check threads: the only place bcrypt runs
        tasks = os.listdir("/proc/%d/task" % self.agent.proc.pid)
        names = []
        for t in tasks:
            with open("/proc/%d/task/%s/comm" % (self.agent.proc.pid, t)) as f:
                names.append(f.read().strip())
        self.assertEqual(names.count("rp-bcrypt"), 2, names)
        # 40 wrong logins at once, each from its own address (no address is
        # limited): 2 run, 16 wait, the rest get 503 at once
        c0 = self.counters()
        n = 40
        socks = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", self.agent.port), timeout=30, source_address=("127.0.4.%d" % (i + 1), 0))
            socks.append(s)
        req = [("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic %s\r\n\r\n" %
                base64.b64encode(b"prometheus:wrong-%d" % i).decode()).encode() for i in range(n)]
        for s, r in zip(socks, req):
            s.sendall(r)
        # meanwhile a scrape with a remembered login is not held up: the
        # checks run off the HTTP threads (each scrape reads the number of
        # checks running or queued, to keep only those that overlapped)
        c = http.client.HTTPConnection("127.0.0.1", self.agent.port, timeout=30, source_address=("127.0.1.1", 0))

        def scrape():
            t0 = time.perf_counter()
            c.request("GET", "/metrics", headers=basic("prometheus", "prom-secret-pw"))
            r = c.getresponse()
            body = r.read()
            dt = time.perf_counter() - t0
            self.assertEqual(r.status, 200)
            return dt, parse_prom(body.decode())[("redpulse_http_bcrypt_pending", ())]
        try:
            # the 40 requests may still be on their way in: wait until the
            # checks are queued (without this, a scrape answered first finds
            # none pending and measures nothing)
            wait_for(lambda: scrape()[1] >= 2, 10, step=0.002, what="the checks running and queued")
            overlapped = []
            for _ in range(200):
                dt, pending = scrape()
                if pending < 2:
                    break
                overlapped.append(dt)
        except BaseException:
            for sk in socks:  # no queue left full for the tests after this one
                sk.close()
            raise
        finally:
            c.close()
        self.assertGreaterEqual(len(overlapped), 5)
        self.assertLess(statistics.median(overlapped), 0.020, overlapped)
        answers = [read_all(s) for s in socks]
        for s in socks:
            s.close()
        codes = [a[9:12] for a in answers]
        busy = codes.count(b"503")
        self.assertEqual(busy + codes.count(b"401"), n, codes)
        self.assertGreaterEqual(codes.count(b"401"), 2 + 16, codes)
        self.assertGreater(busy, 0, codes)
        self.assertTrue(all(b"Retry-After: 1" in a for a in answers if a[9:12] == b"503"))
        c1 = self.counters()
        self.assertEqual(c1["busy"] - c0["busy"], busy)
        self.assertEqual(c1["bcrypt"] - c0["bcrypt"], n - busy)

    def test_checks_in_flight_per_address(self):
        """One address has at most two password checks running or queued;
        past that it gets 429 at once, without a check (before, it could
        queue up to the whole queue of 16 with wrong or new passwords)."""
        c0 = self.counters()
        n = 8
        answers = at_once(self.agent.port, "127.0.7.1", "/metrics",
                          [basic("prometheus", "new-%d" % i) for i in range(n)])
        codes = [a[9:12] for a in answers]
        self.assertEqual(codes.count(b"401") + codes.count(b"429"), n, codes)
        self.assertGreaterEqual(codes.count(b"401"), 2, codes)
        self.assertGreaterEqual(codes.count(b"429"), 1, codes)
        for a in answers:
            if a[9:12] == b"429":
                self.assertIn(b"too many failed or pending logins from this address", a)
                self.assertIn(b"Retry-After: ", a)
        c1 = self.counters()
        self.assertEqual(c1["limited"] - c0["limited"], codes.count(b"429"))
        self.assertEqual(c1["bcrypt"] - c0["bcrypt"], codes.count(b"401"))
        self.assertEqual(c1["busy"] - c0["busy"], 0)

    def test_same_login_at_once_checked_once(self):
        """A Prometheus starting its scrapes of many targets at once, with
        the login not remembered yet: every request waits for the one check
        of that login (with two checks in flight per address, the third and
        later got 429: targets down for a scrape)."""
        c0 = self.counters()
        n = 8
        answers = at_once(self.agent.port, "127.0.7.2", "/scrape?target=r", [basic("fleet", "fleet-pw")] * n)
        self.assertEqual([a[9:12] for a in answers], [b"200"] * n)
        for a in answers:
            self.assertIn(b'redis_up{target="r"}', a)
        c1 = self.counters()
        self.assertEqual(c1["bcrypt"] - c0["bcrypt"], 1)
        self.assertEqual(c1["limited"] - c0["limited"], 0)
        self.assertEqual(c1["ok"] - c0["ok"], n + 1)  # and counters()' own login

    def test_hash_password_cli(self):
        p = subprocess.run([BIN, "--hash-password"], input="s3cret\n", capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 0)
        h = p.stdout.strip()
        self.assertTrue(h.startswith("$2b$10$") and len(h) == 60, h)
        if crypt:
            self.assertEqual(crypt.crypt("s3cret", h), h)


class LoginCacheExpiry(unittest.TestCase):
    def test_expiry(self):
        """A remembered login is kept a TTL past its last use: a scraper
        using it more often than the TTL pays no bcrypt however long it
        goes on (before, one every TTL), and one left unused for the TTL is
        checked again. The 24 h cap after the check: unit_auth."""
        tmp = Tmp()
        try:
            redis = RedisServer(tmp.path, "r")
            a = Agent(tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % redis.port}],
                      extra={"http": {"login_cache_ttl": "3s", "basic_auth_users": {"p": bcrypt("pw", rounds=16)}}})
            c0 = auth_counters(a.port, "127.0.5.1", "p", "pw")  # a bcrypt, then remembered
            t0 = time.monotonic()
            # used every second for over twice the TTL: no check
            while time.monotonic() - t0 < 7.5:
                time.sleep(1)
                self.assertEqual(auth_counters(a.port, "127.0.5.1", "p", "pw")["bcrypt"], c0["bcrypt"],
                                 "checked again %.1f s into continuous use" % (time.monotonic() - t0))
            # unused for longer than the TTL: checked again
            time.sleep(3.3)
            self.assertEqual(auth_counters(a.port, "127.0.5.1", "p", "pw")["bcrypt"], c0["bcrypt"] + 1)
            self.assertEqual(a.stop(), 0)
            redis.stop()
        finally:
            tmp.cleanup()


class MixedCostTiming(unittest.TestCase):
    def test_refusal_time_does_not_tell_users_apart(self):
        """Users whose hashes have different costs: a wrong password for
        either, and an unknown user, take the time of the costliest (before,
        the dummy had the first user's cost, so a cheaper user's refusals
        came back ~64x sooner than an unknown user's)."""
        tmp = Tmp()
        try:
            redis = RedisServer(tmp.path, "r")
            a = Agent(tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % redis.port}],
                      extra={"http": {"basic_auth_users": {"cheap": bcrypt("pw", rounds=16),
                                                           "dear": bcrypt("pw", rounds=1024)}}})

            def refusal_time(user, i):
                t0 = time.perf_counter()
                st = http_get(a.port, "/metrics", src="127.0.6.%d" % i, headers=basic(user, "wrong"))[0]
                self.assertEqual(st, 401)
                return time.perf_counter() - t0
            users = ("cheap", "dear", "nobody")
            samples = {u: [] for u in users}
            for i in range(7):  # interleaved, so a change in load weighs on all alike
                for u in users:
                    samples[u].append(refusal_time(u, i + 1))
            times = {u: statistics.median(samples[u]) for u in users}
            # unpadded, the cheap user's refusals come 64x sooner; 8 leaves
            # room for a loaded machine's noise in medians of 7
            self.assertLess(max(times.values()) / min(times.values()), 8, times)
            self.assertEqual(a.stop(), 0)
            redis.stop()
        finally:
            tmp.cleanup()


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
        # every header the README lists, exactly, on answers of every kind
        want = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "deny",
                "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
        for path, code in (("/metrics", 200), ("/", 200), ("/api/v1/instances", 200), ("/healthz", 200),
                           ("/nope", 404), ("/scrape", 400), ("/scrape?target=nope", 404)):
            status, headers, _ = self.agent.get(path)
            self.assertEqual(status, code, path)
            for h, v in want.items():
                self.assertEqual(headers.get(h), v, (path, h))
        post = self.raw(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        for h, v in want.items():
            self.assertIn(("%s: %s\r\n" % (h, v)).encode(), post)
        self.assertNotIn("listening on", self.agent.log_text())  # loopback: no exposure warning
        self.assertTrue(self.raw(b"GET /metrics\r\n\r\n").startswith(b"HTTP/1.1 400"))  # no version
        self.assertTrue(self.raw(b"GET / HTTP/9.9\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 505"))
        self.assertNotIn(b"200 OK", self.raw(b"GARBAGE\r\n\r\n"))  # closed without an answer
        self.assertTrue(self.raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
                        .startswith(b"HTTP/1.1 431"))
        self.assertTrue(self.raw(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
                        .startswith(b"HTTP/1.1 405"))
        self.assertTrue(self.raw(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .startswith(b"HTTP/1.1 404"))
        # /api/v1/targets names the agent as the client reached it, but only
        # a Host that is an address: a long or odd one is not copied into
        # every target group (20 KB of it made a 6 MB answer from 300)
        listen = "127.0.0.1:%d" % self.agent.port
        for host, want in (("redpulse.example:9121", "redpulse.example:9121"), ("[::1]:9121", "[::1]:9121"),
                           ("a" * 8000, listen), ('x"y', listen), ("x y", listen)):
            out = self.raw(b"GET /api/v1/targets HTTP/1.1\r\nHost: " + host.encode() +
                           b"\r\nConnection: close\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:100])
            groups = json.loads(out.split(b"\r\n\r\n", 1)[1])
            self.assertTrue(groups)
            self.assertEqual({t for g in groups for t in g["targets"]}, {want}, host[:20])

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

    def test_accept_encoding(self):
        """gzip only where Accept-Encoding accepts it (RFC 9110 12.5.3), and
        Vary: Accept-Encoding on every answer of an endpoint that offers it:
        q=0 refuses, "*" speaks for codings not named, a malformed weight
        counts for nothing (the old token match sent gzip to "*, gzip;q=0"
        and to "gzip;q=0.5x", and none to "*;q=0, gzip")."""
        for ae, want in (("gzip", True), ("x, GZIP;q=0.5", True), ("*", True), ("*;q=0, gzip", True),
                         ("deflate, gzip;q=1.0, *;q=0.5", True), ("gzip;q=0", False), ("*;q=0", False),
                         ("*, gzip;q=0", False), ("gzip;q=0.5x", False), ("identity", False), (None, False)):
            status, headers, body = http_get(self.agent.port, "/metrics", headers={"Accept-Encoding": ae} if ae else {})
            self.assertEqual(status, 200, ae)
            self.assertEqual(headers.get("Content-Encoding"), "gzip" if want else None, ae)
            # the answer depends on the header whatever this client sent:
            # a cache keys on it (it came only with gzip accepted)
            self.assertEqual(headers.get("Vary"), "Accept-Encoding", ae)
            if want:
                body = gzip.decompress(body)
            self.assertIn(b"redis_up", body, ae)
        for path in ("/scrape?target=r", "/api/v1/instances"):
            self.assertEqual(http_get(self.agent.port, path)[1].get("Vary"), "Accept-Encoding", path)
        # the header given twice is one list (only the first line was read)
        for lines, want in ((("*", "gzip;q=0"), False), (("identity", "gzip"), True)):
            with socket.create_connection(("127.0.0.1", self.agent.port), timeout=20) as s:
                s.sendall(("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n" %
                           "".join("Accept-Encoding: %s\r\n" % v for v in lines)).encode())
                head = read_all(s).split(b"\r\n\r\n", 1)[0]
            self.assertIn(b" 200 ", head.split(b"\r\n")[0])
            self.assertEqual(b"\r\ncontent-encoding: gzip" in head.lower(), want, lines)


class SourceLimitIpv6(unittest.TestCase):
    """max_connections_per_ip holds for each address, and an IPv6 /64 has
    a limit of its own, the larger of that and half of max_connections: a
    host holds a whole /64 and would otherwise open max_connections from
    addresses of its own (libmicrohttpd's own limit counted /128s only).
    Two /64s of the documentation prefix are routed to lo as local (AnyIP),
    so the test connects from addresses of each (IP_FREEBIND); that needs
    root, which CI has. One HTTP thread, so that libmicrohttpd's own limit
    per thread (max_connections over the threads) is never what closes."""
    PER_ADDR, MAX = 2, 16  # a /64 may hold 8

    def setUp(self):
        if os.geteuid() != 0 or not shutil.which("ip"):
            self.skipTest("adding an AnyIP route to lo needs root and ip(8)")
        try:
            socket.socket(socket.AF_INET6).bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 on lo")
        r = os.urandom(4).hex()
        self.nets = ["2001:db8:%s:%s" % (r[:4], r[4:]), "2001:db8:%s:%x" % (r[:4], (int(r[4:], 16) + 1) % 65536)]
        for n in self.nets:
            subprocess.run(["ip", "-6", "route", "add", "local", n + "::/64", "dev", "lo"], check=True)
            self.addCleanup(subprocess.run, ["ip", "-6", "route", "del", "local", n + "::/64", "dev", "lo"])
        self.tmp = Tmp()
        self.addCleanup(self.tmp.cleanup)
        self.redis = RedisServer(self.tmp.path, "r")
        self.addCleanup(self.redis.stop)
        self.agent = Agent(self.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % self.redis.port}],
                           extra={"http": {"max_connections": self.MAX, "max_connections_per_ip": self.PER_ADDR,
                                           "threads": 1, "idle_timeout": "30s", "request_timeout": "30s"}},
                           log_level="info", host="[::1]")
        self.addCleanup(lambda: self.assertEqual(self.agent.stop(), 0))

    def connect(self, src):
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.IPPROTO_IP, 15, 1)  # IP_FREEBIND: an address of the AnyIP route
        s.bind((src, 0))
        s.settimeout(5)
        s.connect(("::1", self.agent.port))
        self.addCleanup(s.close)
        return s

    def held(self, src):
        """A connection from src that got an answer and stays open: the
        agent has counted it."""
        s = self.connect(src)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        out = b""
        while b"\r\n\r\nok\n" not in out:
            d = s.recv(4096)
            self.assertTrue(d, "a connection under the limits was closed")
            out += d
        self.assertIn(b"200 OK", out)
        return s

    def refusals(self):
        return self.agent.metrics()[("redpulse_http_source_refusals_total", ())]

    def answer(self, src):
        """What a new connection from src is answered, to its end: b"" when
        the agent closed it unanswered (a timeout fails the test)."""
        s = self.connect(src)
        out = b""
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while True:
                d = s.recv(4096)
                if not d:
                    break
                out += d
        except socket.timeout:
            self.fail("no answer and no close from %s within 5 s" % src)
        except (ConnectionResetError, BrokenPipeError):
            pass
        s.close()
        return out

    def assert_refused(self, src, why):
        before = self.refusals()
        self.assertNotIn(b"200 OK", self.answer(src), why)
        self.assertEqual(self.refusals(), before + 1, why)

    def test_address_and_slash_64_limits(self):
        a, b = self.nets
        first = [self.held("%s::1" % a) for _ in range(self.PER_ADDR)]
        self.assert_refused("%s::1" % a, "an address past max_connections_per_ip was served")
        for host in range(2, self.MAX // 2 // self.PER_ADDR + 1):  # the /64 now holds MAX / 2
            [self.held("%s::%x" % (a, host)) for _ in range(self.PER_ADDR)]
        self.assert_refused("%s::ff" % a, "a new address of a full /64 was served")
        self.held("%s::1" % b)  # another /64 has its own
        first[0].close()  # the /64's count goes down with it
        wait_for(lambda: b"200 OK" in self.answer("%s::ff" % a), 5, step=0.2,
                 what="a connection from the /64 served after one of its own closed")


class HeaderDeadline(unittest.TestCase):
    """A client that sends a byte every 0.5 s never lets libmicrohttpd's
    idle timeout (2 s here) fire; before the deadline it held its
    connection, and enough such clients every connection, for ever."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        cls.redis = RedisServer(cls.tmp.path, "r")
        cls.agent = Agent(cls.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % cls.redis.port}],
                          extra={"http": {"idle_timeout": "2s"}}, log_level="info")

    @classmethod
    def tearDownClass(cls):
        stop_class(cls)

    def dribble(self, socks, limit, meanwhile=None):
        """Sends each socket of socks one byte of a request that never ends
        every 0.5 s until the agent closes it or limit seconds pass;
        meanwhile() runs once after 2 s. Returns each socket's seconds until
        it was closed (None: still open), counted from the call."""
        data = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
        t0 = time.monotonic()
        closed = [None] * len(socks)
        i = 0
        while time.monotonic() - t0 < limit and None in closed:
            for k, s in enumerate(socks):
                if closed[k] is None:
                    try:
                        s.sendall(data[i % len(data):][:1])
                    except OSError:
                        closed[k] = time.monotonic() - t0
            i += 1
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                open_ = [s for k, s in enumerate(socks) if closed[k] is None]
                if not open_:
                    break
                ready, _, _ = select.select(open_, [], [], max(0, end - time.monotonic()))
                for s in ready:
                    k = socks.index(s)
                    try:
                        got = s.recv(65536)
                    except OSError:
                        got = b""
                    self.assertEqual(got, b"", "an answer to a request not sent whole")
                    closed[k] = time.monotonic() - t0
            if meanwhile and time.monotonic() - t0 >= 2:
                meanwhile()
                meanwhile = None
        return closed

    def closes(self):
        m = parse_prom(http_get(self.agent.port, "/metrics", src="127.0.0.2")[2].decode())
        return m.get(("redpulse_http_request_deadline_closes_total", ()), 0.0)

    def test_dribbled_headers_are_cut_off(self):
        before = self.closes()
        socks = [socket.create_connection(("127.0.0.1", self.agent.port), timeout=5, source_address=("127.0.8.1", 0))
                 for _ in range(4)]
        answered = []

        def scrape():  # another client is served meanwhile, at once
            t = time.monotonic()
            status, _, body = http_get(self.agent.port, "/metrics", src="127.0.0.2")
            answered.append((status, b"redis_up" in body, time.monotonic() - t))
        try:
            closed = self.dribble(socks, 10, scrape)
        finally:
            for s in socks:
                s.close()
        for t in closed:
            self.assertIsNotNone(t, "a dribbling client still connected after 10 s: %r" % closed)
            self.assertGreaterEqual(t, 4.5, closed)
            self.assertLessEqual(t, 6.5, closed)
        self.assertEqual(len(answered), 1)
        self.assertEqual(answered[0][:2], (200, True))
        self.assertLess(answered[0][2], 1.0)
        self.assertEqual(self.closes() - before, 4)
        # one watchdog thread does it
        pid = self.agent.proc.pid
        names = []
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                names.append(f.read().strip())
        self.assertEqual(names.count("rp-httpwatch"), 1, names)

    def test_dribble_after_an_answer_is_cut_off(self):
        """On a kept-alive connection the next request must be in whole
        within idle_timeout + 5 s of the answer before it."""
        with socket.create_connection(("127.0.0.1", self.agent.port), timeout=5, source_address=("127.0.8.2", 0)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            out = b""
            while not out.endswith(b"ok\n"):
                d = s.recv(65536)
                self.assertTrue(d, out)
                out += d
            self.assertTrue(out.startswith(b"HTTP/1.1 200"), out)
            closed = self.dribble([s], 12)[0]
        self.assertIsNotNone(closed, "a dribbling kept-alive client still connected after 12 s")
        self.assertGreaterEqual(closed, 2 + 5 - 0.5)
        self.assertLessEqual(closed, 2 + 5 + 1.5)

    def test_request_timeout_is_a_setting(self):
        """http.request_timeout sets the deadline (3 s here; 1s-5m)."""
        a = Agent(self.tmp.path, [{"name": "r", "address": "127.0.0.1:%d" % self.redis.port}],
                  extra={"http": {"idle_timeout": "2s", "request_timeout": "3s"}}, log_level="info")
        try:
            with socket.create_connection(("127.0.0.1", a.port), timeout=5, source_address=("127.0.8.3", 0)) as s:
                closed = self.dribble([s], 8)[0]
            self.assertIsNotNone(closed, "still connected after 8 s")
            self.assertGreaterEqual(closed, 2.5)
            self.assertLessEqual(closed, 4.5)
        finally:
            self.assertEqual(a.stop(), 0)
        bad = os.path.join(self.tmp.path, "bad-timeout.json")
        with open(bad, "w") as f:
            json.dump({"http": {"request_timeout": "500ms"},
                       "instances": [{"name": "r", "address": "127.0.0.1:%d" % self.redis.port}]}, f)
        p = subprocess.run([BIN, "--check-config", bad], capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 2)
        self.assertIn("http.request_timeout", p.stderr + p.stdout)


class ExposureWarnings(unittest.TestCase):
    """A non-loopback listen address without TLS or basic auth, and a
    world-readable TLS key, are warned about at start."""

    def start_agent(self, path, cfg):
        """The agent on configuration cfg (written to path), once it serves:
        (process, its log's path)."""
        with open(path, "w") as f:
            json.dump(cfg, f)
        log = path + ".log"
        with open(log, "w") as lf:
            p = subprocess.Popen([BIN, "--config", path], stdout=lf, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "serving http" in read(log) or p.poll() is not None, 20, what="agent started")
        except AssertionError:
            self.stop_agent(p, log)
            raise
        return p, log

    def stop_agent(self, p, log):
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0, read(log))

    def run_agent(self, tmp, cfg):
        path = os.path.join(tmp.path, "w-%d.json" % cfg["listen_port"])
        port = cfg.pop("listen_port")
        cfg["listen"] = "0.0.0.0:%d" % port
        p, log = self.start_agent(path, cfg)
        self.stop_agent(p, log)
        return read(log)

    def test_warnings(self):
        tmp = Tmp()
        try:
            tls = make_tls(tmp.path)
            inst = [{"name": "r", "address": "127.0.0.1:1"}]
            port = free_port()
            log = self.run_agent(tmp, {"listen_port": port, "instances": inst})
            self.assertIn("listening on 0.0.0.0:%d without TLS or basic auth" % port, log)
            key = os.path.join(tmp.path, "loose.key")
            shutil.copy(tls["key"], key)
            os.chmod(key, 0o644)
            port = free_port()
            log = self.run_agent(tmp, {"listen_port": port, "instances": inst,
                                       "http": {"tls": {"cert_file": tls["cert"], "key_file": key}}})
            self.assertIn('TLS key file "%s" is world-readable' % key, log)
            self.assertIn("listening on 0.0.0.0:%d without basic auth" % port, log)
            os.chmod(key, 0o600)
            port = free_port()
            log = self.run_agent(tmp, {"listen_port": port, "instances": inst,
                                       "http": {"tls": {"cert_file": tls["cert"], "key_file": key},
                                                "basic_auth_users": {"p": bcrypt("pw")}}})
            self.assertNotIn("world-readable", log)
            self.assertNotIn("listening on", log)
        finally:
            tmp.cleanup()

    def test_warning_on_reload(self):
        """A reload that moves the listener off loopback, still without TLS
        or basic auth, warns as a start does (it said nothing)."""
        tmp = Tmp()
        try:
            port = free_port()
            path = os.path.join(tmp.path, "reload.json")
            cfg = {"listen": "127.0.0.1:%d" % port, "instances": [{"name": "r", "address": "127.0.0.1:1"}],
                   "alerts": {"state_dir": os.path.join(tmp.path, "state")}}
            p, log = self.start_agent(path, cfg)
            try:
                self.assertNotIn("listening on", read(log))
                cfg["listen"] = "0.0.0.0:%d" % free_port()
                with open(path + ".new", "w") as f:
                    json.dump(cfg, f)
                os.replace(path + ".new", path)
                p.send_signal(signal.SIGHUP)
                wait_for(lambda: "with the new settings" in read(log) or p.poll() is not None, 20, what="reloaded")
                self.assertIn("listening on %s without TLS or basic auth" % cfg["listen"], read(log))
            finally:
                self.stop_agent(p, log)
        finally:
            tmp.cleanup()


class SighupAtStart(unittest.TestCase):
    """A SIGHUP while the agent starts (here: while it makes the dummy hash
    for basic auth at cost 12, a quarter of a second) must not kill it: the
    signals wait, blocked, until the loop's handlers are in place."""

    def test_sighup_during_start(self):
        tmp = Tmp()
        try:
            port = free_port()
            cfg = os.path.join(tmp.path, "hup.json")
            with open(cfg, "w") as f:
                json.dump({"listen": "127.0.0.1:%d" % port, "instances": [{"name": "r", "address": "127.0.0.1:1"}],
                           "http": {"basic_auth_users": {"p": bcrypt("pw", rounds=4096)}}}, f)
            log = os.path.join(tmp.path, "hup.log")
            with open(log, "w") as lf:
                p = subprocess.Popen([BIN, "--config", cfg], stdout=lf, stderr=subprocess.STDOUT)
            try:
                def hup_blocked():
                    # blocked while the configuration loads, then caught by
                    # the loop's handler (the blocked window alone is a few
                    # ms in an optimized build: a poll could miss it)
                    with open("/proc/%d/status" % p.pid) as f:
                        st = {ln.split(":")[0]: int(ln.split()[1], 16) for ln in f if ln.startswith(("SigBlk", "SigCgt"))}
                    return (st["SigBlk"] | st["SigCgt"]) & (1 << (signal.SIGHUP - 1))
                wait_for(hup_blocked, 10, step=0.001, what="SIGHUP blocked or caught while starting")
                sent = 0
                while "serving http" not in read(log):
                    self.assertIsNone(p.poll(), "killed by a SIGHUP during start:\n" + read(log))
                    p.send_signal(signal.SIGHUP)
                    sent += 1
                    time.sleep(0.005)
                self.assertGreater(sent, 5)
                wait_for(lambda: "SIGHUP: reloading" in read(log), 5, what="the SIGHUP handled once the loop runs")
                self.assertIsNone(p.poll())
            finally:
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(10), 0, read(log)[-3000:])
        finally:
            tmp.cleanup()


class LabelCollisions(unittest.TestCase):
    """A user label with a name redpulse writes itself would give Prometheus
    a duplicate label name and fail the whole scrape: every label name a
    real scrape carries is refused in the configuration, with its place."""

    def test_every_scraped_label_name_is_refused(self):
        tmp = Tmp()
        try:
            master = RedisServer(tmp.path, "m", args=["--enable-debug-command", "yes",
                                                      "--latency-monitor-threshold", "10"])
            replica = RedisServer(tmp.path, "s", args=["--replicaof", "127.0.0.1", str(master.port)])
            c = master.client()
            c.cmd("SET", "k", "v")
            c.cmd("EXPIRE", "k", "100")
            try:
                c.cmd("NOSUCHCOMMAND")
            except RuntimeError:
                pass  # an error reply: errorstats
            c.cmd("DEBUG", "SLEEP", "0.05")  # a latency spike: LATENCY LATEST
            wait_for(lambda: c.info("replication").get("connected_slaves") == "1", 10, what="replica connected")
            c.close()
            a = Agent(tmp.path, [{"name": "m", "address": "127.0.0.1:%d" % master.port, "latency_interval": "1s",
                                  "config_interval": "1s", "labels": {"env": "test"}},
                                 {"name": "down", "address": "127.0.0.1:1"}],
                      defaults={"interval": "500ms", "timeout": "400ms"},
                      extra={"http": {"basic_auth_users": {"p": bcrypt("pw")}}})
            a.headers = basic("p", "pw")

            def scrape():
                status, _, body = a.get("/metrics")
                text = body.decode()
                if status == 200 and "redis_latency_spike_last{" in text and "redis_command_calls_per_second{" in text \
                        and "redis_connected_slave_lag_bytes{" in text and "redis_config_info{" in text:
                    return text
                return None
            text = wait_for(scrape, 15, step=0.2, what="a scrape with every kind of family")
            self.assertEqual(a.stop(), 0)
            names = set()
            for line in text.splitlines():
                if line.startswith("#") or "{" not in line:
                    continue
                labels = line[line.index("{") + 1:line.rindex("}")]
                names.update(re.findall(r'(?:^|,)([a-zA-Z_][a-zA-Z0-9_]*)="', re.sub(r'\\.|"[^"]*"', '""', labels)))
            names.discard("env")  # the test's own user label
            self.assertGreaterEqual(len(names), 20, names)
            # one configuration with all of them as labels: each refused
            labels = {n: "x" for n in sorted(names)}
            cfg_path = os.path.join(tmp.path, "labels.json")
            with open(cfg_path, "w") as f:
                json.dump({"instances": [{"name": "r", "address": "127.0.0.1:6379", "labels": labels}]}, f, indent=1)
            p = subprocess.run([BIN, "--check-config", cfg_path], capture_output=True, text=True, timeout=20)
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            lines = (p.stdout + p.stderr).splitlines()
            for n in names:
                pat = r'^instances\[0\]\.labels\.%s \(line \d+, column \d+\): label name "%s" is reserved' % (n, n)
                self.assertTrue(any(re.match(pat, ln) for ln in lines), (n, lines))
            self.assertIn("%d errors" % len(names), p.stdout + p.stderr)
            # and the listen address in two places is one error, located
            with open(cfg_path, "w") as f:
                f.write('{"listen": "127.0.0.1:1",\n "http": {"listen": "127.0.0.1:2"},\n'
                        ' "instances": [{"name": "r", "address": "127.0.0.1:6379"}]}\n')
            p = subprocess.run([BIN, "--check-config", cfg_path], capture_output=True, text=True, timeout=20)
            self.assertEqual(p.returncode, 2)
            self.assertIn('http.listen (line 2, column 11): "listen" is also set at the top level (line 1)', p.stdout + p.stderr)
            replica.stop()
            master.stop()
        finally:
            tmp.cleanup()


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
