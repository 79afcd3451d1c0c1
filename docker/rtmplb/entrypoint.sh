#!/bin/sh
# The rtmplb image's entrypoint: writes an admin token into the state volume
# the first time (readable by rtmplb only; `docker compose exec rtmplb cat
# /var/lib/rtmplb/admin.token` shows it), then runs rtmplb in the foreground
# as PID 1 with the arguments given (default: -c /etc/rtmplb/rtmplb.yaml).
set -eu
token=${RTMPLB_TOKEN_FILE:-/var/lib/rtmplb/admin.token}
if [ "${1:-}" = "-c" ] && [ ! -s "$token" ] && [ -w "$(dirname "$token")" ]; then
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token")
  echo "rtmplb-entrypoint: wrote a new admin token to $token" >&2
fi
exec /usr/bin/rtmplb "$@"
