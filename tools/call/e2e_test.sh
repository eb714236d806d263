#!/bin/sh
# e2e_test.sh CALL TESTSRV - exoplex-call against its own small bot server:
# a clean echo call per rate, the bad-message call (every violation kind
# flagged exactly once), and a call where the server never closes.
# Checks counts and shapes, never timings.
set -u
CALL=$1
SRV=$2
TMP=$(mktemp -d)
trap 'kill $SRV_PID 2>/dev/null; rm -rf "$TMP"' EXIT
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# start_srv ARGS... : runs the server in the background, sets PORT.
start_srv() {
	# A fresh file: the background child truncates it only after the
	# fork, and the old one's PORT line must never be read.
	rm -f "$TMP/srv.out" "$TMP/srv.err"
	"$SRV" "$@" >"$TMP/srv.out" 2>"$TMP/srv.err" &
	SRV_PID=$!
	i=0
	PORT=
	while [ $i -lt 50 ] && [ -z "$PORT" ]; do
		PORT=$(sed -n 's/^PORT //p' "$TMP/srv.out" 2>/dev/null)
		[ -n "$PORT" ] || sleep 0.1
		i=$((i + 1))
	done
	[ -n "$PORT" ] || { echo "server did not start"; exit 1; }
}

# wait_srv: the server must exit 0 (everything it checked was right).
wait_srv() {
	# The server exits once its connection closes; one that never got
	# one is stopped (a failure in itself).
	i=0
	while kill -0 $SRV_PID 2>/dev/null && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 $SRV_PID 2>/dev/null; then
		kill $SRV_PID
		fail "server still running: it never saw the call end"
	fi
	if ! wait $SRV_PID; then
		fail "server checks: $(tail -1 "$TMP/srv.out") $(head -3 "$TMP/srv.err")"
	fi
}

# has FILE STRING...: every string occurs in FILE.
has() {
	f=$1
	shift
	for s in "$@"; do
		grep -qF -- "$s" "$f" || fail "$(basename "$f") lacks $s: $(cat "$f")"
	done
}

for rate in 8000 16000 24000; do
	start_srv --clear-at-ms 1500
	"$CALL" --url "ws://127.0.0.1:$PORT/exotel?sample-rate=$rate" \
		--seconds 3 --tone 1000 --dtmf '5@500,#@1000' \
		--custom persona=alice --custom token \
		--record "$TMP/rec$rate.wav" \
		--expect-hz 1000 --expect-tolerance 0.005 \
		--expect-min-seconds 2.5 --expect-no-violations \
		--expect-closed-by server --expect-close-code 1000 \
		>"$TMP/sum$rate.json" 2>"$TMP/call$rate.err" ||
		fail "rate $rate: exit $? $(grep expect "$TMP/call$rate.err")"
	wait_srv
	has "$TMP/sum$rate.json" "\"rate\":$rate" '"seconds_sent":3,' \
		'"connected":true' '"dtmf_sent":2' '"clears_received":1' \
		'"violations":0'
	has "$TMP/srv.out" '"start":true' '"dtmf":"5#"' '"stop":true' \
		'"stop_reason":"callended"' "\"rate\":$rate" '"media":150'
	# A clean echo: each of the server's marks came back but the last
	# ones, still queued when the call stopped or dropped by the clear.
	[ -s "$TMP/rec$rate.wav" ] || fail "rate $rate: no recording"
done

# --wav: what the caller heard at 8 kHz, played back as a caller; a WAV at
# another rate than the call's is a bad argument.
start_srv
"$CALL" --url "ws://127.0.0.1:$PORT/exotel" --seconds 2 \
	--wav "$TMP/rec8000.wav" --expect-hz 1000 --expect-tolerance 0.005 \
	>"$TMP/wav.json" 2>/dev/null || fail "wav: exit $?"
wait_srv
"$CALL" --url "ws://127.0.0.1:1/exotel" --rate 16000 \
	--wav "$TMP/rec8000.wav" >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || fail "wav at the wrong rate: exit $rc, expected 2"

start_srv --mode bad
"$CALL" --url "ws://127.0.0.1:$PORT/exotel" --seconds 1 --silence \
	--expect-no-violations >"$TMP/bad.json" 2>"$TMP/bad.err"
rc=$?
[ $rc -eq 1 ] || fail "bad server: exit $rc, expected 1"
grep -q expect-no-violations "$TMP/bad.err" || fail "bad: expectation not named"
wait_srv
has "$TMP/bad.json" '"violations":12,' '"invalid_json":1' \
	'"binary_frame":1' '"missing_event":1' '"unknown_event":1' \
	'"missing_payload":1' '"invalid_base64":1' '"empty_payload":1' \
	'"partial_frame":1' '"payload_too_large":1' \
	'"stream_sid_mismatch":1' '"missing_mark_name":1' \
	'"lead_over_limit":1' '"stream_sid_absent":1'

start_srv --no-close
"$CALL" --url "ws://127.0.0.1:$PORT/exotel" --seconds 0.5 --linger-ms 200 \
	--stop-reason stopped --signal speech --expect-closed-by client \
	>"$TMP/linger.json" 2>"$TMP/linger.err" || fail "linger: exit $?"
wait_srv
has "$TMP/linger.json" '"closed_by":"client"' '"close_code":1000'
has "$TMP/srv.out" '"stop_reason":"stopped"'

# A server that pings after every mark and closes with 1013: each ping is
# answered with its payload (the server checks), and the code is reported
# as sent (lws 4.1's client made 1012-1015 into 1002; ws:// calls no longer
# run on it).
start_srv --ping --close-code 1013
"$CALL" --url "ws://127.0.0.1:$PORT/exotel" --seconds 1.5 --tone 1000 \
	--expect-closed-by server --expect-close-code 1013 \
	>"$TMP/ping.json" 2>"$TMP/ping.err" || fail "ping: exit $?"
wait_srv
pongs=$(sed -n 's/.*"pongs":\([0-9]*\).*/\1/p' "$TMP/srv.out")
[ "${pongs:-0}" -ge 5 ] || fail "ping: ${pongs:-no} pongs: $(cat "$TMP/srv.out")"

# wss://, when openssl can make a certificate: once trusting it through
# --ca (full verification, the name is 127.0.0.1), once with --insecure.
if command -v openssl >/dev/null 2>&1 &&
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 -keyout "$TMP/key.pem" \
		-out "$TMP/cert.pem" >/dev/null 2>&1; then
	for trust in "--ca $TMP/cert.pem" --insecure; do
		start_srv --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem"
		# shellcheck disable=SC2086
		"$CALL" --url "wss://127.0.0.1:$PORT/exotel?sample-rate=16000" \
			$trust --seconds 1 --tone 440 --expect-hz 440 \
			--expect-no-violations --expect-min-seconds 0.8 \
			>"$TMP/tls.json" 2>"$TMP/tls.err" ||
			fail "wss ($trust): exit $? $(tail -2 "$TMP/tls.err")"
		wait_srv
	done
else
	echo "skipped: wss:// (no openssl to make a certificate)"
fi

# Basic auth from the URL's user:pass (percent-decoded), a Bearer token,
# and a refused upgrade: exit 3 with the HTTP status in the summary.
start_srv --auth "Basic ZXg6czNjciV0" # ex:s3cr%t
"$CALL" --url "ws://ex:s3cr%25t@127.0.0.1:$PORT/exotel" --seconds 0.3 \
	>"$TMP/auth.json" 2>/dev/null || fail "basic auth: exit $?"
wait_srv
start_srv --auth "Bearer tok-1"
"$CALL" --url "ws://127.0.0.1:$PORT/exotel" --bearer tok-1 --seconds 0.3 \
	>"$TMP/auth.json" 2>/dev/null || fail "bearer: exit $?"
wait_srv
start_srv --auth "Basic ZXg6czNjciV0"
"$CALL" --url "ws://ex:wrong@127.0.0.1:$PORT/exotel" --seconds 0.3 \
	>"$TMP/auth.json" 2>/dev/null
rc=$?
[ $rc -eq 3 ] || fail "wrong password: exit $rc, expected 3"
wait_srv
has "$TMP/auth.json" '"connected":false' '"http_status":401'
has "$TMP/srv.out" '"refused":1'

# Nothing listening: exit 3, and still a summary.
"$CALL" --url "ws://127.0.0.1:1/exotel" --seconds 1 >"$TMP/refused.json" \
	2>/dev/null
rc=$?
[ $rc -eq 3 ] || fail "refused: exit $rc, expected 3"
has "$TMP/refused.json" '"connected":false'

# Bad arguments: exit 2.
"$CALL" --rate 44100 >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || fail "bad args: exit $rc, expected 2"

[ $fails -eq 0 ] && echo "ok: exoplex-call end to end" && exit 0
exit 1
