#!/usr/bin/env python3
"""Instructions a poll costs the agent's loop, counted by callgrind: a figure
the machine's state does not move (the CPU-time rows of the bench swing by a
third from one hour to the next on this machine), for comparing two builds
of the poll path.

    instructions.py BIN [BIN ...]     (env: INSTR_SECONDS, default 45)

Each build runs under `valgrind --tool=callgrind` with a redis-server of
its own (started here, fresh) configured as ten instances at a 1 s
interval (ten connections; commandstats every 5 s, the default), for
INSTR_SECONDS. Printed per build: the polls (calls of the poller's
finish()), and per poll the instructions of everything the event loop ran
(event_base_loop, inclusive: I/O, parse, derive, rules, advisor, timers; no
HTTP reads, none are made; the poller's loop is the process's only
libevent loop) and of the INFO parse alone (info_parse_poll and
info_parse_again). Startup (configuration, connecting) is outside the loop's
callbacks but for the first polls. Needs valgrind and a build with symbols
(RelWithDebInfo). A benchmark: prints figures, asserts nothing."""
import json
import os
import re
import subprocess
import sys

from benchlib import TMP, cleanup, free_port, redis, stop


def name_re(fn):
    """fn as callgrind_annotate names it: file:fn, or a part GCC split off
    (fn.part.0, fn.isra.0, fn.constprop.0), then the object or the end."""
    return r"\S+:" + re.escape(fn) + r"(?:\.\w+\.\d+)*(?:\s|$)"


def own_line(lines, fn):
    """Index of fn's own line ("cost (pct)  *  file:fn [obj]") in
    callgrind_annotate's --inclusive=yes --tree=caller output, or None."""
    for i, line in enumerate(lines):
        if re.match(r"\s*[\d,]+ \([^)]*\)\s+\*\s+" + name_re(fn), line):
            return i
    return None


def inclusive(lines, fn):
    """Inclusive instructions of function fn (0 when it is not there)."""
    i = own_line(lines, fn)
    return 0 if i is None else int(lines[i].split()[0].replace(",", ""))


def calls(lines, fn):
    """Calls of fn: the counts of its callers' lines above its own."""
    i = own_line(lines, fn)
    n, j = 0, (-1 if i is None else i - 1)
    while j >= 0 and "<" in lines[j]:
        m = re.search(r"\((\d[\d,]*)x\)", lines[j])
        n += int(m.group(1).replace(",", "")) if m else 0
        j -= 1
    return n


def measure(binary, rport, seconds):
    port = free_port()
    cfg = {"listen": "127.0.0.1:%d" % port, "defaults": {"interval": "1s", "timeout": "900ms"},
           "instances": [{"name": "r%d" % k, "address": "127.0.0.1:%d" % rport} for k in range(10)]}
    path = os.path.join(TMP, "instr-%d.json" % port)
    with open(path, "w") as f:
        json.dump(cfg, f)
    out = os.path.join(TMP, "callgrind-%d.out" % port)
    subprocess.run(["timeout", "-s", "INT", str(seconds), "valgrind", "--tool=callgrind",
                    "--callgrind-out-file=" + out, binary, "--config", path, "--log-level", "error"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # --threshold=100: every function, not only those over 1% of the total
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--tree=caller", "--threshold=100", out],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    polls = calls(ann, "finish")
    parse = inclusive(ann, "info_parse_poll") + inclusive(ann, "info_parse_again")
    return polls, inclusive(ann, "event_base_loop"), parse


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    seconds = int(os.environ.get("INSTR_SECONDS", "45"))
    try:
        for b in sys.argv[1:]:
            # a new server for each build: one that another agent polled
            # before answers a longer INFO (measured: 5 thousand more
            # instructions a poll for the second build of a run)
            rport = free_port()
            rs = redis(rport)
            polls, loop, parse = measure(b, rport, seconds)
            stop(rs)
            if not polls:
                print("%s: no poll counted (valgrind missing, or a build without symbols?)" % b)
                continue
            print("%s: %d polls; per poll: loop %.1f thousand instructions, parse %.1f thousand"
                  % (b, polls, loop / polls / 1e3, parse / polls / 1e3))
    finally:
        cleanup()


if __name__ == "__main__":
    main()
