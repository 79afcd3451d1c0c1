#!/usr/bin/env bash
# Installs what rtmplb needs from Debian's packages. Idempotent: when every
# package is already there it does nothing (and needs no network).
#   scripts/deps.sh build    compiler, CMake, libraries
#   scripts/deps.sh run      + nginx-rtmp origins and ffmpeg (the local fleet)
#   scripts/deps.sh test     + cmocka, clang/libFuzzer, and the test clients
#                            (chromium, nodejs, npm: the browser tests; their
#                            npm package comes from scripts/browser-deps.sh)
#   scripts/deps.sh bench    + HAProxy, iperf3 and nginx's stream module
#   scripts/deps.sh geo      the GeoIP database writer (scripts/fleet.sh geo)
set -euo pipefail

build=(gcc make cmake pkg-config libuv1-dev libssl-dev libmaxminddb-dev libyaml-dev node-llhttp
       libxml2-dev libjson-c-dev)
run=(nginx libnginx-mod-rtmp ffmpeg procps curl python3)
test=(libcmocka-dev clang libclang-rt-14-dev python3 python3-yaml prometheus rtmpdump gstreamer1.0-tools
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav
      chromium nodejs)
bench=(haproxy iperf3 libnginx-mod-stream)
geo=(libmaxmind-db-writer-perl mmdb-bin)
# docker-compose: `docker-compose config` validates docker/compose.yaml (no
# engine needed; --no-install-recommends keeps docker.io out).
containers=(docker-compose)

pkgs=("${build[@]}")
for what in "${@:-build}"; do
  case "$what" in
    build) ;;
    run) pkgs+=("${run[@]}") ;;
    test) pkgs+=("${run[@]}" "${test[@]}" "${geo[@]}" "${containers[@]}") ;;
    bench) pkgs+=("${run[@]}" "${bench[@]}") ;;
    geo) pkgs+=("${geo[@]}") ;;
    *) echo "deps.sh: unknown set '$what' (build, run, test, bench, geo)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian's package, unless the installed nodejs brings its own (a
# nodejs from elsewhere conflicts with Debian's npm).
for what in "${@:-build}"; do
  if [ "$what" = test ] && ! command -v npm >/dev/null; then missing+=(npm); fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "deps.sh: need root to install: ${missing[*]}" >&2; exit 1
  fi
else
  SUDO=
fi
echo "deps.sh: installing ${missing[*]}" >&2
# Keep the package scripts from starting the system nginx/haproxy services:
# the tests and the fleet run their own instances on their own ports.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[ $created_policy = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
