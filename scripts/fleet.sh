#!/usr/bin/env bash
# The local fleet: two stock nginx-rtmp origins, two stock nginx-rtmp edges
# whose `on_play` asks rtmplb which origin holds a stream, and rtmplb in
# front with two listeners (publishers -> origins by stream_affinity;
# viewers -> edges by least_sessions, or `?line=direct` straight to the
# origin by stream_location), health checks on every node, the admin API
# with a generated token and the status page. ffmpeg publishes a test
# pattern (and publishes again whenever its origin goes away); it is played
# back through the viewers' listener before the URLs are printed.
#
#   scripts/fleet.sh [OPTIONS] [start]   install, build, start, verify, print the URLs
#   scripts/fleet.sh [OPTIONS] stop      stop everything it started (by PID)
#   scripts/fleet.sh [OPTIONS] status    what runs, and the nodes as rtmplb sees them
#   scripts/fleet.sh [OPTIONS] kill NODE     SIGKILL a node (nginx master and workers)
#   scripts/fleet.sh [OPTIONS] revive NODE   start a killed node again
#   scripts/fleet.sh [OPTIONS] geo       the geo demo beside the fleet (see README)
# OPTIONS
#   --run-dir DIR    state, configs, logs, PIDs (default run/fleet)
#   --port-base N    ports N..N+13 instead of the defaults (see ports below)
#   --listen ADDR    address of rtmplb's listeners and admin API (default
#                    127.0.0.1; 0.0.0.0 exposes them; the nodes stay on loopback)
#   --rtmplb BIN     use this binary: no apt-get, no build (the tests use it)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

state=$root/run/fleet
base=""
listen=127.0.0.1
bin=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --run-dir) state=$(realpath -m "$2"); shift 2 ;;
    --port-base) base=$2; shift 2 ;;
    --listen) listen=$2; shift 2 ;;
    --rtmplb) bin=$(realpath "$2"); shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- "${args[@]+"${args[@]}"}"
cmd=${1:-start}
template=$root/conf/examples/fleet-local.yaml
stream=test
nodes=(origin-a origin-b edge-1 edge-2)

# Ports: name, default (as in conf/examples/fleet-local.yaml), offset from --port-base.
port_table=(
  "pub 1935 0" "play 1936 1" "admin 18080 2"
  "origin-a 19351 3" "origin-b 19352 4" "edge-1 19361 5" "edge-2 19362 6"
  "origin-a-http 18081 7" "origin-b-http 18082 8" "edge-1-http 18091 9" "edge-2-http 18092 10"
  "geo 1937 11" "geo-jp 1938 12" "geo-us 1939 13")
declare -A P
set_ports() {
  local row
  for row in "${port_table[@]}"; do
    set -- $row
    if [ -n "$base" ]; then P[$1]=$((base + $3)); else P[$1]=$2; fi
  done
}

save_env() {
  {
    echo "base=${base@Q}"
    echo "listen=${listen@Q}"
    echo "bin=${bin@Q}"
  } > "$state/fleet.env"
}
load_env() { # a running fleet's options win over the command line's
  [ -f "$state/fleet.env" ] && . "$state/fleet.env"
  set_ports
}

host_for() { # what clients dial: the listen address, or this machine's for a wildcard
  case "$listen" in
    0.0.0.0|::|'[::]') hostname -I 2>/dev/null | awk '{print $1}' | grep . || echo 127.0.0.1 ;;
    *) echo "$listen" ;;
  esac
}
admin_local() { # how the edges (on this machine) reach the admin API
  case "$listen" in 0.0.0.0|::|'[::]') echo 127.0.0.1 ;; *) echo "$listen" ;; esac
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

nginx_kill() { # NODE SIGNAL: the master and its workers (a SIGKILLed master leaves its workers)
  local pidf=$state/$1/nginx.pid master workers
  [ -f "$pidf" ] || pidf=$state/$1.pid
  [ -f "$pidf" ] || return 0
  master=$(cat "$pidf")
  kill -0 "$master" 2>/dev/null || return 0
  workers=$(ps -o pid= --ppid "$master" || true)
  kill -"$2" "$master" 2>/dev/null || true
  if [ "$2" = KILL ]; then
    for w in $workers; do kill -KILL "$w" 2>/dev/null || true; done
  fi
}

stop_all() {
  [ -d "$state" ] || { echo "fleet: nothing running"; return 0; }
  load_env
  local f n i
  # The publisher loop (it stops its ffmpeg), the geo demo, rtmplb, then the nodes.
  for f in publisher geo-publish-jp geo-publish-us geo-relay-jp geo-relay-us rtmplb-geo rtmplb; do
    alive "$state/$f.pid" && kill -TERM "$(cat "$state/$f.pid")" 2>/dev/null || true
  done
  for n in "${nodes[@]}"; do nginx_kill "$n" TERM; done
  for ((i = 0; i < 50; i++)); do
    local left=0
    for f in "$state"/*.pid "$state"/*/nginx.pid; do alive "$f" && left=1; done
    [ $left = 0 ] && break
    sleep 0.1
  done
  for n in "${nodes[@]}"; do nginx_kill "$n" KILL; done
  for f in "$state"/*.pid; do alive "$f" && kill -KILL "$(cat "$f")" 2>/dev/null || true; done
  rm -f "$state"/*.pid
  echo "fleet: stopped (logs kept in $state)"
}

api() { # PATH: GET with the token
  curl -fsS --max-time 5 -H "Authorization: Bearer $(cat "$state/admin.token")" \
    "http://$(admin_local):${P[admin]}$1"
}

status() {
  load_env
  local any=0 f
  for f in "$state"/*.pid; do
    [ -f "$f" ] || continue
    any=1
    if alive "$f"; then echo "running  $(basename "$f" .pid) pid $(cat "$f")";
    else echo "DEAD     $(basename "$f" .pid)"; fi
  done
  [ $any = 1 ] || { echo "fleet: nothing running"; return 0; }
  if alive "$state/rtmplb.pid"; then
    echo "nodes as rtmplb sees them (GET /api/v1/upstreams):"
    api /api/v1/upstreams | python3 -c '
import json, sys
for pool in json.load(sys.stdin)["pools"]:
    for n in pool["nodes"]:
        print("  %-8s %-9s %-5s %-9s sessions %d" % (pool["name"], n["name"], n["state"], n["admin"], n["sessions"]))
' || echo "  (the admin API did not answer)"
  fi
}

wait_port() { # port seconds what
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "fleet: $3 is not listening on 127.0.0.1:$1 (see $state)" >&2
  return 1
}

node_conf() { # NODE ROLE: a stock nginx-rtmp origin or edge, its own prefix and loopback ports
  local n=$1 prefix=$state/$1 app
  if [ "$2" = edge ]; then
    # No pull line: the 302 of rtmplb's /nginx/on_play makes the edge relay
    # from the origin holding the stream. idle_streams stays on (the player
    # arrives before the relay's publish does).
    app="application live {
            live on;
            on_play http://$(admin_local):${P[admin]}/nginx/on_play?node=$n&listener=publish;
        }"
  else
    app="application live { live on; record off; }"
  fi
  mkdir -p "$prefix/logs"
  cat > "$prefix/nginx.conf" <<EOF
# $n: a stock nginx-rtmp $2 of the demo fleet (scripts/fleet.sh).
daemon off;
master_process on;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events { worker_connections 1024; }
rtmp {
    server {
        listen 127.0.0.1:${P[$n]};
        chunk_size 4096;
        $app
    }
}
http {
    access_log off;
    client_body_temp_path $prefix/body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
    server {
        listen 127.0.0.1:${P[$n-http]};
        location /stat { rtmp_stat all; }
    }
}
EOF
}

start_node() {
  local n=$1 prefix=$state/$1
  nginx -p "$prefix" -c "$prefix/nginx.conf" >>"$prefix/logs/stdout.log" 2>&1 &
  echo $! > "$state/$n.pid"
  wait_port "${P[$n]}" 10 "$n"
}

rtmplb_conf() { # the example file with this fleet's ports, addresses and paths
  local row s1=() s2=() i=0
  for row in "${port_table[@]}"; do
    set -- $row
    case $1 in
      pub|play|admin) s2+=(-e "s|@P$i@|$listen:${P[$1]}|") ;;
      *) s2+=(-e "s|@P$i@|127.0.0.1:${P[$1]}|") ;;
    esac
    s1+=(-e "s|127\.0\.0\.1:$2\b|@P$i@|g")
    i=$((i + 1))
  done
  sed "${s1[@]}" "$template" | sed "${s2[@]}" \
    | sed -e "s|run/fleet/|$state/|g" -e "s|(scripts/fleet.sh), at its default|(scripts/fleet.sh), written by it from conf/examples/fleet-local.yaml with its|"
}

publisher_loop() { # publish the test pattern; publish again whenever the session ends
  local child=""
  trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; exit 0' TERM INT
  for ((n = 0; n < 100000; n++)); do
    ffmpeg -hide_banner -nostats -loglevel warning -re \
      -f lavfi -i "testsrc2=size=640x360:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=44100" \
      -c:v libx264 -preset veryfast -tune zerolatency -g 50 -sc_threshold 0 -pix_fmt yuv420p \
      -c:a aac -b:a 96k -f flv "rtmp://$(admin_local):${P[pub]}/live/$stream" </dev/null &
    child=$!
    wait "$child" || true
    child=""
    echo "fleet: publisher ended; publishing again in 2 s"
    sleep 2
  done
}

stat_has() { # NODE STREAM: the node's /stat lists the stream
  curl -fsS --max-time 2 "http://127.0.0.1:${P[$1-http]}/stat" 2>/dev/null | grep -q "<name>$2</name>"
}

case "$cmd" in
  stop) stop_all; exit 0 ;;
  status) status; exit 0 ;;
  kill)
    load_env
    [ -n "${2:-}" ] && [ -f "$state/$2/nginx.conf" ] || { echo "usage: scripts/fleet.sh kill NODE (${nodes[*]})" >&2; exit 2; }
    nginx_kill "$2" KILL; echo "fleet: $2 killed (SIGKILL, master and workers)"; exit 0 ;;
  revive)
    load_env
    [ -n "${2:-}" ] && [ -f "$state/$2/nginx.conf" ] || { echo "usage: scripts/fleet.sh revive NODE (${nodes[*]})" >&2; exit 2; }
    nginx_kill "$2" KILL; start_node "$2"; echo "fleet: $2 started again"; exit 0 ;;
  geo) load_env; . "$root/scripts/fleet-geo.sh"; exit 0 ;;
  start) ;;
  *) echo "usage: scripts/fleet.sh [--run-dir DIR] [--port-base N] [--listen ADDR] [--rtmplb BIN] [start|stop|status|kill NODE|revive NODE|geo]" >&2; exit 2 ;;
esac

if [ -d "$state" ] && ls "$state"/*.pid >/dev/null 2>&1; then
  echo "fleet: already running in $state; stopping the old one first"
  saved_base=$base saved_listen=$listen saved_bin=$bin
  stop_all
  base=$saved_base listen=$saved_listen bin=$saved_bin
fi
set_ports

if [ -z "$bin" ]; then
  scripts/deps.sh run
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)" --target rtmplb >/dev/null
  bin=$root/build/rtmplb
fi
mkdir -p "$state"
save_env
# A start that fails half-way stops what it started (logs stay in $state).
up_ok=0
trap '[ $up_ok = 1 ] || { echo "fleet: start failed; stopping what it started (logs in $state)" >&2; stop_all >&2; }' EXIT

for row in "${port_table[@]}"; do
  set -- $row
  case $1 in geo*) continue ;; pub|play|admin) h=$(admin_local) ;; *) h=127.0.0.1 ;; esac
  if (exec 3<>/dev/tcp/"$h"/"${P[$1]}") 2>/dev/null; then
    echo "fleet: $h:${P[$1]} ($1) is already in use; free it, or use --port-base" >&2
    exit 1
  fi
done

# The admin API's bearer token and the hooks' view of the fleet.
if [ ! -s "$state/admin.token" ]; then
  (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$state/admin.token")
fi
chmod 600 "$state/admin.token"
token=$(cat "$state/admin.token")

for n in origin-a origin-b; do node_conf "$n" origin; done
for n in edge-1 edge-2; do node_conf "$n" edge; done
for n in "${nodes[@]}"; do
  nginx -t -q -p "$state/$n" -c "$state/$n/nginx.conf"
  start_node "$n"
done

rtmplb_conf > "$state/rtmplb.yaml"
"$bin" -t -c "$state/rtmplb.yaml" 2>"$state/rtmplb-check.log" || { cat "$state/rtmplb-check.log" >&2; exit 1; }
"$bin" -c "$state/rtmplb.yaml" >"$state/rtmplb.log" 2>&1 &
echo $! > "$state/rtmplb.pid"
for ((i = 0; i < 100; i++)); do grep -qs " started " "$state/rtmplb.log" && break; sleep 0.1; done
grep -q " started " "$state/rtmplb.log" || { cat "$state/rtmplb.log" >&2; exit 1; }

# Every node up (health checks: rise 2 at 1 s).
up=""
for ((i = 0; i < 150; i++)); do
  up=$(api /api/v1/upstreams 2>/dev/null | python3 -c '
import json, sys
print(sum(n["state"] == "up" for p in json.load(sys.stdin)["pools"] for n in p["nodes"]))' 2>/dev/null || true)
  [ "$up" = 4 ] && break
  sleep 0.1
done
[ "$up" = 4 ] || { echo "fleet: only ${up:-0} of 4 nodes came up; see $state/rtmplb.log" >&2; exit 1; }

publisher_loop >>"$state/publisher.log" 2>&1 &
echo $! > "$state/publisher.pid"

on=""
for ((i = 0; i < 150; i++)); do
  for n in origin-a origin-b; do stat_has "$n" "$stream" && on=$n; done
  [ -n "$on" ] && break
  sleep 0.1
done
[ -n "$on" ] || { echo "fleet: the test stream never went live; see $state/publisher.log" >&2; exit 1; }

# Play it back through the viewers' listener (an edge relays it from $on).
host=$(host_for)
play_url="rtmp://$(admin_local):${P[play]}/live/$stream"
frames=$(timeout 25 ffmpeg -hide_banner -nostats -loglevel error -rw_timeout 10000000 \
  -i "$play_url" -t 4 -map 0:v:0 -f framemd5 - 2>/dev/null | grep -vc '^#' || true)
edge=""
for n in edge-1 edge-2; do
  grep -q "nginx_on_play asking=$n app=live name=$stream" "$state/rtmplb.log" && edge="$edge $n"
done
direct=$(timeout 25 ffmpeg -hide_banner -nostats -loglevel error -rw_timeout 10000000 \
  -i "$play_url?line=direct" -t 2 -map 0:v:0 -f framemd5 - 2>/dev/null | grep -vc '^#' || true)

up_ok=1
A=http://$host:${P[admin]}
self=scripts/fleet.sh
[ "$state" = "$root/run/fleet" ] || self="$self --run-dir $state"
cat <<EOF

rtmplb fleet is up (run dir $state).
  rtmplb      publish rtmp://$host:${P[pub]}/live   play rtmp://$host:${P[play]}/live
              config $state/rtmplb.yaml, log $state/rtmplb.log
  origin-a    rtmp://127.0.0.1:${P[origin-a]}   stats http://127.0.0.1:${P[origin-a-http]}/stat
  origin-b    rtmp://127.0.0.1:${P[origin-b]}   stats http://127.0.0.1:${P[origin-b-http]}/stat
  edge-1      rtmp://127.0.0.1:${P[edge-1]}   stats http://127.0.0.1:${P[edge-1-http]}/stat   (on_play asks rtmplb)
  edge-2      rtmp://127.0.0.1:${P[edge-2]}   stats http://127.0.0.1:${P[edge-2-http]}/stat
  test stream live/$stream, published through rtmplb, placed on $on by stream_affinity;
              played back through the viewers' listener (edge:${edge:- none seen}): $frames frames decoded in 4 s;
              on the low-latency line (?line=direct, straight to $on): $direct frames in 2 s

Status page:  $A/#token=$token
Metrics:      $A/metrics   (curl -H "Authorization: Bearer $token" $A/metrics)
Play:         ffplay rtmp://$host:${P[play]}/live/$stream                 (via an edge)
              ffplay 'rtmp://$host:${P[play]}/live/$stream?line=direct'   (the origin itself)
Publish:      ffmpeg -re -i FILE -c copy -f flv rtmp://$host:${P[pub]}/live/NAME
              (OBS: server rtmp://$host:${P[pub]}/live, any stream key)

Try this (watch the status page meanwhile):
  T="Authorization: Bearer $token"
  $self kill $on      # the publisher comes back on the other origin; edges follow
  $self revive $on
  curl -H "\$T" -X POST -d '{"state":"draining"}' $A/api/v1/pools/edges/nodes/edge-1   # drain an edge
  curl -H "\$T" -X POST -d '{"pool":"origins","policy":"stream_location"}' $A/api/v1/routes/viewers   # swap the viewers' line
  curl -H "\$T" '$A/api/v1/lines?app=live&stream=$stream&listener=play'   # the lines a viewer may pick
  curl -H "\$T" -X DELETE $A/api/v1/overrides                            # back to the file
  $self geo       # geo lines: clients "from JP" and "from US" via PROXY protocol
Stop it all:    $self stop
EOF
if [ "$frames" -le 0 ]; then echo "fleet: no frames came back through the viewers' listener" >&2; exit 1; fi
exit 0
