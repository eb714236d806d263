#!/usr/bin/env bash
# Two PersonaPlex servers, three simultaneous calls: two calls work (1 kHz
# echoed back), the third is refused within 1 s of its `start` with reason
# no_capacity (ingress closes the Exotel socket), and no server ever holds
# two sessions (the stand-in's per-listener max_concurrent_sessions <= 1 and
# no session ever waited for the one-conversation lock).
. "$(dirname "$0")/../lib.sh"

read -r P1 P2 P_PLEX_ADM <<<"$(free_ports 3)"
PLEX_ADM="http://127.0.0.1:$P_PLEX_ADM"
spawn fakeplex "$BIN/exoplex-fakeplex" --mode echo \
	--listen "127.0.0.1:$P1,127.0.0.1:$P2" --admin "127.0.0.1:$P_PLEX_ADM"
wait_http "$PLEX_ADM/healthz" || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="ws://127.0.0.1:$P1,ws://127.0.0.1:$P2" || exit 1

# ingress hears the pool's capacity from egress before the calls.
deadline=$((SECONDS + 10))
until [ "$(metric "$ADM_E" 'exoplex_personaplex_servers{state="free"}')" = 2 ]; do
	[ $SECONDS -lt $deadline ] || { log "egress never had 2 free servers"; exit 1; }
	sleep 0.1
done

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--calls 3 --seconds 6 --tone 1000 --per-call >"$T/summary.json" 2>"$T/call.log"
rc=$?
cat "$T/summary.json"
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }

# Per call: the refused one was closed by the server before its stop,
# having sent under 1 s of media (media is sent in real time from start).
python3 - "$T/summary.json" <<'PY' || exit 1
import json, sys
d = json.load(open(sys.argv[1]))
calls = d["per_call"]
refused = [c for c in calls if c.get("closed_before_stop")]
ok = [c for c in calls if not c.get("closed_before_stop")]
def say(*a): print("[check]", *a, file=sys.stderr)
if len(refused) != 1 or len(ok) != 2:
    say("want 1 refused and 2 working calls, got", len(refused), "and", len(ok)); sys.exit(1)
r = refused[0]
say("refused call: closed_by=%s close_code=%s after %.2f s of media" %
    (r.get("closed_by"), r.get("close_code"), r["seconds_sent"]))
if r.get("closed_by") != "server" or r["seconds_sent"] > 1.0:
    say("not refused by the server within 1 s of start"); sys.exit(1)
for c in ok:
    say("working call: %.2f s received at %.1f Hz" % (c["seconds_received"], c["dominant_hz"]))
    if abs(c["dominant_hz"] - 1000) > 20 or c["seconds_received"] < 4:
        say("a working call did not hear its echo"); sys.exit(1)
PY

# egress refuses the call (hangup no_capacity), or ingress already did at
# `start` because egress had reported no free server: either way ingress
# counts it under no_capacity.
stops=$(metric "$ADM_I" 'exoplex_calls_ended_total{reason="no_capacity"}')
at_start=$(metric "$ADM_I" 'exoplex_calls_refused_total{reason="no_capacity"}')
refusals=$(metric "$ADM_E" 'exoplex_egress_calls_refused_total{reason="no_capacity"}')
log "ingress calls_ended{no_capacity}=$stops calls_refused{no_capacity}=$at_start; egress calls_refused{no_capacity}=$refusals"
[ "$stops" = 1 ] || [ "$at_start" = 1 ] || { log "ingress did not end a call with no_capacity"; exit 1; }
grep -q "no_capacity" "$T/ingress.log" || { log "no_capacity not in ingress's log"; exit 1; }

curl -fsS --max-time 2 "$PLEX_ADM/stats" >"$T/stats.json" || exit 1
python3 - "$T/stats.json" <<'PY' || { cat "$T/stats.json" >&2; exit 1; }
import json, sys
d = json.load(open(sys.argv[1]))
def say(*a): print("[check]", *a, file=sys.stderr)
for s in d["servers"]:
    say("server %s: max_concurrent_sessions=%d conversations=%d" %
        (s["listen"], s["max_concurrent_sessions"], s["conversations"]))
    if s["max_concurrent_sessions"] > 1: say("two sessions on one server"); sys.exit(1)
    if s["conversations"] != 1: say("each server should have had one call"); sys.exit(1)
say("sessions_waited=%d violations=%d" % (d["sessions_waited"], d["violations"]))
if d["sessions_waited"] or d["violations"]: sys.exit(1)
PY
log "PASS two servers, three calls: two work, the third refused with no_capacity"
