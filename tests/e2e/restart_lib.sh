# tests/e2e/restart_lib.sh - what the restart tests share. Source it
# after ../lib.sh.

# now_ms: wall clock in epoch milliseconds (exoplex-call's gaps use it).
now_ms() { date +%s%3N; }

# check_resumed SUMMARY KILL_MS RESTART_MS [BOUND_MS]: from exoplex-call's
# summary, the call's socket stayed open until its stop, and the caller
# heard the agent again within BOUND_MS (2000) of the restart: every gap
# going at the restart or starting before the bound ended by then. Prints the gap the kill caused.
check_resumed() {
	python3 - "$@" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
kill, restart = int(sys.argv[2]), int(sys.argv[3])
bound = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
fail = []
if not d.get("connected"):
    fail.append("the call never connected: %s" % d.get("error"))
if d.get("closed_before_stop") is not False:
    fail.append("the call's socket closed before its stop (closed_by %s, "
                "code %s)" % (d.get("closed_by"), d.get("close_code")))
gaps = d.get("gaps", [])
if d.get("gaps_total", 0) > len(gaps):
    fail.append("%d gaps, only %d listed" % (d["gaps_total"], len(gaps)))
# The gaps the restart caused: going at the restart, or starting before the
# bound. A gap that starts later (a busy machine's underrun) is not about
# the restart: the caller had heard the agent again by then.
late = [g for g in gaps
        if g["end_ms"] > restart and g["start_ms"] <= restart + bound]
for g in late:
    if g.get("open"):
        fail.append("silence from %+d ms after the restart to the call's "
                    "end" % (g["start_ms"] - restart))
    elif g["end_ms"] - restart > bound:
        fail.append("audio back %d ms after the restart (bound %d ms)"
                    % (g["end_ms"] - restart, bound))
around = [g for g in gaps if g["end_ms"] >= kill]
for g in around:
    print("gap: from %+d ms to %+d ms around the restart (%d ms long; "
          "the kill was at %+d ms)" % (g["start_ms"] - restart,
          g["end_ms"] - restart, g["ms"], kill - restart), file=sys.stderr)
if not around:
    print("no gap after the kill: audio never stopped", file=sys.stderr)
back = max([g["end_ms"] for g in late] + [restart]) - restart
print("audio back %d ms after the restart; %d gaps in the call"
      % (back, len(gaps)), file=sys.stderr)
for f in fail:
    print("FAIL: " + f, file=sys.stderr)
sys.exit(1 if fail else 0)
PY
}
