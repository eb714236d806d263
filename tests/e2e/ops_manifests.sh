#!/usr/bin/env bash
# The deployment manifests pass validators from Debian, and the checks catch
# broken manifests. Validators:
#   yamllint                 compose.yaml, deploy/**.yaml (deploy/yamllint.yaml)
#   docker-compose config    compose.yaml (Compose v1.29 validates the spec;
#                            no Docker engine needed); the demo profile
#   ops_manifests.py         python3-yaml + python3-kubernetes's API models:
#                            Dockerfile stages/packages/runtime libraries,
#                            compose, k8s (schema, probes, bus URLs through
#                            Services, shared emptyDir), systemd units,
#                            monitoring (metrics exist in the code)
#   systemd-analyze verify   the units, ExecStart pointed at $BIN
#   promtool (if installed,  alert rules (check and unit tests), the
#     package prometheus)    dashboard's queries, prometheus.yml
#   kubectl kustomize        both layouts render (if kubectl is installed)
# Then each of a list of breakages, applied to a copy of the tree, must make
# the checks fail.
. "$(dirname "$0")/../lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3 # Debian's, for python3-yaml and python3-kubernetes
for tool in yamllint docker-compose systemd-analyze "$PY"; do
	command -v "$tool" >/dev/null || { log "$tool is not installed (make deps)"; exit 1; }
done
"$PY" -c 'import yaml' 2>/dev/null || { log "python3-yaml is not installed (make deps)"; exit 1; }

# check_tree DIR [PART]: every validator (or those of one PART: compose,
# k8s, systemd, monitoring, docker) on the manifests under DIR; prints what
# fails, returns 1 if anything did.
check_tree() {
	local d=$1 only=${2:-} bad=0 out
	on() { [ -z "$only" ] || [ "$only" = "$1" ]; }
	out=$(yamllint -f parsable -c "$d/deploy/yamllint.yaml" "$d/compose.yaml" "$d/deploy" 2>&1) ||
		{ echo "yamllint: $out"; bad=1; }
	if on compose; then
		out=$(cd "$d" && EXOPLEX_ENV_FILE=deploy/exoplex.env.example \
			docker-compose -f compose.yaml config -q 2>&1) || { echo "docker-compose config: $out"; bad=1; }
		out=$(cd "$d" && EXOPLEX_ENV_FILE=deploy/exoplex.env.example \
			docker-compose -f compose.yaml --profile demo config --services 2>&1)
		grep -qx fakeplex <<<"$out" || { echo "docker-compose: no fakeplex in the demo profile: $out"; bad=1; }
	fi
	out=$(OPS_ONLY=$only DASHBOARD_RULES_OUT="$d/dashboard-rules.yaml" \
		"$PY" "$ROOT/tests/e2e/ops_manifests.py" "$d" "$BIN" 2>&1) ||
		{ echo "ops_manifests.py: $out"; bad=1; }
	# systemd-analyze reports unknown keys and bad values on stderr but
	# exits 0: any line naming one of our units is a failure.
	if on systemd; then
		rm -rf "$d/units" && mkdir -p "$d/units"
		for f in "$d"/deploy/systemd/*.service "$d"/deploy/systemd/*.target; do
			sed "s|/usr/local/bin/|$BIN/|g" "$f" >"$d/units/$(basename "$f")"
		done
		out=$(cd "$d/units" && timeout 60 systemd-analyze verify --man=no ./*.target ./*.service 2>&1)
		if [ $? != 0 ] || grep -q 'exoplex' <<<"$out"; then
			echo "systemd-analyze verify: $out"
			bad=1
		fi
	fi
	if on monitoring && command -v promtool >/dev/null; then
		out=$(promtool check rules "$d/deploy/monitoring/exoplex-alerts.yaml" 2>&1) ||
			{ echo "promtool check rules: $out"; bad=1; }
		out=$(cd "$d/deploy/monitoring" && promtool test rules exoplex-alerts.test.yaml 2>&1) ||
			{ echo "promtool test rules: $out"; bad=1; }
		if [ -f "$d/dashboard-rules.yaml" ]; then
			out=$(promtool check rules "$d/dashboard-rules.yaml" 2>&1) ||
				{ echo "promtool (dashboard queries): $out"; bad=1; }
		fi
		out=$(cd "$d/deploy/monitoring" && promtool check config prometheus.yml 2>&1) ||
			{ echo "promtool check config: $out"; bad=1; }
	fi
	if on k8s && command -v kubectl >/dev/null; then
		for layout in split cell; do
			out=$(timeout 60 kubectl kustomize "$d/deploy/k8s/$layout" 2>&1 >/dev/null) ||
				{ echo "kubectl kustomize $layout: $out"; bad=1; }
		done
	fi
	return $bad
}

# copy_tree DIR: what the checks read, copied.
copy_tree() {
	mkdir -p "$1"
	cp "$ROOT/compose.yaml" "$1/"
	cp -r "$ROOT/deploy" "$1/"
	for s in ingress transcoder egress common tools; do
		mkdir -p "$1/$s"
		(cd "$ROOT" && find "$s" -name '*.c' -not -path '*/build*' -exec cp --parents {} "$1/" \;)
	done
}

command -v promtool >/dev/null || log "note: promtool not installed (apt-get install prometheus): PromQL not checked"
copy_tree "$T/good"
if ! check_tree "$T/good" >"$T/good.out"; then
	cat "$T/good.out" >&2
	log "FAIL: the manifests do not pass"
	exit 1
fi
log "the manifests pass every validator"

# Breakages: NAME|FILE|sed expression. Each must be caught.
fail=0
while IFS='|' read -r name file expr; do
	[ -n "$name" ] || continue
	# Only promtool reads PromQL; without it the check above is off.
	case $name in *PromQL*)
		command -v promtool >/dev/null || { log "skipped '$name': needs promtool"; continue; } ;;
	esac
	[ -d "$T/bad" ] || copy_tree "$T/bad"
	cp "$ROOT/$file" "$T/bad/$file"
	sed -i "$expr" "$T/bad/$file"
	if cmp -s "$ROOT/$file" "$T/bad/$file"; then
		log "FAIL: breakage '$name' changed nothing in $file"
		fail=1
		continue
	fi
	case $file in
	compose.yaml) part=compose ;;
	deploy/k8s/*) part=k8s ;;
	deploy/systemd/*) part=systemd ;;
	deploy/monitoring/*) part=monitoring ;;
	deploy/Dockerfile) part=docker ;;
	esac
	if check_tree "$T/bad" "$part" >"$T/bad.out"; then
		log "FAIL: breakage '$name' was not caught"
		fail=1
	else
		log "caught '$name': $(head -c 160 "$T/bad.out" | head -n 2 | tr '\n' ' ')"
	fi
	cp "$ROOT/$file" "$T/bad/$file"
done <<'EOF'
compose misspelt key|compose.yaml|s/^    healthcheck:/    healthchek:/
compose no restart policy|compose.yaml|/^  restart: unless-stopped/d
compose tab indentation|compose.yaml|s/^  ingress:/\tingress:/
compose healthcheck wrong port|compose.yaml|s|127.0.0.1:9101/healthz|127.0.0.1:9100/healthz|
k8s unknown field|deploy/k8s/split/ingress.yaml|s/livenessProbe:/livenesProbe:/
k8s readiness not /readyz|deploy/k8s/split/ingress.yaml|s|path: /readyz|path: /ready|
k8s dialer to a missing Service|deploy/k8s/split/ingress.yaml|s|tcp://exoplex-transcoder:7101|tcp://exoplex-transcodr:7101|
k8s bus port mismatch|deploy/k8s/split/transcoder.yaml|s|tcp://exoplex-egress:7102|tcp://exoplex-egress:7109|
k8s wrong type|deploy/k8s/split/egress.yaml|s/replicas: 1/replicas: "1"/
k8s bus Service waits for readiness|deploy/k8s/split/transcoder.yaml|/publishNotReadyAddresses: true/d
k8s duplicate key|deploy/k8s/cell/cell.yaml|s/^  replicas: 2/  replicas: 2\n  replicas: 3/
k8s cell without shared bus|deploy/k8s/cell/cell.yaml|0,/{name: bus, mountPath: \/run\/exoplex}/s//{name: busx, mountPath: \/run\/exoplex}/
k8s missing secret key|deploy/k8s/base/secret.yaml|/ELEVENLABS_API_KEY/d
systemd bad value|deploy/systemd/exoplex-ingress.service|s/^Restart=always/Restart=allways/
systemd unknown key|deploy/systemd/exoplex-egress.service|s/^ProtectClock=yes/ProtectClok=yes/
systemd missing hardening|deploy/systemd/exoplex-egress.service|s/^NoNewPrivileges=yes/NoNewPrivilege=yes/
systemd no restart|deploy/systemd/exoplex-transcoder.service|s/^Restart=always/Restart=on-failure/
alert on a metric that does not exist|deploy/monitoring/exoplex-alerts.yaml|s/exoplex_webhook_backlog/exoplex_webhook_backlogg/
alert with bad PromQL|deploy/monitoring/exoplex-alerts.yaml|s/exoplex_bus_peer_connected == 0/exoplex_bus_peer_connected == = 0/
dashboard metric typo|deploy/monitoring/exoplex-dashboard.json|s/exoplex_playout_lag_max_ms/exoplex_playout_lag_maxms/
dashboard not JSON|deploy/monitoring/exoplex-dashboard.json|1s/{/{,/
runtime image misses a library|deploy/Dockerfile|s/ libopus0 / /
runtime image with a -dev package|deploy/Dockerfile|s/libwebsockets17 /libwebsockets17 libopus-dev /
runtime image without lws's libev plugin|deploy/Dockerfile|s/libwebsockets17 libwebsockets-evlib-ev /libwebsockets17 /
EOF
[ $fail = 0 ] || exit 1
log "PASS: manifests valid; every breakage caught"
