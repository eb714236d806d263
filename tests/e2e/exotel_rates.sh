#!/usr/bin/env bash
# exotel_rates.sh RATE - issue 3, "Rates" and "Playback", at one rate.
#
# Two 8 s calls at RATE Hz through the real trio and the PersonaPlex
# stand-in in echo mode, with a 1 kHz tone from the caller:
#   a. 20 ms inbound chunks, numbers as strings (as the captures), the
#      rate in ?sample-rate=;
#   b. 100 ms inbound chunks, numbers as JSON numbers, the rate in
#      ?sample_rate=.
# For each: the caller hears the agent at 1000 Hz ± 2% (a rate bug moves
# the pitch) for at least 5 s; no message to the caller breaks a rule
# (whole 20 ms frames, <= 100 000 bytes of PCM, valid JSON/base64, the
# right stream_sid); playback never runs 1 s or more ahead of real time
# (max_lead_ms < 1000); the stand-in's strict reader saw no violation.
. "$(dirname "$0")/exotel_lib.sh"
RATE=${1:?usage: exotel_rates.sh RATE}

start_fakeplex --mode echo || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" || exit 1
BASE="ws://127.0.0.1:$P_LISTEN/exotel"
FRAME=$((RATE / 50 * 2))

check_call() {
	local n=$1
	want_rc "$n" 0
	want "$n" "d['connected']"
	want "$n" "d['rate'] == $RATE"
	want "$n" "abs(d['dominant_hz'] - 1000) <= 20"
	want "$n" "d['seconds_received'] >= 5"
	want "$n" "d['violations'] == 0"
	want "$n" "d['media_messages'] > 0"
	want "$n" "d['max_lead_ms'] < 1000"
	want "$n" "not d['closed_before_stop']"
}

call a --url "$BASE?sample-rate=$RATE" --rate "$RATE" --chunk-ms 20 \
	--seconds 8 --tone 1000 --max-lead-ms 1000 \
	--expect-hz 1000 --expect-tolerance 0.02 --expect-min-seconds 5 \
	--expect-no-violations
check_call a

call b --url "$BASE?sample_rate=$RATE" --rate "$RATE" --chunk-ms 100 \
	--numbers --seconds 8 --tone 1000 --max-lead-ms 1000 \
	--expect-hz 1000 --expect-tolerance 0.02 --expect-min-seconds 5 \
	--expect-no-violations
check_call b
# Caller audio really went in as 100 ms chunks of numbers.
grep -q 'start sent (rate '"$RATE"', 80 chunks of 100 ms)' "$T/b.log" ||
	fail "b: exoplex-call did not send 100 ms chunks"

# What ingress sent: media messages only whole frames (the caller checked
# each one); here, that ingress counted them as sent.
want_metric "$ADM_I" 'exoplex_exotel_messages_out_total{event="media"}' -gt 0
want_metric "$ADM_I" 'exoplex_calls_started_total' -eq 2

v=$(plex_stat '["violations"]')
s=$(plex_stat '["sessions_started"]')
log "fakeplex: sessions_started=$s violations=$v (frame $FRAME bytes)"
[ "$s" -ge 2 ] || fail "the stand-in saw $s sessions, expected 2"
[ "$v" = 0 ] || fail "the stand-in counted $v protocol violations: $(cat "$T/stats.json")"
alive_and_healthy
finish "at $RATE Hz"
