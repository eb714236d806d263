#!/usr/bin/env bash
# bench/run.sh - make bench: how many calls per core exoplex carries.
#
#   1. the codec floor (exoplex-bench-floor): the transcoder's library calls
#      in a tight loop, CPU per call-second; and what one NNG message costs
#      each end (exoplex-bench-nng), which the bus's hold trades against;
#   2. a load run: N concurrent 8 kHz calls (exoplex-call --calls N, speech
#      signal) through the trio, with exoplex-fakeplex (replaying a clip,
#      or echoing) on N listeners (one per PersonaPlex server, as the real
#      thing); CPU per
#      call-second of every process from /proc/<pid>/stat over the steady
#      window, RSS per call, the frames' age on arrival at each hop (bus
#      histograms in /metrics), NNG messages per frame, allocations;
#   3. the same load with the calls' 20 ms phases spread (--spread), as
#      independent real calls' are: the latency a deployment sees (the
#      load run and the sweep send every call on one tick, the worst case);
#   4. a sweep of N until calls break, for the default settings and the
#      density profile.
# During every window exoplex-bench-floor --probe measures the floor
# again, on the calls' own audio, every PROBE_MS: this VM's speed swings
# by half within seconds, so the ratio that counts is to the floor of
# the same moments (both are reported). BENCH_PROBE_MS sets its period
# (250); BENCH_LAT_MAX_MS the p99 bound of the report's "most clean
# calls within" figure (50).
#
# Writes bench/results/<date>-<host>.{json,md} (see docs/performance.md).
# Never part of make test: it measures time.
#
# Usage: bench/run.sh [--calls N] [--seconds S] [--sweep "25 50 ..."|none]
#            [--sweep-seconds S] [--profiles "default density"]
#            [--no-floor] [--no-spread] [--out DIR] [--name NAME]
#            [--count-allocs]
# BENCH_CALL_ARGS adds exoplex-call options (e.g. --spread: the calls'
# 20 ms phases spread as independent real calls' are; by default all
# calls send on the same boundary, one burst per 20 ms).
# BENCH_PEER_NICE=N runs the load generator, the stand-in and the probe at
# nice N (0: as the trio): their CPU still counts, but they no longer
# preempt the trio's threads as peers on other machines would not; it
# shows how much of the latency tail is the shared machine's.
# BENCH_PERF=1 also profiles the trio with perf during each window
# (perf.<process>.txt in the run's directory; KEEP=1 keeps it).
# Settings of the profiles: BENCH_DEFAULT_ENV, BENCH_DENSITY_ENV (below).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=${BIN:-$ROOT/build-bench/bin}
CALLS=100
SECS=30
SWEEP="25 50 100 200 300 400 500 600 800"
SWEEP_SECS=20
PROFILES="default density"
FLOOR=1
SPREAD=1
OUT=$HERE/results
NAME=$(date +%Y-%m-%d)-$(hostname -s)
COUNT_ALLOCS=0
PROBE_MS=${BENCH_PROBE_MS:-250}
PEER_NICE=
[ "${BENCH_PEER_NICE:-0}" != 0 ] && PEER_NICE="nice -n $BENCH_PEER_NICE"
# The stand-in is not what is measured: by default it replays a clip
# encoded once (no codec work per session), so it takes as little of the
# shared machine as it can while the trio decodes realistic 24 kHz speech.
# BENCH_PLEX_MODE=echo decodes and re-encodes every session instead.
PLEX_MODE=${BENCH_PLEX_MODE:-replay}
PLEX_COMPLEXITY=${BENCH_PLEX_COMPLEXITY:--1}
BENCH_DEFAULT_ENV=${BENCH_DEFAULT_ENV:-}
BENCH_DENSITY_ENV=${BENCH_DENSITY_ENV:-EXOPLEX_OPUS_RATE=call EXOPLEX_OPUS_COMPLEXITY=0 EXOPLEX_OPUS_FRAMES_PER_PAGE=4}
# A call is clean when it has no violations, heard at least the audio it
# sent less this (pipeline delay, ramp), and its underruns after the first
# audio stay under this many ms on average per call; a run is clean when
# also the frames' median age each way stays within BENCH_BACKLOG_P50_MS
# (50; report.py): the caller hears PersonaPlex's voice on time even while
# the caller's own audio queues toward it, which no call's audio shows.
LOST_MAX_S=${BENCH_LOST_MAX_S:-1.5}
UNDERRUN_MAX_MS=${BENCH_UNDERRUN_MAX_MS:-200}

while [ $# -gt 0 ]; do
	case $1 in
	--calls) CALLS=$2; shift ;;
	--seconds) SECS=$2; shift ;;
	--sweep) SWEEP=$2; shift ;;
	--sweep-seconds) SWEEP_SECS=$2; shift ;;
	--profiles) PROFILES=$2; shift ;;
	--no-floor) FLOOR=0 ;;
	--no-spread) SPREAD=0 ;;
	--out) OUT=$2; shift ;;
	--name) NAME=$2; shift ;;
	--count-allocs) COUNT_ALLOCS=1 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d'; exit 0 ;;
	*) echo "bench/run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[ "$SWEEP" = none ] && SWEEP=

for p in exoplex-ingress exoplex-transcoder exoplex-egress exoplex-call \
	exoplex-fakeplex exoplex-bench-floor exoplex-bench-nng; do
	[ -x "$BIN/$p" ] || { echo "bench/run.sh: $BIN/$p missing (make bench builds it)" >&2; exit 2; }
done
ALLOCS_SO=$(dirname "$BIN")/bench/libexoplex_bench_allocs.so

T=$(mktemp -d "${TMPDIR:-/tmp}/exoplex-bench.XXXXXX")
RUNS=$T/runs
mkdir -p "$RUNS" "$OUT"
PIDS=()

. "$ROOT/tests/helpers.sh" # log, wait_http, metric, free_range

stop_all() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for _ in $(seq 50); do
		local alive=0
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
}
cleanup() {
	local rc=$?
	stop_all
	if [ "${KEEP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# sample DIR TAG: /proc stats of every process, the machine's CPU, and the
# /metrics of the trio, as files DIR/TAG.*.
sample() {
	local d=$1 tag=$2 name pid
	{
		echo "time $(date +%s.%N)"
		echo "cpu $(head -1 /proc/stat)"
		echo "loadavg $(cat /proc/loadavg)"
		for name in ingress transcoder egress fakeplex call probe; do
			pid=${PID_OF[$name]:-}
			[ -n "$pid" ] || continue
			echo "stat $name $(cat /proc/$pid/stat 2>/dev/null)"
			echo "rss $name $(awk '/^VmRSS:/ { print $2 }' /proc/$pid/status 2>/dev/null)"
			echo "threads $name $(ls /proc/$pid/task 2>/dev/null | wc -l)"
			# Context switches of all its threads (voluntary: a thread
			# slept and was woken; involuntary: preempted). On a VM
			# each costs microseconds of kernel time; a count, it shows
			# what a change saves when the host's swings hide its CPU.
			echo "ctxt $name $(cat /proc/$pid/task/*/status 2>/dev/null |
				awk '/^voluntary_ctxt/ { v += $2 }
				     /^nonvoluntary_ctxt/ { n += $2 }
				     END { print v + 0, n + 0 }')"
		done
		# Everything else running now, for the load report.
		ps -eo pid=,pcpu=,comm= --sort=-pcpu | head -8 | sed 's/^/top /'
	} >"$d/$tag.proc"
	for name in ingress transcoder egress fakeplex; do
		curl -fsS --max-time 3 "${ADM[$name]}/metrics" >"$d/$tag.$name.metrics" 2>/dev/null || true
	done
	if [ $COUNT_ALLOCS = 1 ]; then
		for name in ingress transcoder egress; do
			cat "$T/allocs/allocs.${PID_OF[$name]}" >"$d/$tag.$name.allocs" 2>/dev/null || true
		done
	fi
}

declare -A PID_OF ADM

# load_run DIR PROFILE N S [ARGS]: one run of N calls with a steady window
# of S seconds, ARGS added to exoplex-call's; everything lands in DIR.
load_run() {
	local d=$1 profile=$2 n=$3 s=$4 extra=${5:-} envs base adm ramp_ms settle total urls p
	local probe_args=() e
	mkdir -p "$d"
	unset 'PID_OF[probe]'
	case $profile in
	default) envs=$BENCH_DEFAULT_ENV ;;
	density) envs=$BENCH_DENSITY_ENV ;;
	*) log "unknown profile $profile"; return 1 ;;
	esac
	# The probe runs what the transcoder runs under these settings.
	for e in $envs; do
		case $e in
		EXOPLEX_OPUS_RATE=*) probe_args+=(--probe-rate "${e#*=}") ;;
		EXOPLEX_OPUS_COMPLEXITY=*) probe_args+=(--default-complexity "${e#*=}") ;;
		EXOPLEX_OPUS_BITRATE=*) probe_args+=(--bitrate "${e#*=}") ;;
		esac
	done
	base=$(free_range "$n") || { log "no $n free ports in a row"; return 1; }
	read -r ap1 ap2 ap3 ap4 lp <<<"$(python3 -c '
import socket
ss=[socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
	urls=$(seq -s, -f "ws://127.0.0.1:%g" "$base" $((base + n - 1)))
	export EXOPLEX_BUS_DIR=$d/bus
	mkdir -p "$EXOPLEX_BUS_DIR" "$T/allocs"
	ADM[fakeplex]=http://127.0.0.1:$ap4
	ADM[ingress]=http://127.0.0.1:$ap1
	ADM[transcoder]=http://127.0.0.1:$ap2
	ADM[egress]=http://127.0.0.1:$ap3
	local pre=()
	[ $COUNT_ALLOCS = 1 ] && pre=(env LD_PRELOAD="$ALLOCS_SO" EXOPLEX_BENCH_ALLOCS_DIR="$T/allocs")

	$PEER_NICE "$BIN/exoplex-fakeplex" --listen "127.0.0.1:$base-$((base + n - 1))" \
		--admin "127.0.0.1:$ap4" --mode "$PLEX_MODE" --complexity "$PLEX_COMPLEXITY" \
		--log-level warn >"$d/fakeplex.log" 2>&1 &
	PID_OF[fakeplex]=$!; PIDS+=($!)
	wait_http "${ADM[fakeplex]}/healthz" 20 || return 1
	# shellcheck disable=SC2086
	env EXOPLEX_PERSONAPLEX_URLS="$urls" $envs "${pre[@]}" "$BIN/exoplex-egress" \
		--admin "127.0.0.1:$ap3" >"$d/egress.log" 2>&1 &
	PID_OF[egress]=$!; PIDS+=($!)
	# shellcheck disable=SC2086
	env $envs "${pre[@]}" "$BIN/exoplex-transcoder" --admin "127.0.0.1:$ap2" \
		>"$d/transcoder.log" 2>&1 &
	PID_OF[transcoder]=$!; PIDS+=($!)
	# shellcheck disable=SC2086
	env $envs "${pre[@]}" "$BIN/exoplex-ingress" --admin "127.0.0.1:$ap1" \
		--listen "127.0.0.1:$lp" >"$d/ingress.log" 2>&1 &
	PID_OF[ingress]=$!; PIDS+=($!)
	for p in ingress transcoder egress; do
		wait_http "${ADM[$p]}/healthz" 20 || return 1
	done
	local deadline=$((SECONDS + 15))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(metric "${ADM[ingress]}" 'exoplex_bus_peer_connected{link="transcoder"}')$(metric "${ADM[ingress]}" 'exoplex_bus_peer_connected{link="control"}')$(metric "${ADM[transcoder]}" 'exoplex_bus_peer_connected{link="egress"}')" = 111 ] && break
		sleep 0.2
	done
	sleep 1
	PID_OF[call]=$$ # not started yet: sample our own shell
	sample "$d" idle

	# Starts spread over up to 10 s; 3 s to settle (handshakes, the
	# playback buffer's lead) before the window opens; 3 s after it.
	ramp_ms=$((n * 20 > 10000 ? 10000 : n * 20))
	settle=$((ramp_ms / 1000 + 3))
	total=$((settle + s + 3))
	echo "$profile $n $s $total $ramp_ms $envs" >"$d/params"
	echo "$PLEX_MODE $PLEX_COMPLEXITY" >"$d/plex"
	$PEER_NICE "$BIN/exoplex-call" --url "ws://127.0.0.1:$lp/exotel?sample-rate=8000" \
		--rate 8000 --calls "$n" --ramp-ms "$ramp_ms" --seconds "$total" \
		--signal speech --seed 1 --linger-ms 3000 --connect-timeout-ms 20000 \
		${BENCH_CALL_ARGS:-} $extra \
		>"$d/call.json" 2>"$d/call.log" &
	PID_OF[call]=$!; PIDS+=($!)
	local cpid=$!
	sleep "$settle"
	# The same clip as the calls' (exoplex-call makes at most 60 s).
	$PEER_NICE "$BIN/exoplex-bench-floor" --probe "$PROBE_MS" --seed 1 \
		--seconds $((total < 60 ? total : 60)) "${probe_args[@]}" \
		>"$d/probe.json" 2>"$d/probe.log" &
	PID_OF[probe]=$!; PIDS+=($!)
	local ppid=$!
	sample "$d" start
	local perfs=()
	if [ "${BENCH_PERF:-0}" = 1 ]; then
		for p in ingress transcoder egress call fakeplex; do
			perf record -q -F 499 -g -p "${PID_OF[$p]}" -o "$d/perf.$p.data" \
				-- sleep "$s" >/dev/null 2>&1 &
			perfs+=($!)
		done
	fi
	sleep "$s"
	sample "$d" end
	kill -TERM "$ppid" 2>/dev/null
	wait "$ppid"
	for p in "${perfs[@]}"; do wait "$p"; done
	if [ "${BENCH_PERF:-0}" = 1 ]; then
		for p in ingress transcoder egress call fakeplex; do
			perf report -q -i "$d/perf.$p.data" --no-children --sort dso,sym \
				--percent-limit 1 -g none 2>/dev/null | head -40 >"$d/perf.$p.txt"
		done
	fi
	wait "$cpid"
	echo $? >"$d/call.rc"
	stop_all
	python3 "$HERE/report.py" run "$d" >"$d/run.json" || return 1
	python3 "$HERE/report.py" line "$d/run.json" >&2
}

quiet_note() {
	log "machine: load $(cut -d' ' -f1-3 /proc/loadavg); other exoplex processes: $(pgrep -c -f 'exoplex-' 2>/dev/null || echo 0)"
}

quiet_note
[ -n "$PEER_NICE" ] && log "load generator, stand-in and probe at nice $BENCH_PEER_NICE"
if [ $FLOOR = 1 ]; then
	log "codec floor (30 s of audio x 3, complexity 0-10, both profiles)"
	"$BIN/exoplex-bench-floor" --json --seconds 30 --reps 3 >"$T/floor.json" || exit 1
	"$BIN/exoplex-bench-floor" --seconds 30 --reps 1 --complexity 0,5 >&2 || true
	log "NNG message cost (pair1 over ipc, 4000 B, 100 and 1000 a second)"
	for r in 100 1000; do
		"$BIN/exoplex-bench-nng" --rate $r --seconds 5 || true
	done >"$T/nng.jsonl"
fi

for prof in $PROFILES; do
	quiet_note
	log "load: $prof, $CALLS calls, ${SECS} s window"
	load_run "$RUNS/load-$prof-$CALLS" "$prof" "$CALLS" "$SECS" || log "load run failed"
	[ $SPREAD = 1 ] || continue
	quiet_note
	log "load: $prof, $CALLS calls, phases spread, ${SECS} s window"
	load_run "$RUNS/spread-$prof-$CALLS" "$prof" "$CALLS" "$SECS" --spread ||
		log "spread load run failed"
done
# sweep_one PROFILE N: one sweep point; true if every call was clean.
sweep_one() {
	quiet_note
	log "sweep: $1, $2 calls, ${SWEEP_SECS} s window"
	load_run "$RUNS/sweep-$1-$2" "$1" "$2" "$SWEEP_SECS" || return 1
	python3 "$HERE/report.py" clean "$RUNS/sweep-$1-$2/run.json"
}
for prof in $PROFILES; do
	good=0 bad=
	for n in $SWEEP; do
		if sweep_one "$prof" "$n"; then good=$n; else bad=$n; break; fi
	done
	# Up to three halvings between the last clean and the first broken
	# count, down to steps of 10 calls.
	for _ in 1 2 3; do
		[ -n "$bad" ] && [ "$good" -gt 0 ] || break
		mid=$(((good + bad) / 20 * 10))
		[ "$mid" -gt "$good" ] && [ "$mid" -lt "$bad" ] || break
		if sweep_one "$prof" "$mid"; then good=$mid; else bad=$mid; fi
	done
done

python3 "$HERE/report.py" final "$T" "$OUT/$NAME" || exit 1
log "report: $OUT/$NAME.md and $OUT/$NAME.json"
