#!/usr/bin/env bash
# exotel_stop.sh - after calls that went wrong, the trio still stops cleanly.
#
# Short-lived calls with bad input (every kind after a valid start, then
# 20 connections of which 4 send a start and drop at once) run through the
# trio and eight PersonaPlex stand-ins. Once ingress has no socket and no
# call left, ingress, transcoder and egress get SIGTERM in turn and each
# must exit 0 within 10 s: a crash while tearing down sessions that such
# calls left behind shows up here.
. "$(dirname "$0")/exotel_lib.sh"

start_fakeplex_n 8 --mode echo || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URLS" EXOPLEX_START_TIMEOUT_MS=1000 || exit 1
URL="ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000"

AB=(timeout -k 5 60 "$BIN/exoplex-abuse" --url "$URL" --wait-ms 300
	--start-wait-ms 2500 --timeout-ms 2000)
"${AB[@]}" --kind all --after-start >"$T/mid.jsonl" 2>"$T/mid.log" ||
	fail "exoplex-abuse (all, after start) exited $?"
"${AB[@]}" --churn 20 --churn-start >"$T/churn.jsonl" 2>"$T/churn.log" ||
	fail "exoplex-abuse (churn) exited $?"
[ "$(wc -l <"$T/mid.jsonl")" = 17 ] || fail "exoplex-abuse reported $(wc -l <"$T/mid.jsonl") runs, expected 17"

wait_metric "$ADM_I" 'exoplex_exotel_connections' -eq 0 10
wait_metric "$ADM_I" 'exoplex_calls_active' -eq 0 10
sleep 1 # let the PersonaPlex sessions of those calls close
alive_and_healthy
stop_clean ingress transcoder egress
finish
