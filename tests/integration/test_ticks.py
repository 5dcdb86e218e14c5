#!/usr/bin/env python3
"""The tick grid (docs/polling.md, "How it polls"): polls stay spread over the
interval, at the granularity of a tick, and the polls of one tick share a
wake-up of the event loop.

Real redis-server; the INFOs are seen from the server's side (MONITOR, whose
lines carry the server's clock), the wake-ups from the agent's main thread
(/proc/PID/task/PID/status)."""
import os
import socket
import sys
import time
import unittest

from harness import Agent, RedisServer, Tmp, info_calls, main, main_thread_switches, value, wait_for

SANITIZED = os.environ.get("REDPULSE_SANITIZED") == "1"


def monitor_info_times(port, seconds):
    """Server-side timestamps (s) of every INFO the server ran for `seconds`."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"MONITOR\r\n")
    data = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = s.recv(1 << 16)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    times = []
    for line in data.split(b"\r\n"):
        # +1700000000.123456 [0 127.0.0.1:5555] "INFO" "clients" ...
        if line.startswith(b"+") and b'] "INFO"' in line and b'"clients"' in line:
            times.append(float(line[1:].split(b" ", 1)[0]))
    return times


class Ticks(unittest.TestCase):
    def setUp(self):
        self.tmp = Tmp()

    def tearDown(self):
        self.tmp.cleanup()

    def start(self, n):
        r = RedisServer(self.tmp.path, "redis", args=["--maxclients", str(n + 100)])
        a = Agent(self.tmp.path, [{"name": "r%d" % i, "address": "127.0.0.1:%d" % r.port} for i in range(n)],
                  defaults={"interval": "1s", "timeout": "500ms"}, log_level="info")
        self.addCleanup(r.stop)
        self.addCleanup(a.stop)
        # every instance polled twice: connected, past COMMAND INFO and the first CONFIG GET
        wait_for(lambda: info_calls(r) >= 2 * n, 30, step=0.2, what="two rounds of polls")
        return r, a

    def test_polls_spread_over_the_ticks(self):
        """200 instances at 1 s (tick 10 ms, 100 ticks a second): over two
        seconds the INFOs fall in most 10 ms bins (83-93% here) and never
        many in one (at most 4 here), and those of one tick arrive together
        (one wake-up sent them)."""
        n = 200
        r, a = self.start(n)
        times = monitor_info_times(r.port, 2.0)
        self.assertGreaterEqual(len(times), int(1.8 * n), "INFOs seen in 2 s")
        t0 = times[0]
        bins = {}
        for t in times:
            k = int((t - t0) / 0.010)
            bins[k] = bins.get(k, 0) + 1
        span = int((times[-1] - t0) / 0.010) + 1
        # spread: most of the 10 ms bins of the window see INFOs (a burst
        # would fill a few), and none sees more than a small share of them
        # (two a tick; a stall of the loaded machine sends the ticks it
        # missed together, so the bound leaves room for 100 ms of one)
        self.assertGreaterEqual(len(bins), 0.6 * span, "10 ms bins with INFOs: %d of %d" % (len(bins), span))
        self.assertLessEqual(max(bins.values()), n // 8, "most INFOs in one 10 ms bin: %d" % max(bins.values()))
        # shared: two slots fall in each tick, so most INFOs follow another
        # within 2 ms (one wake-up sent both); with a timer per instance they
        # come 5 ms apart
        gaps = [b - a for a, b in zip(times, times[1:])]
        close = sum(1 for g in gaps if g < 0.002)
        print("%d INFOs, %d of %d bins, at most %d in one, %d of %d gaps under 2 ms" % (
            len(times), len(bins), span, max(bins.values()), close, len(gaps)), file=sys.stderr)
        self.assertGreaterEqual(close, 0.3 * len(gaps), "INFOs within 2 ms of the previous: %d of %d" % (close, len(gaps)))
        # lateness is counted against the grid time, for every poll
        m = a.metrics()
        total = value(m, "redpulse_poll_delay_seconds_count")
        self.assertGreaterEqual(total, 3 * n)
        self.assertGreaterEqual(value(m, "redpulse_poll_delay_seconds_bucket", le="0.1"), 0.9 * total)

    def test_wakeups_shared(self):
        """500 instances at 1 s (5 polls a tick): the loop's context switches
        per poll. With a timer per instance it was 2.3 here (a wake-up to
        send and one to read, for each poll); on the grid about 0.8 (0.85-1.0
        under ASan): one wake-up sends a tick's polls, their replies are read
        in the few wake-ups they arrive in."""
        n = 500
        r, a = self.start(n)
        pid = a.proc.pid
        i0, x0 = info_calls(r), main_thread_switches(pid)
        time.sleep(4)
        i1, x1 = info_calls(r), main_thread_switches(pid)
        polls = i1 - i0 - 1
        self.assertGreaterEqual(polls, 3 * n, "polls in 4 s")
        per_poll = (x1 - x0) / polls
        print("%d polls, %.2f main-thread context switches a poll" % (polls, per_poll), file=sys.stderr)
        # a margin for a loaded machine (preemptions count too); ASan's
        # slower polls get more of them
        bound = 1.6 if SANITIZED else 1.4
        self.assertLess(per_poll, bound, "main-thread context switches per poll: %.2f" % per_poll)


if __name__ == "__main__":
    main()
