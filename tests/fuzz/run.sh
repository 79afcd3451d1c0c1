#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for N seconds
# (default 60), seeded from the kept corpus tests/fuzz/corpus/<target>/
# (tests/fuzz/campaign.sh, the long run, grows and minimises it; the seed_*.py
# scripts wrote the first seeds). Prints executions and any crash.
#   tests/fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
build=build-fuzz

cmake -S . -B $build -DCMAKE_C_COMPILER=clang -DRTMPLB_FUZZ=ON -DRTMPLB_TESTS=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build $build -j"$(nproc)" --target fuzz_conf fuzz_handshake fuzz_chunk fuzz_amf fuzz_proxy fuzz_stats fuzz_admin_http fuzz_message fuzz_front_rtmp fuzz_compat fuzz_session_rtmp fuzz_front_http >/dev/null

status=0
for target in fuzz_conf fuzz_handshake fuzz_chunk fuzz_amf fuzz_proxy fuzz_stats fuzz_admin_http \
              fuzz_message fuzz_front_rtmp fuzz_compat fuzz_session_rtmp fuzz_front_http; do
  work=$(mktemp -d)
  mkdir -p "$work/corpus"
  # Every target starts from its kept corpus (tests/fuzz/campaign.sh grows
  # and minimises it); one that has none would fuzz from nothing and still
  # report clean, so that is a failure.
  if ! cp tests/fuzz/corpus/$target/* "$work/corpus/" 2>/dev/null; then
    echo "$target: FAILED: no seed corpus in tests/fuzz/corpus/$target/" >&2
    status=1
    rm -rf "$work"
    continue
  fi
  log="$work/log"
  if ./$build/tests/fuzz/$target -print_final_stats=1 -max_total_time="$secs" -max_len=8192 -timeout=10 \
       -rss_limit_mb=2048 -artifact_prefix="$work/" "$work/corpus" >"$log" 2>&1; then
    execs=$(grep -Eo "stat::number_of_executed_units: [0-9]+" "$log" | grep -Eo "[0-9]+$" || true)
    [ -z "$execs" ] && execs=$(grep -Eo "^#[0-9]+" "$log" | tail -1 | tr -d '#')
    echo "$target: ${secs}s, ${execs:-?} executions, no crash"
  else
    echo "$target: FAILED (crash or leak); log and artifacts in $work" >&2
    tail -40 "$log" >&2
    status=1
    continue
  fi
  rm -rf "$work"
done
exit $status
