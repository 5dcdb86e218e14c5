#!/usr/bin/env python3
"""What an INFO costs Redis itself, without waking it from idle: a fresh
redis-server answers COUNT commands of each kind back to back on one
connection, and its own CPU (from /proc) is divided by COUNT. Three rounds,
the kinds interleaved. A benchmark: prints figures, asserts nothing.

    tests/bench/info_cost.py [COUNT]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Resp, cleanup, cpu_s_process, free_port, redis  # noqa: E402

SECTIONS = "server clients memory persistence stats replication cpu commandstats errorstats cluster keyspace"
KINDS = [("PING", ["PING"]),
         ("plain INFO (collectd)", ["INFO"]),
         ("redpulse's INFO sections", ["INFO"] + SECTIONS.split()),
         ("the same without commandstats", ["INFO"] + SECTIONS.replace(" commandstats", "").split()),
         ("INFO all", ["INFO", "all"])]


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    port = free_port()
    srv = redis(port)
    c = Resp(port)
    res = {k: [] for k, _ in KINDS}
    for _ in range(3):
        for name, args in KINDS:
            c0 = cpu_s_process(srv.pid)  # Redis's own count (utime + stime)
            for _ in range(count):
                c.cmd(*args)
            res[name].append((cpu_s_process(srv.pid) - c0) / count * 1e6)
    c.close()
    for name, xs in res.items():
        print("%-32s %s µs of Redis CPU per command (3 rounds)" % (name, " ".join("%.1f" % x for x in sorted(xs))))
    cleanup()


if __name__ == "__main__":
    main()
