#!/usr/bin/env bash
# A wrong ElevenLabs key: egress must say so in one clear log line and a
# metric, not hammer the STT server, and the call's audio must go on as if
# STT did not exist (exoplex-call's expectations on the echoed tone pass).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/stt_lib.sh"

start_fakeplex --mode echo || exit 1
start_fakescribe --api-key right-key || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" ELEVENLABS_API_KEY=wrong-key \
	EXOPLEX_STT_URL="$SCRIBE_URL" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--rate 8000 --seconds 10 --tone 1000 \
	--expect-hz 1000 --expect-tolerance 0.02 --expect-min-seconds 6 \
	--expect-no-violations >"$T/summary.json" 2>"$T/call.log"
rc=$?
cat "$T/summary.json"
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }

errs=$(metric "$ADM_E" 'exoplex_egress_stt_errors_total{type="auth_error"}')
gave=$(metric "$ADM_E" 'exoplex_egress_stt_gave_up_total')
sessions=$(scribe_stat '["sessions"]')
rejected=$(scribe_stat '["rejected_auth"]')
log "egress: auth_error=$errs gave_up=$gave; fakescribe: sessions=$sessions rejected_auth=$rejected"
grep 'STT refused' "$T/egress.log" >&2

fail=0
[ "$errs" = 1 ] || { log "expected exoplex_egress_stt_errors_total{type=\"auth_error\"} 1, got $errs"; fail=1; }
[ "$gave" = 1 ] || { log "expected one call given up, got $gave"; fail=1; }
[ "$sessions" = 1 ] || { log "the STT server was tried $sessions times (no hammering)"; fail=1; }
[ "$rejected" = 1 ] || { log "fakescribe rejected $rejected keys"; fail=1; }
# STT trouble is a detail of readiness, never a 503.
code=$(curl -s -o "$T/readyz.txt" -w '%{http_code}' "$ADM_E/readyz")
cat "$T/readyz.txt" >&2
[ "$code" = 200 ] || { log "egress /readyz answered $code"; fail=1; }
grep -q 'stt=.*auth_error' "$T/readyz.txt" || { log "readyz does not name the STT error"; fail=1; }
grep -q 'STT refused by .*auth_error.*check ELEVENLABS_API_KEY' "$T/egress.log" ||
	{ log "no clear auth_error line in egress's log"; fail=1; }
if grep -q 'wrong-key' "$T"/egress.log; then
	log "the API key appears in egress's log"
	fail=1
fi
[ $fail = 0 ] || exit 1
log "PASS a wrong key is reported and the call goes on"
