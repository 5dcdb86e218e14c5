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

failed=0
for t in "${targets[@]}"; do
    work=build-fuzz/corpus-$t
    art=build-fuzz/artifacts-$t
    log=build-fuzz/fuzz-$t.log
    rm -rf "$art"
    mkdir -p "$work" "$art"
    if build-fuzz/tests/fuzz_"$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$art/" -print_final_stats=1 "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
        echo "fuzz_$t: ok, $runs inputs in ${secs}s"
    else
        echo "fuzz_$t: FAILED"
        tail -n 40 "$log"
        for f in "$art"/*; do
            [ -e "$f" ] || continue
            cp "$f" "tests/fuzz/corpus/$t/regression-$(basename "$f")"
            echo "kept $f as tests/fuzz/corpus/$t/regression-$(basename "$f")"
        done
        failed=1
    fi
done
exit $failed
