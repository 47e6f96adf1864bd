#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Checks in the built KVM objects that every function msrguard hooks exists
# out of line (a hook on a function that was inlined into a caller would
# silently miss that caller), can be hooked by ftrace (it calls __fentry__),
# and that the paths msrguard relies on call them; that their prototypes
# are checked by the compiler, and a wrong one fails the build. (msrguard
# checks clones and callers again itself when it arms, on the running
# kernel: rust/module/kvm/verify.c.)
# Usage: scripts/check-hooks.sh [KDIR]
# (No early-exiting `grep -q` in pipes: lib.sh sets pipefail.)

. "$(dirname "$0")/lib.sh"

KDIR="${1:-$(need_kernel_tree)}"
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

# The body of function $1 in $2.ko calls __fentry__ (ftrace can hook it).
has_fentry() {
	objdump -dr --no-show-raw-insn "$KDIR/arch/x86/kvm/$2.ko" |
		awk -v f="<$1>:" '$2 == f {inside=1; next} /^[0-9a-f]+ <.*>:$/ {inside=0}
			inside && /__fentry__/ {found=1} END {exit !found}'
}

for pair in kvm:kvm_get_msr_ignored_check kvm:kvm_set_msr_ignored_check \
	kvm:kvm_mmu_init_vm kvm:kvm_mmu_uninit_vm kvm:kvm_arch_vcpu_precreate \
	kvm-amd:svm_set_intercept_for_msr kvm-intel:vmx_set_intercept_for_msr; do
	m=${pair%%:*}
	f=${pair#*:}
	if has_function "$f" "$m"; then ok "$f is an out-of-line function in $m.ko"; else bad "$f is not a function in $m.ko (inlined or renamed)"; fi
	if has_fentry "$f" "$m"; then ok "$f calls __fentry__ (ftrace can hook it)"; else bad "$f has no __fentry__ call: ftrace cannot hook it"; fi
done

# VM lifetimes: KVM makes every VM through kvm_mmu_init_vm (called from
# kvm_arch_init_vm once the VM's type is accepted), and destroys every one
# through kvm_mmu_uninit_vm (after its vCPUs; also kvm_arch_init_vm's
# failure path after kvm_mmu_init_vm).
grep -qx kvm_arch_init_vm <<<"$(callers_of kvm_mmu_init_vm kvm)" &&
	ok "kvm_arch_init_vm calls kvm_mmu_init_vm" || bad "kvm_arch_init_vm does not call kvm_mmu_init_vm (inlined?)"
grep -qx kvm_arch_destroy_vm <<<"$(callers_of kvm_mmu_uninit_vm kvm)" &&
	ok "kvm_arch_destroy_vm calls kvm_mmu_uninit_vm" || bad "kvm_arch_destroy_vm does not call kvm_mmu_uninit_vm (inlined?)"
# And creates every vCPU through kvm_arch_vcpu_precreate (from the ioctl
# that creates vCPUs): a VM's entry is trusted from there.
c=$(callers_of kvm_arch_vcpu_precreate kvm | tr '\n' ' ')
[ -n "$c" ] && ok "kvm_arch_vcpu_precreate is called (from ${c% })" ||
	bad "nothing in kvm.ko calls kvm_arch_vcpu_precreate (inlined?)"

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
# Prototypes: every msrguard build has the compiler check them against the
# tree (rust/module/kvm/kvm_probe.c, Kbuild's always-y); a wrong one must
# fail that build, naming the function. Built alone, into a scratch
# output directory.
probe_out=$(mktemp -d /tmp/msrguard-probe.XXXXXX)
probe() {
	make -C "$KDIR" M="$MSRGUARD_ROOT" MO="$probe_out" MSRGUARD_GEN="$probe_out" "$@" \
		rust/module/kvm/kvm_probe.o >"$probe_out/log" 2>&1
}
if probe; then ok "the hooked functions have the prototypes msrguard assumes (compiled against $KDIR)"
else bad "the prototype probe does not build: $(grep -m1 'error' "$probe_out/log")"; fi
rm -f "$probe_out/rust/module/kvm/kvm_probe.o"
if probe MSRGUARD_PROBE_INJECT=prototype; then bad "a wrong prototype (injected) did not fail the build"
elif grep -q 'kvm_get_msr_ignored_check does not have the prototype hooks.c assumes: int(struct kvm_vcpu \*, u32, u64, bool)' "$probe_out/log"; then
	ok "a wrong prototype (injected) fails the build naming kvm_get_msr_ignored_check"
else bad "a wrong prototype (injected) failed the build without naming the function: $(grep -m1 'error' "$probe_out/log")"; fi
rm -rf "$probe_out"
exit $fail
