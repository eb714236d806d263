#!/usr/bin/env bash
# exotel_abuse.sh - issue 3, "Limits and bad input": nothing a caller's
# socket sends can hurt a call.
#
# One good 15 s call (1 kHz tone, the stand-in echoes it) runs through the
# trio (EXOPLEX_START_TIMEOUT_MS=1000, eight PersonaPlex stand-ins). Once its audio flows, four
# exoplex-abuse clients run at the same time against the same ingress:
#   pre:   every kind of bad input, each on its own socket, without a start
#          where the kind allows (media before start, invalid JSON, not an
#          object, no event, invalid base64, odd-length PCM, a binary frame,
#          a 1 MB frame, a start missing its fields, a second start, unknown
#          events, a 44.1 kHz start, no start at all, non-HTTP garbage,
#          garbage after the upgrade, a wrong path, a 1000-message flood);
#   mid:   the same after a valid start (a live call of their own);
#   churn: 200 rapid connect/disconnects (TCP only, half a request,
#          upgrade then drop, connected then a clean close);
#   calls: 20 calls that send start and drop at once.
# Then:
#   - the abuse ended while the good call still ran (they overlapped);
#   - the good call's expectations hold: 1000 Hz ± 2%, >= 12 s heard, no
#     violation, lead < 1 s, ended by its own stop;
#   - ingress, transcoder, egress and the stand-in are alive (PIDs) and the
#     trio's /healthz answer 200;
#   - ingress counted each kind in exoplex_exotel_bad_input_total{kind},
#     and logged a kind once per socket, not once per message;
#   - the server closed the sockets it must close (1 MB: 1009; bad start
#     and no start: 1008; wrong path: 404; garbage: closed), every client
#     reached the server, the churn did all 200;
#   - afterwards no socket or call is left open in ingress, and the
#     stand-in saw no protocol violation.
# (Stopping the trio after such traffic is exotel_stop.sh.)
. "$(dirname "$0")/exotel_lib.sh"

# Eight PersonaPlex stand-ins: the abuse's own calls (those with a valid
# start) must find a free server, or egress has ingress end them for
# no_capacity before their bad input is even read.
start_fakeplex_n 8 --mode echo || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URLS" EXOPLEX_START_TIMEOUT_MS=1000 || exit 1
URL="ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000"
BAD='exoplex_exotel_bad_input_total'

spawn goodcall "$BIN/exoplex-call" --url "$URL" --seconds 15 --tone 1000 \
	--max-lead-ms 1000 --expect-hz 1000 --expect-tolerance 0.02 \
	--expect-min-seconds 12 --expect-no-violations
GOOD=$(pid_of goodcall)
wait_metric "$ADM_I" 'exoplex_exotel_messages_out_total{event="media"}' -gt 5 8 || exit 1

AB=(timeout -k 5 60 "$BIN/exoplex-abuse" --url "$URL" --wait-ms 300
	--start-wait-ms 2500 --timeout-ms 2000)
spawn abuse_pre "${AB[@]}" --kind all
spawn abuse_mid "${AB[@]}" --kind all --after-start
spawn abuse_churn "${AB[@]}" --churn 200 --churn-ms 12000
spawn abuse_calls "${AB[@]}" --churn 20 --churn-start --churn-ms 12000
for n in abuse_pre abuse_mid abuse_churn abuse_calls; do
	wait "$(pid_of $n)" || fail "$n exited $?"
	grep '^{' "$T/$n.log" >"$T/$n.jsonl"
done
kill -0 "$GOOD" 2>/dev/null ||
	fail "the good call had ended before the abuse did: they did not overlap"
log "abuse done; waiting for the good call"

wait "$GOOD"
RC=$?
grep '^{' "$T/goodcall.log" >"$T/good.json"
log "good call (rc $RC): $(cat "$T/good.json")"
want_rc good 0
want good "abs(d['dominant_hz'] - 1000) <= 20"
want good "d['seconds_received'] >= 12"
want good "d['violations'] == 0"
want good "d['max_lead_ms'] < 1000"
want good "d['closed_by'] == 'client' and not d['closed_before_stop']"

alive_and_healthy

# Counted by kind. Kinds sent by both pre and mid are counted at least
# twice; those only about the start (or its absence) once per pass that
# sends them (pre and mid alike, as they ignore --after-start).
for k in invalid_json not_object no_event invalid_base64 odd_length_pcm \
	binary_frame too_large media_before_start start_missing_field \
	bad_sample_rate start_timeout bad_path message_flood duplicate_start; do
	want_metric "$ADM_I" "$BAD{kind=\"$k\"}" -ge 2
done
want_metric "$ADM_I" 'exoplex_exotel_messages_in_total{event="unknown"}' -ge 4
# Logged once per socket and kind, however many messages: 5 media before
# start and ~500 flooded messages on each of 2 sockets are 2 lines each.
for k in media_before_start message_flood; do
	n=$(grep -c "bad input $k" "$T/ingress.log")
	[ "$n" = 2 ] || fail "ingress logged 'bad input $k' $n times, expected once per socket (2)"
done

python3 - "$T" <<'PY' >"$T/outcomes.txt"
import json, sys
t = sys.argv[1]
def runs(name):
    return [json.loads(l) for l in open(f"{t}/{name}.jsonl") if l.strip()]
pre, mid = runs("abuse_pre"), runs("abuse_mid")
for name, rs in (("pre", pre), ("mid", mid)):
    if len(rs) != 17:
        print(f"{name}: {len(rs)} runs reported, expected 17")
    for r in rs:
        k = r["kind"]
        if "error" in r:
            print(f"{name} {k}: did not reach the server: {r['error']}")
            continue
        closed = r["closed_by"] == "server" and not r["open_after_wait"]
        want = {
            "huge_frame": ("closed 1009", closed and r["close_code"] == 1009),
            "start_missing_fields": ("closed 1008", closed and r["close_code"] == 1008),
            "bad_sample_rate": ("closed 1008", closed and r["close_code"] == 1008),
            "no_start": ("closed 1008", closed and r["close_code"] == 1008),
            "bad_path": ("HTTP 404", r["http_status"] == 404),
            "garbage": ("closed", closed and not r["upgraded"]),
            "garbage_ws": ("closed", closed),
        }.get(k)
        if want and not want[1]:
            print(f"{name} {k}: expected {want[0]}, got {json.dumps(r)}")
        if k not in ("garbage", "bad_path") and not r["upgraded"]:
            print(f"{name} {k}: not upgraded: {json.dumps(r)}")
(c,) = runs("abuse_churn")
if not (c["attempts"] == 200 and c["tcp_connected"] == 200 and c["failed"] == 0
        and c["upgraded"] == 100 and not c["stopped_early"]):
    print(f"churn: expected 200 connections, 100 upgrades, no failure: {json.dumps(c)}")
(c,) = runs("abuse_calls")
if not (c["attempts"] == 20 and c["failed"] == 0 and c["with_start"] == 4):
    print(f"start churn: expected 20 connections, 4 starts: {json.dumps(c)}")
PY
log "outcome checks: $(wc -l <"$T/outcomes.txt") failed of $(cat "$T"/abuse_*.jsonl | wc -l) runs"
while read -r line; do fail "$line"; done <"$T/outcomes.txt"

# Nothing left behind.
wait_metric "$ADM_I" 'exoplex_exotel_connections' -eq 0 10
wait_metric "$ADM_I" 'exoplex_calls_active' -eq 0 10
v=$(plex_stat '["violations"]')
[ "$v" = 0 ] || fail "the stand-in counted $v protocol violations"
log "fakeplex: $(cut -c1-300 "$T/stats.json")"
finish
