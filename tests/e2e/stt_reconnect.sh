#!/usr/bin/env bash
# STT sessions that end under a call: the Scribe stand-in ends each
# session after 4 s with session_time_limit_exceeded, and egress is
# killed (SIGKILL) and restarted mid-call. Egress must reconnect each
# time (the restarted one for the re-announced call), replay the audio
# since the last commit with previous_text on the first chunk only, keep
# passing on caller transcripts, and the stand-in must count no protocol
# violation. The call's audio must go on throughout.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/stt_lib.sh"
KEY=e2e-key-$$

start_fakeplex --mode echo || exit 1
start_fakescribe --api-key "$KEY" --session-limit-s 4 || exit 1
ENV=(EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" ELEVENLABS_API_KEY="$KEY"
	EXOPLEX_STT_URL="$SCRIBE_URL" EXOPLEX_STT_VAD_SILENCE_SECS=0.3)
start_trio "${ENV[@]}" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--rate 8000 --seconds 20 --signal speech --expect-min-seconds 10 \
	--expect-no-violations >"$T/summary.json" 2>"$T/call.log" &
CALL=$!

# Two time limits, then a killed egress.
wait_scribe_stat '["time_limits"]' 2 15 || exit 1
reconnects=$(metric "$ADM_E" exoplex_egress_stt_reconnects_total)
replayed=$(metric "$ADM_E" exoplex_egress_stt_audio_replayed_ms_total)
finals1=$(metric "$ADM_E" 'exoplex_egress_stt_transcripts_total{kind="final"}')
log "before the kill: reconnects=$reconnects replayed_ms=$replayed finals=$finals1"
kill_hard egress
spawn egress2 env "${ENV[@]}" "$BIN/exoplex-egress" --admin "127.0.0.1:$P_ADM_E"
wait_http "$ADM_E/healthz" || exit 1
wait $CALL
rc=$?
cat "$T/summary.json"
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }
wait_scribe_stat '["client_closed_1000"]' 1 10 || exit 1

finals2=$(metric "$ADM_E" 'exoplex_egress_stt_transcripts_total{kind="final"}')
v=$(scribe_stat '["violations"]')
sessions=$(scribe_stat '["sessions"]')
prev=$(scribe_stat '["previous_texts"]')
log "fakescribe: sessions=$sessions previous_texts=$prev violations=$v; restarted egress finals=$finals2"
fail=0
[ "$v" = 0 ] || { log "fakescribe counted $v violations"; cat "$T/scribe.json" >&2; fail=1; }
[ "$reconnects" -ge 2 ] || { log "egress reconnected $reconnects times"; fail=1; }
[ "$replayed" -gt 0 ] || { log "no audio was replayed"; fail=1; }
[ "$prev" -ge 1 ] || { log "no previous_text was sent"; fail=1; }
[ "$finals1" -ge 1 ] || { log "no final before the kill"; fail=1; }
# The restarted egress transcribes the re-announced call.
[ "$finals2" -ge 1 ] || { log "no final after the restart"; fail=1; }
[ "$sessions" -ge 4 ] || { log "only $sessions STT sessions"; fail=1; }
[ $fail = 0 ] || exit 1
log "PASS STT sessions replaced under a live call"
