#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is
# missing, builds with warnings as errors and runs every test (unit suites
# and integration tests against real redis-server and Prometheus), then
# builds again with AddressSanitizer + UndefinedBehaviorSanitizer and runs
# the suite once more, then runs every libFuzzer target for a bounded time
# (FUZZ_SECONDS, default 45). Exit status 0 only if everything passed.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/deps.sh
redpulse_install_deps test

jobs=$(nproc 2>/dev/null || echo 2)
run_suite() { # $1 build dir, rest: cmake options
    local dir=$1
    shift
    cmake -S . -B "$dir" -DREDPULSE_WERROR=ON -DBUILD_TESTING=ON "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
    # as many test programs at a time as there are cores: most wait on the
    # agent's intervals, not on the CPU. Those with the tightest timing
    # bounds, or a CPU load of their own, are RUN_SERIAL
    # (tests/CMakeLists.txt) and run alone
    ctest --test-dir "$dir" --output-on-failure --timeout 600 -j"$jobs"
}

echo "== build (warnings are errors) and test"
run_suite build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo

echo "== build with AddressSanitizer + UndefinedBehaviorSanitizer and test"
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:check_initialization_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export REDPULSE_SANITIZED=1
run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DREDPULSE_SANITIZE=ON

echo "== fuzz (libFuzzer, ASan + UBSan), ${FUZZ_SECONDS:-45}s per target"
tests/fuzz/run.sh
