#!/usr/bin/env bash
# Benchmark harness (not part of the test suite; it gates nothing). Installs
# what it needs, builds redpulse (Release), and prints BENCH_RUNS whole runs
# (default 3, one after the other, about 17 minutes each), every figure as
# the median of the runs with their range, and issue 16's targets as met or
# not in each run:
#   1. redpulse vs redis_exporter 1.45 (Debian's prometheus-redis-exporter)
#      on one Redis instance at 100 polls/s, and the bare-loop floor;
#   2. redpulse vs collectd 5.12 (Debian's collectd-core: redis +
#      write_prometheus) vs redis_exporter on the same instances: 10 and 200
#      instance names on one redis-server at 1 s, and 10 redis-servers with
#      one instance each at 100 ms;
#   3. redpulse alone with 1,000 / 10,000 instances at a 10 s interval, and
#      the cost of the alert rules and of the advisor at the largest scale.
# Results go to stdout and tests/bench/results.md, the runs' figures to
# tests/bench/results.json: the next bench compares its own with them (the
# target "nothing else in the table worse"). BENCH_FROM=FILE: the report
# again from kept runs, nothing measured.
# BENCH_QUICK=1: a smoke run (short windows, scale 1000 only, one run, about
#   5 minutes); its figures are noise.
# BENCH_RUNS=N: N whole runs (default 3). BENCH_SCALES overrides the instance
#   counts. BENCH_SECTIONS: any of "h2h peers scale" (default all).
# BENCH_ONLY=cost: only the cost of the alert rules and of the advisor at the
#   largest scale: three agents side by side (all on, alert rules off,
#   advisor off) measured over the same windows (BENCH_COST_ROUNDS rounds of
#   3 one-minute windows, default 1, the three rotating over the agents by
#   reload; about 7 minutes).
# BENCH_ONLY=faults: collectd and redpulse under faults (hung instances, an
#   outage, values of one instance served for another), tests/bench/faults.md
#   (collectd_faults.py; about 3 minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
. packaging/deps.sh
redpulse_install_deps build
missing=$(redpulse_missing_pkgs prometheus-redis-exporter collectd-core libprotobuf-c1 python3)
if [ -n "$missing" ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    # collectd-core's package scripts try to start the daemon: policy-rc.d or
    # not, the bench starts its own collectd with its own config
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
fi
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DREDPULSE_BENCH=ON >/dev/null
cmake --build build-bench -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
# one descriptor per instance for the agent and for the Redis servers
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "${BENCH_ONLY:-}" = faults ]; then
    exec python3 tests/bench/collectd_faults.py build-bench/redpulse tests/bench/faults.md
fi
exec python3 tests/bench/bench.py build-bench/redpulse tests/bench/results.md
