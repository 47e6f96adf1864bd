#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs kvm-unit-tests' x86 syscall test inside the test VM (QEMU with KVM,
# as kvm-unit-tests' x86/run would: its unittests.cfg parameters), first
# without msrguard, then with msrguard.ko (the default policy and
# profile), and compares the outcomes: the exit status and each PASS,
# FAIL, SKIP line. The test writes EFER, LSTAR, STAR and SYSCALL_MASK and
# runs SYSCALL/SYSRET around them: what a default VM does must not change.
# KTAP out, exit status 0 (same outcomes), 1 (different), 4 (nothing ran:
# the SKIP line says why).
#
#   kvm-unit-tests-compare.sh SYSCALL_FLAT MODULE.ko

set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 SYSCALL_FLAT MODULE.ko" >&2; exit 2; }
flat="$1" module="$2"
echo "TAP version 13"
modprobe kvm_amd 2>/dev/null || modprobe kvm_intel 2>/dev/null || true
if [ ! -c /dev/kvm ]; then
	echo "1..0 # SKIP no /dev/kvm in this VM (kvm_amd/kvm_intel did not load)"
	exit 4
fi
if [ -e /sys/module/msrguard ]; then
	echo "1..0 # SKIP msrguard is already loaded: the run without it would not be one"
	exit 4
fi
echo "1..3"
work=$(mktemp -d /tmp/msrguard-kut.XXXXXX)
trap 'rm -rf "$work"; rmmod msrguard 2>/dev/null || true' EXIT

# x86/unittests.cfg's [syscall]: -cpu Opteron_G1,vendor=AuthenticAMD.
# isa-debug-exit: the test's status as QEMU's ((status << 1) | 1).
run() {
	local rc=0
	timeout 300 qemu-system-x86_64 --no-reboot -nodefaults -display none -serial stdio \
		-device pc-testdev -device isa-debug-exit,iobase=0xf4,iosize=0x4 \
		-machine accel=kvm -cpu Opteron_G1,vendor=AuthenticAMD -m 64 \
		-kernel "$flat" </dev/null >"$1" 2>&1 || rc=$?
	echo "$rc" >"$1.status"
}
outcomes() { { cat "$1.status"; grep -E '^(PASS|FAIL|SKIP|XFAIL|XPASS):' "$1" | tr -d '\r'; } }

failed=0
# ran N LOG: test N, that the run reached its SUMMARY (its outcomes are
# compared below, passing or not: under nested TCG a case may fail without
# msrguard too).
ran() {
	if grep -q '^SUMMARY:' "$2"; then
		echo "ok $1 $3: $(grep -m1 '^SUMMARY:' "$2" | tr -d '\r'), QEMU exit $(cat "$2.status")"
	else
		sed 's/^/# /' "$2" | tail -n 20
		echo "not ok $1 $3: QEMU exit $(cat "$2.status"), no SUMMARY"
		failed=1
	fi
}
run "$work/without"
ran 1 "$work/without" "syscall.flat without msrguard"
insmod "$module"
run "$work/with"
rmmod msrguard
ran 2 "$work/with" "syscall.flat with msrguard (default policy and profile)"
if [ "$(outcomes "$work/without")" = "$(outcomes "$work/with")" ]; then
	outcomes "$work/with" | sed 's/^/# /'
	echo "ok 3 syscall.flat: the same outcomes with msrguard as without"
else
	diff <(outcomes "$work/without") <(outcomes "$work/with") | sed 's/^/# /' || true
	echo "not ok 3 syscall.flat: the same outcomes with msrguard as without"
	failed=1
fi
exit "$failed"
