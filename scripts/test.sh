#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, builds, runs
# every ctest test (unit + integration) on a release build and again under
# AddressSanitizer + UndefinedBehaviorSanitizer, then a short libFuzzer run
# of every fuzz target. Prints a summary; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/deps.sh test

summary=()
total_pass=0
total_fail=0

run_ctest() { # name builddir
  local name=$1 dir=$2 out rc=0
  out=$(mktemp)
  ctest --test-dir "$dir" --output-on-failure --timeout 600 2>&1 | tee "$out" || rc=$?
  local line
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$out" | tail -1 || true)
  if [[ $line =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
    local failed=${BASH_REMATCH[1]} all=${BASH_REMATCH[2]}
    total_pass=$((total_pass + all - failed))
    total_fail=$((total_fail + failed))
    summary+=("$name: $((all - failed))/$all passed")
  else
    total_fail=$((total_fail + 1))
    summary+=("$name: ctest did not run")
  fi
  rm -f "$out"
  return $rc
}

status=0
echo "== release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRTMPLB_TESTS=ON -DRTMPLB_SANITIZE=OFF >/dev/null
cmake --build build -j"$jobs"
run_ctest "release" build || status=1

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRTMPLB_SANITIZE=ON -DRTMPLB_TESTS=ON >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_ctest "asan+ubsan" build-asan || status=1

echo "== libFuzzer smoke run"
if tests/fuzz/run.sh "${FUZZ_SECONDS:-15}"; then
  summary+=("fuzz: every target ran clean")
  total_pass=$((total_pass + 1))
else
  summary+=("fuzz: FAILED")
  total_fail=$((total_fail + 1))
  status=1
fi

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
echo "$total_pass passed, $total_fail failed"
exit $status
