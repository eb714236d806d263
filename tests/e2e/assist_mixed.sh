#!/usr/bin/env bash
# A voice-agent call and an agent-assist call at the same time, on one
# PersonaPlex server (echo) and the strict Scribe stand-in: the agent call
# (no mode parameter) hears its 1 kHz tone back and is transcribed as the
# caller; the transcribe call (custom parameter mode=transcribe) gets not
# one message back, leases nothing (the server only ever had one session)
# and is transcribed as speaker "call". Each mode shows in its webhooks.
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

"$BIN/exoplex-call" --url "$URL" --seconds 10 --tone 1000 \
	--stream-sid S-agent --call-sid C-agent --expect-hz 1000 \
	--expect-tolerance 0.02 --expect-min-seconds 6 --expect-no-violations \
	>"$T/agent.json" 2>"$T/agent.log" &
AGENT=$!
"$BIN/exoplex-call" --url "$URL" --seconds 10 --signal speech \
	--custom mode=transcribe --stream-sid S-assist --call-sid C-assist \
	--expect-closed-by client >"$T/assist.json" 2>"$T/assist.log" &
ASSIST=$!
fail=0
wait $AGENT || { log "the agent call failed"; cat "$T/agent.log" >&2; fail=1; }
wait $ASSIST || { log "the transcribe call failed"; cat "$T/assist.log" >&2; fail=1; }
cat "$T/agent.json" "$T/assist.json"
[ $fail = 0 ] || exit 1

a_rx=$(summary_get "$T/agent.json" 'd["seconds_received"]')
a_hz=$(summary_get "$T/agent.json" 'd["dominant_hz"]')
t_rx=$(summary_get "$T/assist.json" 'd["messages_received"]')
t_early=$(summary_get "$T/assist.json" 'int(d["closed_before_stop"])')
log "agent call: ${a_rx} s back at ${a_hz} Hz; transcribe call: $t_rx messages back, closed_before_stop=$t_early"
[ "$t_rx" = 0 ] || { log "the transcribe call got $t_rx messages"; fail=1; }
[ "$t_early" = 0 ] || { log "the transcribe call was closed early"; fail=1; }

wait_scribe_stat '["client_closed_1000"]' 2 10 || exit 1
v=$(scribe_stat '["violations"]')
sessions=$(scribe_stat '["sessions"]')
convs=$(plex_stat '["sessions_started"]')
log "fakescribe: sessions=$sessions violations=$v; fakeplex: sessions_started=$convs"
[ "$sessions" = 2 ] || { log "expected two STT sessions, saw $sessions"; fail=1; }
[ "$v" = 0 ] || { log "fakescribe counted $v violations"; fail=1; }
[ "$convs" = 1 ] || { log "PersonaPlex had $convs sessions, wanted the agent's only"; fail=1; }

wait_ended 2 20 || exit 1
check_hooks 2 reason=callended || fail=1
check_call S-agent mode=agent speaker=caller audio_in_min=6 || fail=1
check_call S-assist mode=transcribe speaker=call audio_in_min=9 \
	audio_out_max=0 || fail=1
[ $fail = 0 ] || exit 1
log "PASS an agent call and a transcribe call side by side"
