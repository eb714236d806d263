# tests/e2e/stt_lib.sh - the Scribe stand-in for the STT end-to-end tests.
# Source it after ../lib.sh.

# start_fakescribe [FLAGS...]: exoplex-fakescribe on a free port; sets
# SCRIBE_URL (what EXOPLEX_STT_URL gets) and SCRIBE_ADM.
start_fakescribe() {
	read -r P_SCRIBE P_SCRIBE_ADM <<<"$(free_ports 2)"
	SCRIBE_URL="ws://127.0.0.1:$P_SCRIBE/v1/speech-to-text/realtime"
	SCRIBE_ADM="http://127.0.0.1:$P_SCRIBE_ADM"
	spawn fakescribe "$BIN/exoplex-fakescribe" --listen "127.0.0.1:$P_SCRIBE" \
		--admin "127.0.0.1:$P_SCRIBE_ADM" "$@"
	wait_http "$SCRIBE_ADM/healthz"
}

# scribe_stat KEY: one field of the stand-in's /stats JSON.
scribe_stat() {
	curl -fsS --max-time 2 "$SCRIBE_ADM/stats" >"$T/scribe.json" &&
		json_get "$T/scribe.json" "d$1"
}

# wait_scribe_stat KEY MIN [SECONDS]: until the field reaches MIN.
wait_scribe_stat() {
	local deadline=$((SECONDS + ${3:-10})) v
	while [ $SECONDS -lt $deadline ]; do
		v=$(scribe_stat "$1" 2>/dev/null || echo 0)
		[ "${v%.*}" -ge "$2" ] 2>/dev/null && return 0
		sleep 0.2
	done
	log "fakescribe $1 stayed below $2"
	return 1
}
