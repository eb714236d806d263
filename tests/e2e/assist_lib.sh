# tests/e2e/assist_lib.sh - checks shared by the agent-assist (transcribe
# mode) tests. Source it after ../lib.sh, stt_lib.sh and webhooks_lib.sh.

# check_call SID KEY=VALUE...: one call's webhooks (first acceptance of
# each delivery, in arrival order) against what its mode promises. Keys:
# mode=M (call.started and call.ended), reason=R, detail=D (call.ended),
# speaker=S (every transcript is S, and at least one final one exists),
# no_transcripts=1, dtmf=DIGITS, audio_in_min=SECONDS,
# audio_out_max=SECONDS (call.ended counters). Prints the call's events.
check_call() {
	python3 - "$T/hooks.jsonl" "$@" <<'PY'
import json, sys
path, sid = sys.argv[1], sys.argv[2]
want = dict(a.split("=", 1) for a in sys.argv[3:])
seen, evs = set(), []
for l in open(path):
    l = json.loads(l)
    if l["status"] != 200 or l["delivery"] in seen:
        continue
    seen.add(l["delivery"])
    if l["body"]["stream_sid"] == sid:
        evs.append(l["body"])
fail = []
names = [e["event"] for e in evs]
if not evs or names[0] != "call.started" or names[-1] != "call.ended":
    fail.append("events %s: not call.started ... call.ended" % names)
st = evs[0] if evs else {}
end = evs[-1] if evs else {}
tr = [e for e in evs if e["event"] == "transcript"]
finals = [e for e in tr if e["final"]]
if "mode" in want:
    for e in (st, end):
        if e.get("mode") != want["mode"]:
            fail.append("%s: mode %r, wanted %r"
                        % (e.get("event"), e.get("mode"), want["mode"]))
if "reason" in want and end.get("reason") != want["reason"]:
    fail.append("call.ended reason %r" % end.get("reason"))
if "detail" in want and end.get("detail") != want["detail"]:
    fail.append("call.ended detail %r" % end.get("detail"))
if "speaker" in want:
    other = sorted({e["speaker"] for e in tr} - {want["speaker"]})
    if other:
        fail.append("transcripts by %s" % other)
    if not [e for e in finals if e["text"].strip()]:
        fail.append("no final transcript")
if want.get("no_transcripts") and tr:
    fail.append("%d transcripts" % len(tr))
if "dtmf" in want:
    got = "".join(e["digit"] for e in evs if e["event"] == "dtmf")
    if got != want["dtmf"]:
        fail.append("dtmf %r, wanted %r" % (got, want["dtmf"]))
k = end.get("counters", {})
if "audio_in_min" in want and not k.get("audio_in_s", 0) >= float(want["audio_in_min"]):
    fail.append("counters %s" % k)
if "audio_out_max" in want and not k.get("audio_out_s", 0) <= float(want["audio_out_max"]):
    fail.append("counters %s" % k)
print("%s: %s" % (sid, " ".join(
    n + ("(%s%s)" % (e["speaker"], "" if e["final"] else ",partial")
         if n == "transcript" else "")
    for n, e in zip(names, evs))), file=sys.stderr)
if finals:
    print("%s: first final %r at %s-%s ms; call.ended %s" % (sid,
          finals[0]["text"], finals[0]["start_ms"], finals[0]["end_ms"],
          json.dumps({x: end.get(x) for x in
                      ("reason", "detail", "mode", "persona", "counters")})),
          file=sys.stderr)
for f in fail:
    print("FAIL %s: %s" % (sid, f), file=sys.stderr)
sys.exit(1 if fail else 0)
PY
}

# summary_get FILE EXPR: a python expression over exoplex-call's summary
# as `d`.
summary_get() {
	json_get "$1" "$2"
}
