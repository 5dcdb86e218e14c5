#!/usr/bin/env python3
"""What a poll costs the agent in wake-ups: N instance names on one
redis-server, polled at an interval; over a measured window, the agent's CPU
per poll (utime + stime of the whole process, /proc/PID/stat) and the event
loop's context switches per poll (voluntary + involuntary of the main thread,
/proc/PID/task/PID/status). Polls are counted on the server (cmdstat_info).

    wakeups.py REDPULSE_BIN N:INTERVAL[:WINDOW_S] ...
    e.g. wakeups.py build-rel/redpulse 200:1s 1000:1s 10000:10s:30

A benchmark: prints figures, asserts nothing."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import Agent, RedisServer, Tmp, info_calls, main_thread_switches, wait_for  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12])) / CLK


def minflt(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def secs(iv):
    return float(iv[:-2]) / 1000 if iv.endswith("ms") else float(iv[:-1])


def run(tmp, n, interval, window):
    r = RedisServer(tmp, "redis-%d" % n, args=["--maxclients", str(n + 100)])
    a = Agent(tmp, [{"name": "r%d" % i, "address": "127.0.0.1:%d" % r.port} for i in range(n)],
              defaults={"interval": interval, "timeout": "%dms" % min(500, int(secs(interval) * 800))}, log_level="error")
    pid = a.proc.pid
    try:
        # every instance connected and past its first polls (COMMAND INFO,
        # CONFIG GET), and the heap grown to its steady size (at 10,000
        # instances it grows for about three rounds: page faults until then)
        wait_for(lambda: info_calls(r) >= 4 * n, 6 * secs(interval) + 30, step=0.5, what="four rounds")
        i0, c0, x0, f0, t0 = info_calls(r), cpu_s(pid), main_thread_switches(pid), minflt(pid), time.monotonic()
        time.sleep(window)
        i1, c1, x1, f1, t1 = info_calls(r), cpu_s(pid), main_thread_switches(pid), minflt(pid), time.monotonic()
        polls = i1 - i0 - 1  # our own INFO between the two
        print("N=%-6d interval=%-5s polls/s=%7.1f  agent CPU %6.1f us/poll (%5.2f%% of a core)  "
              "loop ctx switches %.3f/poll  page faults %.2f/poll" % (
                  n, interval, polls / (t1 - t0), (c1 - c0) * 1e6 / polls, 100 * (c1 - c0) / (t1 - t0),
                  (x1 - x0) / polls, (f1 - f0) / polls), flush=True)
    finally:
        a.stop()
        r.stop()


def main():
    harness.BIN = sys.argv[1]
    tmp = Tmp()
    try:
        for spec in sys.argv[2:]:
            parts = spec.split(":")
            iv = parts[1]
            window = float(parts[2]) if len(parts) > 2 else max(20.0, 3 * secs(iv))
            run(tmp.path, int(parts[0]), iv, window)
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    main()
