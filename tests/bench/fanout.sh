#!/usr/bin/env bash
# Fan-out cost and reconnect storms (issue 15): N players of one ~900 kbit/s
# stream (ffmpeg, a pre-encoded clip pushed with -re -c copy) from one stock
# nginx-rtmp origin, straight to the origin ("direct"), through rtmplb
# (rtmp mode, 2 workers, listeners[].coalesce at its default, and at 0s as
# "rtmplb-c0") and through HAProxy (Debian haproxy, tcp mode, forced splice,
# 2 threads), in one interleaved run. Players: tests/bench/rtmp_fanout.c
# (epoll, one process, sources 127.0.0.2..51 against TIME_WAIT).
#
# Fan-out, per N and target: players with media, per-player rate p5/p50
# over the measured window, time to first media p50/p99, delivered Mbit/s,
# CPU-seconds per delivered Gbit of the origin, of the middle box and of
# the whole experiment (origin + middle + players + publisher; the machine
# total from /proc/stat is shown too, it includes whatever else runs),
# rtmplb's RSS growth per player. Median of REPS rounds.
# Storm: STORM players all at once: ms until 50/95/100% have media, and
# ListenOverflows (/proc/net/netstat, system-wide) during the run; rtmplb
# also with max_dials: 0 ("rtmplb-nolim") to show what the limit does
# (BENCH_MAX_DIALS sets "rtmplb"'s, default 64: the shipped default), and
# with listeners[].early_dial: true ("rtmplb-early": the origin dialled at
# the client's C0C1, not on its play). BENCH_FANOUT_TARGETS and
# BENCH_STORM_TARGETS choose the targets of each part.
# Loopback only; a shared machine makes every figure noisy. Not in ctest.
#   tests/bench/fanout.sh [NS="500 1500" ("": no fan-out)] [REPS=2] [SECS=25] [STORM=1500]
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
ns=${1-"500 1500"} # "": storms only
reps=${2:-2}
secs=${3:-25}
storm=${4:-1500}
warm=$((secs / 4 > 3 ? secs / 4 : 3))
bdir=${BENCH_BUILD:-build} # BENCH_BUILD: another build directory; BENCH_NO_BUILD=1: use it as it is
ulimit -n "$(ulimit -Hn)"

if [ -z "${BENCH_NO_BUILD:-}" ]; then
  scripts/deps.sh bench >/dev/null
  cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$bdir" -j2 --target rtmplb rtmp_fanout >/dev/null
fi

bench_workdir

op=$(port); hp=$(port); lp=$(port); l0=$(port); ln=$(port); hap=$(port)
# Stock nginx-rtmp (listen backlog 511), with room for the players' sockets.
nginx_rtmp_origin "$work/origin" "$op" "$hp" 8192
lbconf() { # NAME PORT COALESCE("": the default) MAX_DIALS [EXTRA listener settings]
  cat > "$work/$1.yaml" <<CONF
workers: 2
log: {access_log: off, level: warn}
limits: {max_sessions: 8000}
listeners: [{name: rtmp, address: 127.0.0.1:$2, mode: rtmp${3:+, coalesce: $3}${5:+, $5}}]
pools: {origins: {nodes: [{name: origin, address: 127.0.0.1:$op, max_dials: $4}]}}
routes: [{name: live, pool: origins, policy: stream_affinity}]
CONF
  "$bdir"/rtmplb -c "$work/$1.yaml" 2>"$work/$1.log" &
}
lbconf rtmplb "$lp" "" "${BENCH_MAX_DIALS:-64}"; lbpid=$!; pids+=($lbpid)
lbconf rtmplb-c0 "$l0" 0s 64; lb0pid=$!; pids+=($lb0pid)
lbconf rtmplb-nolim "$ln" "" 0; lbnpid=$!; pids+=($lbnpid)
lne=$(port); lbconf rtmplb-early "$lne" "" "${BENCH_MAX_DIALS:-64}" "early_dial: true"; lbnepid=$!; pids+=($lbnepid)
haproxy_splice "$work/haproxy.cfg" "$hap" "127.0.0.1:$op" 5000; happid=$hap_pid
# ~900 kbit/s: 640x360 25 fps H.264 at 800k + AAC 96k, encoded once.
ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=640x360:rate=25 \
  -f lavfi -i sine=frequency=440:sample_rate=44100 -t 30 -c:v libx264 -preset veryfast \
  -b:v 800k -maxrate 800k -bufsize 800k -g 50 -pix_fmt yuv420p -c:a aac -b:a 96k \
  -f flv "$work/clip.flv"
ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$work/clip.flv" -c copy \
  -f flv "rtmp://127.0.0.1:$op/live/bench" >"$work/ffmpeg.log" 2>&1 & pubpid=$!; pids+=($pubpid)
wait_stat_stream "$hp" bench || true
wait_port "$lp"; wait_port "$l0"; wait_port "$ln"; wait_port "$lne"; wait_port "$hap"
sleep 2
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
declare -A rss_base # each middle box idle, before any player
for p in $lbpid $lb0pid $lbnpid $lbnepid $happid; do rss_base[$p]=$(rss_kb "$p"); done
origin_pids() { echo "$(cat "$work/origin/nginx.pid") $(pgrep -P "$(cat "$work/origin/nginx.pid")" | tr '\n' ' ')"; }
ticks() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
machine() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
overflows() { awk '/^TcpExt:/{if(!h){for(i=1;i<=NF;i++)k[i]=$i;h=1}else{for(i=1;i<=NF;i++)if(k[i]=="ListenOverflows")print $i}}' /proc/net/netstat; }
hz=$(getconf CLK_TCK)

# run KIND TARGET N PORT MIDPID SECS WARM RATE: appends one result line.
run() {
  local kind=$1 tgt=$2 n=$3 prt=$4 mid=$5 s=$6 w=$7 rate=$8 opids fp o0 m0 p0 q0 x0 o1 m1 p1 q1 x1 t0 t1 r0 r1 lo0 lo1
  opids=$(origin_pids)
  r0=0; [ "$mid" != 0 ] && r0=${rss_base[$mid]}
  lo0=$(overflows)
  "$bdir"/rtmp_fanout --players "$n" --rate "$rate" --secs "$s" --warm "$w" --src 50 \
    127.0.0.1 "$prt" live bench >"$work/out.txt" 2>&1 & fp=$!
  sleep "$w"
  t0=$(date +%s%N); o0=$(ticks $opids); m0=$(ticks "$mid"); p0=$(ticks "$fp"); q0=$(ticks "$pubpid"); x0=$(machine)
  sleep "$(python3 -c "print(max(0.5, $s - $w - 0.5))")"
  t1=$(date +%s%N); o1=$(ticks $opids); m1=$(ticks "$mid"); p1=$(ticks "$fp"); q1=$(ticks "$pubpid"); x1=$(machine)
  r1=0; [ "$mid" != 0 ] && r1=$(rss_kb "$mid")
  wait "$fp" || true
  lo1=$(overflows)
  echo "$kind $tgt $n $((t1 - t0)) $((o1 - o0)) $((m1 - m0)) $((p1 - p0)) $((q1 - q0)) $((x1 - x0)) $((r1 - r0)) $((lo1 - lo0)) $(tr '\n' ' ' <"$work/out.txt")" >>"$work/results"
  sleep 5 # sessions end, sockets close, the origin settles
}

mid_of() { case $1 in direct) echo 0;; rtmplb) echo $lbpid;; rtmplb-c0) echo $lb0pid;; rtmplb-nolim) echo $lbnpid;; rtmplb-early) echo $lbnepid;; haproxy-splice) echo $happid;; esac; }
port_of() { case $1 in direct) echo $op;; rtmplb) echo $lp;; rtmplb-c0) echo $l0;; rtmplb-nolim) echo $ln;; rtmplb-early) echo $lne;; haproxy-splice) echo $hap;; esac; }
: >"$work/results"
for ((r = 0; r < reps; r++)); do
  for n in $ns; do
    for t in ${BENCH_FANOUT_TARGETS:-direct rtmplb rtmplb-c0 haproxy-splice}; do
      run fanout "$t" "$n" "$(port_of $t)" "$(mid_of $t)" "$secs" "$warm" 500
    done
  done
  if [ "$storm" -gt 0 ]; then
    for t in ${BENCH_STORM_TARGETS:-direct rtmplb rtmplb-early rtmplb-nolim haproxy-splice}; do
      run storm "$t" "$storm" "$(port_of $t)" "$(mid_of $t)" 10 5 0
    done
  fi
done
[ -n "${BENCH_KEEP:-}" ] && echo "raw results: $work/results"

python3 - "$work/results" "$hz" "$(nproc)" "$secs" "$warm" <<'PY'
import sys, collections
path, hz, cores, secs, warm = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rows = collections.defaultdict(list)
for line in open(path):
    w = line.split()
    kind, tgt, n = w[0], w[1], int(w[2])
    ns, o, m, p, q, x, rss, lo = map(int, w[3:11])
    kv = dict(t.split("=", 1) for t in w[11:] if "=" in t)
    win = float(kv.get("window_s", 1)) or 1
    # the players' CPU rate comes from the tool (it may end before the last sample)
    prate = float(kv.get("cpu_window_s", 0)) / win
    rows[(kind, tgt, n)].append(dict(s=ns / 1e9, o=o / hz, m=m / hz, p=prate * ns / 1e9, q=q / hz,
                                     x=x / hz, rss=rss, lo=lo, **kv))
def med(v):
    v = sorted(v)
    return v[(len(v) - 1) // 2] if v else float("nan")
def f(rs, k):
    return med([float(r.get(k, "nan")) for r in rs])
print()
print("Fan-out: N players of one ~900 kbit/s stream, stock nginx-rtmp origin, loopback, %s cores;"
      " window %s..%s s; median of rounds" % (cores, warm, secs))
hdr = ("target", "N", "media", "p5 kb/s", "p50 kb/s", "ttfm p50", "ttfm p99", "Mbit/s",
       "orig s/Gb", "mid s/Gb", "exp s/Gb", "mach s/Gb", "KiB/plr", "rounds")
print("%-15s %5s %6s %8s %8s %8s %8s %7s %9s %9s %9s %9s %7s %6s" % hdr)
for (kind, tgt, n), rs in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][2], ["direct", "rtmplb", "rtmplb-early", "rtmplb-c0", "rtmplb-nolim", "haproxy-splice"].index(kv[0][1]))):
    if kind != "fanout":
        continue
    def per_gbit(key):
        v = []
        for r in rs:
            gbps = float(r.get("delivered_mbps", 0)) / 1000
            v.append((r[key] / r["s"]) / gbps if gbps else float("nan"))
        return med(v)
    exp = []
    for r in rs:
        gbps = float(r.get("delivered_mbps", 0)) / 1000
        exp.append(((r["o"] + r["m"] + r["p"] + r["q"]) / r["s"]) / gbps if gbps else float("nan"))
    rss = "-" if tgt == "direct" else "%.1f" % (med([r["rss"] for r in rs]) / n)
    mid = "-" if tgt == "direct" else "%.3f" % per_gbit("m")
    print("%-15s %5d %6.0f %8.0f %8.0f %8.1f %8.1f %7.0f %9.3f %9s %9.3f %9.3f %7s %6d" % (
        tgt, n, f(rs, "with_media"), f(rs, "rate_p5_kbps"), f(rs, "rate_p50_kbps"),
        f(rs, "ttfm_p50_ms"), f(rs, "ttfm_p99_ms"), f(rs, "delivered_mbps"), per_gbit("o"),
        mid, med(exp), per_gbit("x"), rss, len(rs)))
print("s/Gb = CPU-seconds per delivered Gbit: origin (nginx), middle box, experiment (origin +"
      " middle + players + publisher), machine (/proc/stat, includes other load)")
print("ttfm = TCP connect to the first audio/video message, ms; KiB/plr = middle box RSS at the end of the window, above its idle RSS, per player")
print()
print("Storm: players all at once; ms from the first connect until 50/95/100% have media")
print("%-15s %5s %6s %8s %8s %8s %10s %9s" % ("target", "N", "media", "50% ms", "95% ms", "100% ms", "overflows", "ttfm p99"))
for (kind, tgt, n), rs in sorted(rows.items(), key=lambda kv: ["direct", "rtmplb", "rtmplb-early", "rtmplb-c0", "rtmplb-nolim", "haproxy-splice"].index(kv[0][1])):
    if kind != "storm":
        continue
    print("%-15s %5d %6.0f %8.0f %8.0f %8.0f %10s %9.1f" % (tgt, n, f(rs, "with_media"),
          f(rs, "media50_ms"), f(rs, "media95_ms"), f(rs, "media100_ms"),
          "/".join(str(r["lo"]) for r in rs), f(rs, "ttfm_p99_ms")))
print("overflows = ListenOverflows during the run, each round (system-wide counter); -1 ms: never reached")
for (kind, tgt, n), rs in sorted(rows.items()):
    for r in rs:
        if "first_error" in r:
            print("%s %s %d: first error: %s" % (kind, tgt, n, r["first_error"]))
PY
