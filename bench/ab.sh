#!/usr/bin/env bash
# bench/ab.sh - before/after: the same load on two builds, interleaved.
#
# On a shared VM the CPU a process takes for the same work drifts by tens
# of percent over an hour, so two bench runs an hour apart cannot show a
# 10% change. This alternates the two builds' load runs (bench/run.sh
# --no-floor --sweep none), ROUNDS times, with calls sent on one shared
# tick (burst) and with spread phases (--spread), and prints one line per
# run; compare the lines of the same round.
#
# Usage: bench/ab.sh OLD_BIN_DIR NEW_BIN_DIR [OUT_DIR]
#   e.g. git worktree add /tmp/old <commit>; cmake -S /tmp/old -B
#        /tmp/old/b -DCMAKE_BUILD_TYPE=Release; cmake --build /tmp/old/b;
#        bench/ab.sh /tmp/old/b/bin build-bench/bin
# Environment: CALLS (100), SECONDS_PER_RUN (15), ROUNDS (2),
# PROFILE (default).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { sed -n 2,17p "$0"; exit 2; }
OLD=$(cd "$1" && pwd) || exit 2
NEW=$(cd "$2" && pwd) || exit 2
OUT=${3:-$(mktemp -d "${TMPDIR:-/tmp}/exoplex-ab.XXXXXX")}
mkdir -p "$OUT"

for round in $(seq "${ROUNDS:-2}"); do
	for v in old new; do
		[ $v = old ] && bin=$OLD || bin=$NEW
		for mode in burst spread; do
			args=
			[ $mode = spread ] && args=--spread
			name=$v-$mode-$round
			BIN=$bin BENCH_CALL_ARGS=$args "$HERE/run.sh" \
				--no-floor --no-spread --sweep none --calls "${CALLS:-100}" \
				--seconds "${SECONDS_PER_RUN:-15}" \
				--profiles "${PROFILE:-default}" \
				--out "$OUT/$name" --name r >"$OUT/$name.log" 2>&1
			echo "$name: $(grep 'calls:' "$OUT/$name.log")"
		done
	done
done
