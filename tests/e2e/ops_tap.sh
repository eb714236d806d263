#!/usr/bin/env bash
# exoplex-tap decodes the bus frames of a live call. The trio runs with
# EXOPLEX_BUS_TAP=1; one tap watches the call with --call, another watches
# everything with --side both. Asserts: every line is JSON; the filtered
# tap shows only the call, with call_start, caller_audio, uplink_ogg,
# downlink_ogg, playback_audio and call_stop, each from the right sender
# on the right link, each frame once, sequence numbers rising; the
# unfiltered tap also shows the frames as received and the call-less
# capacity frames the filter left out.
. "$(dirname "$0")/../lib.sh"
SID=tapcall$$

start_fakeplex --mode echo || exit 1
start_trio EXOPLEX_BUS_TAP=1 EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" || exit 1

n=$(ls "$EXOPLEX_BUS_DIR"/tap-*.sock 2>/dev/null | wc -l)
[ "$n" = 6 ] || { log "expected 6 tap sockets, found $n"; ls -l "$EXOPLEX_BUS_DIR" >&2; exit 1; }

spawn tap_call "$BIN/exoplex-tap" --bus-dir "$EXOPLEX_BUS_DIR" --call "$SID"
spawn tap_all "$BIN/exoplex-tap" --bus-dir "$EXOPLEX_BUS_DIR" --side both
# The taps print their JSON on stdout (the .log) and their connections on
# stderr (also in the .log): wait until each has all six.
for name in tap_call tap_all; do
	deadline=$((SECONDS + 10))
	until [ "$(grep -c '^exoplex-tap: connected to' "$T/$name.log")" = 6 ]; do
		[ $SECONDS -lt $deadline ] || { log "$name did not connect"; exit 1; }
		sleep 0.1
	done
done

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--stream-sid "$SID" --call-sid "CA$SID" --seconds 4 --tone 1000 \
	--expect-min-seconds 1 >"$T/summary.json" 2>"$T/call.log" ||
	{ log "exoplex-call failed"; cat "$T/call.log" >&2; exit 1; }
sleep 0.5 # the last frames of the call reach the taps
kill -TERM "$(pid_of tap_call)" "$(pid_of tap_all)"
wait "$(pid_of tap_call)" "$(pid_of tap_all)" 2>/dev/null

python3 - "$T/tap_call.log" "$T/tap_all.log" "$SID" <<'PY' || exit 1
import json, sys
def load(path):
    out = []
    for ln in open(path, encoding="utf-8"):
        if ln.startswith("exoplex-tap:"):
            continue
        out.append(json.loads(ln))  # every other line must be JSON
    return out
call, every, sid = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
fail = []
if not call:
    sys.exit("the filtered tap saw nothing")
if any(l["call"] != sid for l in call):
    fail.append("--call let other calls through")
# Who sends each kind, on which link (docs/bus.md).
want = {
    "call_start": [("ingress", "transcoder"), ("ingress", "control")],
    "caller_audio": [("ingress", "transcoder")],
    "uplink_ogg": [("transcoder", "egress")],
    "downlink_ogg": [("egress", "egress")],
    "playback_audio": [("transcoder", "transcoder")],
    "call_stop": [("ingress", "transcoder"), ("ingress", "control")],
}
for kind, routes in want.items():
    for sender, link in routes:
        got = [l for l in call if l["kind"] == kind and
               l["sender"] == sender and l["link"] == link]
        if not got:
            fail.append(f"no {kind} from {sender} on link {link}")
        elif any(l["dir"] != "out" or l["at"] != sender for l in got):
            fail.append(f"{kind}: side auto should show the sender's copy")
# Each frame once, and per (sender, link) the sequence rises.
seen, last = set(), {}
for l in call:
    k = (l["sender"], l["link"], l["seq"])
    if k in seen:
        fail.append(f"frame shown twice: {l}")
        break
    seen.add(k)
    if l["seq"] <= last.get(k[:2], 0):
        fail.append(f"seq did not rise on {k[:2]}: {l['seq']}")
        break
    last[k[:2]] = l["seq"]
audio = [l for l in call if l["kind"] == "caller_audio"]
if audio and (audio[0]["rate"] != 8000 or audio[0]["pcm_bytes"] % 320 or
              "age_ms" not in audio[0]):
    fail.append(f"caller_audio fields: {audio[0]}")
ups = [l for l in call if l["kind"] == "uplink_ogg"]
if sum(1 for l in ups if l.get("header")) < 2:
    fail.append("fewer than two uplink header pages (OpusHead, OpusTags)")
stop = [l for l in call if l["kind"] == "call_stop"]
if stop and stop[0].get("reason") != "callended":
    fail.append(f"call_stop reason: {stop[0]}")
start = [l for l in call if l["kind"] == "call_start"]
if start and start[0].get("call_sid") != "CA" + sid:
    fail.append(f"call_start call_sid: {start[0]}")
# --side both: the receiver's copy too.
ins = [l for l in every if l["call"] == sid and l["dir"] == "in" and
       l["kind"] == "caller_audio" and l["at"] == "transcoder"]
if not ins:
    fail.append("--side both showed no caller_audio received by the transcoder")
if not any(l["kind"] == "capacity" and l["call"] == "" for l in every):
    fail.append("the unfiltered tap saw no capacity frame")
counts = {}
for l in call:
    counts[l["kind"]] = counts.get(l["kind"], 0) + 1
print("tap --call:", json.dumps(counts, sort_keys=True), file=sys.stderr)
if fail:
    sys.exit("\n".join(fail))
PY
log "PASS exoplex-tap decoded the call's frames"
