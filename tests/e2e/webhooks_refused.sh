#!/usr/bin/env bash
# Refused calls are reported too: with one PersonaPlex server and token
# auth, a call with a wrong token (auth_failed, refused by ingress at
# `start`) and a call while the server is busy (no_capacity) each get
# call.started and call.ended with their reason, next to a normal call
# (callended); custom parameter secrets (the token) never reach the
# frontend.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"

start_sink || exit 1
start_fakeplex --mode echo || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" EXOPLEX_AUTH_TOKENS=good-token \
	"${HOOK_ENV[@]}" || exit 1
URL="ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000"

"$BIN/exoplex-call" --url "$URL" --seconds 5 --tone 440 --custom token=good-token \
	--stream-sid S-ok --call-sid C-ok >"$T/ok.json" 2>"$T/ok.log" &
OK=$!
sleep 1.5
"$BIN/exoplex-call" --url "$URL" --seconds 2 --custom token=bad-token \
	--stream-sid S-auth --call-sid C-auth >"$T/auth.json" 2>"$T/auth.log"
"$BIN/exoplex-call" --url "$URL" --seconds 2 --custom token=good-token \
	--stream-sid S-busy --call-sid C-busy >"$T/busy.json" 2>"$T/busy.log"
wait $OK || { log "the normal call failed"; cat "$T/ok.log" >&2; exit 1; }
wait_ended 3 30 || exit 1
sleep 1
check_hooks 3 no_param=token || exit 1
python3 - "$T/hooks.jsonl" <<'PY' || exit 1
import json, sys
want = {"S-ok": "callended", "S-auth": "auth_failed", "S-busy": "no_capacity"}
got, mode = {}, {}
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["status"] != 200:
        continue
    b = d["body"]
    if b["event"] == "call.ended":
        got[b["stream_sid"]] = b["reason"]
    if b["event"] == "call.started":
        mode[b["stream_sid"]] = b.get("mode")
print("reasons %s, modes %s" % (got, mode), file=sys.stderr)
sys.exit(0 if got == want and mode.get("S-auth") == "refused" else 1)
PY
log "PASS refused calls reported with their reasons"
