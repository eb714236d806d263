#!/usr/bin/env bash
# Personas from EXOPLEX_PERSONAS reach the server's query: one chosen by the
# call's custom parameter (persona=support), one by the dialled number (`to`,
# written differently in the file), each with its text prompt filled in from
# the call ({from}, {to}, a custom parameter), and a call matching neither
# gets the default persona.
. "$(dirname "$0")/../lib.sh"

cat >"$T/personas.ini" <<'INI'
; personas for the e2e test
[default]
voice = NATF2.pt
text = You are the front desk of Acme.

[sales]
voice = NATM1.pt
text = You sell solar panels for Acme. The caller is {from}
    and rang {to}; their reference is {ref}.
numbers = +91 80 4000 1234

[support]
voice = VARF2.pt
text = You fix broken panels. Greet caller {from} by their ticket {ticket}.
INI

start_fakeplex --mode echo || exit 1
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" EXOPLEX_PERSONAS="$T/personas.ini" || exit 1

# call N ARGS...: a short call; then the stand-in's last prompts.
call() {
	local n=$1
	shift
	"$BIN/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
		--seconds 2 --tone 1000 --from 09876543210 "$@" \
		>"$T/summary$n.json" 2>"$T/call$n.log" ||
		{ log "call $n failed"; cat "$T/call$n.log" >&2; return 1; }
	curl -fsS --max-time 2 "$PLEX_ADM/stats" >"$T/stats$n.json"
}

# check N VOICE TEXT: the prompts the server saw for call N.
check() {
	local voice text
	voice=$(json_get "$T/stats$1.json" 'd["last_voice_prompt"]')
	text=$(json_get "$T/stats$1.json" 'd["last_text_prompt"]')
	log "call $1: voice_prompt=$voice text_prompt=$text"
	[ "$voice" = "$2" ] || { log "call $1: voice $voice, want $2"; return 1; }
	[ "$text" = "$3" ] || { log "call $1: text '$text', want '$3'"; return 1; }
}

call 1 --custom persona=support --custom ticket=T-42 --to 01140001111 || exit 1
check 1 VARF2.pt "You fix broken panels. Greet caller 09876543210 by their ticket T-42." || exit 1

call 2 --to 08040001234 --custom ref=R9 || exit 1
check 2 NATM1.pt "You sell solar panels for Acme. The caller is 09876543210 and rang 08040001234; their reference is R9." || exit 1

call 3 --to 01140001111 || exit 1
check 3 NATF2.pt "You are the front desk of Acme." || exit 1

v=$(plex_stat '["violations"]')
[ "$v" = 0 ] || { log "fakeplex counted $v violations"; exit 1; }
by_param=$(metric "$ADM_E" 'exoplex_egress_persona_chosen_total{by="custom_parameter"}')
by_number=$(metric "$ADM_E" 'exoplex_egress_persona_chosen_total{by="number"}')
log "egress: chosen by custom parameter $by_param, by number $by_number"
[ "$by_param" = 1 ] && [ "$by_number" = 1 ] || exit 1
log "PASS personas by custom parameter and by dialled number reach the server"
