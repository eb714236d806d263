#!/usr/bin/env bash
# egress killed (SIGKILL) 5 s into a 14 s transcribe call and started again
# at once, the test acting as its supervisor. ingress re-announces the call
# with the mode decided before (call_start.mode), so the new egress keeps
# it a transcribe call: it leases no PersonaPlex server (one is configured
# and stays free), opens a new STT session, and the call's words go on
# after the restart as speaker "call". Exotel still gets nothing back, the
# socket stays open to the stop, and the frontend sees one call.started
# and a call.ended (mode transcribe) last.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/stt_lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"
. "$(dirname "$0")/assist_lib.sh"
KEY=e2e-key-$$

start_fakeplex --mode echo || exit 1
start_fakescribe --api-key "$KEY" || exit 1
start_sink || exit 1
ENV=(EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" ELEVENLABS_API_KEY="$KEY"
	EXOPLEX_STT_URL="$SCRIBE_URL" EXOPLEX_STT_VAD_SILENCE_SECS=0.3
	"${HOOK_ENV[@]}")
start_trio "${ENV[@]}" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--seconds 14 --signal speech --custom mode=transcribe \
	--stream-sid S-assist --call-sid C-assist --expect-closed-by client \
	>"$T/summary.json" 2>"$T/call.log" &
CALL=$!
sleep 5
kill -0 $CALL 2>/dev/null || { log "the call ended early"; cat "$T/call.log" >&2; exit 1; }
kill_hard egress
spawn egress2 env "${ENV[@]}" "$BIN/exoplex-egress" --admin "127.0.0.1:$P_ADM_E"
log "egress killed and restarted"
wait_http "$ADM_E/healthz" || exit 1
wait $CALL || { log "exoplex-call failed"; cat "$T/call.log" >&2; exit 1; }
cat "$T/summary.json"

fail=0
rx=$(summary_get "$T/summary.json" 'd["messages_received"]')
early=$(summary_get "$T/summary.json" 'int(d["closed_before_stop"])')
[ "$rx" = 0 ] || { log "$rx messages sent back to Exotel"; fail=1; }
[ "$early" = 0 ] || { log "the call's socket closed before its stop"; fail=1; }
grep -q 'mode transcribe (by earlier)' "$T/egress2.log" ||
	{ log "the new egress did not keep the mode"; fail=1; }
convs=$(plex_stat '["sessions_started"]')
[ "$convs" = 0 ] || { log "PersonaPlex got $convs sessions"; fail=1; }
wait_scribe_stat '["sessions"]' 2 10 || fail=1
v=$(scribe_stat '["violations"]')
[ "$v" = 0 ] || { log "fakescribe counted $v violations"; fail=1; }
after=$(metric "$ADM_E" 'exoplex_egress_stt_transcripts_total{kind="final"}')
log "fakeplex sessions=$convs; fakescribe violations=$v; finals after the restart=$after"
[ "$after" -ge 1 ] || { log "no transcript after the restart"; fail=1; }

wait_ended 1 20 || exit 1
check_hooks 1 reason=callended || fail=1
check_call S-assist mode=transcribe reason=callended speaker=call \
	audio_out_max=0 || fail=1
[ $fail = 0 ] || exit 1
log "PASS a transcribe call stays one across an egress restart"
