#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The operator's rollout, inside the test VM; scripts/test-operator.sh runs
# the two phases around `msrguard policy suggest` on the host, and turns
# the "PASS what" / "FAIL what" lines printed here into TAP.
#
#   operator_test.sh audit DEB START_KO WORKLOAD OUTDIR
#     Installs the Debian package (dpkg -i; the VM's /usr, /etc and /var
#     are overlays: nothing reaches the host),
#     starts systemd-journald and the installed unit's ExecStart, loads
#     START_KO in audit mode and runs WORKLOAD twice: the first run's events
#     go to the journal, the second run's are saved as records in
#     OUTDIR/audit.records for `msrguard policy suggest`.
#   operator_test.sh enforce START_KO LEARNED_KO WORKLOAD OUTDIR TOOL
#     Runs WORKLOAD under START_KO (enforcing: the accesses are vetoed) and
#     under LEARNED_KO, built from the suggested policy: the same accesses
#     now succeed as they did in the audit run, except the one suggest
#     refused to allow.

set -euo pipefail

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; }
comment() { sed 's/^/# /'; }

# The journal entries of msrguard's events carry this MESSAGE_ID; the unit
# file names it (one definition: packaging/systemd/msrguard-events.service).
UNIT=/usr/lib/systemd/system/msrguard-events.service
TRACE=/sys/kernel/tracing

trap 'rmmod msrguard 2>/dev/null || true' EXIT

# wait_for SECONDS CMD...: polls CMD once a second until it succeeds.
wait_for() {
	local left="$1"
	shift
	until "$@"; do
		left=$((left - 1))
		[ "$left" -gt 0 ] || return 1
		sleep 1
	done
}

# run_workload WORKLOAD: its one line per access (LIBKVM prints its random
# seed first, which differs from run to run).
run_workload() {
	"$1" | sed '/^Random seed: /d'
}

# trace_events: "MSR PC VALUE" of each msrguard trace event so far (hex, as
# the kernel printed them), sorted.
trace_events() {
	sed -n 's/.*Msr=\(0x[0-9a-f]*\) .*MsrValue=\(0x[0-9a-f]*\) .*Pc=\(0x[0-9a-f]*\) .*/\1 \3 \2/p' \
		"$TRACE/trace" | sort
}

phase_audit() {
	local deb="$1" start_ko="$2" workload="$3" outdir="$4"

	# 1. The package. The VM's /usr and /etc are overlays on a tmpfs without
	# xattrs, where overlayfs cannot rename a directory created in a merged
	# one (EXDEV), and dpkg installs directories by renaming them into place:
	# so the package's directories are made first; dpkg installs every file.
	dpkg-deb -c "$deb" | awk '$1 ~ /^d/ {print $NF}' | sed 's|^\./|/|' | xargs mkdir -p
	if dpkg -i "$deb" >"$outdir/dpkg.log" 2>&1 &&
		[ "$(dpkg-query -W -f '${Status}' msrguard)" = "install ok installed" ] &&
		/usr/bin/msrguard --version >/dev/null; then
		pass "dpkg -i $(basename "$deb"): installed, /usr/bin/msrguard runs"
	else
		comment <"$outdir/dpkg.log"
		fail "dpkg -i $(basename "$deb")"
		return
	fi
	local message_id exec_start
	message_id=$(sed -n 's/.*MESSAGE_ID=\([0-9a-f]\{32\}\).*/\1/p' "$UNIT" | head -n1)
	exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
	if [ -n "$message_id" ] && [ -n "$exec_start" ] &&
		out=$(systemd-analyze verify "$UNIT" 2>&1) && [ -z "$out" ]; then
		pass "the installed unit passes systemd-analyze verify; ExecStart=$exec_start"
	else
		echo "${out:-}" | comment
		fail "the installed unit $UNIT (systemd-analyze verify, MESSAGE_ID, ExecStart)"
	fi

	# 2. A real journald (not PID 1 here, so it opens its sockets itself).
	mkdir -p /run/systemd/journal /run/log/journal
	/lib/systemd/systemd-journald >"$outdir/journald.log" 2>&1 &
	if wait_for 20 test -S /run/systemd/journal/socket; then
		pass "systemd-journald runs"
	else
		comment <"$outdir/journald.log"
		fail "systemd-journald did not create its socket"
		return
	fi

	# 3. Audit mode, the unit's command forwarding.
	insmod "$start_ko" mode=audit || { fail "insmod $start_ko mode=audit"; return; }
	[ -d "$TRACE/events" ] || mount -t tracefs nodev "$TRACE"
	echo 1 >"$TRACE/events/msrguard/enable"
	$exec_start 2>"$outdir/forwarder.log" &
	local forwarder=$!
	run_workload "$workload" >"$outdir/audit.out" || { fail "workload under audit mode"; return; }
	comment <"$outdir/audit.out"
	if grep -q ' gp$' "$outdir/audit.out"; then
		fail "audit mode vetoed an access"
	else
		pass "audit mode: every access of the workload proceeds"
	fi

	# 4. Each event in the journal, as the kernel's trace event saw it.
	local want got n
	want=$(trace_events)
	n=$(echo "$want" | grep -c . || true)
	journal_events() {
		journalctl -o json MESSAGE_ID="$message_id" 2>/dev/null |
			jq -r '"\(.MSR) \(.PC) \(.MSR_VALUE)"' | sort
	}
	journal_has_all() { [ "$(journal_events | grep -c .)" -ge "$n" ]; }
	wait_for 20 journal_has_all || true
	kill "$forwarder" 2>/dev/null || true
	wait "$forwarder" 2>/dev/null || true
	got=$(journal_events)
	if [ "$n" -gt 0 ] && [ "$got" = "$want" ] &&
		echo "$got" | grep -q '^0xc0000102 0x[0-9a-f]* 0xffff888012345000$'; then
		pass "journald has the $n events as the trace event has them (MSR, PC, MSR_VALUE exact through jq, 0xffff888012345000 included)"
	else
		{ echo "trace:"; echo "$want"; echo "journal:"; echo "$got"; cat "$outdir/forwarder.log"; } | comment
		fail "journald's entries differ from the trace events"
	fi

	# 5. A second run, saved as records for suggest.
	run_workload "$workload" >/dev/null || { fail "second workload run"; return; }
	/usr/bin/msrguard events --raw >"$outdir/audit.records"
	local msrs
	msrs=$(/usr/bin/msrguard --device "$outdir/audit.records" events --json | jq -r .msr | sort -nu | xargs printf '%#x ')
	if [ -n "$msrs" ]; then
		pass "audit events saved as records: MSRs $msrs"
	else
		fail "no audit events saved in $outdir/audit.records"
	fi
}

phase_enforce() {
	local start_ko="$1" learned_ko="$2" workload="$3" outdir="$4" tool="$5"

	insmod "$start_ko" || { fail "insmod $start_ko"; return; }
	run_workload "$workload" >"$outdir/start.out" || true
	rmmod msrguard
	comment <"$outdir/start.out"
	local vetoed accesses
	vetoed=$(grep -c ' gp$' "$outdir/start.out" || true)
	accesses=$(grep -c . "$outdir/audit.out" || true)
	if [ "$accesses" -gt 0 ] && [ "$vetoed" -eq "$accesses" ] &&
		[ "$(grep -c . "$outdir/start.out")" -eq "$accesses" ]; then
		pass "the starting policy, enforcing, vetoes all $vetoed accesses of the workload"
	else
		fail "the starting policy did not veto every access of the workload"
	fi

	insmod "$learned_ko" || { fail "insmod $learned_ko"; return; }
	run_workload "$workload" >"$outdir/learned.out" || true
	comment <"$outdir/learned.out"
	# Every line as in the audit run, except the microcode write: suggest
	# must not have allowed it, so it is vetoed still.
	local want
	want=$(sed 's/^\(wrmsr 0x79 .* -> \).*/\1gp/' "$outdir/audit.out")
	if [ "$(cat "$outdir/learned.out")" = "$want" ]; then
		pass "the learned policy, enforcing: the workload sees what it saw in audit mode, the microcode write still vetoed"
	else
		{ echo "want:"; echo "$want"; } | comment
		fail "the learned policy changes what the workload sees"
	fi
	local events
	events=$("$tool" events --json)
	echo "$events" | comment
	if [ "$(echo "$events" | grep -c .)" -eq 1 ] &&
		[ "$(echo "$events" | jq -r '"\(.msr) \(.is_write) \(.access_status)"')" = "$((0x79)) true blocked-gp" ]; then
		pass "under the learned policy the only event is the vetoed microcode write"
	else
		fail "under the learned policy: events other than the microcode write's veto"
	fi
}

case "${1:-}" in
audit) shift; [ $# -eq 4 ] || { echo "usage: $0 audit DEB START_KO WORKLOAD OUTDIR" >&2; exit 2; }; phase_audit "$@" ;;
enforce) shift; [ $# -eq 5 ] || { echo "usage: $0 enforce START_KO LEARNED_KO WORKLOAD OUTDIR TOOL" >&2; exit 2; }; phase_enforce "$@" ;;
*) echo "usage: $0 audit|enforce ..." >&2; exit 2 ;;
esac
