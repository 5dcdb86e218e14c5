"""Test harness: real redis-server processes, the redpulse binary, HTTP and
RESP helpers. Everything listens on loopback ports chosen at run time and
lives in a temporary directory removed at the end."""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

BIN = os.environ.get("REDPULSE_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "redpulse")
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


_LIVE = []  # every process started here; killed at exit if a test left it running


@atexit.register
def _kill_leftovers():
    for p in _LIVE:
        if p.poll() is None:
            p.kill()
            p.wait()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A loopback port free now, below the ephemeral range: a port the
    kernel hands out for bind(0) can be taken by any outgoing connection
    (of this machine's other test runs too) before the server binds it,
    and the server then fails to start."""
    import random
    low = _ephemeral_low()
    for _ in range(50):
        port = random.randrange(max(1024, low - 12000), low)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def info_calls(r):
    """How many INFO commands RedisServer r has served (its commandstats)."""
    c = r.client()
    s = c.cmd("INFO", "commandstats")
    c.close()
    for line in s.splitlines():
        if line.startswith("cmdstat_info:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (which may hold
    spaces and parentheses): [0] the state, [7] minor page faults, [11] and
    [12] user and system CPU time in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    """User + system CPU time of pid so far, in seconds."""
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main_thread_switches(pid):
    """Context switches (voluntary + involuntary) of pid's main thread: its
    event loop's wake-ups."""
    n = 0
    with open("/proc/%d/task/%d/status" % (pid, pid)) as f:
        for line in f:
            if "ctxt_switches" in line:
                n += int(line.split()[1])
    return n


def wait_for(pred, timeout, step=0.05, what="condition"):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - keep polling until the deadline
            last = e
        time.sleep(step)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


# ---- a minimal RESP client (for the tests' own view of the server) ------

def _read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    t, rest = line[:1], line[1:].rstrip(b"\r\n")
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode("utf-8", "replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RuntimeError("bad reply %r" % line)


class Resp:
    def __init__(self, port=None, unix=None, password=None, user=None, tls=None):
        if unix:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.connect(unix)
        else:
            self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls:
            import ssl
            ctx = ssl.create_default_context(cafile=tls)
            self.s = ctx.wrap_socket(self.s, server_hostname="127.0.0.1")
        self.f = self.s.makefile("rb")
        if password:
            self.cmd(*(["AUTH", user, password] if user else ["AUTH", password]))

    @staticmethod
    def _encode(args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        return out

    def send(self, *args):
        """Sends one command without reading its reply (read() reads it)."""
        self.s.sendall(self._encode(args))

    def read(self):
        return _read_reply(self.f)

    def cmd(self, *args):
        self.send(*args)
        return self.read()

    def pipeline(self, cmds):
        self.s.sendall(b"".join(self._encode(args) for args in cmds))
        return [self.read() for _ in cmds]

    def info(self, section="all"):
        d = {}
        for line in self.cmd("INFO", section).splitlines():
            if line and not line.startswith("#") and ":" in line:
                k, v = line.split(":", 1)
                d[k] = v
        return d

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class RedisServer:
    """A real redis-server on a free loopback port (and/or a unix socket)."""

    def __init__(self, tmp, name, args=(), unix=False, tls=None, port=None, conf=None):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self._auto_port = not port  # a port of our choosing may be taken meanwhile: pick another
        self.unix = os.path.join(self.dir, "redis.sock") if unix else None
        self.tls = tls
        self.extra = list(args)
        self.conf = conf
        self.proc = None
        self.start()

    def argv(self):
        a = [REDIS] + ([self.conf] if self.conf else []) + ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")]
        if self.tls:
            a += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.tls["cert"],
                  "--tls-key-file", self.tls["key"], "--tls-ca-cert-file", self.tls["ca"],
                  "--tls-auth-clients", "no"]
        else:
            a += ["--port", str(self.port)]
        if self.unix:
            a += ["--unixsocket", self.unix, "--unixsocketperm", "700"]
        return a + self.extra

    def start(self):
        for attempt in range(3):
            self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _LIVE.append(self.proc)
            # answers, or exited (a port free_port() found free can be bound
            # by another process before redis-server binds it)
            wait_for(lambda: self.proc.poll() is not None or self._ping(), 10,
                     what="redis-server %s to answer" % self.port)
            if self.proc.poll() is None:
                return
            log = os.path.join(self.dir, "redis.log")
            tail = open(log, errors="replace").read()[-300:] if os.path.exists(log) else ""
            if not self._auto_port or "Address already in use" not in tail or attempt == 2:
                raise AssertionError("redis-server on port %s exited with %s: %s" % (self.port, self.proc.returncode, tail))
            self.port = free_port()

    def _ping(self):
        c = self.client()
        try:
            return c.cmd("PING") == "PONG"
        except RuntimeError as e:  # it answers; it just wants a password
            return str(e).startswith("NOAUTH")
        finally:
            c.close()

    def client(self, **kw):
        if self.tls:
            return Resp(self.port, tls=self.tls["ca"], **kw)
        if self.unix and "--port" in self.extra:
            return Resp(unix=self.unix, **kw)
        return Resp(self.port, **kw)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_tls(tmp):
    """A throwaway CA and a server certificate for 127.0.0.1/localhost."""
    d = os.path.join(tmp, "tls")
    os.makedirs(d, exist_ok=True)

    def run(*a):
        subprocess.run(a, cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=redpulse-test-ca")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.crt", "-days", "2", "-extfile", "ext")
    # a second, unrelated CA: verification against it must fail
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
        "other.crt", "-days", "2", "-subj", "/CN=other-ca")
    # a client certificate from the CA, and one from the other CA
    for name, ca in (("client", "ca"), ("rogue", "other")):
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/CN=" + name)
        run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2")
    # a second server certificate (renewal) with its own serial
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv2.key", "-out", "srv2.csr",
        "-subj", "/CN=localhost-renewed")
    run("openssl", "x509", "-req", "-in", "srv2.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv2.crt", "-days", "2", "-extfile", "ext")
    for f in os.listdir(d):
        if f.endswith(".key"):
            os.chmod(os.path.join(d, f), 0o600)
    j = lambda f: os.path.join(d, f)  # noqa: E731
    return {"ca": j("ca.crt"), "cert": j("srv.crt"), "key": j("srv.key"), "other_ca": j("other.crt"),
            "client_cert": j("client.crt"), "client_key": j("client.key"),
            "rogue_cert": j("rogue.crt"), "rogue_key": j("rogue.key"),
            "cert2": j("srv2.crt"), "key2": j("srv2.key")}


class Agent:
    """The redpulse binary with a generated configuration."""

    def __init__(self, tmp, instances, defaults=None, extra=None, env=None, log_level="debug", scheme="http",
                 ssl_context=None, preexec_fn=None, host="127.0.0.1"):
        self.port = free_port()
        self.host = host  # where it listens and is asked: an IPv4 address or "[IPv6]"
        self.scheme = scheme
        self.ssl_context = ssl_context
        self.headers = {}
        self.cfg = {"listen": "%s:%d" % (host, self.port), "instances": instances}
        if defaults:
            self.cfg["defaults"] = defaults
        if extra:
            self.cfg.update(extra)
        # alert state of this agent stays in the test's directory (not /var/lib/redpulse)
        self.cfg.setdefault("alerts", {}).setdefault("state_dir", os.path.join(tmp, "state-%d" % self.port))
        self.path = os.path.join(tmp, "redpulse-%d.json" % self.port)
        with open(self.path, "w") as f:
            json.dump(self.cfg, f, indent=2)
        self.log = os.path.join(tmp, "redpulse-%d.log" % self.port)
        e = dict(os.environ)
        e.update(env or {})
        self.logf = open(self.log, "w")
        level = ["--log-level", log_level] if log_level else []  # None: the file's log_level rules
        self.proc = subprocess.Popen([BIN, "--config", self.path] + level,
                                     stdout=self.logf, stderr=subprocess.STDOUT, env=e, preexec_fn=preexec_fn)
        _LIVE.append(self.proc)
        # our own process must be the one answering (a port picked by
        # free_port() can be taken by someone else before we bind it)
        wait_for(lambda: self.proc.poll() is None and self.get("/healthz")[0] == 200, 10, what="redpulse /healthz")
        time.sleep(0.05)
        if self.proc.poll() is not None:
            raise AssertionError("redpulse exited %s:\n%s" % (self.proc.returncode, self.log_text()))

    def url(self, path):
        return "%s://%s:%d%s" % (self.scheme, self.host, self.port, path)

    def get(self, path, headers=None, method="GET", context=None):
        h = dict(self.headers)
        h.update(headers or {})
        req = urllib.request.Request(self.url(path), headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10, context=context or self.ssl_context) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def metrics(self, path="/metrics"):
        status, _, body = self.get(path)
        assert status == 200, (status, body)
        return parse_prom(body.decode())

    def instance(self, name):
        status, _, body = self.get("/api/v1/instances/" + name)
        assert status == 200, (status, body)
        return json.loads(body)

    def instance_list(self):
        status, _, body = self.get("/api/v1/instances")
        assert status == 200, (status, body)
        return json.loads(body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
                raise AssertionError("redpulse did not stop on SIGTERM")
        else:
            rc = self.proc.returncode
        self.logf.close()
        return rc

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def log_text(self):
        with open(self.log) as f:
            return f.read()


def parse_prom(text):
    """{(name, ((label, value), ...)): float} from exposition text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            labels_s, value = rest.rsplit("} ", 1)
            labels = []
            i = 0
            while i < len(labels_s):
                eq = labels_s.index("=", i)
                k = labels_s[i:eq]
                j = eq + 2
                v = ""
                while labels_s[j] != '"':
                    if labels_s[j] == "\\":
                        j += 1
                        v += {"n": "\n"}.get(labels_s[j], labels_s[j])
                    else:
                        v += labels_s[j]
                    j += 1
                labels.append((k, v))
                i = j + 2 if j + 1 < len(labels_s) and labels_s[j + 1] == "," else j + 1
        else:
            name, value = line.split(" ", 1)
            labels = []
        out[(name, tuple(labels))] = float(value)
    return out


def series(m, name, **want):
    """Values of series `name` whose labels include `want`."""
    res = []
    for (n, labels), v in m.items():
        if n != name:
            continue
        d = dict(labels)
        if all(d.get(k) == str(val) for k, val in want.items()):
            res.append((d, v))
    return res


def value(m, name, **want):
    r = series(m, name, **want)
    assert len(r) == 1, "expected one %s%r, got %r" % (name, want, r)
    return r[0][1]


def split_window(j):
    """The wall-clock span the commandstats figures of poll j (the
    write/read split, per-command rates, rejected calls) were computed over:
    commandstats come every commandstats_interval, and the polls in between
    keep the last figures."""
    d = j["derived"]
    if d is None or d["commandstats_age_seconds"] is None:
        return float("inf"), float("-inf")  # no split on this poll
    t1 = j["last_poll_timestamp"] - d["commandstats_age_seconds"]
    return t1 - d["commandstats_interval_seconds"], t1


def assert_rate_near(tc, g, j, got, kind="w", rel=0.05):
    """got, poll j's rate of kind over its commandstats span (split_window),
    within rel of what generator g did over that span. Where in each poll
    the server ran INFO is known only within the poll's duration (between
    the send and last_poll_timestamp; the earlier poll's duration taken as
    this one's), and a batch is logged when its replies are back, up to a
    tick or so later: each edge of the span is that uncertain, so got must
    be within rel of the least and the most the truth can be. (Under the
    sanitizers a poll took 40 ms: four batches of the generator's 80 a
    second, exactly 5% at a one-second span, two CI runs out of eight.)"""
    t0, t1 = split_window(j)
    slack = j["last_poll_duration_seconds"] + g.tick
    lo, hi = g.rate_bounds(t0, t1, slack, kind)
    tc.assertTrue(lo * (1 - rel) < got < hi * (1 + rel), (kind, got, lo, hi, slack))


def promtool_check(text):
    require_tool("promtool")
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
    return p.returncode, (p.stdout + p.stderr).decode()


class Tmp:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="redpulse-test-")

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


class TmpTestCase(unittest.TestCase):
    """A test with a directory of its own (self.tmp) and self.cleanups,
    called last first at the end whatever happened."""

    def setUp(self):
        self.tmp = Tmp()
        self.cleanups = []

    def tearDown(self):
        for f in reversed(self.cleanups):
            f()
        self.tmp.cleanup()


# ---- skips that cannot hide -------------------------------------------------
# A test that needs a tool the machine lacks is skipped where that is
# acceptable (a developer's laptop) and fails under CI (CI=true), where every
# tool must be installed. A program with skipped tests exits SKIP_RC, which
# tests/CMakeLists.txt declares as CTest's SKIP_RETURN_CODE: the skip shows
# as "Skipped" in the CTest summary instead of passing silently.

SKIP_RC = 77


def require(ok, what):
    """Skips the calling test (fails it under CI=true) unless ok; what names
    the missing thing ("promtool is not installed")."""
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        raise AssertionError("%s (CI=true: nothing may be skipped)" % what)
    import unittest
    raise unittest.SkipTest(what)


def require_tool(name):
    """The path of executable `name`; skips (fails under CI=true) without it."""
    path = shutil.which(name)
    require(path, "%s is not installed" % name)
    return path


def main():
    """unittest.main() for the test programs: exit 0 when everything ran and
    passed, 1 on any failure, SKIP_RC when all passed but some were skipped."""
    import sys
    import unittest
    prog = unittest.main(exit=False)
    r = prog.result
    if not r.wasSuccessful():
        sys.exit(1)
    if r.skipped:
        for test, why in r.skipped:
            print("SKIPPED %s: %s" % (test.id(), why), file=sys.stderr)
        sys.exit(SKIP_RC)
    sys.exit(0)
