#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Checks in the built KVM objects that every function msrguard hooks exists
# out of line (a kprobe on an inlined copy would silently miss callers), and
# that every access path still calls kvm_msr_allowed() rather than an
# inlined copy of it. Usage: scripts/check-hooks.sh [KDIR]

. "$(dirname "$0")/lib.sh"

KDIR="${1:-$("$MSRGUARD_ROOT/scripts/kernel-dir.sh")}"
[ -n "$KDIR" ] || die "no built kernel tree"
kvm="$KDIR/arch/x86/kvm/kvm.ko"
[ -f "$kvm" ] || die "$kvm not found (KVM must be built as modules)"

hooked=(kvm_msr_allowed __kvm_emulate_rdmsr __kvm_emulate_wrmsr
	kvm_emulate_msr_read kvm_emulate_msr_write kvm_complete_insn_gp
	kvm_emulator_get_msr_with_filter kvm_emulator_set_msr_with_filter)
# Functions through which guest accesses reach kvm_msr_allowed().
# (Checked without early-exiting pipes: lib.sh sets pipefail.)
callers=(__kvm_emulate_rdmsr __kvm_emulate_wrmsr kvm_emulate_msr_read
	kvm_emulate_msr_write kvm_emulator_get_msr_with_filter
	kvm_emulator_set_msr_with_filter)

fail=0
syms=$(nm "$kvm")
for f in "${hooked[@]}"; do
	if grep -Eq "^[0-9a-f]+ [Tt] $f\$" <<<"$syms"; then
		echo "ok: $f is an out-of-line function in kvm.ko"
	else
		echo "FAIL: $f is not a function symbol in kvm.ko (inlined or renamed)"
		fail=1
	fi
done
dis=$(objdump -dr --no-show-raw-insn "$kvm")
for f in "${callers[@]}"; do
	body=$(awk -v f="<$f>:" '$2 == f {on=1; next} on && /^$/ {on=0} on' <<<"$dis")
	if grep -c 'R_X86_64_PLT32[[:space:]]*kvm_msr_allowed' <<<"$body" >/dev/null; then
		echo "ok: $f calls kvm_msr_allowed out of line"
	else
		echo "FAIL: $f does not call kvm_msr_allowed (inlined into it?)"
		fail=1
	fi
done
for m in kvm-amd kvm-intel; do
	# (No early-exiting grep -q in a pipe: pipefail would see objdump's SIGPIPE.)
	if objdump -dr "$KDIR/arch/x86/kvm/$m.ko" | grep -c 'R_X86_64_PLT32[[:space:]]*kvm_msr_allowed' >/dev/null; then
		echo "ok: $m.ko asks kvm_msr_allowed before dropping intercepts"
	else
		echo "FAIL: $m.ko never calls kvm_msr_allowed"
		fail=1
	fi
done
exit $fail
