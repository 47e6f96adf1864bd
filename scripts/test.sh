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
build_all
t_build=$((SECONDS - t))

t=$SECONDS
msg "VM suite (virtme-ng, TCG, -cpu max, KVM inside)"
rc=0
scripts/vm-run.sh --timeout 1500 --append "kvm.force_emulation_prefix=1" -- \
	selftests/msrguard_test "$MSRGUARD_ROOT/msrguard.ko" "$MSRGUARD_ROOT/selftests/msrguard-testpolicy.ko" \
	"$TOOL" | tee "$LOG_DIR/vm-suite.log" || rc=$?
t_vm=$((SECONDS - t))

# A separate boot: the suite ends with lock=1, which pins msrguard.
t=$SECONDS
msg "VM storm and interface fuzz (two VMs x two vCPUs flooding; random operations on /dev/msrguard)"
rc_storm=0
scripts/vm-run.sh --timeout 900 -- \
	"selftests/msrguard_storm '$MSRGUARD_ROOT/msrguard.ko'; s=\$?; selftests/msrguard_fuzz '$MSRGUARD_ROOT/msrguard.ko'; f=\$?; [ \$s -eq 0 ] && [ \$f -eq 0 ]" |
	tee "$LOG_DIR/vm-storm-fuzz.log" || rc_storm=$?
t_storm=$((SECONDS - t))

# Benchmarks print figures; they never fail the run.
t=$SECONDS
msg "benchmarks (figures only)"
cargo run --quiet --locked --release -p msrguard-policy --bin msrguard-lookup-bench -- policy/default.toml || warn "host lookup benchmark failed"
scripts/vm-run.sh --timeout 600 -- selftests/msrguard_bench "$MSRGUARD_ROOT/msrguard.ko" 3000 || warn "VM benchmark failed"
t_bench=$((SECONDS - t))

msg "times: set-up ${t_setup}s, cargo test ${t_cargo}s, module+suite build ${t_build}s, VM suite ${t_vm}s, storm+fuzz ${t_storm}s, benchmarks ${t_bench}s, total $((SECONDS - total))s"
rc_suite=$rc
# Each VM program ends with "N passed, N failed": three are expected.
cat "$LOG_DIR/vm-suite.log" "$LOG_DIR/vm-storm-fuzz.log" |
	awk '/^[0-9]+ passed, [0-9]+ failed$/ {p+=$1; f+=$3; n++} END {printf "VM tests: %d passed, %d failed (%d of 3 programs reported)\n", p, f, n}' |
	tee "$LOG_DIR/vm-totals.log"
if ! grep -Eq ' 0 failed \(3 of 3 ' "$LOG_DIR/vm-totals.log"; then
	[ "$rc" -ne 0 ] || rc=1
fi
if [ "$rc_storm" -ne 0 ] && [ "$rc" -eq 0 ]; then
	rc=$rc_storm
fi
if [ "$rc" -ne 0 ]; then
	echo "FAILED: VM tests exit status $rc (suite $rc_suite, storm+fuzz $rc_storm)" >&2
	exit "$rc"
fi
msg "all tests passed"
