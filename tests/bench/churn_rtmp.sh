#!/usr/bin/env bash
# RTMP set-up churn: live plays per second through rtmplb's front door (rtmp
# mode, 2 workers) versus straight to a local nginx-rtmp origin, and through
# HAProxy (TCP mode, forced splice, 2 threads) as a plain L4 reference, in
# the same run. PAR rtmp_probe processes (tests/bench/rtmp_probe.c) each play
# PER times in a row: TCP connect, handshake, connect/createStream/play, the
# first media byte, close (the client closes first). A play counts when its
# first media byte arrives. Per target: plays/s (good plays / wall time of
# the round), p50/p99 connect-to-first-media-byte, the proxy's CPU per play
# (utime+stime from /proc/PID/stat), ratios vs direct. Median of ROUNDS
# interleaved rounds.
# The first media byte waits for the publisher's next frame: the test stream
# carries 96 kHz AAC (a frame every 10.7 ms) so that this wait stays small
# next to the set-up itself; it is the same for every target. Measured here:
# one play alone takes ~44 ms straight to nginx-rtmp, most of it likely a
# stall in the origin's replies (strace shows it setting no TCP_NODELAY; a
# ~40 ms step is Nagle against the player's delayed ACK; not proven), so at PAR in flight plays/s is bound by that latency, not by
# CPU; the proxies' CPU per play is the figure that does not depend on it.
# About 3 * ROUNDS * PAR * PER connections in all, far from TIME_WAIT limits.
# Loopback only. Not part of ctest: figures, not pass/fail.
#   tests/bench/churn_rtmp.sh [PER] [ROUNDS] [PAR]
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
per=${1:-60}
rounds=${2:-3}
par=${3:-16}

scripts/deps.sh bench
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target rtmplb rtmp_probe >/dev/null

bench_workdir
[ -n "${BENCH_DEBUG:-}" ] && trap "cat $work/*.log $work/origin/*.log; bench_cleanup" EXIT

op=$(port); hp=$(port); lp=$(port); hap=$(port)
nginx_rtmp_origin "$work/origin" "$op" "$hp" 4096
cat > "$work/rtmplb.yaml" <<CONF
workers: 2
log: {access_log: off, level: warn}
listeners: [{name: rtmp, address: 127.0.0.1:$lp, mode: rtmp}]
pools: {origins: {nodes: [{name: origin, address: 127.0.0.1:$op}]}}
routes: [{name: live, pool: origins, policy: stream_affinity}]
CONF
./build/rtmplb -c "$work/rtmplb.yaml" 2>"$work/rtmplb.log" & lbpid=$!; pids+=($lbpid)
haproxy_splice "$work/haproxy.cfg" "$hap" "127.0.0.1:$op" 4000; happid=$hap_pid
ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=640x360:rate=25 \
  -f lavfi -i sine=sample_rate=96000 -c:v libx264 -preset veryfast -tune zerolatency -g 50 \
  -c:a aac -f flv "rtmp://127.0.0.1:$op/live/bench" >"$work/ffmpeg.log" 2>&1 & pids+=($!)
wait_stat_stream "$hp" bench || true
wait_port "$lp"; wait_port "$hap"
sleep 1

cpu_ticks() { [ -z "$1" ] && { echo 0; return; }; awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# run NAME PORT PID: PAR probes at once, PER plays each; appends
# "NAME wall_ns cpu_ticks" to $work/rounds and the probes' lines to NAME.txt.
run() {
  local t0 t1 c0 c1 ps=() k
  c0=$(cpu_ticks "$3")
  t0=$(date +%s%N)
  for ((k = 0; k < par; k++)); do
    timeout 120 ./build/rtmp_probe --count "$per" 127.0.0.1 "$2" live bench >"$work/p$k.txt" 2>/dev/null &
    ps+=($!)
  done
  for k in "${ps[@]}"; do wait "$k" || true; done
  t1=$(date +%s%N)
  c1=$(cpu_ticks "$3")
  echo "$1 $((t1 - t0)) $((c1 - c0)) $(cat "$work"/p*.txt | grep -c '^ok' || true)" >>"$work/rounds"
  cat "$work"/p*.txt >>"$work/$1.txt"
  rm -f "$work"/p*.txt
}

run direct "$op" "" # warm-up, not counted
rm -f "$work/rounds" "$work/direct.txt"
for ((r = 0; r < rounds; r++)); do
  run direct "$op" ""
  run rtmplb "$lp" "$lbpid"
  run haproxy-splice "$hap" "$happid"
done

python3 - "$work" "$hz" "$per" "$rounds" "$par" "$(nproc)" <<'PY'
import sys
work, hz, per, rounds, par, cores = sys.argv[1:]
hz = int(hz)
targets = ["direct", "rtmplb", "haproxy-splice"]
rates, cpus = {t: [] for t in targets}, {t: [] for t in targets}
for line in open(work + "/rounds"):
    name, ns, ticks, ok = line.split()
    ok = int(ok)
    rates[name].append(ok / (int(ns) / 1e9))
    cpus[name].append(int(ticks) / hz / ok * 1e6 if ok else 0)
def med(v):
    v = sorted(v)
    return v[(len(v) - 1) // 2] if v else 0
def pct(v, q):
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else 0
lat, fails, errs = {}, {}, {}
for t in targets:
    ok, bad = [], {}
    for line in open("%s/%s.txt" % (work, t)):
        w = line.split(None, 1)
        if w and w[0] == "ok":
            ok.append(int(w[1]) / 1000.0)
        else:
            bad[line.strip()] = bad.get(line.strip(), 0) + 1
    lat[t], fails[t], errs[t] = sorted(ok), sum(bad.values()), bad
print()
print("RTMP live plays (connect to first media byte, then close), nginx-rtmp origin, loopback, "
      "%s cores: %s probes x %s plays per round, median of %s rounds; proxies with 2 threads"
      % (cores, par, per, rounds))
print("%-15s %8s %7s %6s %8s %8s %9s %6s" % ("path", "plays/s", "vs dir", "fail", "p50 ms", "p99 ms",
                                              "us/play", "rounds"))
d = med(rates["direct"])
for t in targets:
    r = med(rates[t])
    cpu = "-" if t == "direct" else "%.0f" % med(cpus[t])
    print("%-15s %8.0f %6.2fx %6d %8.2f %8.2f %9s %6d" % (t, r, r / d if d else 0, fails[t],
          pct(lat[t], .5), pct(lat[t], .99), cpu, len(rates[t])))
print("each round's plays/s:")
for t in targets:
    print("  %-15s %s" % (t, " ".join("%.0f" % x for x in rates[t])))
for t in targets:
    for e, n in errs[t].items():
        print("%s: %d x %s" % (t, n, e))
print("us/play = proxy CPU (user+sys) microseconds per good play")
PY
