#!/usr/bin/env python3
"""Two builds of redpulse side by side: is a figure that moved between two
bench tables the code or the machine? The bench compares its figures with a
table measured hours or days before, on a machine whose speed drifts (its
floor loop, whose code never changes, has cost from 107 to 186 µs a poll);
this measures both builds in the same minutes.

    ab.py BIN_A BIN_B [ROWS]      ROWS: any of "one servers scale" (default all)

- one: one redis-server, each build with the instance configured 10 times at
  100 ms (100 polls a second, as the bench's first row), measured in turns
  for W seconds each (the other stopped with SIGSTOP), ROUNDS rounds in
  alternating order, and the bench's floor loop (poll_floor, beside BIN_B)
  once a round. Agent CPU per poll from the scheduler's count.
- servers: ten redis-servers, one instance each (the bench's usual-deployment
  row), every instance polled every 100 ms; each build polls five of them,
  both at once, the halves swapped from round to round (the agents are
  started anew each round and measured after 3 s). Redis CPU per poll: the
  five servers' CPU over the window, less their idle CPU (measured first,
  no agent running), over the polls; the two builds are measured in the
  same seconds. Agent CPU per poll likewise (both running on two cores).
- scale: N instances (AB_SCALE, default 10000) at 10 s spread over four
  redis-servers, both builds running at once and measured over the same
  windows (stopping one for seconds would make its polls late): agent CPU
  per poll (utime + stime) and share of a core.

Each figure: the median of the rounds with their range, and B/A as the
median of the rounds' paired ratios (the rounds are minutes apart; a pair is
seconds apart). Environment: AB_ROUNDS (default 6), AB_WINDOW (one: 8 s),
AB_SCALE. A benchmark: prints figures, asserts nothing."""
import os
import signal
import statistics
import sys
import time

from benchlib import (cleanup, cpu_s, cpu_s_process, floor_bin, floor_us, free_port, free_ports, ready, redis,
                      redpulse, stop, wait_for)

A, B = sys.argv[1], sys.argv[2]
ROWS = (sys.argv[3] if len(sys.argv) > 3 else "one servers scale").split()
ROUNDS = int(os.environ.get("AB_ROUNDS", "6"))
W = float(os.environ.get("AB_WINDOW", "8"))
SCALE = int(os.environ.get("AB_SCALE", "10000"))
K = 10  # connections of the one-instance row


def fig(xs, fm="%.1f"):
    return (fm + " (" + fm + "-" + fm + ")") % (statistics.median(xs), min(xs), max(xs))


def report(name, a, b, unit, extra=""):
    ratio = [y / x for x, y in zip(a, b) if x > 0]
    print("%s\n  A %s %s\n  B %s %s\n  B/A %s%s" % (name, fig(a), unit, fig(b), unit, fig(ratio, "%.3f"), extra),
          flush=True)


def one():
    rport = free_port()
    rs = redis(rport)
    ps = []
    for b in (A, B):
        p, _ = redpulse(b, [{"name": "r%d" % k, "address": "127.0.0.1:%d" % rport} for k in range(K)], "100ms",
                        timeout="80ms")
        ps.append(p)
    time.sleep(3)  # connect, COMMAND INFO, the first CONFIG GET
    for p in ps:
        p.send_signal(signal.SIGSTOP)
    floor = floor_bin(B)
    per = ([], [])
    floors = []
    for r in range(ROUNDS):
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            p = ps[i]
            p.send_signal(signal.SIGCONT)
            time.sleep(1.5)  # ticks skipped while stopped are not polls: let the schedule settle
            c0, t0 = cpu_s(p.pid), time.monotonic()
            time.sleep(W)
            c1, t1 = cpu_s(p.pid), time.monotonic()
            p.send_signal(signal.SIGSTOP)
            per[i].append((c1 - c0) / (K * (t1 - t0) / 0.1) * 1e6)
        if floor:  # the same 100 polls a second, commandstats one poll in 50
            floors.append(floor_us(floor, rport, W))
    for p in ps:
        p.send_signal(signal.SIGCONT)
        stop(p)
    stop(rs)
    extra = ""
    if floors:
        fl = statistics.median(floors)
        extra = "\n  floor %s us; A / floor %.2f, B / floor %.2f" % (fig(floors), statistics.median(per[0]) / fl,
                                                                  statistics.median(per[1]) / fl)
    report("one instance at 100 polls/s, agent CPU per poll (in turns, %d rounds of %g s)" % (ROUNDS, W),
           per[0], per[1], "us", extra)


def servers():
    ports = free_ports(10)
    srv = [redis(pt) for pt in ports]
    c0, t0 = [cpu_s(s.pid) for s in srv], time.monotonic()
    time.sleep(W)
    idle = [(cpu_s(s.pid) - c) / (time.monotonic() - t0) for s, c in zip(srv, c0)]
    rcpu, acpu = ([], []), ([], [])
    for r in range(ROUNDS):
        halves = (range(0, 5), range(5, 10)) if r % 2 == 0 else (range(5, 10), range(0, 5))
        ps = [redpulse(b, [{"name": "s%d" % k, "address": "127.0.0.1:%d" % ports[k]} for k in h], "100ms",
                       timeout="80ms")[0] for b, h in zip((A, B), halves)]
        time.sleep(3)  # connect, COMMAND INFO, the first CONFIG GET
        s0, a0, t0 = [cpu_s(s.pid) for s in srv], [cpu_s(p.pid) for p in ps], time.monotonic()
        time.sleep(W)
        s1, a1, dt = [cpu_s(s.pid) for s in srv], [cpu_s(p.pid) for p in ps], time.monotonic() - t0
        for p in ps:
            stop(p)
        polls = 5 * dt / 0.1
        for i, h in enumerate(halves):
            rcpu[i].append(sum(s1[k] - s0[k] - idle[k] * dt for k in h) / polls * 1e6)
            acpu[i].append((a1[i] - a0[i]) / polls * 1e6)
    for s in srv:
        stop(s)
    report("one instance per server, 10 servers at 100 ms, Redis CPU per poll (each build five servers, "
           "swapped each round; %d rounds of %g s)" % (ROUNDS, W), rcpu[0], rcpu[1], "us")
    report("the same, agent CPU per poll (both running)", acpu[0], acpu[1], "us")


def scale():
    ports = free_ports(4)
    srv = [redis(pt, maxclients=2 * SCALE // 4 + 1000) for pt in ports]
    agents = []
    for b in (A, B):
        insts = [{"name": "i%05d" % k, "address": "127.0.0.1:%d" % ports[k % 4]} for k in range(SCALE)]
        p, port = redpulse(b, insts, "10s", {"http": {"max_connections": 256}})
        agents.append((p, "http://127.0.0.1:%d" % port))
    for p, base in agents:
        wait_for(lambda: ready(base), 120, step=0.5, what="first round of polls")
    # past the first rounds' connects and heap growth, for the build started
    # last too: with 20 s here, B (started second) read 5-21% dearer than A
    # in every window, where 45 s after the start the two were within 5%
    time.sleep(60)
    cpu = ([], [])
    share = ([], [])
    win = max(W, 25.0)
    for _ in range(max(3, ROUNDS // 2)):
        c0 = [cpu_s_process(p.pid) for p, _ in agents]
        t0 = time.monotonic()
        time.sleep(win)
        c1 = [cpu_s_process(p.pid) for p, _ in agents]
        dt = time.monotonic() - t0
        for i in (0, 1):
            cpu[i].append((c1[i] - c0[i]) / (SCALE * dt / 10.0) * 1e6)
            share[i].append(100 * (c1[i] - c0[i]) / dt)
    for p, _ in agents:
        stop(p)
    for s in srv:
        stop(s)
    report("%d instances at 10 s, agent CPU per poll (both running, the same %g s windows)" % (SCALE, win),
           cpu[0], cpu[1], "us")
    report("%d instances at 10 s, agent CPU (share of a core)" % SCALE, share[0], share[1], "%")


def main():
    print("A: %s\nB: %s" % (A, B), flush=True)
    try:
        if "one" in ROWS:
            one()
        if "servers" in ROWS:
            servers()
        if "scale" in ROWS:
            scale()
    finally:
        cleanup()


if __name__ == "__main__":
    main()
