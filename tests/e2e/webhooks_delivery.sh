#!/usr/bin/env bash
# Two simultaneous calls with DTMF and agent text through the real trio,
# webhooks to the strict sink, which fails the first 5 deliveries and then
# every request for 60 s. Every event must still arrive, signed, each
# under one delivery id, in order per call: call.started first, the DTMF
# digits, the agent's transcript, call.ended (callended, counters) last.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"
FAIL_MS=${FAIL_MS:-60000}

start_sink --fail-first 5 --fail-for-ms "$FAIL_MS" || exit 1
# Two PersonaPlex stand-ins (one conversation each), one process.
read -r P_PX1 P_PX2 P_PXA <<<"$(free_ports 3)"
spawn fakeplex "$BIN/exoplex-fakeplex" --mode echo \
	--listen "127.0.0.1:$P_PX1,127.0.0.1:$P_PX2" --admin "127.0.0.1:$P_PXA" \
	--text "Hello there, how can I help you today?"
wait_http "http://127.0.0.1:$P_PXA/healthz" || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="ws://127.0.0.1:$P_PX1,ws://127.0.0.1:$P_PX2" \
	"${HOOK_ENV[@]}" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--calls 2 --seconds 8 --tone 440 --dtmf 5@2000:150,9@4000 \
	--custom lang=hi --custom token=not-for-the-frontend \
	>"$T/summary.json" 2>"$T/call.log"
rc=$?
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }
log "calls done; the sink is failing for ${FAIL_MS} ms: waiting for every event"

backlog=$(metric "$ADM_E" exoplex_webhook_backlog)
log "egress backlog after the calls: $backlog"
# A frontend that is down is a detail of egress's readiness, never a 503.
code=$(curl -s -o "$T/readyz.txt" -w '%{http_code}' "$ADM_E/readyz")
cat "$T/readyz.txt" >&2
[ "$code" = 200 ] || { log "egress /readyz answered $code"; exit 1; }
grep -q "webhooks" "$T/readyz.txt" || { log "readyz names no webhook state"; exit 1; }

wait_ended 2 $((FAIL_MS / 1000 + 60)) || exit 1
sleep 1 # a late duplicate would show up now
check_hooks 2 dtmf=59 agent=1 reason=callended audio=1 param=lang=hi \
	no_param=token min_failed=6 || exit 1
[ "$(metric "$ADM_E" exoplex_webhook_backlog)" = 0 ] || sleep 1.5
b=$(metric "$ADM_E" exoplex_webhook_backlog)
d=$(metric "$ADM_E" exoplex_webhook_delivered_total)
f=$(metric "$ADM_E" exoplex_webhook_attempts_failed_total)
log "egress: delivered=$d failed_attempts=$f backlog=$b"
[ "$b" = 0 ] || { log "backlog $b after delivery"; exit 1; }
log "PASS webhooks delivered through failures"
