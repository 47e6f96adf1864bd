#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs every msrguard test: sets up if needed, host `cargo test`, builds the
# module and the VM suite, and runs the suite inside the test VM.
# Exit status: non-zero if anything failed.

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

total=$SECONDS
t=$SECONDS
scripts/setup.sh >/dev/null
t_setup=$((SECONDS - t))

t=$SECONDS
msg "host tests: cargo test"
# The KVM extraction test reads the cached kernel tree (it prints SKIP without one).
KDIR="$(scripts/kernel-dir.sh)"
if ! MSRGUARD_KDIR="$KDIR" cargo test --workspace --locked >"$LOG_DIR/cargo-test.log" 2>&1; then
	tail -n 60 "$LOG_DIR/cargo-test.log" >&2
	die "cargo test failed (full log: $LOG_DIR/cargo-test.log)"
fi
grep -E '^test result' "$LOG_DIR/cargo-test.log" | awk '{p+=$4; f+=$6} END {printf "cargo test: %d passed, %d failed\n", p, f}' 
t_cargo=$((SECONDS - t))

msg "default policy against KVM: every MSR KVM handles has an entry, no dead entries"
[ -n "$KDIR" ] || die "no built kernel tree to compare the default policy with"
cargo run --quiet --locked --release -p msrguard -- check --against-kvm "$KDIR" policy/default.toml ||
	die "policy/default.toml does not match the MSRs KVM handles in $KDIR"

msg "hook points: every hooked KVM function out of line (objdump)"
scripts/check-hooks.sh >"$LOG_DIR/check-hooks.log" || { cat "$LOG_DIR/check-hooks.log"; die "a hook point is inlined or missing"; }
grep -c '^ok' "$LOG_DIR/check-hooks.log" | xargs printf 'check-hooks: %s checks passed\n'

t=$SECONDS
msg "building msrguard.ko and the VM suite"
scripts/lint.sh >"$LOG_DIR/lint.log" 2>&1 || { cat "$LOG_DIR/lint.log"; die "lint failed (clippy or rustfmt)"; }
grep '^ok' "$LOG_DIR/lint.log"
# The suite also needs a build with the test policy (selftests/test-policy.toml).
make -s POLICY=selftests/test-policy.toml >/dev/null || die "module build (test policy) failed"
cp msrguard.ko selftests/msrguard-testpolicy.ko
# The real-guest tests' strict policy, derived from the default one.
scripts/strict-guest-policy.sh selftests/guest-strict-policy.toml
make -s POLICY=selftests/guest-strict-policy.toml >/dev/null || die "module build (strict guest policy) failed"
cp msrguard.ko selftests/msrguard-gueststrict.ko
build_all
t_build=$((SECONDS - t))

msg "packaging: systemd unit (systemd-analyze verify), modprobe.d, modules-load.d"
scripts/check-packaging.sh "$TOOL" "$MSRGUARD_ROOT/msrguard.ko" || die "packaging check failed"
msg "Debian package of the tool and the unit (cargo-deb), unpacked and checked"
scripts/build-deb.sh || die "Debian package build or check failed"

t=$SECONDS
msg "VM suite (virtme-ng, TCG, -cpu max, KVM inside)"
rc=0
scripts/vm-run.sh --timeout 1500 --append "kvm.force_emulation_prefix=1" -- \
	selftests/msrguard_test "$MSRGUARD_ROOT/msrguard.ko" "$TOOL" | tee "$LOG_DIR/vm-suite.log" || rc=$?
t_vm=$((SECONDS - t))

# The guard table as KVM selftests on the tree's LIBKVM (selftests/kvm/):
# exit path, emulator, nested L2 through an L1 guest hypervisor.
t=$SECONDS
msg "libkvm suite (selftests/kvm: guard table on every path, nested SVM)"
libkvm_rc=0
if make -s -C selftests/kvm >"$LOG_DIR/libkvm-build.log" 2>&1; then
	scripts/vm-run.sh --timeout 900 --append "kvm.force_emulation_prefix=1" -- \
		selftests/kvm/run.sh "$MSRGUARD_ROOT/msrguard.ko" "$MSRGUARD_ROOT/selftests/msrguard-testpolicy.ko" |
		tee "$LOG_DIR/vm-libkvm.log" || libkvm_rc=$?
else
	tail -n 40 "$LOG_DIR/libkvm-build.log" >&2
	echo "FAILED: libkvm suite build (log: $LOG_DIR/libkvm-build.log)" | tee "$LOG_DIR/vm-libkvm.log" >&2
	libkvm_rc=1
fi
t_libkvm=$((SECONDS - t))

# Storm and interface fuzz: boots of their own (the suite ends with lock=1,
# which pins msrguard).
t=$SECONDS
msg "VM storm: two VMs x two vCPUs, one flooding vetoed accesses, reader absent, slow and fast"
storm_rc=0
scripts/vm-run.sh --timeout 600 -- selftests/msrguard_storm "$MSRGUARD_ROOT/msrguard.ko" |
	tee "$LOG_DIR/vm-storm.log" || storm_rc=$?
msg "VM interface fuzz: random operations on /dev/msrguard"
fuzz_rc=0
scripts/vm-run.sh --timeout 600 -- selftests/msrguard_fuzz "$MSRGUARD_ROOT/msrguard.ko" |
	tee "$LOG_DIR/vm-fuzz.log" || fuzz_rc=$?
t_storm=$((SECONDS - t))

# Stock Debian kernels as KVM guests, in a VM of their own (a failure to
# fetch them counts as a failed test, not a skip).
t=$SECONDS
msg "real guests: stock Debian kernels under KVM, without and with msrguard"
guest_rc=0
if guest_args=$(scripts/guest-kernels.sh); then
	mapfile -t guest_args <<<"$guest_args"
	scripts/vm-run.sh --timeout 1200 -- selftests/distro_guests.sh "$MSRGUARD_ROOT/msrguard.ko" \
		"$MSRGUARD_ROOT/selftests/msrguard-gueststrict.ko" "$(IFS=,; echo "${GUEST_STRICT_IGNORE_READS[*]}")" \
		"$TOOL" "${guest_args[@]}" | tee "$LOG_DIR/vm-guests.log" || guest_rc=$?
else
	guest_rc=$?
	echo "real guests: the guest kernels or initramfs could not be prepared" | tee "$LOG_DIR/vm-guests.log" >&2
fi
t_guests=$((SECONDS - t))

# KVM's own selftests judge compatibility: each outcome must be the same
# without and with msrguard, or an intended veto listed in
# selftests/kvm-selftests-expected-diffs.txt.
t=$SECONDS
kvm_rc=0
if kvm_st=$(scripts/build-kvm-selftests.sh); then
	msg "KVM selftests without and with msrguard (VM)"
	scripts/vm-run.sh --timeout 1500 --append "kvm.force_emulation_prefix=1" -- \
		selftests/kvm-selftests-compare.sh "$kvm_st" "$MSRGUARD_ROOT/msrguard.ko" \
		"$MSRGUARD_ROOT/selftests/kvm-selftests-expected-diffs.txt" "$TOOL" |
		tee "$LOG_DIR/kvm-selftests.log" || kvm_rc=$?
	grep -Eq '^kvm-selftests: [0-9]+ passed, 0 failed' "$LOG_DIR/kvm-selftests.log" || [ "$kvm_rc" -ne 0 ] || kvm_rc=1
else
	echo "FAILED: KVM selftests build" >&2
	kvm_rc=1
fi
t_kvm=$((SECONDS - t))

# Intel VMX: QEMU's TCG has none, Bochs emulates it (scripts/test-vmx.sh:
# the guard tables, the RIP from the VMCS, the VMX intercept hook). Exit 4
# is its SKIP (Bochs could not be installed or started): no pass counted.
t=$SECONDS
msg "VMX suite (Bochs: Intel VMX with EPT, KVM inside)"
vmx_rc=0
scripts/test-vmx.sh "$MSRGUARD_ROOT/msrguard.ko" "$MSRGUARD_ROOT/selftests/msrguard-testpolicy.ko" |
	tee "$LOG_DIR/vmx-suite.log" || vmx_rc=$?
t_vmx=$((SECONDS - t))

# Benchmarks print figures; they never fail the run.
t=$SECONDS
# Per-exit costs are measured deterministically (QEMU icount, test and
# production kernels) by scripts/bench.sh, not here: wall-clock timing under
# TCG is noise.
msg "benchmarks (figures only; exit costs: scripts/bench.sh)"
cargo run --quiet --locked --release -p msrguard-policy --bin msrguard-lookup-bench -- policy/default.toml || warn "host lookup benchmark failed"
t_bench=$((SECONDS - t))

msg "times: set-up ${t_setup}s, cargo test ${t_cargo}s, module+suite build ${t_build}s, VM suite ${t_vm}s, libkvm suite ${t_libkvm}s, storm+fuzz ${t_storm}s, real guests ${t_guests}s, KVM selftests ${t_kvm}s, VMX suite ${t_vmx}s, benchmarks ${t_bench}s, total $((SECONDS - total))s"
# Each VM run's "P passed, F failed" line; a run that failed without a
# failing test (a crashed VM, a kernel bug in the VM's log, no line at all)
# counts as one failure, and a failing test fails the run.
run_counts() {
	local line p=0 f=0
	line=$(grep -E '^(kvm-selftests: )?[0-9]+ passed, [0-9]+ failed' "$LOG_DIR/$1.log" | tail -n 1) || true
	line=${line#kvm-selftests: }
	[ -z "$line" ] || read -r p _ f _ <<<"$line"
	[ "$2" -eq 0 ] || [ "$f" -ne 0 ] || f=1
	echo "$p $f"
}
read -r p1 f1 <<<"$(run_counts vm-suite "$rc")"
read -r p2 f2 <<<"$(run_counts vm-guests "$guest_rc")"
read -r p3 f3 <<<"$(run_counts kvm-selftests "$kvm_rc")"
read -r p4 f4 <<<"$(run_counts vm-storm "$storm_rc")"
read -r p5 f5 <<<"$(run_counts vm-fuzz "$fuzz_rc")"
read -r p7 f7 <<<"$(run_counts vm-libkvm "$libkvm_rc")"
vmx_skipped=
if [ "$vmx_rc" -eq 4 ]; then
	p6=0 f6=0 vmx_rc=0 vmx_skipped=1
	grep -m1 '^test-vmx: SKIP' "$LOG_DIR/vmx-suite.log" || echo "test-vmx: SKIP (no reason printed)"
else
	read -r p6 f6 <<<"$(run_counts vmx-suite "$vmx_rc")"
fi
[ "$f1" -eq 0 ] || [ "$rc" -ne 0 ] || rc=1
[ "$f4" -eq 0 ] || [ "$storm_rc" -ne 0 ] || storm_rc=1
[ "$f5" -eq 0 ] || [ "$fuzz_rc" -ne 0 ] || fuzz_rc=1
[ "$f7" -eq 0 ] || [ "$libkvm_rc" -ne 0 ] || libkvm_rc=1
# Storm, fuzz and libkvm-suite failures count with the suite's.
[ "$rc" -ne 0 ] || rc=$((storm_rc != 0 ? storm_rc : fuzz_rc != 0 ? fuzz_rc : libkvm_rc))
[ "$f2" -eq 0 ] || [ "$guest_rc" -ne 0 ] || guest_rc=1
[ "$f3" -eq 0 ] || [ "$kvm_rc" -ne 0 ] || kvm_rc=1
[ "$f6" -eq 0 ] || [ "$vmx_rc" -ne 0 ] || vmx_rc=1
echo "$((p1 + p2 + p3 + p4 + p5 + p6 + p7)) passed, $((f1 + f2 + f3 + f4 + f5 + f6 + f7)) failed"
if [ "$rc" -ne 0 ] || [ "$guest_rc" -ne 0 ] || [ "$kvm_rc" -ne 0 ] || [ "$vmx_rc" -ne 0 ]; then
	echo "FAILED: VM suite (with storm $storm_rc, fuzz $fuzz_rc, libkvm suite $libkvm_rc) exit status $rc, real guests exit status $guest_rc, KVM selftests comparison exit status $kvm_rc, VMX suite (Bochs) exit status $vmx_rc (logs: $LOG_DIR)" >&2
	exit $((rc != 0 ? rc : guest_rc != 0 ? guest_rc : kvm_rc != 0 ? kvm_rc : vmx_rc))
fi
if [ "$kvm_rc" -ne 0 ]; then
	echo "FAILED: KVM selftests differ with msrguard (exit status $kvm_rc; log: $LOG_DIR/kvm-selftests.log)" >&2
	exit "$kvm_rc"
fi
if [ -n "$vmx_skipped" ]; then
	msg "all tests that ran passed; the VMX suite was skipped (its SKIP line above says why)"
else
	msg "all tests passed"
fi
