#!/usr/bin/env bash
# PersonaPlex takes 3 s to process its prompts before its 0x00 handshake.
# Nothing may reach the server before 0x00 (the stand-in counts every such
# message as a sent_before_handshake violation and throws it away, as the
# real server's is_alive() does), and the call must still work: the caller
# hears the 1 kHz tone echoed back once the session is up.
. "$(dirname "$0")/../lib.sh"

start_fakeplex --mode echo --handshake-delay-ms 3000 || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--seconds 10 --tone 1000 --expect-hz 1000 --expect-tolerance 0.02 \
	--expect-min-seconds 5 --expect-no-violations >"$T/summary.json" 2>"$T/call.log"
rc=$?
cat "$T/summary.json"
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }

early=$(plex_stat '["violations_by_kind"].get("sent_before_handshake", 0)')
v=$(plex_stat '["violations"]')
hs=$(plex_stat '["handshakes_sent"]')
first=$(json_get "$T/summary.json" 'd["first_audio_ms"]')
log "fakeplex: handshakes=$hs sent_before_handshake=$early violations=$v; first agent audio after ${first} ms"
[ "$hs" = 1 ] || { log "expected one handshake, got $hs"; exit 1; }
[ "$early" = 0 ] || { log "$early message(s) reached the server before 0x00"; exit 1; }
[ "$v" = 0 ] || { log "fakeplex counted $v violations"; cat "$T/stats.json" >&2; exit 1; }
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 3000 else 1)' "$first" ||
	{ log "audio came back before the 3 s prompt phase ended?"; exit 1; }
log "PASS nothing before 0x00 with a 3 s handshake delay; the call works"
