"""Helpers shared by bench.py, ab.py and collectd_faults.py: the processes they
start (redis-server, redpulse, redis_exporter, collectd), what they read of
them (CPU, RSS, INFO) and how they time HTTP requests. Every process started
here is killed at exit (cleanup())."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Resp, free_port, wait_for  # noqa: E402,F401

CLK = os.sysconf("SC_CLK_TCK")
TMP = tempfile.mkdtemp(prefix="redpulse-bench-")
procs = []


def cpu_s(pid):
    """CPU time of every thread of pid, in seconds. The scheduler's own
    count (/proc/PID/task/*/schedstat, ns) where there is one: at 10 polls a
    second the 10 ms ticks of utime + stime are too coarse for a window of a
    few seconds. Threads that ended are not counted there: the three agents
    measured keep theirs."""
    total, seen = 0, False
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    total += int(f.read().split()[0])
                    seen = True
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    return total / 1e9 if seen else cpu_s_process(pid)


def cpu_s_process(pid):
    """CPU time of pid as the kernel counts it for the whole process
    (utime + stime, 10 ms ticks), threads that ended included. For windows
    long enough for the ticks (the scale rows: seconds of CPU): the sum of
    the live threads' schedstat lost or gained whole threads' lifetimes when
    one came or went between the two reads (an "advisor off" row read 5x
    its process figure in every run)."""
    with open("/proc/%d/stat" % pid) as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12])) / CLK


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(argv, **kw):
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def redis(port, maxclients=10000):
    d = os.path.join(TMP, "redis-%d" % port)
    os.makedirs(d, exist_ok=True)
    p = start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", d, "--maxclients", str(maxclients), "--logfile", os.path.join(d, "log")])
    # the server answering is this one (not another run's on a port taken meanwhile)
    wait_for(lambda: p.poll() is None and info(port)["process_id"] == str(p.pid), 10, what="redis on %d" % port)
    return p


def free_ports(n):
    """n distinct free loopback ports (free_port() alone may repeat one)."""
    out = []
    while len(out) < n:
        pt = free_port()
        if pt not in out:
            out.append(pt)
    return out


def info(port):
    c = Resp(port)
    i = c.info()
    c.close()
    return i


def redis_cpu(i):
    return float(i["used_cpu_sys"]) + float(i["used_cpu_user"])


def get(url, headers=None, timeout=60):
    t0 = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
        body = r.read()
    return time.perf_counter() - t0, body


def ready(base):
    """True once redpulse at base answers /readyz with 200 (every instance
    polled once); until then False for its 503, and any other failure
    raised (wait_for keeps it as the last thing seen)."""
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=10) as r:
            return r.status == 200
    except urllib.error.HTTPError as e:
        if e.code == 503:
            return False
        raise


def floor_bin(redpulse_bin):
    """The bare-loop floor program (poll_floor) built beside redpulse_bin
    (a Release build with -DREDPULSE_BENCH=ON), or None."""
    b = os.path.join(os.path.dirname(redpulse_bin), "poll_floor")
    return b if os.path.exists(b) else None


def floor_us(floor, rport, seconds, cs_every=50):
    """The bare-loop floor (floor: floor_bin()'s program): the loop's own
    CPU in µs per poll, polling the server at rport 100 times a second on
    one connection for seconds, commandstats asked one poll in cs_every
    (the agent's ten connections at 100 ms each ask once in 50 polls, every
    5 s: the same share)."""
    out = subprocess.run([floor, str(rport), "10", str(int(seconds * 100)), str(cs_every)],
                         capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    return float(out.split()[1])


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def redpulse(binary, instances, interval, extra=None, timeout="2s", env=None):
    """redpulse on a free port with these instances ({"name", "address"});
    env: its environment, when not this one's."""
    port = free_port()
    cfg = {"listen": "127.0.0.1:%d" % port, "defaults": {"interval": interval, "timeout": timeout},
           "http": {"max_connections": 256}, "instances": instances}
    cfg.update(extra or {})
    path = os.path.join(TMP, "redpulse-%d.json" % port)
    with open(path, "w") as f:
        json.dump(cfg, f)
    p = start([binary, "--config", path, "--log-level", "error"], env=env)
    wait_for(lambda: p.poll() is None and get("http://127.0.0.1:%d/healthz" % port)[0] >= 0, 10, what="redpulse")
    return p, port


def exporter(rport):
    """redis_exporter (Debian's prometheus-redis-exporter) with its own
    instance at rport; other instances are read with /scrape?target=."""
    eport = free_port()
    e = start(["prometheus-redis-exporter", "--redis.addr", "redis://127.0.0.1:%d" % rport,
               "--web.listen-address", "127.0.0.1:%d" % eport])
    wait_for(lambda: get("http://127.0.0.1:%d/metrics" % eport)[0] >= 0, 10, what="redis_exporter")
    return e, eport


def collectd(nodes, interval_s, timeout_ms=2000):
    """collectd 5.12 (Debian's collectd-core) with only the redis plugin (one
    <Node> per (name, port)) and write_prometheus, ReadThreads left at its
    default (5), every plugin read each interval_s. Returns (process, port
    of write_prometheus)."""
    port = free_port()
    d = os.path.join(TMP, "collectd-%d" % port)
    os.makedirs(d)
    conf = ['Hostname "bench"', "FQDNLookup false", 'BaseDir "%s"' % d, 'PIDFile "%s/pid"' % d,
            'TypesDB "/usr/share/collectd/types.db"', "Interval %g" % interval_s,
            "LoadPlugin redis", "LoadPlugin write_prometheus", "<Plugin redis>"]
    for name, rport in nodes:
        conf += ['  <Node "%s">' % name, '    Host "127.0.0.1"', '    Port "%d"' % rport,
                 "    Timeout %d" % timeout_ms, "  </Node>"]
    conf += ["</Plugin>", "<Plugin write_prometheus>", '  Host "127.0.0.1"', '  Port "%d"' % port, "</Plugin>"]
    path = os.path.join(d, "collectd.conf")
    with open(path, "w") as f:
        f.write("\n".join(conf) + "\n")
    p = start(["collectd", "-C", path, "-f"])
    wait_for(lambda: p.poll() is None and get("http://127.0.0.1:%d/metrics" % port)[0] >= 0, 10, what="collectd")
    return p, port


def samples(body, label):
    """Non-comment lines of a Prometheus text body that carry label (e.g.
    'target="r0"'): the samples exposed for one instance."""
    return sum(1 for line in body.decode().splitlines() if line and line[0] != "#" and label in line)


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(TMP, ignore_errors=True)
