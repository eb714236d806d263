#!/usr/bin/env bash
# hardening_tls.sh - ingress serves wss:// itself.
#
# A self-signed certificate for 127.0.0.1 is made here with openssl. With
# EXOPLEX_TLS_CERT/EXOPLEX_TLS_KEY set, a call over wss:// that trusts
# that certificate (--ca) hears its 1 kHz tone echoed; a client that does
# not trust it cannot connect; plain ws:// to the same port gets nowhere;
# the handshake is TLS 1.2 or later and TLS 1.1 is refused. A missing key
# or an unreadable certificate stops ingress at start with exit status 2
# and a message naming the setting.
. "$(dirname "$0")/../lib.sh"
fail=0
bad() { log "FAIL: $*"; fail=1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$T/key.pem" -out "$T/cert.pem" -days 2 -subj "/CN=127.0.0.1" \
	-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>"$T/openssl.log" ||
	{ cat "$T/openssl.log" >&2; exit 1; }

# Settings checked at start.
read -r PA PB <<<"$(free_ports 2)"
"$BIN/exoplex-ingress" --tls-cert "$T/cert.pem" --listen "127.0.0.1:$PA" \
	--admin "127.0.0.1:$PB" --bus-dir "$T/bad" >/dev/null 2>"$T/nokey.err"
rc=$?
[ $rc = 2 ] && grep -q EXOPLEX_TLS_KEY "$T/nokey.err" ||
	bad "a certificate without a key: exit $rc, $(cat "$T/nokey.err")"
"$BIN/exoplex-ingress" --tls-cert "$T/nope.pem" --tls-key "$T/key.pem" \
	--listen "127.0.0.1:$PA" --admin "127.0.0.1:$PB" --bus-dir "$T/bad" >/dev/null 2>"$T/nocert.err"
rc=$?
[ $rc = 2 ] && grep -q EXOPLEX_TLS_CERT "$T/nocert.err" ||
	bad "an unreadable certificate: exit $rc, $(cat "$T/nocert.err")"

start_fakeplex --mode echo || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" EXOPLEX_TLS_CERT="$T/cert.pem" \
	EXOPLEX_TLS_KEY="$T/key.pem" || exit 1
grep -q "serving wss://" "$T/ingress.log" || bad "ingress did not say it serves wss://"

"$BIN/exoplex-call" --url "wss://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--ca "$T/cert.pem" --seconds 5 --tone 1000 --expect-hz 1000 \
	--expect-min-seconds 3 --expect-no-violations >"$T/call.json" 2>"$T/call.log"
rc=$?
log "wss:// call trusting the certificate: exit $rc $(cat "$T/call.json")"
[ $rc = 0 ] || { bad "the wss:// call failed ($rc)"; tail -5 "$T/call.log" >&2; }

# Not trusted (the system CAs only): no connection.
"$BIN/exoplex-call" --url "wss://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--seconds 1 --connect-timeout-ms 3000 >"$T/untrusted.json" 2>"$T/untrusted.log"
rc=$?
log "wss:// call not trusting the certificate: exit $rc"
[ $rc = 3 ] || bad "a client without the CA got exit $rc, expected 3 (no connection)"

# Plain ws:// on the TLS port: no call.
"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--seconds 1 --connect-timeout-ms 3000 >"$T/plain.json" 2>"$T/plain.log"
rc=$?
log "ws:// call to the wss:// port: exit $rc"
[ $rc = 3 ] || bad "plain ws:// got exit $rc, expected 3 (no connection)"

# The protocol version.
proto=$(openssl s_client -connect "127.0.0.1:$P_LISTEN" -CAfile "$T/cert.pem" \
	-verify_return_error </dev/null 2>/dev/null | awk -F'[ ,]+' '/^New, / { print $2; exit }')
log "negotiated: ${proto:-nothing}"
case "$proto" in TLSv1.2 | TLSv1.3) ;; *) bad "negotiated '$proto', wanted TLSv1.2+" ;; esac
if openssl s_client -connect "127.0.0.1:$P_LISTEN" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' \
	</dev/null >"$T/tls11.log" 2>&1; then
	bad "a TLS 1.1 handshake succeeded"
fi
[ $fail = 0 ] || exit 1
log "PASS wss:// served by ingress"
