#!/usr/bin/env bash
# fuzz/run.sh - runs libFuzzer targets one after the other (the machine's
# other work keeps its cores) and prints one line per target.
#
#   fuzz/run.sh BUILD_DIR [TARGET...]
#
#   FUZZ_SECONDS  time per target (default 60)
#   FUZZ_RUNS     executions per target instead (e.g. 10000000); the
#                 time limit still applies when FUZZ_SECONDS is set too
#   FUZZ_ARGS     more libFuzzer flags
#
# Each target's new inputs go to BUILD_DIR/corpus/<target> (the committed
# seeds in fuzz/corpus/<target> are read, never written). A crash stops
# the run with the input saved as BUILD_DIR/crash-<target>-*: copy it into
# fuzz/corpus/<target>/ (as crash-<what>) so ctest replays it forever.
set -u
cd "$(dirname "$0")/.."
B=${1:?usage: fuzz/run.sh BUILD_DIR [TARGET...]}
shift
TARGETS=${*:-exotel auth base64 ppframe oggdemux tcall sttmsg persona config bus wsc}
LIMIT=()
if [ -n "${FUZZ_RUNS:-}" ]; then
	LIMIT+=(-runs="$FUZZ_RUNS")
	[ -n "${FUZZ_SECONDS:-}" ] && LIMIT+=(-max_total_time="$FUZZ_SECONDS")
else
	LIMIT+=(-max_total_time="${FUZZ_SECONDS:-60}")
fi
# A leak or any UBSan report is a failure too; the quarantine is kept
# small so several targets fit in memory beside the other work.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
rc=0
printf '%-9s %12s %8s %9s %6s  %s\n' target executions seconds exec/s cov result
for t in $TARGETS; do
	bin=$B/fuzz/fuzz_$t
	[ -x "$bin" ] || { echo "fuzz/run.sh: $bin not built (EXOPLEX_FUZZ=ON)" >&2; exit 2; }
	mkdir -p "$B/corpus/$t"
	log=$B/fuzz-$t.log
	start=$(date +%s.%N)
	"$bin" "${LIMIT[@]}" -print_final_stats=1 -rss_limit_mb=2048 \
		-artifact_prefix="$B/crash-$t-" ${FUZZ_ARGS:-} \
		"$B/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
	st=$?
	end=$(date +%s.%N)
	runs=$(awk '/number_of_executed_units/ { print $NF }' "$log")
	cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
	secs=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
	rate=$(awk -v r="${runs:-0}" -v s="$secs" 'BEGIN { printf "%d", r / s }')
	if [ $st = 0 ]; then
		res=ok
	else
		res="CRASH ($(ls "$B"/crash-"$t"-* 2>/dev/null | head -1))"
		rc=1
	fi
	printf '%-9s %12s %8.0f %9s %6s  %s\n' "$t" "${runs:-?}" "$secs" "$rate" "${cov:-?}" "$res"
	if [ $st != 0 ]; then
		grep -E 'ERROR|check failed|runtime error|SUMMARY' "$log" | head -5 >&2
		break
	fi
done
exit $rc
