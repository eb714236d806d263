# tests/e2e/webhooks_lib.sh - the webhook sink and the checks the webhook
# tests share. Source it after tests/lib.sh.

HOOK_SECRET=${HOOK_SECRET:-e2e-webhook-secret}

# start_sink [FLAGS...]: exoplex-webhook-sink on a free port, writing
# $T/hooks.jsonl; sets SINK (its base URL) and HOOK_ENV (egress's
# settings for it, fast retries so the tests stay short).
start_sink() {
	read -r P_SINK <<<"$(free_ports 1)"
	SINK="http://127.0.0.1:$P_SINK"
	spawn sink "$BIN/exoplex-webhook-sink" --listen "127.0.0.1:$P_SINK" \
		--secret "$HOOK_SECRET" --out "$T/hooks.jsonl" "$@"
	wait_http "$SINK/stats" || return 1
	mkdir -p "$T/state"
	HOOK_ENV=(EXOPLEX_WEBHOOK_URL="$SINK/hooks"
		EXOPLEX_WEBHOOK_SECRET="$HOOK_SECRET"
		EXOPLEX_STATE_DIR="$T/state"
		EXOPLEX_WEBHOOK_BACKOFF_MS=200
		EXOPLEX_WEBHOOK_BACKOFF_MAX_MS=2000
		EXOPLEX_WEBHOOK_BREAKER_FAILURES=5
		EXOPLEX_WEBHOOK_BREAKER_PROBE_MS=1000)
}

# sink_stat EXPR: a python expression over the sink's /stats as `d`.
sink_stat() {
	curl -fsS --max-time 2 "$SINK/stats" >"$T/sink.json" &&
		json_get "$T/sink.json" "$1"
}

# wait_ended N SECONDS: until the sink has accepted N call.ended events.
wait_ended() {
	local n=$1 deadline=$((SECONDS + $2)) e
	while [ $SECONDS -lt $deadline ]; do
		e=$(sink_stat 'd["by_event"]["call.ended"]' 2>/dev/null || echo 0)
		[ "${e:-0}" -ge "$n" ] && return 0
		sleep 0.5
	done
	log "timed out: the sink has ${e:-0} of $n call.ended events"
	sink_stat 'd' >&2 || true
	return 1
}

# check_hooks CALLS [KEY=VALUE...]: the sink's record against the
# contract; prints a summary, exits non-zero with the reason. Keys:
# dtmf=DIGITS (per call, in order), agent=1 (at least one agent
# transcript per call), caller=1 (one final caller transcript per call),
# reason=R (call.ended reason), no_param=K (custom parameter that must
# not appear), param=K=V (that must), min_failed=N (failed-on-demand
# requests at least).
check_hooks() {
	python3 - "$T/hooks.jsonl" "$SINK" "$@" <<'PY'
import collections, json, sys, urllib.request
path, sink, ncalls = sys.argv[1], sys.argv[2], int(sys.argv[3])
want = {}
for a in sys.argv[4:]:
    k, v = a.split("=", 1)
    want[k] = v
stats = json.load(urllib.request.urlopen(sink + "/stats", timeout=5))
lines = [json.loads(l) for l in open(path) if l.strip()]
fail = []
for k in ("bad_signatures", "bad_requests", "delivery_reused", "seq_reused",
          "out_of_order"):
    if stats[k]:
        fail.append("sink counted %d %s" % (stats[k], k))
if stats["verified"] != stats["requests"]:
    fail.append("only %d of %d requests carried a good signature"
                % (stats["verified"], stats["requests"]))
if stats["failed_on_demand"] < int(want.get("min_failed", 0)):
    fail.append("only %d requests failed on demand" % stats["failed_on_demand"])
for l in lines:
    if l["signature_ok"] is not True or l["errors"]:
        fail.append("request %s: signature_ok=%s errors=%s"
                    % (l.get("delivery"), l["signature_ok"], l["errors"]))
# First acceptance of each delivery id, in arrival order.
seen, calls, ids = set(), collections.OrderedDict(), set()
for l in lines:
    if l["status"] != 200 or l["delivery"] in seen:
        continue
    seen.add(l["delivery"])
    b = l["body"]
    if l["event"] != b["event"]:
        fail.append("header event %s, body %s" % (l["event"], b["event"]))
    calls.setdefault(b["stream_sid"], []).append(b)
    key = (b["stream_sid"], b["seq"])
    if key in ids:
        fail.append("event %s/%d delivered under two ids" % key)
    ids.add(key)
if len(calls) != ncalls:
    fail.append("events for %d calls, wanted %d" % (len(calls), ncalls))
for sid, evs in calls.items():
    seqs = [e["seq"] for e in evs]
    names = [e["event"] for e in evs]
    if seqs != list(range(1, len(evs) + 1)):
        fail.append("%s: seqs in arrival order %s" % (sid, seqs))
    if names[0] != "call.started" or names.count("call.started") != 1:
        fail.append("%s: call.started not once and first: %s" % (sid, names))
    if names[-1] != "call.ended" or names.count("call.ended") != 1:
        fail.append("%s: call.ended not once and last: %s" % (sid, names))
    for e in evs:
        for k in ("call_sid", "stream_sid", "account_sid", "ts"):
            if not isinstance(e.get(k), str) or not e[k]:
                fail.append("%s seq %d: %s missing" % (sid, e["seq"], k))
    st, end = evs[0], evs[-1]
    if "dtmf" in want:
        got = "".join(e["digit"] for e in evs if e["event"] == "dtmf")
        if got != want["dtmf"]:
            fail.append("%s: dtmf %r, wanted %r" % (sid, got, want["dtmf"]))
    tr = [e for e in evs if e["event"] == "transcript"]
    if want.get("agent") and not [t for t in tr if t["speaker"] == "agent"
                                  and t["final"] and t["text"].strip()]:
        fail.append("%s: no agent transcript" % sid)
    if want.get("caller") and not [t for t in tr if t["speaker"] == "caller"
                                   and t["final"]]:
        fail.append("%s: no final caller transcript" % sid)
    if end["event"] == "call.ended":
        if "reason" in want and end["reason"] != want["reason"]:
            fail.append("%s: reason %s" % (sid, end["reason"]))
        # A refused call may end within the millisecond it started.
        short_ok = end["reason"] in ("auth_failed", "no_capacity")
        if end["duration_ms"] < 0 or (end["duration_ms"] == 0 and not short_ok):
            fail.append("%s: duration_ms %s" % (sid, end["duration_ms"]))
        if want.get("audio") and not end["counters"]["audio_in_s"] > 0:
            fail.append("%s: counters %s" % (sid, end["counters"]))
    if st["event"] == "call.started":
        cp = st.get("custom_parameters", {})
        if want.get("no_param") in cp:
            fail.append("%s: custom parameter %s leaked" % (sid, want["no_param"]))
        if "param" in want:
            k, v = want["param"].split("=", 1)
            if cp.get(k) != v:
                fail.append("%s: custom_parameters %s" % (sid, cp))
    print("%s: %s" % (sid, " ".join(
        n + ("(%s)" % e["speaker"] if n == "transcript" else "")
        for n, e in zip(names, evs))), file=sys.stderr)
print("sink: requests=%d accepted=%d failed_on_demand=%d duplicates=%d "
      "retries=%d events=%d" % (stats["requests"], stats["accepted"],
      stats["failed_on_demand"], stats["duplicates"], stats["retries"],
      stats["events"]), file=sys.stderr)
for f in fail[:30]:
    print("FAIL: " + f, file=sys.stderr)
sys.exit(1 if fail else 0)
PY
}
