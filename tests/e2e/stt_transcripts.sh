#!/usr/bin/env bash
# A 12 s call with a speech-like caller at RATE Hz through the real trio,
# the PersonaPlex stand-in (echo), the Scribe stand-in and the webhook
# sink: egress must pass on caller transcripts, partials and finals (its
# log, metrics and webhooks: partials never twice in a row, one final per
# commit, all before call.ended), the stand-in must count no protocol
# violation, and at the end of the call egress must commit once and close
# the STT socket with 1000. The call's own audio must be unaffected.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/stt_lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"
RATE=${1:-8000}
KEY=e2e-key-$$

start_fakeplex --mode echo || exit 1
start_fakescribe --api-key "$KEY" || exit 1
start_sink || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" ELEVENLABS_API_KEY="$KEY" \
	EXOPLEX_STT_URL="$SCRIBE_URL" EXOPLEX_STT_VAD_SILENCE_SECS=0.3 \
	"${HOOK_ENV[@]}" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=$RATE" \
	--rate "$RATE" --seconds 12 --signal speech \
	--expect-min-seconds 8 --expect-no-violations \
	>"$T/summary.json" 2>"$T/call.log"
rc=$?
cat "$T/summary.json"
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }

# The call is over: egress commits, waits for the last transcript, closes.
wait_scribe_stat '["client_closed_1000"]' 1 10 || exit 1
partials=$(metric "$ADM_E" 'exoplex_egress_stt_transcripts_total{kind="partial"}')
finals=$(metric "$ADM_E" 'exoplex_egress_stt_transcripts_total{kind="final"}')
sent=$(metric "$ADM_E" 'exoplex_egress_stt_audio_sent_ms_total')
logged=$(grep -c 'caller (' "$T/egress.log")
v=$(scribe_stat '["violations"]')
sessions=$(scribe_stat '["sessions"]')
commits=$(scribe_stat '["commits"]')
asked=$(scribe_stat '["commit_requests"]')
query=$(scribe_stat '["last_query"]')
log "egress: partials=$partials finals=$finals audio_sent_ms=$sent final lines=$logged"
log "fakescribe: sessions=$sessions commits=$commits commit_requests=$asked violations=$v"
log "query: $query"
grep 'caller (' "$T/egress.log" | head -5 >&2

fail=0
[ "$sessions" = 1 ] || { log "expected one STT session, saw $sessions"; fail=1; }
[ "$v" = 0 ] || { log "fakescribe counted $v violations"; cat "$T/scribe.json" >&2; fail=1; }
[ "$asked" = 1 ] || { log "expected one final commit request, saw $asked"; fail=1; }
[ "$partials" -ge 3 ] || { log "too few partials ($partials)"; fail=1; }
[ "$finals" -ge 2 ] || { log "too few finals ($finals)"; fail=1; }
# One final per commit that had text, and each one in the log.
[ "$finals" = "$commits" ] || { log "finals $finals != commits with text $commits"; fail=1; }
[ "$logged" = "$finals" ] || { log "final lines $logged != finals $finals"; fail=1; }
# About 12 s of caller audio went to STT.
[ "$sent" -ge 10000 ] || { log "only $sent ms of audio sent to STT"; fail=1; }
case "$query" in
*"audio_format=pcm_$RATE"*"commit_strategy=vad"*) ;;
*) log "unexpected query: $query"; fail=1 ;;
esac
if grep -q "$KEY" "$T"/egress.log "$T"/ingress.log "$T"/transcoder.log; then
	log "the API key appears in a log"
	fail=1
fi
# The webhooks: every event in order, signed, call.ended last.
wait_ended 1 20 || exit 1
check_hooks 1 caller=1 reason=callended || fail=1
python3 - "$T/hooks.jsonl" "$finals" <<'PY' || fail=1
import json, sys
seen, evs = set(), []
for l in open(sys.argv[1]):
    l = json.loads(l)
    if l["status"] == 200 and l["delivery"] not in seen:
        seen.add(l["delivery"])
        evs.append(l["body"])
tr = [e for e in evs if e["event"] == "transcript" and e["speaker"] == "caller"]
finals = [e for e in tr if e["final"]]
fail = []
if len(finals) != int(sys.argv[2]):
    fail.append("%d final caller transcripts, egress counted %s"
                % (len(finals), sys.argv[2]))
last = None
for e in tr:
    if not e["final"] and e["text"] == last:
        fail.append("partial %r twice in a row" % e["text"])
    last = None if e["final"] else e["text"]
    if not (0 <= e["start_ms"] <= e["end_ms"] <= 14000):
        fail.append("offsets %s-%s for %r" % (e["start_ms"], e["end_ms"], e["text"]))
print("webhooks: %d caller transcripts (%d final), e.g. %r at %s-%s ms"
      % (len(tr), len(finals), finals[0]["text"] if finals else None,
         finals[0]["start_ms"] if finals else None,
         finals[0]["end_ms"] if finals else None), file=sys.stderr)
for f in fail:
    print("FAIL: " + f, file=sys.stderr)
sys.exit(1 if fail else 0)
PY
[ $fail = 0 ] || exit 1
log "PASS caller transcripts at $RATE Hz"
