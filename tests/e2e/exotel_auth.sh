#!/usr/bin/env bash
# exotel_auth.sh - issue 3, "Auth".
#
# The trio runs with EXOPLEX_AUTH_BASIC=user:pass and
# EXOPLEX_AUTH_TOKENS=tok1; the stand-in echoes.
#   Refused, and PersonaPlex never sees a session (sessions_started 0, and
#   egress's log shows no PersonaPlex connection for these calls):
#   - no credentials at all: upgraded, then closed 1008 at start, no audio;
#   - a wrong custom_parameters.token: the same;
#   - wrong Basic, a wrong Bearer, a wrong ?token=: HTTP 401 at the
#     upgrade.
#   Let in (each a 4 s call that hears its 1 kHz echo): the right Basic,
#   ?token=tok1, Authorization: Bearer tok1, custom_parameters.token=tok1;
#   each counted by where its credentials came from.
#   Secrets (the password, the tokens) never appear in ingress's log.
. "$(dirname "$0")/exotel_lib.sh"

start_fakeplex --mode echo || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" \
	EXOPLEX_AUTH_BASIC=user:s3cretpass EXOPLEX_AUTH_TOKENS=tok1xyz,tok2xyz || exit 1
HP="127.0.0.1:$P_LISTEN"
Q="exotel?sample-rate=8000"

# Refused at start: the upgrade succeeds, start gets 1008.
for n in none badcustom; do
	extra=()
	[ $n = badcustom ] && extra=(--custom token=nope --custom persona=x)
	call $n --url "ws://$HP/$Q" --seconds 3 "${extra[@]}" \
		--expect-closed-by server --expect-close-code 1008
	want_rc $n 0
	want $n "d['connected'] and d['closed_before_stop']"
	want $n "d['seconds_received'] == 0"
done
want_metric "$ADM_I" 'exoplex_auth_refused_total{at="start"}' -eq 2
want_metric "$ADM_I" 'exoplex_calls_refused_total{reason="auth_failed"}' -eq 2
want_metric "$ADM_I" 'exoplex_calls_started_total' -eq 0

# Refused at the upgrade: 401, exit status 3 (no connection).
call badbasic --url "ws://user:wrong@$HP/$Q" --seconds 2
want_rc badbasic 3
want badbasic "d['http_status'] == 401 and not d['connected']"
call badbearer --url "ws://$HP/$Q" --bearer nope --seconds 2
want_rc badbearer 3
want badbearer "d['http_status'] == 401"
call badquery --url "ws://$HP/$Q&token=nope" --seconds 2
want_rc badquery 3
want badquery "d['http_status'] == 401"
want_metric "$ADM_I" 'exoplex_auth_refused_total{at="upgrade"}' -eq 3

s=$(plex_stat '["sessions_started"]')
[ "$s" = 0 ] || fail "PersonaPlex saw $s sessions from calls without valid credentials"
# The stand-in only counts upgrades; a connection egress starts and drops
# within one loop turn never gets that far here, but would reach a real
# server across a network (or under load). So: egress must not even try.
for n in none badcustom; do
	sid=$(json_get "$T/$n.json" "d['stream_sid']")
	if grep -F "$sid" "$T/egress.log" | grep -q 'PersonaPlex'; then
		fail "$n: egress started a PersonaPlex session for a call refused at start:"
		grep -F "$sid" "$T/egress.log" | grep 'PersonaPlex' >&2
	fi
done
want_metric "$ADM_E" 'exoplex_bus_frames_total{link="egress",dir="out",kind="session_ready"}' -eq 0

# Let in, each way.
GOOD=(--seconds 4 --tone 1000 --expect-hz 1000 --expect-tolerance 0.02
	--expect-min-seconds 2 --expect-no-violations)
call basic --url "ws://user:s3cretpass@$HP/$Q" "${GOOD[@]}"
want_rc basic 0
call query --url "ws://$HP/$Q&token=tok2xyz" "${GOOD[@]}"
want_rc query 0
call bearer --url "ws://$HP/$Q" --bearer tok1xyz "${GOOD[@]}"
want_rc bearer 0
call custom --url "ws://$HP/$Q" --custom persona=x --custom token=tok1xyz "${GOOD[@]}"
want_rc custom 0
for v in basic query bearer custom_parameters; do
	want_metric "$ADM_I" "exoplex_auth_accepted_total{via=\"$v\"}" -eq 1
done
want_metric "$ADM_I" 'exoplex_calls_started_total' -eq 4
s=$(plex_stat '["sessions_started"]')
[ "$s" = 4 ] || fail "PersonaPlex saw $s sessions, expected 4 (one per admitted call)"

for secret in s3cretpass tok1xyz tok2xyz; do
	grep -qF "$secret" "$T/ingress.log" "$T/egress.log" "$T/transcoder.log" &&
		fail "a log contains the secret $secret"
done
v=$(plex_stat '["violations"]')
[ "$v" = 0 ] || fail "the stand-in counted $v protocol violations"
alive_and_healthy
finish
