#!/usr/bin/env bash
# egress killed (SIGKILL) 6 s into a 20 s call and started again at
# once, the test acting as its supervisor, with speech-to-text and
# webhooks on. The Exotel socket stays open; ingress re-announces the
# call, the new egress leases the PersonaPlex stand-in again (a new
# session, so a new Ogg stream from the transcoder) and opens a new STT
# session; the caller hears the agent again within 2 s of the restart;
# caller transcripts go on after the restart; the stand-in counts no
# protocol violation across both sessions; and the webhook contract
# holds over the restart (one call.started, call.ended last).
#
# The caller says 1 kHz bursts of 1.2 s with 0.4 s pauses, so the Scribe
# stand-in commits (VAD) between them. The pauses hold a faint 500 Hz
# tone (-50 dBFS): silence to the stand-in's VAD (-40 dBFS), audio to
# exoplex-call (-60 dBFS), so only the restart can make a gap.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/stt_lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"
. "$(dirname "$0")/restart_lib.sh"
KEY=e2e-key-$$

python3 - "$T/caller.wav" <<'PY' || exit 1
import math, struct, sys, wave
rate, out = 8000, []
while len(out) < 21 * rate:
    out += [int(16000 * math.sin(2 * math.pi * 1000 * i / rate))
            for i in range(int(1.2 * rate))]
    out += [int(150 * math.sin(2 * math.pi * 500 * i / rate))
            for i in range(int(0.4 * rate))]
w = wave.open(sys.argv[1], "wb")
w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
w.writeframes(struct.pack("<%dh" % len(out), *out))
PY

start_fakeplex --mode echo || exit 1
start_fakescribe --api-key "$KEY" || exit 1
start_sink || exit 1
ENV=(EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" ELEVENLABS_API_KEY="$KEY"
	EXOPLEX_STT_URL="$SCRIBE_URL" EXOPLEX_STT_VAD_SILENCE_SECS=0.3
	"${HOOK_ENV[@]}")
start_trio "${ENV[@]}" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--rate 8000 --seconds 20 --wav "$T/caller.wav" \
	--expect-hz 1000 --expect-tolerance 0.02 --expect-min-seconds 12 \
	--expect-no-violations >"$T/summary.json" 2>"$T/call.log" &
CALL=$!

sleep 6
kill -0 $CALL 2>/dev/null || { log "the call ended early"; cat "$T/call.log" >&2; exit 1; }
finals1=$(metric "$ADM_E" 'exoplex_egress_stt_transcripts_total{kind="final"}')
kill_ms=$(now_ms)
kill_hard egress
spawn egress2 env "${ENV[@]}" "$BIN/exoplex-egress" --admin "127.0.0.1:$P_ADM_E"
restart_ms=$(now_ms)
log "egress killed and restarted ($finals1 caller finals before the kill)"
wait_http "$ADM_E/healthz" || exit 1

wait $CALL
rc=$?
cat "$T/summary.json"
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }
fail=0
check_resumed "$T/summary.json" "$kill_ms" "$restart_ms" 2000 || fail=1
links_up || fail=1

wait_scribe_stat '["client_closed_1000"]' 1 10 || fail=1
wait_ended 1 20 || exit 1
sleep 1
check_hooks 1 caller=1 reason=callended || fail=1

sessions=$(plex_stat '["sessions_started"]')
v=$(plex_stat '["violations"]')
log "fakeplex: sessions_started=$sessions violations=$v"
[ "$sessions" -ge 2 ] || { log "the restarted egress opened no new PersonaPlex session"; fail=1; }
[ "$v" = 0 ] || { log "fakeplex counted $v violations"; cat "$T/stats.json" >&2; fail=1; }
sv=$(scribe_stat '["violations"]')
ss=$(scribe_stat '["sessions"]')
log "fakescribe: sessions=$ss violations=$sv"
[ "$sv" = 0 ] || { log "fakescribe counted $sv violations"; fail=1; }
[ "$ss" -ge 2 ] || { log "the restarted egress opened no new STT session"; fail=1; }
[ "$finals1" -ge 1 ] || { log "no caller transcript before the kill"; fail=1; }

# A final caller transcript of audio spoken after the restart: its
# start_ms (from the call's start) is past the restart.
python3 - "$T/hooks.jsonl" "$restart_ms" <<'PY' || fail=1
import datetime, json, sys
restart = int(sys.argv[2])
evs, seen = [], set()
for l in open(sys.argv[1]):
    l = json.loads(l)
    if l["status"] == 200 and l["delivery"] not in seen:
        seen.add(l["delivery"])
        evs.append(l["body"])
st = [e for e in evs if e["event"] == "call.started"][0]
t0 = datetime.datetime.strptime(st["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
    tzinfo=datetime.timezone.utc).timestamp() * 1000
after = restart - t0
caller = [e for e in evs if e["event"] == "transcript"
          and e["speaker"] == "caller" and e["final"]]
late = [e for e in caller if e["start_ms"] is not None and e["start_ms"] >= after]
print("caller finals: %d, %d starting after the restart (at %d ms into "
      "the call): %s" % (len(caller), len(late), after,
      [(e["start_ms"], e["end_ms"]) for e in caller]), file=sys.stderr)
sys.exit(0 if late else 1)
PY
[ $fail = 0 ] || exit 1
log "PASS caller hears the agent again after kill -9 of egress, transcripts go on"
