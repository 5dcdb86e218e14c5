#!/usr/bin/env python3
"""What an INFO costs Redis itself, without waking it from idle: a fresh
redis-server answers COUNT commands of each kind back to back on one
connection, and its own CPU (from /proc) is divided by COUNT. Three rounds,
the kinds interleaved. A benchmark: prints figures, asserts nothing.

    tests/bench/info_cost.py [COUNT]
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cleanup, free_port, redis  # noqa: E402

SECTIONS = "server clients memory persistence stats replication cpu commandstats errorstats cluster keyspace"
KINDS = [("PING", ["PING"]),
         ("plain INFO (collectd)", ["INFO"]),
         ("redpulse's INFO sections", ["INFO"] + SECTIONS.split()),
         ("the same without commandstats", ["INFO"] + SECTIONS.replace(" commandstats", "").split()),
         ("INFO all", ["INFO", "all"])]


def encode(args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)


def read_reply(f):
    line = f.readline()
    if line[:1] == b"$":
        f.read(int(line[1:]) + 2)


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    port = free_port()
    srv = redis(port)
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    res = {k: [] for k, _ in KINDS}
    for _ in range(3):
        for name, args in KINDS:
            cmd = encode(args)
            c0 = cpu_s(srv.pid)
            for _ in range(count):
                s.sendall(cmd)
                read_reply(f)
            res[name].append((cpu_s(srv.pid) - c0) / count * 1e6)
    s.close()
    for name, xs in res.items():
        print("%-32s %s µs of Redis CPU per command (3 rounds)" % (name, " ".join("%.1f" % x for x in sorted(xs))))
    cleanup()


if __name__ == "__main__":
    main()
