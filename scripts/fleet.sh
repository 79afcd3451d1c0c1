#!/usr/bin/env bash
# The local fleet: two stock nginx-rtmp origins on loopback, rtmplb in front
# of them in rtmp mode (conf/examples/fleet-local.yaml), and ffmpeg
# publishing a live test pattern through rtmplb. Everything runs in the background; state and logs
# live in run/fleet/.
#   scripts/fleet.sh          install, build, start, verify, print the URLs
#   scripts/fleet.sh stop     stop everything it started (by PID)
#   scripts/fleet.sh status   what is running
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state=$root/run/fleet
conf=conf/examples/fleet-local.yaml
front=1935
origins=("a 19351 18081" "b 19352 18082")
stream=test

pids() { cat "$state"/*.pid 2>/dev/null || true; }

stop_all() {
  [ -d "$state" ] || { echo "fleet: nothing running"; return 0; }
  # rtmplb and the publisher first, then the origins (master and workers).
  for f in publisher rtmplb; do
    [ -f "$state/$f.pid" ] && kill "$(cat "$state/$f.pid")" 2>/dev/null || true
  done
  for o in "${origins[@]}"; do
    set -- $o
    pidf=$state/origin-$1/nginx.pid
    [ -f "$pidf" ] && kill -TERM "$(cat "$pidf")" 2>/dev/null || true
  done
  sleep 1
  for f in "$state"/*.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true; done
  rm -f "$state"/*.pid
  echo "fleet: stopped (logs kept in $state)"
}

status() {
  local any=0
  for f in "$state"/*.pid; do
    [ -f "$f" ] || continue
    any=1
    if kill -0 "$(cat "$f")" 2>/dev/null; then echo "running  $(basename "$f" .pid) pid $(cat "$f")";
    else echo "DEAD     $(basename "$f" .pid)"; fi
  done
  [ $any = 1 ] || echo "fleet: nothing running"
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

case "${1:-start}" in
  stop) stop_all; exit 0 ;;
  status) status; exit 0 ;;
  start) ;;
  *) echo "usage: scripts/fleet.sh [start|stop|status]" >&2; exit 2 ;;
esac

if [ -n "$(pids)" ]; then
  echo "fleet: already running; stopping the old one first"
  stop_all
fi

scripts/deps.sh run
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target rtmplb >/dev/null
mkdir -p "$state"

for port in $front 19351 19352 18081 18082 18080; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "fleet: 127.0.0.1:$port is already in use; free it or stop what holds it" >&2
    exit 1
  fi
done

# Two stock origins, each with its own prefix, config and loopback ports.
for o in "${origins[@]}"; do
  set -- $o
  prefix=$state/origin-$1
  mkdir -p "$prefix/logs"
  cat > "$prefix/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events { worker_connections 1024; }
rtmp {
    server {
        listen 127.0.0.1:$2;
        chunk_size 4096;
        application live { live on; record off; }
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
        listen 127.0.0.1:$3;
        location /stat { rtmp_stat all; }
    }
}
EOF
  nginx -p "$prefix" -c "$prefix/nginx.conf" >"$prefix/logs/stdout.log" 2>&1 &
  echo $! > "$state/origin-$1.pid"
  wait_port "$2" 10 "origin-$1"
done

# The admin API's bearer token (the config points at this file).
if [ ! -s "$state/admin.token" ]; then
  (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$state/admin.token")
fi
chmod 600 "$state/admin.token"
token=$(cat "$state/admin.token")
./build/rtmplb -t -c $conf
./build/rtmplb -c $conf >"$state/rtmplb.log" 2>&1 &
echo $! > "$state/rtmplb.pid"
for ((i = 0; i < 100; i++)); do grep -q " started " "$state/rtmplb.log" && break; sleep 0.1; done
grep -q " started " "$state/rtmplb.log" || { cat "$state/rtmplb.log" >&2; exit 1; }

ffmpeg -hide_banner -nostats -loglevel warning -re \
  -f lavfi -i "testsrc2=size=640x360:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=44100" \
  -c:v libx264 -preset veryfast -tune zerolatency -g 50 -sc_threshold 0 -pix_fmt yuv420p \
  -c:a aac -b:a 96k -f flv "rtmp://127.0.0.1:$front/live/$stream" >"$state/publisher.log" 2>&1 &
echo $! > "$state/publisher.pid"

# Wait for the stream to be live on an origin, then play it back through
# rtmplb for a few seconds to prove it flows.
on=""
for ((i = 0; i < 100; i++)); do
  for o in "${origins[@]}"; do
    set -- $o
    if curl -fs "http://127.0.0.1:$3/stat" | grep -q "<name>$stream</name>"; then on=origin-$1; fi
  done
  [ -n "$on" ] && break
  sleep 0.1
done
[ -n "$on" ] || { echo "fleet: the test stream never went live; see $state/publisher.log" >&2; exit 1; }

frames=$(timeout 20 ffmpeg -hide_banner -nostats -loglevel error -rw_timeout 5000000 \
  -i "rtmp://127.0.0.1:$front/live/$stream" -t 4 -map 0:v:0 -f framemd5 - 2>/dev/null \
  | grep -vc '^#' || true)

cat <<EOF

rtmplb fleet is up.
  rtmplb        rtmp://127.0.0.1:$front  (config $conf, log $state/rtmplb.log)
  origin-a      rtmp://127.0.0.1:19351   stats http://127.0.0.1:18081/stat
  origin-b      rtmp://127.0.0.1:19352   stats http://127.0.0.1:18082/stat
  test stream   live/$stream, published through rtmplb, placed on $on by stream_affinity;
                played back through rtmplb: $frames frames decoded in 4 s

Play it:
  ffplay rtmp://127.0.0.1:$front/live/$stream
  ffmpeg -i rtmp://127.0.0.1:$front/live/$stream -f null -
Publish your own (OBS: server rtmp://127.0.0.1:$front/live, any key); each
stream lands on one origin, and its players follow it there:
  ffmpeg -re -i FILE -c copy -f flv rtmp://127.0.0.1:$front/live/NAME
Watch the sessions rtmplb routes:
  tail -f $state/rtmplb.log
Steer it (admin API on http://127.0.0.1:18080; the status page is still to come):
  T="Authorization: Bearer $token"
  curl -H "\$T" http://127.0.0.1:18080/api/v1/upstreams     # origins: health, weight, sessions
  curl -H "\$T" http://127.0.0.1:18080/api/v1/sessions      # live sessions
  curl -H "\$T" 'http://127.0.0.1:18080/api/v1/locate?app=live&stream=$stream&role=play'
  curl -H "\$T" -X POST -d '{"state":"draining"}' http://127.0.0.1:18080/api/v1/pools/origins/nodes/$on
  curl -H "\$T" -X DELETE http://127.0.0.1:18080/api/v1/overrides
  curl -H "\$T" http://127.0.0.1:18080/metrics              # Prometheus
Stop it all:
  scripts/fleet.sh stop
EOF
[ "$frames" -gt 0 ] || { echo "fleet: WARNING: no frames came back through rtmplb" >&2; exit 1; }
