#!/usr/bin/env python3
"""The figures behind the README's performance table (see run.sh).

Every figure is measured in this run on this machine: CPU from
/proc/PID/stat (utime + stime), RSS from /proc/PID/status, Redis CPU from the
server's own used_cpu_sys + used_cpu_user, Redis commands and connections
from INFO deltas, latencies by timing HTTP requests from this process."""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Resp, free_port, wait_for  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
BIN, OUT = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix="redpulse-bench-")
procs = []


def cpu_s(pid):
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


def redis(port, maxclients=10000):
    d = os.path.join(TMP, "redis-%d" % port)
    os.makedirs(d)
    p = start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", d, "--maxclients", str(maxclients), "--logfile", os.path.join(d, "log")])
    wait_for(lambda: Resp(port).cmd("PING") == "PONG", 10, what="redis")
    return p


def info(port):
    c = Resp(port)
    i = c.info()
    c.close()
    return i


def redis_cpu(i):
    return float(i["used_cpu_sys"]) + float(i["used_cpu_user"])


def get(url, headers=None):
    t0 = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=60) as r:
        body = r.read()
    return time.perf_counter() - t0, body


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def agent(instances, interval, extra=None, timeout="2s"):
    port = free_port()
    cfg = {"listen": "127.0.0.1:%d" % port, "defaults": {"interval": interval, "timeout": timeout},
           "http": {"max_connections": 256}, "instances": instances}
    cfg.update(extra or {})
    path = os.path.join(TMP, "redpulse-%d.json" % port)
    with open(path, "w") as f:
        json.dump(cfg, f)
    p = start([BIN, "--config", path, "--log-level", "error"])
    wait_for(lambda: p.poll() is None and get("http://127.0.0.1:%d/healthz" % port)[0] >= 0, 10, what="redpulse")
    return p, port


ROUNDS, WINDOW = 3, 20.0  # interleaved rounds, seconds per measured window


def window(pid, rport, idle_per_s, work):
    """CPU of pid and of the Redis server (idle share removed), commands and
    connections over one measured window in which work() runs."""
    i0, c0, t0 = info(rport), cpu_s(pid), time.monotonic()
    work()
    i1, c1, t1 = info(rport), cpu_s(pid), time.monotonic()
    return {"cpu": c1 - c0, "t": t1 - t0,
            "redis_cpu": max(0.0, redis_cpu(i1) - redis_cpu(i0) - idle_per_s * (t1 - t0)),
            # the two INFO calls of window() itself are one command and no connection apart
            "cmds": int(i1["total_commands_processed"]) - int(i0["total_commands_processed"]) - 1,
            "conns": int(i1["total_connections_received"]) - int(i0["total_connections_received"]) - 1}


def median_per(ws, key, counts):
    return statistics.median(w[key] / n for w, n in zip(ws, counts))


def head_to_head():
    rport = free_port()
    redis(rport)
    rows = []
    # the server's own idle CPU (cron), subtracted from every window below
    i0 = info(rport)
    time.sleep(30)
    i1 = info(rport)
    idle_per_s = (redis_cpu(i1) - redis_cpu(i0)) / 30
    # ---- redpulse: the instance configured K times (K connections), each
    # polled every 100 ms: K times the polls of one, for a CPU figure above
    # the 10 ms resolution of /proc/PID/stat
    K = 10
    p, port = agent([{"name": "r" if k == 0 else "r%d" % k, "address": "127.0.0.1:%d" % rport} for k in range(K)],
                    "100ms", timeout="80ms")
    time.sleep(3)  # connect, COMMAND INFO, first CONFIG GET
    # ---- redis_exporter: one scrape = one poll of the instance
    eport = free_port()
    e = start(["prometheus-redis-exporter", "--redis.addr", "redis://127.0.0.1:%d" % rport,
               "--web.listen-address", "127.0.0.1:%d" % eport])
    wait_for(lambda: get("http://127.0.0.1:%d/metrics" % eport)[0] >= 0, 10, what="redis_exporter")
    for _ in range(10):
        get("http://127.0.0.1:%d/metrics" % eport)
    floor_bin = os.path.join(os.path.dirname(BIN), "poll_floor")
    has_floor = os.path.exists(floor_bin)
    n_scrapes = int(WINDOW * 10)
    lat = []

    def scrape_loop():  # the same cadence as one redpulse connection's polls
        nxt = time.monotonic()
        for _ in range(n_scrapes):
            lat.append(get("http://127.0.0.1:%d/metrics" % eport)[0])
            nxt += 0.1
            time.sleep(max(0, nxt - time.monotonic()))

    # The machine's speed drifts by a third over minutes: the three are
    # measured in turns, ROUNDS times, and each figure is the median. While
    # one is measured the agent is stopped (SIGSTOP) and the exporter idle.
    rw, ew, floors = [], [], []
    for _ in range(ROUNDS):
        rw.append(window(p.pid, rport, idle_per_s, lambda: time.sleep(WINDOW)))
        p.send_signal(signal.SIGSTOP)
        ew.append(window(e.pid, rport, idle_per_s, scrape_loop))
        if has_floor:  # the same 100 polls a second as the agent, on one connection
            out = subprocess.run([floor_bin, str(rport), "10", str(int(WINDOW * 100))], capture_output=True,
                                 text=True, timeout=120).stdout
            floors.append(float(out.split()[1]) / 1e6)
        p.send_signal(signal.SIGCONT)
        time.sleep(1)  # ticks skipped while stopped are not polls: let the schedule settle
    rpolls = [K * w["t"] / 0.1 for w in rw]
    rp = {"cpu_per": median_per(rw, "cpu", rpolls), "redis_cpu_per": median_per(rw, "redis_cpu", rpolls),
          "cmds_per": sum(w["cmds"] for w in rw) / sum(rpolls), "conns_per": sum(w["conns"] for w in rw) / sum(rpolls),
          "polls": sum(rpolls)}
    ex = {"cpu_per": median_per(ew, "cpu", [n_scrapes] * ROUNDS),
          "redis_cpu_per": median_per(ew, "redis_cpu", [n_scrapes] * ROUNDS),
          "cmds_per": sum(w["cmds"] for w in ew) / (n_scrapes * ROUNDS),
          "conns_per": sum(w["conns"] for w in ew) / (n_scrapes * ROUNDS),
          "m50": pct(lat, 50), "m99": pct(lat, 99)}
    floor = statistics.median(floors) if floors else None
    p.terminate()
    p.wait()
    lat_s = [get("http://127.0.0.1:%d/scrape?target=redis://127.0.0.1:%d" % (eport, rport))[0] for _ in range(100)]
    ex.update(s50=pct(lat_s, 50), s99=pct(lat_s, 99), rss=rss_kib(e.pid))
    e.terminate()
    e.wait()
    # scrape latency and RSS with the instance configured once
    p, port = agent([{"name": "r", "address": "127.0.0.1:%d" % rport}], "100ms", timeout="80ms")
    time.sleep(2)
    lat_m = [get("http://127.0.0.1:%d/metrics" % port)[0] for _ in range(500)]
    lat_s = [get("http://127.0.0.1:%d/scrape?target=r" % port)[0] for _ in range(500)]
    rp.update(m50=pct(lat_m, 50), m99=pct(lat_m, 99), s50=pct(lat_s, 50), s99=pct(lat_s, 99), rss=rss_kib(p.pid))
    p.terminate()
    p.wait()
    ms = lambda x: "%.3f ms" % (x * 1e3)  # noqa: E731
    us = lambda x: "%.1f µs" % (x * 1e6)  # noqa: E731
    rows.append(("agent CPU per instance-poll (redpulse) / per scrape (redis_exporter)", us(rp["cpu_per"]), us(ex["cpu_per"]),
                 "1/%.0f" % (ex["cpu_per"] / rp["cpu_per"]) if rp["cpu_per"] else "-"))
    if floor:
        rows.append(("floor: CPU of a bare loop that only sleeps, sends INFO and reads the reply, per poll",
                     us(floor), "", "redpulse above it: %s" % us(rp["cpu_per"] - floor)))
    rows.append(("Redis CPU per poll / scrape", us(rp["redis_cpu_per"]), us(ex["redis_cpu_per"]),
                 "1/%.1f" % (ex["redis_cpu_per"] / rp["redis_cpu_per"]) if rp["redis_cpu_per"] else "-"))
    rows.append(("Redis commands per poll / scrape", "%.3f" % rp["cmds_per"], "%.2f" % ex["cmds_per"], ""))
    rows.append(("new Redis connections per poll / scrape", "%.3f" % rp["conns_per"], "%.2f" % ex["conns_per"], ""))
    rows.append(("/metrics latency p50 / p99 (1 instance)", "%s / %s" % (ms(rp["m50"]), ms(rp["m99"])),
                 "%s / %s" % (ms(ex["m50"]), ms(ex["m99"])), ""))
    rows.append(("/scrape?target= latency p50 / p99", "%s / %s" % (ms(rp["s50"]), ms(rp["s99"])),
                 "%s / %s" % (ms(ex["s50"]), ms(ex["s99"])), ""))
    rows.append(("RSS", "%.1f MB" % (rp["rss"] / 1024), "%.1f MB" % (ex["rss"] / 1024), ""))
    return rows, rp, ex


def lateness_hist(base):
    """Cumulative bucket counts of redpulse_poll_delay_seconds."""
    out = {}
    for line in get(base + "/metrics")[1].decode().splitlines():
        if line.startswith("redpulse_poll_delay_seconds_bucket{le=\""):
            le = line.split('le="')[1].split('"')[0]
            out[le] = float(line.rsplit(" ", 1)[1])
    return out


def scale(n, servers, alerts=True, advice=True):
    insts = [{"name": "i%05d" % k, "address": "127.0.0.1:%d" % servers[k % len(servers)]} for k in range(n)]
    # alerts: the built-in rule set, evaluated after every poll (the default)
    al = {"state_dir": os.path.join(TMP, "state-%d-%d-%d" % (n, alerts, advice))}
    if not alerts:
        al["builtin"] = False
    extra = {"http": {"max_connections": 256}, "alerts": al}
    if not advice:  # the write-tuning advisor (on by default)
        extra["advice"] = {"enabled": False}
    p, port = agent(insts, "10s", extra)
    base = "http://127.0.0.1:%d" % port
    # all instances connected and polled once (spread over the first 10 s)
    wait_for(lambda: get(base + "/readyz")[0] >= 0 and urllib.request.urlopen(base + "/readyz").status == 200,
             60, step=0.5, what="first round of polls")
    time.sleep(10)
    h0 = lateness_hist(base)
    # the CPU and memory of polling alone: nothing is scraped in this window
    c0, t0 = cpu_s(p.pid), time.monotonic()
    time.sleep(30)
    c1, t1 = cpu_s(p.pid), time.monotonic()
    rss = rss_kib(p.pid)
    cpu = (c1 - c0) / (t1 - t0)
    h1 = lateness_hist(base)
    diff = {le: h1[le] - h0.get(le, 0) for le in h1}
    total = diff["+Inf"]
    late99 = next((float(le) for le in sorted((k for k in diff if k != "+Inf"), key=float)
                   if diff[le] >= 0.99 * total), float("inf"))
    lat_s = [get(base + "/scrape?target=i%05d" % (k % n))[0] for k in range(1000)]
    res = {"n": n, "cpu": cpu, "cpu_per": (c1 - c0) / total if total else float("nan"), "rss": rss,
           "late99": late99, "late_n": total, "s99": pct(lat_s, 99),
           "s50": pct(lat_s, 50)}
    if n == 1000:
        # keep sizes, not bodies: 50 bodies of 14 MB held by this client made
        # its own page faults part of the measured latency (p99 x2)
        plain = [(t, len(b)) for t, b in (get(base + "/metrics") for _ in range(50))]
        gz = [(t, len(b)) for t, b in (get(base + "/metrics", {"Accept-Encoding": "gzip"}) for _ in range(50))]
        res.update(m99=pct([x[0] for x in plain], 99), m_size=plain[-1][1],
                   gz99=pct([x[0] for x in gz], 99), gz_size=gz[-1][1])
    p.terminate()
    p.wait()
    return res


def cost_rows(n, servers):
    """The cost of the built-in alert rules (issue 10: at most 10% more agent
    CPU per poll, 2 KB more per instance) and of the advisor (issue 13: at
    most 5% more CPU per poll) at n instances: the same run with each switched
    off, in interleaved turns."""
    runs = {"both on": [], "alerts off": [], "advice off": []}
    rounds = int(os.environ.get("BENCH_COST_ROUNDS", ROUNDS))
    for _ in range(rounds):
        runs["both on"].append(scale(n, servers))
        runs["alerts off"].append(scale(n, servers, alerts=False))
        runs["advice off"].append(scale(n, servers, advice=False))
    med = {k: (statistics.median(r["cpu_per"] for r in v), statistics.median(r["rss"] for r in v))
           for k, v in runs.items()}
    (on_c, on_r), (na_c, na_r), (nv_c, nv_r) = med["both on"], med["alerts off"], med["advice off"]
    return ["Cost at %d instances (10 s interval, median of %d interleaved rounds, agent CPU per poll and RSS):"
            " both on %.1f µs, %.1f MB; alert rules off %.1f µs, %.1f MB (the rules cost %+.1f%% CPU per poll,"
            " %+.2f KB per instance); advisor off %.1f µs, %.1f MB (the advisor costs %+.1f%% CPU per poll,"
            " %+.2f KB per instance)." % (
                n, rounds, on_c * 1e6, on_r / 1024, na_c * 1e6, na_r / 1024, 100 * (on_c / na_c - 1),
                (on_r - na_r) / n, nv_c * 1e6, nv_r / 1024, 100 * (on_c / nv_c - 1), (on_r - nv_r) / n)]


def main():
    if os.environ.get("BENCH_ONLY") == "cost":  # just the alert and advisor cost rows
        n = int(os.environ.get("BENCH_SCALES", "10000").split()[-1])
        servers = [free_port() for _ in range(4)]
        for s in servers:
            redis(s, maxclients=20000)
        text = "\n".join(cost_rows(n, servers)) + "\n"
        print(text)
        return
    cores = os.cpu_count()
    out = ["# redpulse benchmark", "", "Machine: %d cores; %s. Command: `tests/bench/run.sh`." % (
        cores, time.strftime("%Y-%m-%d")), ""]
    rows, rp, ex = head_to_head()
    out += ["## One Redis instance: redpulse vs redis_exporter 1.45", "",
            "| figure | redpulse | redis_exporter | ratio |", "|---|---|---|---|"]
    out += ["| %s | %s | %s | %s |" % r for r in rows]
    out += ["", "Poll lateness p99 is the upper bound of the histogram bucket (1, 5, 10, 25, 50 ms ...) holding"
            " the 99th percentile of the polls in the 30 s window; CPU and RSS are measured in that window, in"
            " which nothing is scraped."]
    out += ["", "redpulse has the instance configured 10 times (10 connections, each polled every 100 ms, polls"
            " spread: 100 a second); redis_exporter is scraped every 100 ms; the floor loop polls every 10 ms."
            " Each is measured for %.0f s in turn, %d rounds (%.0f polls and %d scrapes in all; the agent is"
            " stopped while the others run), and each figure is the median of the rounds: this machine's speed"
            " drifts by a third over minutes. The Redis figures have the server's idle CPU (measured first,"
            " 30 s) subtracted; agent CPU includes everything the process did in the window. Steady state:"
            " latencystats rides with one poll a minute per connection (`latencystats_interval`)." % (
                WINDOW, ROUNDS, rp["polls"], int(WINDOW * 10) * ROUNDS), ""]
    scales = [int(x) for x in os.environ.get("BENCH_SCALES", "1000 5000 10000").split()]
    servers = [free_port() for _ in range(4)]
    for s in servers:
        redis(s, maxclients=20000)
    res = [scale(n, servers) for n in scales]
    out += ["## Scale: redpulse alone, 10 s interval, instances spread over 4 redis-server processes", "",
            "| instances | agent CPU (share of one core) | agent CPU per poll | RSS | RSS / instances"
            " | poll lateness p99 | /scrape?target= p50 / p99 |",
            "|---|---|---|---|---|---|---|"]
    for r in res:
        out.append("| %d | %.3f | %.1f µs | %.1f MB | %.1f KB | ≤ %.0f ms (%d polls) | %.3f / %.3f ms |" % (
            r["n"], r["cpu"], r["cpu_per"] * 1e6, r["rss"] / 1024, r["rss"] / r["n"], r["late99"] * 1e3,
            r["late_n"], r["s50"] * 1e3, r["s99"] * 1e3))
    if len(res) >= 2 and res[-1]["n"] != res[0]["n"]:
        a, b = res[0], res[-1]
        per = (b["rss"] - a["rss"]) / (b["n"] - a["n"])
        out += ["", "Memory: %.1f KB per instance (RSS slope from %d to %d instances) over a base of %.1f MB." % (
            per, a["n"], b["n"], (a["rss"] - per * a["n"]) / 1024)]
    out += [""] + cost_rows(scales[-1], servers)
    for r in res:
        if "m99" in r:
            out += ["", "/metrics with %d instances: %.1f MB plain, p99 %.1f ms; %.1f MB gzip, p99 %.1f ms." % (
                r["n"], r["m_size"] / 1e6, r["m99"] * 1e3, r["gz_size"] / 1e6, r["gz99"] * 1e3)]
    text = "\n".join(out) + "\n"
    print(text)
    with open(OUT, "w") as f:
        f.write(text)


try:
    main()
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(TMP, ignore_errors=True)
