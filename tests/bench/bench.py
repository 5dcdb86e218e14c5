#!/usr/bin/env python3
"""The figures behind the README's performance table (see run.sh).

Every figure is measured in this run on this machine: agent CPU from the
scheduler's count of every thread of the process (/proc/PID/task/*/schedstat),
RSS from /proc/PID/status, Redis CPU from the server's own used_cpu_sys +
used_cpu_user, Redis commands and connections from INFO deltas, latencies by
timing HTTP requests from this process.

BENCH_RUNS whole runs (default 3) are made one after the other; every figure
is printed as the median of the runs with their range (min-max), and each
target of issue 16 as met or not in each run, with the figures that decide it.

Environment: BENCH_RUNS (3), BENCH_QUICK=1 (short windows, scale 1000 only: a
smoke run, its figures are noise), BENCH_SCALES ("1000 10000"),
BENCH_SECTIONS (any of "h2h peers scale", all by default), BENCH_ONLY=cost
(only the alert/advisor cost rows), BENCH_COST_ROUNDS (1 per run: three
agents side by side, measured over the same 3 one-minute windows, the
three variants rotating over them by reload),
BENCH_FROM (a JSON file of earlier runs, written to $TMPDIR/redpulse-bench-
runs-PID.json after each run: only the report is made, with BENCH_SCALES and
BENCH_SECTIONS as in those runs; results.json is rewritten with them only
when BENCH_COMMIT names the commit they were measured at), BENCH_BASELINE
(the previous table's runs to compare with; default results.json beside
results.md, which a full bench rewrites with its own runs and BENCH_COMMIT
or the checked-out commit; the same file as BENCH_FROM is refused)."""
import collections
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time

from benchlib import (TMP, cleanup, collectd, cpu_s, cpu_s_process, exporter, floor_bin, floor_us, free_port,
                      free_ports, get, info, pct, ready, redis, redis_cpu, redpulse, rss_kib, samples, stop, wait_for)

BIN, OUT = (sys.argv[1:3] + [None, None])[:2]  # set when run (main()); importable without them
QUICK = os.environ.get("BENCH_QUICK") == "1"
RUNS = int(os.environ.get("BENCH_RUNS", "1" if QUICK else "3"))
SECTIONS = os.environ.get("BENCH_SECTIONS", "h2h peers scale").split()
ROUNDS = 3  # interleaved rounds within one run; each run's figure is their median
# seconds: a measured window at 100 polls/s, a measured window at 1 s
# (N names: N polls/s), the servers' idle CPU measured first, and the scale
# rows' settle and measured windows
W_H2H, W_PEER, IDLE = (3.0, 3.0, 2.0) if QUICK else (10.0, 8.0, 10.0)
# after /readyz (one interval), one more interval before measuring: the first
# two rounds cost twice the steady state (connects, COMMAND INFO, the first
# CONFIG GET and host checks, heap growth) and a 10 s settle left the window
# on the tail of that, differently in each run
SCALE_SETTLE, SCALE_WIN = (2.0, 8.0) if QUICK else (20.0, 25.0)
N_LAT = 30 if QUICK else 100  # requests timed per latency figure
RENDER_READS = 1 if QUICK else 2  # reads after a full interval, for the render cost


def window(pid, rports, idle_per_s, work):
    """CPU of pid and of the Redis servers (idle share removed), commands and
    connections over one measured window in which work() runs."""
    i0 = [info(r) for r in rports]
    c0, t0 = cpu_s(pid), time.monotonic()
    work()
    c1, t1 = cpu_s(pid), time.monotonic()
    i1 = [info(r) for r in rports]
    tot = lambda i, k: sum(int(x[k]) for x in i)  # noqa: E731
    # on each server the two INFO calls of window() itself are one command and one connection apart
    return {"cpu": c1 - c0, "t": t1 - t0,
            "redis_cpu": max(0.0, sum(map(redis_cpu, i1)) - sum(map(redis_cpu, i0)) - idle_per_s * (t1 - t0)),
            "cmds": tot(i1, "total_commands_processed") - tot(i0, "total_commands_processed") - len(rports),
            "conns": tot(i1, "total_connections_received") - tot(i0, "total_connections_received") - len(rports)}


def idle_cpu(rports, secs):
    """The servers' own idle CPU per second (cron), subtracted from every window."""
    i0 = [info(r) for r in rports]
    time.sleep(secs)
    i1 = [info(r) for r in rports]
    return (sum(map(redis_cpu, i1)) - sum(map(redis_cpu, i0))) / secs


def per_poll(ws, polls):
    """Median over the rounds of the per-poll figures, and the totals."""
    med = lambda k: statistics.median(w[k] / n for w, n in zip(ws, polls))  # noqa: E731
    return {"cpu": med("cpu"), "rcpu": med("redis_cpu"), "cmds": sum(w["cmds"] for w in ws) / sum(polls),
            "conns": sum(w["conns"] for w in ws) / sum(polls), "polls": sum(polls)}


def head_to_head():
    """redpulse (one instance configured 10 times, 100 ms: 100 polls/s) vs
    redis_exporter scraped every 100 ms vs the bare-loop floor."""
    rport = free_port()
    rs = redis(rport)
    idle_per_s = idle_cpu([rport], IDLE)
    # redpulse: the instance configured K times (K connections), each polled every 100 ms
    K = 10
    p, port = redpulse(BIN, [{"name": "r" if k == 0 else "r%d" % k, "address": "127.0.0.1:%d" % rport}
                             for k in range(K)], "100ms", timeout="80ms")
    time.sleep(3)  # connect, COMMAND INFO, first CONFIG GET
    e, eport = exporter(rport)
    for _ in range(10):
        get("http://127.0.0.1:%d/metrics" % eport)
    floor = floor_bin(BIN)
    # the floor asks what the agent asks: commandstats one poll in 50 (every
    # 5 s, the default commandstats_interval, at 100 ms)
    CS_EVERY = 50
    n_scrapes = int(W_H2H * 10)
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
    rw, ew, floors, pairs = [], [], [], []
    for _ in range(ROUNDS):
        rw.append(window(p.pid, [rport], idle_per_s, lambda: time.sleep(W_H2H)))
        if floor:  # and the floor running beside the agent: both in the same seconds
            c0, t0 = cpu_s(p.pid), time.monotonic()
            fl = floor_us(floor, rport, W_H2H, CS_EVERY)
            c1, t1 = cpu_s(p.pid), time.monotonic()
            pairs.append(((c1 - c0) / (K * (t1 - t0) / 0.1), fl / 1e6))
        p.send_signal(signal.SIGSTOP)
        ew.append(window(e.pid, [rport], idle_per_s, scrape_loop))
        if floor:  # the same 100 polls a second as the agent, on one connection
            floors.append(floor_us(floor, rport, W_H2H, CS_EVERY) / 1e6)
        p.send_signal(signal.SIGCONT)
        time.sleep(1)  # ticks skipped while stopped are not polls: let the schedule settle
    rp = per_poll(rw, [K * w["t"] / 0.1 for w in rw])
    ex = per_poll(ew, [n_scrapes] * ROUNDS)
    ex.update(m50=pct(lat, 50), m99=pct(lat, 99))
    p.terminate()
    p.wait()
    surl = "http://127.0.0.1:%d/scrape?target=redis://127.0.0.1:%d" % (eport, rport)
    lat_s = [get(surl)[0] for _ in range(N_LAT)]
    # samples: one /scrape?target= answer (its /metrics adds the exporter's own Go runtime series)
    ex.update(s50=pct(lat_s, 50), s99=pct(lat_s, 99), rss=rss_kib(e.pid), samples=samples(get(surl)[1], ""))
    e.terminate()
    e.wait()
    # scrape latency and RSS with the instance configured once
    p, port = redpulse(BIN, [{"name": "r", "address": "127.0.0.1:%d" % rport}], "100ms", timeout="80ms")
    time.sleep(2)
    lat_m = [get("http://127.0.0.1:%d/metrics" % port)[0] for _ in range(5 * N_LAT)]
    lat_s = [get("http://127.0.0.1:%d/scrape?target=r" % port)[0] for _ in range(5 * N_LAT)]
    rp.update(m50=pct(lat_m, 50), m99=pct(lat_m, 99), s50=pct(lat_s, 50), s99=pct(lat_s, 99), rss=rss_kib(p.pid),
              samples=samples(get("http://127.0.0.1:%d/metrics" % port)[1], 'target="r"'))
    p.terminate()
    p.wait()
    rs.terminate()
    rs.wait()
    fig = {"h2h.floor": statistics.median(floors) if floors else None}
    if pairs:
        fig.update({"h2h.pair.rp": statistics.median(a for a, _ in pairs),
                    "h2h.pair.floor": statistics.median(f for _, f in pairs),
                    "h2h.pair.ratio": statistics.median(a / f for a, f in pairs)})
    for who, d in (("rp", rp), ("ex", ex)):
        for k, v in d.items():
            fig["h2h.%s.%s" % (who, k)] = v
    return fig


def peers(tag, nodes, interval=1.0):
    """redpulse, collectd and redis_exporter on the same instances (nodes:
    (name, port) pairs, several names may share a server), each instance
    read every interval: measured in turns, ROUNDS rounds, the other two
    stopped (SIGSTOP) or not scraped while one is measured. Each round also
    measures the servers idle (all three stopped) for as long: that round's
    idle CPU is subtracted from its three windows."""
    rports = sorted({port for _, port in nodes})
    n = len(nodes)
    ms = "%dms" % (interval * 1000)
    p, port = redpulse(BIN, [{"name": name, "address": "127.0.0.1:%d" % rp} for name, rp in nodes], ms,
                       timeout="%dms" % (interval * 800))
    c, cport = collectd(nodes, interval, timeout_ms=int(interval * 800))
    e, eport = exporter(nodes[0][1])
    for name, rp in nodes[:10]:
        get("http://127.0.0.1:%d/scrape?target=redis://127.0.0.1:%d" % (eport, rp))
    time.sleep(3)  # connects, first reads
    scrapes = []

    def scrape_loop():  # every instance once an interval, spread, as the other two read them
        nxt, end, k = time.monotonic(), time.monotonic() + W_PEER, 0
        while time.monotonic() < end:
            get("http://127.0.0.1:%d/scrape?target=redis://127.0.0.1:%d" % (eport, nodes[k % n][1]))
            k += 1
            nxt += interval / n
            time.sleep(max(0, nxt - time.monotonic()))
        scrapes.append(k)

    rw, cw, ew = [], [], []
    c.send_signal(signal.SIGSTOP)
    for _ in range(ROUNDS):
        r = window(p.pid, rports, 0, lambda: time.sleep(W_PEER))
        p.send_signal(signal.SIGSTOP)
        c.send_signal(signal.SIGCONT)
        time.sleep(1.5)  # reads skipped while stopped are not reads: let the schedule settle
        cd = window(c.pid, rports, 0, lambda: time.sleep(W_PEER))
        c.send_signal(signal.SIGSTOP)
        ex = window(e.pid, rports, 0, scrape_loop)
        idle = window(p.pid, rports, 0, lambda: time.sleep(W_PEER))
        for w, ws in ((r, rw), (cd, cw), (ex, ew)):
            w["redis_cpu"] = max(0.0, w["redis_cpu"] - idle["redis_cpu"] / idle["t"] * w["t"])
            ws.append(w)
        p.send_signal(signal.SIGCONT)
        time.sleep(1.5)
    c.send_signal(signal.SIGCONT)
    time.sleep(1.5)
    res = {"rp": per_poll(rw, [n * w["t"] / interval for w in rw]),
           "cd": per_poll(cw, [n * w["t"] / interval for w in cw]),
           "ex": per_poll(ew, scrapes)}
    base = "http://127.0.0.1:%d" % port
    for who, url, label in (("rp", base + "/metrics", 'target="%s"' % nodes[0][0]),
                            ("cd", "http://127.0.0.1:%d/metrics" % cport, 'redis="%s"' % nodes[0][0]),
                            ("ex", "http://127.0.0.1:%d/scrape?target=redis://127.0.0.1:%d" % (eport, nodes[0][1]),
                             "")):
        lat = [get(url)[0] for _ in range(N_LAT)]
        res[who].update(m50=pct(lat, 50), m99=pct(lat, 99), samples=samples(get(url)[1], label))
    for who, proc in (("rp", p), ("cd", c), ("ex", e)):
        res[who]["rss"] = rss_kib(proc.pid)
        proc.terminate()
        proc.wait()
    fig = {}
    for who, d in res.items():
        for k, v in d.items():
            fig["%s.%s.%s" % (tag, who, k)] = v
    return fig


def lateness_hist(base):
    """Cumulative bucket counts of redpulse_poll_delay_seconds."""
    out = {}
    for line in get(base + "/metrics")[1].decode().splitlines():
        if line.startswith("redpulse_poll_delay_seconds_bucket{le=\""):
            le = line.split('le="')[1].split('"')[0]
            out[le] = float(line.rsplit(" ", 1)[1])
    return out


def scale_agent(n, servers, alerts=True, advice=True, runtime=None):
    """redpulse with n instances spread over servers, 10 s interval; returns
    (process, base URL) once every instance has been polled once. runtime:
    a new directory for its $RUNTIME_DIRECTORY (for set_variant)."""
    insts = [{"name": "i%05d" % k, "address": "127.0.0.1:%d" % servers[k % len(servers)]} for k in range(n)]
    # alerts: the built-in rule set, evaluated after every poll (the default)
    al = {"state_dir": os.path.join(TMP, "state-%d-%d-%d-%d" % (n, alerts, advice, time.monotonic_ns()))}
    if not alerts:
        al["builtin"] = False
    extra = {"http": {"max_connections": 256}, "alerts": al}
    if not advice:  # the write-tuning advisor (on by default)
        extra["advice"] = {"enabled": False}
    if runtime:
        os.makedirs(runtime)
    p, port = redpulse(BIN, insts, "10s", extra, env=dict(os.environ, RUNTIME_DIRECTORY=runtime) if runtime else None)
    base = "http://127.0.0.1:%d" % port
    # all instances connected and polled once (spread over the first 10 s)
    wait_for(lambda: ready(base), 60, step=0.5, what="first round of polls")
    return p, base


def active_alerts(base):
    """Pending or firing alerts by rule."""
    return collections.Counter(a["alertname"] for a in json.loads(get(base + "/api/v1/alerts")[1])["alerts"])


def scale(n, servers, alerts=True, advice=True):
    p, base = scale_agent(n, servers, alerts, advice)
    time.sleep(SCALE_SETTLE)
    h0 = lateness_hist(base)
    # the CPU and memory of polling alone: nothing is scraped in this window
    c0, t0 = cpu_s_process(p.pid), time.monotonic()
    time.sleep(SCALE_WIN)
    c1, t1 = cpu_s_process(p.pid), time.monotonic()
    rss = rss_kib(p.pid)
    cpu = (c1 - c0) / (t1 - t0)
    # pending or firing at the end of the window, by rule: the cost rows
    # compare agents that have none
    active = active_alerts(base)
    if active:
        print("  %d instances, alerts %s, advice %s: active alerts %s" % (n, alerts, advice, dict(active)),
              file=sys.stderr, flush=True)
    h1 = lateness_hist(base)
    diff = {le: h1[le] - h0.get(le, 0) for le in h1}
    total = diff["+Inf"]
    late99 = next((float(le) for le in sorted((k for k in diff if k != "+Inf"), key=float)
                   if diff[le] >= 0.99 * total), float("inf"))
    lat_s = [get(base + "/scrape?target=i%05d" % (k % n))[0] for k in range(10 * N_LAT)]
    res = {"cpu": cpu, "cpu_per": (c1 - c0) / total if total else float("nan"), "rss": rss,
           "rss_per": rss / n, "active_alerts": sum(active.values()), "late99": late99, "late_n": total, "s99": pct(lat_s, 99), "s50": pct(lat_s, 50)}
    if n == 1000 and alerts and advice:
        # keep sizes, not bodies: 50 bodies of 14 MB held by this client made
        # its own page faults part of the measured latency (p99 x2)
        plain = [(t, len(b)) for t, b in (get(base + "/metrics") for _ in range(N_LAT // 2))]
        gz = [(t, len(b)) for t, b in (get(base + "/metrics", {"Accept-Encoding": "gzip"}) for _ in range(N_LAT // 2))]
        res.update(m99=pct([x[0] for x in plain], 99), m_size=plain[-1][1],
                   gz99=pct([x[0] for x in gz], 99), gz_size=gz[-1][1])
        # a poll is rendered when first read: the agent's CPU for a read
        # after one interval (every instance polled since the read before,
        # all waiting) less that of the read right after it (none waiting;
        # the serving is the same), per instance; the median of RENDER_READS
        rr = []
        for _ in range(RENDER_READS):
            time.sleep(10.5)
            c0 = cpu_s(p.pid)
            get(base + "/metrics")
            c1 = cpu_s(p.pid)
            get(base + "/metrics")
            c2 = cpu_s(p.pid)
            rr.append(((c1 - c0) - (c2 - c1)) / n)
        res["render_per"] = statistics.median(rr)
    p.terminate()
    p.wait()
    return res


def fresh_servers(k=4):
    """k new redis-servers: each cost agent gets its own, so that none sees
    the fragmentation the clients of another left behind (it holds the
    built-in RedisFragmentation rule pending on thousands of instances)."""
    ports = free_ports(k)
    return ports, [redis(pt, maxclients=20000) for pt in ports]


# windows of a whole minute: each holds one CONFIG GET of every instance
# (config_interval), which 25 s windows held for some agents and not others.
# Three: one per place in the rotation below.
COST_WINDOWS, COST_WIN = (3, 20.0) if QUICK else (3, 60.0)
# after a reload: one CONFIG GET of every instance (config_interval 60 s)
# and one poll (10 s) under the new settings
COST_SETTLE = 25.0 if QUICK else 72.0
COST_VARIANTS = [("on", {}), ("alerts_off", {"alerts": False}), ("advice_off", {"advice": False})]


def set_variant(p, base, run, kw):
    """Reloads the agent p (at base) into a cost variant: its configuration
    file rewritten (alerts.builtin, advice.enabled) and `redpulse --reload`,
    which returns when the reload has ended (and fails when it failed)."""
    path = os.path.join(TMP, "redpulse-%s.json" % base.rsplit(":", 1)[1])
    with open(path) as f:
        cfg = json.load(f)
    cfg["alerts"].pop("builtin", None)
    cfg.pop("advice", None)
    if kw.get("alerts") is False:
        cfg["alerts"]["builtin"] = False
    if kw.get("advice") is False:
        cfg["advice"] = {"enabled": False}
    with open(path, "w") as f:
        json.dump(cfg, f)
    subprocess.run([BIN, "--reload", str(p.pid), "--reload-timeout", "120"], check=True,
                   env=dict(os.environ, RUNTIME_DIRECTORY=run), stdout=subprocess.DEVNULL)


def cost(n):
    """The cost of the built-in alert rules (issue 10: at most 10% more agent
    CPU per poll, 2 KB more per instance) and of the advisor (issue 13: at
    most 5% more CPU per poll) at n instances. Three agents, each on its own
    fresh servers, run side by side and are measured over the same windows,
    so the drift of this machine's speed (a third over minutes) is the same
    for all three; each window gives the two ratios, and the figures are
    their medians. The three variants (everything on, the alert rules off,
    the advisor off) rotate over the three agents, one place a window, by
    reloading their configuration: one process ran slower than another with
    the same binary and configuration (measured ad hoc in the head-to-head
    setup, the agent's CPU per poll against the floor's beside it, six 8 s
    rounds each: 1.70x against 1.83x medians), and with the variants fixed
    to processes all the windows of a run leaned the same way. After a
    reload the measuring waits for a whole minute of CONFIG GETs: an advisor
    switched on anew reads the host's settings for every instance at the
    instance's next CONFIG GET, once and not again for host_interval (10
    minutes), which the agents started with it did before their first
    window. The memory figures are taken at the end of the first window,
    before any reload, each agent as started.
    Polls are counted as n x window / interval (the servers' command count
    confirms it: one INFO per poll and one CONFIG GET per instance a
    minute; a window outside that by more than 5% is printed)."""
    variants = COST_VARIANTS
    rounds = int(os.environ.get("BENCH_COST_ROUNDS", "1"))
    fig = {"cost.n": n, "cost.windows": rounds * COST_WINDOWS}
    per = {k: [] for k, _ in variants}
    rss = {k: [] for k, _ in variants}
    active = {k: 0 for k, _ in variants}
    for _ in range(rounds):
        agents = []
        for k, kw in variants:
            ports, srv = fresh_servers()
            run = os.path.join(TMP, "run-%s-%d" % (k, time.monotonic_ns()))
            p, base = scale_agent(n, ports, runtime=run, **kw)
            agents.append((p, base, ports, srv, run))
        time.sleep(SCALE_SETTLE)
        for w in range(COST_WINDOWS):
            # agent i runs variant (i + w) mod 3 in window w
            who = {variants[(i + w) % len(variants)][0]: a for i, a in enumerate(agents)}
            if w:
                for i, (p, base, _, _, run) in enumerate(agents):
                    set_variant(p, base, run, variants[(i + w) % len(variants)][1])
                time.sleep(COST_SETTLE)
            i0 = {k: [info(pt) for pt in a[2]] for k, a in who.items()}
            c0 = {k: cpu_s_process(a[0].pid) for k, a in who.items()}
            t0 = time.monotonic()
            time.sleep(COST_WIN)
            c1 = {k: cpu_s_process(a[0].pid) for k, a in who.items()}
            t1 = time.monotonic()
            i1 = {k: [info(pt) for pt in a[2]] for k, a in who.items()}
            polls = n * (t1 - t0) / 10.0
            for k, a in who.items():
                per[k].append((c1[k] - c0[k]) / polls)
                served = sum(int(b["total_commands_processed"]) - int(x["total_commands_processed"]) - 1
                             for x, b in zip(i0[k], i1[k]))
                # one INFO per poll, and a CONFIG GET of every instance in
                # each minute begun (all of them close together)
                if not 0.95 * polls <= served <= 1.05 * (polls + n * math.ceil(COST_WIN / 60)):
                    print("  cost %s, window %d: %d commands for %.0f polls" % (k, w, served, polls),
                          file=sys.stderr, flush=True)
                act = active_alerts(a[1])
                active[k] = max(active[k], sum(act.values()))
                if act:
                    print("  cost %s, window %d: active alerts %s" % (k, w, dict(act)), file=sys.stderr, flush=True)
            if w == 0:  # before any reload
                for (k, _), (p, _, _, _, _) in zip(variants, agents):
                    rss[k].append(rss_kib(p.pid))
        for p, _, _, srv, _ in agents:
            for q in [p] + srv:
                stop(q)
    for k, _ in variants:
        fig["cost.%s.cpu_per" % k] = statistics.median(per[k])
        fig["cost.%s.rss" % k] = statistics.median(rss[k])
        fig["cost.%s.active" % k] = active[k]
        fig["cost.%s.windows" % k] = [(c, rss[k][i // COST_WINDOWS]) for i, c in enumerate(per[k])]
    # paired: each window's ratio, then their median
    fig["cost.alerts_pct"] = 100 * (statistics.median(a / b for a, b in zip(per["on"], per["alerts_off"])) - 1)
    fig["cost.advice_pct"] = 100 * (statistics.median(a / b for a, b in zip(per["on"], per["advice_off"])) - 1)
    fig["cost.alerts_kb"] = (fig["cost.on.rss"] - fig["cost.alerts_off.rss"]) / n
    fig["cost.advice_kb"] = (fig["cost.on.rss"] - fig["cost.advice_off.rss"]) / n
    return fig


def scale_section(scales):
    servers, srv = fresh_servers()
    fig = {}
    for n in scales:
        r = scale(n, servers)
        for k, v in r.items():
            fig["scale.%d.%s" % (n, k)] = v
    for s in srv:
        stop(s)
    fig.update(cost(scales[-1]))
    return fig


PEERS = [("n10", "10 instance names on one redis-server, every instance read every 1 s"),
         ("n200", "200 instance names on one redis-server, every instance read every 1 s"),
         ("s10", "10 redis-server processes, one instance each (the usual deployment), every instance read"
          " every 100 ms")]


def one_run(scales):
    fig = {"t0": time.monotonic()}
    if "h2h" in SECTIONS:
        fig.update(head_to_head())
    if "peers" in SECTIONS:
        one = free_port()
        srv = [redis(one)]
        fig.update(peers("n10", [("r%03d" % k, one) for k in range(10)]))
        fig.update(peers("n200", [("r%03d" % k, one) for k in range(200)]))
        ports = free_ports(10)
        srv += [redis(pt) for pt in ports]
        fig.update(peers("s10", [("r%03d" % k, pt) for k, pt in enumerate(ports)], interval=0.1))
        for s in srv:
            s.terminate()
            s.wait()
    if "scale" in SECTIONS:
        fig.update(scale_section(scales))
    fig["secs"] = time.monotonic() - fig.pop("t0")
    fig["end"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return fig


# ---- reporting: the median of the runs and their range --------------------

def us(x):
    return "%.1f µs" % (x * 1e6)


def ms(x):
    return "%.3f ms" % (x * 1e3)


def agg(runs, key, f):
    """"median (min–max)" of key over the runs that have it."""
    xs = [r[key] for r in runs if r.get(key) is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return f(xs[0])
    return "%s (%s–%s)" % (f(statistics.median(xs)), f(min(xs)), f(max(xs)))


def ratio(runs, a, b, inv=False):
    """The per-run ratio a/b (or b/a as "1/x"), median and range."""
    xs = [(r[b] / r[a] if inv else r[a] / r[b]) for r in runs if r.get(a) and r.get(b)]
    if not xs:
        return "-"
    f = (lambda x: "1/%.1f" % x) if inv else (lambda x: "%.2f×" % x)
    if len(xs) == 1:
        return f(xs[0])
    return "%s (%s–%s)" % (f(statistics.median(xs)), f(min(xs)), f(max(xs)))


def targets(r):
    """Issue 16's targets in one run: (name, met, reason); met is None when
    the run did not measure it."""
    out = []

    def t(name, keys, test, why):
        if all(r.get(k) is not None for k in keys):
            v = [r[k] for k in keys]
            out.append((name, test(*v), why(*v)))
        else:
            out.append((name, None, "not measured in this run"))

    pair = r.get("h2h.pair.ratio")
    t("agent CPU per poll ≤ 1.5× the floor at 100 polls/s", ["h2h.rp.cpu", "h2h.floor"],
      lambda a, f: a <= 1.5 * f, lambda a, f: "%s vs 1.5 × %s = %s (%.2f×)%s" % (
          us(a), us(f), us(1.5 * f), a / f, "; the floor beside the agent: %.2f×" % pair if pair else ""))
    t("agent CPU per poll ≤ 0.5× collectd's at N=200", ["n200.rp.cpu", "n200.cd.cpu"],
      lambda a, c: a <= 0.5 * c, lambda a, c: "%s vs 0.5 × %s = %s (%.2f×)" % (us(a), us(c), us(0.5 * c), a / c))
    t("Redis CPU per poll ≤ 1/5 of redis_exporter's (one instance, 100 polls/s)", ["h2h.rp.rcpu", "h2h.ex.rcpu"],
      lambda a, e: a <= e / 5, lambda a, e: "%s vs %s / 5 = %s (1/%.1f)" % (us(a), us(e), us(e / 5), e / a if a else 0))
    t("Redis CPU per poll ≤ 1/5 of redis_exporter's, one instance per server", ["s10.rp.rcpu", "s10.ex.rcpu"],
      lambda a, e: a <= e / 5, lambda a, e: "%s vs %s / 5 = %s (1/%.1f)" % (us(a), us(e), us(e / 5), e / a if a else 0))
    t("Redis CPU per poll no worse than collectd's, one instance per server", ["s10.rp.rcpu", "s10.cd.rcpu"],
      lambda a, c: a <= c, lambda a, c: "%s vs %s (%.2f×)" % (us(a), us(c), a / c if c else 0))
    t("10,000 instances at 10 s under 10% of a core", ["scale.10000.cpu"],
      lambda c: c < 0.10, lambda c: "%.1f%% of a core" % (100 * c))
    return out


# ---- "nothing else in the table worse": against the previous table ---------

def own_figures(r):
    """redpulse's figures in one run, each one where lower is better, as
    name -> (value, format): its own costs and its ratios to the floor and to
    the peers. Figures that are not costs (samples, polls counted, /metrics
    sizes) are left out."""
    mb = lambda x: "%.1f MB" % (x / 1024)  # noqa: E731
    x2 = lambda x: "%.2f×" % x  # noqa: E731
    f = {}
    h2h = {"cpu": ("agent CPU per poll", us), "rcpu": ("Redis CPU per poll", us),
           "cmds": ("Redis commands per poll", lambda x: "%.3f" % x),
           "conns": ("new Redis connections per poll", lambda x: "%.3f" % x), "rss": ("RSS", mb),
           "m50": ("/metrics p50", ms), "m99": ("/metrics p99", ms), "s50": ("/scrape p50", ms),
           "s99": ("/scrape p99", ms)}

    def put(name, v, fm):
        if v is not None:
            f[name] = (v, fm)

    def div(a, b):
        return a / b if a and b else None
    one = "one instance at 100 polls/s: "
    for k, (name, fm) in h2h.items():
        put(one + name, r.get("h2h.rp." + k), fm)
    put(one + "agent CPU per poll beside the floor", r.get("h2h.pair.rp"), us)
    put(one + "ratio to the floor", div(r.get("h2h.rp.cpu"), r.get("h2h.floor")), x2)
    put(one + "ratio to the floor beside it", r.get("h2h.pair.ratio"), x2)
    for k in ("cpu", "rcpu"):
        put(one + h2h[k][0] + ", ratio to redis_exporter", div(r.get("h2h.rp." + k), r.get("h2h.ex." + k)),
            lambda x: "1/%.1f" % (1 / x))
    for tag, title in PEERS:
        where = title.split(",")[0] + ": "
        for k in ("cpu", "rcpu", "cmds", "conns", "rss", "m50", "m99"):
            put(where + h2h[k][0], r.get("%s.rp.%s" % (tag, k)), h2h[k][1])
        for k in ("cpu", "rcpu", "rss"):
            put(where + h2h[k][0] + ", ratio to collectd", div(r.get("%s.rp.%s" % (tag, k)),
                                                               r.get("%s.cd.%s" % (tag, k))), x2)
    names = {"cpu": ("agent CPU", lambda x: "%.1f%% of a core" % (100 * x)), "cpu_per": ("agent CPU per poll", us),
             "rss": ("RSS", mb), "rss_per": ("RSS per instance", lambda x: "%.1f KB" % x),
             "late99": ("poll lateness p99", ms), "s50": ("/scrape p50", ms), "s99": ("/scrape p99", ms),
             "m99": ("/metrics p99", ms), "gz99": ("/metrics gzip p99", ms), "render_per": ("render at read", us)}
    for key in sorted(k for k in r if k.startswith("scale.")):
        _, n, what = key.split(".", 2)
        if what in names:
            put("%s instances at 10 s: %s" % (n, names[what][0]), r[key], names[what][1])
    pct = lambda x: "%+.1f%%" % x  # noqa: E731
    kb = lambda x: "%+.2f KB" % x  # noqa: E731
    for key, name, fm in (("cost.alerts_pct", "alert rules' CPU per poll", pct),
                          ("cost.alerts_kb", "alert rules' memory per instance", kb),
                          ("cost.advice_pct", "advisor's CPU per poll", pct),
                          ("cost.advice_kb", "advisor's memory per instance", kb)):
        put(name, r.get(key), fm)
    return f


def compare(runs, prev):
    """The target "nothing else in the table worse than today", read against
    the previous table's runs (prev: results.json as the last full bench left
    it). A figure is worse when its median is above the previous table's
    whole range (min-max over its runs) by more than 1% of its median: the
    machine's drift between two benches moves figures within a table's
    range, and a median above it is more than that (the 1% keeps a figure
    whose runs were all alike, 1.000 commands a poll or an RSS in pages,
    from counting rounding as worse). Higher medians within the range are
    named too."""
    if not prev:
        return ("\"Nothing else in the table worse than today\": no earlier figures kept (results.json), not"
                " checked.")
    new = [own_figures(r) for r in runs]
    old = [own_figures(r) for r in prev.get("runs", [])]
    worse, higher, n = [], [], 0
    for name in new[0]:
        xs = [f[name][0] for f in new if name in f]
        ys = [f[name][0] for f in old if name in f]
        if not xs or not ys:
            continue
        n += 1
        fm = new[0][name][1]
        m, pm = statistics.median(xs), statistics.median(ys)
        if m > max(ys) + 0.01 * abs(pm):  # 1%: below the figures' resolution (RSS in 4 KB pages, counts)
            worse.append("%s %s (was %s, %s–%s)" % (name, fm(m), fm(pm), fm(min(ys)), fm(max(ys))))
        elif m > pm:
            higher.append(name)
    text = ("\"Nothing else in the table worse than today\", against the previous table (%s, %d runs; %d of"
            " redpulse's figures and ratios, lower is better; worse: a median above that table's whole"
            " range by more than 1%%): " % (prev.get("commit", "?"), len(old), n))
    text += "**not met**, %d worse: %s." % (len(worse), "; ".join(worse)) if worse else "met, none worse."
    if higher:
        text += " A higher median within the previous range: %s." % "; ".join(higher)
    return text


def report(runs, scales, prev=None):
    n = len(runs)
    spread = "median of %d runs (min–max)" % n if n > 1 else "one run"
    out = ["# redpulse benchmark", "",
           "Machine: %d cores; %s. Command: `tests/bench/run.sh` (BENCH_RUNS=%d%s). Every figure: %s; each run's"
           " figure is itself the median of %d interleaved rounds. Wall time per run: %s." % (
               os.cpu_count(), runs[-1].get("end") or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), n,
               ", BENCH_QUICK=1: short windows, figures are noise" if QUICK else "", spread, ROUNDS,
               ", ".join("%.0f s" % r["secs"] for r in runs)), "",
           ("Smoke run (BENCH_QUICK=1): " if QUICK else
            "Trimmed so that one whole run takes about 17 minutes and three fit in about 51: ") + "measured windows of"
           " %.0f s at 100 polls/s and %.0f s for the collectd comparisons (they were 20 s, one run only), the"
           " servers' idle CPU over %.0f s (was 30 s), scale rows %s with a %.0f s window (5,000 dropped; was"
           " 30 s), and the alert/advisor cost rows from three agents side by side, measured over the same windows."
           " The"
           " collectd fault figures are in faults.md (`BENCH_ONLY=faults tests/bench/run.sh`)." % (
               W_H2H, W_PEER, IDLE, " and ".join(str(x) for x in scales), SCALE_WIN), ""]
    if "h2h" in SECTIONS:
        g = lambda k, f: agg(runs, k, f)  # noqa: E731
        out += ["## One Redis instance at 100 polls/s: redpulse vs redis_exporter 1.45", "",
                "| figure | redpulse | redis_exporter | ratio |", "|---|---|---|---|",
                "| agent CPU per instance-poll (redpulse) / per scrape (redis_exporter) | %s | %s | %s |" % (
                    g("h2h.rp.cpu", us), g("h2h.ex.cpu", us), ratio(runs, "h2h.rp.cpu", "h2h.ex.cpu", inv=True)),
                "| floor: CPU of a bare loop that only sleeps, sends INFO and reads the reply, per poll | %s |  |"
                " redpulse / floor: %s |" % (g("h2h.floor", us), ratio(runs, "h2h.rp.cpu", "h2h.floor")),
                "| the floor run beside the agent, in the same seconds (floor: %s); redpulse in those seconds | %s |"
                "  | redpulse / floor: %s |" % (g("h2h.pair.floor", us), g("h2h.pair.rp", us),
                                               g("h2h.pair.ratio", lambda x: "%.2f×" % x)),
                "| Redis CPU per poll / scrape | %s | %s | %s |" % (
                    g("h2h.rp.rcpu", us), g("h2h.ex.rcpu", us), ratio(runs, "h2h.rp.rcpu", "h2h.ex.rcpu", inv=True)),
                "| Redis commands per poll / scrape | %s | %s |  |" % (
                    g("h2h.rp.cmds", lambda x: "%.3f" % x), g("h2h.ex.cmds", lambda x: "%.2f" % x)),
                "| new Redis connections per poll / scrape | %s | %s |  |" % (
                    g("h2h.rp.conns", lambda x: "%.3f" % x), g("h2h.ex.conns", lambda x: "%.2f" % x)),
                "| /metrics latency p50 / p99 (1 instance) | %s / %s | %s / %s |  |" % (
                    g("h2h.rp.m50", ms), g("h2h.rp.m99", ms), g("h2h.ex.m50", ms), g("h2h.ex.m99", ms)),
                "| /scrape?target= latency p50 / p99 | %s / %s | %s / %s |  |" % (
                    g("h2h.rp.s50", ms), g("h2h.rp.s99", ms), g("h2h.ex.s50", ms), g("h2h.ex.s99", ms)),
                "| samples per instance | %s | %s |  |" % (g("h2h.rp.samples", str), g("h2h.ex.samples", str)),
                "| RSS | %s | %s |  |" % (g("h2h.rp.rss", lambda x: "%.1f MB" % (x / 1024)),
                                         g("h2h.ex.rss", lambda x: "%.1f MB" % (x / 1024))),
                "", "redpulse has the instance configured 10 times (10 connections, each polled every 100 ms, polls"
                " spread: 100 a second); redis_exporter is scraped every 100 ms; the floor loop polls every 10 ms."
                " Each is measured for %.0f s in turn, %d rounds per run (the agent is stopped while the others"
                " run). The Redis figures have the server's idle CPU (measured first, %.0f s) subtracted; agent"
                " CPU includes everything the process did in the window (all its threads, from the scheduler's"
                " count). Steady state: latencystats rides with one poll a minute per connection"
                " (`latencystats_interval`) and commandstats with one poll in 50 (every 5 s,"
                " `commandstats_interval`); the floor loop's INFO is the same, commandstats one poll in 50."
                " The floor also runs once a round beside the agent (the server then"
                " answers 200 INFO a second), so that the two are compared in the same seconds: the machine's"
                " speed drifts over minutes, and a floor measured in turns moves with it (each run: the median of"
                " its rounds' ratios). The target is read from the figures in turns, as in earlier tables." % (
                    W_H2H, ROUNDS, IDLE), ""]
    if "peers" in SECTIONS:
        for tag, title in PEERS:
            g = lambda k, f: agg(runs, "%s.%s" % (tag, k), f)  # noqa: E731
            out += ["## %s: redpulse vs collectd 5.12 vs redis_exporter 1.45" % (
                title[0].upper() + title[1:]), "",
                    "| figure | redpulse | collectd | redis_exporter | redpulse / collectd |",
                    "|---|---|---|---|---|"]
            rows = [("agent CPU per poll (read, scrape)", "cpu", us, True),
                    ("Redis CPU per poll", "rcpu", us, True),
                    ("Redis commands per poll", "cmds", lambda x: "%.3f" % x, False),
                    ("new Redis connections per poll", "conns", lambda x: "%.3f" % x, False),
                    ("RSS", "rss", lambda x: "%.1f MB" % (x / 1024), True),
                    ("/metrics latency p50 (redpulse, collectd: all instances; redis_exporter: /scrape?target="
                     " of one)", "m50", ms, False),
                    ("/metrics latency p99 (same)", "m99", ms, False),
                    ("samples per instance", "samples", str, False)]
            for label, k, f, rat in rows:
                out.append("| %s | %s | %s | %s | %s |" % (
                    label, g("rp." + k, f), g("cd." + k, f), g("ex." + k, f),
                    ratio(runs, "%s.rp.%s" % (tag, k), "%s.cd.%s" % (tag, k)) if rat else ""))
            out.append("")
        out += ["redpulse (timeout 0.8 × the interval), collectd (only the `redis` and `write_prometheus` plugins,"
                " `Interval` the same, `Timeout` 0.8 × it, `ReadThreads` default: 5) and redis_exporter (scraped"
                " with /scrape?target= once an interval per instance, spread) read the same instances. The"
                " one-instance-per-server row reads every 100 ms so that its 10 polls a second per server stand"
                " out of each server's idle CPU (at 1 s they are a tenth of it). Each is measured for %.0f s in"
                " turn, %d rounds per run, the other two stopped (SIGSTOP) or not scraped, then the servers idle"
                " for as long (all three stopped): that round's idle CPU is subtracted from its three Redis"
                " figures. Polls are counted as instances × window / interval (redpulse, collectd: both read"
                " with one INFO, see commands per poll) and as scrapes made (redis_exporter). Redis CPU is summed"
                " over the servers. Samples per instance: the series carrying the instance's label in /metrics"
                " (redis_exporter: all of one /scrape?target= answer)." % (W_PEER, ROUNDS), ""]
    if "scale" in SECTIONS:
        out += ["## Scale: redpulse alone, 10 s interval, instances spread over 4 redis-server processes", "",
                "| instances | agent CPU (share of one core) | agent CPU per poll | RSS | RSS / instances"
                " | poll lateness p99 | polls in window | /scrape?target= p50 / p99 |",
                "|---|---|---|---|---|---|---|---|"]
        for n_ in scales:
            g = lambda k, f: agg(runs, "scale.%d.%s" % (n_, k), f)  # noqa: E731
            out.append("| %d | %s | %s | %s | %s | ≤ %s | %s | %s / %s |" % (
                n_, g("cpu", lambda x: "%.3f" % x), g("cpu_per", us), g("rss", lambda x: "%.1f MB" % (x / 1024)),
                g("rss_per", lambda x: "%.1f KB" % x), g("late99", lambda x: "%.0f ms" % (x * 1e3)),
                g("late_n", lambda x: "%d" % x), g("s50", ms), g("s99", ms)))
        out += ["", "Poll lateness p99 is the upper bound of the histogram bucket (1, 5, 10, 25, 50 ms ...) holding"
                " the 99th percentile of the polls in the %.0f s window (after %.0f s settling past the first round);"
                " CPU and RSS are measured in that window, in which nothing is scraped." % (SCALE_WIN, SCALE_SETTLE)]
        if len(scales) >= 2:
            a, b = scales[0], scales[-1]
            slope = [(r["scale.%d.rss" % b] - r["scale.%d.rss" % a]) / (b - a) for r in runs]
            base = [(r["scale.%d.rss" % a] - s * a) / 1024 for r, s in zip(runs, slope)]
            out += ["", "Memory: %s per instance (RSS slope from %d to %d instances) over a base of %s." % (
                agg([{"x": x} for x in slope], "x", lambda x: "%.1f KB" % x), a, b,
                agg([{"x": x} for x in base], "x", lambda x: "%.1f MB" % x))]
        g = lambda k, f: agg(runs, k, f)  # noqa: E731
        out += ["", "Cost at %d instances (10 s interval; three agents side by side, each on 4 fresh redis-servers,"
                " measured over the same %s windows of %.0f s per run, the cost being the median of the windows'"
                " ratios; the three variants rotating over the three agents, one place a window, by reloading their"
                " configuration; RSS at the end of the first window, before any reload; at most %d alerts pending or firing at the end of a"
                " window in any of the three agents; agent CPU per poll and RSS): both on"
                " %s, %s; alert rules off %s, %s (the rules"
                " cost %s CPU per poll, %s per instance); advisor off %s, %s (the advisor costs %s CPU per poll,"
                " %s per instance)." % (
                    scales[-1], runs[0].get("cost.windows"), COST_WIN,
                    max(r.get("cost.%s.active" % k, 0) for r in runs for k in ("on", "alerts_off", "advice_off")),
                    g("cost.on.cpu_per", us),
                    g("cost.on.rss", lambda x: "%.1f MB" % (x / 1024)), g("cost.alerts_off.cpu_per", us),
                    g("cost.alerts_off.rss", lambda x: "%.1f MB" % (x / 1024)),
                    g("cost.alerts_pct", lambda x: "%+.1f%%" % x), g("cost.alerts_kb", lambda x: "%+.2f KB" % x),
                    g("cost.advice_off.cpu_per", us), g("cost.advice_off.rss", lambda x: "%.1f MB" % (x / 1024)),
                    g("cost.advice_pct", lambda x: "%+.1f%%" % x), g("cost.advice_kb", lambda x: "%+.2f KB" % x))]
        if "scale.1000.m99" in runs[0]:
            out += ["", "/metrics with 1000 instances: %s plain, p99 %s; %s gzip, p99 %s." % (
                g("scale.1000.m_size", lambda x: "%.1f MB" % (x / 1e6)), g("scale.1000.m99", ms),
                g("scale.1000.gz_size", lambda x: "%.1f MB" % (x / 1e6)), g("scale.1000.gz99", ms))]
        if "scale.1000.render_per" in runs[0]:
            out += ["", "Render at read (polls are rendered when first read, at most once a poll): %s of agent CPU"
                    " per instance polled since the previous read (1000 instances: a /metrics read one interval"
                    " after the previous one, less the read right after it; median of %d). The agent CPU per poll"
                    " above has no read in its window: with Prometheus reading every 15 s and a 10 s interval,"
                    " two polls in three are rendered, %s more per poll; at a 100 ms interval (the head-to-head"
                    " rows), one in 150." % (g("scale.1000.render_per", us), RENDER_READS,
                                 g("scale.1000.render_per", lambda x: us(x * 2 / 3)))]
        out.append("")
    out += ["## Issue 16's targets, run by run", "",
            "| target | met in | " + " | ".join("run %d" % (i + 1) for i in range(n)) + " |",
            "|---|---|" + "---|" * n]
    per_run = [targets(r) for r in runs]
    for i, (name, _, _) in enumerate(per_run[0]):
        cells = []
        for tr in per_run:
            _, met, why = tr[i]
            cells.append("n/a: " + why if met is None else ("met: " if met else "**not met**: ") + why)
        met = sum(1 for tr in per_run if tr[i][1])
        out.append("| %s | %d of %d runs | %s |" % (name, met, n, " | ".join(cells)))
    out += ["", compare(runs, prev)]
    return "\n".join(out) + "\n"


def main():
    if not OUT:
        sys.exit("usage: bench.py REDPULSE_BIN RESULTS_MD")
    scales = [int(x) for x in os.environ.get("BENCH_SCALES", "1000" if QUICK else "1000 10000").split()]
    if os.environ.get("BENCH_ONLY") == "cost":  # just the alert and advisor cost rows
        f = cost(scales[-1])
        print("Cost at %d instances (%d windows): both on %.1f µs, %.1f MB; alert rules off %.1f µs, %.1f MB (%+.1f%%"
              " CPU per poll, %+.2f KB per instance); advisor off %.1f µs, %.1f MB (%+.1f%%, %+.2f KB)." % (
                  f["cost.n"], f["cost.windows"], f["cost.on.cpu_per"] * 1e6, f["cost.on.rss"] / 1024,
                  f["cost.alerts_off.cpu_per"] * 1e6, f["cost.alerts_off.rss"] / 1024, f["cost.alerts_pct"],
                  f["cost.alerts_kb"], f["cost.advice_off.cpu_per"] * 1e6, f["cost.advice_off.rss"] / 1024,
                  f["cost.advice_pct"], f["cost.advice_kb"]))
        for k in ("on", "alerts_off", "advice_off"):
            print("  %s, each window: %s" % (k, ", ".join("%.1f µs %.1f MB" % (c * 1e6, m / 1024)
                                                       for c, m in f["cost.%s.windows" % k])))
        return
    runs = []
    if os.environ.get("BENCH_FROM"):  # the report again from the figures of earlier runs
        with open(os.environ["BENCH_FROM"]) as f:
            runs = json.load(f)
        if isinstance(runs, dict):  # results.json: the runs and their commit
            runs = runs["runs"]
    for i in range(0 if runs else RUNS):
        r = one_run(scales)
        runs.append(r)
        print("run %d of %d: %.0f s" % (i + 1, RUNS, r["secs"]), file=sys.stderr, flush=True)
        keep = os.path.join(os.path.dirname(TMP), "redpulse-bench-runs-%d.json" % os.getpid())
        with open(keep, "w") as f:
            json.dump(runs, f)  # kept in case the report fails: BENCH_FROM=this file
        print("figures so far: %s" % keep, file=sys.stderr, flush=True)
    # the previous table's runs, for "nothing else worse" (BENCH_BASELINE: another file of them)
    kept = os.path.splitext(OUT)[0] + ".json"
    prev = None
    base = os.environ.get("BENCH_BASELINE", kept)
    if os.environ.get("BENCH_FROM") and os.path.exists(base) and os.path.samefile(base, os.environ["BENCH_FROM"]):
        sys.exit("BENCH_FROM and the baseline (%s) are the same runs: compared with themselves, nothing would be"
                 " worse; set BENCH_BASELINE to the previous table's runs" % base)
    if os.path.exists(base):
        with open(base) as f:
            prev = json.load(f)
    text = report(runs, scales, prev)
    print(text)
    if not QUICK:  # a smoke run's figures are noise: results.md keeps the last full run's
        with open(OUT, "w") as f:
            f.write(text)
        commit = os.environ.get("BENCH_COMMIT") or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        if os.environ.get("BENCH_FROM") and not os.environ.get("BENCH_COMMIT"):
            print("BENCH_FROM without BENCH_COMMIT: %s is left as it was (the runs' commit is not known)" % kept,
                  file=sys.stderr)
            return
        with open(kept, "w") as f:
            json.dump({"commit": commit, "date": runs[-1].get("end") or time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                      time.gmtime()),
                       "runs": runs}, f, indent=0)
            f.write("\n")


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
