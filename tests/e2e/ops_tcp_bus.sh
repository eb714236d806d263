#!/usr/bin/env bash
# The bus over tcp:// as deploy/k8s/split sets it up, on loopback: each
# process has its own bus directory (like its own pod) and gets the same
# variable in the listen form on the listener and in the dial form on the
# dialer. A 6 s call must come back at 1000 Hz, and exoplex-tap, run in
# ingress's "pod", must see the call's frames on both of ingress's links.
. "$(dirname "$0")/../lib.sh"

start_fakeplex --mode echo || exit 1
read -r P_LISTEN P_I P_T P_E B_T B_E B_C <<<"$(free_ports 7)"
COMMON=(EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" EXOPLEX_BUS_TAP=1)
mkdir -p "$T/pod-ingress" "$T/pod-transcoder" "$T/pod-egress"
spawn egress env "${COMMON[@]}" EXOPLEX_BUS_DIR="$T/pod-egress" \
	EXOPLEX_BUS_EGRESS="tcp://0.0.0.0:$B_E" EXOPLEX_BUS_CONTROL="tcp://0.0.0.0:$B_C" \
	EXOPLEX_ADMIN="127.0.0.1:$P_E" "$BIN/exoplex-egress"
spawn transcoder env "${COMMON[@]}" EXOPLEX_BUS_DIR="$T/pod-transcoder" \
	EXOPLEX_BUS_TRANSCODER="tcp://0.0.0.0:$B_T" EXOPLEX_BUS_EGRESS="tcp://127.0.0.1:$B_E" \
	EXOPLEX_ADMIN="127.0.0.1:$P_T" "$BIN/exoplex-transcoder"
spawn ingress env "${COMMON[@]}" EXOPLEX_BUS_DIR="$T/pod-ingress" \
	EXOPLEX_BUS_TRANSCODER="tcp://127.0.0.1:$B_T" EXOPLEX_BUS_CONTROL="tcp://127.0.0.1:$B_C" \
	EXOPLEX_ADMIN="127.0.0.1:$P_I" EXOPLEX_LISTEN="127.0.0.1:$P_LISTEN" "$BIN/exoplex-ingress"
for p in $P_I $P_T $P_E; do wait_http "http://127.0.0.1:$p/healthz" || exit 1; done
deadline=$((SECONDS + 10))
until [ "$(metric "http://127.0.0.1:$P_I" 'exoplex_bus_peer_connected{link="transcoder"}')$(metric "http://127.0.0.1:$P_I" 'exoplex_bus_peer_connected{link="control"}')$(metric "http://127.0.0.1:$P_T" 'exoplex_bus_peer_connected{link="egress"}')" = 111 ]; do
	[ $SECONDS -lt $deadline ] || { log "the tcp:// links did not come up"; exit 1; }
	sleep 0.1
done
n=$(ls "$T/pod-ingress"/tap-*.sock 2>/dev/null | wc -l)
[ "$n" = 2 ] || { log "expected ingress's two tap sockets in its pod dir, found $n"; exit 1; }

spawn tap "$BIN/exoplex-tap" --bus-dir "$T/pod-ingress" --call tcpcall --side both
deadline=$((SECONDS + 10))
until [ "$(grep -c '^exoplex-tap: connected to' "$T/tap.log")" = 2 ]; do
	[ $SECONDS -lt $deadline ] || { log "exoplex-tap did not connect"; exit 1; }
	sleep 0.1
done

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--stream-sid tcpcall --seconds 6 --tone 1000 --expect-hz 1000 \
	--expect-tolerance 0.02 --expect-min-seconds 3 --expect-no-violations \
	>"$T/summary.json" 2>"$T/call.log" ||
	{ log "the call over tcp:// failed"; cat "$T/summary.json" "$T/call.log" >&2; exit 1; }
sleep 0.3
kill -TERM "$(pid_of tap)"
wait "$(pid_of tap)" 2>/dev/null
for want in '"link":"transcoder","dir":"out","sender":"ingress","call":"tcpcall","kind":"caller_audio"' \
	'"link":"transcoder","dir":"in","sender":"transcoder","call":"tcpcall","kind":"playback_audio"' \
	'"link":"control","dir":"in","sender":"egress","call":"tcpcall","kind":"session_ready"'; do
	grep -qF "$want" "$T/tap.log" || { log "the tap did not show: $want"; exit 1; }
done
log "PASS a call over the tcp:// bus (k8s split layout) and its frames on ingress's taps"
