#!/usr/bin/env bash
# Connection churn: short TCP sessions shaped like an RTMP handshake, direct
# versus through rtmplb (tcp-mode listener) versus HAProxy in TCP mode with
# forced splice and without, in the same run. Proxies get 2 threads each.
# Each session (tests/bench/churn_client.c -> churn_backend.c): connect,
# client sends 1537 bytes, backend answers 3073, client sends 1536, close.
# Two variants: the backend closes first / the client closes first (both
# normal FIN closes). 16 sessions in flight. Reports sessions/s, p50/p99
# set-up latency (connect() to the first byte of the backend's answer), the
# proxy's CPU per session (utime+stime of /proc/PID/stat over the run /
# sessions), and ratios vs direct and vs HAProxy-splice. Every cell is the
# median of ROUNDS interleaved runs (a ratio: the median of per-round
# ratios); "be-ok" is the share of the client's good sessions that the
# backend also saw complete (1.00 = nothing lost on the way).
#
# TIME_WAIT: each run is bounded (SECONDS_PER_RUN, at most MAX_SESSIONS).
# No SO_LINGER 0: a reset instead of a FIN would change what the proxies do
# on close (that path is part of the cost measured). Instead the client binds
# its sockets to 127.0.0.2..127.0.0.9 in turn (IP_BIND_ADDRESS_NO_PORT), the
# same for every target, so the client legs have 8x the port space; the
# proxies' legs to the backend rely on the kernel's loopback TIME_WAIT reuse
# (net.ipv4.tcp_tw_reuse=2, the default), also the same for both proxies.
# Past net.ipv4.tcp_max_tw_buckets (131072 here) the kernel stops keeping
# TIME_WAIT sockets; a warm-up pass fills that table before the measured runs,
# so all of them see the same (full) state. The script prints the TIME_WAIT
# count at the end and every run's errors. The machine's noise is large (one
# cell varies 2x between runs of the same round set): read the per-run line
# and run it twice. Loopback only. Not part of ctest: figures, not pass/fail.
#   tests/bench/churn.sh [SECONDS_PER_RUN] [ROUNDS] [MAX_SESSIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
secs=${1:-2}
rounds=${2:-7}
maxs=${3:-40000}
conc=16

scripts/deps.sh bench
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target rtmplb >/dev/null

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${BENCH_DEBUG:-}" ] && trap "cat $work/*.log; cleanup" EXIT

for b in churn_client churn_backend; do
  ${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror -o "$work/$b" "tests/bench/$b.c"
done

srv=$(port); lbp=$(port); hsp=$(port); hcp=$(port)
"$work/churn_backend" 127.0.0.1 "$srv" >"$work/backend.out" 2>"$work/backend.log" & bepid=$!; pids+=($bepid)
wait_port "$srv"

cat > "$work/rtmplb.yaml" <<EOF
workers: 2
log: {access_log: off, level: warn}
listeners: [{name: bench, address: 127.0.0.1:$lbp, mode: tcp}]
pools: {p: {nodes: [{name: backend, address: 127.0.0.1:$srv}]}}
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

# The backend's counters for the run that just ended (it prints them on
# SIGUSR1 and starts again from zero): "complete short reset extra".
backend_counts() {
  local before
  before=$(wc -l <"$work/backend.out")
  sleep 0.3 # let the proxies deliver the last closes
  kill -USR1 "$bepid"
  for ((i = 0; i < 50; i++)); do
    [ "$(wc -l <"$work/backend.out")" -gt "$before" ] && break
    sleep 0.05
  done
  tail -n 1 "$work/backend.out" | awk '{print $2, $4, $6, $8}'
}

# run TARGET PORT PID VARIANT -> one line in $work/runs
run() {
  local t0 t1 out
  t0=$(cpu_ticks "$3")
  out=$("$work/churn_client" --conc "$conc" --secs "$secs" --max "$maxs" --sources 8 \
          --close "$4" 127.0.0.1 "$2")
  t1=$(cpu_ticks "$3")
  echo "$1 $4 $out cpu $((t1 - t0)) backend $(backend_counts)" >>"$work/runs"
  [ -n "${BENCH_DEBUG:-}" ] && tail -n 1 "$work/runs" >&2
  return 0
}

targets=("direct $srv" "rtmplb $lbp $lbpid" "haproxy-splice $hsp $hp_splice" "haproxy-copy $hcp $hp_copy")
# Warm-up, not counted: one short run per target and variant, so that every
# process has its memory and threads up and the kernel's TIME_WAIT table is
# as full in the first measured run as in the last (see above).
for v in backend client; do
  for t in "${targets[@]}"; do
    set -- $t
    "$work/churn_client" --conc "$conc" --secs 1 --max "$maxs" --sources 8 --close "$v" \
      127.0.0.1 "$2" >/dev/null
  done
done
backend_counts >/dev/null
for ((r = 0; r < rounds; r++)); do
  for v in backend client; do
    for t in "${targets[@]}"; do
      set -- $t
      run "$1" "$2" "${3:-}" "$v"
    done
  done
done
tw=$(ss -Htan state time-wait | wc -l)

python3 - "$work/runs" "$hz" "$secs" "$rounds" "$maxs" "$conc" "$(nproc)" "$tw" <<'PY'
import sys
runs, hz, secs, rounds, maxs, conc, cores, tw = sys.argv[1:]
hz = int(hz)
cells = {}
for line in open(runs):
    w = line.split()
    f = {w[i]: w[i + 1] for i in range(2, len(w) - 1) if w[i] in
         ("ok", "err", "rate", "p50_us", "p99_us", "cpu", "connect", "timeout", "eof", "reset", "extra")}
    be = w[-4:]  # backend: complete short reset extra
    ok = int(f["ok"])
    cells.setdefault((w[0], w[1]), []).append({
        "rate": float(f["rate"]), "p50": int(f["p50_us"]) / 1000, "p99": int(f["p99_us"]) / 1000,
        "cpu": int(f["cpu"]) / hz / ok * 1e6 if ok else 0, "err": int(f["err"]),
        "beok": int(be[0]) / ok if ok and be else 0,
        "errs": " ".join("%s=%s" % (k, f[k]) for k in ("connect", "timeout", "eof", "reset", "extra")
                         if f[k] != "0")})
def med(v):
    v = sorted(v)
    return v[(len(v) - 1) // 2]
targets = ["direct", "rtmplb", "haproxy-splice", "haproxy-copy"]
# Ratios are taken round by round (runs of one round are seconds apart, so a
# slow spell of the machine hits both sides), then the median of those.
def ratio(t, ref, v, k):
    a, b = cells.get((t, v), []), cells.get((ref, v), [])
    return med([x[k] / y[k] for x, y in zip(a, b) if y[k]] or [0])
print()
print("Connection churn, loopback, %s cores: %s in flight, 1537/3073/1536-byte exchange, "
      "%s s or %s sessions per run, median of %s rounds; proxies with 2 threads"
      % (cores, conc, secs, maxs, rounds))
print("%-15s %-8s %9s %7s %8s %8s %8s %9s %7s %5s %5s"
      % ("target", "closes", "sess/s", "vs dir", "vs hap-s", "p50 ms", "p99 ms", "us/sess",
         "CPU/hs", "be-ok", "err"))
for v in ("backend", "client"):
    m = {t: {k: med([c[k] for c in cells.get((t, v), [{k: 0}])]) for k in ("rate", "p50", "p99", "cpu", "beok")}
         for t in targets}
    for t in targets:
        c = m[t]
        err = sum(x["err"] for x in cells.get((t, v), []))
        rd, rh = ratio(t, "direct", v, "rate"), ratio(t, "haproxy-splice", v, "rate")
        cpu = "-" if t == "direct" else "%.1f" % c["cpu"]
        ch = "-" if t == "direct" else "%.2fx" % ratio(t, "haproxy-splice", v, "cpu")
        print("%-15s %-8s %9.0f %6.2fx %7.2fx %8.2f %8.2f %9s %7s %5.2f %5d"
              % (t, v, c["rate"], rd, rh, c["p50"], c["p99"], cpu, ch, c["beok"], err))
print("each run's sess/s:")
for v in ("backend", "client"):
    for t in targets:
        print("  %-15s %-8s %s" % (t, v, " ".join("%.0f" % x["rate"] for x in cells.get((t, v), []))))
bad = [(k, x["errs"]) for k, l in cells.items() for x in l if x["errs"]]
for k, e in bad:
    print("errors in a %s/%s run: %s" % (k[0], k[1], e))
print("us/sess = proxy CPU (user+sys) microseconds per session; CPU/hs = that vs haproxy-splice; "
      "TIME_WAIT sockets at the end: %s" % tw)
PY
