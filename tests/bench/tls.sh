#!/usr/bin/env bash
# RTMPS termination: rtmplb (tcp-mode listener with tls) versus HAProxy
# (`bind ... ssl crt`), same OpenSSL (Debian's libssl3 for both), same
# cipher (TLS 1.3, TLS_AES_128_GCM_SHA256, the client insists), same
# certificate, both with 2 threads, in one interleaved run: TLS client ->
# proxy (terminates) -> plain sink. Bulk throughput over 1 and 64
# connections (median of ROUNDS), the proxy's CPU seconds per Gbit moved,
# and the proxy's memory per idle TLS session (IDLE connections held,
# RSS delta / IDLE). Loopback only. Not part of ctest: figures, not
# pass/fail. The client's TLS work shares the 2 cores with the proxy.
#   tests/bench/tls.sh [SECONDS_PER_RUN] [ROUNDS] [IDLE]
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
secs=${1:-5}
rounds=${2:-3}
idle=${3:-2000}

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target rtmplb >/dev/null

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${BENCH_DEBUG:-}" ] && trap "cat $work/*.log; cleanup" EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror -o "$work/tls_bench" tests/bench/tls_bench.c -lssl -lcrypto
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/k.pem" \
  -out "$work/c.pem" -days 90 -subj /CN=bench.test 2>/dev/null
cat "$work/c.pem" "$work/k.pem" > "$work/haproxy.pem"

srv=$(port); lbp=$(port); hp=$(port)
"$work/tls_bench" sink "$srv" >"$work/sink.log" 2>&1 & pids+=($!)
wait_port "$srv"

cat > "$work/rtmplb.yaml" <<YAML
workers: 2
log: {access_log: off, level: warn}
timeouts: {idle: 10m}
listeners:
  - {name: bench, address: 127.0.0.1:$lbp, mode: tcp, tls: {certificates: [{cert: $work/c.pem, key: $work/k.pem}]}}
pools: {p: {nodes: [{name: sink, address: 127.0.0.1:$srv}]}}
routes: [{name: r, pool: p}]
YAML
./build/rtmplb -c "$work/rtmplb.yaml" 2>"$work/rtmplb.log" & lbpid=$!; pids+=($lbpid)

cat > "$work/haproxy.cfg" <<CFG
global
    nbthread 2
    maxconn 8000
    tune.ssl.default-dh-param 2048
defaults
    mode tcp
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend f
    bind 127.0.0.1:$hp ssl crt $work/haproxy.pem ssl-min-ver TLSv1.2
    default_backend b
backend b
    server s1 127.0.0.1:$srv
CFG
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 & hppid=$!; pids+=($hppid)
wait_port "$lbp"; wait_port "$hp"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

# run PORT PID CONNS -> "gbps cpu_s_per_gbit"
run() {
  local t0 t1 out
  t0=$(cpu_ticks "$2")
  out=$("$work/tls_bench" send 127.0.0.1 "$1" "$3" "$secs")
  t1=$(cpu_ticks "$2")
  awk -v o="$out" -v t=$((t1 - t0)) -v hz="$hz" 'BEGIN {
    split(o, f, " "); gbps = f[6]; gbit = f[2] * 8 / 1e9;
    printf "%.3f %.4f\n", gbps, (gbit > 0 ? (t / hz) / gbit : 0) }'
}

targets=("rtmplb $lbp $lbpid" "haproxy $hp $hppid")
declare -A res cpu mem
for conns in 1 64; do
  for ((r = 0; r < rounds; r++)); do
    for t in "${targets[@]}"; do
      set -- $t
      read -r g c < <(run "$2" "$3" "$conns")
      res[$1,$conns]+="$g "
      cpu[$1,$conns]+="$c "
    done
  done
done

# Idle TLS sessions: RSS before, and while IDLE connections are held.
for t in "${targets[@]}"; do
  set -- $t
  sleep 1
  before=$(rss_kib "$3")
  "$work/tls_bench" idle 127.0.0.1 "$2" "$idle" 8 >"$work/idle-$1.out" &
  ip=$!
  for ((i = 0; i < 200; i++)); do grep -q '^ready' "$work/idle-$1.out" 2>/dev/null && break; sleep 0.05; done
  sleep 1
  during=$(rss_kib "$3")
  wait "$ip" || true
  mem[$1]=$(awk -v a="$before" -v b="$during" -v n="$idle" 'BEGIN { printf "%.2f", (b - a) / n }')
  echo "$1 idle: $(cat "$work/idle-$1.out"), RSS ${before} -> ${during} KiB" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo
echo "RTMPS termination, loopback, $(nproc) cores, ${secs}s x $rounds rounds (median), proxies with 2 threads,"
echo "TLS 1.3 TLS_AES_128_GCM_SHA256, $(openssl version | cut -d' ' -f1-2)"
printf '%-9s %6s %9s %14s %16s %16s\n' target conns Gbit/s "vs haproxy" "CPU s/Gbit" "CPU vs haproxy"
for conns in 1 64; do
  hg=$(echo "${res[haproxy,$conns]}" | median); hc=$(echo "${cpu[haproxy,$conns]}" | median)
  for t in "${targets[@]}"; do
    set -- $t
    g=$(echo "${res[$1,$conns]}" | median); c=$(echo "${cpu[$1,$conns]}" | median)
    printf '%-9s %6s %9s %14s %16s %16s\n' "$1" "$conns" "$g" \
      "$(awk -v a="$g" -v b="$hg" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')" "$c" \
      "$(awk -v a="$c" -v b="$hc" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')"
  done
done
echo
printf '%-9s %22s %14s\n' target "idle KiB/TLS session" "vs haproxy"
for t in "${targets[@]}"; do
  set -- $t
  printf '%-9s %22s %14s\n' "$1" "${mem[$1]}" \
    "$(awk -v a="${mem[$1]}" -v b="${mem[haproxy]}" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')"
done
