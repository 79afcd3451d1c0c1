#!/usr/bin/env bash
# HTTP-FLV fan-out: VIEWERS players of one live-paced FLV (an nginx origin
# sending a large file at RATE per connection, as a live stream arrives)
# directly, through rtmplb (mode: http, routed on the stream, spliced), and
# through L4 proxies blind to the stream (nginx stream, HAProxy tcp with
# splice), in one run. Prints delivered Mbit/s and the proxy's CPU seconds
# per Gbit delivered. Loopback only; figures, not pass/fail.
#   tests/bench/http_fanout.sh [VIEWERS] [SECONDS] [RATE]
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
viewers=${1:-1000}
secs=${2:-10}
rate=${3:-125k}   # bytes/s per viewer (125k = 1 Mbit/s)

scripts/deps.sh bench
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target rtmplb http_fanout_client >/dev/null
client=./build/http_fanout_client

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${BENCH_DEBUG:-}" ] && trap "tail -n 5 $work/*.log; cleanup" EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

org=$(port); lbp=$(port); ngs=$(port); hap=$(port)
mkdir -p "$work/www/live" "$work/origin/logs" "$work/l4/logs"
truncate -s 4G "$work/www/live/show.flv"   # sparse: a stream that outlasts the run
cat > "$work/origin/nginx.conf" <<EOF
daemon off; master_process on; worker_processes 1; pid $work/origin/nginx.pid;
error_log $work/origin/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log off; sendfile on;
  client_body_temp_path $work/origin/body; proxy_temp_path $work/origin/proxy;
  fastcgi_temp_path $work/origin/fcgi; uwsgi_temp_path $work/origin/uwsgi; scgi_temp_path $work/origin/scgi;
  server { listen 127.0.0.1:$org backlog=4096; location /live/ { root $work/www; limit_rate $rate; } }
}
EOF
nginx -p "$work/origin" -c "$work/origin/nginx.conf" 2>"$work/origin.log" & pids+=($!)

cat > "$work/rtmplb.yaml" <<EOF
workers: 1
log: {access_log: off, level: warn}
listeners: [{name: web, address: 127.0.0.1:$lbp, mode: http}]
pools: {p: {nodes: [{name: o, address: 127.0.0.1:1, http: {address: 127.0.0.1:$org}}]}}
routes: [{name: r, pool: p, policy: stream_affinity}]
EOF
./build/rtmplb -c "$work/rtmplb.yaml" 2>"$work/rtmplb.log" & lbpid=$!; pids+=($lbpid)

ngpid=
if [ -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then
  cat > "$work/l4/nginx.conf" <<EOF
daemon off; master_process on; worker_processes 1; pid $work/l4/nginx.pid;
error_log $work/l4/logs/error.log warn;
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
events { worker_connections 8192; }
stream { server { listen 127.0.0.1:$ngs backlog=4096; proxy_pass 127.0.0.1:$org; } }
EOF
  nginx -p "$work/l4" -c "$work/l4/nginx.conf" 2>"$work/l4.log" & ngpid=$!; pids+=($ngpid)
fi
haproxy_splice "$work/haproxy.cfg" "$hap" "127.0.0.1:$org" 5000 1; happid=$hap_pid
wait_port "$org"; wait_port "$lbp"; wait_port "$hap"; [ -n "$ngpid" ] && wait_port "$ngs"

# The CPU of a proxy: its process and its children (nginx's worker).
cpu_ticks() {
  [ -z "$1" ] && { echo 0; return; }
  local t=0 p
  for p in "$1" $(ps -o pid= --ppid "$1"); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo $t
}
hz=$(getconf CLK_TCK)

run() { # NAME PORT PID
  local t0 t1 out
  t0=$(cpu_ticks "${3:-}")
  out=$($client 127.0.0.1 "$2" /live/show.flv "$viewers" "$secs")
  t1=$(cpu_ticks "${3:-}")
  set -- "$1" $out "$((t1 - t0))"
  # $1 name, bytes B seconds S mbps M answered A failed F, cpu ticks
  awk -v n="$1" -v b="$3" -v m="$7" -v a="$9" -v f="${11}" -v c="${12}" -v hz="$hz" 'BEGIN {
    gbit = b * 8 / 1e9
    cpu = c / hz
    printf "%-18s %10.1f %9d %7d %10.2f %16s\n", n, m, a, f, cpu,
           (n == "direct" || gbit == 0) ? "-" : sprintf("%.3f", cpu / gbit) }'
  sleep 2   # let the closed connections go
}

echo
echo "HTTP-FLV fan-out, loopback, $(nproc) cores: $viewers viewers x $rate/s, ${secs}s each; proxies with 1 worker/thread"
printf '%-18s %10s %9s %7s %10s %16s\n' target Mbit/s answered failed "proxy CPU s" "CPU s per Gbit"
run direct "$org"
run rtmplb "$lbp" "$lbpid"
[ -n "$ngpid" ] && run nginx-stream "$ngs" "$ngpid"
run haproxy-splice "$hap" "$happid"
