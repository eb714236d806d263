#!/usr/bin/env bash
# hardening_scrape.sh - the admin servers under load, while calls run.
#
# Each admin server (its own libmicrohttpd thread, reading metrics that
# the event loops update, and /readyz state) is scraped without pause by
# several clients while two calls run through the trio with caller
# transcripts (STT) and webhooks (egress's delivery thread), and keeps
# being scraped while each process gets SIGTERM. Every /metrics page must
# be well-formed Prometheus text, the calls must work, and each process
# must exit 0. Built with ThreadSanitizer (make test-tsan) this is the
# test of the processes' threads; with ASan, of their memory.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/stt_lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"
fail=0
bad() { log "FAIL: $*"; fail=1; }
KEY=scrape-key-$$

read -r P1 P2 P_PLEX_ADM <<<"$(free_ports 3)"
PLEX_ADM="http://127.0.0.1:$P_PLEX_ADM"
spawn fakeplex "$BIN/exoplex-fakeplex" --mode echo \
	--listen "127.0.0.1:$P1,127.0.0.1:$P2" --admin "127.0.0.1:$P_PLEX_ADM"
wait_http "$PLEX_ADM/healthz" || exit 1
start_fakescribe --api-key "$KEY" || exit 1
start_sink || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="ws://127.0.0.1:$P1,ws://127.0.0.1:$P2" \
	ELEVENLABS_API_KEY="$KEY" EXOPLEX_STT_URL="$SCRIBE_URL" "${HOOK_ENV[@]}" || exit 1

# scrape NAME URL: until $T/stop exists; counts pages and bad ones.
scrape() {
	local name=$1 url=$2 ok=0 badp=0 p
	while [ ! -e "$T/stop" ]; do
		for p in metrics readyz healthz metrics; do
			if [ "$p" = metrics ]; then
				if curl -fsS --max-time 2 "$url/metrics" -o "$T/$name.page" 2>/dev/null; then
					# name{labels} value, or comments, nothing else.
					if grep -Evq '^(#.*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+(Inf)?|)$' "$T/$name.page"; then
						badp=$((badp + 1))
						cp "$T/$name.page" "$T/$name.bad"
					fi
					ok=$((ok + 1))
				fi
			else
				curl -s --max-time 2 -o /dev/null "$url/$p" && ok=$((ok + 1))
			fi
		done
	done
	echo "$ok $badp" >"$T/$name.count"
}
SCRAPERS=()
for a in "$ADM_I" "$ADM_T" "$ADM_E"; do
	for k in 1 2; do
		scrape "s${a##*:}-$k" "$a" &
		SCRAPERS+=($!)
	done
done

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--calls 2 --seconds 8 --signal speech --dtmf 1@1000 \
	--expect-min-seconds 4 >"$T/calls.json" 2>"$T/calls.log"
rc=$?
log "calls: exit $rc $(cat "$T/calls.json" | head -c 400)"
[ $rc = 0 ] || bad "exoplex-call exited $rc"
wait_ended 2 20 || bad "the calls' webhooks did not arrive"

for n in ingress transcoder egress; do
	p=$(pid_of "$n")
	kill -TERM "$p" 2>/dev/null || { bad "$n (pid $p) was gone"; continue; }
	for _ in $(seq 200); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$p" 2>/dev/null; then
		bad "$n still runs 20 s after SIGTERM"
		continue
	fi
	wait "$p"
	rc=$?
	log "$n exited $rc"
	[ "$rc" = 0 ] || bad "$n exited $rc after SIGTERM (while scraped)"
done
touch "$T/stop"
wait "${SCRAPERS[@]}"
total=0
for f in "$T"/*.count; do
	read -r ok badp <"$f"
	total=$((total + ok))
	[ "$badp" = 0 ] || bad "$(basename "$f" .count): $badp malformed /metrics pages, e.g. $(grep -Ev '^(#.*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+(Inf)?|)$' "$T/$(basename "$f" .count).bad" | head -2)"
done
log "$total admin pages served during the calls and the stops"
[ "$total" -ge 60 ] || bad "only $total admin pages served"
[ $fail = 0 ] || exit 1
log "PASS admin servers scraped hard during calls and stops"
