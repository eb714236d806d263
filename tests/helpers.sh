# tests/helpers.sh - small helpers shared by tests/lib.sh (the end-to-end
# tests, the soak) and bench/run.sh. Defines functions only: sourcing it
# starts nothing and sets no traps.

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# wait_http URL [SECONDS]: until URL answers 200 (10 s by default).
wait_http() {
	local url=$1 deadline=$((SECONDS + ${2:-10}))
	while [ $SECONDS -lt $deadline ]; do
		curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
		sleep 0.1
	done
	log "timed out waiting for $url"
	return 1
}

# metric URL NAME_WITH_LABELS: the value of one series (0 if absent).
metric() {
	curl -fsS --max-time 2 "$1/metrics" | awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }'
}

# free_range N: the first port of N consecutive free ports below the
# ephemeral range (so outgoing connections cannot take them meanwhile).
free_range() {
	python3 - "$1" <<'PY'
import socket, sys, random
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(10000, 32000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))
            socks.append(s)
    except OSError:
        for s in socks: s.close()
        continue
    for s in socks: s.close()
    print(base)
    sys.exit(0)
sys.exit(1)
PY
}
