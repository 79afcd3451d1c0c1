#!/usr/bin/env bash
# listeners[].early_dial: what dialling the node at the client's C0C1 saves
# a player when the node is far away. One stock nginx-rtmp origin with one
# ~900 kbit/s stream; a delay relay (tests/bench/delay_relay.py) puts
# ORIGIN_MS one way between rtmplb and the origin, and another CLIENT_MS
# one way between the players and rtmplb. Players (tests/bench/rtmp_fanout.c,
# 4 a second, so none waits for another) go through rtmplb with early_dial
# on and off, interleaved, and straight to the origin through both relays
# ("direct": the same path length without rtmplb). Reported: time to
# first media p50/p99 per target (median of rounds), and what the two
# rtmplb rows differ by. Loopback only; not in ctest.
#   tests/bench/early_dial.sh [ORIGIN_MS=20] [CLIENT_MS=20] [PLAYERS=40] [REPS=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
oms=${1:-20}
cms=${2:-20}
players=${3:-40}
reps=${4:-3}
bdir=${BENCH_BUILD:-build}
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  scripts/deps.sh bench >/dev/null
  cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$bdir" -j2 --target rtmplb rtmp_fanout >/dev/null
fi

bench_workdir
op=$(port); hp=$(port); orl=$(port); le=$(port); ll=$(port); cre=$(port); crl=$(port); crd=$(port)
nginx_rtmp_origin "$work/origin" "$op" "$hp" 1024
# rtmplb -> (ORIGIN_MS) -> origin
python3 tests/bench/delay_relay.py "$orl" "$op" "$oms" & pids+=($!)
cat > "$work/lb.yaml" <<CONF
workers: 2
log: {access_log: off, level: warn}
listeners:
  - {name: early, address: 127.0.0.1:$le, early_dial: true}
  - {name: late, address: 127.0.0.1:$ll}
pools: {origins: {nodes: [{name: origin, address: 127.0.0.1:$orl}]}}
routes: [{name: live, pool: origins, policy: least_sessions}]
CONF
"$bdir"/rtmplb -c "$work/lb.yaml" 2>"$work/lb.log" & pids+=($!)
# players -> (CLIENT_MS) -> rtmplb, or -> (CLIENT_MS) -> (ORIGIN_MS) -> origin
python3 tests/bench/delay_relay.py "$cre" "$le" "$cms" & pids+=($!)
python3 tests/bench/delay_relay.py "$crl" "$ll" "$cms" & pids+=($!)
python3 tests/bench/delay_relay.py "$crd" "$orl" "$cms" & pids+=($!)
ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=640x360:rate=25 \
  -f lavfi -i sine=frequency=440:sample_rate=44100 -t 30 -c:v libx264 -preset veryfast \
  -b:v 800k -maxrate 800k -bufsize 800k -g 50 -pix_fmt yuv420p -c:a aac -b:a 96k \
  -f flv "$work/clip.flv"
ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$work/clip.flv" -c copy \
  -f flv "rtmp://127.0.0.1:$op/live/bench" >"$work/ffmpeg.log" 2>&1 & pids+=($!)
wait_stat_stream "$hp" bench
for p in "$orl" "$le" "$ll" "$cre" "$crl" "$crd"; do wait_port "$p"; done
sleep 1

: >"$work/results"
secs=$(( players / 4 + 4 ))
for ((r = 0; r < reps; r++)); do
  for t in early late direct; do
    case $t in early) p=$cre;; late) p=$crl;; direct) p=$crd;; esac
    "$bdir"/rtmp_fanout --players "$players" --rate 4 --secs "$secs" --warm 1 --src 10 \
      127.0.0.1 "$p" live bench >"$work/out.txt" 2>&1 || true
    echo "$t $(tr '\n' ' ' <"$work/out.txt")" >>"$work/results"
    sleep 2
  done
done
[ -n "${BENCH_KEEP:-}" ] && echo "raw results: $work/results"

python3 - "$work/results" "$oms" "$cms" "$players" <<'PY'
import sys, collections
path, oms, cms, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = collections.defaultdict(list)
for line in open(path):
    w = line.split()
    rows[w[0]].append(dict(t.split("=", 1) for t in w[1:] if "=" in t))
def med(v):
    v = sorted(v)
    return v[(len(v) - 1) // 2] if v else float("nan")
def f(t, k):
    return med([float(r.get(k, "nan")) for r in rows[t]])
print()
print("Early dial: players 4/s, %s one way players<->rtmplb, %s one way rtmplb<->origin; median of rounds" % (cms, oms))
print("%-8s %7s %9s %9s %7s" % ("target", "media", "ttfm p50", "ttfm p99", "rounds"))
for t in ("early", "late", "direct"):
    print("%-8s %7.0f %9.1f %9.1f %7d" % (t, f(t, "with_media"), f(t, "ttfm_p50_ms"), f(t, "ttfm_p99_ms"), len(rows[t])))
print("early_dial saves %.1f ms at p50 (late - early); direct crosses both relays without rtmplb" % (
    f("late", "ttfm_p50_ms") - f("early", "ttfm_p50_ms")))
PY
