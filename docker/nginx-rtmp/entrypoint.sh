#!/bin/sh
# Writes the node's nginx.conf from /etc/nginx-rtmp/$ROLE.conf (origin or
# edge), checks it (nginx -t) and runs nginx in the foreground.
#   ROLE          origin | edge
#   NODE_NAME     the node's name in rtmplb's config (edges ask with ?node=)
#   RTMPLB_ADMIN  IP:PORT of rtmplb's admin API (edges' on_play)
# `nginx-rtmp-entrypoint --render FILE` writes the config to FILE and exits
# (the tests render every compose service's config this way and run nginx -t).
set -eu
role=${ROLE:-origin}
name=${NODE_NAME:-$role}
admin=${RTMPLB_ADMIN:-172.28.0.10:8080}
confdir=${NGINX_RTMP_CONF_DIR:-/etc/nginx-rtmp}
prefix=${NGINX_RTMP_PREFIX:-/var/lib/nginx-rtmp}
case "$role" in origin|edge) ;; *) echo "nginx-rtmp-entrypoint: ROLE must be origin or edge" >&2; exit 2 ;; esac
case "$name" in *[!a-z0-9._-]*|'') echo "nginx-rtmp-entrypoint: bad NODE_NAME '$name'" >&2; exit 2 ;; esac
case "$admin" in *[!0-9a-fA-F.:\[\]]*|'') echo "nginx-rtmp-entrypoint: RTMPLB_ADMIN must be IP:PORT" >&2; exit 2 ;; esac
out=$prefix/nginx.conf
[ "${1:-}" = "--render" ] && out=$2
sed -e "s|@NODE_NAME@|$name|g" -e "s|@RTMPLB_ADMIN@|$admin|g" -e "s|@PREFIX@|$prefix|g" \
  "$confdir/$role.conf" > "$out"
[ "${1:-}" = "--render" ] && exit 0
nginx -t -q -p "$prefix" -c "$out"
exec nginx -p "$prefix" -c "$out"
