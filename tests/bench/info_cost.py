#!/usr/bin/env python3
"""What an INFO costs Redis itself. A benchmark: prints figures, asserts
nothing.

    tests/bench/info_cost.py [COUNT]
        back to back: a fresh redis-server answers COUNT commands of each
        kind on one connection, and its own CPU (from /proc) is divided by
        COUNT. Three rounds, the kinds interleaved.

    tests/bench/info_cost.py --spread [RATE [SECONDS]]
        spread, as a poller sends them: RATE commands a second (default 100)
        for SECONDS (default 10) of each kind, the server idle in between,
        and a window of nothing sent in each round; that window's CPU per
        second is subtracted. What is left is what answering costs a server
        woken for it: a PING is the wake-up and the event loop alone, the
        INFO kinds add producing their sections from cold caches. Three
        rounds; the server's CPU from its threads' schedstat (ns).

    tests/bench/info_cost.py --paired [ROUNDS]
        what leaving sections out of the steady INFO saves servers woken for
        it: fifteen fresh servers, one connection each, in three groups of
        five measured in the same seconds (the machine's speed drifts
        between windows measured in turn), 5 s a round: one group asked
        redpulse's steady INFO as it was before cpu and server rode with
        commandstats, one a variant, each server ten times a second,
        spread, and one nothing, whose CPU (an idle server's cron) is
        subtracted from the other two; the roles rotate round by round.
        Printed per variant: the median and range over ROUNDS (default 8)
        of the ratio variant / before, and the two per INFO.

    tests/bench/info_cost.py --servers [N [RATE [SECONDS]]]
        N fresh servers (default 10), one connection each, every server
        asked redpulse's INFO (without commandstats, as most polls ask)
        RATE times a second (default 10, the bench's one-instance-per-server
        row) for SECONDS (default 8): "spread", one server at a time, evenly
        over the period, as redpulse sends them; "together", all N sent at
        once and their replies read after, as collectd's read threads do.
        Each round also has an idle window, subtracted. Redis CPU summed
        over the servers, per INFO. Three rounds, the order alternating.
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Resp, cleanup, cpu_s, cpu_s_process, free_port, free_ports, redis  # noqa: E402

SECTIONS = "server clients memory persistence stats replication cpu commandstats errorstats cluster keyspace"
# most polls' INFO: without commandstats, and the cpu and server sections
# that ride with it
STEADY = ["INFO"] + [x for x in SECTIONS.split() if x not in ("commandstats", "cpu", "server")]
BEFORE = ["INFO"] + SECTIONS.replace(" commandstats", "").split()  # the same before cpu and server rode with it
KINDS = [("PING", ["PING"]),
         ("plain INFO (collectd)", ["INFO"]),
         ("redpulse's INFO sections", ["INFO"] + SECTIONS.split()),
         ("without commandstats, cpu, server", STEADY),
         ("without commandstats", BEFORE),
         ("INFO all", ["INFO", "all"])]


def pace(t0, k, step):
    """Sleeps until step k + 1 of `step` seconds after t0: the schedule is
    absolute, so the steps after a late one sleep less (or not at all)."""
    d = t0 + (k + 1) * step - time.monotonic()
    if d > 0:
        time.sleep(d)


def back_to_back(srv, c, count):
    res = {k: [] for k, _ in KINDS}
    for _ in range(3):
        for name, args in KINDS:
            c0 = cpu_s_process(srv.pid)  # Redis's own count (utime + stime)
            for _ in range(count):
                c.cmd(*args)
            res[name].append((cpu_s_process(srv.pid) - c0) / count * 1e6)
    for name, xs in res.items():
        print("%-32s %s µs of Redis CPU per command (3 rounds)" % (name, " ".join("%.1f" % x for x in sorted(xs))))


def spread(srv, c, rate, secs):
    n = int(rate * secs)
    res = {k: [] for k, _ in KINDS}
    idle = []
    for _ in range(3):
        c0, t0 = cpu_s(srv.pid), time.monotonic()
        time.sleep(secs)
        idle.append((cpu_s(srv.pid) - c0) / (time.monotonic() - t0))
        for name, args in KINDS:
            c0, t0 = cpu_s(srv.pid), time.monotonic()
            for i in range(n):
                c.cmd(*args)
                pace(t0, i, 1 / rate)
            t = time.monotonic() - t0
            res[name].append(((cpu_s(srv.pid) - c0) - idle[-1] * t) / n * 1e6)
    print("idle: %s µs of Redis CPU per second (3 rounds)" % " ".join("%.0f" % (x * 1e6) for x in sorted(idle)))
    for name, xs in res.items():
        print("%-32s %s µs of Redis CPU per command at %g a second, idle subtracted (3 rounds)"
              % (name, " ".join("%.1f" % x for x in sorted(xs)), rate))


def servers(n, rate, secs):
    ports = free_ports(n)
    srvs = [redis(p) for p in ports]
    conns = [Resp(p) for p in ports]

    def cpu():
        return sum(cpu_s(p.pid) for p in srvs)

    def window(mode):
        c0, t0, sent = cpu(), time.monotonic(), 0
        ticks = int(secs * rate) * (n if mode == "spread" else 1)
        for i in range(ticks):
            if mode == "spread":
                conns[i % n].cmd(*STEADY)
                sent += 1
            elif mode == "together":
                for c in conns:
                    c.send(*STEADY)
                for c in conns:
                    c.read()
                sent += n
            pace(t0, i, secs / ticks)
        return cpu() - c0, time.monotonic() - t0, sent

    res = {"spread": [], "together": []}
    for r in range(3):
        c, t, _ = window("idle")
        idle = c / t
        for mode in ("spread", "together") if r % 2 == 0 else ("together", "spread"):
            c, t, sent = window(mode)
            res[mode].append((c - idle * t) / sent * 1e6)
    for mode, xs in res.items():
        print("%-9s %s µs of Redis CPU per INFO, %d servers each asked %g times a second, idle subtracted (3 rounds)"
              % (mode, " ".join("%.1f" % x for x in xs), n, rate))
    for c in conns:
        c.close()


def paired(rounds):
    """Three groups of five servers in the same seconds: the INFO before,
    a variant, and none (the control: what the servers cost idle in those
    seconds, subtracted from the other two). The roles rotate round by
    round."""
    n, rate, secs = 15, 10.0, 5.0
    ports = free_ports(n)
    srvs = [redis(p) for p in ports]
    conns = [Resp(p) for p in ports]
    variants = [("the same (no difference: the method's spread)", BEFORE),
                ("without cpu", [x for x in BEFORE if x != "cpu"]),
                ("without cpu and server (redpulse's steady INFO)", STEADY),
                ("plain INFO (collectd)", ["INFO"])]
    for name, var in variants:
        ratios, per = [], ([], [])
        for r in range(rounds):
            role = [(i + r) % 3 for i in range(n)]  # 0: before, 1: the variant, 2: idle
            asked = [i for i in range(n) if role[i] < 2]
            c0, t0 = [cpu_s(s.pid) for s in srvs], time.monotonic()
            ticks = int(secs * rate) * len(asked)
            for k in range(ticks):
                i = asked[k % len(asked)]
                conns[i].cmd(*(BEFORE if role[i] == 0 else var))
                pace(t0, k, secs / ticks)
            used = [cpu_s(s.pid) - c for s, c in zip(srvs, c0)]
            grp = [sum(used[i] for i in range(n) if role[i] == g) for g in range(3)]
            infos = ticks / 2
            a, b = (grp[0] - grp[2]) / infos * 1e6, (grp[1] - grp[2]) / infos * 1e6
            per[0].append(a)
            per[1].append(b)
            ratios.append(b / a)
        ratios.sort()
        print("%-50s %.3f (%.3f-%.3f) of the INFO before; %.1f against %.1f µs of Redis CPU per INFO, idle "
              "subtracted (%d servers of 15 at %g a second, %d rounds)"
              % (name, statistics.median(ratios), ratios[0], ratios[-1], statistics.median(per[1]),
                 statistics.median(per[0]), 10, rate, rounds))
    for c in conns:
        c.close()


def main():
    args = sys.argv[1:]
    if args and args[0] == "--paired":
        paired(int(args[1]) if len(args) > 1 else 8)
        cleanup()
        return
    if args and args[0] == "--servers":
        servers(int(args[1]) if len(args) > 1 else 10, float(args[2]) if len(args) > 2 else 10.0,
                float(args[3]) if len(args) > 3 else 8.0)
        cleanup()
        return
    port = free_port()
    srv = redis(port)
    c = Resp(port)
    for i in range(1000):  # some keys and commands, as a server in use has
        c.cmd("SET", "k%d" % i, "v")
        c.cmd("GET", "k%d" % i)
    c.cmd("HSET", "h", "f", "v")
    c.cmd("LPUSH", "l", "x")
    if args and args[0] == "--spread":
        spread(srv, c, float(args[1]) if len(args) > 1 else 100.0, float(args[2]) if len(args) > 2 else 10.0)
    else:
        back_to_back(srv, c, int(args[0]) if args else 20000)
    c.close()
    cleanup()


if __name__ == "__main__":
    main()
