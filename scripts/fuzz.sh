#!/usr/bin/env bash
# Runs each libFuzzer target of a fuzz build (make fuzz) for SECONDS on a scratch copy of its seed
# corpus (the repository's corpus is never written), then prints one line per target: executions
# per second, coverage (libFuzzer's cov: edges and ft: features) and what it found. A crashing
# input is kept in BUILD/fuzz-findings/TARGET/ and the script exits 1.
# Usage: scripts/fuzz.sh BUILD SECONDS [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1 seconds=$2
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for corpus in fuzz/corpus/*/; do targets+=("$(basename "$corpus")"); done
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=0
results=()
for t in "${targets[@]}"; do
  bin=$build/fuzz/$t
  [ -x "$bin" ] || { echo "fuzz: $bin is not built" >&2; exit 1; }
  findings=$build/fuzz-findings/$t
  mkdir -p "$scratch/$t" "$findings"
  cp fuzz/corpus/"$t"/* "$scratch/$t/"
  echo "fuzz: $t for ${seconds}s"
  status=0
  "$bin" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$scratch/$t" >"$scratch/$t.log" 2>&1 || status=$?
  # The last status line carries the coverage reached: "#N DONE cov: C ft: F corp: ..."
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$scratch/$t.log" | tail -1)
  execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$scratch/$t.log")
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log")
  found="no crashes"
  if [ "$status" -ne 0 ]; then
    failed=1
    found="CRASH (exit $status): $(ls "$findings" | tr '\n' ' ')"
    grep -E '^==[0-9]+==ERROR|runtime error|terminate called|SUMMARY' "$scratch/$t.log" | head -3 >&2 || true
    cp "$scratch/$t.log" "$findings/log"
  fi
  results+=("$(printf '%-20s %8s execs/s %10s runs  %-22s %s' "$t" "${execs:-?}" "${runs:-?}" \
    "${cov:-cov: ?}" "$found")")
done
echo
printf '%s\n' "${results[@]}"
exit $failed
