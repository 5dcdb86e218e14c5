#!/usr/bin/env python3
"""What a collectd user would notice, measured for collectd 5.12 (`redis` +
`write_prometheus`, ReadThreads default) and redpulse side by side, both
reading the same redis-servers every 1 s (run.sh with BENCH_ONLY=faults):

(a) hung instances: five instances, each on its own redis-server, stop
    answering (CLIENT PAUSE 20000 ALL) among ten healthy ones. Figures: the
    longest time in which no instance at all is read (from the reads' own
    timestamps in /metrics), the healthy reads made during the pause against
    those due, the longest time /metrics serves no Redis series, and the
    slowest /metrics answer meanwhile.
(b) outage: five healthy servers are stopped for 20 s and started again on
    their ports. Figure: the delay from each one's return (its first INFO
    answered) to the first read served that comes from the new server
    (uptime restarted).
(c) wrong values: 200 instance names on 100 redis-servers (two names each)
    whose values differ: server k has k idle connections of this script on
    it (connected_clients, read by this script before and after the watch,
    differs from server to server), and the servers are
    started in four batches 6 s apart (uptime). Every distinct read served in
    20 s (a new timestamp) is checked against its own server's values;
    a value that is another server's is counted. A swap between the two
    names of one server is invisible (1 in 199 of random swaps).

A benchmark, not a test: it prints what it measures and asserts nothing.
Usage: collectd_faults.py REDPULSE_BINARY [OUT.md]"""
import os
import socket
import statistics
import sys
import threading
import time

from benchlib import Resp, cleanup, collectd, free_ports, get, redis, redpulse

BIN = sys.argv[1]
OUT = sys.argv[2] if len(sys.argv) > 2 else None
QUICK = os.environ.get("BENCH_QUICK") == "1"


class Scraper(threading.Thread):
    """Scrapes one agent's /metrics every `every` seconds and keeps, per
    scrape, the wall time, the latency, the number of Redis series and the
    per-instance (read timestamp, uptime, connected_clients)."""

    def __init__(self, kind, port, every):
        super().__init__(daemon=True)
        self.kind, self.url, self.every = kind, "http://127.0.0.1:%d/metrics" % port, every
        self.rows, self.stop_at = [], None

    def parse(self, body):
        inst, nredis = {}, 0
        for line in body.decode().splitlines():
            if not line or line[0] == "#":
                continue
            if self.kind == "cd":
                if not line.startswith("collectd_redis_"):
                    continue
                nredis += 1
                if line.startswith("collectd_redis_uptime{") or line.startswith(
                        'collectd_redis_current_connections{') and 'type="clients"' in line:
                    name = line.split('redis="', 1)[1].split('"', 1)[0]
                    v, ts = line.rsplit(" ", 2)[1:]
                    d = inst.setdefault(name, {})
                    d["ts"] = float(ts) / 1000
                    d["uptime" if "uptime" in line[:24] else "clients"] = float(v)
            else:
                if line.startswith("redis_"):
                    nredis += 1
                for prefix, key in (("redis_uptime_in_seconds{", "uptime"), ("redis_connected_clients{", "clients"),
                                    ("redpulse_last_poll_timestamp_seconds{", "ts")):
                    if line.startswith(prefix):
                        name = line.split('target="', 1)[1].split('"', 1)[0]
                        inst.setdefault(name, {})[key] = float(line.rsplit(" ", 1)[1])
        return nredis, inst

    def run(self):
        while self.stop_at is None or time.time() < self.stop_at:
            t = time.time()
            try:
                lat, body = get(self.url, timeout=120)
                nredis, inst = self.parse(body)
            except Exception as e:  # noqa: BLE001 - a failed scrape is a figure too
                lat, nredis, inst = time.time() - t, 0, {"error": str(e)}
            self.rows.append((t, lat, nredis, inst))
            time.sleep(max(0, t + self.every - time.time()))

    def finish(self):
        self.stop_at = time.time()
        self.join()


def reads(rows, names):
    """The distinct reads served for these instances: {(name, ts): values}."""
    out = {}
    for _, _, _, inst in rows:
        for name in names:
            d = inst.get(name)
            if d and "ts" in d:
                out.setdefault((name, d["ts"]), d)
    return out


def longest_gap(times, t0, t1):
    pts = sorted([t0] + [t for t in times if t0 < t < t1] + [t1])
    return max(b - a for a, b in zip(pts, pts[1:]))


def no_series_span(rows, t0):
    """Longest run of consecutive scrapes after t0 that serve no Redis series:
    from the first such scrape's start to the next scrape that serves some."""
    best, first = 0.0, None
    for t, lat, nredis, _ in rows:
        if t < t0:
            continue
        if nredis == 0:
            first = t if first is None else first
        elif first is not None:
            best, first = max(best, t - first), None
    if first is not None:
        best = max(best, rows[-1][0] + rows[-1][1] - first)
    return best


def start_both(nodes, every):
    p, pport = redpulse(BIN, [{"name": n, "address": "127.0.0.1:%d" % port} for n, port in nodes], "1s",
                        timeout="800ms")
    c, cport = collectd(nodes, 1.0, timeout_ms=800)
    scr = {"rp": Scraper("rp", pport, every), "cd": Scraper("cd", cport, every)}
    return (p, c), scr


def hung_and_outage(out):
    ports = free_ports(15)
    healthy = [("h%d" % k, ports[k]) for k in range(10)]
    hung = [("p%d" % k, ports[10 + k]) for k in range(5)]
    servers = {port: redis(port) for _, port in healthy + hung}
    procs, scr = start_both(healthy + hung, 0.1)
    time.sleep(4)
    for s in scr.values():
        s.start()
    time.sleep(3)
    pause_s, watch = 20, 32
    t_pause = time.time()
    for _, port in hung:
        c = Resp(port)
        c.cmd("CLIENT", "PAUSE", str(pause_s * 1000), "ALL")
        c.close()
    time.sleep(watch)
    hn = [n for n, _ in healthy]
    out += ["## (a) five instances hung (CLIENT PAUSE %d s, each on its own redis-server) among ten healthy ones" % (
        pause_s), "",
            "| figure | redpulse | collectd |", "|---|---|---|"]
    fig = {}
    for who, s in scr.items():
        rd = reads(s.rows, hn)
        times = [ts for (_, ts) in rd]
        during = [t for t in times if t_pause <= t < t_pause + pause_s]
        fig[who] = {"gap": longest_gap(times, t_pause, t_pause + watch),
                    "during": len(during),
                    "noseries": no_series_span(s.rows, t_pause),
                    "maxlat": max(lat for t, lat, _, _ in s.rows if t >= t_pause - 1)}
    due = len(healthy) * pause_s
    out += ["| longest time in which no instance is read (of the %d s watched from the pause) | %.1f s | %.1f s |" % (
        watch, fig["rp"]["gap"], fig["cd"]["gap"]),
            "| reads of the 10 healthy instances during the %d s pause (due: %d) | %d | %d |" % (
                pause_s, due, fig["rp"]["during"], fig["cd"]["during"]),
            "| longest time /metrics serves no Redis series | %.1f s | %.1f s |" % (
                fig["rp"]["noseries"], fig["cd"]["noseries"]),
            "| slowest /metrics answer meanwhile | %.3f s | %.3f s |" % (fig["rp"]["maxlat"], fig["cd"]["maxlat"]), ""]
    # (b) five healthy servers down for 20 s, started again together
    down = healthy[:5]
    time.sleep(3)
    for _, port in down:
        servers[port].terminate()
        servers[port].wait()
    time.sleep(20)
    t_start = time.time()
    t_up = {}
    for name, port in down:  # each one's return: redis() is back when the new server answers
        servers[port] = redis(port)
        t_up[name] = time.time()
    time.sleep(20)
    for s in scr.values():
        s.finish()
    out += ["## (b) five servers stopped for 20 s, then started again on their ports", "",
            "| figure | redpulse | collectd |", "|---|---|---|"]
    delays = {}
    for who, s in scr.items():
        delays[who] = []
        for name, _ in down:
            first = None
            for t, _, _, inst in s.rows:
                d = inst.get(name)
                if d and "ts" in d and "uptime" in d and d["ts"] > t_start and d["uptime"] <= d["ts"] - t_start + 2:
                    first = d["ts"]
                    break
            delays[who].append(None if first is None else first - t_up[name])
    f = lambda xs: ", ".join("none in 20 s" if x is None else "%.1f s" % x for x in xs)  # noqa: E731
    m = lambda xs: "-" if None in xs else "%.1f s (%.1f–%.1f)" % (  # noqa: E731
        statistics.median(xs), min(xs), max(xs))
    out += ["| delay from a server's return (its first INFO answered) to the first read of it served: median (range)"
            " | %s | %s |" % (m(delays["rp"]), m(delays["cd"])),
            "| the five delays | %s | %s |" % (f(delays["rp"]), f(delays["cd"])), "",
            "redpulse retries a failed instance with an exponential backoff capped at 2 intervals (±20% jitter);"
            " collectd doubles a failing read callback's interval (up to its `MaxReadInterval`, 86400 s by"
            " default).", ""]
    for p in procs:
        p.terminate()
        p.wait()
    for s in servers.values():
        s.terminate()
        s.wait()


def wrong_values(out):
    nserv, per, watch = 100, 2, 20
    ports = free_ports(nserv)
    servers = []
    for b in range(4):  # four batches 6 s apart: uptimes that differ between batches
        if b:
            time.sleep(6)
        servers += [redis(pt) for pt in ports[b * nserv // 4:(b + 1) * nserv // 4]]
    # each server's start (wall clock), from its own uptime
    start_at = {}
    for pt in ports:
        c = Resp(pt)
        i = c.info()
        c.close()
        start_at[pt] = time.time() - int(i["uptime_in_seconds"])
    idle = []  # k idle connections on server k
    for k, pt in enumerate(ports):
        for _ in range(k):
            idle.append(socket.create_connection(("127.0.0.1", pt)))
    nodes = [("i%03d" % (k * per + j), pt) for k, pt in enumerate(ports) for j in range(per)]
    port_of = dict(nodes)
    procs, scr = start_both(nodes, 0.25)
    time.sleep(5)

    def clients():  # each server's connected_clients, this INFO's own connection left out
        out = {}
        for pt in ports:
            c = Resp(pt)
            out[pt] = int(c.info()["connected_clients"]) - 1
            c.close()
        return out

    before = clients()
    t_watch = time.time()
    for s in scr.values():
        s.start()
    time.sleep(watch)
    for s in scr.values():
        s.finish()
    after = clients()
    owner = {}  # a connected_clients value -> the servers that had it
    for pt in ports:
        for v in {before[pt], after[pt]}:
            owner.setdefault(v, set()).add(pt)
    out += ["## (c) 200 instance names on 100 redis-servers, every distinct read served in %d s checked" % watch, "",
            "| figure | redpulse | collectd |", "|---|---|---|"]
    res = {}
    for who, s in scr.items():
        rd = reads(s.rows, [n for n, _ in nodes])
        up_wrong = up_other = cl_wrong = cl_other = cl_near = 0
        bad = []  # the wrong values themselves
        for (n, ts), d in rd.items():
            pt = port_of[n]
            if "clients" in d and int(d["clients"]) not in (before[pt], after[pt]) and \
                    min(abs(int(d["clients"]) - before[pt]), abs(int(d["clients"]) - after[pt])) <= 2:
                cl_near += 1  # a connection coming or going meanwhile: may be the server's own value
                bad.append("connected_clients %d (own: %d)" % (d["clients"], before[pt]))
            elif "clients" in d and int(d["clients"]) not in (before[pt], after[pt]):
                if os.environ.get("FAULTS_DEBUG"):
                    print(who, n, "clients", int(d["clients"]), before[pt], after[pt], ts - t_watch, file=sys.stderr)
                cl_wrong += 1
                bad.append("connected_clients %d (own: %d)" % (d["clients"], before[pt]))
                cl_other += bool(owner.get(int(d["clients"]), set()) - {pt})
            if "uptime" in d:
                exp = ts - start_at[pt]
                if abs(d["uptime"] - exp) > 2.5:
                    if os.environ.get("FAULTS_DEBUG"):
                        print(who, n, "uptime", d["uptime"], exp, ts - t_watch, file=sys.stderr)
                    up_wrong += 1
                    bad.append("uptime %d (own: %.0f)" % (d["uptime"], exp))
                    up_other += any(abs(d["uptime"] - (ts - start_at[pt])) <= 2.5 for pt in ports)
        res[who] = (len(rd), up_wrong, up_other, cl_wrong, cl_other, ", ".join(bad[:8]) or "none", cl_near)
    out += ["| distinct reads served (200 instances × ~%d s) | %d | %d |" % (watch, res["rp"][0], res["cd"][0]),
            "| uptime values not their own server's (of which another server's) | %d (%d) | %d (%d) |" % (
                res["rp"][1], res["rp"][2], res["cd"][1], res["cd"][2]),
            "| connected_clients values more than 2 from their own server's (of which another server's) | %d (%d) | %d (%d) |" % (
                res["rp"][3], res["rp"][4], res["cd"][3], res["cd"][4]),
            "| connected_clients values within 2 of their own server's (a connection coming or going: may be"
            " right) | %d | %d |" % (res["rp"][6], res["cd"][6]),
            "| the values above served (up to 8) | %s | %s |" % (res["rp"][5], res["cd"][5]),
            "", "A value is its own server's when it is what that server had at the read's time: connected_clients"
            " exactly, uptime within 2.5 s (the read's timestamp is not the instant of INFO). Uptime tells apart"
            " only servers of different start batches (6 s apart); connected_clients tells apart any two servers."
            " Only these two fields are checked. collectd 5.12's src/redis.c copies the digits of every field it"
            " parses into one `static char buf[MAX_REDIS_VAL_SIZE]` (redis_get_info_value), shared by its read"
            " threads: a value parsed while another thread writes there can be another field's or another"
            " reply's digits.", ""]
    for s in idle:
        s.close()
    for p in procs:
        p.terminate()
        p.wait()
    for s in servers:
        s.terminate()
        s.wait()


def main():
    out = ["# collectd 5.12 and redpulse under faults", "",
           "Machine: %d cores; %s. Command: `BENCH_ONLY=faults tests/bench/run.sh`. collectd: only the `redis`"
           " and `write_prometheus` plugins, `Interval 1`, `Timeout 800`, `ReadThreads` default (5); redpulse:"
           " interval 1 s, timeout 800 ms; both read the same servers at the same time. A read's time is the"
           " one /metrics gives it (collectd: the sample's timestamp; redpulse:"
           " redpulse_last_poll_timestamp_seconds); /metrics is scraped every 100 ms ((a), (b)) or 250 ms ((c))."
           % (os.cpu_count(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())), ""]
    parts = os.environ.get("FAULTS", "hung wrong").split()
    if "hung" in parts:
        hung_and_outage(out)
    if "wrong" in parts:
        wrong_values(out)
    text = "\n".join(out) + "\n"
    print(text)
    if OUT:
        with open(OUT, "w") as f:
            f.write(text)


try:
    main()
finally:
    cleanup()
