#!/usr/bin/env bash
# Time from TCP connect to the first media byte of a live play, through an
# rtmp-mode rtmplb versus straight to the nginx-rtmp origin, in the same run.
# rtmp_probe (tests/bench/rtmp_probe.c) plays PLAYS times each way, in
# interleaved rounds; prints p50/p90/p99 side by side. Loopback only.
#   tests/bench/first_byte.sh [PLAYS]
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
plays=${1:-200}
rounds=4

scripts/deps.sh run
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target rtmplb rtmp_probe >/dev/null

bench_workdir

op=$(port); hp=$(port); lp=$(port)
nginx_rtmp_origin "$work/origin" "$op" "$hp" 1024
cat > "$work/rtmplb.yaml" <<CONF
workers: 2
log: {access_log: off, level: warn}
listeners: [{name: rtmp, address: 127.0.0.1:$lp, mode: rtmp}]
pools: {origins: {nodes: [{name: origin, address: 127.0.0.1:$op}]}}
routes: [{name: live, pool: origins, policy: stream_affinity}]
CONF
./build/rtmplb -c "$work/rtmplb.yaml" 2>"$work/rtmplb.log" & pids+=($!)
ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=640x360:rate=25 \
  -f lavfi -i sine=sample_rate=44100 -c:v libx264 -preset veryfast -tune zerolatency -g 50 \
  -c:a aac -f flv "rtmp://127.0.0.1:$op/live/bench" >"$work/ffmpeg.log" 2>&1 & pids+=($!)
wait_stat_stream "$hp" bench || true
sleep 1

per=$((plays / rounds))
for ((r = 0; r < rounds; r++)); do
  ./build/rtmp_probe --count "$per" 127.0.0.1 "$op" live bench >>"$work/direct.txt" || true
  ./build/rtmp_probe --count "$per" 127.0.0.1 "$lp" live bench >>"$work/rtmplb.txt" || true
done

python3 - "$work/direct.txt" "$work/rtmplb.txt" <<'PY'
import sys
def load(p):
    ok, bad = [], 0
    for line in open(p):
        w = line.split()
        if w and w[0] == "ok":
            ok.append(int(w[1]) / 1000.0)
        else:
            bad += 1
    return sorted(ok), bad
def pct(v, q):
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]
d, db = load(sys.argv[1])
l, lb = load(sys.argv[2])
print()
print("Connect to first media byte of a live play (ms), nginx-rtmp origin, loopback")
print("%-10s %6s %6s %8s %8s %8s" % ("path", "plays", "fail", "p50", "p90", "p99"))
for name, v, b in (("direct", d, db), ("rtmplb", l, lb)):
    print("%-10s %6d %6d %8.2f %8.2f %8.2f" % (name, len(v), b, pct(v, .5), pct(v, .9), pct(v, .99)))
print("rtmplb - direct: p50 %+.2f ms, p99 %+.2f ms" % (pct(l, .5) - pct(d, .5), pct(l, .99) - pct(d, .99)))
PY
