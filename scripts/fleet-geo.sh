# Sourced by `scripts/fleet.sh geo` (the fleet's variables and functions are
# set): conf/examples/geo-lines.yaml tried without a MaxMind account.
#   - a small GeoIP2-City database from tests/geo/make_test_mmdb.pl
#     (203.0.113.0/24 is JP, 198.51.100.0/24 is US, 192.0.2.0/24 DE);
#   - a second rtmplb with the example's pools and routes, its listener on
#     loopback with PROXY protocol, its nodes mapped onto the fleet's origins
#     (tokyo's tyo-1 -> origin-a; world's iad-1, fra-1, sin-1 and hk-1 -> origin-b);
#   - two PROXY-protocol relays (scripts/proxy-relay.py) standing in for the
#     cloud L4 balancer, one saying the client is 203.0.113.7 (JP), the other
#     198.51.100.7 (US);
#   - a short publish through each: live/from-jp lands on tokyo (origin-a),
#     live/from-us on world, nearest node iad-1 (origin-b).
alive "$state/rtmplb.pid" || { echo "fleet: start the fleet first (scripts/fleet.sh)" >&2; exit 1; }
[ -n "$bin" ] || bin=$root/build/rtmplb
geo=$state/geo
mkdir -p "$geo"
for f in geo-publish-jp geo-publish-us geo-relay-jp geo-relay-us rtmplb-geo; do
  alive "$state/$f.pid" && kill -TERM "$(cat "$state/$f.pid")" 2>/dev/null || true
done
sleep 0.5
if ! perl -MMaxMind::DB::Writer::Tree -e 1 2>/dev/null; then
  scripts/deps.sh geo
fi
perl tests/geo/make_test_mmdb.pl "$geo/test-city.mmdb"

oa=127.0.0.1:${P[origin-a]} ob=127.0.0.1:${P[origin-b]}
sed -e "s|/var/lib/GeoIP/GeoLite2-City.mmdb|$geo/test-city.mmdb|" \
    -e "s|0\.0\.0\.0:1935|127.0.0.1:${P[geo]}|" \
    -e "s|10\.2\.0\.1:1935|$oa|" \
    -e "s|10\.[13-5]\.0\.1:1935|$ob|" \
    -e "s|^\( *\)send_proxy: v1 .*|\1# send_proxy: v1 (off in the demo: its origins do not read PROXY headers)|" \
    -e "1i # Written by scripts/fleet.sh geo from conf/examples/geo-lines.yaml: a test\n# database, loopback addresses, the fleet's origins as nodes." \
    conf/examples/geo-lines.yaml > "$geo/rtmplb-geo.yaml"
"$bin" -t -c "$geo/rtmplb-geo.yaml" 2>"$geo/check.log" || { cat "$geo/check.log" >&2; exit 1; }
"$bin" -c "$geo/rtmplb-geo.yaml" >"$geo/rtmplb-geo.log" 2>&1 &
echo $! > "$state/rtmplb-geo.pid"
for ((i = 0; i < 100; i++)); do grep -qs " started " "$geo/rtmplb-geo.log" && break; sleep 0.1; done
grep -q " started " "$geo/rtmplb-geo.log" || { cat "$geo/rtmplb-geo.log" >&2; exit 1; }

for cc in jp us; do
  if [ $cc = jp ]; then client=203.0.113.7; else client=198.51.100.7; fi
  python3 scripts/proxy-relay.py --listen "127.0.0.1:${P[geo-$cc]}" --to "127.0.0.1:${P[geo]}" \
    --client "$client" >"$geo/relay-$cc.log" 2>&1 &
  echo $! > "$state/geo-relay-$cc.pid"
  wait_port "${P[geo-$cc]}" 10 "the $cc relay"
  ffmpeg -hide_banner -nostats -loglevel warning -re -t 20 \
    -f lavfi -i "testsrc2=size=320x240:rate=25" -f lavfi -i "sine=frequency=660:sample_rate=44100" \
    -c:v libx264 -preset ultrafast -tune zerolatency -g 50 -pix_fmt yuv420p -c:a aac -b:a 64k \
    -f flv "rtmp://127.0.0.1:${P[geo-$cc]}/live/from-$cc" </dev/null >"$geo/publish-$cc.log" 2>&1 &
  echo $! > "$state/geo-publish-$cc.pid"
done

where() { # STREAM: the origin whose /stat has it
  local n
  for n in origin-a origin-b; do stat_has "$n" "$1" && { echo "$n"; return; }; done
  echo "nowhere (yet)"
}
for ((i = 0; i < 100; i++)); do
  [ "$(where from-jp)" != "nowhere (yet)" ] && [ "$(where from-us)" != "nowhere (yet)" ] && break
  sleep 0.1
done
jp=$(where from-jp) us=$(where from-us)
cat <<EOT

Geo demo (conf/examples/geo-lines.yaml, test database, PROXY protocol):
  rtmplb-geo      rtmp://127.0.0.1:${P[geo]} (proxy_protocol: any), config $geo/rtmplb-geo.yaml
  "from JP" relay rtmp://127.0.0.1:${P[geo-jp]}  (PROXY header: 203.0.113.7)
  "from US" relay rtmp://127.0.0.1:${P[geo-us]}  (PROXY header: 198.51.100.7)
  live/from-jp published via the JP relay: route japan-korea, pool tokyo  -> on $jp
  live/from-us published via the US relay: route everyone-else, pool world -> on $us
  (both publishes run for 20 s; the routed lines are in $geo/rtmplb-geo.log:)
EOT
grep -E " routed .*stream=from-(jp|us)" "$geo/rtmplb-geo.log" | sed 's/^/    /' | cut -c1-220 || true
cat <<EOT
  Look one up:  mmdblookup --file $geo/test-city.mmdb --ip 203.0.113.7 country iso_code
  A real database: see README "Geo routing with a real GeoLite2 database".
EOT
if [ "$jp" != origin-a ] || [ "$us" != origin-b ]; then
  echo "fleet: geo demo: expected from-jp on origin-a and from-us on origin-b" >&2
  exit 1
fi
