#!/usr/bin/env bash
# hardening_valgrind.sh - the call path under valgrind memcheck.
#
# ingress, transcoder and egress each run under valgrind (leak check full,
# definite leaks count as errors) with the PersonaPlex, Scribe and webhook
# stand-ins running natively. A short call goes through the whole path
# (audio both ways, caller transcripts, webhooks), then each of the trio
# gets SIGTERM and must exit 0 within 90 s: memcheck's exit code is 99
# for any memory error or definite leak, whose report is printed. A
# process that overruns its stop has its threads' stacks printed (gdb
# through valgrind's gdbserver): one CI run saw the transcoder, its calls
# over, not exit in 90 s with no log line saying why. --fair-sched=yes:
# valgrind runs one thread at a time, and its default lock does not
# guarantee a waiting thread its turn.
# Skipped (77) without valgrind or when the programs were built with a
# sanitizer (valgrind cannot run those).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/stt_lib.sh"
. "$(dirname "$0")/webhooks_lib.sh"
SUPP=$(cd "$(dirname "$0")/../../fuzz/sanitize" && pwd)/valgrind.supp

command -v valgrind >/dev/null || { log "SKIP: no valgrind"; exit 77; }
if nm -D "$BIN/exoplex-egress" 2>/dev/null | grep -q '__asan_init\|__tsan_init' ||
	nm "$BIN/exoplex-egress" 2>/dev/null | grep -q '__asan_init\|__tsan_init'; then
	log "SKIP: the programs are built with a sanitizer"
	exit 77
fi

# Wrappers named like the programs, so lib.sh starts them under valgrind;
# exec keeps the PID, so signals reach valgrind's process itself.
REAL=$BIN
mkdir -p "$T/vgbin"
for p in "$REAL"/exoplex-*; do ln -s "$p" "$T/vgbin/"; done
for n in ingress transcoder egress; do
	rm "$T/vgbin/exoplex-$n"
	cat >"$T/vgbin/exoplex-$n" <<SH
#!/bin/sh
exec valgrind --tool=memcheck --fair-sched=yes --leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --error-exitcode=99 --num-callers=30 \
	--suppressions=$SUPP --log-file=$T/vg-$n.log "$REAL/exoplex-$n" "\$@"
SH
	chmod +x "$T/vgbin/exoplex-$n"
done
BIN=$T/vgbin
KEY=vg-key-$$

start_fakeplex --mode echo || exit 1
start_fakescribe --api-key "$KEY" || exit 1
start_sink || exit 1
# Under valgrind the trio may take longer than lib.sh's 10 s to come up.
start_trio EXOPLEX_PERSONAPLEX_URLS="$PLEX_URL" ELEVENLABS_API_KEY="$KEY" \
	EXOPLEX_STT_URL="$SCRIBE_URL" "${HOOK_ENV[@]}" || {
	log "(valgrind starts slowly: waiting up to 60 s more)"
	wait_http "$ADM_E/healthz" 60 && wait_http "$ADM_T/healthz" 60 &&
		wait_http "$ADM_I/healthz" 60 || exit 1
	deadline=$((SECONDS + 60))
	until [ "$(metric "$ADM_I" 'exoplex_bus_peer_connected{link="transcoder"}')$(metric "$ADM_I" 'exoplex_bus_peer_connected{link="control"}')$(metric "$ADM_T" 'exoplex_bus_peer_connected{link="egress"}')" = 111 ]; do
		[ $SECONDS -lt $deadline ] || { log "bus links did not come up"; exit 1; }
		sleep 0.2
	done
}

"$REAL/exoplex-call" --url "ws://127.0.0.1:$P_LISTEN/exotel?sample-rate=8000" \
	--rate 8000 --seconds 6 --signal speech --dtmf 1@1000 \
	--expect-min-seconds 2 >"$T/summary.json" 2>"$T/call.log"
rc=$?
cat "$T/summary.json"
[ $rc = 0 ] || { log "exoplex-call failed ($rc)"; cat "$T/call.log" >&2; exit 1; }
wait_ended 1 30 || log "note: the call.ended webhook did not arrive in 30 s"

fail=0
for n in ingress transcoder egress; do
	p=$(pid_of "$n")
	kill -TERM "$p" 2>/dev/null || { log "$n (pid $p) was gone before its stop"; fail=1; continue; }
	for _ in $(seq 900); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$p" 2>/dev/null; then
		log "$n (pid $p) still runs 90 s after SIGTERM"
		stacks "$p"
		fail=1
		continue
	fi
	wait "$p"
	rc=$?
	errs=$(grep -Eo 'ERROR SUMMARY: [0-9]+ errors' "$T/vg-$n.log" | tail -1)
	leaks=$(grep -Eo '(definitely|indirectly|possibly) lost: [0-9,]+ bytes|All heap blocks were freed' \
		"$T/vg-$n.log" | paste -sd, -)
	log "$n: exit $rc; $errs; ${leaks:-no leak summary}"
	if [ "$rc" != 0 ] || ! grep -q 'ERROR SUMMARY: 0 errors' "$T/vg-$n.log"; then
		fail=1
		echo "----- valgrind report of $n" >&2
		sed -n '/HEAP SUMMARY/,$p;/Invalid\|uninitialised\|Mismatched/,+25p' "$T/vg-$n.log" >&2
	fi
done
[ $fail = 0 ] || exit 1
log "PASS valgrind: no memory errors and no definite leaks on the call path"
