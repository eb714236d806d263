# tests/lib.sh - start the trio and the stand-ins on loopback, stop them by PID.
#
# Source it from a test script. Everything runs under a fresh temporary
# directory ($T); every process started with `spawn` is killed on exit
# (SIGTERM, then SIGKILL after a grace period), whatever happens.
set -u
: "${BIN:?set BIN to the directory of the built programs}"
BIN=$(cd "$BIN" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/exoplex-e2e.XXXXXX")
PIDS=()
NAMES=()
KEEP_LOGS=${KEEP_LOGS:-0}
# E2E_SAVE=DIR: on failure, the run's whole logs and JSON are copied there
# (the tail printed below is often not enough to tell why).
E2E_SAVE=${E2E_SAVE:-}

. "$(dirname "${BASH_SOURCE[0]}")/helpers.sh"

cleanup() {
	local rc=$?
	# A failure says more with the counters of what is still running:
	# every non-zero series of the trio (histograms left out).
	if [ $rc != 0 ]; then
		local name url
		for name in ADM_I ADM_T ADM_E; do
			url=${!name:-}
			[ -n "$url" ] || continue
			echo "----- $name metrics (non-zero)" >&2
			curl -fsS --max-time 2 "$url/metrics" 2>/dev/null |
				awk '!/^#/ && !/_bucket\{/ && $2 != 0' >&2 || true
		done
	fi
	for i in "${!PIDS[@]}"; do
		kill -TERM "${PIDS[$i]}" 2>/dev/null || true
	done
	for _ in $(seq 30); do
		local alive=0
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	if [ $rc != 0 ] || [ "$KEEP_LOGS" = 1 ]; then
		for f in "$T"/*.log; do
			[ -f "$f" ] || continue
			echo "----- $(basename "$f") (last 40 lines)" >&2
			tail -n 40 "$f" >&2
		done
	fi
	if [ $rc != 0 ] && [ -n "$E2E_SAVE" ]; then
		mkdir -p "$E2E_SAVE" && cp "$T"/*.log "$T"/*.json "$E2E_SAVE"/ 2>/dev/null
		echo "logs saved in $E2E_SAVE" >&2
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_ports N: N distinct free TCP ports on 127.0.0.1.
free_ports() {
	python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# spawn NAME CMD...: start CMD in the background, logging to $T/NAME.log.
spawn() {
	local name=$1
	shift
	"$@" >"$T/$name.log" 2>&1 &
	PIDS+=($!)
	NAMES+=("$name")
	log "started $name (pid $!)"
}

# pid_of NAME
pid_of() {
	for i in "${!NAMES[@]}"; do
		[ "${NAMES[$i]}" = "$1" ] && echo "${PIDS[$i]}"
	done
}

# kill_hard NAME: SIGKILL NAME's process and wait until it is gone. A
# killed process keeps its listening sockets until the kernel has torn it
# down, so a replacement started at once could find its bus socket or
# port still taken ("Address in use"), as a supervisor's would not.
kill_hard() {
	local pid
	pid=$(pid_of "$1")
	[ -n "$pid" ] || return 0
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# stacks PID: every thread's stack, for the log of a process that overran
# its stop (gdb when the machine has it; through valgrind's gdbserver when
# the process runs under valgrind).
stacks() {
	local target=(-p "$1")
	command -v gdb >/dev/null || return 0
	grep -q valgrind "/proc/$1/cmdline" 2>/dev/null &&
		target=(-ex "target remote | vgdb --pid=$1")
	timeout 60 gdb -batch -nx "${target[@]}" -ex "thread apply all bt 12" 2>&1 |
		grep -E '^(Thread|#)' | head -200
}

# thread_policies PID: each of a process's threads as "POLICY NAME"
# (sched(7): 0 normal, 3 batch), from field 41 of its stat.
thread_policies() {
	local t
	for t in /proc/"$1"/task/*; do
		printf '%s %s\n' "$(sed 's/.*) //' "$t/stat" | awk '{print $39}')" \
			"$(cat "$t/comm")"
	done
}

# json_get JSON_FILE EXPR: python expression over `d` (the parsed file).
json_get() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# start_trio [EXTRA ENV...]: fakeplex must already be up when calls start,
# but the trio itself may start in any order.
start_trio() {
	read -r P_LISTEN P_ADM_I P_ADM_T P_ADM_E <<<"$(free_ports 4)"
	export EXOPLEX_BUS_DIR="$T/bus"
	export EXOPLEX_LOG_LEVEL=${EXOPLEX_LOG_LEVEL:-info}
	ADM_I="http://127.0.0.1:$P_ADM_I"
	ADM_T="http://127.0.0.1:$P_ADM_T"
	ADM_E="http://127.0.0.1:$P_ADM_E"
	spawn egress env "$@" "$BIN/exoplex-egress" --admin "127.0.0.1:$P_ADM_E"
	spawn transcoder env "$@" "$BIN/exoplex-transcoder" --admin "127.0.0.1:$P_ADM_T"
	spawn ingress env "$@" "$BIN/exoplex-ingress" --admin "127.0.0.1:$P_ADM_I" \
		--listen "127.0.0.1:$P_LISTEN"
	wait_http "$ADM_E/healthz" && wait_http "$ADM_T/healthz" && wait_http "$ADM_I/healthz" || return 1
	# The bus links are up when each side reports its peer.
	local deadline=$((SECONDS + 10))
	while [ $SECONDS -lt $deadline ]; do
		local a b c
		a=$(metric "$ADM_I" 'exoplex_bus_peer_connected{link="transcoder"}')
		b=$(metric "$ADM_I" 'exoplex_bus_peer_connected{link="control"}')
		c=$(metric "$ADM_T" 'exoplex_bus_peer_connected{link="egress"}')
		[ "$a$b$c" = 111 ] && return 0
		sleep 0.1
	done
	log "bus links did not come up"
	return 1
}

# links_up: every bus link of the trio counts its peer, on both ends
# (after a restart, a side that miscounted would drop all audio to a
# peer it thinks absent while control frames still get through).
links_up() {
	local bad= s
	for s in "$ADM_I transcoder" "$ADM_I control" "$ADM_T transcoder" \
		"$ADM_T egress" "$ADM_E egress" "$ADM_E control"; do
		set -- $s
		[ "$(metric "$1" "exoplex_bus_peer_connected{link=\"$2\"}")" = 1 ] ||
			bad="$bad $1:$2"
	done
	[ -z "$bad" ] && return 0
	log "bus links without their peer:$bad"
	return 1
}

# start_fakeplex [FLAGS...]: a PersonaPlex stand-in on a free port.
start_fakeplex() {
	read -r P_PLEX P_PLEX_ADM <<<"$(free_ports 2)"
	PLEX_URL="ws://127.0.0.1:$P_PLEX"
	PLEX_ADM="http://127.0.0.1:$P_PLEX_ADM"
	spawn fakeplex "$BIN/exoplex-fakeplex" --listen "127.0.0.1:$P_PLEX" \
		--admin "127.0.0.1:$P_PLEX_ADM" "$@"
	wait_http "$PLEX_ADM/healthz"
}

# plex_stat KEY: one field of the stand-in's /stats JSON.
plex_stat() {
	curl -fsS --max-time 2 "$PLEX_ADM/stats" >"$T/stats.json" &&
		json_get "$T/stats.json" "d$1"
}
