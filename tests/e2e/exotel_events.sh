#!/usr/bin/env bash
# exotel_events.sh - issue 3, "Every event", "Marks", "DTMF", "Hang-up".
#
# The trio runs with EXOPLEX_DTMF_HANGUP='#' and the stand-in in echo mode.
#   a. A 10 s call with custom parameters (persona=alice and a key-only
#      `note`) and DTMF 5 and 9, neither a hang-up digit:
#      - both digits reach egress as bus dtmf frames (its control link);
#      - ingress sends marks in the playback stream, the simulated playout
#        echoes them after playing the audio before them, ingress matches
#        the echoes and passes them and the "agent playing" state on to
#        egress (control mark and playout frames);
#      - ingress logs the custom parameters' keys at start (values are
#        not logged: they may be secrets);
#      - the call runs to its stop: the caller hears 1 kHz, no violations.
#   b. A 10 s call (numbers as JSON numbers, the DTMF duration included)
#      that presses '#' at 3 s: ingress closes the socket
#      itself (closed_by server, 1000) before the caller's stop, counts a
#      DTMF hang-up, and the '#' still reached egress.
#   c. With EXOPLEX_MAX_CALLS=1, a call runs and hears its echo while a
#      second start is closed with 1013 (no capacity); only the first
#      reaches PersonaPlex.
. "$(dirname "$0")/exotel_lib.sh"

start_fakeplex --mode echo || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" EXOPLEX_DTMF_HANGUP='#' \
	EXOPLEX_MAX_CALLS=1 || exit 1
URL="ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000"
DTMF_IN='exoplex_bus_frames_total{link="control",dir="in",kind="dtmf"}'
MARK_IN='exoplex_bus_frames_total{link="control",dir="in",kind="mark"}'

call a --url "$URL" --seconds 10 --tone 1000 --dtmf '5@2000,9@3000:120' \
	--custom persona=alice --custom note \
	--expect-hz 1000 --expect-tolerance 0.02 --expect-min-seconds 6 \
	--expect-no-violations
want_rc a 0
want a "d['dtmf_sent'] == 2"
want a "d['marks_received'] > 0"
want a "d['marks_echoed'] > 0"
want a "d['closed_by'] == 'client' and not d['closed_before_stop']"
want_metric "$ADM_E" "$DTMF_IN" -eq 2
want_metric "$ADM_I" 'exoplex_exotel_messages_in_total{event="dtmf"}' -eq 2
want_metric "$ADM_I" 'exoplex_exotel_messages_out_total{event="mark"}' -gt 0
want_metric "$ADM_I" 'exoplex_mark_echoes_total{result="matched"}' -gt 0
want_metric "$ADM_E" "$MARK_IN" -gt 0
want_metric "$ADM_E" 'exoplex_bus_frames_total{link="control",dir="in",kind="playout"}' -gt 0
want_metric "$ADM_I" 'exoplex_dtmf_hangups_total' -eq 0
sid=$(json_get "$T/a.json" "d['stream_sid']")
grep "call started" "$T/ingress.log" | grep -F "$sid" |
	grep -qF 'custom_parameters={persona,note}' ||
	fail "ingress did not log the custom parameters' keys for $sid"
grep -F 'alice' "$T/ingress.log" >/dev/null &&
	fail "ingress logged a custom parameter's value"

call b --url "$URL" --seconds 10 --tone 1000 --dtmf '#@3000' --numbers \
	--expect-closed-by server --expect-close-code 1000
want_rc b 0
want b "d['closed_by'] == 'server' and d['close_code'] == 1000"
want b "d['closed_before_stop']"
want b "d['seconds_sent'] < 8"
want b "d['violations'] == 0"
want_metric "$ADM_I" 'exoplex_dtmf_hangups_total' -eq 1
want_metric "$ADM_E" "$DTMF_IN" -eq 3
wait_metric "$ADM_I" 'exoplex_calls_ended_total{reason="stopped"}' -ge 1 5

# c. Capacity: one call holds the only slot; a second start is refused.
# The refused start is made by exoplex-abuse (start_only), which sends a
# start and nothing after it and reads the close code as sent.
before=$(plex_stat '["sessions_started"]')
spawn c_call "$BIN/exoplex-call" --url "$URL" --seconds 5 --tone 1000 \
	--expect-hz 1000 --expect-tolerance 0.02 --expect-min-seconds 3 \
	--expect-no-violations
wait_metric "$ADM_I" 'exoplex_calls_active' -eq 1 5
timeout -k 5 30 "$BIN/exoplex-abuse" --url "$URL" --kind start_only \
	--wait-ms 2000 >"$T/c_refused.json" 2>"$T/c_refused.log"
log "c_refused: $(cat "$T/c_refused.json")"
want c_refused "d['upgraded'] and d['closed_by'] == 'server' and d['close_code'] == 1013"
wait "$(pid_of c_call)" || fail "the call holding the slot failed ($?)"
grep '^{' "$T/c_call.log" >"$T/c_call.json"
want c_call "d['seconds_received'] >= 3 and not d['closed_before_stop']"
want_metric "$ADM_I" 'exoplex_calls_refused_total{reason="no_capacity"}' -eq 1
after=$(plex_stat '["sessions_started"]')
[ "$after" = $((before + 1)) ] ||
	fail "PersonaPlex sessions went from $before to $after for one admitted call"

v=$(plex_stat '["violations"]')
[ "$v" = 0 ] || fail "the stand-in counted $v protocol violations"
alive_and_healthy
finish
