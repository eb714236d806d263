#!/usr/bin/env bash
# make bench's own tools, so they do not rot between benchmark runs (no
# timing is asserted: the numbers only have to be there and add up).
# (1) exoplex-bench-floor: the floor's JSON has every stage; --probe runs
# stretches until SIGTERM and reports them; bad options are refused.
# exoplex-bench-nng: the messages arrive and each end has a cost.
# (2) bench/report.py: on made-up runs, the summary takes the most clean
# calls, the most within the p99 bound, and the ratios to both floors;
# a run's verdict counts a backlog in the frames' median age.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
F=$BIN/exoplex-bench-floor
T=$(mktemp -d "${TMPDIR:-/tmp}/exoplex-benchtools.XXXXXX")
PID=
cleanup() {
	[ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$F" --json --seconds 2 --reps 1 --complexity 0,5 >"$T/floor.json" 2>"$T/floor.err" ||
	fail "the floor exited $?: $(cat "$T/floor.err")"
python3 - "$T/floor.json" <<'PY' || fail "the floor's JSON"
import json, sys
d = json.load(open(sys.argv[1]))
for name in ("default", "call"):
    p = d["profiles"][name]
    for c in ("0", "5"):
        assert p["floor"][c] > 0, (name, c)
        assert abs(p["floor"][c] - (p["resample_up"]["median"] + p["decode"]["median"] + p["encode"][c]["median"])) < 1e-3
assert d["profiles"]["default"]["opus_rate"] == 24000
assert d["profiles"]["call"]["opus_rate"] == 8000
PY

# The probe at the density settings: stretches until SIGTERM, then one
# JSON object whose parts add up to its floor.
"$F" --probe 20 --seed 1 --seconds 3 --probe-rate call --default-complexity 0 \
	>"$T/probe.json" 2>"$T/probe.err" &
PID=$!
sleep 1
kill -TERM "$PID"
wait "$PID" || fail "the probe exited $? after SIGTERM: $(cat "$T/probe.err")"
PID=
python3 - "$T/probe.json" <<'PY' || fail "the probe's JSON: $(cat "$T/probe.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["stretches"] >= 2, d
assert d["opus_rate"] == 8000 and d["complexity"] == 0, d
assert abs(d["audio_s"] - d["stretches"] * 0.4) < 1e-6, d
assert abs(d["floor"] - (d["resample_up"] + d["encode"] + d["decode"])) < 1e-3, d
assert d["stretch_p10"] <= d["stretch_p50"] <= d["stretch_p90"], d
PY
"$F" --probe 0 >/dev/null 2>&1 && fail "--probe 0 accepted"
"$F" --probe 10 --probe-rate 44100 >/dev/null 2>&1 && fail "--probe-rate 44100 accepted"

# exoplex-bench-nng: every message sent arrives, each end reports a cost.
"$BIN/exoplex-bench-nng" --rate 200 --seconds 1 --bytes 1000 >"$T/nng.json" \
	2>"$T/nng.err" || fail "exoplex-bench-nng exited $?: $(cat "$T/nng.err")"
python3 - "$T/nng.json" <<'PY' || fail "exoplex-bench-nng's JSON: $(cat "$T/nng.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["rate"] == 200 and d["bytes"] == 1000, d
assert 100 <= d["sent"] <= 201 and d["received"] == d["sent"], d
assert d["sender_us_per_msg"] > 0 and d["receiver_us_per_msg"] > 0, d
PY
"$BIN/exoplex-bench-nng" --rate 0 >/dev/null 2>&1 && fail "exoplex-bench-nng --rate 0 accepted"

# report.py final on made-up runs: 100 clean and quick, 200 clean but
# slow (p99 900 ms), 300 broken.
mkdir -p "$T/tmp/runs"
python3 - "$T/tmp" <<'PY' || fail "making the runs"
import json, os, sys
tmp = sys.argv[1]
json.dump({"default_complexity": 5, "profiles": {
    "default": {"floor": {"5": 10.0}}, "call": {"floor": {"0": 3.0}}}},
    open(os.path.join(tmp, "floor.json"), "w"))
def run(name, calls, clean, p99, trio, probe):
    d = os.path.join(tmp, "runs", name)
    os.makedirs(d)
    json.dump({"profile": "default", "env": [], "calls": calls,
               "clean": clean, "broken_because": [] if clean else ["x"],
               "trio_ms_per_call_s": trio,
               "probe": {"floor": probe, "stretches": 10},
               "latency": {"up": {"p50_ms": 1, "p99_ms": p99},
                           "down": {"p50_ms": 1, "p99_ms": p99}}},
              open(os.path.join(d, "run.json"), "w"))
run("load-default-100", 100, True, 9.0, 12.0, 9.6)
run("sweep-default-100", 100, True, 9.0, 12.0, 9.6)
run("sweep-default-200", 200, True, 900.0, 11.0, 10.0)
run("sweep-default-300", 300, False, 1000.0, 10.0, 10.4)
PY
python3 - "$ROOT/bench/report.py" "$T/tmp" <<'PY' || fail "report.py's summary"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("report", sys.argv[1])
r = importlib.util.module_from_spec(spec)
spec.loader.exec_module(r)
r.markdown = lambda res: ""  # the summary is what is checked here
r.final(sys.argv[2], sys.argv[2] + "/out")
s = json.load(open(sys.argv[2] + "/out.json"))["summary"]["default"]
assert s["most_clean_calls"] == 200, s
assert s["first_broken"] == 300, s
assert s["most_clean_calls_p99_within"] == 100, s
assert abs(s["trio_to_floor"] - 1.2) < 1e-9, s
assert abs(s["trio_to_probe"] - 12.0 / 9.6) < 1e-9, s
assert s["sweep_probe_ms_per_call_s"] == 10.0, s  # the median of three
assert abs(s["probe_calls"] - r.os.cpu_count() * 100) < 1e-6, s

# A run whose calls all heard their audio is still not clean when the
# frames' median age shows a backlog one way (the uplink's, as after
# the shards decode PersonaPlex's pages first); no frames, no verdict.
ok = {"calls": 10, "calls_connected": 10, "violations": 0,
      "seconds_sent": 300, "min_seconds_received": 30, "rms_dbfs": -20,
      "underrun_ms": 0}
lat = lambda up, down: {"up": {"p50_ms": up}, "down": {"p50_ms": down}}
assert r.judge(ok, 10, 0, lat(3.0, 2.0)) == [], "quick run judged broken"
assert r.judge(ok, 10, 0, lat(None, None)) == [], "no frames judged broken"
why = r.judge(ok, 10, 0, lat(435.0, 4.0))
assert why == ["backlog: up p50 435 ms"], why
why = r.judge(dict(ok, min_seconds_received=20), 10, 0, lat(3.0, 60.0))
assert len(why) == 2 and why[1] == "backlog: down p50 60 ms", why
# Caller audio the transcoder dropped as stale breaks a run whose calls
# heard enough and whose median kept up.
why = r.judge(ok, 10, 0, lat(3.0, 2.0), 12)
assert why == ["transcoder dropped 12 stale caller frames"], why
PY
echo "PASS bench tools: the floor, the probe, the report's summary and its verdict"
