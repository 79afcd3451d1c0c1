#!/usr/bin/env bash
# Does the admin API disturb the data path? Bulk TCP throughput through
# rtmplb (tcp mode, 2 workers, splice) with a client polling /metrics and
# /api/v1/sessions, upstreams, streams and the status page (GET /) 20 times a
# second each, versus the same run without it:
# the same rtmplb process, rounds alternating off/on, every cell the median
# of ROUNDS runs; the ratio on/off is the figure (target: within 3%). The
# poller's own figures (requests done, their rate, errors, latency) show it
# really ran at that rate while iperf3 moved the bytes. Loopback only. Not
# part of ctest: figures, not pass/fail.
#   tests/bench/admin_disturb.sh [SECONDS_PER_RUN] [ROUNDS] [CONNS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
secs=${1:-5}
rounds=${2:-5}
shift $(( $# >= 2 ? 2 : $# )) || true
conns_list=("$@")
[ ${#conns_list[@]} -eq 0 ] && conns_list=(1 16)
build=${BENCH_BUILD:-build-bench}

scripts/deps.sh bench
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target rtmplb >/dev/null

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${BENCH_DEBUG:-}" ] && trap "cat $work/*.log; cleanup" EXIT

srv=$(port); lbp=$(port); adm=$(port)
iperf3 -s -p "$srv" >"$work/iperf3.log" 2>&1 & pids+=($!)
wait_port "$srv"

token=bench-token-$$
printf '%s\n' "$token" >"$work/token"
chmod 600 "$work/token"
cat > "$work/rtmplb.yaml" <<EOF
workers: 2
log: {access_log: off, level: warn}
admin: {address: 127.0.0.1:$adm, token_file: $work/token}
listeners: [{name: bench, address: 127.0.0.1:$lbp, mode: tcp}]
pools: {p: {nodes: [{name: iperf, address: 127.0.0.1:$srv}]}}
routes: [{name: r, pool: p}]
EOF
./"$build"/rtmplb -c "$work/rtmplb.yaml" 2>"$work/rtmplb.log" & lbpid=$!; pids+=($lbpid)
wait_port "$lbp"; wait_port "$adm"

# The poller: every 50 ms, GET /metrics, /api/v1/sessions, /api/v1/upstreams,
# /api/v1/streams and the status page with its server-side snapshot (GET /),
# on one keep-alive connection each (a scraper and forty open status pages'
# worth of refreshes); on SIGTERM it writes "requests seconds errors p50_ms
# p99_ms".
cat > "$work/poll.py" <<'PY'
import http.client, signal, sys, time
port, token, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
hdr = {"Authorization": "Bearer " + token}
conns = {p: http.client.HTTPConnection("127.0.0.1", port, timeout=5)
         for p in ("/metrics", "/api/v1/sessions?limit=1000", "/api/v1/upstreams",
                   "/api/v1/streams", "/")}
lat, errors, stop = [], 0, False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
t0 = time.monotonic()
tick = t0
while not stop:
    for path, c in conns.items():
        s = time.monotonic()
        try:
            c.request("GET", path, headers=hdr)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                errors += 1
        except Exception:
            errors += 1
            c.close()
        lat.append(time.monotonic() - s)
    tick += 0.05
    time.sleep(max(0.0, tick - time.monotonic()))
el = time.monotonic() - t0
lat.sort()
q = lambda f: 1000 * lat[min(len(lat) - 1, int(f * len(lat)))] if lat else 0
open(out, "w").write("%d %.2f %d %.2f %.2f\n" % (len(lat), el, errors, q(0.5), q(0.99)))
PY

# run CONNS -> Gbit/s
run() {
  iperf3 -c 127.0.0.1 -p "$lbp" -t "$secs" -P "$1" -J >"$work/run.json" 2>/dev/null || true
  python3 - "$work/run.json" <<'PY'
import json, sys
try:
    print("%.3f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception:
    print("0")
PY
}

declare -A res
polls=()
for conns in "${conns_list[@]}"; do
  for ((r = 0; r < rounds; r++)); do
    # Alternate which goes first, so neither always follows the other.
    order="off on"; (( r % 2 )) && order="on off"
    for mode in $order; do
      if [ $mode = on ]; then
        python3 "$work/poll.py" "$adm" "$token" "$work/poll.out" & pp=$!
        sleep 0.5
      fi
      g=$(run "$conns")
      res[$mode,$conns]+="$g "
      if [ $mode = on ]; then
        kill -TERM "$pp"; wait "$pp" || true
        polls+=("$conns $(cat "$work/poll.out")")
      fi
    done
  done
done
kill -0 "$lbpid" || { echo "rtmplb died; its log:"; cat "$work/rtmplb.log"; exit 1; }

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo
echo "Admin API vs data path: loopback, $(nproc) cores, rtmplb 2 workers (tcp, splice),"
echo "iperf3 ${secs}s x $rounds alternating rounds (median); poller: /metrics, sessions, upstreams, streams, / every 50 ms"
printf '%6s %14s %14s %8s   %s\n' conns "off Gbit/s" "on Gbit/s" "on/off" "runs off | on"
for conns in "${conns_list[@]}"; do
  off=$(echo "${res[off,$conns]}" | median)
  on=$(echo "${res[on,$conns]}" | median)
  ratio=$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }')
  printf '%6s %14s %14s %8s   %s| %s\n' "$conns" "$off" "$on" "$ratio" "${res[off,$conns]}" "${res[on,$conns]}"
done
echo
echo "Poller during the 'on' runs (per run): requests, seconds, errors, p50 ms, p99 ms; rate"
for p in "${polls[@]}"; do
  set -- $p
  printf '  conns %-3s %5s req %6ss %3s err  p50 %6s ms  p99 %7s ms  %5.1f req/s\n' \
    "$1" "$2" "$3" "$4" "$5" "$6" "$(awk -v n="$2" -v s="$3" 'BEGIN { print (s > 0) ? n / s : 0 }')"
done
