#!/usr/bin/env bash
# npm's playwright-core for the browser tests (tests/browser/package.json,
# pinned in its package-lock.json), installed with `npm ci` only when
# node_modules is missing or was installed from another lock file.
# Idempotent: when up to date it does nothing (and needs no network).
# The browser itself is Debian's chromium (scripts/deps.sh test).
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
stamp="$dir/node_modules/.rtmplb-lock.sha256"
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
exec 9>"$dir/.deps.lock"
flock -w 300 9
if [ -d "$dir/node_modules/playwright-core" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "browser-deps.sh: npm is missing: run scripts/deps.sh test" >&2
  exit 1
fi
echo "browser-deps.sh: npm ci in tests/browser" >&2
npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
