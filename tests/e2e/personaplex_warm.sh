#!/usr/bin/env bash
# One warm session and a 2 s prompt phase: egress connects to the server
# with the default persona before any call and waits, handshake done. A call
# then takes that session over, so the caller hears the agent (the echo)
# within 300 ms of `start` instead of after 2 s of prompt processing.
#
# ingress holds a playback lead before it starts playing (200 ms by
# default); this test lowers it to 80 ms (one model frame) so the bound
# measures the PersonaPlex path, not that cushion.
. "$(dirname "$0")/../lib.sh"

start_fakeplex --mode echo --handshake-delay-ms 2000 || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" EXOPLEX_PERSONAPLEX_WARM=1 \
	EXOPLEX_PLAYBACK_LEAD_MS=80 || exit 1

deadline=$((SECONDS + 10))
until [ "$(metric "$ADM_E" 'exoplex_personaplex_servers{state="warm"}')" = 1 ]; do
	[ $SECONDS -lt $deadline ] || { log "no warm session after 10 s"; exit 1; }
	sleep 0.1
done
log "a warm session is ready"

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--seconds 5 --tone 1000 --expect-hz 1000 --expect-tolerance 0.02 \
	--expect-min-seconds 4 --expect-no-violations >"$T/summary.json" 2>"$T/call.log"
rc=$?
cat "$T/summary.json"
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }

first=$(json_get "$T/summary.json" 'd["first_audio_ms"]')
taken=$(metric "$ADM_E" 'exoplex_egress_warm_sessions_taken_total')
v=$(plex_stat '["violations"]')
log "first agent audio after $first ms; warm sessions taken: $taken; fakeplex violations: $v"
[ "$taken" = 1 ] || { log "the call did not take the warm session"; exit 1; }
[ "$v" = 0 ] || { log "fakeplex counted $v violations"; cat "$T/stats.json" >&2; exit 1; }
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= 300 else 1)' "$first" ||
	{ log "first audio after $first ms, over 300 ms"; exit 1; }
# After the call the server is warmed again (a new 2 s prompt phase).
deadline=$((SECONDS + 10))
until [ "$(metric "$ADM_E" 'exoplex_personaplex_servers{state="warm"}')" = 1 ]; do
	[ $SECONDS -lt $deadline ] || { log "the server was not warmed again"; exit 1; }
	sleep 0.1
done
log "PASS a warm session answers within 300 ms of start (${first} ms)"
