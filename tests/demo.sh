#!/usr/bin/env bash
# make demo: the PersonaPlex stand-in (echo) and the trio on loopback, one
# 10 s simulated call with a speech-like test signal. The caller's received
# audio goes to out/demo-received.wav; everything started here is stopped.
. "$(dirname "$0")/lib.sh"
OUT=${OUT:-out}
mkdir -p "$OUT"

log "starting the PersonaPlex stand-in (echo mode) and the trio"
start_fakeplex --mode echo || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" || exit 1

log "calling ws://127.0.0.1:$P_LISTEN/exotel for 10 s (speech-like signal, 8000 Hz)"
"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--rate 8000 --seconds 10 --signal speech --record "$OUT/demo-received.wav" \
	--expect-min-seconds 6 --expect-no-violations >"$OUT/demo-summary.json"
rc=$?
echo "Call summary:"
cat "$OUT/demo-summary.json"
echo
echo "PersonaPlex stand-in:"
curl -fsS "$PLEX_ADM/stats"
echo
echo "The caller heard: $OUT/demo-received.wav"
[ $rc = 0 ] && log "demo OK" || log "demo FAILED (exoplex-call exit $rc)"
exit $rc
