#!/usr/bin/env bash
# A 10 s simulated call with a 1 kHz tone at RATE Hz through the real trio and
# the PersonaPlex stand-in in echo mode. The caller must get back at least 6 s
# of audio at 1000 Hz ± 2% (any sample-rate bug moves the pitch), every
# message to the caller must be whole 20 ms frames, and the stand-in's strict
# reader must count no protocol violation. Every thread of the three
# processes, NNG's and the transcoder's shards too, must run under the
# scheduling policy POLICY (EXOPLEX_SCHED_POLICY; default batch).
. "$(dirname "$0")/../lib.sh"
RATE=${1:-8000}
POLICY=${2:-}

start_fakeplex --mode echo || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" \
	${POLICY:+EXOPLEX_SCHED_POLICY=$POLICY} || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=$RATE" \
	--rate "$RATE" --seconds 10 --tone 1000 --record "$T/received.wav" \
	--expect-hz 1000 --expect-tolerance 0.02 --expect-min-seconds 6 \
	--expect-no-violations >"$T/summary.json" 2>"$T/call.log"
rc=$?
cat "$T/summary.json"
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }

v=$(plex_stat '["violations"]')
s=$(plex_stat '["sessions_started"]')
log "fakeplex: sessions_started=$s violations=$v"
[ "$s" -ge 1 ] || { log "no PersonaPlex session was started"; exit 1; }
[ "$v" = 0 ] || { log "fakeplex counted $v protocol violations"; cat "$T/stats.json" >&2; exit 1; }

want=3 # SCHED_BATCH
[ "$POLICY" = normal ] && want=0
for p in ingress transcoder egress; do
	thread_policies "$(pid_of $p)" >"$T/policy.$p"
	n=$(wc -l <"$T/policy.$p")
	bad=$(grep -vc "^$want " "$T/policy.$p")
	log "$p: $n threads, $bad not under policy $want"
	[ "$n" -ge 4 ] && [ "$bad" = 0 ] || { cat "$T/policy.$p" >&2; exit 1; }
done
log "PASS call at $RATE Hz"
