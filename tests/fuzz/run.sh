#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for
# FUZZ_SECONDS seconds (default 45), starting from the committed corpus in
# tests/fuzz/corpus/<target>/. A crash fails the run and its input is copied
# into that corpus directory as a regression seed: commit it with the fix.
# New coverage found along the way stays in build-fuzz/ and is not committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-45}
targets=(info config resp http prom discover)

CC=clang cmake -S . -B build-fuzz -DREDPULSE_FUZZ=ON -DREDPULSE_WERROR=ON -DBUILD_TESTING=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc 2>/dev/null || echo 2)" --target "${targets[@]/#/fuzz_}"

# one fuzz_<target> run; its result line (and on failure its log's tail)
# goes to build-fuzz/result-<target>
fuzz_one() {
    local t=$1 work=build-fuzz/corpus-$1 art=build-fuzz/artifacts-$1 log=build-fuzz/fuzz-$1.log
    local out=build-fuzz/result-$t
    rm -rf "$art"
    mkdir -p "$work" "$art"
    if build-fuzz/tests/fuzz_"$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$art/" -print_final_stats=1 "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
        echo "fuzz_$t: ok, $runs inputs in ${secs}s" >"$out"
        return 0
    fi
    {
        echo "fuzz_$t: FAILED"
        tail -n 40 "$log"
        for f in "$art"/*; do
            [ -e "$f" ] || continue
            cp "$f" "tests/fuzz/corpus/$t/regression-$(basename "$f")"
            echo "kept $f as tests/fuzz/corpus/$t/regression-$(basename "$f")"
        done
    } >"$out"
    return 1
}

# as many at a time as there are cores: the fuzzers time nothing, and one
# at a time they were a seventh of the suite's wall time
par=$(nproc 2>/dev/null || echo 2)
failed=0
pids=()
for t in "${targets[@]}"; do
    fuzz_one "$t" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$par" ]; then
        wait "${pids[0]}" || failed=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do
    wait "$p" || failed=1
done
for t in "${targets[@]}"; do
    cat "build-fuzz/result-$t"
done
exit $failed
