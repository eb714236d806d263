#!/usr/bin/env bash
# hardening_secrets.sh - secrets never show in logs, metrics, webhooks or
# bus taps.
#
# The trio runs with distinctive values in every secret setting
# (EXOPLEX_AUTH_BASIC, EXOPLEX_AUTH_TOKENS, ELEVENLABS_API_KEY,
# EXOPLEX_WEBHOOK_SECRET, EXOPLEX_WEBHOOK_HEADERS), at log level debug,
# with the Scribe stand-in (which only accepts that API key) and the
# webhook sink, and bus taps on. Calls present the credentials every way
# Exotel can (Basic in the URL, ?token=, custom_parameters.token, Bearer),
# plus wrong ones that must not show either. Then every process log,
# every admin page (/metrics, /healthz, /readyz), every webhook the sink
# received and everything exoplex-tap saw on the bus is searched for each
# secret (and the base64 of the Basic credentials), as are the raw bus
# Envelopes captured from the taps with nngcat. Also: each admin
# server's default address is on loopback.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/stt_lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"
fail=0
bad() { log "FAIL: $*"; fail=1; }

R=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
PASS=pw-$R-basic
TOKEN=tk-$R-token
KEY=xi-$R-apikey
HOOK_SECRET=wh-$R-hmac
HDR=hd-$R-header
WRONG_TOKEN=tk-$R-wrong
WRONG_PASS=pw-$R-wrong
SECRETS=("$PASS" "$TOKEN" "$KEY" "$HOOK_SECRET" "$HDR" "$WRONG_TOKEN" "$WRONG_PASS"
	"$(printf 'caller:%s' "$PASS" | base64)" "$(printf 'caller:%s' "$WRONG_PASS" | base64)")

# Admin servers default to loopback.
for p in ingress:9100 transcoder:9101 egress:9102; do
	"$BIN/exoplex-${p%%:*}" --help | grep -A1 -- '--admin ' | grep -q "default: 127.0.0.1:${p#*:}" ||
		bad "exoplex-${p%%:*}'s admin default is not 127.0.0.1:${p#*:}"
done

start_fakeplex --mode echo || exit 1
start_fakescribe --api-key "$KEY" || exit 1
start_sink || exit 1
start_trio EXOPLEX_LOG_LEVEL=debug EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" \
	EXOPLEX_AUTH_BASIC="caller:$PASS,other:x$R" EXOPLEX_AUTH_TOKENS="$TOKEN,t2-$R" \
	ELEVENLABS_API_KEY="$KEY" EXOPLEX_STT_URL="$SCRIBE_URL" EXOPLEX_BUS_TAP=1 \
	"${HOOK_ENV[@]}" EXOPLEX_WEBHOOK_HEADERS="Authorization: Bearer $HDR" || exit 1
"$BIN/exoplex-tap" --bus-dir "$T/bus" --side both --seconds 40 >"$T/tap.jsonl" 2>"$T/tap.err" &
TAPS=($!)
# The tap's JSON shows a few fields; the raw Envelopes show every byte.
for sock in "$T"/bus/tap-*.sock; do
	[ -S "$sock" ] || continue
	name=$(basename "$sock" .sock)
	nngcat --sub --dial "ipc://$sock" --subscribe "" --raw >"$T/$name.raw" 2>/dev/null &
	TAPS+=($!)
done
[ ${#TAPS[@]} -ge 4 ] || bad "only $((${#TAPS[@]} - 1)) bus tap sockets in $T/bus"
sleep 1

U="127.0.0.1:$P_LISTEN/exotel?sample-rate=8000"
CALL=("$BIN/exoplex-call" --seconds 3 --signal speech --dtmf 5@500 --linger-ms 500)
n=0
run() { # run NAME EXPECTED_RC ARGS...
	local name=$1 want=$2 rc
	shift 2
	timeout -k 5 60 "${CALL[@]}" "$@" >"$T/$name.json" 2>"$T/$name.err"
	rc=$?
	log "$name: exit $rc"
	[ "$rc" = "$want" ] || bad "$name: exoplex-call exited $rc, expected $want"
}
run basic 0 --url "ws://caller:$PASS@$U" --custom persona=x
run query 0 --url "ws://$U&token=$TOKEN"
run custom 0 --url "ws://$U" --custom token="$TOKEN" --custom order=42
run bearer 0 --url "ws://$U" --bearer "$TOKEN"
# Wrong credentials: refused (at the upgrade or at start), never shown.
run wrong_basic 3 --url "ws://caller:$WRONG_PASS@$U"
timeout -k 5 60 "${CALL[@]}" --url "ws://$U" --custom token="$WRONG_TOKEN" \
	>"$T/wrong_custom.json" 2>"$T/wrong_custom.err"
log "wrong_custom: exit $?"
wait_ended 5 30 || bad "webhooks for the calls did not all arrive"
s=$(scribe_stat '["sessions"]')
[ "${s:-0}" -ge 4 ] || bad "only ${s:-0} STT sessions: the API key was not used"
kill "${TAPS[@]}" 2>/dev/null
wait "${TAPS[@]}" 2>/dev/null
[ -s "$T/tap.jsonl" ] || bad "exoplex-tap saw nothing"
cat "$T"/tap-*.raw >"$T/bus.raw" 2>/dev/null
grep -aq "order" "$T/bus.raw" || bad "the raw bus capture has no custom parameters (is it meaningful?)"

# Everything we can see from outside the processes.
for a in "$ADM_I" "$ADM_T" "$ADM_E"; do
	for p in metrics healthz readyz; do
		curl -s --max-time 2 "$a/$p" >"$T/admin-${a##*:}-$p.txt"
	done
done
files=("$T"/ingress.log "$T"/transcoder.log "$T"/egress.log "$T"/hooks.jsonl
	"$T"/tap.jsonl "$T"/bus.raw "$T"/admin-*.txt)
log "searching $(cat "${files[@]}" | wc -c) bytes in ${#files[@]} files for ${#SECRETS[@]} secrets"
for s in "${SECRETS[@]}"; do
	if grep -alF -- "$s" "${files[@]}" >"$T/hits" 2>/dev/null; then
		bad "secret '$s' found in: $(xargs -n1 basename <"$T/hits" | tr '\n' ' ')"
		grep -ahF -- "$s" "${files[@]}" | head -3 | cut -c1-300 >&2
	fi
done
# The test has teeth: the values are where they should be.
grep -q '"token"' "$T/hooks.jsonl" && bad "a webhook carries a token key"
grep -q '"order":"42"\|"order": "42"' "$T/hooks.jsonl" ||
	bad "custom parameters did not reach the webhooks (is the search meaningful?)"
[ "$(metric "$ADM_I" 'exoplex_auth_accepted_total{via="basic"}')" -ge 1 ] || bad "Basic was not accepted"
# The stand-in's ws:// URL carries the key in clear: egress says so.
grep -q "EXOPLEX_STT_URL is ws://" "$T/egress.log" || bad "no warning about the ws:// STT URL"
[ $fail = 0 ] || exit 1
log "PASS no secret in logs, metrics, webhooks or bus taps"
