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
if ! cargo test --workspace --locked >"$LOG_DIR/cargo-test.log" 2>&1; then
	tail -n 60 "$LOG_DIR/cargo-test.log" >&2
	die "cargo test failed (full log: $LOG_DIR/cargo-test.log)"
fi
grep -E '^test result' "$LOG_DIR/cargo-test.log" | awk '{p+=$4; f+=$6} END {printf "cargo test: %d passed, %d failed\n", p, f}' 
t_cargo=$((SECONDS - t))

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
build_all
t_build=$((SECONDS - t))

t=$SECONDS
msg "VM suite (virtme-ng, TCG, -cpu max, KVM inside)"
rc=0
scripts/vm-run.sh --timeout 1500 --append "kvm.force_emulation_prefix=1" -- \
	selftests/msrguard_test "$MSRGUARD_ROOT/msrguard.ko" "$MSRGUARD_ROOT/selftests/msrguard-testpolicy.ko" \
	"$TOOL" | tee "$LOG_DIR/vm-suite.log" || rc=$?
t_vm=$((SECONDS - t))

# KVM's own selftests judge compatibility: each outcome must be the same
# without and with msrguard, or an intended veto listed in
# selftests/kvm-selftests-expected-diffs.txt.
t=$SECONDS
kvm_rc=0
if kvm_st=$(scripts/build-kvm-selftests.sh); then
	msg "KVM selftests without and with msrguard (VM)"
	scripts/vm-run.sh --timeout 900 --append "kvm.force_emulation_prefix=1" -- \
		selftests/kvm-selftests-compare.sh "$kvm_st" "$MSRGUARD_ROOT/msrguard.ko" \
		"$MSRGUARD_ROOT/selftests/kvm-selftests-expected-diffs.txt" "$TOOL" |
		tee "$LOG_DIR/kvm-selftests.log" || kvm_rc=$?
	grep -Eq '^kvm-selftests: [0-9]+ passed, 0 failed' "$LOG_DIR/kvm-selftests.log" || [ "$kvm_rc" -ne 0 ] || kvm_rc=1
else
	echo "FAILED: KVM selftests build" >&2
	kvm_rc=1
fi
t_kvm=$((SECONDS - t))

# Benchmarks print figures; they never fail the run.
t=$SECONDS
msg "benchmarks (figures only)"
cargo run --quiet --locked --release -p msrguard-policy --bin msrguard-lookup-bench -- policy/default.toml || warn "host lookup benchmark failed"
scripts/vm-run.sh --timeout 600 -- selftests/msrguard_bench "$MSRGUARD_ROOT/msrguard.ko" 3000 || warn "VM benchmark failed"
t_bench=$((SECONDS - t))

msg "times: set-up ${t_setup}s, cargo test ${t_cargo}s, module+suite build ${t_build}s, VM suite ${t_vm}s, KVM selftests ${t_kvm}s, benchmarks ${t_bench}s, total $((SECONDS - total))s"
if ! grep -Eq '^[0-9]+ passed, 0 failed$' "$LOG_DIR/vm-suite.log"; then
	[ "$rc" -ne 0 ] || rc=1
fi
if [ "$rc" -ne 0 ]; then
	echo "FAILED: VM suite exit status $rc" >&2
	exit "$rc"
fi
if [ "$kvm_rc" -ne 0 ]; then
	echo "FAILED: KVM selftests differ with msrguard (exit status $kvm_rc; log: $LOG_DIR/kvm-selftests.log)" >&2
	exit "$kvm_rc"
fi
msg "all tests passed"
