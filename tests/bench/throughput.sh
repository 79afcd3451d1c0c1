#!/usr/bin/env bash
# Bulk TCP throughput through rtmplb (tcp mode) versus direct and versus
# HAProxy in TCP mode, with forced splice and without, in the same run.
# iperf3 sends over 1 and 64 connections; every cell is the median of
# ROUNDS interleaved runs. Also prints the proxy's CPU time per GB moved.
# Loopback only. Not part of ctest: figures, not pass/fail.
#   tests/bench/throughput.sh [SECONDS_PER_RUN] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
secs=${1:-5}
rounds=${2:-3}

scripts/deps.sh bench
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target rtmplb >/dev/null

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${BENCH_DEBUG:-}" ] && trap "cat $work/*.log; cleanup" EXIT


srv=$(port); lbp=$(port); hsp=$(port); hcp=$(port)
iperf3 -s -p "$srv" >"$work/iperf3.log" 2>&1 & pids+=($!)
wait_port "$srv"

cat > "$work/rtmplb.yaml" <<EOF
workers: 2
log: {access_log: off, level: warn}
listeners: [{name: bench, address: 127.0.0.1:$lbp, mode: tcp}]
pools: {p: {nodes: [{name: iperf, address: 127.0.0.1:$srv}]}}
routes: [{name: r, pool: p}]
EOF
./build/rtmplb -c "$work/rtmplb.yaml" 2>"$work/rtmplb.log" & lbpid=$!; pids+=($lbpid)

for mode in splice copy; do
  p=$hsp; [ $mode = copy ] && p=$hcp
  opts=""; [ $mode = splice ] && opts=$'    option splice-request\n    option splice-response'
  cat > "$work/haproxy-$mode.cfg" <<EOF
global
    nbthread 2
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
$opts
frontend f
    bind 127.0.0.1:$p
    default_backend b
backend b
    server s1 127.0.0.1:$srv
EOF
  haproxy -db -f "$work/haproxy-$mode.cfg" >"$work/haproxy-$mode.log" 2>&1 &
  pids+=($!)
  eval "hp_$mode=$!"
done
wait_port "$lbp"; wait_port "$hsp"; wait_port "$hcp"

cpu_ticks() { [ -z "$1" ] && { echo 0; return; }; awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# run TARGET PORT PID CONNS -> "gbps cpu_s_per_GB"
run() {
  local t0 t1
  t0=$(cpu_ticks "$3")
  iperf3 -c 127.0.0.1 -p "$2" -t "$secs" -P "$4" -J >"$work/run.json" 2>/dev/null || true
  t1=$(cpu_ticks "$3")
  python3 - "$work/run.json" "$((t1 - t0))" "$hz" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    bps = d["end"]["sum_received"]["bits_per_second"]
    gb = d["end"]["sum_received"]["bytes"] / 1e9
except Exception:
    print("0 0"); sys.exit()
cpu = int(sys.argv[2]) / int(sys.argv[3])
print("%.3f %.3f" % (bps / 1e9, cpu / gb if gb else 0))
PY
}

targets=("direct $srv" "rtmplb $lbp $lbpid" "haproxy-splice $hsp $hp_splice" "haproxy-copy $hcp $hp_copy")
declare -A res cpu
for conns in 1 64; do
  for ((r = 0; r < rounds; r++)); do
    for t in "${targets[@]}"; do
      set -- $t
      read -r g c < <(run "$1" "$2" "${3:-}" "$conns")
      res[$1,$conns]+="$g "
      cpu[$1,$conns]+="$c "
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo
echo "Bulk throughput, loopback, $(nproc) cores, iperf3 ${secs}s x $rounds rounds (median); proxies with 2 threads"
printf '%-16s %6s %10s %9s %16s\n' target conns Gbit/s "vs direct" "proxy CPU s/GB"
for conns in 1 64; do
  d=$(echo "${res[direct,$conns]}" | median)
  for t in "${targets[@]}"; do
    set -- $t
    g=$(echo "${res[$1,$conns]}" | median)
    c=$(echo "${cpu[$1,$conns]}" | median)
    ratio=$(awk -v g="$g" -v d="$d" 'BEGIN { printf "%.2fx", (d > 0) ? g / d : 0 }')
    [ "$1" = direct ] && c="-"
    printf '%-16s %6s %10s %9s %16s\n' "$1" "$conns" "$g" "$ratio" "$c"
  done
done
