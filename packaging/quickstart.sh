#!/usr/bin/env bash
# Quick start on Debian 12: installs what is missing, builds redpulse, starts
# a throwaway redis-server on 127.0.0.1:6379 if nothing answers there, and
# runs the agent in the foreground against it. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/deps.sh
redpulse_install_deps build

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"

redis_pid="" agent="" tmp=""
cleanup() {
    [ -n "$agent" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    [ -n "$tmp" ] && rm -rf "$tmp"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM
answers() { exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && read -r -t 2 reply <&3 && exec 3>&-; [[ ${reply:-} == +PONG* ]]; }
if ! answers 2>/dev/null; then
    tmp=$(mktemp -d)
    echo "no Redis on 127.0.0.1:6379: starting a throwaway redis-server (data in $tmp)"
    redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir "$tmp" \
        --logfile "$tmp/redis.log" &
    redis_pid=$!
    for _ in $(seq 50); do answers 2>/dev/null && break; sleep 0.1; done
fi

cat <<MSG

redpulse is starting. Open:
  http://127.0.0.1:10379/                 landing page
  http://127.0.0.1:10379/metrics          Prometheus metrics
  http://127.0.0.1:10379/api/v1/instances JSON
Ctrl-C to stop.

MSG
build/redpulse "$@" &
agent=$!
wait "$agent"
