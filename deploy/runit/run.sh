#!/usr/bin/env bash
# deploy/runit/run.sh - the trio under runit, in the foreground (`make run`).
#
#   deploy/runit/run.sh            generate the services, supervise them, and
#                                  stop them all on Ctrl-C (or SIGTERM)
#   deploy/runit/run.sh generate   only write the service directories
#   deploy/runit/run.sh stop       stop a tree whose run.sh was killed
#
# runsvdir supervises one runsv per service; runsv restarts a service that
# exits, whatever the cause (at most once a second). The service
# directories are generated under $EXOPLEX_RUN_DIR/sv from the templates in
# deploy/runit/sv, each with an envdir (./env) of its settings:
#   - the keys of $EXOPLEX_ENV_FILE (default ./exoplex.env, if it exists)
#     that are not set in the environment (the environment wins);
#   - per service: EXOPLEX_ADMIN, EXOPLEX_BUS_DIR, egress's state directory.
# Without EXOPLEX_PERSONAPLEX_URLS (environment or env file) the
# PersonaPlex stand-in runs too and egress uses it.
#
# Knobs (environment): BIN (build/bin), EXOPLEX_RUN_DIR (./run),
# EXOPLEX_BUS_DIR ($EXOPLEX_RUN_DIR/bus), EXOPLEX_RUN_ADMIN_INGRESS
# (127.0.0.1:9100), _TRANSCODER (:9101), _EGRESS (:9102), _FAKEPLEX
# (:9110), EXOPLEX_RUN_FAKEPLEX_LISTEN (127.0.0.1:8998),
# EXOPLEX_RUN_STOP_WAIT (seconds a service gets to stop before SIGKILL, 30).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
RUN_DIR=$(realpath -m "${EXOPLEX_RUN_DIR:-$PWD/run}")
BIN=${BIN:-$PWD/build/bin}
ENV_FILE=${EXOPLEX_ENV_FILE:-$PWD/exoplex.env}
STOP_WAIT=${EXOPLEX_RUN_STOP_WAIT:-30}

say() { printf 'exoplex-run: %s\n' "$*" >&2; }

# env_file_value KEY: the value of KEY in the env file (compose syntax:
# KEY=value, # comments, one pair of surrounding quotes removed).
env_file_value() {
	[ -f "$ENV_FILE" ] || return 1
	local line v found=1
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in "$1="*) v=${line#*=}; found=0 ;; esac
	done <"$ENV_FILE"
	[ $found = 0 ] || return 1
	case $v in \"*\" | \'*\') v=${v:1:${#v}-2} ;; esac
	printf '%s' "$v"
}

# setting KEY: the environment's value, else the env file's.
setting() {
	if [ -n "${!1:-}" ]; then printf '%s' "${!1}"; else env_file_value "$1"; fi
}

# put SVC KEY VALUE: one envdir entry.
put() {
	printf '%s\n' "$3" >"$RUN_DIR/sv/$1/env/$2"
}

generate() {
	local svc key line services="ingress transcoder egress"
	local plex_urls
	plex_urls=$(setting EXOPLEX_PERSONAPLEX_URLS || true)
	[ -n "$plex_urls" ] || services="$services fakeplex"
	for b in $services; do
		[ -x "$BIN/exoplex-$b" ] || { say "no $BIN/exoplex-$b: build first (make)"; return 1; }
	done
	BIN=$(cd "$BIN" && pwd)
	rm -rf "$RUN_DIR/sv"
	mkdir -p "$RUN_DIR/sv" "${EXOPLEX_BUS_DIR:-$RUN_DIR/bus}" "$RUN_DIR/state"
	for svc in $services; do
		mkdir -p "$RUN_DIR/sv/$svc/env"
		sed "s|@BIN@|$BIN|g" "$HERE/sv/$svc/run" >"$RUN_DIR/sv/$svc/run"
		chmod +x "$RUN_DIR/sv/$svc/run"
		# The env file's keys the environment does not set.
		if [ -f "$ENV_FILE" ]; then
			while IFS= read -r line || [ -n "$line" ]; do
				case $line in '#'* | '') continue ;; esac
				key=${line%%=*}
				[[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
				[ -z "${!key:-}" ] || continue
				put "$svc" "$key" "$(env_file_value "$key")"
			done <"$ENV_FILE"
		fi
		put "$svc" EXOPLEX_BUS_DIR "${EXOPLEX_BUS_DIR:-$RUN_DIR/bus}"
	done
	put ingress EXOPLEX_ADMIN "${EXOPLEX_RUN_ADMIN_INGRESS:-127.0.0.1:9100}"
	put transcoder EXOPLEX_ADMIN "${EXOPLEX_RUN_ADMIN_TRANSCODER:-127.0.0.1:9101}"
	put egress EXOPLEX_ADMIN "${EXOPLEX_RUN_ADMIN_EGRESS:-127.0.0.1:9102}"
	put egress EXOPLEX_STATE_DIR "${EXOPLEX_STATE_DIR:-$RUN_DIR/state}"
	if [ -z "$plex_urls" ]; then
		local plex=${EXOPLEX_RUN_FAKEPLEX_LISTEN:-127.0.0.1:8998}
		put fakeplex EXOPLEX_FAKEPLEX_LISTEN "$plex"
		put fakeplex EXOPLEX_FAKEPLEX_ADMIN "${EXOPLEX_RUN_ADMIN_FAKEPLEX:-127.0.0.1:9110}"
		put egress EXOPLEX_PERSONAPLEX_URLS "ws://$plex"
		say "no EXOPLEX_PERSONAPLEX_URLS: running the stand-in on ws://$plex"
	fi
	say "services in $RUN_DIR/sv: $services"
}

# Stops every service (SIGTERM, SIGKILL after STOP_WAIT s), then runsvdir
# and its runsv processes, and waits until each of them is gone.
stop_tree() {
	local pid runsvs="" p
	pid=$(cat "$RUN_DIR/runsvdir.pid" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		runsvs=$(pgrep -P "$pid" -x runsv || true)
	fi
	if compgen -G "$RUN_DIR/sv/*/supervise/ok" >/dev/null; then
		sv -w "$STOP_WAIT" force-stop "$RUN_DIR"/sv/* >&2 || true
	fi
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -HUP "$pid" # runsvdir: TERM to each runsv, then exit
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	# runsv processes left without their runsvdir (e.g. it was killed):
	# "exit" makes each leave once its service is down.
	for d in "$RUN_DIR"/sv/*; do
		sv exit "$d" >/dev/null 2>&1 || true
	done
	for p in $runsvs; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	rm -f "$RUN_DIR/runsvdir.pid"
}

already_running() {
	local pid
	pid=$(cat "$RUN_DIR/runsvdir.pid" 2>/dev/null || true)
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

command -v runsvdir >/dev/null || { say "runit is not installed (make deps, or apt-get install runit)"; exit 1; }

case ${1:-start} in
generate)
	generate
	;;
stop)
	stop_tree
	say "stopped"
	;;
start)
	if already_running; then
		say "already running in $RUN_DIR (pid $(cat "$RUN_DIR/runsvdir.pid")); '$0 stop' first"
		exit 1
	fi
	generate
	# A session of its own: Ctrl-C reaches only this script, which then
	# stops the services in order instead of leaving orphans.
	setsid runsvdir -P "$RUN_DIR/sv" </dev/null &
	echo $! >"$RUN_DIR/runsvdir.pid"
	say "runsvdir pid $! supervising $RUN_DIR/sv (Ctrl-C stops everything)"
	stopping=0
	on_stop() {
		[ $stopping = 0 ] || return 0
		stopping=1
		say "stopping"
		stop_tree
		say "stopped"
		exit 0
	}
	trap on_stop INT TERM
	# wait returns early on a signal; loop until runsvdir is gone.
	while kill -0 "$(cat "$RUN_DIR/runsvdir.pid" 2>/dev/null || echo 0)" 2>/dev/null; do
		wait || true
	done
	say "runsvdir exited"
	stop_tree
	exit 1
	;;
*)
	say "usage: $0 [start|generate|stop]"
	exit 2
	;;
esac
