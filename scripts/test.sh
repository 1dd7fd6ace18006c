#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds, and runs
# every test: unit tests, the same under ASan+UBSan, each fuzz target for a
# short time, and the integration tests against real SMTP servers.
#   FUZZ_SECONDS  seconds per fuzz target (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/bootstrap.sh --test

step() { printf '\n==== %s ====\n' "$*"; }

setup() { # setup DIR [meson options...]
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

step "build and unit tests"
setup build
meson compile -C build
meson test -C build --suite unit --print-errorlogs

step "unit tests under AddressSanitizer and UndefinedBehaviorSanitizer"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-asan
meson test -C build-asan --suite unit --print-errorlogs

step "fuzz targets (${FUZZ_SECONDS:-20} s each)"
CC=clang setup build-fuzz -Dfuzz=true -Dtests=false
meson compile -C build-fuzz
for target in build-fuzz/fuzz/fuzz_*; do
  [ -f "$target" ] && [ -x "$target" ] || continue
  name=$(basename "$target")
  corpus="$root/build-fuzz/corpus/$name"
  mkdir -p "$corpus"
  seeds=()
  [ -d "fuzz/seeds/${name#fuzz_}" ] && seeds=("fuzz/seeds/${name#fuzz_}")
  echo "-- $name"
  "$target" -max_total_time="${FUZZ_SECONDS:-20}" -print_final_stats=0 "$corpus" "${seeds[@]}" \
    2>"build-fuzz/$name.log" || { tail -50 "build-fuzz/$name.log"; exit 1; }
  grep -E "^Done|#[0-9]+.*DONE" "build-fuzz/$name.log" | tail -1 || true
done

step "integration tests against real SMTP servers"
MAILOUT_BIN="$root/build/src/cli/mailout" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration

step "the admin panel in a real browser (Debian's chromium, playwright-core)"
mkdir -p "$root/build/browser-artifacts"
MAILOUT_BIN="$root/build/src/cli/mailout" MAILOUT_BROWSER_ARTIFACTS="$root/build/browser-artifacts" \
  node --test tests/browser/
echo "screenshots: build/browser-artifacts/"

# The queue's benchmark in its CI size: it prints the figures (the full run's table is in
# README); only a broken sample (messages that did not arrive) fails here, never a figure.
step "the queue benchmark, CI-sized (bench/queue.sh, BENCH_QUICK=1)"
BENCH_QUICK=1 BENCH_RESULTS="$root/build/bench-queue-quick.md" MAILOUT_BIN="$root/build/src/cli/mailout" \
  bash bench/queue.sh | sed -n '/^| case | mailout/,/^$/p'
echo "report: build/bench-queue-quick.md"
