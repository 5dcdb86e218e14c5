#!/usr/bin/env bash
# Benchmark harness (not part of the test suite; it gates nothing). Installs
# what it needs, builds redpulse (Release), and prints, from one run:
#   1. redpulse vs redis_exporter 1.45 (Debian's prometheus-redis-exporter)
#      on one Redis instance: CPU per poll/scrape, Redis CPU, commands and
#      new connections per poll/scrape, scrape latency, RSS;
#   2. redpulse alone with 1,000 / 5,000 / 10,000 instances at a 10 s
#      interval: CPU, RSS per instance, poll lateness, /scrape and /metrics
#      latency and size.
# Results go to stdout and tests/bench/results.md. BENCH_SCALES overrides the
# instance counts, e.g. BENCH_SCALES="1000" for a quick run. BENCH_ONLY=cost
# measures only the cost of the alert rules and of the advisor at the largest
# scale (each switched off in turn; BENCH_COST_ROUNDS rounds, default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
. packaging/deps.sh
redpulse_install_deps build
missing=$(redpulse_missing_pkgs prometheus-redis-exporter python3)
if [ -n "$missing" ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
fi
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DREDPULSE_BENCH=ON >/dev/null
cmake --build build-bench -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
# one descriptor per instance for the agent and for the Redis servers
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec python3 tests/bench/bench.py build-bench/redpulse tests/bench/results.md
