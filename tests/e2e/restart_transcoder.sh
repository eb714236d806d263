#!/usr/bin/env bash
# The transcoder killed (SIGKILL) 6 s into a 20 s call and started again
# at once, the test acting as its supervisor. The Exotel socket stays
# open; ingress re-announces the call to the new transcoder, egress tells
# it the live session again, it starts a new chained Ogg stream, and the
# caller hears the agent (the stand-in's echo of a 1 kHz tone) again
# within 2 s of the restart.
#
# With "egress-slow", egress is stopped (SIGSTOP) across the kill and the
# restart for 300 ms, so the new transcoder dials before egress has seen
# its old link close: NNG's pair1 refuses the new link at first, and
# egress must still count its peer (it once dropped all the agent's audio
# as for an absent transcoder).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/restart_lib.sh"
MODE=${1:-}

start_fakeplex --mode echo || exit 1
ENV=(EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL")
start_trio "${ENV[@]}" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--rate 8000 --seconds 20 --tone 1000 --expect-hz 1000 \
	--expect-tolerance 0.02 --expect-min-seconds 14 \
	--expect-no-violations >"$T/summary.json" 2>"$T/call.log" &
CALL=$!

sleep 6
kill -0 $CALL 2>/dev/null || { log "the call ended early"; cat "$T/call.log" >&2; exit 1; }
kill_ms=$(now_ms)
[ "$MODE" = egress-slow ] && kill -STOP "$(pid_of egress)"
kill_hard transcoder
spawn transcoder2 env "${ENV[@]}" "$BIN/exoplex-transcoder" --admin "127.0.0.1:$P_ADM_T"
restart_ms=$(now_ms)
if [ "$MODE" = egress-slow ]; then
	sleep 0.3
	kill -CONT "$(pid_of egress)"
fi
log "transcoder killed and restarted"
wait_http "$ADM_T/healthz" || exit 1

wait $CALL
rc=$?
cat "$T/summary.json"
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }
check_resumed "$T/summary.json" "$kill_ms" "$restart_ms" 2000 || exit 1
links_up || exit 1

# The new transcoder learned the call, began a new uplink stream and
# decoded the agent's audio; the stand-in read the chained stream without
# a protocol violation.
grep -q "call started: 8000 Hz (re-announced)" "$T/transcoder2.log" ||
	{ log "the restarted transcoder never learned the call"; exit 1; }
s=$(metric "$ADM_T" exoplex_transcoder_sessions_total)
d=$(metric "$ADM_T" exoplex_transcoder_frames_decoded_total)
e=$(metric "$ADM_T" exoplex_transcoder_frames_encoded_total)
v=$(plex_stat '["violations"]')
log "restarted transcoder: sessions=$s encoded=$e decoded=$d; fakeplex violations=$v"
[ "$s" -ge 1 ] || { log "the restarted transcoder began no uplink stream"; exit 1; }
# 14 s are left of the call: 700 frames of 20 ms up, 175 of 80 ms down.
[ "$e" -ge 500 ] && [ "$d" -ge 100 ] || { log "too little audio through the restarted transcoder"; exit 1; }
[ "$v" = 0 ] || { log "fakeplex counted $v violations"; cat "$T/stats.json" >&2; exit 1; }
log "PASS caller hears the agent again after kill -9 of the transcoder"
