#!/usr/bin/env bash
# `make run`'s supervisor tree (deploy/runit/run.sh): runit starts the trio
# and the stand-in (no EXOPLEX_PERSONAPLEX_URLS), a call goes through, and
# after kill -9 of the transcoder and then of egress, runit has started each
# again (a new PID, /healthz 200, the bus links up again). SIGTERM to
# run.sh (what Ctrl-C does) stops the whole tree: run.sh exits 0 and every
# PID seen (runsvdir, each runsv, each service) is gone.
. "$(dirname "$0")/../lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v runsvdir >/dev/null || { log "runit is not installed (make deps)"; exit 1; }

read -r P_LISTEN P_I P_T P_E P_F P_PLEX <<<"$(free_ports 6)"
RUN="$T/run"
unset EXOPLEX_PERSONAPLEX_URLS EXOPLEX_ADMIN
declare -A ADM=([ingress]=$P_I [transcoder]=$P_T [egress]=$P_E [fakeplex]=$P_F)
SEEN=() # every PID of the tree, checked at the end

# svc_pid NAME: the service's PID as runit records it ("" when down).
svc_pid() { cat "$RUN/sv/$1/supervise/pid" 2>/dev/null; }

stop_tree() { # on any exit: leave nothing behind
	[ -f "$RUN/runsvdir.pid" ] && EXOPLEX_RUN_DIR=$RUN EXOPLEX_RUN_STOP_WAIT=5 \
		bash "$ROOT/deploy/runit/run.sh" stop >/dev/null 2>&1
	return 0
}
trap 'rc=$?; stop_tree; (exit $rc); cleanup' EXIT

spawn runit env EXOPLEX_RUN_DIR="$RUN" EXOPLEX_BUS_DIR="$T/bus" \
	EXOPLEX_ENV_FILE="$T/none.env" EXOPLEX_LISTEN="127.0.0.1:$P_LISTEN" \
	EXOPLEX_RUN_ADMIN_INGRESS="127.0.0.1:$P_I" \
	EXOPLEX_RUN_ADMIN_TRANSCODER="127.0.0.1:$P_T" \
	EXOPLEX_RUN_ADMIN_EGRESS="127.0.0.1:$P_E" \
	EXOPLEX_RUN_ADMIN_FAKEPLEX="127.0.0.1:$P_F" \
	EXOPLEX_RUN_FAKEPLEX_LISTEN="127.0.0.1:$P_PLEX" \
	EXOPLEX_RUN_STOP_WAIT=10 BIN="$BIN" bash "$ROOT/deploy/runit/run.sh"
WRAPPER=$(pid_of runit)

for s in ingress transcoder egress fakeplex; do
	wait_http "http://127.0.0.1:${ADM[$s]}/healthz" 15 || exit 1
done
links_up() {
	local deadline=$((SECONDS + 10)) a b c
	while [ $SECONDS -lt $deadline ]; do
		a=$(metric "http://127.0.0.1:$P_I" 'exoplex_bus_peer_connected{link="transcoder"}')
		b=$(metric "http://127.0.0.1:$P_I" 'exoplex_bus_peer_connected{link="control"}')
		c=$(metric "http://127.0.0.1:$P_T" 'exoplex_bus_peer_connected{link="egress"}')
		[ "$a$b$c" = 111 ] && return 0
		sleep 0.1
	done
	log "bus links not up: ingress/transcoder=$a ingress/control=$b transcoder/egress=$c"
	return 1
}
links_up || exit 1
RUNSVDIR=$(cat "$RUN/runsvdir.pid")
SEEN+=("$RUNSVDIR" $(pgrep -P "$RUNSVDIR" -x runsv))
for s in ingress transcoder egress fakeplex; do SEEN+=("$(svc_pid $s)"); done
log "tree: runsvdir $RUNSVDIR, runsv+services ${SEEN[*]:1}"
[ ${#SEEN[@]} = 9 ] || { log "expected runsvdir, 4 runsv and 4 services"; exit 1; }

# The supervised trio carries a call (egress was pointed at the stand-in).
"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel" --seconds 3 \
	--tone 1000 --expect-hz 1000 --expect-min-seconds 1 >"$T/call1.json" 2>"$T/call1.log" ||
	{ log "call through the supervised trio failed"; cat "$T/call1.log" >&2; exit 1; }

for victim in transcoder egress; do
	old=$(svc_pid $victim)
	kill -9 "$old"
	log "kill -9 $victim (pid $old)"
	deadline=$((SECONDS + 15))
	while :; do
		new=$(svc_pid $victim)
		[ -n "$new" ] && [ "$new" != "$old" ] && kill -0 "$new" 2>/dev/null && break
		[ $SECONDS -lt $deadline ] || { log "runit did not restart $victim"; exit 1; }
		sleep 0.1
	done
	wait_http "http://127.0.0.1:${ADM[$victim]}/healthz" 15 || exit 1
	links_up || exit 1
	log "$victim restarted by runit: pid $old -> $new, /healthz 200, links up"
	SEEN+=("$new")
done

# And a call works again after the restarts.
"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel" --seconds 3 \
	--tone 1000 --expect-hz 1000 --expect-min-seconds 1 >"$T/call2.json" 2>"$T/call2.log" ||
	{ log "call after the restarts failed"; cat "$T/call2.log" >&2; exit 1; }

kill -TERM "$WRAPPER"
deadline=$((SECONDS + 30))
while kill -0 "$WRAPPER" 2>/dev/null; do
	[ $SECONDS -lt $deadline ] || { log "run.sh did not stop"; exit 1; }
	sleep 0.1
done
wait "$WRAPPER"
rc=$?
[ $rc = 0 ] || { log "run.sh exited $rc on SIGTERM"; exit 1; }
left=()
for p in "${SEEN[@]}"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
[ ${#left[@]} = 0 ] || { log "still running after stop: ${left[*]}"; ps -o pid,comm -p "${left[@]}" >&2; exit 1; }
grep -q 'exoplex-run: stopped' "$T/runit.log" || { log "run.sh did not report the stop"; exit 1; }
log "PASS runit restarted transcoder and egress; the tree stopped cleanly (${#SEEN[@]} PIDs gone)"
