#!/usr/bin/env bash
# The long fuzz campaign (issue 12 item 8; not CI). For each target: start
# from the kept corpus tests/fuzz/corpus/<target>/, run JOBS libFuzzer
# processes on one shared working corpus (they pick up each other's finds)
# until RUNS executions in total or MINUTES per target, then merge the
# working corpus back into a minimised tests/fuzz/corpus/<target>/ (only
# inputs that add coverage; at most MAXLEN bytes each, at most a budget of
# 32 KiB per target, 64 KiB for stats and config, smallest first). A crash, leak or
# timeout input is copied to tests/fuzz/regress/<target>/, which ctest
# replays (unit.fuzz_regress.<target>), and the campaign exits 1.
#   tests/fuzz/campaign.sh [--runs N] [--minutes M] [--jobs J] [--no-merge] [TARGET...]
# Defaults: --runs 10000000 per target, --minutes 60 per target, --jobs 2,
# every target. Prints per target: executions, coverage (edges, features),
# corpus files and bytes before/after, crashes. Work files go under
# ${TMPDIR:-/tmp}/rtmplb-fuzz-campaign.*; kept on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=10000000
minutes=60
jobs=2
merge=1
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --no-merge) merge=0; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "campaign: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=(fuzz_conf fuzz_handshake fuzz_chunk fuzz_amf fuzz_proxy fuzz_stats fuzz_admin_http
     fuzz_message fuzz_front_rtmp fuzz_compat fuzz_session_rtmp fuzz_front_http)
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

build=build-fuzz
cmake -S . -B $build -DCMAKE_C_COMPILER=clang -DRTMPLB_FUZZ=ON -DRTMPLB_TESTS=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build $build -j2 --target "${targets[@]}" >/dev/null

# The largest input kept per target: documents and whole sessions need room.
maxlen() {
  case $1 in
    fuzz_stats) echo 65536 ;;
    fuzz_conf|fuzz_front_rtmp|fuzz_admin_http|fuzz_front_http) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

# What one target may keep in the repository: after the merge, the smallest
# inputs first up to this many bytes (the rest is reported as pruned).
budget() {
  case $1 in
    fuzz_stats|fuzz_conf) echo 65536 ;;
    *) echo 32768 ;;
  esac
}

# Bytes of the files under a directory (du would count the directories too).
bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

root=$(mktemp -d "${TMPDIR:-/tmp}/rtmplb-fuzz-campaign.XXXXXX")
status=0
per_job=$(( (runs + jobs - 1) / jobs ))
for t in "${targets[@]}"; do
  keep=tests/fuzz/corpus/$t
  work=$root/$t
  mkdir -p "$work/corpus" "$work/artifacts" "$keep"
  cp "$keep"/* "$work/corpus/" 2>/dev/null || true
  n0=$(find "$keep" -type f | wc -l)
  b0=$(bytes "$keep")
  if [ "$n0" -eq 0 ]; then
    echo "$t: no kept corpus in $keep (run the seed scripts first)" >&2
    status=1
    continue
  fi
  ml=$(maxlen "$t")
  pids=()
  for ((j = 0; j < jobs; j++)); do
    ./$build/tests/fuzz/$t -runs="$per_job" -max_total_time=$((minutes * 60)) -max_len="$ml" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -reload=5 -seed=$((RANDOM * 32768 + RANDOM + j)) \
      -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/job$j.log" 2>&1 &
    pids+=($!)
  done
  crashed=0
  for p in "${pids[@]}"; do wait "$p" || crashed=1; done
  execs=0
  cov=0
  for ((j = 0; j < jobs; j++)); do
    e=$(grep -Eo "stat::number_of_executed_units: [0-9]+" "$work/job$j.log" | grep -Eo "[0-9]+$" || true)
    [ -z "$e" ] && e=$(grep -Eo "^#[0-9]+" "$work/job$j.log" | tail -1 | tr -d '#')
    execs=$((execs + ${e:-0}))
    c=$(grep -Eo "cov: [0-9]+" "$work/job$j.log" | tail -1 | grep -Eo "[0-9]+" || echo 0)
    [ "$c" -gt "$cov" ] && cov=$c
  done
  found=$(find "$work/artifacts" -type f | wc -l)
  if [ "$found" -gt 0 ] || [ $crashed -ne 0 ]; then
    mkdir -p "tests/fuzz/regress/$t"
    cp "$work"/artifacts/* "tests/fuzz/regress/$t/" 2>/dev/null || true
    echo "$t: CRASH ($found artifact(s) copied to tests/fuzz/regress/$t/); logs in $work" >&2
    grep -h -A30 -E "^==[0-9]+==ERROR|runtime error|deadly signal|ALARM" "$work"/job*.log | head -60 >&2 || true
    status=1
  fi
  pruned=0
  if [ $merge -eq 1 ]; then
    # Minimise: only inputs that add coverage, kept corpus first.
    rm -rf "$work/merged"
    mkdir -p "$work/merged"
    ./$build/tests/fuzz/$t -merge=1 -max_len="$ml" -rss_limit_mb=2048 -timeout=10 \
      "$work/merged" "$keep" "$work/corpus" >"$work/merge.log" 2>&1 || {
        echo "$t: merge failed, kept corpus unchanged; see $work/merge.log" >&2; status=1; }
    pruned=0
    if [ "$(find "$work/merged" -type f | wc -l)" -gt 0 ]; then
      find "$keep" -type f -delete
      used=0
      cap=$(budget "$t")
      while read -r sz f; do
        if [ $((used + sz)) -le "$cap" ]; then
          cp "$f" "$keep/"
          used=$((used + sz))
        else
          pruned=$((pruned + 1))
        fi
      done < <(find "$work/merged" -type f -printf '%s %p\n' | sort -n)
    fi
  fi
  n1=$(find "$keep" -type f | wc -l)
  b1=$(bytes "$keep")
  ft=$(grep -Eo "ft: [0-9]+" "$work/job0.log" | tail -1 | grep -Eo "[0-9]+" || echo "?")
  echo "$t: $execs executions ($jobs jobs), cov $cov edges, ft $ft, corpus $n0 files/$b0 B -> $n1 files/$b1 B (${pruned:-0} pruned over budget), crashes $found"
done
total=$(bytes tests/fuzz/corpus)
echo "kept corpus: $total bytes in tests/fuzz/corpus/"
[ "$total" -gt 409600 ] && echo "campaign: the kept corpus is over 400 KiB: lower MAXLEN or prune" >&2
[ $status -eq 0 ] && rm -rf "$root"
exit $status
