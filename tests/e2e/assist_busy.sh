#!/usr/bin/env bash
# The only PersonaPlex server is busy with an agent call: another agent
# call is refused (no_capacity), yet a transcribe call (custom parameter
# mode=transcribe) at the same moment is accepted, runs to its stop,
# gets nothing back and is transcribed: it never waits on or counts
# against the pool.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/stt_lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"
. "$(dirname "$0")/assist_lib.sh"
KEY=e2e-key-$$

start_fakeplex --mode echo || exit 1
start_fakescribe --api-key "$KEY" || exit 1
start_sink || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" ELEVENLABS_API_KEY="$KEY" \
	EXOPLEX_STT_URL="$SCRIBE_URL" EXOPLEX_STT_VAD_SILENCE_SECS=0.3 \
	"${HOOK_ENV[@]}" || exit 1
URL="ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000"

"$BIN/exoplex-call" --url "$URL" --seconds 14 --tone 1000 \
	--stream-sid S-holder --call-sid C-holder --expect-hz 1000 \
	--expect-tolerance 0.02 --expect-min-seconds 6 \
	>"$T/holder.json" 2>"$T/holder.log" &
HOLDER=$!
# The server is leased (egress counts it busy) before the others start.
deadline=$((SECONDS + 10))
until [ "$(metric "$ADM_E" 'exoplex_personaplex_servers{state="busy"}')" = 1 ]; do
	[ $SECONDS -lt $deadline ] || { log "the server never became busy"; exit 1; }
	sleep 0.1
done
free=$(metric "$ADM_E" 'exoplex_personaplex_servers{state="free"}')
log "the only server is busy (free: $free)"

"$BIN/exoplex-call" --url "$URL" --seconds 6 --signal speech \
	--custom mode=transcribe --stream-sid S-assist --call-sid C-assist \
	--expect-closed-by client >"$T/assist.json" 2>"$T/assist.log" &
ASSIST=$!
sleep 0.5
"$BIN/exoplex-call" --url "$URL" --seconds 2 --tone 440 \
	--stream-sid S-refused --call-sid C-refused \
	>"$T/refused.json" 2>"$T/refused.log"
fail=0
wait $ASSIST || { log "the transcribe call failed"; cat "$T/assist.log" >&2; fail=1; }
busy=$(metric "$ADM_E" 'exoplex_personaplex_servers{state="busy"}')
wait $HOLDER || { log "the agent call failed"; cat "$T/holder.log" >&2; fail=1; }
cat "$T/assist.json"
[ $fail = 0 ] || exit 1

t_rx=$(summary_get "$T/assist.json" 'd["messages_received"]')
t_early=$(summary_get "$T/assist.json" 'int(d["closed_before_stop"])')
t_sent=$(summary_get "$T/assist.json" 'd["seconds_sent"]')
r_early=$(summary_get "$T/refused.json" 'int(d["closed_before_stop"])')
r_by=$(summary_get "$T/refused.json" 'd["closed_by"]')
log "transcribe call: ${t_sent} s sent, $t_rx messages back, closed_before_stop=$t_early;" \
	"second agent call: closed_before_stop=$r_early closed_by=$r_by;" \
	"busy servers when the transcribe call ended: $busy"
[ "$t_rx" = 0 ] || { log "the transcribe call got $t_rx messages"; fail=1; }
[ "$t_early" = 0 ] || { log "the transcribe call was not accepted"; fail=1; }
[ "$r_early" = 1 ] || { log "the second agent call was not refused: the server was not busy"; fail=1; }
[ "$busy" = 1 ] || { log "busy servers $busy while the agent call held the only one"; fail=1; }

wait_ended 3 20 || exit 1
check_call S-assist mode=transcribe reason=callended speaker=call \
	audio_in_min=5 audio_out_max=0 || fail=1
check_call S-refused mode=agent reason=no_capacity || fail=1
check_call S-holder mode=agent reason=callended || fail=1
[ $fail = 0 ] || exit 1
log "PASS a transcribe call accepted while the only PersonaPlex server is busy"
