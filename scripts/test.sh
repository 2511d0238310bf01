#!/usr/bin/env bash
# `make test`: the main build and suite, then the sanitized unit and agent suites and every fuzz
# corpus replayed once. The sanitizer build (about 25 CPU-minutes from an empty ccache) runs from
# the start at the lowest priority, so it takes only CPU the rest leaves idle: a build's serial
# links, and the end-to-end tests, which boot one single-vCPU TCG guest at a time and leave about
# a third of the machine unused. Its output is in ASAN_BUILD/background-build.log.
#
# Usage: scripts/test.sh BUILD ASAN_BUILD JOBS STATE_DIR IMAGE_CACHE (both build dirs configured)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1 asan=$2 jobs=$3 state_dir=$4 image_cache=$5

log=$asan/background-build.log
# Its own session, so that an early exit can stop the compilers too (by its process group). A
# new session is also a new scheduler autogroup where the kernel has them enabled (Debian's
# default), and a nice value counts only inside its group: without the autogroup's own nice
# value the build would get half the machine (a fresh-clone run measured the main build at 47
# instead of 22 minutes).
setsid -w sh -c 'echo 19 > /proc/self/autogroup 2>/dev/null; exec nice -n 19 "$@"' sh \
  cmake --build "$asan" -j "$jobs" --target unit_tests fuzzers >"$log" 2>&1 &
background=$!
trap 'kill -- -$background 2>/dev/null || true' EXIT

cmake --build "$build" -j "$jobs"
image=$("$build/bin/vmctl" serve --state-dir "$state_dir" --image-cache "$image_cache" \
  --prepare-only 2>&1 | tee >(cat >&2) | sed -n "s/^Image 'default' ready in //p")
VMCTL_IMAGE_CACHE=$image_cache VMCTL_TEST_IMAGE_DIR=$image \
  ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 900

echo "test: waiting for the sanitizer build (in $log)"
if ! wait "$background"; then
  tail -n 50 "$log" >&2
  echo "test: the sanitizer build failed; its log: $log" >&2
  exit 1
fi
trap - EXIT
# Their builds are done by now: these only run the tests.
make --no-print-directory test-sanitize fuzz-regression ASAN_BUILD="$asan" JOBS="$jobs"
