#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs every msrguard test: sets up if needed, host `cargo test`, builds the
# module and the VM suite, and runs the suite inside the test VM.
#
#   scripts/test.sh                 # every step, in order
#   scripts/test.sh --list          # the steps, one per line with what it runs
#   scripts/test.sh --only STEP[,STEP...]
#                                   # those steps (and the build they need)
#
# Exit status: non-zero if anything failed.

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

# The steps: name and what it does. After the build they run in two lanes,
# one per host core: most VM steps keep one core busy (QEMU's single TCG
# thread, Bochs), so the background lane (side_lane) runs beside the main
# lane's steps. The real guests' VM runs two TCG threads; it ends the
# background lane, so that it shares the cores with the main lane's end
# rather than running alone after it. KVM's selftests come before that in
# the main lane: some wait for IPIs with a busy loop (hyperv_ipi), which
# three TCG threads on two cores made fail. Each lane keeps this order.
# The host steps run after the build when a VM step is selected, before
# it otherwise.
steps=(
	"host:host tests (cargo test)"
	"policy:the default policy against the KVM of the kernel tree"
	"hooks:hook points out of line, prototypes (check-hooks.sh)"
	"vm-runner:the VM runner's own test (a silent death, patched kernel text)"
	"kvm-selftests:KVM's own selftests and kvm-unit-tests' syscall test without and with msrguard"
	"libkvm:libkvm suite in the VM (real-mode tables included, lock_test last)"
	"operator:the operator's rollout, the in-tree build, DKMS"
	"vmx:the VMX suite under Bochs (background lane)"
	"storm:storm and interface fuzz, in a boot of their own (background lane)"
	"guests:stock Debian kernels as KVM guests (background lane)"
	"bench:the host lookup benchmark (figures only)"
)
# About as long as the main lane after the build (in a clean-clone run:
# VMX 250 s + storm 101 s + the real guests 610 s beside the main lane,
# against 900 s).
side_lane=(vmx storm guests)
step_names=()
for s in "${steps[@]}"; do step_names+=("${s%%:*}"); done

only=""
while [ $# -gt 0 ]; do
	case "$1" in
	--list)
		for s in "${steps[@]}"; do printf '%-14s %s\n' "${s%%:*}" "${s#*:}"; done
		exit 0 ;;
	--only) [ $# -ge 2 ] && [ -n "$2" ] || die "--only needs a step (scripts/test.sh --list)"
		only="$2"; shift 2 ;;
	--only=?*) only="${1#--only=}"; shift ;;
	*) die "usage: scripts/test.sh [--list] [--only STEP[,STEP...]]" ;;
	esac
done
declare -A selected=()
if [ -n "$only" ]; then
	IFS=, read -r -a wanted <<<"$only"
	for w in "${wanted[@]}"; do
		[[ " ${step_names[*]} " == *" $w "* ]] || die "no step '$w' (scripts/test.sh --list)"
		selected[$w]=1
	done
else
	for w in "${step_names[@]}"; do selected[$w]=1; done
fi
wants() { [ -n "${selected[$1]:-}" ]; }

total=$SECONDS
# Each VM step's log name (LOG_DIR/NAME.log) and exit status, in order.
step_logs=() step_rcs=()
ran() { step_logs+=("$1"); step_rcs+=("$2"); }
# Each step's time, for the closing line.
times=()
timed() { times+=("$1 $2s"); }
t=$SECONDS
scripts/setup.sh >/dev/null
timed set-up $((SECONDS - t))
KDIR="$(kernel_tree)"

# ---- The steps --------------------------------------------------------

step_host() {
	msg "host tests: cargo test"
	# The KVM extraction test reads the cached kernel tree (it prints SKIP without one).
	if ! MSRGUARD_KDIR="$KDIR" cargo test --workspace --locked >"$LOG_DIR/cargo-test.log" 2>&1; then
		tail -n 60 "$LOG_DIR/cargo-test.log" >&2
		die "cargo test failed (full log: $LOG_DIR/cargo-test.log)"
	fi
	grep -E '^test result' "$LOG_DIR/cargo-test.log" | awk '{p+=$4; f+=$6} END {printf "cargo test: %d passed, %d failed\n", p, f}'
}

step_policy() {
	msg "default policy against KVM: every MSR KVM handles has an entry, no dead entries; the profiles over it"
	[ -n "$KDIR" ] || die "no built kernel tree to compare the default policy with"
	local profiles=() p
	for p in policy/profiles/*.toml; do [ ! -e "$p" ] || profiles+=(--profile "$p"); done
	cargo run --quiet --locked --release -p msrguard -- check --against-kvm "$KDIR" \
		${profiles[@]+"${profiles[@]}"} policy/default.toml ||
		die "policy/default.toml or a profile over it does not check (against the MSRs KVM handles in $KDIR)"
}

step_hooks() {
	msg "hook points: every hooked KVM function out of line (objdump)"
	scripts/check-hooks.sh >"$LOG_DIR/check-hooks.log" || { cat "$LOG_DIR/check-hooks.log"; die "a hook point is inlined or missing"; }
	grep -c '^ok' "$LOG_DIR/check-hooks.log" | xargs printf 'check-hooks: %s checks passed\n'
}

# The module variants, the tool, the suites and the Debian package: what
# every VM step needs. The background lane starts as soon as what it needs
# is built (the default and test-policy modules, the libkvm programs, the
# tool); lint and packaging run beside it.
step_build() {
	msg "building msrguard.ko and the VM suite"
	# Each module variant once, into its own directory (lib.sh: build_module):
	# the default policy (build_all), the suite's test policy
	# (selftests/test-policy.toml), the real-guest tests' strict policy
	# (derived from the default one).
	build_testpolicy -s >/dev/null || die "module build (test policy) failed"
	build_all
	KO=$(module_ko default) TESTPOLICY_KO=$(module_ko testpolicy)
	scripts/strict-guest-policy.sh selftests/guest-strict-policy.toml
	build_module gueststrict -s POLICY=selftests/guest-strict-policy.toml >/dev/null || die "module build (strict guest policy) failed"
	GUESTSTRICT_KO=$(module_ko gueststrict)
	# The background lane gets copies: lint and the packaging check below
	# rebuild the default module in place (make install).
	lane_files="$MSRGUARD_ROOT/build/side-lane"
	rm -rf "$lane_files"
	install -D -m 0644 "$KO" "$lane_files/default/msrguard.ko"
	install -D -m 0644 "$TESTPOLICY_KO" "$lane_files/testpolicy/msrguard.ko"
	install -D -m 0644 "$GUESTSTRICT_KO" "$lane_files/gueststrict/msrguard.ko"
	install -D -m 0755 "$TOOL" "$lane_files/msrguard"
	side_start

	scripts/lint.sh >"$LOG_DIR/lint.log" 2>&1 || { cat "$LOG_DIR/lint.log"; die "lint failed (clippy or rustfmt)"; }
	grep '^ok' "$LOG_DIR/lint.log"

	msg "packaging: systemd unit (systemd-analyze verify), modprobe.d, modules-load.d"
	scripts/check-packaging.sh "$TOOL" "$KO" || die "packaging check failed"
	msg "Debian package of the tool and the unit (cargo-deb), unpacked and checked"
	DEB=$(scripts/build-deb.sh | tee "$LOG_DIR/build-deb.log" | tail -n 1) ||
		die "Debian package build or check failed (log: $LOG_DIR/build-deb.log)"
	sed '$d' "$LOG_DIR/build-deb.log"
}

step_vm_runner() {
	msg "VM runner: a guest that dies without a word leaves its evidence; patched kernel text runs"
	runner_rc=0
	scripts/test-vm-runner.sh | tee "$LOG_DIR/vm-runner.log" || runner_rc=$?
	ran vm-runner "$runner_rc"
}

step_libkvm() {
	# The guard table as KVM selftests on the tree's LIBKVM (selftests/kvm/):
	# exit path, emulator, nested L2 through an L1 guest hypervisor.
	msg "libkvm suite (selftests/kvm: guard table on every path, nested SVM)"
	libkvm_rc=0
	scripts/vm-run.sh --timeout 900 --name libkvm --append "kvm.force_emulation_prefix=1" -- \
		selftests/kvm/run.sh "$KO" "$TESTPOLICY_KO" "$TOOL" |
		tee "$LOG_DIR/vm-libkvm.log" || libkvm_rc=$?
	ran vm-libkvm "$libkvm_rc"
}

step_operator() {
	# The operator's path: the rollout (Debian package in the VM, journald,
	# audit -> suggest -> enforce), then msrguard built inside the kernel tree
	# (CONFIG_MSRGUARD=m) with realmode_test and image_test run against that
	# build.
	msg "operator's rollout (VM): dpkg -i, journald, audit -> policy suggest -> enforce"
	op_rc=0
	scripts/test-operator.sh "$DEB" "$TOOL" | tee "$LOG_DIR/operator.log" || op_rc=$?
	ran operator "$op_rc"
	msg "in-tree: msrguard as drivers/virt/msrguard (CONFIG_MSRGUARD=m), real-mode and image tests against it"
	intree_rc=0
	scripts/test-in-tree.sh | tee "$LOG_DIR/in-tree.log" || intree_rc=$?
	ran in-tree "$intree_rc"
	msg "DKMS: packaging/dkms/dkms.conf built by dkms, the module it made loaded in the VM"
	dkms_rc=0
	scripts/test-dkms.sh | tee "$LOG_DIR/dkms.log" || dkms_rc=$?
	ran dkms "$dkms_rc"
}

step_storm() {
	# Storm and interface fuzz: a boot of their own (a flood and random
	# operations should not share a boot with the tests they could
	# disturb); each loads its own msrguard instance.
	msg "VM storm (two VMs x two vCPUs, one flooding vetoed accesses, reader absent, slow and fast) and interface fuzz"
	storm_rc=0
	scripts/vm-run.sh --timeout 900 --name storm -- selftests/kvm/run.sh --only storm_test,fuzz_test \
		"$KO" "$TESTPOLICY_KO" "$TOOL" | tee "$LOG_DIR/vm-storm.log" || storm_rc=$?
	ran vm-storm "$storm_rc"
}

step_guests() {
	# Stock Debian kernels as KVM guests, in a VM of their own (a failure to
	# fetch them counts as a failed test, not a skip). In QEMU's default
	# multi-threaded TCG: in one thread (vm-run.sh), which switches vCPUs
	# every 100 ms, most nested boots did not reach user space in 240 s
	# (and with one vCPU, a guest loading its own KVM hung).
	msg "real guests: stock Debian kernels under KVM, without and with msrguard"
	guest_rc=0
	if guest_args=$(scripts/guest-kernels.sh); then
		mapfile -t guest_args <<<"$guest_args"
		MSRGUARD_VM_TCG_THREAD=multi scripts/vm-run.sh --timeout 1200 -- \
			selftests/distro_guests.sh "$KO" \
			"$GUESTSTRICT_KO" "$(IFS=,; echo "${GUEST_STRICT_IGNORE_READS[*]}")" \
			"$TOOL" "${guest_args[@]}" | tee "$LOG_DIR/vm-guests.log" || guest_rc=$?
	else
		guest_rc=$?
		echo "real guests: the guest kernels or initramfs could not be prepared" | tee "$LOG_DIR/vm-guests.log" >&2
	fi
	ran vm-guests "$guest_rc"
}

step_kvm_selftests() {
	# KVM's own selftests judge compatibility: each outcome must be the same
	# without and with msrguard, or an intended veto listed in
	# selftests/kvm-selftests-expected-diffs.txt. kvm-unit-tests' syscall
	# test in the same boot: the same outcomes (its source is in no package
	# registry: without a checkout it is a SKIP, which says so).
	kvm_rc=0 kut_rc=0 kut_flat=""
	: >"$LOG_DIR/kvm-selftests.log"
	if ! kut_flat=$(scripts/build-kvm-unit-tests.sh 2>"$LOG_DIR/kvm-unit-tests.why"); then
		kut_rc=$? kut_flat=""
		[ "$kut_rc" -eq 4 ] || { cat "$LOG_DIR/kvm-unit-tests.why" >&2; kvm_rc=1; }
		printf 'TAP version 13\n1..0 # SKIP %s\n' "$(tail -n 1 "$LOG_DIR/kvm-unit-tests.why")" |
			tee -a "$LOG_DIR/kvm-selftests.log"
	fi
	if kvm_st=$(scripts/build-kvm-selftests.sh); then
		msg "KVM selftests and kvm-unit-tests' syscall test without and with msrguard (VM)"
		# shellcheck disable=SC2016 # expanded by the VM's bash
		scripts/vm-run.sh --timeout 1500 --name kvm-selftests --append "kvm.force_emulation_prefix=1" -- \
			bash -c 'rc=0; selftests/kvm-selftests-compare.sh "$3" "$2" "$4" "$5" || rc=$?
				if [ -n "$1" ]; then selftests/kvm-unit-tests-compare.sh "$1" "$2" || rc=$((rc ? rc : $?)); fi
				exit "$rc"' kvm-tests "$kut_flat" "$KO" "$kvm_st" \
			"$MSRGUARD_ROOT/selftests/kvm-selftests-expected-diffs.txt" "$TOOL" |
			tee -a "$LOG_DIR/kvm-selftests.log" || kvm_rc=$?
	else
		echo "FAILED: KVM selftests build" >&2
		kvm_rc=1
	fi
	ran kvm-selftests "$kvm_rc"
}

# Intel VMX: QEMU's TCG has none, Bochs emulates it (scripts/test-vmx.sh
# on scripts/bochs-run.sh: guard_test's table, the real-mode tables, the
# RIP from the VMCS, the VMX intercept hook, nested VMX with MSR-load
# lists). Exit 4 is its SKIP (Bochs could not be installed or started). Its stderr (a timeout's console tail repeats
# result lines) is shown, not counted.
step_vmx() {
	msg "VMX suite (Bochs: Intel VMX with EPT, KVM inside)"
	vmx_rc=0
	scripts/test-vmx.sh --timeout 1200 "$KO" "$TESTPOLICY_KO" \
		>"$LOG_DIR/vmx-suite.log" 2>"$LOG_DIR/vmx-suite.stderr" || vmx_rc=$?
	cat "$LOG_DIR/vmx-suite.log"
	cat "$LOG_DIR/vmx-suite.stderr" >&2
	ran vmx-suite "$vmx_rc"
}

step_bench() {
	# Benchmarks print figures; they never fail the run.
	# Per-exit costs are measured deterministically (QEMU icount, test and
	# production kernels) by scripts/bench.sh, not here: wall-clock timing under
	# TCG is noise.
	msg "benchmarks (figures only; exit costs: scripts/bench.sh)"
	cargo run --quiet --locked --release -p msrguard-policy --bin msrguard-lookup-bench -- policy/default.toml || warn "host lookup benchmark failed"
}

# ---- Running them --------------------------------------------------------

# The background lane: a process group of its own (killed if this script
# ends first), its output in LOG_DIR/side-lane.out until it is joined, its
# steps' logs, statuses and times handed back in LOG_DIR/side-lane.results.
side_pid=
side_start() {
	local names=() n
	for n in "${side_lane[@]}"; do wants "$n" && names+=("$n"); done
	[ ${#names[@]} -gt 0 ] || return 0
	msg "background lane: ${names[*]} (output shown when it ends)"
	rm -f "$LOG_DIR/side-lane.results"
	side_started=$SECONDS
	set -m
	(
		trap - EXIT TERM INT HUP
		KO="$lane_files/default/msrguard.ko" TESTPOLICY_KO="$lane_files/testpolicy/msrguard.ko"
		GUESTSTRICT_KO="$lane_files/gueststrict/msrguard.ko" TOOL="$lane_files/msrguard"
		# Handed back as each step ends: a step that dies keeps the others'.
		ran() { echo "ran $1 $2" >&3; }
		timed() { echo "timed $1 $2" >&3; }
		for n in "${names[@]}"; do
			t=$SECONDS
			"step_${n//-/_}"
			timed "$n" $((SECONDS - t))
		done
	) </dev/null >"$LOG_DIR/side-lane.out" 2>&1 3>"$LOG_DIR/side-lane.results" &
	side_pid=$!
	set +m
	# bash runs no EXIT trap when a TERM reaches it alone: both stop the
	# lane. A signal to this script alone is handled once its foreground
	# step ends (timeout(1) and Ctrl-C signal the group: at once).
	trap 'kill -TERM -- -"$side_pid" 2>/dev/null || true' EXIT
	trap 'kill -TERM -- -"$side_pid" 2>/dev/null || true; exit 143' TERM
	trap 'kill -TERM -- -"$side_pid" 2>/dev/null || true; exit 130' INT
	trap 'kill -TERM -- -"$side_pid" 2>/dev/null || true; exit 129' HUP
}
side_join() {
	[ -n "$side_pid" ] || return 0
	msg "background lane: waiting for it ($((SECONDS - side_started))s so far)"
	local rc=0 kind a b
	wait "$side_pid" || rc=$?
	trap - EXIT TERM INT HUP
	side_pid=
	cat "$LOG_DIR/side-lane.out"
	while read -r kind a b; do
		case "$kind" in
		ran) ran "$a" "$b" ;;
		timed) timed "$a" "$b" ;;
		esac
	done <"$LOG_DIR/side-lane.results"
	# A lane that ended early (a step died) fails the run.
	if [ "$rc" -ne 0 ]; then
		echo "background lane: ended with status $rc" | tee "$LOG_DIR/side-lane.log" >&2
		ran side-lane "$rc"
	fi
	timed background-lane $((SECONDS - side_started))
}

for name in "${step_names[@]}"; do
	wants "$name" || continue
	case "$name" in host | policy | hooks | bench) continue ;; esac
	t=$SECONDS
	step_build
	timed build $((SECONDS - t))
	break
done
for name in "${step_names[@]}"; do
	wants "$name" || continue
	[[ " ${side_lane[*]} " != *" $name "* ]] || continue
	t=$SECONDS
	"step_${name//-/_}"
	timed "$name" $((SECONDS - t))
done
side_join

msg "times: $(IFS=,; echo "${times[*]}" | sed 's/,/, /g'), total $((SECONDS - total))s"

# ---- The contract, and the one place that counts ------------------------
# Each VM step's command prints KTAP (TAP 13 included; several programs may
# each print their own) on stdout, kept in LOG_DIR/NAME.log, and exits 0
# (passed), 4 (KSFT_SKIP: nothing could run; a SKIP line says why) or
# anything else (failed: 1, or vm-run.sh's 124 timeout, 125 VM died, 126
# kernel bug logged). Counted here from the result lines: "ok N" passed,
# "ok N ... # SKIP" and a program's "1..0 # SKIP" skipped, "not ok N"
# failed; a failed step without a failed line, or a passed one that passed
# nothing, counts one failure. Only the steps in may_skip may skip whole
# (Bochs missing or unable to start); everything else runs here, and its
# exit 4 is a failure.
may_skip=(vmx-suite)
ktap_counts() {
	awk '/^ok [0-9]+/ { if (/# [Ss][Kk][Ii][Pp]/) s++; else p++; next }
	     /^1\.\.0 # [Ss][Kk][Ii][Pp]/ { s++; next }
	     /^not ok [0-9]+/ { f++ }
	     END { print p + 0, f + 0, s + 0 }' "$LOG_DIR/$1.log"
}
total_p=0 total_f=0 total_s=0 failed_steps=() skipped_steps=()
for i in "${!step_logs[@]}"; do
	name=${step_logs[$i]} step_rc=${step_rcs[$i]}
	read -r p f s <<<"$(ktap_counts "$name")"
	if [ "$step_rc" -eq 4 ] && [ "$f" -eq 0 ] && [[ " ${may_skip[*]} " == *" $name "* ]]; then
		skipped_steps+=("$name")
		[ "$s" -gt 0 ] || s=1
	else
		[ "$step_rc" -eq 0 ] || [ "$f" -ne 0 ] || f=1
		[ "$p" -gt 0 ] || [ "$f" -ne 0 ] || f=1
	fi
	printf '%-14s %d passed, %d failed, %d skipped%s\n' "$name:" "$p" "$f" "$s" \
		"$([ "$step_rc" -eq 0 ] || echo " (exit $step_rc)")"
	total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + s))
	if [ "$f" -ne 0 ]; then
		failed_steps+=("$name (exit $step_rc, $f failed)")
		# The first failing step's status (124 timeout, 125 VM died, ...).
		[ -n "${first_rc:-}" ] || first_rc=$((step_rc != 0 && step_rc != 4 ? step_rc : 1))
	fi
done
echo "$total_p passed, $total_f failed, $total_s skipped$([ ${#step_logs[@]} -gt 0 ] || echo " (no VM step selected)")"
if [ ${#failed_steps[@]} -gt 0 ]; then
	echo "FAILED: ${failed_steps[*]} (logs: $LOG_DIR)" >&2
	exit "$first_rc"
fi
if [ ${#skipped_steps[@]} -gt 0 ]; then
	for name in "${skipped_steps[@]}"; do
		grep -m1 -E 'SKIP' "$LOG_DIR/$name.log" | sed "s/^/$name: /" || echo "$name: SKIP (no reason printed)"
	done
	msg "all tests that ran passed; skipped whole: ${skipped_steps[*]} (the reasons above)"
else
	msg "all tests passed"
fi
