# Helpers shared by the benchmark scripts (sourced, not run).

# A loopback TCP port nobody listens on now.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 5 s for something to listen on 127.0.0.1:$1.
wait_port() { for ((i = 0; i < 100; i++)); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# A stock nginx-rtmp origin under DIR (DIR/nginx.pid, DIR/logs/): rtmp on
# 127.0.0.1:RTMP_PORT (application live, chunk_size 4096), /stat on
# 127.0.0.1:STAT_PORT, CONNS worker connections (and twice that many file
# descriptors). Started in the background; its pid is appended to pids (the
# caller's cleanup kills the master by DIR/nginx.pid first).
#   nginx_rtmp_origin DIR RTMP_PORT STAT_PORT CONNS
nginx_rtmp_origin() {
  local dir=$1 rp=$2 sp=$3 conns=$4
  mkdir -p "$dir/logs"
  cat > "$dir/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $((conns * 2));
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events { worker_connections $conns; }
rtmp { server { listen 127.0.0.1:$rp; chunk_size 4096;
  application live { live on; record off; } } }
http { access_log off; client_body_temp_path $dir/body;
  server { listen 127.0.0.1:$sp; location /stat { rtmp_stat all; } } }
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/nginx.log" 2>&1 &
  pids+=($!)
  wait_port "$rp"
}

# Waits up to 10 s until the origin's /stat on STAT_PORT lists stream NAME.
wait_stat_stream() {
  for ((i = 0; i < 100; i++)); do
    curl -fs "http://127.0.0.1:$1/stat" | grep -q "<name>$2</name>" && return 0
    sleep 0.1
  done
  return 1
}

# HAProxy as the plain L4 reference: tcp mode, forced splice both ways,
# THREADS threads (default 2), from 127.0.0.1:PORT to BACKEND (host:port).
# Config in FILE, log next to it; started in the background, pid in hap_pid
# and in pids.
#   haproxy_splice FILE PORT BACKEND MAXCONN [THREADS]
haproxy_splice() {
  cat > "$1" <<CONF
global
    nbthread ${5:-2}
    maxconn $4
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option splice-request
    option splice-response
frontend f
    bind 127.0.0.1:$2
    default_backend b
backend b
    server origin $3
CONF
  haproxy -db -f "$1" >"${1%.*}.log" 2>&1 &
  hap_pid=$!
  pids+=($hap_pid)
}

# The scratch directory and process list of a bench run: sets work and
# pids, and on exit stops an nginx origin under $work/origin (its master by
# pid file, first), then every pid in pids, and removes $work unless
# BENCH_KEEP is set (then it says where it is).
bench_workdir() {
  work=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  [ -f "$work/origin/nginx.pid" ] && kill "$(cat "$work/origin/nginx.pid" 2>/dev/null)" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
