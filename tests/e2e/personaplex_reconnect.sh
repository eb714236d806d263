#!/usr/bin/env bash
# The PersonaPlex server drops the session 3 s into the call (no close
# frame, as a crashed handler does). egress must replace it: the caller hears
# the agent (the echoed 1 kHz tone) again within 2 s, on a brand-new Ogg
# stream that the stand-in's strict reader accepts (no violation at all:
# a second BOS on the old serial, or a stream without BOS, would count).
# The gap is measured on what the caller heard (the recorded playout, one
# 20 ms frame per tick, silence where nothing was playing).
. "$(dirname "$0")/../lib.sh"

start_fakeplex --mode echo --drop-after-ms 3000 --drop-count 1 || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" || exit 1

"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--seconds 10 --tone 1000 --record "$T/heard.wav" --expect-hz 1000 \
	--expect-tolerance 0.02 --expect-no-violations >"$T/summary.json" 2>"$T/call.log"
rc=$?
cat "$T/summary.json"
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }

dropped=$(plex_stat '["sessions_dropped"]')
hs=$(plex_stat '["handshakes_sent"]')
v=$(plex_stat '["violations"]')
waited=$(plex_stat '["sessions_waited"]')
reconnects=$(metric "$ADM_E" 'exoplex_egress_reconnects_total')
clears=$(metric "$ADM_E" 'exoplex_egress_clears_total')
log "fakeplex: dropped=$dropped handshakes=$hs violations=$v waited=$waited; egress: reconnects=$reconnects clears=$clears"
[ "$dropped" = 1 ] || { log "the stand-in did not drop a session"; exit 1; }
[ "$hs" = 2 ] || { log "expected a second session (handshakes=$hs)"; exit 1; }
[ "$v" = 0 ] || { log "the new Ogg stream was not accepted"; cat "$T/stats.json" >&2; exit 1; }
[ "$waited" = 0 ] || { log "a session waited for the server's lock"; exit 1; }
[ "$reconnects" = 1 ] || { log "egress did not count the reconnect"; exit 1; }

# The longest silence between the first and the last audible 20 ms frame.
python3 - "$T/heard.wav" <<'PY' || exit 1
import array, math, sys, wave
w = wave.open(sys.argv[1])
rate = w.getframerate()
pcm = array.array("h", w.readframes(w.getnframes()))
n = rate // 50
loud = []
for i in range(0, len(pcm) - n + 1, n):
    f = pcm[i:i + n]
    loud.append(math.sqrt(sum(x * x for x in f) / n) > 300)
first = loud.index(True)
last = len(loud) - 1 - loud[::-1].index(True)
gap = run = 0
for x in loud[first:last + 1]:
    run = 0 if x else run + 1
    gap = max(gap, run)
audible = sum(loud) * 0.02
print("[check] heard %.2f s of agent audio; longest silence after it began: %d ms"
      % (audible, gap * 20), file=sys.stderr)
if gap * 20 >= 2000:
    print("[check] the caller waited 2 s or more for the agent to come back", file=sys.stderr)
    sys.exit(1)
if gap == 0:
    print("[check] no gap at all: was the session really dropped?", file=sys.stderr)
    sys.exit(1)
PY
log "PASS a dropped session is replaced within 2 s on a fresh Ogg stream"
