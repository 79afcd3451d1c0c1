#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, builds, runs
# every ctest test (unit + integration) on a Release build (-O3, what we ship)
# and again under AddressSanitizer + UndefinedBehaviorSanitizer, checks that
# the binary also compiles warning-free (-Werror) at -Os and with clang, then
# a short libFuzzer run of every fuzz target. Prints a summary; exits non-zero
# on any failure, including a ctest stage that found or ran no test.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

scripts/deps.sh test
scripts/browser-deps.sh

summary=()
total_pass=0
total_fail=0

run_ctest() { # name builddir
  local name=$1 dir=$2 out rc=0
  out=$(mktemp)
  # --no-tests=error: an empty test list is a failure, not a pass.
  # Two tests at a time (CTEST_JOBS): most wait on real-time streams, not
  # on the CPU; the ones that measure CPU or memory run alone (RUN_SERIAL).
  ctest --test-dir "$dir" --output-on-failure --timeout 600 --no-tests=error \
    -j"${CTEST_JOBS:-2}" 2>&1 | tee "$out" \
    || rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$out" | tail -1 || true)
  if [[ $line =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]] && ((BASH_REMATCH[2] > 0)); then
    local failed=${BASH_REMATCH[1]} all=${BASH_REMATCH[2]}
    total_pass=$((total_pass + all - failed))
    total_fail=$((total_fail + failed))
    summary+=("$name: $((all - failed))/$all passed")
    # A count line that says all passed, with a failing exit status, is
    # still a failure (ctest itself broke after the run).
    if ((failed == 0 && rc != 0)); then
      total_fail=$((total_fail + 1))
      summary+=("$name: ctest exited $rc")
    fi
  else
    total_fail=$((total_fail + 1))
    summary+=("$name: ctest ran no test (exit $rc)")
    ((rc != 0)) || rc=1
  fi
  rm -f "$out"
  return $rc
}

compile_check() { # name builddir cmake-args...: build only the rtmplb binary
  local name=$1 dir=$2
  shift 2
  if cmake -S . -B "$dir" -DRTMPLB_TESTS=OFF -DRTMPLB_SANITIZE=OFF "$@" >/dev/null &&
     cmake --build "$dir" -j"$jobs" --target rtmplb rtmp_probe; then
    summary+=("$name: compiles warning-free")
    total_pass=$((total_pass + 1))
  else
    summary+=("$name: FAILED to compile")
    total_fail=$((total_fail + 1))
    return 1
  fi
}

status=0
echo "== release build (-O3)"
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DRTMPLB_TESTS=ON -DRTMPLB_SANITIZE=OFF >/dev/null
cmake --build build-release -j"$jobs"
run_ctest "release" build-release || status=1

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRTMPLB_SANITIZE=ON -DRTMPLB_TESTS=ON >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_ctest "asan+ubsan" build-asan || status=1
unset ASAN_OPTIONS UBSAN_OPTIONS

echo "== compile-only: gcc -Os, clang -O2 and -O3"
compile_check "gcc -Os" build-os -DCMAKE_BUILD_TYPE=MinSizeRel || status=1
compile_check "clang -O2" build-clang -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo || status=1
compile_check "clang -O3" build-clang-o3 -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release || status=1

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
