#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for N seconds
# (default 60), seeded from tests/fuzz/corpus/<target>/ and, for the config
# target, the shipped example configs. Prints executions and any crash.
#   tests/fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
build=build-fuzz

cmake -S . -B $build -DCMAKE_C_COMPILER=clang -DRTMPLB_FUZZ=ON -DRTMPLB_TESTS=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build $build -j"$(nproc)" --target fuzz_conf fuzz_handshake fuzz_chunk fuzz_amf fuzz_proxy fuzz_stats fuzz_admin_http fuzz_message fuzz_front_rtmp fuzz_compat fuzz_front_http >/dev/null

status=0
for target in fuzz_conf fuzz_handshake fuzz_chunk fuzz_amf fuzz_proxy fuzz_stats fuzz_admin_http \
              fuzz_message fuzz_front_rtmp fuzz_compat fuzz_front_http; do
  work=$(mktemp -d)
  mkdir -p "$work/corpus"
  [ -d "tests/fuzz/corpus/$target" ] && cp tests/fuzz/corpus/$target/* "$work/corpus/" 2>/dev/null || true
  if [ $target = fuzz_conf ]; then
    cp conf/examples/*.yaml conf/examples/invalid/*.yaml "$work/corpus/"
  fi
  if [ $target = fuzz_stats ]; then  # a selector byte, then the document
    { printf '\0'; cat tests/unit/health/nginx-stat.xml; } > "$work/corpus/nginx"
    { printf '\1'; cat tests/unit/health/srs-streams.json; } > "$work/corpus/srs"
  fi
  if [ $target = fuzz_admin_http ]; then  # a piece-size byte, then requests
    printf '\7GET /api/v1/locate?app=live&stream=a%%20b HTTP/1.1\r\nHost: x\r\n\r\n' > "$work/corpus/get"
    printf '\3POST /api/v1/pools/p/nodes/n HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Length: 14\r\n\r\n{"weight": 3}\n' > "$work/corpus/post"
    printf '\1POST /api/v1/routes/r HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n0\r\n\r\n' > "$work/corpus/chunked"
  fi
  if [ $target = fuzz_compat ]; then  # a selector byte, a cut byte, then the request
    printf '\0\30call=play&node=edge&app=live&flashver=LNX%%209%%2C0&tcurl=rtmp%%3A%%2F%%2Fh%%2Flive%%3Fline%%3Dhk&addr=203.0.113.7&name=cam&line=hk' > "$work/corpus/notify"
    printf '\1\0{"action":"on_publish","client_id":"341w361a","ip":"127.0.0.1","vhost":"__defaultVhost__","app":"live","stream":"livestream","param":"?a=b","tcUrl":"rtmp://h/live","server_id":"vid-1"}' > "$work/corpus/srs"
  fi
  if [ $target = fuzz_front_http ]; then  # a piece-size byte, then viewer requests
    printf '\5GET /live/room.flv?line=hk HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.7\r\n\r\n' > "$work/corpus/flv"
    printf '\2GET /live/cam-1-23.ts HTTP/1.1\r\nHost: x\r\n\r\nHEAD /hls/a%%20b.m3u8 HTTP/1.0\r\n\r\n' > "$work/corpus/pipelined"
  fi
  if [ $target = fuzz_front_rtmp ]; then  # a whole play with a healthy origin
    python3 tests/fuzz/seed_front_rtmp.py > "$work/corpus/play"
    python3 tests/fuzz/seed_front_rtmp.py ertmp > "$work/corpus/ertmp-publish"
  fi
  log="$work/log"
  if ./$build/tests/fuzz/$target -print_final_stats=1 -max_total_time="$secs" -max_len=8192 -timeout=10 \
       -rss_limit_mb=2048 -artifact_prefix="$work/" "$work/corpus" >"$log" 2>&1; then
    execs=$(grep -Eo "stat::number_of_executed_units: [0-9]+" "$log" | grep -Eo "[0-9]+$" || true)
    [ -z "$execs" ] && execs=$(grep -Eo "^#[0-9]+" "$log" | tail -1 | tr -d '#')
    echo "$target: ${secs}s, ${execs:-?} executions, no crash"
  else
    echo "$target: FAILED (crash or leak); log and artifacts in $work" >&2
    tail -40 "$log" >&2
    status=1
    continue
  fi
  rm -rf "$work"
done
exit $status
