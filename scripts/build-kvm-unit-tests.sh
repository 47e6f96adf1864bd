#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Builds kvm-unit-tests' x86 syscall test (x86/syscall.flat) into the
# cache, keyed by the source's commit, and prints its path on stdout.
#
#   scripts/build-kvm-unit-tests.sh
#
# kvm-unit-tests is in no package registry this machine reaches, so the
# source is a checkout the machine already has: $MSRGUARD_KVM_UNIT_TESTS
# (a work tree or a bare git directory), else the workplace's mirror of
# github.com/kvm-unit-tests/kvm-unit-tests. Without either it prints why on
# stderr and exits 4 (the caller's SKIP).

. "$(dirname "$0")/lib.sh"

src="${MSRGUARD_KVM_UNIT_TESTS:-/work/.mirror/kvm-unit-tests+kvm-unit-tests/repo}"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	commit=$(git -C "$src" rev-parse HEAD) || exit 4
else
	echo "kvm-unit-tests: no checkout at $src (set MSRGUARD_KVM_UNIT_TESTS to one; it is in no package registry)" >&2
	exit 4
fi
out="$MSRGUARD_CACHE/kvm-unit-tests/${commit:0:16}"
if [ -f "$out/x86/syscall.flat" ]; then
	echo "$out/x86/syscall.flat"
	exit 0
fi

build() {
	rm -rf "$out"
	mkdir -p "$out"
	git -C "$src" archive --format=tar HEAD | tar -x -C "$out"
	cd "$out" && ./configure --arch=x86_64 && make -j"$(nproc)" x86/syscall.flat
}
run_logged kvm-unit-tests-build build >&2 || { rm -rf "$out"; die "kvm-unit-tests build failed"; }
echo "$out/x86/syscall.flat"
