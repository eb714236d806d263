#!/usr/bin/env bash
# Agent assist with no PersonaPlex server configured at all: a 10 s call
# with custom parameter mode=transcribe (the Stream applet's traffic:
# connected, start, media, stop; plus one DTMF digit) through the real trio,
# the strict Scribe stand-in and the webhook sink. The frontend gets
# call.started (mode transcribe), the call's transcripts (speaker "call",
# partials and finals), the digit and call.ended (callended, mode
# transcribe, ~10 s of audio in, none out); Exotel gets nothing back (not a
# message); the stand-in sees no violation; the transcoder builds no
# pipeline and ingress sends it no caller audio.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/stt_lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"
. "$(dirname "$0")/assist_lib.sh"
KEY=e2e-key-$$

start_fakescribe --api-key "$KEY" || exit 1
start_sink || exit 1
start_trio ELEVENLABS_API_KEY="$KEY" EXOPLEX_STT_URL="$SCRIBE_URL" \
	EXOPLEX_STT_VAD_SILENCE_SECS=0.3 "${HOOK_ENV[@]}" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--seconds 10 --signal speech --custom mode=transcribe --custom desk=7 \
	--dtmf 4@3000:120 --stream-sid S-assist --call-sid C-assist \
	--expect-closed-by client >"$T/summary.json" 2>"$T/call.log"
rc=$?
cat "$T/summary.json"
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }

fail=0
got=$(summary_get "$T/summary.json" 'd["messages_received"]')
early=$(summary_get "$T/summary.json" 'int(d["closed_before_stop"])')
log "exoplex-call: messages_received=$got closed_before_stop=$early"
[ "$got" = 0 ] || { log "ingress sent $got messages to a Stream applet"; fail=1; }
[ "$early" = 0 ] || { log "the call was closed before its stop"; fail=1; }

wait_scribe_stat '["client_closed_1000"]' 1 10 || exit 1
v=$(scribe_stat '["violations"]')
sessions=$(scribe_stat '["sessions"]')
log "fakescribe: sessions=$sessions violations=$v"
[ "$sessions" = 1 ] || { log "expected one STT session, saw $sessions"; fail=1; }
[ "$v" = 0 ] || { log "fakescribe counted $v violations"; cat "$T/scribe.json" >&2; fail=1; }

wait_ended 1 20 || exit 1
check_hooks 1 reason=callended param=desk=7 || fail=1
check_call S-assist mode=transcribe reason=callended speaker=call dtmf=4 \
	audio_in_min=9 audio_out_max=0 || fail=1

# Nothing went to Exotel, no PersonaPlex work anywhere.
out=0
for e in media mark clear; do
	n=$(metric "$ADM_I" "exoplex_exotel_messages_out_total{event=\"$e\"}")
	out=$((out + n))
done
up=$(metric "$ADM_I" 'exoplex_bus_frames_total{link="transcoder",dir="out",kind="caller_audio"}')
ctl=$(metric "$ADM_I" 'exoplex_bus_frames_total{link="control",dir="out",kind="caller_audio"}')
pipes=$(metric "$ADM_T" exoplex_transcoder_calls_started_total)
enc=$(metric "$ADM_T" exoplex_transcoder_frames_encoded_total)
tmode=$(metric "$ADM_E" 'exoplex_egress_calls_by_mode_total{mode="transcribe"}')
log "ingress: messages to Exotel=$out caller_audio to transcoder=$up to egress=$ctl;" \
	"transcoder: pipelines=$pipes frames encoded=$enc; egress: transcribe calls=$tmode"
[ "$out" = 0 ] || { log "ingress counted $out messages to Exotel"; fail=1; }
[ "$up" = 0 ] || { log "ingress sent the transcoder $up caller_audio frames"; fail=1; }
[ "$ctl" -ge 400 ] || { log "only $ctl caller_audio frames reached egress"; fail=1; }
[ "$pipes" = 0 ] && [ "$enc" = 0 ] || { log "the transcoder worked on the call"; fail=1; }
[ "$tmode" = 1 ] || { log "egress counted $tmode transcribe calls"; fail=1; }
grep -q 'mode transcribe (by custom_parameter)' "$T/egress.log" ||
	{ log "egress did not log the mode decision"; fail=1; }
[ $fail = 0 ] || exit 1
log "PASS a transcribe-only call with no PersonaPlex server"
