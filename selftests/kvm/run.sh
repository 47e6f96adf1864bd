#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs msrguard's KVM-selftest suite inside the test VM: each program's
# KTAP, and an exit status for scripts/test.sh: 1 if a program failed or
# none ran, 4 if every one skipped, else 0.
#
#   selftests/kvm/run.sh [--only PROGRAM[,PROGRAM...]] MODULE.ko TESTPOLICY_MODULE.ko TOOL [TEST ARGS...]
#
# Without --only: every program but the storm and the fuzz, which
# scripts/test.sh runs with --only in a boot of their own (a flood and
# random rmmods disturb what shares a boot), with lock_test last: lock=1
# pins msrguard until reboot, so nothing may run after it.
# TEST ARGS go to the kselftest harness (-f FIXTURE, -v VARIANT, -r NAME).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
only=
if [ "${1:-}" = --only ]; then
	only=${2:?--only needs a program name}
	for name in ${only//,/ }; do
		[ -x "$here/$name" ] || { echo "run.sh: no program $here/$name" >&2; exit 2; }
	done
	shift 2
fi
[ $# -ge 3 ] || { echo "usage: $0 [--only PROGRAM[,PROGRAM...]] MODULE.ko TESTPOLICY_MODULE.ko TOOL [TEST ARGS...]" >&2; exit 2; }
export MSRGUARD_KO=$1 MSRGUARD_TESTPOLICY_KO=$2 MSRGUARD_TOOL=$3
shift 3
ran=0 skipped=0 failed=0
# The tests are the *_test programs (the Makefile also builds the demo, the
# guest workload and the exit benchmark).
progs=()
for prog in "$here"/*_test; do
	case "${prog##*/}" in lock_test) ;; *) progs+=("$prog") ;; esac
done
progs+=("$here/lock_test")
for prog in "${progs[@]}"; do
	name=${prog##*/}
	if [ -n "$only" ]; then
		[[ ",$only," == *",$name,"* ]] || continue
	else
		case "$name" in storm_test | fuzz_test) continue ;; esac
	fi
	rc=0 t=$SECONDS
	"$prog" "$@" || rc=$?
	echo "# run.sh: $name exited $rc after $((SECONDS - t))s"
	ran=$((ran + 1))
	case "$rc" in
	0) ;;
	4)
		# Only the VMX-only program may skip whole (on an SVM host); any
		# other program must run here.
		if [ "$name" = realmode_vmx_test ]; then
			skipped=$((skipped + 1))
			echo "# run.sh: $name skipped whole (its SKIP line says why)"
		else
			failed=$((failed + 1))
			echo "# run.sh: $name skipped whole: a failure, it must run here"
		fi ;;
	*) failed=$((failed + 1)) ;;
	esac
done
[ "$ran" -gt 0 ] || { echo "run.sh: no *_test program matched${only:+ $only}" >&2; exit 1; }
[ "$failed" -eq 0 ] || exit 1
[ "$skipped" -lt "$ran" ] || exit 4
exit 0
