#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Real guests, run inside the test VM (scripts/vm-run.sh): QEMU with KVM
# boots stock Debian kernels with a busybox initramfs
# (scripts/guest-kernels.sh prepares both), for each kernel
#   1. without msrguard (the baseline),
#   2. with msrguard.ko (default policy, enforce),
#   3. with a strict policy (the default one with reads of STRICT_MSRS
#      turned to "ignore", scripts/strict-guest-policy.sh),
# and checks that each boot reaches userspace with a clean log, that the
# default policy records zero events, and that the strict one records
# exactly its ignored reads; then, 4. and 5., the guest loads its own KVM
# (msrguard.guest_kvm), without and with msrguard: KVM's MSR list, which its
# init builds by probing each MSR with rdmsr_safe, must be the same (a guard
# only takes away); 6., the guest's VM gets the hardened profile before it
# runs (QEMU paused, `msrguard profile set --pid`), boots, and then moves
# each MSR the profile pins and clears EFER.NXE on every CPU, as a
# compromised kernel would: each write is vetoed, with one event each and
# none from the boot. kselftest TAP and its exit status: 0 passed, 1 failed,
# 4 none could run (each check a SKIP with the reason).
# When the default policy records events, one more boot in audit mode lists
# every access that policy objects to.
#
#   distro_guests.sh DEFAULT_KO STRICT_KO STRICT_MSRS TOOL INITRAMFS NAME=VMLINUZ...
#
# STRICT_MSRS: the MSRs whose reads the strict policy ignores, comma-separated.

set -euo pipefail

[ $# -ge 6 ] || { echo "usage: $0 DEFAULT_KO STRICT_KO STRICT_MSRS TOOL INITRAMFS NAME=VMLINUZ..." >&2; exit 2; }
DEFAULT_KO="$1" STRICT_KO="$2" STRICT_MSRS="$3" TOOL="$4" INITRAMFS="$5"
shift 5
KERNELS=("$@")

MARKER=MSRGUARD-GUEST-USERSPACE-OK
# A boot under nested TCG takes tens of seconds; a hung one must not hang the suite.
BOOT_TIMEOUT=240
BAD_LOG_RE='unchecked MSR access|Call Trace'
WORK=$(mktemp -d /tmp/msrguard-guests.XXXXXX)
# Set by bounded() when a process survives SIGKILL (see there).
host_stuck=""
# No rmmod when the host is stuck: it would wait for the stuck thread.
trap 'rm -rf "$WORK"; [ -n "$host_stuck" ] || rmmod msrguard 2>/dev/null || true' EXIT

n=0 passed=0 failed=0 skipped=0
ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $*"; }
skip() { n=$((n + 1)); skipped=$((skipped + 1)); echo "ok $n # SKIP $*"; }
comment() { sed 's/^/# /'; }

# Per kernel: baseline (2 checks), default policy (3), strict policy (3),
# the guest's own KVM (3), the hardened profile (4).
CHECKS_PER_KERNEL=15
HARDENED=$(cd "$(dirname "$0")/.." && pwd)/policy/profiles/hardened.toml
echo "TAP version 13"
echo "1..$((CHECKS_PER_KERNEL * ${#KERNELS[@]}))"

# Reasons the whole suite cannot run: every test is skipped with it.
why=""
modprobe kvm_amd 2>/dev/null || modprobe kvm_intel 2>/dev/null || true
# Under QEMU's TCG (the test VM) nested paging is unreliable: QEMU 7.2 has
# been seen to resume an L2 guest in the L1's BIOS or host state, with and
# without msrguard (selftests/kvm/storm_test.c), which can stop the whole test VM.
# These guests boot as fast with shadow paging here (34 s against 32 s).
if [ "$(systemd-detect-virt --vm 2>/dev/null)" = qemu ] &&
	[ "$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null)" = Y ]; then
	echo "# under QEMU TCG: kvm_amd reloaded with npt=0 (TCG's nested paging is unreliable)"
	{ modprobe -r kvm_amd && modprobe kvm_amd npt=0; } || true
fi
if [ ! -c /dev/kvm ]; then
	why="no /dev/kvm in the test VM (kvm_amd/kvm_intel did not load)"
elif [ "$(systemd-detect-virt --vm 2>/dev/null)" = qemu ] &&
	[ "$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null)" = Y ]; then
	why="under QEMU TCG, kvm_amd could not be reloaded with npt=0"
elif ! command -v qemu-system-x86_64 >/dev/null; then
	why="qemu-system-x86_64 not found"
elif [ -e /sys/module/msrguard ]; then
	why="msrguard is already loaded: the baseline would not be one"
fi
for f in "$DEFAULT_KO" "$STRICT_KO" "$TOOL" "$INITRAMFS"; do
	[ -n "$why" ] || [ -r "$f" ] || why="missing $f"
done
if [ -n "$why" ]; then
	for _ in $(seq "$((CHECKS_PER_KERNEL * ${#KERNELS[@]}))"); do skip "$why"; done
	exit 4
fi

# bounded LIMIT CMD...: runs CMD for at most LIMIT seconds; returns its
# status, 124 if it had to be killed, 125 if it survived SIGKILL: then it is
# stuck in the kernel, its threads' kernel stacks and the kernel log's tail
# are printed (on stderr, which the suite's output includes; stdout may be
# CMD's), and the host counts as stuck (nothing more may run: an rmmod
# would wait for the stuck thread too). Not timeout(1), which waits for such
# a process forever.
bounded() {
	local limit="$1" start=$SECONDS pid rc=0 t
	shift
	"$@" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - start)) -lt "$limit" ]; do
		sleep 0.2
	done
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" || rc=$?
		return "$rc"
	fi
	kill -KILL "$pid" 2>/dev/null || true
	for _ in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || { { wait "$pid"; } 2>/dev/null || true; return 124; }
		sleep 1
	done
	host_stuck="$1 (pid $pid) survived SIGKILL"
	{
		echo "# $host_stuck: stuck in the kernel. Its threads:"
		for t in /proc/"$pid"/task/*; do
			echo "# thread ${t##*/} ($(cat "$t/comm" 2>/dev/null)), $(grep '^State' "$t/status" 2>/dev/null)"
			comment 2>/dev/null <"$t/stack" || true
		done
		echo "# the kernel log's last lines:"
		dmesg | tail -n 80 | comment
	} >&2
	return 125
}

# boot VMLINUZ LOG: boots the guest to its /init, which prints MARKER and
# powers off. Returns QEMU's exit status (124 on timeout).
# -xsave: under TCG nesting, the XSAVE sizes in the CPUID KVM passes on are
# inconsistent, and stock kernels WARN about it ("XSAVE consistency
# problem"), without msrguard too. loglevel=5: warnings and worse reach the
# console (the unchecked-MSR message and traces are warnings); every console
# byte costs exits, so the info lines would only slow the boot down.
QEMU_EXTRA=()
run_qemu() {
	exec qemu-system-x86_64 -enable-kvm -cpu host,-xsave "${QEMU_EXTRA[@]}" \
		-smp 2 -m 512 -nodefaults -nographic -serial stdio -no-reboot \
		-kernel "$1" -initrd "$INITRAMFS" \
		-append "console=ttyS0 panic=-1 loglevel=5${3:+ $3}" \
		</dev/null >"$2" 2>&1
}
# boot VMLINUZ LOG [KERNEL_ARGS]. A guest kernel that dies before user
# space gets one more boot: this step runs in QEMU's multi-threaded TCG,
# which can run stale code after a kernel patches its own text (the oops
# at a jump label site seen without msrguard too; testing.rst). A failure
# msrguard causes is deterministic and fails the second boot as well; the
# retry is printed, with the first death's oops.
boot() {
	local start=$SECONDS rc=0
	[ -z "$host_stuck" ] || return 1
	bounded "$BOOT_TIMEOUT" run_qemu "$1" "$2" "${3:-}" || rc=$?
	echo "# boot took $((SECONDS - start))s, qemu exit $rc"
	if died_before_userspace "$2"; then
		start=$SECONDS rc=0
		bounded "$BOOT_TIMEOUT" run_qemu "$1" "$2" "${3:-}" || rc=$?
		echo "# second boot took $((SECONDS - start))s, qemu exit $rc"
	fi
	return "$rc"
}

# died_before_userspace LOG: the guest kernel panicked before user space
# (and the host is not stuck): prints its first oops, moves LOG aside to
# LOG.died for the boot once more, and says so.
died_before_userspace() {
	if grep -q "^$MARKER" "$1" || ! grep -q 'Kernel panic - not syncing' "$1" ||
		[ -n "$host_stuck" ]; then
		return 1
	fi
	echo "# the guest kernel died before user space; its oops:"
	grep -m1 -A3 -E 'BUG:|Oops|general protection|invalid opcode|unable to handle|double fault' \
		"$1" | comment || true
	echo "# booting it once more (QEMU's multi-threaded TCG and patched kernel text, testing.rst)"
	mv "$1" "$1.died"
}

# check_boot LABEL RC LOG: the guest reached userspace, and its log is clean.
check_boot() {
	local label="$1" rc="$2" log="$3"
	if [ "$rc" -eq 0 ] && grep -q "^$MARKER" "$log"; then
		ok "$label: reaches userspace"
	else
		echo "# qemu exit $rc, no '$MARKER'; the guest's first oops, if any, then its last lines:"
		grep -m1 -B3 -A24 -E 'BUG:|Oops|general protection|invalid opcode|unable to handle|double fault' \
			"$log" | comment || true
		tail -n 30 "$log" | comment
		not_ok "$label: reaches userspace"
	fi
	if grep -Eq "$BAD_LOG_RE" "$log"; then
		grep -E -A12 "$BAD_LOG_RE" "$log" | head -n 60 | comment
		not_ok "$label: log has no unchecked MSR access and no Call Trace"
	else
		ok "$label: log has no unchecked MSR access and no Call Trace"
	fi
}

# The events pending on the device, one JSON object per line.
read_events() { "$TOOL" events --json; }

# One line per distinct access in a file of JSON events, with its count:
# "0xc0010055 MSR_K8_INT_PENDING_MSG read blocked-gp x1". One awk pass:
# thousands of events and a process per event would take minutes in the VM.
summarize() {
	awk '{
		msr = name = w = st = ""
		if (match($0, /"msr":[0-9]+/)) msr = substr($0, RSTART + 6, RLENGTH - 6)
		if (match($0, /"msr_name":"[^"]*"/)) name = substr($0, RSTART + 12, RLENGTH - 13)
		if (match($0, /"is_write":(true|false)/)) w = substr($0, RSTART + 11, RLENGTH - 11)
		if (match($0, /"access_status":"[^"]*"/)) st = substr($0, RSTART + 17, RLENGTH - 18)
		print msr, (name == "" ? "-" : name), (w == "true" ? "write" : "read"), st
	}' "$1" | sort | uniq -c | while read -r count msr name rw status; do
		printf '%#x %s %s %s x%s\n' "$msr" "$name" "$rw" "$status" "$count"
	done | sort
}

# A number field of a one-line JSON object (the counters).
field() { sed -nE "s/.*\"$1\":([0-9]+).*/\1/p" <<<"$2"; }

# with_msrguard KO PARAMS VMLINUZ LOG EVENTS [KERNEL_ARGS]: boots with KO
# loaded, saves the events it recorded (EVENTS) and its counters
# (EVENTS.stats), unloads it. Returns the boot's status.
with_msrguard() {
	local ko="$1" params="$2" vmlinuz="$3" log="$4" events="$5" args="${6:-}" rc=0
	: >"$log"
	: >"$events"
	echo '{}' >"$events.stats"
	[ -z "$host_stuck" ] || return 1
	# shellcheck disable=SC2086 # PARAMS is a list of module parameters
	bounded 60 insmod "$ko" $params || { echo "# insmod $ko $params failed"; return 1; }
	boot "$vmlinuz" "$log" "$args" || rc=$?
	[ -z "$host_stuck" ] || return "$rc"
	bounded 60 "$TOOL" events --json >"$events" || { echo "# reading the events failed"; rc=1; }
	bounded 60 "$TOOL" stats --json >"$events.stats" || { echo "# reading the counters failed"; rc=1; }
	bounded 60 rmmod msrguard || { echo "# rmmod msrguard failed"; rc=1; }
	return "$rc"
}

# The hardened profile's pins and set-only bits as guest-pin-attack's
# specs ("pin:0xc0000082,...,set_only:0xc0000080:0x800"), from its file.
hardened_specs() {
	awk '
		/^\[\[pin\]\]/ { t = "pin"; next }
		/^\[\[set_only\]\]/ { t = "set_only"; next }
		/^\[/ { t = ""; next }
		t != "" && $1 == "index" { idx = $3; if (t == "pin") { print "pin:" idx; t = "" } }
		t == "set_only" && $1 == "bits" { print "set_only:" idx ":" $3; t = "" }
	' "$HARDENED" | paste -sd,
}

# hardened_boot KO VMLINUZ LOG EVENTS: hardened_attempt, and once more
# (from a fresh load of KO, so no event or pin of the first stays) if the
# guest kernel died before user space, as boot() does.
hardened_boot() {
	local rc=0
	hardened_attempt "$@" || rc=$?
	if died_before_userspace "$3"; then
		rc=0
		hardened_attempt "$@" || rc=$?
	fi
	return "$rc"
}

# hardened_attempt KO VMLINUZ LOG EVENTS: boots with KO loaded and QEMU
# paused (-S) until its VM has the hardened profile (`msrguard profile set
# --pid`, retried until QEMU made its VM), then "cont" on its monitor; the
# guest runs guest-pin-attack. Saves the events, unloads KO. Returns the
# boot's status.
hardened_attempt() {
	local ko="$1" vmlinuz="$2" log="$3" events="$4" port=$((20000 + RANDOM % 20000)) rc=0
	local start
	: >"$log"
	: >"$events"
	[ -z "$host_stuck" ] || return 1
	bounded 60 insmod "$ko" || { echo "# insmod $ko failed"; return 1; }
	rm -f "$WORK/qemu.pid"
	QEMU_EXTRA=(-S -pidfile "$WORK/qemu.pid" -monitor "tcp:127.0.0.1:$port,server,nowait")
	(
		for _ in $(seq 300); do
			[ -s "$WORK/qemu.pid" ] &&
				"$TOOL" profile set --pid "$(cat "$WORK/qemu.pid")" hardened >"$WORK/profile-set.log" 2>&1 &&
				break
			sleep 0.1
		done
		# The monitor takes "cont" once the profile is set (or never: the
		# boot times out); it may not listen yet, and reads a command
		# only while the connection stays open: ask until it says running.
		grep -q 'profile hardened' "$WORK/profile-set.log" 2>/dev/null || exit 0
		for _ in $(seq 100); do
			(exec 3<>"/dev/tcp/127.0.0.1/$port" &&
				printf 'cont\ninfo status\n' >&3 && timeout 3 cat <&3) >"$WORK/monitor.log" 2>&1
			grep -q 'VM status: running' "$WORK/monitor.log" && break
			sleep 0.2
		done
	) &
	start=$SECONDS
	bounded "$BOOT_TIMEOUT" run_qemu "$vmlinuz" "$log" "msrguard.pin_attack=$(hardened_specs)" || rc=$?
	wait
	QEMU_EXTRA=()
	echo "# boot took $((SECONDS - start))s, qemu exit $rc; $(cat "$WORK/profile-set.log" 2>/dev/null)"
	[ -z "$host_stuck" ] || return "$rc"
	bounded 60 "$TOOL" events --json >"$events" || { echo "# reading the events failed"; rc=1; }
	bounded 60 rmmod msrguard || { echo "# rmmod msrguard failed"; rc=1; }
	return "$rc"
}

# The strict policy's expectation: one line per ignored read, sorted.
expected_strict() {
	tr ',' '\n' <<<"$STRICT_MSRS" | while read -r m; do printf '%#x read blocked-ignored\n' "$m"; done | sort
}

for entry in "${KERNELS[@]}"; do
	name="${entry%%=*}" vmlinuz="${entry#*=}"
	echo "# ---- guest kernel $name ($vmlinuz)"
	if [ ! -r "$vmlinuz" ]; then
		for _ in $(seq "$CHECKS_PER_KERNEL"); do skip "$name: missing $vmlinuz"; done
		continue
	fi
	log="$WORK/$name"

	rc=0
	: >"$log.base"
	boot "$vmlinuz" "$log.base" || rc=$?
	check_boot "$name without msrguard" "$rc" "$log.base"

	[ -z "$host_stuck" ] || break

	rc=0
	with_msrguard "$DEFAULT_KO" "" "$vmlinuz" "$log.default" "$log.default.events" || rc=$?
	check_boot "$name with msrguard (default policy)" "$rc" "$log.default"
	if [ "$rc" -eq 0 ] && [ ! -s "$log.default.events" ] &&
		[ "$(field generated "$(cat "$log.default.events.stats")")" = 0 ]; then
		ok "$name with msrguard (default policy): zero events"
	else
		comment <"$log.default.events.stats"
		summarize "$log.default.events" | comment
		not_ok "$name with msrguard (default policy): zero events"
		# What else the default policy objects to, beyond what the
		# vetoes above let the guest get to.
		echo "# audit mode, default policy: every access it would veto:"
		with_msrguard "$DEFAULT_KO" "mode=audit" "$vmlinuz" "$log.audit" "$log.audit.events" ||
			echo "# (the audit boot failed)"
		summarize "$log.audit.events" | comment
	fi

	[ -z "$host_stuck" ] || break

	rc=0
	with_msrguard "$STRICT_KO" "" "$vmlinuz" "$log.strict" "$log.strict.events" || rc=$?
	check_boot "$name with msrguard (strict policy, ignored reads of $STRICT_MSRS)" "$rc" "$log.strict"
	got=$(summarize "$log.strict.events" | awk '{print $1, $3, $4}')
	if [ "$got" = "$(expected_strict)" ]; then
		summarize "$log.strict.events" | comment
		ok "$name with msrguard (strict policy): exactly the ignored reads recorded"
	else
		echo "# expected:"
		expected_strict | comment
		echo "# recorded:"
		summarize "$log.strict.events" | comment
		not_ok "$name with msrguard (strict policy): exactly the ignored reads recorded"
	fi
	[ -z "$host_stuck" ] || break

	# The guest's own KVM (msrguard.guest_kvm: distro-guest-init loads it)
	# builds its MSR list by probing each MSR with rdmsr_safe: a guard that
	# only takes away leaves every probe's outcome, so the list, as it is.
	# (Ignored reads KVM answers are recorded: the probe still succeeds.)
	rc=0
	: >"$log.kvm"
	boot "$vmlinuz" "$log.kvm" msrguard.guest_kvm || rc=$?
	without=$(tr -d '\r' <"$log.kvm" | grep -m1 '^MSRGUARD-GUEST-MSRS' || true)
	count=${without#MSRGUARD-GUEST-MSRS }
	if [ "$rc" -eq 0 ] && [ -n "$without" ]; then
		ok "$name: the guest's own KVM loads and lists its ${count%%:*} MSRs, without msrguard"
	else
		tail -n 20 "$log.kvm" | comment
		not_ok "$name: the guest's own KVM loads and lists its MSRs, without msrguard"
	fi
	[ -z "$host_stuck" ] || break
	rc=0
	with_msrguard "$DEFAULT_KO" "" "$vmlinuz" "$log.kvm.default" "$log.kvm.default.events" \
		msrguard.guest_kvm || rc=$?
	with=$(tr -d '\r' <"$log.kvm.default" | grep -m1 '^MSRGUARD-GUEST-MSRS' || true)
	summarize "$log.kvm.default.events" | comment
	if [ "$rc" -eq 0 ] && [ -n "$with" ]; then
		ok "$name: the guest's own KVM loads and lists its MSRs, with msrguard (default policy)"
	else
		tail -n 20 "$log.kvm.default" | comment
		not_ok "$name: the guest's own KVM loads and lists its MSRs, with msrguard (default policy)"
	fi
	if [ -n "$without" ] && [ "$with" = "$without" ]; then
		ok "$name: the guest KVM's MSR list is the same with msrguard as without"
	else
		echo "# without: $without"
		echo "# with:    $with"
		not_ok "$name: the guest KVM's MSR list is the same with msrguard as without"
	fi
	[ -z "$host_stuck" ] || break

	# The hardened profile: a clean boot, then each pinned write vetoed.
	rc=0
	hardened_boot "$DEFAULT_KO" "$vmlinuz" "$log.hardened" "$log.hardened.events" || rc=$?
	check_boot "$name with msrguard (hardened profile)" "$rc" "$log.hardened"
	cpus=$(tr -d '\r' <"$log.hardened" | grep -c '^MSRGUARD-GUEST-PIN cpu=' || true)
	specs=$(hardened_specs | tr , '\n' | wc -l)
	vetoed=$(tr -d '\r' <"$log.hardened" | grep -c '^MSRGUARD-GUEST-PIN cpu=[0-9]* msr=0x[0-9a-f]* vetoed$' || true)
	# Every write on both CPUs (-smp 2), and the attack ran to its end (a
	# write that got through may kill the guest before it says more).
	if [ "$specs" -gt 1 ] && [ "$cpus" = $((2 * specs)) ] && [ "$vetoed" = "$cpus" ] &&
		tr -d '\r' <"$log.hardened" | grep -q '^MSRGUARD-GUEST-PIN-ATTACK done'; then
		ok "$name with msrguard (hardened profile): all $vetoed writes of pinned MSRs and EFER.NXE vetoed ($specs MSRs, $((cpus / specs)) CPUs)"
	else
		tr -d '\r' <"$log.hardened" | grep '^MSRGUARD-GUEST-PIN' | comment || true
		not_ok "$name with msrguard (hardened profile): every write of a pinned MSR and EFER.NXE vetoed"
	fi
	# One event per write, each pinned or set-only and naming the profile;
	# none from the boot (the profile and the default policy let it be).
	others=$(grep -vc '"profile":"hardened".*"reason":"\(pinned\|set-only\)"' "$log.hardened.events" || true)
	if [ "$vetoed" -gt 0 ] && [ "$(wc -l <"$log.hardened.events")" = "$vetoed" ] && [ "$others" = 0 ]; then
		ok "$name with msrguard (hardened profile): one event per vetoed write, reason pinned or set-only, none from the boot"
	else
		summarize "$log.hardened.events" | comment
		not_ok "$name with msrguard (hardened profile): one event per vetoed write, reason pinned or set-only, none from the boot"
	fi
	[ -z "$host_stuck" ] || break
done
planned=$((CHECKS_PER_KERNEL * ${#KERNELS[@]}))
while [ -n "$host_stuck" ] && [ "$n" -lt "$planned" ]; do
	not_ok "not run: $host_stuck"
done

echo "# Totals: pass:$passed fail:$failed skip:$skipped"
[ "$failed" -eq 0 ]
