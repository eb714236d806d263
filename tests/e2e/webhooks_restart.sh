#!/usr/bin/env bash
# egress killed (SIGKILL) in the middle of a call while the frontend is
# down, with events in its outbox; restarted, it learns the live call
# again from ingress. When the frontend is back, every event arrives:
# one call.started (none repeated for the re-announced call), seq going on
# without a gap or reuse, call.ended last. Then a call that ends while
# egress is down still gets its call.ended.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"

start_sink || exit 1
curl -fsS "$SINK/control/fail-now" >/dev/null || exit 1
start_fakeplex --mode echo --text "Hi." || exit 1
ENV=(EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" "${HOOK_ENV[@]}")
start_trio "${ENV[@]}" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--seconds 14 --tone 440 --dtmf 1@1500,2@3000,3@10000 \
	>"$T/summary.json" 2>"$T/call.log" &
CALL=$!

# Wait for call.started and two digits to be in the outbox, then kill.
deadline=$((SECONDS + 10))
while [ $SECONDS -lt $deadline ]; do
	q=$(metric "$ADM_E" 'exoplex_webhook_events_queued_total{event="dtmf"}')
	[ "$q" -ge 2 ] && break
	sleep 0.2
done
[ "$q" -ge 2 ] || { log "the DTMF events never reached the outbox"; exit 1; }
log "outbox backlog before the kill: $(metric "$ADM_E" exoplex_webhook_backlog)"
kill_hard egress
log "egress killed (SIGKILL)"
python3 - "$T/state/outbox.db" <<'PY' || exit 1
import sqlite3, sys
n = sqlite3.connect(sys.argv[1]).execute("select count(*) from events").fetchone()[0]
print("outbox rows after the kill: %d" % n, file=sys.stderr)
sys.exit(0 if n >= 3 else 1)
PY
sleep 0.5
spawn egress2 env "${ENV[@]}" "$BIN/exoplex-egress" --admin "127.0.0.1:$P_ADM_E"
wait_http "$ADM_E/healthz" || exit 1

wait "$CALL"
rc=$?
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }
log "call done; the frontend comes back"
curl -fsS "$SINK/control/ok-now" >/dev/null || exit 1
wait_ended 1 30 || exit 1
sleep 1
check_hooks 1 dtmf=123 reason=callended || exit 1
grep -q "call.started already queued" "$T/egress2.log" ||
	{ log "the restarted egress did not find the call's call.started"; exit 1; }
log "phase 1 passed: kill -9 mid-call"

# Phase 2: the call ends while egress is down. Its call_stop waits in
# ingress's bus queue; the restarted egress does not know the call, but
# the outbox does, and call.ended still goes out.
"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--seconds 5 --tone 440 --dtmf 1@500,2@1000,3@1500 \
	>"$T/summary2.json" 2>"$T/call2.log" &
CALL=$!
sleep 2.5
kill_hard egress2
log "egress killed again; the call ends while it is down"
wait "$CALL" || { log "second call failed"; cat "$T/call2.log" >&2; exit 1; }
spawn egress3 env "${ENV[@]}" "$BIN/exoplex-egress" --admin "127.0.0.1:$P_ADM_E"
wait_http "$ADM_E/healthz" || exit 1
wait_ended 2 30 || exit 1
sleep 1
check_hooks 2 dtmf=123 reason=callended || exit 1
log "PASS webhooks survive kill -9 of egress mid-call and across a call's end"
