#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs msrguard's tests on Intel VMX, in Bochs (scripts/bochs-run.sh, the
# other VM backend: QEMU's TCG has no VMX): selftests/kvm/guard_test's
# table (the one the SVM host runs) for its exit-path cases where VMX
# differs, realmode_vmx_test (the real-mode
# tables, and what only VMX has: the RIP read from the VMCS, the
# vmx_set_intercept_for_msr hook) and nested_vmx_test (an L1 hypervisor
# built with KVM's selftest library runs an L2, kvm_intel nested=1). It
# prints their TAP.
#
#   scripts/test-vmx.sh [--timeout SECONDS] [MODULE.ko TESTPOLICY_MODULE.ko]
#
# Without the two modules it builds them (default and test policy).
# Exit status: 0 when every program passes, else 1 (a skip fails too: VMX
# must run here); bochs-run.sh's 4 (Bochs missing or unable to start; its
# SKIP line says why), 124, 125, 126.

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

timeout=600
while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) timeout="$2"; shift 2 ;;
	--) shift; break ;;
	-*) die "test-vmx.sh: unknown option $1 (usage: test-vmx.sh [--timeout S] [MODULE.ko TESTPOLICY_MODULE.ko])" ;;
	*) break ;;
	esac
done
[ $# -eq 0 ] || [ $# -eq 2 ] || die "test-vmx.sh: give both modules or none"

if [ $# -eq 2 ]; then
	module="$1" testpolicy="$2"
else
	build_testpolicy -s >/dev/null || die "module build (test policy) failed"
	build_module default -s >/dev/null || die "module build failed"
	module="$(module_ko default)" testpolicy="$(module_ko testpolicy)"
fi
out=$(mktemp -d /tmp/msrguard-vmx.XXXXXX)
trap 'rm -rf "$out"' EXIT
# LIBKVM (from the kernel tree) and the libkvm programs; the three run
# here are linked statically (selftests/kvm/libkvm.mk).
make -s -C selftests/kvm >"$out/libkvm-build.log" 2>&1 ||
	{ tail -n 30 "$out/libkvm-build.log" >&2; die "selftests/kvm build failed"; }

# guard_test's exit-path cases where VMX differs from SVM: what KVM
# answers (FEATURE_CONTROL), what it passes through (FS_BASE: the
# intercept hook; audited, the read-completion hook), vetoes and masks on
# VMX's exits. The whole table takes 10 minutes in Bochs; the emulator is
# common code, which the SVM host runs.
guard_cases=(feat_ctl_write_as_firmware feat_ctl_write_as_firmware_without_msrguard
	fs_base_read_denied fs_base_read_audit fs_base_read_without_msrguard
	unknown_write misc_enable_outside_mask pat_write)
guard="guard_test"
for c in "${guard_cases[@]}"; do guard+=" -r exit_path.$c.access"; done
# Each program and its arguments; after each, a line with its exit status
# and its duration in guest seconds (Bochs' clock runs at its own pace).
programs=("$guard" realmode_vmx_test nested_vmx_test)
{
	echo "export MSRGUARD_KO=/msrguard.ko MSRGUARD_TESTPOLICY_KO=/msrguard-testpolicy.ko"
	for p in "${programs[@]}"; do
		echo "t=\$(date +%s); /$p; echo \"# test-vmx: ${p%% *} exited \$? after \$((\$(date +%s) - t)) guest seconds\""
	done
} >"$out/test-vmx-guest.sh"
rc=0
scripts/bochs-run.sh --timeout "$timeout" --name vmx --append kvm.force_emulation_prefix=1 \
	--file "$module=msrguard.ko" --file "$testpolicy=msrguard-testpolicy.ko" \
	--file selftests/kvm/guard_test --file selftests/kvm/realmode_vmx_test \
	--file selftests/kvm/nested_vmx_test --file "$out/test-vmx-guest.sh" \
	-- sh /test-vmx-guest.sh | tee "$out/output" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] || exit "$rc"

# Each program's exit status, and no SKIP: VMX must run here.
for p in "${programs[@]}"; do
	name=${p%% *}
	status=$(sed -n "s/^# test-vmx: $name exited \([0-9]*\) after .*/\1/p" "$out/output")
	[ "$status" = 0 ] || { echo "test-vmx: $name exited ${status:-without a status}" >&2; rc=1; }
done
# Every guard case named ran (a renamed case would otherwise vanish).
ran=$(grep -cE '^ok [0-9]+ exit_path\.' "$out/output" || true)
if [ "$ran" -ne ${#guard_cases[@]} ]; then
	echo "test-vmx: guard_test passed $ran of its ${#guard_cases[@]} cases" >&2
	rc=1
fi
skips=$(grep -c '^ok .*# SKIP' "$out/output" || true)
if [ "$skips" -ne 0 ]; then
	echo "test-vmx: $skips tests skipped: a failure (VMX must run here)" >&2
	rc=1
fi
exit "$rc"
