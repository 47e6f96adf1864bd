#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Checks in the built KVM objects that every function msrguard hooks exists
# out of line (a kprobe on a function that was inlined into a caller would
# silently miss that caller), and that the paths it relies on call them.
# Usage: scripts/check-hooks.sh [KDIR]
# (No early-exiting `grep -q` in pipes: lib.sh sets pipefail.)

. "$(dirname "$0")/lib.sh"

KDIR="${1:-$("$MSRGUARD_ROOT/scripts/kernel-dir.sh")}"
[ -n "$KDIR" ] || die "no built kernel tree"
for m in kvm kvm-amd kvm-intel; do
	[ -f "$KDIR/arch/x86/kvm/$m.ko" ] || die "$KDIR/arch/x86/kvm/$m.ko not found (KVM must be built as modules)"
done

fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

# Every function (in $2.ko) containing a call to $1, one per line.
callers_of() {
	objdump -dr --no-show-raw-insn "$KDIR/arch/x86/kvm/$2.ko" |
		awk -v t="$1" '/^[0-9a-f]+ <.*>:$/ {fn=$2; gsub(/[<>:]/, "", fn)}
			$0 ~ ("(R_X86_64_PLT32[ \t]+" t "-0x4|call[ \t]+[0-9a-f]+ <" t ">)") {print fn}' |
		sort -u
}

has_function() {
	nm "$KDIR/arch/x86/kvm/$2.ko" | awk -v f="$1" '$3 == f && ($2 == "T" || $2 == "t") {found=1} END {exit !found}'
}

for f in kvm_get_msr_ignored_check kvm_set_msr_ignored_check kvm_msr_allowed \
	__kvm_emulate_rdmsr __kvm_emulate_wrmsr kvm_emulate_msr_read kvm_emulate_msr_write \
	kvm_complete_insn_gp kvm_emulator_get_msr_with_filter kvm_emulator_set_msr_with_filter; do
	if has_function "$f" kvm; then ok "$f is an out-of-line function in kvm.ko"; else bad "$f is not a function in kvm.ko (inlined or renamed)"; fi
done
has_function svm_set_intercept_for_msr kvm-amd && ok "svm_set_intercept_for_msr is out of line in kvm-amd.ko" ||
	bad "svm_set_intercept_for_msr is not a function in kvm-amd.ko"
has_function vmx_set_intercept_for_msr kvm-intel && ok "vmx_set_intercept_for_msr is out of line in kvm-intel.ko" ||
	bad "vmx_set_intercept_for_msr is not a function in kvm-intel.ko"

# The decision points: every guest access path calls them.
get_callers=$(callers_of kvm_get_msr_ignored_check kvm)
set_callers=$(callers_of kvm_set_msr_ignored_check kvm)
for f in __kvm_emulate_rdmsr kvm_emulator_get_msr_with_filter kvm_emulate_msr_read; do
	grep -qx "$f" <<<"$get_callers" && ok "$f calls kvm_get_msr_ignored_check" ||
		bad "$f does not call kvm_get_msr_ignored_check (inlined?)"
done
for f in __kvm_emulate_wrmsr kvm_emulator_set_msr_with_filter kvm_emulate_msr_write; do
	grep -qx "$f" <<<"$set_callers" && ok "$f calls kvm_set_msr_ignored_check" ||
		bad "$f does not call kvm_set_msr_ignored_check (inlined?)"
done

# Intercepts: the only vendor code asking kvm_msr_allowed() is the hooked
# function, so no inlined copy of it drops an intercept behind our back.
for pair in kvm-amd:svm_set_intercept_for_msr kvm-intel:vmx_set_intercept_for_msr; do
	m=${pair%%:*}
	f=${pair#*:}
	c=$(callers_of kvm_msr_allowed "$m" | tr '\n' ' ')
	[ "$c" = "$f " ] && ok "$m.ko asks kvm_msr_allowed only from $f" ||
		bad "$m.ko asks kvm_msr_allowed from: ${c:-nowhere} (want only $f)"
done
exit $fail
