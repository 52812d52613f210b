#!/usr/bin/env bash
# Run the test suite several times in a row beside busy processes: a test that passes only on an idle machine fails
# here. Stops at the first failing run, then prints one line per run and a summary.
#
#   benchmarks/stress_suite.sh                          # the whole suite, 10 runs beside 2 busy processes
#   benchmarks/stress_suite.sh -n 3 -b 2 -- tests/test_simgpu.py tests/test_timeline.py
#
# Options: -n RUNS (default 10), -b BUSY processes, each `yes > /dev/null` (default 2), -o DIR for the runs' logs
# (default: a new temporary folder); everything after `--` goes to pytest (default: tests/). Run it from the
# repository root with the project's environment active. It starts only its own busy processes and ends only them.
set -euo pipefail

runs=10
busy=2
logs=""
while getopts "n:b:o:h" option; do
    case "$option" in
        n) runs="$OPTARG" ;;
        b) busy="$OPTARG" ;;
        o) logs="$OPTARG" ;;
        h) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: $0 [-n RUNS] [-b BUSY] [-o LOGDIR] [-- PYTEST ARGS]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(tests/)
case "$runs$busy" in *[!0-9]*) echo "-n and -b take whole numbers" >&2; exit 2 ;; esac
logs="${logs:-$(mktemp -d -t stress-suite-XXXXXX)}"
mkdir -p "$logs"

hogs=()
stop_hogs() {
    for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done  # only the processes started here
}
trap stop_hogs EXIT
for _ in $(seq 1 "$busy"); do
    yes > /dev/null &
    hogs+=("$!")
done

echo "stress: ${runs} run(s) of pytest ${targets[*]} beside ${busy} busy process(es) on $(nproc) CPU(s); logs in ${logs}"
summary=()
failed=0
for run in $(seq 1 "$runs"); do
    start=$(date +%s)
    if python -m pytest -x -q -p no:cacheprovider "${targets[@]}" > "${logs}/run-${run}.log" 2>&1; then
        verdict="passed"
    else
        verdict="FAILED"
        failed=$run
    fi
    result=$(grep -E "(passed|failed|error)" "${logs}/run-${run}.log" | tail -n 1)
    summary+=("run ${run}: ${verdict} in $(( $(date +%s) - start )) s - ${result}")
    echo "${summary[-1]}"
    [ "$failed" -ne 0 ] && break
done

echo "---"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    echo "STRESS FAILED at run ${failed} of ${runs} (beside ${busy} busy processes); its log: ${logs}/run-${failed}.log"
    grep -E "^(FAILED|ERROR)" "${logs}/run-${failed}.log" || true
    exit 1
fi
echo "STRESS PASSED: ${runs} run(s) in a row beside ${busy} busy process(es)"
