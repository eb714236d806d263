# tests/e2e/exotel_lib.sh - checks shared by the exotel_*.sh end-to-end tests.
#
# Source it after nothing else: it sources tests/lib.sh (the harness that
# starts and kills everything by PID). A test records each failed check
# with `fail` and ends with `finish`, so one run reports every broken
# check, not just the first.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

FAILS=0

fail() {
	log "FAIL: $*"
	FAILS=$((FAILS + 1))
}

# call NAME ARGS...: one exoplex-call run, bounded; its summary goes to
# $T/NAME.json, its log to $T/NAME.log, its exit status to RC.
call() {
	local name=$1
	shift
	timeout -k 5 90 "$BIN/exoplex-call" "$@" >"$T/$name.json" 2>"$T/$name.log"
	RC=$?
	log "$name (rc $RC): $(cat "$T/$name.json")"
}

# want NAME EXPR: python expression over `d`, the summary NAME, is true.
want() {
	local v
	v=$(json_get "$T/$1.json" "bool($2)" 2>&1)
	[ "$v" = True ] || fail "$1: expected $2 (got: $v)"
}

# want_rc NAME RC: the run NAME exited with RC (it was in RC just now).
want_rc() {
	[ "$RC" = "$2" ] || {
		fail "$1: exoplex-call exited $RC, expected $2"
		sed -n '/expect-\|exoplex-call:/p' "$T/$1.log" >&2
	}
}

# want_metric ADMIN SERIES OP VALUE: e.g. want_metric "$ADM_E" 'x{a="b"}' -ge 1
want_metric() {
	local v
	v=$(metric "$1" "$2")
	[ "$v" "$3" "$4" ] || fail "$2 on $1 is $v, expected $3 $4"
}

# wait_metric ADMIN SERIES OP VALUE SECONDS: until the check holds.
wait_metric() {
	local deadline=$((SECONDS + $5)) v
	while [ $SECONDS -lt $deadline ]; do
		v=$(metric "$1" "$2")
		[ "$v" "$3" "$4" ] && return 0
		sleep 0.2
	done
	fail "$2 on $1 stayed $v, expected $3 $4 within $5 s"
	return 1
}

# start_fakeplex_n N [FLAGS...]: the stand-in with N listeners (N
# PersonaPlex servers, one conversation each); PLEX_URLS lists them for
# EXOPLEX_PERSONAPLEX_URLS. Sets PLEX_ADM like start_fakeplex.
start_fakeplex_n() {
	local n=$1 ports listen="" urls="" p
	shift
	read -r -a ports <<<"$(free_ports $((n + 1)))"
	for p in "${ports[@]:0:n}"; do
		listen+="${listen:+,}127.0.0.1:$p"
		urls+="${urls:+,}ws://127.0.0.1:$p"
	done
	PLEX_URLS=$urls
	PLEX_ADM="http://127.0.0.1:${ports[n]}"
	spawn fakeplex "$BIN/exoplex-fakeplex" --listen "$listen" \
		--admin "127.0.0.1:${ports[n]}" "$@"
	wait_http "$PLEX_ADM/healthz"
}

# alive_and_healthy: the trio and the stand-in are still running (by
# PID) and the trio's /healthz answer 200.
alive_and_healthy() {
	local n p code
	for n in ingress transcoder egress fakeplex; do
		p=$(pid_of "$n")
		[ -n "$p" ] && kill -0 "$p" 2>/dev/null || fail "$n (pid $p) is gone"
	done
	for a in "$ADM_I" "$ADM_T" "$ADM_E"; do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$a/healthz")
		[ "$code" = 200 ] || fail "$a/healthz answered $code"
	done
}

# stop_clean NAME...: SIGTERM each (by PID, in order); each must exit 0
# within 10 s, as a process that tears down in order does.
stop_clean() {
	local n p rc i
	for n in "$@"; do
		p=$(pid_of "$n")
		kill -TERM "$p" 2>/dev/null || { fail "$n (pid $p) was gone before its stop"; continue; }
		for i in $(seq 100); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$p" 2>/dev/null; then
			fail "$n (pid $p) still runs 10 s after SIGTERM"
			continue
		fi
		wait "$p"
		rc=$?
		[ "$rc" = 0 ] || fail "$n exited $rc after SIGTERM"
	done
}

finish() {
	if [ "$FAILS" != 0 ]; then
		log "$FAILS check(s) failed"
		exit 1
	fi
	log "PASS $(basename "$0") $*"
}
