#!/usr/bin/env bash
# ingress killed (SIGKILL) in the middle of a call, then started again,
# the test acting as its supervisor. Exotel never reconnects a stream, so
# the call is over; the other two must end it promptly, within a few
# seconds (EXOPLEX_INGRESS_GRACE_MS, 3 s), not at their idle expiry
# (30 s, 60 s): egress closes the PersonaPlex session (the stand-in's
# sessions_active back to 0) and releases the server
# (exoplex_personaplex_servers{state="busy"} 0), call.ended is delivered
# with reason bridge_error, and the transcoder frees the call. Then a new
# call through the restarted ingress works.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"
. "$(dirname "$0")/restart_lib.sh"
BOUND_MS=8000

start_sink || exit 1
start_fakeplex --mode echo || exit 1
ENV=(EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" "${HOOK_ENV[@]}")
start_trio "${ENV[@]}" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--rate 8000 --seconds 20 --tone 1000 >"$T/summary.json" 2>"$T/call.log" &
CALL=$!
sleep 6
[ "$(plex_stat '["sessions_active"]')" = 1 ] || { log "no PersonaPlex session 6 s into the call"; exit 1; }
[ "$(metric "$ADM_E" 'exoplex_personaplex_servers{state="busy"}')" = 1 ] || { log "no server busy"; exit 1; }
kill_ms=$(now_ms)
kill_hard ingress
log "ingress killed (SIGKILL)"
wait $CALL # the call's socket went with ingress: it fails, as it should

# Until the session is closed, the server free, call.ended delivered and
# the transcoder's call freed (or the bound passes).
released= ended= freed=
while [ $(($(now_ms) - kill_ms)) -lt $((BOUND_MS + 4000)) ]; do
	t=$(($(now_ms) - kill_ms))
	[ -z "$released" ] && [ "$(plex_stat '["sessions_active"]')" = 0 ] &&
		[ "$(metric "$ADM_E" 'exoplex_personaplex_servers{state="busy"}')" = 0 ] && released=$t
	[ -z "$ended" ] && [ "$(sink_stat 'd["by_event"].get("call.ended", 0)' 2>/dev/null)" = 1 ] && ended=$t
	[ -z "$freed" ] && [ "$(metric "$ADM_T" exoplex_calls_active)" = 0 ] && freed=$t
	[ -n "$released" ] && [ -n "$ended" ] && [ -n "$freed" ] && break
	sleep 0.1
done
log "after the kill: server released at ${released:-never} ms, call.ended delivered at ${ended:-never} ms, transcoder freed the call at ${freed:-never} ms"
fail=0
for v in "$released" "$ended" "$freed"; do
	[ -n "$v" ] && [ "$v" -le $BOUND_MS ] || fail=1
done
[ $fail = 0 ] || { log "not within $BOUND_MS ms of the kill"; exit 1; }
check_hooks 1 reason=bridge_error || exit 1
[ "$(metric "$ADM_E" exoplex_egress_calls_orphaned_total)" = 1 ] ||
	{ log "egress did not end the call as ingress's"; exit 1; }
[ "$(metric "$ADM_T" exoplex_transcoder_calls_orphaned_total)" = 1 ] ||
	{ log "the transcoder did not free the call as ingress's"; exit 1; }
v=$(plex_stat '["violations"]')
[ "$v" = 0 ] || { log "fakeplex counted $v violations"; cat "$T/stats.json" >&2; exit 1; }

# The supervisor brings ingress back: calls work again.
spawn ingress2 env "${ENV[@]}" "$BIN/exoplex-ingress" --admin "127.0.0.1:$P_ADM_I" \
	--listen "127.0.0.1:$P_LISTEN"
wait_http "$ADM_I/readyz" 10 || exit 1
"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--rate 8000 --seconds 4 --tone 1000 --expect-hz 1000 --expect-min-seconds 3 \
	--expect-no-violations >"$T/summary2.json" 2>"$T/call2.log" ||
	{ log "a call through the restarted ingress failed"; cat "$T/summary2.json" "$T/call2.log" >&2; exit 1; }
wait_ended 2 10 || exit 1
links_up || exit 1
log "PASS kill -9 of ingress: session closed, server released, call.ended bridge_error, all within $BOUND_MS ms"
