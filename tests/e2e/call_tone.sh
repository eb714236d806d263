#!/usr/bin/env bash
# A 10 s simulated call with a 1 kHz tone at RATE Hz through the real trio and
# the PersonaPlex stand-in in echo mode. The caller must get back at least 6 s
# of audio at 1000 Hz ± 2% (any sample-rate bug moves the pitch), every
# message to the caller must be whole 20 ms frames, and the stand-in's strict
# reader must count no protocol violation.
. "$(dirname "$0")/../lib.sh"
RATE=${1:-8000}

start_fakeplex --mode echo || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" || exit 1

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
log "PASS call at $RATE Hz"
