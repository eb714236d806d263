#!/usr/bin/env bash
# A transcribe call with no speech-to-text configured (no
# ELEVENLABS_API_KEY) and no PersonaPlex server: there is nothing to do
# for it, so it is refused right after its start (ingress closes the
# Exotel socket) and the frontend hears why: call.ended reason
# bridge_error, detail stt_not_configured, mode transcribe.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"
. "$(dirname "$0")/assist_lib.sh"

start_sink || exit 1
start_trio "${HOOK_ENV[@]}" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--seconds 4 --signal speech --custom mode=transcribe \
	--stream-sid S-nostt --call-sid C-nostt >"$T/summary.json" 2>"$T/call.log"
cat "$T/summary.json"
early=$(summary_get "$T/summary.json" 'int(d["closed_before_stop"])')
by=$(summary_get "$T/summary.json" 'd["closed_by"]')
sent=$(summary_get "$T/summary.json" 'd["seconds_sent"]')
rx=$(summary_get "$T/summary.json" 'd["messages_received"]')
log "closed_before_stop=$early closed_by=$by after ${sent} s of audio; $rx messages back"
fail=0
[ "$early" = 1 ] && [ "$by" = server ] || { log "the call was not refused by the server"; fail=1; }
python3 -c "import sys; sys.exit(0 if float('$sent') < 1.5 else 1)" ||
	{ log "refused only after ${sent} s"; fail=1; }
[ "$rx" = 0 ] || { log "$rx messages sent to the Stream applet"; fail=1; }
wait_ended 1 20 || exit 1
check_call S-nostt mode=transcribe reason=bridge_error \
	detail=stt_not_configured no_transcripts=1 || fail=1
grep -q 'ELEVENLABS_API_KEY is not set' "$T/egress.log" ||
	{ log "egress did not say why"; fail=1; }
[ $fail = 0 ] || exit 1
log "PASS a transcribe call without STT refused with a clear reason"
