#!/usr/bin/env bash
# tests/soak.sh - many calls for a long time; memory and file descriptors
# of every process must not grow, and no call may break.
#
#   BIN=build/bin SOAK_SECONDS=3600 SOAK_CALLS=100 bash tests/soak.sh
#
# The load is SOAK_WAVES groups of SOAK_CALLS/SOAK_WAVES concurrent calls
# (exoplex-call, 1 kHz tone, echoed by the PersonaPlex stand-in), each
# group calling again as soon as its calls end and the groups staggered,
# so about SOAK_CALLS calls are live at any time while calls keep
# starting and ending. The pool has SOAK_CALLS + SOAK_CALLS/SOAK_WAVES
# servers: a group's new calls must not wait for the servers its last
# calls are still closing.
#
# Phases: warm-up (SOAK_WARMUP s of load, then quiet until no call is
# left) -> quiet sample Q1 -> load until SOAK_SECONDS -> quiet -> Q2.
# Fails when, for ingress, transcoder, egress or the stand-in:
#   - Q2's open fds exceed Q1's by more than SOAK_FD_SLACK (2);
#   - Q2's RSS exceeds Q1's by more than SOAK_RSS_SLACK_KB (8192) + 5%;
#   - under load, the median RSS of the last SOAK_WINDOW s exceeds that of
#     the first SOAK_WINDOW s after warm-up by more than twice that bound;
# or when any exoplex-call run fails its expectations (1 kHz heard back,
# enough audio, no pacing violation), or ingress counts a call that ended
# other than by the caller's stop, or a refusal, or a process dies.
# Samples (every SOAK_SAMPLE_S s) go to $SOAK_OUT (default
# out/soak-<time>.csv): time,phase,process,rss_kb,fds,threads,cpu_s.
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.." || exit 1

DUR=${SOAK_SECONDS:-3600}
CALLS=${SOAK_CALLS:-100}
WAVES=${SOAK_WAVES:-4}
CALL_S=${SOAK_CALL_SECONDS:-$((DUR >= 600 ? 60 : 20))}
WARM=${SOAK_WARMUP:-$((DUR / 3 > 300 ? 300 : DUR / 3))}
WIN=${SOAK_WINDOW:-$((DUR / 6 > 300 ? 300 : DUR / 6))}
SAMPLE_S=${SOAK_SAMPLE_S:-$((DUR >= 600 ? 10 : 5))}
FD_SLACK=${SOAK_FD_SLACK:-2}
RSS_SLACK=${SOAK_RSS_SLACK_KB:-8192}
OUT=${SOAK_OUT:-out/soak-$(date +%Y%m%d-%H%M%S).csv}
[ $((CALLS % WAVES)) = 0 ] || { log "SOAK_CALLS must be a multiple of SOAK_WAVES"; exit 2; }
PER=$((CALLS / WAVES))
SERVERS=$((CALLS + PER))
mkdir -p "$(dirname "$OUT")"
log "soak: ${DUR}s, $CALLS calls ($WAVES groups of $PER, ${CALL_S}s each), $SERVERS servers, warm-up ${WARM}s, window ${WIN}s"

base=$(free_range "$SERVERS") || { log "no run of $SERVERS free ports"; exit 1; }
read -r P_PLEX_ADM <<<"$(free_ports 1)"
PLEX_ADM="http://127.0.0.1:$P_PLEX_ADM"
urls=""
for ((p = base; p < base + SERVERS; p++)); do urls+="${urls:+,}ws://127.0.0.1:$p"; done
spawn fakeplex "$BIN/exoplex-fakeplex" --mode echo --complexity 0 \
	--listen "127.0.0.1:$base-$((base + SERVERS - 1))" --admin "127.0.0.1:$P_PLEX_ADM"
wait_http "$PLEX_ADM/healthz" || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$urls" EXOPLEX_LOG_LEVEL=warn || exit 1
# ingress knows the pool's capacity before the first calls.
deadline=$((SECONDS + 20))
until [ "$(metric "$ADM_E" 'exoplex_personaplex_servers{state="free"}')" = "$SERVERS" ]; do
	[ $SECONDS -lt $deadline ] || { log "egress never had $SERVERS free servers"; exit 1; }
	sleep 0.2
done

PHASE=warmup
echo "time,phase,process,rss_kb,fds,threads,cpu_s" >"$OUT"
TCK=$(getconf CLK_TCK)
# sample: one line per process; also sets RSS_<name>/FDS_<name>.
sample() {
	local n p rss fds thr cpu now
	now=$(date +%s)
	for n in ingress transcoder egress fakeplex; do
		p=$(pid_of "$n")
		if ! [ -r "/proc/$p/status" ]; then
			log "$n (pid $p) is gone"
			echo dead >"$T/dead"
			continue
		fi
		rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")
		thr=$(awk '/^Threads:/ { print $2 }' "/proc/$p/status")
		fds=$(ls "/proc/$p/fd" 2>/dev/null | wc -l)
		cpu=$(awk -v t="$TCK" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$p/stat")
		echo "$now,$PHASE,$n,$rss,$fds,$thr,$cpu" >>"$OUT"
		printf -v "RSS_$n" %s "$rss"
		printf -v "FDS_$n" %s "$fds"
	done
}

# group I STOP_AT: calls until STOP_AT (epoch s); each run's status kept
# as $T/<phase>-g<I>-<K>.rc.
group() {
	local i=$1 stop_at=$2 k=0 g
	while [ "$(date +%s)" -lt "$stop_at" ]; do
		k=$((k + 1))
		g=$PHASE-g$i-$k
		timeout -k 5 $((CALL_S + 60)) "$BIN/exoplex-call" \
			--url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
			--calls "$PER" --ramp-ms 1000 --seconds "$CALL_S" --tone 1000 \
			--expect-hz 1000 --expect-tolerance 0.02 \
			--expect-min-seconds $((CALL_S * 6 / 10)) --expect-no-violations \
			>"$T/$g.json" 2>"$T/$g.log"
		echo "$?" >"$T/$g.rc"
	done
}

# load SECONDS: the groups, staggered, until SECONDS from now; then wait
# for their last calls and for ingress to have no call left.
load() {
	local stop_at=$(($(date +%s) + $1)) i pids=()
	for ((i = 0; i < WAVES; i++)); do
		group "$i" "$stop_at" &
		pids+=($!)
		sleep $((CALL_S / WAVES))
	done
	while [ "$(date +%s)" -lt "$stop_at" ]; do
		sample
		sleep "$SAMPLE_S"
	done
	wait "${pids[@]}"
	deadline=$((SECONDS + 30))
	while [ "$(metric "$ADM_I" exoplex_calls_active)" != 0 ] ||
		[ "$(metric "$ADM_E" 'exoplex_personaplex_servers{state="free"}')" != "$SERVERS" ]; do
		[ $SECONDS -lt $deadline ] || { log "calls or sessions still open 30 s after the load"; break; }
		sleep 0.5
	done
	sleep 2 # sockets closing, freed memory returned
}

load "$WARM"
PHASE=quiet1
sample
declare -A Q1_RSS Q1_FDS
for n in ingress transcoder egress fakeplex; do
	v=RSS_$n; Q1_RSS[$n]=${!v:-0}
	v=FDS_$n; Q1_FDS[$n]=${!v:-0}
done
PHASE=load
load $((DUR - WARM))
PHASE=quiet2
sample
LOAD_START=$(awk -F, '$2 == "load" { print $1; exit }' "$OUT")
LOAD_END=$(awk -F, '$2 == "load" { t = $1 } END { print t }' "$OUT")

fail=0
bad() { log "FAIL: $*"; fail=1; }
[ -e "$T/dead" ] && bad "a process died during the soak"
# Every call: its exoplex-call run passed.
runs=0 calls_ok=0
for f in "$T"/*-g*-*.rc; do
	runs=$((runs + 1))
	rc=$(cat "$f")
	if [ "$rc" = 0 ]; then
		calls_ok=$((calls_ok + PER))
	else
		bad "exoplex-call run $(basename "$f" .rc) exited $rc: $(grep -m3 'expect\|exoplex-call:' "${f%.rc}.log" | tr '\n' ' ')"
	fi
done
started=$(metric "$ADM_I" exoplex_calls_started_total)
ended=$(metric "$ADM_I" 'exoplex_calls_ended_total{reason="callended"}')
refused=$(($(metric "$ADM_I" 'exoplex_calls_refused_total{reason="no_capacity"}') +
	$(metric "$ADM_I" 'exoplex_calls_refused_total{reason="auth_failed"}')))
other=$(curl -fsS "$ADM_I/metrics" | awk '/^exoplex_calls_ended_total/ && !/callended/ { s += $2 } END { print s + 0 }')
log "calls: $runs exoplex-call runs, $calls_ok calls passed; ingress started $started, ended by the caller $ended, otherwise $other, refused $refused"
[ "$started" = "$ended" ] || bad "ingress started $started calls but $ended ended by the caller's stop"
[ "$other" = 0 ] || bad "$other calls ended for another reason"
[ "$refused" = 0 ] || bad "$refused calls refused"
[ "$started" -ge "$CALLS" ] || bad "only $started calls"

for n in ingress transcoder egress fakeplex; do
	v=RSS_$n; rss2=${!v:-0}
	v=FDS_$n; fds2=${!v:-0}
	rss1=${Q1_RSS[$n]} fds1=${Q1_FDS[$n]}
	allow=$((RSS_SLACK + rss1 / 20))
	read -r m1 m2 <<<"$(awk -F, -v n="$n" -v a="$LOAD_START" -v b="$LOAD_END" -v w="$WIN" '
		$3 == n && $2 == "load" && $1 < a + w { x[++i] = $4 }
		$3 == n && $2 == "load" && $1 > b - w { y[++j] = $4 }
		function med(v, k,   s, t, p, q) { if (!k) return 0
			for (p = 1; p <= k; p++) for (q = p + 1; q <= k; q++)
				if (v[q] < v[p]) { t = v[p]; v[p] = v[q]; v[q] = t }
			return v[int((k + 1) / 2)] }
		END { print med(x, i), med(y, j) }' "$OUT")"
	log "$n: quiet rss ${rss1} -> ${rss2} kB, fds $fds1 -> $fds2; under load median rss $m1 -> $m2 kB"
	[ "$fds2" -le $((fds1 + FD_SLACK)) ] || bad "$n: open fds grew from $fds1 to $fds2"
	[ "$rss2" -le $((rss1 + allow)) ] || bad "$n: quiet RSS grew from $rss1 to $rss2 kB (allowed +$allow)"
	[ "$m2" -le $((m1 + 2 * allow)) ] || bad "$n: RSS under load grew from $m1 to $m2 kB (allowed +$((2 * allow)))"
done
awk -F, 'NR > 1 { c[$3] = $7 } END { for (n in c) printf "cpu %s: %.0f s\n", n, c[n] }' "$OUT" >&2
log "samples: $OUT"
[ $fail = 0 ] || exit 1
log "PASS soak: ${DUR}s, $started calls, no growth past the bounds"
